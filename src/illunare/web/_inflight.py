"""One built application and the requests it has in flight.

Every version of the app's module that served keeps its ``Served`` record
in its namespace (under a key of each HotASGI/HotWSGI's own, ``served_key()``,
so that two of them may serve one module): the server's request is given to
the record the module's *current* namespace holds, so the reloader's flip
switches the application atomically with the code, and a rollback brings
the previous record (its app, still started) back at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from illunare.web._lifespan import ASGIApp, Lifespan, Message

__all__ = ["Served", "served_key"]

_keys = itertools.count(1)


# What Starlette (FastAPI) puts in a request's scope of the app serving it.
_APP_KEYS = ("app", "router", "route", "endpoint")


def served_key() -> str:
    """A new namespace key under which versions of an app's module keep their Served record."""
    return f"__illunare_served_{next(_keys)}__"


@attrs.define(eq=False)
class Served:
    """An application built from one version of the app's module.

    Under ASGI, ``requests`` and ``retired`` are read and written on the
    server's event loop only (a request's lookup and record happen in one
    step of the loop, so a retirement decided in another step never misses
    a request).
    """

    app: Any
    #: 1, 2, 3 ... in the order the apps were built; 0 until ready
    number: int = 0
    #: the app's running lifespan, None when not started
    lifespan: Lifespan | None = None
    #: neither current nor previous: shut down after the last request
    retired: bool = False
    #: the lifespan shutdown under way, if any
    stopping: asyncio.Task[None] | None = None
    #: called on the loop when a retired app's last request ends
    on_drained: Callable[[Served], None] | None = None
    #: the ASGI scopes (or WSGI environs) of the requests in flight, by id:
    #: they hold this app's endpoints on purpose (``HotApp.kept``)
    requests: dict[int, object] = attrs.Factory(dict)
    #: the ids of the module namespaces the app was built from (``HotApp.kept``)
    sources: frozenset[int] = frozenset()

    @property
    def inflight(self) -> int:
        """How many requests this app serves now."""
        return len(self.requests)

    async def handle(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Serve one request (or websocket) with this app, recorded while it runs."""
        requests = self.requests
        key = id(scope)
        requests[key] = scope
        try:
            lifespan = self.lifespan
            if lifespan is not None and lifespan.state is not None:
                # The app's own lifespan state, as a server gives its state.
                scope["state"] = lifespan.state.copy()
            app: ASGIApp = self.app
            await app(scope, receive, send)
        finally:
            # A connection may keep its last scope: what the framework put
            # there of this app's code must not keep an old version alive.
            # (Before the request leaves the record: until then it is kept.)
            for name in _APP_KEYS:
                scope.pop(name, None)
            del requests[key]
            if self.retired and not requests and self.on_drained is not None:
                self.on_drained(self)
