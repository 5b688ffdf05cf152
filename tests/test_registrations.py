"""Registrations belong to the version that made them: refused, replaced and rolled back."""

from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import os
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from illunare import HotReloader, RollbackError, SwapError, ValidationError

from .conftest import Package, run_script
from .strategies import BAD_SOURCES, RELEASE_STEPS

REGISTRY = """
HANDLERS = []
TABLE = {}
SEEN = set()
KINDS = {}

class Base:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        KINDS[cls.__name__] = cls
"""

PLUGIN = """
from {package} import registry

def handler():
    return {n}

registry.HANDLERS.append(handler)
registry.TABLE["handler"] = handler
registry.SEEN.add(handler)

class Plugin(registry.Base):
    number = {n}
"""


_examples = itertools.count()


def plugin(package: Package, n: int) -> str:
    return PLUGIN.format(package=package.name, n=n)


@pytest.fixture
def registry(package: Package) -> types.ModuleType:
    return package.module("registry", REGISTRY)


@pytest.fixture
def tracked(package: Package, registry: types.ModuleType, reloader: HotReloader) -> str:
    package.module("plugin", plugin(package, 1))
    reloader.track(package.qualified("plugin"))
    return package.qualified("plugin")


def handlers(registry: types.ModuleType) -> list[object]:
    return [handler() for handler in registry.HANDLERS]


def refuse(candidate: types.ModuleType) -> bool:
    return False


class TestPlainContainers:
    def test_a_refused_swap_leaves_none_of_its_registrations(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """A check that refuses the new version withdraws what its code registered."""
        with pytest.raises(ValidationError):
            reloader.swap(tracked, plugin(package, 2), checks=[refuse])
        assert handlers(registry) == [1]
        assert registry.TABLE["handler"]() == 1
        assert [handler() for handler in registry.SEEN] == [1]

    def test_a_version_whose_code_fails_half_way_leaves_nothing(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """What the new code registered before raising is withdrawn, the running entries kept."""
        with pytest.raises(Exception, match="boom"):
            reloader.swap(tracked, plugin(package, 2) + "\nraise RuntimeError('boom')\n")
        assert handlers(registry) == [1]
        assert registry.TABLE["handler"]() == 1

    def test_a_swap_replaces_the_old_registrations(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """After a swap there is one handler, the new one, in each container."""
        reloader.swap(tracked, plugin(package, 2))
        assert handlers(registry) == [2]
        assert registry.TABLE["handler"]() == 2
        assert [handler() for handler in registry.SEEN] == [2]

    def test_a_rollback_restores_the_older_registrations(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """Rolling back withdraws the newer entries and puts the older ones back."""
        reloader.swap(tracked, plugin(package, 2))
        reloader.rollback(tracked)
        assert handlers(registry) == [1]
        assert registry.TABLE["handler"]() == 1
        assert [handler() for handler in registry.SEEN] == [1]
        reloader.swap(tracked, plugin(package, 3))
        assert handlers(registry) == [3]
        reloader.rollback(tracked, 2)
        assert handlers(registry) == [2]

    def test_a_restored_entry_keeps_its_position_in_a_list(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """An older handler comes back where it was, before handlers registered after it."""
        registry.HANDLERS.append(lambda: "other")
        reloader.swap(tracked, plugin(package, 2))
        reloader.rollback(tracked)
        assert handlers(registry) == [1, "other"]

    def test_swaps_never_pile_up_handlers(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """However many swaps, refusals and rollbacks, one handler is registered."""
        for n in range(2, 8):
            reloader.swap(tracked, plugin(package, n))
            with pytest.raises(ValidationError):
                reloader.swap(tracked, plugin(package, 100 + n), checks=[refuse])
            if n % 3 == 0:
                reloader.rollback(tracked)
            assert len(registry.HANDLERS) == 1
            assert len(registry.SEEN) == 1

    def test_a_dict_another_module_fills_is_not_a_registration(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A dict of functions built by another module is left alone (and reported stale)."""
        helpers = package.module("helpers", "def f():\n    return 1\n")
        other = package.module(
            "other", f"from {package.name}.helpers import f\nTABLE = {{'f': f}}\n"
        )
        reloader.track(helpers)
        with pytest.warns(UserWarning, match="TABLE|'f'"):
            reloader.swap(helpers.__name__, "def f():\n    return 2\n")
        assert other.TABLE["f"]() == 1


WEAK_REGISTRY = """
import weakref

import blinker

ticked = blinker.Signal()
LISTENERS = weakref.WeakSet()
BY_NAME = weakref.WeakValueDictionary()
"""

WEAK_PLUGIN = """
from {package} import weak_registry

@weak_registry.ticked.connect
def on_tick(sender):
    return {n}

def listener():
    return {n}

weak_registry.LISTENERS.add(listener)
weak_registry.BY_NAME["listener"] = listener
"""


class TestWeakRegistries:
    """Registries of weak references (blinker's receivers, WeakSet, WeakValueDictionary)."""

    @pytest.fixture
    def weak(self, package: Package, reloader: HotReloader) -> tuple[types.ModuleType, str]:
        registry = package.module("weak_registry", WEAK_REGISTRY)
        package.module("weak_plugin", WEAK_PLUGIN.format(package=package.name, n=1))
        reloader.track(package.qualified("weak_plugin"))
        return registry, package.qualified("weak_plugin")

    @staticmethod
    def answers(registry: types.ModuleType) -> tuple[list[object], list[object], object]:
        received = sorted(result for _, result in registry.ticked.send(None))
        listeners = sorted(listener() for listener in registry.LISTENERS)
        return received, listeners, registry.BY_NAME["listener"]()

    def test_a_swap_replaces_the_weak_registrations(
        self, package: Package, reloader: HotReloader, weak: tuple[types.ModuleType, str]
    ) -> None:
        """One receiver, one listener: the new version's, though the old ones are alive."""
        registry, name = weak
        for n in (2, 3):
            reloader.swap(name, WEAK_PLUGIN.format(package=package.name, n=n))
            assert self.answers(registry) == ([n], [n], n)

    def test_a_rollback_restores_them_and_a_refused_swap_leaves_none(
        self, package: Package, reloader: HotReloader, weak: tuple[types.ModuleType, str]
    ) -> None:
        """As for lists, dicts and sets: the older version's back, the refused one's gone."""
        registry, name = weak
        reloader.swap(name, WEAK_PLUGIN.format(package=package.name, n=2))
        reloader.rollback(name)
        assert self.answers(registry) == ([1], [1], 1)
        with pytest.raises(ValidationError):
            reloader.swap(name, WEAK_PLUGIN.format(package=package.name, n=9), checks=[refuse])
        assert self.answers(registry) == ([1], [1], 1)


class TestProperties:
    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(steps=RELEASE_STEPS)
    def test_only_the_current_versions_handler_is_registered(
        self, package: Package, steps: list[tuple[str, object]]
    ) -> None:
        """Any sequence of swaps, refusals and rollbacks leaves one handler: the current one."""
        example = next(_examples)
        registry = package.module(f"registry_{example}", REGISTRY)
        source = PLUGIN.replace("registry", f"registry_{example}")
        module = package.module(f"plugin_{example}", source.format(package=package.name, n=0))
        reloader = HotReloader()
        reloader.track(module)
        numbers = {1: 0}  # version number -> the n its handler returns
        for kind, value in steps:
            if kind == "swap":
                version = reloader.swap(
                    module.__name__, source.format(package=package.name, n=value)
                )
                numbers.setdefault(version.number, value)
            elif kind == "refuse":
                bad, checks = BAD_SOURCES.get(
                    str(value), (source.format(package=package.name, n=100), (refuse,))
                )
                with pytest.raises(SwapError):
                    reloader.swap(module.__name__, bad, checks=checks)
            else:
                with contextlib.suppress(RollbackError):
                    reloader.rollback(module.__name__)
            expected = numbers[reloader.current(module.__name__).number]
            assert [expected] == handlers(registry)
            assert expected == registry.TABLE["handler"]()
            assert [expected] == [handler() for handler in registry.SEEN]


class TestInitSubclass:
    def test_the_registry_holds_the_current_version_of_the_subclass(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """A subclass recorded by __init_subclass__ follows swaps, refusals and rollbacks."""
        with pytest.raises(ValidationError):
            reloader.swap(tracked, plugin(package, 9), checks=[refuse])
        assert registry.KINDS["Plugin"].number == 1
        reloader.swap(tracked, plugin(package, 2))
        assert registry.KINDS["Plugin"].number == 2
        reloader.rollback(tracked)
        assert registry.KINDS["Plugin"].number == 1
        assert list(registry.KINDS) == ["Plugin"]


class TestUnwithdrawable:
    # The holder's module name, short or long: the message names the holder's class either way.
    @pytest.mark.parametrize("holder_name", ["holder", "holder_of_the_hooks_of_every_plugin"])
    def test_a_registration_in_a_tuple_attribute_refuses_the_swap(
        self, package: Package, reloader: HotReloader, holder_name: str
    ) -> None:
        """An object that existed before and now holds the new code cannot be undone: refused."""
        holder = package.module(
            holder_name, "class Hooks:\n    pass\n\nHOOKS = Hooks()\nHOOKS.chain = ()\n"
        )
        source = (
            f"from {package.name} import {holder_name} as holder\n\n"
            "def hook():\n    return {n}\n\n"
            "holder.HOOKS.chain = (*holder.HOOKS.chain, hook)\n"
        )
        module = package.module("hooked", source.format(n=1))
        reloader.track(module)
        before = holder.HOOKS.chain
        with pytest.raises(ValidationError, match="cannot be withdrawn") as raised:
            reloader.swap(module.__name__, source.format(n=2))
        assert "Hooks object" in str(raised.value)
        assert "hook" in str(raised.value)
        assert module.hook() == 1
        assert before[0] is holder.HOOKS.chain[0]


class TestFastAPI:
    APP = """
from fastapi import FastAPI

app = FastAPI()
"""
    ROUTES = """
from {package}.main import app

@app.get("/price")
async def price(q: int = 0):
    return {{"version": {n}, "q": q}}

@app.get("/ping")
def ping():
    return {{"version": {n}}}
"""

    def test_routes_added_by_a_swapped_module_are_replaced_not_added(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """@app.get in a swapped module: the route count stays, the new handler answers."""
        testclient = pytest.importorskip("starlette.testclient")
        main = package.module("main", self.APP)
        routes = package.qualified("routes")
        package.module("routes", self.ROUTES.format(package=package.name, n=1))
        reloader.track(routes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = testclient.TestClient(main.app)
        count = len(main.app.routes)
        assert client.get("/price?q=3").json() == {"version": 1, "q": 3}
        for n in (2, 3, 4):
            reloader.swap(routes, self.ROUTES.format(package=package.name, n=n))
            assert count == len(main.app.routes)
            assert {"version": n, "q": 3} == client.get("/price?q=3").json()
            assert {"version": n} == client.get("/ping").json()
        with pytest.raises(ValidationError):
            reloader.swap(routes, self.ROUTES.format(package=package.name, n=9), checks=[refuse])
        assert count == len(main.app.routes)
        reloader.rollback(routes)
        assert count == len(main.app.routes)
        assert client.get("/ping").json() == {"version": 3}


class TestFirstVersion:
    def test_a_module_imported_again_from_its_file_registers_once(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader, tracked: str
    ) -> None:
        """importlib.reload() of a tracked module is a swap: its registrations are replaced."""
        module = importlib.import_module(tracked)
        package.write("plugin", plugin(package, 5))
        importlib.reload(module)
        assert handlers(registry) == [5]


class Box:
    def __init__(self, value: object) -> None:
        self.value = value


class TestMadeObjects:
    def test_the_made_objects_tell_what_refers_to_them_as_the_heap_does(self) -> None:
        """What refers to objects made after a snapshot is read from them, as a heap walk finds."""
        import gc

        from illunare._reload.registrations import Snapshot, _Region

        before: list[object] = []
        table: dict[str, object] = {}  # empty: untracked, so it looks made
        snapshot = Snapshot()
        try:

            def handler() -> None:
                pass

            inner = [handler]
            outer = (inner, handler)
            box = Box(outer)
            before.append(box)
            table["handler"] = handler
            region = _Region(snapshot.made(), [])
            for obj in (handler, inner, outer, box):
                args = (obj,)
                heap = {id(r) for r in gc.get_referrers(*args)} - {id(args)}
                read = {id(r) for r in region.referrers(args)} - {id(args)}
                assert read - set(region.bookkeeping()) == heap - set(region.bookkeeping())
        finally:
            snapshot.release()

    def test_what_a_closure_the_code_made_holds_is_told_without_the_heap(self) -> None:
        """A closure's tuple is found from its function: its cells take no walk of the heap."""
        from illunare._reload.registrations import Snapshot, _Region

        snapshot = Snapshot()
        try:

            def handler() -> None:
                pass

            def wrap(inner: object) -> object:
                def wrapper() -> object:
                    return inner

                return wrapper

            wrapper = wrap(handler)
            region = _Region(snapshot.made(), [])
            [cell] = wrapper.__closure__  # type: ignore[attr-defined]  # held by it alone until now
            args = (cell,)
            assert not region._elsewhere(cell)
            read = {id(r) for r in region.referrers(args)} - set(region.bookkeeping())
            assert read == {id(wrapper.__closure__)}  # type: ignore[attr-defined]
        finally:
            snapshot.release()

    def test_a_made_object_registered_in_another_modules_list_is_withdrawn(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A box holding the handler, appended to a list of the registry: one box, the current."""
        source = (
            f"from {package.name} import registry\n\n"
            "class Box:\n    def __init__(self, value):\n        self.value = value\n\n"
            "def handler():\n    return {n}\n\nregistry.HANDLERS.append(Box(handler))\n"
        )
        module = package.module("boxes", source.replace("{n}", "1"))
        reloader.track(module)
        for n in (2, 3):
            reloader.swap(module.__name__, source.replace("{n}", str(n)))
            [box] = registry.HANDLERS
            assert box.value() == n
        reloader.rollback(module.__name__)
        [box] = registry.HANDLERS
        assert box.value() == 2


class TestMemos:
    MEMO = (
        "import functools\n\nclass Identity:\n    def __init__(self, call):\n"
        "        self.call = call\n\n@functools.lru_cache(maxsize=16)\n"
        "def analysed(identity):\n    return identity.call()\n\nHELD = []\n"
    )

    def test_a_memos_entries_are_no_registrations(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Code calling a memo with its handler swaps; the memo keeps every entry."""
        memo = package.module("memo", self.MEMO)
        source = (
            f"from {package.name} import memo\n\ndef handler():\n    return {{n}}\n\n"
            "RESULT = memo.analysed(memo.Identity(handler))\n"
        )
        module = package.module("service", source.format(n=1))
        reloader.track(module)
        for n in (2, 3):
            reloader.swap(module.__name__, source.format(n=n))
            assert n == module.RESULT
        assert memo.analysed.cache_info().currsize == 3

    def test_a_made_object_a_memo_and_a_list_hold_is_a_registration(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The key object also appended to another module's list: withdrawn by the next swap."""
        memo = package.module("memo", self.MEMO)
        source = (
            f"from {package.name} import memo\n\ndef handler():\n    return {{n}}\n\n"
            "KEY = memo.Identity(handler)\nmemo.analysed(KEY)\nmemo.HELD.append(KEY)\n"
        )
        module = package.module("service", source.format(n=1))
        reloader.track(module)
        for n in (2, 3):
            reloader.swap(module.__name__, source.format(n=n))
            [key] = memo.HELD
            assert key.call() == n


class TestOtherThreads:
    def test_a_switch_ending_leaves_collection_paused_for_an_open_snapshot(self) -> None:
        """A switch begun before a snapshot and ended during it does not resume collection."""
        import gc

        from illunare._reload.locking import LOCK
        from illunare._reload.pause import collection_paused
        from illunare._reload.registrations import Snapshot

        assert gc.isenabled()
        with LOCK, collection_paused():
            snapshot = Snapshot()
        try:
            assert not gc.isenabled()  # the snapshot's code runs with collection paused
            assert snapshot.intact
        finally:
            snapshot.release()
        assert gc.isenabled()  # the last pause over: collection resumes

    def test_tuples_built_in_other_threads_during_swaps_never_fail(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A thread building tuples while 150 swaps record their registrations never fails."""
        module = package.module("building", "def f():\n    return 0\n")
        reloader.track(module)
        failures: list[BaseException] = []
        built = [0]
        done = threading.Event()

        def build() -> None:
            try:
                while not done.is_set():
                    tuple(x for x in range(100))
                    built[0] += 1
            except BaseException as error:  # a SystemError: the tuple could not grow
                failures.append(error)

        thread = threading.Thread(target=build)
        thread.start()
        try:
            for number in range(1, 151):
                reloader.swap(module.__name__, f"def f():\n    return {number}\n")
        finally:
            done.set()
            thread.join()
        assert failures == []
        assert built[0] > 0
        assert module.f() == 150

    def test_the_collectors_lists_are_read_without_tuples(self) -> None:
        """young_objects and tracked_objects list what the collector tracks, tuples left out."""
        from illunare._reload.heap import tracked_objects, young_objects

        fresh, pair = [object()], (object(), [])
        young, tracked = young_objects(), tracked_objects()
        assert any(obj is fresh for obj in young)
        assert any(obj is fresh for obj in tracked)
        assert any(obj is HotReloader for obj in tracked)
        assert not any(type(obj) is tuple for obj in young + tracked)
        assert not any(obj is pair for obj in young + tracked)

    def test_the_collectors_lists_do_not_hold_themselves(self) -> None:
        """Neither list is in itself: dropped, it frees what it lists, with no collection."""
        import weakref

        from illunare._reload.heap import tracked_objects, young_objects

        class Made:
            pass

        enabled = gc.isenabled()
        gc.disable()
        try:
            for read in (young_objects, tracked_objects):
                made = Made()
                gone = weakref.ref(made)
                objects = read()
                assert not any(obj is objects for obj in objects)
                assert any(obj is made for obj in objects)
                del made, objects
                assert gone() is None, read.__name__
        finally:
            if enabled:
                gc.enable()

    def test_the_first_listing_of_memos_is_never_taken_for_a_holder(self, tmp_path: Path) -> None:
        """In a fresh process, a swap that lists the memos first registers only in the real list."""
        (tmp_path / "memopkg").mkdir()
        (tmp_path / "memopkg" / "__init__.py").write_text("")
        (tmp_path / "memopkg" / "memo.py").write_text(TestMemos.MEMO)
        source = (
            "from memopkg import memo\n\ndef handler():\n    return {n}\n\n"
            "KEY = memo.Identity(handler)\nmemo.analysed(KEY)\nmemo.HELD.append(KEY)\n"
        )
        (tmp_path / "memopkg" / "service.py").write_text(source.format(n=1))
        script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from illunare import HotReloader
from memopkg import memo

reloader = HotReloader()
reloader.track("memopkg.service")
reloader.swap("memopkg.service", {source.format(n=2)!r})
holders = {{id(r.holder) for r in reloader._modules["memopkg.service"].current.registrations}}
print(holders == {{id(memo.HELD)}}, [key.call() for key in memo.HELD])
"""
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", "[2]"]

    def test_young_garbage_is_collected_unless_a_snapshot_is_open(self) -> None:
        """collect_young collects cyclic garbage, and leaves it while a snapshot is open."""
        import weakref

        from illunare._reload.registrations import Snapshot, collect_young

        class Node:
            pass

        def garbage() -> weakref.ref[Node]:
            node = Node()
            node.cycle = node  # type: ignore[attr-defined]
            return weakref.ref(node)

        enabled = gc.isenabled()
        gc.disable()
        try:
            snapshot = Snapshot()
            try:
                kept = garbage()
                assert collect_young() is False
                assert kept() is not None
            finally:
                snapshot.release()
            collected = garbage()
            assert collect_young() is True
            assert collected() is None
        finally:
            if enabled:
                gc.enable()


DEFERRED = """
import gc

from {package} import registry


def handler():
    return {n}


def defer(view):
    registry.HANDLERS.append(lambda: view())  # a closure's cell holds the handler


defer(handler)
{collect}
"""


@contextlib.contextmanager
def collecting_in_a_finalizer(seconds: float) -> Iterator[None]:
    """Another thread's ``gc.collect(0)`` for the block, in a finalizer taking ``seconds``.

    The block begins once the collection has moved its survivors (its
    finalizers run before its end is counted and its hooks told). The
    youngest generation only: the garbage is there, and a full collection
    would walk the whole heap of the suite's process (collections of every
    generation: ``test_a_collection_the_new_code_runs_keeps_its_registrations_exact``).
    """
    in_finalizer = threading.Event()

    class Slow:
        def __del__(self) -> None:
            in_finalizer.set()
            time.sleep(seconds)

    garbage = Slow()
    garbage.cycle = garbage  # type: ignore[attr-defined]
    del garbage
    collector = threading.Thread(target=gc.collect, args=(0,))
    collector.start()
    try:
        assert in_finalizer.wait(10)
        yield
    finally:
        collector.join()


def made_cell() -> object:
    """A closure's cell, made now."""

    def wrap(view: object) -> Callable[[], object]:
        return lambda: view

    return wrap(wrap).__closure__[0]  # type: ignore[index]


def alone(package: Package, script: str) -> list[str]:
    """What ``script`` prints, run in a process of its own with ``package`` importable.

    Its heap is small: the swaps it runs, which walk the heap, are quick,
    and the collections run there as often as the test needs.
    """
    script = f"import sys\nsys.path.insert(0, {str(package.path.parent)!r})\n{script}"
    return run_script(script, timeout=120).split()


class TestCollections:
    @pytest.mark.parametrize("generation", [0, 1, 2])
    def test_a_collection_the_new_code_runs_keeps_its_registrations_exact(
        self, package: Package, registry: types.ModuleType, generation: int
    ) -> None:
        """Code that calls gc.collect(): its closure's cell is its own, not a holder refusing it."""

        def source(n: int) -> str:
            collect = f"gc.collect({generation})"
            return DEFERRED.format(package=package.name, n=n, collect=collect)

        package.write("deferred", source(1))
        script = f"""
from illunare import HotReloader
from {package.name} import deferred, registry

reloader = HotReloader()
reloader.track(deferred.__name__)
for source in {[source(2), source(3)]!r}:
    reloader.swap(deferred.__name__, source)
    print([handler() for handler in registry.HANDLERS])
reloader.rollback(deferred.__name__)
print([handler() for handler in registry.HANDLERS])
"""
        assert alone(package, script) == ["[2]", "[3]", "[2]"]

    def test_a_collection_begun_before_the_first_snapshot_is_waited_for(self) -> None:
        """A collection in its finalizers as the first snapshot opens: waited for, nothing lost."""
        from illunare._reload.registrations import Snapshot

        with collecting_in_a_finalizer(0.3):  # its end not yet counted when the snapshot opens
            snapshot = Snapshot()
        try:
            cell = made_cell()
            assert snapshot.intact
            assert snapshot.created(cell)
        finally:
            snapshot.release()

    def test_what_a_collection_moves_is_told_before_the_snapshot_settles(self) -> None:
        """A collection in a finalizer, the made objects moved, is waited for: they stay known."""
        from illunare._reload.registrations import Snapshot

        snapshot = Snapshot()
        try:
            cell = made_cell()
            with collecting_in_a_finalizer(0.3):  # the cell moved, the hook not yet told
                assert snapshot.intact
            assert snapshot.created(cell)
            assert any(obj is cell for obj in snapshot.made())
        finally:
            snapshot.release()

    def test_no_object_there_before_a_collection_leaves_its_address_to_a_made_one(self) -> None:
        """Objects that die while a collection's hooks run cannot pass a made object off as old."""
        from illunare._reload.registrations import Snapshot

        old: list[list[int]] | None = [[n] for n in range(50)]
        gc.collect()  # into the oldest generation
        started, resumed = threading.Event(), threading.Event()

        def later_hook(phase: str, info: dict[str, int]) -> None:
            if phase == "start" and threading.current_thread() is collector:
                started.set()
                resumed.wait(10)  # other threads run between the hooks and the collection

        collector = threading.Thread(target=gc.collect)
        snapshot = Snapshot()
        gc.callbacks.append(later_hook)
        try:
            collector.start()
            assert started.wait(10)
            old = None  # they would die here, leaving their addresses
            made = [[n] for n in range(50)]
            resumed.set()
            collector.join()
            assert snapshot.intact
            assert all(snapshot.created(obj) for obj in made)
        finally:
            resumed.set()
            gc.callbacks.remove(later_hook)
            snapshot.release()
        assert old is None

    def test_collections_run_no_code_of_the_library_unless_a_snapshot_is_open(self) -> None:
        """The hook is in gc.callbacks while a snapshot is open, and only then."""
        from illunare._reload.registrations import _COLLECTIONS, Snapshot

        assert _COLLECTIONS not in gc.callbacks
        first, second = Snapshot(), Snapshot()
        assert gc.callbacks.count(_COLLECTIONS) == 1
        first.release()
        assert _COLLECTIONS in gc.callbacks
        second.release()
        assert _COLLECTIONS not in gc.callbacks

    def test_a_freeze_during_a_snapshot_makes_it_a_guess(self) -> None:
        """gc.freeze() hides the made objects with no collection: the snapshot is a guess."""
        from illunare._reload.registrations import Snapshot

        snapshot = Snapshot()
        try:
            made = [object()]
            gc.freeze()
            try:
                assert not snapshot.intact
            finally:
                gc.unfreeze()
        finally:
            snapshot.release()
        assert made

    def test_a_guessed_swap_still_withdraws_what_its_own_functions_registered(
        self,
        package: Package,
        registry: types.ModuleType,
        reloader: HotReloader,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A collection outlasting the wait makes swaps guesses: their handlers' entries go."""
        from illunare._reload import registrations

        monkeypatch.setattr(registrations, "_WAIT", 0.2)
        source = "from {package} import registry\n\ndef handler():\n    return {n}\n\n"
        source += "registry.HANDLERS.append(handler)\n"
        module = package.module("guessed", source.format(package=package.name, n=1))
        reloader.track(module)

        def guessed_swap(n: int, **options: Any) -> None:
            with collecting_in_a_finalizer(0.6):  # longer than the wait
                reloader.swap(module.__name__, source.format(package=package.name, n=n), **options)

        with pytest.raises(ValidationError):
            guessed_swap(2, checks=[refuse])
        assert handlers(registry) == [1]  # nothing of the refused version stays
        guessed_swap(3)
        assert handlers(registry) == [3]
        reloader.rollback(module.__name__)
        assert handlers(registry) == [1]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
    def test_a_child_forked_during_a_snapshot_starts_with_none_open(self) -> None:
        """The fork of a process with an open snapshot: no hook, and its own snapshots work."""
        script = """
import gc, os
from illunare._reload.registrations import _COLLECTIONS, Snapshot

snapshot = Snapshot()
pid = os.fork()
if pid == 0:
    ok = _COLLECTIONS not in gc.callbacks
    child = Snapshot()
    made = [[1]]
    ok = ok and child.intact and child.created(made[0])
    child.release()
    os._exit(0 if ok and _COLLECTIONS not in gc.callbacks else 1)
_, status = os.waitpid(pid, 0)
snapshot.release()
assert os.waitstatus_to_exitcode(status) == 0, status
"""
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr

    def test_collections_in_another_thread_during_swaps_never_refuse_one(
        self, package: Package, registry: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A thread collecting generation 0 every millisecond: 25 swaps with closures all land."""
        module = package.module("collected", DEFERRED.format(package=package.name, n=0, collect=""))
        reloader.track(module)
        done = threading.Event()
        collections = [0]

        def collect() -> None:  # older generations: the code's own collections above
            while not done.is_set():
                gc.collect(0)
                collections[0] += 1
                time.sleep(0.001)

        thread = threading.Thread(target=collect)
        thread.start()
        try:
            for n in range(1, 26):
                source = DEFERRED.format(package=package.name, n=n, collect="")
                reloader.swap(module.__name__, source)
        finally:
            done.set()
            thread.join()
        assert collections[0] > 0
        assert handlers(registry) == [25]
