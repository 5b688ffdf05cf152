"""Canary web apps: a release with ``rollout=`` splits a hot app's requests between two apps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from illunare import InvalidArgumentError
from illunare.web import client_key, cookie_key, header_key

from .webservers import uvicorn_server, wsgi_server

Key = Callable[..., object]

#: the key functions the capture apps apply to each request they get
KEYS: dict[str, Key] = {
    "user": header_key("X-User"),
    "type": header_key("content-type"),
    "session": cookie_key("session"),
    "client": client_key(),
}


async def asgi_keys(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with what each key function makes of its scope."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = json.dumps({name: key(scope) for name, key in KEYS.items()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_keys(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterable[bytes]:
    """A WSGI app answering with what each key function makes of its environ."""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({name: key(environ) for name, key in KEYS.items()}).encode()]


@pytest.fixture(params=["uvicorn", "werkzeug"])
def keys_url(request: pytest.FixtureRequest) -> Iterable[str]:
    """The URL of a real server running the capture app of its kind."""
    server = uvicorn_server(asgi_keys) if request.param == "uvicorn" else wsgi_server(wsgi_keys)
    with server as url:
        yield url


class TestKeyHelpers:
    """header_key, cookie_key and client_key read real servers' requests, and nothing else."""

    def test_keys_of_a_real_request(self, keys_url: str) -> None:
        """Each helper reads its header, cookie or client address from the server's request."""
        response = httpx.post(
            keys_url,
            headers={"x-user": "u17", "Cookie": 'theme=dark; session="s-42"'},
            content=b"{}",
            params={"ignored": "1"},
        )
        assert response.json() == {
            "user": "u17",
            "type": None,
            "session": "s-42",
            "client": "127.0.0.1",
        }

    def test_content_type_header(self, keys_url: str) -> None:
        """A header WSGI gives without the HTTP_ prefix is read all the same."""
        response = httpx.post(keys_url, headers={"Content-Type": "text/plain"}, content=b"x")
        assert response.json()["type"] == "text/plain"

    def test_request_without_them(self, keys_url: str) -> None:
        """A request without the header or cookie gives None: a weighted draw."""
        response = httpx.get(keys_url, headers={"Cookie": "other=1", "X-User": ""})
        assert {name: response.json()[name] for name in ("user", "session")} == {
            "user": None,
            "session": None,
        }

    @given(
        st.lists(
            st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.text()))
        )
    )
    def test_other_calls_give_none(self, arguments: list[object]) -> None:
        """Calls with anything but one ASGI scope or WSGI environ give None."""
        assert [key(*arguments) for key in KEYS.values()] == [None] * len(KEYS)

    def test_keyword_call_gives_none(self) -> None:
        """A request given by keyword is not a routed request: None."""
        scope = {"type": "http", "headers": [(b"x-user", b"u1")]}
        assert (header_key("x-user")(scope), header_key("x-user")(scope=scope)) == ("u1", None)

    @pytest.mark.parametrize("name", ["", "x user", "x:y", "caf\u00e9", 7, None, b"x-user"])
    @pytest.mark.parametrize("helper", [header_key, cookie_key])
    def test_bad_names(self, helper: Callable[[Any], Key], name: object) -> None:
        """A name that no header or cookie can have is an InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="name"):
            helper(name)
