"""The cost of finding registrations and stale references, in a small and in a big process.

Each swap scans for what the new code registered and for references to the
replaced code. Measured as the ratio of a swap to the same swap with both
scans stubbed out, in the same run, for a 50-function module nobody else
holds (the common case: no heap scan at all) and for a FastAPI routes
module that registers routes on an app of another module (heap scans), in
this process alone and then with FastAPI and four 20-route apps loaded.

Run: .venv/bin/python benchmarks/bench_registrations.py
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator

import illunare._reload.prepare as prepare_module
import illunare._reload.reloader as reloader_module
from _common import import_module, module_source, report
from illunare import HotReloader
from illunare._reload import registrations

ROUNDS = 30


@contextlib.contextmanager
def scans_stubbed() -> Iterator[None]:
    """Swaps with neither scan: nothing recorded, nothing reported."""
    record, stale = reloader_module.record, reloader_module.stale_references
    recording = prepare_module.recording

    @contextlib.contextmanager
    def nothing(
        module: str, namespace: object, base: object, inherited: object = ()
    ) -> Iterator[list[registrations.Registration]]:
        yield []

    reloader_module.record = lambda *args: ((), ())
    reloader_module.stale_references = lambda *args: ()
    prepare_module.recording = nothing
    try:
        yield
    finally:
        reloader_module.record, reloader_module.stale_references = record, stale
        prepare_module.recording = recording


_tags = itertools.count(1)


def median_swap(reloader: HotReloader, name: str, source: Callable[[int], str]) -> float:
    """Median seconds of a swap of ``name`` to ``source(tag)``, a new tag each time."""
    samples = []
    for _ in range(ROUNDS):
        text = source(next(_tags))
        started = time.perf_counter()
        reloader.swap(name, text)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def ratio(label: str, setup: Callable[[HotReloader], tuple[str, Callable[[int], str]]]) -> None:
    reloader = HotReloader()
    name, source = setup(reloader)
    with_scans = median_swap(reloader, name, source)
    with scans_stubbed():
        without = median_swap(reloader, name, source)
    report(f"{label}: ms per swap", with_scans * 1e3, "ms", "milliseconds")
    report(f"{label}: with scans / without", with_scans / without, "x", "small")


def plain(reloader: HotReloader) -> tuple[str, Callable[[int], str]]:
    module = import_module(module_source(50, 0))
    reloader.track(module)
    return module.__name__, lambda n: module_source(50, n)


def routes(reloader: HotReloader) -> tuple[str, Callable[[int], str]]:
    main = import_module("from fastapi import FastAPI\n\napp = FastAPI()\n")

    def source(tag: int) -> str:
        routes = (
            f'@app.get("/r{i}")\nasync def r{i}(q: int = 0):\n    return [{tag}, q]\n'
            for i in range(10)
        )
        return "\n".join([f"from {main.__name__} import app\n", *routes])

    module = import_module(source(0))
    reloader.track(module)
    return module.__name__, source


def load_a_big_process() -> None:
    import fastapi  # measured with and without it

    apps = []
    for _ in range(4):
        app = fastapi.FastAPI()
        for j in range(20):
            app.get(f"/r{j}")(lambda q=0: {})
        apps.append(app)
    load_a_big_process.apps = apps  # type: ignore[attr-defined]


def main() -> None:
    print(f"objects: {len(gc.get_objects())}")
    ratio("50-function module, small process", plain)
    load_a_big_process()
    print(f"objects: {len(gc.get_objects())}")
    ratio("50-function module, FastAPI + 4 apps loaded", plain)
    ratio("10-route FastAPI module, FastAPI + 4 apps loaded", routes)


if __name__ == "__main__":
    main()
