"""Memory held after 10,000 swap/rollback cycles with keep=10: evicted versions must be released.

Run: make bench  (or .venv/bin/python benchmarks/bench_memory.py)
"""

from __future__ import annotations

import gc
import os
import sys

from _common import import_module, module_source, report
from illunare import HotReloader

CYCLES = 10_000
WARM_UP = 200


def resident_bytes() -> int:
    """This process's resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    reloader = HotReloader(keep=10)
    module = import_module(module_source(20, 0))
    reloader.track(module)
    name = module.__name__

    def cycle(tag: int) -> None:
        reloader.swap(name, module_source(20, tag))
        # The parent may already be evicted; the next older kept version never is.
        reloader.rollback(name, to=reloader.history(name)[-2].number)

    for tag in range(1, WARM_UP + 1):  # fill the history and every cache first
        cycle(tag)
    gc.collect()
    before = resident_bytes()
    for tag in range(WARM_UP + 1, WARM_UP + CYCLES + 1):
        cycle(tag)
    gc.collect()
    growth = resident_bytes() - before
    assert len(reloader.history(name)) == 10
    report(
        f"memory growth over {CYCLES:,} swap/rollback cycles, keep=10", growth / 1e6, "MB", "<= 5"
    )


if __name__ == "__main__":
    sys.exit(main())
