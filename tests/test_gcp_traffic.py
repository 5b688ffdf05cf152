"""The split of each step of a Cloud Run traffic shift: pure arithmetic, checked as properties."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from illunare._platforms.traffic import (
    LATEST,
    REVISION,
    Target,
    largest_remainder,
    percent_of,
    pin,
    step_split,
)
from tests.strategies import REVISIONS, STEP_PERCENTS, WEIGHTS, traffic_splits

NEW = "shop-00009-new"


class TestLargestRemainder:
    @given(WEIGHTS, st.integers(0, 100))
    def test_shares_sum_to_the_total_each_within_one_of_its_exact_value(
        self, weights: list[int], total: int
    ) -> None:
        """The shares sum to exactly the total; each is its exact value rounded down or up."""
        shares = largest_remainder(weights, total)
        assert sum(shares) == total
        for weight, share in zip(weights, shares, strict=True):
            exact = weight * total / sum(weights)
            assert math.floor(exact) <= share <= math.ceil(exact)

    @given(WEIGHTS, st.integers(0, 100))
    def test_a_zero_weight_gets_nothing_and_a_larger_weight_never_less(
        self, weights: list[int], total: int
    ) -> None:
        """Zero weights stay at zero; the shares keep the weights' order."""
        shares = largest_remainder(weights, total)
        for i, (weight, share) in enumerate(zip(weights, shares, strict=True)):
            if weight == 0:
                assert share == 0
            for other, other_share in zip(weights[i:], shares[i:], strict=True):
                if weight > other:
                    assert share >= other_share

    def test_equal_remainders_go_to_the_earlier_weights(self) -> None:
        """Three equal weights sharing 100: the first gets the unit left over."""
        assert largest_remainder([1, 1, 1], 100) == (34, 33, 33)
        assert largest_remainder([30, 70], 90) == (27, 63)
        assert largest_remainder([1, 1, 1], 50) == (17, 17, 16)


class TestStepSplit:
    @given(traffic_splits(), st.sampled_from(REVISIONS), STEP_PERCENTS)
    def test_the_revision_gets_the_step_and_the_split_sums_to_100(
        self, before: tuple[Target, ...], latest: str, percent: int
    ) -> None:
        """Whatever the split before, the new revision gets exactly the step's percent of 100."""
        for revision in (NEW, *REVISIONS):
            if percent < 100 and percent_of(pin(before, latest), revision) == 100:
                continue  # nothing else served: the shift returns at once
            split = step_split(before, latest, revision, percent)
            assert sum(t.percent for t in split) == 100
            assert percent_of(split, revision) == percent
            assert all(t.kind == REVISION for t in split)

    @given(traffic_splits(), STEP_PERCENTS)
    def test_the_others_keep_their_order_tags_and_proportions(
        self, before: tuple[Target, ...], percent: int
    ) -> None:
        """Every tag stays; the others are the targets before, in order, scaled down."""
        latest = REVISIONS[0]
        split = step_split(before, latest, NEW, percent)
        assert {t.tag for t in split if t.tag} == {t.tag for t in before if t.tag}
        others = [t for t in split if t.revision != NEW]
        matched = 0
        for old in pin(before, latest):
            exact = old.percent * (100 - percent) / 100
            new = others[matched] if matched < len(others) else None
            if (
                new is not None
                and (new.revision, new.tag) == (old.revision, old.tag)
                and math.floor(exact) <= new.percent <= math.ceil(exact)
            ):
                matched += 1
            else:  # only an untagged target rounded down to 0% may leave
                assert exact < 1
                assert not old.tag
        assert matched == len(others)
        assert split[-1] == Target(REVISION, NEW, percent)

    def test_latest_is_pinned_and_the_revisions_own_targets_are_folded_in_place(self) -> None:
        """LATEST is pinned to the latest revision; the new one's tagged target takes the step."""
        before = (
            Target(LATEST, "", 60, "current"),
            Target(REVISION, "shop-00001-aaa", 40),
            Target(REVISION, NEW, 0, "canary"),
        )
        assert step_split(before, "shop-00002-bbb", NEW, 10) == (
            Target(REVISION, "shop-00002-bbb", 54, "current"),
            Target(REVISION, "shop-00001-aaa", 36),
            Target(REVISION, NEW, 10, "canary"),
        )
        assert step_split(before, "shop-00002-bbb", NEW, 100) == (
            Target(REVISION, "shop-00002-bbb", 0, "current"),
            Target(REVISION, NEW, 100, "canary"),
        )

    def test_latest_serving_the_new_revision_counts_as_the_new_revision(self) -> None:
        """A LATEST target resolving to the revision shifted to is folded into it."""
        before = (Target(LATEST, "", 50), Target(REVISION, "shop-00001-aaa", 50, "old"))
        assert step_split(before, NEW, NEW, 10) == (
            Target(REVISION, NEW, 10),
            Target(REVISION, "shop-00001-aaa", 90, "old"),
        )
