"""``Flow``: the requests one service has in flight, and whether it drains."""

from __future__ import annotations

import sys
import time

from illunare.exceptions import ServiceUnavailableError, UnsupportedInterpreterError

__all__ = ["Flow"]

#: how often an unload looks at the count while requests are in flight (s)
POLL = 0.001


class Flow:
    """The requests one service has in flight, and whether it drains.

    A request is in flight while it holds the flow's ``token``: a local
    variable of the call serving it (a coroutine's while it awaits), or a
    WSGI response's until the server closes it. The count is the token's
    reference count beyond the flow's own, so holding costs one local
    variable, where a counter costs two calls; no other code may keep a
    reference to the token. A holder drops it in a ``finally`` (a frame
    kept by a traceback keeps its variables), and one dropped without
    ``close()`` drops it when collected.

    A request takes the token *before* it checks ``draining``, and an
    unload sets ``draining`` before it waits for the count to reach zero:
    so a request preempted anywhere between its lookup and its check is
    either seen by the unload's wait, or sees ``draining`` and leaves. It
    never runs on a stopped service.
    """

    __slots__ = ("draining", "name", "token")

    def __init__(self, name: str) -> None:
        if not hasattr(sys, "getrefcount"):
            raise UnsupportedInterpreterError(
                "services count their requests in flight with reference counts, which this "
                f"interpreter ({sys.implementation.name}) does not have: they need CPython"
            )
        self.name = name
        #: held by each request in flight, and by nothing else
        self.token = object()
        self.draining = False

    def enter(self) -> object:
        """The token, for the caller to hold while its request is in flight.

        Raises:
            ServiceUnavailableError: the service drains (the token is not held).

        """
        held = self.token
        if self.draining:
            del held
            raise self.unavailable()
        return held

    def inflight(self) -> int:
        """How many requests are in flight."""
        # Beyond the flow's own reference, getrefcount's argument is one.
        return sys.getrefcount(self.token) - 2

    def unavailable(self) -> ServiceUnavailableError:
        """The error of a request refused while the service drains."""
        return ServiceUnavailableError(
            f"service {self.name!r} is being unloaded: it takes no new requests",
            service=self.name,
        )

    def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for no request in flight; whether none is.

        Looks every ``POLL`` seconds: the requests' own path stays free of
        any call to wake the unload.
        """
        deadline = time.monotonic() + timeout
        while self.inflight():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, POLL))
        return True
