"""HotWSGI: a Flask app (blueprints) under a real threaded WSGI server, rebuilt by releases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from illunare import HotReloader, ValidationError
from illunare.web import HotWSGI

from .conftest import Package, dedent
from .webservers import Load, wsgi_server

MAIN = """
from flask import Flask

from .views import shop


def create_app():
    app = Flask(__name__)
    app.register_blueprint(shop)
    return app


app = create_app()
"""

VIEWS = """
from flask import Blueprint

from .pricing import price_of

RELEASE = "v1"
shop = Blueprint("shop", __name__)


@shop.get("/price/<item>")
def price(item):
    return {"cents": price_of(item), "release": RELEASE}
"""

PRICING = """
def price_of(item):
    return {"apple": 120}.get(item, 0)
"""


@dataclass
class FlaskShop:
    package: Package
    reloader: HotReloader
    hot: HotWSGI
    url: str

    def swap_views(self, old: str, new: str) -> None:
        source = dedent(VIEWS)
        assert old in source
        self.reloader.swap(self.package.qualified("views"), source.replace(old, new))

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)


def write_flask_shop(package: Package) -> None:
    for module, source in (("main", MAIN), ("views", VIEWS), ("pricing", PRICING)):
        package.write(module, source)


@pytest.fixture(params=["app", "create_app()"])
def flask_shop(
    request: pytest.FixtureRequest, package: Package, reloader: HotReloader
) -> Iterator[FlaskShop]:
    write_flask_shop(package)
    hot = HotWSGI(f"{package.name}.main:{request.param}", reloader=reloader)
    with wsgi_server(hot) as url:
        yield FlaskShop(package, reloader, hot, url)


class TestFlask:
    def test_a_changed_blueprint_view_answers_from_the_new_code(
        self, flask_shop: FlaskShop
    ) -> None:
        """Swapping the blueprint's module rebuilds the app: the new view answers."""
        assert flask_shop.get("/price/apple").json()["release"] == "v1"
        flask_shop.swap_views('RELEASE = "v1"', 'RELEASE = "v2"')
        assert flask_shop.get("/price/apple").json()["release"] == "v2"
        assert flask_shop.hot.version == 2

    def test_a_new_route_answers_and_a_renamed_one_moves(self, flask_shop: FlaskShop) -> None:
        """A route added answers (404 before); a renamed route answers on its new path only."""
        assert flask_shop.get("/cost/apple").status_code == 404
        flask_shop.swap_views('"/price/<item>"', '"/cost/<item>"')
        assert flask_shop.get("/cost/apple").json()["cents"] == 120
        assert flask_shop.get("/price/apple").status_code == 404

    def test_a_rollback_serves_the_previous_app(self, flask_shop: FlaskShop) -> None:
        """rollback_many of the release serves the very app object of before."""
        first = flask_shop.hot.app
        flask_shop.swap_views('RELEASE = "v1"', 'RELEASE = "v2"')
        names = [flask_shop.package.qualified(m) for m in ("views", "main")]
        flask_shop.reloader.rollback_many(names)
        assert (first, 1) == (flask_shop.hot.app, flask_shop.hot.version)
        assert flask_shop.get("/price/apple").json()["release"] == "v1"

    def test_no_request_fails_during_repeated_rebuilds(self, flask_shop: FlaskShop) -> None:
        """Four clients, ten rebuilds and rollbacks: every answer is a 200."""
        names = [flask_shop.package.qualified(m) for m in ("views", "main")]
        with Load(flask_shop.url, "/price/apple") as load:
            for release in range(2, 12):
                flask_shop.swap_views('RELEASE = "v1"', f'RELEASE = "v{release}"')
                flask_shop.reloader.rollback_many(names)
        assert load.failures == []


class TestFlaskChecks:
    def test_a_failing_check_keeps_the_old_app(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A check refusing the rebuilt app: ValidationError; the old app and versions stay."""
        write_flask_shop(package)

        def answers_v1(app: object) -> None:
            client = app.test_client()  # type: ignore[attr-defined]
            assert client.get("/price/apple").json["release"] == "v1"

        hot = HotWSGI(f"{package.name}.main:app", reloader=reloader, checks=[answers_v1])
        with wsgi_server(hot) as url:
            first = hot.app
            with pytest.raises(ValidationError):
                reloader.swap(package.qualified("views"), dedent(VIEWS).replace("v1", "v2"))
            assert first is hot.app
            assert [v.number for v in reloader.history(package.qualified("views"))] == [1]
            assert [v.number for v in reloader.history(package.qualified("main"))] == [1]
            assert httpx.get(url + "/price/apple", timeout=30).json()["release"] == "v1"


class TestFlaskAppDecorators:
    def test_a_module_decorating_a_served_app_can_be_swapped(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """views.py uses @app.get on main's app: after requests, a release still swaps it."""
        package.write(
            "main",
            "from flask import Flask\n\napp = Flask(__name__)\n\n"
            "from . import views  # noqa: E402\n",
        )
        views = "from .main import app\n\n\n@app.get('/release')\ndef release():\n"
        package.write("views", views + "    return 'v1'\n")
        hot = HotWSGI(f"{package.name}.main:app", reloader=reloader)
        with wsgi_server(hot) as url:
            assert httpx.get(url + "/release", timeout=30).text == "v1"
            reloader.swap(package.qualified("views"), views + "    return 'v2'\n")
            assert httpx.get(url + "/release", timeout=30).text == "v2"


class TestFlaskFactory:
    def test_a_tutorial_factory_builds_the_app_from_the_new_code(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """create_app() imports inside its body and calls a helper: both give the new code."""
        package.write(
            "__init__",
            "from flask import Flask\n\n\n"
            "def create_app():\n"
            "    app = Flask(__name__)\n"
            "    from . import auth, setup\n\n"
            "    setup.init_app(app)\n"
            "    app.register_blueprint(auth.bp)\n"
            "    return app\n",
        )
        package.write("setup", "def init_app(app):\n    app.config['RELEASE'] = 'v1'\n")
        auth = (
            "from flask import Blueprint, current_app\n\n"
            "bp = Blueprint('auth', __name__)\n\n\n"
            "@bp.get('/login')\n"
            "def login():\n"
            "    return {'view': 'v1', 'config': current_app.config['RELEASE']}\n"
        )
        package.write("auth", auth)
        hot = HotWSGI(f"{package.name}:create_app()", reloader=reloader)
        with wsgi_server(hot) as url:
            assert httpx.get(url + "/login", timeout=30).json() == {"view": "v1", "config": "v1"}
            reloader.swap_many(
                {
                    package.qualified("auth"): auth.replace("'view': 'v1'", "'view': 'v2'"),
                    package.qualified("setup"): "def init_app(app):\n"
                    "    app.config['RELEASE'] = 'v2'\n",
                }
            )
            assert httpx.get(url + "/login", timeout=30).json() == {"view": "v2", "config": "v2"}
