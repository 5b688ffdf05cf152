"""``Flow``: the requests one service has in flight, and whether it drains."""

from __future__ import annotations

import threading
import time

from illunare.exceptions import ServiceUnavailableError

__all__ = ["Flow"]


class Flow:
    """The requests one service has in flight, and whether it drains.

    A request counts itself in flight *before* it checks ``draining``, and an
    unload sets ``draining`` before it waits for the count to reach zero: so
    a request preempted anywhere between its lookup and its check is either
    seen by the unload's wait, or sees ``draining`` and leaves. It never runs
    on a stopped service. The count is a list: ``append`` and ``pop`` are
    single C-level operations, atomic under the GIL (a ``+= 1`` is not), and
    cost less than a lock.
    """

    __slots__ = ("_drained", "draining", "inflight", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        #: one item per request in flight
        self.inflight: list[None] = []
        self.draining = False
        self._drained = threading.Event()

    def enter(self) -> None:
        """Count a request in; ServiceUnavailableError (and not counted) while draining."""
        self.inflight.append(None)
        if self.draining:
            self.leave()
            raise self.unavailable()

    def leave(self) -> None:
        """Count a request out (waking a drain when it was the last)."""
        self.inflight.pop()
        if self.draining:
            self.wake()

    def wake(self) -> None:
        """Wake the unload waiting for the drain, if no request is in flight (any more)."""
        if not self.inflight:
            self._drained.set()

    def unavailable(self) -> ServiceUnavailableError:
        """The error of a request refused while the service drains."""
        return ServiceUnavailableError(
            f"service {self.name!r} is being unloaded: it takes no new requests",
            service=self.name,
        )

    def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for no request in flight; whether none is."""
        deadline = time.monotonic() + timeout
        event = self._drained
        while True:
            event.clear()  # before the check: a request leaving after it sets it again
            if not self.inflight:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not event.wait(min(remaining, threading.TIMEOUT_MAX)):
                return not self.inflight
            # Woken by the last request out, or by one refused meanwhile: look again.
