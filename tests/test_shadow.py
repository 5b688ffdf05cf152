"""Shadow runs: the new version runs beside the old, off the callers' path, and is compared."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import json
import operator
import subprocess
import sys
import textwrap
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from illunare import HotReloader, RolloutHandle, Shadow, signals
from illunare._rollout.shadow import EXAMPLES, MAX_PENDING, ShadowRun, describe, matches

from .conftest import Package, eventually

PINNED: contextvars.ContextVar[int | None] = contextvars.ContextVar("pinned", default=None)


@contextlib.contextmanager
def pin(side: int) -> Iterator[None]:
    token = PINNED.set(side)
    try:
        yield
    finally:
        PINNED.reset(token)


OLD = """
def price(item):
    return len(item) * 10

def total(items):
    return sum(price(item) for item in items)

async def fetch(item):
    return price(item)
"""

NEW = """
from tests.test_shadow import ENTERED, GATE

def price(item):
    ENTERED.set()
    GATE.wait()
    if item == "boom":
        raise ValueError("the new version fails")
    if item == "exit":
        raise SystemExit(3)
    return len(item) * 10 + (1 if item.startswith("a") else 0)

def total(items):
    return sum(price(item) for item in items)

async def fetch(item):
    return price(item)
"""


#: the new version's price() waits for it (set: it does not wait)
GATE = threading.Event()
GATE.set()
#: set by the new version's price() when it starts
ENTERED = threading.Event()


@pytest.fixture
def shop(package: Package, reloader: HotReloader) -> Iterator[types.ModuleType]:
    """A tracked module "shop" (the old prices); a shadow left running is aborted after."""
    reloader.install(package.name)
    yield package.module("shop", OLD)
    for controller in {id(c): c for c in reloader._rollouts.values()}.values():
        controller.abort()


def _shadow(reloader: HotReloader, shop: types.ModuleType, **options: Any) -> RolloutHandle:
    return reloader.swap(shop.__name__, NEW, shadow=Shadow(**options))


def _report_when(handle: RolloutHandle, new_calls: int) -> dict[str, Any]:
    """The report once the new version ran ``new_calls`` shadow calls (or after 30 s)."""
    eventually(lambda: handle.report()["versions"][2]["calls"] >= new_calls, timeout=30)
    return handle.report()


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

    @pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
    def test_base_exceptions_of_a_coroutine_stay_in_its_task(self, kind: str) -> None:
        """A shadowed coroutine's SystemExit or KeyboardInterrupt: an error; the loop goes on.

        In a subprocess: escaping, it would end the caller's event loop (and pytest).
        """
        script = textwrap.dedent(f"""
            import asyncio, json, pathlib, sys, tempfile, time
            from illunare import HotReloader, Shadow

            folder = tempfile.mkdtemp()
            pathlib.Path(folder, "shadowed.py").write_text("async def f(x):\\n    return x\\n")
            sys.path.insert(0, folder)
            import shadowed

            reloader = HotReloader()
            reloader.track("shadowed")
            new = "async def f(x):\\n    raise {kind}\\n"
            handle = reloader.swap("shadowed", new, shadow=Shadow())

            async def main():
                served = []
                for x in range(3):
                    served.append(await shadowed.f(x))
                    await asyncio.sleep(0.01)
                return served

            served = asyncio.run(main())
            deadline = time.monotonic() + 30
            while handle.report()["versions"][2]["calls"] < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            report = handle.report()
            handle.abort()
            ran = report["versions"][2]
            print(json.dumps([served, ran["calls"], ran["errors"], report["mismatches"]]))
        """)
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert json.loads(done.stdout) == [[0, 1, 2], 3, 3, 0]

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

    def test_a_coroutine_offered_before_start_waits_for_it(self) -> None:
        """A coroutine offered before start() runs once started, pinned, not as an error."""
        run = ShadowRun("shop.pricing", operator.eq)
        pins: list[int | None] = []

        async def new() -> int:
            pins.append(PINNED.get())
            return 1

        async def main() -> None:
            assert run.offer_coroutine(new, (), {}, (False, 1), 0.0)
            await asyncio.sleep(0.01)
            run.start(pin)
            await asyncio.sleep(0.05)

        try:
            asyncio.run(main())
            runs, errors, _ = _settle(run, 1)
        finally:
            run.stop()
        assert (runs, errors, pins) == (1, 0, [1])

    def test_stop_lets_go_of_the_queued_calls(self) -> None:
        """Calls still queued when the run stops are dropped with their arguments."""
        run = self._run()
        release = threading.Event()

        class Argument:
            pass

        argument = Argument()
        kept = weakref.ref(argument)
        run.offer(release.wait, (), {}, (False, True), 0.0)  # the worker is busy with it
        for _ in range(5):
            run.offer(lambda value: value, (argument,), {}, (False, argument), 0.0)
        del argument
        run.stop()
        release.set()
        assert eventually(lambda: (gc.collect(), kept() is None)[1], timeout=30)

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
            assert run.offer_coroutine(new, (1,), {}, (False, 2), 0.0)
            assert run.offer_coroutine(new, (2,), {}, (False, 2), 0.0)
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


class TestShadowThroughSwap:
    def test_the_same_exception_from_both_is_an_error_not_an_agreement(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Both versions raising alike: the new one's exception counts as an error, no mismatch."""
        reloader.install(package.name)
        module = package.module("raising", "def f(x):\n    raise KeyError(x)\n")
        handle = reloader.swap(
            module.__name__,
            "def f(x):\n    raise KeyError(x)  # the new version\n",
            shadow=Shadow(),
        )
        for number in range(5):
            with pytest.raises(KeyError):
                module.f(number)
        report = _report_when(handle, 5)
        handle.abort()
        assert report["versions"][2]["errors"] == 5
        assert report["mismatches"] == 0

    def test_the_old_result_is_always_returned(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """Every call returns the old version's result, though the new one differs."""
        handle = _shadow(reloader, shop)
        items = ["apple", "pear", "avocado", "fig"] * 50
        assert [shop.price(item) for item in items] == [len(item) * 10 for item in items]
        assert (handle.status, handle.weight) == ("running", 0)
        assert reloader.current(shop.__name__).number == 1

    def test_the_report_counts_every_run_it_compared_after_an_abort(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """A run the worker finishes after the end is in the new version's calls."""
        handle = _shadow(reloader, shop)
        GATE.clear()
        ENTERED.clear()
        try:
            shop.price("apple")  # the new version differs: a mismatch, once it runs
            assert ENTERED.wait(30)  # the worker is inside the new version, held by the gate
            handle.abort()  # takes the last period: the run has not ended yet
        finally:
            GATE.set()
        eventually(lambda: handle.report()["mismatches"] == 1, timeout=30)
        assert handle.report()["versions"][2]["calls"] == 1

    def test_mismatches_are_counted_with_examples(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """Calls whose results differ are mismatches; the first ones are shown as reprs."""
        handle = _shadow(reloader, shop)
        for item in ["apple", "pear", "avocado", "fig"]:
            shop.price(item)
        report = _report_when(handle, 4)
        assert report["mismatches"] == 2
        assert report["versions"][2]["errors"] == 0
        assert report["mismatch_examples"] == [
            {"args": "('apple',)", "kwargs": "{}", "old": "50", "new": "51"},
            {"args": "('avocado',)", "kwargs": "{}", "old": "70", "new": "71"},
        ]
        assert report["versions"][1]["calls"] == 4
        assert report["dropped"] == 0

    def test_new_exceptions_never_reach_the_caller(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """The new version raising (even SystemExit) is counted as an error, never raised here."""
        handle = _shadow(reloader, shop)
        assert shop.price("boom") == 40
        assert shop.price("exit") == 40
        assert shop.price("kiwi") == 40
        report = _report_when(handle, 3)
        assert report["versions"][2]["errors"] == 2
        assert report["versions"][2]["error_rate"] == pytest.approx(2 / 3)
        assert report["mismatches"] == 0
        assert report["versions"][1]["errors"] == 0

    def test_nested_calls_of_the_new_version_stay_in_it(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """total() run on the new version calls the new price() (one mismatch, not a mix)."""
        handle = _shadow(reloader, shop)
        assert shop.total(["apple", "fig"]) == 80
        report = _report_when(handle, 1)
        assert report["mismatch_examples"][0]["new"] == "81"
        assert (
            report["versions"][1]["calls"] == 1
        )  # price() inside total() is not a call of its own

    def test_a_raising_compare_is_counted(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """compare raising: compare_errors, not a mismatch."""

        def compare(old: object, new: object) -> bool:
            raise TypeError("cannot compare")

        handle = _shadow(reloader, shop, compare=compare)
        shop.price("apple")
        report = _report_when(handle, 1)
        assert (report["compare_errors"], report["mismatches"]) == (1, 0)

    def test_a_sample_of_the_calls_is_shadowed(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """sample=0.1: a tenth of 1000 calls run on the new version too."""
        handle = _shadow(reloader, shop, sample=0.1)
        for _ in range(1000):
            shop.price("kiwi")
        report = _report_when(handle, 100)
        assert report["versions"][1]["calls"] == 1000
        assert report["versions"][2]["calls"] == 100

    def test_a_blocked_new_version_drops_calls(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """The new version stuck: callers go on, the queue fills, and the rest are dropped."""
        handle = _shadow(reloader, shop)
        GATE.clear()
        try:
            for _ in range(MAX_PENDING + 200):
                assert shop.price("kiwi") == 40
            assert handle.report()["dropped"] >= 199
        finally:
            GATE.set()
        report = _report_when(handle, MAX_PENDING)
        assert report["versions"][1]["calls"] == MAX_PENDING + 200

    def test_coroutines_are_shadowed_on_the_callers_loop(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """An async function: the caller awaits the old result; the new one runs as a task."""
        handle = _shadow(reloader, shop)

        async def main() -> list[int]:
            results = [await shop.fetch(item) for item in ("apple", "fig")]
            await asyncio.sleep(0.05)  # the tasks run on this loop
            return results

        assert asyncio.run(main()) == [50, 30]
        report = _report_when(handle, 2)
        assert report["mismatches"] == 1

    def test_promote_makes_the_new_version_current(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """promote() ends the shadow run: the new version serves, module_swapped is sent."""
        handle = _shadow(reloader, shop)
        assert handle.wait(timeout=0.1) == "running"
        swapped: list[int] = []

        def on_swapped(sender: object, *, version: Any, **extra: Any) -> None:
            swapped.append(version.number)

        with signals.module_swapped.connected_to(on_swapped):
            handle.promote()
        assert handle.status == "promoted"
        assert swapped == [2]
        assert shop.price("apple") == 51

    def test_abort_keeps_the_old_version(
        self, reloader: HotReloader, shop: types.ModuleType
    ) -> None:
        """abort() ends the shadow run: rolled back, nothing more offered."""
        handle = _shadow(reloader, shop)
        handle.abort()
        assert handle.status == "rolled_back"
        shop.price("apple")
        assert handle.report()["versions"][2]["calls"] == 0
        assert shop.price("apple") == 50

    @pytest.mark.parametrize("end", ["abort", "promote"])
    def test_a_handle_kept_after_the_end_does_not_keep_the_split(
        self, reloader: HotReloader, shop: types.ModuleType, end: str
    ) -> None:
        """The split (both versions, the routers) goes with the run, not with its handle."""
        handle = _shadow(reloader, shop)
        for _ in range(50):
            shop.price("apple")
        split = weakref.ref(handle._controller.split)
        getattr(handle, end)()
        assert eventually(lambda: gc.collect() >= 0 and split() is None)
        assert handle.report()["status"] in ("rolled_back", "promoted")
