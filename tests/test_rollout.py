"""Gradual rollouts through HotReloader.swap(rollout=...): steps, verdicts, promotion, rollback."""

from __future__ import annotations

import collections
import gc
import json
import math
import os
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from illunare import (
    HotReloader,
    InvalidArgumentError,
    PerformanceMonitor,
    RollbackError,
    Rollout,
    RolloutError,
    RolloutHandle,
    Shadow,
    SwapError,
    Thresholds,
    ValidationError,
    signals,
)
from illunare._rollout.judge import RESERVOIR, Tally, evident, verdict

from .conftest import Package, eventually, in_child

MODULE = """
import random
import time

TAG = {tag!r}

def f(x):
    if {delay}:
        time.sleep({delay})
    if random.random() < {fail}:
        raise ValueError("the new version fails")
    return (TAG, x)
"""

#: a new version whose first ``failures`` calls fail (a cold start), and no other
COLD = """
import itertools

_calls = itertools.count()

def f(x):
    if next(_calls) < {failures}:
        raise ValueError("cold")
    return ("new", x)
"""

#: what the hung version of a test waits for
HANG = threading.Event()

#: a rollout quick enough for tests: short bakes, few samples
QUICK = Rollout(steps=(10, 50, 100), bake=0.05, min_samples=5)
#: as QUICK, with enough calls per step that a version failing 20 % surely fails in each
STRICT = Rollout(steps=(10, 50, 100), bake=0.05, min_samples=50)
#: a rollout that only acts when told (its bake never ends within a test)
FOREVER = Rollout(bake=3600)
#: for evident(): no call still to come in the bake
NO_MORE = (0.0, 0.0)


def source(tag: str, *, fail: float = 0.0, delay: float = 0.0) -> str:
    """A module whose f(x) returns (tag, x), failing a ``fail`` share of calls."""
    return MODULE.format(tag=tag, fail=fail, delay=delay)


@pytest.fixture
def module(package: Package, reloader: HotReloader) -> Iterator[types.ModuleType]:
    """Version 1 of a tracked module (tag "old"); any rollout left running is aborted after."""
    reloader.install(package.name)
    yield package.module("m", source("old"))
    for controller in {id(c): c for c in reloader._rollouts.values()}.values():
        controller.abort()


def monitored(
    package: Package, monitor: PerformanceMonitor
) -> tuple[HotReloader, types.ModuleType]:
    """A reloader on ``monitor``, and version 1 of a module it tracks (tag "old")."""
    reloader = HotReloader(monitor=monitor)
    reloader.install(package.name)
    return reloader, package.module("m", source("old"))


class Load:
    """Threads calling ``function`` until the block ends; results by tag, and errors.

    ``pause``: seconds each thread waits after each call; ``after``: seconds
    of quiet before the first call.
    """

    def __init__(
        self,
        function: Callable[[int], Any],
        threads: int = 1,
        *,
        pause: float = 0.0,
        after: float = 0.0,
    ) -> None:
        self.function = function
        self.pause = pause
        self.after = after
        self.tags: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self.unexpected: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._call) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _call(self) -> None:
        number = 0
        if self._stop.wait(self.after):
            return
        while not self._stop.is_set():
            if number and self.pause:
                self._stop.wait(self.pause)
            number += 1
            try:
                tag, _ = self.function(number)
            except ValueError:
                with self._lock:
                    self.errors += 1
            except BaseException as error:
                self.unexpected.append(error)
                raise
            else:
                with self._lock:
                    self.tags[tag] += 1


class Received:
    """Every rollout-related signal sent, in order, as (signal name, kwargs)."""

    NAMES = (
        "rollout_step",
        "rollout_finished",
        "module_swapped",
        "module_rolled_back",
        "rollback_alert",
        "swap_failed",
    )

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._receivers = [self._receiver(name) for name in self.NAMES]

    def _receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: object, **kwargs: Any) -> None:
            with self._lock:
                self.events.append((name, {"sender": sender, **kwargs}))

        getattr(signals, name).connect(receive)
        return receive

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [kwargs for event, kwargs in self.events if event == name]

    def order(self) -> list[str]:
        with self._lock:
            return [event for event, _ in self.events]


@pytest.fixture
def received() -> Received:
    """Receivers on every rollout-related signal for the test."""
    return Received()


def _tally(
    calls: int = 0, errors: int = 0, latencies: tuple[float, ...] = (), limit: float | None = None
) -> Tally:
    tally = Tally(limit)
    tally.add(calls, errors, latencies)
    return tally


class TestVerdict:
    def test_error_rate_above_the_limit_breaches(self) -> None:
        """21 errors in 100 calls breach max_error_rate 0.2, worded as health() words it."""
        found = verdict(Thresholds(max_error_rate=0.2), _tally(100, 21), min_samples=20)
        assert found.name == "breached"
        assert [str(breach) for breach in found.breaches] == [
            "error_rate 0.21 > max_error_rate 0.2"
        ]

    def test_error_rate_at_the_limit_is_healthy(self) -> None:
        """Exactly max_error_rate is no breach (a breach is going over)."""
        found = verdict(Thresholds(max_error_rate=0.2), _tally(100, 20), min_samples=20)
        assert found.name == "healthy"

    def test_breach_comes_before_too_few_calls(self) -> None:
        """A step with few calls that all failed is breached, not inconclusive."""
        found = verdict(Thresholds(max_error_rate=0.01), _tally(3, 3), min_samples=20)
        assert found.name == "breached"

    def test_too_few_calls_is_inconclusive(self) -> None:
        """19 healthy calls against min_samples 20: inconclusive; 20: healthy."""
        thresholds = Thresholds(max_error_rate=0.01)
        assert verdict(thresholds, _tally(19), min_samples=20).name == "inconclusive"
        assert verdict(thresholds, _tally(20), min_samples=20).name == "healthy"

    def test_with_max_latency_unfinished_calls_are_too_few(self) -> None:
        """max_latency judged: 20 calls started but 19 finished (timed) is inconclusive."""
        thresholds = Thresholds(max_latency=1.0)
        running = _tally(20, 0, (0.01,) * 19, 1.0)
        assert verdict(thresholds, running, min_samples=20).name == "inconclusive"
        finished = _tally(20, 0, (0.01,) * 20, 1.0)
        assert verdict(thresholds, finished, min_samples=20).name == "healthy"

    def test_no_calls_no_error_breach(self) -> None:
        """A step without calls breaches nothing (there is no rate), and is inconclusive."""
        found = verdict(Thresholds(max_error_rate=0.0), _tally(), min_samples=1)
        assert found.name == "inconclusive"

    def test_p99_latency_above_the_limit_breaches(self) -> None:
        """2 slow calls of 100 put the nearest-rank p99 over max_latency; 1 does not."""
        thresholds = Thresholds(max_latency=0.25)
        two = (0.01,) * 98 + (0.3, 0.4)
        one = (0.01,) * 99 + (0.4,)
        breached = verdict(thresholds, _tally(100, 0, two, 0.25), min_samples=0)
        assert [str(breach) for breach in breached.breaches] == [
            "latency p99 0.3 > max_latency 0.25"
        ]
        assert verdict(thresholds, _tally(100, 0, one, 0.25), min_samples=0).name == "healthy"

    def test_both_metrics_breach_together(self) -> None:
        """Errors and latency both over: two breaches, error rate first."""
        thresholds = Thresholds(max_latency=0.1, max_error_rate=0.1)
        found = verdict(thresholds, _tally(10, 5, (1.0,) * 10, 0.1), min_samples=0)
        assert [breach.metric for breach in found.breaches] == ["error_rate", "latency"]

    def test_periods_accumulate(self) -> None:
        """A tally adds its periods: calls, errors and latencies of the whole step."""
        tally = Tally(0.5)
        tally.add(10, 1, [0.1, 0.6])
        tally.add(5, 2, [0.7])
        assert (tally.calls, tally.errors, tally.timed, tally.slow) == (15, 3, 3, 2)
        assert tally.error_rate == pytest.approx(0.2)

    def test_reservoir_is_bounded(self) -> None:
        """Beyond RESERVOIR latencies the tally keeps a sample of that size, counting all."""
        tally = Tally(None)
        tally.add(0, 0, [0.001] * (RESERVOIR + 500))
        assert len(tally.reservoir) == RESERVOIR
        assert tally.timed == RESERVOIR + 500

    def test_reported_p99_is_over_the_limit_when_the_sample_misses(self) -> None:
        """A breach found by the exact count reports a latency above the limit, never below."""
        tally = Tally(0.25)
        fast = [0.001] * (RESERVOIR * 4)
        tally.add(0, 0, fast)
        tally.add(0, 0, [0.5] * (RESERVOIR // 10))  # > 1 % of all, few in the sample
        found = verdict(Thresholds(max_latency=0.25), tally, min_samples=0)
        assert found.breaches[0].value > 0.25


class TestEvident:
    """Breaches acted on before the bake's end: beyond doubt on the calls so far."""

    def test_a_version_failing_one_call_in_five_is_evident_early(self) -> None:
        """20 errors in 100 calls against 1 %: certain already, reported as verdict() does."""
        thresholds = Thresholds(max_error_rate=0.01)
        found = evident(thresholds, _tally(100, 20), min_samples=20, ahead=NO_MORE)
        assert found.breaches == verdict(thresholds, _tally(100, 20), min_samples=20).breaches
        assert found.name == "breached"

    def test_an_unlucky_start_is_not_evident(self) -> None:
        """1 error in 50 calls breaches 1 % at the bake's end, but is no proof yet: bake on."""
        thresholds = Thresholds(max_error_rate=0.01)
        assert verdict(thresholds, _tally(50, 1), min_samples=20).name == "breached"
        assert evident(thresholds, _tally(50, 1), min_samples=20, ahead=NO_MORE).name == "healthy"

    def test_fewer_calls_than_min_samples_are_never_evident(self) -> None:
        """Every call failing, but 19 of min_samples 20: no early verdict; 20: breached."""
        thresholds = Thresholds(max_error_rate=0.01)
        assert evident(thresholds, _tally(19, 19), min_samples=20, ahead=NO_MORE).breaches == ()
        assert evident(thresholds, _tally(20, 20), min_samples=20, ahead=NO_MORE).name == "breached"

    def test_more_errors_than_calls_is_a_rate_of_one(self) -> None:
        """Calls started in an earlier period raised in this one: more errors than calls."""
        found = evident(
            Thresholds(max_error_rate=0.5), _tally(20, 23), min_samples=20, ahead=NO_MORE
        )
        assert found.name == "breached"

    def test_a_burst_the_rest_of_the_bake_dilutes_is_not_evident(self) -> None:
        """3 errors in 20 calls are sure to be over 2 %, unless 380 more calls may come."""
        thresholds = Thresholds(max_error_rate=0.02)
        assert evident(thresholds, _tally(20, 3), 10, ahead=NO_MORE).name == "breached"
        assert evident(thresholds, _tally(20, 3), 10, ahead=(120.0, 0.0)).name == "breached"
        assert evident(thresholds, _tally(20, 3), 10, ahead=(380.0, 0.0)).name == "healthy"

    def test_zero_tolerance_breaches_at_the_first_error(self) -> None:
        """max_error_rate 0: one error in min_samples calls is already beyond doubt."""
        found = evident(
            Thresholds(max_error_rate=0.0), _tally(20, 1), min_samples=20, ahead=NO_MORE
        )
        assert found.name == "breached"

    def test_latency_evident_when_far_more_than_one_percent_is_slow(self) -> None:
        """p99 over max_latency: 30 slow calls of 100 are certain, 2 of 100 are not yet."""
        thresholds = Thresholds(max_latency=0.25)
        many = (0.01,) * 70 + (0.3,) * 30
        two = (0.01,) * 98 + (0.3, 0.4)
        assert (
            evident(thresholds, _tally(100, 0, many, 0.25), 20, ahead=NO_MORE).breaches[0].metric
            == "latency"
        )
        assert verdict(thresholds, _tally(100, 0, two, 0.25), 20).name == "breached"
        assert evident(thresholds, _tally(100, 0, two, 0.25), 20, ahead=NO_MORE).name == "healthy"

    def test_latency_needs_min_samples_timed_calls(self) -> None:
        """Calls not finished have no latency: 20 started, 10 slow ones timed, 20 needed."""
        thresholds = Thresholds(max_latency=0.25)
        assert (
            evident(thresholds, _tally(20, 0, (1.0,) * 10, 0.25), 20, ahead=NO_MORE).breaches == ()
        )
        assert (
            evident(thresholds, _tally(20, 0, (1.0,) * 20, 0.25), 20, ahead=NO_MORE).name
            == "breached"
        )

    @given(
        calls=st.integers(min_value=0, max_value=10_000),
        data=st.data(),
        limit=st.floats(min_value=0.0, max_value=1.0),
        min_samples=st.integers(min_value=0, max_value=100),
        ahead=st.floats(min_value=0.0, max_value=1000.0),
    )
    def test_evident_only_what_the_bake_end_would_find(
        self, calls: int, data: st.DataObject, limit: float, min_samples: int, ahead: float
    ) -> None:
        """Whatever the counts: an early breach is one the bake-end verdict finds too."""
        errors = data.draw(st.integers(min_value=0, max_value=calls + 5))
        thresholds = Thresholds(max_error_rate=limit)
        early = evident(thresholds, _tally(calls, errors), min_samples, ahead=(ahead, ahead))
        late = verdict(thresholds, _tally(calls, errors), min_samples)
        assert set(early.breaches) <= set(late.breaches)
        if early.breaches:
            assert calls >= min_samples


class TestHealthyRollout:
    def test_a_healthy_rollout_promotes(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """Steps 10 and 50 are judged healthy, 100 promotes: the new version is current."""
        name = module.__name__
        handle = reloader.swap(name, source("new"), rollout=QUICK)
        assert isinstance(handle, RolloutHandle)
        assert (handle.status, handle.weight) == ("running", 10)
        with Load(module.f) as load:
            assert handle.wait(timeout=30) == "promoted"
        assert not load.unexpected
        assert (handle.status, handle.weight) == ("promoted", 100)
        assert reloader.current(name) == handle.version
        assert handle.version.parent == handle.previous.number == 1
        assert module.f(1) == ("new", 1)
        steps = received.named("rollout_step")
        assert [(s["weight"], s["status"], s["verdict"]) for s in steps] == [
            (10, "running", None),
            (50, "running", "healthy"),
        ]
        assert [step["verdict"] for step in handle.report()["steps"]] == ["healthy", "healthy"]

    def test_the_report_counts_every_call_made_before_it(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Calls and errors that returned before report() are in it, whatever the tick."""
        handle = reloader.swap(module.__name__, source("new", fail=0.1), rollout=FOREVER)
        seen: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def one(n: int) -> str:
            try:
                return str(module.f(n)[0])
            except ValueError:
                return "error"

        def call() -> None:
            mine = collections.Counter(one(n) for n in range(20_000))
            with lock:
                seen.update(mine)

        for _ in range(3):
            threads = [threading.Thread(target=call) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            versions = handle.report()["versions"]
            assert versions[1]["calls"] == seen["old"]
            assert versions[2]["calls"] == seen["new"] + seen["error"]
            assert versions[2]["errors"] == seen["error"]
        handle.abort()

    def test_signals_come_in_order_before_wait_returns(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """rollout_step per step, then module_swapped (only then), then rollout_finished."""
        handle = reloader.swap(module.__name__, source("new"), rollout=QUICK)
        with Load(module.f):
            handle.wait(timeout=30)
        order = [e for e in received.order() if e != "swap_failed"]
        assert order == ["rollout_step", "rollout_step", "module_swapped", "rollout_finished"]
        swapped = received.named("module_swapped")[0]
        assert (swapped["version"], swapped["previous"]) == (handle.version, handle.previous)
        finished = received.named("rollout_finished")[0]
        assert finished["status"] == "promoted"
        assert finished["handle"] is handle
        assert finished["report"]["status"] == "promoted"
        assert finished["sender"] is reloader

    def test_a_last_step_below_100_promotes_after_its_bake(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """steps=(10, 50): two steps judged, then promoted."""
        rollout = Rollout(steps=(10, 50), bake=0.05, min_samples=5)
        handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
        with Load(module.f):
            assert handle.wait(timeout=30) == "promoted"
        assert [step["weight"] for step in handle.report()["steps"]] == [10, 50]

    def test_a_first_step_of_100_promotes_at_once(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """steps=(100,): swap() returns a handle already promoted; the swap is a plain one."""
        handle = reloader.swap(module.__name__, source("new"), rollout=Rollout(steps=(100,)))
        assert (handle.status, handle.weight) == ("promoted", 100)
        assert handle.wait(timeout=0) == "promoted"
        assert module.f(1) == ("new", 1)
        assert reloader.current(module.__name__) == handle.version
        assert handle.previous.number == 1
        assert received.order() == ["module_swapped", "rollout_finished"]

    def test_the_candidate_is_in_history_but_not_current(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """During a rollout current() is the old version; the candidate is numbered already."""
        name = module.__name__
        handle = reloader.swap(name, source("new"), rollout=FOREVER, reason="canary")
        assert reloader.current(name).number == 1
        assert [v.number for v in reloader.history(name)] == [1, 2]
        assert handle.version == reloader.history(name)[-1]
        assert handle.version.reason == "canary"
        assert handle.previous == reloader.current(name)
        assert handle.module == name

    def test_an_identical_source_makes_no_version(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """The running source again: a handle already promoted, no version, no signal."""
        handle = reloader.swap(module.__name__, source("old"), rollout=QUICK)
        assert handle.status == "promoted"
        assert handle.version == handle.previous == reloader.current(module.__name__)
        assert len(reloader.history(module.__name__)) == 1
        assert received.order() == []


class TestFailingRollout:
    def test_a_failing_canary_rolls_back_at_its_first_step(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """A new version failing 20 % of calls is rolled back at 10 %, with a rollback_alert."""
        name = module.__name__
        handle = reloader.swap(name, source("bad", fail=0.2), rollout=STRICT)
        with Load(module.f) as load:
            assert handle.wait(timeout=30) == "rolled_back"
        assert not load.unexpected
        assert (handle.status, handle.weight) == ("rolled_back", 0)
        report = handle.report()
        assert [step["verdict"] for step in report["steps"]] == ["breached"]
        assert report["steps"][0]["breaches"][0].startswith("error_rate ")
        assert reloader.current(name).number == 1
        assert [v.number for v in reloader.history(name)] == [1, 2]
        assert module.f(1) == ("old", 1)
        alerts = received.named("rollback_alert")
        assert [(a["deployment_id"], a["metric"], a["threshold"]) for a in alerts] == [
            (f"{name}@2", "error_rate", 0.01)
        ]
        assert alerts[0]["value"] > 0.01
        assert received.named("module_swapped") == []
        assert received.named("module_rolled_back") == []
        assert [f["status"] for f in received.named("rollout_finished")] == ["rolled_back"]

    def test_a_certain_breach_rolls_back_long_before_the_bake_ends(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """A bake of 20 s: a version failing half its calls is rolled back within a few seconds."""
        rollout = Rollout(steps=(10, 50, 100), bake=20, min_samples=50)
        handle = reloader.swap(module.__name__, source("bad", fail=0.5), rollout=rollout)
        with Load(module.f):
            assert handle.wait(timeout=10) == "rolled_back"
        step = handle.report()["steps"][0]
        assert (step["weight"], step["verdict"]) == (10, "breached")
        assert step["calls"] >= 50
        assert step["judged_at"] - step["started_at"] < 10
        assert [a["metric"] for a in received.named("rollback_alert")] == ["error_rate"]

    def test_a_healthy_version_is_not_judged_before_its_bake_ends(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A version never failing stays at its first step for its whole bake (no early verdict)."""
        rollout = Rollout(steps=(10, 50, 100), bake=3600, min_samples=5)
        handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
        with Load(module.f):
            assert handle.wait(timeout=0.5) == "running"
        assert (handle.weight, handle.report()["steps"][0]["verdict"]) == (10, None)
        handle.abort()

    def test_errors_of_a_cold_start_wait_for_the_bake_s_verdict(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """5 errors in the new version's first 10 calls, none after: the step ends healthy."""
        rollout = Rollout(
            steps=(50,), bake=2.0, min_samples=10, thresholds=Thresholds(max_error_rate=0.05)
        )
        # About 100 calls a second on each version: 10 by the first tick.
        with Load(module.f, pause=0.005):
            handle = reloader.swap(module.__name__, COLD.format(failures=5), rollout=rollout)
            assert handle.wait(timeout=30) == "promoted"
        step = handle.report()["steps"][0]
        assert (step["errors"], step["verdict"]) == (5, "healthy")

    def test_errors_when_traffic_comes_late_wait_for_the_bake_s_verdict(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """No calls for half the bake, then many: 4 cold errors are diluted, not judged early."""
        rollout = Rollout(
            steps=(50,), bake=2.0, min_samples=20, thresholds=Thresholds(max_error_rate=0.03)
        )
        handle = reloader.swap(module.__name__, COLD.format(failures=4), rollout=rollout)
        # Quiet, then about 200 calls a second on each version.
        with Load(module.f, pause=0.002, after=1.0):
            assert handle.wait(timeout=30) == "promoted"
        step = handle.report()["steps"][0]
        assert (step["errors"], step["verdict"]) == (4, "healthy")

    def test_a_latency_breach_rolls_back(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """A new version slower than max_latency at p99 is rolled back, the alert on latency."""
        rollout = Rollout(
            steps=(50, 100), bake=0.05, min_samples=5, thresholds=Thresholds(max_latency=0.001)
        )
        handle = reloader.swap(module.__name__, source("slow", delay=0.003), rollout=rollout)
        with Load(module.f):
            assert handle.wait(timeout=30) == "rolled_back"
        assert handle.report()["steps"][0]["breaches"][0].startswith("latency p99 ")
        assert [a["metric"] for a in received.named("rollback_alert")] == ["latency"]

    def test_the_alert_comes_from_the_reloaders_monitor(
        self, package: Package, received: Received
    ) -> None:
        """With a monitor given, rollback_alert's sender is that monitor."""
        monitor = PerformanceMonitor()
        reloader, module = monitored(package, monitor)
        handle = reloader.swap(module.__name__, source("bad", fail=0.5), rollout=STRICT)
        with Load(module.f):
            assert handle.wait(timeout=30) == "rolled_back"
        assert [a["sender"] for a in received.named("rollback_alert")] == [monitor]


class TestInconclusive:
    def test_extend_bakes_again_until_there_are_calls(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """No calls: the first step runs on; once calls come, the rollout goes on and promotes."""
        handle = reloader.swap(module.__name__, source("new"), rollout=QUICK)
        assert handle.wait(timeout=0.3) == "running"
        assert handle.weight == 10
        assert handle.report()["steps"][0]["verdict"] is None
        with Load(module.f):
            assert handle.wait(timeout=30) == "promoted"

    def test_pause_waits_for_promote(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """No calls under "pause": status paused (announced), until promote() promotes it."""
        rollout = Rollout(bake=0.05, on_inconclusive="pause")
        handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
        assert eventually(lambda: handle.status == "paused", timeout=30)
        assert handle.wait(timeout=0.2) == "paused"
        paused = received.named("rollout_step")[-1]
        assert (paused["status"], paused["verdict"], paused["weight"]) == (
            "paused",
            "inconclusive",
            10,
        )
        handle.promote()
        assert handle.status == "promoted"
        assert module.f(1) == ("new", 1)

    def test_a_paused_rollout_still_rolls_back_on_a_breach(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Paused, then failing calls: the breach rolls it back (safety wins)."""
        rollout = Rollout(bake=0.05, on_inconclusive="pause", min_samples=10**9)
        handle = reloader.swap(module.__name__, source("bad", fail=0.5), rollout=rollout)
        assert eventually(lambda: handle.status == "paused", timeout=30)
        with Load(module.f):
            assert handle.wait(timeout=30) == "rolled_back"

    def test_a_hung_version_is_not_promoted(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """New calls still running at the bake's end are too few under max_latency: not healthy."""
        rollout = Rollout(
            steps=(50,),
            bake=0.1,
            min_samples=1,
            on_inconclusive="fail",
            thresholds=Thresholds(max_latency=0.5),
        )
        hung = "from tests.test_rollout import HANG\n\ndef f(x):\n    HANG.wait()\n    return x\n"
        HANG.clear()
        handle = reloader.swap(module.__name__, hung, rollout=rollout)
        callers = [threading.Thread(target=module.f, args=(n,)) for n in range(20)]
        try:
            for caller in callers:
                caller.start()
            assert handle.wait(timeout=30) == "failed"
            assert handle.report()["steps"][0]["calls"] > 0
        finally:
            HANG.set()
            for caller in callers:
                caller.join()

    def test_fail_ends_in_failed(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """No calls under "fail": status failed, the old version serving, no alert."""
        rollout = Rollout(bake=0.05, on_inconclusive="fail")
        handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
        assert handle.wait(timeout=30) == "failed"
        assert handle.report()["steps"][0]["verdict"] == "inconclusive"
        assert module.f(1) == ("old", 1)
        assert reloader.current(module.__name__).number == 1
        assert received.named("rollback_alert") == []
        assert [f["status"] for f in received.named("rollout_finished")] == ["failed"]


class TestPromoteAndAbort:
    def test_promote_from_another_thread(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """promote() in another thread ends the rollout; wait() in this one sees it."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        with Load(module.f) as load:
            threading.Thread(target=handle.promote).start()
            assert handle.wait(timeout=30) == "promoted"
        assert not load.unexpected
        assert handle.report()["steps"][0]["verdict"] == "promoted"
        assert module.f(1) == ("new", 1)

    def test_abort_from_another_thread(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """abort() in another thread rolls back; wait() in this one sees "rolled_back"."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        with Load(module.f) as load:
            threading.Thread(target=handle.abort).start()
            assert handle.wait(timeout=30) == "rolled_back"
        assert not load.unexpected
        assert handle.report()["steps"][0]["verdict"] == "aborted"
        assert module.f(1) == ("old", 1)

    def test_the_same_end_twice_is_a_no_op(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """promote() on a promoted rollout does nothing (one rollout_finished)."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        handle.promote()
        handle.promote()
        assert len(received.named("rollout_finished")) == 1

    def test_another_end_is_a_rollout_error(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """abort() after promotion, promote() after a rollback: RolloutError naming the status."""
        promoted = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        promoted.promote()
        with pytest.raises(RolloutError, match="promoted") as caught:
            promoted.abort()
        assert (caught.value.status, caught.value.module) == ("promoted", module.__name__)
        aborted = reloader.swap(module.__name__, source("newer"), rollout=FOREVER)
        aborted.abort()
        with pytest.raises(RolloutError, match="rolled_back"):
            aborted.promote()


class TestPin:
    def test_a_block_runs_on_one_version(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Every call in a pinned block runs the version whose number the block got."""
        handle = reloader.swap(module.__name__, source("new"), rollout=Rollout(steps=(50,)))
        tags = {handle.previous.number: "old", handle.version.number: "new"}
        seen = set()
        for _ in range(200):
            with handle.pin() as number:
                assert {module.f(n)[0] for n in range(5)} == {tags[number]}
            seen.add(number)
        assert seen == set(tags)

    def test_the_same_key_gets_the_same_version(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """pin(key) is sticky: a key always gets the same version within a step."""
        handle = reloader.swap(module.__name__, source("new"), rollout=Rollout(steps=(50,)))
        for key in ("alice", "bob", 42):
            numbers = set()
            for _ in range(20):
                with handle.pin(key) as number:
                    numbers.add(number)
            assert len(numbers) == 1

    def test_a_block_counts_as_one_call(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A block is one call of its version (its inner calls are not); raising, one error."""
        handle = reloader.swap(module.__name__, source("new"), rollout=Rollout(steps=(50,)))
        numbers: list[int] = []

        def job() -> None:
            with handle.pin() as number:
                numbers.append(number)
                module.f(1)
                raise KeyError(number)

        for _ in range(10):
            with pytest.raises(KeyError):
                job()
        handle.promote()
        versions = handle.report()["versions"]
        for number in set(numbers):
            assert versions[number]["calls"] == numbers.count(number)
            assert versions[number]["errors"] == numbers.count(number)

    def test_a_nested_block_keeps_the_outer_version(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """pin() inside a pin() yields the outer block's version and counts no second call."""
        handle = reloader.swap(module.__name__, source("new"), rollout=Rollout(steps=(50,)))
        pairs = []
        for number in range(100):
            with handle.pin() as outer, handle.pin(number) as inner:
                pairs.append((outer, inner))
        assert all(outer == inner for outer, inner in pairs)
        handle.promote()
        versions = handle.report()["versions"]
        assert sum(version["calls"] for version in versions.values()) == 100  # type: ignore[attr-defined]

    def test_after_the_end_a_block_runs_what_serves(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Once promoted, pin() yields the new version's number; once rolled back, the old's."""
        promoted = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        promoted.promote()
        with promoted.pin() as number:
            assert (number, module.f(1)) == (promoted.version.number, ("new", 1))
        aborted = reloader.swap(module.__name__, source("newer"), rollout=FOREVER)
        aborted.abort()
        with aborted.pin() as number:
            assert (number, module.f(1)) == (aborted.previous.number, ("new", 1))


class TestReceivers:
    def test_a_receiver_may_end_the_rollout_it_is_told_of(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """abort() from a rollout_step receiver (the swapping thread) rolls back at once."""
        handles: list[RolloutHandle] = []

        def abort(sender: object, *, handle: RolloutHandle, **extra: Any) -> None:
            handle.abort()
            handles.append(handle)

        with signals.rollout_step.connected_to(abort):
            handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        assert handles == [handle]
        assert handle.status == "rolled_back"

    def test_an_interrupt_while_the_first_step_is_told_leaves_nothing_split(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A rollout_step receiver raising KeyboardInterrupt: it propagates; old code serves."""

        def interrupt(sender: object, **extra: Any) -> None:
            raise KeyboardInterrupt

        before = reloader.current(module.__name__)
        with signals.rollout_step.connected_to(interrupt), pytest.raises(KeyboardInterrupt):
            reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        assert reloader.current(module.__name__) == before
        assert {module.f(n) for n in range(200)} == {("old", n) for n in range(200)}
        # No rollout is left holding the module: it swaps again.
        assert reloader.swap(module.__name__, source("newer")).number > before.number
        assert module.f(1) == ("newer", 1)

    def test_a_receiver_of_the_end_may_wait_and_end_it_again(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """In a rollout_finished receiver, wait() and the same end return at once (no hang)."""
        seen: list[str] = []

        def finished(sender: object, *, handle: RolloutHandle, **extra: Any) -> None:
            seen.append(handle.wait())
            handle.promote()
            seen.append(handle.status)

        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        with signals.rollout_finished.connected_to(finished):
            ender = threading.Thread(target=handle.promote, daemon=True)
            ender.start()
            ender.join(timeout=30)
        assert not ender.is_alive()
        assert seen == ["promoted", "promoted"]


class TestReloaderDuringRollout:
    def test_a_swap_of_the_module_is_refused(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """swap() during a rollout: RolloutError (a SwapError), swap_failed, nothing changed."""
        name = module.__name__
        handle = reloader.swap(name, source("new"), rollout=FOREVER)
        with pytest.raises(RolloutError) as caught:
            reloader.swap(name, source("other"))
        assert isinstance(caught.value, SwapError)
        assert isinstance(caught.value, RuntimeError)
        assert caught.value.status == "running"
        assert [f["error"] for f in received.named("swap_failed")] == [caught.value]
        with pytest.raises(RolloutError):
            reloader.swap_many({name: source("other")})
        with pytest.raises(RolloutError):
            reloader.swap(name, source("other"), rollout=QUICK)
        assert [v.number for v in reloader.history(name)] == [1, 2]
        assert handle.status == "running"
        handle.promote()
        assert reloader.swap(name, source("after")).number == 3

    def test_a_watched_save_is_refused_until_the_rollout_ends(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A watcher's save during a rollout: swap_failed (RolloutError); saves after it land."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        refused = threading.Event()
        errors: list[BaseException] = []

        def on_failed(sender: object, *, error: BaseException, **extra: Any) -> None:
            errors.append(error)
            refused.set()

        def save(text: str) -> None:
            # As editors save (write, then rename): the watcher never reads half a file.
            partial = package.path / "m.py.partial"
            partial.write_text(text)
            os.replace(partial, package.path / "m.py")

        with signals.swap_failed.connected_to(on_failed), reloader.watch(package.path):
            save(source("saved"))
            assert refused.wait(30)
            assert isinstance(errors[0], RolloutError)
            assert handle.status == "running"
            handle.abort()
            save(source("saved again"))
            assert eventually(lambda: module.f(1) == ("saved again", 1), timeout=30)

    def test_rollback_aborts_the_rollout(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """rollback() during a rollout aborts it and returns the version serving (the old)."""
        name = module.__name__
        handle = reloader.swap(name, source("new"), rollout=FOREVER)
        assert reloader.rollback(name).number == 1
        assert handle.status == "rolled_back"
        assert received.named("module_rolled_back") == []
        assert module.f(1) == ("old", 1)

    def test_rollback_to_an_older_version_aborts_then_rolls_back(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """rollback(m, to=1) during a rollout of v3 over v2: aborted, then back to v1."""
        name = module.__name__
        reloader.swap(name, source("second"))
        handle = reloader.swap(name, source("third"), rollout=FOREVER)
        assert reloader.rollback(name, to=1).number == 1
        assert handle.status == "rolled_back"
        assert module.f(1) == ("old", 1)

    def test_rollback_many_aborts_and_rolls_back_the_others(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """rollback_many: the module under rollout is aborted, the other one rolled back."""
        other = package.module("other", source("o1"))
        reloader.swap(other.__name__, source("o2"))
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        versions = reloader.rollback_many([module.__name__, other.__name__])
        assert [v.number for v in versions] == [1, 1]
        assert handle.status == "rolled_back"
        assert other.f(1) == ("o1", 1)

    def test_a_refused_rollback_many_aborts_nothing(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """rollback_many with a module that has no parent: RollbackError, the rollout runs on."""
        other = package.module("other", source("o1"))
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        with pytest.raises(RollbackError):
            reloader.rollback_many([module.__name__, other.__name__])
        assert handle.status == "running"

    def test_a_new_rollout_after_the_end(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Once a rollout ended, the module can be rolled out again (the next number)."""
        reloader.swap(module.__name__, source("new"), rollout=FOREVER).abort()
        handle = reloader.swap(module.__name__, source("newer"), rollout=FOREVER)
        assert handle.version.number == 3
        assert handle.previous.number == 1


class TestControllerFailure:
    def test_an_error_in_the_rollouts_thread_ends_it_failed(
        self, package: Package, caplog: pytest.LogCaptureFixture, received: Received
    ) -> None:
        """The rollout's own thread failing (its monitor raising): reverted, "failed", logged."""

        class BrokenMonitor(PerformanceMonitor):
            def _record_batch(self, *args: object, **kwargs: object) -> None:
                raise RuntimeError("the monitor is broken")

        reloader = HotReloader(monitor=BrokenMonitor())
        reloader.install(package.name)
        module = package.module("m", source("old"))
        handle = reloader.swap(module.__name__, source("new"), rollout=QUICK)
        with Load(module.f):
            assert handle.wait(timeout=30) == "failed"
        assert module.f(1) == ("old", 1)
        assert reloader.swap(module.__name__, source("after")).number == 3
        assert any("the rollout of" in r.getMessage() for r in caplog.records)
        assert [f["status"] for f in received.named("rollout_finished")] == ["failed"]


def release(reloader: HotReloader, sources: dict[str, str]) -> RolloutHandle:
    """A rollout of the release ``sources`` (module name: new source), held until promoted."""
    return reloader._start_rollout(
        sources, checks=(), reason="release", rollout=FOREVER, shadow=None
    )


class TestReleaseOfSeveralModules:
    def test_one_rollout_for_the_whole_release(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """_start_rollout of two modules: named after the first that changed; both held."""
        other = package.module("other", source("o1"))
        handle = release(reloader, {module.__name__: source("old"), other.__name__: source("o2")})
        assert handle.module == other.__name__
        assert handle.modules == (other.__name__,)  # the unchanged one is not in the release
        assert handle.version.number == 2
        assert reloader.current(module.__name__).number == 1
        with pytest.raises(RolloutError):
            reloader.swap(other.__name__, source("o3"))
        handle.promote()
        assert other.f(1) == ("o2", 1)

    def test_every_module_of_the_release_is_held(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Both modules changed: a swap of either is refused; abort reverts both."""
        other = package.module("other", source("o1"))
        handle = release(reloader, {module.__name__: source("new"), other.__name__: source("o2")})
        assert handle.module == module.__name__
        for name in (module.__name__, other.__name__):
            with pytest.raises(RolloutError):
                reloader.swap(name, source("x"))
        handle.abort()
        assert (module.f(1), other.f(1)) == (("old", 1), ("o1", 1))
        assert reloader.swap(other.__name__, source("o3")).number == 3


class TestArguments:
    @pytest.mark.parametrize("rollout", ["steps", {"steps": (10,)}, 10])
    def test_rollout_must_be_a_rollout(
        self, reloader: HotReloader, module: types.ModuleType, rollout: object
    ) -> None:
        """rollout= takes a Rollout (or None); nothing is attempted otherwise."""
        with pytest.raises(InvalidArgumentError, match="rollout"):
            reloader.swap(module.__name__, source("new"), rollout=rollout)  # type: ignore[call-overload]
        assert len(reloader.history(module.__name__)) == 1

    def test_shadow_must_be_a_shadow(self, reloader: HotReloader, module: types.ModuleType) -> None:
        """shadow= takes a Shadow (or None)."""
        with pytest.raises(InvalidArgumentError, match="shadow"):
            reloader.swap(module.__name__, source("new"), shadow=0.5)  # type: ignore[call-overload]

    def test_not_both(self, reloader: HotReloader, module: types.ModuleType) -> None:
        """rollout= and shadow= together are refused."""
        with pytest.raises(InvalidArgumentError, match="not both"):
            reloader.swap(  # type: ignore[call-overload]
                module.__name__, source("new"), rollout=QUICK, shadow=Shadow()
            )

    def test_wait_timeout_must_be_a_number(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """wait(timeout=-1) or a string is refused."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        for timeout in (-1, "1", True):
            with pytest.raises(InvalidArgumentError):
                handle.wait(timeout=timeout)  # type: ignore[arg-type]

    def test_a_module_with_nothing_to_route_is_refused(
        self, package: Package, reloader: HotReloader, received: Received
    ) -> None:
        """A module of constants only cannot be split per call: ValidationError, nothing changed."""
        reloader.install(package.name)
        constants = package.module("constants", "X = 1\n")
        with pytest.raises(ValidationError, match="without a rollout"):
            reloader.swap(constants.__name__, "X = 2\n", rollout=QUICK)
        assert reloader.current(constants.__name__).number == 1
        assert len(received.named("swap_failed")) == 1


class TestReport:
    def test_the_report_is_plain_data(self, package: Package) -> None:
        """report() has the contract's keys, per-version counts, and json.dumps takes it."""
        monitor = PerformanceMonitor()
        reloader, module = monitored(package, monitor)
        name = module.__name__
        handle = reloader.swap(name, source("new"), rollout=QUICK)
        with Load(module.f) as load:
            assert handle.wait(timeout=30) == "promoted"
        report = handle.report()
        json.loads(json.dumps(report))
        assert set(report) == {"module", "status", "weight", "versions", "steps", "key_errors"}
        assert (report["module"], report["status"], report["weight"]) == (name, "promoted", 100)
        old, new = report["versions"][1], report["versions"][2]
        assert (old["role"], new["role"]) == ("old", "new")
        assert old["calls"] > 0
        assert new["calls"] > 0
        assert old["calls"] + new["calls"] <= sum(load.tags.values())
        assert new["errors"] == 0
        assert set(new["latency"]) == {"count", "mean", "min", "max", "p50", "p95", "p99"}
        assert report["steps"][0]["calls"] <= new["calls"]
        assert set(report["steps"][0]) == {
            "weight", "calls", "errors", "verdict", "breaches", "started_at", "judged_at",
        }  # fmt: skip
        metrics = monitor.metrics(f"{name}@2")
        assert {"latency", "error_rate", "calls"} <= set(metrics)
        assert monitor.metrics(f"{name}@1")["calls"].count > 0

    def test_without_a_monitor_a_private_one_is_used(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A reloader with no monitor still reports latencies (its private monitor)."""
        handle = reloader.swap(module.__name__, source("new"), rollout=QUICK)
        with Load(module.f):
            handle.wait(timeout=30)
        assert handle.report()["versions"][1]["latency"]["count"] > 0
        assert reloader.monitor is None


class TestRelease:
    def test_a_kept_handle_keeps_no_version_alive(
        self, package: Package, module: types.ModuleType
    ) -> None:
        """A handle kept after its rollout ended holds neither version: evicted ones are freed."""
        reloader = HotReloader(keep=1)
        reloader.install(package.name)
        tracked = package.module("tracked", source("v1"))
        first = weakref.ref(tracked.f.__wrapped__)
        handle = reloader.swap(tracked.__name__, source("v2"), rollout=FOREVER)
        candidate = weakref.ref(reloader._modules[tracked.__name__].history.get(2).targets["f"])
        handle.promote()
        aborted = reloader.swap(tracked.__name__, source("v3"), rollout=FOREVER)
        aborted.abort()
        for tag in ("v4", "v5"):
            reloader.swap(tracked.__name__, source(tag))
        gc.collect()
        assert (first(), candidate()) == (None, None)
        assert (handle.status, aborted.status) == ("promoted", "rolled_back")
        assert handle.report()["versions"][2]["role"] == "new"


class TestFork:
    def test_a_forked_child_serves_the_old_version(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """In a child forked during a rollout, it is rolled back at once ("forked"), silently."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        events = len(received.events)

        def child() -> bool:
            return (
                handle.status == "rolled_back"
                and handle.report()["reason"] == "forked"
                and all(module.f(n) == ("old", n) for n in range(200))
                and reloader.swap(module.__name__, source("child")).number == 3
                and len(received.events) == events + 1  # only the child's module_swapped
            )

        assert in_child(child) == 0
        assert handle.status == "running"

    def test_a_child_forked_while_a_thread_held_the_split_s_locks_still_reverts(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Locks a parent's thread held at the fork (taking a period) are fresh in the child."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        split = handle._controller.split
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with split._lock, split._ending, split.shared._lock:
                held.set()
                release.wait()

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            held.wait()
            assert in_child(lambda: all(module.f(n) == ("old", n) for n in range(200))) == 0
        finally:
            release.set()
            holder.join()
        assert handle.status == "running"
        handle.abort()


#: a new version whose very first call fails, and no other
FIRST_FAILS = """
import itertools

TAG = "new"
_calls = itertools.count()

def f(x):
    if next(_calls) == 0:
        raise ValueError("the first call fails")
    return (TAG, x)
"""


class TestEndSignals:
    @staticmethod
    def _raise(sender: object, **extra: Any) -> None:
        raise RuntimeError("the metrics backend is down")

    def test_a_failing_module_swapped_receiver_does_not_stop_the_promotion_s_end(
        self,
        reloader: HotReloader,
        module: types.ModuleType,
        received: Received,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Promoted by its thread, a raising receiver is logged; rollout_finished still comes."""
        rollout = Rollout(steps=(10, 100), bake=0.05, min_samples=0)
        with signals.module_swapped.connected_to(self._raise):
            handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
            assert handle.wait(timeout=30) == "promoted"
        assert [f["status"] for f in received.named("rollout_finished")] == ["promoted"]
        assert module.f(1) == ("new", 1)
        messages = [record.getMessage() for record in caplog.records]
        assert any("a receiver of module_swapped failed" in message for message in messages)
        assert not any("the old version serves again" in message for message in messages)

    def test_promote_does_not_raise_a_receiver_s_error(
        self, reloader: HotReloader, module: types.ModuleType, received: Received
    ) -> None:
        """promote() returns normally after a module_swapped receiver raised; the end is told."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        with signals.module_swapped.connected_to(self._raise):
            handle.promote()
        assert handle.status == "promoted"
        assert [f["status"] for f in received.named("rollout_finished")] == ["promoted"]

    def test_every_module_of_a_release_is_told_despite_a_failing_receiver(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A receiver raising for the first module: the second still gets module_swapped."""
        other = package.module("other", source("o1"))
        told: list[str] = []

        def fails_first(sender: object, *, module: str, **extra: Any) -> None:
            told.append(module)
            if len(told) == 1:
                raise RuntimeError("the metrics backend is down")

        handle = release(reloader, {module.__name__: source("new"), other.__name__: source("o2")})
        with signals.module_swapped.connected_to(fails_first):
            handle.promote()
        assert sorted(told) == sorted([module.__name__, other.__name__])


class TestMonitorFeed:
    def test_a_healthy_rollout_fires_no_alert_from_the_monitor_s_thresholds(
        self, package: Package, received: Received
    ) -> None:
        """One error among a period's few calls is no breach: the monitor sends no alert."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_error_rate=0.01))
        reloader, module = monitored(package, monitor)
        handle = reloader.swap(
            module.__name__, FIRST_FAILS, rollout=Rollout(steps=(50,), bake=3600)
        )

        def served() -> str:
            try:
                return str(module.f(1)[0])
            except ValueError:  # the new version's first call
                return "new"

        new = 0
        while new < 30:
            new += served() == "new"
        handle.promote()
        assert received.named("rollback_alert") == []
        errors = handle.report()["versions"][handle.version.number]["errors"]  # type: ignore[index]
        assert errors == 1
        assert monitor.metrics(f"{module.__name__}@2")["error_rate"].max > 0

    def test_a_breach_is_alerted_once_whatever_the_monitor_s_thresholds(
        self, package: Package, received: Received
    ) -> None:
        """A failing rollout sends one rollback_alert, its verdict's, not one per period."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_error_rate=0.01))
        reloader, module = monitored(package, monitor)
        handle = reloader.swap(module.__name__, source("bad", fail=0.5), rollout=STRICT)
        with Load(module.f):
            assert handle.wait(timeout=30) == "rolled_back"
        assert [a["metric"] for a in received.named("rollback_alert")] == ["error_rate"]


class TestWait:
    @pytest.mark.parametrize("timeout", [math.inf, 1e12])
    def test_an_endless_timeout_waits_for_the_end(
        self, reloader: HotReloader, module: types.ModuleType, timeout: float
    ) -> None:
        """wait(math.inf) or a huge timeout waits like wait(None), never OverflowError."""
        handle = reloader.swap(module.__name__, source("new"), rollout=FOREVER)
        statuses: list[object] = []

        def wait() -> None:
            try:
                statuses.append(handle.wait(timeout=timeout))
            except BaseException as error:  # reported below
                statuses.append(error)

        waiter = threading.Thread(target=wait)
        waiter.start()
        handle.promote()
        waiter.join(timeout=30)
        assert statuses == ["promoted"]
        assert handle.wait(timeout=timeout) == "promoted"

    def test_wait_in_a_rollout_step_receiver_is_refused(
        self, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """wait() from a rollout_step receiver raises RolloutError; the rollout goes on."""
        refused: list[object] = []

        def on_step(sender: object, *, handle: RolloutHandle, **extra: Any) -> None:
            try:
                handle.wait(timeout=5)  # without the refusal: 5 s lost, nothing refused
            except RolloutError as error:
                refused.append(error.status)

        rollout = Rollout(steps=(10, 50, 100), bake=0.05, min_samples=0)
        with signals.rollout_step.connected_to(on_step):
            handle = reloader.swap(module.__name__, source("new"), rollout=rollout)
            assert handle.wait(timeout=30) == "promoted"
        # The first step is told in the swapping thread, the second in the rollout's own.
        assert refused == ["running", "running"]
