"""``importlib.reload()`` of a tracked module is a swap: a new version from its own file."""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
import types
from typing import Any

import pytest

import illunare
from illunare import CompileError, HotReloader, LoadError, signals
from illunare._reload.importer import ReloadFinder

from .conftest import Package, dedent

SOURCE = """
VERSION = {n}

def value():
    return VERSION

class Thing:
    def version(self):
        return VERSION
"""


def _source(n: int) -> str:
    return dedent(SOURCE.format(n=n))


@pytest.fixture
def module(package: Package, reloader: HotReloader) -> types.ModuleType:
    """A tracked module at version 1."""
    tracked = package.module("mod", _source(1))
    reloader.track(tracked)
    return tracked


class TestReloadSwaps:
    def test_every_reference_runs_the_new_code(
        self, module: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """After reload, m.value(), an imported value() and an old instance all run v2."""
        value = module.value
        thing = module.Thing()
        swapped: list[object] = []
        package.write("mod", _source(2))
        with signals.module_swapped.connected_to(lambda sender, **kw: swapped.append(kw)):
            assert importlib.reload(module) is module
        assert (module.value(), value(), thing.version(), module.VERSION) == (2, 2, 2, 2)
        history = reloader.history(module.__name__)
        assert [(v.number, v.parent) for v in history] == [(1, None), (2, 1)]
        assert history[-1].reason == "importlib.reload()"
        assert len(swapped) == 1

    def test_the_replaced_version_is_kept_intact(
        self, module: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Rolling back after a reload runs version 1's code and values again."""
        value = module.value
        package.write("mod", _source(2))
        importlib.reload(module)
        assert reloader.rollback(module.__name__).number == 1
        assert (module.value(), value(), module.Thing().version(), module.VERSION) == (1, 1, 1, 1)

    def test_identical_source_makes_no_new_version(
        self, module: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Reloading an unchanged file keeps the current version."""
        namespace = module.__dict__
        importlib.reload(module)
        assert [v.number for v in reloader.history(module.__name__)] == [1]
        assert module.__dict__ is namespace

    def test_the_module_keeps_its_own_spec_and_loader(
        self, module: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """The spec and loader stay the module's, so swap(name) and inspect still read its file."""
        spec, loader = module.__spec__, module.__loader__
        package.write("mod", _source(2))
        importlib.reload(module)
        assert (module.__spec__, module.__loader__) == (spec, loader)
        assert "VERSION = 2" in inspect.getsource(module)
        package.write("mod", _source(3))
        assert reloader.swap(module.__name__).number == 3
        assert module.value() == 3

    def test_a_module_tracked_by_hot(self, package: Package) -> None:
        """A module whose functions are @hot (the default reloader) reloads as a swap."""
        source = "from illunare import hot\n\n@hot\ndef value():\n    return {n}\n"
        module = package.module("hotmod", source.format(n=1))
        value = module.value
        package.write("hotmod", source.format(n=2))
        importlib.reload(module)
        assert (module.value(), value()) == (2, 2)
        assert illunare.default_reloader().current(module.__name__).number == 2

    def test_a_module_tracked_by_install(self, package: Package, reloader: HotReloader) -> None:
        """A module tracked by install() from its first import reloads as a swap."""
        reloader.install(package.name)
        module = package.module("installed", _source(1))
        value = module.value
        package.write("installed", _source(2))
        importlib.reload(module)
        assert (module.value(), value()) == (2, 2)
        assert reloader.current(module.__name__).number == 2


class TestFailedReload:
    @pytest.mark.parametrize(
        ("source", "error"),
        [
            pytest.param("def value(:\n", CompileError, id="syntax"),
            pytest.param("raise RuntimeError('boom')\n", LoadError, id="raises"),
        ],
    )
    def test_nothing_changes(
        self,
        module: types.ModuleType,
        reloader: HotReloader,
        package: Package,
        source: str,
        error: type[Exception],
    ) -> None:
        """A bad file makes reload raise the swap's typed error; module and history stay."""
        value = module.value
        namespace = dict(module.__dict__)
        package.write("mod", source)
        with pytest.raises(error):
            importlib.reload(module)
        assert (module.value(), value(), module.Thing().version()) == (1, 1, 1)
        assert dict(module.__dict__) == namespace
        assert [v.number for v in reloader.history(module.__name__)] == [1]
        package.write("mod", _source(2))
        importlib.reload(module)
        assert (module.value(), value()) == (2, 2)


class TestOtherImports:
    def test_untracked_modules_reload_as_usual(self, package: Package) -> None:
        """Reloading a module no reloader tracks re-executes it in place, as Python does."""
        HotReloader().track(package.module("tracked", _source(1)))
        module = package.module("plain", _source(1))
        namespace = module.__dict__
        package.write("plain", _source(2))
        assert importlib.reload(module) is module
        assert (module.__dict__ is namespace, module.value()) == (True, 2)
        assert type(module.__loader__).__name__ == "SourceFileLoader"

    def test_first_imports_are_untouched(self, package: Package, reloader: HotReloader) -> None:
        """With a module tracked, new modules import with their usual spec and loader."""
        reloader.track(package.module("first", _source(1)))
        module = package.module("second", _source(2))
        assert type(module.__loader__).__name__ == "SourceFileLoader"
        assert module.__name__ not in reloader.modules()
        assert sys.modules[module.__name__] is module


class TestSwappingLoader:
    def test_answers_for_the_modules_loader_while_the_reload_runs(
        self, module: types.ModuleType
    ) -> None:
        """The loader a reload puts on the module reads the module's file like its own loader."""
        loader: Any = module.__loader__
        swapping = _swapping_loader(module)
        assert swapping.get_source(module.__name__) == loader.get_source(module.__name__)
        assert swapping.get_filename(module.__name__) == loader.get_filename(module.__name__)
        with pytest.raises(AttributeError):
            swapping._private  # the lookup is the test
        assert copy.copy(swapping) is not swapping


def _swapping_loader(module: types.ModuleType) -> Any:
    """The loader that importlib.reload(module) would be given."""
    finder = next(finder for finder in sys.meta_path if isinstance(finder, ReloadFinder))
    spec = finder.find_spec(module.__name__, None, module)
    assert spec is not None
    return spec.loader
