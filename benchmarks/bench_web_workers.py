"""A FastAPI app under gunicorn, 4 uvicorn workers, under load: a save vs ``kill -HUP``.

Ours: the app watches its package (``HotReloader.watch``) and gunicorn runs
the illunare hooks; saving a module's file is the release. Baseline, in the
same run: the same app without a watcher, the file saved, then ``kill -HUP``
on the gunicorn master (gunicorn starts new workers on the new code and
stops the old ones gracefully), as teams do today. For each, the time from
the trigger until every worker serves the new code (the last response from
old code, and the first from new code of each live worker), and the requests
that failed meanwhile (a non-2xx answer or a connection error), while six
client threads keep sending requests.

Run: make bench  (or .venv/bin/python benchmarks/bench_web_workers.py); Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

import illunare
from _common import report

WORKERS = 4
SAVES = 10
HUPS = 3
SETTLE = 0.3  # seconds of load after every worker serves the new code

APP = """\
import os, time
from illunare import default_reloader
reloader = default_reloader()
reloader.install("shop")
from fastapi import FastAPI
from shop import pricing
app = FastAPI()

@app.get("/")
async def index():
    return {"pid": os.getpid(), "version": pricing.version()}

if os.environ.get("WATCH"):
    reloader.watch(os.path.dirname(__file__))
"""

HOOKS = "from illunare.web.gunicorn import post_worker_init\ncontrol_socket_disable = True\n"
NO_HOOKS = "control_socket_disable = True\n"


def pricing(version: int) -> str:
    return f"def version():\n    return {version}\n"


class Load:
    """Client threads sending requests; each answer is (started, finished, pid, version)."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.answers: list[tuple[float, float, int, int]] = []
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(6)]

    def _run(self) -> None:
        transport = httpx.HTTPTransport(uds=self.socket)
        with httpx.Client(transport=transport, timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    # A new connection each time: any worker may take it.
                    response = client.get("http://shop/", headers={"Connection": "close"})
                    if response.status_code != 200:
                        self.failures.append((started, f"HTTP {response.status_code}"))
                        continue
                    answer = response.json()
                    self.answers.append(
                        (started, time.perf_counter(), answer["pid"], answer["version"])
                    )
                except httpx.HTTPError as error:
                    self.failures.append((started, repr(error)))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def workers_of(master: int) -> set[int]:
    """The pids of the master's live children (Linux)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    return {int(pid) for pid in children.split()}


def switch(load: Load, master: int, trigger: float, version: int) -> tuple[float, int]:
    """Wait until every worker serves ``version``; seconds since ``trigger``, and failures."""
    deadline = trigger + 60
    while True:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the workers did not all serve version {version} within 60 s")
        answers = [answer for answer in load.answers if answer[0] >= trigger]
        first_new: dict[int, float] = {}
        for _, finished, pid, served in answers:
            if served == version:
                first_new.setdefault(pid, finished)
        live = workers_of(master)
        if live and live <= first_new.keys():
            break
        time.sleep(0.01)
    time.sleep(SETTLE)  # an old worker may still answer: wait and look
    answers = [answer for answer in load.answers if answer[0] >= trigger]
    last_old = max((f for _, f, _, served in answers if served != version), default=trigger)
    done = max(last_old, *(first_new[pid] for pid in live))
    failed = sum(1 for started, _ in load.failures if started >= trigger)
    return done - trigger, failed


@contextlib.contextmanager
def gunicorn(root: Path, config: str, env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """A gunicorn master serving the shop on a Unix socket; its pid and the socket."""
    (root / "gunicorn.conf.py").write_text(config)
    socket = str(root / "gunicorn.sock")
    src = str(Path(illunare.__file__).resolve().parents[1])
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "-w",
        str(WORKERS),
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-b",
        f"unix:{socket}",
        "shop.app:app",
    ]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), src]), **env}
    with (root / "gunicorn.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=root, env=environment, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while len(workers_of(server.pid)) < WORKERS or not os.path.exists(socket):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "gunicorn.log").read_text())
            time.sleep(0.1)
        yield server.pid, socket
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def measure(root: Path, *, hup: bool) -> tuple[list[float], int]:
    """Switch times and failed requests for saves (hup=False) or saves then HUP."""
    shop = root / "shop" / "pricing.py"
    shop.write_text(pricing(1))
    config, env = (NO_HOOKS, {}) if hup else (HOOKS, {"WATCH": "1"})
    times, failed = [], 0
    with gunicorn(root, config, env) as (master, socket), Load(socket) as load:
        switch(load, master, time.perf_counter(), 1)  # every worker answers
        for version in range(2, 2 + (HUPS if hup else SAVES)):
            staged = shop.with_suffix(".tmp")
            staged.write_text(pricing(version))
            trigger = time.perf_counter()
            staged.replace(shop)
            if hup:
                trigger = time.perf_counter()
                os.kill(master, signal.SIGHUP)
            seconds, failures = switch(load, master, trigger, version)
            times.append(seconds)
            failed += failures
        if not load.answers:
            raise RuntimeError("no request was answered")
    return times, failed


def main() -> None:
    if not sys.platform.startswith("linux"):
        raise SystemExit("bench_web_workers needs Linux (/proc)")
    with tempfile.TemporaryDirectory(prefix="illunare-workers-") as directory:
        root = Path(directory)
        (root / "shop").mkdir()
        (root / "shop" / "__init__.py").write_text("")
        (root / "shop" / "app.py").write_text(APP)
        saves, save_failures = measure(root, hup=False)
        hups, hup_failures = measure(root, hup=True)
    save, hup = statistics.median(saves), statistics.median(hups)
    report("kill -HUP -> every worker (4) on the new code: p50", hup * 1e3, "ms", "baseline")
    report("save -> every worker (4) on the new code: p50", save * 1e3, "ms", "-")
    report("save -> every worker (4) on the new code: worst", max(saves) * 1e3, "ms", "<= 1000")
    report("save vs kill -HUP (p50)", save / hup, "x", "<= 0.1")
    report(f"requests failed during {SAVES} saves", save_failures, "", "0")
    report(f"requests failed during {HUPS} kill -HUP", hup_failures, "", "baseline")


if __name__ == "__main__":
    main()
