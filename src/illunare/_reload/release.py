"""Releases: several modules prepared together and switched in one flip.

A release executes the new source of each of its modules in a fresh
namespace, as a swap of one module does (``courteous``ly: threads serving
requests meanwhile wait little for the GIL). While it prepares, an import
statement that the new code runs (``from pkg.b import x``, ``from . import
b``, ``import pkg.b as b``) finds the *new* version of a module of the same
release instead of the running one: ``builtins.__import__`` is wrapped while
some release prepares, and the wrapper consults a context variable, so only
the preparing thread sees the candidates and other threads (or the same
thread outside a preparation) import as usual. After every module has run,
``rebind`` makes the release's namespaces refer to each other's stable
objects (proxies, stable classes, the real module objects) rather than to
the raw new ones, so that nothing keeps pointing at a version after a later
swap or rollback.

Participants (``Participant``) are told about each release: they can add
modules to it, refuse it, and learn when it switched.

The pipeline's steps are here too (``HotReloader`` drives them, holding
each module's preparation lock): ``execute`` runs and checks the new
sources without the lock, ``bind`` and ``commit`` (under it) bind the
release's namespaces and switch them in one ``flip_many`` (or, for a
rollout, ``record`` the new versions and split the calls between them:
``illunare._rollout.switching``).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import contextvars
import logging
import os
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from illunare._reload.binding import Absorbed, absorb, flip_many, plan, stable_classes
from illunare._reload.courtesy import courteous
from illunare._reload.enums import stable_member
from illunare._reload.locking import LOCK
from illunare._reload.prepare import (
    Check,
    Prepared,
    Undo,
    candidate_module,
    prepare,
    run_checks,
    source_filename,
)
from illunare._reload.source import SourceText
from illunare._reload.versions import CodeVersion, ModuleVersion, TrackedModule
from illunare.exceptions import LoadError, ValidationError

if TYPE_CHECKING:
    from illunare._rollout.split import RequestSplit

__all__ = [
    "Change",
    "Entry",
    "Participant",
    "Siblings",
    "Splitting",
    "bind",
    "commit",
    "ensure_current",
    "execute",
    "flip_back",
    "imports_of",
    "new_versions",
    "notify_aborted",
    "notify_committed",
    "preparation_order",
    "rebind",
    "record",
    "release_imports",
    "top_level_imports",
]

logger = logging.getLogger("illunare")


class Participant(Protocol):
    """Something built from tracked modules that must follow each release (a web app, say).

    Registered with ``HotReloader._add_participant`` (held until
    ``_remove_participant``) and called for every release: ``swap``,
    ``swap_many``, ``rollback``, ``rollback_many`` and the watcher's, from
    the thread making the release. Releases with no module in common may
    run at once in different threads, and so may these calls.
    """

    def dependents(self, changed: frozenset[str]) -> frozenset[str]:
        """Tracked modules to execute anew in the same release, from their current source.

        Called without the library's lock at the start of every swap
        release, with the modules whose source changed.
        """

    def prepare(self, namespaces: Mapping[str, dict[str, Any]]) -> None:
        """Every module of the release has executed and passed the checks; nothing is live yet.

        ``namespaces``: module name -> the namespace that will be current
        after the flip. For a swap, called in the releasing thread before
        those namespaces are bound to the stable objects and with the
        release's imports in effect, so that what it builds from them (an app
        factory) runs the new code throughout. Called without the lock;
        raising refuses the release (``ValidationError``, the error as its
        ``__cause__``) and changes nothing.
        """

    def abort(self, namespaces: Mapping[str, dict[str, Any]]) -> None:
        """``prepare()`` succeeded but the release did not switch."""

    def committed(
        self, namespaces: Mapping[str, dict[str, Any]], previous: Mapping[str, dict[str, Any]]
    ) -> None:
        """After the flip, without the lock: ``namespaces`` are current, ``previous`` were."""

    def kept(self, namespace: Mapping[str, Any]) -> Iterable[object]:
        """What the participant keeps on purpose that may hold the code of ``namespace``.

        ``namespace`` is that of a version just replaced. Apps kept for a
        rollback, requests in flight on them: what these refer to is not
        reported as a stale reference. Leaving out what cannot hold that
        version's code spares the scan following it (what is left out is
        never taken for kept, so it can only make the scan report more).
        """


class Splitting(Participant, Protocol):
    """A participant that takes part in rollouts (``split`` is optional for a participant)."""

    def split(
        self,
        namespaces: Mapping[str, dict[str, Any]],
        previous: Mapping[str, dict[str, Any]],
        requests: RequestSplit,
    ) -> Sequence[tuple[object, str, object]]:
        """A rollout of the release starts: the attributes to set while both versions serve.

        ``namespaces``: the candidates' (module name -> namespace);
        ``previous``: the versions serving until now. Returns (owner, name,
        value) triples: the switch that starts the split sets each, the one
        that ends it (revert or promotion) sets each back to ``None``. Called
        under the library's lock, before anything is live: it must be quick
        and take no lock of its own; raising refuses the release
        (``ValidationError``).
        """


# Import graph ---------------------------------------------------------------------


def _top_level(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements a module runs when it executes (not those of def or class bodies)."""
    for statement in body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            yield statement
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        else:
            for field in ("body", "orelse", "finalbody"):
                block = getattr(statement, field, None)
                if isinstance(block, list):
                    yield from _top_level(item for item in block if isinstance(item, ast.stmt))
            for handler in getattr(statement, "handlers", ()):
                yield from _top_level(handler.body)
            for case in getattr(statement, "cases", ()):
                yield from _top_level(case.body)


def _with_parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def top_level_imports(text: str, module: str, is_package: bool) -> frozenset[str]:
    """The module names that the top-level code of ``text`` imports (relative forms resolved).

    ``from pkg import sub`` gives ``pkg`` and ``pkg.sub`` (the caller knows
    which names are modules). Source that does not parse imports nothing.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                names.update(_with_parents(alias.name))
            continue
        if statement.level:
            parts = package.split(".") if package else []
            if statement.level > len(parts):
                continue  # beyond the top-level package: the import would fail
            base_parts = parts[: len(parts) - (statement.level - 1)]
            if statement.module:
                base_parts.append(statement.module)
            base = ".".join(base_parts)
        else:
            base = statement.module or ""
        if not base:
            continue
        names.update(_with_parents(base))
        names.update(f"{base}.{alias.name}" for alias in statement.names if alias.name != "*")
    return frozenset(names)


def preparation_order(imports: Mapping[str, Iterable[str]]) -> list[str]:
    """The modules of ``imports`` (name -> what it imports), each after those it imports.

    Otherwise in the mapping's order. Modules that import each other
    (directly or not) form a cycle, executed together in the mapping's
    order, after whatever its modules import outside it.
    """
    wanted = {
        name: [other for other in imports if other != name and other in set(imported)]
        for name, imported in imports.items()
    }
    cycles = {
        name: [
            other
            for other in imports
            if other == name or (_reaches(wanted, name, other) and _reaches(wanted, other, name))
        ]
        for name in imports
    }
    order: list[str] = []
    for name in imports:
        _place(name, wanted, cycles, order)
    return order


def _reaches(wanted: Mapping[str, list[str]], start: str, goal: str) -> bool:
    """Whether ``start`` imports ``goal``, directly or through other modules."""
    seen = {start}
    pending = [start]
    while pending:
        for other in wanted[pending.pop()]:
            if other == goal:
                return True
            if other not in seen:
                seen.add(other)
                pending.append(other)
    return False


def _place(
    name: str,
    wanted: Mapping[str, list[str]],
    cycles: Mapping[str, list[str]],
    order: list[str],
) -> None:
    if name in order:
        return
    cycle = cycles[name]
    for member in cycle:
        for other in wanted[member]:
            if other not in cycle:
                _place(other, wanted, cycles, order)
    order.extend(cycle)


# Sibling imports ------------------------------------------------------------------


@attrs.define(eq=False)
class Siblings:
    """What the modules of one release get of each other while it prepares."""

    #: module name -> the new version's module object, once it has executed:
    #: what ``import`` finds in the preparing thread
    candidates: dict[str, types.ModuleType] = attrs.Factory(dict)
    #: id -> (an object the imports handed out in place of a module, that real module)
    stand_ins: dict[int, tuple[types.ModuleType, types.ModuleType]] = attrs.Factory(dict)
    #: each new class whose contents will move into a stable class -> that class
    classes: dict[type, type] = attrs.Factory(dict)

    def add(self, name: str, candidate: types.ModuleType, real: types.ModuleType) -> None:
        """From now on, importing ``name`` gives ``candidate`` (standing in for ``real``)."""
        self.candidates[name] = candidate
        self.stand_ins[id(candidate)] = (candidate, real)

    def resolve(self, module: object) -> object:
        """What an import that returned ``module`` gives in this release."""
        name = getattr(module, "__name__", None) if isinstance(module, types.ModuleType) else None
        if not isinstance(name, str) or not self.candidates:
            return module
        base = self.candidates.get(name, module)
        prefix = name + "."
        children = {
            candidate[len(prefix) :].partition(".")[0]
            for candidate in self.candidates
            if candidate.startswith(prefix)
        }
        if not children:
            return base
        # A package one of whose submodules is in the release: a view of it
        # whose attributes for those submodules give their new versions.
        view = types.ModuleType(name)
        vars(view).update(vars(base))
        for child in children:
            current = getattr(base, child, None)
            if isinstance(current, types.ModuleType):
                setattr(view, child, self.resolve(current))
            elif prefix + child in self.candidates:
                setattr(view, child, self.candidates[prefix + child])
        assert isinstance(module, types.ModuleType)  # name is a str
        self.stand_ins[id(view)] = (view, module)
        return view


_release: contextvars.ContextVar[Siblings | None] = contextvars.ContextVar(
    "illunare_release", default=None
)

# The ``builtins.__import__`` the wrapper delegates to, and how many releases
# prepare (both under LOCK). The wrapper is removed when none does, unless
# someone wrapped it in turn meanwhile: then it stays in their chain (and is
# not wrapped again).
_wrapped: list[Callable[..., Any]] = []
_users = 0
_chained = False


def _forget_other_threads() -> None:
    # In a forked child, the releases other threads of the parent were
    # preparing never finish: the wrapper goes, unless this thread prepares one.
    global _users  # noqa: PLW0603  # one wrapper for the process
    if _users and _release.get() is None:
        _users = 0
        if builtins.__import__ is _release_import:
            builtins.__import__ = _wrapped[0]


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_other_threads)


def _release_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> Any:
    """``__import__`` that gives a preparing release's new modules to the preparing thread."""
    module = _wrapped[0](name, globals, locals, fromlist, level)
    release = _release.get()
    return module if release is None else release.resolve(module)


@contextlib.contextmanager
def release_imports(release: Siblings) -> Iterator[None]:
    """Within the block, imports in this context see ``release``'s candidates."""
    global _users, _chained  # noqa: PLW0603  # one wrapper for the process
    with LOCK:
        if _users == 0 and not _chained and builtins.__import__ is not _release_import:
            _wrapped[:] = [builtins.__import__]
            builtins.__import__ = _release_import
        _users += 1
    token = _release.set(release)
    try:
        yield
    finally:
        _release.reset(token)
        with LOCK:
            _users -= 1
            if _users == 0 and not _chained:
                if builtins.__import__ is _release_import:
                    builtins.__import__ = _wrapped[0]
                else:
                    _chained = True


# Release-wide binding -------------------------------------------------------------


def rebind(
    namespaces: Iterable[dict[str, Any]],
    stable: Mapping[int, tuple[object, object]],
    classes: Mapping[type, type],
) -> None:
    """Make the release's namespaces refer to each other's stable objects.

    ``stable``: id of a raw new object (a function, a class, a stand-in
    module) -> (that object, what stands for it), replaced wherever a
    namespace binds it. ``classes``: new class -> its stable class: a class
    first seen in this release inherits from the stable class instead, and
    an instance of the new class becomes one of the stable class.

    Raises:
        ValidationError: a class cannot take the stable classes as bases.

    """
    for namespace in namespaces:
        replaced = {}
        for key, value in list(namespace.items()):
            entry = stable.get(id(value))
            if entry is not None and entry[0] is value:
                replaced[key] = entry[1]
            elif isinstance(value, type):
                _inherit_stable(value, classes, namespace.get("__name__"))
            elif type(value) in classes:
                with contextlib.suppress(TypeError):  # as absorb() does for its own classes
                    value.__class__ = classes[type(value)]
        namespace.update(replaced)


def _inherit_stable(cls: type, classes: Mapping[type, type], module: object) -> None:
    bases = tuple(classes.get(base, base) for base in cls.__bases__)
    if bases == cls.__bases__:
        return
    try:
        cls.__bases__ = bases
    except TypeError as error:
        raise ValidationError(
            f"class {cls.__qualname__} of {module} cannot inherit from the classes "
            f"it subclasses in the running program: {error}",
            module=module if isinstance(module, str) else None,
        ) from error


# The pipeline ---------------------------------------------------------------------

#: A module's part of a release: (tracked module, the version it replaces,
#: the prepared new one, its reason).
Entry = tuple[TrackedModule, ModuleVersion, Prepared, str]


def execute(
    tracked: Mapping[str, TrackedModule],
    bases: Mapping[str, ModuleVersion],
    work: Mapping[str, tuple[SourceText, str]],
    checks: Sequence[Check],
    *,
    undo: Undo,
    siblings: Siblings,
) -> list[Entry]:
    """Execute each module of the release (each after those it imports), then check them."""
    several = len(work) > 1
    order = _execution_order(work, bases) if several else list(work)
    entries: list[Entry] = []
    with (
        courteous(),
        release_imports(siblings) if several else contextlib.nullcontext(),
    ):
        for name in order:
            text, reason = work[name]
            with LOCK:
                known = tracked[name].history.find(text.sha256)
            filename = source_filename(name, text)
            code = known.code if known is not None else None
            compiled = code if code is not None and code.co_filename == filename else None
            undo.remember(text, filename, lines_kept=known is not None)
            prepared = prepare(
                tracked[name],
                bases[name],
                text,
                filename,
                compiled=compiled,
                released=siblings.classes,
            )
            if several:
                candidate = candidate_module(name, prepared.namespace)
                siblings.add(name, candidate, tracked[name].module)
                siblings.classes.update(stable_classes(tracked[name], prepared.namespace))
            undo.registrations.append((prepared.registrations, tracked[name]))
            entries.append((tracked[name], bases[name], prepared, reason))
        if checks:
            for module, _, prepared, _ in entries:
                candidate = siblings.candidates.get(module.name) or candidate_module(
                    module.name, prepared.namespace
                )
                run_checks(
                    candidate,
                    checks,
                    what=f"the new version of {module.name}",
                    module=module.name,
                )
    return entries


def _execution_order(
    work: Mapping[str, tuple[SourceText, str]], bases: Mapping[str, ModuleVersion]
) -> list[str]:
    """The modules of a release of several, each after those it imports.

    Otherwise, and within a cycle (an app module importing its views at the
    bottom, the views importing its app), in the order the program first
    started importing them, as a cold start would run them: the reverse of
    ``sys.modules``' order, where an import puts a module back at the end
    when it has finished executing.
    """
    first = {name: -position for position, name in enumerate(list(sys.modules))}
    return preparation_order(
        {
            name: top_level_imports(work[name][0].text, name, "__path__" in bases[name].namespace)
            for name in sorted(work, key=lambda name: first.get(name, 1))
        }
    )


def imports_of(version: ModuleVersion) -> frozenset[str]:
    """The modules the top-level code of ``version`` imports (none if its source is unknown)."""
    imports = version.imports
    if imports is None:
        source = version.source
        imports = version.imports = (
            frozenset()
            if source is None
            else top_level_imports(
                source.text, version.info.module, "__path__" in version.namespace
            )
        )
    return imports


def ensure_current(entries: Iterable[Entry]) -> None:
    """LoadError unless every module of the release still runs the version it replaces."""
    for tracked, base, _, _ in entries:
        if tracked.current is not base:
            raise LoadError(
                f"{tracked.name} was rolled back or tracked anew while its new source "
                "was being prepared; nothing changed",
                module=tracked.name,
            )


def bind(entries: Sequence[Entry], siblings: Siblings) -> list[Absorbed]:
    """Bind each prepared namespace to its module's stable objects, and to each other's. Under LOCK.

    A name bound to a raw new function or class of another module of the
    release (or to a module object the release's imports handed out) gets
    that module's stable proxy, class or module object.
    """
    if len(entries) == 1:
        tracked, _, prepared, _ = entries[0]
        return [absorb(tracked, prepared.namespace, prepared.hot_names)]
    stable: dict[int, tuple[object, object]] = dict(siblings.stand_ins)
    bound = []
    for tracked, _, prepared, _ in entries:
        namespace = prepared.namespace
        raw = dict(namespace)
        bound.append(absorb(tracked, namespace, prepared.hot_names))
        for key, value in raw.items():
            replacement = namespace.get(key, value)
            if replacement is not value:
                stable[id(value)] = (value, replacement)
    rebind((prepared.namespace for _, _, prepared, _ in entries), stable, siblings.classes)
    return bound


#: A module's new version and the names whose live value it takes when it
#: goes live (``flip_many``'s ``carry``).
Change = tuple[TrackedModule, ModuleVersion, list[str]]


def new_versions(entries: Sequence[Entry], bound: Sequence[Absorbed]) -> list[Change]:
    """The release's new versions, numbered but not recorded yet. Under LOCK until ``record``."""
    changes: list[Change] = []
    for (tracked, base, prepared, reason), (targets, classes, husks) in zip(
        entries, bound, strict=True
    ):
        info = CodeVersion(
            module=tracked.name,
            number=tracked.history.next_number,
            sha256=prepared.source.sha256,
            created_at=time.time(),
            reason=reason,
            parent=base.info.number,
        )
        namespace = prepared.namespace
        version = ModuleVersion(
            info=info,
            namespace=namespace,
            targets=targets,
            classes=classes,
            preserve=prepared.preserve,
            code=prepared.code,
            class_data=prepared.class_data,
            lines_key=prepared.lines_key,
            source=prepared.source,
            husks=husks,
            # A new member of a kept enum that the code registered is, like
            # every other, the stable member now (``binding._adopt_members``).
            registrations=tuple(
                attrs.evolve(entry, value=stable_member(entry.value, tracked.classes))
                for entry in prepared.registrations
            ),
        )
        # A preserved value that __hot_migrate__ left alone takes the latest
        # live value at the switch, not the one copied during preparation.
        carry = [key for key, value in prepared.carried.items() if namespace.get(key) is value]
        changes.append((tracked, version, carry))
    return changes


def record(changes: Iterable[Change]) -> None:
    """Put the new versions in their histories and plan their flips; nothing is live. Under LOCK.

    A rollout records its candidates so (numbered, in ``history()``) and
    makes them live later, or never.
    """
    for tracked, version, _ in changes:
        tracked.history.add(version)
        plan(tracked, version)


def commit(
    entries: Sequence[Entry], bound: Sequence[Absorbed]
) -> list[tuple[CodeVersion, CodeVersion]]:
    """Record the release's versions and make them live in one flip. Under LOCK."""
    changes = new_versions(entries, bound)
    record(changes)
    flip_many(changes)
    for tracked, version, _ in changes:
        tracked.history.evict(version)
    return [
        (base.info, version.info)
        for (_, base, _, _), (_, version, _) in zip(entries, changes, strict=True)
    ]


def flip_back(changes: Iterable[tuple[TrackedModule, ModuleVersion, ModuleVersion]]) -> None:
    """Switch each module from its leaving version to its target in one flip. Under LOCK."""
    flip_many(
        [
            (tracked, target, target.preserve | leaving.preserve)
            for tracked, leaving, target in changes
        ]
    )


def notify_aborted(
    participants: Iterable[Participant], namespaces: Mapping[str, dict[str, Any]]
) -> None:
    """Tell participants whose ``prepare`` succeeded that the release did not switch."""
    for participant in participants:
        try:
            participant.abort(types.MappingProxyType(namespaces))
        except Exception:  # noqa: PERF203  # one's error does not stop the others
            logger.exception("%r failed to abort a release that did not switch", participant)


def notify_committed(
    participants: Iterable[Participant],
    namespaces: Mapping[str, dict[str, Any]],
    previous: Mapping[str, dict[str, Any]],
) -> None:
    """Tell the participants that the release switched (an error is logged: it is done)."""
    for participant in participants:
        try:
            participant.committed(
                types.MappingProxyType(namespaces), types.MappingProxyType(previous)
            )
        except Exception:  # noqa: PERF203  # one's error does not stop the others
            logger.exception("%r failed after a release switched", participant)
