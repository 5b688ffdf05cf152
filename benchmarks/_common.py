"""What the benchmark scripts share: throwaway modules on disk, timing and reporting."""

from __future__ import annotations

import importlib
import itertools
import statistics
import sys
import tempfile
import threading
import time
import timeit
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_names = itertools.count()
_root = Path(tempfile.mkdtemp(prefix="illunare-bench-"))
sys.path.insert(0, str(_root))


def module_source(functions: int, tag: int) -> str:
    """A module with ``functions`` small functions, each returning its own tag."""
    lines = [f"TAG = {tag}", ""]
    for index in range(functions):
        lines += [f"def f{index}(x):", f"    return x + TAG + {index}", ""]
    lines += ["def f(x):", "    return x", "", "def empty():", "    pass", ""]
    return "\n".join(lines)


def write_module(source: str) -> tuple[str, Path]:
    """Write a new uniquely named module; return its name and path (not imported)."""
    name = f"illunare_bench_{next(_names)}"
    path = _root / f"{name}.py"
    path.write_text(source)
    importlib.invalidate_caches()
    return name, path


def import_module(source: str) -> types.ModuleType:
    """Write and import a new uniquely named module."""
    name, _ = write_module(source)
    return importlib.import_module(name)


def best_per_call(
    function: Callable[[], object], *, number: int = 200_000, repeat: int = 7
) -> float:
    """The best-of-``repeat`` seconds per call of ``function``, loop overhead included."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in itertools.repeat(None, number):
            function()
        best = min(best, time.perf_counter() - start)
    return best / number


def best_per_statement(
    statement: str, namespace: dict[str, object], *, number: int = 200_000, repeat: int = 7
) -> float:
    """The best-of-``repeat`` seconds per execution of ``statement`` (no wrapper call around it)."""
    timings = timeit.repeat(statement, globals=namespace, number=number, repeat=repeat)
    return min(timings) / number


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples``."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


@contextmanager
def callers(function: Callable[[], object], threads: int = 4) -> Iterator[list[int]]:
    """Keep ``threads`` threads calling ``function`` until the block ends; yields call counts."""
    stop = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        calls = 0
        try:
            while not stop.is_set():
                function()
                calls += 1
        except BaseException as error:  # a failed call is what the benchmark must reveal
            errors.append(error)
        counts[slot] = calls

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(0.05)
    try:
        yield counts
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed during the benchmark") from errors[0]


def report(figure: str, value: float, unit: str, goal: str) -> None:
    """Print one figure on one line, with its goal."""
    print(f"{figure:<62} {value:>10.3f} {unit:<4} (goal {goal})")
