"""Shared fixtures: real modules written to a temporary package on disk and imported for real."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from illunare import HotReloader, RedisBackend
from illunare.testing import RedisServer, reset_default_reloader
from illunare.web import HotASGI

from .fake_kube import FakeKube

_counter = itertools.count()


class Package:
    """A uniquely named package in a temporary directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.name = f"illunare_test_pkg_{next(_counter)}"
        self.path = root / self.name
        self.path.mkdir()
        (self.path / "__init__.py").write_text("")

    def write(self, module: str, source: str) -> Path:
        """Write ``<package>/<module>.py`` (dedented) and return its path."""
        path = self.path / f"{module}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def module(self, module: str, source: str) -> types.ModuleType:
        """Write a module and import it for real."""
        self.write(module, source)
        return importlib.import_module(self.qualified(module))

    def qualified(self, module: str) -> str:
        """The full dotted name of one of the package's modules."""
        return f"{self.name}.{module}"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Package]:
    """A fresh package on disk; its modules leave sys.modules afterwards."""
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    created = Package(tmp_path)
    try:
        yield created
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == created.name]:
            del sys.modules[name]


def priced_app(package: Package, reloader: HotReloader) -> tuple[HotASGI, str, str]:
    """A hot Starlette app whose module imports a price from a pricing module (100 cents).

    Returns the HotASGI, and the names of the app's module and of the pricing module:
    a release of the pricing module rebuilds the app.
    """
    package.write("pricing", "def price_of(item):\n    return 100\n")
    package.write(
        "main",
        "from starlette.applications import Starlette\n\nfrom .pricing import price_of\n\n"
        "PRICE = price_of('apple')\napp = Starlette()\n",
    )
    main, pricing = package.qualified("main"), package.qualified("pricing")
    return HotASGI(f"{main}:app", reloader=reloader), main, pricing


@pytest.fixture
def reloader() -> HotReloader:
    """A HotReloader keeping the default ten versions."""
    return HotReloader()


@pytest.fixture(autouse=True)
def _fresh_default_reloader() -> Iterator[None]:
    reset_default_reloader()
    yield
    reset_default_reloader()


# The start of a child script that presses Ctrl-C at a chosen moment:
# ``ctrl_c_in("name")`` sends SIGINT to the main thread once it runs a
# function of that name, until it leaves it. Ctrl-C raises even where the parent ignores SIGINT
# (a background job of a shell does), and a loaded machine cannot make it
# come early or late.
CTRL_C = """
import signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)

def ctrl_c_in(name):
    main = threading.main_thread().ident

    def inside():
        frame = sys._current_frames().get(main)
        while frame is not None and frame.f_code.co_name != name:
            frame = frame.f_back
        return frame is not None

    def press():
        while not inside():
            time.sleep(0.001)
        # A signal that comes just before the main thread enters a blocking
        # call (time.sleep) waits for the call to end: press again while the
        # main thread has not left the function.
        while inside():
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.5)

    threading.Thread(target=press, daemon=True).start()
"""


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition()`` becomes true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def run_script(script: str, *args: str, timeout: float = 240) -> str:
    """Run ``script`` in a fresh interpreter; a crash or an error fails the test."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def held_in_another_thread(hold: Callable[[], AbstractContextManager[object]]) -> Iterator[None]:
    """Within the block, another thread is inside the block of ``hold()``."""
    entered, leave = threading.Event(), threading.Event()

    def run() -> None:
        with hold():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert entered.wait(10)
        yield
    finally:
        leave.set()
        thread.join(10)


def in_child(body: Callable[[], bool], timeout: float = 30.0) -> int | None:
    """Run ``body`` in a forked child; its exit status (0: it returned True), None if it hung."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: intended
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os._exit(0 if body() else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def failing_first_stop(error: Exception) -> tuple[list[object], Callable[[object], None]]:
    """A service ``stop`` raising ``error`` on its first call, and the services it was given."""
    stops: list[object] = []

    def stop(service: object) -> None:
        stops.append(service)
        if len(stops) == 1:
            raise error

    return stops, stop


def dedent(source: str) -> str:
    """Dedent a triple-quoted module source."""
    return textwrap.dedent(source)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session; CI installs it, elsewhere its tests skip."""
    if shutil.which("redis-server") is None:
        if os.environ.get("ILLUNARE_REQUIRE_REDIS"):
            pytest.fail("redis-server is required (ILLUNARE_REQUIRE_REDIS is set) but missing")
        pytest.skip("redis-server is not installed (make test in CI installs it)")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


_keys = itertools.count()


@pytest.fixture
def make_backend(redis_server: RedisServer) -> Iterator[Callable[..., RedisBackend]]:
    """RedisBackends on a key and channel of this test's own; closed afterwards."""
    key = f"test:{next(_keys)}:{os.getpid()}"
    made: list[RedisBackend] = []

    def make(**options: object) -> RedisBackend:
        options.setdefault("key", key)
        options.setdefault("channel", key + ":changes")
        backend = RedisBackend(redis_server.url, **options)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(scope="module")
def fake_kube() -> Iterator[FakeKube]:
    """A fake Kubernetes API server whose controller ticks every 0.05 s, for a test module."""
    with FakeKube(tick=0.05) as fake:
        yield fake


_deployment_names = itertools.count()


@pytest.fixture
def deployment_name() -> str:
    """A Deployment name of this test's own (the fake is shared by the module)."""
    return f"web-{next(_deployment_names)}"
