"""Swap on save: time from writing a tracked module's file to the new version answering calls.

Run: make bench  (or .venv/bin/python benchmarks/bench_watch.py)
"""

from __future__ import annotations

import time

from _common import percentiles, report, write_module
from illunare import HotReloader

SAVES = 40


def main() -> None:
    reloader = HotReloader()
    name, path = write_module("def tag():\n    return 0\n")
    module = __import__(name)
    reloader.track(module)
    samples = []
    with reloader.watch(path.parent):
        for tag in range(1, SAVES + 1):
            start = time.perf_counter()
            path.write_text(f"def tag():\n    return {tag}\n")
            while module.tag() != tag:
                if time.perf_counter() - start > 5:
                    raise RuntimeError(f"save {tag} was not picked up within 5 s")
                time.sleep(0.001)
            samples.append(time.perf_counter() - start)
            time.sleep(0.05)  # separate saves, as an editor would
    p50, p99 = percentiles(samples)
    report("save -> new version answering (watch): p50", p50 * 1e3, "ms", "<= 100")
    report("save -> new version answering (watch): p99", p99 * 1e3, "ms", "<= 100")


if __name__ == "__main__":
    main()
