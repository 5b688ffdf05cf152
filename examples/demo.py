"""make demo: a real HTTP service hot-swapped under load, and the report of what happened.

A shop service answers GET /price/<item> on a loopback port while client
threads call it continuously (half of them premium customers in Brazil, half
free customers in the US). The demo swaps its handlers module v1 -> v2,
tries a bad v3 (refused by a release check: nothing changes), rolls back to
v1, then turns the ``new_payment_flow`` flag on for premium users in
BR/AR/MX. Where a redis-server is installed, the flags live in Redis and a
second, real process watches the flag change arrive. It prints how every
request went.
"""

from __future__ import annotations

import collections
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from illunare import (  # noqa: E402  # after the path is set
    FeatureFlags,
    HotReloader,
    MemoryBackend,
    RedisBackend,
    SwapError,
    signals,
)
from illunare.testing import RedisServer  # noqa: E402

PAYMENT_FLAG = {
    "enabled": True,
    "conditions": [
        {"type": "user_segment", "value": "premium"},
        {"type": "region", "value": ["BR", "AR", "MX"]},
    ],
}
CUSTOMERS = [("premium", "BR"), ("free", "US")]

# The second process: it only watches the flag through Redis.
WATCHER = """
import sys, time
from illunare import FeatureFlags, RedisBackend
flags = FeatureFlags(backend=RedisBackend(sys.argv[1]))
print("ready", flush=True)
customer = {"user_segment": "premium", "region": "BR"}
deadline = time.monotonic() + 30
while not flags.is_enabled("new_payment_flow", customer) and time.monotonic() < deadline:
    time.sleep(0.0005)
seen = flags.is_enabled("new_payment_flow", customer)
print("seen" if seen else "never", time.monotonic(), flush=True)
"""

CLIENTS = 4
PHASE_SECONDS = 1.0


class Traffic:
    """Client threads calling the service until stopped, counting every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.by_release: collections.Counter[str] = collections.Counter()
        self.by_flow: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(CUSTOMERS[n % len(CUSTOMERS)],))
            for n in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, customer: tuple[str, str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"X-Segment": customer[0], "X-Region": customer[1]}
        seen: collections.Counter[str] = collections.Counter()
        flows: collections.Counter[tuple[str, str]] = collections.Counter()
        failures = []
        while not self._stop.is_set():
            try:
                connection.request("GET", "/price/apple", headers=headers)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"HTTP {response.status}")
                    continue
                answer = json.loads(body)
                if answer["cents"] < 0:
                    failures.append(f"negative price from {answer['release']}")
                seen[answer["release"]] += 1
                flows[(customer[0], answer["payment_flow"])] += 1
            except (OSError, http.client.HTTPException, ValueError) as error:
                failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.close()
        with self._lock:
            self.by_release.update(seen)
            self.by_flow.update(flows)
            self.failures.extend(failures)


def no_negative_prices(module: types.ModuleType) -> bool:
    """The release check: every known item must have a price of zero or more."""
    return all(module.price(item)["cents"] >= 0 for item in module.PRICES)


def flag_backend(stack: ExitStack) -> tuple[RedisBackend | MemoryBackend, str | None]:
    """Redis on a throwaway server where redis-server is installed, else memory."""
    if shutil.which("redis-server") is None:
        return MemoryBackend(), None
    directory = stack.enter_context(tempfile.TemporaryDirectory())
    server = stack.enter_context(RedisServer(directory))
    backend = RedisBackend(server.url)
    stack.callback(backend.close)
    return backend, server.url


def swap_phase(reloader: HotReloader, timings: dict[str, float]) -> None:
    """v1 -> v2, a refused v3, and back to v1, while the clients call."""
    start = time.perf_counter()
    v2 = reloader.swap("shop.handlers", HERE / "releases" / "handlers_v2.py", reason="discount",
                       checks=[no_negative_prices])  # fmt: skip
    timings["swap v1 -> v2"] = time.perf_counter() - start
    print(f"swapped to version {v2.number} ({v2.reason})")
    time.sleep(PHASE_SECONDS)

    try:
        reloader.swap("shop.handlers", HERE / "releases" / "handlers_v3.py", reason="bad release",
                      checks=[no_negative_prices])  # fmt: skip
    except SwapError as error:
        print(f"v3 refused, still on version {reloader.current('shop.handlers').number}: {error}")
    time.sleep(PHASE_SECONDS)

    start = time.perf_counter()
    v1 = reloader.rollback("shop.handlers", to=1)
    timings["rollback to v1"] = time.perf_counter() - start
    print(f"rolled back to version {v1.number}")
    time.sleep(PHASE_SECONDS)


def flag_phase(flags: FeatureFlags, redis_url: str | None, timings: dict[str, float]) -> bool:
    """Turn new_payment_flow on; a second process watches it arrive through Redis."""
    watcher = None
    if redis_url is not None:
        watcher = subprocess.Popen(
            [sys.executable, "-c", WATCHER, redis_url], stdout=subprocess.PIPE, text=True
        )
        assert watcher.stdout is not None
        watcher.stdout.readline()  # "ready"
    sent = time.monotonic()
    flags.update("new_payment_flow", PAYMENT_FLAG)
    print("new_payment_flow is on for premium users in BR, AR and MX")
    seen = True
    if watcher is not None:
        assert watcher.stdout is not None
        answer, when = watcher.stdout.readline().split()
        watcher.wait(30)
        watcher.stdout.close()
        seen = answer == "seen"
        timings["flag seen by a 2nd process"] = float(when) - sent
    time.sleep(PHASE_SECONDS)
    return seen


def main() -> int:
    reloader = HotReloader()
    reloader.install("shop")  # shop.* is versioned from its first import on
    from shop import server as shop_server  # imported after install()

    with ExitStack() as stack:
        backend, redis_url = flag_backend(stack)
        flags = shop_server.FLAGS = FeatureFlags(backend=backend)
        server = shop_server.serve()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        traffic = Traffic(server.server_address[1])
        refused: list[str] = []
        signals.swap_failed.connect(
            lambda sender, **kw: refused.append(str(kw["error"])), weak=False
        )
        print(f"shop serving on http://127.0.0.1:{traffic.port}/price/apple with {CLIENTS} clients")
        print(f"flags in {'Redis at ' + redis_url if redis_url else 'memory (no redis-server)'}")
        traffic.start()
        time.sleep(PHASE_SECONDS)
        timings: dict[str, float] = {}
        swap_phase(reloader, timings)
        seen = flag_phase(flags, redis_url, timings)
        traffic.stop()
        server.shutdown()
    return report(traffic, timings, refused, reloader, seen=seen)


def report(
    traffic: Traffic,
    timings: dict[str, float],
    refused: list[str],
    reloader: HotReloader,
    *,
    seen: bool,
) -> int:
    """Print what happened; 0 when every request succeeded and everything went to plan."""
    print()
    print("report")
    print(f"  requests served      {sum(traffic.by_release.values())}")
    print(f"  requests failed      {len(traffic.failures)}")
    for release, count in sorted(traffic.by_release.items()):
        print(f"  served by {release:<10} {count}")
    for (segment, flow), count in sorted(traffic.by_flow.items()):
        print(f"  {segment:<8} {flow:<8} flow {count}")
    for what, seconds in timings.items():
        print(f"  {what:<28} {seconds * 1e3:.3f} ms")
    print(f"  swaps refused        {len(refused)}")
    print(f"  history              {[v.number for v in reloader.history('shop.handlers')]}")
    problems = []
    if traffic.failures:
        problems.append(f"failed requests: {traffic.failures[:5]}")
    if set(traffic.by_release) != {"v1", "v2"} or len(refused) != 1:
        problems.append("the swaps did not go as planned")
    if not traffic.by_flow[("premium", "new")] or traffic.by_flow[("free", "new")]:
        problems.append("the flag did not reach exactly the premium customers")
    if not seen:
        problems.append("the second process never saw the flag")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
