"""Swaps and rollbacks while real threads call the code: nothing fails, nothing mixes."""

from __future__ import annotations

import threading
import types

from illunare import HotReloader

from .conftest import Package

SOURCE = """
TAG = {n}

def value():
    first = TAG
    return (first, sum(range(50)) * 0 + TAG)

class Worker:
    def work(self):
        return ("work", TAG, TAG)
"""

WAITING = """
import threading

VERSION = {n}
entered = threading.Event()
release = threading.Event()

def slow():
    entered.set()
    release.wait(10)
    return VERSION
"""


def _track(package: Package, reloader: HotReloader, name: str, source: str) -> types.ModuleType:
    module = package.module(name, source)
    reloader.track(module)
    return module


class TestConcurrency:
    def test_callers_never_fail_and_never_see_a_mixed_version(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """8 threads call a hot function and a method during 100 swaps and rollbacks."""
        module = _track(package, reloader, "busy", SOURCE.format(n=0))
        sources = [SOURCE.format(n=n) for n in range(1, 6)]
        value, worker = module.value, module.Worker()
        errors: list[BaseException] = []
        results: set[tuple[object, ...]] = set()
        calls = [0]
        done = threading.Event()
        start = threading.Barrier(9)

        def caller() -> None:
            seen: set[tuple[object, ...]] = set()
            count = 0
            start.wait()
            try:
                while not done.is_set():
                    seen.add(value())
                    seen.add(worker.work())
                    count += 2
            except BaseException as error:
                errors.append(error)
            results.update(seen)
            calls[0] += count

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for thread in threads:
            thread.start()
        start.wait()
        try:
            for i in range(50):
                reloader.swap(module.__name__, sources[i % 5])
                oldest_kept = reloader.history(module.__name__)[0].number
                reloader.rollback(module.__name__, to=oldest_kept)
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert errors == []
        assert calls[0] > 1000
        allowed = {(n, n) for n in range(6)} | {("work", n, n) for n in range(6)}
        assert results <= allowed
        assert len(results) > 2

    def test_a_running_call_finishes_on_the_code_it_started_on(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A call in flight during a swap returns the old version's result; new calls the new."""
        module = _track(package, reloader, "waiting", WAITING.format(n=1))
        entered, release = module.entered, module.release
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(module.slow()))
        thread.start()
        assert entered.wait(5)
        reloader.swap(module.__name__, WAITING.format(n=2) + "\n__hot_preserve__ = ('release',)\n")
        release.set()
        thread.join(5)
        assert result == [1]
        assert module.VERSION == 2

    def test_concurrent_swaps_of_one_module_are_serialised(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Four threads swapping at once produce a consistent, gap-free history."""
        module = _track(package, reloader, "contended", SOURCE.format(n=0))
        errors: list[BaseException] = []

        def swapper(base: int) -> None:
            try:
                for n in range(25):
                    reloader.swap(module.__name__, SOURCE.format(n=base * 100 + n + 1))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=swapper, args=(b,)) for b in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        current = reloader.current(module.__name__)
        assert current.number == 101
        numbers = [v.number for v in reloader.history(module.__name__)]
        assert numbers == list(range(92, 102))
        assert module.value()[0] == module.TAG
