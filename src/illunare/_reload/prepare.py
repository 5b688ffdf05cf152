"""Preparing a new version: everything a swap does before anything live changes."""

from __future__ import annotations

import contextlib
import contextvars
import importlib.abc
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from illunare._reload.binding import class_problems, stable_classes
from illunare._reload.classes import data_attributes
from illunare._reload.kinds import kind_changes
from illunare._reload.locking import LOCK
from illunare._reload.models import rebind_models
from illunare._reload.namespace import install_namespace
from illunare._reload.orm import (
    declared_preserve,
    mapped_classes,
    refuse_unpreserved,
    without_classes,
)
from illunare._reload.proxy import Preparation, preparing
from illunare._reload.registrations import Registration, exchange, recording
from illunare._reload.source import SourceText, compile_source, forget_lines, remember_lines
from illunare._reload.versions import ModuleVersion, TrackedModule
from illunare.exceptions import InvalidArgumentError, LoadError, ValidationError

__all__ = [
    "Check",
    "Prepared",
    "Undo",
    "candidate_module",
    "prepare",
    "preserved_names",
    "run_checks",
    "source_filename",
    "undone_on_failure",
    "validate_checks",
]

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
    """A new version, executed, migrated and checked; not yet bound to the stable objects."""

    source: SourceText
    code: types.CodeType
    namespace: dict[str, Any]
    filename: str
    #: qualified names the new source decorated with ``@hot``
    hot_names: set[str]
    #: the names the new source lists in ``__hot_preserve__``
    preserve: frozenset[str]
    #: preserved name -> the live value copied in before migration and checks
    carried: dict[str, object]
    #: the classes' data attributes (``classes.data_attributes``)
    class_data: dict[str, dict[str, str]]
    #: what the new code registered outside its namespace (``registrations.py``)
    registrations: tuple[Registration, ...]

    @property
    def lines_key(self) -> str | None:
        """The linecache entry of a source that has no file."""
        return None if self.source.path else self.filename


#: The modules that the preparation running in this context has imported.
_imported: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "illunare_imported", default=None
)


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Notes each module that a preparation imports, so that a failed one can remove them.

    First on ``sys.meta_path``, it is asked about every module about to be
    imported (HotFinder asks it too) and finds none itself. Only imports made
    in the preparation's own context are noted: a module another thread
    imports meanwhile is never removed. (A finder put ahead of it by someone
    else hides that finder's modules from it: those are kept, never wrongly
    removed.)
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> None:
        """Note ``fullname`` if a preparation runs in this context; find nothing."""
        imported = _imported.get()
        if imported is not None:
            imported.add(fullname)


_RECORDER = _ImportRecorder()


def source_filename(module: str, text: SourceText) -> str:
    """The filename a version's code gets: its file, or a name made from its digest."""
    return text.path or f"<illunare {module} {text.sha256[:12]}>"


@attrs.define(eq=False)
class Undo:
    """What ``undone_on_failure`` removes if its block raises."""

    #: modules the preparations imported (in this context)
    imported: set[str] = attrs.Factory(set)
    #: linecache entries of sources with no file that no kept version shares
    lines: list[str] = attrs.Factory(list)
    #: each prepared version's registrations, and its module (``registrations.py``)
    registrations: list[tuple[tuple[Registration, ...], TrackedModule]] = attrs.Factory(list)

    def remember(self, text: SourceText, filename: str, *, lines_kept: bool) -> None:
        """Put the lines of ``text`` in ``linecache`` for tracebacks (unless it has a file)."""
        if text.path is None:
            remember_lines(filename, text.text)
            if not lines_kept:
                self.lines.append(filename)


@contextlib.contextmanager
def undone_on_failure(undo: Undo) -> Iterator[None]:
    """Scope of the preparations of a release: if the block raises, nothing of them is left.

    The modules their execution imports are noted, and the sources'
    lines remembered (``Undo.remember``); when the block raises anything (a
    ``BaseException`` included), what the prepared versions registered is
    withdrawn (the running versions' entries restored), those modules leave
    ``sys.modules`` and the lines are forgotten, unless a kept version shares them.
    """
    if _RECORDER not in sys.meta_path:
        with LOCK:
            if _RECORDER not in sys.meta_path:
                sys.meta_path.insert(0, _RECORDER)
    token = _imported.set(undo.imported)
    try:
        yield
    except BaseException:
        with LOCK:
            for registrations, tracked in undo.registrations:
                exchange(registrations, tracked.current.registrations)
        for name in undo.imported:
            sys.modules.pop(name, None)
        for filename in undo.lines:
            forget_lines(filename)
        raise
    finally:
        _imported.reset(token)


def prepare(
    tracked: TrackedModule,
    base: ModuleVersion,
    text: SourceText,
    filename: str,
    *,
    compiled: types.CodeType | None,
    released: Mapping[type, type],
) -> Prepared:
    """Compile, execute and migrate ``text`` as the successor of ``base``.

    This runs user code (the new source, ``__hot_migrate__``): call it
    without holding ``LOCK``, inside ``undone_on_failure``. ``compiled`` is
    the code of a kept version with the same source, if any; ``released``
    maps the new classes of the release's other modules to their stable
    classes (a subclass of one keeps its bases). Raises
    CompileError, LoadError or ValidationError; nothing live changes either way.
    """
    name = tracked.name
    mapped = mapped_classes(base.namespace, name)
    if mapped:
        # Refused before the new code runs where its source tells (else after).
        declared = declared_preserve(text.text, filename)
        if declared is not None:
            refuse_unpreserved(name, mapped, declared)
    code = compiled if compiled is not None else compile_source(text.text, filename, name)
    if mapped:
        # The live mapped classes stand in for their statements, which do not run.
        code = without_classes(text.text, filename, mapped)
    namespace: dict[str, Any] = {}
    inherited = {id(value) for value in list(base.namespace.values())}
    with recording(name, namespace, base.registrations, inherited) as registrations:
        hot_names = _execute(name, base.namespace, code, mapped, namespace)
        preserve = preserved_names(namespace, name)
        refuse_unpreserved(name, mapped, preserve)
        carried = {key: base.namespace[key] for key in preserve if key in base.namespace}
        namespace.update(carried)
        _migrate(namespace, base.namespace, name)
        problems = class_problems(tracked, namespace, released) if tracked.classes else []
        problems += kind_changes(name, base.targets, base.classes, namespace)
        if problems:
            raise ValidationError(
                f"the new version of {name} cannot replace the running one: " + "; ".join(problems),
                module=name,
            )
        try:
            rebind_models(namespace, {**released, **stable_classes(tracked, namespace)})
        except Exception as error:
            raise ValidationError(
                f"the models of the new version of {name} cannot be bound to the running classes: "
                f"{type(error).__name__}: {error}",
                module=name,
            ) from error
    class_data = data_attributes(text.text, namespace)
    return Prepared(
        text,
        code,
        namespace,
        filename,
        hot_names,
        preserve,
        carried,
        class_data,
        tuple(registrations),
    )


def _execute(
    module: str,
    old: dict[str, Any],
    code: types.CodeType,
    kept: Iterable[str],
    namespace: dict[str, Any],
) -> set[str]:
    """Run the new code in the fresh ``namespace``; return the names it decorated with @hot.

    The namespace starts with the module's attributes and the ``kept`` names of ``old``.
    """
    namespace.update({key: old[key] for key in (*_MODULE_ATTRIBUTES, *kept) if key in old})
    namespace["__doc__"] = None
    preparation = Preparation(module)
    token = preparing.set(preparation)
    try:
        exec(code, namespace)  # noqa: S102  # running the new version is the point
    except BaseException as error:
        # SystemExit and KeyboardInterrupt from the new source too: they refuse
        # this version, they do not end the program (or the watcher).
        raise LoadError(
            f"executing the new source of {module} raised {type(error).__name__}: {error}",
            module=module,
        ) from error
    finally:
        preparing.reset(token)
    return preparation.hot_names


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
        if isinstance(result, Mapping):
            namespace.update(result)
    except BaseException as error:
        raise ValidationError(
            f"__hot_migrate__ of {module} raised {type(error).__name__}: {error}", module=module
        ) from error


def validate_checks(checks: object) -> tuple[Check, ...]:
    """``checks`` as a tuple of callables, or InvalidArgumentError."""
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Iterable):
        raise InvalidArgumentError(f"checks must be a sequence of callables, got {checks!r}")
    checks = tuple(checks)
    for check in checks:
        if not callable(check):
            raise InvalidArgumentError(f"a check must be callable, got {check!r}")
    return checks


def candidate_module(name: str, namespace: dict[str, Any]) -> types.ModuleType:
    """A module object showing a prepared ``namespace``, for checks and sibling imports."""
    candidate = types.ModuleType(name)
    install_namespace(candidate, namespace)  # under LOCK, like every switch of a namespace
    return candidate


def run_checks(
    subject: object, checks: Sequence[Callable[[Any], object]], *, what: str, module: str
) -> None:
    """Call each check with ``subject``; one that raises or returns ``False`` refuses it.

    The ValidationError names the check and ``what`` (e.g. "the new version of m").
    """
    for check in checks:
        label = getattr(check, "__qualname__", None) or repr(check)
        try:
            result = check(subject)
        except BaseException as error:
            raise ValidationError(
                f"check {label} refused {what}: {type(error).__name__}: {error}",
                module=module,
            ) from error
        if result is False:
            raise ValidationError(f"check {label} refused {what} (returned False)", module=module)
