"""``FileBackend``: flags in a JSON file, picked up live when the file changes."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from illunare._flags.backends import Config, FanOut, FlagSink
from illunare.exceptions import FlagConfigError, InvalidArgumentError

__all__ = ["FileBackend"]

logger = logging.getLogger("illunare")


class FileBackend(FanOut):
    """Flag configs in a JSON file (an object mapping flag names to configs), watched live.

    Every FeatureFlags attached to it applies edits to the file within
    ``poll_interval`` seconds; ``FeatureFlags.update`` writes the file
    atomically. An edit that is not a JSON object keeps the last good flags:
    the reason is logged and kept in ``error`` until a good edit arrives (a
    single invalid flag config is refused the same way by FeatureFlags).

    Raises:
        FlagConfigError: the file exists but is not a JSON object when opened.

    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 0.1) -> None:
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not poll_interval > 0
        ):
            raise InvalidArgumentError(
                f"poll_interval must be a positive number, got {poll_interval!r}"
            )
        super().__init__()
        self.path = Path(path)
        self.poll_interval = float(poll_interval)
        #: why the last edit of the file was refused, or None
        self.error: str | None = None
        # Serialises writers, so that no update of the file loses another.
        self._write_lock = threading.Lock()
        self._stamp = self._read_stamp()
        configs, problem = self._load()
        if problem is not None:
            raise FlagConfigError(f"{self.path}: {problem}", ((str(self.path), problem),))
        self._configs = configs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="illunare-flag-file", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<FileBackend {str(self.path)!r}>"

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> None:
        """Store a config in the file (``None`` deletes it) and tell the other sinks."""
        with self._write_lock:
            configs = dict(self._configs)
            if config is None:
                configs.pop(name, None)
            else:
                configs[name] = config
            self._write_file(configs)
            self._stamp = self._read_stamp()
            self._commit(name, config, origin)

    def close(self) -> None:
        """Stop watching the file."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def _read_stamp(self) -> tuple[int, int, int] | None:
        # The inode changes on every atomic replace, the size and mtime on
        # edits in place: together they tell any change apart.
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino

    def _load(self) -> tuple[dict[str, Config], str | None]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, None
        except OSError as error:
            return {}, f"cannot read the file: {error}"
        try:
            data = json.loads(text)
        except ValueError as error:
            return {}, f"not valid JSON: {error}"
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            return {}, "must be a JSON object mapping flag names to configs"
        return data, None

    def _write_file(self, configs: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(configs, file, indent=2, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            stamp = self._read_stamp()
            if stamp == self._stamp:
                continue
            self._reload(stamp)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        configs, problem = self._load()
        with self._write_lock:
            if stamp != self._read_stamp():
                return  # written again meanwhile: the next round reads it whole
            self._stamp = stamp
            if problem is not None:
                self.error = problem
                logger.warning("keeping the last good flags: %s %s", self.path, problem)
                return
            self.error = None
            self._replace_all(configs)
