"""Cost of a call during a gradual rollout, as ratios against baselines measured in the same run.

Figures (DESIGN-10 section 3): a hot function's call while a weighted 50 %
rollout runs, and with a sticky key, against a direct call of a plain
function; the same hot function after promotion (and after a revert)
against itself before the rollout. The module's ``f`` is also called by
another of its functions, so routers keep their caller check (the worst
case); informational lines give ``entry`` (a function no code of the
module names: its router skips that check) and ``nested`` (``f`` called
by ``nested``, both routed). Baseline and measured statements run
interleaved, best of each.

Detection: a new version failing 20 % of its calls, 4 threads calling, a
0.2 s bake: from its first failing call (monotonic, noted by the new code)
to the moment every call is on the old version again (``rollout_finished``
is received after the revert switch, so this is an upper bound); no call
started (by its caller) after it may run the new version. The worst of
DETECTIONS runs.

Run: make bench  (or .venv/bin/python benchmarks/bench_rollout.py)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from _common import best_per_statement, callers, import_module, report
from illunare import HotReloader, Rollout, signals
from illunare._reload.proxy import HotFunction

SOURCE = """\
TAG = {tag}

def f(x):
    return x

def nested(x):
    return f(x)

def entry(x):
    return x
"""

#: 1000 distinct keys, called in turn (the sticky figure's key function is the argument)
KEYS = list(range(1000))
LOOP = "for key in keys: f(key)"
ROUNDS = 41
#: runs of LOOP per round: short rounds, many of them, so that the best of
#: each finds a quiet moment on a shared machine
NUMBER = 20


def interleaved(statement: str, *namespaces: dict[str, object], number: int) -> list[float]:
    """Seconds per run of ``statement`` in each namespace: the best of ROUNDS, taken in turns."""
    best = [float("inf")] * len(namespaces)
    for _ in range(ROUNDS):
        for index, namespace in enumerate(namespaces):
            seconds = best_per_statement(statement, namespace, number=number, repeat=1)
            best[index] = min(best[index], seconds)
    return best


def measure(reloader: HotReloader, sticky: Callable[..., object] | None) -> dict[str, float]:
    """The ratios of one 50 % rollout, promoted at the end, and of another one reverted."""
    plain = import_module(SOURCE.format(tag=0))
    # Never rolled out: what a hot function costs before (and without) a rollout.
    twin = import_module(SOURCE.format(tag=0))
    promoted = import_module(SOURCE.format(tag=0))
    reverted = import_module(SOURCE.format(tag=0))
    for module in (twin, promoted, reverted):
        reloader.track(module)
    steps = Rollout(steps=(50, 100), bake=3600.0, sticky=sticky)
    handles = [
        reloader.swap(module.__name__, SOURCE.format(tag=1), rollout=steps)
        for module in (promoted, reverted)
    ]
    hot = promoted.f
    assert isinstance(hot, HotFunction)
    ratios = {}
    direct, routed = interleaved(
        LOOP, {"f": plain.f, "keys": KEYS}, {"f": hot, "keys": KEYS}, number=NUMBER
    )
    ratios["during"] = routed / direct
    direct, routed = interleaved(
        LOOP, {"f": plain.nested, "keys": KEYS}, {"f": promoted.nested, "keys": KEYS}, number=NUMBER
    )
    ratios["nested"] = routed / direct
    direct, routed = interleaved(
        LOOP, {"f": plain.entry, "keys": KEYS}, {"f": promoted.entry, "keys": KEYS}, number=NUMBER
    )
    ratios["entry"] = routed / direct
    handles[0].promote()
    handles[1].abort()
    assert type(hot.__wrapped__) is type(plain.f)
    assert type(reverted.f.__wrapped__) is type(plain.f)
    before, after, back = interleaved(
        LOOP,
        {"f": twin.f, "keys": KEYS},
        {"f": hot, "keys": KEYS},
        {"f": reverted.f, "keys": KEYS},
        number=NUMBER,
    )
    ratios["promoted"] = after / before
    ratios["reverted"] = back / before
    return ratios


#: the new version of the detection figure: notes when each call it runs was started (the
#: caller's monotonic time, its argument), and when it failed
FAILING = """\
import random
import time

import _bench_detection as noted

def f(started):
    noted.starts.append(started)
    if random.random() < 0.2:
        noted.failures.append(time.monotonic())
        raise ValueError(started)
    return started
"""
BAKE = 0.2
DETECTIONS = 5


def detection(reloader: HotReloader) -> float:
    """Seconds from the new version's first failing call until every call is on the old one."""
    starts: list[float] = []
    failures: list[float] = []
    noted = types.ModuleType("_bench_detection")
    noted.starts, noted.failures = starts, failures  # type: ignore[attr-defined]
    sys.modules[noted.__name__] = noted
    module = import_module(SOURCE.format(tag=0))
    reloader.track(module)
    finished: list[float] = []

    def on_finished(sender: object, **kwargs: Any) -> None:
        finished.append(time.monotonic())

    def call() -> None:
        with contextlib.suppress(ValueError):
            module.f(time.monotonic())

    rollout = Rollout(steps=(10, 50, 100), bake=BAKE)
    with signals.rollout_finished.connected_to(on_finished), callers(call):
        handle = reloader.swap(module.__name__, FAILING, rollout=rollout)
        status = handle.wait(timeout=30)
        # Calls go on after the revert: none may start on the new version.
        time.sleep(0.05)
    assert status == "rolled_back", status
    switched = finished[0]
    assert max(starts) <= switched, "a call started on the new version after the revert"
    return switched - min(failures)


def main() -> None:
    reloader = HotReloader()
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    worst = max(detection(reloader) for _ in range(DETECTIONS))
    weighted = measure(reloader, None)
    sticky = measure(reloader, lambda key: key)
    report(
        "call during a weighted 50% rollout / direct plain call", weighted["during"], "x", "<= 10"
    )
    report("the same, sticky over 1000 keys / direct plain call", sticky["during"], "x", "<= 12")
    report(
        "call after promotion / the same hot function never rolled out",
        weighted["promoted"],
        "x",
        "<= 1.05",
    )
    report("  after a revert / the same", weighted["reverted"], "x", "<= 1.05")
    report("  after the sticky rollout's promotion / the same", sticky["promoted"], "x", "<= 1.05")
    report("  (info) entry-only function / direct plain call", weighted["entry"], "x", "-")
    report("  (info) nested call / plain nested call", weighted["nested"], "x", "-")
    report(
        f"detection: first failing call -> all on old (bake {BAKE} s, worst of {DETECTIONS})",
        worst * 1000,
        "ms",
        f"<= {BAKE * 1000 + 10:.0f}",
    )
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
