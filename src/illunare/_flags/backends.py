"""Where flag configs live: the backend protocol and the in-memory backend.

Every stored change of a flag carries a revision, a number that grows with
each change of that flag in the store (a deletion is a change too). Backends
hand changes on with their revision and every FeatureFlags applies only
revisions newer than the one it serves, so changes that cross on the way
(two writers racing, a late echo of a write) can never leave a process on an
older config than the store's.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from illunare import signals
from illunare._forks import relock_in_children

__all__ = ["Change", "FanOut", "FlagBackend", "FlagSink", "MemoryBackend"]

logger = logging.getLogger("illunare")

Config = Mapping[str, Any]
#: a flag's name, its config (None: deleted) and its revision in the store
Change = tuple[str, "Config | None", int]


class FlagSink(Protocol):
    """What a backend tells of changes made elsewhere (a FeatureFlags)."""

    def apply_remote(self, name: str, config: Config | None, revision: int) -> None:
        """A flag changed: ``config``, or ``None`` when deleted, at ``revision`` of the store."""


class FlagBackend(Protocol):
    """Stores flag configs and tells every attached FeatureFlags of changes."""

    def attach(self, sink: FlagSink) -> Mapping[str, tuple[Config, int]]:
        """Start telling ``sink`` of changes; return each current config with its revision."""

    def detach(self, sink: FlagSink) -> None:
        """Stop telling ``sink`` of changes."""

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> int:
        """Store a config (``None`` deletes it), tell the other sinks; return its revision."""


class FanOut:
    """What every backend shares: the last good configs, their revisions, the sinks to tell.

    Sinks get the stored objects themselves: ``FeatureFlags.apply_remote``
    keeps its own copy of whatever it applies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, Config] = {}
        # Deleted flags keep their revision, so that no late message of an
        # older change can bring them back.
        self._revisions: dict[str, int] = {}
        self._sinks: list[FlagSink] = []
        #: the last problem met with the store (a message, entry or file that
        #: could not be used, a lost connection), or None since it was put right
        self.error: str | None = None
        relock_in_children(self)

    def attach(self, sink: FlagSink) -> Mapping[str, tuple[Config, int]]:
        """Start telling ``sink`` of changes; return each current config with its revision."""
        with self._lock:
            self._sinks.append(sink)
            return {name: (config, self._revisions[name]) for name, config in self._configs.items()}

    def detach(self, sink: FlagSink) -> None:
        """Stop telling ``sink`` of changes."""
        with self._lock:
            self._sinks = [known for known in self._sinks if known is not sink]

    def _record(self, changes: Iterable[tuple[str, Config | None, int | None]]) -> list[Change]:
        """Keep the changes newer than those known (revision None: the next); return them."""
        recorded: list[Change] = []
        with self._lock:
            for name, config, given in changes:
                current = self._revisions.get(name, 0)
                revision = current + 1 if given is None else given
                if revision <= current:
                    continue  # already known, or overtaken by a newer change
                self._revisions[name] = revision
                if config is None:
                    self._configs.pop(name, None)
                else:
                    self._configs[name] = config
                recorded.append((name, config, revision))
        return recorded

    def _tell(self, changes: list[Change], origin: FlagSink | None = None) -> None:
        """Tell every sink but ``origin`` of ``changes`` (call without holding a lock)."""
        if not changes:
            return
        with self._lock:
            sinks = [sink for sink in self._sinks if sink is not origin]
        for sink in sinks:
            for name, config, revision in changes:
                try:
                    sink.apply_remote(name, config, revision)
                # One sink must not stop the others, nor the thread telling them.
                except Exception:  # noqa: PERF203
                    logger.exception("%r could not apply flag %r", sink, name)

    def _report(self, problem: str, cause: BaseException | None = None) -> None:
        """Say loudly that something could not be used: ``error``, a log warning, a signal."""
        if cause is not None:
            # str, not repr: the repr of a decoding error holds every byte it got.
            problem = f"{problem}: {type(cause).__name__}: {cause}"
        self.error = problem
        logger.warning("%r: %s", self, problem, exc_info=cause)
        if signals.backend_error.receivers:
            signals._send(signals.backend_error, self, error=problem, cause=cause)

    def _relock(self) -> None:
        self._lock = threading.Lock()


class MemoryBackend(FanOut):
    """Flags in this process's memory; FeatureFlags sharing one see each other's changes."""

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> int:
        """Store a config (``None`` deletes it), tell the other sinks; return its revision."""
        # A copy of its own, so that nothing the writer keeps can change the store.
        changes = self._record([(name, copy.deepcopy(config), None)])
        self._tell(changes, origin)
        return changes[0][2]
