"""Releases: swap_many, rollback_many, sibling imports, one flip, participants, the import graph."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

import pytest

from illunare import (
    HotReloader,
    InvalidArgumentError,
    LoadError,
    RollbackError,
    UnknownModuleError,
    ValidationError,
    signals,
)

from .conftest import Package, dedent


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
    """pricing imports discounts; both tracked. Returns the modules and their names."""
    pricing, discounts = _pair(package)
    reloader.track(discounts)
    reloader.track(pricing)
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


class TestAtomicRelease:
    def test_no_thread_sees_the_new_pricing_beside_the_old_discounts(
        self, reloader: HotReloader, package: Package
    ) -> None:
        """Readers read pricing then discounts: pricing is never ahead of discounts."""
        discounts = package.module("discounts", "VERSION = 0\n")
        pricing = package.module("pricing", "VERSION = 0\n")
        reloader.track(discounts)
        reloader.track(pricing)
        stop = threading.Event()
        torn: list[tuple[int, int]] = []

        def read() -> None:
            while not stop.is_set():
                seen = (pricing.VERSION, discounts.VERSION)
                if seen[0] > seen[1]:
                    torn.append(seen)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for thread in readers:
            thread.start()
        try:
            for n in range(1, 150):
                reloader.swap_many(
                    {pricing.__name__: f"VERSION = {n}\n", discounts.__name__: f"VERSION = {n}\n"}
                )
        finally:
            stop.set()
            for thread in readers:
                thread.join()
        assert torn == []
        assert (pricing.VERSION, discounts.VERSION) == (149, 149)

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
