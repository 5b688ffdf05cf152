"""Gradual rollouts through HotReloader.swap(rollout=...): steps, verdicts, promotion, rollback."""

from __future__ import annotations

import pytest

from illunare import Thresholds
from illunare._rollout.judge import RESERVOIR, Tally, verdict


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
