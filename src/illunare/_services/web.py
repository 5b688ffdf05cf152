"""The web adapters of a Router: ASGI and WSGI apps whose routes lead to services' own apps.

A service's handler is itself an ASGI (FastAPI, Starlette) or WSGI (Flask)
application, mounted at its route as Starlette's ``Mount`` (resp. werkzeug's
``DispatcherMiddleware``) would mount it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from illunare.exceptions import NoRouteError
from illunare.web._lifespan import Message

if TYPE_CHECKING:
    from illunare._services.router import Router

__all__ = ["ASGIAdapter", "WSGIAdapter"]

#: seconds a client refused by a draining service is told to wait (``Retry-After``)
RETRY_AFTER = 1
#: the key of a WSGI environ holding the path parameters
PATH_PARAMS = "illunare.path_params"
# Websocket close codes: a normal closure (no route, as Starlette closes),
# and "try again later" (RFC 6455 registry) while the service drains.
_WS_NOT_FOUND = 1000
_WS_TRY_AGAIN_LATER = 1013

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
StartResponse = Callable[..., Any]


def route_path(path: str, root_path: str) -> str:
    """The path routes match: ``path`` without its ``root_path`` (as Starlette reads it)."""
    if root_path and path.startswith(root_path):
        if path == root_path:
            return ""
        if path[len(root_path)] == "/":
            return path[len(root_path) :]
    return path


class ASGIAdapter:
    """The ASGI application of a Router (``Router.as_asgi()``)."""

    __slots__ = ("_router",)

    def __init__(self, router: Router) -> None:
        self._router = router

    def __repr__(self) -> str:
        return f"<ASGI app of {self._router!r}>"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one request (or websocket) with its service's app; answer lifespan events."""
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        root_path = scope.get("root_path", "")
        path = route_path(scope["path"], root_path) or "/"
        try:
            app, params, flow, matched = self._router._match(path)
        except NoRouteError:
            await _refuse(kind, send, 404)
            return
        if flow.draining:  # refused before any work (the check that counts is below)
            await _refuse(kind, send, 503)
            return
        child = dict(scope)
        child["path_params"] = {**scope.get("path_params", {}), **(params or {})}
        # The sub-app is the root of its own routes (unlike under a Mount,
        # no outer router knows them): its URLs, url_for's, start at its prefix.
        child["root_path"] = child["app_root_path"] = root_path + matched
        child.pop("router", None)
        # In flight while the token is on the coroutine's stack, taken before
        # the drain is checked: see Flow.
        if next(flow.token, flow.draining or _served(await app(child, receive, send))):
            await _refuse(kind, send, 503)


def _served(_: object) -> bool:
    """False: whatever the sub-app returned, it served the request."""
    return False


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer the server's lifespan: services start and stop with load and unload."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _refuse(kind: str, send: Send, status: int) -> None:
    """Answer 404 (no route) or 503 (draining); close a websocket with a matching code."""
    if kind == "websocket":
        code = _WS_NOT_FOUND if status == 404 else _WS_TRY_AGAIN_LATER
        await send({"type": "websocket.close", "code": code, "reason": ""})
        return
    body, headers = _answer(status)
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


def _answer(status: int) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers of a 404 or 503 answer."""
    body = b"Not Found" if status == 404 else b"Service Unavailable"
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if status == 503:
        headers.append(("Retry-After", str(RETRY_AFTER)))
    return body, headers


class WSGIAdapter:
    """The WSGI application of a Router (``Router.as_wsgi()``)."""

    __slots__ = ("_router",)

    def __init__(self, router: Router) -> None:
        self._router = router

    def __repr__(self) -> str:
        return f"<WSGI app of {self._router!r}>"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request with its service's app; the response counts in flight until closed."""
        raw = environ.get("PATH_INFO", "") or "/"
        path, decoded = _decoded(raw)
        try:
            app, params, flow, matched = self._router._match(path)
        except NoRouteError:
            return _refused(start_response, "404 Not Found")
        if flow.draining:  # refused before any work (the check that counts is below)
            return _refused(start_response, "503 Service Unavailable")
        # The prefix as the server wrote it, to cut where the server's text has it.
        prefix = matched.encode().decode("latin-1") if decoded else matched
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = raw[len(prefix) :]
        environ[PATH_PARAMS] = {**environ.get(PATH_PARAMS, {}), **(params or {})}
        # In flight while the token is on the stack, then in the response,
        # taken before the drain is checked: see Flow.
        return _response(flow.token, flow.draining or app(environ, start_response), start_response)


def _response(
    held: object, body: Iterable[bytes] | bool, start_response: StartResponse
) -> Iterable[bytes]:
    """The response holding the token, or 503 when the service drains (``body`` is True)."""
    if isinstance(body, bool):
        return _refused(start_response, "503 Service Unavailable")
    return _Response(body, held)


def _decoded(raw: str) -> tuple[str, bool]:
    """The text routes match of a WSGI ``PATH_INFO``, and whether it was decoded from ``raw``.

    PEP 3333 has the server give the path's bytes as latin-1 text; the text
    is what those bytes spell in UTF-8. Some servers (httpx's WSGITransport)
    give the text decoded already: a path that is not latin-1 text, or
    whose bytes are not UTF-8, is taken as it is (the text of bytes that are
    not UTF-8 is then their latin-1 reading).
    """
    if raw.isascii():
        return raw, False  # one text in both forms
    try:
        return raw.encode("latin-1").decode("utf-8"), True
    except UnicodeError:
        return raw, False


def _refused(start_response: StartResponse, status: str) -> list[bytes]:
    body, headers = _answer(int(status[:3]))
    start_response(status, headers)
    return [body]


class _Response:
    """A sub-app's response iterable, in flight (holding its flow's token) until closed.

    A response the server drops without closing it leaves the flight when it
    is collected.
    """

    __slots__ = ("_body", "_held")

    def __init__(self, body: Iterable[bytes], held: object) -> None:
        self._body = body
        self._held: object = held

    def __iter__(self) -> Iterator[bytes]:
        # A generator holding the response: a server iterating it keeps it in
        # flight, even one that drops the response once it has its iterator.
        yield from self._body

    def close(self) -> None:
        """Close the sub-app's response (as PEP 3333 asks), then leave the flight."""
        held, self._held = self._held, None
        if held is None:
            return
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            del held
