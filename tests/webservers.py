"""Real web servers in a thread on a free loopback port, and real client load against them."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from werkzeug.serving import make_server


@contextmanager
def uvicorn_server(app: Any, *, lifespan: str = "on") -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn in a thread; yield its base URL; stop it after."""
    config = uvicorn.Config(app, port=0, lifespan=lifespan, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def wsgi_server(app: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` with werkzeug's threaded server; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)
        server.server_close()


class Load:
    """Client threads sending GET ``path`` until stopped; every answer is counted.

    ``headers(n)`` gives the headers of the ``n``-th request (0, 1, 2 ... over all clients).
    """

    def __init__(
        self,
        url: str,
        path: str,
        *,
        clients: int = 4,
        accept: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
        headers: Callable[[int], Mapping[str, str]] = lambda n: {},
    ) -> None:
        self.url = url
        self.path = path
        self.accept = accept
        self.headers = headers
        self._numbers = itertools.count()
        self.answers = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        # Every client has had answers before anything else happens.
        deadline = time.monotonic() + 30
        while self.answers < 4 * len(self._threads) and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.path, headers=self.headers(next(self._numbers)))
                except httpx.HTTPError as error:
                    failure: str | None = repr(error)
                else:
                    failure = (
                        None if self.accept(response) else f"{response.status_code} {response.text}"
                    )
                with self._lock:
                    self.answers += 1
                    if failure is not None:
                        self.failures.append(failure)
