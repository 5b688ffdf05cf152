"""Services on real servers: a FastAPI sub-app under uvicorn, a Flask sub-app under werkzeug.

Services are loaded and unloaded while real HTTP clients have requests in
flight: those complete; new ones get 503 with Retry-After while the service
drains, and 404 once it is gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from flask import Flask, url_for
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.routing import Mount

from illunare import DrainTimeoutError, ServiceRegistry, ServiceSpec, ServiceUnavailableError

from .conftest import eventually
from .webservers import Load, uvicorn_server, wsgi_server


class Gate:
    """Holds the slow requests until opened; counts those that entered."""

    def __init__(self) -> None:
        self.entered = 0
        self.event = threading.Event()

    def opened(self) -> bool:
        self.entered += 1
        return self.event.wait(30)


def fastapi_reports(gate: Gate) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        return {"done": await asyncio.to_thread(gate.opened)}

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"fast": True}

    @app.get("/where/{item}", name="where")
    async def where(item: str, request: Request) -> dict[str, Any]:
        return {
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "path_params": request.path_params,
            "url_for": str(request.url_for("where", item="x")),
        }

    return app


def flask_reports(gate: Gate) -> Flask:
    app = Flask("reports")

    @app.get("/slow")
    def slow() -> dict[str, bool]:
        return {"done": gate.opened()}

    @app.get("/fast")
    def fast() -> dict[str, bool]:
        return {"fast": True}

    @app.get("/where/<item>")
    def where(item: str) -> dict[str, Any]:
        return {
            "script_root": flask_request.script_root,
            "path": flask_request.path,
            "path_params": flask_request.environ["illunare.path_params"],
            "url_for": url_for("where", item="x"),
        }

    return app


def ping_app(kind: str) -> Any:
    """The always-loaded service the background load calls."""
    if kind == "asgi":
        app = FastAPI()

        @app.get("/ping")
        async def ping() -> str:
            return "pong"

        return app
    flask = Flask("shop")
    flask.add_url_rule("/ping", "ping", lambda: "pong")
    return flask


@pytest.fixture(params=["asgi", "wsgi"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServiceRegistry, Any]]:
    """A registry whose router uvicorn (as_asgi) or werkzeug (as_wsgi) serves, a shop loaded."""
    kind: str = request.param
    registry = ServiceRegistry()
    registry.load(ServiceSpec("shop", routes={"/shop": ping_app(kind)}))
    if kind == "asgi":
        with uvicorn_server(registry.router.as_asgi()) as url:
            yield url, registry, fastapi_reports
    else:
        with wsgi_server(registry.router.as_wsgi()) as url:
            yield url, registry, flask_reports


def _status(client: httpx.Client, path: str) -> int:
    return client.get(path).status_code


class TestLoadAndUnloadUnderRealServers:
    def test_in_flight_requests_complete_new_ones_get_503_then_404(
        self, served: tuple[str, ServiceRegistry, Callable[[Gate], Any]]
    ) -> None:
        """Loaded under load: served; unloaded with slow requests in flight: they complete."""
        url, registry, make_app = served
        gate = Gate()
        results: list[httpx.Response] = []

        def slow() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                results.append(client.get("/reports/slow"))

        with Load(url, "/shop/ping") as load, httpx.Client(base_url=url, timeout=30) as client:
            assert _status(client, "/reports/fast") == 404
            registry.load(ServiceSpec("reports", routes={"/reports": make_app(gate)}))
            assert client.get("/reports/fast").json() == {"fast": True}
            slow_clients = [threading.Thread(target=slow) for _ in range(3)]
            for thread in slow_clients:
                thread.start()
            assert eventually(lambda: gate.entered == 3)
            unload = threading.Thread(target=registry.unload, args=("reports",))
            unload.start()
            assert eventually(lambda: _status(client, "/reports/fast") == 503)
            refused = client.get("/reports/fast")
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert registry.services() == ("shop", "reports")
            time.sleep(0.1)  # the slow requests are still held: the unload still waits
            assert unload.is_alive()
            gate.event.set()
            for thread in slow_clients:
                thread.join(30)
            unload.join(30)
            assert not unload.is_alive()
            assert _status(client, "/reports/fast") == 404
        assert [(r.status_code, r.json()) for r in results] == [(200, {"done": True})] * 3
        assert registry.services() == ("shop",)
        assert load.failures == []
        assert load.answers > 0

    def test_no_route_is_404(self, served: tuple[str, ServiceRegistry, Any]) -> None:
        """A path that no loaded service routes answers 404."""
        url, _, _ = served
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.get("/nothing/here")
        assert (response.status_code, response.text) == (404, "Not Found")


class TestMountSemantics:
    @pytest.mark.parametrize(
        ("route", "path", "params"),
        [("/reports", "/reports", {}), ("/t/{tenant}", "/t/acme", {"tenant": "acme"})],
    )
    def test_a_fastapi_sub_app_sees_the_request_as_under_starlette_mount(
        self, route: str, path: str, params: dict[str, str]
    ) -> None:
        """Path, root_path and path parameters as under Mount; url_for under the real prefix."""
        # (A Mount of a route with parameters leaves them unfilled in url_for:
        # /t/{tenant}/where/x; the sub-app of as_asgi() is the root of its routes.)
        sub = fastapi_reports(Gate())
        registry = ServiceRegistry()
        registry.load(ServiceSpec("reports", routes={route: sub}))
        mounted = Starlette(routes=[Mount(route, app=sub)])
        answers = []
        for app in (registry.router.as_asgi(), mounted):
            with uvicorn_server(app) as url, httpx.Client(base_url=url) as client:
                response = client.get(f"{path}/where/pen")
                assert response.status_code == 200
                body = response.json()
                body["url_for"] = body["url_for"].removeprefix(url)
                answers.append(body)
        expected = {
            "path": f"{path}/where/pen",
            "root_path": path,
            "path_params": {**params, "item": "pen"},
            "url_for": f"{path}/where/x",
        }
        assert answers[0] == expected
        assert answers[1] == {**expected, "url_for": f"{route}/where/x"}

    def test_a_flask_sub_app_gets_the_prefix_in_script_name(self) -> None:
        """PATH_INFO loses the matched prefix to SCRIPT_NAME; parameters are in the environ."""
        registry = ServiceRegistry()
        registry.load(ServiceSpec("reports", routes={"/t/{tenant}": flask_reports(Gate())}))
        with wsgi_server(registry.router.as_wsgi()) as url, httpx.Client(base_url=url) as client:
            response = client.get("/t/acme/where/pen")
        assert response.json() == {
            "script_root": "/t/acme",
            "path": "/where/pen",
            "path_params": {"tenant": "acme"},
            "url_for": "/t/acme/where/x",
        }

    def test_non_ascii_paths_match_under_a_real_wsgi_server(self) -> None:
        """The server's latin-1 PATH_INFO is read as UTF-8: routes match, parameters are text."""
        seen: list[tuple[str, str, dict[str, str]]] = []

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            seen.append(
                (environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["illunare.path_params"])
            )
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        registry = ServiceRegistry()
        registry.load(ServiceSpec("s", routes={"/café": app, "/t/{tenant}": app}))
        with wsgi_server(registry.router.as_wsgi()) as url, httpx.Client(base_url=url) as client:
            statuses = [client.get(path).status_code for path in ("/café/x", "/t/zürich/ü")]
        assert statuses == [200, 200]
        # SCRIPT_NAME and PATH_INFO stay in the server's (latin-1) form, as PEP 3333 has them.
        as_wsgi = [text.encode().decode("latin-1") for text in ("/café", "/t/zürich", "/ü")]
        assert seen == [
            (as_wsgi[0], "/x", {}),
            (as_wsgi[1], as_wsgi[2], {"tenant": "zürich"}),
        ]


def _scope(kind: str, path: str) -> dict[str, Any]:
    return {"type": kind, "path": path, "root_path": "", "headers": [], "query_string": b""}


async def _asgi_call(app: Any, scope: dict[str, Any], inbox: list[dict[str, Any]]) -> list[Any]:
    """Call an ASGI app directly: ``inbox`` is what it receives; returns what it sent."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


class TestAdapters:
    def test_the_asgi_adapter_answers_the_lifespan_itself(self) -> None:
        """Startup and shutdown complete at once: services start and stop with load/unload."""
        app = ServiceRegistry().router.as_asgi()
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent = asyncio.run(_asgi_call(app, {"type": "lifespan"}, inbox))
        assert sent == [
            {"type": "lifespan.startup.complete"},
            {"type": "lifespan.shutdown.complete"},
        ]

    def test_a_websocket_is_closed_with_no_route_or_while_draining(self) -> None:
        """No route: close 1000 (as Starlette); the service draining: 1013, try again later."""
        registry = ServiceRegistry()
        entered, release = threading.Event(), threading.Event()

        def slow() -> None:
            entered.set()
            release.wait(30)

        registry.load(ServiceSpec("live", routes={"/live": slow, "/probe": lambda: None}))
        app = registry.router.as_asgi()
        connect = [{"type": "websocket.connect"}]
        assert asyncio.run(_asgi_call(app, _scope("websocket", "/none"), list(connect))) == [
            {"type": "websocket.close", "code": 1000, "reason": ""}
        ]
        call = threading.Thread(target=registry.router.dispatch, args=("/live",))
        call.start()
        assert entered.wait(30)
        unload = threading.Thread(target=registry.unload, args=("live",))
        unload.start()
        assert eventually(lambda: _draining(registry))
        assert asyncio.run(_asgi_call(app, _scope("websocket", "/live"), list(connect))) == [
            {"type": "websocket.close", "code": 1013, "reason": ""}
        ]
        release.set()
        call.join(30)
        unload.join(30)

    def test_a_wsgi_response_counts_in_flight_until_closed(self) -> None:
        """A streamed response holds the drain until the server closes it; then unload goes on."""
        registry = ServiceRegistry()
        closed = []

        def stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            try:
                yield b"part 1"
                yield b"part 2"
            finally:
                closed.append(True)

        registry.load(ServiceSpec("stream", routes={"/stream": stream}))
        app = registry.router.as_wsgi()
        environ = {"PATH_INFO": "/stream/x", "SCRIPT_NAME": "", "REQUEST_METHOD": "GET"}
        response = app(environ, lambda status, headers: None)
        assert next(iter(response)) == b"part 1"
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/stream", "/x")
        with pytest.raises(DrainTimeoutError):
            registry.unload("stream", drain_timeout=0)
        response.close()  # type: ignore[attr-defined]
        assert closed == [True]
        registry.unload("stream", drain_timeout=0)
        assert registry.services() == ()


def _draining(registry: ServiceRegistry) -> bool:
    try:
        registry.router.dispatch("/probe")
    except ServiceUnavailableError:
        return True
    return False
