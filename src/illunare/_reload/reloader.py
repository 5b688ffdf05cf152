"""``HotReloader``: versioned, atomic, instantly reversible hot code swapping."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from illunare import signals
from illunare._arguments import optional, positive_int
from illunare._monitor.monitor import PerformanceMonitor
from illunare._reload.binding import Absorbed, absorb
from illunare._reload.classes import data_attributes
from illunare._reload.courtesy import take_turn
from illunare._reload.importer import HotFinder, ReloadFinder
from illunare._reload.interpreter import require_supported_interpreter
from illunare._reload.locking import LOCK, hold, release_held
from illunare._reload.namespace import is_module
from illunare._reload.prepare import (
    Check,
    Undo,
    preserved_names,
    undone_on_failure,
    validate_checks,
)
from illunare._reload.proxy import HotFunction, preparing
from illunare._reload.registrations import collect_young, record
from illunare._reload.release import (
    Entry,
    Participant,
    Siblings,
    bind,
    commit,
    ensure_current,
    execute,
    flip_back,
    imports_of,
    notify_aborted,
    notify_committed,
    release_imports,
)
from illunare._reload.source import Source, SourceText, digest, read_source
from illunare._reload.stale import nothing_stale, stale_references, warn
from illunare._reload.versions import CodeVersion, History, ModuleVersion, TrackedModule
from illunare._rollout import switching
from illunare._rollout.config import Rollout, Shadow
from illunare._rollout.controller import Controller
from illunare._rollout.handle import RolloutHandle
from illunare._rollout.shadow import ShadowRun
from illunare._rollout.split import Split
from illunare.exceptions import (
    InvalidArgumentError,
    LoadError,
    RollbackError,
    RolloutError,
    SwapError,
    UnknownModuleError,
    ValidationError,
)

if TYPE_CHECKING:
    from illunare._reload.watcher import Watcher

__all__ = ["HotReloader"]

F = TypeVar("F", bound=Callable[..., Any])

#: Takes a prepared, bound release under the lock instead of committing it (a rollout).
Splitter = Callable[[Sequence[Entry], Sequence[Absorbed], Sequence[Participant]], None]

# Which reloader versions which module: two reloaders switching one module's
# namespace would undo each other's work. Read and written under LOCK only,
# so that two threads (or reloaders) tracking one module never both own it.
_OWNERS: weakref.WeakKeyDictionary[types.ModuleType, weakref.ref[HotReloader]] = (
    weakref.WeakKeyDictionary()
)

# Every HotReloader, to re-arm their locks in a forked child.
_RELOADERS: weakref.WeakSet[HotReloader] = weakref.WeakSet()


def _rearm_after_fork() -> None:
    # A thread of the parent may have been preparing a swap: the child got
    # that module's lock held, by a thread that does not exist in the child.
    # A rollout's thread does not exist there either: the child serves the
    # old version alone (it judges nothing, and must not run half-judged code).
    for reloader in list(_RELOADERS):
        reloader._preparing = {}
        for controller in {id(c): c for c in reloader._rollouts.values()}.values():
            controller.forked()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_rearm_after_fork)


def _owner(module: types.ModuleType) -> HotReloader | None:
    """The live reloader that versions ``module``, if any."""
    owner = _OWNERS.get(module)
    return owner() if owner is not None else None


# importlib.reload() of a tracked module: a swap by its owner.
_RELOADS = ReloadFinder(_owner)


def _is_stale(tracked: TrackedModule) -> bool:
    """Whether a new module object was imported under the tracked module's name."""
    return sys.modules.get(tracked.name, tracked.module) is not tracked.module


def _initializing(module: types.ModuleType) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _is_python(module: types.ModuleType) -> bool:
    """Whether ``module`` was written in Python (not built in, frozen or an extension)."""
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    return not (
        origin in ("built-in", "frozen")
        or (isinstance(origin, str) and origin.endswith((".so", ".pyd")))
    )


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _import(name: str) -> types.ModuleType:
    """Import module ``name``: UnknownModuleError if there is none, LoadError if it raises."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if name == missing or name.startswith(missing + "."):
            raise UnknownModuleError(f"cannot import {name}: {error}", module=name) from error
        raise LoadError(f"importing {name} raised {error!r}", module=name) from error
    except BaseException as error:
        # Whatever the module's own code raises, SystemExit included.
        raise LoadError(
            f"importing {name} raised {type(error).__name__}: {error}", module=name
        ) from error


def _original_source(module: types.ModuleType) -> str:
    """The source a module was loaded from, or "" when there is none to find."""
    loader = getattr(module, "__loader__", None)
    get_source = getattr(loader, "get_source", None)
    if get_source is not None:
        with contextlib.suppress(ImportError, OSError):
            text = get_source(module.__name__)
            if isinstance(text, str):
                return text
    return ""


def _loaded_source(module: types.ModuleType, text: str) -> SourceText | None:
    """The source of version 1, which a release may execute anew (``None`` if unknown)."""
    if not text:
        return None
    path = getattr(module, "__file__", None)
    return SourceText(text, digest(text), path if isinstance(path, str) else None)


class HotReloader:
    """Keeps every tracked module versioned and switches versions atomically.

    Thread-safe: user code (a new source, ``__hot_migrate__``, checks, signal
    receivers) never runs under the library's lock, so a slow or stuck new
    version holds up nothing but the swap that runs it.

    Args:
        keep: how many of the most recently created versions of each module
            are kept for rollback (the current one and its parent are always kept).
        monitor: the PerformanceMonitor that deployments and rollouts through
            this reloader report to (``monitor``); None for none.

    Raises:
        InvalidArgumentError: ``keep`` is not an int >= 1, or ``monitor`` not
            a PerformanceMonitor or None.

    """

    def __init__(self, *, keep: int = 10, monitor: PerformanceMonitor | None = None) -> None:
        require_supported_interpreter()
        self.keep = positive_int("keep", keep)
        optional("monitor", monitor, PerformanceMonitor)
        self._monitor = monitor
        # Everything below is read and written under LOCK.
        self._modules: dict[str, TrackedModule] = {}
        # Modules whose @hot functions were seen while they were still importing
        # -> the digest of the source they were imported from (the file may be
        # saved again before they are tracked).
        self._pending: dict[str, str] = {}
        self._finder: HotFinder | None = None
        # Module name -> the lock that queues the swaps of that module.
        self._preparing: dict[str, threading.RLock] = {}
        # Told about every release (release.Participant), in order of registration.
        self._participants: list[Participant] = []
        # Each module of a running rollout -> its controller (a swap of one is refused).
        self._rollouts: dict[str, Controller] = {}
        # The monitor rollouts report to when none was given (made at the first).
        self._private_monitor: PerformanceMonitor | None = None
        _RELOADERS.add(self)

    def __repr__(self) -> str:
        return f"<HotReloader keep={self.keep} modules={list(self._modules)}>"

    @property
    def monitor(self) -> PerformanceMonitor | None:
        """The PerformanceMonitor given at construction, or None."""
        return self._monitor

    # Tracking --------------------------------------------------------------------

    def install(self, *packages: str) -> None:
        """Track every module of ``packages`` from its first import on.

        Modules of these packages that are already imported are tracked now.
        Because tracking happens before any other module can import from
        them, ``from pkg.mod import f`` anywhere binds a reference that
        follows swaps. Extension modules of the packages are left alone.

        Raises:
            InvalidArgumentError: a package name is not a dotted identifier.

        """
        for package in packages:
            if not isinstance(package, str) or not _is_dotted_name(package):
                raise InvalidArgumentError(f"not a package name: {package!r}")
        with LOCK:
            if self._finder is None:
                self._finder = HotFinder(self._track_imported)
                sys.meta_path.insert(0, self._finder)
            self._finder.packages.update(packages)
            imported = [
                module
                for name, module in list(sys.modules.items())
                if self._finder.covers(name) and is_module(module)
            ]
        for module in imported:
            self._track_imported(module)

    def track(self, module: str | types.ModuleType) -> types.ModuleType:
        """Start versioning a module; version 1 is the code as loaded.

        Every function defined at the module's top level is replaced, in the
        module, by its stable proxy, so references taken from now on follow
        swaps. Returns the module object itself: it stays in ``sys.modules``
        and on its parent package, and always shows the current version.

        A module is versioned by one reloader at a time: tracking a module
        another HotReloader tracks (the default one behind ``@hot``, say)
        takes it over, starting from its running code as version 1; the
        other reloader forgets it.

        Raises:
            UnknownModuleError: no module of that name can be imported (or the
                name is not a module name at all).
            LoadError: importing the module raised (the error is the ``__cause__``).
            InvalidArgumentError: not a module, or a built-in or extension module.

        """
        resolved = self._resolve(module)
        self._track(resolved)
        return resolved

    def hot(self, obj: F) -> F:
        """Decorate a function: return its stable proxy, which always runs the current version.

        The function's module becomes tracked. Works on module-level
        functions and on methods of module-level classes (the proxy binds
        ``self``).

        Raises:
            InvalidArgumentError: ``obj`` is not such a function.

        """
        if isinstance(obj, HotFunction):
            return obj
        if isinstance(obj, (staticmethod, classmethod)):
            # @hot above @staticmethod: as below it, the proxy inside.
            wrapper: Any = type(obj)
            return cast("F", wrapper(self.hot(obj.__func__)))
        module_name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if (
            not callable(obj)
            or isinstance(obj, type)
            or not isinstance(module_name, str)
            or not isinstance(qualname, str)
            or "<locals>" in qualname
        ):
            raise InvalidArgumentError(
                f"@hot takes a module-level function or a method of a module-level class, "
                f"not {obj!r}"
            )
        preparation = preparing.get()
        if preparation is not None and preparation.module == module_name:
            # The new version is being prepared: it is not live yet.
            preparation.hot_names.add(qualname)
            return obj
        with LOCK:
            tracked = self._live(module_name)
        if tracked is None:
            found = sys.modules.get(module_name)
            if found is None:
                raise InvalidArgumentError(
                    f"the module of {qualname} ({module_name}) is not imported"
                )
            module = self._resolve(found)
            if _initializing(module):
                # Still executing its first import: tracked once it has finished
                # (owned now, so that importlib.reload() of it is a swap).
                loaded = digest(_original_source(module))  # may read a file: not under the lock
                with LOCK:
                    if module_name not in self._pending:
                        self._pending[module_name] = loaded
                        _OWNERS[module] = weakref.ref(self)
                        _RELOADS.install()
                return HotFunction(obj, module_name, qualname)  # type: ignore[return-value]
            tracked = self._track(module)
        with LOCK:
            target = tracked.current.targets.get(qualname, obj)
            return tracked.proxy(qualname, target)  # type: ignore[return-value]

    # Swapping -------------------------------------------------------------------

    @overload
    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
        rollout: None = None,
        shadow: None = None,
    ) -> CodeVersion: ...

    @overload
    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
        rollout: Rollout,
        shadow: None = None,
    ) -> RolloutHandle: ...

    @overload
    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
        rollout: None = None,
        shadow: Shadow,
    ) -> RolloutHandle: ...

    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
        rollout: Rollout | None = None,
        shadow: Shadow | None = None,
    ) -> CodeVersion | RolloutHandle:
        """Replace the code of a tracked module; return the new version (or a rollout's handle).

        Everything is prepared first: the source is compiled and executed in a
        fresh namespace, names in its ``__hot_preserve__`` take their live
        values, its ``__hot_migrate__(old)`` runs with a read-only view of the
        old namespace, and every check is called with the new module (a check
        that raises or returns ``False`` refuses it). Only then do the module,
        every proxy and every class of the module move to the new version.
        An identical source makes no new version and returns the current one.

        The preparation runs without the library's lock: other modules, and
        every other method, go on meanwhile. Swaps of one module queue, each
        prepared against the version the one before it made.

        Args:
            module: the tracked module's name.
            source: the new code as text or bytes, a file path, a file inside a
                package (``importlib.resources``), or ``None`` to re-read the
                module's own file.
            checks: callables given the new module before it goes live.
            reason: recorded on the version and in signals.
            rollout: shift calls to the new version gradually (``Rollout``):
                both versions stay live, each call of a hot function or
                method of the module goes to the new one with the step's
                share, and each step is judged after its bake. Returns a
                ``RolloutHandle``, the first step in effect; ``current()``
                stays the old version until the rollout promotes, and
                ``module_swapped`` is sent then.
            shadow: run the new version beside the old (``Shadow``): the old
                one serves every call, a sample also runs on the new one off
                the callers' path and the results are compared. Returns a
                ``RolloutHandle`` (``promote()`` or ``abort()`` ends it).

        With ``rollout`` or ``shadow``, an identical source makes no version
        and returns a handle already ``"promoted"`` (no signals).

        Raises:
            CompileError, LoadError, ValidationError, UnknownModuleError:
                nothing changed; ``swap_failed`` was sent. Whatever the new
                code raises, ``SystemExit`` and ``KeyboardInterrupt``
                included, is such an error's ``__cause__``. A rollback of the
                module while its new source was being prepared is a LoadError.
            RolloutError: the module is under a rollout or shadow run (end it
                first); nothing changed, ``swap_failed`` was sent.
            InvalidArgumentError: ``module``, ``reason``, ``checks``,
                ``rollout`` or ``shadow`` is of the wrong type, or both
                ``rollout`` and ``shadow`` are given; nothing was attempted.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if rollout is None and shadow is None:
            return self._release({name: source}, checks, reason, started)[0]
        return self._start_rollout(
            {name: source}, checks=checks, reason=reason, rollout=rollout, shadow=shadow
        )

    def _start_rollout(
        self,
        sources: Mapping[str, Source],
        *,
        checks: Sequence[Check],
        reason: str,
        rollout: Rollout | None,
        shadow: Shadow | None,
    ) -> RolloutHandle:
        """Prepare ``sources`` as one release and roll it out (or shadow it); its handle.

        The release is prepared as ``swap_many`` prepares one; its first
        module whose source changed is the rollout's subject (what the
        handle, the signals and the monitor ids name). A first step of 100
        is a plain swap, its handle already ``"promoted"``.

        Raises:
            as ``swap``.

        """
        started = time.perf_counter()
        if not isinstance(sources, Mapping):
            raise InvalidArgumentError(f"sources must be a mapping, got {sources!r}")
        names = _distinct_names(sources, "sources", "release")
        optional("rollout", rollout, Rollout)
        optional("shadow", shadow, Shadow)
        if rollout is not None and shadow is not None:
            raise InvalidArgumentError("give a swap either rollout= or shadow=, not both")
        if rollout is None and shadow is None:
            raise InvalidArgumentError("a rollout needs rollout= or shadow=")
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        valid = validate_checks(checks)
        release = dict(zip(names, sources.values(), strict=True))
        if rollout is not None and rollout.steps[0] == 100:
            # Nothing to judge: all the calls at once is a plain swap.
            with LOCK:
                tracked = self._modules.get(names[0])
                before = None if tracked is None else tracked.current.info
            version = self._release(release, valid, reason, started)[0]
            return self._settled(version, before or version, rollout)
        made: list[Controller] = []

        def register(split: Split, sink: ShadowRun | None) -> None:
            # Under LOCK with the release's preparation locks held: no swap of
            # its modules can slip in between the split and the registration.
            controller = Controller(
                self,
                split,
                subject=split.subject,
                previous=split.old,
                version=split.new,
                rollout=rollout,
                shadow=sink,
                monitor=self._rollout_monitor(),
                ended=self._rollout_ended,
            )
            for name in split.modules:
                self._rollouts[name] = controller
            made.append(controller)

        try:
            split = self._split_release(
                release,
                checks=valid,
                reason=reason,
                weight=0 if rollout is None else rollout.steps[0],
                sticky=None if rollout is None else rollout.sticky,
                mask_all=rollout is not None and rollout.thresholds.max_latency is not None,
                shadow=shadow,
                then=register,
            )
        except SwapError as error:
            if signals.swap_failed.receivers:
                for name in names:
                    signals._send(
                        signals.swap_failed, self, module=name, error=error, reason=reason
                    )
            raise
        if split is None:  # identical sources: nothing to roll out
            with LOCK:
                version = self._tracked(names[0]).current.info
            return self._settled(version, version, rollout)
        try:
            made[0].start()
        except BaseException:
            # Interrupted while announcing the first step (a receiver raising
            # KeyboardInterrupt): no caller has the handle, so nothing is left split.
            with contextlib.suppress(RolloutError):
                made[0].abort()
            raise
        return made[0].handle

    def _settled(
        self, version: CodeVersion, previous: CodeVersion, rollout: Rollout | None
    ) -> RolloutHandle:
        """The handle of a rollout that ended as it began: ``"promoted"``.

        ``rollout_finished`` is sent when a version was made (``previous`` is
        another); an identical source sends nothing.
        """
        controller = Controller(
            self,
            None,
            subject=version.module,
            previous=previous,
            version=version,
            rollout=rollout,
            shadow=None,
            monitor=self._rollout_monitor(),
            ended=self._rollout_ended,
        )
        controller.start()
        return controller.handle

    def swap_many(
        self,
        sources: Mapping[str, Source],
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
    ) -> tuple[CodeVersion, ...]:
        """Swap several tracked modules as one release; return their versions in order.

        Every module is prepared as ``swap`` prepares one, all together: while
        the new sources execute, an import of a module of the release (``from
        pkg.b import x``, ``from . import b``, ``import pkg.b as b``) finds its
        new version, and one that imports another is executed after it; a
        module that is new on disk is imported as usual. A name bound to a
        function or class of another module of the release follows that
        module's versions like any other reference. Each check is called with
        each new module once all have executed. Then all switch in one atomic
        flip: no thread ever sees the new version of one beside the old
        version of another. Any failure changes none of them.

        A module whose source is identical keeps its current version (and is
        not part of the flip); if all are, nothing happens.

        Args:
            sources: module name -> its new source, as ``swap`` takes it.
            checks: callables given each new module before any goes live.
            reason: recorded on every new version and in signals.

        Raises:
            CompileError, LoadError, ValidationError, UnknownModuleError:
                nothing changed; ``swap_failed`` was sent for each module.
            RolloutError: a module of the release is under a rollout or
                shadow run; nothing changed, ``swap_failed`` was sent.
            InvalidArgumentError: ``sources`` is not a non-empty mapping of
                module names (each once), or ``checks`` or ``reason`` is of
                the wrong type; nothing was attempted.

        """
        started = time.perf_counter()
        if not isinstance(sources, Mapping):
            raise InvalidArgumentError(
                f"sources must be a mapping of module names to sources, got {sources!r}"
            )
        names = _distinct_names(sources, "sources", "release")
        return self._release(
            dict(zip(names, sources.values(), strict=True)), checks, reason, started
        )

    def _release(
        self, sources: dict[str, Source], checks: object, reason: object, started: float
    ) -> tuple[CodeVersion, ...]:
        """Prepare and switch ``sources`` as one release; signals; the versions in order."""
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        valid = validate_checks(checks)
        try:
            versions, swapped = self._swap_release(sources, valid, reason)
        except SwapError as error:
            if signals.swap_failed.receivers:
                for name in sources:
                    signals._send(
                        signals.swap_failed, self, module=name, error=error, reason=reason
                    )
            raise
        if swapped:
            duration = time.perf_counter() - started
            for previous, version in swapped:
                with LOCK:
                    tracked = self._modules.get(version.module)
                    leaving = tracked.history.get(previous.number) if tracked is not None else None
                stale = self._stale(tracked, leaving)
                if signals.module_swapped.receivers:
                    signals._send(
                        signals.module_swapped,
                        self,
                        module=version.module,
                        version=version,
                        previous=previous,
                        duration=duration,
                        stale=stale,
                    )
        return tuple(versions[name] for name in sources)

    def rollback(self, module: str, to: int | None = None) -> CodeVersion:
        """Go back to the parent of the current version, or to version ``to``.

        Instant: nothing is recompiled, and a swap of the module being
        prepared meanwhile does not hold it up (that swap is refused).
        Names either version preserves (``__hot_preserve__``) keep their
        live values.

        During a rollout or shadow run of the module, it is aborted (status
        ``"rolled_back"``, the old version serving), and the version serving
        is returned; with ``to`` naming another version, the module then
        rolls back to it.

        Raises:
            RollbackError: no parent, or ``to`` is evicted or unknown.
            ValidationError: something built from the module (a hot web app)
                refused the versions rolled back to; nothing changed.
            UnknownModuleError: the module is not tracked.
            InvalidArgumentError: ``module`` is not a name, or ``to`` not an int.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            raise InvalidArgumentError(f"to must be a version number (int), got {to!r}")
        return self._rollback_release({name: to}, started)[0]

    def rollback_many(self, modules: Sequence[str]) -> tuple[CodeVersion, ...]:
        """Roll each module back to its parent version, all in one atomic flip.

        Returns the versions now current, in the order given. If any module
        cannot be rolled back, none is. Modules under a rollout have it
        aborted instead (as ``rollback`` does); the others roll back.

        Raises:
            RollbackError: a module has no parent to roll back to.
            ValidationError: something built from the modules (a hot web app)
                refused the versions rolled back to; nothing changed.
            UnknownModuleError: a module is not tracked.
            InvalidArgumentError: ``modules`` is not a non-empty sequence of
                module names, each named once.

        """
        started = time.perf_counter()
        if isinstance(modules, (str, bytes)) or not isinstance(modules, Sequence):
            raise InvalidArgumentError(
                f"modules must be a sequence of module names, got {modules!r}"
            )
        names = _distinct_names(modules, "modules", "rollback")
        return self._rollback_release(dict.fromkeys(names), started)

    def _rollback_release(
        self, requests: dict[str, int | None], started: float
    ) -> tuple[CodeVersion, ...]:
        """Switch each module to version ``to`` (``None``: its parent) in one flip.

        A module under a rollout has it aborted first, which puts it back on
        its current version: it is done, unless ``to`` names another version.
        """
        self._finish_pending()
        with LOCK:
            # Refused before anything changes (no rollout aborted for nothing).
            for name, to in requests.items():
                if name not in self._rollouts or to is not None:
                    self._rollback_target(name, to)
        aborted = self._abort_rollouts(requests)
        pending = {
            name: to
            for name, to in requests.items()
            if name not in aborted or to not in (None, aborted[name].number)
        }
        versions = self._flip_back_release(pending, started) if pending else {}
        return tuple(versions.get(name) or aborted[name] for name in requests)

    def _abort_rollouts(self, names: Iterable[str]) -> dict[str, CodeVersion]:
        """Abort the rollouts of ``names``; each module of theirs -> its version now current."""
        with LOCK:
            controllers = {id(c): c for name in names if (c := self._rollouts.get(name))}
        aborted = {}
        for controller in controllers.values():
            try:
                controller.abort()
            except RolloutError as error:
                if error.status == "promoted":
                    continue  # promoted meanwhile: a plain rollback of the new current
            with LOCK:
                for name in controller.modules:
                    tracked = self._modules.get(name)
                    if tracked is not None:
                        aborted[name] = tracked.current.info
        return aborted

    def _flip_back_release(
        self, requests: dict[str, int | None], started: float
    ) -> dict[str, CodeVersion]:
        """The rollback of ``requests`` (none under a rollout); the versions now current."""
        with LOCK:
            participants = tuple(self._participants) if self._participants else ()
            changes = [self._rollback_target(name, to) for name, to in requests.items()]
            if not participants:
                flip_back(changes)
        if participants:
            namespaces = {tracked.name: target.namespace for tracked, _, target in changes}
            previous = {tracked.name: leaving.namespace for tracked, leaving, _ in changes}
            try:
                self._prepare_participants(participants, namespaces)
                with LOCK:
                    if any(tracked.current is not leaving for tracked, leaving, _ in changes):
                        notify_aborted(participants, namespaces)
                        raise RollbackError(
                            "a module of the rollback changed meanwhile; nothing changed",
                            module=changes[0][0].name,
                        )
                    flip_back(changes)
            except SwapError as error:
                if signals.swap_failed.receivers:
                    for name in requests:
                        signals._send(
                            signals.swap_failed, self, module=name, error=error, reason="rollback"
                        )
                raise
            notify_committed(participants, namespaces, previous)
        duration = time.perf_counter() - started
        for tracked, leaving, target in changes:
            stale = self._stale(tracked, leaving)
            if signals.module_rolled_back.receivers:
                signals._send(
                    signals.module_rolled_back,
                    self,
                    module=tracked.name,
                    version=target.info,
                    previous=leaving.info,
                    duration=duration,
                    stale=stale,
                )
        return {tracked.name: target.info for tracked, _, target in changes}

    def _rollback_target(
        self, name: str, to: int | None
    ) -> tuple[TrackedModule, ModuleVersion, ModuleVersion]:
        """The module, its current version and the one to roll back to. Under LOCK."""
        tracked = self._tracked(name)
        leaving = tracked.current
        number = leaving.info.parent if to is None else to
        if number is None:
            raise RollbackError(
                f"version {leaving.info.number} of {name} has no parent to roll back to",
                module=name,
            )
        target = tracked.history.get(number)
        if target is None:
            known = 1 <= number < tracked.history.next_number
            raise RollbackError(
                f"version {number} of {name} "
                + ("was evicted from the history" if known else "does not exist"),
                module=name,
            )
        return tracked, leaving, target

    # Introspection ----------------------------------------------------------------

    def current(self, module: str) -> CodeVersion:
        """The version a tracked module runs now. Raises ``UnknownModuleError``."""
        name = _module_name(module)
        self._finish_pending()
        with LOCK:
            return self._tracked(name).current.info

    def history(self, module: str) -> tuple[CodeVersion, ...]:
        """The kept versions, oldest first: the ``keep`` newest, the current one and its parent."""
        name = _module_name(module)
        self._finish_pending()
        with LOCK:
            return self._tracked(name).history.infos()

    def modules(self) -> tuple[str, ...]:
        """The names of the tracked modules, sorted."""
        self._finish_pending()
        with LOCK:
            return tuple(sorted(self._modules))

    def watch(self, *paths: str | os.PathLike[str], debounce: float = 0.05) -> Watcher:
        """Swap a tracked module whenever its file changes (needs the ``watch`` extra).

        ``paths`` are files or directories to watch; none means the
        directories of every tracked module's file. Files saved together
        (until none has changed for 10 ms, at most ``debounce`` seconds)
        are one release (``swap_many``). A release
        that fails keeps the running versions (``swap_failed`` is sent, and a
        warning logged to the ``illunare`` logger) and the watcher goes on; it
        tries the refused modules again when a watched Python file changes
        (a release may need a file saved a moment later). Stop it with
        ``Watcher.stop()`` or a ``with`` block.

        Raises:
            InvalidArgumentError: a path is not a str or path, or does not
                exist; ``debounce`` is not a positive finite number.
            MissingExtraError: the ``watch`` extra is not installed.

        """
        from illunare._reload import watcher  # noqa: PLC0415  # optional extra

        if preparing.get() is None:
            return watcher.Watcher(self, paths, debounce=debounce)
        # Called by a module's new code while a release prepares it (the
        # module that starts the watcher was saved): the watcher it started
        # before goes on. A new one must not wait to catch up: that would
        # wait for this very release.
        watched = watcher.watched_paths(self, paths)
        for running in watcher.running_watchers():
            if running.reloader is self and running.paths == watched:
                return running
        return watcher.Watcher(self, paths, debounce=debounce, wait=False)

    def source_files(self) -> dict[str, str]:
        """Tracked module name -> the absolute path of its source file, for those that have one."""
        with LOCK:
            files = {
                name: getattr(tracked.module, "__file__", None)
                for name, tracked in self._modules.items()
            }
        return {
            name: os.path.abspath(path)
            for name, path in files.items()
            if isinstance(path, str) and path
        }

    # Internals ------------------------------------------------------------------

    def _resolve(self, module: object) -> types.ModuleType:
        """The module that ``module`` (a module or its name) is, if it can be versioned."""
        if isinstance(module, str):
            found = sys.modules.get(module)
            if found is None:
                if not _is_dotted_name(module):
                    raise UnknownModuleError(f"{module!r} is not a module name", module=module)
                found = _import(module)
            module = found
        if not is_module(module):
            raise InvalidArgumentError(f"expected a module or its name, got {module!r}")
        if not isinstance(getattr(module, "__name__", None), str):
            raise InvalidArgumentError(f"{module!r} has no __name__")
        if not _is_python(module):
            raise InvalidArgumentError(
                f"{module.__name__} is a built-in or extension module; "
                "only modules written in Python can be hot-swapped"
            )
        return module

    def _track(self, module: types.ModuleType) -> TrackedModule:
        """Version ``module`` (as ``_resolve`` returns it) from its running code on."""
        tracked = self._modules.get(module.__name__)
        if tracked is not None and tracked.module is module:
            return tracked  # versioned here already: nothing to read or scan
        text = _original_source(module)  # may read a file: not under the lock
        name = module.__name__
        class_data = data_attributes(text, module.__dict__)
        # What the code as loaded registered elsewhere: found before binding
        # (which adds the library's own references) and outside the lock (it
        # scans the heap). That code ran before tracking, so what counts as
        # made by it is a best guess (``registrations.py``).
        registrations, _ = record(module.__dict__, name, None)
        with LOCK:
            tracked = self._modules.get(name)
            if tracked is not None and tracked.module is module:
                return tracked
            # Ownership is checked and taken in one step under the lock.
            previous = _owner(module)
            if previous is not None and previous is not self:
                previous._forget(module)
            # A module @hot saw importing is version 1 as it was imported,
            # even if its file changed since.
            loaded = self._pending.get(name) or digest(text)
            history = History(keep=self.keep)
            namespace = module.__dict__
            placeholder = ModuleVersion(
                info=CodeVersion(name, 1, loaded, time.time(), "loaded"),
                namespace=namespace,
                targets={},
                classes={},
                preserve=preserved_names(namespace, name),
                code=None,
                source=_loaded_source(module, text) if digest(text) == loaded else None,
                class_data=class_data,
                registrations=registrations,
            )
            tracked = TrackedModule(name, module, placeholder, history)
            placeholder.targets, placeholder.classes, _ = absorb(tracked, namespace, set())
            history.add(placeholder)
            self._modules[name] = tracked
            self._pending.pop(name, None)
            _OWNERS[module] = weakref.ref(self)
            _RELOADS.install()
        if signals.module_tracked.receivers:
            signals._send(signals.module_tracked, self, module=name, version=placeholder.info)
        return tracked

    def _track_imported(self, module: types.ModuleType) -> None:
        """Track a module of an installed package; extension modules stay as they are."""
        if _is_python(module):
            self._track(module)

    def _forget(self, module: types.ModuleType) -> None:
        """Stop versioning ``module``: another reloader took it over. Under LOCK."""
        tracked = self._modules.get(module.__name__)
        if tracked is not None and tracked.module is module:
            del self._modules[module.__name__]
        self._pending.pop(module.__name__, None)

    def _live(self, name: str) -> TrackedModule | None:
        """The entry of ``name``, unless a new module was imported under that name. Under LOCK."""
        tracked = self._modules.get(name)
        return None if tracked is None or _is_stale(tracked) else tracked

    def _tracked(self, name: str) -> TrackedModule:
        """The entry of a tracked module, or UnknownModuleError. Under LOCK."""
        tracked = self._modules.get(name)
        if tracked is None:
            if not _is_dotted_name(name):
                raise UnknownModuleError(f"{name!r} is not a module name", module=name)
            raise UnknownModuleError(
                f"{name} is not tracked; call track({name!r}) or use @hot first", module=name
            )
        return tracked

    def _finish_pending(self) -> None:
        """Track the modules that @hot saw importing, now that their import has finished.

        A module imported again under a tracked name is tracked anew this
        way (if @hot marked it), replacing the old entry. Called before
        taking the lock: tracking sends a signal.
        """
        if not self._pending:
            return
        ready = []
        with LOCK:
            for name in list(self._pending):
                module = sys.modules.get(name)
                owner = _owner(module) if is_module(module) else None
                if not is_module(module) or owner not in (None, self):
                    self._pending.pop(name, None)  # gone, or versioned by another reloader
                elif not _initializing(module):
                    ready.append(module)
        for module in ready:
            self._track(module)

    def _stale(
        self,
        tracked: TrackedModule | None,
        leaving: ModuleVersion | None,
        also_kept: Iterable[object] = (),
    ) -> tuple[str, ...]:
        """Report the references to version ``leaving`` of ``tracked`` that still run its code.

        Called right after the switch, without the lock, two calls below the
        public method the user called (the warnings point at that call).
        Nothing to report for a version evicted meanwhile (``None``).
        """
        if tracked is None or leaving is None or leaving is tracked.current:
            return ()
        if nothing_stale(tracked, leaving) or (collect_young() and nothing_stale(tracked, leaving)):
            return ()  # told without a scan (once the release's garbage is collected)
        with LOCK:
            modules = list(self._modules.values())
            participants = tuple(self._participants)
        kept = [obj for part in participants for obj in part.kept(leaving.namespace)]
        kept.extend(also_kept)
        stale = stale_references(tracked, leaving, modules, kept)
        warn(stale, stacklevel=4)
        return stale

    def _preparation_lock(self, name: str) -> threading.RLock:
        with LOCK:
            lock = self._preparing.get(name)
            if lock is None:
                lock = self._preparing[name] = threading.RLock()
            return lock

    def _swap_release(
        self,
        sources: dict[str, Source],
        checks: Sequence[Check],
        reason: str,
        split: Splitter | None = None,
    ) -> tuple[dict[str, CodeVersion], list[tuple[CodeVersion, CodeVersion]]]:
        """Prepare the release without the lock, then commit it under it.

        Returns each requested module's version after the release, and
        (previous, new) for every module that got a new version (the
        participants' dependents included). With ``split``, the release is
        handed to it instead of committed (see ``_prepare_release``). A
        module under a rollout refuses the release (RolloutError).
        """
        self._finish_pending()
        with LOCK:
            modules = {name: self._tracked(name).module for name in sources}
        # May read files: not under the lock.
        texts = {name: read_source(modules[name], source) for name, source in sources.items()}
        with LOCK:
            participants = tuple(self._participants)
            changed = frozenset(
                name
                for name, text in texts.items()
                if text.sha256 != self._tracked(name).current.info.sha256
            )
        dependents = self._dependents(participants, changed) if changed else set()
        names = sorted(texts.keys() | dependents)
        # Swaps of one module queue here, so that each is prepared against the
        # version the one before made; taken in one order, so that releases of
        # overlapping modules never wait for each other in a circle.
        locks = [self._preparation_lock(name) for name in names]
        try:
            hold(locks)
            with LOCK:
                bases = {name: self._tracked(name).current for name in names}
                self._refuse_rollouts(names)
            versions = {name: bases[name].info for name in texts}
            work = {
                name: (text, reason)
                for name, text in texts.items()
                if text.sha256 != bases[name].info.sha256
            }
            if not work:
                return versions, []
            requested = frozenset(work)
            for name in sorted(dependents - requested):
                work[name] = self._rebuild(name, bases[name], requested)
            swapped = self._prepare_release(bases, work, checks, participants, split)
        finally:
            release_held(locks)
        versions.update((version.module, version) for _, version in swapped)
        return versions, swapped

    def _refuse_rollouts(self, names: Iterable[str]) -> None:
        """RolloutError if a module of ``names`` is under a rollout. Under LOCK."""
        for name in names:
            controller = self._rollouts.get(name)
            if controller is not None:
                raise RolloutError(
                    f"{name} is under a rollout of {controller.subject} "
                    f"(v{controller.version.number}, {controller.status}); "
                    "promote or abort it before swapping",
                    module=name,
                    status=controller.status,
                )

    def _dependents(self, participants: Iterable[Participant], changed: frozenset[str]) -> set[str]:
        """The tracked modules the participants want executed anew with ``changed``."""
        wanted: set[str] = set()
        for participant in participants:
            try:
                wanted.update(participant.dependents(changed))
            except BaseException as error:  # noqa: PERF203  # it refuses the release
                raise ValidationError(
                    f"{participant!r} refused the release of {', '.join(sorted(changed))}: "
                    f"{type(error).__name__}: {error}",
                    module=min(changed),
                ) from error
        with LOCK:
            return {name for name in wanted if isinstance(name, str) and name in self._modules}

    def _rebuild(
        self, name: str, base: ModuleVersion, changed: Iterable[str]
    ) -> tuple[SourceText, str]:
        """The source and reason of a new version of ``name`` made from its current source."""
        if base.source is None:
            raise LoadError(
                f"{name} must be executed anew with {', '.join(sorted(changed))}, "
                "but the source of its running version is unknown",
                module=name,
            )
        imported = sorted(imports_of(base).intersection(changed))
        if imported:
            return base.source, "rebuilt: imports " + ", ".join(imported)
        return base.source, "rebuilt with " + ", ".join(sorted(changed))

    def _prepare_release(
        self,
        bases: Mapping[str, ModuleVersion],
        work: Mapping[str, tuple[SourceText, str]],
        checks: Sequence[Check],
        participants: tuple[Participant, ...],
        split: Splitter | None = None,
    ) -> list[tuple[CodeVersion, CodeVersion]]:
        """Execute, check and bind every module of ``work``, then switch them. Holds their locks.

        With ``split`` (a rollout), the bound release goes to
        ``split(entries, bound, participants)`` under the lock instead of
        being committed: nothing is swapped (the participants hear of it
        when the split ends).
        """
        with LOCK:
            tracked = {name: self._tracked(name) for name in work}
        undo = Undo()
        siblings = Siblings()
        try:
            with undone_on_failure(undo):
                entries = execute(tracked, bases, work, checks, undo=undo, siblings=siblings)
                namespaces = {entry[0].name: entry[2].namespace for entry in entries}
                if participants:
                    # Before binding, with the release's imports: what a participant
                    # builds (an app factory) runs the new code throughout, down to
                    # the imports in function bodies and the functions it calls.
                    with release_imports(siblings):
                        self._prepare_participants(participants, namespaces)
                take_turn()  # so that binding and flipping run whole
                with LOCK:
                    try:
                        ensure_current(entries)
                        bound = bind(entries, siblings)
                        if split is not None:
                            split(entries, bound, participants)
                    except BaseException:
                        notify_aborted(participants, namespaces)
                        raise
                    if split is not None:
                        return []
                    swapped = commit(entries, bound)
        except BaseException:
            self._forget_imported(undo.imported)
            raise
        previous = {entry[0].name: entry[1].namespace for entry in entries}
        notify_committed(participants, namespaces, previous)
        return swapped

    def _split_release(
        self,
        sources: dict[str, Source],
        *,
        checks: Sequence[Check],
        reason: str,
        weight: int,
        sticky: Callable[..., object] | None,
        mask_all: bool = False,
        shadow: Shadow | None = None,
        then: Callable[[Split, ShadowRun | None], None] | None = None,
    ) -> Split | None:
        """Prepare ``sources`` as one release and split its calls between the versions.

        The rollout is named after the first module of ``sources`` that gets
        a new version (its subject). ``None`` when every source is identical
        to the running one (nothing to roll out). ``shadow``: the old version
        serves, sampled calls are offered to a ``ShadowRun``.
        ``then(split, shadow_run)`` is called under the lock right after the
        split, the release's modules still held (so that no swap of them
        comes in between). Errors as ``_swap_release``'s, and those of
        ``switching.begin``.
        """
        made: list[Split] = []

        def split(
            entries: Sequence[Entry], bound: Sequence[Absorbed], participants: Sequence[Participant]
        ) -> None:
            released = {entry[0].name for entry in entries}
            subject = next(name for name in sources if name in released)
            sink = None if shadow is None else ShadowRun(subject, shadow.compare)
            made.append(
                switching.begin(
                    self,
                    entries,
                    bound,
                    subject=subject,
                    weight=weight,
                    sticky=sticky,
                    mask_all=mask_all,
                    participants=participants,
                    shadow=sink,
                    sample=1.0 if shadow is None else shadow.sample,
                )
            )
            if sink is not None:  # at once: calls are offered from the switch on
                sink.start(made[0].pin)
            if then is not None:
                then(made[0], sink)

        self._swap_release(sources, checks, reason, split)
        return made[0] if made else None

    def _rollout_monitor(self) -> PerformanceMonitor:
        """The monitor rollouts report to: the reloader's, else a private one."""
        if self._monitor is not None:
            return self._monitor
        with LOCK:
            if self._private_monitor is None:
                self._private_monitor = PerformanceMonitor(window=1000)
            return self._private_monitor

    def _rollout_ended(self, controller: Controller) -> None:
        """Forget a rollout that ended: its modules may be swapped again."""
        with LOCK:
            for name in [name for name, held in self._rollouts.items() if held is controller]:
                del self._rollouts[name]

    def _promoted(
        self,
        previous: CodeVersion,
        version: CodeVersion,
        duration: float,
        kept: Iterable[object],
    ) -> None:
        """After a rollout promoted: the stale scan and ``module_swapped`` of one module.

        ``kept``: what the rollout keeps on purpose (routers still running).
        """
        with LOCK:
            tracked = self._modules.get(version.module)
            leaving = tracked.history.get(previous.number) if tracked is not None else None
        stale = self._stale(tracked, leaving, kept)
        if signals.module_swapped.receivers:
            # The promotion is done: a receiver that raises must not stop the
            # others, the other modules' signals or the rollout's end.
            signals._send(
                signals.module_swapped,
                self,
                module=version.module,
                version=version,
                previous=previous,
                duration=duration,
                stale=stale,
            )

    def _prepare_participants(
        self, participants: Sequence[Participant], namespaces: Mapping[str, dict[str, Any]]
    ) -> None:
        """Each participant's ``prepare``; the first that raises refuses the release."""
        view = types.MappingProxyType(namespaces)
        for number, participant in enumerate(participants):
            try:
                participant.prepare(view)
            except BaseException as error:  # noqa: PERF203  # it refuses the release
                notify_aborted(participants[:number], namespaces)
                raise ValidationError(
                    f"{participant!r} refused the release of {', '.join(namespaces)}: "
                    f"{type(error).__name__}: {error}",
                    module=next(iter(namespaces)),
                ) from error

    def _forget_imported(self, names: Iterable[str]) -> None:
        """Stop tracking modules a refused release imported (they left ``sys.modules``)."""
        with LOCK:
            for name in names:
                tracked = self._modules.get(name)
                if tracked is not None and sys.modules.get(name) is not tracked.module:
                    self._forget(tracked.module)

    # Participants and the import graph (private: used by illunare.web) ---------------

    def _add_participant(self, participant: Participant) -> None:
        """Tell ``participant`` about every release from now on (until ``_remove_participant``)."""
        with LOCK:
            if participant not in self._participants:
                self._participants.append(participant)

    def _remove_participant(self, participant: Participant) -> None:
        """Stop telling ``participant`` about releases (no error if it was not registered)."""
        with LOCK:
            if participant in self._participants:
                self._participants.remove(participant)

    def _current_namespaces(self) -> dict[str, dict[str, Any]]:
        """The current namespace of each tracked module, by module name."""
        with LOCK:
            return {name: tracked.current.namespace for name, tracked in self._modules.items()}

    def _importers(self, name: str) -> frozenset[str]:
        """The tracked modules whose top-level code imports ``name`` (in their current source)."""
        with LOCK:
            versions = [
                (other, tracked.current)
                for other, tracked in self._modules.items()
                if other != name
            ]
        return frozenset(other for other, version in versions if name in imports_of(version))


def _distinct_names(modules: Iterable[object], argument: str, kind: str) -> list[str]:
    """The names of ``modules``, at least one and each once, or InvalidArgumentError."""
    names = [_module_name(module) for module in modules]
    if not names:
        raise InvalidArgumentError(f"{argument} is empty: a {kind} needs at least one module")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"a module is named twice in one {kind}: {names}")
    return names


def _module_name(module: object) -> str:
    if is_module(module):
        name = getattr(module, "__name__", None)
        if isinstance(name, str):
            return name
    if not isinstance(module, str):
        raise InvalidArgumentError(f"module must be a module name (str), got {module!r}")
    return module
