"""HotReloader.install: the import hook tracks modules from their first import."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import sys
from collections.abc import Iterator

import pytest

from illunare import HotReloader, InvalidArgumentError
from illunare._reload.importer import HotFinder

from .conftest import Package


@pytest.fixture
def installing() -> Iterator[HotReloader]:
    """A reloader whose import hook is removed afterwards."""
    reloader = HotReloader()
    yield reloader
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, HotFinder)]


class TestInstall:
    def test_modules_imported_later_are_tracked(
        self, package: Package, installing: HotReloader
    ) -> None:
        """A module of an installed package is tracked as soon as it is imported."""
        installing.install(package.name)
        package.write("users", "def find(uid):\n    return ('v1', uid)\n")
        module = importlib.import_module(package.qualified("users"))
        assert package.qualified("users") in installing.modules()
        assert installing.current(module.__name__).number == 1

    def test_from_imports_elsewhere_follow_swaps(
        self, package: Package, installing: HotReloader
    ) -> None:
        """`from pkg.mod import f` in another module binds a reference that follows swaps."""
        installing.install(package.name)
        package.write("users", "def find(uid):\n    return ('v1', uid)\n")
        package.write(
            "api",
            f"from {package.qualified('users')} import find\n\n"
            "def handle(uid):\n    return find(uid)\n",
        )
        api = importlib.import_module(package.qualified("api"))
        assert api.handle(1) == ("v1", 1)
        installing.swap(package.qualified("users"), "def find(uid):\n    return ('v2', uid)\n")
        assert api.handle(1) == ("v2", 1)

    def test_already_imported_modules_are_tracked_too(
        self, package: Package, installing: HotReloader
    ) -> None:
        """install() also tracks the package's modules that were imported before it."""
        package.module("early", "X = 1\n")
        installing.install(package.name)
        assert set(installing.modules()) == {package.name, package.qualified("early")}

    def test_loader_features_still_work(self, package: Package, installing: HotReloader) -> None:
        """inspect.getsource and importlib.resources work on modules loaded through the hook."""
        installing.install(package.name)
        (package.path / "data.txt").write_text("payload")
        module = package.module("withdata", "def f():\n    return 1\n")
        assert "return 1" in inspect.getsource(module.f)
        assert (importlib.resources.files(package.name) / "data.txt").read_text() == "payload"

    def test_other_packages_are_untouched(self, package: Package, installing: HotReloader) -> None:
        """Only the named packages are tracked."""
        installing.install(package.name + "_other")
        module = package.module("plain", "X = 1\n")
        assert module.__name__ not in installing.modules()

    def test_bad_package_names(self, installing: HotReloader) -> None:
        """Package names must be dotted identifiers."""
        for bad in ("", "a b", "1pkg", None):
            with pytest.raises(InvalidArgumentError):
                installing.install(bad)  # type: ignore[arg-type]
