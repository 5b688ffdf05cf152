"""``Router``: request paths to the handlers of the loaded services, counted in flight."""

from __future__ import annotations

import inspect
from typing import Any

from illunare._services.routes import Match, RouteTable
from illunare._services.web import ASGIAdapter, WSGIAdapter
from illunare.exceptions import InvalidArgumentError

__all__ = ["Router"]


class Router:
    """Routes request paths to the handlers of a ServiceRegistry's loaded services.

    A route matches its path exactly, or as a prefix at a segment boundary
    (``/api`` serves ``/api/other``, never ``/apiX``); the longest match
    wins; a static segment wins over a ``{param}`` one. The registry
    replaces the router's table in one step when a service's routes come
    or go, so routing takes no lock. Each call to a handler is counted in
    flight for its service until it returns, which an unload waits for.

    A router serves one registry: ``ServiceRegistry()`` makes one, or is
    given one (``ServiceRegistry(router=Router())``).
    """

    __slots__ = ("__weakref__", "_cache", "_owner", "_table")

    _table: RouteTable
    #: the table's cache, read by dispatch without going through the table
    _cache: dict[str, Match]

    def __init__(self) -> None:
        self._publish(RouteTable())
        self._owner: object = None

    def __repr__(self) -> str:
        return f"<Router routes={list(self._table.paths)}>"

    def dispatch(self, path: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the handler of ``path`` with ``*args, **kwargs`` and the path parameters.

        ``/users/{id}`` matching ``/users/42`` adds ``id="42"`` to the keywords.
        The call is counted in flight for the handler's service until it returns.

        Raises:
            NoRouteError: no route matches ``path``.
            ServiceUnavailableError: the service is being unloaded.
            InvalidArgumentError: ``path`` is not a str.

        """
        # RouteTable.match() inlined: a method call would add a third to what
        # dispatch adds to the handler's call.
        try:
            handler, params, flow, _ = self._cache[path]
        except (KeyError, TypeError):  # not seen yet, or not a str (match() says so)
            handler, params, flow, _ = self._table.match(path)
        # In flight while the variable holds the token, taken before the drain
        # is checked: see Flow. (On the stack, as adispatch holds it, costs a
        # call: 25 ns more on 3.12 and 3.13.) No keywords, no dict copied.
        held = flow.token
        try:
            if flow.draining:
                flow.refuse()
            if params is not None:
                return handler(*args, **kwargs, **params)
            if kwargs:
                return handler(*args, **kwargs)
            return handler(*args)
        finally:
            del held

    async def adispatch(self, path: str, /, *args: Any, **kwargs: Any) -> Any:
        """``dispatch`` for a coroutine handler: awaited, and counted in flight until it finishes.

        The handler returns an awaitable: an ``async def``, an object whose
        ``__call__`` is one (an ASGI app), or a decorated coroutine function.

        Raises:
            NoRouteError: no route matches ``path``.
            ServiceUnavailableError: the service is being unloaded.
            InvalidArgumentError: ``path`` is not a str, or its handler
                returned something that cannot be awaited (it ran: a plain
                handler is ``dispatch()``'s).

        """
        handler, params, flow, _ = self._table.match(path)
        # On the coroutine's stack while it awaits: see Flow.
        return next(
            flow.token,
            (flow.draining and flow.refuse())
            or await _awaitable(path, handler, handler(*args, **kwargs, **(params or {}))),
        )

    def as_asgi(self) -> ASGIAdapter:
        """An ASGI application routing each request to a service's ASGI app (FastAPI, Starlette).

        The sub-app sees the request as under Starlette's ``Mount``: the
        matched prefix of the path is added to ``scope["root_path"]`` (the
        path itself keeps it, as ASGI says), and the path parameters are in
        ``scope["path_params"]``. Unlike under a Mount, the sub-app is the
        root of its own routes: its ``url_for`` gives URLs under its prefix
        (with the path parameters' values). No route: 404. A service being
        unloaded: 503 with ``Retry-After``. The request counts in flight
        until the sub-app returns (its response sent). Lifespan events are
        answered by the adapter: services start and stop with ``load`` and
        ``unload``.
        """
        return ASGIAdapter(self)

    def as_wsgi(self) -> WSGIAdapter:
        """A WSGI application routing each request to a service's WSGI app (Flask, Django).

        The matched prefix of ``PATH_INFO`` moves to ``SCRIPT_NAME``, and the
        path parameters are in ``environ["illunare.path_params"]``. Both keep
        the server's form of the path: the latin-1 text of its UTF-8 bytes
        (PEP 3333), or the text itself from a server that decoded it
        (httpx's ``WSGITransport``); routes and parameters read the text.
        No route: 404. A service being unloaded: 503 with ``Retry-After``.
        The request counts in flight until the server closes its response.
        """
        return WSGIAdapter(self)

    def _match(self, path: str) -> Match:
        """The match of ``path``; NoRouteError when none."""
        return self._table.match(path)

    def _adopt(self, owner: object) -> None:
        """Become ``owner``'s router; InvalidArgumentError if another registry has it."""
        if self._owner is not None:
            raise InvalidArgumentError("this Router already serves another ServiceRegistry")
        self._owner = owner

    def _publish(self, table: RouteTable) -> None:
        """Route with ``table`` from now on.

        ``dispatch`` reads the table's cache, on a miss the table: a request
        between the two assignments finds a match of either table, whole.
        """
        self._table = table
        self._cache = table.cache


def _awaitable(path: str, handler: Any, result: Any) -> Any:
    """What ``handler`` returned, if it can be awaited; else InvalidArgumentError."""
    if not inspect.isawaitable(result):
        raise InvalidArgumentError(
            f"adispatch() awaits what the handler of {path!r} returns, and it returned "
            f"{type(result).__name__} (call plain handlers with dispatch()): {handler!r}"
        )
    return result
