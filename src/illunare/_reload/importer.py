"""Import hooks: modules tracked from their first import, and ``importlib.reload()`` as a swap."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["HotFinder", "ReloadFinder"]


class HotFinder(importlib.abc.MetaPathFinder):
    """Finds the packages' modules with the other finders; tracks each once loaded."""

    def __init__(self, track: Callable[[types.ModuleType], object]) -> None:
        self._track = track
        self.packages: set[str] = set()

    def covers(self, fullname: str) -> bool:
        """Whether ``fullname`` is one of the packages or inside one."""
        return any(
            fullname == package or fullname.startswith(package + ".") for package in self.packages
        )

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Return the spec the other finders give, its loader wrapped to track the module."""
        if target is not None or not self.covers(fullname):
            return None  # a reload (target: the module) is ReloadFinder's
        for finder in sys.meta_path:
            if isinstance(finder, HotFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = TrackingLoader(spec.loader, self._track)
        return spec


class TrackingLoader(importlib.abc.Loader):
    """Delegates everything to the real loader; tracks the module right after it executes."""

    def __init__(self, loader: Any, track: Callable[[types.ModuleType], object]) -> None:
        self._loader = loader
        self._track = track

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        """Let the real loader create the module."""
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Execute the module with the real loader, then start versioning it."""
        self._loader.exec_module(module)
        self._track(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, get_resource_reader ...: whatever tools
        # such as inspect, linecache and importlib.resources ask for.
        return getattr(self._loader, name)


class Swapper(Protocol):
    """What ReloadFinder needs of the reloader that owns a module."""

    def swap(self, module: str, *, reason: str = ...) -> object:
        """Re-read the module's own file and make it the current version."""


class ReloadFinder(importlib.abc.MetaPathFinder):
    """Makes ``importlib.reload()`` of a tracked module a swap by the reloader that owns it.

    ``importlib.reload(module)`` asks each finder on ``sys.meta_path`` for a
    spec, passing the module as ``target``, and then calls the spec's
    ``loader.exec_module(module)``: left alone, the module's loader would
    execute the new code into the running version's namespace, so the
    version recorded in the history would change in place while the proxies
    kept calling its old functions. This finder answers first for a tracked
    module, with a loader that swaps instead.
    """

    def __init__(self, owner: Callable[[types.ModuleType], Swapper | None]) -> None:
        self._owner = owner

    def install(self) -> None:
        """Put the finder on ``sys.meta_path`` ahead of the others, once."""
        # Only ever inserted, never moved: an import iterating sys.meta_path in
        # another thread may see a finder twice after an insertion at the
        # front, but would skip one if the list lost an element meanwhile.
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """For a reload of a tracked module, a spec whose loader swaps; otherwise ``None``."""
        if not isinstance(target, types.ModuleType):
            return None  # a first import (no target): the other finders' business
        owner = self._owner(target)
        if owner is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, SwappingLoader(owner, target))


# What importlib.reload() rewrites on the module (in the running version's
# namespace) from the spec before it calls exec_module.
_SPEC_ATTRIBUTES = (
    "__name__",
    "__loader__",
    "__package__",
    "__spec__",
    "__path__",
    "__file__",
    "__cached__",
)


class SwappingLoader(importlib.abc.Loader):
    """Executes a reload as ``swap(name)``: a new version from the module's own file."""

    def __init__(self, owner: Swapper, module: types.ModuleType) -> None:
        self._owner = owner
        namespace = module.__dict__
        # Put back in exec_module: the namespace, and every version copied
        # from it, must keep the module's own spec and loader (which swap()
        # re-reads the file through, and inspect and linecache ask), not this
        # one-off loader that importlib.reload() writes there.
        self._attributes = {key: namespace[key] for key in _SPEC_ATTRIBUTES if key in namespace}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        """Create nothing: a reload runs on the module that exists."""
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        """Restore the module's attributes, then swap in its file (errors propagate)."""
        namespace = module.__dict__
        for key in _SPEC_ATTRIBUTES:
            if key in self._attributes:
                namespace[key] = self._attributes[key]
            else:
                namespace.pop(key, None)
        self._owner.swap(module.__name__, reason="importlib.reload()")

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename ...: asked of the module's loader by tools
        # (inspect, linecache) that run while the reload is under way. Private
        # and special names are not delegated (nor looked up before __init__).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._attributes.get("__loader__"), name)
