"""HotReloader.watch: saves swap the module; a bad save keeps the running version."""

from __future__ import annotations

import itertools
import sys
import threading
import types

import pytest

from illunare import HotReloader, InvalidArgumentError, MissingExtraError, signals

from .conftest import Package, eventually, in_child


@pytest.fixture
def watched(package: Package, reloader: HotReloader) -> types.ModuleType:
    module = package.module("live", "def value():\n    return 1\n")
    reloader.track(module)
    return module


class TestWatch:
    def test_a_save_swaps_the_module(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Writing the file makes a new version with the new code."""
        with reloader.watch(package.path) as watcher:
            assert watcher.running
            package.write("live", "def value():\n    return 2\n")
            assert eventually(lambda: watched.value() == 2)
        assert not watcher.running
        assert reloader.current(watched.__name__).reason == "file changed"

    def test_a_bad_save_keeps_the_running_version_and_the_watcher(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A syntax error emits swap_failed; the next good save is applied."""
        failed = threading.Event()
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: failed.set()),
            reloader.watch() as watcher,
        ):
            package.write("live", "def value(:\n")
            assert failed.wait(10)
            assert watched.value() == 1
            assert watcher.running
            package.write("live", "def value():\n    return 3\n")
            assert eventually(lambda: watched.value() == 3)
        assert [v.number for v in reloader.history(watched.__name__)] == [1, 2]

    def test_bad_arguments(self, reloader: HotReloader, package: Package) -> None:
        """Missing paths, bad debounce values and nothing to watch are refused."""
        with pytest.raises(InvalidArgumentError):
            reloader.watch()
        with pytest.raises(InvalidArgumentError):
            reloader.watch(package.path / "missing")
        with pytest.raises(InvalidArgumentError):
            reloader.watch(package.path, debounce=0)


class TestWatchDetails:
    def test_watching_one_file(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A single file can be watched; saving it swaps its module."""
        with reloader.watch(package.path / "live.py"):
            package.write("live", "def value():\n    return 5\n")
            assert eventually(lambda: watched.value() == 5)

    def test_source_files_lists_tracked_modules(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """source_files() maps each tracked module with a file to its absolute path."""
        assert reloader.source_files() == {watched.__name__: str(package.path / "live.py")}

    def test_missing_extra(
        self, monkeypatch: pytest.MonkeyPatch, reloader: HotReloader, package: Package
    ) -> None:
        """Without watchfiles, watch() says which extra to install."""
        monkeypatch.setitem(sys.modules, "watchfiles", None)
        with pytest.raises(MissingExtraError, match=r"illunare\[watch\]"):
            reloader.watch(package.path)


class TestWatchAfterFork:
    def test_a_forked_child_swaps_on_save(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A watcher made before a fork (a pre-fork server's workers) also watches in the child."""
        with reloader.watch(package.path):

            def child() -> bool:
                saves = itertools.count(2)
                # The child's operating system watch is armed in the background:
                # saving again until one is seen tells a missed save from none.
                return any(
                    package.write("live", f"def value():\n    return {next(saves)}\n")
                    and eventually(lambda: watched.value() != 1, timeout=1)
                    for _ in range(15)
                )

            assert in_child(child) == 0

    def test_a_watcher_stopped_before_the_fork_stays_stopped(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Stopping is not undone by a fork."""
        watcher = reloader.watch(package.path)
        watcher.stop()
        assert in_child(lambda: not watcher.running) == 0
