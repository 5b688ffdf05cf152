"""Canary web apps: a release with ``rollout=`` splits a hot app's requests between two apps."""

from __future__ import annotations

import collections
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import illunare
from illunare import (
    HotReloader,
    InvalidArgumentError,
    Rollout,
    Shadow,
    Thresholds,
    ValidationError,
)
from illunare.web import HotASGI, HotWSGI, client_key, cookie_key, header_key

from .conftest import Package, dedent, eventually
from .webservers import Load, uvicorn_server, wsgi_server

Key = Callable[..., object]

if TYPE_CHECKING:
    from illunare._rollout.handle import RolloutHandle

SRC = str(Path(illunare.__file__).resolve().parents[1])

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


# A FastAPI shop whose requests report which version served each part of them.
# pricing.py is the module released as a canary; routes.py imports it (so the
# release executes routes.py and main.py anew: a new app); deps.py imports it
# only when called, so it is no part of the release, and its call into
# pricing is routed by the request's pin alone.

EVENTS = """
import threading

log = []                          # (what, release of the app)
slow_started = threading.Event()
slow_release = threading.Event()
"""

PRICING = """
import itertools

RELEASE = "v1"
FAIL_EVERY = 0                    # every n-th request this version serves fails; 0: none
_served = itertools.count(1)


def tag():
    return RELEASE


def failing():
    return FAIL_EVERY > 0 and next(_served) % FAIL_EVERY == 0
"""

DEPS = """
def tag():
    from {package} import pricing

    return pricing.tag()
"""

ROUTES = """
import asyncio

from fastapi import APIRouter, Depends, Response

import {events} as events
from .deps import tag as dep_tag
from .pricing import failing, tag

BUILT_WITH = tag()                # the release the app was built from
router = APIRouter()


@router.get("/tag")
def answer(response: Response, dep: str = Depends(dep_tag)) -> dict:
    if failing():
        response.status_code = 500
    return {"app": BUILT_WITH, "direct": tag(), "dep": dep}


@router.get("/slow")
async def slow() -> dict:
    events.slow_started.set()
    while not events.slow_release.is_set():
        await asyncio.sleep(0.005)
    events.log.append(("slow done", BUILT_WITH))
    return {"app": BUILT_WITH}
"""

MAIN = """
from contextlib import asynccontextmanager

from fastapi import FastAPI

import {events} as events
from .routes import BUILT_WITH, router


@asynccontextmanager
async def lifespan(app):
    events.log.append(("startup", BUILT_WITH))
    yield
    events.log.append(("shutdown", BUILT_WITH))


app = FastAPI(lifespan=lifespan)
app.include_router(router)
"""


@dataclass
class Shop:
    """The shop served through HotASGI by a real uvicorn."""

    package: Package
    reloader: HotReloader
    hot: HotASGI
    url: str
    events: types.ModuleType

    def release(self, rollout: Rollout, *, fail_every: int = 0) -> RolloutHandle:
        """Release pricing.py v2 (failing every ``fail_every``-th request it serves) as a canary."""
        source = dedent(PRICING).replace('"v1"', '"v2"')
        source = source.replace("FAIL_EVERY = 0", f"FAIL_EVERY = {fail_every}")
        return self.reloader.swap(self.package.qualified("pricing"), source, rollout=rollout)

    def get(self, path: str = "/tag", user: str | None = None) -> httpx.Response:
        headers = {} if user is None else {"X-User": user}
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def lifespans(self, release: str) -> list[str]:
        return [what for what, built in self.events.log if built == release and what != "slow done"]


@pytest.fixture
def shop(package: Package, reloader: HotReloader) -> Iterator[Shop]:
    events_name = f"{package.name}_events"
    (package.path.parent / f"{events_name}.py").write_text(dedent(EVENTS))
    events = importlib.import_module(events_name)
    for module, source in {
        "pricing": PRICING,
        "deps": DEPS,
        "routes": ROUTES,
        "main": MAIN,
    }.items():
        package.write(
            module,
            dedent(source).replace("{events}", events_name).replace("{package}", package.name),
        )
    hot = HotASGI(f"{package.name}.main:app", reloader=reloader)
    try:
        with uvicorn_server(hot) as url:
            yield Shop(package, reloader, hot, url, events)
    finally:
        events.slow_release.set()
        sys.modules.pop(events_name, None)


#: client threads of a load
CLIENTS = 4


def by_user(n: int) -> dict[str, str]:
    """The headers of the ``n``-th request of a load: 1000 users in turn."""
    return {"X-User": f"u{n % 1000}"}


def mixed(answer: dict[str, Any]) -> bool:
    """Whether the parts of an answer came from different versions."""
    return len({answer["app"], answer["direct"], answer["dep"]}) != 1


class Answers:
    """What a load's answers said: which app served each, and those not of one version.

    A request that took the app just before the switch starting the split is
    not pinned, and one in flight at the switch ending it calls the version
    then current: at most one per client at each switch may mix versions.
    """

    def __init__(self, *, failing: str | None = None) -> None:
        self.failing = failing
        self.apps: collections.Counter[str] = collections.Counter()
        self.mixed: list[dict[str, str]] = []

    def accept(self, response: httpx.Response) -> bool:
        """An answer is good: 200 (or 500 from the ``failing`` release), whatever its version."""
        answer = response.json()
        if mixed(answer):
            self.mixed.append(answer)
        self.apps[answer["app"]] += 1
        return response.status_code == 200 or (
            response.status_code == 500 and answer["app"] == self.failing
        )


class TestCanaryASGI:
    """A FastAPI app under uvicorn, under real HTTP load, released as a canary."""

    def test_a_healthy_canary_promotes(self, shop: Shop) -> None:
        """Both apps serve during the rollout, no request fails, and the new app then serves all."""
        answers = Answers()
        rollout = Rollout(steps=(50, 100), bake=0.5, min_samples=10, sticky=header_key("x-user"))
        with Load(
            shop.url, "/tag", clients=CLIENTS, accept=answers.accept, headers=by_user
        ) as load:
            handle = shop.release(rollout)
            assert handle.wait(timeout=60) == "promoted"
        assert load.failures == []
        assert len(answers.mixed) <= 2 * CLIENTS, answers.mixed
        assert {"v1", "v2"} <= set(answers.apps)
        assert [shop.get(user=f"u{n}").json()["app"] for n in range(20)] == ["v2"] * 20
        assert (
            shop.hot.version,
            shop.reloader.current(shop.package.qualified("pricing")).number,
        ) == (2, 2)
        versions = handle.report()["versions"]
        assert min(versions[1]["calls"], versions[2]["calls"]) > 0

    def test_a_failing_canary_is_rolled_back_at_its_first_step(self, shop: Shop) -> None:
        """The new app fails one request in five: rolled back at 10%; then the old app serves."""
        answers = Answers(failing="v2")
        rollout = Rollout(steps=(10, 50, 100), bake=0.5, min_samples=20)
        with Load(
            shop.url, "/tag", clients=CLIENTS, accept=answers.accept, headers=by_user
        ) as load:
            handle = shop.release(rollout, fail_every=5)
            assert handle.wait(timeout=60) == "rolled_back"
            # Requests in flight at the revert may still finish on the new app.
            settled = sum(answers.apps.values()) + 40
            assert eventually(lambda: sum(answers.apps.values()) >= settled)
            after = answers.apps.copy()
            assert eventually(lambda: sum((answers.apps - after).values()) >= 50)
        assert load.failures == []
        assert len(answers.mixed) <= 2 * CLIENTS, answers.mixed
        assert answers.apps["v2"] == after["v2"] > 0
        report = handle.report()
        assert [(step["weight"], step["verdict"]) for step in report["steps"]] == [(10, "breached")]
        assert report["versions"][2]["errors"] > 0
        assert (
            shop.hot.version,
            shop.reloader.current(shop.package.qualified("pricing")).number,
        ) == (1, 1)
        assert eventually(lambda: shop.lifespans("v2") == ["startup", "shutdown"])
        assert shop.lifespans("v1") == ["startup"]

    def test_a_user_keeps_one_app_within_a_step(self, shop: Shop) -> None:
        """Sticky by a header: each user's requests all go to one app, every call on its version."""
        handle = shop.release(Rollout(steps=(50,), bake=3600, sticky=header_key("x-user")))
        users = [f"user-{n}" for n in range(100)]
        first = {user: shop.get(user=user).json() for user in users}
        again = {user: shop.get(user=user).json() for user in reversed(users)}
        handle.abort()
        assert first == again
        assert {answer["app"] for answer in first.values()} == {"v1", "v2"}
        assert [answer for answer in first.values() if mixed(answer)] == []

    def test_a_rollout_outside_the_package_splits_no_request(self, shop: Shop) -> None:
        """A module outside the app's package under rollout: no new app; its calls alone split."""
        name = shop.package.name + "_outside"
        (shop.package.path.parent / f"{name}.py").write_text("def tag():\n    return 'v1'\n")
        try:
            module = shop.reloader.track(name)
            handle = shop.reloader.swap(
                name, "def tag():\n    return 'v2'\n", rollout=Rollout(steps=(50,), bake=3600)
            )
            apps = {shop.get(user=f"u{n}").json()["app"] for n in range(20)}
            tags = {module.tag() for _ in range(200)}
            handle.abort()
        finally:
            sys.modules.pop(name, None)
        assert (apps, tags, shop.hot.version) == ({"v1"}, {"v1", "v2"}, 1)

    def test_a_shadow_run_that_would_rebuild_the_app_is_refused(self, shop: Shop) -> None:
        """A shadow run of a release rebuilding the app (which would shadow nothing) is refused."""
        source = dedent(PRICING).replace('"v1"', '"v2"')
        with pytest.raises(ValidationError, match="cannot shadow a release that rebuilds"):
            shop.reloader.swap(shop.package.qualified("pricing"), source, shadow=Shadow())
        assert {shop.get(user=f"u{n}").json()["app"] for n in range(10)} == {"v1"}
        assert shop.hot.version == 1
        # Nothing is left held: the release goes through as a plain swap.
        shop.reloader.swap(shop.package.qualified("pricing"), source)
        assert shop.get().json()["app"] == "v2"

    def test_requests_in_flight_finish_on_their_app_after_an_abort(self, shop: Shop) -> None:
        """A slow request on the new app outlives an abort; the new app shuts down after it."""
        handle = shop.release(Rollout(steps=(50,), bake=3600, sticky=header_key("x-user")))
        user = next(f"u{n}" for n in range(1000) if shop.get(user=f"u{n}").json()["app"] == "v2")
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(shop.get, "/slow", user)
            assert shop.events.slow_started.wait(30)
            handle.abort()
            assert shop.get(user=user).json()["app"] == "v1"
            assert shop.lifespans("v2") == ["startup"]
            shop.events.slow_release.set()
            assert slow.result().json() == {"app": "v2"}
        assert eventually(lambda: shop.lifespans("v2") == ["startup", "shutdown"])
        done = shop.events.log.index(("slow done", "v2"))
        assert shop.events.log.index(("shutdown", "v2")) > done


# Bare apps whose new release fails every request it serves, in one of two ways.
ASGI_APP = """
RELEASE = "v1"
FAILURE = None                    # "status": answers 503; "raises": raises before answering


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if FAILURE == "raises":
        raise RuntimeError("the new app fails")
    status = 503 if FAILURE == "status" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": RELEASE.encode()})
"""

WSGI_APP = """
RELEASE = "v1"
FAILURE = None                    # "status", "raises", or "raises iterating": in the response


def app(environ, start_response):
    if FAILURE == "raises":
        raise RuntimeError("the new app fails")
    return answer(start_response)


def answer(start_response):
    # A generator: the server runs it (start_response too) as it iterates.
    if FAILURE == "raises iterating":
        raise RuntimeError("the new app fails")
    start_response("503 Service Unavailable" if FAILURE == "status" else "200 OK", [])
    yield RELEASE.encode()
"""


class TestErrors:
    """What the split is told: a request is an error when the app raises or answers 5xx."""

    @pytest.mark.parametrize(
        ("kind", "failure"),
        [
            ("asgi", "status"),
            ("asgi", "raises"),
            ("wsgi", "status"),
            ("wsgi", "raises"),
            ("wsgi", "raises iterating"),
        ],
    )
    def test_failing_requests_are_errors(
        self, package: Package, reloader: HotReloader, kind: str, failure: str
    ) -> None:
        """Every request the new app serves is an error, none the old app serves."""
        package.write("app", ASGI_APP if kind == "asgi" else WSGI_APP)
        name = package.qualified("app")
        hot = (
            HotASGI(f"{name}:app", reloader=reloader)
            if kind == "asgi"
            else HotWSGI(f"{name}:app", reloader=reloader)
        )
        server = uvicorn_server(hot) if kind == "asgi" else wsgi_server(hot)
        with server as url:
            source = dedent(ASGI_APP if kind == "asgi" else WSGI_APP)
            source = source.replace('"v1"', '"v2"').replace(
                "FAILURE = None", f"FAILURE = {failure!r}"
            )
            # Every error is allowed: what is counted is watched, not judged.
            tolerant = Rollout(
                steps=(50,),
                bake=3600,
                sticky=header_key("x-user"),
                thresholds=Thresholds(max_error_rate=1.0),
            )
            handle = reloader.swap(name, source, rollout=tolerant)
            answers = collections.Counter(
                httpx.get(url, headers={"X-User": f"u{n}"}, timeout=30).status_code
                for n in range(60)
            )
            old, new = answers[200], answers[503 if failure == "status" else 500]
            assert old + new == 60
            assert min(old, new) > 0

            def counted() -> list[tuple[int, int]]:
                versions = handle.report()["versions"]
                return [(versions[n]["calls"], versions[n]["errors"]) for n in (1, 2)]

            assert eventually(lambda: counted() == [(old, 0), (new, new)])
            handle.abort()


FLASK_MAIN = """
from flask import Flask

from .views import shop


def create_app():
    app = Flask(__name__)
    app.register_blueprint(shop)
    return app
"""

FLASK_VIEWS = """
import os

from flask import Blueprint

from .deps import tag as dep_tag
from .pricing import failing, tag

BUILT_WITH = tag()
shop = Blueprint("shop", __name__)


@shop.get("/tag")
def answer():
    status = 500 if failing() else 200
    answer = {"app": BUILT_WITH, "direct": tag(), "dep": dep_tag(), "pid": os.getpid()}
    return answer, status
"""


class TestCanaryWSGI:
    """A Flask app under werkzeug's threaded server, under real HTTP load, released as a canary."""

    @pytest.fixture
    def flask_shop(self, package: Package, reloader: HotReloader) -> Iterator[tuple[str, HotWSGI]]:
        sources = {"pricing": PRICING, "deps": DEPS, "views": FLASK_VIEWS, "main": FLASK_MAIN}
        for module, source in sources.items():
            package.write(module, dedent(source).replace("{package}", package.name))
        hot = HotWSGI(f"{package.name}.main:create_app()", reloader=reloader)
        with wsgi_server(hot) as url:
            yield url, hot

    @pytest.mark.parametrize(("fail_every", "status"), [(0, "promoted"), (5, "rolled_back")])
    def test_a_canary_under_load(
        self,
        flask_shop: tuple[str, HotWSGI],
        package: Package,
        reloader: HotReloader,
        fail_every: int,
        status: str,
    ) -> None:
        """Healthy: promoted; failing one request in five: rolled back; every answer one version."""
        url, hot = flask_shop
        answers = Answers(failing="v2")
        source = dedent(PRICING).replace('"v1"', '"v2"')
        source = source.replace("FAIL_EVERY = 0", f"FAIL_EVERY = {fail_every}")
        pricing = package.qualified("pricing")
        rollout = Rollout(steps=(20, 100), bake=0.5, min_samples=20, sticky=header_key("x-user"))
        with Load(url, "/tag", clients=CLIENTS, accept=answers.accept, headers=by_user) as load:
            handle = reloader.swap(pricing, source, rollout=rollout)
            assert handle.wait(timeout=60) == status
        assert load.failures == []
        assert len(answers.mixed) <= 2 * CLIENTS, answers.mixed
        assert {"v1", "v2"} <= set(answers.apps)
        expected = 2 if status == "promoted" else 1
        assert (hot.version, reloader.current(pricing).number) == (expected, expected)
        assert httpx.get(url + "/tag", timeout=30).json()["app"] == f"v{expected}"


def listening(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# Each gunicorn worker starts the same canary release once it has loaded the app.
GUNICORN_CONF = """
import pathlib

control_socket_disable = True  # gunicorn >= 24: several test servers at once


def post_worker_init(worker):
    from illunare import Rollout, default_reloader
    from illunare.web import header_key

    worker.canary = default_reloader().swap(
        "shop.pricing",
        pathlib.Path("pricing_v2.txt").read_text(),
        rollout=Rollout(steps=(50,), bake=3600, sticky=header_key("x-user")),
    )
"""


class TestGunicorn:
    """Sync workers of a real gunicorn, each running the same canary of its own."""

    def test_a_user_gets_one_app_in_every_worker(self, tmp_path: Path) -> None:
        """Two workers split alike: all the answers to one user come from one app, in either."""
        package = tmp_path / "shop"
        package.mkdir()
        (package / "__init__.py").write_text("")
        sources = {"pricing": PRICING, "deps": DEPS, "views": FLASK_VIEWS, "main": FLASK_MAIN}
        for module, source in sources.items():
            (package / f"{module}.py").write_text(dedent(source).replace("{package}", "shop"))
        (package / "hot.py").write_text(
            "from illunare.web import HotWSGI\n\napp = HotWSGI('shop.main:create_app()')\n"
        )
        (tmp_path / "pricing_v2.txt").write_text(dedent(PRICING).replace('"v1"', '"v2"'))
        (tmp_path / "gunicorn.conf.py").write_text(dedent(GUNICORN_CONF))
        sock, log = tmp_path / "server.sock", tmp_path / "server.log"
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", "2"]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}
        with log.open("wb") as output:
            server = subprocess.Popen(
                [*command, "-b", f"unix:{sock}", "shop.hot:app"],
                cwd=tmp_path,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # No connection is kept: each request is accepted by whichever worker is free.
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(sock)),
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=30,
        )
        try:
            assert eventually(lambda: listening(sock), timeout=60), log.read_text()

            def get(n: int) -> tuple[str, dict[str, Any]]:
                user = f"u{n % 40}"
                answer = client.get("http://shop/tag", headers={"X-User": user}).json()
                return user, answer

            answers: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)

            def sample(requests: int) -> set[int]:
                """``requests`` requests, six at a time; the workers that answered."""
                with ThreadPoolExecutor(6) as pool:
                    got = list(pool.map(get, range(requests)))
                for user, answer in got:
                    answers[user].append(answer)
                return {answer["pid"] for _, answer in got}

            # Both workers have booted (and started their canary) before the sample.
            deadline = time.monotonic() + 60
            workers: set[int] = set()
            while len(workers) < 2:
                assert time.monotonic() < deadline, log.read_text()
                workers |= sample(40)
            sample(400)
        finally:
            client.close()
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        output = log.read_text(errors="replace")
        assert server.returncode >= 0, output
        assert "Traceback" not in output, output
        apps = {user: {answer["app"] for answer in got} for user, got in answers.items()}
        assert all(len(released) == 1 for released in apps.values()), apps
        assert {app for (app,) in apps.values()} == {"v1", "v2"}
        assert [answer for got in answers.values() for answer in got if mixed(answer)] == []
        served_by = {user: {answer["pid"] for answer in got} for user, got in answers.items()}
        assert max(map(len, served_by.values())) == 2, served_by
