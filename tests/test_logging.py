"""The ``illunare`` logger: every failure met in the background is logged with its cause."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from illunare import (
    CompileError,
    FeatureFlags,
    FileBackend,
    FlagConfigError,
    HotReloader,
    MemoryBackend,
    RedisBackend,
    signals,
)

from .conftest import Package, eventually


def _logged(caplog: pytest.LogCaptureFixture, cause: type[BaseException]) -> logging.LogRecord:
    """The ``illunare`` record caused by a ``cause`` (awaited: threads log it); WARNING or above."""
    found: list[logging.LogRecord] = []

    def seen() -> bool:
        found[:] = [
            record
            for record in caplog.records
            if record.name == "illunare"
            and record.exc_info is not None
            and isinstance(record.exc_info[1], cause)
        ]
        return bool(found)

    assert eventually(seen), [record.getMessage() for record in caplog.records]
    assert found[0].levelno >= logging.WARNING
    return found[0]


class TestHandlers:
    def test_the_library_adds_only_a_null_handler(self) -> None:
        """Importing and using illunare leaves logging to the application: one NullHandler."""
        script = (
            "import logging, illunare\n"
            "illunare.FeatureFlags(backend=illunare.MemoryBackend()).is_enabled('x')\n"
            "for name in ('illunare', ''):\n"
            "    log = logging.getLogger(name)\n"
            "    print([type(h).__name__ for h in log.handlers], log.level, log.propagate)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
        )
        assert result.stdout.splitlines() == ["['NullHandler'] 0 True", "[] 30 True"]

    def test_warnings_reach_the_application_handlers(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The NullHandler does not stop records from propagating to the application's handlers."""
        with caplog.at_level(logging.WARNING):
            FeatureFlags(backend=MemoryBackend()).apply_remote("f", {"conditions": 1}, 7)
        _logged(caplog, FlagConfigError)


class TestBackgroundFailures:
    def test_a_refused_save_is_logged_with_its_cause(
        self, package: Package, reloader: HotReloader, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The watcher's refused save: a WARNING whose exc_info is the CompileError."""
        module = package.module("live", "def value():\n    return 1\n")
        reloader.track(module)
        failed = threading.Event()
        with (
            caplog.at_level(logging.WARNING, logger="illunare"),
            signals.swap_failed.connected_to(lambda sender, **kw: failed.set()),
            reloader.watch(package.path),
        ):
            package.write("live", "def value(:\n")
            assert failed.wait(10)
        record = _logged(caplog, CompileError)
        assert module.__name__ in record.getMessage()

    def test_a_watcher_that_fails_says_so_with_its_cause(
        self, package: Package, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bug under the watcher's thread ends it with an ERROR whose exc_info is the bug."""

        class Broken(HotReloader):
            def source_files(self) -> dict[str, str]:
                raise RuntimeError("bug")

        with caplog.at_level(logging.WARNING, logger="illunare"):
            watcher = Broken().watch(package.path)
            record = _logged(caplog, RuntimeError)
        assert record.levelno == logging.ERROR
        assert "the watcher stopped" in record.getMessage()
        assert eventually(lambda: not watcher.running)

    def test_a_broken_flag_file_is_logged_with_its_cause(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """FileBackend's poller: a file that is not JSON is a WARNING whose exc_info says why."""
        path = tmp_path / "flags.json"
        path.write_text(json.dumps({"f": {"enabled": True}}))
        backend = FileBackend(path, poll_interval=0.02)
        try:
            with caplog.at_level(logging.WARNING, logger="illunare"):
                path.write_text("{not json")
                assert eventually(lambda: backend.error is not None)
            record = _logged(caplog, FlagConfigError)
            assert record.exc_info is not None
            assert isinstance(record.exc_info[1], FlagConfigError)
            assert isinstance(record.exc_info[1].__cause__, ValueError)
        finally:
            backend.close()

    def test_an_unreadable_flag_file_is_logged_with_its_cause(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A flag file that cannot even be examined: a WARNING whose exc_info is the OSError."""
        path = tmp_path / "flags.json"
        path.write_text("{}")
        backend = FileBackend(path, poll_interval=0.02)
        try:
            with caplog.at_level(logging.WARNING, logger="illunare"):
                # A file name that is too long: stat() fails with an OSError.
                backend.path = tmp_path / ("x" * 300)
                assert eventually(lambda: backend.error is not None)
            _logged(caplog, OSError)
        finally:
            backend.close()

    def test_an_invalid_remote_flag_config_is_logged_with_its_cause(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A config a backend's thread hands over that cannot be used: WARNING with the error."""
        flags = FeatureFlags(backend=MemoryBackend())
        with caplog.at_level(logging.WARNING, logger="illunare"):
            flags.apply_remote("checkout", {"conditions": [{"type": "nope"}]}, 3)
        record = _logged(caplog, FlagConfigError)
        assert "checkout" in record.getMessage()

    def test_a_bad_redis_message_is_logged_with_its_cause(
        self,
        make_backend: Callable[..., RedisBackend],
        redis_server: object,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The Redis listener's thread: a message it cannot use is a WARNING with its cause."""
        backend = make_backend()
        FeatureFlags(backend=backend)
        with caplog.at_level(logging.WARNING, logger="illunare"):
            backend._client.publish(backend.channel, b"\xff not json")
            assert eventually(lambda: backend.error is not None)
        _logged(caplog, ValueError)
