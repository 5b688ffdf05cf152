"""Shadow runs: the new version runs beside the old, off the callers' path, and is compared."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import operator
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from illunare._rollout.shadow import EXAMPLES, MAX_PENDING, ShadowRun, describe, matches

PINNED: contextvars.ContextVar[int | None] = contextvars.ContextVar("pinned", default=None)


@contextlib.contextmanager
def pin(side: int) -> Iterator[None]:
    token = PINNED.set(side)
    try:
        yield
    finally:
        PINNED.reset(token)


def _settle(run: ShadowRun, runs: int) -> tuple[int, int, list[float]]:
    """Take the run's counts until ``runs`` shadow runs were counted (or 30 s passed)."""
    total, errors, latencies = 0, 0, []
    deadline = time.monotonic() + 30
    while total < runs and time.monotonic() < deadline:
        taken = run.take()
        total += taken[0]
        errors += taken[1]
        latencies += taken[2]
        time.sleep(0.005)
    return total, errors, latencies


class TestComparison:
    def test_equal_results_match(self) -> None:
        """Two results compare with the given function."""
        assert matches((False, 3), 3, operator.eq)
        assert not matches((False, 3), 4, operator.eq)

    def test_old_exception_never_matches_a_result(self) -> None:
        """When the old version raised and the new returned, they disagree."""
        assert not matches((True, ValueError("x")), None, operator.eq)

    def test_describe_is_short(self) -> None:
        """A description is a repr cut to 200 characters at most."""
        assert describe("a" * 10) == "'aaaaaaaaaa'"
        assert len(describe("a" * 10_000)) <= 200
        assert len(describe(list(range(10_000)))) <= 200

    def test_describe_survives_a_broken_repr(self) -> None:
        """An object whose __repr__ raises is described by its type."""

        class Broken:
            def __repr__(self) -> str:
                raise RuntimeError

        assert "Broken" in describe(Broken())


class TestShadowRun:
    def _run(self, compare: Callable[[object, object], object] = operator.eq) -> ShadowRun:
        run = ShadowRun("shop.pricing", compare)
        run.start(pin)
        return run

    def test_mismatches_and_errors_are_counted(self) -> None:
        """Of four calls: one agrees, one differs, one raises in new, one raised in old only."""
        run = self._run()

        def new(x: int, k: int = 0) -> int:
            if x == 3:
                raise ValueError("new fails")
            return x * 2

        try:
            assert run.offer(new, (1,), {}, (False, 2), 0.0)
            assert run.offer(new, (2,), {}, (False, 5), 0.0)
            assert run.offer(new, (3,), {}, (False, 6), 0.0)
            assert run.offer(new, (4,), {"k": 1}, (True, KeyError("old")), 0.0)
            runs, errors, latencies = _settle(run, 4)
        finally:
            run.stop()
        figures = run.figures()
        assert (runs, errors, len(latencies)) == (4, 1, 4)
        assert figures["mismatches"] == 2
        assert figures["mismatch_examples"] == [
            {"args": "(2,)", "kwargs": "{}", "old": "5", "new": "4"},
            {"args": "(4,)", "kwargs": "{'k': 1}", "old": "raised KeyError('old')", "new": "8"},
        ]

    def test_the_new_version_runs_pinned_to_the_new_side(self) -> None:
        """Every call the worker makes runs with side 1 pinned."""
        run = self._run()
        seen: list[int | None] = []

        def new() -> None:
            seen.append(PINNED.get())

        try:
            run.offer(new, (), {}, (False, None), 0.0)
            _settle(run, 1)
        finally:
            run.stop()
        assert seen == [1]

    def test_base_exceptions_stay_in_the_worker(self) -> None:
        """SystemExit and KeyboardInterrupt from the new version are errors; the worker goes on."""
        run = self._run()

        def new(kind: type[BaseException] | None) -> int:
            if kind is not None:
                raise kind
            return 1

        try:
            run.offer(new, (SystemExit,), {}, (False, 1), 0.0)
            run.offer(new, (KeyboardInterrupt,), {}, (False, 1), 0.0)
            run.offer(new, (None,), {}, (False, 1), 0.0)
            runs, errors, _ = _settle(run, 3)
        finally:
            run.stop()
        assert (runs, errors) == (3, 2)
        assert run.figures()["mismatches"] == 0

    def test_a_raising_compare_is_counted_and_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """compare raising: compare_errors counts each, one log record, no mismatch."""

        def compare(old: object, new: object) -> bool:
            raise TypeError("cannot compare")

        run = self._run(compare)
        try:
            for _ in range(3):
                run.offer(lambda: 1, (), {}, (False, 1), 0.0)
            _settle(run, 3)
        finally:
            run.stop()
        figures = run.figures()
        assert (figures["compare_errors"], figures["mismatches"]) == (3, 0)
        assert len([r for r in caplog.records if "compare function" in r.getMessage()]) == 1

    def test_only_the_first_examples_are_kept(self) -> None:
        """Many mismatches: all counted, the first EXAMPLES shown."""
        run = self._run()
        try:
            for number in range(EXAMPLES + 4):
                run.offer(lambda x: -x, (number + 1,), {}, (False, number + 1), 0.0)
            _settle(run, EXAMPLES + 4)
        finally:
            run.stop()
        figures = run.figures()
        assert figures["mismatches"] == EXAMPLES + 4
        assert [e["args"] for e in figures["mismatch_examples"]] == [  # type: ignore[attr-defined]
            f"({n + 1},)" for n in range(EXAMPLES)
        ]

    def test_a_full_queue_drops(self) -> None:
        """A blocked new version: once MAX_PENDING calls wait, further offers are dropped."""
        run = self._run()
        release = threading.Event()
        try:
            accepted = sum(
                run.offer(release.wait, (), {}, (False, True), 0.0) for _ in range(MAX_PENDING + 50)
            )
            assert accepted == MAX_PENDING
            assert run.figures()["dropped"] == 50
        finally:
            release.set()
            run.stop()

    def test_offers_before_start_wait_for_it(self) -> None:
        """A call offered before the worker starts is run once it does."""
        run = ShadowRun("shop.pricing", operator.eq)
        try:
            assert run.offer(lambda: 2, (), {}, (False, 1), 0.0)
            run.start(pin)
            runs, _, _ = _settle(run, 1)
        finally:
            run.stop()
        assert (runs, run.figures()["mismatches"]) == (1, 1)

    def test_offers_after_stop_are_dropped(self) -> None:
        """A stopped run takes nothing more."""
        run = self._run()
        run.stop()
        assert not run.offer(lambda: 1, (), {}, (False, 1), 0.0)
        assert run.figures()["dropped"] == 1

    def test_coroutines_run_as_tasks_on_the_callers_loop(self) -> None:
        """A coroutine function is run on the running loop, pinned, and compared."""
        run = self._run()
        loops: list[Any] = []

        async def new(x: int) -> int:
            loops.append((asyncio.get_running_loop(), PINNED.get()))
            return x + 1

        async def main() -> None:
            assert run.offer(new, (1,), {}, (False, 2), 0.0)
            assert run.offer(new, (2,), {}, (False, 2), 0.0)
            await asyncio.sleep(0.01)
            loops.append(asyncio.get_running_loop())

        try:
            asyncio.run(main())
            runs, _, _ = _settle(run, 2)
        finally:
            run.stop()
        assert runs == 2
        assert loops[0][0] is loops[-1]
        assert loops[0][1] == 1
        assert run.figures()["mismatches"] == 1
