"""Properties of flag evaluation that must hold for every config and every context."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from illunare import FeatureFlags, FlagConfigError

from .strategies import CONTEXTS, FLAG_CONFIGS, INVALID_FLAG_CONFIGS


class TestProperties:
    @given(config=FLAG_CONFIGS, contexts=st.lists(CONTEXTS, min_size=1, max_size=5))
    @settings(max_examples=300, deadline=None)
    def test_valid_configs_never_make_evaluation_raise(
        self, config: dict[str, Any], contexts: list[dict[str, Any]]
    ) -> None:
        """Any valid config, any context: both paths answer, and they agree."""
        flags = FeatureFlags()
        flags.update("f", config)
        for context in contexts:
            enabled = flags.is_enabled("f", context)
            evaluation = flags.evaluate("f", context)
            assert isinstance(enabled, bool)
            assert evaluation.enabled is enabled
            assert evaluation.error is None

    @given(config=INVALID_FLAG_CONFIGS)
    @settings(max_examples=200, deadline=None)
    def test_invalid_configs_always_raise_and_change_nothing(self, config: Any) -> None:
        """An invalid config raises FlagConfigError and the previous flag keeps serving."""
        flags = FeatureFlags()
        before = flags.update("f", {"conditions": [{"type": "region", "value": "BR"}]})
        with pytest.raises(FlagConfigError) as caught:
            flags.update("f", config)
        assert caught.value.problems
        assert flags.flags()["f"] is before
        assert flags.is_enabled("f", {"region": "BR"})

    @given(percentage=st.integers(min_value=1, max_value=99), salt=st.text(max_size=5))
    @settings(max_examples=20, deadline=None)
    def test_percentage_splits_within_two_points(self, percentage: int, salt: str) -> None:
        """Over 10,000 users, a percentage condition lets in percentage ± 2 points of them."""
        flags = FeatureFlags()
        flags.update(
            f"rollout{salt}", {"conditions": [{"type": "percentage", "value": percentage}]}
        )
        share = sum(
            flags.is_enabled(f"rollout{salt}", {"user_id": f"user-{n}"}) for n in range(10_000)
        )
        assert abs(share / 100 - percentage) <= 2

    @given(low=st.integers(0, 100), high=st.integers(0, 100))
    @settings(max_examples=30, deadline=None)
    def test_growing_the_percentage_only_adds_users(self, low: int, high: int) -> None:
        """Everyone in at the lower percentage is still in at the higher one."""
        low, high = min(low, high), max(low, high)
        flags = FeatureFlags()
        users = [{"user_id": str(n)} for n in range(2_000)]
        flags.update("f", {"conditions": [{"type": "percentage", "value": low}]})
        before = {u["user_id"] for u in users if flags.is_enabled("f", u)}
        flags.update("f", {"conditions": [{"type": "percentage", "value": high}]})
        after = {u["user_id"] for u in users if flags.is_enabled("f", u)}
        assert before <= after
