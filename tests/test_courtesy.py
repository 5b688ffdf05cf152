"""Courtesy: while a release prepares, threads serving requests wait little for the GIL."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import types
from collections.abc import Iterator

import pytest

from illunare import HotReloader
from illunare._reload.courtesy import _COURTESY, INTERVAL, TURN, courteous, take_turn
from illunare._reload.pause import Token

from .conftest import Package, held_in_another_thread


@pytest.fixture(autouse=True)
def _interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def close(a: float, b: float) -> bool:
    """The interval round-trips through microseconds."""
    return abs(a - b) < 1e-6


@pytest.fixture
def helpers(package: Package, reloader: HotReloader) -> types.ModuleType:
    module = package.module("helpers", "def f():\n    return 1\n")
    reloader.track(module)
    return module


class TestDuringASwap:
    def test_the_interval_is_lowered_while_the_new_code_is_checked_and_restored_after(
        self, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A check runs with the short interval; the default one is back after the swap."""
        sys.setswitchinterval(0.005)
        seen: list[float] = []
        reloader.swap(
            helpers.__name__,
            "def f():\n    return 2\n",
            checks=[lambda module: seen.append(sys.getswitchinterval()) or True],
        )
        assert close(seen[0], INTERVAL)
        assert close(sys.getswitchinterval(), 0.005)

    def test_it_is_restored_after_a_refused_swap(
        self, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A swap whose new code raises leaves the interval as it found it."""
        sys.setswitchinterval(0.005)
        with pytest.raises(Exception, match="boom"):
            reloader.swap(helpers.__name__, "raise RuntimeError('boom')\n")
        assert close(sys.getswitchinterval(), 0.005)

    def test_an_interval_the_program_sets_meanwhile_is_kept(
        self, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Code that sets its own interval during a release keeps it afterwards."""
        sys.setswitchinterval(0.005)
        reloader.swap(
            helpers.__name__,
            "def f():\n    return 2\n",
            checks=[lambda module: sys.setswitchinterval(0.01) or True],
        )
        assert close(sys.getswitchinterval(), 0.01)

    def test_a_shorter_interval_is_left_alone(
        self, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """An interval already below the courteous one is never raised to it."""
        sys.setswitchinterval(INTERVAL / 2)
        seen: list[float] = []
        reloader.swap(
            helpers.__name__,
            "def f():\n    return 2\n",
            checks=[lambda module: seen.append(sys.getswitchinterval()) or True],
        )
        assert close(seen[0], INTERVAL / 2)
        assert close(sys.getswitchinterval(), INTERVAL / 2)


class TestSeveralThreads:
    def test_the_interval_comes_back_when_the_last_release_ends(self) -> None:
        """Two overlapping releases in two threads: restored only once both are done."""
        sys.setswitchinterval(0.005)
        with held_in_another_thread(courteous):
            with courteous():
                pass
            assert close(sys.getswitchinterval(), INTERVAL)
        assert close(sys.getswitchinterval(), 0.005)


def held_by_an_ended_call() -> Token:
    """A hold owned by this call, which ends with its token kept (as an interrupt may)."""
    return _COURTESY.enter(INTERVAL, sys._getframe())


@contextlib.contextmanager
def owned_by_the_caller() -> Iterator[None]:
    """A hold owned by the call that enters the block (the frame below ``contextlib``'s)."""
    token = _COURTESY.enter(INTERVAL, sys._getframe(2))
    try:
        yield
    finally:
        _COURTESY.leave(token)


class TestInterruptedHolders:
    def test_a_hold_dropped_without_leave_gives_the_interval_back(self) -> None:
        """Interrupted code that never reaches its ``leave``: the token's death restores it."""
        sys.setswitchinterval(0.005)
        token = _COURTESY.enter(INTERVAL)
        assert close(sys.getswitchinterval(), INTERVAL)
        del token
        assert close(sys.getswitchinterval(), 0.005)

    def test_a_hold_whose_owner_ended_is_given_back_with_the_next(self) -> None:
        """Its token kept alive (an abandoned generator, a cycle): given back with the next."""
        sys.setswitchinterval(0.005)
        kept = held_by_an_ended_call()
        assert close(sys.getswitchinterval(), INTERVAL)
        with courteous():
            pass
        assert close(sys.getswitchinterval(), 0.005)
        del kept

    def test_a_hold_whose_owner_still_runs_is_kept(self) -> None:
        sys.setswitchinterval(0.005)
        with held_in_another_thread(owned_by_the_caller):
            with courteous():
                pass
            assert close(sys.getswitchinterval(), INTERVAL)
        assert close(sys.getswitchinterval(), 0.005)

    def test_leaving_twice_gives_back_nothing_more(self) -> None:
        sys.setswitchinterval(0.005)
        first, second = _COURTESY.enter(INTERVAL), _COURTESY.enter(TURN)
        _COURTESY.leave(first)
        _COURTESY.leave(first)
        assert close(sys.getswitchinterval(), TURN)
        _COURTESY.leave(second)
        assert close(sys.getswitchinterval(), 0.005)


@contextlib.contextmanager
def busy_thread() -> Iterator[None]:
    """Another thread wanting the GIL all along the block."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


class TestTakeTurn:
    def test_the_interval_is_as_before_after_a_turn(self) -> None:
        """A turn taken while another thread runs leaves the interval as it found it."""
        sys.setswitchinterval(0.005)
        with busy_thread():
            take_turn()
            assert close(sys.getswitchinterval(), 0.005)

    def test_a_turn_within_a_release_leaves_the_courteous_interval(self) -> None:
        """A turn taken while a release prepares gives the short interval back, not the old one."""
        sys.setswitchinterval(0.005)
        with busy_thread(), courteous():
            take_turn()
            assert close(sys.getswitchinterval(), INTERVAL)
        assert close(sys.getswitchinterval(), 0.005)

    def test_the_turn_s_interval_is_in_effect_while_waiting(self) -> None:
        """Threads running during the turn see ``TURN``, never a longer interval."""
        sys.setswitchinterval(0.005)
        seen: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(sys.getswitchinterval())

        thread = threading.Thread(target=watch)
        thread.start()
        try:
            for _ in range(50):
                take_turn()
        finally:
            stop.set()
            thread.join(10)
        assert {round(value, 6) for value in seen} <= {0.005, TURN}

    def test_a_shorter_interval_is_left_alone(self) -> None:
        """An interval already below ``TURN`` is never raised to it."""
        sys.setswitchinterval(TURN / 4)
        with busy_thread():
            take_turn()
        assert close(sys.getswitchinterval(), TURN / 4)

    def test_a_swap_takes_its_turn_before_binding(
        self, helpers: types.ModuleType, reloader: HotReloader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A swap in a process of several threads starts a turn between preparing and flipping."""
        import illunare._reload.reloader as reloader_module

        order: list[str] = []
        monkeypatch.setattr(reloader_module, "take_turn", lambda: order.append("turn"))
        with busy_thread():
            reloader.swap(
                helpers.__name__,
                "def f():\n    return 2\n",
                checks=[lambda module: order.append("check") or True],
            )
        assert order == ["check", "turn"]
        assert helpers.f() == 2


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
class TestFork:
    def test_a_child_forked_during_a_release_gets_the_interval_back(self) -> None:
        """The child of a fork made while a release prepares does not keep the short interval."""
        sys.setswitchinterval(0.005)
        with courteous():
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os._exit(0 if close(sys.getswitchinterval(), 0.005) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
