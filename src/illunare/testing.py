"""Helpers for the tests of programs that use illunare.

``override_flags`` sets flags on a ``FeatureFlags`` for the duration of a test,
in that object only (nothing reaches its backend), and puts everything back
afterwards::

    from illunare.testing import override_flags

    def test_new_checkout(flags):
        with override_flags(flags, new_payment_flow=True, theme={"variants": [{"name": "dark"}]}):
            assert checkout(flags, user) == "new flow"

``RedisServer`` runs a real, throwaway ``redis-server`` on a free loopback
port for tests of ``RedisBackend``.

With pytest, the ``illunare_flags`` fixture does the same and undoes it when
the test ends (the plugin is registered when illunare is installed)::

    def test_new_checkout(illunare_flags, flags):
        illunare_flags(flags, new_payment_flow=True)
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from illunare._flags.flags import FeatureFlags
from illunare._reload.default import reset_default_reloader
from illunare.exceptions import InvalidArgumentError

__all__ = ["FlagOverrides", "RedisServer", "override_flags", "reset_default_reloader"]


def _config(name: str, value: object) -> Mapping[str, Any]:
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, Mapping):
        return value
    raise InvalidArgumentError(
        f"override for {name!r} must be True, False or a flag config mapping, got {value!r}"
    )


class FlagOverrides:
    """Overrides set so far, undone together by ``restore()`` (latest first)."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def __call__(self, flags: FeatureFlags, **values: bool | Mapping[str, Any]) -> None:
        """Serve ``values`` (flag name -> True, False or a config) on ``flags``."""
        if not isinstance(flags, FeatureFlags):
            raise InvalidArgumentError(f"expected a FeatureFlags, got {flags!r}")
        configs = {name: _config(name, value) for name, value in values.items()}
        for name, config in configs.items():
            self._undo.append(flags.override(name, config))

    def restore(self) -> None:
        """Put back every flag as it was before the overrides."""
        while self._undo:
            self._undo.pop()()


@contextlib.contextmanager
def override_flags(
    flags: FeatureFlags, **values: bool | Mapping[str, Any]
) -> Iterator[FeatureFlags]:
    """Serve ``values`` (flag name -> True, False or a config) on ``flags`` inside the block."""
    overrides = FlagOverrides()
    overrides(flags, **values)
    try:
        yield flags
    finally:
        overrides.restore()


class RedisServer:
    """A real ``redis-server`` on a free loopback port; its data survives ``stop``/``start``.

    Use it as a context manager (started on entry, stopped on exit), or call
    ``start()`` and ``stop()`` to simulate an outage. ``DEBUG SLEEP`` works
    from loopback clients, to simulate a slow server. Needs the redis-server
    program and the ``redis`` extra.
    """

    def __init__(self, directory: str | Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.directory = Path(directory)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers."""
        import redis  # noqa: PLC0415  # the redis extra, needed only here

        program = shutil.which("redis-server")
        if program is None:
            raise FileNotFoundError("redis-server is not installed")
        self._process = subprocess.Popen(  # noqa: S603  # a fixed program and arguments
            [
                program, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", str(self.directory), *_debug_option(program),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while not _answers(client, redis.ConnectionError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (its data stays on disk)."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


def _debug_option(program: str) -> list[str]:
    """The option that allows DEBUG from loopback (Redis 7 refuses it otherwise; 6 lacks it)."""
    banner = subprocess.run(  # noqa: S603  # the redis-server found on PATH
        [program, "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"v=(\d+)\.", banner)
    return ["--enable-debug-command", "local"] if match and int(match[1]) >= 7 else []


def _answers(client: Any, unreachable: type[Exception]) -> bool:
    try:
        client.ping()
    except unreachable:
        return False
    return True
