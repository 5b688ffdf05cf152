"""Call overhead of hot references, as ratios against plain calls in the same run.

Run: make bench  (or .venv/bin/python benchmarks/bench_call.py)
"""

from __future__ import annotations

from _common import best_per_call, import_module, module_source, report
from illunare import HotReloader


def main() -> None:
    reloader = HotReloader()
    plain = import_module(module_source(50, 0))
    tracked = import_module(module_source(50, 0))
    reloader.track(tracked)

    direct_empty = plain.empty
    hot_empty = reloader.hot(tracked.empty)
    direct = best_per_call(direct_empty, number=1_000_000)
    through_hot = best_per_call(hot_empty, number=1_000_000)
    report("call of a @hot empty function / direct call", through_hot / direct, "x", "<= 2.5")

    def untracked_call() -> object:
        return plain.f(1)

    def tracked_call() -> object:
        return tracked.f(1)

    baseline = best_per_call(untracked_call, number=1_000_000)
    measured = best_per_call(tracked_call, number=1_000_000)
    report("m.f(1) through a tracked module / untracked module", measured / baseline, "x", "<= 2.5")


if __name__ == "__main__":
    main()
