"""``RedisBackend``: flags shared by every process and host, changes pushed at once.

Configs live in one Redis hash: flag name -> ``{"revision": n, "config": {...}}``
(``"config": null`` records a deletion). A write runs one Lua script that
raises the flag's revision, stores the config and publishes name, revision and
config on a channel, all at once. Every attached process listens on that
channel in a background thread and applies what arrives when its revision is
newer than the one it serves; its own writes come back the same way, which is
what makes a write that timed out but landed later reach the writer too. A
process that starts, reconnects after an outage, or forks (gunicorn-style
pre-fork workers) subscribes again and reloads the whole hash, so nothing
published meanwhile is lost. While Redis is unreachable, evaluation goes on
with the last known flags; writes raise ``BackendUnavailableError``.

Whatever the channel or the hash holds (bytes that are not UTF-8, JSON that is
malformed, mistyped or nested too deeply), the listener reports it and carries
on. A hash that lost flags (a restart without persistence, ``FLUSHALL``, an
eviction) never deletes them: the last good flags keep serving, the loss is
reported, and ``restore()`` writes them back.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from illunare._arguments import seconds
from illunare._flags.backends import Change, Config, FanOut, FlagSink
from illunare._forks import restart_in_children
from illunare.exceptions import BackendUnavailableError, InvalidArgumentError, MissingExtraError

__all__ = ["RedisBackend"]

logger = logging.getLogger("illunare")

# KEYS[1] the hash; ARGV: name, name as JSON, config as JSON ("null": deleted),
# channel, the writer's known revision, "restore" to write only a missing flag.
# A revision is the greatest of the stored one plus one, the writer's plus
# one, and the server's clock in milliseconds: it grows with every change of
# the flag, and goes on growing after the store lost its data, even for a
# writer that never knew the flag (a process started after a FLUSHALL), so
# every process applies what is stored from then on. The stored revision is
# read with a pattern, never by decoding the stored JSON: an entry someone
# broke must not stop the flag from being written anew.
_WRITE = """
redis.replicate_commands()  -- Redis 5 and 6: TIME before a write (always so since 7)
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local revision = tonumber(ARGV[5])
if ARGV[6] == 'restore' then
  if stored then return 0 end
else
  local previous = stored and tonumber(string.match(stored, '^{"revision":(%d+),')) or 0
  local now = redis.call('TIME')
  local clock = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  revision = math.max(previous + 1, revision + 1, clock)
end
local text = string.format('%d', revision)
redis.call('HSET', KEYS[1], ARGV[1], '{"revision":' .. text .. ',"config":' .. ARGV[3] .. '}')
redis.call('PUBLISH', ARGV[4],
  '{"revision":' .. text .. ',"name":' .. ARGV[2] .. ',"config":' .. ARGV[3] .. '}')
return revision
"""


class RedisBackend(FanOut):
    """Flag configs in Redis, shared live between processes and hosts (extra ``redis``).

    Args:
        url: a Redis URL, e.g. ``redis://localhost:6379/0``.
        key: the hash holding the configs.
        channel: the pub/sub channel changes are announced on.
        retry_interval: seconds between reconnection attempts after an outage.
        timeout: seconds a Redis command may take before it counts as failed.

    Raises:
        InvalidArgumentError: an argument of the wrong type or value.
        MissingExtraError: redis-py is not installed.

    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key: str = "illunare:flags",
        channel: str = "illunare:flags:changes",
        retry_interval: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        for name, value in (("url", url), ("key", key), ("channel", channel)):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{name} must be a non-empty str, got {value!r}")
        self.retry_interval = seconds("retry_interval", retry_interval)
        self.timeout = seconds("timeout", timeout)
        try:
            # Imported here, not with illunare: redis-py takes longer to
            # import than the whole of illunare.
            self._redis: Any = importlib.import_module("redis")
            self._retry: Any = importlib.import_module("redis.retry")
            self._backoff: Any = importlib.import_module("redis.backoff")
        except ImportError as error:
            raise MissingExtraError("RedisBackend", "redis") from error
        super().__init__()
        self.url, self.key, self.channel = url, key, channel
        self._client: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        #: whether the listener is connected and subscribed right now
        self.connected = False
        self._start()
        restart_in_children(self)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.url!r} key={self.key!r}>"

    def write(self, name: str, config: Config | None, *, origin: FlagSink) -> int:
        """Store a config (``None`` deletes it), announce it to every process; return its revision.

        Raises:
            BackendUnavailableError: Redis could not be reached or did not
                answer in time. A write that timed out may still land later;
                every process, this one included, then applies it.

        """
        revision = self._run(name, config, restore=False)
        self._tell(self._record([(name, config, revision)]), origin)
        return revision

    def restore(self) -> list[str]:
        """Write back every flag this backend serves that the hash no longer holds.

        For a store that lost its data (a restart without persistence,
        ``FLUSHALL``, an eviction): the processes still serving the flags put
        them back, at the revisions they have, for processes that start
        later. Flags the hash holds are left as they are. Returns the names
        written back.

        Raises:
            BackendUnavailableError: Redis could not be reached.

        """
        with self._lock:
            known = dict(self._configs)
        return [name for name, config in sorted(known.items()) if self._run(name, config, True)]

    def close(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._client is not None:
            self._client.close()

    def _run(self, name: str, config: Config | None, restore: bool) -> int:
        arguments = (
            name, json.dumps(name), json.dumps(config), self.channel,
            self._revisions.get(name, 0), "restore" if restore else "write",
        )  # fmt: skip
        try:
            return int(self._client.eval(_WRITE, 1, self.key, *arguments))
        except self._redis.RedisError as error:
            raise BackendUnavailableError(
                f"cannot write flag {name!r} to {self.url}: {error!r}"
            ) from error

    # The listener ----------------------------------------------------------------

    def _start(self) -> None:
        # Bytes, not text: whatever another client stored or published must
        # reach our own checks, not fail inside redis-py. No retries: a write
        # that timed out may still run, and a retried one would run too; a
        # subscription that redis-py quietly renewed would skip the reload
        # that picks up what was published meanwhile.
        self._client = self._redis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=self._retry.Retry(self._backoff.NoBackoff(), 0),
        )
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
        reported = False  # the outage under way, so that it is reported once
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe first, then load: a change published in between
                # arrives as a message and is applied after the load.
                pubsub.subscribe(self.channel)
                self._reload(self._client.hgetall(self.key))
                self.connected, reported = True, False
                self._ready.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None:
                        self._receive(message.get("data"))
            except Exception as error:  # noqa: BLE001  # the listener outlives any surprise
                if not reported:
                    self._report(f"cannot listen to {self.url}; flags keep their last state", error)
                self.connected, reported = False, True
                self._ready.set()
                self._stop.wait(self.retry_interval)
            finally:
                pubsub.close()

    def _reload(self, stored: Mapping[bytes, bytes]) -> None:
        """Take in the whole hash: newer flags apply, broken entries and lost flags are reported."""
        changes: list[tuple[str, Config | None, int | None]] = []
        held: set[str] = set()
        problems: list[tuple[str, Exception | None]] = []
        for field, value in stored.items():
            try:
                name = field.decode("utf-8")
                held.add(name)
                changes.append((name, *_entry(_document(value))))
            # Anything can be stored by anyone: one entry must not hide the others.
            except Exception as error:  # noqa: BLE001, PERF203
                problems.append((f"ignoring the entry {_preview(field)} of {self.key}", error))
        with self._lock:
            lost = sorted(set(self._configs) - held)
        if lost:
            loss = (
                f"{self.key} on {self.url} lost {len(lost)} flags ({', '.join(lost)}): "
                "keeping the last good ones; restore() writes them back"
            )
            problems.append((loss, None))
        recorded = self._record(changes)
        for problem, cause in problems:
            self._report(problem, cause)
        if not problems:
            self.error = None
        self._tell(recorded)

    def _receive(self, data: object) -> None:
        try:
            message = _document(data)
            name = message.get("name")
            if not isinstance(name, str):
                raise TypeError(f"the name must be a string, got {name!r}")  # noqa: TRY301
            change: Change = (name, *_entry(message))
        except Exception as error:  # noqa: BLE001  # anyone can publish anything
            self._report(f"ignoring a message on {self.channel} ({_preview(data)})", error)
            return
        self.error = None
        self._tell(self._record([change]))

    def _relock(self) -> None:
        super()._relock()
        self._ready = threading.Event()

    def _restart(self) -> None:
        # In a forked child the listener thread does not exist and the
        # inherited sockets belong to the parent: start afresh.
        if not self._stop.is_set():
            self._stop = threading.Event()
            self.connected = False
            self._start()


def _preview(data: object) -> str:
    """A short repr of what arrived: enough to recognise it, never megabytes in a log line."""
    text = repr(data)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def _document(data: object) -> dict[str, Any]:
    """A JSON object from bytes.

    Raises:
        TypeError: not bytes, or not a JSON object.
        ValueError: not UTF-8, or not JSON.
        RecursionError: nested deeper than the parser's stack allows.

    """
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise TypeError("not a JSON object")
    return document


def _entry(document: dict[str, Any]) -> tuple[Config | None, int]:
    """The config (None: deleted) and revision of a stored entry or a message."""
    revision, config = document.get("revision"), document.get("config")
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise TypeError(f"the revision must be a positive integer, got {revision!r}")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"the config must be an object or null, got {config!r}")
    return config, revision
