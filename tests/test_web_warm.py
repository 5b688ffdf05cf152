"""What frameworks build at an app's first request is built before a rebuilt app takes traffic."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from flask import Flask

from illunare import HotReloader
from illunare.web import HotASGI
from illunare.web._warm import warm

from .conftest import Package

MAIN = """
from fastapi import APIRouter, FastAPI

RELEASE = {n}
router = APIRouter()


@router.get("/price/{{item}}")
async def price(item: str) -> dict:
    return {{"item": item, "release": RELEASE}}


app = FastAPI()
app.include_router(router)
"""


def get(app: Any, path: str) -> object:
    """The JSON body of GET ``path``, called on the ASGI ``app`` directly."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [], "server": ("test", 80), "client": ("test", 1),
    }  # fmt: skip
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        body.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return json.loads(b"".join(body))


def included(app: FastAPI) -> list[object]:
    """The app's routes that FastAPI builds lazily (none in FastAPI versions that do not)."""
    return [route for route in app.router.routes if hasattr(route, "effective_route_contexts")]


def unbuilt(app: FastAPI) -> list[object]:
    """The included routers whose routes are not built yet."""
    return [route for route in included(app) if route._effective_candidates_version is None]  # type: ignore[attr-defined]


def fastapi_app() -> FastAPI:
    router = APIRouter()

    @router.get("/price/{item}")
    async def price(item: str) -> dict[str, str]:
        return {"item": item}

    app = FastAPI()
    app.include_router(router)
    if not included(app):
        pytest.skip("this FastAPI builds included routes in include_router, not at a request")
    return app


class TestFastAPI:
    def test_an_included_routers_routes_are_built_and_then_serve(self) -> None:
        app = fastapi_app()
        assert unbuilt(app)
        warm(app)
        assert unbuilt(app) == []
        assert get(app, "/price/apple") == {"item": "apple"}

    def test_a_rebuilt_app_has_its_routes_built_before_it_takes_traffic(
        self, package: Package, reloader: HotReloader
    ) -> None:
        package.write("main", MAIN.format(n=1))
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        assert unbuilt(hot.app) == []  # the first app too
        reloader.swap(package.qualified("main"), MAIN.format(n=2))
        assert hot.version == 2
        assert unbuilt(hot.app) == []
        assert get(hot.app, "/price/pear") == {"item": "pear", "release": 2}


class TestFlask:
    def test_the_url_map_is_compiled(self) -> None:
        app = Flask(__name__)
        app.add_url_rule("/price/<item>", "price", lambda item: {"item": item})
        assert app.url_map._remap
        warm(app)
        assert not app.url_map._remap
        assert app.test_client().get("/price/apple").json == {"item": "apple"}


class TestOthers:
    def test_an_app_of_no_known_framework_is_left_alone(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def app(scope: object, receive: object, send: object) -> None:
            pass

        with caplog.at_level(logging.DEBUG, logger="illunare"):
            warm(app)
            warm(object())
        assert caplog.records == []

    def test_a_build_that_fails_is_logged_with_its_cause_and_left_to_the_first_request(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Broken:
            def effective_route_contexts(self) -> list[object]:
                raise RuntimeError("cannot build")

        class Router:
            def __init__(self) -> None:
                self.routes = [Broken()]

        class App:
            router = Router()

        with caplog.at_level(logging.WARNING, logger="illunare"):
            warm(App())
        [record] = caplog.records
        assert "ahead of its first request" in record.getMessage()
        assert record.exc_info is not None
        assert "cannot build" in str(record.exc_info[1])
