"""Swap and rollback of a 50-function module: latencies under load, and against importlib.reload.

Each latency is measured twice: for a module of 50 functions, and for the
same module with 5 classes of 10 methods each, whose contents the switch
rewrites atomically along with the functions.

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

import illunare._reload.release as release_module
import illunare._reload.reloader as reloader_module
from _common import callers, import_module, module_source, percentiles, report, write_module
from illunare import HotReloader
from illunare._reload.binding import flip_many
from illunare._reload.switch import Switch

FUNCTIONS = 50
CLASSES = 5
METHODS = 10
ROUNDS = 400


def plain_source(tag: int) -> str:
    """The 50-function module."""
    return module_source(FUNCTIONS, tag)


def classes_source(tag: int) -> str:
    """The 50-function module plus 5 classes of 10 methods, all new in each version."""
    lines = [module_source(FUNCTIONS, tag)]
    for index in range(CLASSES):
        lines.append(f"class C{index}:")
        lines += [f"    def m{m}(self, x):\n        return x + TAG + {m}" for m in range(METHODS)]
        lines.append("")
    return "\n".join(lines)


KINDS = {"50-function module": plain_source, "module of 50 functions, 5 classes": classes_source}


def flip_under_load(reloader: HotReloader, kind: str, threads: int = 4) -> list[float]:
    """Time only the switch to an already prepared version, with ``threads`` threads calling.

    The flip is ``binding.flip_many`` as a swap's commit calls it: planning
    the switch, then the switch itself (``Switch.run``), the one C-level
    step during which the module changes and which no thread can observe
    half done, then the exchange of registrations. Preparing (compile,
    execute, bind, the version's bindings and class plans) comes before it,
    releasing evicted versions and the stale-reference report after it.

    Reported: the whole flip in wall-clock time, as the releasing thread
    sees it (comparable with earlier releases, whose flip was all switch);
    its CPU time, which leaves out the time the releasing thread waited for
    the GIL while a calling thread ran (a flip that the interpreter's switch
    interval, 5 ms, interrupts shows in the wall-clock p99 though no caller
    waited for it); and the atomic step alone, the only time during which
    no calling thread can run at all. With no calling thread, the same
    flips give the baseline: what the flip costs on an idle interpreter.
    """
    source = KINDS[kind]
    module = import_module(source(0))
    reloader.track(module)
    sources = [source(tag) for tag in range(1, ROUNDS + 1)]
    flips: list[float] = []
    cpu: list[float] = []
    steps: list[float] = []
    run = Switch.run

    def timed_flip(*args: Any) -> None:
        start, used = time.perf_counter(), time.thread_time()
        flip_many(*args)
        flips.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - used)

    def timed_run(switch: Switch) -> None:
        start = time.perf_counter()
        run(switch)
        steps.append(time.perf_counter() - start)

    with (
        callers(lambda: module.f7(1), threads=threads),
        replaced(release_module, "flip_many", timed_flip),
        replaced(Switch, "run", timed_run),
    ):
        for source in sources:
            reloader.swap(module.__name__, source)
    if not threads:
        return cpu
    for label, samples in (("flip", flips), ("flip (CPU time)", cpu), ("its atomic step", steps)):
        p50, p99 = percentiles(samples)
        figure = f"{label} of a prepared {kind}, {threads} threads calling"
        report(f"{figure}: p50", p50 * 1e6, "us", "<= 20")
        report(f"{figure}: p99", p99 * 1e6, "us", "<= 100")
    return cpu


@contextmanager
def replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """Replace an attribute for the duration of the block."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def rollback_under_load(reloader: HotReloader, kind: str) -> None:
    """Time rollback() calls, alternating between two kept versions, with 4 threads calling.

    Also counted: the rollbacks whose stale-reference check scanned the heap.
    A call in flight through a proxy (a calling thread stopped inside the
    function the rollback leaves) makes one: wrapt holds the function for
    the call's length, a reference that only a scan can tell from a holder.
    """
    source = KINDS[kind]
    module = import_module(source(0))
    reloader.track(module)
    reloader.swap(module.__name__, source(1))
    samples = []
    scans = []

    def counted_scan(*args: Any) -> tuple[str, ...]:
        scans.append(None)
        return scan(*args)

    scan = reloader_module.stale_references
    with (
        callers(lambda: module.f7(1)),
        replaced(reloader_module, "stale_references", counted_scan),
    ):
        for round_ in range(ROUNDS):
            target = 1 if round_ % 2 == 0 else 2
            start = time.perf_counter()
            reloader.rollback(module.__name__, to=target)
            samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    report(f"rollback() of a {kind}, 4 threads calling: p50", p50 * 1e6, "us", "<= 20")
    report(f"rollback() of a {kind}, 4 threads calling: p99", p99 * 1e6, "us", "<= 100")
    report(f"rollback() of a {kind}: heap scans (of {ROUNDS})", len(scans), "", "0")


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
    for kind in KINDS:
        idle = flip_under_load(reloader, kind, threads=0)
        p50, p99 = percentiles(idle)
        report(f"flip (CPU time) of a prepared {kind}, no thread: p50", p50 * 1e6, "us", "-")
        report(f"flip (CPU time) of a prepared {kind}, no thread: p99", p99 * 1e6, "us", "-")
        busy = flip_under_load(reloader, kind)
        report(
            f"flip (CPU time) of a {kind}, 4 threads calling / none: p50",
            statistics.median(busy) / statistics.median(idle),
            "x",
            "none: the same flips beside busy threads",
        )
        rollback_under_load(reloader, kind)
    swap_against_reload(reloader)


if __name__ == "__main__":
    main()
