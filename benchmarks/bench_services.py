"""Plug and play services: what routing through a Router costs, and how long an unload takes.

Each figure against its baseline measured in the same run:

- ``router.dispatch()`` to a ``lambda *a, **k: None`` handler, against calling
  the handler directly: the nanoseconds dispatch adds (the best of many
  alternating runs of each, so that the drift of a shared machine weighs on
  both alike).
- A request through ``as_asgi()`` under uvicorn, against the same FastAPI
  sub-app under Starlette's ``Mount`` (in a bare ``Router``): wrk saturating each server for one
  second, in pairs whose order alternates, the median of the ratios.
- Unloading a service with nothing in flight, among 20 loaded services of 5
  routes each: p50 and p99 over 2000 unloads.

Run: .venv/bin/python benchmarks/bench_services.py  (the wrk figure needs wrk).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import Mount, Router

from _common import best_per_statement, percentiles, report
from bench_web import serve, wrk
from illunare import ServiceRegistry, ServiceSpec

WRK = shutil.which("wrk")
PAIRS = 9
UNLOADS = 2000


class Forward:
    """The floor of any dispatch written in Python: a method that only passes the call on."""

    def __init__(self, handler: Callable[..., object]) -> None:
        self.handler = handler

    def forward(self, path: str, /, *args: object, **kwargs: object) -> object:
        return self.handler(*args, **kwargs)


def dispatch_added() -> float:
    """Nanoseconds ``dispatch`` adds to a direct call of the handler."""

    def handler(*args: object, **kwargs: object) -> None:
        return None

    registry = ServiceRegistry()
    registry.load(ServiceSpec("bench", routes={"/bench": handler}))
    namespace = {
        "handler": handler,
        "dispatch": registry.router.dispatch,
        "forward": Forward(handler).forward,
    }
    direct = through = forwarded = float("inf")
    for _ in range(10):  # alternating: the drift of the machine weighs on both
        direct = min(direct, best_per_statement("handler()", namespace, repeat=3))
        through = min(through, best_per_statement("dispatch('/bench')", namespace, repeat=3))
        forwarded = min(forwarded, best_per_statement("forward('/bench')", namespace, repeat=3))
    print(
        f"a direct call {direct * 1e9:.0f} ns, through dispatch {through * 1e9:.0f} ns; "
        f"a method that only passes the call on adds {(forwarded - direct) * 1e9:.0f} ns"
    )
    return (through - direct) * 1e9


def sub_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    return app


def asgi_ratio() -> float:
    """Median over pairs of wrk runs: time per request through as_asgi() / under Mount."""
    registry = ServiceRegistry()
    app = sub_app()
    registry.load(ServiceSpec("api", routes={"/api": app}))
    # A bare Router: the Mount with nothing around it (Starlette() adds middleware).
    mounted = Router(routes=[Mount("/api", app=app)])
    path = "/api/items/apple"
    ratios, rates = [], []
    with serve(registry.router.as_asgi()) as through_url, serve(mounted) as mount_url:
        for pair in range(PAIRS):
            urls = (mount_url, through_url) if pair % 2 else (through_url, mount_url)
            runs = {url: wrk(url + path, 1) for url in urls}
            for figures in runs.values():
                assert figures["non2xx"] == figures["socket_errors"] == 0, figures
            ratios.append(runs[mount_url]["rate"] / runs[through_url]["rate"])
            rates.append(runs[through_url]["rate"])
    print(
        f"{statistics.median(rates):.0f} requests/s through as_asgi(); "
        f"Mount / through per pair: {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    return statistics.median(ratios)


def unload_times() -> tuple[list[float], list[float]]:
    """Seconds of each unload with nothing in flight, among 20 loaded services: wall and CPU.

    The CPU time (of the unloading thread) leaves out the time the machine
    gave other processes meanwhile: on a busy shared machine the wall p99
    measures them as much as the unload.
    """
    registry = ServiceRegistry()
    handler = lambda *a, **k: None  # noqa: E731  # the smallest handler
    for number in range(20):
        routes = {f"/s{number}/r{route}/{{id}}": handler for route in range(5)}
        registry.load(ServiceSpec(f"s{number}", routes=routes))
    spec = ServiceSpec("reports", routes={f"/reports/{n}": handler for n in range(5)})
    wall, cpu = [], []
    for _ in range(UNLOADS):
        registry.load(spec)
        registry.router.dispatch("/reports/1")
        start, start_cpu = time.perf_counter(), time.thread_time()
        registry.unload("reports")
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return wall, cpu


def main() -> None:
    print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())} on {os.cpu_count()} cores")
    report("router.dispatch() added over a direct call", dispatch_added(), "ns", "<= 150")
    if WRK is None:
        print("wrk is missing (apt-get install wrk): the as_asgi() figure is NOT measured")
    else:
        report("request through as_asgi() / under Starlette Mount", asgi_ratio(), "x", "<= 1.1")
    wall, cpu = unload_times()
    p50, p99 = percentiles(wall)
    cpu_p50, cpu_p99 = percentiles(cpu)
    print(f"unload with nothing in flight: p50 {p50 * 1e3:.3f} ms; its CPU time p50 "
          f"{cpu_p50 * 1e3:.3f} ms, p99 {cpu_p99 * 1e3:.3f} ms")  # fmt: skip
    report("unload with nothing in flight, p99", p99 * 1e3, "ms", "<= 1")


if __name__ == "__main__":
    main()
