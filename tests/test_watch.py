"""HotReloader.watch: saves swap the module; a bad save keeps the running version."""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
import types
from typing import Any

import pytest

from illunare import HotReloader, InvalidArgumentError, MissingExtraError, signals
from illunare._reload.watcher import running_watchers

from .conftest import Package, eventually, in_child


def save(package: Package, module: str, source: str) -> None:
    """Save a module as editors do (write, then rename): the watcher never sees half a file."""
    partial = package.path / f"{module}.py.partial"
    partial.write_text(source)
    os.replace(partial, package.path / f"{module}.py")


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

    def test_a_module_that_starts_the_watcher_swaps_on_its_own_save(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """Its new code's watch() gives the running watcher: no second one, no wait on itself."""
        hub = package.module("hub", "RELOADER = None\n")
        hub.RELOADER = reloader  # type: ignore[attr-defined]
        source = (
            f"from {package.name} import hub\n\n"
            f"WATCHER = hub.RELOADER.watch({str(package.path)!r})\n\n"
            "def value():\n    return {n}\n"
        )
        starter = package.module("starter", source.format(n=1))
        reloader.track(starter)
        watcher = starter.WATCHER
        try:
            started = time.monotonic()
            save(package, "starter", source.format(n=2))
            assert eventually(lambda: starter.value() == 2, timeout=4)
            assert time.monotonic() - started < 4  # the catch-up would have waited 5 s
            assert starter.WATCHER is watcher
            save(package, "starter", source.format(n=3))
            assert eventually(lambda: starter.value() == 3, timeout=4)
            assert [w for w in running_watchers() if w.reloader is reloader] == [watcher]
        finally:
            watcher.stop()


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


class TestWatchReleases:
    def test_files_saved_together_land_as_one_release(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """pricing needs a name only the new discounts has: saved together, they land together.

        Grouped in one batch, or (on a busy machine) pricing refused alone
        first and tried again with discounts: either way one release.
        """
        discounts = package.module("discounts", "def rate():\n    return 1\n")
        pricing = package.module("pricing", "def price():\n    return 100\n")
        reloader.track(discounts)
        reloader.track(pricing)
        swapped: list[dict[str, Any]] = []
        with (
            signals.module_swapped.connected_to(lambda sender, **kw: swapped.append(kw)),
            reloader.watch(package.path, debounce=0.5),
        ):
            save(
                package,
                "pricing",
                f"from {package.name}.discounts import bonus\ndef price():\n    return bonus()\n",
            )
            save(package, "discounts", "def rate():\n    return 1\ndef bonus():\n    return 7\n")
            assert eventually(lambda: len(swapped) == 2)
        assert pricing.price() == 7
        assert {kw["module"] for kw in swapped} == {pricing.__name__, discounts.__name__}
        assert swapped[0]["duration"] == swapped[1]["duration"]  # one release

    def test_a_release_needing_a_new_file_lands_once_it_is_saved(
        self, reloader: HotReloader, package: Package, caplog: pytest.LogCaptureFixture
    ) -> None:
        """pricing imports discounts.py before it exists: refused and logged, then retried."""
        reloader.install(package.name)
        pricing = package.module("pricing", "def price():\n    return 100\n")
        refused = threading.Event()
        with (
            caplog.at_level(logging.WARNING, logger="illunare"),
            signals.swap_failed.connected_to(lambda sender, **kw: refused.set()),
            reloader.watch(package.path),
        ):
            save(
                package,
                "pricing",
                f"from {package.name}.discounts import rate\ndef price():\n    return rate()\n",
            )
            assert refused.wait(10)
            assert pricing.price() == 100
            time.sleep(0.3)  # the second file is saved a moment later
            save(package, "discounts", "def rate():\n    return 90\n")
            assert eventually(lambda: pricing.price() == 90)
        assert reloader.current(pricing.__name__).number == 2
        assert f"{package.name}.discounts" in reloader.modules()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings
        assert pricing.__name__ in warnings[0].getMessage()
        assert warnings[0].exc_info is not None  # the cause is logged

    def test_a_release_needing_a_name_of_a_tracked_sibling_lands_with_it(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """The refused module and the sibling saved later switch in one release."""
        discounts = package.module("discounts", "def rate():\n    return 1\n")
        pricing = package.module("pricing", "def price():\n    return 100\n")
        reloader.track(discounts)
        reloader.track(pricing)
        refused = threading.Event()
        swapped: list[dict[str, Any]] = []
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: refused.set()),
            signals.module_swapped.connected_to(lambda sender, **kw: swapped.append(kw)),
            reloader.watch(package.path),
        ):
            save(
                package,
                "pricing",
                f"from {package.name}.discounts import bonus\ndef price():\n    return bonus()\n",
            )
            assert refused.wait(10)
            save(package, "discounts", "def rate():\n    return 1\ndef bonus():\n    return 3\n")
            assert eventually(lambda: len(swapped) == 2)
        assert pricing.price() == 3
        assert swapped[0]["duration"] == swapped[1]["duration"]

    def test_a_module_that_stays_broken_holds_back_no_other(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """A refused module is retried with the next save, which lands on its own if need be."""
        broken = package.module("broken", "X = 1\n")
        other = package.module("other", "X = 1\n")
        reloader.track(broken)
        reloader.track(other)
        refused = threading.Event()
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: refused.set()),
            reloader.watch(package.path),
        ):
            save(package, "broken", "X = missing_name\n")
            assert refused.wait(10)
            for n in (2, 3):
                save(package, "other", f"X = {n}\n")
                assert eventually(lambda n=n: n == other.X)
        assert broken.X == 1


class TestWatchParticipants:
    def test_a_watchers_release_asks_the_participants(
        self, watched: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A participant that refuses keeps the running version; once it accepts, the save lands."""
        refusing = threading.Event()
        refusing.set()
        prepared: list[object] = []

        class Gate:
            def dependents(self, changed: frozenset[str]) -> frozenset[str]:
                return frozenset()

            def prepare(self, namespaces: object) -> None:
                prepared.append(namespaces)
                if refusing.is_set():
                    raise RuntimeError("not now")

            def abort(self, namespaces: object) -> None:
                """Nothing to undo."""

            def committed(self, namespaces: object, previous: object) -> None:
                """Nothing to do."""

            def kept(self, namespace: object) -> tuple[object, ...]:
                return ()

        reloader._add_participant(Gate())
        with reloader.watch(package.path):
            save(package, "live", "def value():\n    return 2\n")
            assert eventually(lambda: len(prepared) == 1)
            assert watched.value() == 1
            refusing.clear()
            save(package, "other", "X = 1\n")  # any saved source: the refused release is retried
            assert eventually(lambda: watched.value() == 2)


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
