"""Many threads calling through whole rollouts: no call fails, or mixes versions, by routing."""

from __future__ import annotations

import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from illunare import HotReloader, Rollout, Shadow

from .conftest import Package

SOURCE = """
TAG = {tag!r}

def tag():
    return TAG

def nested(x):
    return (tag(), TAG, helper(x))

def helper(x):
    return TAG

class Thing:
    def method(self):
        return (self.inner(), tag(), TAG)

    def inner(self):
        return TAG

    @staticmethod
    def static():
        return (tag(), TAG)

    @classmethod
    def klass(cls):
        return (cls.static()[0], TAG)

    @property
    def prop(self):
        return (self.inner(), TAG)
"""

THREADS = 8


@pytest.fixture
def module(package: Package, reloader: HotReloader) -> Iterator[types.ModuleType]:
    """Version 1 (tag "v1") of a tracked module; any rollout left running is aborted after."""
    reloader.install(package.name)
    yield package.module("m", SOURCE.format(tag="v1"))
    for controller in {id(c): c for c in reloader._rollouts.values()}.values():
        controller.abort()


class Callers:
    """THREADS threads calling every kind of function and method until stopped.

    A call that a rollout's end (its promotion or revert) falls inside may
    mix versions, as any swap may: its nested calls after the switch run the
    version then current. Every other call must run on one version: those
    that start and end while the split runs (``running()``) are checked.
    """

    def __init__(self, module: types.ModuleType, reloader: HotReloader) -> None:
        thing = module.Thing()
        # Each method is looked up at each call: a bound method held across
        # the promotion would be a stale reference (it keeps the old code).
        self.calls: list[Callable[[], tuple[str, ...]]] = [
            lambda: (module.tag(),),
            lambda: module.nested(1),
            lambda: thing.method(),  # noqa: PLW0108
            lambda: module.Thing.static(),  # noqa: PLW0108
            lambda: module.Thing.klass(),  # noqa: PLW0108
            lambda: thing.prop,
        ]
        self.name = module.__name__
        self.reloader = reloader
        self.failures: list[BaseException] = []
        self.mixed: list[tuple[str, ...]] = []
        #: calls made wholly within a split (checked for mixing)
        self.checked = 0
        self.tags: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(THREADS)]

    def __enter__(self) -> Callers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def running(self) -> object:
        """The split now running (None: none), which a call must start and end within."""
        controller = self.reloader._rollouts.get(self.name)
        split = None if controller is None else controller._split
        # Its state leaves "running" before the switch that ends it.
        return split if split is not None and split.state == "running" else None

    def _run(self) -> None:
        tags: Counter[str] = Counter()
        checked = 0
        while not self._stop.is_set():
            for call in self.calls:
                before = self.running()
                try:
                    result = call()
                except BaseException as error:
                    with self._lock:
                        self.failures.append(error)
                    return
                if before is not None and self.running() is before:
                    checked += 1
                    if len(set(result)) != 1:
                        with self._lock:
                            self.mixed.append(result)
                tags[result[0]] += 1
        with self._lock:
            self.tags.update(tags)
            self.checked += checked


class TestConcurrentRollouts:
    def test_eight_threads_through_a_whole_rollout(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A rollout 10 -> 50 -> 100 under 8 calling threads: no failure, no mixed call."""
        rollout = Rollout(steps=(10, 50, 100), bake=0.05, min_samples=5)
        with Callers(module, reloader) as callers:
            handle = reloader.swap(module.__name__, SOURCE.format(tag="v2"), rollout=rollout)
            assert handle.wait(timeout=30) == "promoted"
        assert callers.failures == []
        assert callers.mixed == []
        assert callers.checked > 0
        assert callers.tags["v1"] > 0
        assert callers.tags["v2"] > 0
        assert module.Thing().method() == ("v2", "v2", "v2")

    def test_eight_threads_through_an_abort_and_a_promote(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Rollouts ended by abort() and promote() from other threads mid-call: nothing fails."""
        rollout = Rollout(steps=(50,), bake=3600)
        with Callers(module, reloader) as callers:
            aborted = reloader.swap(module.__name__, SOURCE.format(tag="v2"), rollout=rollout)
            ender = threading.Thread(target=aborted.abort)
            ender.start()
            ender.join()
            promoted = reloader.swap(module.__name__, SOURCE.format(tag="v3"), rollout=rollout)
            ender = threading.Thread(target=promoted.promote)
            ender.start()
            ender.join()
        assert (aborted.status, promoted.status) == ("rolled_back", "promoted")
        assert callers.failures == []
        assert callers.checked > 0
        assert callers.mixed == []
        assert module.nested(0) == ("v3", "v3", "v3")

    def test_a_shadow_run_under_eight_threads(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A shadow run under 8 threads: every call gets the old version, none fails."""
        with Callers(module, reloader) as callers:
            handle = reloader.swap(module.__name__, SOURCE.format(tag="v2"), shadow=Shadow())
            handle.wait(timeout=0.2)
            handle.abort()
        assert callers.failures == []
        assert callers.mixed == []
        assert set(callers.tags) == {"v1"}
        assert handle.report()["versions"][2]["calls"] > 0
