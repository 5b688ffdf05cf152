"""``Flow``: the requests one service has in flight, and whether it drains."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from illunare.exceptions import ServiceUnavailableError, UnsupportedInterpreterError

__all__ = ["Flow"]

#: how often an unload looks at the count while requests are in flight (s): at
#: first, then twice as long each time up to the last
POLL = (0.00005, 0.001)


class Flow:
    """The requests one service has in flight, and whether it drains.

    A request is in flight while it holds the flow's ``token``: a WSGI
    response until the server closes it or lets go of it, or the call
    serving the request. The count is the token's reference count beyond
    the flow's own, so holding costs no call, where a counter costs two.
    ``adispatch`` and the adapters hold it on their evaluation stack (a
    coroutine's, across its awaits): the token is an exhausted iterator, so
    that ``next(token, check or call)`` holds it (an argument) while
    ``check`` and then ``call`` are evaluated, and returns what the call
    returned. ``dispatch`` holds it in a variable, dropped in a ``finally``,
    which is cheaper (its cost is a benchmark figure); but on Python 3.10
    to 3.12 a snapshot of its frame's variables (``frame.f_locals``, which
    debuggers and error reporters take) taken during the call keeps the
    token for as long as the frame lives after it (kept by a traceback):
    an unload waits for it until its drain timeout. No other code may keep
    a reference to the token.

    A request takes the token *before* it checks ``draining``, and an
    unload sets ``draining`` before it waits for the count to reach zero:
    so a request preempted anywhere between its lookup and its check is
    either seen by the unload's wait, or sees ``draining`` and leaves. It
    never runs on a stopped service.
    """

    __slots__ = ("draining", "name", "token")

    def __init__(self, name: str) -> None:
        problem = _problem()
        if problem is not None:
            raise UnsupportedInterpreterError(problem)
        self.name = name
        #: held by each request in flight, and by nothing else; always exhausted
        self.token: Iterator[Any] = iter(())
        self.draining = False

    def refuse(self) -> NoReturn:
        """Raise the error of a request refused while the service drains."""
        raise ServiceUnavailableError(
            f"service {self.name!r} is being unloaded: it takes no new requests",
            service=self.name,
        )

    def inflight(self) -> int:
        """How many requests are in flight."""
        # Beyond the flow's own reference, getrefcount's argument is one.
        return sys.getrefcount(self.token) - 2

    def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for no request in flight; whether none is.

        Looks again and again (``POLL``): the requests' own path stays free
        of any call to wake the unload.
        """
        deadline = time.monotonic() + timeout
        poll, longest = POLL
        while self.inflight():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, poll))
            poll = min(2 * poll, longest)
        return True


def _problem() -> str | None:
    """Why requests in flight cannot be counted here, or ``None``."""
    if not hasattr(sys, "getrefcount"):
        return (
            "services count their requests in flight with reference counts, which this "
            f"interpreter ({sys.implementation.name}) does not have: they need CPython"
        )
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is not None and not gil_enabled():
        return (
            "services count their requests in flight with reference counts, read under the "
            "GIL: they need a CPython build with the GIL, not a free-threaded one"
        )
    return None
