"""PerformanceMonitor: windows, summaries, thresholds judged as values arrive, health, threads."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import logging
import math
import sys
import threading
import time
import tracemalloc
import weakref
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from illunare import (
    Health,
    HotReloader,
    InvalidArgumentError,
    MetricSummary,
    PerformanceMonitor,
    Thresholds,
    signals,
)

from .strategies import LATENCIES, METRIC_VALUES, WINDOWS

BAD_NAMES = ["", 7, None, b"checkout", ["checkout"]]
BAD_VALUES = [math.nan, math.inf, -math.inf, "0.1", None, True, 10**400, 1j]


def reference_percentile(values: list[float], percent: int) -> float:
    """The smallest value that at least ``percent`` % of ``values`` do not exceed (by counting)."""
    return min(v for v in values if 100 * sum(1 for x in values if x <= v) >= percent * len(values))


@attrs.define
class Alerts:
    """What a receiver of performance_alert and rollback_alert was sent."""

    performance: list[dict[str, Any]] = attrs.Factory(list)
    rollback: list[dict[str, Any]] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def on_performance(self, sender: object, **kwargs: Any) -> None:
        with self.lock:
            self.performance.append({"sender": sender, **kwargs})

    def on_rollback(self, sender: object, **kwargs: Any) -> None:
        with self.lock:
            self.rollback.append({"sender": sender, **kwargs})


@pytest.fixture
def alerts() -> Iterator[Alerts]:
    """Receivers connected to both alert signals for the test."""
    received = Alerts()
    with (
        signals.performance_alert.connected_to(received.on_performance),
        signals.rollback_alert.connected_to(received.on_rollback),
    ):
        yield received


class TestThresholds:
    def test_defaults_judge_nothing(self) -> None:
        """Thresholds() sets no limit."""
        assert (Thresholds().max_latency, Thresholds().max_error_rate) == (None, None)

    def test_limits_within_range_are_kept(self) -> None:
        """Numbers within range are kept as given, the bounds included."""
        assert Thresholds(0, 1).max_error_rate == 1
        assert Thresholds(max_latency=0.25, max_error_rate=0.0) == Thresholds(0.25, 0.0)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_latency": -0.1},
            {"max_latency": math.nan},
            {"max_latency": "0.2"},
            {"max_latency": True},
            {"max_error_rate": 1.5},
            {"max_error_rate": -0.01},
            {"max_error_rate": math.nan},
            {"max_error_rate": [0.1]},
        ],
    )
    def test_bad_limits_are_refused(self, kwargs: dict[str, Any]) -> None:
        """A limit that is not a number in range raises InvalidArgumentError naming it."""
        with pytest.raises(InvalidArgumentError, match=next(iter(kwargs))):
            Thresholds(**kwargs)

    def test_thresholds_are_frozen(self) -> None:
        """Thresholds is a value: it cannot be changed once made."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            Thresholds().max_latency = 1.0  # type: ignore[misc]


class TestConstruction:
    def test_window_and_thresholds_are_kept(self) -> None:
        """The window size and thresholds given are the monitor's, read-only."""
        thresholds = Thresholds(max_latency=0.5)
        monitor = PerformanceMonitor(window=7, thresholds=thresholds)
        assert (7, thresholds) == (monitor.window, monitor.thresholds)
        assert (PerformanceMonitor().window, PerformanceMonitor().thresholds) == (100, None)
        with pytest.raises(AttributeError):
            monitor.window = 3  # type: ignore[misc]

    @pytest.mark.parametrize("window", [0, -1, 1.5, True, "10", None])
    def test_bad_window_is_refused(self, window: object) -> None:
        """A window that is not an int >= 1 raises InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="window"):
            PerformanceMonitor(window=window)  # type: ignore[arg-type]

    def test_bad_thresholds_are_refused(self) -> None:
        """Thresholds given as anything but a Thresholds raise InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="thresholds"):
            PerformanceMonitor(thresholds={"max_latency": 1.0})  # type: ignore[arg-type]


class TestReloaderMonitor:
    def test_monitor_given_is_kept(self) -> None:
        """HotReloader(monitor=m).monitor is m; without one it is None."""
        monitor = PerformanceMonitor()
        assert HotReloader(monitor=monitor).monitor is monitor
        assert HotReloader().monitor is None

    def test_monitor_is_read_only(self) -> None:
        """The reloader's monitor cannot be replaced afterwards."""
        reloader = HotReloader()
        with pytest.raises(AttributeError):
            reloader.monitor = PerformanceMonitor()  # type: ignore[misc]

    def test_bad_monitor_is_refused(self) -> None:
        """A monitor that is not a PerformanceMonitor raises InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="monitor"):
            HotReloader(monitor=object())  # type: ignore[arg-type]


class TestRecord:
    def test_record_starts_an_id_never_started(self) -> None:
        """record() on a new id starts it and summarises the value."""
        monitor = PerformanceMonitor()
        monitor.record("checkout", "latency", 0.25)
        assert monitor.metrics("checkout") == {
            "latency": MetricSummary(1, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, (0.25,))
        }

    def test_metrics_are_named_freely(self) -> None:
        """Any metric name is kept apart from the others."""
        monitor = PerformanceMonitor()
        for metric, value in [("throughput", 120), ("memory_usage", 3.5e8), ("queue", -2)]:
            monitor.record("api", metric, value)
        summaries = monitor.metrics("api")
        assert {metric: summary.last for metric, summary in summaries.items()} == {
            "throughput": 120.0,
            "memory_usage": 3.5e8,
            "queue": -2.0,
        }

    def test_real_numbers_are_recorded_as_floats(self) -> None:
        """Ints and other real numbers (a Fraction) are recorded as floats."""
        monitor = PerformanceMonitor()
        monitor.record("api", "latency", 2)
        monitor.record("api", "latency", fractions.Fraction(1, 4))
        values = monitor.metrics("api")["latency"].values
        assert values == (2.0, 0.25)
        assert all(type(value) is float for value in values)

    @pytest.mark.parametrize("value", BAD_VALUES)
    def test_bad_value_is_refused_and_nothing_recorded(self, value: object) -> None:
        """A value that is not a finite real raises InvalidArgumentError; no id is started."""
        monitor = PerformanceMonitor()
        with pytest.raises(InvalidArgumentError, match="value"):
            monitor.record("api", "latency", value)  # type: ignore[arg-type]
        monitor.record("other", "latency", 0.1)
        with pytest.raises(InvalidArgumentError):
            monitor.record("other", "latency", value)  # type: ignore[arg-type]
        assert monitor.metrics("api") == {}
        assert monitor.metrics("other")["latency"].count == 1

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_bad_id_or_metric_is_refused_and_nothing_started(self, name: object) -> None:
        """An id or metric that is not a non-empty str: InvalidArgumentError, nothing started."""
        monitor = PerformanceMonitor()
        with pytest.raises(InvalidArgumentError, match="deployment_id"):
            monitor.record(name, "latency", 0.1)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="metric"):
            monitor.record("api", name, 0.1)  # type: ignore[arg-type]
        assert monitor.metrics("api") == {}
        assert "deployments=[]" in repr(monitor)

    @settings(max_examples=200, deadline=None)
    @given(window=WINDOWS, values=st.lists(METRIC_VALUES, min_size=1, max_size=40))
    def test_summary_of_the_window(self, window: int, values: list[float]) -> None:
        """count is every value; the rest describes exactly the last `window` values."""
        monitor = PerformanceMonitor(window=window)
        for value in values:
            monitor.record("api", "m", value)
        summary = monitor.metrics("api")["m"]
        kept = [float(value) for value in values[-window:]]
        assert len(values) == summary.count
        assert tuple(kept) == summary.values
        assert (kept[-1], min(kept), max(kept)) == (summary.last, summary.min, summary.max)
        assert summary.min <= summary.mean <= summary.max
        exact_mean = sum(map(fractions.Fraction, kept)) / len(kept)
        assert summary.mean == pytest.approx(float(exact_mean), rel=1e-9, abs=1e-300)
        for percent in (50, 95, 99):
            assert reference_percentile(kept, percent) == getattr(summary, f"p{percent}")

    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ([3.0], (3.0, 3.0, 3.0)),
            ([float(n) for n in range(10, 0, -1)], (5.0, 10.0, 10.0)),
            ([float(n) for n in range(1, 101)], (50.0, 95.0, 99.0)),
            ([float(n) for n in range(1, 201)], (100.0, 190.0, 198.0)),
        ],
    )
    def test_percentiles_are_nearest_rank(
        self, values: list[float], expected: tuple[float, float, float]
    ) -> None:
        """p50/p95/p99 are the values of rank ceil(p/100 * n) in sorted order."""
        monitor = PerformanceMonitor(window=len(values))
        for value in values:
            monitor.record("api", "latency", value)
        summary = monitor.metrics("api")["latency"]
        assert expected == (summary.p50, summary.p95, summary.p99)

    def test_huge_values_do_not_overflow_the_mean(self) -> None:
        """The mean of values near the largest float is their mean, not an error or inf."""
        monitor = PerformanceMonitor()
        for _ in range(3):
            monitor.record("api", "m", 1.5e308)
        assert monitor.metrics("api")["m"].mean == 1.5e308


class TestStartStop:
    def test_started_id_has_no_metrics_yet(self) -> None:
        """start() makes an id known with no metric; unknown ids have none either."""
        monitor = PerformanceMonitor()
        monitor.start("api")
        assert (monitor.metrics("api"), monitor.metrics("never")) == ({}, {})
        assert "deployments=['api']" in repr(monitor)

    def test_start_again_keeps_the_values(self) -> None:
        """start() on a started id keeps its values and count."""
        monitor = PerformanceMonitor()
        monitor.record("api", "latency", 0.1)
        monitor.start("api")
        assert monitor.metrics("api")["latency"].count == 1

    def test_stop_discards_the_values_and_the_count(self) -> None:
        """After stop() the id has nothing; recording starts it afresh, count from zero."""
        monitor = PerformanceMonitor()
        for value in (0.1, 0.2, 0.3):
            monitor.record("api", "latency", value)
        monitor.stop("api")
        assert monitor.metrics("api") == {}
        monitor.record("api", "latency", 0.4)
        assert (
            monitor.metrics("api")["latency"].values,
            monitor.metrics("api")["latency"].count,
        ) == ((0.4,), 1)

    def test_stop_of_an_unknown_id_does_nothing(self) -> None:
        """stop() of an id never started is not an error and touches no other id."""
        monitor = PerformanceMonitor()
        monitor.record("api", "latency", 0.1)
        monitor.stop("never")
        assert monitor.metrics("api")["latency"].count == 1

    def test_ids_are_independent(self) -> None:
        """Values of one id never appear in another's metrics."""
        monitor = PerformanceMonitor()
        monitor.record("a", "latency", 1.0)
        monitor.record("b", "latency", 2.0)
        monitor.stop("a")
        assert (monitor.metrics("a"), monitor.metrics("b")["latency"].values) == ({}, (2.0,))

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_bad_id_is_refused_everywhere(self, name: object) -> None:
        """start, stop, metrics, health and measure refuse an id that is not a non-empty str."""
        monitor = PerformanceMonitor()
        for method in (monitor.start, monitor.stop, monitor.metrics, monitor.health):
            with pytest.raises(InvalidArgumentError, match="deployment_id"):
                method(name)  # type: ignore[operator]
        with pytest.raises(InvalidArgumentError, match="deployment_id"):
            monitor.measure(name)  # type: ignore[arg-type]


class TestAlerts:
    @settings(max_examples=100, deadline=None)
    @given(limit=LATENCIES, latencies=st.lists(LATENCIES, max_size=30))
    def test_each_latency_above_the_limit_alerts_once(
        self, limit: float, latencies: list[float]
    ) -> None:
        """performance_alert is sent once per latency above max_latency, with its details."""
        monitor = PerformanceMonitor(window=5, thresholds=Thresholds(max_latency=limit))
        received = Alerts()
        with signals.performance_alert.connected_to(received.on_performance):
            for latency in latencies:
                monitor.record("api", "latency", latency)
        expected = [
            {
                "sender": monitor,
                "deployment_id": "api",
                "metric": "latency",
                "value": v,
                "threshold": limit,
            }
            for v in latencies
            if v > limit
        ]
        assert expected == received.performance

    @settings(max_examples=100, deadline=None)
    @given(
        limit=st.floats(0.0, 1.0),
        rates=st.lists(st.floats(0.0, 1.0), max_size=30),
        outcomes=st.lists(st.booleans(), max_size=10),
    )
    def test_each_error_rate_above_the_limit_alerts_once(
        self, limit: float, rates: list[float], outcomes: list[bool]
    ) -> None:
        """rollback_alert is sent once per error_rate above max_error_rate, measured calls too."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_error_rate=limit))
        received = Alerts()
        with (
            signals.rollback_alert.connected_to(received.on_rollback),
            signals.performance_alert.connected_to(received.on_performance),
        ):
            for rate in rates:
                monitor.record("api", "error_rate", rate)
            for failed in outcomes:
                with contextlib.suppress(ValueError), monitor.measure("api"):
                    if failed:
                        raise ValueError
        recorded = rates + [1.0 if failed else 0.0 for failed in outcomes]
        assert [v for v in recorded if v > limit] == [a["value"] for a in received.rollback]
        assert all(a["metric"] == "error_rate" for a in received.rollback)
        assert received.performance == []

    def test_a_value_equal_to_the_limit_is_no_breach(self, alerts: Alerts) -> None:
        """Only values above the limit alert; equal ones do not."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.5, max_error_rate=0.5))
        monitor.record("api", "latency", 0.5)
        monitor.record("api", "error_rate", 0.5)
        assert (alerts.performance, alerts.rollback) == ([], [])

    def test_other_metrics_and_no_thresholds_never_alert(self, alerts: Alerts) -> None:
        """Unjudged metrics, and a monitor without thresholds, send nothing."""
        judged = PerformanceMonitor(thresholds=Thresholds(max_latency=0.0, max_error_rate=0.0))
        judged.record("api", "throughput", 1e9)
        judged.record("api", "memory_usage", 1e12)
        unjudged = PerformanceMonitor()
        unjudged.record("api", "latency", 1e9)
        unjudged.record("api", "error_rate", 1.0)
        assert (alerts.performance, alerts.rollback) == ([], [])

    def test_a_receiver_sees_the_value_in_the_window(self) -> None:
        """The alert is sent after the breaching value is in the window."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.1))
        seen: list[tuple[float, ...]] = []

        def receiver(sender: PerformanceMonitor, **kwargs: Any) -> None:
            seen.append(sender.metrics(kwargs["deployment_id"])["latency"].values)

        with signals.performance_alert.connected_to(receiver):
            monitor.record("api", "latency", 0.2)
        assert seen == [(0.2,)]

    def test_it_can_be_weakly_referenced(self) -> None:
        """A monitor can be weakly referenced, so blinker drops what was connected for it."""
        monitor = PerformanceMonitor()
        reference = weakref.ref(monitor)
        del monitor
        gc.collect()
        assert reference() is None

    def test_a_failing_receiver_is_logged_and_the_call_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A receiver that raises is logged; record() and measure() do not fail; others run."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.0, max_error_rate=0.0))
        received = Alerts()

        def broken(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        with (
            caplog.at_level(logging.ERROR, logger="illunare"),
            signals.performance_alert.connected_to(broken),
            signals.performance_alert.connected_to(received.on_performance),
            signals.rollback_alert.connected_to(broken),
        ):
            monitor.record("api", "latency", 1.0)
            with pytest.raises(KeyError), monitor.measure("api"):
                raise KeyError("the body's own error")
        assert len(received.performance) == 2
        assert sorted(
            record.args[0] for record in caplog.records if isinstance(record.args, tuple)
        ) == ["performance_alert", "performance_alert", "rollback_alert"]


class TestHealth:
    def test_no_thresholds_or_no_values_is_healthy(self) -> None:
        """Without thresholds, or without values, health() finds no breach."""
        judged = PerformanceMonitor(thresholds=Thresholds(max_latency=0.1, max_error_rate=0.0))
        unjudged = PerformanceMonitor()
        unjudged.record("api", "latency", 100.0)
        assert Health() == judged.health("api") == unjudged.health("api")
        assert judged.health("api").healthy

    def test_p99_latency_above_the_limit_breaches(self) -> None:
        """health() breaches on the window's p99 latency, not on one slow value among 100."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.5))
        for _ in range(99):
            monitor.record("api", "latency", 0.1)
        monitor.record("api", "latency", 3.0)
        assert monitor.health("api").healthy
        monitor.record("api", "latency", 3.0)
        health = monitor.health("api")
        assert not health.healthy
        assert health.breaches == ("latency p99 3 > max_latency 0.5",)

    def test_mean_error_rate_above_the_limit_breaches(self) -> None:
        """health() breaches on the window's mean error rate."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_error_rate=0.25))
        for rate in (0.0, 0.0, 0.0, 1.0):
            monitor.record("api", "error_rate", rate)
        assert monitor.health("api").healthy
        monitor.record("api", "error_rate", 1.0)
        assert monitor.health("api").breaches == ("error_rate mean 0.4 > max_error_rate 0.25",)

    def test_both_breaches_are_listed(self) -> None:
        """A window breaching both limits lists both."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.1, max_error_rate=0.1))
        monitor.record("api", "latency", 0.2)
        monitor.record("api", "error_rate", 0.2)
        assert len(monitor.health("api").breaches) == 2

    def test_health_judges_the_window_only(self) -> None:
        """A breach that left the window no longer counts."""
        monitor = PerformanceMonitor(window=3, thresholds=Thresholds(max_latency=0.5))
        monitor.record("api", "latency", 2.0)
        assert not monitor.health("api").healthy
        for _ in range(3):
            monitor.record("api", "latency", 0.1)
        assert monitor.health("api").healthy


class TestMeasure:
    def test_a_block_records_its_latency_and_no_error(self) -> None:
        """with measure(): records the block's perf_counter duration and error_rate 0.0."""
        monitor = PerformanceMonitor()
        started = time.perf_counter()
        with monitor.measure("api"):
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        metrics = monitor.metrics("api")
        assert 0.01 <= metrics["latency"].last <= elapsed
        assert metrics["error_rate"].values == (0.0,)

    def test_a_block_that_raises_records_an_error_and_reraises(self) -> None:
        """An Exception in the block records error_rate 1.0 and propagates unchanged."""
        monitor = PerformanceMonitor()
        error = ValueError("boom")
        with pytest.raises(ValueError, match="boom") as raised, monitor.measure("api"):
            raise error
        assert raised.value is error
        assert (
            monitor.metrics("api")["error_rate"].values,
            monitor.metrics("api")["latency"].count,
        ) == ((1.0,), 1)

    @pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
    def test_an_interrupted_block_records_nothing(self, error: type[BaseException]) -> None:
        """A block ended by a BaseException that is not an Exception records nothing."""
        monitor = PerformanceMonitor()
        with pytest.raises(error), monitor.measure("api"):
            raise error
        assert monitor.metrics("api") == {}

    def test_a_measurement_can_be_reused_in_turn(self) -> None:
        """The object measure() returns may be entered again after its block ended."""
        monitor = PerformanceMonitor()
        measurement = monitor.measure("api")
        for _ in range(3):
            with measurement as entered:
                assert entered is measurement
        assert monitor.metrics("api")["latency"].count == 3
        assert "api" in repr(measurement)

    def test_a_decorated_function_records_each_call(self) -> None:
        """@measure(id) keeps the function's name and result and records every call."""
        monitor = PerformanceMonitor()

        @monitor.measure("api")
        def divide(a: int, b: int) -> float:
            """Divide."""
            return a / b

        assert (divide(4, 2), divide.__name__, divide.__doc__) == (2.0, "divide", "Divide.")
        with pytest.raises(ZeroDivisionError):
            divide(1, 0)
        assert monitor.metrics("api")["error_rate"].values == (0.0, 1.0)

    def test_a_decorated_coroutine_function_records_each_await(self) -> None:
        """@measure(id) on an async function times the awaited body; a cancel records nothing."""
        monitor = PerformanceMonitor()

        @monitor.measure("api")
        async def handler(fail: bool) -> str:
            await asyncio.sleep(0)
            if fail:
                raise LookupError
            return "ok"

        @monitor.measure("api")
        async def cancelled() -> None:
            raise asyncio.CancelledError

        async def main() -> None:
            assert await handler(False) == "ok"
            with pytest.raises(LookupError):
                await handler(True)
            with pytest.raises(asyncio.CancelledError):
                await cancelled()

        asyncio.run(main())
        assert monitor.metrics("api")["error_rate"].values == (0.0, 1.0)

    def test_a_decorated_function_records_after_a_stop(self) -> None:
        """A function decorated before stop() records into the id started afresh."""
        monitor = PerformanceMonitor()
        measured = monitor.measure("api")(lambda: None)
        measured()
        monitor.stop("api")
        measured()
        assert monitor.metrics("api")["latency"].count == 1

    def test_generator_functions_and_non_callables_are_refused(self) -> None:
        """Decorating a generator function or a non-callable raises InvalidArgumentError."""
        measurement = PerformanceMonitor().measure("api")

        def numbers() -> Iterator[int]:
            yield 1

        async def stream() -> Any:
            yield 1

        for function in (numbers, stream):
            with pytest.raises(InvalidArgumentError, match="generator"):
                measurement(function)
        with pytest.raises(InvalidArgumentError, match="function"):
            measurement(42)  # type: ignore[type-var]

    def test_measure_keeps_thresholds_judged(self, alerts: Alerts) -> None:
        """A measured call slower than max_latency sends performance_alert."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.0))
        with monitor.measure("api"):
            time.sleep(0.001)
        assert [alert["metric"] for alert in alerts.performance] == ["latency"]


#: what a test does next to a monitor: a measured block ("ok", or "fail": its body raises),
#: a read ("read": metrics()), or a value recorded for a metric ((metric, value))
MONITOR_OPS = st.lists(
    st.one_of(
        st.sampled_from(["ok", "fail", "read"]),
        st.tuples(st.just("latency"), st.floats(10.0, 20.0)),
        st.tuples(st.just("error_rate"), st.floats(0.0, 1.0)),
    ),
    max_size=60,
)


class TestMeasuredBlocksInOrder:
    @staticmethod
    def assert_windows(monitor: PerformanceMonitor, model: dict[str, list[float | None]]) -> None:
        """Each window is the model's last values; None stands for a block's duration (< 10 s)."""
        metrics = monitor.metrics("api")
        for metric, values in model.items():
            if not values:
                assert metric not in metrics
                continue
            summary = metrics[metric]
            expected = values[-monitor.window :]
            assert summary.count == len(values)
            assert len(summary.values) == len(expected)
            for got, want in zip(summary.values, expected, strict=True):
                assert got < 10.0 if want is None else got == want

    @settings(max_examples=150, deadline=None)
    @given(window=WINDOWS, ops=MONITOR_OPS)
    def test_blocks_and_recorded_values_keep_their_order(
        self, window: int, ops: list[str | tuple[str, float]]
    ) -> None:
        """Blocks, record() and reads in any order: each window holds the values as they came."""
        monitor = PerformanceMonitor(window=window)
        model: dict[str, list[float | None]] = {"latency": [], "error_rate": []}
        for op in ops:
            if op == "read":
                self.assert_windows(monitor, model)
            elif isinstance(op, tuple):
                monitor.record("api", *op)
                model[op[0]].append(op[1])
            else:
                with contextlib.suppress(ValueError), monitor.measure("api"):
                    if op == "fail":
                        raise ValueError
                model["latency"].append(None)
                model["error_rate"].append(1.0 if op == "fail" else 0.0)
        self.assert_windows(monitor, model)

    def test_many_blocks_unread_are_all_counted(self) -> None:
        """Thousands of blocks nobody reads: every one counted, the window holds the last ones."""
        monitor = PerformanceMonitor(window=3)
        outcomes = [step % 7 == 0 for step in range(5_000)]
        for failed in outcomes:
            with contextlib.suppress(ValueError), monitor.measure("api"):
                if failed:
                    raise ValueError
        metrics = monitor.metrics("api")
        assert (metrics["latency"].count, metrics["error_rate"].count) == (5_000, 5_000)
        assert metrics["error_rate"].values == tuple(float(f) for f in outcomes[-3:])
        assert len(metrics["latency"].values) == 3

    def test_blocks_nobody_reads_take_bounded_memory(self) -> None:
        """50,000 blocks of a never-read id leave a few kilobytes behind, not one pair each."""
        monitor = PerformanceMonitor(window=1)
        with monitor.measure("api"):
            pass
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(50_000):
                with monitor.measure("api"):
                    pass
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 200_000  # one (latency, error_rate) pair each would be ~4 MB

    def test_stop_discards_blocks_not_yet_read(self) -> None:
        """stop() drops the blocks measured before it; the id restarts from zero."""
        monitor = PerformanceMonitor()
        for _ in range(5):
            with monitor.measure("api"):
                pass
        monitor.stop("api")
        assert monitor.metrics("api") == {}
        with monitor.measure("api"):
            pass
        assert monitor.metrics("api")["error_rate"].count == 1

    def test_a_receiver_of_a_measured_breach_sees_it_in_the_window(self) -> None:
        """A block's alerts are sent once its latency and error_rate are in the windows."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.0, max_error_rate=0.5))
        seen: list[tuple[str, float, float]] = []

        def receiver(sender: PerformanceMonitor, **kwargs: Any) -> None:
            metrics = sender.metrics(kwargs["deployment_id"])
            seen.append((kwargs["metric"], metrics["latency"].last, metrics["error_rate"].last))

        def slow_failure() -> None:
            with monitor.measure("api"):
                time.sleep(0.001)
                raise ValueError

        with (
            signals.performance_alert.connected_to(receiver),
            signals.rollback_alert.connected_to(receiver),
            pytest.raises(ValueError),
        ):
            slow_failure()
        latency = monitor.metrics("api")["latency"].last
        assert latency >= 0.001
        assert seen == [("latency", latency, 1.0), ("error_rate", latency, 1.0)]


class TestThreads:
    WRITERS = 8
    PER_WRITER = 2_000

    @pytest.fixture(autouse=True)
    def _frequent_switches(self) -> Iterator[None]:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads take turns as often as they can
        try:
            yield
        finally:
            sys.setswitchinterval(interval)

    def run_writers_beside(self, read: Any, done: threading.Event, work: Any) -> None:
        """Run the writers while ``read()`` runs in its own thread; ``done`` tells it to end."""
        reader = threading.Thread(target=read)
        reader.start()
        try:
            self.run_writers(work)
        finally:
            done.set()
            reader.join()

    def run_writers(self, work: Any) -> None:
        """Run ``work(index)`` in 8 real threads released together; re-raise the first failure."""
        barrier = threading.Barrier(self.WRITERS)
        errors: list[BaseException] = []

        def run(index: int) -> None:
            barrier.wait()
            try:
                work(index)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def test_eight_writers_lose_no_value(self, alerts: Alerts) -> None:
        """8 threads recording at once: every value counted, every breach alerted once."""
        monitor = PerformanceMonitor(window=50, thresholds=Thresholds(max_latency=0.5))

        def work(index: int) -> None:
            for step in range(self.PER_WRITER):
                monitor.record("api", "latency", 1.0 if step % 10 == 0 else index / 100)

        self.run_writers(work)
        summary = monitor.metrics("api")["latency"]
        assert summary.count == self.WRITERS * self.PER_WRITER
        assert len(summary.values) == 50
        assert len(alerts.performance) == self.WRITERS * self.PER_WRITER // 10

    def test_measured_calls_in_threads_keep_their_metrics_paired(self) -> None:
        """8 threads measuring at once: latency and error_rate both count every call."""
        monitor = PerformanceMonitor()

        def work(index: int) -> None:
            for step in range(self.PER_WRITER // 4):
                with contextlib.suppress(ValueError), monitor.measure("api"):
                    if step % 4 == index % 4:
                        raise ValueError

        self.run_writers(work)
        metrics = monitor.metrics("api")
        calls = self.WRITERS * self.PER_WRITER // 4
        assert (calls, calls) == (metrics["latency"].count, metrics["error_rate"].count)
        assert metrics["error_rate"].mean == pytest.approx(0.25, abs=0.15)

    def test_readers_see_measured_pairs_whole_while_writers_measure(self) -> None:
        """metrics() during 8 measuring threads: latency and error_rate always count alike."""
        monitor = PerformanceMonitor(window=20)
        done = threading.Event()
        problems: list[str] = []

        def read() -> None:
            last = 0
            while not done.is_set():
                metrics = monitor.metrics("api")
                if not metrics:
                    continue
                latency, errors = metrics["latency"], metrics["error_rate"]
                if not (
                    latency.count == errors.count >= last
                    and len(latency.values) == len(errors.values) == min(latency.count, 20)
                ):
                    problems.append(f"{latency!r} {errors!r}")
                last = latency.count

        def work(index: int) -> None:
            for step in range(self.PER_WRITER):
                with contextlib.suppress(ValueError), monitor.measure("api"):
                    if step % 8 == index:
                        raise ValueError

        self.run_writers_beside(read, done, work)
        assert problems == []
        metrics = monitor.metrics("api")
        calls = self.WRITERS * self.PER_WRITER
        assert (metrics["latency"].count, metrics["error_rate"].count) == (calls, calls)

    def test_readers_see_consistent_summaries_while_writers_write(self) -> None:
        """metrics() and health() during 8 writers: each summary is self-consistent."""
        monitor = PerformanceMonitor(window=20, thresholds=Thresholds(max_latency=10.0))
        done = threading.Event()
        problems: list[str] = []

        def read() -> None:
            while not done.is_set():
                for summary in monitor.metrics("api").values():
                    ordered = sorted(summary.values)
                    if not (
                        summary.count >= len(summary.values) <= 20
                        and summary.min == ordered[0]
                        and summary.max == ordered[-1]
                        and summary.last == summary.values[-1]
                        and summary.p50 <= summary.p95 <= summary.p99
                    ):
                        problems.append(repr(summary))
                monitor.health("api")

        def work(index: int) -> None:
            for step in range(self.PER_WRITER):
                monitor.record("api", "latency", float(step))
                if step % 500 == index:
                    monitor.stop("api")
                    monitor.start("api")

        self.run_writers_beside(read, done, work)
        assert problems == []


class TestHealthValue:
    def test_healthy_follows_the_breaches(self) -> None:
        """Health.healthy is True exactly when there is no breach."""
        assert Health().healthy
        assert not Health(("latency p99 1 > max_latency 0.5",)).healthy

    def test_summary_and_health_are_frozen_values(self) -> None:
        """MetricSummary and Health cannot be changed and compare by value."""
        summary = MetricSummary(1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, (0.5,))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            Health().breaches = ("x",)  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            summary.count = 2  # type: ignore[misc]
        assert summary == MetricSummary(1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, (0.5,))


class TestHugeValues:
    @pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 40])
    def test_the_mean_of_the_largest_floats_is_the_largest_float(self, size: int) -> None:
        """A window of sys.float_info.max values sums up without overflow: its mean is that."""
        monitor = PerformanceMonitor(window=size)
        for _ in range(size):
            monitor.record("huge", "m", sys.float_info.max)
        summary = monitor.metrics("huge")["m"]
        assert summary.mean == sys.float_info.max

    def test_huge_values_of_both_signs(self) -> None:
        """Huge values of both signs: a finite mean between the smallest and the largest."""
        monitor = PerformanceMonitor(window=3)
        for value in (sys.float_info.max, sys.float_info.max, -sys.float_info.max):
            monitor.record("huge", "m", value)
        summary = monitor.metrics("huge")["m"]
        assert summary.mean == pytest.approx(sys.float_info.max / 3)


class TestRecordBatch:
    def test_a_batch_joins_the_window_and_the_count(self) -> None:
        """_record_batch keeps the window's last values and adds the count it stands for."""
        monitor = PerformanceMonitor(window=3)
        monitor.record("svc@1", "latency", 0.5)
        monitor._record_batch("svc@1", "latency", [0.1, 0.2, 0.3, 0.4], 10)
        summary = monitor.metrics("svc@1")["latency"]
        assert summary.values == (0.2, 0.3, 0.4)
        assert summary.count == 11

    def test_a_batch_is_not_judged_value_by_value(self, alerts: Alerts) -> None:
        """A batch over the thresholds sends no alert: its owner judges the feed as a whole."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.25, max_error_rate=0.01))
        monitor._record_batch("svc@2", "latency", [0.3, 0.9, 0.1, 0.5], 4)
        monitor._record_batch("svc@2", "error_rate", [0.5], 1)
        assert alerts.performance == []
        assert alerts.rollback == []
        assert monitor.metrics("svc@2")["latency"].max == 0.9

    def test_measured_blocks_come_first(self) -> None:
        """Blocks measured before a batch are settled into the window before it."""
        monitor = PerformanceMonitor()
        with monitor.measure("svc@3"):
            pass
        monitor._record_batch("svc@3", "latency", [7.0], 1)
        values = monitor.metrics("svc@3")["latency"].values
        assert len(values) == 2
        assert values[-1] == 7.0

    def test_an_empty_batch_starts_nothing(self) -> None:
        """No values and no count: the id is not even started."""
        monitor = PerformanceMonitor()
        monitor._record_batch("svc@4", "latency", [], 0)
        assert monitor.metrics("svc@4") == {}
