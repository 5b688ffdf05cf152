"""Releases: several modules prepared together and switched in one flip.

A release executes the new source of each of its modules in a fresh
namespace, as a swap of one module does. While it prepares, an import
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
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import contextvars
import functools
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "Participant",
    "ReleaseImports",
    "preparation_order",
    "rebind",
    "release_imports",
    "top_level_imports",
]


class Participant(Protocol):
    """Something built from tracked modules that must follow each release (a web app, say).

    Registered with ``HotReloader._add_participant`` and called for every
    release: ``swap``, ``swap_many``, ``rollback``, ``rollback_many`` and the
    watcher's.
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


@functools.lru_cache(maxsize=512)
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
    """The modules of ``imports`` (name -> what it imports) in order, each after those it imports.

    Otherwise in the mapping's order; in a cycle, the one first in it comes first.
    """
    order: list[str] = []
    for name in imports:
        _place(name, imports, order, set())
    return order


def _place(
    name: str, imports: Mapping[str, Iterable[str]], order: list[str], seen: set[str]
) -> None:
    if name in seen or name in order:
        return
    seen.add(name)
    wanted = set(imports[name])
    for other in imports:
        if other in wanted and other != name:
            _place(other, imports, order, seen)
    order.append(name)


# Sibling imports ------------------------------------------------------------------


@attrs.define(eq=False)
class ReleaseImports:
    """What ``import`` finds, in the preparing thread, for the modules of one release."""

    #: module name -> the new version's module object, once it has executed
    candidates: dict[str, types.ModuleType] = attrs.Factory(dict)
    #: id -> (an object the imports handed out in place of a module, that real module)
    stand_ins: dict[int, tuple[types.ModuleType, types.ModuleType]] = attrs.Factory(dict)

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


_release: contextvars.ContextVar[ReleaseImports | None] = contextvars.ContextVar(
    "illunare_release", default=None
)

# The ``builtins.__import__`` the wrapper delegates to, and how many releases
# prepare. The wrapper is removed when none does, unless someone wrapped it in
# turn meanwhile: then it stays in their chain (and is not wrapped again).
_wrapping = threading.Lock()
_wrapped: list[Callable[..., Any]] = []
_users = 0
_chained = False


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
def release_imports(release: ReleaseImports) -> Iterator[None]:
    """Within the block, imports in this context see ``release``'s candidates."""
    global _users, _chained  # noqa: PLW0603  # one wrapper for the process
    with _wrapping:
        if _users == 0 and not _chained:
            _wrapped[:] = [builtins.__import__]
            builtins.__import__ = _release_import
        _users += 1
    token = _release.set(release)
    try:
        yield
    finally:
        _release.reset(token)
        with _wrapping:
            _users -= 1
            if _users == 0 and not _chained:
                if builtins.__import__ is _release_import:
                    builtins.__import__ = _wrapped[0]
                else:
                    _chained = True


# Release-wide binding -------------------------------------------------------------


def rebind(
    namespaces: Iterable[dict[str, Any]], stable: Mapping[int, tuple[object, object]]
) -> None:
    """Replace, in every namespace, each value ``stable`` maps (by id) by its stable object.

    ``stable``: id of a raw new object -> (that object, what stands for it).
    """
    if not stable:
        return
    for namespace in namespaces:
        replaced = {}
        for key, value in namespace.items():
            entry = stable.get(id(value))
            if entry is not None and entry[0] is value:
                replaced[key] = entry[1]
        namespace.update(replaced)
