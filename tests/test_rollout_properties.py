"""Properties of rollouts: the verdict's counting rule, and any sequence of rollout actions."""

from __future__ import annotations

import importlib
import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from illunare import HotReloader, RollbackError, Rollout, RolloutError, RolloutHandle, Thresholds
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


SOURCE = """
TOKEN = {token}

def value():
    return TOKEN

def pair():
    return (value(), TOKEN)

class Thing:
    def token(self):
        return TOKEN

    def both(self):
        return (self.token(), value(), TOKEN)
"""

_names = itertools.count()


class RolloutMachine(RuleBasedStateMachine):
    """A real module driven through rollouts, calls, promotions, aborts, rollbacks and swaps.

    The rollouts bake for an hour: only the rules act on them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.name = f"illunare_rollout_machine_{next(_names)}"
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        (self.root / f"{self.name}.py").write_text(SOURCE.format(token=0))
        self.module = importlib.import_module(self.name)
        self.reloader = HotReloader(keep=100)
        self.reloader.track(self.module)
        self.tokens = {1: 0}
        self.parents: dict[int, int | None] = {1: None}
        self.current = 1
        self.handle: RolloutHandle | None = None
        self.value = self.module.value
        self.thing = self.module.Thing()

    def teardown(self) -> None:
        if self.handle is not None:
            self.handle.abort()
        sys.path.remove(str(self.root))
        sys.modules.pop(self.name, None)
        shutil.rmtree(self.root, ignore_errors=True)

    def _candidate(self) -> int | None:
        return None if self.handle is None else self.handle.version.number

    @rule(token=st.integers(min_value=0, max_value=4), weight=st.sampled_from([10, 50, 90]))
    def start_rollout(self, token: int, weight: int) -> None:
        rollout = Rollout(steps=(weight,), bake=3600)
        if self.handle is not None:
            with pytest.raises(RolloutError):
                self.reloader.swap(self.name, SOURCE.format(token=token), rollout=rollout)
            return
        handle = self.reloader.swap(self.name, SOURCE.format(token=token), rollout=rollout)
        if token == self.tokens[self.current]:
            assert handle.status == "promoted"
            assert handle.version.number == self.current
            return
        assert (handle.status, handle.weight) == ("running", weight)
        number = handle.version.number
        assert number == max(self.tokens) + 1
        self.tokens[number] = token
        self.parents[number] = self.current
        self.handle = handle

    @rule(token=st.integers(min_value=0, max_value=4))
    def plain_swap(self, token: int) -> None:
        if self.handle is not None:
            with pytest.raises(RolloutError):
                self.reloader.swap(self.name, SOURCE.format(token=token))
            return
        version = self.reloader.swap(self.name, SOURCE.format(token=token))
        if token != self.tokens[self.current]:
            self.tokens[version.number] = token
            self.parents[version.number] = self.current
            self.current = version.number

    @rule()
    def promote(self) -> None:
        if self.handle is None:
            return
        self.handle.promote()
        assert self.handle.status == "promoted"
        self.current = self.handle.version.number
        self.handle = None

    @rule()
    def abort(self) -> None:
        if self.handle is None:
            return
        self.handle.abort()
        assert self.handle.status == "rolled_back"
        self.handle = None

    @rule()
    def rollback(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            assert self.reloader.rollback(self.name).number == self.current
            assert handle.status == "rolled_back"
            return
        parent = self.parents[self.current]
        if parent is None:
            with pytest.raises(RollbackError):
                self.reloader.rollback(self.name)
            return
        assert self.reloader.rollback(self.name).number == parent
        self.current = parent

    @rule(calls=st.integers(min_value=1, max_value=20))
    def call(self, calls: int) -> None:
        allowed = {self.tokens[self.current]}
        candidate = self._candidate()
        if candidate is not None:
            allowed.add(self.tokens[candidate])
        for _ in range(calls):
            for result in (
                (self.value(),),
                self.module.pair(),
                (self.thing.token(),),
                self.thing.both(),
            ):
                assert len(set(result)) == 1, result  # one call, one version
                assert result[0] in allowed

    @invariant()
    def current_and_history_match(self) -> None:
        assert self.reloader.current(self.name).number == self.current
        assert [v.number for v in self.reloader.history(self.name)] == sorted(self.tokens)

    @invariant()
    def idle_means_the_plain_path(self) -> None:
        if self.handle is not None:
            return
        token = self.tokens[self.current]
        assert (self.value(), self.module.pair(), self.thing.both()) == (
            token,
            (token, token),
            (token, token, token),
        )
        tracked = self.reloader._modules[self.name]
        assert self.module.value.__wrapped__ is tracked.current.targets["value"]


TestRolloutMachine = RolloutMachine.TestCase
TestRolloutMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
