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
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from illunare import signals
from illunare._reload.classes import (
    ClassState,
    apply_class_state,
    class_state,
    incompatibility,
    rebind_class_cells,
)
from illunare._reload.importer import HotFinder
from illunare._reload.namespace import install_namespace
from illunare._reload.proxy import HotFunction, Preparation, preparing
from illunare._reload.source import (
    Source,
    SourceText,
    compile_source,
    digest,
    forget_lines,
    read_source,
    remember_lines,
)
from illunare._reload.versions import CodeVersion, History, ModuleVersion, TrackedModule
from illunare.exceptions import (
    ConflictError,
    InvalidArgumentError,
    LoadError,
    RollbackError,
    SwapError,
    UnknownModuleError,
    ValidationError,
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

# What a new version inherits from the module object before its source runs.
_MODULE_ATTRIBUTES = (
    "__name__",
    "__file__",
    "__spec__",
    "__loader__",
    "__package__",
    "__path__",
    "__cached__",
    "__builtins__",
)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _is_function_of(value: object, module: str) -> bool:
    """A function (or a functools.wraps-style wrapper of one) defined in ``module``."""
    if isinstance(value, types.FunctionType):
        return value.__module__ == module
    return (
        callable(value)
        and not isinstance(value, type)
        and hasattr(value, "__wrapped__")
        and getattr(value, "__module__", None) == module
    )


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


@attrs.define(eq=False)
class _Prepared:
    """A new version, executed and checked, not yet live."""

    source: SourceText
    code: types.CodeType
    namespace: dict[str, Any]
    filename: str
    preparation: Preparation
    #: preserved name -> the live value copied in before migration and checks
    carried: dict[str, object]


class HotReloader:
    """Keeps every tracked module versioned and switches versions atomically.

    Args:
        keep: how many of the most recently created versions of each module
            are kept for rollback (the current one is always kept).

    """

    def __init__(self, *, keep: int = 10) -> None:
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
                if self._finder.covers(name) and isinstance(module, types.ModuleType):
                    self.track(module)

    def track(self, module: str | types.ModuleType) -> types.ModuleType:
        """Start versioning a module; version 1 is the code as loaded.

        Every function defined at the module's top level is replaced, in the
        module, by its stable proxy, so references taken from now on follow
        swaps. Returns the module object itself: it stays in ``sys.modules``
        and on its parent package, and always shows the current version.

        Raises:
            UnknownModuleError: no module of that name can be imported.
            InvalidArgumentError: not a module, or a built-in or extension module.
            ConflictError: another HotReloader tracks the module.

        """
        module = self._resolve(module)
        name = module.__name__
        with self._lock:
            tracked = self._modules.get(name)
            if tracked is not None and tracked.module is module:
                return module
            owner = _OWNERS.get(module)
            if owner is not None and owner() not in (None, self):
                raise ConflictError(f"{name} is tracked by another HotReloader", module=name)
            text = _original_source(module)
            history = History(keep=self.keep)
            namespace = module.__dict__
            placeholder = ModuleVersion(
                info=CodeVersion(name, 1, digest(text), time.time(), "loaded"),
                namespace=namespace,
                targets={},
                classes={},
                preserve=_preserve_names(namespace, name),
                code=None,
            )
            tracked = TrackedModule(name, module, placeholder, history)
            placeholder.targets, placeholder.classes = self._absorb(tracked, namespace, set())
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
            return self._proxy(tracked, qualname, target)  # type: ignore[return-value]

    # Swapping -------------------------------------------------------------------

    def swap(
        self,
        module: str,
        source: Source = None,
        *,
        checks: Sequence[Callable[[types.ModuleType], object]] = (),
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
        checks = _validate_checks(checks)
        try:
            with self._lock:
                tracked = self._tracked(name)
                prepared = self._prepare(tracked, source, checks)
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
            if target is leaving:
                return leaving.info
            self._flip(tracked, target, target.preserve | leaving.preserve)
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
        if not isinstance(module, types.ModuleType):
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

    def _tracked(self, name: str) -> TrackedModule:
        tracked = self._modules.get(name)
        if tracked is None:
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
            if module is None:
                self._pending.discard(name)
            elif not _initializing(module):
                self.track(module)

    def _proxy(
        self, tracked: TrackedModule, qualname: str, target: Callable[..., Any]
    ) -> HotFunction:
        proxy = tracked.proxies.get(qualname)
        if proxy is None:
            proxy = tracked.proxies[qualname] = HotFunction(target, tracked.name, qualname)
        return proxy

    def _prepare(
        self,
        tracked: TrackedModule,
        source: Source,
        checks: Sequence[Callable[[types.ModuleType], object]],
    ) -> _Prepared | None:
        name = tracked.name
        text = read_source(tracked.module, source)
        if text.sha256 == tracked.current.info.sha256:
            return None
        filename = text.path or f"<illunare {name} {text.sha256[:12]}>"
        known = tracked.history.find(text.sha256)
        if known is not None and known.code is not None and known.code.co_filename == filename:
            code = known.code  # the same source compiled before: reuse it
        else:
            code = compile_source(text.text, filename, name)
        if text.path is None:
            remember_lines(filename, text.text)
        old = tracked.current.namespace
        namespace: dict[str, Any] = {key: old[key] for key in _MODULE_ATTRIBUTES if key in old}
        namespace["__doc__"] = None
        preparation = Preparation(name)
        imported = set(sys.modules)
        token = preparing.set(preparation)
        try:
            try:
                exec(code, namespace)  # noqa: S102  # running the new version is the point
            except Exception as error:
                raise LoadError(
                    f"executing the new source of {name} raised {type(error).__name__}: {error}",
                    module=name,
                ) from error
            finally:
                preparing.reset(token)
            carried = {key: old[key] for key in _preserve_names(namespace, name) if key in old}
            namespace.update(carried)
            _migrate(namespace, old, name)
            self._check_classes(tracked, namespace)
            _run_checks(namespace, checks, name)
        except SwapError:
            for added in set(sys.modules) - imported:
                sys.modules.pop(added, None)
            if text.path is None and tracked.history.find(text.sha256) is None:
                forget_lines(filename)
            raise
        return _Prepared(text, code, namespace, filename, preparation, carried)

    def _check_classes(self, tracked: TrackedModule, namespace: dict[str, Any]) -> None:
        problems = []
        for key, new in namespace.items():
            stable = tracked.classes.get(key)
            if stable is None or not _is_class_of(new, tracked.name, key):
                continue
            problem = incompatibility(stable, new, self._stable_bases(tracked, namespace, new))
            if problem is not None:
                problems.append(problem)
        if problems:
            raise ValidationError(
                f"the new version of {tracked.name} cannot replace the running one: "
                + "; ".join(problems),
                module=tracked.name,
            )

    @staticmethod
    def _stable_bases(
        tracked: TrackedModule, namespace: Mapping[str, Any], cls: type
    ) -> tuple[type, ...]:
        """The bases of ``cls``, the module's own new classes replaced by their stable ones."""
        return tuple(
            tracked.classes.get(base.__qualname__, base)
            if namespace.get(base.__qualname__) is base
            else base
            for base in cls.__bases__
        )

    def _commit(self, tracked: TrackedModule, prepared: _Prepared, reason: str) -> CodeVersion:
        namespace = prepared.namespace
        targets, classes = self._absorb(tracked, namespace, prepared.preparation.hot_names)
        leaving = tracked.current
        info = CodeVersion(
            module=tracked.name,
            number=tracked.history.next_number,
            sha256=prepared.source.sha256,
            created_at=time.time(),
            reason=reason,
            parent=leaving.info.number,
        )
        version = ModuleVersion(
            info=info,
            namespace=namespace,
            targets=targets,
            classes=classes,
            preserve=_preserve_names(namespace, tracked.name),
            code=prepared.code,
            lines_key=None if prepared.source.path else prepared.filename,
        )
        tracked.history.add(version)
        # A preserved value that __hot_migrate__ left alone takes the latest
        # live value at the switch, not the one copied during preparation.
        carry = [key for key, value in prepared.carried.items() if namespace.get(key) is value]
        self._flip(tracked, version, carry)
        tracked.history.evict(version)
        return info

    def _absorb(
        self, tracked: TrackedModule, namespace: dict[str, Any], hot_names: set[str]
    ) -> tuple[dict[str, Callable[..., Any]], dict[str, ClassState]]:
        """Bind a version's namespace to the module's stable proxies and classes.

        Returns the version's functions by qualified name and its class contents.
        """
        name = tracked.name
        stable_of: dict[type, type] = {}
        for key, value in namespace.items():
            if _is_class_of(value, name, key):
                stable_of[value] = tracked.classes.setdefault(key, value)
        targets: dict[str, Callable[..., Any]] = {}
        classes: dict[str, ClassState] = {}
        for key, value in list(namespace.items()):
            if _is_dunder(key):
                continue
            if isinstance(value, type) and value in stable_of:
                classes[key] = self._absorb_class(tracked, key, value, hot_names, targets)
                namespace[key] = stable_of[value]
            elif isinstance(value, HotFunction):
                if value._self_module == name:
                    tracked.proxies.setdefault(key, value)
                    targets[key] = value.__wrapped__
            elif _is_function_of(value, name):
                targets[key] = value
                namespace[key] = self._proxy(tracked, key, value)
            elif type(value) in stable_of and stable_of[type(value)] is not type(value):
                # An instance made by the new module code, e.g. DEFAULT = Cls().
                with contextlib.suppress(TypeError):
                    value.__class__ = stable_of[type(value)]
        _settle_classes(stable_of)
        return targets, classes

    def _absorb_class(
        self,
        tracked: TrackedModule,
        key: str,
        cls: type,
        hot_names: set[str],
        targets: dict[str, Callable[..., Any]],
    ) -> ClassState:
        state = class_state(cls)
        for attribute, member in state.items():
            qualname = f"{key}.{attribute}"
            if isinstance(member, HotFunction):
                tracked.proxies.setdefault(qualname, member)
                targets[qualname] = member.__wrapped__
            elif qualname in hot_names:
                targets[qualname] = member  # type: ignore[assignment]  # a function
                state[attribute] = self._proxy(tracked, qualname, member)  # type: ignore[arg-type]
            elif isinstance(member, types.FunctionType):
                targets[qualname] = member
        return state

    def _flip(self, tracked: TrackedModule, target: ModuleVersion, carry: Iterable[str]) -> None:
        """Make ``target`` the live version: namespace, classes and proxies."""
        old, new = tracked.current.namespace, target.namespace
        for key in carry:
            if key in old:
                new[key] = old[key]
        if hasattr(tracked.module, "__path__"):
            # Submodules imported since are attributes of the package itself.
            prefix = tracked.name + "."
            for key, value in old.items():
                if isinstance(value, types.ModuleType) and value.__name__ == prefix + key:
                    new.setdefault(key, value)
        for name, cls in tracked.classes.items():
            state = target.classes.get(name)
            if state is not None:
                apply_class_state(cls, state)
        install_namespace(tracked.module, new)
        targets = target.targets
        for qualname, proxy in tracked.proxies.items():
            function = targets.get(qualname)
            if function is None:
                proxy.retarget(None)
            else:
                proxy.__wrapped__ = function
        tracked.current = target


def _module_name(module: object) -> str:
    if isinstance(module, types.ModuleType):
        return module.__name__
    if not isinstance(module, str):
        raise InvalidArgumentError(f"module must be a module name (str), got {module!r}")
    return module


def _settle_classes(stable_of: Mapping[type, type]) -> None:
    """Make a version's classes refer to the stable classes instead of their own."""
    for new, stable in stable_of.items():
        if new is stable:
            # A class first seen now: a subclass of the module's own classes
            # must inherit from their stable objects.
            bases = tuple(stable_of.get(base, base) for base in new.__bases__)
            if bases != new.__bases__:
                new.__bases__ = bases
        else:
            rebind_class_cells(new, stable)


def _is_class_of(value: object, module: str, key: str) -> bool:
    return isinstance(value, type) and value.__module__ == module and value.__qualname__ == key


def _preserve_names(namespace: Mapping[str, Any], module: str) -> frozenset[str]:
    names = namespace.get("__hot_preserve__", ())
    if isinstance(names, str) or not isinstance(names, (tuple, list, set, frozenset)):
        raise ValidationError(
            f"__hot_preserve__ of {module} must be a tuple of names, got {names!r}",
            module=module,
        )
    if not all(isinstance(name, str) for name in names):
        raise ValidationError(
            f"__hot_preserve__ of {module} must hold only str names, got {names!r}",
            module=module,
        )
    return frozenset(names)


def _migrate(namespace: dict[str, Any], old: dict[str, Any], module: str) -> None:
    migrate = namespace.get("__hot_migrate__")
    if migrate is None:
        return
    if not callable(migrate):
        raise ValidationError(f"__hot_migrate__ of {module} is not callable", module=module)
    try:
        result = migrate(types.MappingProxyType(old))
    except Exception as error:
        raise ValidationError(
            f"__hot_migrate__ of {module} raised {type(error).__name__}: {error}", module=module
        ) from error
    if isinstance(result, Mapping):
        namespace.update(result)


def _validate_checks(
    checks: object,
) -> Sequence[Callable[[types.ModuleType], object]]:
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Iterable):
        raise InvalidArgumentError(f"checks must be a sequence of callables, got {checks!r}")
    checks = tuple(checks)
    for check in checks:
        if not callable(check):
            raise InvalidArgumentError(f"a check must be callable, got {check!r}")
    return checks


def _run_checks(
    namespace: dict[str, Any],
    checks: Sequence[Callable[[types.ModuleType], object]],
    module: str,
) -> None:
    if not checks:
        return
    candidate = types.ModuleType(module)
    install_namespace(candidate, namespace)
    for check in checks:
        label = getattr(check, "__qualname__", repr(check))
        try:
            result = check(candidate)
        except Exception as error:
            raise ValidationError(
                f"check {label} refused the new version of {module}: "
                f"{type(error).__name__}: {error}",
                module=module,
            ) from error
        if result is False:
            raise ValidationError(
                f"check {label} refused the new version of {module} (returned False)",
                module=module,
            )
