"""Deployments against a model (hypothesis stateful), and generated bad packages."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from illunare import (
    ConfigUpdate,
    FlagUpdate,
    HotReloader,
    HotRollout,
    HotSwap,
    PackageError,
    Rollout,
    signals,
)

from .conftest import Package
from .service import BROKEN_CODE, Service, module_code, outcome
from .strategies import bad_packages

TABLES = ["orders", "users", "carts"]
FLAGS = ["new_flow", "dark_mode", "existing"]

# One step of a generated deployment, as data the model understands:
# ("swap", module, tag, fails), ("rollout", [(module, tag, fails), ...]), ("config", pool),
# ("flag", name, enabled), ("migration", table, reversible, fails, down_fails).
swaps = st.tuples(st.just("swap"), st.integers(0, 1), st.sampled_from("abc"), st.booleans())
releases = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from("abc"), st.booleans()),
    min_size=1,
    max_size=2,
    unique_by=lambda m: m[0],
)
rollouts = st.tuples(st.just("rollout"), releases)
configs = st.tuples(st.just("config"), st.integers(0, 150))
flag_updates = st.tuples(st.just("flag"), st.sampled_from(FLAGS), st.booleans())
migrations = st.tuples(
    st.just("migration"), st.sampled_from(TABLES), st.booleans(), st.booleans(), st.booleans()
)
specs = st.one_of(swaps, rollouts, configs, flag_updates, migrations)
#: promotes with no call to judge, after two short bakes
QUICK = Rollout(steps=(50, 100), bake=0.005, min_samples=0)


class Model:
    """What the service should hold: each module's tag, the config, the flags, the tables."""

    def __init__(self, service: Service) -> None:
        self.tags = {module: service.tag(module) for module in service.modules}
        self.config = dict(service.config.snapshot())
        self.flags = {name: dict(flag.config) for name, flag in service.flags.flags().items()}
        self.tables = set(service.tables)


Undo = Callable[[], None] | None


def _apply(
    model: Model, spec: tuple[Any, ...], modules: list[str], refused: frozenset[str], max_pool: int
) -> Undo:
    """Apply one step to the model; its undo (None: irreversible). Raises if the step fails."""
    kind = spec[0]
    if kind == "release":
        if any(fails for _, _, fails in spec[1]):
            raise RuntimeError("the release fails")
        before = dict(model.tags)
        for index, tag, _ in spec[1]:
            model.tags[modules[index]] = f"{modules[index]}-{tag}"
        return lambda: model.tags.update(before)
    if kind == "config":
        # An update that changes nothing is not validated: it makes no version.
        if spec[1] > max_pool and spec[1] != model.config["pool"]:
            raise RuntimeError("refused by the validator")
        config = dict(model.config)
        model.config["pool"] = spec[1]
        return lambda: setattr(model, "config", config)
    if kind == "flag":
        name = spec[1]
        if name in refused:
            raise RuntimeError("refused by the store")
        previous = model.flags.get(name)
        model.flags[name] = {"enabled": spec[2]}

        def undo_flag() -> None:
            if previous is None:
                del model.flags[name]
            else:
                model.flags[name] = previous

        return undo_flag
    _, table, reversible, fails, down_fails = spec
    if fails:
        raise RuntimeError("the migration fails")
    model.tables.add(table)
    if not reversible:
        return None

    def down() -> None:
        if down_fails:
            raise RuntimeError("the down fails")
        model.tables.discard(table)

    return down


def simulate(
    model: Model,
    units: list[tuple[Any, ...]],
    modules: list[str],
    refused: frozenset[str],
    max_pool: int,
) -> tuple[str, list[str]]:
    """Run ``units`` on the model as a Deployment runs them: the status and each unit's status."""
    statuses = ["not_run"] * len(units)
    done: list[tuple[int, Undo]] = []
    failed = False
    for number, unit in enumerate(units):
        try:
            undo = _apply(model, unit, modules, refused, max_pool)
        except RuntimeError:
            statuses[number] = "failed"
            failed = True
            break
        statuses[number] = "succeeded"
        done.append((number, undo))
    if not failed:
        return "succeeded", statuses
    undo_failed = False
    for number, undo in reversed(done):
        if undo is None:
            return ("rollback_failed" if undo_failed else "halted"), statuses
        try:
            undo()
        except RuntimeError:
            statuses[number] = "undo_failed"
            undo_failed = True
        else:
            statuses[number] = "undone"
    return ("rollback_failed" if undo_failed else "rolled_back"), statuses


class DeploymentMachine(RuleBasedStateMachine):
    """Random deployments, some failing at random points, against the model.

    Each run has a service of its own (new modules in a new package under
    ``root``), so that no run depends on what another left behind.
    """

    root: Path
    reloader: HotReloader

    def __init__(self) -> None:
        super().__init__()
        self.package = Package(self.root)
        self.service = Service(self.package, self.reloader)
        self.model = Model(self.service)

    def teardown(self) -> None:
        for name in [name for name in sys.modules if name.split(".")[0] == self.package.name]:
            del sys.modules[name]

    def _step(self, spec: tuple[Any, ...]) -> Any:
        service = self.service
        kind = spec[0]
        if kind == "swap":
            module = service.modules[spec[1]]
            return HotSwap(module, BROKEN_CODE if spec[3] else module_code(f"{module}-{spec[2]}"))
        if kind == "rollout":
            codes = {
                service.modules[index]: BROKEN_CODE
                if fails
                else module_code(f"{service.modules[index]}-{tag}")
                for index, tag, fails in spec[1]
            }
            return HotRollout(codes, QUICK)
        if kind == "config":
            return ConfigUpdate({"pool": spec[1]})
        if kind == "flag":
            return FlagUpdate(spec[1], {"enabled": spec[2]})
        _, table, reversible, fails, down_fails = spec
        return service.migration(table, reversible=reversible, fails=fails, down_fails=down_fails)

    def _deploy(
        self,
        package: object,
        units: list[tuple[Any, ...]],
        sizes: list[int],
        refused: frozenset[str] = frozenset(),
        max_pool: int = 100,
    ) -> None:
        """Plan ``package`` and run it and the model alike.

        A pool above the validator's limit (100) is a PackageError: nothing
        runs. Between plan() and run() the flag store starts refusing the
        flags ``refused`` and the database's limit becomes ``max_pool``: a
        config step above it fails when it runs.
        """
        service = self.service
        if any(unit[0] == "config" and unit[1] > service.max_pool for unit in units):
            with pytest.raises(PackageError, match="the validator refused"):
                service.deployment.plan(package)
            return
        plan = service.deployment.plan(package)
        service.backend.refused |= refused
        service.max_pool = max_pool
        try:
            status, unit_statuses = simulate(self.model, units, service.modules, refused, max_pool)
            result = outcome(service.deployment, plan)
        finally:
            service.backend.refused.clear()
            service.max_pool = 100
        expected = [s for s, size in zip(unit_statuses, sizes, strict=True) for _ in range(size)]
        assert result.status == status
        assert [step.status for step in result.steps] == expected

    @rule(
        steps=st.lists(specs, min_size=1, max_size=6),
        refused=st.frozensets(st.sampled_from(FLAGS)),
        max_pool=st.sampled_from([100, 60]),
    )
    def deploy_steps(
        self, steps: list[tuple[Any, ...]], refused: frozenset[str], max_pool: int
    ) -> None:
        """A list of steps, each its own unit (a swap is a release of one module, a rollout one)."""
        units = [
            ("release", [(spec[1], spec[2], spec[3])])
            if spec[0] == "swap"
            else ("release", spec[1])
            if spec[0] == "rollout"
            else spec
            for spec in steps
        ]
        package = [self._step(spec) for spec in steps]
        self._deploy(package, units, [1] * len(units), refused, max_pool)

    @rule(
        modules=st.lists(st.tuples(st.integers(0, 1), st.sampled_from("abc"), st.booleans()),
                         max_size=2, unique_by=lambda m: m[0]),
        pool=st.none() | st.integers(0, 150),
        flags=st.dictionaries(st.sampled_from(FLAGS), st.booleans(), max_size=2),
        tables=st.lists(migrations, max_size=2),
        max_pool=st.sampled_from([100, 60]),
        rolled_out=st.booleans(),
    )  # fmt: skip
    def deploy_package(
        self,
        modules: list[tuple[int, str, bool]],
        pool: int | None,
        flags: dict[str, bool],
        tables: list[tuple[Any, ...]],
        max_pool: int,
        rolled_out: bool,
    ) -> None:
        """A package mapping: its modules one release (or rollout), config, flags, migrations."""
        service = self.service
        package: dict[str, Any] = {
            "modules": [
                {
                    "name": service.modules[index],
                    "code": BROKEN_CODE
                    if fails
                    else module_code(f"{service.modules[index]}-{tag}"),
                }
                for index, tag, fails in modules
            ],
            "flags": {name: {"enabled": enabled} for name, enabled in flags.items()},
            "migrations": [self._step(spec) for spec in tables],
        }
        if rolled_out and modules:
            package["rollout"] = {"steps": [50, 100], "bake": QUICK.bake, "min_samples": 0}
        units: list[tuple[Any, ...]] = [("release", modules)] if modules else []
        sizes = [len(modules)] if modules else []
        if pool is not None:
            package["config"] = {"pool": pool}
            units.append(("config", pool))
            sizes.append(1)
        units += [("flag", name, enabled) for name, enabled in flags.items()]
        units += tables
        sizes += [1] * (len(flags) + len(tables))
        if not units:
            return
        self._deploy(package, units, sizes, max_pool=max_pool)

    @invariant()
    def the_service_is_the_model(self) -> None:
        service = self.service
        assert {module: service.tag(module) for module in service.modules} == self.model.tags
        assert dict(service.config.snapshot()) == self.model.config
        flags = {name: dict(flag.config) for name, flag in service.flags.flags().items()}
        assert flags == self.model.flags
        assert service.tables == self.model.tables


class TestAgainstTheModel:
    def test_random_deployments_match_the_model(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Random packages with failures at random points leave the service as the model says."""

        class Machine(DeploymentMachine):
            pass

        Machine.root = package.path.parent
        Machine.reloader = reloader
        run_state_machine_as_test(
            Machine,
            settings=settings(max_examples=60, stateful_step_count=6, deadline=None),
        )


class TestBadPackages:
    def test_a_bad_package_raises_only_package_error_naming_every_problem(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Generated bad packages: PackageError with exactly their problems' paths; nothing ran."""
        service = Service(package, reloader)
        sent: list[object] = []

        def receive(sender: object, **kwargs: Any) -> None:
            sent.append(kwargs)

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(bad_packages(service.modules, service.migration("orders")))
        def check(case: tuple[object, set[str]]) -> None:
            bad, paths = case
            before = copy.deepcopy(service.state())
            with pytest.raises(PackageError) as caught:
                service.deployment.run(bad)
            assert {path for path, _ in caught.value.problems} == paths
            assert service.state() == before

        with (
            signals.deployment_started.connected_to(receive),
            signals.step_succeeded.connected_to(receive),
            signals.step_failed.connected_to(receive),
        ):
            check()
        assert sent == []
        assert service.deployment.history() == ()
        assert service.tables == set()
