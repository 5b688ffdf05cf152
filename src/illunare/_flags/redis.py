"""``RedisBackend``: flags shared by every process and host, changes pushed at once.

Configs live in one Redis hash (flag name -> JSON config). A write stores the
config and publishes it on a channel in one transaction; every attached
process listens on that channel in a background thread and applies what
arrives. A process that starts, reconnects after an outage, or forks
(gunicorn-style pre-fork workers) subscribes again and reloads the whole
hash, so nothing published meanwhile is lost. While Redis is unreachable,
evaluation goes on with the last known flags; writes raise
``BackendUnavailableError``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from illunare._flags.backends import Config, FanOut, FlagSink
from illunare.exceptions import BackendUnavailableError, InvalidArgumentError, MissingExtraError

__all__ = ["RedisBackend"]

logger = logging.getLogger("illunare")


class RedisBackend(FanOut):
    """Flag configs in Redis, shared live between processes and hosts (extra ``redis``).

    Args:
        url: a Redis URL, e.g. ``redis://localhost:6379/0``.
        key: the hash holding the configs.
        channel: the pub/sub channel changes are announced on.
        retry_interval: seconds between reconnection attempts after an outage.

    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key: str = "illunare:flags",
        channel: str = "illunare:flags:changes",
        retry_interval: float = 0.5,
    ) -> None:
        try:
            # Imported here, not with illunare: redis-py takes longer to
            # import than the whole of illunare.
            self._redis: Any = importlib.import_module("redis")
        except ImportError as error:
            raise MissingExtraError("RedisBackend", "redis") from error
        for name, value in (("url", url), ("key", key), ("channel", channel)):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{name} must be a non-empty str, got {value!r}")
        super().__init__()
        self.url, self.key, self.channel = url, key, channel
        # Tags this backend's own messages, whose changes it already applied.
        self._origin = uuid.uuid4().hex
        self.retry_interval = retry_interval
        self._client: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        #: whether the listener is connected and subscribed right now
        self.connected = False
        self._start()
        _FORKED.add(self)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.url!r} key={self.key!r}>"

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> None:
        """Store a config (``None`` deletes it) and announce it to every process."""
        message = json.dumps({"name": name, "config": config, "origin": self._origin})
        try:
            with self._client.pipeline(transaction=True) as pipe:
                if config is None:
                    pipe.hdel(self.key, name)
                else:
                    pipe.hset(self.key, name, json.dumps(config))
                pipe.publish(self.channel, message)
                pipe.execute()
        except self._redis.RedisError as error:
            raise BackendUnavailableError(
                f"cannot write flag {name!r} to {self.url}: {error}"
            ) from error
        self._commit(name, config, origin)

    def close(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._client is not None:
            self._client.close()

    # The listener ----------------------------------------------------------------

    def _start(self) -> None:
        self._client = self._redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._listen, name="illunare-flag-redis", daemon=True
        )
        self._thread.start()
        # The first subscription and load normally take a few milliseconds;
        # an unreachable Redis must not block start-up for long.
        self._ready.wait(2.0)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe first, then load: a change published in between
                # arrives as a message and is applied after the load.
                pubsub.subscribe(self.channel)
                self._reload(self._client.hgetall(self.key))
                self.connected = True
                self._ready.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None:
                        self._receive(message.get("data"))
            except self._redis.RedisError as error:
                if self.connected:
                    logger.warning(
                        "lost %s (%s); flags keep their last known state", self.url, error
                    )
                self.connected = False
                self._ready.set()
                self._stop.wait(self.retry_interval)
            finally:
                pubsub.close()

    def _reload(self, stored: Mapping[str, str]) -> None:
        configs: dict[str, Config] = {}
        for name, text in stored.items():
            config = _json(text)
            if isinstance(config, dict):
                configs[name] = config
            else:
                logger.warning("ignoring flag %r in %s: not a JSON object", name, self.key)
        self._replace_all(configs)

    def _receive(self, data: object) -> None:
        message = _json(data)
        if not isinstance(message, dict) or not isinstance(message.get("name"), str):
            logger.warning("ignoring a malformed message on %s: %r", self.channel, data)
            return
        if message.get("origin") == self._origin:
            return  # our own write, applied when it was made
        self._commit(message["name"], message.get("config"), origin=None)

    def _after_fork(self) -> None:
        # In a forked child the listener thread does not exist and the
        # inherited sockets belong to the parent: start afresh.
        self._lock = threading.Lock()
        self._origin = uuid.uuid4().hex
        self._start()


def _json(text: object) -> Any:
    """Parsed JSON, or None for anything that is not a JSON document."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


_FORKED: weakref.WeakSet[RedisBackend] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for backend in list(_FORKED):
        if not backend._stop.is_set():
            backend._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)
