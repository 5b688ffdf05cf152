"""Calls in flight: the references that running calls hold to a version's functions.

On Python 3.11 and later a call of a Python function holds the function (its
frame's ``f_funcobj``) until it returns, and ``gc.get_referents`` of a frame
that is still running shows nothing it holds. A swap or rollback while other
threads run the leaving version's functions (a busy service: every release)
would find more references to them than the version's records explain and
walk the heap to tell what holds them, only to find calls in flight, which
are never stale. Counted here instead: each frame of another thread's stack
that runs one of the functions holds one reference to it (the releasing
thread's own calls are left to the walk).

A frame is told to run a function by its code and globals: a version's
functions share its namespace as their globals, and each has its own code
(a code object shared by two of them is left uncounted). Frames are
snapshotted before reference counts are read and kept until after: a call
that returns meanwhile leaves its function in its frame object, still
counted on both sides, and one that starts meanwhile is not counted, which
can only make the heap walk run, as it would without this.

On 3.10 a frame holds its code and globals, not its function: nothing to count.
Suspended coroutines and generators are not on any thread's stack; the
references they hold are found by the heap walk.
"""

from __future__ import annotations

import collections
import sys
import threading
import types
from collections.abc import Iterable

__all__ = ["held_by_calls", "stacks"]

# Whether a running frame holds its function.
_FRAMES_HOLD_FUNCTIONS = sys.version_info >= (3, 11)


def stacks() -> list[types.FrameType]:
    """Every frame on the stacks of the other threads right now (none on 3.10).

    Not the calling thread's: the list would hold the frame of the function
    keeping it, and that frame the list once the function returns, a garbage
    cycle holding every frame listed, and through them the functions they ran.
    """
    if not _FRAMES_HOLD_FUNCTIONS:
        return []
    frames = []
    tops = sys._current_frames()
    # Dropped at once: a local still holding this very frame when it returns
    # would make the frame keep its locals, this list among them.
    del tops[threading.get_ident()]
    for top in tops.values():
        frame: types.FrameType | None = top
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
    return frames


def held_by_calls(
    functions: Iterable[object], frames: Iterable[types.FrameType]
) -> collections.Counter[int]:
    """How many references ``frames`` hold to each of ``functions`` (by id) as their function."""
    by_code: dict[tuple[int, int], int | None] = {}
    for function in functions:
        if isinstance(function, types.FunctionType):
            key = (id(function.__code__), id(function.__globals__))
            # A code shared by two functions does not tell which one a frame runs.
            by_code[key] = None if key in by_code else id(function)
    held: collections.Counter[int] = collections.Counter()
    if not by_code:
        return held
    for frame in frames:
        function = by_code.get((id(frame.f_code), id(frame.f_globals)))
        if function is not None:
            held[function] += 1
    return held
