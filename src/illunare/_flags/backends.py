"""Where flag configs live: the backend protocol and the in-memory backend."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["FanOut", "FlagBackend", "FlagSink", "MemoryBackend"]

Config = Mapping[str, Any]


class FlagSink(Protocol):
    """What a backend tells of changes made elsewhere (a FeatureFlags)."""

    def apply_remote(self, name: str, config: Config | None) -> None:
        """A flag changed elsewhere: ``config``, or ``None`` when it was deleted."""


class FlagBackend(Protocol):
    """Stores flag configs and tells every attached FeatureFlags of changes."""

    def attach(self, sink: FlagSink) -> Mapping[str, Config]:
        """Start telling ``sink`` of changes; return the current configs."""

    def detach(self, sink: FlagSink) -> None:
        """Stop telling ``sink`` of changes."""

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> None:
        """Store a flag's config (``None`` deletes it) and tell the other sinks."""


class FanOut:
    """What every backend shares: the current configs and the FeatureFlags to tell of changes.

    Sinks get the stored objects themselves: ``FeatureFlags.apply_remote``
    keeps its own copy of whatever it applies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, Config] = {}
        self._sinks: list[FlagSink] = []

    def attach(self, sink: FlagSink) -> Mapping[str, Config]:
        """Start telling ``sink`` of changes; return the current configs."""
        with self._lock:
            self._sinks.append(sink)
            return dict(self._configs)

    def detach(self, sink: FlagSink) -> None:
        """Stop telling ``sink`` of changes."""
        with self._lock:
            self._sinks = [known for known in self._sinks if known is not sink]

    def _commit(self, name: str, config: Config | None, origin: FlagSink | None) -> None:
        """Record one flag's change and tell every sink but ``origin``."""
        with self._lock:
            if config is None:
                self._configs.pop(name, None)
            else:
                self._configs[name] = config
            others = [sink for sink in self._sinks if sink is not origin]
        for sink in others:
            sink.apply_remote(name, config)

    def _replace_all(self, configs: dict[str, Config]) -> None:
        """Adopt a whole new state, telling every sink of what differs."""
        with self._lock:
            old, self._configs = self._configs, configs
            sinks = list(self._sinks)
        changed = [name for name, config in configs.items() if old.get(name) != config]
        removed = [name for name in old if name not in configs]
        for sink in sinks:
            for name in changed:
                sink.apply_remote(name, configs[name])
            for name in removed:
                sink.apply_remote(name, None)


class MemoryBackend(FanOut):
    """Flags in this process's memory; FeatureFlags sharing one see each other's changes."""

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> None:
        """Store a config (``None`` deletes it) and tell the other attached FeatureFlags."""
        # A copy of its own, so that nothing the writer keeps can change the store.
        self._commit(name, copy.deepcopy(config), origin)
