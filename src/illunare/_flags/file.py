"""``FileBackend``: flags in a JSON file, picked up live when the file changes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from illunare._arguments import seconds
from illunare._flags.backends import Change, Config, FanOut, FlagSink
from illunare._forks import restart_in_children, whole_in_children
from illunare.exceptions import FlagConfigError

if sys.platform != "win32":
    import fcntl

__all__ = ["FileBackend"]

#: what tells one state of the file from another: mtime (ns), size, inode
Stamp = tuple[int, int, int]
#: what the backend reports: the problem, and the error behind it if there is one
Problem = tuple[str, BaseException | None]


class FileBackend(FanOut):
    """Flag configs in a JSON file (an object mapping flag names to configs), watched live.

    Every FeatureFlags attached to it applies edits to the file within
    ``poll_interval`` seconds; ``FeatureFlags.update`` writes the file
    atomically, after taking in any edit not yet picked up, holding a lock on
    the file's directory so that writers in other processes cannot lose each
    other's changes (POSIX). Removing a flag from the file deletes it.

    A file that cannot be used (not UTF-8 JSON, not an object, unreadable)
    or that is gone keeps the last good flags: the reason is logged, sent as
    the ``backend_error`` signal and kept in ``error`` until a good file is
    back. The next ``update()`` writes the file anew with the last good flags
    and its change, so a deleted or broken file never loses flags. (A single
    invalid flag config is refused the same way by FeatureFlags.)

    Raises:
        FlagConfigError: the file exists but cannot be used when opened.
        InvalidArgumentError: ``poll_interval`` is not a positive number.

    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 0.1) -> None:
        self.poll_interval = seconds("poll_interval", poll_interval)
        super().__init__()
        self.path = Path(path)
        # Serialises writers and the poller, so that no change of the file loses another.
        self._write_lock = threading.Lock()
        # The descriptor holding the directory's lock during a write, if any.
        self._locked: int | None = None
        # The state of the file last taken in: its stamp, None when there was
        # none, or the problem reported for it (each is reported once).
        self._seen: Stamp | str | None
        self._seen, configs = self._read()
        self._record((name, config, None) for name, config in configs.items())
        self._stop = threading.Event()
        self._start()
        restart_in_children(self)

    def __repr__(self) -> str:
        return f"<FileBackend {str(self.path)!r}>"

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> int:
        """Store a config (``None`` deletes it), tell the other sinks; return its revision."""
        with self._write_lock, self._across_processes():
            edited, problem = self._catch_up()
            configs = dict(self._configs)
            if config is None:
                configs.pop(name, None)
            else:
                configs[name] = config
            self._seen = self._write_file(configs)
            changes = self._record([(name, config, None)])
        if problem is not None:
            self._report(*problem)
        self.error = None  # the file holds a good state again
        self._tell(edited)
        self._tell(changes, origin)
        return changes[0][2]

    def close(self) -> None:
        """Stop watching the file."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="illunare-flag-file", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                with self._write_lock:
                    changes, problem = self._catch_up()
                if problem is not None:
                    self._report(*problem)
                self._tell(changes)
            # The poller outlives any surprise (and says so).
            except Exception as error:  # noqa: BLE001, PERF203
                self._report(f"{self.path} could not be checked", error)

    def _catch_up(self) -> tuple[list[Change], Problem | None]:
        """Take in the file as it is now, if it changed (lock held).

        Returns the changes to tell, and a problem to report with its cause
        (once the lock is released: receivers of the signal may write flags).
        """
        try:
            stamp: Stamp | str | None = _stamp(self.path)
        except OSError as error:
            stamp = f"{self.path} cannot be read ({error}): keeping the last good flags"
            if stamp != self._seen:
                self._seen = stamp
                return [], (stamp, error)
        if stamp == self._seen:
            return [], None
        try:
            stamp, configs = self._read()
        except FlagConfigError as error:
            self._seen = stamp
            return [], (f"{error}: keeping the last good flags", error)
        self._seen = stamp
        if stamp is None:
            gone = (
                f"{self.path} is gone: keeping the last good flags; "
                "the next update() writes them all back to it"
            )
            return [], (gone, None)
        self.error = None
        changes: list[tuple[str, Config | None, None]] = [
            (name, config, None)
            for name, config in configs.items()
            if self._configs.get(name) != config
        ]
        changes += [(name, None, None) for name in self._configs if name not in configs]
        return self._record(changes), None

    def _read(self) -> tuple[Stamp | None, dict[str, Config]]:
        """The file's stamp and flags; ``(None, {})`` when there is no file.

        Raises:
            FlagConfigError: the file cannot be read, or is not a JSON object.

        """
        try:
            with self.path.open("rb") as file:
                status = os.fstat(file.fileno())
                data = file.read()
        except FileNotFoundError:
            return None, {}
        except OSError as error:
            raise _unusable(self.path, f"cannot be read ({error})") from error
        try:
            configs = json.loads(data.decode("utf-8"))
        # RecursionError: JSON nested deeper than the parser's stack allows.
        except (ValueError, RecursionError) as error:
            raise _unusable(self.path, f"not valid UTF-8 JSON ({error})") from error
        if not isinstance(configs, dict):  # whose keys JSON makes str
            raise _unusable(self.path, "must be a JSON object mapping flag names to configs")
        return _stamp_of(status), configs

    def _write_file(self, configs: Mapping[str, Any]) -> Stamp:
        """Replace the file atomically; return the stamp of what was written."""
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(configs, file, indent=2, sort_keys=True)
                file.flush()
                # Taken from the file itself: a stat after the replace could
                # already see another process's newer file as our own.
                status = os.fstat(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return _stamp_of(status)

    @contextlib.contextmanager
    def _across_processes(self) -> Iterator[None]:
        """Hold the lock of the file's directory (created if need be) that every process shares.

        The directory, not the file: the file is replaced on every write, and
        a lock file of our own would litter the user's directory.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if sys.platform == "win32":  # no flock: writers in one process are still serialised
            yield
            return
        # A child forked while this descriptor is open shares its lock, and
        # must close it (see _relock): it is never open untracked.
        with whole_in_children():
            handle = self._locked = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            with whole_in_children():
                self._locked = None
                os.close(handle)  # which releases the lock

    def _relock(self) -> None:
        super()._relock()
        self._write_lock = threading.Lock()
        if self._locked is not None:
            # A child forked during a write shares the parent's lock through
            # this descriptor: letting go of it leaves the lock to the parent
            # alone, which releases it when its write is done.
            os.close(self._locked)
            self._locked = None

    def _restart(self) -> None:
        # In a forked child: the poller does not exist there, nor may its
        # event's lock be usable.
        if not self._stop.is_set():
            self._stop = threading.Event()
            self._start()


def _stamp(path: Path) -> Stamp | None:
    """The file's stamp, or None when there is none."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return _stamp_of(status)


def _stamp_of(status: os.stat_result) -> Stamp:
    """What tells a file's states apart.

    The inode changes on every atomic replace, the size and mtime on edits in
    place: together they tell any change apart.
    """
    return status.st_mtime_ns, status.st_size, status.st_ino


def _unusable(path: Path, problem: str) -> FlagConfigError:
    return FlagConfigError(f"{path}: {problem}", ((str(path), problem),))
