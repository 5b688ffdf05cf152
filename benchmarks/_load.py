"""A fixed-rate HTTP load, as a production service sees it.

Run: ``python _load.py URL RATE CONNECTIONS``.

Each of CONNECTIONS keep-alive connections sends GET URL on its own fixed
schedule (RATE requests per second in all), whatever the answers: a request
answered late does not delay the schedule, and its latency is counted from
the moment it was due, not from when it was sent (a stalled server shows in
full). Runs until a line arrives on stdin, then prints one JSON object:
failed (non-2xx answers and connection errors) and, for every request, when
it was due (``time.monotonic()``, the clock every process shares) and its
latency (s).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def connection(
    host: str, port: int, path: str, period: float, offset: float, stop: asyncio.Event
) -> tuple[list[tuple[float, float]], int]:
    """Send GET ``path`` every ``period`` seconds until ``stop``; the latencies and failures."""
    latencies: list[tuple[float, float]] = []
    failed = 0
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    due = time.monotonic() + offset
    while not stop.is_set():
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 2"):
                failed += 1
        except (OSError, asyncio.IncompleteReadError):
            failed += 1
            reader, writer = await asyncio.open_connection(host, port)
        latencies.append((due, time.monotonic() - due))
        due += period
    writer.close()
    return latencies, failed


async def main(url: str, rate: float, connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    period = connections / rate
    results = await asyncio.gather(
        *(
            connection(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                parts.path,
                period,
                period * index / connections,
                stop,
            )
            for index in range(connections)
        )
    )
    return {
        "failed": sum(failed for _, failed in results),
        "latencies": sorted(latency for found, _ in results for latency in found),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))))
