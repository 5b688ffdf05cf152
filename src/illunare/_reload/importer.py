"""The import hook behind ``HotReloader.install``: modules tracked from their first import."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HotFinder"]


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
        if not self.covers(fullname):
            return None
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
