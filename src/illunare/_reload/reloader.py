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
from illunare._reload.importer import HotFinder
from illunare._reload.interpreter import require_supported_interpreter
from illunare._reload.namespace import is_module
from illunare._reload.prepare import Check, Prepared, prepare, preserved_names, validate_checks
from illunare._reload.proxy import HotFunction, preparing
from illunare._reload.source import Source, digest
from illunare._reload.versions import CodeVersion, History, ModuleVersion, TrackedModule
from illunare.exceptions import (
    InvalidArgumentError,
    RollbackError,
    SwapError,
    UnknownModuleError,
)

if TYPE_CHECKING:
    from illunare._reload.watcher import Watcher

__all__ = ["HotReloader"]

F = TypeVar("F", bound=Callable[..., Any])

# Which reloader versions which module: two reloaders switching one module's
# namespace would undo each other's work.
_OWNERS: weakref.WeakKeyDictionary[types.ModuleType, weakref.ref[HotReloader]] = (
    weakref.WeakKeyDictionary()
)


def _owner(module: types.ModuleType) -> HotReloader | None:
    """The live reloader that versions ``module``, if any."""
    owner = _OWNERS.get(module)
    return owner() if owner is not None else None


def _is_stale(tracked: TrackedModule) -> bool:
    """Whether a new module object was imported under the tracked module's name."""
    return sys.modules.get(tracked.name, tracked.module) is not tracked.module


def _initializing(module: types.ModuleType) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


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

    Args:
        keep: how many of the most recently created versions of each module
            are kept for rollback (the current one is always kept).

    """

    def __init__(self, *, keep: int = 10) -> None:
        require_supported_interpreter()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidArgumentError(f"keep must be an int >= 1, got {keep!r}")
        self.keep = keep
        self._lock = threading.RLock()
        self._modules: dict[str, TrackedModule] = {}
        # Modules whose @hot functions were seen while they were still importing.
        self._pending: set[str] = set()
        self._finder: HotFinder | None = None

    def __repr__(self) -> str:
        return f"<HotReloader keep={self.keep} modules={list(self._modules)}>"

    # Tracking --------------------------------------------------------------------

    def install(self, *packages: str) -> None:
        """Track every module of ``packages`` from its first import on.

        Modules of these packages that are already imported are tracked now.
        Because tracking happens before any other module can import from
        them, ``from pkg.mod import f`` anywhere binds a reference that
        follows swaps.

        Raises:
            InvalidArgumentError: a package name is not a dotted identifier.

        """
        for package in packages:
            if not isinstance(package, str) or not all(
                part.isidentifier() for part in package.split(".")
            ):
                raise InvalidArgumentError(f"not a package name: {package!r}")
        with self._lock:
            if self._finder is None:
                self._finder = HotFinder(self.track)
                sys.meta_path.insert(0, self._finder)
            self._finder.packages.update(packages)
            for name, module in list(sys.modules.items()):
                if self._finder.covers(name) and is_module(module):
                    self.track(module)

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
            UnknownModuleError: no module of that name can be imported.
            InvalidArgumentError: not a module, or a built-in or extension module.

        """
        module = self._resolve(module)
        name = module.__name__
        previous = _owner(module)
        if previous is not None and previous is not self:
            previous._forget(module)
        with self._lock:
            tracked = self._modules.get(name)
            if tracked is not None and tracked.module is module:
                return module
            text = _original_source(module)
            history = History(keep=self.keep)
            namespace = module.__dict__
            placeholder = ModuleVersion(
                info=CodeVersion(name, 1, digest(text), time.time(), "loaded"),
                namespace=namespace,
                targets={},
                classes={},
                preserve=preserved_names(namespace, name),
                code=None,
            )
            tracked = TrackedModule(name, module, placeholder, history)
            placeholder.targets, placeholder.classes = absorb(tracked, namespace, set())
            history.add(placeholder)
            self._modules[name] = tracked
            self._pending.discard(name)
            _OWNERS[module] = weakref.ref(self)
        if signals.module_tracked.receivers:
            signals.module_tracked.send(self, module=name, version=placeholder.info)
        return module

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
        with self._lock:
            tracked = self._modules.get(module_name)
            if tracked is not None and _is_stale(tracked):
                tracked = None  # the name was imported again: a new module object
            if tracked is None:
                module = sys.modules.get(module_name)
                if module is None:
                    raise InvalidArgumentError(
                        f"the module of {qualname} ({module_name}) is not imported"
                    )
                if _initializing(module):
                    # Still executing its first import: tracked once it has finished.
                    self._pending.add(module_name)
                    return HotFunction(obj, module_name, qualname)  # type: ignore[return-value]
                self.track(module)
                tracked = self._modules[module_name]
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

        Args:
            module: the tracked module's name.
            source: the new code as text or bytes, a file path, a file inside a
                package (``importlib.resources``), or ``None`` to re-read the
                module's own file.
            checks: callables given the new module before it goes live.
            reason: recorded on the version and in signals.

        Raises:
            CompileError, LoadError, ValidationError, UnknownModuleError:
                nothing changed; ``swap_failed`` was sent.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        checks = validate_checks(checks)
        try:
            with self._lock:
                tracked = self._tracked(name)
                prepared = prepare(tracked, source, checks)
                previous = tracked.current.info
                if prepared is None:
                    return previous
                version = self._commit(tracked, prepared, reason)
        except SwapError as error:
            if signals.swap_failed.receivers:
                signals.swap_failed.send(self, module=name, error=error, reason=reason)
            raise
        if signals.module_swapped.receivers:
            signals.module_swapped.send(
                self,
                module=name,
                version=version,
                previous=previous,
                duration=time.perf_counter() - started,
            )
        return version

    def rollback(self, module: str, to: int | None = None) -> CodeVersion:
        """Go back to the parent of the current version, or to version ``to``.

        Instant: nothing is recompiled. Names either version preserves
        (``__hot_preserve__``) keep their live values.

        Raises:
            RollbackError: no parent, or ``to`` is evicted or unknown.
            UnknownModuleError: the module is not tracked.

        """
        started = time.perf_counter()
        name = _module_name(module)
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            raise InvalidArgumentError(f"to must be a version number (int), got {to!r}")
        with self._lock:
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
        if signals.module_rolled_back.receivers:
            signals.module_rolled_back.send(
                self,
                module=name,
                version=target.info,
                previous=leaving.info,
                duration=time.perf_counter() - started,
            )
        return target.info

    # Introspection ----------------------------------------------------------------

    def current(self, module: str) -> CodeVersion:
        """The version a tracked module runs now. Raises ``UnknownModuleError``."""
        with self._lock:
            return self._tracked(_module_name(module)).current.info

    def history(self, module: str) -> tuple[CodeVersion, ...]:
        """The kept versions, oldest first: the ``keep`` newest plus the current one."""
        with self._lock:
            return self._tracked(_module_name(module)).history.infos()

    def modules(self) -> tuple[str, ...]:
        """The names of the tracked modules, sorted."""
        with self._lock:
            self._finish_pending()
            return tuple(sorted(self._modules))

    def watch(self, *paths: str | os.PathLike[str], debounce: float = 0.05) -> Watcher:
        """Swap a tracked module whenever its file changes (needs the ``watch`` extra).

        ``paths`` are files or directories to watch; none means the
        directories of every tracked module's file. A save that fails to swap
        keeps the running version (``swap_failed`` is sent) and the watcher
        goes on. Stop it with ``Watcher.stop()`` or a ``with`` block.
        """
        from illunare._reload.watcher import Watcher  # noqa: PLC0415  # optional extra

        return Watcher(self, paths, debounce=debounce)

    def source_files(self) -> dict[str, str]:
        """Tracked module name -> the absolute path of its source file, for those that have one."""
        with self._lock:
            files = {
                name: getattr(tracked.module, "__file__", None)
                for name, tracked in self._modules.items()
            }
        return {name: os.path.abspath(path) for name, path in files.items() if path}

    # Internals ------------------------------------------------------------------

    def _resolve(self, module: str | types.ModuleType) -> types.ModuleType:
        if isinstance(module, str):
            found = sys.modules.get(module)
            if found is None:
                try:
                    found = importlib.import_module(module)
                except ImportError as error:
                    raise UnknownModuleError(
                        f"cannot import {module}: {error}", module=module
                    ) from error
            module = found
        if not is_module(module):
            raise InvalidArgumentError(f"expected a module or its name, got {module!r}")
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if origin in ("built-in", "frozen") or (
            isinstance(origin, str) and origin.endswith((".so", ".pyd"))
        ):
            raise InvalidArgumentError(
                f"{module.__name__} is a built-in or extension module; "
                "only modules written in Python can be hot-swapped"
            )
        return module

    def _forget(self, module: types.ModuleType) -> None:
        """Stop versioning ``module``: another reloader took it over."""
        with self._lock:
            tracked = self._modules.get(module.__name__)
            if tracked is not None and tracked.module is module:
                del self._modules[module.__name__]
            self._pending.discard(module.__name__)

    def _tracked(self, name: str) -> TrackedModule:
        tracked = self._modules.get(name)
        # A module imported again under a tracked name is tracked anew once
        # its import finishes (if @hot marked it), replacing the old entry.
        if tracked is None or _is_stale(tracked):
            self._finish_pending()
            tracked = self._modules.get(name)
        if tracked is None:
            raise UnknownModuleError(
                f"{name} is not tracked; call track({name!r}) or use @hot first", module=name
            )
        return tracked

    def _finish_pending(self) -> None:
        for name in list(self._pending):
            module = sys.modules.get(name)
            owner = _owner(module) if module is not None else None
            if module is None or owner not in (None, self):
                self._pending.discard(name)  # gone, or versioned by another reloader
            elif not _initializing(module):
                self.track(module)

    def _commit(self, tracked: TrackedModule, prepared: Prepared, reason: str) -> CodeVersion:
        """Record the prepared version and make it live."""
        info = CodeVersion(
            module=tracked.name,
            number=tracked.history.next_number,
            sha256=prepared.source.sha256,
            created_at=time.time(),
            reason=reason,
            parent=tracked.current.info.number,
        )
        namespace = prepared.namespace
        version = ModuleVersion(
            info=info,
            namespace=namespace,
            targets=prepared.targets,
            classes=prepared.classes,
            preserve=prepared.preserve,
            code=prepared.code,
            lines_key=prepared.lines_key,
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
    if isinstance(module, types.ModuleType):
        return module.__name__
    if not isinstance(module, str):
        raise InvalidArgumentError(f"module must be a module name (str), got {module!r}")
    return module
