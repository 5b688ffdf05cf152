"""Swap and rollback of a 50-function module: latencies under load, and against importlib.reload.

Run: make bench  (or .venv/bin/python benchmarks/bench_swap.py)
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import illunare._reload.reloader as reloader_module
from _common import callers, import_module, module_source, percentiles, report, write_module
from illunare import HotReloader
from illunare._reload.binding import flip

FUNCTIONS = 50
ROUNDS = 400


def flip_under_load(reloader: HotReloader) -> None:
    """Time only the switch to an already prepared version, with 4 threads calling the module.

    The switch is ``binding.flip``: the part of a swap during which callers
    can tell old from new. Preparing (compile, execute, bind) comes before it,
    releasing evicted versions after it.
    """
    module = import_module(module_source(FUNCTIONS, 0))
    reloader.track(module)
    sources = [module_source(FUNCTIONS, tag) for tag in range(1, ROUNDS + 1)]
    samples: list[float] = []

    def timed_flip(*args: Any) -> None:
        start = time.perf_counter()
        flip(*args)
        samples.append(time.perf_counter() - start)

    with callers(lambda: module.f7(1)), replaced(reloader_module, "flip", timed_flip):
        for source in sources:
            reloader.swap(module.__name__, source)
    p50, p99 = percentiles(samples)
    report(
        "flip of a prepared 50-function module, 4 threads calling: p50", p50 * 1e6, "us", "<= 20"
    )
    report(
        "flip of a prepared 50-function module, 4 threads calling: p99", p99 * 1e6, "us", "<= 100"
    )


@contextmanager
def replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """Replace an attribute for the duration of the block."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def rollback_under_load(reloader: HotReloader) -> None:
    """Time rollback() calls, alternating between two kept versions, with 4 threads calling."""
    module = import_module(module_source(FUNCTIONS, 0))
    reloader.track(module)
    reloader.swap(module.__name__, module_source(FUNCTIONS, 1))
    samples = []
    with callers(lambda: module.f7(1)):
        for round_ in range(ROUNDS):
            target = 1 if round_ % 2 == 0 else 2
            start = time.perf_counter()
            reloader.rollback(module.__name__, to=target)
            samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    report("rollback() of a 50-function module, 4 threads calling: p50", p50 * 1e6, "us", "<= 20")
    report("rollback() of a 50-function module, 4 threads calling: p99", p99 * 1e6, "us", "<= 100")


def swap_against_reload(reloader: HotReloader) -> None:
    """A whole swap() from the module's file against importlib.reload of the same change.

    Rounds alternate between the two, so that drift in the machine's speed
    falls on both alike; each round writes a new source (a new size, so that
    reload cannot take a stale .pyc).
    """
    rounds = 100
    sources = [module_source(FUNCTIONS, tag) + "#" * tag for tag in range(1, rounds + 1)]
    plain_name, plain_path = write_module(module_source(FUNCTIONS, 0))
    plain = importlib.import_module(plain_name)
    name, path = write_module(module_source(FUNCTIONS, 0))
    reloader.track(importlib.import_module(name))
    reload_times, swap_times = [], []
    for source in sources:
        plain_path.write_text(source)
        path.write_text(source)
        start = time.perf_counter()
        importlib.reload(plain)
        reload_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        reloader.swap(name)
        swap_times.append(time.perf_counter() - start)
    assert plain.TAG == sys.modules[name].TAG == rounds
    ratio = statistics.median(swap_times) / statistics.median(reload_times)
    report("whole swap() of a 50-function module / importlib.reload", ratio, "x", "<= 1.0")


def main() -> None:
    reloader = HotReloader()
    flip_under_load(reloader)
    rollback_under_load(reloader)
    swap_against_reload(reloader)


if __name__ == "__main__":
    main()
