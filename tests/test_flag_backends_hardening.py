"""Flag backends under hostile input, racing writers, lost stores and forks, all for real."""

from __future__ import annotations

import itertools
import json
import logging
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from illunare import (
    BackendUnavailableError,
    FeatureFlags,
    FileBackend,
    FlagConfigError,
    InvalidArgumentError,
    MemoryBackend,
    RedisBackend,
    signals,
)
from illunare.testing import RedisServer

from .conftest import eventually, in_child
from .strategies import HOSTILE_BYTES, NESTED_JSON

MakeBackend = Callable[..., RedisBackend]
_tags = itertools.count()

#: messages on the channel that no process may choke on
BAD_MESSAGES = {
    "not utf-8": b"\xff\xfe\x80",
    "latin-1 inside JSON": b'{"name": "caf\xe9", "revision": 9, "config": {}}',
    "not JSON": b"not json",
    "not an object": b"[1, 2]",
    "no name": b'{"revision": 9, "config": {}}',
    "name not a string": b'{"name": 5, "revision": 9, "config": {}}',
    "revision a string": b'{"name": "x", "revision": "9", "config": {}}',
    "revision a bool": b'{"name": "x", "revision": true, "config": {}}',
    "revision zero": b'{"name": "x", "revision": 0, "config": {}}',
    "config not an object": b'{"name": "x", "revision": 9, "config": 5}',
    "nested too deep": NESTED_JSON,
}


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client, to do what other programs may do to the store."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def problems() -> Iterator[list[dict[str, Any]]]:
    """Every backend_error signal sent during the test, as its kwargs and sender."""
    seen: list[dict[str, Any]] = []

    def receive(sender: object, **kwargs: Any) -> None:
        seen.append({"sender": sender, **kwargs})

    signals.backend_error.connect(receive)
    yield seen
    signals.backend_error.disconnect(receive)


def stored(raw: redis.Redis, backend: RedisBackend, name: str) -> Any:
    """The config the Redis hash holds for ``name`` (None: deleted or missing)."""
    entry = raw.hget(backend.key, name)
    return None if entry is None else json.loads(entry)["config"]


def served(flags: FeatureFlags, name: str) -> Any:
    """The config ``flags`` serves for ``name``, as a plain dict (None: none)."""
    flag = flags.flags().get(name)
    return None if flag is None else dict(flag.config)


def agree_on(name: str, expected: object, *every: FeatureFlags) -> Callable[[], bool]:
    """A check that every FeatureFlags serves ``expected`` for the flag ``name``."""
    return lambda: all(served(flags, name) == expected for flags in every)


def agree(expected: object, *every: FeatureFlags) -> Callable[[], bool]:
    """A check that every FeatureFlags serves ``expected`` for the flag "race"."""
    return agree_on("race", expected, *every)


def settled_views(
    raw: redis.Redis, backend: RedisBackend, name: str, *every: FeatureFlags
) -> Callable[[], tuple[str, ...]]:
    """What the hash holds for ``name`` and what each FeatureFlags serves, read at one moment."""
    return lambda: tuple(
        json.dumps(view, sort_keys=True)
        for view in [stored(raw, backend, name), *(served(flags, name) for flags in every)]
    )


def tagged(tag: object) -> dict[str, Any]:
    """A valid config told apart from others by its description."""
    return {"enabled": True, "description": str(tag)}


def replace(path: Path, content: bytes) -> None:
    """Give ``path`` new content at once, as editors and deploy tools do (no half-written file)."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(content)
    staged.replace(path)


class TestRedisListenerOutlivesBadMessages:
    @pytest.mark.parametrize("payload", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
    def test_a_bad_message_is_reported_and_later_changes_apply(
        self,
        payload: bytes,
        make_backend: MakeBackend,
        raw: redis.Redis,
        problems: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Garbage from any client is logged, signalled, kept in error; the listener carries on."""
        backend = make_backend()
        flags = FeatureFlags(backend=backend)
        raw.publish(backend.channel, payload)
        assert eventually(lambda: backend.error is not None)
        assert backend.connected
        assert eventually(lambda: any(problem["sender"] is backend for problem in problems))
        assert any(
            record.levelno >= logging.WARNING and record.name == "illunare"
            for record in caplog.records
        )
        FeatureFlags(backend=make_backend()).update("after", {"enabled": True})
        assert eventually(lambda: flags.is_enabled("after"))
        assert backend.error is None  # a good change puts it right

    def test_hostile_bytes_never_stop_the_listener(
        self, make_backend: MakeBackend, raw: redis.Redis
    ) -> None:
        """Whatever bytes are published, the next good change is applied."""
        backend = make_backend()
        flags = FeatureFlags(backend=backend)
        writer = FeatureFlags(backend=make_backend())

        @settings(max_examples=30, deadline=None)
        @given(payload=HOSTILE_BYTES)
        def publish(payload: bytes) -> None:
            raw.publish(backend.channel, payload)
            config = tagged(next(_tags))
            writer.update("probe", config)
            assert eventually(lambda: served(flags, "probe") == config)

        publish()
        assert backend.connected


class TestRedisHealth:
    def test_an_outage_is_reported_once_and_cleared_on_return(
        self, make_backend: MakeBackend, redis_server: RedisServer, problems: list[dict[str, Any]]
    ) -> None:
        """connected and error tell an outage, reported once; both clear when Redis is back."""
        backend = make_backend(retry_interval=0.05)
        flags = FeatureFlags(backend=backend)
        flags.update("f", {"enabled": True})
        redis_server.stop()
        try:
            assert eventually(lambda: not backend.connected)
            assert eventually(lambda: any(p["sender"] is backend for p in problems))
            assert "cannot listen" in (backend.error or "")
            assert flags.is_enabled("f")
        finally:
            redis_server.start()
        assert eventually(lambda: backend.connected and backend.error is None)
        assert len([p for p in problems if p["sender"] is backend]) == 1


class TestRedisHashEntries:
    def test_broken_entries_are_skipped_and_the_rest_load(
        self, make_backend: MakeBackend, raw: redis.Redis, problems: list[dict[str, Any]]
    ) -> None:
        """Entries not UTF-8, not JSON, mistyped or too deep are reported; the good ones load."""
        key = make_backend().key
        FeatureFlags(backend=make_backend()).update("good", {"enabled": True})
        raw.hset(key, b"bad-value", b"\xff\xfe")
        raw.hset(key, b"\xff-name", b'{"revision": 1, "config": {}}')
        raw.hset(key, "plain-config", '{"enabled": true}')
        raw.hset(key, "deep", NESTED_JSON)
        backend = make_backend()
        assert backend.connected  # started at once, not after a stall
        flags = FeatureFlags(backend=backend)
        assert set(flags.flags()) == {"good"}
        assert backend.error is not None
        assert len([p for p in problems if p["sender"] is backend]) == 4

    def test_hostile_bytes_in_the_hash(self, make_backend: MakeBackend, raw: redis.Redis) -> None:
        """Whatever bytes the hash holds, a new process starts with every good flag."""
        key = make_backend().key
        FeatureFlags(backend=make_backend()).update("good", {"enabled": True})

        @settings(max_examples=20, deadline=None)
        @given(name=st.binary(min_size=1, max_size=8), value=HOSTILE_BYTES)
        def store(name: bytes, value: bytes) -> None:
            if name == b"good":
                return
            raw.hset(key, name, value)
            backend = make_backend()
            try:
                assert backend.connected
                assert FeatureFlags(backend=backend).is_enabled("good")
            finally:
                backend.close()
                raw.hdel(key, name)

        store()


class TestFileBackendOutlivesBadFiles:
    @pytest.mark.parametrize(
        "content",
        [b'{"f": {"description": "caf\xe9"}}', NESTED_JSON, b"\xff", b"[1]"],
        ids=["latin-1", "nested too deep", "not utf-8", "not an object"],
    )
    def test_a_bad_file_is_reported_and_the_poller_goes_on(
        self, content: bytes, tmp_path: Path, problems: list[dict[str, Any]]
    ) -> None:
        """A bad edit keeps the last good flags, sets error, signals; the next good edit applies."""
        path = tmp_path / "flags.json"
        path.write_text(json.dumps({"f": {"enabled": True}}))
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)
            replace(path, content)
            assert eventually(lambda: backend.error is not None)
            assert flags.is_enabled("f")
            assert eventually(lambda: [p["sender"] for p in problems] == [backend])
            path.write_text(json.dumps({"f": {"enabled": False}}))
            assert eventually(lambda: not flags.is_enabled("f"))
            assert backend.error is None
        finally:
            backend.close()

    @pytest.mark.parametrize(
        "content", [b'{"f": "caf\xe9"}', NESTED_JSON], ids=["latin-1", "nested too deep"]
    )
    def test_a_bad_file_at_start_is_a_flag_config_error(
        self, content: bytes, tmp_path: Path
    ) -> None:
        """Opening a file that cannot be used raises FlagConfigError, not a raw decoding error."""
        path = tmp_path / "flags.json"
        path.write_bytes(content)
        with pytest.raises(FlagConfigError):
            FileBackend(path)

    def test_a_symlink_loop(self, tmp_path: Path) -> None:
        """A symlink loop where the file was is reported; the poller recovers when it is fixed."""
        path = tmp_path / "flags.json"
        path.write_text(json.dumps({"f": {"enabled": True}}))
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)
            path.unlink()
            (tmp_path / "loop").symlink_to(path)
            path.symlink_to(tmp_path / "loop")
            assert eventually(lambda: "cannot be read" in (backend.error or ""))
            assert flags.is_enabled("f")
            path.unlink()
            path.write_text(json.dumps({"g": {"enabled": True}}))
            assert eventually(lambda: flags.is_enabled("g"))
        finally:
            backend.close()

    def test_hostile_bytes_in_the_file(self, tmp_path: Path) -> None:
        """Whatever bytes the file holds for a while, the next good file applies."""
        path = tmp_path / "flags.json"
        path.write_text("{}")
        backend = FileBackend(path, poll_interval=0.01)
        flags = FeatureFlags(backend=backend)

        @settings(max_examples=30, deadline=None)
        @given(content=HOSTILE_BYTES)
        def write(content: bytes) -> None:
            replace(path, content)
            if not _flag_file(content):
                assert eventually(lambda: backend.error is not None)
            config = tagged(next(_tags))
            replace(path, json.dumps({"probe": config}).encode())
            assert eventually(lambda: served(flags, "probe") == config)

        try:
            write()
        finally:
            backend.close()


def _flag_file(content: bytes) -> bool:
    """Whether ``content`` is a usable flag file (hostile bytes rarely are)."""
    try:
        document = json.loads(content.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict)


class TestReceiversAreIsolated:
    def test_a_raising_receiver_does_not_break_update(self) -> None:
        """update() returns, on_change listeners run, other receivers run; the failure is logged."""
        flags = FeatureFlags()
        heard: list[str] = []
        flags.on_change()(lambda name, old, new: heard.append(name))

        def broken(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        def working(sender: object, **kwargs: Any) -> None:
            heard.append("receiver")

        with signals.flag_updated.connected_to(broken), signals.flag_updated.connected_to(working):
            flag = flags.update("f", {"enabled": True})
        assert flags.flags()["f"] == flag
        assert sorted(heard) == ["f", "receiver"]

    def test_a_raising_receiver_does_not_stop_a_backend_thread(
        self, make_backend: MakeBackend
    ) -> None:
        """Changes keep arriving through a Redis listener whose receivers raise."""
        flags = FeatureFlags(backend=make_backend())
        writer = FeatureFlags(backend=make_backend())

        def broken(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        with signals.flag_updated.connected_to(broken):
            writer.update("first", {"enabled": True})
            assert eventually(lambda: flags.is_enabled("first"))
            writer.update("second", {"enabled": True})
            assert eventually(lambda: flags.is_enabled("second"))

    def test_a_raising_backend_error_receiver(self, tmp_path: Path) -> None:
        """A backend_error receiver that raises does not stop the file poller."""
        path = tmp_path / "flags.json"
        path.write_text("{}")
        backend = FileBackend(path, poll_interval=0.01)

        def broken(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        try:
            flags = FeatureFlags(backend=backend)
            with signals.backend_error.connected_to(broken):
                path.write_text("{broken")
                assert eventually(lambda: backend.error is not None)
                path.write_text(json.dumps({"g": {"enabled": True}}))
                assert eventually(lambda: flags.is_enabled("g"))
        finally:
            backend.close()


def nested_not(depth: int) -> dict[str, Any]:
    """A config of ``depth`` nested ``not`` conditions: too deep to validate or compile."""
    condition: dict[str, Any] = {"type": "region", "value": "BR"}
    for _ in range(depth):
        condition = {"type": "not", "condition": condition}
    return {"conditions": [condition]}


class TestUnusableRemoteConfigs:
    def test_a_file_config_that_cannot_compile(self, tmp_path: Path) -> None:
        """A stored config too deep to compile is logged; the last good flag serves; edits go on."""
        path = tmp_path / "flags.json"
        path.write_text(json.dumps({"f": {"enabled": True}}))
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)
            replace(path, json.dumps({"f": nested_not(400), "g": {"enabled": True}}).encode())
            assert eventually(lambda: flags.is_enabled("g"))
            assert served(flags, "f") == {"enabled": True}
            replace(path, json.dumps({"f": {"enabled": False}}).encode())
            assert eventually(lambda: not flags.is_enabled("f") and "f" in flags.flags())
        finally:
            backend.close()

    def test_a_published_config_that_cannot_compile(
        self, make_backend: MakeBackend, raw: redis.Redis
    ) -> None:
        """The same through Redis: the listener lives on, the last good flag serves."""
        backend = make_backend()
        flags = FeatureFlags(backend=backend)
        writer = FeatureFlags(backend=make_backend())
        writer.update("f", {"enabled": True})
        assert eventually(lambda: flags.is_enabled("f"))
        message = {"name": "f", "revision": 10**15, "config": nested_not(400)}
        raw.publish(backend.channel, json.dumps(message))
        writer.update("g", {"enabled": True})
        assert eventually(lambda: flags.is_enabled("g"))
        assert served(flags, "f") == {"enabled": True}


class TestArguments:
    @pytest.mark.parametrize("value", [-5, 0, "soon", math.nan, math.inf, True, None])
    def test_redis_intervals(self, value: object) -> None:
        """retry_interval and timeout must be positive, finite numbers of seconds."""
        for option in ("retry_interval", "timeout"):
            with pytest.raises(InvalidArgumentError) as raised:
                RedisBackend("redis://127.0.0.1:1/0", **{option: value})  # type: ignore[arg-type]
            assert isinstance(raised.value, ValueError)

    @pytest.mark.parametrize("value", [-5, 0, "soon", math.nan, math.inf, True, None])
    def test_poll_interval(self, value: object, tmp_path: Path) -> None:
        """poll_interval must be a positive, finite number of seconds."""
        with pytest.raises(InvalidArgumentError):
            FileBackend(tmp_path / "flags.json", poll_interval=value)  # type: ignore[arg-type]


class TestConvergence:
    """Every process ends up serving what the store holds, however writes cross."""

    @staticmethod
    def race(first: FeatureFlags, second: FeatureFlags, trials: int) -> Iterator[int]:
        """Update one flag from two threads at once, ``trials`` times; yield each trial."""

        def write(flags: FeatureFlags, barrier: threading.Barrier, tag: str) -> None:
            barrier.wait()
            flags.update("race", tagged(tag))

        for trial in range(trials):
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=write, args=(first, barrier, f"{trial}-a")),
                threading.Thread(target=write, args=(second, barrier, f"{trial}-b")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            yield trial

    def test_two_threads_in_memory(self) -> None:
        """Two FeatureFlags on one MemoryBackend agree with the store after every race."""
        backend = MemoryBackend()
        first, second = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        for _ in self.race(first, second, 200):
            store = FeatureFlags(backend=backend)
            expected = served(store, "race")
            store.close()
            assert served(first, "race") == expected == served(second, "race")

    def test_two_threads_on_a_file(self, tmp_path: Path) -> None:
        """Two FeatureFlags on one FileBackend agree with the file after every race."""
        path = tmp_path / "flags.json"
        backend = FileBackend(path, poll_interval=0.01)
        try:
            first, second = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
            for _ in self.race(first, second, 100):
                expected = json.loads(path.read_text())["race"]
                assert eventually(agree(expected, first, second))
        finally:
            backend.close()

    def test_two_threads_on_redis(self, make_backend: MakeBackend, raw: redis.Redis) -> None:
        """Two FeatureFlags on one RedisBackend, and a third process's view, agree with the hash."""
        backend = make_backend()
        first, second = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        elsewhere = FeatureFlags(backend=make_backend())
        for _ in self.race(first, second, 100):
            assert eventually(agree(stored(raw, backend, "race"), first, second, elsewhere))

    def test_processes_racing_on_redis(
        self, make_backend: MakeBackend, redis_server: RedisServer
    ) -> None:
        """Three processes and two threads write one flag at once; all end on the hash's config."""
        backend = make_backend()
        children = [
            self.writer(f"RedisBackend({redis_server.url!r}, key={backend.key!r}, "
                        f"channel={backend.channel!r})", side)
            for side in ("p1", "p2", "p3")
        ]  # fmt: skip
        first, second = FeatureFlags(backend=backend), FeatureFlags(backend=make_backend())
        self.run_race(children, [first, second])
        answers = self.check(children)
        assert answers == ["same", "same", "same"]
        with redis.Redis.from_url(redis_server.url) as raw:
            assert eventually(agree(stored(raw, backend, "race"), first, second))

    def test_processes_racing_on_a_file(self, tmp_path: Path) -> None:
        """Two processes and a thread write one flag in one file; all end on the file's config."""
        path = tmp_path / "flags.json"
        children = [
            self.writer(f"FileBackend({str(path)!r}, poll_interval=0.01)", side)
            for side in ("p1", "p2")
        ]
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)
            self.run_race(children, [flags])
            assert self.check(children) == ["same", "same"]
            assert eventually(agree(json.loads(path.read_text())["race"], flags))
        finally:
            backend.close()

    def test_processes_adding_flags_to_one_file_lose_none(self, tmp_path: Path) -> None:
        """Three processes add flags to one file at once: every flag is in it, and everywhere."""
        path = tmp_path / "flags.json"
        script = textwrap.dedent(
            f"""
            import sys
            from illunare import FeatureFlags, FileBackend
            flags = FeatureFlags(backend=FileBackend({str(path)!r}, poll_interval=0.01))
            print("ready", flush=True)
            sys.stdin.readline()
            for i in range(30):
                flags.update(sys.argv[1] + "-" + str(i), {{"enabled": True}})
            """
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, side],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for side in ("p1", "p2", "p3")
        ]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            child.communicate(timeout=60)
            assert child.returncode == 0
        expected = {f"{side}-{i}" for side in ("p1", "p2", "p3") for i in range(30)}
        assert set(json.loads(path.read_text())) == expected

    @staticmethod
    def writer(backend: str, side: str) -> subprocess.Popen[str]:
        """A process writing the flag 30 times on "go", checking it serves the store on "check"."""
        script = textwrap.dedent(
            f"""
            import json, sys, time
            from illunare import FeatureFlags, FileBackend, RedisBackend
            backend = {backend}
            flags = FeatureFlags(backend=backend)
            print("ready", flush=True)
            sys.stdin.readline()
            for i in range(30):
                flags.update("race", {{"enabled": True, "description": "{side}-" + str(i)}})
            print("done", flush=True)
            sys.stdin.readline()
            def store():
                if isinstance(backend, FileBackend):
                    return json.loads(backend.path.read_text())["race"]
                import redis
                entry = redis.Redis.from_url(backend.url).hget(backend.key, "race")
                return json.loads(entry)["config"]
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if dict(flags.flags()["race"].config) == store():
                    print("same", flush=True)
                    break
                time.sleep(0.01)
            else:
                print("differs", flags.flags()["race"].config, store(), flush=True)
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        return child

    def run_race(self, children: list[subprocess.Popen[str]], local: list[FeatureFlags]) -> None:
        """Start every child writing, write 30 times from each local FeatureFlags, wait for all."""
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()

        def write(flags: FeatureFlags, side: str) -> None:
            for index in range(30):
                flags.update("race", tagged(f"{side}-{index}"))

        threads = [
            threading.Thread(target=write, args=(flags, f"t{number}"))
            for number, flags in enumerate(local)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"

    @staticmethod
    def check(children: list[subprocess.Popen[str]]) -> list[str]:
        """Ask each child whether it serves what the store holds; its answer, once it exits."""
        answers = []
        for child in children:
            output, _ = child.communicate("check\n", timeout=60)
            assert child.returncode == 0
            answers.append(output.strip())
        return answers

    def test_a_timed_out_write_that_lands_later(
        self, make_backend: MakeBackend, raw: redis.Redis, redis_server: RedisServer
    ) -> None:
        """A write timed out on a slow Redis but run later reaches every process, the writer too."""
        writer_backend = make_backend(timeout=0.5)
        writer = FeatureFlags(backend=writer_backend)
        reader = FeatureFlags(backend=make_backend())
        probe = redis.Redis.from_url(
            redis_server.url, socket_timeout=0.05, retry=Retry(NoBackoff(), 0)
        )
        try:
            # Whether the timed-out command reaches the server is up to the
            # network; every process must end on what the store holds either
            # way, and the case that matters, a late landing, comes soon.
            views = settled_views(raw, writer_backend, "slow", writer, reader)
            for attempt in range(5):
                writer.update("slow", tagged(f"before-{attempt}"))
                sleeper = threading.Thread(target=raw.execute_command, args=("DEBUG", "SLEEP", "2"))
                sleeper.start()
                try:
                    assert eventually(lambda: not _answers(probe))  # the server sleeps, or is slow
                    writer.update("slow", tagged(f"slow-{attempt}"))
                except BackendUnavailableError:
                    timed_out = True
                    assert served(writer, "slow") == tagged(f"before-{attempt}")  # not applied
                else:
                    timed_out = False  # the probe was slow before the server slept: try again
                finally:
                    sleeper.join()
                # The timed-out command may still land after the sleep ends.
                assert eventually(lambda: len(set(views())) == 1), views()
                expected = stored(raw, writer_backend, "slow")
                if timed_out and expected == tagged(f"slow-{attempt}"):
                    break  # it landed after the timeout, and reached the writer too
            else:
                pytest.fail("no write timed out and landed later in five tries")
        finally:
            probe.close()


def _answers(client: redis.Redis) -> bool:
    try:
        client.ping()
    except redis.TimeoutError:
        return False
    return True


class TestLostStore:
    @pytest.mark.parametrize("how", ["evicted", "flushed", "restarted without persistence"])
    def test_an_emptied_hash_keeps_the_last_good_flags_loudly(
        self,
        how: str,
        make_backend: MakeBackend,
        raw: redis.Redis,
        redis_server: RedisServer,
        problems: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The hash is lost: each process keeps its flags, says so; restore() puts them back."""
        backend = make_backend(retry_interval=0.05)
        reader = FeatureFlags(backend=backend)
        writer = FeatureFlags(backend=make_backend())
        writer.update("a", {"enabled": True})
        writer.update("b", {"enabled": True})
        assert eventually(lambda: set(reader.flags()) == {"a", "b"})
        if how == "restarted without persistence":
            redis_server.stop()
            for stored_file in redis_server.directory.rglob("*"):
                if stored_file.is_file():
                    stored_file.unlink()
            redis_server.start()
        else:
            if how == "evicted":
                raw.delete(backend.key)
            else:
                raw.flushall()
            raw.client_kill_filter(_type="pubsub")  # every listener reconnects and reloads
        assert eventually(lambda: "lost 2 flags" in (backend.error or ""))
        assert set(reader.flags()) == {"a", "b"}
        assert eventually(
            lambda: any(p["sender"] is backend and "lost" in p["error"] for p in problems)
        )
        assert any("lost 2 flags" in record.getMessage() for record in caplog.records)
        newcomer = FeatureFlags(backend=make_backend())
        assert newcomer.flags() == {}
        assert backend.restore() == ["a", "b"]
        assert eventually(lambda: set(newcomer.flags()) == {"a", "b"})
        assert backend.restore() == []  # nothing missing any more

    def test_a_delete_made_while_away_still_deletes(
        self, make_backend: MakeBackend, raw: redis.Redis
    ) -> None:
        """A deletion recorded in the hash applies on reload: only a delete removes a flag."""
        backend = make_backend(retry_interval=0.05)
        reader = FeatureFlags(backend=backend)
        writer = FeatureFlags(backend=make_backend())
        writer.update("gone", {"enabled": True})
        writer.update("kept", {"enabled": True})
        assert eventually(lambda: set(reader.flags()) == {"gone", "kept"})
        # Deleted where the reader does not listen: it learns of it on reload only.
        FeatureFlags(backend=make_backend(channel=backend.channel + ":other")).delete("gone")
        assert "gone" in reader.flags()
        raw.client_kill_filter(_type="pubsub")
        assert eventually(lambda: set(reader.flags()) == {"kept"})
        assert backend.error is None

    def test_a_reset_store_keeps_revisions_growing(
        self, make_backend: MakeBackend, raw: redis.Redis
    ) -> None:
        """After the hash is lost, an update by any process reaches those at later revisions."""
        writer = FeatureFlags(backend=make_backend())
        reader = FeatureFlags(backend=make_backend())
        for step in range(5):
            writer.update("f", tagged(step))
        assert eventually(lambda: served(reader, "f") == tagged(4))
        raw.delete(writer.backend.key)  # type: ignore[attr-defined]
        newcomer = FeatureFlags(backend=make_backend())  # never knew the flag
        newcomer.update("f", tagged("newcomer"))
        assert eventually(agree_on("f", tagged("newcomer"), writer, reader, newcomer))
        writer.update("f", tagged("writer"))
        assert eventually(agree_on("f", tagged("writer"), writer, reader, newcomer))


class TestVanishedFile:
    @pytest.mark.parametrize("how", ["deleted", "moved"])
    def test_the_last_good_flags_stay_and_update_writes_them_back(
        self, how: str, tmp_path: Path, problems: list[dict[str, Any]]
    ) -> None:
        """A vanished file keeps every flag and is reported; the next update writes all back."""
        path = tmp_path / "flags.json"
        path.write_text(json.dumps({"a": {"enabled": True}, "b": {"enabled": True}}))
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)
            if how == "deleted":
                path.unlink()
            else:
                path.rename(tmp_path / "elsewhere.json")
            assert eventually(lambda: "gone" in (backend.error or ""))
            assert eventually(lambda: [p["sender"] for p in problems] == [backend])
            assert flags.is_enabled("a")
            assert flags.is_enabled("b")
            flags.update("c", {"enabled": True})
            assert set(json.loads(path.read_text())) == {"a", "b", "c"}
            assert backend.error is None
        finally:
            backend.close()

    def test_an_edit_not_yet_seen_is_not_lost_by_an_update(self, tmp_path: Path) -> None:
        """update() takes in the file as it is before writing it."""
        path = tmp_path / "flags.json"
        path.write_text("{}")
        backend = FileBackend(path, poll_interval=3600)  # the poller never runs here
        try:
            flags = FeatureFlags(backend=backend)
            path.write_text(json.dumps({"edited": {"enabled": True}}))
            flags.update("updated", {"enabled": True})
            assert set(json.loads(path.read_text())) == {"edited", "updated"}
            assert flags.is_enabled("edited")
        finally:
            backend.close()


class TestFork:
    def test_a_forked_child_polls_the_file(self, tmp_path: Path) -> None:
        """The child of a fork picks up edits of the file (its poller is restarted)."""
        path = tmp_path / "flags.json"
        path.write_text("{}")
        backend = FileBackend(path, poll_interval=0.01)
        try:
            flags = FeatureFlags(backend=backend)

            def child() -> bool:
                path.write_text(json.dumps({"after_fork": {"enabled": True}}))
                return eventually(lambda: flags.is_enabled("after_fork"), timeout=15)

            assert in_child(child) == 0
        finally:
            backend.close()

    def test_a_fork_while_a_listener_holds_the_flags_lock(self) -> None:
        """A fork while another thread is inside the FeatureFlags lock: the child's update works."""
        flags = FeatureFlags()
        inside, release = threading.Event(), threading.Event()

        @flags.on_change("held")
        def hold(name: str, old: object, new: object) -> None:
            inside.set()
            release.wait(30)

        # load_unleash tells listeners while it holds the lock.
        payload = {"version": 1, "features": [{"name": "held", "enabled": True, "strategies": []}]}
        holder = threading.Thread(target=flags.load_unleash, args=(payload,))
        holder.start()
        try:
            assert inside.wait(10)
            status = in_child(lambda: flags.update("child", {"enabled": True}).enabled)
        finally:
            release.set()
            holder.join()
        assert status == 0

    def test_forks_while_a_thread_writes_the_file(self, tmp_path: Path) -> None:
        """Forks during a stream of file writes: every child's first update completes."""
        path = tmp_path / "flags.json"
        backend = FileBackend(path, poll_interval=0.01)
        flags = FeatureFlags(backend=backend)
        big = {"conditions": [{"type": "user_id", "value": [str(n) for n in range(3000)]}]}
        stop = threading.Event()

        def keep_writing() -> None:
            while not stop.is_set():
                flags.update("busy", big)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            for _ in range(10):
                assert in_child(lambda: flags.update("child", {"enabled": True}).enabled) == 0
        finally:
            stop.set()
            writer.join()
            backend.close()

    def test_a_forked_child_gets_redis_changes_in_order(self, make_backend: MakeBackend) -> None:
        """The child of a fork reloads and then applies later changes from Redis."""
        flags = FeatureFlags(backend=make_backend())
        flags.update("f", tagged("before"))
        writer = FeatureFlags(backend=make_backend())

        def child() -> bool:
            writer.update("f", tagged("child"))
            return eventually(lambda: served(flags, "f") == tagged("child"), timeout=15)

        assert in_child(child) == 0
