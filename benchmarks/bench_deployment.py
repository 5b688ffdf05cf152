"""The undo of a deployment: 5 modules released together, then the last step fails.

Each round deploys a package of 5 modules (each of 20 small functions, new
code every round) and a migration that fails. What is timed is the undo
alone: from the failure of the last step (``step_failed``) to the deployment
rolled back (``deployment_rolled_back``). The undo switches the 5 modules
back in one flip, recompiling nothing; most of its time is the reloader's
search for references still holding the code left (``stale=``).

Measured twice: alone (the figure of the goal), and with a thread calling
one of the modules throughout (the undo then shares the GIL).

Run: make bench  (or .venv/bin/python benchmarks/bench_deployment.py)
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from _common import callers, import_module, module_source, percentiles, report
from illunare import Deployment, DeploymentError, HotReloader, Migration, signals

MODULES = 5
FUNCTIONS = 20
ROUNDS = 300


def fail() -> None:
    raise RuntimeError("the migration fails")


def undo_times(threads: int) -> list[float]:
    """Seconds of each round's undo, with ``threads`` threads calling a module meanwhile."""
    reloader = HotReloader()
    modules = [import_module(module_source(FUNCTIONS, 0)) for _ in range(MODULES)]
    for module in modules:
        reloader.track(module)
    deployment = Deployment("bench", reloader=reloader)
    failed_at: list[float] = []
    undone: list[float] = []

    def on_failure(sender: object, **kwargs: Any) -> None:
        failed_at.append(time.perf_counter())

    def on_rolled_back(sender: object, **kwargs: Any) -> None:
        undone.append(time.perf_counter() - failed_at[-1])

    with (
        signals.step_failed.connected_to(on_failure),
        signals.deployment_rolled_back.connected_to(on_rolled_back),
        callers(lambda: modules[0].f7(1), threads) if threads else contextlib.nullcontext(),
    ):
        for round_ in range(1, ROUNDS + 1):
            package = {
                "modules": [
                    {"name": module.__name__, "code": module_source(FUNCTIONS, round_)}
                    for module in modules
                ],
                "migrations": [Migration("fails", fail)],
            }
            try:
                deployment.run(package)
            except DeploymentError:
                pass
            else:
                raise AssertionError("the deployment should have failed")
    assert all(result.status == "rolled_back" for result in deployment.history())
    return undone


def main() -> None:
    figure = f"undo of a {MODULES}-module deployment after its last step fails"
    p50, p99 = percentiles(undo_times(0))
    report(f"{figure}: p50", p50 * 1e3, "ms", "-")
    report(f"{figure}: p99", p99 * 1e3, "ms", "<= 1")
    report(f"{figure}: p99 / goal", p99 / 1e-3, "x", "<= 1")
    p50, p99 = percentiles(undo_times(1))
    report(f"{figure}, a thread calling: p50", p50 * 1e3, "ms", "-")
    report(f"{figure}, a thread calling: p99", p99 * 1e3, "ms", "-")


if __name__ == "__main__":
    main()
