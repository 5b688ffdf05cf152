"""The kept history of a module: which versions eviction spares, and that rollback() works."""

from __future__ import annotations

import gc
import weakref

import pytest

from illunare import HotReloader, RollbackError

from .conftest import Package


def _source(n: int) -> str:
    return f"def value():\n    return {n}\n"


class TestEviction:
    def test_rollback_after_a_hotfix_on_an_old_version(self, package: Package) -> None:
        """keep=4: back to v1, hotfix v5 (parent 1): rollback() returns to v1, bad v2 goes."""
        reloader = HotReloader(keep=4)
        module = package.module("hotfix", _source(1))
        reloader.track(module)
        name = module.__name__
        for n in (2, 3, 4):
            reloader.swap(name, _source(n))
        reloader.rollback(name, to=1)
        hotfix = reloader.swap(name, _source(5), reason="hotfix")
        assert (hotfix.number, hotfix.parent) == (5, 1)
        assert [v.number for v in reloader.history(name)] == [1, 2, 3, 4, 5]
        assert reloader.rollback(name).number == 1
        assert module.value() == 1
        assert reloader.rollback(name, to=5).number == 5
        reloader.swap(name, _source(6))  # 1 is no longer the current one's parent
        assert [v.number for v in reloader.history(name)] == [3, 4, 5, 6]

    def test_the_parent_of_an_old_current_version_is_kept(self, package: Package) -> None:
        """keep=1: each swap keeps the version it replaced, so rollback() always works."""
        reloader = HotReloader(keep=1)
        module = package.module("keep_one", _source(1))
        reloader.track(module)
        name = module.__name__
        for n in range(2, 6):
            reloader.swap(name, _source(n))
            assert [n - 1, n] == [v.number for v in reloader.history(name)]
        assert reloader.rollback(name).number == 4
        assert module.value() == 4
        with pytest.raises(RollbackError, match="evicted"):
            reloader.rollback(name)

    def test_versions_beyond_keep_are_evicted_oldest_first(self, package: Package) -> None:
        """Versions that are neither recent nor current nor its parent go, oldest first."""
        reloader = HotReloader(keep=2)
        module = package.module("oldest", _source(1))
        reloader.track(module)
        name = module.__name__
        for n in range(2, 5):
            reloader.swap(name, _source(n))
        reloader.rollback(name, to=3)
        reloader.swap(name, _source(5))  # parent 3
        assert [v.number for v in reloader.history(name)] == [3, 4, 5]
        reloader.swap(name, _source(6))  # parent 5
        assert [v.number for v in reloader.history(name)] == [5, 6]


class TestRelease:
    def test_an_evicted_version_is_freed_without_a_garbage_collection(
        self, package: Package
    ) -> None:
        """Eviction leaves no reference cycle: the version's functions go at once."""
        reloader = HotReloader(keep=2)
        module = package.module("released", _source(1))
        reloader.track(module)
        name = module.__name__
        reloader.swap(name, _source(2))
        second = weakref.ref(module.value.__wrapped__)
        collecting = gc.isenabled()
        gc.disable()
        try:
            for n in (3, 4, 5):
                reloader.swap(name, _source(n))
            assert second() is None
        finally:
            if collecting:
                gc.enable()
        assert module.value() == 5
