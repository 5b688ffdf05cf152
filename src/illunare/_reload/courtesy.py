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
from collections.abc import Iterator

__all__ = ["INTERVAL", "TURN", "courteous", "take_turn"]

#: The switch interval while a release prepares (s).
INTERVAL = 0.0002
#: The switch interval while a releasing thread waits for a turn of its own (s).
TURN = 0.001


class _Courtesy:
    """Counted: releases in several threads restore the interval when the last ends.

    Each holder asks for an interval; the shortest asked for is in effect
    (never one longer than the interval found at the start).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: interval asked for -> how many holders ask for it
        self._asked: dict[float, int] = {}
        #: the interval found when the first holder came, and the one set since
        self._found = 0.0
        self._set: float | None = None

    def enter(self, interval: float) -> None:
        with self._lock:
            if not self._asked:
                self._found = sys.getswitchinterval()
                self._set = None
            self._asked[interval] = self._asked.get(interval, 0) + 1
            self._apply()

    def leave(self, interval: float) -> None:
        with self._lock:
            self._asked[interval] -= 1
            if not self._asked[interval]:
                del self._asked[interval]
            self._apply()

    def _apply(self) -> None:
        wanted = min([*self._asked, self._found])
        # Left alone if someone set another interval meanwhile (it
        # round-trips through microseconds): theirs stays.
        current = sys.getswitchinterval()
        if self._set is not None and abs(current - self._set) >= 1e-6:
            self._found = current
            self._set = None
            return
        if abs(current - wanted) >= 1e-6:
            sys.setswitchinterval(wanted)
        self._set = None if not self._asked else wanted

    def rearm(self) -> None:
        """In a forked child: no release of the parent prepares there."""
        self._lock = threading.Lock()
        if self._asked:
            self._asked.clear()
            self._apply()


_COURTESY = _Courtesy()

if sys.platform != "win32":
    os.register_at_fork(after_in_child=_COURTESY.rearm)


@contextlib.contextmanager
def courteous() -> Iterator[None]:
    """Within the block, threads serving requests wait little for the GIL."""
    _COURTESY.enter(INTERVAL)
    try:
        yield
    finally:
        _COURTESY.leave(INTERVAL)


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
    _COURTESY.enter(TURN)
    try:
        time.sleep(0)
    finally:
        _COURTESY.leave(TURN)
