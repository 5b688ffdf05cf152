"""make demo: a real HTTP service hot-swapped under load, and the report of what happened.

A shop service answers GET /price/<item> on a loopback port while client
threads call it continuously. The demo swaps its handlers module v1 -> v2,
tries a bad v3 (refused by a release check: nothing changes), rolls back to
v1, and prints how every request went.
"""

from __future__ import annotations

import collections
import http.client
import json
import sys
import threading
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from illunare import HotReloader, SwapError, signals  # noqa: E402  # after the path is set

CLIENTS = 4
PHASE_SECONDS = 1.0


class Traffic:
    """Client threads calling the service until stopped, counting every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.by_release: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        seen: collections.Counter[str] = collections.Counter()
        failures = []
        while not self._stop.is_set():
            try:
                connection.request("GET", "/price/apple")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"HTTP {response.status}")
                    continue
                answer = json.loads(body)
                if answer["cents"] < 0:
                    failures.append(f"negative price from {answer['release']}")
                seen[answer["release"]] += 1
            except (OSError, http.client.HTTPException, ValueError) as error:
                failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.close()
        with self._lock:
            self.by_release.update(seen)
            self.failures.extend(failures)


def no_negative_prices(module: types.ModuleType) -> bool:
    """The release check: every known item must have a price of zero or more."""
    return all(module.price(item)["cents"] >= 0 for item in module.PRICES)


def main() -> int:
    reloader = HotReloader()
    reloader.install("shop")  # shop.* is versioned from its first import on
    from shop import server as shop_server  # imported after install()

    server = shop_server.serve()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    traffic = Traffic(server.server_address[1])
    refused: list[str] = []
    signals.swap_failed.connect(lambda sender, **kw: refused.append(str(kw["error"])), weak=False)

    print(f"shop serving on http://127.0.0.1:{traffic.port}/price/apple with {CLIENTS} clients")
    traffic.start()
    time.sleep(PHASE_SECONDS)

    timings = {}
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

    traffic.stop()
    server.shutdown()
    served = sum(traffic.by_release.values())
    print()
    print("report")
    print(f"  requests served      {served}")
    print(f"  requests failed      {len(traffic.failures)}")
    for release, count in sorted(traffic.by_release.items()):
        print(f"  served by {release:<10} {count}")
    for what, seconds in timings.items():
        print(f"  {what:<20} {seconds * 1e3:.3f} ms")
    print(f"  swaps refused        {len(refused)}")
    print(f"  history              {[v.number for v in reloader.history('shop.handlers')]}")
    if traffic.failures:
        print(f"FAILED: {traffic.failures[:5]}")
        return 1
    if set(traffic.by_release) != {"v1", "v2"} or len(refused) != 1:
        print("FAILED: the demo did not go as planned")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
