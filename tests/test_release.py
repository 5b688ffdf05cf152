"""Releases: swap_many, rollback_many, sibling imports, one flip, participants, the import graph."""

from __future__ import annotations

import builtins
import logging
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given

from illunare import (
    HotReloader,
    InvalidArgumentError,
    LoadError,
    RollbackError,
    UnknownModuleError,
    ValidationError,
    signals,
)
from illunare._reload.release import preparation_order

from .conftest import Package, dedent, in_child
from .strategies import IMPORT_GRAPHS


def _pair(package: Package) -> tuple[types.ModuleType, types.ModuleType]:
    discounts = package.module("discounts", "RATE = 1\ndef rate():\n    return RATE\n")
    pricing = package.module(
        "pricing",
        f"from {package.name}.discounts import rate\ndef price():\n    return 100 * rate()\n",
    )
    return pricing, discounts


@pytest.fixture
def pair(
    package: Package, reloader: HotReloader
) -> tuple[types.ModuleType, types.ModuleType, str, str]:
    """pricing imports discounts; both tracked from their import. Returns the modules and names.

    (Tracked from the import, so that pricing's ``rate`` follows swaps: tracked
    after it, pricing would hold version 1's function, a stale reference.)
    """
    reloader.install(package.name)
    pricing, discounts = _pair(package)
    return pricing, discounts, pricing.__name__, discounts.__name__


class TestSwapMany:
    def test_every_module_switches_and_versions_come_in_the_mappings_order(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """Both modules get a new version; the result follows the mapping's order."""
        pricing, discounts, p, d = pair
        versions = reloader.swap_many(
            {
                p: "def price():\n    return 7\n",
                d: "def rate():\n    return 3\n",
            },
            reason="release 2",
        )
        assert [(v.module, v.number, v.reason) for v in versions] == [
            (p, 2, "release 2"),
            (d, 2, "release 2"),
        ]
        assert pricing.price() == 7
        assert discounts.rate() == 3

    def test_an_identical_source_keeps_its_current_version(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A module whose source did not change is not part of the release."""
        _, _discounts, p, d = pair
        same = (package.path / "discounts.py").read_text()
        versions = reloader.swap_many({p: "def price():\n    return 1\n", d: same})
        assert [v.number for v in versions] == [2, 1]
        assert reloader.current(d).number == 1

    def test_nothing_changed_means_no_release_and_no_signal(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """All sources identical: the current versions, no module_swapped."""
        _, _, p, d = pair
        sent: list[object] = []
        with signals.module_swapped.connected_to(lambda sender, **kw: sent.append(kw)):
            versions = reloader.swap_many({p: None, d: None})
        assert [v.number for v in versions] == [1, 1]
        assert sent == []

    def test_a_module_imports_the_new_version_of_a_sibling(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """pricing v2 needs a name only discounts v2 has: prepared after it, it finds it."""
        pricing, discounts, p, d = pair
        reloader.swap_many(
            {
                p: f"from {package.name}.discounts import BONUS\ndef price():\n    return BONUS\n",
                d: "BONUS = 42\ndef rate():\n    return 1\n",
            }
        )
        assert pricing.price() == 42
        assert discounts.BONUS == 42

    @pytest.mark.parametrize(
        "statement",
        [
            "from . import discounts as sibling",
            "from . import discounts\nsibling = discounts",
            "import {package}.discounts as sibling",
            "import {package}.discounts\nsibling = {package}.discounts",
        ],
    )
    def test_every_import_form_finds_the_new_version(
        self, reloader: HotReloader, package: Package, pair: Any, statement: str
    ) -> None:
        """Relative, absolute and aliased imports see the new code, then keep the module."""
        pricing, discounts, p, d = pair
        head = statement.format(package=package.name)
        reloader.swap_many(
            {
                p: f"{head}\nSEEN = sibling.BONUS\ndef price():\n    return sibling.BONUS\n",
                d: "BONUS = 5\n",
            }
        )
        assert pricing.SEEN == 5
        assert pricing.price() == 5
        # What the new namespace keeps is the real module, not a stand-in.
        assert pricing.sibling is discounts

    def test_other_threads_import_the_running_versions_meanwhile(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """Only the preparing thread sees the candidates; the import hook goes afterwards."""
        _, discounts, p, d = pair
        original = builtins.__import__
        seen: dict[str, object] = {}

        def import_elsewhere(module: types.ModuleType) -> None:
            if module.__name__ != p:
                return
            namespace: dict[str, object] = {}

            def other_thread() -> None:
                exec(f"from {package.name} import discounts as sibling", namespace)

            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
            seen["other thread"] = namespace["sibling"]
            seen["preparing thread"] = module.SIBLING

        reloader.swap_many(
            {p: "from . import discounts as sibling\nSIBLING = sibling\n", d: "BONUS = 1\n"},
            checks=[import_elsewhere],
        )
        assert seen["other thread"] is discounts
        assert seen["preparing thread"] is not discounts  # the new version's, then
        assert seen["preparing thread"].BONUS == 1  # type: ignore[attr-defined]
        assert builtins.__import__ is original

    def test_the_import_hook_goes_after_a_refused_release_too(
        self, reloader: HotReloader, pair: Any
    ) -> None:
        """builtins.__import__ is what it was, whatever the release did."""
        _, _, p, d = pair
        original = builtins.__import__
        with pytest.raises(LoadError):
            reloader.swap_many({p: "A = 1\n", d: "raise KeyboardInterrupt\n"})
        assert builtins.__import__ is original

    def test_modules_that_import_each_other(self, reloader: HotReloader, package: Package) -> None:
        """A cycle: the later module is not executed yet, so the first imports its running one."""
        name = package.name
        ping = package.module("ping", "def ping():\n    return 'ping 1'\n")
        pong = package.module(
            "pong", f"from {name}.ping import ping\ndef pong():\n    return 'pong 1'\n"
        )
        reloader.track(ping)
        reloader.track(pong)
        reloader.swap_many(
            {
                ping.__name__: dedent(f"""\
                    from {name}.pong import pong
                    def ping():
                        return 'ping 2 ' + pong()
                    """),
                pong.__name__: dedent(f"""\
                    from {name}.ping import ping
                    def pong():
                        return 'pong 2'
                    """),
            }
        )
        assert ping.ping() == "ping 2 pong 2"
        assert pong.ping is ping.ping
        reloader.rollback(pong.__name__)
        assert ping.ping() == "ping 2 pong 1"

    def test_a_module_new_on_disk_is_imported_by_the_release(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A new file the new code imports is imported as usual (and stays)."""
        pricing, _, p, _ = pair
        package.write("vat", "VAT = 20\n")
        reloader.swap_many(
            {p: f"from {package.name}.vat import VAT\ndef price():\n    return VAT\n"}
        )
        assert pricing.price() == 20
        assert f"{package.name}.vat" in sys.modules

    def test_a_sibling_function_binds_to_its_proxy(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A raw new function imported from a sibling follows that sibling's later rollback."""
        pricing, discounts, p, d = pair
        reloader.swap_many(
            {
                p: f"from {package.name}.discounts import bonus\ndef price():\n    return bonus()",
                d: "def rate():\n    return 1\ndef bonus():\n    return 2\n",
            }
        )
        assert pricing.bonus is discounts.bonus
        reloader.swap(d, "def rate():\n    return 1\ndef bonus():\n    return 3\n")
        assert pricing.price() == 3

    def test_a_sibling_class_binds_to_its_stable_class(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """An instance made by one module of the release is of the other's stable class."""
        shapes = package.module("shapes", "class Shape:\n    def area(self):\n        return 1\n")
        default = package.module(
            "default", f"from {package.name}.shapes import Shape\nDEFAULT = Shape\n"
        )
        reloader.track(shapes)
        reloader.track(default)
        stable = shapes.Shape
        reloader.swap_many(
            {
                default.__name__: f"from {package.name}.shapes import Shape\nDEFAULT = Shape\n#2\n",
                shapes.__name__: "class Shape:\n    def area(self):\n        return 2\n",
            }
        )
        assert default.DEFAULT is stable
        assert stable().area() == 2

    def test_a_subclass_of_a_sibling_class_keeps_its_stable_base(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """Base and subclass change in one release: accepted, and every class stays stable."""
        base = package.module("base", "class Base:\n    def hello(self):\n        return 'b1'\n")
        sub = package.module(
            "sub",
            dedent(f"""\
                from {package.name}.base import Base
                class Special(Base):
                    def hi(self):
                        return 's1 ' + self.hello()
                """),
        )
        reloader.track(base)
        reloader.track(sub)
        stable_base, stable_special = base.Base, sub.Special
        old = sub.Special()
        reloader.swap_many(
            {
                sub.__name__: dedent(f"""\
                    from {package.name}.base import Base
                    class Special(Base):
                        def hi(self):
                            return 's2 ' + self.hello()
                    class Fresh(Base):
                        pass
                    DEFAULT = Base()
                    """),
                base.__name__: "class Base:\n    def hello(self):\n        return 'b2'\n",
            }
        )
        assert old.hi() == "s2 b2"
        assert sub.Special is stable_special
        assert sub.Fresh.__bases__ == (stable_base,)
        assert type(sub.DEFAULT) is stable_base

    def test_checks_see_every_new_module(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """Each check is called with each new module, once all have executed."""
        _, _, p, d = pair
        seen: list[tuple[str, int]] = []

        def check(module: types.ModuleType) -> None:
            seen.append((module.__name__, module.MARK))

        reloader.swap_many({p: "MARK = 1\n", d: "MARK = 2\n"}, checks=[check])
        assert sorted(seen) == sorted([(p, 1), (d, 2)])

    def test_one_signal_per_module_with_the_same_duration(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """module_swapped is sent for each module of the release, with the release's duration."""
        _, _, p, d = pair
        sent: list[dict[str, Any]] = []
        with signals.module_swapped.connected_to(lambda sender, **kw: sent.append(kw)):
            reloader.swap_many({p: "A = 1\n", d: "B = 1\n"})
        assert [kw["module"] for kw in sent] == [p, d]
        assert sent[0]["duration"] == sent[1]["duration"]


class TestSwapManyFailure:
    def test_a_failing_second_module_changes_none(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """pricing prepares fine, discounts raises: neither changes, the new import is undone."""
        pricing, discounts, p, d = pair
        package.write("fresh", "X = 1\n")
        failed: list[str] = []
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: failed.append(kw["module"])),
            pytest.raises(LoadError) as caught,
        ):
            reloader.swap_many(
                {
                    p: f"import {package.name}.fresh\ndef price():\n    return 0\n",
                    d: "raise RuntimeError('no')\n",
                }
            )
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert pricing.price() == 100
        assert discounts.rate() == 1
        assert reloader.current(p).number == reloader.current(d).number == 1
        assert f"{package.name}.fresh" not in sys.modules
        assert failed == [p, d]

    def test_a_refused_release_forgets_the_modules_it_tracked(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """An installed package's module imported by a refused release is not left tracked."""
        reloader.install(package.name)
        first = package.module("first", "A = 1\n")
        package.write("fresh", "X = 1\n")
        with pytest.raises(ValidationError):
            reloader.swap_many(
                {first.__name__: f"import {package.name}.fresh\nA = 2\n"},
                checks=[lambda module: False],
            )
        assert f"{package.name}.fresh" not in reloader.modules()
        assert f"{package.name}.fresh" not in sys.modules

    def test_a_syntax_error_in_one_module_changes_none(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A CompileError of either module refuses the whole release."""
        pricing, _, p, d = pair
        with pytest.raises(ValueError, match="does not compile"):
            reloader.swap_many({p: "def price():\n    return 9\n", d: "def (:\n"})
        assert pricing.price() == 100


class TestSwapManyArguments:
    @pytest.mark.parametrize("sources", [{}, [("a", "")], "a", None])
    def test_not_a_non_empty_mapping(self, reloader: HotReloader, sources: Any) -> None:
        """An empty mapping or a non-mapping is InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError):
            reloader.swap_many(sources)

    def test_a_module_named_twice(self, reloader: HotReloader, pair: Any) -> None:
        """The module object and its name are the same module: refused."""
        pricing, _, p, _ = pair
        with pytest.raises(InvalidArgumentError, match="twice"):
            reloader.swap_many({p: "A = 1\n", pricing: "A = 2\n"})

    def test_a_name_that_is_not_a_str(self, reloader: HotReloader) -> None:
        """A key that is neither a module nor its name is InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError):
            reloader.swap_many({1: "A = 1\n"})  # type: ignore[dict-item]

    def test_an_untracked_module(self, reloader: HotReloader, pair: Any) -> None:
        """An unknown module refuses the release: nothing changes."""
        pricing, _, p, _ = pair
        with pytest.raises(UnknownModuleError):
            reloader.swap_many({p: "def price():\n    return 0\n", "no_such_module": "A = 1\n"})
        assert pricing.price() == 100

    def test_bad_checks_and_reason(self, reloader: HotReloader, pair: Any) -> None:
        """checks and reason are validated as swap() validates them."""
        _, _, p, _ = pair
        with pytest.raises(InvalidArgumentError):
            reloader.swap_many({p: "A = 1\n"}, checks=[1])  # type: ignore[list-item]
        with pytest.raises(InvalidArgumentError):
            reloader.swap_many({p: "A = 1\n"}, reason=1)  # type: ignore[arg-type]


class TestRollbackMany:
    def test_each_module_goes_back_to_its_parent(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """One release rolled back as one."""
        pricing, discounts, p, d = pair
        reloader.swap_many({p: "def price():\n    return 2\n", d: "def rate():\n    return 2\n"})
        back = reloader.rollback_many([d, p])
        assert [(v.module, v.number) for v in back] == [(d, 1), (p, 1)]
        assert pricing.price() == 100
        assert discounts.rate() == 1

    def test_a_module_without_parent_changes_none(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """RollbackError for one module: the other stays where it was too."""
        pricing, _, p, d = pair
        reloader.swap(p, "def price():\n    return 2\n")
        with pytest.raises(RollbackError):
            reloader.rollback_many([p, d])
        assert pricing.price() == 2
        assert reloader.current(p).number == 2

    @pytest.mark.parametrize("modules", [[], "abc", None, [1]])
    def test_bad_input(self, reloader: HotReloader, modules: Any) -> None:
        """Not a non-empty sequence of names: InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError):
            reloader.rollback_many(modules)

    def test_a_module_named_twice(self, reloader: HotReloader, pair: Any) -> None:
        """Rolling one module back twice in one flip is refused."""
        _, _, p, _ = pair
        with pytest.raises(InvalidArgumentError, match="twice"):
            reloader.rollback_many([p, p])

    def test_signals_per_module(self, reloader: HotReloader, pair: Any) -> None:
        """module_rolled_back is sent once for each module."""
        _, _, p, d = pair
        reloader.swap_many({p: "A = 1\n", d: "A = 1\n"})
        sent: list[str] = []
        with signals.module_rolled_back.connected_to(
            lambda sender, **kw: sent.append(kw["module"])
        ):
            reloader.rollback_many([p, d])
        assert sent == [p, d]


def _pairs_seen_while(
    first: types.ModuleType, last: types.ModuleType, action: Callable[[], object]
) -> list[tuple[int, int]]:
    """(first.VERSION, last.VERSION) as 3 threads read them, in that order, during ``action``."""
    stop = threading.Event()
    reading = threading.Barrier(4)
    seen: list[tuple[int, int]] = []

    def read() -> None:
        reading.wait()
        while not stop.is_set():
            seen.append((first.VERSION, last.VERSION))

    readers = [threading.Thread(target=read) for _ in range(3)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    for thread in readers:
        thread.start()
    try:
        reading.wait()
        action()
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        sys.setswitchinterval(interval)
    return seen


class TestAtomicRelease:
    def test_no_thread_sees_the_new_pricing_beside_the_old_discounts(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """Releases move both forward: pricing, read first, is never ahead of discounts."""
        discounts = package.module("discounts", "VERSION = 0\n")
        pricing = package.module("pricing", "VERSION = 0\n")
        reloader.track(discounts)
        reloader.track(pricing)

        def release() -> None:
            for n in range(1, 150):
                reloader.swap_many(
                    {pricing.__name__: f"VERSION = {n}\n", discounts.__name__: f"VERSION = {n}\n"}
                )

        seen = _pairs_seen_while(pricing, discounts, release)
        assert [pair for pair in seen if pair[0] > pair[1]] == []
        assert (pricing.VERSION, discounts.VERSION) == (149, 149)

    def test_no_thread_sees_part_of_a_rollback_many(self, package: Package) -> None:
        """rollback_many moves all back: the module read first is never behind the last."""
        modules = [package.module(f"m{index}", "VERSION = 0\n") for index in range(6)]
        names = [module.__name__ for module in modules]
        reloader = HotReloader(keep=400)
        for module in modules:
            reloader.track(module)
        for n in range(1, 400):
            reloader.swap_many(dict.fromkeys(names, f"VERSION = {n}\n"))

        def roll_back() -> None:
            for _ in range(399):
                reloader.rollback_many(names)

        seen = _pairs_seen_while(modules[0], modules[-1], roll_back)
        assert [pair for pair in seen if pair[0] < pair[1]] == []
        assert [module.VERSION for module in modules] == [0] * 6

    def test_overlapping_releases_from_two_threads_do_not_deadlock(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """{pricing, discounts} and {discounts, pricing} released concurrently both finish."""
        pricing, discounts, p, d = pair
        errors: list[BaseException] = []

        def release(order: tuple[str, str], mark: int) -> None:
            try:
                for n in range(30):
                    reloader.swap_many(dict.fromkeys(order, f"MARK = {mark}\nN = {n}\n"))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [
            threading.Thread(target=release, args=((p, d), 1)),
            threading.Thread(target=release, args=((d, p), 2)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert pricing.MARK == discounts.MARK

    def test_a_rollback_during_preparation_refuses_the_release(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A module of the release rolled back while it prepares: LoadError, nothing changes."""
        pricing, _discounts, p, d = pair
        reloader.swap(d, "def rate():\n    return 2\n")

        def roll_back(module: types.ModuleType) -> None:
            if module.__name__ == p:
                reloader.rollback(d)

        with pytest.raises(LoadError, match="rolled back"):
            reloader.swap_many(
                {p: "def price():\n    return 0\n", d: "X = 1\n"}, checks=[roll_back]
            )
        assert pricing.price() == 100
        assert reloader.current(d).number == 1


class TestReleaseAndFork:
    def test_a_child_forked_while_a_release_prepares_can_release(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """The child drops the parent's unfinished release: no import hook left, no lock held."""
        pricing, _, p, d = pair
        original = builtins.__import__
        preparing, resume = threading.Event(), threading.Event()

        def hold(module: types.ModuleType) -> None:
            preparing.set()
            resume.wait(30)

        parent = threading.Thread(
            target=reloader.swap_many,
            args=({p: "def price():\n    return 1\n", d: "X = 1\n"},),
            kwargs={"checks": [hold]},
        )
        parent.start()
        try:
            assert preparing.wait(10)
            assert builtins.__import__ is not original  # the release's import hook is in

            def child() -> bool:
                hooked_off = builtins.__import__ is original
                reloader.swap_many(
                    {
                        p: f"from {package.name}.discounts import NEW\ndef price():\n return NEW",
                        d: "NEW = 5\n",
                    }
                )
                return hooked_off and pricing.price() == 5 and builtins.__import__ is original

            assert in_child(child) == 0
        finally:
            resume.set()
            parent.join()
        assert pricing.price() == 1
        assert builtins.__import__ is original


class Recorder:
    """A participant that records what it is told, and can refuse or ask for dependents."""

    def __init__(
        self, dependents: frozenset[str] = frozenset(), refuse: BaseException | None = None
    ) -> None:
        self.wanted = dependents
        self.refuse = refuse
        self.calls: list[tuple[str, Any]] = []

    def dependents(self, changed: frozenset[str]) -> frozenset[str]:
        self.calls.append(("dependents", changed))
        return self.wanted

    def prepare(self, namespaces: Mapping[str, dict[str, Any]]) -> None:
        self.calls.append(("prepare", dict(namespaces)))
        if self.refuse is not None:
            raise self.refuse

    def abort(self, namespaces: Mapping[str, dict[str, Any]]) -> None:
        self.calls.append(("abort", dict(namespaces)))

    def committed(
        self, namespaces: Mapping[str, dict[str, Any]], previous: Mapping[str, dict[str, Any]]
    ) -> None:
        self.calls.append(("committed", (dict(namespaces), dict(previous))))

    def kept(self, namespace: object) -> tuple[object, ...]:
        return ()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


class TestParticipants:
    def test_prepare_sees_the_new_namespaces_and_committed_follows(
        self, reloader: HotReloader, pair: Any
    ) -> None:
        """prepare() gets the namespaces to be, committed() them and the previous ones."""
        pricing, _, p, _ = pair
        old = vars(pricing)
        recorder = Recorder()
        reloader._add_participant(recorder)
        reloader.swap(p, "def price():\n    return 5\n")
        assert recorder.kinds() == ["dependents", "prepare", "committed"]
        assert recorder.calls[0][1] == frozenset({p})
        prepared = recorder.calls[1][1][p]
        assert prepared["price"] is pricing.price
        namespaces, previous = recorder.calls[2][1]
        assert namespaces[p] is vars(pricing) is prepared
        assert previous[p] is old

    def test_a_refusing_participant_changes_nothing(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """ValidationError (cause kept), swap_failed, abort for those that accepted."""
        pricing, _, p, _ = pair
        accepting = Recorder()
        refusing = Recorder(refuse=RuntimeError("startup failed"))
        reloader._add_participant(accepting)
        reloader._add_participant(refusing)
        failed: list[object] = []
        package.write("fresh", "X = 1\n")
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: failed.append(kw["error"])),
            pytest.raises(ValidationError, match="startup failed") as caught,
        ):
            reloader.swap(p, f"import {package.name}.fresh\ndef price():\n    return 5\n")
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert failed == [caught.value]
        assert pricing.price() == 100
        assert reloader.current(p).number == 1
        assert f"{package.name}.fresh" not in sys.modules
        assert accepting.kinds() == ["dependents", "prepare", "abort"]
        assert "committed" not in refusing.kinds()

    def test_dependents_are_executed_anew_from_their_current_source(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A module that computed a value from a changed one at import is rebuilt with it."""
        _, _discounts, _p, d = pair
        routes = package.module(
            "routes", f"from {package.name}.discounts import RATE\nDOUBLE = RATE * 2\n"
        )
        r = routes.__name__
        reloader.track(routes)
        reloader._add_participant(Recorder(dependents=frozenset({r})))
        reloader.swap(d, "RATE = 5\ndef rate():\n    return RATE\n")
        assert routes.DOUBLE == 10
        rebuilt = reloader.current(r)
        assert rebuilt.number == 2
        assert rebuilt.sha256 == reloader.history(r)[0].sha256
        assert rebuilt.reason == f"rebuilt: imports {d}"
        reloader.rollback_many([d, r])
        assert routes.DOUBLE == 2

    def test_a_dependent_named_with_its_own_source_is_rebuilt_too(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A dependent the caller listed unchanged is still executed anew."""
        pricing, _, p, d = pair
        reloader._add_participant(Recorder(dependents=frozenset({p})))
        versions = reloader.swap_many({d: "def rate():\n    return 2\n", p: None})
        assert [v.number for v in versions] == [2, 2]
        assert versions[1].reason == f"rebuilt: imports {d}"
        assert pricing.price() == 200

    def test_a_race_after_prepare_aborts_the_release(
        self, reloader: HotReloader, pair: Any
    ) -> None:
        """A rollback after the participants accepted: LoadError, abort(), nothing switched."""
        pricing, _, p, _ = pair
        reloader.swap(p, "def price():\n    return 2\n")

        class RollingBack(Recorder):
            def prepare(self, namespaces: Mapping[str, dict[str, Any]]) -> None:
                super().prepare(namespaces)
                if len(self.calls) == 2:  # the swap's prepare; the rollback is a release too
                    reloader.rollback(p)

        racing = RollingBack()
        reloader._add_participant(racing)
        with pytest.raises(LoadError, match="rolled back"):
            reloader.swap(p, "def price():\n    return 3\n")
        reloader._remove_participant(racing)
        assert pricing.price() == 100
        # the swap's dependents and prepare, the rollback's release, the swap's abort
        assert racing.kinds() == ["dependents", "prepare", "prepare", "committed", "abort"]

    def test_a_failing_committed_is_logged_and_the_release_stands(
        self, reloader: HotReloader, pair: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After the flip nothing can be undone: the error goes to the illunare logger."""
        pricing, _, p, _ = pair

        class Failing(Recorder):
            def committed(
                self,
                namespaces: Mapping[str, dict[str, Any]],
                previous: Mapping[str, dict[str, Any]],
            ) -> None:
                raise RuntimeError("after the fact")

        reloader._add_participant(Failing())
        with caplog.at_level(logging.ERROR, logger="illunare"):
            reloader.swap(p, "def price():\n    return 3\n")
        assert pricing.price() == 3
        assert any("after the fact" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)

    def test_a_dependent_without_known_source_refuses_the_release(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """A module loaded from no findable source cannot be executed anew: LoadError."""
        pricing, _, _, d = pair
        sourceless = types.ModuleType(f"{package.name}.sourceless")
        exec("X = 1\n", vars(sourceless))
        sys.modules[sourceless.__name__] = sourceless
        reloader.track(sourceless)
        reloader._add_participant(Recorder(dependents=frozenset({sourceless.__name__})))
        with pytest.raises(LoadError, match="source of its running version is unknown"):
            reloader.swap(d, "def rate():\n    return 2\n")
        assert pricing.price() == 100

    def test_a_rollback_asks_the_participants_too(self, reloader: HotReloader, pair: Any) -> None:
        """rollback() and rollback_many() are releases: a participant can refuse them."""
        pricing, _, p, _ = pair
        reloader.swap(p, "def price():\n    return 5\n")
        refusing = Recorder(refuse=RuntimeError("no"))
        reloader._add_participant(refusing)
        with pytest.raises(ValidationError):
            reloader.rollback(p)
        assert pricing.price() == 5
        reloader._remove_participant(refusing)
        recorder = Recorder()
        reloader._add_participant(recorder)
        reloader.rollback_many([p])
        assert pricing.price() == 100
        assert recorder.kinds() == ["prepare", "committed"]

    def test_failing_dependents_refuse_the_release(self, reloader: HotReloader, pair: Any) -> None:
        """dependents() raising is a ValidationError; nothing changes."""
        pricing, _, p, _ = pair

        class Broken(Recorder):
            def dependents(self, changed: frozenset[str]) -> frozenset[str]:
                raise KeyError("graph")

        reloader._add_participant(Broken())
        with pytest.raises(ValidationError):
            reloader.swap(p, "def price():\n    return 5\n")
        assert pricing.price() == 100


class TestImporters:
    def test_top_level_imports_of_every_form(self, reloader: HotReloader, package: Package) -> None:
        """import, from-import, relative and submodule forms; def and class bodies ignored."""
        name = package.name
        base = package.module("base", "X = 1\n")
        forms = {
            "a": f"import {name}.base\n",
            "b": f"from {name}.base import X\n",
            "c": "from .base import X\n",
            "d": "from . import base\n",
            "e": f"try:\n    from {name} import base\nexcept ImportError:\n    pass\n",
            "f": f"def later():\n    import {name}.base\n",
            "g": f"class Later:\n    from {name}.base import X\n",
            "h": "X = 1\n",
        }
        for module, source in forms.items():
            reloader.track(package.module(module, source))
        reloader.track(base)
        importers = reloader._importers(base.__name__)
        assert importers == frozenset(f"{name}.{module}" for module in "abcde")

    def test_the_graph_follows_the_current_version(
        self, reloader: HotReloader, package: Package, pair: Any
    ) -> None:
        """After a swap that drops the import, the module no longer imports it."""
        _, _, p, d = pair
        assert reloader._importers(d) == frozenset({p})
        reloader.swap(p, dedent("def price():\n    return 1\n"))
        assert reloader._importers(d) == frozenset()


class TestPreparationOrder:
    @given(graph=IMPORT_GRAPHS)
    def test_each_module_comes_after_what_it_imports_unless_in_a_cycle(
        self, graph: dict[str, frozenset[str]]
    ) -> None:
        """Every module once; an imported module first; modules of a cycle as given."""
        order = preparation_order(graph)
        assert sorted(order) == sorted(graph)

        def reaches(start: str, goal: str) -> bool:
            seen, pending = set(), [start]
            while pending:
                name = pending.pop()
                for other in graph[name]:
                    if other == goal:
                        return True
                    if other not in seen:
                        seen.add(other)
                        pending.append(other)
            return False

        for name, imported in graph.items():
            for other in imported - {name}:
                if not reaches(other, name):  # not in a cycle with it
                    assert order.index(other) < order.index(name)
        names = list(graph)
        for one in names:
            for other in names[names.index(one) + 1 :]:
                if reaches(one, other) and reaches(other, one):  # a cycle: as given
                    assert order.index(one) < order.index(other)

    @given(graph=IMPORT_GRAPHS)
    def test_without_imports_the_order_is_the_mappings(
        self, graph: dict[str, frozenset[str]]
    ) -> None:
        """No edges: the mapping's order, unchanged."""
        plain = dict.fromkeys(graph, frozenset[str]())
        assert preparation_order(plain) == list(graph)
