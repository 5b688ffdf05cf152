"""Pauses of garbage collection: nested, across threads, and left behind by interrupted code."""

from __future__ import annotations

import contextlib
import gc
import sys
import types
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from illunare import HotReloader
from illunare._reload import registrations
from illunare._reload.pause import PAUSE, Token, collection_paused, outermost_call

from .conftest import Package, held_in_another_thread, in_child


@pytest.fixture(autouse=True)
def _collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.enable()
    yield
    assert not PAUSE.paused, "a test left collection paused"
    if enabled:
        gc.enable()
    else:
        gc.disable()


def held_by_an_ended_call() -> Token:
    """A pause owned by this call, which ends with its token kept (as an interrupt may)."""
    return PAUSE.enter(sys._getframe())


def entered_and_left_without_exit() -> collection_paused:
    """A switch's block that this call entered, and left without its ``__exit__``."""
    block = collection_paused()
    block.__enter__()
    return block


@contextlib.contextmanager
def owned_by_the_caller() -> Iterator[None]:
    """A pause owned by the call that enters the block (the frame below ``contextlib``'s)."""
    token = PAUSE.enter(sys._getframe(2))
    try:
        yield
    finally:
        PAUSE.leave(token)


class TestPauses:
    def test_collection_is_paused_within_the_block_and_resumed_after(self) -> None:
        with collection_paused():
            assert not gc.isenabled()
            assert PAUSE.paused
        assert gc.isenabled()
        assert not PAUSE.paused

    def test_nested_pauses_resume_with_the_last(self) -> None:
        outer = PAUSE.enter()
        with collection_paused():
            pass
        assert not gc.isenabled()
        PAUSE.leave(outer)
        assert gc.isenabled()

    def test_a_collector_the_program_disabled_stays_disabled(self) -> None:
        gc.disable()
        with collection_paused():
            pass
        assert not gc.isenabled()

    def test_leaving_twice_ends_nothing_more(self) -> None:
        first, second = PAUSE.enter(), PAUSE.enter()
        PAUSE.leave(first)
        PAUSE.leave(first)
        assert not gc.isenabled()
        PAUSE.leave(second)
        assert gc.isenabled()

    def test_a_pause_in_another_thread_keeps_collection_paused_until_it_ends(self) -> None:
        with held_in_another_thread(collection_paused):
            with collection_paused():
                pass
            assert not gc.isenabled()
        assert gc.isenabled()


class TestInterruptedHolders:
    def test_a_token_dropped_without_leave_ends_its_pause(self) -> None:
        """Interrupted code that never reaches its ``leave``: the token's death ends the pause."""
        token = PAUSE.enter()
        assert not gc.isenabled()
        del token
        assert gc.isenabled()

    def test_a_pause_whose_owner_ended_ends_with_the_next_pause(self) -> None:
        """Its token kept alive (an abandoned generator, a cycle): the next pause's end ends it."""
        kept = held_by_an_ended_call()
        assert not gc.isenabled()
        with collection_paused():
            pass
        assert gc.isenabled()
        assert not PAUSE.paused
        del kept

    def test_a_pause_whose_owner_still_runs_is_kept(self) -> None:
        """The owner is a call another thread is still in: its pause stays."""
        with held_in_another_thread(owned_by_the_caller):
            with collection_paused():
                pass
            assert not gc.isenabled()
            assert PAUSE.paused
        assert gc.isenabled()

    def test_a_switch_s_pause_kept_after_its_call_ends_with_the_next_pause(self) -> None:
        """An exception kept after an interrupt in ``__exit__`` keeps its token: its call ended."""
        kept = entered_and_left_without_exit()
        assert not gc.isenabled()
        with collection_paused():
            pass
        assert gc.isenabled()
        del kept

    def test_asking_whether_paused_ends_the_orphans(self) -> None:
        kept = held_by_an_ended_call()
        assert not PAUSE.paused
        assert gc.isenabled()
        del kept


def library_frame() -> types.FrameType | None:
    return outermost_call(sys._getframe())


class TestOwner:
    def test_a_context_manager_entered_by_the_program_has_no_owner(self) -> None:
        """Only the library's own calls own a pause: the program's frame outlives the block."""
        assert library_frame() is None

    def test_a_release_is_owned_by_the_library_s_outermost_call(
        self, package: Package, reloader: HotReloader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A swap's snapshot: owned by ``swap()``'s frame, which stays until the swap ends."""
        owners: list[str | None] = []

        def spy(frame: types.FrameType) -> types.FrameType | None:
            owner = outermost_call(frame)
            owners.append(None if owner is None else owner.f_code.co_name)
            return owner

        monkeypatch.setattr(registrations, "outermost_call", spy)
        module = package.module("owned", "X = 1\n")
        reloader.track(module)
        reloader.swap(module.__name__, "X = 2\n")
        assert owners
        assert set(owners) == {"swap"}


class Finalized:
    """Garbage whose finalizer notes the library frames it ran in."""

    seen: list[list[str]] = []  # noqa: RUF012  # the test's record

    def __del__(self) -> None:
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            frames.append(frame.f_code.co_name)
            frame = frame.f_back
        Finalized.seen.append(frames)


def test_no_collection_starts_while_a_pause_ends() -> None:
    """On 3.10 and 3.11 an allocation may start a collection at once: none is made in the pass.

    A release leaves the youngest generation far beyond its threshold, and
    garbage with finalizers (Python code, which lets other threads in).
    """
    Finalized.seen.clear()
    token = PAUSE.enter()
    made = [[] for _ in range(5_000)]
    cycle = Finalized()
    cycle.self = cycle  # type: ignore[attr-defined]
    del cycle
    PAUSE.leave(token)
    del made
    gc.collect()
    assert Finalized.seen
    assert all("_end" not in frames and "leave" not in frames for frames in Finalized.seen)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["enter", "leave", "drop"]), st.integers(0, 3)), max_size=30)
)
def test_collection_runs_exactly_when_no_pause_is_held(steps: list[tuple[str, int]]) -> None:
    """Any sequence of pauses taken, ended and dropped: paused while some token is held."""
    gc.enable()
    held: dict[int, Token] = {}
    for action, slot in steps:
        if action == "enter" and slot not in held:
            held[slot] = PAUSE.enter()
        elif action == "leave" and slot in held:
            PAUSE.leave(held.pop(slot))
        elif action == "drop":
            held.pop(slot, None)
        assert gc.isenabled() == (not held)
        assert PAUSE.paused == bool(held)
    held.clear()
    assert gc.isenabled()


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_child_forked_during_a_pause_collects() -> None:
    """The parent's pauses belong to its threads: the child's collector runs."""
    with collection_paused():
        status = in_child(gc.isenabled)
    assert status == 0
