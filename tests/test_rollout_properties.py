"""Properties of rollouts: the verdict's counting rule, and sequences of rollout actions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from illunare import Thresholds
from illunare._monitor.summary import nearest_rank
from illunare._rollout.judge import Tally, verdict

LATENCY_LISTS = st.lists(st.sampled_from([0.001, 0.01, 0.1, 0.25, 0.3, 1.0]), max_size=300)


class TestVerdictProperties:
    @given(LATENCY_LISTS, st.sampled_from([0.001, 0.05, 0.25, 0.5]))
    def test_latency_breach_iff_sorted_p99_is_over(
        self, latencies: list[float], limit: float
    ) -> None:
        """Counting slow calls breaches exactly when the sorted nearest-rank p99 is over."""
        tally = Tally(limit)
        for start in range(0, len(latencies), 7):  # in periods, as the controller adds them
            tally.add(0, 0, latencies[start : start + 7])
        found = verdict(Thresholds(max_latency=limit), tally, min_samples=0)
        expected = bool(latencies) and nearest_rank(sorted(latencies), 99) > limit
        assert bool(found.breaches) == expected
        if expected:
            assert found.breaches[0].value == nearest_rank(sorted(latencies), 99)

    @given(st.integers(0, 500), st.integers(0, 500), st.sampled_from([0.0, 0.01, 0.2, 1.0]))
    def test_error_breach_iff_rate_is_over(self, calls: int, errors: int, limit: float) -> None:
        """An error breach is exactly errors / calls > max_error_rate, with calls."""
        errors = min(errors, calls)
        tally = Tally(None)
        tally.add(calls, errors, ())
        found = verdict(Thresholds(max_error_rate=limit), tally, min_samples=0)
        assert bool(found.breaches) == (calls > 0 and errors / calls > limit)
