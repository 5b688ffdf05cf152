"""Hot web apps: a FastAPI app under uvicorn, under load, rebuilt and rolled back by releases.

Every figure is a ratio against its baseline measured in the same run:
failed requests while the app is rebuilt 100 times and rolled back 100 times
(goal: none at all), p99 latency during those releases against the same
load without them, a request through HotASGI against the bare app, and a
rebuild of the 20-route app against a cold import of it in a fresh process.

The load for the latency figures is a fixed request rate (``_load.py``, in a
process of its own), as a production service sees: 15% of what the server
answers at most (measured by wrk just before), on 16 keep-alive
connections, each request's latency counted from when it was due. A closed
loop that saturates the one uvicorn process (wrk with as many connections as
it can serve) is no measure of latency: any CPU a release takes then shows
up as latency, however it is spent. The load runs throughout; the 100
rebuilds and 100 rollbacks come in 10 rounds of 10 each, 20 ms apart as a
team's releases would, with 3 s without releases before each round. p99
during rebuilds is that of the requests due while a round ran; the baseline,
that of the requests due in the quiet seconds (from 1 s after a round):
the same load in the same run, interleaved with the releases so that the
drift of a shared machine weighs on both alike.

A request through HotASGI against the bare app: wrk saturating each server
for one second, in pairs whose order alternates, the median of the ratios
(pairs cancel the drift of a shared machine); and the cost of a direct
call, in process, without a server; and, for information, that of a direct
call through a canary release splitting the requests 50/50.

Run: make bench  (or .venv/bin/python benchmarks/bench_web.py); needs wrk.
"""

from __future__ import annotations

import asyncio
import json
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
from illunare import HotReloader, Rollout
from illunare.web import HotASGI

ROUTES = 20
RELEASES = 100
WRK = shutil.which("wrk")
# The fixed-rate load: this share of the server's capacity, on this many connections.
SHARE = 0.15
CONNECTIONS = 16
# Rounds of releases, seconds without releases before each (the first SETTLE
# of them not counted in the baseline), and pairs of wrk runs for the
# request through HotASGI.
ROUNDS = 10
QUIET = 3.0
SETTLE = 1.0
PAIRS = 15
# A median latency without releases beyond this (s): the load outran the server.
BEHIND = 0.1

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


def wrk(url: str, seconds: int) -> dict[str, float]:
    """The figures of wrk saturating ``url`` for ``seconds``."""
    assert WRK is not None
    command = [WRK, "-t1", "-c8", f"-d{seconds}s", "--latency", url]
    return parse(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


class Load:
    """The fixed-rate load of ``_load.py`` against ``url`` until ``stop()``."""

    def __init__(self, url: str, rate: float) -> None:
        script = Path(__file__).with_name("_load.py")
        command = [sys.executable, str(script), url, str(rate), str(CONNECTIONS)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.5)  # connected and on schedule

    def stop(self) -> tuple[int, list[tuple[float, float]]]:
        """Failed requests, and when each request was due with its latency (s)."""
        output, _ = self._process.communicate("stop\n", 60)
        figures = json.loads(output)
        return figures["failed"], [(due, latency) for due, latency in figures["latencies"]]


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


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


def releases(reloader: HotReloader, hot: HotASGI, numbers: range) -> list[float]:
    """A rebuild to each of ``numbers``, each rolled back; returns the rebuild durations."""
    durations = []
    for release in numbers:
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
    """The figures under load; returns the durations of the rebuilds made under load."""
    import benchshop.main as bare_module

    path = "/r7/apple"
    with serve(hot) as hot_url:
        ratios, rates = [], []
        # The bare server stops before the releases: serving version 1's app
        # directly, its connections' last scopes are stale references to it.
        with serve(bare_module.app) as bare_url:
            for pair in range(PAIRS):
                urls = (bare_url, hot_url) if pair % 2 else (hot_url, bare_url)
                runs = {url: wrk(url + path, 1)["rate"] for url in urls}
                ratios.append(runs[bare_url] / runs[hot_url])
                rates.append(runs[hot_url])
        print(f"{statistics.median(rates):.0f} requests/s at most through HotASGI; "
              f"bare / through per pair: {' '.join(f'{r:.2f}' for r in ratios)}")  # fmt: skip
        report("request through HotASGI / bare app under uvicorn", statistics.median(ratios),
               "x", "<= 1.02")  # fmt: skip
        rate = round(SHARE * statistics.median(rates))
        load = Load(hot_url + path, rate)
        durations, rounds = [], []
        per_round = RELEASES // ROUNDS
        for number in range(ROUNDS):
            time.sleep(QUIET)
            started = time.monotonic()
            first = 2 + number * per_round
            durations += releases(reloader, hot, range(first, first + per_round))
            rounds.append((started, time.monotonic()))
        time.sleep(QUIET)
        failed, latencies = load.stop()
    during, quiet = [], []
    for due, latency in latencies:
        if any(start <= due <= end for start, end in rounds):
            during.append(latency)
        elif not any(end <= due <= end + SETTLE for _, end in rounds):
            quiet.append(latency)
    print(f"{rate} requests/s on {CONNECTIONS} connections, {len(latencies)} requests, "
          f"{failed} failed; without releases: {len(quiet)}, p99 {p99(quiet) * 1e3:.2f} ms; "
          f"during {RELEASES} rebuilds and {RELEASES} rollbacks "
          f"({sum(end - start for start, end in rounds):.0f} s): {len(during)}, "
          f"p99 {p99(during) * 1e3:.2f} ms")  # fmt: skip
    if statistics.median(quiet) > BEHIND:
        print(f"the server fell behind the load even without releases (median "
              f"{statistics.median(quiet) * 1e3:.0f} ms): the machine is too busy for the "
              "latency figures to mean anything")  # fmt: skip
    report("requests failed during rebuilds and rollbacks", failed, "", "0")
    report("p99 latency during rebuilds / without", p99(during) / p99(quiet), "x", "<= 1.2")
    return durations


def main() -> None:
    root = write_app()
    reloader = HotReloader()
    hot = HotASGI("benchshop.main:app", reloader=reloader)
    if WRK is None:
        print("wrk is missing (apt-get install wrk): the figures under load are NOT measured")
        durations = releases(reloader, hot, range(2, RELEASES + 2))
    else:
        durations = load_figures(reloader, hot)
    import benchshop.main as bare_module

    bare, through = call_cost(bare_module.app), call_cost(hot)
    print(f"a direct call: {bare * 1e6:.1f} us to the bare app, {through * 1e6:.1f} us through")
    report("direct ASGI call through HotASGI / bare app (no server)", through / bare, "x", "-")
    canary = reloader.swap(
        "benchshop.routes", routes_source(RELEASES + 2), rollout=Rollout(steps=(50,), bake=3600)
    )
    split = call_cost(hot)
    canary.abort()
    print(f"a direct call through a 50% canary: {split * 1e6:.1f} us")
    report("direct ASGI call through a 50% canary / through HotASGI", split / through, "x", "-")
    rebuild = statistics.median(durations)
    cold = cold_import(root)
    print(f"rebuild of the app {rebuild * 1e3:.1f} ms, cold import {cold * 1e3:.1f} ms")
    report(f"rebuild of a {ROUTES}-route FastAPI app / cold import", rebuild / cold, "x", "<= 0.5")


if __name__ == "__main__":
    main()
