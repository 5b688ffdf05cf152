"""HotASGI: a FastAPI app under a real uvicorn, rebuilt by releases of its package."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from illunare import (
    HotReloader,
    InvalidArgumentError,
    LoadError,
    UnknownModuleError,
    ValidationError,
    default_reloader,
)
from illunare.web import HotASGI, HotWSGI
from illunare.web._spec import AppSpec

from .conftest import Package, dedent, eventually
from .strategies import APP_NAMES
from .webservers import Load, uvicorn_server

EVENTS = """
import threading

log = []                          # ("startup" | "shutdown" | "slow done", id(app))
slow_started = threading.Event()
slow_release = threading.Event()
"""

MAIN = """
from contextlib import asynccontextmanager

from fastapi import FastAPI

import {events} as events
from .routes import router


@asynccontextmanager
async def lifespan(app):
    events.log.append(("startup", id(app)))
    yield {"app_id": id(app)}
    events.log.append(("shutdown", id(app)))


app = FastAPI(lifespan=lifespan)
app.include_router(router)
"""

ROUTES = """
import asyncio

from fastapi import APIRouter, Depends, Request

import {events} as events
from .deps import currency
from .models import Item
from .pricing import price_of

RELEASE = "v1"
router = APIRouter()


@router.get("/price/{item}")
async def price(item: str, request: Request, cur: str = Depends(currency)) -> dict:
    return {"cents": price_of(item), "currency": cur, "release": RELEASE,
             "app": request.state.app_id}


@router.post("/items")
async def create(item: Item) -> Item:
    return item


@router.get("/slow")
async def slow(request: Request) -> dict:
    events.slow_started.set()
    while not events.slow_release.is_set():
        await asyncio.sleep(0.005)
    events.log.append(("slow done", request.state.app_id))
    return {"release": RELEASE, "app": request.state.app_id}
"""

MODELS = """
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    cents: int
"""

DEPS = """
def currency() -> str:
    return "EUR"
"""

PRICING = """
PRICES = {"apple": 120, "pear": 95}


def price_of(item: str) -> int:
    return PRICES.get(item, 0)
"""


@dataclass
class Shop:
    """A FastAPI shop package on disk, served through HotASGI by a real uvicorn."""

    package: Package
    reloader: HotReloader
    hot: HotASGI
    url: str
    events: types.ModuleType

    def name(self, module: str) -> str:
        return self.package.qualified(module)

    def source(self, module: str) -> str:
        """The module's source as first written (events module name filled in)."""
        return dedent(SOURCES[module]).replace("{events}", self.events.__name__)

    def swap(self, module: str, source: str, **options: object) -> None:
        self.reloader.swap(self.name(module), dedent(source), **options)  # type: ignore[arg-type]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)

    def history(self) -> dict[str, list[int]]:
        return {
            module: [v.number for v in self.reloader.history(self.name(module))]
            for module in ("main", "routes", "models", "deps", "pricing")
        }

    def events_of(self, app: object) -> list[str]:
        return [kind for kind, app_id in self.events.log if app_id == id(app)]


SOURCES = {
    "main": MAIN,
    "routes": ROUTES,
    "models": MODELS,
    "deps": DEPS,
    "pricing": PRICING,
}


def write_shop(package: Package) -> types.ModuleType:
    """Write the shop's modules and its events module (outside the package); import the latter."""
    events_name = f"{package.name}_events"
    (package.path.parent / f"{events_name}.py").write_text(dedent(EVENTS))
    for module, source in SOURCES.items():
        package.write(module, dedent(source).replace("{events}", events_name))
    return importlib.import_module(events_name)


@pytest.fixture
def shop(package: Package, reloader: HotReloader) -> Iterator[Shop]:
    events = write_shop(package)
    hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
    try:
        with uvicorn_server(hot) as url:
            yield Shop(package, reloader, hot, url, events)
    finally:
        events.slow_release.set()
        sys.modules.pop(events.__name__, None)


def routes(shop: Shop, old: str, new: str) -> str:
    """The shop's routes module with ``old`` replaced by ``new``."""
    source = shop.source("routes")
    assert old in source
    return source.replace(old, new)


class TestRebuild:
    def test_a_changed_route_body_answers_from_the_new_code(self, shop: Shop) -> None:
        """Swapping routes.py rebuilds the app: the route's new body answers."""
        assert shop.get("/price/apple").json()["release"] == "v1"
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        answer = shop.get("/price/apple").json()
        assert ("v2", id(shop.hot.app)) == (answer["release"], answer["app"])
        assert shop.hot.version == 2

    def test_a_new_route_answers_and_a_removed_one_is_gone(self, shop: Shop) -> None:
        """A route added answers (404 before), a route removed answers 404."""
        assert shop.get("/stock/apple").status_code == 404
        added = routes(shop, "@router.post(", "@router.get('/stock/{item}')\n"
                       "async def stock(item: str) -> dict:\n    return {'stock': 3}\n\n\n"
                       "@router.post(")  # fmt: skip
        shop.swap("routes", added)
        assert shop.get("/stock/apple").json() == {"stock": 3}
        shop.swap("routes", shop.source("routes"))
        assert shop.get("/stock/apple").status_code == 404

    def test_a_renamed_path_answers_on_the_new_path_only(self, shop: Shop) -> None:
        """/price/{item} renamed /cost/{item}: the old path 404s, the new one answers."""
        shop.swap("routes", routes(shop, '"/price/{item}"', '"/cost/{item}"'))
        assert shop.get("/price/apple").status_code == 404
        assert shop.get("/cost/apple").json()["cents"] == 120

    def test_routes_are_never_duplicated(self, shop: Shop) -> None:
        """After many rebuilds the app has exactly the routes of its code."""
        before = (len(shop.hot.app.routes), shop.get("/openapi.json").json()["paths"])  # type: ignore[attr-defined]
        for release in range(2, 7):
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', f'RELEASE = "v{release}"'))
        after = (len(shop.hot.app.routes), shop.get("/openapi.json").json()["paths"])  # type: ignore[attr-defined]
        assert before == after

    def test_routes_registered_with_app_get_in_a_swapped_module_are_not_added_again(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """views.py decorates main's app (@app.get): each release has its routes once."""
        package.write(
            "main",
            "from fastapi import FastAPI\n\napp = FastAPI()\n\nfrom . import views  # noqa: E402\n",
        )
        views = "from .main import app\n\n\n@app.get('/release')\nasync def release():\n"
        package.write("views", views + "    return 'v1'\n")
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        routes_before = len(hot.app.routes)  # type: ignore[attr-defined]
        with uvicorn_server(hot) as url:
            for release in ("v2", "v3", "v4"):
                reloader.swap(package.qualified("views"), views + f"    return {release!r}\n")
                assert httpx.get(url + "/release", timeout=30).json() == release
                assert len(hot.app.routes) == routes_before  # type: ignore[attr-defined]

    def test_a_model_field_added_is_validated_returned_and_documented(self, shop: Shop) -> None:
        """Item gains a required field: requests need it, responses carry it, openapi shows it."""
        item = {"name": "apple", "cents": 120}
        assert item == httpx.post(shop.url + "/items", json=item, timeout=30).json()
        shop.swap("models", MODELS + "    tag: str\n")
        assert httpx.post(shop.url + "/items", json=item, timeout=30).status_code == 422
        tagged = {**item, "tag": "fruit"}
        assert tagged == httpx.post(shop.url + "/items", json=tagged, timeout=30).json()
        schema = shop.get("/openapi.json").json()["components"]["schemas"]["Item"]
        assert {"name", "cents", "tag"} == set(schema["properties"])

    def test_a_changed_dependency_is_analysed_again(self, shop: Shop) -> None:
        """A Depends() function that now reads a header: the rebuilt app passes the header."""
        assert shop.get("/price/apple").json()["currency"] == "EUR"
        shop.swap(
            "deps",
            "from fastapi import Header\n\n\n"
            "def currency(x_currency: str = Header('EUR')) -> str:\n    return x_currency\n",
        )
        answer = httpx.get(shop.url + "/price/apple", headers={"X-Currency": "BRL"}, timeout=30)
        assert answer.json()["currency"] == "BRL"

    def test_a_helper_module_change_takes_effect(self, shop: Shop) -> None:
        """pricing.py changed: the price answers from the new code."""
        shop.swap("pricing", PRICING.replace('"apple": 120', '"apple": 99'))
        assert shop.get("/price/apple").json()["cents"] == 99

    def test_a_save_seen_by_watch_rebuilds_the_app(self, shop: Shop) -> None:
        """Saving routes.py under watch() rebuilds the app: the new body answers."""
        with shop.reloader.watch(shop.package.path):
            shop.package.write("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            assert eventually(lambda: shop.get("/price/apple").json()["release"] == "v2")
        assert shop.hot.version == 2

    def test_the_module_making_the_hot_app_is_not_executed_anew(self, package: Package) -> None:
        """hot.py imports a changed sibling: the app is rebuilt, hot.py keeps its one HotASGI."""
        package.write("settings", "TITLE = 'one'\n")
        package.write(
            "main",
            "from fastapi import FastAPI\n\n"
            "from .settings import TITLE\n\n"
            "app = FastAPI(title=TITLE)\n",
        )
        package.write(
            "hot",
            f"from illunare.web import HotASGI\n\nfrom .settings import TITLE\n\n"
            f"app = HotASGI('{package.name}.main:app')\n",
        )
        hot_module = importlib.import_module(package.qualified("hot"))
        hot = hot_module.app
        reloader = default_reloader()
        reloader.swap(package.qualified("settings"), "TITLE = 'two'\n")
        assert (hot.app.title, hot.version) == ("two", 2)
        assert reloader.current(package.qualified("hot")).number == 1
        assert hot is hot_module.app

    def test_a_release_of_the_module_making_the_hot_app_is_refused(self, package: Package) -> None:
        """Executed anew, hot.py would make a second HotASGI that nothing serves: refused."""
        package.write("main", "from fastapi import FastAPI\n\napp = FastAPI(title='one')\n")
        source = f"from illunare.web import HotASGI\n\napp = HotASGI('{package.name}.main:app')\n"
        package.write("hot", source)
        hot_module = importlib.import_module(package.qualified("hot"))
        hot = hot_module.app
        reloader = default_reloader()
        with pytest.raises(ValidationError, match=r"hot made <HotASGI .*Restart the server"):
            reloader.swap(package.qualified("hot"), source + "# changed\n")
        assert hot_module.app is hot
        assert reloader.current(package.qualified("hot")).number == 1
        reloader.swap(
            package.qualified("main"), "from fastapi import FastAPI\n\napp = FastAPI(title='two')\n"
        )
        assert (hot.app.title, hot.version) == ("two", 2)

    def test_a_change_outside_the_package_rebuilds_nothing(self, shop: Shop) -> None:
        """A release of modules of other packages executes nothing of the app's anew."""
        assert frozenset() == shop.hot.dependents(
            frozenset({"json", shop.package.name + "_other.main"})
        )


class TestRefused:
    def _assert_unchanged(self, shop: Shop, history: dict[str, list[int]], app: object) -> None:
        assert history == shop.history()
        assert app is shop.hot.app
        assert shop.hot.version == 1
        answer = shop.get("/price/apple").json()
        assert ("v1", id(app)) == (answer["release"], answer["app"])

    def test_a_failing_startup_refuses_the_release(self, shop: Shop) -> None:
        """The new app's lifespan startup raises: ValidationError, the old app and versions stay."""
        history, app = shop.history(), shop.hot.app
        failing = shop.source("main").replace(
            "    yield {", "    raise RuntimeError('the database is down')\n    yield {"
        )
        with pytest.raises(ValidationError) as refused:
            shop.swap("main", failing)
        assert "the database is down" in repr(refused.value) + repr(refused.value.__cause__)
        self._assert_unchanged(shop, history, app)

    def test_a_failing_check_refuses_the_release_and_shuts_the_new_app_down(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A check refusing the new app: nothing switches; the started new app is shut down."""
        events = write_shop(package)
        built: list[object] = []

        def refuse(app: object) -> bool:
            built.append(app)
            return False

        hot = HotASGI(f"{package.name}.main:app", reloader=reloader, checks=[refuse])
        with uvicorn_server(hot) as url:
            shop = Shop(package, reloader, hot, url, events)
            history, app = shop.history(), hot.app
            with pytest.raises(ValidationError):
                shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            self._assert_unchanged(shop, history, app)
            assert eventually(lambda: shop.events_of(built[0]) == ["startup", "shutdown"])
        sys.modules.pop(events.__name__, None)

    def test_an_app_prepared_for_a_release_refused_elsewhere_is_shut_down(self, shop: Shop) -> None:
        """Another participant refuses after the new app started: the new app is shut down."""

        class Refusing:
            def dependents(self, changed: frozenset[str]) -> frozenset[str]:
                return frozenset()

            def prepare(self, namespaces: object) -> None:
                raise RuntimeError("not now")

            def abort(self, namespaces: object) -> None:
                pass

            def committed(self, namespaces: object, previous: object) -> None:
                pass

            def kept(self, namespace: object) -> tuple[object, ...]:
                return ()

        history, app = shop.history(), shop.hot.app
        shop.reloader._add_participant(Refusing())
        with pytest.raises(ValidationError):
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        self._assert_unchanged(shop, history, app)
        started = {app_id for kind, app_id in shop.events.log if kind == "startup"}
        assert len(started) == 2
        assert eventually(
            lambda: (
                {app_id for kind, app_id in shop.events.log if kind == "shutdown"}
                == started - {id(app)}
            )
        )

    def test_a_failing_build_refuses_the_release(self, shop: Shop) -> None:
        """The new app module raises while it builds the app: LoadError, nothing changes."""
        history, app = shop.history(), shop.hot.app
        broken = shop.source("main") + "\nraise RuntimeError('no app today')\n"
        with pytest.raises(LoadError):
            shop.swap("main", broken)
        self._assert_unchanged(shop, history, app)

    def test_a_missing_app_attribute_refuses_the_release(self, shop: Shop) -> None:
        """The new app module no longer defines ``app``: ValidationError, nothing changes."""
        history, app = shop.history(), shop.hot.app
        with pytest.raises(ValidationError):
            shop.swap(
                "main",
                shop.source("main")
                .replace("app = FastAPI", "api = FastAPI")
                .replace("app.include", "api.include"),
            )
        self._assert_unchanged(shop, history, app)


class TestRollback:
    def test_a_rollback_serves_the_previous_app_without_a_new_startup(self, shop: Shop) -> None:
        """Rolling the release back serves the very app object of before, already started."""
        first = shop.hot.app
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        second = shop.hot.app
        shop.reloader.rollback_many([shop.name("routes"), shop.name("main")])
        assert (first, 1) == (shop.hot.app, shop.hot.version)
        answer = shop.get("/price/apple").json()
        assert ("v1", id(first)) == (answer["release"], answer["app"])
        assert shop.events_of(first) == ["startup"]
        assert shop.events_of(second) == ["startup"]  # kept started: the previous app now

    def test_rolling_back_to_an_app_already_shut_down_starts_it_again(self, shop: Shop) -> None:
        """v1 was shut down (neither current nor previous): rolling back to it restarts it."""
        first = shop.hot.app
        release = [shop.name("routes"), shop.name("main")]
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v3"'))
        assert eventually(lambda: shop.events_of(first) == ["startup", "shutdown"])
        shop.reloader.rollback_many(release)
        shop.reloader.rollback_many(release)
        assert (first, 1) == (shop.hot.app, shop.hot.version)
        assert shop.events_of(first) == ["startup", "shutdown", "startup"]
        answer = shop.get("/price/apple").json()
        assert ("v1", id(first)) == (answer["release"], answer["app"])

    def test_rolling_back_without_the_app_module_is_refused(self, shop: Shop) -> None:
        """routes rolled back alone would leave the rebuilt app serving v2: refused, naming main."""
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        history, app = shop.history(), shop.hot.app
        with pytest.raises(ValidationError) as refused:
            shop.reloader.rollback(shop.name("routes"))
        assert shop.name("main") in str(refused.value) + str(refused.value.__cause__)
        assert (history, app) == (shop.history(), shop.hot.app)
        assert shop.get("/price/apple").json()["release"] == "v2"


class TestInFlight:
    def test_a_request_in_flight_finishes_on_the_app_that_took_it(self, shop: Shop) -> None:
        """A slow request that started before the swap answers from the old app."""
        old = shop.hot.app
        with Load(shop.url, "/price/apple", clients=1):
            slow: list[httpx.Response] = []
            thread = threading.Thread(target=lambda: slow.append(shop.get("/slow")))
            thread.start()
            assert shop.events.slow_started.wait(30)
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            assert shop.get("/price/apple").json()["release"] == "v2"
            shop.events.slow_release.set()
            thread.join(30)
        assert {"release": "v1", "app": id(old)} == slow[0].json()

    def test_an_old_app_shuts_down_after_its_last_request(self, shop: Shop) -> None:
        """v1 is neither current nor previous after two swaps: shut down once its request ends."""
        old = shop.hot.app
        thread = threading.Thread(target=lambda: shop.get("/slow"))
        thread.start()
        assert shop.events.slow_started.wait(30)
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v3"'))
        assert shop.events_of(old) == ["startup"]  # its request is still running
        shop.events.slow_release.set()
        thread.join(30)
        assert eventually(lambda: shop.events_of(old) == ["startup", "slow done", "shutdown"])

    def test_a_release_returns_once_the_loop_has_run_after_the_switch(self, shop: Shop) -> None:
        """Settling waits for the server's loop: a request that took the old app is recorded."""
        order: list[str] = []
        unblock = threading.Event()
        loop = shop.hot._loop
        assert loop is not None

        def blocker() -> None:
            unblock.wait(30)
            order.append("loop ran")

        def settle() -> None:
            shop.hot._settle()
            order.append("settled")

        loop.call_soon_threadsafe(blocker)
        thread = threading.Thread(target=settle)
        thread.start()
        eventually(lambda: bool(order), timeout=1.0)  # only if settling did not wait
        unblock.set()
        thread.join(30)
        assert order == ["loop ran", "settled"]

    def test_a_request_is_recorded_until_its_scope_is_cleared(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The framework's keys leave the scope while the request is still in flight (kept)."""
        package.module("plain", "async def app(scope, receive, send):\n    scope['app'] = 1\n")
        hot = HotASGI(f"{package.name}.plain:app", reloader=reloader)
        served = hot._served()
        recorded: list[bool] = []

        class Scope(dict[str, Any]):
            def pop(self, key: str, default: object = None) -> object:
                recorded.append(id(self) in served.requests)
                return super().pop(key, default)

        asyncio.run(hot(Scope(type="http"), None, None))  # type: ignore[arg-type]
        assert recorded
        assert all(recorded)
        assert served.requests == {}


class TestTwoApps:
    def test_two_hot_apps_of_one_module_are_rebuilt_each_on_its_own(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """An ASGI and a WSGI app of one package: one release rebuilds both."""
        package.write("settings", "TITLE = 'one'\n")
        package.write(
            "main",
            "from fastapi import FastAPI\nfrom flask import Flask\n\n"
            "from .settings import TITLE\n\n"
            "api = FastAPI(title=TITLE)\nweb = Flask(TITLE)\n",
        )
        asgi = HotASGI(f"{package.name}.main:api", reloader=reloader)
        wsgi = HotWSGI(f"{package.name}.main:web", reloader=reloader)
        reloader.swap(package.qualified("settings"), "TITLE = 'two'\n")
        assert (asgi.app.title, asgi.version) == ("two", 2)  # type: ignore[attr-defined]
        assert (wsgi.app.name, wsgi.version) == ("two", 2)  # type: ignore[attr-defined]


class TestLifespan:
    def test_each_app_has_its_own_lifespan_state(self, shop: Shop) -> None:
        """request.state comes from the lifespan of the app serving the request."""
        assert id(shop.hot.app) == shop.get("/price/apple").json()["app"]
        shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
        assert id(shop.hot.app) == shop.get("/price/apple").json()["app"]

    def test_server_shutdown_shuts_every_started_app_down(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """When uvicorn stops, the current and the previous app both run their shutdown."""
        events = write_shop(package)
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        with uvicorn_server(hot) as url:
            shop = Shop(package, reloader, hot, url, events)
            first = hot.app
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            second = hot.app
        sys.modules.pop(events.__name__, None)
        assert shop.events_of(first) == ["startup", "shutdown"]
        assert shop.events_of(second) == ["startup", "shutdown"]

    def test_server_shutdown_waits_for_an_old_app_still_shutting_down(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """v1's slow shutdown, begun after its last request, finishes before the server stops."""
        events = write_shop(package)
        held = (
            dedent(MAIN)
            .replace("{events}", events.__name__)
            .replace(
                '    events.log.append(("shutdown", id(app)))',
                "    while id(app) == events.held and not events.slow_release.is_set():\n"
                "        await asyncio.sleep(0.005)\n"
                '    events.log.append(("shutdown", id(app)))',
            )
        )
        package.write("main", "import asyncio\n" + held)
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        events.held = id(hot.app)
        first = hot.app
        with uvicorn_server(hot):
            shop = Shop(package, reloader, hot, "", events)
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v3"'))
            others = len(events.log)

            def release_when_the_others_stopped() -> None:
                eventually(lambda: len(events.log) >= others + 2)
                events.slow_release.set()

            threading.Thread(target=release_when_the_others_stopped).start()
        sys.modules.pop(events.__name__, None)
        assert shop.events_of(first) == ["startup", "shutdown"]

    def test_a_failing_shutdown_of_an_old_app_is_logged_with_its_cause(
        self, package: Package, reloader: HotReloader, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An old app's lifespan shutdown raising in the background: a warning with the cause."""
        events = write_shop(package)
        failing = (
            dedent(MAIN)
            .replace("{events}", events.__name__)
            .replace(
                '    events.log.append(("shutdown", id(app)))',
                "    raise RuntimeError('the pool would not close')",
            )
        )
        package.write("main", failing)
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        with caplog.at_level(logging.WARNING, logger="illunare"), uvicorn_server(hot):
            shop = Shop(package, reloader, hot, "", events)
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v3"'))
            assert eventually(
                lambda: any(
                    "lifespan shutdown" in record.getMessage()
                    and record.exc_info is not None
                    and "the pool would not close" in str(record.exc_info[1])
                    for record in caplog.records
                )
            )
        sys.modules.pop(events.__name__, None)

    def test_without_server_lifespan_apps_are_swapped_and_never_started(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """uvicorn --lifespan off: releases switch the app; no lifespan runs."""
        events = write_shop(package)
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        main = dedent(MAIN).replace("{events}", events.__name__)
        without_state = routes_source(events).replace("request.state.app_id", "0")
        reloader.swap(f"{package.name}.routes", without_state)
        with uvicorn_server(hot, lifespan="off") as url:
            reloader.swap(f"{package.name}.main", main + "\n# v3\n")
            assert httpx.get(url + "/price/apple", timeout=30).status_code == 200
        sys.modules.pop(events.__name__, None)
        assert events.log == []

    def test_an_app_without_lifespan_support_is_served_and_rebuilt(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A bare ASGI app that raises on the lifespan scope (as servers allow) starts and swaps."""
        source = (
            "RELEASE = b'v1'\n\n\n"
            "async def app(scope, receive, send):\n"
            "    assert scope['type'] == 'http'\n"
            "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
            "    await send({'type': 'http.response.body', 'body': RELEASE})\n"
        )
        package.write("main", source)
        hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
        with uvicorn_server(hot) as url:
            assert httpx.get(url, timeout=30).content == b"v1"
            reloader.swap(package.qualified("main"), source.replace("v1", "v2"))
            assert httpx.get(url, timeout=30).content == b"v2"

    def test_a_release_from_the_event_loop_is_refused_with_advice(self, shop: Shop) -> None:
        """A swap called inside an async endpoint would deadlock: refused, naming to_thread."""
        outcome: list[BaseException] = []

        async def swap_on_the_loop() -> None:
            try:
                shop.swap("routes", routes(shop, 'RELEASE = "v1"', 'RELEASE = "v2"'))
            except ValidationError as error:
                outcome.append(error)

        loop = shop.hot._loop  # the server's loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(swap_on_the_loop(), loop).result(30)
        assert "asyncio.to_thread" in str(outcome[0]) + str(outcome[0].__cause__)
        assert shop.hot.version == 1


class TestLoad:
    def test_no_request_fails_during_repeated_rebuilds_and_rollbacks(self, shop: Shop) -> None:
        """Four clients, twenty rebuilds and twenty rollbacks: every answer is a 200."""
        with Load(shop.url, "/price/apple") as load:
            for release in range(2, 22):
                shop.swap("routes", routes(shop, 'RELEASE = "v1"', f'RELEASE = "v{release}"'))
                assert shop.get("/price/apple").json()["release"] == f"v{release}"
                shop.reloader.rollback_many([shop.name("routes"), shop.name("main")])
        assert load.failures == []


class TestAppName:
    @pytest.mark.parametrize(
        "spec",
        [
            "",
            "main",
            "pkg.main",
            "pkg.main:",
            ":app",
            "pkg main:app",
            "pkg.main:app(x)",
            "pkg..main:app",
            "pkg.main:app()()",
            42,
            None,
        ],
    )
    def test_a_malformed_app_name_is_an_invalid_argument(
        self, spec: object, reloader: HotReloader
    ) -> None:
        """Anything but 'module:attribute' or 'module:factory()' is refused before importing."""
        with pytest.raises(InvalidArgumentError):
            HotASGI(spec, reloader=reloader)  # type: ignore[arg-type]

    @given(APP_NAMES)
    def test_a_well_formed_app_name_reads_back_as_written(self, name: str) -> None:
        """Any dotted module, ':', an identifier and an optional '()' is read back as written."""
        spec = AppSpec.parse(name)
        assert str(spec) == name
        assert spec.factory == name.endswith("()")
        assert spec.package == name.partition(":")[0].partition(".")[0]

    @given(st.text(max_size=20))
    def test_any_text_is_an_app_name_or_an_invalid_argument(self, text: str) -> None:
        """Parsing never fails otherwise: an app name, or InvalidArgumentError."""
        try:
            spec = AppSpec.parse(text)
        except InvalidArgumentError:
            return
        assert str(spec) == text

    def test_an_unknown_module_is_an_unknown_module_error(self, reloader: HotReloader) -> None:
        """A module that does not exist: UnknownModuleError."""
        with pytest.raises(UnknownModuleError):
            HotASGI("illunare_no_such_package.main:app", reloader=reloader)

    def test_a_missing_attribute_is_a_validation_error(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The module exists but has no such attribute: ValidationError naming it."""
        package.write("main", "api = None\n")
        with pytest.raises(ValidationError, match="'app'"):
            HotASGI(f"{package.name}.main:app", reloader=reloader)

    def test_a_factory_builds_each_app(self, package: Package, reloader: HotReloader) -> None:
        """'module:create_app()' calls the new version's factory on every rebuild."""
        events = write_shop(package)
        main = dedent(MAIN).replace("{events}", events.__name__)
        factory = main.replace("app = FastAPI(lifespan=lifespan)\napp.include_router(router)\n",
                               "def create_app():\n    app = FastAPI(lifespan=lifespan)\n"
                               "    app.include_router(router)\n    return app\n")  # fmt: skip
        package.write("main", factory)
        hot = HotASGI(f"{package.name}.main:create_app()", reloader=reloader)
        with uvicorn_server(hot) as url:
            first = hot.app
            reloader.swap(f"{package.name}.routes", routes_source(events).replace("v1", "v2"))
            answer = httpx.get(url + "/price/apple", timeout=30).json()
            assert ("v2", id(hot.app)) == (answer["release"], answer["app"])
            assert first is not hot.app
        sys.modules.pop(events.__name__, None)

    def test_a_raising_factory_is_a_validation_error(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The factory raises while building the first app: ValidationError with the cause."""
        package.write("main", "def create_app():\n    raise RuntimeError('no config')\n")
        with pytest.raises(ValidationError) as refused:
            HotASGI(f"{package.name}.main:create_app()", reloader=reloader)
        assert isinstance(refused.value.__cause__, RuntimeError)


def routes_source(events: types.ModuleType) -> str:
    return dedent(ROUTES).replace("{events}", events.__name__)
