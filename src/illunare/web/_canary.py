"""A canary of a hot web app: its requests split between the old app and the new one.

A release with ``rollout=`` that rebuilds a HotASGI/HotWSGI app does not
switch the app: the split switch gives the hot app a ``Canary`` (its
``_canary``), and from then on each request is assigned once, by the
rollout's ``RequestSplit`` (the request's sticky key, else a weighted draw),
and served whole by that side's app with that side pinned, so that every
call the request makes into the release's modules runs the same version.
Each request's latency and whether it failed (the app raised, or answered
with a status of 500 or more) go back to the split, which the rollout
judges. The switch that ends the rollout takes the canary away: a revert
serves every new request from the old app again, a promotion from the new
one (the release's ordinary flip); requests in flight finish on the app
that took them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from illunare.web._inflight import Served
from illunare.web._lifespan import Message

if TYPE_CHECKING:
    from illunare._rollout.split import RequestSplit

__all__ = ["Canary"]

# The ASGI messages that carry a response's status (a websocket's denial response too).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _failed(status: int) -> bool:
    return status >= 500  # server errors; a 4xx is the client's


@attrs.frozen
class Canary:
    """The two apps of a rollout, and the split that assigns each request to one of them."""

    requests: RequestSplit
    #: (the old app, the new one): the sides of the split
    served: tuple[Served, Served]

    async def handle(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Serve one ASGI request (or websocket) with the app of its side, and account for it."""
        requests = self.requests
        side = requests.choose(scope)
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] in _STARTS:
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            # Chosen and recorded by the app in one step of the loop: a
            # revert's retirement of the new app, decided in another step,
            # waits for this request.
            with requests.pinned(side):
                await self.served[side].handle(scope, receive, watched)
        except Exception:
            requests.finished(side, time.perf_counter() - start, True)
            raise
        requests.finished(side, time.perf_counter() - start, _failed(status))

    def call(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request with the app of its side; counted when its response is closed."""
        requests = self.requests
        side = requests.choose(environ)
        exchange = _Exchange(requests, side, start_response)
        served = self.served[side]
        app: WSGIApp = served.app
        served.requests[id(environ)] = environ
        try:
            with requests.pinned(side):
                body = app(environ, exchange.start_response)
        except Exception:
            exchange.finish(failed=True)
            raise
        finally:
            del served.requests[id(environ)]
        if isinstance(body, (list, tuple)):  # all there: nothing more runs the app's code
            exchange.finish(failed=False)
            return body
        exchange.body = body
        return exchange


class _Exchange:
    """One WSGI request of a canary: its status, and its response iterable, pinned to its side.

    The response's iteration and ``close()`` run the app's code (a
    generator, Flask's teardown), so each runs with the side pinned; the
    request is timed until ``close()``, which every WSGI server calls.
    """

    __slots__ = (
        "_finished",
        "_iterator",
        "_side",
        "_start",
        "_start_response",
        "body",
        "requests",
        "status",
    )

    def __init__(
        self, requests: RequestSplit, side: int, start_response: Callable[..., Any]
    ) -> None:
        self.requests = requests
        self._side = side
        self._start_response = start_response
        self.status = 0
        self.body: Iterable[bytes] = ()
        self._iterator: Iterator[bytes] | None = None
        self._finished = False
        self._start = time.perf_counter()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        """The server's ``start_response``, noting the status the app answers with."""
        code = status[:3]
        self.status = int(code) if code.isdigit() else 0
        write: Callable[[bytes], object] = self._start_response(status, headers, exc_info)
        return write

    def finish(self, *, failed: bool) -> None:
        """Tell the split how the request went (once)."""
        if not self._finished:
            self._finished = True
            seconds = time.perf_counter() - self._start
            self.requests.finished(self._side, seconds, failed or _failed(self.status))

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with self.requests.pinned(self._side):
            try:
                if self._iterator is None:
                    self._iterator = iter(self.body)
                return next(self._iterator)
            except StopIteration:
                raise
            except Exception:
                self.finish(failed=True)
                raise

    def close(self) -> None:
        """Close the app's response (pinned), and account for the request."""
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                with self.requests.pinned(self._side):
                    close()
        except Exception:
            self.finish(failed=True)
            raise
        self.finish(failed=False)
