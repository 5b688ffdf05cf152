"""RedisBackend against a real redis-server: processes, outages and forks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable

import pytest

from illunare import BackendUnavailableError, FeatureFlags, RedisBackend
from illunare.testing import RedisServer

from .conftest import eventually


class TestRedisBackend:
    def test_an_update_reaches_another_backend(
        self, make_backend: Callable[..., RedisBackend]
    ) -> None:
        """Two FeatureFlags on two connections: an update in one is seen by the other."""
        writer, reader = FeatureFlags(backend=make_backend()), FeatureFlags(backend=make_backend())
        writer.update("new_payment_flow", {"conditions": [{"type": "region", "value": "BR"}]})
        assert eventually(lambda: reader.is_enabled("new_payment_flow", {"region": "BR"}))
        writer.delete("new_payment_flow")
        assert eventually(lambda: "new_payment_flow" not in reader.flags())

    def test_a_new_process_loads_the_full_state(
        self, make_backend: Callable[..., RedisBackend]
    ) -> None:
        """A FeatureFlags created later starts with every stored flag."""
        FeatureFlags(backend=make_backend()).update("stored", {"enabled": True})
        assert FeatureFlags(backend=make_backend()).is_enabled("stored")

    def test_two_real_processes(
        self, make_backend: Callable[..., RedisBackend], redis_server: RedisServer
    ) -> None:
        """A change made here is seen by another Python process within the wait."""
        backend = make_backend()
        script = textwrap.dedent(
            f"""
            import sys, time
            from illunare import FeatureFlags, RedisBackend
            flags = FeatureFlags(backend=RedisBackend({redis_server.url!r}, key={backend.key!r},
                                                      channel={backend.channel!r}))
            print("ready", flush=True)
            deadline = time.monotonic() + 20
            while not flags.is_enabled("cross_process") and time.monotonic() < deadline:
                time.sleep(0.001)
            print("seen" if flags.is_enabled("cross_process") else "timeout", flush=True)
            """
        )
        with subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            FeatureFlags(backend=backend).update("cross_process", {"enabled": True})
            assert child.stdout.readline().strip() == "seen"
        assert child.returncode == 0

    def test_restart_keeps_evaluating_then_reloads(
        self, make_backend: Callable[..., RedisBackend], redis_server: RedisServer
    ) -> None:
        """During an outage flags keep serving and writes fail; after it, the state reloads."""
        reader_backend = make_backend(retry_interval=0.05)
        reader = FeatureFlags(backend=reader_backend)
        writer = FeatureFlags(backend=make_backend())
        writer.update("f", {"conditions": [{"type": "region", "value": "BR"}]})
        assert eventually(lambda: reader.is_enabled("f", {"region": "BR"}))
        # A writer on another channel changes the hash without the reader hearing it.
        silent = FeatureFlags(backend=make_backend(channel=reader_backend.channel + ":other"))
        redis_server.stop()
        try:
            assert eventually(lambda: not reader_backend.connected)
            assert reader.is_enabled("f", {"region": "BR"})
            with pytest.raises(BackendUnavailableError):
                writer.update("f", {"enabled": False})
            with pytest.raises(ConnectionError):
                writer.delete("f")
        finally:
            redis_server.start()
        assert eventually(lambda: silent.backend.connected)  # type: ignore[attr-defined]
        silent.update("g", {"enabled": True})
        assert not reader.is_enabled("g")  # published where the reader does not listen
        redis_server.stop()
        redis_server.start()
        assert eventually(lambda: reader.is_enabled("g"))
        assert reader.is_enabled("f", {"region": "BR"})

    def test_a_forked_child_gets_changes(self, make_backend: Callable[..., RedisBackend]) -> None:
        """After fork (pre-fork servers), the child re-subscribes and sees later changes."""
        flags = FeatureFlags(backend=make_backend())
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: intended
            pid = os.fork()
        if pid == 0:  # the child
            os.close(read)
            seen = eventually(lambda: flags.is_enabled("after_fork"), timeout=15)
            os.write(write, b"1" if seen else b"0")
            os._exit(0)
        os.close(write)
        time.sleep(0.2)  # let the child subscribe
        flags.update("after_fork", {"enabled": True})
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert answer == b"1"

    def test_unreachable_redis(self) -> None:
        """With no server, start-up does not hang, evaluation works, writes raise."""
        backend = RedisBackend("redis://127.0.0.1:1/0", retry_interval=0.05)
        try:
            flags = FeatureFlags(backend=backend)
            assert not backend.connected
            assert not flags.is_enabled("anything")
            with pytest.raises(BackendUnavailableError):
                flags.update("f", {})
            assert flags.flags() == {}
        finally:
            backend.close()

    def test_malformed_messages_are_ignored(
        self, make_backend: Callable[..., RedisBackend], redis_server: RedisServer
    ) -> None:
        """Garbage on the channel changes nothing."""
        import redis

        backend = make_backend()
        flags = FeatureFlags(backend=backend)
        client = redis.Redis.from_url(redis_server.url)
        client.publish(backend.channel, "not json")
        client.publish(backend.channel, '{"config": {}}')
        client.close()
        FeatureFlags(backend=make_backend()).update("after", {})
        assert eventually(lambda: flags.is_enabled("after"))
        assert set(flags.flags()) == {"after"}


class TestRedisArguments:
    def test_bad_arguments(self) -> None:
        """URL, key and channel must be non-empty strings."""
        from illunare import InvalidArgumentError

        for options in (
            {"url": ""},
            {"url": "redis://x", "key": ""},
            {"url": "redis://x", "channel": 5},
        ):
            with pytest.raises(InvalidArgumentError):
                RedisBackend(**options)  # type: ignore[arg-type]
