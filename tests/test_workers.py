"""Every worker of a pre-fork or multi-process server follows a save, new workers start current.

The servers are real (gunicorn with sync and uvicorn workers, ``uvicorn
--workers``), the requests real HTTP over a Unix socket; each response says
which worker (pid) served it with which release of a tracked module.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import illunare
from illunare import HotReloader, signals
from illunare._reload.watcher import caught_up
from illunare.web.gunicorn import post_worker_init

from .conftest import Package, eventually, in_child

SRC = str(Path(illunare.__file__).resolve().parents[1])

# The tracked module whose release each response reports. Version 2 refuses
# to load in the process named by boot.REFUSED_IN (the gunicorn master when
# set), which then keeps version 1, as a master that has not swapped yet.
PRICING = """\
import os
from shop import boot
if os.getpid() == boot.REFUSED_IN and {version} > 1:
    raise RuntimeError("this process keeps version 1")
def version():
    return {version}
"""

BOOT = """\
import os
REFUSED_IN = os.getpid() if os.environ.get("REFUSE_IN_MASTER") else None
"""

FLASK_APP = """\
import os, time
from illunare import default_reloader
reloader = default_reloader()
reloader.install("shop")
from flask import Flask
from shop import boot, pricing
app = Flask(__name__)

@app.get("/")
def index():
    time.sleep(0.005)  # keeps the worker busy, so that requests spread over workers
    return {"pid": os.getpid(), "version": pricing.version()}

watcher = reloader.watch(os.path.dirname(__file__))
"""

FASTAPI_APP = """\
import os, time
from illunare import default_reloader
reloader = default_reloader()
reloader.install("shop")
from fastapi import FastAPI
from shop import boot, pricing
app = FastAPI()

@app.get("/")
async def index():
    time.sleep(0.005)  # blocks the event loop: requests spread over workers
    return {"pid": os.getpid(), "version": pricing.version()}

watcher = reloader.watch(os.path.dirname(__file__))
"""

# The same apps, built by HotWSGI/HotASGI (the documented recipe): each reads
# the release once, when it is built, so only a rebuild serves a new one.
HOT_APP = """\
import os, time
from {framework} import {cls}
from shop import boot, pricing
RELEASE = pricing.version()
app = {cls}({name})

@app.get("/")
{define} index():
    time.sleep(0.005)
    return {{"pid": os.getpid(), "version": RELEASE}}
"""

HOT_SERVE = """\
import os
from illunare import default_reloader
from illunare.web import {hot}
app = {hot}("shop.{module}:app")
default_reloader().watch(os.path.dirname(__file__))
"""

GUNICORN_CONF = """\
from illunare.web.gunicorn import post_worker_init
control_socket_disable = True  # gunicorn >= 24: several test servers at once
"""

# Generous bounds for a loaded 2-core machine: correctness, not speed
# (benchmarks/bench_web_workers.py measures the time a save takes).
BOOT_SECONDS = 60.0
SWAP_SECONDS = 20.0


class Shop:
    """A project on disk: package ``shop`` with a Flask and a FastAPI app."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = root / "shop"
        self.package.mkdir()
        (self.package / "__init__.py").write_text("")
        (self.package / "boot.py").write_text(BOOT)
        (self.package / "flaskapp.py").write_text(FLASK_APP)
        (self.package / "fastapp.py").write_text(FASTAPI_APP)
        flask = {"framework": "flask", "cls": "Flask", "name": "__name__", "define": "def"}
        fastapi = {"framework": "fastapi", "cls": "FastAPI", "name": "", "define": "async def"}
        (self.package / "hotflask.py").write_text(HOT_APP.format(**flask))
        (self.package / "hotfast.py").write_text(HOT_APP.format(**fastapi))
        (self.package / "servewsgi.py").write_text(
            HOT_SERVE.format(hot="HotWSGI", module="hotflask")
        )
        (self.package / "serveasgi.py").write_text(
            HOT_SERVE.format(hot="HotASGI", module="hotfast")
        )
        (root / "gunicorn.conf.py").write_text(GUNICORN_CONF)
        self.save(1)

    def save(self, version: int) -> None:
        """Write release ``version`` of ``shop/pricing.py`` (atomically, as editors do)."""
        staged = self.package / "pricing.py.tmp"
        staged.write_text(PRICING.format(version=version))
        staged.replace(self.package / "pricing.py")


class Server:
    """A server process started in the project, and an HTTP client for its Unix socket."""

    def __init__(self, shop: Shop, command: list[str], env: dict[str, str]) -> None:
        self.socket = str(shop.root / "server.sock")
        self.log = shop.root / "server.log"
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shop.root), SRC]), **env}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *[part.format(socket=self.socket) for part in command]],
                cwd=shop.root,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pool = ThreadPoolExecutor(6)
        # No connection is kept: each request is accepted by whichever worker is free.
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=self.socket),
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=10,
        )

    def get(self) -> tuple[int, int]:
        """One request on a new connection: (pid, version) of the worker that served it."""
        response = self._client.get("http://shop/", headers={"Connection": "close"})
        response.raise_for_status()
        answer = response.json()
        return answer["pid"], answer["version"]

    def sample(self, requests: int = 60) -> list[tuple[int, int]]:
        """``requests`` requests, six at a time, so that every worker takes some."""
        return list(self._pool.map(lambda _: self.get(), range(requests)))

    def sample_recycling(self, requests: int) -> list[tuple[int, int]]:
        """As ``sample``, leaving out the connections a recycled worker reset.

        A uvicorn worker that reaches --max-requests resets the connections it
        accepted and had not read yet, with or without illunare.
        """

        def get() -> tuple[int, int] | None:
            try:
                return self.get()
            except httpx.TransportError:
                return None

        answers = self._pool.map(lambda _: get(), range(requests))
        return [answer for answer in answers if answer is not None]

    def wait_until_serving(self, workers: int) -> set[int]:
        """Wait until ``workers`` distinct workers have answered; their pids."""
        deadline = time.monotonic() + BOOT_SECONDS
        while not self._listening():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"nothing listens\n{self.output()}"
            time.sleep(0.05)
        seen: set[int] = set()
        while len(seen) < workers:
            assert time.monotonic() < deadline, f"only {seen} answered\n{self.output()}"
            seen |= {pid for pid, _ in self.sample_recycling(30)}
        return seen

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(self.socket)
            except OSError:
                return False
        return True

    def all_serve(self, version: int, workers: set[int]) -> bool:
        """Whether each of ``workers`` has answered with ``version`` (polled)."""
        latest: dict[int, int] = {}

        def done() -> bool:
            latest.update(self.sample(20))
            return all(latest.get(pid) == version for pid in workers)

        return eventually(done, timeout=SWAP_SECONDS)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self._pool.shutdown()
        self._client.close()
        # SIGTERM again every 5 s: a worker that gunicorn forks as the first
        # one arrives may get it before its own handlers are in place, and
        # lose it (the master then waits for it for its whole graceful timeout).
        for _ in range(4):
            if self.process.poll() is not None:
                break
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # A crash of the server (a negative status: killed by a signal) fails
        # the test, and so does one of a worker (which the server replaces).
        assert self.process.returncode >= 0, self.output()
        for sign in ("Traceback", "[ERROR]", "[CRITICAL]", "ERROR:"):
            assert sign not in self.output(), self.output()


#: starts a server: ``serve(command, **environment)``
Serve = Callable[..., Server]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


@pytest.fixture
def serve(shop: Shop) -> Iterator[Serve]:
    """Start servers in the shop project; each is stopped (and checked) afterwards."""
    started: list[Server] = []

    def start(command: list[str], **env: str) -> Server:
        server = Server(shop, command, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def gunicorn(app: str, *options: str) -> list[str]:
    """The command line of gunicorn with 3 workers and the illunare hooks."""
    return ["gunicorn", "-c", "gunicorn.conf.py", "-w", "3", "-b", "unix:{socket}", *options, app]


UVICORN_WORKER = ("-k", "uvicorn.workers.UvicornWorker")


class TestGunicorn:
    @pytest.mark.parametrize(
        ("app", "options"),
        [
            pytest.param("shop.flaskapp:app", (), id="sync"),
            pytest.param("shop.flaskapp:app", ("--preload",), id="sync-preload"),
            pytest.param("shop.fastapp:app", UVICORN_WORKER, id="uvicorn"),
            pytest.param("shop.fastapp:app", (*UVICORN_WORKER, "--preload"), id="uvicorn-preload"),
            pytest.param("shop.servewsgi:app", (), id="HotWSGI-sync"),
            pytest.param("shop.servewsgi:app", ("--preload",), id="HotWSGI-sync-preload"),
            pytest.param("shop.serveasgi:app", UVICORN_WORKER, id="HotASGI-uvicorn"),
            pytest.param(
                "shop.serveasgi:app", (*UVICORN_WORKER, "--preload"), id="HotASGI-uvicorn-preload"
            ),
        ],
    )
    def test_a_save_reaches_every_worker(
        self, shop: Shop, serve: Serve, app: str, options: tuple[str, ...]
    ) -> None:
        """Three workers serve release 1; after a save, each of them serves release 2."""
        server = serve(gunicorn(app, *options))
        workers = server.wait_until_serving(3)
        assert {version for _, version in server.sample()} == {1}
        shop.save(2)
        assert server.all_serve(2, workers), server.output()
        assert {version for _, version in server.sample()} == {2}

    @pytest.mark.parametrize(
        ("app", "options", "env"),
        [
            pytest.param("shop.flaskapp:app", (), {}, id="sync"),
            pytest.param(
                "shop.flaskapp:app",
                ("--preload",),
                {"REFUSE_IN_MASTER": "1"},
                id="sync-preload-master-behind",
            ),
            pytest.param(
                "shop.fastapp:app",
                (*UVICORN_WORKER, "--preload"),
                {"REFUSE_IN_MASTER": "1"},
                id="uvicorn-preload-master-behind",
            ),
            pytest.param(
                "shop.servewsgi:app",
                ("--preload",),
                {"REFUSE_IN_MASTER": "1"},
                id="HotWSGI-sync-preload-master-behind",
            ),
        ],
    )
    def test_recycled_workers_start_on_the_current_release(
        self,
        shop: Shop,
        serve: Serve,
        app: str,
        options: tuple[str, ...],
        env: dict[str, str],
    ) -> None:
        """With --max-requests, every worker that replaces a recycled one serves release 2 at once.

        With --preload the master keeps release 1 here (the save is refused
        there): each new worker is forked on release 1 and must catch up
        before its first request.
        """
        server = serve(gunicorn(app, "--max-requests", "25", *options), **env)
        server.wait_until_serving(3)
        shop.save(2)
        assert eventually(
            lambda: {version for _, version in server.sample_recycling(20)} == {2},
            timeout=SWAP_SECONDS,
        ), server.output()
        before = {pid for pid, _ in server.sample_recycling(60)}
        answers = server.sample_recycling(150)  # each worker recycles after 25 requests
        assert {pid for pid, _ in answers} - before, "no worker was recycled"
        assert [answer for answer in answers if answer[1] != 2] == []


class TestUvicornWorkers:
    @pytest.mark.parametrize("app", ["shop.fastapp:app", "shop.serveasgi:app"])
    def test_a_save_reaches_every_worker(self, shop: Shop, serve: Serve, app: str) -> None:
        """uvicorn --workers 2 (each worker imports the app itself): both follow a save."""
        server = serve(["uvicorn", app, "--workers", "2", "--uds", "{socket}"])
        workers = server.wait_until_serving(2)
        shop.save(2)
        assert server.all_serve(2, workers), server.output()


class TestGunicornConfig:
    def test_the_hooks_module_is_a_gunicorn_config(self) -> None:
        """``-c python:illunare.web.gunicorn`` sets post_worker_init and nothing else."""
        from gunicorn.app.base import Application  # type: ignore[import-untyped]  # a test extra

        class Probe(Application):  # type: ignore[misc]  # gunicorn has no type hints
            def load_config(self) -> None:
                """Nothing from the command line: only the defaults."""

            def load(self) -> None: ...

        probe = Probe()
        defaults = {name: setting.value for name, setting in probe.cfg.settings.items()}
        probe.load_config_from_module_name_or_filename("python:illunare.web.gunicorn")
        changed = {
            name
            for name, setting in probe.cfg.settings.items()
            if setting.value is not defaults[name]
        }
        assert changed == {"post_worker_init"}
        assert probe.cfg.post_worker_init is post_worker_init


@pytest.fixture
def pricing(package: Package, reloader: HotReloader) -> types.ModuleType:
    module = package.module("pricing", "def version():\n    return 1\n")
    reloader.track(module)
    return module


class TestCatchUp:
    def test_a_save_made_before_watching_is_swapped_by_watch(
        self, pricing: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A file saved after its module was imported but before watch() is in effect on return."""
        package.write("pricing", "def version():\n    return 2\n")
        with reloader.watch(package.path):
            assert pricing.version() == 2

    def test_unchanged_files_make_no_version(
        self, pricing: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Catching up swaps only what changed: an unchanged module keeps version 1."""
        with reloader.watch(package.path):
            assert [version.number for version in reloader.history(pricing.__name__)] == [1]

    def test_only_watched_files_are_caught_up(
        self, pricing: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A changed module outside the watched paths, even one named like them, is left alone."""
        sibling = package.path.with_name(package.path.name + "_sibling.py")
        sibling.write_text("def version():\n    return 1\n")
        importlib.invalidate_caches()
        outside = reloader.track(importlib.import_module(sibling.stem))
        try:
            sibling.write_text("def version():\n    return 2\n")
            package.write("pricing", "def version():\n    return 2\n")
            with reloader.watch(package.path):
                assert (pricing.version(), outside.version()) == (2, 1)
        finally:
            del sys.modules[sibling.stem]

    def test_a_child_forked_before_its_parent_swapped_catches_up(
        self, pricing: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A save the parent has not taken in reaches a child forked afterwards.

        The parent refuses the save (as a master that has not swapped yet);
        the child's watcher starts after the save, so no change ever arrives
        for it: only catching up brings the child to version 2.
        """
        refused = threading.Event()
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: refused.set()),
            reloader.watch(package.path),
        ):
            package.write(
                "pricing",
                f"import os\nassert os.getpid() != {os.getpid()}\ndef version():\n    return 2\n",
            )
            assert refused.wait(10)
            assert pricing.version() == 1
            assert in_child(lambda: caught_up(10) == [] and pricing.version() == 2) == 0

    def test_the_gunicorn_hook_returns_once_the_worker_caught_up(
        self, pricing: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """post_worker_init returns only when a forked worker runs the release on disk."""
        package.write("pricing", "def version():\n    return 2\n")
        # The parent watches from here on (and has swapped already: the child,
        # forked now, must catch up at once, before serving).
        with reloader.watch(package.path):
            package.write("pricing", "def version():\n    return 3\n")

            def worker() -> bool:
                post_worker_init(None)
                return bool(pricing.version() == 3)

            assert in_child(worker) == 0

    def test_the_gunicorn_hook_warns_without_a_watcher(self) -> None:
        """A worker with no running watcher is told in the log: saves will not reach it."""
        script = (
            "import logging\n"
            "logging.basicConfig(format='%(levelname)s %(name)s %(message)s')\n"
            "from illunare.web.gunicorn import post_worker_init\n"
            "post_worker_init(None)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
        )
        assert result.stderr.startswith("WARNING illunare gunicorn worker ")
        assert "has no running watcher" in result.stderr
