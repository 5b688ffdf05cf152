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
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["INTERVAL", "courteous"]

#: The switch interval while a release prepares (s).
INTERVAL = 0.0002


class _Courtesy:
    """Counted: releases in several threads restore the interval when the last ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        #: the interval to restore, if this lowered it
        self._restore: float | None = None

    def enter(self) -> None:
        with self._lock:
            if not self._count:
                before = sys.getswitchinterval()
                self._restore = before if before > INTERVAL else None
                if self._restore is not None:
                    sys.setswitchinterval(INTERVAL)
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count or self._restore is None:
                return
            # Left alone if someone set another interval meanwhile (it
            # round-trips through microseconds).
            if abs(sys.getswitchinterval() - INTERVAL) < 1e-6:
                sys.setswitchinterval(self._restore)
            self._restore = None

    def rearm(self) -> None:
        """In a forked child: no release of the parent prepares there."""
        self._lock = threading.Lock()
        if self._count:
            self._count = 1
            self.leave()


_COURTESY = _Courtesy()

if sys.platform != "win32":
    os.register_at_fork(after_in_child=_COURTESY.rearm)


@contextlib.contextmanager
def courteous() -> Iterator[None]:
    """Within the block, threads serving requests wait little for the GIL."""
    _COURTESY.enter()
    try:
        yield
    finally:
        _COURTESY.leave()
