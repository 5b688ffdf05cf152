"""Sticky keys for canary releases of web apps: who a request is, read from the request.

A rollout's ``sticky`` function is given the arguments of each call it
routes; for a canary web app (a ``HotASGI``/``HotWSGI`` rebuilt by a
release with ``rollout=``) that is the request alone: the ASGI scope, or the
WSGI environ. The key functions made here read a header, a cookie or the
client's address from either, and give ``None`` (a weighted draw) for a
request without it, and for any other call, so that the functions of the
same release are routed call by call while the requests stay sticky.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from illunare.exceptions import InvalidArgumentError

__all__ = ["client_key", "cookie_key", "header_key"]

# RFC 9110's token: the characters a header name may have.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# WSGI gives these two headers without the HTTP_ prefix (PEP 3333, after CGI).
_UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _request(args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, object] | None:
    """The ASGI scope or WSGI environ a key function was called with, else None."""
    request = args[0] if len(args) == 1 and not kwargs else None
    return request if isinstance(request, dict) else None


def _is_asgi(request: dict[str, object]) -> bool:
    return request.get("type") in ("http", "websocket")


def _is_wsgi(request: dict[str, object]) -> bool:
    return "REQUEST_METHOD" in request


def _asgi_headers(request: dict[str, object], name: bytes) -> list[str]:
    headers = request.get("headers")
    if not isinstance(headers, (list, tuple)):
        return []
    # Header names are lower case in ASGI; values are bytes, read as HTTP/1.1 does.
    return [
        value.decode("latin-1")
        for key, value in headers
        if isinstance(key, bytes) and key.lower() == name and isinstance(value, bytes)
    ]


def _text(value: object) -> str | None:
    """A key from a request's field: a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidArgumentError(f"{what} must be a header or cookie name, got {name!r}")
    return name


@attrs.frozen
class _HeaderKey:
    """The value of one request header (the first, when it is repeated)."""

    name: str
    _asgi: bytes = attrs.field(init=False, repr=False)
    _wsgi: str = attrs.field(init=False, repr=False)

    @_asgi.default
    def _asgi_name(self) -> bytes:
        return self.name.lower().encode("ascii")

    @_wsgi.default
    def _wsgi_name(self) -> str:
        key = self.name.upper().replace("-", "_")
        return key if key in _UNPREFIXED else f"HTTP_{key}"

    def __call__(self, *args: object, **kwargs: object) -> str | None:
        request = _request(args, kwargs)
        if request is None:
            return None
        if _is_asgi(request):
            values = _asgi_headers(request, self._asgi)
            return _text(values[0]) if values else None
        return _text(request.get(self._wsgi)) if _is_wsgi(request) else None


@attrs.frozen
class _CookieKey:
    """The value of one cookie the request sends."""

    name: str

    def __call__(self, *args: object, **kwargs: object) -> str | None:
        request = _request(args, kwargs)
        if request is None:
            return None
        if _is_asgi(request):
            # HTTP/2 may send the cookies in several headers.
            headers = _asgi_headers(request, b"cookie")
        elif _is_wsgi(request):
            header = request.get("HTTP_COOKIE")
            headers = [header] if isinstance(header, str) else []
        else:
            return None
        for header in headers:
            for pair in header.split(";"):
                name, equals, value = pair.strip().partition("=")
                if equals and name.strip() == self.name:
                    return _text(value.strip().strip('"'))
        return None


@attrs.frozen
class _ClientKey:
    """The client's address: the host of the ASGI ``client``, or WSGI's ``REMOTE_ADDR``."""

    def __call__(self, *args: object, **kwargs: object) -> str | None:
        request = _request(args, kwargs)
        if request is None:
            return None
        if _is_asgi(request):
            client = request.get("client")
            return _text(client[0]) if isinstance(client, (list, tuple)) and client else None
        return _text(request.get("REMOTE_ADDR")) if _is_wsgi(request) else None


def header_key(name: str) -> Callable[..., str | None]:
    """A sticky key function for canary web apps: the value of the request header ``name``.

    ``Rollout(sticky=header_key("x-user-id"))`` keeps each user on one app
    within a step (and on the new one once there). The header name is
    matched without regard to case. A request without the header (or with an
    empty one), and any call that is not a request (an ASGI scope or WSGI
    environ), gives ``None``: a weighted draw.

    Raises:
        InvalidArgumentError: ``name`` is not a header name.

    """
    return _HeaderKey(_name(name, "header_key's name"))


def cookie_key(name: str) -> Callable[..., str | None]:
    """A sticky key function for canary web apps: the value of the cookie ``name`` (a session id).

    Cookie names are matched exactly (they are case-sensitive). A request
    without the cookie, and any call that is not a request, gives ``None``.

    Raises:
        InvalidArgumentError: ``name`` is not a cookie name.

    """
    return _CookieKey(_name(name, "cookie_key's name"))


def client_key() -> Callable[..., str | None]:
    """A sticky key function for canary web apps: the client's IP address.

    The address the server saw: behind a proxy, that is the proxy's unless
    the server is told to trust its forwarded headers (uvicorn's
    ``--forwarded-allow-ips``, werkzeug's ``ProxyFix``). A request without
    one (a Unix socket), and any call that is not a request, gives ``None``.
    """
    return _ClientKey()
