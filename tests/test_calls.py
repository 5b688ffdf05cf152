"""Calls in flight: what running calls hold of a version is counted, never mistaken for stale."""

from __future__ import annotations

import gc
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from illunare import HotReloader, StaleReferenceWarning
from illunare._reload.calls import held_by_calls, stacks

from .conftest import Package

HOLDS_FUNCTIONS = sys.version_info >= (3, 11)

SYNC = """\
import threading

entered = threading.Semaphore(0)
release = threading.Event()
"""

SLOW = """\
from .sync import entered, release

def slow():
    entered.release()
    release.wait(10)
    return {n}
"""


@contextmanager
def running(function: Callable[[], object], calls: int, sync: types.ModuleType) -> Iterator[None]:
    """``calls`` threads inside ``function`` (which waits on ``sync.release``) for the block."""
    threads = [threading.Thread(target=function) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert sync.entered.acquire(timeout=10)
    try:
        yield
    finally:
        sync.release.set()
        for thread in threads:
            thread.join(10)


class TestHeldByCalls:
    def test_each_running_call_holds_its_function_once(self, package: Package) -> None:
        sync, module = package.module("sync", SYNC), package.module("slow", SLOW.format(n=1))
        with running(module.slow, 3, sync):
            held = held_by_calls([module.slow], stacks())
        assert held[id(module.slow)] == (3 if HOLDS_FUNCTIONS else 0)

    def test_a_function_nobody_runs_is_held_by_no_call(self, package: Package) -> None:
        package.module("sync", SYNC)
        module = package.module("slow", SLOW.format(n=1))
        assert held_by_calls([module.slow], stacks()) == {}

    def test_a_code_two_functions_share_is_not_counted(self) -> None:
        entered, release = threading.Event(), threading.Event()

        def make() -> Callable[[], None]:
            def inner() -> None:
                entered.set()
                release.wait(10)

            return inner

        first, second = make(), make()
        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert entered.wait(10)
            assert held_by_calls([first, second], stacks()) == {}
            assert held_by_calls([first], stacks())[id(first)] == (1 if HOLDS_FUNCTIONS else 0)
        finally:
            release.set()
            thread.join(10)

    def test_what_is_no_function_is_ignored(self) -> None:
        assert held_by_calls([len, object(), "f"], stacks()) == {}

    def test_stacks_hold_the_other_threads_frames_not_this_one_s(self, package: Package) -> None:
        """The frames of the other threads' calls are listed; the calling thread's are not."""
        sync = package.module("sync", SYNC)
        module = package.module("slow", SLOW.format(n=1))
        with running(module.slow, 1, sync):
            frames = stacks()
            codes = {frame.f_code for frame in frames}
            assert (module.slow.__code__ in codes) == HOLDS_FUNCTIONS
            assert sys._getframe() not in frames
            del frames

    def test_a_snapshot_of_the_stacks_leaves_nothing_holding_the_functions(
        self, package: Package
    ) -> None:
        """Dropped after the calls end, a snapshot leaves no garbage holding their functions."""
        sync = package.module("sync", SYNC)
        module = package.module("slow", SLOW.format(n=1))
        function = module.slow
        before = sys.getrefcount(function)

        def count() -> int:
            frames = stacks()
            return held_by_calls([function], frames)[id(function)]

        enabled = gc.isenabled()
        gc.disable()
        try:
            with running(function, 2, sync):
                assert count() == (2 if HOLDS_FUNCTIONS else 0)
            assert sys.getrefcount(function) == before
        finally:
            if enabled:
                gc.enable()


def swap_and_collect_warnings(reloader: HotReloader, name: str, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloader.swap(name, source)
    return [str(w.message) for w in caught if issubclass(w.category, StaleReferenceWarning)]


class TestSwapsWhileCallsRun:
    def test_calls_in_flight_are_not_stale(self, package: Package, reloader: HotReloader) -> None:
        sync, module = package.module("sync", SYNC), package.module("slow", SLOW.format(n=1))
        reloader.track(module)
        with running(module.slow, 4, sync):
            assert swap_and_collect_warnings(reloader, module.__name__, SLOW.format(n=2)) == []
        assert module.slow() == 2

    def test_a_stale_reference_is_still_reported_beside_calls_in_flight(
        self, package: Package, reloader: HotReloader
    ) -> None:
        sync, module = package.module("sync", SYNC), package.module("slow", SLOW.format(n=1))
        reloader.track(module)
        # A registry in another module.
        sync.handlers = {"handler": module.slow.__wrapped__}  # type: ignore[attr-defined]
        with running(module.slow, 4, sync):
            stale = swap_and_collect_warnings(reloader, module.__name__, SLOW.format(n=2))
        assert len(stale) == 1
        assert "slow of version 1" in stale[0]
        assert sync.handlers["handler"] is not module.slow.__wrapped__

    @pytest.mark.parametrize("calls", [1, 8])
    def test_rollbacks_while_calls_run_report_nothing(
        self, package: Package, reloader: HotReloader, calls: int
    ) -> None:
        sync, module = package.module("sync", SYNC), package.module("slow", SLOW.format(n=1))
        reloader.track(module)
        reloader.swap(module.__name__, SLOW.format(n=2))
        with (
            running(module.slow, calls, sync),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            reloader.rollback(module.__name__, to=1)
            reloader.rollback(module.__name__, to=2)
        assert [w for w in caught if issubclass(w.category, StaleReferenceWarning)] == []
