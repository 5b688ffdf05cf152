"""Routing during a rollout: a Split driven by hand (shares, sticky keys, affinity, kinds, ends)."""

from __future__ import annotations

import _thread
import asyncio
import collections
import dis
import importlib
import inspect
import itertools
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
from hypothesis import given
from hypothesis import strategies as st

from illunare import HotReloader, InvalidArgumentError, Rollout, ValidationError
from illunare._flags.hashing import murmur3_32, python_murmur3_32
from illunare._reload.proxy import HotFunction
from illunare._rollout import switching
from illunare._rollout.assign import PATTERN, TIMED, Buckets, Draw, bucket
from illunare._rollout.routers import _RESERVED, SplitAttribute, _factory, _Shape
from illunare._rollout.split import Split

from .conftest import Package
from .strategies import equal_numbers, equal_tuples

# Every function returns the tags of the versions whose code ran for the call.
MODULE = """
import {package}.{name} as me

TAG = {tag!r}

def top(x):
    return (TAG, *helper(x))

def helper(x):
    return (TAG,)

def through_module(x):
    return (TAG, *me.helper(x))

def fails(x):
    if {fails}:
        raise ValueError(TAG)
    return (TAG,)

def gen(n):
    for _ in range(n):
        yield (TAG, *helper(0))

async def co(x):
    await asyncio.sleep(0)
    return (TAG, *helper(x))

async def agen(n):
    for _ in range(n):
        await asyncio.sleep(0)
        yield (TAG, *helper(0))

def callback(x):
    return tuple(sorted(map(lambda y: (TAG, *helper(y)), [x])))[0]

def shaped(a, b, *rest, c=1, **more):
    return (TAG,)

def entry(x):
    return (TAG, *helper(x))

def dynamic(x):
    return (TAG, *getattr(me, "by_name")(x))

def by_name(x):
    return (TAG,)

__hot_preserve__ = ["RESULTS"]  # one list, shared by the versions
RESULTS = []

def collect(x):
    RESULTS.append((TAG, *helper(x)))

async def gathered(x):
    first, second = await asyncio.gather(co(x), co(x))
    return (TAG, *first, *second)

async def tasked(x):
    return (TAG, *await asyncio.create_task(co(x)))

async def threaded(x):
    return (TAG, *await asyncio.to_thread(helper, x))

async def in_copied_context(x):
    run = functools.partial(contextvars.copy_context().run, helper, x)
    return (TAG, *await asyncio.get_running_loop().run_in_executor(None, run))

import contextvars
import functools

import asyncio
"""


def source(package: Package, tag: str, *, fails: bool = False, name: str = "m") -> str:
    return textwrap.dedent(MODULE).format(package=package.name, name=name, tag=tag, fails=fails)


@pytest.fixture
def module(package: Package, reloader: HotReloader) -> types.ModuleType:
    """Version 1 of a tracked module (tag "old")."""
    reloader.install(package.name)
    return package.module("m", source(package, "old"))


def split(
    reloader: HotReloader,
    module: types.ModuleType,
    text: str,
    *,
    weight: int = 50,
    sticky: Callable[..., object] | None = None,
    mask_all: bool = False,
) -> Split:
    """The release of ``text`` for ``module``, split at ``weight`` percent."""
    made = reloader._split_release(
        {module.__name__: text},
        checks=(),
        reason="candidate",
        weight=weight,
        sticky=sticky,
        mask_all=mask_all,
    )
    assert made is not None
    return made


@pytest.fixture
def halves(
    package: Package, reloader: HotReloader, module: types.ModuleType
) -> Iterator[tuple[types.ModuleType, Split]]:
    """The module split 50/50 between "old" and "new"; reverted afterwards."""
    made = split(reloader, module, source(package, "new"))
    yield module, made
    made.revert()


def sides(results: list[tuple[str, ...]]) -> collections.Counter[str]:
    """How many results came from each version; every result from one version only."""
    for result in results:
        assert len(set(result)) == 1, result
    return collections.Counter(result[0] for result in results)


class TestShare:
    @pytest.mark.parametrize("weight", [10, 50, 90])
    def test_the_share_of_new_calls_is_the_weight(
        self, package: Package, reloader: HotReloader, module: types.ModuleType, weight: int
    ) -> None:
        """Over 10,000 top-level calls the new version's share is the step's, within 3 points."""
        made = split(reloader, module, source(package, "new"), weight=weight)
        counts = sides([module.top(1) for _ in range(10_000)])
        assert abs(counts["new"] / 100 - weight) <= 3
        period = made.take()
        assert period.calls == (counts["old"], counts["new"])

    def test_each_step_has_its_share_from_threads(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Four threads calling through steps 10, 50, 90: each step's share within 3 points."""
        made = split(reloader, module, source(package, "new"), weight=10)
        for weight in (10, 50, 90):
            made.set_weight(weight)
            results: list[tuple[str, ...]] = []

            def call() -> None:
                results.extend(module.top(1) for _ in range(2_500))  # noqa: B023  # joined below

            threads = [threading.Thread(target=call) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            counts = sides(results)
            assert abs(counts["new"] / 100 - weight) <= 3
            assert made.take().calls == (counts["old"], counts["new"])

    @given(
        weight=st.integers(0, 100),
        start=st.integers(0, 5000),
        timed_every=st.sampled_from([0, 1, 64]),
    )
    def test_a_draw_is_exact_over_each_cycle(
        self, weight: int, start: int, timed_every: int
    ) -> None:
        """Any 1000 consecutive draws (a continuation too) hold exactly 10 x weight new."""
        draw = Draw.of(weight, timed_every)
        sides = [int(next(draw.sides)) for _ in range(start)]
        (old, new), following = draw.stop()
        assert (old, new) == (start - sum(side & 1 for side in sides), sum(s & 1 for s in sides))
        window = [int(next(following.sides)) for _ in range(PATTERN)]
        assert sum(side & 1 for side in window) == PATTERN * weight // 100
        timed = sum(side >= TIMED for side in window)
        assert timed == (0 if not timed_every else -(-PATTERN // timed_every))

    def test_tallies_count_every_draw_while_threads_draw(self) -> None:
        """Tallies racing drawing threads (a cycle begins every third draw) count each draw once."""
        draw = Draw([1, 0, 0])
        drawn = [[0, 0] for _ in range(3)]
        stop = threading.Event()

        def run(index: int) -> None:
            mine = drawn[index]
            while not stop.is_set():
                for _ in range(100):
                    mine[int(next(draw.sides)) & 1] += 1

        tallied = [0, 0]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switches inside tally() at almost every one
        try:
            threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
            for thread in threads:
                thread.start()
            periods = [draw.tally() for _ in range(2000)]
            tallied = [sum(old for old, _ in periods), sum(new for _, new in periods)]
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        # A tally that misplaced its draw by a cycle counts a period 3 draws too
        # many, and the next one too few: below 0 when fewer were drawn between.
        assert min(count for period in periods for count in period) >= 0
        old, new = draw.tally()
        assert [tallied[0] + old, tallied[1] + new] == [
            sum(mine[side] for mine in drawn) for side in (0, 1)
        ]

    def test_each_place_of_a_pattern_is_an_object_of_its_own(self) -> None:
        """A pattern of floats shared by two places cannot tell where a draw fell: refused."""
        one = 1.0
        with pytest.raises(ValueError, match="float object of its own"):
            Draw([one, 0, one])

    @pytest.mark.parametrize(
        ("share", "cycle", "ones"), [(0.0004, 2500, 1), (0.0015, 2000, 3), (0.00001, 100_000, 1)]
    )
    def test_a_sample_draw_is_exact_below_one_in_a_thousand(
        self, share: float, cycle: int, ones: int
    ) -> None:
        """A shadow's draw takes fine shares exactly: any cycle of draws holds its share."""
        draw = Draw.sampling(share)
        for _ in range(cycle // 3):
            next(draw)
        assert sum(next(draw) for _ in range(2 * cycle)) == 2 * ones

    def test_a_weight_outside_0_to_100_is_refused(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """set_weight takes an int percent only."""
        _, made = halves
        for bad in (-1, 101, 50.0, True, "50"):
            with pytest.raises(InvalidArgumentError):
                made.set_weight(bad)  # type: ignore[arg-type]
        assert made.weight == 50


def _outcome(function: Callable[[int], tuple[str, ...]]) -> str:
    """The version that served a call: its result's tag, or the tag its ValueError carries."""
    try:
        return function(1)[0]
    except ValueError as error:
        return str(error)


class TestCounting:
    def test_errors_and_timed_calls_are_counted_per_side(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """An exception counts as its side's error; with mask_all every call is timed."""
        made = split(reloader, module, source(package, "new", fails=True), mask_all=True)
        outcomes = collections.Counter(_outcome(module.fails) for _ in range(1000))
        period = made.take()
        assert period.calls == (outcomes["old"], outcomes["new"])
        assert period.errors == (0, outcomes["new"])
        assert tuple(map(len, period.samples)) == (outcomes["old"], 0)
        assert len(period.samples[0]) == outcomes["old"]
        assert all(seconds >= 0 for seconds in period.samples[0])
        assert made.take().calls == (0, 0)
        made.revert()

    def test_one_call_in_64_is_timed_by_default(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Without mask_all, timing is sampled: 16 calls in each 1000 drawn, 1 in 64 keyed."""
        made = split(reloader, module, source(package, "new"))
        for _ in range(10_000):
            module.top(1)
        assert sum(map(len, made.take().samples)) == 160
        made.revert()
        keyed = split(reloader, module, source(package, "newer"), sticky=lambda x: x)
        for key in range(6400):
            module.top(key)
        period = keyed.take()
        assert sum(map(len, period.samples)) in (100, 101)  # the 1st, 65th ... call of each side
        keyed.revert()

    def test_no_call_is_lost_while_periods_are_taken(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Threads calling while periods are taken (switching often): every call is counted."""
        module, made = halves
        made.take()
        made_calls = [0, 0]
        stop = threading.Event()

        def call(index: int) -> None:
            top = module.top
            count = 0
            while not stop.is_set():
                top(1)
                count += 1
            made_calls[index] = count

        counted = 0
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # a switch inside take() at almost every one
        try:
            threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
            for thread in threads:
                thread.start()
            for _ in range(300):
                counted += sum(made.take().calls)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        counted += sum(made.take().calls) + sum(made.take().calls)
        assert counted == sum(made_calls)

    def test_nested_calls_are_not_counted(self, halves: tuple[types.ModuleType, Split]) -> None:
        """Only top-level calls count: a call from inside a version is affine."""
        module, made = halves
        for _ in range(100):
            module.top(1)
        assert sum(made.take().calls) == 100


class TestSticky:
    @given(st.one_of(equal_numbers, equal_tuples))
    def test_equal_keys_share_a_bucket(self, keys: list[object]) -> None:
        """Keys that are equal (one dict slot: 1, 1.0, True, Decimal(1) ...) hash alike."""
        assert len({bucket("m:salt", key) for key in keys}) == 1

    def test_equal_keys_get_one_side_whichever_a_process_sees_first(self) -> None:
        """The side of 3 and 3.0 does not depend on which of them was seen first."""
        for key in range(200):
            int_first, float_first = Buckets("m:salt", 50), Buckets("m:salt", 50)
            sides = (int_first.assign(key), float_first.assign(float(key)))
            assert (int_first.sides[float(key)], float_first.sides[key]) == sides
            assert sides[0] == sides[1]

    def test_the_same_key_gets_the_same_side_within_a_step(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """Each key's calls all go to one version; about the weight's share of keys are new."""
        made = split(reloader, module, source(package, "new"), weight=30, sticky=lambda x: x)
        first = {key: module.top(key)[0] for key in range(2000)}
        again = {key: module.top(key)[0] for key in reversed(range(2000))}
        assert first == again
        share = sum(side == "new" for side in first.values()) / 20
        assert abs(share - 30) <= 5
        made.revert()

    def test_keys_move_to_new_only_as_the_weight_grows(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A key on the new version at 10 % is on it at 50 % and at 100 %."""
        made = split(reloader, module, source(package, "new"), weight=10, sticky=lambda x: x)
        on_new: set[int] = set()
        for weight in (10, 50, 100):
            made.set_weight(weight)
            now = {key for key in range(1000) if module.top(key)[0] == "new"}
            assert on_new <= now
            on_new = now
        assert len(on_new) == 1000
        made.revert()

    def test_the_side_is_the_keys_bucket_under_the_releases_salt(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A key is new iff murmur3(salt:key) % 100 < weight; the salt names module and digest."""
        made = split(reloader, module, source(package, "new"), weight=40, sticky=lambda x: x)
        assert made.salt == f"{module.__name__}:{made.new.sha256}"
        for key in ["user-1", 7, ("a", 1)]:
            expected = "new" if bucket(made.salt, key) < 40 else "old"
            assert module.top(key)[0] == expected
        made.revert()

    def test_none_and_unhashable_keys(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A None key gets a weighted draw; an unhashable key gets its bucket, uncached."""
        made = split(
            reloader,
            module,
            source(package, "new"),
            weight=50,
            sticky=lambda x: None if x == "anyone" else x,
        )
        counts = sides([module.top("anyone") for _ in range(1000)])
        assert counts["new"] == 500  # a draw: exact over 1000 calls
        key = ["not", "hashable"]
        expected = "new" if bucket(made.salt, key) < 50 else "old"
        assert {module.top(key)[0] for _ in range(10)} == {expected}
        period = made.take()
        assert sum(period.calls) == 1010
        made.revert()

    def test_a_raising_key_function_gives_a_draw_and_is_counted(
        self,
        package: Package,
        reloader: HotReloader,
        module: types.ModuleType,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The call goes through on a draw; the errors are counted and logged once."""

        def key(x: object) -> object:
            raise KeyError(x)

        made = split(reloader, module, source(package, "new"), sticky=key)
        counts = sides([module.top(1) for _ in range(1000)])
        assert counts["new"] == 500
        assert made.take().key_errors == 1000
        assert len([r for r in caplog.records if "sticky key function" in r.getMessage()]) == 1
        made.revert()

    @given(
        salt=st.text(max_size=30),
        key=st.one_of(st.text(max_size=20), st.integers(), st.uuids(), st.tuples(st.integers())),
        weights=st.lists(st.integers(0, 100), min_size=2, max_size=6).map(sorted),
    )
    def test_a_keys_side_is_fixed_per_weight_and_only_moves_to_new(
        self, salt: str, key: object, weights: list[int]
    ) -> None:
        """For any salt, key and growing weights: the same side each time, never back to old."""
        sides = [Buckets(salt, weight).assign(key) for weight in weights]
        assert sides == [Buckets(salt, weight).assign(key) for weight in weights]
        assert sides == sorted(sides)
        assert sides[-1] == int(bucket(salt, key) < weights[-1])

    def test_buckets_are_the_same_in_another_process(self) -> None:
        """A subprocess (its own hash seed) computes the same buckets for 1000 keys."""
        salt = "shop.pricing:" + "ab" * 32
        keys = [f"user-{n}" for n in range(500)] + list(range(500))
        code = (
            "import sys\n"
            "from illunare._rollout.assign import bucket\n"
            f"print([bucket({salt!r}, key) for key in {keys!r}])\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=False,
            env={"PYTHONPATH": ":".join(sys.path), "PYTHONHASHSEED": "random"},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str([bucket(salt, key) for key in keys])

    @given(text=st.text(max_size=40), seed=st.integers(0, 2**32 - 1))
    def test_the_pure_python_murmur3_is_the_one_in_use(self, text: str, seed: int) -> None:
        """python_murmur3_32 agrees with murmur3_32 (mmh3 when installed)."""
        assert python_murmur3_32(text, seed) == murmur3_32(text, seed)


class TestAffinity:
    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda m: m.top(1), id="nested"),
            pytest.param(lambda m: m.through_module(1), id="through-the-module"),
            pytest.param(lambda m: m.callback(1), id="callback-run-by-C"),
            pytest.param(lambda m: tuple(x for item in m.gen(3) for x in item), id="generator"),
            pytest.param(lambda m: asyncio.run(m.co(1)), id="coroutine"),
            pytest.param(
                lambda m: asyncio.run(_collect(m.agen(3))),
                id="async-generator",
            ),
            pytest.param(lambda m: asyncio.run(m.gathered(1)), id="gathered-tasks"),
            pytest.param(lambda m: asyncio.run(m.tasked(1)), id="created-task"),
            pytest.param(lambda m: asyncio.run(m.threaded(1)), id="to_thread"),
            pytest.param(lambda m: asyncio.run(m.in_copied_context(1)), id="copied-context"),
        ],
    )
    def test_a_call_stays_in_the_version_it_started_in(
        self,
        halves: tuple[types.ModuleType, Split],
        call: Callable[[types.ModuleType], tuple[str, ...]],
    ) -> None:
        """Over many calls at 50 %, every result's tags come from one version; both serve."""
        module, _ = halves
        counts = sides([call(module) for _ in range(400)])
        assert counts["old"] > 0
        assert counts["new"] > 0

    def test_only_functions_the_release_can_name_check_their_caller(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """entry() is named by no code of either version: its router skips the caller check."""
        module, _ = halves
        checks = {
            name: "getframe" in getattr(module, name).__wrapped__.__code__.co_names
            for name in ("entry", "helper", "by_name")
        }
        assert checks == {"entry": False, "helper": True, "by_name": True}
        counts = sides(
            [module.entry(1) for _ in range(200)] + [module.dynamic(1) for _ in range(200)]
        )
        assert counts["old"] > 0
        assert counts["new"] > 0

    def test_a_coroutine_s_tasks_stay_in_its_version_under_one_loop(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Top-level coroutines run concurrently on one loop: each one's Tasks run its version."""
        module, made = halves
        made.take()

        async def main() -> list[tuple[str, ...]]:
            return list(await asyncio.gather(*(module.gathered(n) for n in range(200))))

        counts = sides(asyncio.run(main()))
        assert counts["old"] > 0
        assert counts["new"] > 0
        assert made.take().calls == (counts["old"], counts["new"])

    def test_only_a_release_with_coroutine_functions_looks_for_pins(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A release of plain functions keeps skipping the pin check (its calls' cost)."""
        reloader.install(package.name)
        plain = package.module("plain", "def f():\n    return 1\n")
        made = split(reloader, plain, "def f():\n    return 2\n")
        try:
            assert made.shared["pins"] is False
        finally:
            made.revert()

    def test_a_pin_holds_a_context_on_one_side(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Under pin(1) every call runs the new version, uncounted; pin(0) the old."""
        module, made = halves
        made.take()
        with made.pin(1):
            assert sides([module.top(1) for _ in range(100)]) == {"new": 100}
        with made.pin(0):
            assert sides([module.top(1) for _ in range(100)]) == {"old": 100}
        assert made.take().calls == (0, 0)
        with pytest.raises(InvalidArgumentError):
            made.pin(2).__enter__()

    def test_a_call_with_no_python_caller_is_routed(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Called straight from C in a new thread (no Python frame above it), a call still works."""
        module, _ = halves
        done = threading.Event()
        for _ in range(20):
            _thread.start_new_thread(module.collect, (1,))
        _thread.start_new_thread(done.set, ())
        assert done.wait(10)
        for _ in range(500):
            if len(module.RESULTS) == 20:
                break
            time.sleep(0.01)
        assert sum(sides(module.RESULTS).values()) == 20

    @pytest.mark.parametrize(("end", "tag"), [("revert", "old"), ("promote", "new")])
    def test_calls_from_many_threads_through_steps_and_the_end(
        self, package: Package, reloader: HotReloader, module: types.ModuleType, end: str, tag: str
    ) -> None:
        """Eight threads call nested functions while the weight moves and the split ends.

        No call fails; every call made while the split runs stays in one
        version, every call started after the end runs the version it ends
        on. (A call in flight across the end may see both: the end is a
        plain switch, as a swap is.)
        """
        made = split(reloader, module, source(package, "new"), weight=10)
        failures: list[BaseException] = []
        calls: list[tuple[int, tuple[str, ...], int]] = []
        phase = [0]  # 0: split, 1: ending, 2: ended
        stop = threading.Event()

        def call() -> None:
            while not stop.is_set():
                started = phase[0]
                try:
                    result = module.through_module(1)
                except BaseException as error:  # reported below
                    failures.append(error)
                    return
                calls.append((started, result, phase[0]))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for weight in (10, 50, 90, 100, 30):
            made.set_weight(weight)
            made.take()
        phase[0] = 1
        getattr(made, end)()
        phase[0] = 2
        time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        assert failures == []
        during = [result for started, result, ended in calls if started == ended == 0]
        after = [result for started, result, _ in calls if started == 2]
        assert len(sides(during)) == 2
        assert sides(after).keys() == {tag}


async def _collect(agen: object) -> tuple[str, ...]:
    return tuple([x async for item in agen for x in item])  # type: ignore[attr-defined]


CLASSES = """
TAG = {tag!r}

class Shop:
    LIMIT = TAG
    COUNT = 0

    def __init__(self):
        self.made = TAG

    def price(self, item):
        return (TAG, self.helper(), self.LIMIT, self.made, self.prop[0])

    def helper(self):
        return TAG

    @staticmethod
    def stat():
        return (TAG, Shop.inner())

    @staticmethod
    def inner():
        return TAG

    @classmethod
    def klass(cls):
        return (TAG, cls.inner())

    @property
    def prop(self):
        return (TAG, self.helper())

    def __repr__(self):
        return TAG
{extra}
def make():
    return Shop().price(1)
"""


def classes(package: Package, tag: str, extra: str = "") -> str:
    return CLASSES.format(tag=tag, extra=textwrap.indent(textwrap.dedent(extra), "    "))


def _without_maker(result: tuple[str, ...]) -> tuple[str, ...]:
    """A price's tags but the one of the version whose __init__ made the instance."""
    return result[:3] + result[4:]


class TestClasses:
    @pytest.fixture
    def shop(
        self, package: Package, reloader: HotReloader
    ) -> Iterator[tuple[types.ModuleType, Split]]:
        """A module with a class, split 50/50."""
        reloader.install(package.name)
        module = package.module("shop", classes(package, "old"))
        made = split(reloader, module, classes(package, "new"))
        yield module, made
        made.revert()

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda m, shop: m.make(), id="constructed-inside"),
            pytest.param(lambda m, shop: _without_maker(shop.price(1)), id="method"),
            pytest.param(lambda m, shop: m.Shop.stat(), id="staticmethod"),
            pytest.param(lambda m, shop: m.Shop.klass(), id="classmethod"),
            pytest.param(lambda m, shop: shop.prop, id="property"),
            pytest.param(lambda m, shop: (repr(shop),), id="dunder"),
        ],
    )
    def test_methods_are_routed_with_affinity(
        self,
        shop: tuple[types.ModuleType, Split],
        call: Callable[[types.ModuleType, object], tuple[str, ...]],
    ) -> None:
        """Each kind of method serves both versions; self.x() and Cls.x() stay in the caller's."""
        module, _ = shop
        instance = module.Shop()
        counts = sides([call(module, instance) for _ in range(400)])
        assert counts["old"] > 0
        assert counts["new"] > 0

    def test_data_that_differs_is_read_by_the_callers_version(
        self, shop: tuple[types.ModuleType, Split]
    ) -> None:
        """LIMIT differs: a pin, else its reader's version, else old decides; COUNT stays live."""
        module, made = shop
        assert module.Shop.LIMIT == "old"
        assert type(module.Shop.__dict__["LIMIT"]) is SplitAttribute
        with made.pin(1):
            assert module.Shop.LIMIT == "new"
        assert {result[2] == result[0] for result in (module.make() for _ in range(50))} == {True}
        assert type(module.Shop.__dict__["COUNT"]) is int

    def test_ending_leaves_plain_contents(
        self, package: Package, reloader: HotReloader, shop: tuple[types.ModuleType, Split]
    ) -> None:
        """After revert, and after a promotion, the class holds plain functions and values."""
        module, made = shop
        made.revert()
        assert not [v for v in vars(module.Shop).values() if type(v) is SplitAttribute]
        assert module.Shop.price.__code__.co_filename.endswith("shop.py")
        assert sides([module.make() for _ in range(50)]) == {"old": 50}
        again = split(reloader, module, classes(package, "newer"))
        again.promote()
        contents = vars(module.Shop)
        assert not [v for v in contents.values() if type(v) is SplitAttribute]
        assert contents["price"] in reloader._modules[module.__name__].current.targets.values()
        assert sides([module.make() for _ in range(50)]) == {"newer": 50}

    def test_a_method_one_version_lacks_raises_attribute_error_on_that_side(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A method added by the candidate: old-side calls raise AttributeError, new ones run."""
        reloader.install(package.name)
        module = package.module("shop", classes(package, "old"))
        extra = "def added(self):\n    return (TAG,)\n"
        made = split(reloader, module, classes(package, "new", extra))
        instance = module.Shop()
        with made.pin(1):
            assert instance.added() == ("new",)
        with made.pin(0), pytest.raises(AttributeError, match="added"):
            instance.added()
        made.revert()
        with pytest.raises(AttributeError):
            instance.added()

    def test_everyday_classes_are_split(self, package: Package, reloader: HotReloader) -> None:
        """Dataclasses, attrs classes, enums, pydantic models, cached properties: both serve."""
        text = """
            import dataclasses, enum, functools
            import attrs, pydantic
            TAG = {tag!r}
            @dataclasses.dataclass(frozen=True)
            class Point:
                x: int
                def tag(self): return TAG
            @attrs.define
            class Item:
                name: str
                def tag(self): return TAG
            class Color(enum.Enum):
                RED = 1
                def tag(self): return TAG
            class Model(pydantic.BaseModel):
                a: int
                def tag(self): return TAG
            class Cached:
                @functools.cached_property
                def value(self): return TAG
            def run():
                made = (Point(1), Item("a"), Color.RED, Model(a=1))
                return (*(thing.tag() for thing in made), Cached().value)
        """
        reloader.install(package.name)
        module = package.module("everyday", textwrap.dedent(text).format(tag="old"))
        made = split(reloader, module, textwrap.dedent(text).format(tag="new"))
        counts = sides([module.run() for _ in range(200)])
        assert counts["old"] > 0
        assert counts["new"] > 0
        assert module.Model(a=2).a == 2
        assert hash(module.Point(1)) == hash(module.Point(1))
        made.promote()
        assert sides([module.run() for _ in range(10)]) == {"new": 10}

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param("__hash__ = None\n", id="hash-None"),
            pytest.param(
                "class Guard:\n    def __get__(self, i, o): return 1\n"
                "    def __set__(self, i, v): pass\n"
                "guarded = Guard()\n",
                id="data-descriptor",
            ),
        ],
    )
    def test_unsplittable_attributes_refuse_the_rollout(
        self, package: Package, reloader: HotReloader, extra: str
    ) -> None:
        """A differing data descriptor or __hash__ = None: ValidationError naming it; no change."""
        reloader.install(package.name)
        module = package.module("shop", classes(package, "old", extra))
        with pytest.raises(ValidationError, match=r"Shop\.(__hash__|guarded)"):
            split(
                reloader,
                module,
                classes(
                    package,
                    "new",
                    extra.replace("None", "object.__hash__") if "hash" in extra else extra,
                ),
            )
        assert [v.number for v in reloader.history(module.__name__)] == [1]
        assert sides([module.make() for _ in range(20)]) == {"old": 20}


class Recorder:
    """A shadow sink that runs nothing: it records what the routers offer."""

    def __init__(self) -> None:
        self.offered: list[tuple[object, tuple[object, ...], dict[str, object], object]] = []

    def offer(
        self,
        new: Callable[..., object],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        outcome: tuple[bool, object],
        seconds: float,
    ) -> bool:
        assert seconds >= 0
        self.offered.append((new, args, kwargs, outcome))
        return True

    offer_coroutine = offer


def shadowed(
    reloader: HotReloader, module: types.ModuleType, text: str, sink: Recorder, sample: float
) -> Split:
    """A shadow run of ``text`` for ``module`` offering ``sample`` of the calls to ``sink``."""
    made: list[Split] = []

    def begin(entries: Any, bound: Any, participants: Any) -> None:
        made.append(
            switching.begin(
                reloader,
                entries,
                bound,
                subject=module.__name__,
                weight=0,
                sticky=None,
                mask_all=False,
                participants=participants,
                shadow=sink,
                sample=sample,
            )
        )

    reloader._swap_release({module.__name__: text}, (), "shadow", begin)
    return made[0]


class TestShadowRouting:
    def test_old_serves_every_call_and_a_sample_is_offered(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """At sample 0.25, 1000 calls: all served by old, counted old, exactly 250 offered."""
        sink = Recorder()
        made = shadowed(reloader, module, source(package, "new"), sink, 0.25)
        assert sides([module.top(x) for x in range(1000)]) == {"old": 1000}
        assert len(sink.offered) == 250
        new, args, kwargs, outcome = sink.offered[0]
        assert new(*args, **kwargs) == ("new", "new")
        assert outcome == (False, ("old", "old"))
        assert made.take().calls == (1000, 0)
        made.revert()

    def test_the_old_versions_exception_is_offered_and_raised(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The caller gets old's exception; the sink gets it as the outcome."""
        reloader.install(package.name)
        module = package.module("m", source(package, "old", fails=True))
        sink = Recorder()
        made = shadowed(reloader, module, source(package, "new"), sink, 1.0)
        with pytest.raises(ValueError, match="old"):
            module.fails(1)
        ((new, args, kwargs, (raised, error)),) = sink.offered
        assert raised is True
        assert isinstance(error, ValueError)
        assert new(*args, **kwargs) == ("new",)
        assert made.take().errors == (1, 0)
        made.revert()

    def test_coroutines_are_offered_and_generators_are_not(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A coroutine function's calls are offered after old's result; a generator's never."""
        sink = Recorder()
        made = shadowed(reloader, module, source(package, "new"), sink, 1.0)
        assert asyncio.run(module.co(1)) == ("old", "old")
        assert list(module.gen(2)) == [("old", "old")] * 2
        ((new, args, _, outcome),) = sink.offered
        assert inspect.iscoroutinefunction(new)
        assert outcome == (False, ("old", "old"))
        assert asyncio.run(new(*args)) == ("new", "new")
        made.revert()


class TestRequests:
    def test_requests_are_drawn_or_sticky_counted_and_timed(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """choose() takes the key from the request; finished() times it and counts its error."""
        made = split(
            reloader,
            module,
            source(package, "new"),
            weight=30,
            sticky=lambda request: request.get("user"),  # type: ignore[attr-defined]
        )
        requests = made.requests
        anonymous = [requests.choose({}) for _ in range(1000)]
        assert sum(anonymous) == 300
        users = {user: requests.choose({"user": user}) for user in map(str, range(200))}
        assert all(requests.choose({"user": u}) == side for u, side in users.items())
        assert all(side == int(bucket(made.salt, u) < 30) for u, side in users.items())
        requests.finished(1, 0.25, error=True)
        requests.finished(0, 0.5, error=False)
        period = made.take()
        new_users = sum(users.values())
        assert period.calls == (700 + 2 * (200 - new_users), 300 + 2 * new_users)
        assert period.errors == (0, 1)
        assert period.samples == ((0.5,), (0.25,))
        made.revert()

    def test_a_request_pins_every_call_it_makes(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Within pinned(side), the module's functions run that side, uncounted."""
        module, made = halves
        for side, tag in ((0, "old"), (1, "new")):
            with made.requests.pinned(side):
                assert sides([module.top(1) for _ in range(50)]) == {tag: 50}
        assert made.take().calls == (0, 0)


class Canary:
    """A participant that takes part in rollouts: it holds a request router while one runs."""

    def __init__(self, refuse: bool = False) -> None:
        self.router: object = None
        self.refuse = refuse
        self.told: list[str] = []

    def dependents(self, changed: frozenset[str]) -> frozenset[str]:
        return frozenset()

    def prepare(self, namespaces: object) -> None:
        self.told.append("prepare")

    def abort(self, namespaces: object) -> None:
        self.told.append("abort")

    def committed(self, namespaces: object, previous: object) -> None:
        self.told.append("committed")

    def kept(self) -> list[object]:
        return []

    def split(self, namespaces: object, previous: object, requests: object) -> list[object]:
        if self.refuse:
            raise RuntimeError("no canary today")
        self.told.append("split")
        return [(self, "router", requests)]


class TestParticipants:
    @pytest.mark.parametrize("end", ["revert", "promote"])
    def test_a_participant_holds_its_attribute_while_the_split_runs(
        self, package: Package, reloader: HotReloader, module: types.ModuleType, end: str
    ) -> None:
        """split() gives attributes set by the switch, reset to None by the end; then told."""
        canary = Canary()
        reloader._add_participant(canary)
        made = split(reloader, module, source(package, "new"))
        assert canary.router is made.requests
        assert canary.told == ["prepare", "split"]
        getattr(made, end)()
        assert canary.router is None
        assert canary.told[-1] == ("abort" if end == "revert" else "committed")

    def test_a_participant_refusing_the_split_refuses_the_release(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """A split() that raises: ValidationError naming it, no version, nothing routed."""
        canary = Canary(refuse=True)
        reloader._add_participant(canary)
        with pytest.raises(ValidationError, match="no canary today"):
            split(reloader, module, source(package, "new"))
        assert canary.told == ["prepare", "abort"]
        assert [v.number for v in reloader.history(module.__name__)] == [1]
        assert type(module.top.__wrapped__) is types.FunctionType


class TestReservedNames:
    @pytest.mark.parametrize("name", ["next", "int", "draw", "side", "id"])
    def test_a_parameter_named_like_what_routers_use_gets_the_generic_shape(
        self, package: Package, reloader: HotReloader, name: str
    ) -> None:
        """f(next) during a rollout: routed as (*args, **kwargs), every call answered."""
        body = f"TAG = {{tag!r}}\ndef f({name}):\n    return (TAG, {name})\n"
        module = package.module("named", body.format(tag="old"))
        reloader.track(module)
        handle = reloader.swap(module.__name__, body.format(tag="new"), rollout=Rollout(bake=3600))
        results = {module.f(3) for _ in range(200)}
        assert results == {("old", 3), ("new", 3)}
        assert module.f(**{name: 4})[1] == 4
        handle.abort()

    def test_every_name_a_router_uses_is_reserved(self) -> None:
        """No parameter kept in a router's exact signature can hide a name it reads."""
        used: set[str] = set()
        for kind, mode, frames, several, parameters in itertools.product(
            range(4), ("weighted", "sticky", "shadow"), (True, False), (True, False), (None, ("q",))
        ):
            shape = _Shape(kind, parameters, mode, frames, several)
            codes = [_factory(shape)]
            while codes:
                code = codes.pop()
                used.update(code.co_varnames)
                used.update(
                    op.argval for op in dis.get_instructions(code) if op.opname == "LOAD_GLOBAL"
                )
                codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        assert used - {"q", "args", "kwargs"} <= _RESERVED


class TestReleases:
    def test_calls_between_modules_of_one_release_stay_in_one_version(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A release of two modules: a's function calling b's runs both of one version."""
        reloader.install(package.name)
        # A parameter named like a builtin the routers use.
        low = "TAG = {tag!r}\ndef tag(id):\n    return TAG\n"
        high = "from {p} import low\nTAG = {tag!r}\ndef pair():\n    return (TAG, low.tag(1))\n"
        package.module("low", low.format(tag="old"))
        top = package.module("high", high.format(p=package.name, tag="old"))
        made = reloader._split_release(
            {
                top.__name__: high.format(p=package.name, tag="new"),
                package.qualified("low"): low.format(tag="new"),
            },
            checks=(),
            reason="",
            weight=50,
            sticky=None,
        )
        assert made is not None
        assert made.subject == top.__name__
        assert set(made.modules) == {top.__name__, package.qualified("low")}
        counts = sides([top.pair() for _ in range(1000)])
        assert counts == {"old": 500, "new": 500}
        made.promote()
        assert sides([top.pair() for _ in range(10)]) == {"new": 10}


class TestKinds:
    def test_kinds_and_introspection_are_kept(self, halves: tuple[types.ModuleType, Split]) -> None:
        """Frameworks see the same kind, name and signature during the split."""
        module, _ = halves
        assert inspect.iscoroutinefunction(module.co)
        assert inspect.isgeneratorfunction(module.gen)
        assert inspect.isasyncgenfunction(module.agen)
        assert not inspect.iscoroutinefunction(module.top)
        assert module.top.__name__ == "top"
        assert str(inspect.signature(module.top)) == "(x)"
        assert str(inspect.signature(module.shaped)) == "(a, b, *rest, c=1, **more)"

    def test_argument_errors_name_the_function(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """A wrong call reads as it would without a rollout."""
        module, _ = halves
        with pytest.raises(TypeError, match=r"top\(\) missing 1 required positional argument"):
            module.top()
        assert module.shaped(1, 2, 3, c=4, d=5)[0] in ("old", "new")

    def test_an_async_generator_forwards_asend_athrow_and_aclose(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Values sent in, exceptions thrown in and closing reach the version's generator."""
        reloader.install(package.name)
        text = """
            LOG = []
            async def echo():
                try:
                    received = yield "ready"
                    while True:
                        try:
                            received = yield f"{{TAG}}:{{received}}"
                        except ValueError as error:
                            received = f"caught {{error}}"
                finally:
                    LOG.append(TAG)
            TAG = {tag!r}
        """
        module = package.module("echo", textwrap.dedent(text).format(tag="old"))
        made = split(reloader, module, textwrap.dedent(text).format(tag="new"))

        async def run() -> list[str]:
            agen = module.echo()
            seen = [await agen.asend(None), await agen.asend("a")]
            seen.append(await agen.athrow(ValueError("x")))
            await agen.aclose()
            return seen

        for _ in range(10):
            seen = asyncio.run(run())
            tag = seen[1].partition(":")[0]
            assert seen == ["ready", f"{tag}:a", f"{tag}:caught x"]
        made.revert()


class TestEnds:
    def test_a_revert_leaves_raw_old_functions_and_old_registrations(
        self, halves: tuple[types.ModuleType, Split], reloader: HotReloader
    ) -> None:
        """After revert every proxy points at version 1's own function again."""
        module, made = halves
        tracked = reloader._modules[module.__name__]
        routers = made.kept()
        assert {router.__name__ for router in routers} >= {"top", "helper", "co", "gen"}
        assert {proxy.__wrapped__ for proxy in tracked.proxies.values()} == set(routers)
        del routers
        made.revert()
        made.revert()  # idempotent
        for qualname, proxy in tracked.proxies.items():
            assert proxy.__wrapped__ is tracked.current.targets[qualname]
        assert made.kept() == []
        assert reloader.current(module.__name__).number == 1
        assert [v.number for v in reloader.history(module.__name__)] == [1, 2]
        assert sides([module.top(1) for _ in range(100)]) == {"old": 100}
        with pytest.raises(InvalidArgumentError):
            made.promote()

    @pytest.mark.parametrize("end", ["revert", "promote"])
    def test_no_router_is_freed_inside_the_end_switch(
        self, halves: tuple[types.ModuleType, Split], reloader: HotReloader, end: str
    ) -> None:
        """Routers die after the switch: their weakref callbacks see every proxy switched."""
        module, made = halves
        tracked = reloader._modules[module.__name__]
        snapshots: list[set[bool]] = []

        def look(_: object) -> None:
            current = tracked.current.targets
            snapshots.append(
                {proxy.__wrapped__ is current.get(name) for name, proxy in tracked.proxies.items()}
            )

        refs = [weakref.ref(router, look) for router in made.kept()]
        getattr(made, end)()
        assert len(snapshots) == len(refs) > 1
        assert all(snapshot == {True} for snapshot in snapshots)

    def test_a_promotion_leaves_raw_new_functions(
        self, halves: tuple[types.ModuleType, Split], reloader: HotReloader
    ) -> None:
        """After promote the candidate is current and every proxy points at its function."""
        module, made = halves
        tracked = reloader._modules[module.__name__]
        assert reloader.current(module.__name__).number == 1
        swapped = made.promote()
        assert swapped == [(made.old, made.new)]
        assert made.promote() == swapped
        assert reloader.current(module.__name__) == made.new
        for qualname, proxy in tracked.proxies.items():
            assert type(proxy) is HotFunction
            assert proxy.__wrapped__ is tracked.current.targets[qualname]
        assert sides([module.top(1) for _ in range(100)]) == {"new": 100}
        made.revert()  # a no-op now
        assert reloader.current(module.__name__) == made.new

    def test_calls_before_the_end_are_in_the_next_period(
        self, halves: tuple[types.ModuleType, Split]
    ) -> None:
        """Calls made between the last take() and a revert are counted by the next take()."""
        module, made = halves
        for _ in range(1000):
            module.top(1)
        made.revert()
        assert made.take().calls == (500, 500)

    def test_promotions_from_two_threads_flip_once(
        self, halves: tuple[types.ModuleType, Split], reloader: HotReloader
    ) -> None:
        """Both callers get the same (previous, new); a revert racing them changes nothing."""
        module, made = halves
        results: list[object] = []
        barrier = threading.Barrier(3)

        def end(action: Callable[[], object]) -> None:
            barrier.wait()
            try:
                results.append(action())
            except InvalidArgumentError:
                results.append("refused")

        threads = [threading.Thread(target=end, args=(made.promote,)) for _ in range(2)]
        threads.append(threading.Thread(target=end, args=(made.revert,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if made.state == "promoted":
            assert [r for r in results if r is not None] == [[(made.old, made.new)]] * 2
            assert reloader.current(module.__name__) == made.new
        else:  # the revert came first: both promotions were refused
            assert sorted(map(str, results)) == ["None", "refused", "refused"]
            assert reloader.current(module.__name__) == made.old

    def test_the_candidate_is_in_history_at_once_and_current_stays(
        self, halves: tuple[types.ModuleType, Split], reloader: HotReloader
    ) -> None:
        """During the split current() is the old version and history() has the candidate."""
        module, made = halves
        assert reloader.current(module.__name__) == made.old
        assert reloader.history(module.__name__)[-1] == made.new
        assert made.new.parent == made.old.number

    def test_registrations_follow_the_serving_version(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The candidate's registrations are withdrawn during the split, in effect once promoted."""
        registry = package.module("registry", "HANDLERS = {}\n")
        plugin = "from {p} import registry\ndef handler():\n    return {n}\n"
        plugin += "registry.HANDLERS['h'] = handler\n"
        module = package.module("plugin", plugin.format(p=package.name, n=1))
        reloader.track(module.__name__)
        made = split(reloader, module, plugin.format(p=package.name, n=2))
        assert {registry.HANDLERS["h"]() for _ in range(100)} == {1}
        made.promote()
        assert registry.HANDLERS["h"]() == 2
        assert importlib.import_module(module.__name__).handler() == 2

    def test_nothing_to_split_is_refused_and_nothing_changes(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A module without functions cannot be rolled out per call: ValidationError."""
        module = package.module("data", "VALUE = 1\n")
        reloader.track(module.__name__)
        with pytest.raises(ValidationError, match="swap it without a rollout"):
            split(reloader, module, "VALUE = 2\n")
        assert [v.number for v in reloader.history(module.__name__)] == [1]
        assert module.VALUE == 1

    def test_an_identical_source_splits_nothing(
        self, package: Package, reloader: HotReloader, module: types.ModuleType
    ) -> None:
        """The same source gives no split (None) and no version."""
        made = reloader._split_release(
            {module.__name__: source(package, "old")},
            checks=(),
            reason="",
            weight=50,
            sticky=None,
        )
        assert made is None
        assert [v.number for v in reloader.history(module.__name__)] == [1]
