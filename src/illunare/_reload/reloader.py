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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from illunare import signals
from illunare._reload.binding import absorb, flip
from illunare._reload.importer import HotFinder, ReloadFinder
from illunare._reload.interpreter import require_supported_interpreter
from illunare._reload.locking import LOCK
from illunare._reload.namespace import is_module
from illunare._reload.prepare import (
    Check,
    Prepared,
    prepare,
    preserved_names,
    source_filename,
    undone_on_failure,
    validate_checks,
)
from illunare._reload.proxy import HotFunction, preparing
from illunare._reload.registrations import exchange, record
from illunare._reload.source import Source, digest, read_source
from illunare._reload.stale import stale_references, warn
from illunare._reload.versions import CodeVersion, History, ModuleVersion, TrackedModule
from illunare.exceptions import (
    InvalidArgumentError,
    LoadError,
    RollbackError,
    SwapError,
    UnknownModuleError,
)

if TYPE_CHECKING:
    from illunare._reload.watcher import Watcher

__all__ = ["HotReloader"]

F = TypeVar("F", bound=Callable[..., Any])

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
    for reloader in list(_RELOADERS):
        reloader._preparing = {}


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


class HotReloader:
    """Keeps every tracked module versioned and switches versions atomically.

    Thread-safe: user code (a new source, ``__hot_migrate__``, checks, signal
    receivers) never runs under the library's lock, so a slow or stuck new
    version holds up nothing but the swap that runs it.

    Args:
        keep: how many of the most recently created versions of each module
            are kept for rollback (the current one and its parent are always kept).

    """

    def __init__(self, *, keep: int = 10) -> None:
        require_supported_interpreter()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidArgumentError(f"keep must be an int >= 1, got {keep!r}")
        self.keep = keep
        # Everything below is read and written under LOCK.
        self._modules: dict[str, TrackedModule] = {}
        # Modules whose @hot functions were seen while they were still importing
        # -> the digest of the source they were imported from (the file may be
        # saved again before they are tracked).
        self._pending: dict[str, str] = {}
        self._finder: HotFinder | None = None
        # Module name -> the lock that queues the swaps of that module.
        self._preparing: dict[str, threading.RLock] = {}
        _RELOADERS.add(self)

    def __repr__(self) -> str:
        return f"<HotReloader keep={self.keep} modules={list(self._modules)}>"

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

    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Check] = (),
        reason: str = "",
    ) -> CodeVersion:
        """Replace the code of a tracked module; return the new version.

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

        Raises:
            CompileError, LoadError, ValidationError, UnknownModuleError:
                nothing changed; ``swap_failed`` was sent. Whatever the new
                code raises, ``SystemExit`` and ``KeyboardInterrupt``
                included, is such an error's ``__cause__``. A rollback of the
                module while its new source was being prepared is a LoadError.
            InvalidArgumentError: ``module``, ``reason`` or ``checks`` is of the
                wrong type; nothing was attempted.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        checks = validate_checks(checks)
        try:
            previous, version = self._swap(name, source, checks, reason)
        except SwapError as error:
            if signals.swap_failed.receivers:
                signals.swap_failed.send(self, module=name, error=error, reason=reason)
            raise
        if version is None:
            return previous
        stale = self._stale(name, previous)
        if signals.module_swapped.receivers:
            signals.module_swapped.send(
                self,
                module=name,
                version=version,
                previous=previous,
                duration=time.perf_counter() - started,
                stale=stale,
            )
        return version

    def rollback(self, module: str, to: int | None = None) -> CodeVersion:
        """Go back to the parent of the current version, or to version ``to``.

        Instant: nothing is recompiled, and a swap of the module being
        prepared meanwhile does not hold it up (that swap is refused).
        Names either version preserves (``__hot_preserve__``) keep their
        live values.

        Raises:
            RollbackError: no parent, or ``to`` is evicted or unknown.
            UnknownModuleError: the module is not tracked.
            InvalidArgumentError: ``module`` is not a name, or ``to`` not an int.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            raise InvalidArgumentError(f"to must be a version number (int), got {to!r}")
        self._finish_pending()
        with LOCK:
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
            flip(tracked, target, target.preserve | leaving.preserve)
        stale = self._stale(name, leaving.info)
        if signals.module_rolled_back.receivers:
            signals.module_rolled_back.send(
                self,
                module=name,
                version=target.info,
                previous=leaving.info,
                duration=time.perf_counter() - started,
                stale=stale,
            )
        return target.info

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
        directories of every tracked module's file. A save that fails to swap
        keeps the running version (``swap_failed`` is sent, and a warning
        logged to the ``illunare`` logger) and the watcher goes on. Stop it
        with ``Watcher.stop()`` or a ``with`` block.

        Raises:
            InvalidArgumentError: a path is not a str or path, or does not
                exist; ``debounce`` is not a positive finite number.
            MissingExtraError: the ``watch`` extra is not installed.

        """
        from illunare._reload.watcher import Watcher  # noqa: PLC0415  # optional extra

        return Watcher(self, paths, debounce=debounce)

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
        text = _original_source(module)  # may read a file: not under the lock
        name = module.__name__
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
                registrations=registrations,
            )
            tracked = TrackedModule(name, module, placeholder, history)
            placeholder.targets, placeholder.classes = absorb(tracked, namespace, set())
            history.add(placeholder)
            self._modules[name] = tracked
            self._pending.pop(name, None)
            _OWNERS[module] = weakref.ref(self)
            _RELOADS.install()
        if signals.module_tracked.receivers:
            signals.module_tracked.send(self, module=name, version=placeholder.info)
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

    def _stale(self, name: str, left: CodeVersion) -> tuple[str, ...]:
        """Report the references to version ``left`` of ``name`` that still run its code.

        Called right after the switch, from the public method the user
        called (the warnings point at that call), without the lock.
        """
        with LOCK:
            tracked = self._modules.get(name)
            leaving = tracked.history.get(left.number) if tracked is not None else None
            modules = list(self._modules.values())
        if tracked is None or leaving is None or leaving is tracked.current:
            return ()
        stale = stale_references(tracked, leaving, modules)
        warn(stale, stacklevel=3)
        return stale

    def _preparation_lock(self, name: str) -> threading.RLock:
        with LOCK:
            lock = self._preparing.get(name)
            if lock is None:
                lock = self._preparing[name] = threading.RLock()
            return lock

    def _swap(
        self, name: str, source: Source, checks: Sequence[Check], reason: str
    ) -> tuple[CodeVersion, CodeVersion | None]:
        """Prepare the new version without the lock, then commit it under it.

        Returns the version that was current and the new one (``None`` for an
        identical source).
        """
        self._finish_pending()
        with LOCK:
            module = self._tracked(name).module
        text = read_source(module, source)  # may read a file: not under the lock
        filename = source_filename(name, text)
        # Swaps of one module queue here, so that each is prepared against
        # the version the one before made. Nothing else waits for them.
        with self._preparation_lock(name):
            with LOCK:
                tracked = self._tracked(name)
                base = tracked.current
                known = tracked.history.find(text.sha256)
            if text.sha256 == base.info.sha256:
                return base.info, None
            code = known.code if known is not None else None
            compiled = code if code is not None and code.co_filename == filename else None
            with undone_on_failure(text, filename, lines_kept=known is not None):
                prepared = prepare(tracked, base, text, filename, compiled=compiled, checks=checks)
                with LOCK:
                    if self._modules.get(name) is not tracked or tracked.current is not base:
                        exchange(prepared.registrations, tracked.current.registrations)
                        raise LoadError(
                            f"{name} was rolled back or tracked anew while its new source "
                            "was being prepared; nothing changed",
                            module=name,
                        )
                    return base.info, self._commit(tracked, prepared, reason)

    def _commit(self, tracked: TrackedModule, prepared: Prepared, reason: str) -> CodeVersion:
        """Bind the prepared version to the stable objects, record it, make it live. Under LOCK."""
        info = CodeVersion(
            module=tracked.name,
            number=tracked.history.next_number,
            sha256=prepared.source.sha256,
            created_at=time.time(),
            reason=reason,
            parent=tracked.current.info.number,
        )
        namespace = prepared.namespace
        targets, classes = absorb(tracked, namespace, prepared.hot_names)
        version = ModuleVersion(
            info=info,
            namespace=namespace,
            targets=targets,
            classes=classes,
            preserve=prepared.preserve,
            code=prepared.code,
            lines_key=prepared.lines_key,
            registrations=prepared.registrations,
        )
        tracked.history.add(version)
        tracked.bindings(version)  # computed now, so that the switch itself is short
        # A preserved value that __hot_migrate__ left alone takes the latest
        # live value at the switch, not the one copied during preparation.
        carry = [key for key, value in prepared.carried.items() if namespace.get(key) is value]
        flip(tracked, version, carry)
        tracked.history.evict(version)
        return info


def _module_name(module: object) -> str:
    if is_module(module):
        name = getattr(module, "__name__", None)
        if isinstance(name, str):
            return name
    if not isinstance(module, str):
        raise InvalidArgumentError(f"module must be a module name (str), got {module!r}")
    return module
