"""Courtesy to the threads serving requests while a release prepares in the same process.

A release runs in the process that serves (a web server's event loop, its
worker threads): executing new code and scanning the heap compete with
them for the GIL. CPython hands the GIL to a waiting thread only after the
switch interval (``sys.getswitchinterval()``, 5 ms by default) unless its
holder lets go first, so a request arriving while a release prepares waits
up to that long, again at every switch. While any release prepares or
scans, the interval is lowered to ``INTERVAL``, so that a serving thread
gets the GIL within a fraction of a millisecond; the interval in effect
before (if nobody changed it meanwhile) comes back when the last ends.

The flip that follows a preparation should run whole instead: it holds the
library's lock and keeps the collector paused, for tens of microseconds
unless another thread takes the GIL in the middle, which then comes back
only after other threads' turns of a whole interval each. ``take_turn``
starts a turn of the GIL in the releasing thread right before it binds and
flips, so that no thread asks for the GIL before they end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Iterator
from itertools import chain

from illunare._reload.pause import Token, ended, outermost_call

__all__ = ["INTERVAL", "TURN", "courteous", "take_turn"]

# Drains an iterator in C, keeping nothing.
_drain = deque[object](maxlen=0).extend

#: The switch interval while a release prepares (s).
INTERVAL = 0.0002
#: The switch interval while a releasing thread waits for a turn of its own (s).
TURN = 0.001


class _Courtesy:
    """Releases in several threads restore the interval when the last ends.

    Each holder asks for an interval; the shortest asked for is in effect
    (never one longer than the interval found at the start). Proof against
    interrupts as pauses are (``pause.py``): each holder keeps a token; what
    taking or giving back a hold changes (the holders, the interval, the
    state) is worked out first and made in one C-level pass; a token
    dropped without ``leave`` gives its hold back when it dies; and a hold
    whose owner (the library's outermost call in its thread) has ended is
    given back when the next is taken or given back.
    """

    __slots__ = ("_asked", "_lock", "_state")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: each holder's token (weakly) -> the interval it asks for, and its owner
        self._asked: dict[weakref.ref[Token], tuple[float, types.FrameType | None]] = {}
        #: while held: (the interval found when the first holder came, the one set since)
        self._state: tuple[float, float | None] | None = None

    def enter(self, interval: float, owner: types.FrameType | None = None) -> Token:
        """Ask for ``interval`` until ``leave(token)``, or until the token returned is dropped.

        With ``owner`` (a running frame), also until that frame's call ends.
        """
        token = Token()
        ref = weakref.ref(token, self._gone)
        hash(ref)  # while the token lives: the callback needs it
        with self._lock:
            asked = [*self._living(ref), interval]
            self._commit(map(self._asked.__setitem__, (ref,), ((interval, owner),)), asked)
        return token

    def leave(self, token: Token) -> None:
        """Give back the hold of ``token`` (again: nothing)."""
        self._end(weakref.ref(token))

    def rearm(self) -> None:
        """In a forked child: no release of the parent prepares there."""
        self._lock = threading.RLock()
        self._asked.clear()
        self._commit(iter(()), [])

    def _gone(self, ref: weakref.ref[Token]) -> None:
        with contextlib.suppress(TypeError):  # never hashed: an interrupt came first, none taken
            self._end(ref)

    def _end(self, ref: weakref.ref[Token]) -> None:
        with self._lock:
            if ref in self._asked:
                popped: list[object] = []  # dropped after the pass (an ended call's frame)
                change = map(popped.append, map(self._asked.pop, (ref,), (None,)))
                self._commit(change, self._living(ref))

    def _living(self, leaving: weakref.ref[Token]) -> list[float]:
        """The intervals the living holders but ``leaving`` ask for (orphans dropped)."""
        others = [
            (ref, hold)
            for ref, hold in list(self._asked.items())
            if ref is not leaving and ref != leaving
        ]
        gone = ended([(ref, owner) for ref, (_, owner) in others])
        for ref in gone:
            self._asked.pop(ref, None)  # its holder's call ended, cut short
        gone_ids = set(map(id, gone))
        return [interval for ref, (interval, _) in others if id(ref) not in gone_ids]

    def _commit(self, change: Iterator[object], asked: list[float]) -> None:
        """Make ``change`` and what the ``asked`` intervals call for, in one C-level pass."""
        current = sys.getswitchinterval()
        state = self._state if self._state is not None or not asked else (current, None)
        interval: tuple[float, ...] = ()
        if state is not None:
            found, set_ = state
            if set_ is not None and abs(current - set_) >= 1e-6:
                # Someone set another interval meanwhile (it round-trips
                # through microseconds): theirs stays.
                state = (current, None) if asked else None
            else:
                wanted = min([*asked, found])
                if abs(current - wanted) >= 1e-6:
                    interval = (wanted,)
                state = (found, wanted) if asked else None
        _drain(
            chain(
                change,
                map(sys.setswitchinterval, interval),
                map(setattr, (self,), ("_state",), (state,)),
            )
        )


_COURTESY = _Courtesy()

if sys.platform != "win32":
    os.register_at_fork(after_in_child=_COURTESY.rearm)


@contextlib.contextmanager
def courteous() -> Iterator[None]:
    """Within the block, threads serving requests wait little for the GIL."""
    token = _COURTESY.enter(INTERVAL, outermost_call(sys._getframe(1)))
    try:
        yield
    finally:
        _COURTESY.leave(token)


def take_turn() -> None:
    """Start a new turn of the GIL in this thread, for a short step that should run whole.

    CPython asks the thread holding the GIL to let go once another thread
    has waited a switch interval since the GIL last changed hands, however
    long the holder has held it: a step that starts late in its thread's
    turn is cut off, and then waits while other threads take turns. Letting
    go at a short interval (``TURN``) and taking the GIL back from another
    thread starts a turn: the threads waiting by then ask for the GIL again
    an interval later at the soonest (``TURN`` for the one this thread took
    it from, the restored interval for the others). Costs a few ``TURN``
    while other threads compete for the GIL, the sleep's timer slack (tens
    of microseconds: long enough for a waiting thread to wake and take the
    GIL) when none does, nothing in a process of one thread.
    """
    if threading.active_count() == 1:
        return
    token = _COURTESY.enter(TURN, outermost_call(sys._getframe(1)))
    try:
        time.sleep(0)
    finally:
        _COURTESY.leave(token)
