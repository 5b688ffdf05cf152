"""Deployment: plan, run in order, undo in reverse, points of no return, signals, exclusivity."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest

from illunare import (
    ConfigError,
    ConfigUpdate,
    Deployment,
    DeploymentError,
    DeploymentInProgressError,
    DeploymentPlan,
    FlagUpdate,
    HealthGate,
    HotConfig,
    HotReloader,
    HotSwap,
    IllunareError,
    InvalidArgumentError,
    Migration,
    PackageError,
    PerformanceMonitor,
    signals,
)

from .conftest import CTRL_C, Package, in_child, priced_app
from .service import BROKEN_CODE, Service, module_code

DEPLOYMENT_SIGNALS = (
    signals.deployment_started,
    signals.step_succeeded,
    signals.step_failed,
    signals.deployment_succeeded,
    signals.deployment_rolled_back,
    signals.deployment_failed,
)


@pytest.fixture
def service(package: Package, reloader: HotReloader) -> Service:
    return Service(package, reloader)


@pytest.fixture
def events() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every deployment signal sent during the test, in order: (name, kwargs)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: object, **kwargs: Any) -> None:
            seen.append((name, kwargs))

        return receive

    receivers = [(signal, receiver(signal.name)) for signal in DEPLOYMENT_SIGNALS]
    for signal, receive in receivers:
        signal.connect(receive)
    yield seen
    for signal, receive in receivers:
        signal.disconnect(receive)


def failed(deployment: Deployment, package: object) -> DeploymentError:
    """Run ``package``, which must fail; the DeploymentError."""
    with pytest.raises(DeploymentError) as caught:
        deployment.run(package)
    return caught.value


def statuses(error: DeploymentError) -> list[str]:
    assert error.result is not None
    return [step.status for step in error.result.steps]


class TestPlan:
    def test_a_package_plans_in_run_order_without_running(self, service: Service) -> None:
        """plan() orders modules, config, flags, migrations, with their paths; nothing changes."""
        before = service.state()
        plan = service.deployment.plan(
            {
                "migrations": [service.migration("orders")],
                "flags": {"new_flow": {"enabled": True}},
                "config": {"pool": 20},
                "modules": [
                    {"name": service.alpha, "code": module_code("alpha-2")},
                    {"name": service.beta, "code": module_code("beta-2")},
                ],
            }
        )
        assert isinstance(plan, DeploymentPlan)
        assert [type(step).__name__ for step in plan.steps] == [
            "HotSwap", "HotSwap", "ConfigUpdate", "FlagUpdate", "Migration",
        ]  # fmt: skip
        assert plan.paths == (
            "modules[0]",
            "modules[1]",
            "config",
            "flags.new_flow",
            "migrations[0]",
        )
        assert service.state() == before
        assert service.deployment.history() == ()

    def test_every_problem_is_listed_with_its_path(
        self, service: Service, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """One PackageError names every problem; nothing ran, no history, no signal."""
        before = service.state()
        with pytest.raises(PackageError) as caught:
            service.deployment.run(
                {
                    "modules": [
                        {"name": "not_tracked_anywhere", "code": "X = 1"},
                        {"name": service.beta, "code": "def broken(:\n"},
                        {"name": service.alpha, "code": 42, "extra": True},
                    ],
                    "config": ["pool", 20],
                    "flags": {
                        "ok": {"enabled": True},
                        "bad": {"conditions": [{"type": "percentage", "value": 300}]},
                    },
                    "migrations": [service.migration("orders"), "create table"],
                    "extras": {},
                }
            )
        paths = {path for path, _ in caught.value.problems}
        assert paths == {
            "modules[0].name",
            "modules[1].code",
            "modules[2].code",
            "modules[2].extra",
            "config",
            "flags.bad.conditions[0].value",
            "migrations[1]",
            "extras",
        }
        assert service.state() == before
        assert service.deployment.history() == ()
        assert events == []

    def test_a_list_of_steps_is_checked_by_index(self, service: Service) -> None:
        """The problems of a list of steps have their index as path."""
        with pytest.raises(PackageError) as caught:
            service.deployment.plan(
                [
                    ConfigUpdate({"pool": 10}),
                    HotSwap(service.alpha, "def broken(:\n"),
                    "not a step",
                    FlagUpdate("f", {"enabled": "yes"}),
                ]
            )
        assert [path for path, _ in caught.value.problems] == ["[2]", "[1].code", "[3].enabled"]

    def test_a_config_the_validator_refuses_is_a_problem(
        self, service: Service, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """A config update the HotConfig's validator refuses is named at plan(); nothing ran."""
        before = service.state()
        with pytest.raises(PackageError) as caught:
            service.deployment.run(
                {
                    "modules": [{"name": service.alpha, "code": module_code("alpha-2")}],
                    "config": {"pool": 1000},
                    "migrations": [service.migration("orders")],
                }
            )
        refusal = "the validator refused the config: ValueError('pool 1000 is more than 100')"
        assert caught.value.problems == (("config", refusal),)
        assert service.state() == before
        assert (service.deployment.history(), events) == ((), [])

    def test_config_updates_are_validated_in_turn(self, reloader: HotReloader) -> None:
        """Each config step is judged merged into what the steps before it make, as run() will."""

        def pool_within_limit(values: Mapping[str, int]) -> None:
            if values["pool"] > values["limit"]:
                raise ValueError("pool above limit")

        config = HotConfig({"pool": 5, "limit": 10}, validator=pool_within_limit)
        deployment = Deployment("validated-in-turn", reloader=reloader, config=config)
        raise_limit, grow_pool = ConfigUpdate({"limit": 50}), ConfigUpdate({"pool": 40})
        assert deployment.plan([raise_limit, grow_pool]).paths == ("[0]", "[1]")
        with pytest.raises(PackageError) as caught:
            deployment.plan([grow_pool, raise_limit, ConfigUpdate({"pool": 60})])
        # A refused step is left out of what the next ones are judged on.
        assert [path for path, _ in caught.value.problems] == ["[0]", "[2]"]
        assert (config.version, dict(config.snapshot())) == (1, {"pool": 5, "limit": 10})

    def test_a_plan_is_validated_again_when_it_runs(self, service: Service) -> None:
        """A config accepted at plan() but refused when its step runs fails that step: undone."""
        plan = service.deployment.plan([service.migration("orders"), ConfigUpdate({"pool": 50})])
        before = service.state()
        service.max_pool = 20  # the database allows fewer connections by now
        error = failed(service.deployment, plan)
        assert statuses(error) == ["undone", "failed"]
        assert isinstance(error.__cause__, ConfigError)
        assert service.state() == before

    def test_a_step_needing_a_part_not_given_is_refused(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Without config= or flags=, config and flag updates are refused with their paths."""
        service = Service(package, reloader)
        bare = Deployment("bare", reloader=reloader)
        with pytest.raises(PackageError) as caught:
            bare.plan({"config": {"pool": 1}, "flags": {"f": {"enabled": True}}})
        assert [path for path, _ in caught.value.problems] == ["config", "flags.f"]
        assert "config=" in caught.value.problems[0][1]
        assert "flags=" in caught.value.problems[1][1]
        with pytest.raises(PackageError) as caught:
            bare.plan([HotSwap(service.alpha, "X = 1"), FlagUpdate("f", {"enabled": True})])
        assert [path for path, _ in caught.value.problems] == ["[1]"]

    def test_an_empty_package_is_refused(self, service: Service) -> None:
        """A package with no steps, or that is no package at all, is a PackageError."""
        for empty in ({}, [], {"modules": []}, "modules", 3):
            with pytest.raises(PackageError):
                service.deployment.plan(empty)

    def test_errors_are_typed(self) -> None:
        """PackageError is a ValueError, DeploymentInProgressError a DeploymentError."""
        assert issubclass(PackageError, IllunareError)
        assert issubclass(PackageError, ValueError)
        assert issubclass(DeploymentError, IllunareError)
        assert issubclass(DeploymentError, RuntimeError)
        assert issubclass(DeploymentInProgressError, DeploymentError)

    def test_a_plan_runs_only_on_its_deployment(self, service: Service) -> None:
        """Another Deployment refuses a plan it did not check."""
        plan = service.deployment.plan([service.migration("orders")])
        other = Deployment("other", reloader=service.reloader)
        with pytest.raises(InvalidArgumentError):
            other.run(plan)
        assert service.tables == set()

    def test_bad_arguments_are_refused(self, reloader: HotReloader) -> None:
        """Wrong types and impossible values raise InvalidArgumentError."""
        for make in (
            lambda: Deployment(""),
            lambda: Deployment("s", reloader=object()),  # type: ignore[arg-type]
            lambda: Deployment("s", flags={}),  # type: ignore[arg-type]
            lambda: Deployment("s", config={}),  # type: ignore[arg-type]
            lambda: Deployment("s", monitor=object()),  # type: ignore[arg-type]
            lambda: Deployment("s", health=3),  # type: ignore[arg-type]
            lambda: HealthGate(bake=-1),
            lambda: HealthGate(bake=float("inf")),
            lambda: HealthGate(bake=float("nan")),
            lambda: HealthGate(bake=10**400),  # no float can hold its deadline
            lambda: HealthGate(deployment_id=""),
            lambda: HealthGate(thresholds={"max_latency": 1}),  # type: ignore[arg-type]
            lambda: HotSwap("", "X = 1"),
            lambda: HotSwap("m", b"X = 1"),  # type: ignore[arg-type]
            lambda: ConfigUpdate([1, 2]),  # type: ignore[arg-type]
            lambda: FlagUpdate("f", None),  # type: ignore[arg-type]
            lambda: Migration("m", up=3),  # type: ignore[arg-type]
            lambda: Migration("m", up=print, down="drop"),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidArgumentError):
                make()

    def test_a_health_gate_needs_a_monitor_and_thresholds(self, reloader: HotReloader) -> None:
        """No monitor to watch, or no thresholds to judge by: refused at construction."""
        with pytest.raises(InvalidArgumentError, match="PerformanceMonitor"):
            Deployment("s", reloader=reloader, health=HealthGate(bake=1))
        with pytest.raises(InvalidArgumentError, match="thresholds"):
            Deployment("s", reloader=reloader, monitor=PerformanceMonitor(), health=HealthGate())


INTERRUPTED_UNDO = (
    CTRL_C
    + """
tables = set()
def fail():
    raise RuntimeError("c cannot run")
def hang():
    time.sleep(30)
from illunare import Deployment, HotReloader, Migration
deployment = Deployment("orders", reloader=HotReloader())
ctrl_c_in("hang")
try:
    deployment.run([
        Migration("a", lambda: tables.add("a"), lambda: tables.discard("a")),
        Migration("b", lambda: tables.add("b"), hang),
        Migration("c", fail),
    ])
except KeyboardInterrupt:
    (result,) = deployment.history()
    print(result.status, [step.status for step in result.steps], sorted(tables),
          result.steps[1].error)
"""
)


class TestRun:
    def test_a_package_applies_everything_in_order(
        self, service: Service, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """modules, config, flags, migrations, in that order; the result says succeeded."""
        result = service.deployment.run(
            {
                "migrations": [service.migration("orders")],
                "flags": {"new_flow": {"enabled": True}},
                "config": {"pool": 20},
                "modules": [{"name": service.alpha, "code": module_code("alpha-2")}],
            }
        )
        assert result.status == "succeeded"
        assert result.error is None
        assert [(step.kind, step.status) for step in result.steps] == [
            ("HotSwap", "succeeded"),
            ("ConfigUpdate", "succeeded"),
            ("FlagUpdate", "succeeded"),
            ("Migration", "succeeded"),
        ]
        assert [step.target for step in result.steps] == [
            service.alpha, "pool", "new_flow", "create orders",
        ]  # fmt: skip
        assert service.tag(service.alpha) == "alpha-2"
        assert service.config["pool"] == 20
        assert service.flags.is_enabled("new_flow")
        assert service.tables == {"orders"}
        succeeded = [kw["step"].kind for name, kw in events if name == "step_succeeded"]
        assert succeeded == ["HotSwap", "ConfigUpdate", "FlagUpdate", "Migration"]
        assert events[-1] == ("deployment_succeeded", {"result": result})

    def test_the_modules_of_a_package_are_one_release(self, service: Service) -> None:
        """A module listed first sees the new version of a module listed after it."""
        beta = (
            f"from {service.alpha} import TAG as ALPHA\n"
            "def tag():\n    return 'beta sees ' + ALPHA\n"
        )
        alpha = "TAG = 'alpha-2'\ndef tag():\n    return TAG\n"
        result = service.deployment.run(
            {
                "modules": [
                    {"name": service.beta, "code": beta},
                    {"name": service.alpha, "code": alpha},
                ]
            }
        )
        assert [step.target for step in result.steps] == [service.beta, service.alpha]
        assert service.tag(service.beta) == "beta sees alpha-2"

    def test_a_release_that_fails_changes_none_of_its_modules(self, service: Service) -> None:
        """One broken module of the package: every module of the release failed, none changed."""
        before = service.state()
        error = failed(
            service.deployment,
            {
                "modules": [
                    {"name": service.alpha, "code": module_code("alpha-2")},
                    {"name": service.beta, "code": BROKEN_CODE},
                ],
                "config": {"pool": 20},
            },
        )
        assert statuses(error) == ["failed", "failed", "not_run"]
        assert error.result is not None
        assert error.result.status == "rolled_back"
        assert "the new code cannot load" in (error.result.error or "")
        assert service.state() == before

    def test_identical_code_is_undone_as_nothing(self, service: Service) -> None:
        """A swap to the running code makes no version, and its undo leaves the module alone."""
        before = service.state()
        error = failed(
            service.deployment,
            [HotSwap(service.alpha, module_code("alpha-1")), service.migration("x", fails=True)],
        )
        assert statuses(error) == ["undone", "failed"]
        assert service.state() == before

    def test_the_result_is_json_serialisable_and_kept(self, service: Service) -> None:
        """attrs.asdict(result) goes through json; every run is in history, each id unique."""
        first = service.deployment.run([service.migration("a")])
        second = failed(service.deployment, [service.migration("b", fails=True)]).result
        assert second is not None
        assert service.deployment.history() == (first, second)
        assert first.id != second.id
        for result in (first, second):
            document = json.loads(json.dumps(attrs.asdict(result)))
            assert document["service"] == service.deployment.service
            assert document["status"] == result.status
            assert document["steps"][0]["kind"] == "Migration"
        assert json.loads(json.dumps(attrs.asdict(second)))["steps"][0]["error"] == (
            "RuntimeError: creating b failed"
        )

    def test_the_step_error_is_the_cause(self, service: Service) -> None:
        """DeploymentError's __cause__ is what the failing step raised."""
        error = failed(service.deployment, [service.migration("x", fails=True)])
        assert isinstance(error.__cause__, RuntimeError)
        assert str(error.__cause__) == "creating x failed"

    def test_a_keyboard_interrupt_is_undone_then_propagates(self, service: Service) -> None:
        """A step raising KeyboardInterrupt: the steps before are undone, the interrupt goes on."""
        before = service.state()

        def interrupt() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            service.deployment.run([ConfigUpdate({"pool": 9}), Migration("interrupted", interrupt)])
        assert service.state() == before
        assert service.deployment.history()[0].status == "rolled_back"

    @pytest.mark.parametrize("where", ["step", "undo"])
    def test_an_exception_whose_str_fails_is_still_recorded_and_undone(
        self, service: Service, where: str
    ) -> None:
        """An exception whose __str__ fails (a step or undo): named by its kind, the rest undone."""

        class Unprintable(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no text")

        def fail() -> None:
            raise Unprintable

        before = service.state()
        first = ConfigUpdate({"pool": 9})
        if where == "step":
            steps: list[Any] = [first, Migration("odd", fail)]
        else:
            steps = [
                first,
                Migration("odd", lambda: None, fail),
                service.migration("x", fails=True),
            ]
        error = failed(service.deployment, steps)
        assert error.result is not None
        assert "Unprintable: <str() failed>" in [step.error for step in error.result.steps]
        if where == "step":
            assert statuses(error) == ["undone", "failed"]
            assert service.state() == before
        else:
            assert statuses(error) == ["undone", "undo_failed", "failed"]
            assert error.result.status == "rollback_failed"
            assert service.config["pool"] == 5

    def test_its_errors_pickle_with_what_they_carry(self, service: Service) -> None:
        """The deployment errors pickle with problems, result, service (for process pools)."""
        with pytest.raises(PackageError) as bad:
            service.deployment.run({"modules": "nope"})
        error = failed(service.deployment, [service.migration("x", fails=True)])
        busy = DeploymentInProgressError(service.deployment.service)
        for raised in (bad.value, error, busy):
            clone = pickle.loads(pickle.dumps(raised))  # our own data
            assert type(clone) is type(raised)
            assert str(clone) == str(raised)
            assert vars(clone) == vars(raised)

    def test_an_interrupted_undo_lets_the_others_run_then_goes_on(self) -> None:
        """Ctrl-C in a hanging undo: undo_failed, the other undos run, the interrupt goes on."""
        done = subprocess.run(
            [sys.executable, "-c", INTERRUPTED_UNDO],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            "rollback_failed ['undone', 'undo_failed', 'failed'] ['b'] KeyboardInterrupt: \n"
        )


# The 6-step deployment of the fault injection: every kind of step, twice a
# swap and twice a flag (one created, one changed). The config step fails
# when run, once plan() accepted it, by the database lowering its connection
# limit meanwhile (``interfere``).
def six_steps(service: Service, failing: int | None) -> list[Any]:
    steps: list[Any] = [
        HotSwap(service.alpha, module_code("alpha-2")),
        ConfigUpdate({"pool": 20, "timeout": 3}),
        FlagUpdate("new_flow", {"enabled": True}),
        service.migration("orders"),
        HotSwap(service.beta, module_code("beta-2")),
        FlagUpdate("existing", {"enabled": True}),
    ]
    if failing == 0:
        steps[0] = HotSwap(service.alpha, BROKEN_CODE)
    elif failing == 2:
        service.backend.refused.add("new_flow")
    elif failing == 3:
        steps[3] = service.migration("orders", fails=True)
    elif failing == 4:
        steps[4] = HotSwap(service.beta, BROKEN_CODE)
    elif failing == 5:
        service.backend.refused.add("existing")
    return steps


def interfere(service: Service, failing: int | None, spoiled: int | None) -> Callable[..., None]:
    """A step_succeeded receiver: what others change while the deployment runs.

    With ``failing`` 1, the database lowers its connection limit once the
    first step succeeded: the validator refuses the config step's pool,
    which it accepted at plan(). Once the step at ``spoiled`` succeeded,
    someone else swaps the module or updates the config (the undo will not
    overwrite their change), or the flag store starts refusing the flag, so
    that its undo fails. (A migration's undo fails by its down raising.)
    """
    position = -1 if spoiled is None else spoiled

    def receiver(sender: object, *, step: Any, **extra: Any) -> None:
        if step.target == service.alpha and failing == 1:
            service.max_pool = 10
        if step.target == service.alpha and position == 0:
            service.reloader.swap(service.alpha, module_code("alpha-by-someone-else"))
        elif step.kind == "ConfigUpdate" and position == 1:
            service.config.update({"owner": "someone else"})
        elif step.target == "new_flow" and position == 2:
            service.backend.refused.add("new_flow")
        elif step.target == service.beta and position == 4:
            service.reloader.swap(service.beta, module_code("beta-by-someone-else"))

    return receiver


#: what stays changed when the undo of the step at that position fails
LEFT_CHANGED = {0: "alpha", 1: "config", 2: "flag new_flow", 3: "tables", 4: "beta"}

CASES = [(failing, None) for failing in range(6)] + [
    (failing, spoiled) for failing in range(6) for spoiled in range(failing) if spoiled != 5
]


class TestFaultInjection:
    @pytest.mark.parametrize(("failing", "spoiled"), CASES)
    def test_a_failure_anywhere_is_undone_or_named(
        self, service: Service, failing: int, spoiled: int | None
    ) -> None:
        """Step ``failing`` fails (and the undo of ``spoiled``): all as before but what is named."""
        alpha_tag = sys.modules[service.alpha].tag  # a reference taken before: follows versions
        before = service.state()
        steps = six_steps(service, failing)
        if spoiled == 3:
            steps[3] = service.migration("orders", down_fails=True)
        with signals.step_succeeded.connected_to(interfere(service, failing, spoiled)):
            error = failed(service.deployment, steps)
        result = error.result
        assert result is not None
        assert statuses(error)[failing:] == ["failed"] + ["not_run"] * (5 - failing)
        undo_failed = [n for n, step in enumerate(result.steps) if step.status == "undo_failed"]
        assert undo_failed == ([] if spoiled is None else [spoiled])
        assert all(status in ("undone", "undo_failed") for status in statuses(error)[:failing])
        assert result.status == ("rolled_back" if spoiled is None else "rollback_failed")
        after = service.state()
        names = {"alpha": service.alpha, "beta": service.beta}
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        expected = (
            set() if spoiled is None else {names.get(LEFT_CHANGED[spoiled], LEFT_CHANGED[spoiled])}
        )
        assert changed == expected
        assert alpha_tag() == ("alpha-by-someone-else" if spoiled == 0 else "alpha-1")
        if spoiled is not None:
            assert result.steps[spoiled].error is not None

    def test_an_undo_whose_version_was_evicted_is_named(self, package: Package) -> None:
        """A module swapped twice with keep=2: the version before the first left the history."""
        service = Service(package, HotReloader(keep=2))
        steps = [
            HotSwap(service.alpha, module_code("alpha-2")),
            HotSwap(service.alpha, module_code("alpha-3")),
            service.migration("x", fails=True),
        ]
        error = failed(service.deployment, steps)
        assert error.result is not None
        assert error.result.status == "rollback_failed"
        assert statuses(error) == ["undo_failed", "undone", "failed"]
        assert "evicted" in (error.result.steps[0].error or "")
        assert service.tag(service.alpha) == "alpha-2"

    def test_a_point_of_no_return_halts(self, service: Service) -> None:
        """A failure after an irreversible migration undoes only the steps after it: halted."""
        steps = six_steps(service, 5)
        steps[3] = service.migration("orders", reversible=False)
        error = failed(service.deployment, steps)
        assert error.result is not None
        assert error.result.status == "halted"
        assert statuses(error) == ["succeeded"] * 4 + ["undone", "failed"]
        assert service.tag(service.alpha) == "alpha-2"
        assert service.tag(service.beta) == "beta-1"
        assert service.config["pool"] == 20
        assert service.flags.is_enabled("new_flow")
        assert not service.flags.is_enabled("existing")
        assert service.tables == {"orders"}

    def test_an_irreversible_step_that_fails_is_no_point_of_no_return(
        self, service: Service
    ) -> None:
        """An irreversible migration that fails itself: everything before it is undone."""
        before = service.state()
        steps = six_steps(service, None)
        steps[3] = service.migration("orders", reversible=False, fails=True)
        error = failed(service.deployment, steps)
        assert error.result is not None
        assert error.result.status == "rolled_back"
        assert service.state() == before

    def test_a_failed_undo_after_a_point_of_no_return_is_named(self, service: Service) -> None:
        """Halted with an undo that failed: rollback_failed, naming it."""
        steps = six_steps(service, 5)
        steps[3] = service.migration("orders", reversible=False)
        with signals.step_succeeded.connected_to(interfere(service, 5, 4)):
            error = failed(service.deployment, steps)
        assert error.result is not None
        assert error.result.status == "rollback_failed"
        assert statuses(error) == ["succeeded"] * 4 + ["undo_failed", "failed"]


class TestSignals:
    def test_a_failure_sends_step_failed_then_rolled_back(
        self, service: Service, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """started, each step, step_failed with the exception, then deployment_rolled_back."""
        error = failed(
            service.deployment, [ConfigUpdate({"pool": 9}), service.migration("x", fails=True)]
        )
        names = [name for name, _ in events]
        assert names == [
            "deployment_started", "step_succeeded", "step_failed", "deployment_rolled_back",
        ]  # fmt: skip
        started = events[0][1]
        assert error.result is not None
        assert started["id"] == error.result.id
        assert started["service"] == service.deployment.service
        assert isinstance(started["plan"], DeploymentPlan)
        assert isinstance(events[2][1]["error"], RuntimeError)
        assert events[2][1]["step"] == error.result.steps[1]
        assert events[3][1] == {"result": error.result}

    @pytest.mark.parametrize("halt", [False, True])
    def test_halted_and_rollback_failed_send_deployment_failed(
        self, service: Service, events: list[tuple[str, dict[str, Any]]], halt: bool
    ) -> None:
        """A deployment left partly applied ends with deployment_failed."""
        first = service.migration("a", reversible=not halt, down_fails=not halt)
        error = failed(service.deployment, [first, service.migration("b", fails=True)])
        assert error.result is not None
        assert error.result.status == ("halted" if halt else "rollback_failed")
        assert events[-1] == ("deployment_failed", {"result": error.result})

    def test_a_receiver_that_raises_stops_nothing(self, service: Service) -> None:
        """A faulty receiver is logged; the steps and their undo still run."""
        before = service.state()

        def faulty(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        with (
            signals.step_succeeded.connected_to(faulty),
            signals.deployment_started.connected_to(faulty),
        ):
            error = failed(
                service.deployment,
                [ConfigUpdate({"pool": 9}), service.migration("x", fails=True)],
            )
        assert error.result is not None
        assert error.result.status == "rolled_back"
        assert service.state() == before

    @pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
    @pytest.mark.parametrize(
        "signal", [signals.deployment_started, signals.step_succeeded, signals.step_failed]
    )
    def test_an_interrupt_from_a_step_receiver_undoes_the_deployment(
        self, service: Service, interrupt: type[BaseException], signal: Any
    ) -> None:
        """Ctrl-C while a receiver runs: undone, in history, terminal signal sent, re-raised."""
        before = service.state()

        def interrupted(sender: object, **kwargs: Any) -> None:
            raise interrupt

        package = {
            "modules": [{"name": service.alpha, "code": module_code("alpha-2")}],
            "config": {"pool": 9},
            "migrations": [service.migration("x", fails=signal is signals.step_failed)],
        }
        ended = []
        with (
            signal.connected_to(interrupted),
            signals.deployment_rolled_back.connected_to(lambda sender, **kw: ended.append(kw)),
            pytest.raises(interrupt),
        ):
            service.deployment.run(package)
        (result,) = service.deployment.history()
        assert result.status == "rolled_back"
        assert ended == [{"result": result}]
        assert service.state() == before

    @pytest.mark.parametrize("signal", [signals.config_updated, signals.flag_updated])
    def test_an_interrupt_from_a_change_receiver_leaves_nothing_changed(
        self, service: Service, signal: Any
    ) -> None:
        """Ctrl-C in a config_updated/flag_updated receiver: the step's change is taken back too."""
        before = service.state()

        def interrupted(sender: object, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        package = {"config": {"pool": 9}, "flags": {"existing": {"enabled": True}}}
        with signal.connected_to(interrupted), pytest.raises(KeyboardInterrupt):
            service.deployment.run(package)
        (result,) = service.deployment.history()
        assert result.status == "rolled_back"
        assert service.state() == before


class TestOneAtATime:
    def test_a_second_deployment_of_the_service_is_refused(
        self, service: Service, reloader: HotReloader
    ) -> None:
        """While one runs, another Deployment of the same service name is refused; others run."""
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            inside.set()
            release.wait(30)

        results: list[object] = []
        runner = threading.Thread(
            target=lambda: results.append(service.deployment.run([Migration("hold", hold)]))
        )
        runner.start()
        try:
            assert inside.wait(30)
            twin = Deployment(service.deployment.service, reloader=reloader)
            with pytest.raises(DeploymentInProgressError) as caught:
                twin.run([service.migration("twin")])
            assert caught.value.result is None
            with pytest.raises(DeploymentInProgressError):
                service.deployment.run([service.migration("again")])
            other = Deployment("another service", reloader=reloader)
            assert other.run([service.migration("other")]).status == "succeeded"
        finally:
            release.set()
            runner.join()
        assert service.tables == {"other"}
        assert len(results) == 1
        assert twin.history() == ()
        assert service.deployment.run([service.migration("after")]).status == "succeeded"

    def test_a_forked_child_can_deploy_what_a_parent_thread_was_deploying(
        self, service: Service
    ) -> None:
        """A child forked during a deployment runs its own: the parent's thread is not in it."""
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            inside.set()
            release.wait(30)

        runner = threading.Thread(target=lambda: service.deployment.run([Migration("hold", hold)]))
        runner.start()
        try:
            assert inside.wait(30)

            def child() -> bool:
                result = service.deployment.run([service.migration("in the child")])
                return result.status == "succeeded" and service.tables == {"in the child"}

            assert in_child(child) == 0
        finally:
            release.set()
            runner.join()
        assert service.tables == set()

    def test_concurrent_runs_of_one_service_never_overlap(self, service: Service) -> None:
        """8 threads deploying one service: each run is alone from start to end, or refused."""
        running: list[str] = []
        most = [0]
        lock = threading.Lock()

        def started(sender: object, **kwargs: Any) -> None:
            with lock:
                running.append(kwargs["id"])
                most[0] = max(most[0], len(running))

        def ended(sender: object, *, result: Any, **kwargs: Any) -> None:
            with lock:
                running.remove(result.id)

        outcomes: list[str] = []

        def deploy_once() -> str:
            try:
                service.deployment.run([Migration("m", lambda: None)])
            except DeploymentInProgressError:
                return "refused"
            return "ran"

        def deploy() -> None:
            outcomes.extend(deploy_once() for _ in range(20))

        threads = [threading.Thread(target=deploy) for _ in range(8)]
        with (
            signals.deployment_started.connected_to(started),
            signals.deployment_succeeded.connected_to(ended),
        ):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert most == [1]
        assert running == []
        assert len(outcomes) == 160
        assert len(service.deployment.history()) == outcomes.count("ran")


class TestHotWebApps:
    def test_the_undo_rolls_back_the_app_rebuilt_with_the_modules(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A module of a hot app's package: the undo also rolls back the app module rebuilt."""
        hot, main, pricing = priced_app(package, reloader)
        served = hot.app
        before = {module: reloader.current(module).number for module in (main, pricing)}
        service = Deployment("web", reloader=reloader)

        def fail() -> None:
            raise RuntimeError("the migration fails")

        error = failed(
            service,
            {
                "modules": [{"name": pricing, "code": "def price_of(item):\n    return 90\n"}],
                "migrations": [Migration("x", fail)],
            },
        )
        assert error.result is not None
        assert error.result.status == "rolled_back"
        assert hot.app is served
        assert {module: reloader.current(module).number for module in (main, pricing)} == before
        assert sys.modules[main].PRICE == 100


@attrs.define
class Counter:
    """A step of no built-in kind: any object with target, problems() and apply()."""

    value: int = 0
    problem: str | None = None

    @property
    def target(self) -> str:
        return "counter"

    def problems(self, parts: object, path: str) -> list[tuple[str, str]]:
        return [] if self.problem is None else [(path, self.problem)]

    def apply(self, parts: object, reason: str) -> Callable[[], None]:
        self.value += 1

        def undo() -> None:
            self.value -= 1

        return undo


class TestOtherSteps:
    def test_an_object_following_the_step_protocol_runs_and_is_undone(self) -> None:
        """plan() checks its problems; it runs in order and is undone when a later step fails."""
        counter = Counter()
        deployment = Deployment("other-steps")
        assert deployment.run([counter]).steps[0].kind == "Counter"
        assert counter.value == 1

        def fail() -> None:
            raise RuntimeError("later step fails")

        error = failed(deployment, [counter, Migration("m", fail)])
        assert statuses(error) == ["undone", "failed"]
        assert counter.value == 1
        with pytest.raises(PackageError) as caught:
            deployment.plan([Counter(problem="not ready")])
        assert caught.value.problems == (("[0]", "not ready"),)

    def test_an_object_without_apply_is_not_a_step(self) -> None:
        """Something with a target and problems() but no apply() is refused at plan()."""

        @attrs.define
        class Half:
            target: str = "half"

            def problems(self, parts: object, path: str) -> list[tuple[str, str]]:
                return []

        with pytest.raises(PackageError, match=r"\[0\]: not a step"):
            Deployment("half-steps").plan([Half()])
