"""Rollout and Shadow: validated values, their defaults, and what each field accepts."""

from __future__ import annotations

import itertools
import operator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from illunare import InvalidArgumentError, Rollout, Shadow, Thresholds

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(min_value=-5, max_value=120), max_size=5),
    st.tuples(st.integers(min_value=-5, max_value=120)),
)


def _valid_steps(value: object) -> bool:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return False
    return (
        bool(value)
        and all(type(step) is int and 1 <= step <= 100 for step in value)
        and all(later > earlier for earlier, later in itertools.pairwise(value))
    )


class TestRolloutValues:
    def test_defaults_are_the_contracts(self) -> None:
        """Rollout() is 10/50/100 %, 30 s bakes, 1 % errors, 20 samples, extend, no key."""
        rollout = Rollout()
        assert rollout.steps == (10, 50, 100)
        assert rollout.bake == 30.0
        assert rollout.thresholds == Thresholds(max_error_rate=0.01)
        assert rollout.min_samples == 20
        assert rollout.on_inconclusive == "extend"
        assert rollout.sticky is None

    def test_is_frozen(self) -> None:
        """A Rollout is a value: its fields cannot be reassigned."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            Rollout().bake = 1.0  # type: ignore[misc]

    def test_steps_become_a_tuple(self) -> None:
        """A list of steps is stored as a tuple (values compare and hash alike)."""
        assert Rollout(steps=[5, 25]).steps == (5, 25)
        assert Rollout(steps=[5, 25]) == Rollout(steps=(5, 25))

    @given(ANY_VALUE)
    def test_steps_accepted_iff_valid(self, steps: object) -> None:
        """steps: a non-empty, strictly increasing sequence of ints 1..100, else refused."""
        if _valid_steps(steps):
            assert Rollout(steps=steps).steps == tuple(steps)  # type: ignore[arg-type]
        else:
            with pytest.raises(InvalidArgumentError):
                Rollout(steps=steps)  # type: ignore[arg-type]

    @given(ANY_VALUE)
    def test_bake_accepted_iff_finite_and_not_negative(self, bake: object) -> None:
        """bake: a finite real >= 0 (not a bool), else InvalidArgumentError."""
        valid = (
            type(bake) in (int, float)
            and bake == bake  # not NaN
            and 0 <= bake < float("inf")  # type: ignore[operator]
        )
        if valid:
            assert Rollout(bake=bake).bake == bake  # type: ignore[arg-type]
        else:
            with pytest.raises(InvalidArgumentError):
                Rollout(bake=bake)  # type: ignore[arg-type]

    @given(ANY_VALUE)
    def test_min_samples_accepted_iff_a_count(self, value: object) -> None:
        """min_samples: an int >= 0 (not a bool), else InvalidArgumentError."""
        if type(value) is int and value >= 0:
            assert Rollout(min_samples=value).min_samples == value
        else:
            with pytest.raises(InvalidArgumentError):
                Rollout(min_samples=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("policy", ["extend", "pause", "fail"])
    def test_each_policy_is_accepted(self, policy: str) -> None:
        """on_inconclusive takes each of the three policies."""
        assert Rollout(on_inconclusive=policy).on_inconclusive == policy

    @pytest.mark.parametrize("policy", ["Extend", "", "abort", None, 1])
    def test_other_policies_are_refused(self, policy: object) -> None:
        """Any other on_inconclusive is an InvalidArgumentError naming the three."""
        with pytest.raises(InvalidArgumentError, match="extend"):
            Rollout(on_inconclusive=policy)  # type: ignore[arg-type]

    @pytest.mark.parametrize("thresholds", [None, {"max_error_rate": 0.1}, 0.01])
    def test_thresholds_must_be_thresholds(self, thresholds: object) -> None:
        """thresholds must be a Thresholds (None is not: a rollout always judges something)."""
        with pytest.raises(InvalidArgumentError, match="thresholds"):
            Rollout(thresholds=thresholds)  # type: ignore[arg-type]

    def test_sticky_takes_a_callable_or_none(self) -> None:
        """sticky is a key function or None; anything else is refused."""
        key = operator.itemgetter(0)
        assert Rollout(sticky=key).sticky is key
        with pytest.raises(InvalidArgumentError, match="sticky"):
            Rollout(sticky="user_id")  # type: ignore[arg-type]

    def test_refusals_are_type_and_value_errors(self) -> None:
        """InvalidArgumentError is caught as TypeError and as ValueError alike."""
        with pytest.raises(TypeError):
            Rollout(steps=None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="increasing"):
            Rollout(steps=(50, 10))


class TestShadowValues:
    def test_defaults(self) -> None:
        """Shadow() runs every call on the new version too and compares with ==."""
        shadow = Shadow()
        assert shadow.sample == 1.0
        assert shadow.compare is operator.eq

    @given(st.one_of(ANY_VALUE, st.floats(min_value=0, max_value=1)))
    def test_sample_accepted_iff_a_fraction_from_the_finest(self, sample: object) -> None:
        """sample: a real in [0.00001, 1] (not a bool), else InvalidArgumentError."""
        if type(sample) in (int, float) and 0.00001 <= sample <= 1:  # type: ignore[operator]
            assert Shadow(sample=sample).sample == sample  # type: ignore[arg-type]
        else:
            with pytest.raises(InvalidArgumentError):
                Shadow(sample=sample)  # type: ignore[arg-type]

    def test_compare_must_be_callable(self) -> None:
        """compare is a callable of two results; None or a string is refused."""
        assert Shadow(compare=operator.is_).compare is operator.is_
        for compare in (None, "eq"):
            with pytest.raises(InvalidArgumentError, match="compare"):
                Shadow(compare=compare)  # type: ignore[arg-type]
