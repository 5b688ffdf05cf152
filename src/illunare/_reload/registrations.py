"""Registrations: what a version's top-level code put into containers outside its namespace.

A callback appended to another module's list, an entry put in another
module's dict or set, a subclass recorded by a base class's
``__init_subclass__``, a route object holding the version's function
appended to a framework's route list: each belongs to the version that made
it, and is in effect only while that version is current.

They are found from the referrers of the version's own functions and
classes (read from the objects the code made, ``_Region``, or else from a
walk of the heap, ``gc.get_referrers``), climbing through the objects the
version's code created (a route, a closure's cell, a new list put in a foreign dict) up to
the first object that existed before: that object is the holder. Which
objects existed before is known from the youngest generation read just before
the new code ran (kept alive meanwhile, so that no address is reused; tuples
left out, ``heap.py``). A
plain ``dict`` is always a holder, never climbed: an empty dict is not
tracked by the garbage collector, so a registry ``REGISTRY = {}`` would look
created by the version. Version 1 ran before tracking: its registrations
are guessed at track time (objects that are neither containers nor
module-level values of another module count as made by it, and containers
near its own values), and a guessed one is acted upon only where a later
version registers into the same holder (``exchange``).

A holder is withdrawable when it is a ``list``, ``dict``, ``set`` or
``collections.deque`` (or a subclass): withdrawing removes the entry if it is
still there; restoring puts it back (a list entry at its recorded position
where possible). Anything else holding the version's objects (a tuple, an
attribute of an object that existed before, a C object) cannot be undone and
refuses the swap.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import reprlib
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import compress
from operator import not_
from typing import Any

import attrs

from illunare._reload.heap import tracked_objects, young_objects
from illunare._reload.locking import LOCK
from illunare._reload.namespace import is_module
from illunare._reload.pause import PAUSE as _PAUSE
from illunare._reload.pause import Token, outermost_call
from illunare._reload.proxy import HotFunction
from illunare._reload.references import (
    MEMO,
    excess,
    learn_memos,
    memo_references,
    unexplained,
)
from illunare.exceptions import ValidationError

__all__ = [
    "DESCRIPTORS",
    "NOT_HOLDERS",
    "SCANNING",
    "Registration",
    "Snapshot",
    "collect_young",
    "describe",
    "dict_owners",
    "exchange",
    "internals",
    "is_snapshot",
    "own_objects",
    "record",
    "recording",
]

_CONTAINERS = (list, dict, set, collections.deque)

#: Held by each scan of the heap (``record`` and the stale scan), and while a
#: snapshot is made: the lists and dicts a scan makes refer to
#: what it looks at, and another thread's scan would take them for holders.
#: Never held while user code runs.
SCANNING = threading.RLock()

if sys.platform != "win32":
    # A child forked during another thread's scan would inherit it held.
    os.register_at_fork(
        before=SCANNING.acquire,
        after_in_parent=SCANNING.release,
        after_in_child=SCANNING.release,
    )
# What a class's own attribute dict holds that refers to the class or its methods.
DESCRIPTORS = (
    staticmethod,
    classmethod,
    property,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    HotFunction,
)
# How far the climb from the version's objects to their holders goes.
_DEPTH = 6
# How many objects near version 1's namespace are looked at, at most.
_NEAR_LIMIT = 10_000
_ABSENT = object()
# How long a snapshot waits for a collection another thread runs, at most, and how often it looks.
_WAIT = 5.0
_POLL = 0.0005
# What refers to a version's objects without registering them: a call in
# flight, the library's own proxies, and a memo (``functools.lru_cache``, as
# FastAPI's dependency analysis uses), which changes no behaviour and whose
# entries the cache drops on its own.
NOT_HOLDERS: tuple[type, ...] = (
    types.FrameType,
    HotFunction,
    MEMO,
)
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def describe(obj: object) -> str:
    """A short description of ``obj`` for messages: its repr, bounded.

    An object with the default repr keeps it whole: it is bounded by its
    class's qualified name, which is what identifies the holder (cut, a
    long module name would leave ``<pkg.mod...oks object at 0x...>``).
    """
    if type(obj).__repr__ is object.__repr__:
        return object.__repr__(obj)
    try:
        return _repr.repr(obj)
    except Exception:  # noqa: BLE001  # a broken __repr__ must not hide the report
        return f"<{type(obj).__qualname__} object at {id(obj):#x}>"


@attrs.frozen(eq=False)
class Registration:
    """One entry a version put into a container it does not own."""

    holder: Any
    #: the key in a dict; the index when recorded in a list or deque; None in a set
    key: object
    value: object
    #: found for version 1, whose code ran before tracking: only taken for a
    #: registration when a version seen running registers into the same holder
    guessed: bool = False

    def withdraw(self) -> None:
        """Remove the entry, if the holder still has it."""
        holder, key, value = self.holder, self.key, self.value
        if isinstance(holder, dict):
            if holder.get(key, _ABSENT) is value:
                del holder[key]
        elif isinstance(holder, set):
            holder.discard(value)
        else:
            for index, item in enumerate(holder):
                if item is value:
                    del holder[index]
                    return

    def restore(self) -> None:
        """Put the entry back, unless the holder has it."""
        holder, key, value = self.holder, self.key, self.value
        if isinstance(holder, dict):
            if holder.get(key, _ABSENT) is not value:
                holder[key] = value
        elif isinstance(holder, set):
            holder.add(value)
        elif not any(item is value for item in holder):
            holder.insert(min(key, len(holder)), value)  # type: ignore[call-overload]

    def __str__(self) -> str:
        where = "" if self.key is None else f"[{describe(self.key)}]"
        return f"{describe(self.holder)}{where} holds {describe(self.value)}"


def exchange(leaving: Iterable[Registration], coming: Iterable[Registration]) -> None:
    """Withdraw ``leaving``'s registrations, then restore ``coming``'s. Under LOCK.

    A guessed registration (version 1's) is acted upon only where the other
    side registered into the same holder: then it is the same kind of entry,
    made by the older code (a dict of functions that another module filled
    with version 1's function is no registration, and is left alone). Runs
    Python code (a dict key's ``__eq__``), so it is not part of the atomic
    switch: it follows it at once (see ``binding.flip``).
    """
    leaving, coming = tuple(leaving), tuple(coming)
    for registration in leaving:
        if _confirmed(registration, coming):
            registration.withdraw()
    for registration in coming:
        if _confirmed(registration, leaving):
            registration.restore()


def _confirmed(registration: Registration, other: tuple[Registration, ...]) -> bool:
    if not registration.guessed:
        return True
    holder = registration.holder
    return any(known.holder is holder and not known.guessed for known in other)


def own_objects(namespace: dict[str, Any], module: str) -> list[object]:
    """The functions and classes that the code run in ``namespace`` defined at its top level."""
    found: dict[int, object] = {}

    def add_function(value: object) -> None:
        while True:
            if isinstance(value, HotFunction):
                value = value.__wrapped__
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if type(value) is types.FunctionType and value.__globals__ is namespace:
                found[id(value)] = value
            wrapped = getattr(value, "__wrapped__", None) if callable(value) else None
            if wrapped is None or wrapped is value or id(wrapped) in found:
                return
            value = wrapped

    for key, value in list(namespace.items()):
        if isinstance(value, type):
            if value.__module__ == module and value.__qualname__ == key:
                found[id(value)] = value
                for member in list(value.__dict__.values()):
                    if isinstance(member, property):
                        for accessor in (member.fget, member.fset, member.fdel):
                            add_function(accessor)
                    else:
                        add_function(member)
        elif callable(value):
            add_function(value)
    return list(found.values())


# Ends the list of every snapshot: a list that refers to every object, which
# every scan leaves out (another thread's preparation may hold one while this
# thread scans; a frame may keep one a while after its snapshot let go).
_SNAPSHOT_END = object()


def is_snapshot(obj: object) -> bool:
    """Whether ``obj`` is a list of a ``Snapshot`` (what it read, or what a collection moved)."""
    return type(obj) is list and bool(obj) and obj[-1] is _SNAPSHOT_END


class Snapshot:
    """What was alive before a version's code ran: which objects it created is the rest.

    Cheap whatever the size of the heap: garbage collection is paused while
    the code runs (``_Pause``), so every object it creates stays in the
    youngest generation, and only that generation is listed, before and
    after. A collection that runs anyway (the code or another thread calls
    ``gc.collect()``, or one had begun before the pause) moves objects out of
    it: the collector's hook tells each open snapshot which objects moved
    (``_Collections``), so that ``created`` stays exact. ``intact`` is false
    only if a collection ran unseen (``gc.callbacks`` emptied by other
    code), ``gc.freeze()`` ran, or another thread's collection outlasted the
    wait: then which objects the code made is a guess, as for version 1.
    """

    __slots__ = (
        "__weakref__",
        "_arrivals",
        "_before",
        "_collections",
        "_exact",
        "_frozen",
        "_made",
        "_new",
        "_pause",
    )

    def __init__(self) -> None:
        #: (collections run when one began, what it moved out of the youngest generation)
        self._arrivals: list[tuple[int, list[object]]] = []
        #: what was made, once settled: ids, and the objects (ending with the mark)
        self._new: set[int] | None = None
        self._made: list[object] = []
        self._before: list[object] | None = None
        self._pause: Token | None = _PAUSE.enter(outermost_call(sys._getframe(1)))
        try:
            waited = _COLLECTIONS.open(self)
            # Made while no scan runs: a scan must never see the list before it
            # ends with the mark that tells it is a snapshot (``is_snapshot``).
            with SCANNING:
                # Kept alive until the scan, so that no new object takes an old address.
                self._before, self._collections, self._exact = _COLLECTIONS.read()
                self._before.append(_SNAPSHOT_END)
            self._exact &= waited
            self._frozen = gc.get_freeze_count()
        except BaseException:  # an interrupt while waiting: nothing stays paused or open
            self.release()
            raise

    @property
    def intact(self) -> bool:
        """Whether ``created`` and ``made`` are exact (see the class)."""
        self._settle()
        return self._exact

    def release(self) -> None:
        """Let go of the objects and resume garbage collection (the scan is over)."""
        _COLLECTIONS.close(self)
        self._before = None
        self._arrivals = []
        self._made = []
        token, self._pause = self._pause, None
        if token is not None:
            _PAUSE.leave(token)

    def created(self, obj: object) -> bool:
        """Whether ``obj`` was made after the snapshot (an untracked object counts as made)."""
        return id(obj) in self._settle() or not gc.is_tracked(obj)

    def made(self) -> list[object]:
        """The objects made after the snapshot that the garbage collector tracks, handed over.

        The snapshot lets go of them: the caller's list is then what refers
        to them besides their own referrers, as ``_Region`` counts.
        """
        self._settle()
        made, self._made = self._made, []
        return made[:-1]  # without the mark

    def moved(self, collections: int, objects: list[object]) -> None:
        """A collection begun after ``collections`` others moved ``objects`` out of generation 0.

        ``objects`` ends with the mark of the snapshots' lists. Once settled
        (or released), what moves no longer matters.
        """
        if self._new is None and self._pause is not None:
            self._arrivals.append((collections, objects))

    def _settle(self) -> set[int]:
        """Tell, once, what was made since the snapshot: the youngest generation and what moved.

        Read while no other thread collects: the moves of a collection begun
        when the snapshot was read are told at its end, before which the
        generation may already be empty.
        """
        if self._new is not None:
            return self._new
        young, collections, exact = _COLLECTIONS.read()
        # Collections begun before the snapshot read the generation ended before it.
        moves = [objects for begun, objects in self._arrivals if begun >= self._collections]
        self._exact = (
            self._exact
            and exact
            and collections - self._collections == len(moves)
            and gc.get_freeze_count() == self._frozen
        )
        before = set(map(id, self._before or ()))
        before.add(id(_SNAPSHOT_END))
        made = {id(obj): obj for obj in young if id(obj) not in before}
        made.update((id(obj), obj) for objects in moves for obj in objects if id(obj) not in before)
        self._made = [*made.values(), _SNAPSHOT_END]
        self._new = set(made)
        self._before = None
        self._arrivals = []
        return self._new


class _Collections:
    """The collector's hook (``gc.callbacks``): what each collection moves while snapshots are open.

    A collection of generation ``g`` moves the survivors of generations 0
    to ``g`` into the next one (or keeps them in the oldest). Those that
    arrive there and were not in it, nor in the generations in between,
    before it began, come from the youngest generation: they are told to
    each open snapshot, which keeps those made after it. Reading the
    generations costs a walk of them, done only when a collection runs
    while a snapshot is open, which the pause of collection makes rare;
    what was there is held until the collection ends (garbage among it
    waits for the next collection).

    The hook takes one place in ``gc.callbacks`` when the first snapshot
    opens, and keeps it: while no snapshot is open the place holds
    ``_IDLE``, a built-in that runs no Python code (Python code in a
    collection lets other threads in, in the middle of whatever C call
    allocated). The place is changed, never removed: the collector walks
    the list by index while another thread may open or close a snapshot,
    and must skip no hook of other code. A collection begun before the
    hook was in place is waited for (``open``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: the snapshots told of collections; with those opening, the hook's users.
        #: Weakly: a snapshot whose release an interrupt cut short goes with its
        #: code, and its pause of collection with it.
        self._open: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self._users = 0
        #: true once the hook is in place and no collection begun before it runs
        #: (a flag that waiters poll: no lock that an interrupt could leave held)
        self._ready = True
        #: the thread that runs a collection now, if any (of those the hook saw begin)
        self._collecting: int | None = None
        #: for a collection begun while snapshots were open: them, the count
        #: of collections, the generation it moves objects into, and the
        #: objects there (and between) before it
        self._moving: tuple[list[Snapshot], int, int, list[object]] | None = None
        #: the thread waiting to see a collection of its own begin (``_wait_unseen``)
        self._probe: int | None = None
        self._probed = False

    def open(self, snapshot: Snapshot) -> bool:
        """Tell ``snapshot`` of every collection that begins from now on, until ``close``.

        The first snapshot to open puts the hook in place, then waits for a
        collection begun before, which the hook cannot see end; the others
        wait for that. Returns whether the wait did not run out.
        """
        with self._lock:
            self._users += 1
            first = self._users == 1
            if first:
                self._ready = False
                self._collecting = self._moving = None
                _place(self, _IDLE)
        try:
            if first:
                try:
                    waited = self._wait_unseen()
                finally:
                    self._ready = True
            else:
                waited = self._wait_ready()
        except BaseException:  # an interrupt: the hook's place as it was
            self._leave()
            raise
        with self._lock:
            self._open.add(snapshot)
        return waited

    def _wait_ready(self) -> bool:
        """Wait until the first snapshot's wait has ended; whether it did within ``_WAIT``.

        A wait that runs out ends it for everyone: the first snapshot's
        thread may have been interrupted before it could.
        """
        deadline = time.monotonic() + _WAIT
        while not self._ready:
            if time.monotonic() > deadline:
                self._ready = True
                return False
            time.sleep(_POLL)
        return True

    def _wait_unseen(self) -> bool:
        """Collect generation 0 until the hook sees it begin: no older collection runs then.

        While another thread collects, ``gc.collect()`` returns at once,
        collecting nothing (collections never overlap); one that begins
        after the hook was in place is seen.
        """
        deadline = time.monotonic() + _WAIT
        self._probe, self._probed = threading.get_ident(), False
        try:
            while True:
                gc.collect(0)
                if self._probed:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(_POLL)
        finally:
            self._probe = None

    def close(self, snapshot: Snapshot) -> None:
        """No longer tell ``snapshot`` (open); the last closed, the hook's place holds ``_IDLE``."""
        with self._lock:
            if snapshot not in self._open:
                return
            self._open.discard(snapshot)
        self._leave()

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                _place(_IDLE, self)
                # A collection under way will not tell this hook it ended.
                self._collecting = None
                self._moving = None

    def read(self) -> tuple[list[object], int, bool]:
        """The youngest generation and the count of collections, read while no thread else collects.

        A collection another thread runs (its hooks run Python code: the
        thread can switch in the middle) is waited for, then the generation
        read again; the last value tells whether it was read so (false: the
        wait ran out).
        """
        deadline = time.monotonic() + _WAIT
        while True:
            while self._busy():
                if time.monotonic() > deadline:
                    return young_objects(), _collections(), False
                time.sleep(_POLL)
            young, collections = young_objects(), _collections()
            if not self._busy():
                return young, collections, True

    def _busy(self) -> bool:
        return self._collecting not in (None, threading.get_ident())

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting = thread = threading.get_ident()  # first: see ``read``
            self._probed = self._probed or thread == self._probe
            self._moving = None
            if self._open:
                snapshots, begun = list(self._open), _collections()
                into = min(info["generation"] + 1, 2)
                # Last, and held until the collection ends: no object there
                # can die and leave its address to one a version makes.
                there = tracked_objects(*range(1, into + 1), end=_SNAPSHOT_END)
                self._moving = (snapshots, begun, into, there)
                if not self._users:  # the last snapshot closed meanwhile: no "stop" will come
                    self._moving = None
            return
        try:
            moving, self._moving = self._moving, None
            if moving is not None:  # "stop"
                snapshots, begun, into, there = moving
                kept = set(map(id, there))
                kept.discard(id(_SNAPSHOT_END))  # ``arrived`` ends with it, as ``objects`` does
                del there
                objects = tracked_objects(into, end=_SNAPSHOT_END)
                # One pass of C code; the list ends with the mark, as ``objects`` does.
                unseen = map(not_, map(kept.__contains__, map(id, objects)))
                arrived = list(compress(objects, unseen))
                del objects, unseen
                for snapshot in snapshots:
                    snapshot.moved(begun, arrived)
        finally:
            self._collecting = None

    def rearm(self) -> None:
        """In a forked child: no thread of the parent collects or scans there."""
        self._lock = threading.Lock()
        self._open.clear()
        self._ready = True
        self._probe = None
        self._users = 1
        self._leave()


def _place(new: Callable[[str, dict[str, int]], object], old: object) -> None:
    """Put ``new`` in the place of ``old`` in ``gc.callbacks`` (last if ``old`` is not there)."""
    callbacks = gc.callbacks
    for index, callback in enumerate(callbacks):
        if callback is old:
            callbacks[index] = new
            return
    callbacks.append(new)


# In the hook's place while no snapshot is open: a built-in that takes
# (phase, info) and runs no Python code.
_IDLE = slice


_COLLECTIONS = _Collections()


def collect_young() -> bool:
    """Collect the youngest generation, unless a snapshot is open; whether it did.

    A release leaves garbage in cycles (its preparation ran with collection
    paused), which may still refer to the version it replaced: collected,
    it no longer looks like a holder. Not while another thread's snapshot is
    open: a collection would make its registrations a guess.
    """
    if _PAUSE.paused:
        return False
    gc.collect(0)
    return True


def _collections() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_COLLECTIONS.rearm)


def _first_version_created(
    namespace: dict[str, Any], module_values: set[int]
) -> Callable[[object], bool]:
    """For version 1, which ran before tracking: the objects that look made by it.

    Those that are not containers or module-level values of another
    module, and the containers near the namespace's own values (``_near``).
    """
    near = _near(namespace, module_values)

    def created(obj: object) -> bool:
        if isinstance(obj, _CONTAINERS):
            return id(obj) in near
        return id(obj) not in module_values

    return created


def _near(namespace: dict[str, Any], module_values: set[int]) -> set[int]:
    """The ids of what is found within three steps of the namespace's own values.

    (A ``router`` object's ``routes`` list.) Never going through a module, a
    class, a function, a value that another module holds too, or the
    module's machinery (``__builtins__``, ``__spec__`` ...).
    """
    near: set[int] = set()
    frontier = [value for key, value in list(namespace.items()) if not key.startswith("__")]
    for _ in range(3):
        frontier = [
            value
            for value in frontier
            if id(value) not in near
            and id(value) not in module_values
            and not isinstance(value, (type, types.ModuleType, types.FunctionType, HotFunction))
        ]
        if not frontier or len(near) > _NEAR_LIMIT:
            break
        near.update(map(id, frontier))
        frontier = gc.get_referents(*frontier)
    return near


def dict_owners(dicts: Iterable[object], referrers: list[Any]) -> dict[int, object]:
    """Dict id -> the object among ``referrers`` it belongs to, for those of ``dicts`` that do.

    A dict belongs to the object (or class) whose ``__dict__`` it is, or to
    the memo it stores. ``referrers`` include the referrers of ``dicts``: the scans ask
    for them together with the next level's, which saves a scan per level.
    """
    wanted = {id(d) for d in dicts}
    owners: dict[int, object] = {}
    if not wanted:
        return owners
    for candidate in referrers:
        if isinstance(candidate, NOT_HOLDERS):
            # A memo's storage: it stands for the memo, which is no holder.
            owners.update(
                (id(d), candidate) for d in gc.get_referents(candidate) if id(d) in wanted
            )
            continue
        if isinstance(candidate, type):
            # A class's attribute dict stands for the class.
            owners.update(
                (id(d), candidate) for d in gc.get_referents(candidate.__dict__) if id(d) in wanted
            )
            continue
        if isinstance(candidate, (*_CONTAINERS, tuple, types.FrameType)) or is_module(candidate):
            continue
        # Only an object that refers to one of the dicts: reading ``__dict__``
        # of one whose attributes CPython 3.11+ keeps inline, without a dict,
        # makes it one, and it then refers to its attributes through it,
        # no longer directly, under the scan's feet.
        if wanted.isdisjoint(map(id, gc.get_referents(candidate))):
            continue
        try:
            own = object.__getattribute__(candidate, "__dict__")
        except Exception:  # noqa: BLE001, S112  # no instance dict, or a hook that refuses
            continue
        if id(own) in wanted:
            owners[id(own)] = candidate
    return owners


def _entries(holder: object, value: object, *, guessed: bool) -> list[Registration]:
    """The entries of the container ``holder`` that are ``value`` (as key or value)."""
    if isinstance(holder, dict):
        return [
            Registration(holder, key, item, guessed)
            for key, item in list(holder.items())
            if item is value or key is value
        ]
    if isinstance(holder, set):
        return [Registration(holder, None, value, guessed)] if value in holder else []
    if isinstance(holder, (list, collections.deque)):
        return [
            Registration(holder, i, item, guessed) for i, item in enumerate(holder) if item is value
        ]
    return []


def record(
    namespace: dict[str, Any],
    module: str,
    snapshot: Snapshot | None,
    inherited: Collection[int] = (),
) -> tuple[tuple[Registration, ...], tuple[tuple[object, list[object]], ...]]:
    """The registrations the code run in ``namespace`` made, and the ones it cannot withdraw.

    ``snapshot`` was taken before that code ran; ``None`` for version 1,
    whose code ran before tracking. ``inherited``: the ids of the running
    version's values, which the new namespace may hold too (a preserved
    class): not the new code's own. Returns the withdrawable registrations
    and, for each holder that is not a container, the holder and what of the
    version it holds.
    """
    with SCANNING:
        return _record(namespace, module, snapshot, inherited)


def _record(
    namespace: dict[str, Any],
    module: str,
    snapshot: Snapshot | None,
    inherited: Collection[int],
) -> tuple[tuple[Registration, ...], tuple[tuple[object, list[object]], ...]]:
    # What the new code took over from the running version (a preserved
    # class, say) is not its own.
    seeds = [seed for seed in own_objects(namespace, module) if id(seed) not in inherited]
    frontier = unexplained(seeds, _version_internals(namespace, seeds))
    # Read once: a collection another thread runs during the scan must not
    # make one part of it exact and the next a guess.
    exact = snapshot if snapshot is not None and snapshot.intact else None
    # Before the scan's own objects exist: the objects made since the
    # snapshot are the version's.
    walk = _referrers(exact, [namespace, *internals(seeds), seeds, frontier]) if frontier else None
    weak = _weak_references(seeds)
    if walk is None and not weak:
        return (), ()
    modules = [vars(m) for m in list(sys.modules.values()) if is_module(m)]
    module_dicts = {id(d) for d in modules}
    created = (
        exact.created
        if exact is not None
        else _first_version_created(
            namespace, {id(v) for d in modules if d is not namespace for v in list(d.values())}
        )
    )
    certain = _certain(exact, snapshot, seeds)
    owned: dict[int, object] = {id(seed): seed for seed in seeds}
    skip = {id(namespace), id(owned), id(seeds), id(modules), id(weak)}
    scan = _Record(namespace, owned, skip, module_dicts, created, certain=certain)
    scan.add(_weak_entries(weak, created, certain))
    if walk is None:
        return tuple(scan.registrations.values()), ()
    referrers_of, bookkeeping = walk
    skip.update(bookkeeping)
    skip.update(map(id, internals(seeds)))
    pending: list[tuple[dict[str, Any], list[object]]] = []
    # (Dicts holding the version's objects wait in ``pending``: an instance's
    # __dict__ stands for the instance, found among the next level's
    # referrers; any other dict is a holder.)
    for depth in range(_DEPTH + 1):
        # The last level only looks for the owners of the dicts pending: what
        # the level before climbed is not followed, and needs no walk of its own.
        if not pending and (not frontier or depth == _DEPTH):
            break
        # Every list, tuple and dict made here refers to what it is about: each
        # is skipped by id, so that the scan never finds its own bookkeeping.
        args = (*frontier, *(d for d, _ in pending))
        referrers = referrers_of(args)
        skip.update((id(args), id(referrers), id(frontier), id(seeds)))
        owners = dict_owners((d for d, _ in pending), referrers)
        climbed: list[object] = []
        skip.update((id(owners), id(climbed)))
        for found, held in pending:
            scan.reach(owners.get(id(found), found), found, held, climbed)
        pending_ids = {id(d) for d, _ in pending}
        pending = []
        skip.add(id(pending))
        if depth == _DEPTH:
            break
        for referrer in referrers:
            if (
                id(referrer) in skip
                or id(referrer) in owned
                or id(referrer) in pending_ids
                or is_snapshot(referrer)
            ):
                continue
            held = [value for value in gc.get_referents(referrer) if id(value) in owned]
            if not held:
                continue
            if type(referrer) is dict and id(referrer) not in module_dicts:
                entry = (referrer, held)
                skip.update((id(entry), id(held)))
                pending.append(entry)
            else:
                scan.reach(referrer, referrer, held, climbed)
        frontier = climbed
    return tuple(scan.registrations.values()), tuple(scan.problems.values())


def _weak_references(seeds: list[object]) -> list[weakref.ref[Any]]:
    """The weak references to the version's functions: made after them, by its code.

    A registry of weak references (``weakref.WeakSet``, ``WeakValueDictionary``,
    blinker's receivers) holds none to the function itself, so the climb
    from the function never meets it. (Those to its classes are left out:
    the interpreter keeps one in each base class's list of subclasses.)
    """
    return [
        ref
        for seed in seeds
        if type(seed) is types.FunctionType
        for ref in weakref.getweakrefs(seed)
    ]


def _weak_entries(
    weak: list[weakref.ref[Any]],
    created: Callable[[object], bool],
    certain: Callable[[object], bool] | None,
) -> list[Registration]:
    """The entries of the containers that existed before which hold one of ``weak``.

    Found one level up only: a weak reference kept anywhere else (an
    attribute, a container the version made) is the holder's business,
    and refuses nothing.
    """
    if not weak:
        return []
    guessed = {id(ref): certain is not None and not certain(ref()) for ref in weak}
    found: list[Registration] = []
    for holder in gc.get_referrers(*weak):
        if holder is weak or not isinstance(holder, _CONTAINERS) or created(holder):
            continue
        for ref in {id(r): r for r in gc.get_referents(holder) if id(r) in guessed}.values():
            found += _entries(holder, ref, guessed=guessed[id(ref)])
    return found


def _certain(
    exact: Snapshot | None, snapshot: Snapshot | None, seeds: list[object]
) -> Callable[[object], bool] | None:
    """Which values entered in a container make an entry that is certainly a registration.

    None when the snapshot is exact: every one. Otherwise the entries are a
    guess, except, for a new version's code (a snapshot, though not exact),
    those of its functions and classes (``seeds``: the new version's alone)
    and of what the snapshot saw it make. Version 1's functions may have
    been put anywhere by other modules since it ran.
    """
    if exact is not None:
        return None
    if snapshot is None:
        return lambda value: False
    own = set(map(id, seeds))
    created = snapshot.created
    return lambda value: id(value) in own or created(value)


def _referrers(
    exact: Snapshot | None, known: list[object]
) -> tuple[Callable[[tuple[object, ...]], list[Any]], tuple[int, ...]]:
    """How the climb finds what refers to the objects of a level, and the ids of its bookkeeping.

    From the objects the version made (``_Region``) when a snapshot tells
    them exactly (``exact``); otherwise by a walk of the heap at each level.
    """
    if exact is not None:
        region = _Region(exact.made(), known)
        return region.referrers, region.bookkeeping()
    return _heap_referrers, ()


def _heap_referrers(objects: tuple[object, ...]) -> list[Any]:
    return gc.get_referrers(*objects)


class _Region:
    """The objects a version's code made, and what refers to them, read once for the whole climb.

    ``gc.get_referrers`` walks the whole heap at each call, holding the GIL
    all along: once per level of the climb, that is most of a swap's time,
    and a pause of the threads serving requests. Instead, the references
    among the objects the code made are read from the objects themselves
    (``gc.get_referents``), and each object's reference count tells whether
    anything else refers to it (``unexplained``): only for those does a
    level of the climb walk the heap. ``made``: the objects the code made
    (exact: the snapshot is intact), held by that list alone; ``known``:
    other objects whose references the climb skips (the namespace, the
    version's internals) and the caller's lists of the version's objects.

    The collector's lists are read without tuples (``heap.py``), so the
    tuples the code made (a closure, a route's dependencies) are found from
    the made objects that hold them (``_held_tuples``): otherwise every
    object in a closure would look held from outside and take a walk.
    """

    __slots__ = ("_ids", "_known", "_made", "_memos", "_objects", "_outside", "_reverse")

    def __init__(self, made: list[object], known: list[object]) -> None:
        self._ids = ids = set(map(id, made))
        made += _held_tuples(made, ids)
        others = list({id(obj): obj for obj in known if id(obj) not in ids}.values())
        learn_memos(made)
        #: id -> how many references something else holds to that made object
        self._outside = excess(made, others, among=True)
        self._known = set(map(id, others))
        del others
        #: what memos hold, counted when first needed (``memo_references``)
        self._memos: collections.Counter[int] | None = None
        # Kept until the scan ends, so that no id of the record is taken by a new object.
        self._made = made
        #: id of a made object -> the ids of the made objects that refer to it
        self._reverse: dict[int, list[int]] = {}
        #: the made objects that refer to another, by id
        self._objects: dict[int, object] = {}
        inside = ids.__contains__
        for obj in made:
            referents = list(map(id, gc.get_referents(obj)))
            # Filtered in C: a made dict or list may hold thousands of objects.
            found = list(compress(referents, map(inside, referents)))
            if found:
                self._objects[id(obj)] = obj
                for referent in found:
                    self._reverse.setdefault(referent, []).append(id(obj))

    def bookkeeping(self) -> tuple[int, ...]:
        """The ids of the containers of this record, which refer to the objects it is about."""
        return (id(self), id(self._made), id(self._objects))

    def referrers(self, objects: tuple[object, ...]) -> list[Any]:
        """What refers to ``objects``, as ``gc.get_referrers(*objects)`` would tell."""
        elsewhere = tuple(obj for obj in objects if self._elsewhere(obj))
        found: dict[int, object] = {}
        if elsewhere:
            found.update(
                (id(referrer), referrer)
                for referrer in gc.get_referrers(*elsewhere)
                if referrer is not elsewhere
            )
        for obj in objects:
            found.update((key, self._objects[key]) for key in self._reverse.get(id(obj), ()))
        return list(found.values())

    def _elsewhere(self, obj: object) -> bool:
        """Whether what refers to ``obj`` must be looked for in the heap.

        So it must for an object that was not made, or that something else
        refers to, unless only memos do (no holders: the climb would stop there).
        """
        if id(obj) not in self._ids:
            return True
        others = self._outside.get(id(obj))
        if others is None:
            return False
        if self._memos is None:
            self._memos = memo_references(self._ids | self._known, self._ids)
        return self._memos[id(obj)] != others


def _held_tuples(made: list[object], ids: set[int]) -> list[object]:
    """The tuples that ``made`` objects hold and that hold made objects (their ids join ``ids``).

    Such a tuple was made after what it holds (tuples are immutable): by the
    version's code too. A tuple another thread is still filling is held by
    nothing else, so none is found here.
    """
    found: list[object] = []
    level = made
    while level:
        level = [
            obj
            for obj in {id(t): t for t in gc.get_referents(*level) if type(t) is tuple}.values()
            if id(obj) not in ids and any(id(item) in ids for item in gc.get_referents(obj))
        ]
        ids.update(map(id, level))
        found += level
    return found


class _Record:
    """What ``record`` found so far, and how it classifies each holder reached."""

    def __init__(
        self,
        namespace: dict[str, Any],
        owned: dict[int, object],
        skip: set[int],
        module_dicts: set[int],
        created: Callable[[object], bool],
        *,
        certain: Callable[[object], bool] | None,
    ) -> None:
        self.namespace = namespace
        self.owned = owned
        self.skip = skip
        self.module_dicts = module_dicts
        self.created = created
        self.certain = certain
        self.registrations: dict[tuple[int, object], Registration] = {}
        self.problems: dict[int, tuple[object, list[object]]] = {}
        skip.update((id(self), id(self.registrations), id(self.problems)))

    def add(self, registrations: Iterable[Registration]) -> None:
        """Note ``registrations`` (each entry once)."""
        for registration in registrations:
            self.registrations.setdefault((id(registration.holder), registration.key), registration)

    def reach(
        self, holder: object, referrer: object, held: list[object], climbed: list[object]
    ) -> None:
        """``holder`` (through ``referrer``, its instance dict or itself) refers to ``held``."""
        if (
            id(holder) in self.owned
            or id(holder) in self.skip
            or isinstance(holder, (*NOT_HOLDERS, Registration))
        ):
            return
        if _is_type_reference(holder, held):
            return
        if _made_by_version(holder, referrer, self.created):
            self.owned[id(holder)] = holder
            climbed.append(holder)
        elif holder is referrer and isinstance(holder, _CONTAINERS):
            if (
                type(holder) is dict
                and id(holder) not in self.module_dicts
                and any(v is holder for v in list(self.namespace.values()))
            ):
                return  # the version's own data, e.g. HANDLERS = {"a": f}
            for value in held:
                guessed = self.certain is not None and not self.certain(value)
                self.add(_entries(holder, value, guessed=guessed))
        else:
            problem = self.problems[id(holder)] = (holder, held)
            self.skip.update((id(problem), id(held)))


def _version_internals(namespace: dict[str, Any], seeds: list[object]) -> list[object]:
    """What refers to a version's functions and classes as part of the version itself."""
    known: list[object] = [namespace, *internals(seeds)]
    for value in list(namespace.values()):
        if isinstance(value, (HotFunction, *NOT_HOLDERS)):
            known.append(value)
            known.append(getattr(value, "__dict__", None))  # a memo's __wrapped__
    for seed in seeds:
        if isinstance(seed, type):
            known.extend(
                member for member in list(seed.__dict__.values()) if isinstance(member, DESCRIPTORS)
            )
            known.extend(value for value in list(namespace.values()) if _subclass_of(value, seed))
    return known


def _subclass_of(value: object, cls: type) -> bool:
    """A class other than ``cls`` among whose bases ``cls`` is (its ``__mro__`` refers to it)."""
    return isinstance(value, type) and value is not cls and cls in value.__mro__


def internals(seeds: list[object]) -> Iterator[object]:
    """What the version's functions and classes are made of, which refers to them in turn.

    A class's attribute dict and ``__mro__``, a method's ``__class__`` cell and
    its closure, a function's defaults: left out of the climb, which would
    otherwise take one more scan of the heap for each to find its owner.
    """
    for seed in seeds:
        if isinstance(seed, type):
            yield from gc.get_referents(seed.__dict__)  # the dict behind the mappingproxy
            yield seed.__mro__
            yield seed.__bases__
        elif isinstance(seed, types.FunctionType):
            closure = seed.__closure__ or ()
            yield closure
            yield from closure
            yield seed.__defaults__
            yield seed.__kwdefaults__
            yield seed.__dict__  # functools.wraps puts __wrapped__ there


def _made_by_version(holder: object, referrer: object, created: Callable[[object], bool]) -> bool:
    """Whether ``holder`` was made by the version, so that its own holders are looked for.

    A tuple that refers to the version's objects was made after them (tuples
    are immutable). A plain dict never counts (see the module docstring). A
    class counts when the code made it: ``attrs.define`` replaces the class
    its statement made, which keeps the version's methods until collected.
    """
    if isinstance(holder, tuple):
        return True
    if holder is referrer and type(holder) is dict:
        return False
    return created(holder)


def _is_type_reference(holder: object, held: list[object]) -> bool:
    """Whether ``holder`` refers to the version's objects only as its class or base classes.

    An instance refers to its class, a subclass defined elsewhere to its bases:
    neither is a registration.
    """
    if not held:
        return True
    if isinstance(holder, type):
        mro, bases = holder.__mro__, holder.__bases__
        return all(value in mro or value is mro or value is bases for value in held)
    kind = type(holder)
    return (
        all(value is kind for value in held)
        and sum(value is kind for value in gc.get_referents(holder)) <= 1
    )


@contextlib.contextmanager
def recording(
    module: str,
    namespace: dict[str, Any],
    base: Iterable[Registration],
    inherited: Collection[int] = (),
) -> Iterator[list[Registration]]:
    """Scope of a new version's code run in ``namespace``: the registrations it made.

    The list yielded is filled, when the block ends, with the registrations
    the code made. If the block raises, or something it registered cannot
    be withdrawn (ValidationError naming it), they are all withdrawn and
    ``base``'s (the current version's, which the new code may have
    overwritten) restored: nothing of the refused version stays in effect.
    ``inherited`` as for ``record``.
    """
    snapshot = Snapshot()
    made: list[Registration] = []
    try:
        try:
            yield made
        except BaseException:
            found, _ = record(namespace, module, snapshot, inherited)
            with LOCK:
                exchange(found, base)
            raise
        found, problems = record(namespace, module, snapshot, inherited)
    finally:
        snapshot.release()
    if problems:
        with LOCK:
            exchange(found, base)
        listed = "; ".join(
            f"{describe(holder)} holds {', '.join(map(describe, held))}"
            for holder, held in problems
        )
        raise ValidationError(
            f"the new version of {module} registered what cannot be withdrawn "
            f"(only entries of a list, dict, set or deque can): {listed}",
            module=module,
        )
    made.extend(found)
