"""Hot web apps: a FastAPI app under uvicorn, loaded by wrk, rebuilt and rolled back by releases.

Every figure is a ratio against its baseline measured in the same run:
failed requests while the app is rebuilt 100 times and rolled back 100 times
(goal: none at all), p99 latency during those releases against the same
load without them, a request through HotASGI against the bare app, and a
rebuild of the 20-route app against a cold import of it in a fresh process.

Run: make bench  (or .venv/bin/python benchmarks/bench_web.py); needs wrk.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from _common import report
from illunare import HotReloader
from illunare.web import HotASGI

ROUTES = 20
RELEASES = 100
WRK = shutil.which("wrk")

MAIN = """
from contextlib import asynccontextmanager

from fastapi import FastAPI

from benchshop.routes import router


@asynccontextmanager
async def lifespan(app):
    yield {"ready": True}


app = FastAPI(lifespan=lifespan)
app.include_router(router)
"""

MODELS = """
from pydantic import BaseModel


class Quote(BaseModel):
    item: str
    cents: int
    release: int
"""


def routes_source(release: int) -> str:
    """A routes module with ROUTES routes, answering with ``release``."""
    lines = [
        "from fastapi import APIRouter",
        "",
        "from benchshop.models import Quote",
        "",
        f"RELEASE = {release}",
        "router = APIRouter()",
        "",
    ]
    for index in range(ROUTES):
        lines += [
            f"@router.get('/r{index}/{{item}}')",
            f"async def route_{index}(item: str) -> Quote:",
            f"    return Quote(item=item, cents={index}, release=RELEASE)",
            "",
        ]
    return "\n".join(lines)


def write_app() -> Path:
    """The benchshop package in a fresh directory, put first on sys.path."""
    root = Path(tempfile.mkdtemp(prefix="illunare-bench-web-"))
    package = root / "benchshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(MAIN)
    (package / "models.py").write_text(MODELS)
    (package / "routes.py").write_text(routes_source(1))
    sys.path.insert(0, str(root))
    return root


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """uvicorn serving ``app`` in a thread on a free port; yields its URL."""
    config = uvicorn.Config(app, port=0, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


class Wrk:
    """wrk running against ``url`` until ``stop()``; its summary parsed."""

    def __init__(self, url: str, seconds: float = 600) -> None:
        assert WRK is not None
        command = [WRK, "-t1", "-c8", f"-d{int(seconds)}s", "--latency", url]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, float]:
        """Stop wrk (SIGINT makes it print its summary) and return its figures."""
        self._process.send_signal(2)
        output, _ = self._process.communicate(60)
        return parse(output)

    def wait(self) -> dict[str, float]:
        output, _ = self._process.communicate()
        return parse(output)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse(output: str) -> dict[str, float]:
    """Requests, requests/s, p99 latency (s), non-2xx answers and socket errors of wrk's summary."""
    figures = {"non2xx": 0.0, "socket_errors": 0.0}
    found = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", output)
    if found is None or rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    figures["requests"] = float(found[1])
    figures["rate"] = float(rate[1])
    figures["p99"] = float(p99[1]) * _UNITS[p99[2]]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx is not None:
        figures["non2xx"] = float(non2xx[1])
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors is not None:
        figures["socket_errors"] = float(sum(int(n) for n in errors.groups()))
    return figures


def releases(reloader: HotReloader, hot: HotASGI) -> list[float]:
    """RELEASES rebuilds, each rolled back; returns the rebuild durations."""
    durations = []
    for release in range(2, RELEASES + 2):
        start = time.perf_counter()
        reloader.swap("benchshop.routes", routes_source(release))
        durations.append(time.perf_counter() - start)
        assert hot.version == release
        reloader.rollback_many(["benchshop.routes", "benchshop.main"])
        time.sleep(0.02)  # releases come apart, as a team's would
    return durations


def cold_import(root: Path) -> float:
    """Seconds to import the app in a fresh process (FastAPI and Pydantic included)."""
    code = (
        "import sys, time; start = time.perf_counter(); import benchshop.main; "
        "print(time.perf_counter() - start)"
    )
    samples = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
        )
        samples.append(float(done.stdout))
    return min(samples)


def call_cost(app: Any) -> float:
    """Best seconds per direct ASGI call of ``app`` (GET /r7/apple, in process, no network)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/r7/apple", "raw_path": b"/r7/apple", "query_string": b"",
        "root_path": "", "headers": [], "server": ("test", 80), "client": ("test", 1),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def calls(number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - start) / number

    return min(asyncio.run(calls(1000)) for _ in range(15))


def load_figures(reloader: HotReloader, hot: HotASGI) -> list[float]:
    """The figures under wrk; returns the durations of the rebuilds made under load."""
    import benchshop.main as bare_module

    path = "/r7/apple"
    with serve(bare_module.app) as bare_url, serve(hot) as hot_url:
        # A request through HotASGI against the bare app: five pairs of runs, the
        # median of their ratios (pairs cancel the drift of a shared machine).
        ratios = []
        for _ in range(5):
            bare = Wrk(bare_url + path, 2).wait()["rate"]
            through = Wrk(hot_url + path, 2).wait()["rate"]
            print(f"{bare:.0f} requests/s bare, {through:.0f} through HotASGI")
            ratios.append(bare / through)
        report("request through HotASGI / bare app under uvicorn", statistics.median(ratios),
               "x", "<= 1.02")  # fmt: skip
        quiet = Wrk(hot_url + path, 8).wait()
        load = Wrk(hot_url + path)
        durations = releases(reloader, hot)
        during = load.stop()
    print(f"{int(during['requests'])} requests during {RELEASES} rebuilds and {RELEASES} "
          f"rollbacks: {int(during['non2xx'])} non-2xx, {int(during['socket_errors'])} "
          "socket errors")  # fmt: skip
    print(
        f"p99 {quiet['p99'] * 1e3:.2f} ms ({quiet['rate']:.0f} requests/s) without releases, "
        f"{during['p99'] * 1e3:.2f} ms ({during['rate']:.0f} requests/s) during them"
    )
    failed = during["non2xx"] + during["socket_errors"]
    report("requests failed during rebuilds and rollbacks", failed, "", "0")
    report("p99 latency during rebuilds / without", during["p99"] / quiet["p99"], "x", "<= 1.2")
    return durations


def main() -> None:
    root = write_app()
    reloader = HotReloader()
    hot = HotASGI("benchshop.main:app", reloader=reloader)
    if WRK is None:
        print("wrk is missing (apt-get install wrk): the figures under load are NOT measured")
        durations = releases(reloader, hot)
    else:
        durations = load_figures(reloader, hot)
    import benchshop.main as bare_module

    bare, through = call_cost(bare_module.app), call_cost(hot)
    print(f"a direct call: {bare * 1e6:.1f} us to the bare app, {through * 1e6:.1f} us through")
    report("direct ASGI call through HotASGI / bare app (no server)", through / bare, "x", "-")
    rebuild = statistics.median(durations)
    cold = cold_import(root)
    print(f"rebuild of the app {rebuild * 1e3:.1f} ms, cold import {cold * 1e3:.1f} ms")
    report(f"rebuild of a {ROUTES}-route FastAPI app / cold import", rebuild / cold, "x", "<= 0.5")


if __name__ == "__main__":
    main()
