"""Preparing a new version: everything a swap does before anything live changes."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from illunare._reload.binding import absorb, class_problems
from illunare._reload.classes import ClassState
from illunare._reload.namespace import install_namespace
from illunare._reload.proxy import Preparation, preparing
from illunare._reload.source import (
    Source,
    SourceText,
    compile_source,
    forget_lines,
    read_source,
    remember_lines,
)
from illunare._reload.versions import TrackedModule
from illunare.exceptions import InvalidArgumentError, LoadError, SwapError, ValidationError

__all__ = ["Check", "Prepared", "prepare", "preserved_names", "validate_checks"]

#: A check receives the new module before it goes live; raising or returning
#: ``False`` refuses the new version.
Check = Callable[[types.ModuleType], object]

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


@attrs.define(eq=False)
class Prepared:
    """A new version, executed, checked and bound to the stable objects; not yet live."""

    source: SourceText
    code: types.CodeType
    namespace: dict[str, Any]
    filename: str
    targets: dict[str, Callable[..., Any]]
    classes: dict[str, ClassState]
    #: the names the new source lists in ``__hot_preserve__``
    preserve: frozenset[str]
    #: preserved name -> the live value copied in before migration and checks
    carried: dict[str, object]

    @property
    def lines_key(self) -> str | None:
        """The linecache entry of a source that has no file."""
        return None if self.source.path else self.filename


def prepare(tracked: TrackedModule, source: Source, checks: Sequence[Check]) -> Prepared | None:
    """Compile, execute, migrate and check the new source; ``None`` if it is the running one.

    Raises CompileError, LoadError or ValidationError, leaving everything as it was
    (modules the new source imported are removed from ``sys.modules`` again).
    """
    name = tracked.name
    text = read_source(tracked.module, source)
    if text.sha256 == tracked.current.info.sha256:
        return None
    filename = text.path or f"<illunare {name} {text.sha256[:12]}>"
    known = tracked.history.find(text.sha256)
    if known is not None and known.code is not None and known.code.co_filename == filename:
        code = known.code  # the same source compiled before: no need to again
    else:
        code = compile_source(text.text, filename, name)
    if text.path is None:
        remember_lines(filename, text.text)
    # sys.modules keeps insertion order: what the new source imports comes
    # after its last entry now.
    last_module = next(reversed(sys.modules))
    try:
        namespace, hot_names = _execute(tracked, code)
        old = tracked.current.namespace
        preserve = preserved_names(namespace, name)
        carried = {key: old[key] for key in preserve if key in old}
        namespace.update(carried)
        _migrate(namespace, old, name)
        problems = class_problems(tracked, namespace) if tracked.classes else []
        if problems:
            raise ValidationError(
                f"the new version of {name} cannot replace the running one: " + "; ".join(problems),
                module=name,
            )
        _run_checks(namespace, checks, name)
    except SwapError:
        _forget_modules_after(last_module)
        if text.path is None and known is None:
            forget_lines(filename)
        raise
    targets, classes = absorb(tracked, namespace, hot_names)
    return Prepared(text, code, namespace, filename, targets, classes, preserve, carried)


def _forget_modules_after(last_module: str) -> None:
    """Remove the modules imported since ``last_module`` was the newest in sys.modules."""
    added = []
    for name in reversed(sys.modules):
        if name == last_module:
            break
        added.append(name)
    else:
        return  # the marker itself is gone: nothing can be told apart safely
    for name in added:
        sys.modules.pop(name, None)


def _execute(tracked: TrackedModule, code: types.CodeType) -> tuple[dict[str, Any], set[str]]:
    """Run the new code in a fresh namespace; return it and the names it decorated with @hot."""
    old = tracked.current.namespace
    namespace: dict[str, Any] = {key: old[key] for key in _MODULE_ATTRIBUTES if key in old}
    namespace["__doc__"] = None
    preparation = Preparation(tracked.name)
    token = preparing.set(preparation)
    try:
        exec(code, namespace)  # noqa: S102  # running the new version is the point
    except Exception as error:
        raise LoadError(
            f"executing the new source of {tracked.name} raised {type(error).__name__}: {error}",
            module=tracked.name,
        ) from error
    finally:
        preparing.reset(token)
    return namespace, preparation.hot_names


def preserved_names(namespace: Mapping[str, Any], module: str) -> frozenset[str]:
    """The names listed in ``__hot_preserve__``, validated."""
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


def validate_checks(checks: object) -> tuple[Check, ...]:
    """``checks`` as a tuple of callables, or InvalidArgumentError."""
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Iterable):
        raise InvalidArgumentError(f"checks must be a sequence of callables, got {checks!r}")
    checks = tuple(checks)
    for check in checks:
        if not callable(check):
            raise InvalidArgumentError(f"a check must be callable, got {check!r}")
    return checks


def _run_checks(namespace: dict[str, Any], checks: Sequence[Check], module: str) -> None:
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
