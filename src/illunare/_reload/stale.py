"""Stale references: what still holds a replaced version's functions or classes after a switch.

A swap moves everything the library owns (the module, its proxies, its
classes, the version's registrations). A reference it cannot move (a route a
framework built around the raw function, a ``functools.partial``, a bound
method or a dict of functions kept by another module, a default argument)
goes on running the replaced code: such references are reported, never
silently left.

The scan looks only at the referrers (``gc.get_referrers``) of the replaced
version's own functions and classes, an instance dict standing for its
owner; and only at those of them that something besides the version's
records, what is kept on purpose and what only memos hold refers to (their
reference counts tell, ``references``), so that a release usually walks no
heap at all. A referrer is not stale when it belongs to the library (proxies,
versions, registrations), to a call in flight (a frame), or to a kept
version that is not current: the replaced version's own closures and
classes, an old app object living in the old namespace of its module. To
tell the last, the scan climbs from each referrer to its own referrers, a
few levels at most, looking for such a version's namespace or function.
"""

from __future__ import annotations

import collections
import gc
import sys
import types
import warnings
from collections.abc import Collection, Iterable
from typing import Any

from illunare._reload.courtesy import courteous
from illunare._reload.inflight import VersionContents
from illunare._reload.namespace import is_module
from illunare._reload.references import memo_references, unexplained
from illunare._reload.registrations import (
    DESCRIPTORS,
    NOT_HOLDERS,
    SCANNING,
    Registration,
    describe,
    dict_owners,
    internals,
    is_snapshot,
)
from illunare._reload.versions import ModuleVersion, TrackedModule
from illunare.exceptions import StaleReferenceWarning

__all__ = ["nothing_stale", "stale_references", "warn"]

# How many levels of referrers the scan climbs to find a kept version.
_DEPTH = 8
_LIBRARY = (*NOT_HOLDERS, Registration, VersionContents, ModuleVersion)
_CONTAINERS = (list, dict, set, frozenset, collections.deque)
# Calls in flight: a frame, or the coroutine or generator that holds a
# suspended call's frame (3.11+ keeps it inside them, with no frame object).
_IN_FLIGHT = (types.FrameType, types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)


def _library_objects(modules: Iterable[TrackedModule]) -> set[int]:
    """The ids of the library's own records of every kept version."""
    ids: set[int] = set()
    for tracked in modules:
        ids.update((id(tracked.proxies), id(tracked.classes)))
        # A copy: the scan runs without the lock, beside other threads' swaps.
        for version in list(tracked.history.versions.values()):
            ids.update((id(version.targets), id(version.classes), id(version.registrations)))
            ids.add(id(version.functions()))
            ids.update(map(id, version.planned_contents()))
            ids.update(map(id, version.classes.values()))
            if version.bindings is not None:
                ids.update(map(id, version.bindings))
    return ids


def _kept_objects(
    modules: list[TrackedModule], extra: list[object], olds: Collection[int], known: list[object]
) -> tuple[set[int], collections.Counter[int]]:
    """The ids of the namespaces of kept versions that are not current, and of ``extra``.

    ``extra`` (what participants keep: an old app, kept for a rollback, and
    the requests in flight on it) counts with everything it holds
    (``_graph``), except the ``known`` records of the leaving version. Also
    returns how many references to each of ``olds`` the objects followed
    hold (those of ``known`` are counted apart).
    """
    live = {id(value) for module in modules for value in list(module.current.namespace.values())}
    live.update(map(id, known))
    kept, held = _graph(extra, live, olds)
    kept.update(
        id(version.namespace)
        for module in modules
        for version in list(module.history.versions.values())
        if version is not module.current
    )
    return kept, held


# Not walked into when following what a participant keeps: code and the live
# program (a function's globals are a module's namespace), and calls in flight.
_BOUNDARIES = (types.FunctionType, types.ModuleType, type, *_IN_FLIGHT)
# At most this many objects of what participants keep are followed.
_GRAPH_LIMIT = 500_000


def _graph(
    objects: list[object], live: set[int], olds: Collection[int]
) -> tuple[set[int], collections.Counter[int]]:
    """The ids of ``objects`` and of what they hold, down to code and the live program.

    An app kept for a rollback holds the routes, dependencies and contexts
    that the framework built around the older code: all of it is the app's.
    Also returns how many references to each of ``olds`` those objects hold
    (counted only if the whole graph was followed). Followed a level at a
    time, each level's referents read in one call.
    """
    seen: set[int] = set()
    held: collections.Counter[int] = collections.Counter()
    wanted = set(olds)
    level = dict(zip(map(id, objects), objects, strict=True))
    while level and len(seen) < _GRAPH_LIMIT:
        fresh = level.keys() - seen - live
        seen |= fresh
        follow = [
            obj
            for obj in map(level.__getitem__, fresh)
            if not isinstance(obj, _BOUNDARIES) and not (type(obj) is dict and "__name__" in obj)
        ]
        referents = gc.get_referents(*follow)
        del follow
        held.update(filter(wanted.__contains__, map(id, referents)))
        level = dict(zip(map(id, referents), referents, strict=True))
        del referents
    if level:
        return seen, collections.Counter()
    return seen, held


def nothing_stale(tracked: TrackedModule, leaving: ModuleVersion) -> bool:
    """Whether ``stale_references`` would find nothing, told without a scan.

    So when nothing but ``leaving``'s own records (and calls in flight that
    a thread's innermost frame runs) refers to its functions
    (``ModuleVersion.sole_holder``) and it has no class object of its own
    that the current version lacks. ``False`` does not mean that something
    is stale: only that a scan must tell.
    """
    return not _replaced_classes(tracked, leaving) and (
        leaving.sole_holder() or leaving.sole_holder(running=True)
    )


def stale_references(
    tracked: TrackedModule,
    leaving: ModuleVersion,
    modules: Iterable[TrackedModule],
    kept: Iterable[object] = (),
) -> tuple[str, ...]:
    """Describe each holder of ``leaving``'s functions and classes that stays in effect.

    ``tracked`` has just switched from ``leaving`` to its current version;
    ``modules`` are the tracked modules whose kept versions may own what
    refers to them; ``kept``, what the release's participants keep of older
    versions on purpose (``Participant.kept``). Call without LOCK (the scan
    walks the heap).
    """
    with SCANNING, courteous():
        return _stale_references(tracked, leaving, list(modules), list(kept))


def _stale_references(
    tracked: TrackedModule,
    leaving: ModuleVersion,
    modules: list[TrackedModule],
    extra: list[object],
) -> tuple[str, ...]:
    old = _replaced(tracked, leaving)
    known = _version_records(leaving, old)
    if not unexplained(old, known):
        return ()
    # Those that only the version's records and what is kept on purpose refer
    # to need no walk of the heap: nothing else can hold them.
    kept, held = _kept_objects(modules, extra, {id(obj) for obj in old}, known)
    if unexplained(old, known, held=held):
        # Nor those that what only memos hold refers to besides.
        held.update(memo_references(kept.union(map(id, known)), {id(obj) for obj in old}))
    frontier = unexplained(old, known, held=held)
    del known
    if not frontier:
        return ()
    olds = {id(obj): obj for obj in old}
    scan = _Scan(kept, olds, _library_objects(modules) | {id(olds), id(old), id(frontier)})
    scan.module = tracked.name
    scan.stable = set(map(id, list(tracked.classes.values())))
    scan.skip.update(map(id, internals(old)))
    stale = scan.run(frontier)
    number = leaving.info.number
    return tuple(
        f"{describe(holder)} holds {', '.join(sorted(names))} of version {number} of {tracked.name}"
        for holder, names in stale
    )


def _version_records(leaving: ModuleVersion, old: list[object]) -> list[object]:
    """What refers to ``leaving``'s functions and classes as part of the version or its records."""
    known: list[object] = [leaving.targets, leaving.namespace, leaving.functions(), *internals(old)]
    known.extend(leaving.registrations)
    known.extend(leaving.planned_contents())
    # The attribute dicts of the class objects whose contents it moved into the
    # stable classes, while they live (the referents of their mapping proxies).
    husks = [cls for cls in (ref() for ref in leaving.husks) if cls is not None]
    known.extend(gc.get_referents(*map(vars, husks)))
    if leaving.bindings is not None:
        known.append(leaving.bindings[2])
    for state in leaving.classes.values():
        known.append(state)
        known.extend(member for member in state.values() if isinstance(member, DESCRIPTORS))
    for value in list(leaving.namespace.values()):
        if isinstance(value, NOT_HOLDERS):
            known.append(value)
            known.append(getattr(value, "__dict__", None))
    return known


def _replaced(tracked: TrackedModule, leaving: ModuleVersion) -> list[object]:
    """``leaving``'s functions and per-version classes that the current version does not share."""
    still_used = {id(function) for function in tracked.current.targets.values()}
    # A class's function defined elsewhere (``Enum.__new__`` in an enum's
    # dict) is not the version's code (``ModuleVersion.functions``).
    old: list[object] = [
        function for function in leaving.functions() if id(function) not in still_used
    ]
    old.extend(_replaced_classes(tracked, leaving))
    return old


def _replaced_classes(tracked: TrackedModule, leaving: ModuleVersion) -> list[type]:
    """``leaving``'s class objects that the current version lacks.

    Its own (not moved into a stable class), and the stable classes it had
    whose name the current version gives another class (an enum whose
    members changed) or none: what holds those still has the code it had.
    """
    current = tracked.current.namespace
    stable = [tracked.classes[name] for name in leaving.classes if name in tracked.classes]
    return [
        cls
        for cls in (*leaving.own_classes(tracked), *stable)
        if current.get(cls.__qualname__) is not cls
    ]


# A node of the climb: the id of its label (None while it is a replaced
# object itself), whether the label is fixed (a container was passed), and
# the names of the replaced objects it leads to.
_Node = tuple[int | None, bool, frozenset[str]]
_Nodes = dict[int, _Node]

# What a path of referrers leads to.
_KEPT, _LIVE, _DROPPED = "kept", "live", "dropped"


class _Scan:
    """Climbs from the replaced objects through their referrers, a few levels at most.

    Each path ends in a kept version (its namespace or one of its
    functions: not stale), in the library, a memo or a frame (not stale),
    or in the live program (a module's namespace, a class, or the depth
    bound reached: stale). A stale path is named by its *label*: the last
    object that is not a container on the way up before the first container
    (the route that holds a handler, rather than the router's list of
    routes), or the container itself when it holds the replaced object
    directly.
    """

    __slots__ = ("kept", "labels", "module", "objects", "olds", "roots", "skip", "stable")

    def __init__(self, kept: set[int], olds: dict[int, object], skip: set[int]) -> None:
        self.kept = kept
        self.olds = olds
        self.skip = skip
        self.roots = {id(vars(m)) for m in list(sys.modules.values()) if is_module(m)}
        # Every object the scan keeps, by id: the only container of them that
        # it makes besides per-level lists, all skipped by id.
        self.objects: dict[int, object] = {}
        # label id -> (names of the replaced objects, what its paths led to)
        self.labels: dict[int, tuple[set[str], set[str]]] = {}
        # the module swapped, and the ids of its stable classes
        self.module = ""
        self.stable: set[int] = set()
        skip.update((id(self), id(self.objects), id(self.labels)))

    def run(self, old: list[object]) -> list[tuple[object, set[str]]]:
        """The stale labels reached from ``old``, each with the names of what it holds."""
        nodes: _Nodes = {id(obj): (None, False, frozenset((_name(obj),))) for obj in old}
        frontier: list[Any] = list(old)
        # dicts met on the way, resolved with the next level (as in registrations.record)
        pending: list[tuple[int, list[_Node]]] = []
        for depth in range(_DEPTH + 1):
            if not frontier and not pending:
                break
            dicts = [self.objects[key] for key, _ in pending]
            args = (*frontier, *dicts)
            referrers = gc.get_referrers(*args)
            self.skip.update((id(args), id(referrers), id(frontier), id(dicts)))
            owners = dict_owners(dicts, referrers)
            climbed: list[Any] = []
            self.skip.update((id(owners), id(climbed)))
            for key, children in pending:
                found = self.objects[key]
                self._reach(owners.get(key, found), found, children, nodes, climbed)
            pending_ids = {key for key, _ in pending}
            pending = []
            del dicts, owners
            if depth == _DEPTH:
                break
            for referrer in referrers:
                if (
                    id(referrer) in pending_ids
                    or is_snapshot(referrer)
                    or (id(referrer) in self.skip and id(referrer) not in self.kept)
                ):
                    continue
                children = [nodes[id(c)] for c in gc.get_referents(referrer) if id(c) in nodes]
                if not children:
                    continue
                if type(referrer) is dict and _end_of(referrer, self) is None:
                    self.objects[id(referrer)] = referrer
                    pending.append((id(referrer), children))
                else:
                    self._reach(referrer, referrer, children, nodes, climbed)
            frontier = climbed
        for node in frontier:  # the bound reached: counted as live
            label = nodes[id(node)][0]
            if label is not None:
                self.labels[label][1].add(_LIVE)
        return [
            (self.objects[key], names)
            for key, (names, ends) in self.labels.items()
            if _LIVE in ends
        ]

    def _reach(
        self,
        holder: object,
        referrer: object,
        children: list[_Node],
        nodes: _Nodes,
        climbed: list[Any],
    ) -> None:
        """``holder`` (through ``referrer``, its instance dict or itself) refers to ``children``."""
        if id(holder) in self.olds or id(holder) in nodes:
            return
        held = [obj for obj in gc.get_referents(referrer) if id(obj) in self.olds]
        if (
            isinstance(holder, (*_LIBRARY, *_IN_FLIGHT))
            or id(holder) in self.stable
            or _only_as_class(holder, held)
        ):
            # The library (a stable class too: the version switched to may
            # lack it, which leaves it as it was), a memo, a call in flight
            # (a frame, a suspended coroutine or generator),
            # or an instance of an old class (a subclass of one): this path
            # holds nothing stale.
            for label, _, _ in children:
                if label is not None:
                    self.labels[label][1].add(_DROPPED)
            return
        container = isinstance(holder, _CONTAINERS) and holder is referrer
        end = _end_of(referrer, self, holder)
        for child, frozen, names in children:
            label = child
            if label is None or (not frozen and not container and _nameable(holder)):
                if label is not None:
                    self.labels[label][1].add(_DROPPED)  # named further up
                label = id(holder)
                self.objects[label] = holder
                self.labels.setdefault(label, (set(), set()))
            self.labels[label][0].update(names)
            if end is not None:
                self.labels[label][1].add(end)
            elif id(holder) not in nodes:
                nodes[id(holder)] = (label, frozen or container, names)
                climbed.append(holder)


def _end_of(referrer: object, scan: _Scan, holder: object = None) -> str | None:
    """What a path that reached ``holder`` (through ``referrer``) ends in, if it ends there."""
    if id(referrer) in scan.kept or _owned(holder, scan):
        return _KEPT
    if id(referrer) in scan.roots or isinstance(holder, (type, types.ModuleType)):
        return _LIVE
    return None


def _nameable(obj: object) -> bool:
    """An object worth naming as a holder: not a tuple, cell, function or bound method."""
    return not isinstance(
        obj, (tuple, types.CellType, types.FunctionType, types.MethodType, types.FrameType)
    )


def _name(obj: object) -> str:
    return str(getattr(obj, "__qualname__", None) or describe(obj))


def _only_as_class(holder: object, held: list[object]) -> bool:
    """An instance of an old class (or a subclass of it) refers to it as any instance does."""
    if not held:
        return False
    if isinstance(holder, type):
        return all(obj in holder.__mro__ for obj in held)
    return all(obj is type(holder) for obj in held)


def _owned(obj: object, scan: _Scan) -> bool:
    """A function of a kept version that is not current, or a class of one of the versions.

    A version's own class object (not the stable one, whose contents it gave)
    is the version's; so is one still in memory until the next collection.
    """
    if isinstance(obj, types.FunctionType):
        return id(obj.__globals__) in scan.kept
    return isinstance(obj, type) and obj.__module__ == scan.module and id(obj) not in scan.stable


def warn(stale: tuple[str, ...], *, stacklevel: int) -> None:
    """One ``StaleReferenceWarning`` per stale reference, pointing at the caller's swap."""
    for description in stale:
        warnings.warn(
            StaleReferenceWarning(
                f"{description}: it still runs the replaced code; make it follow swaps "
                "(look the function up through its module, use @hot, or rebuild the "
                "holder, e.g. serve the app through illunare.web.HotASGI)"
            ),
            stacklevel=stacklevel + 1,
        )
