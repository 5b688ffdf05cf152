"""The PerformanceMonitor and HotConfig on the request path, against baselines of the same run.

Run: make bench  (or .venv/bin/python benchmarks/bench_monitor.py)
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Histogram

from _common import best_per_statement, report
from illunare import HotConfig, PerformanceMonitor, Thresholds


def record_against_histogram() -> None:
    histogram = Histogram("latency_seconds", "request latency", registry=CollectorRegistry())
    monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=1.0, max_error_rate=0.01))
    names = {"histogram": histogram, "monitor": monitor}
    baseline = best_per_statement("histogram.observe(0.0123)", names)
    measured = best_per_statement('monitor.record("checkout", "latency", 0.0123)', names)
    report(
        "monitor.record() / prometheus_client Histogram.observe", measured / baseline, "x", "<= 0.5"
    )


def measure_overhead() -> None:
    monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=1.0, max_error_rate=0.01))
    names = {"monitor": monitor, "null": contextlib.nullcontext()}
    # Many short runs: the best of them is the one least disturbed by other processes.
    baseline = best_per_statement("with null: pass", names, number=20_000, repeat=50)
    measured = best_per_statement(
        'with monitor.measure("checkout"): pass', names, number=20_000, repeat=50
    )
    report(
        "with monitor.measure(id): empty body, added to an empty with",
        (measured - baseline) * 1e9,
        "ns",
        "<= 600",
    )
    report("  (the empty with on contextlib.nullcontext() itself)", baseline * 1e9, "ns", "-")


def summary_of_a_window() -> None:
    monitor = PerformanceMonitor(window=100)
    for index in range(1000):
        for metric in ("latency", "error_rate"):
            monitor.record("checkout", metric, (index * 7919 % 1000) / 1e4)
    monitor.stop("checkout")
    for index in range(100):
        monitor.record("checkout", "latency", (index * 7919 % 1000) / 1e4)
    measured = best_per_statement(
        'monitor.metrics("checkout")', {"monitor": monitor}, number=20_000
    )
    report("monitor.metrics() of a 100-value window", measured * 1e6, "us", "<= 50")


def config_get_against_dict() -> None:
    values = {f"key_{index}": index for index in range(50)}
    config = HotConfig(values)
    config.update({"key_1": -1})
    names = {"config": config, "values": values}
    baseline = best_per_statement('values.get("key_7")', names, number=1_000_000)
    measured = best_per_statement('config.get("key_7")', names, number=1_000_000)
    report("HotConfig.get / dict.get", measured / baseline, "x", "<= 3")


def main() -> None:
    record_against_histogram()
    measure_overhead()
    summary_of_a_window()
    config_get_against_dict()


if __name__ == "__main__":
    main()
