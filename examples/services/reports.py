"""The reports service of make demo: a FastAPI sub-app loaded into a running process.

``spec(reports)`` is its ServiceSpec: ``start`` opens the service (here, a
flag; in real life a connection pool), ``stop`` closes it, and the FastAPI
app is mounted at ``/reports``. ``GET /reports/daily`` answers at once;
``GET /reports/slow`` waits until ``reports.release`` is set, so that the
demo can unload the service with requests in flight.
"""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI

from illunare import ServiceSpec


class Reports:
    """The service object (what ``start`` returns)."""

    def __init__(self) -> None:
        self.running = False
        #: slow reports wait for this
        self.release = threading.Event()
        #: slow reports started, and finished while the service still ran
        self.slow_started = 0
        self.slow_finished_running = 0


def spec(reports: Reports) -> ServiceSpec:
    """The reports service, serving ``reports``."""
    app = FastAPI()

    @app.get("/daily")
    async def daily() -> dict[str, object]:
        return {"report": "daily", "running": reports.running}

    @app.get("/slow")
    async def slow() -> dict[str, object]:
        reports.slow_started += 1
        await asyncio.to_thread(reports.release.wait, 30)
        reports.slow_finished_running += reports.running
        return {"report": "slow", "running": reports.running}

    def start() -> Reports:
        reports.running = True
        return reports

    def stop(service: Reports) -> None:
        service.running = False

    return ServiceSpec("reports", start=start, stop=stop, routes={"/reports": app})
