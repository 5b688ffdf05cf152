"""FlagUpdate through a RedisBackend: the change, and its undo, reach another real process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from illunare import (
    Deployment,
    DeploymentError,
    FeatureFlags,
    FlagUpdate,
    HotReloader,
    Migration,
    RedisBackend,
)
from illunare.testing import RedisServer

# Another process: says "on" when it sees the flag on, then "off" once it is gone.
WATCHER = """
import sys, time
from illunare import FeatureFlags, RedisBackend
flags = FeatureFlags(backend=RedisBackend(sys.argv[1], key=sys.argv[2], channel=sys.argv[3]))
print("ready", flush=True)
for wanted, word in ((True, "on"), (False, "off")):
    deadline = time.monotonic() + 20
    while flags.is_enabled("new_flow") != wanted and time.monotonic() < deadline:
        time.sleep(0.001)
    print(word if flags.is_enabled("new_flow") == wanted else "timeout", flush=True)
"""


class TestFlagUpdateThroughRedis:
    def test_another_process_sees_the_flag_then_its_undo(
        self,
        make_backend: Callable[..., RedisBackend],
        redis_server: RedisServer,
        reloader: HotReloader,
    ) -> None:
        """A deployment's flag turns on in a second process, and off again when it is undone."""
        backend = make_backend()
        deployment = Deployment("redis", reloader=reloader, flags=FeatureFlags(backend=backend))
        arguments = [redis_server.url, backend.key, backend.channel]
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WATCHER), *arguments],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            stdout = child.stdout
            assert stdout.readline().strip() == "ready"
            seen: list[str] = []

            def other_process_sees_it() -> None:
                seen.append(stdout.readline().strip())

            def fail() -> None:
                raise RuntimeError("the migration fails")

            with pytest.raises(DeploymentError) as caught:
                deployment.run(
                    [
                        FlagUpdate("new_flow", {"enabled": True}),
                        Migration("wait for it", other_process_sees_it, lambda: None),
                        Migration("fails", fail),
                    ]
                )
            seen.append(stdout.readline().strip())
        assert child.returncode == 0
        assert seen == ["on", "off"]
        assert caught.value.result is not None
        assert caught.value.result.status == "rolled_back"
        assert caught.value.result.steps[0].status == "undone"
