"""Flag evaluation against a hand-written check, GrowthBook and Unleash; updates; Redis propagation.

Run: make bench  (or .venv/bin/python benchmarks/bench_flags.py)
The flag: user_segment == "premium" AND region in [BR, AR, MX]; then a 30 %
rollout against a hand-written hash check, and an update of a flag of 10,000
conditions.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from typing import Any

from _common import best_per_statement, percentiles, report
from illunare import FeatureFlags, RedisBackend
from illunare.testing import RedisServer

CONTEXT = {"user_id": "u-42", "user_segment": "premium", "region": "BR"}
CONFIG = {
    "enabled": True,
    "conditions": [
        {"type": "user_segment", "value": "premium"},
        {"type": "region", "value": ["BR", "AR", "MX"]},
    ],
}
UNLEASH_PAYLOAD = {
    "version": 1,
    "features": [
        {
            "name": "new_payment_flow",
            "enabled": True,
            "strategies": [
                {
                    "name": "default",
                    "constraints": [
                        {"contextName": "segment", "operator": "IN", "values": ["premium"]},
                        {"contextName": "region", "operator": "IN", "values": ["BR", "AR", "MX"]},
                    ],
                }
            ],
        }
    ],
}
UNLEASH_CONTEXT = {"userId": "u-42", "properties": {"segment": "premium", "region": "BR"}}

PLAIN_FLAGS = {
    "new_payment_flow": {"enabled": True, "segment": "premium", "regions": {"BR", "AR", "MX"}}
}


def plain_check(name: str, context: dict[str, Any]) -> bool:
    """The baseline: a dict lookup and two comparisons, written by hand."""
    flag = PLAIN_FLAGS[name]
    return bool(
        flag["enabled"]
        and context.get("user_segment") == flag["segment"]
        and context.get("region") in flag["regions"]  # type: ignore[operator]
    )


def against_plain(flags: FeatureFlags) -> float:
    names = {"plain_check": plain_check, "flags": flags, "CONTEXT": CONTEXT}
    assert plain_check("new_payment_flow", CONTEXT)
    assert flags.is_enabled("new_payment_flow", CONTEXT)
    baseline = best_per_statement('plain_check("new_payment_flow", CONTEXT)', names)
    measured = best_per_statement('flags.is_enabled("new_payment_flow", CONTEXT)', names)
    report(
        "is_enabled / hand-written dict lookup + two comparisons",
        measured / baseline,
        "x",
        "<= 1.5",
    )
    return measured


ROLLOUT = {"enabled": True, "conditions": [{"type": "percentage", "value": 30}]}


def rollout_check(name: str, context: dict[str, Any]) -> bool:
    """The baseline: a 30 % rollout by hand, with the fastest hash in the standard library."""
    return zlib.crc32(f"{name}:{context.get('user_id')}".encode()) % 100 < 30


def rollout_against_plain() -> None:
    flags = FeatureFlags()
    flags.update("rollout", ROLLOUT)
    names = {"rollout_check": rollout_check, "flags": flags, "CONTEXT": CONTEXT}
    baseline = best_per_statement('rollout_check("rollout", CONTEXT)', names)
    measured = best_per_statement('flags.is_enabled("rollout", CONTEXT)', names)
    report("is_enabled, 30 % rollout / hand-written crc32 check", measured / baseline, "x", "<= 3")


def large_update() -> None:
    conditions = [
        {"type": "attribute", "attribute": f"key{index}", "operator": "in", "value": ["a", "b"]}
        for index in range(10_000)
    ]
    flags = FeatureFlags()
    best = float("inf")
    for round_ in range(3):
        config = {"enabled": True, "description": str(round_), "conditions": conditions}
        start = time.perf_counter()
        flags.update("large", config)
        best = min(best, time.perf_counter() - start)
    report("update of a flag of 10,000 conditions", best, "s", "<= 0.5")


def against_growthbook(ours: float) -> None:
    from growthbook import GrowthBook

    features = {
        "new_payment_flow": {
            "defaultValue": False,
            "rules": [
                {
                    "condition": {"user_segment": "premium", "region": {"$in": ["BR", "AR", "MX"]}},
                    "force": True,
                }
            ],
        }
    }
    growthbook = GrowthBook(attributes=dict(CONTEXT), features=features)
    assert growthbook.is_on("new_payment_flow")
    theirs = best_per_statement(
        'growthbook.is_on("new_payment_flow")', {"growthbook": growthbook}, number=20_000, repeat=5
    )
    growthbook.destroy()
    report("GrowthBook is_on / illunare is_enabled (times faster)", theirs / ours, "x", ">= 30")


def against_unleash() -> None:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    flags = FeatureFlags()
    flags.load_unleash(UNLEASH_PAYLOAD)
    with tempfile.TemporaryDirectory() as directory:
        cache = FileCache("illunare-bench", directory=directory)
        cache.bootstrap_from_dict(UNLEASH_PAYLOAD)
        client = UnleashClient(
            url="http://127.0.0.1:9/api",
            app_name="illunare-bench",
            disable_metrics=True,
            disable_registration=True,
            cache=cache,
        )
        client.initialize_client(fetch_toggles=False)
        try:
            assert client.is_enabled("new_payment_flow", UNLEASH_CONTEXT)
            assert flags.is_enabled("new_payment_flow", UNLEASH_CONTEXT)
            theirs = best_per_statement(
                'client.is_enabled("new_payment_flow", UNLEASH_CONTEXT)',
                {"client": client, "UNLEASH_CONTEXT": UNLEASH_CONTEXT},
                number=5_000,
                repeat=5,
            )
        finally:
            client.destroy()
    ours = best_per_statement(
        'flags.is_enabled("new_payment_flow", UNLEASH_CONTEXT)',
        {"flags": flags, "UNLEASH_CONTEXT": UNLEASH_CONTEXT},
    )
    report(
        "UnleashClient.is_enabled / illunare, same payload (times faster)",
        theirs / ours,
        "x",
        ">= 100",
    )


LISTENER = """
import json, sys, time
from illunare import FeatureFlags, RedisBackend
flags = FeatureFlags(backend=RedisBackend(sys.argv[1], key="bench", channel="bench:changes"))
latencies = []
expected = int(sys.argv[2])
def seen(name, old, new):
    if new is not None and name == "probe":
        latencies.append(time.monotonic() - float(new.config["description"]))
flags.on_change("probe")(seen)
print("ready", flush=True)
deadline = time.monotonic() + 60
while len(latencies) < expected and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps(latencies), flush=True)
"""


def redis_propagation() -> None:
    updates = 300
    with tempfile.TemporaryDirectory() as directory, RedisServer(directory) as server:
        backend = RedisBackend(server.url, key="bench", channel="bench:changes")
        flags = FeatureFlags(backend=backend)
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(LISTENER), server.url, str(updates)],
            stdout=subprocess.PIPE,
            text=True,
        ) as listener:
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == "ready"
            for _ in range(updates):
                flags.update("probe", {"enabled": True, "description": repr(time.monotonic())})
                time.sleep(0.005)
            latencies = json.loads(listener.stdout.readline())
        backend.close()
    assert len(latencies) == updates, f"{len(latencies)} of {updates} updates arrived"
    p50, p99 = percentiles(latencies)
    report("Redis: update in one process -> applied in another, p50", p50 * 1e3, "ms", "-")
    report("Redis: update in one process -> applied in another, p99", p99 * 1e3, "ms", "<= 10")


def main() -> None:
    logging.getLogger("UnleashClient").setLevel(logging.CRITICAL)
    flags = FeatureFlags()
    flags.update("new_payment_flow", CONFIG)
    ours = against_plain(flags)
    rollout_against_plain()
    large_update()
    against_growthbook(ours)
    against_unleash()
    if shutil.which("redis-server"):
        redis_propagation()
    else:
        print("Redis propagation: not measured, redis-server is not installed")


if __name__ == "__main__":
    main()
