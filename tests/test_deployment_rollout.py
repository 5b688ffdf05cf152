"""Deployments shipping modules as a gradual rollout: HotRollout, and a package's "rollout"."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from illunare import (
    ConfigUpdate,
    Deployment,
    DeploymentError,
    HotReloader,
    HotRollout,
    HotSwap,
    InvalidArgumentError,
    Migration,
    PackageError,
    Rollout,
    RolloutError,
    signals,
)

from .conftest import Package, priced_app
from .service import Service, module_code, outcome
from .strategies import ROLLOUT_PARTS

#: a rollout no test waits on: judged only after an hour
LONG = Rollout(steps=(10, 100), bake=3600)
#: promotes with no call to judge: each step healthy after a short bake
QUICK = Rollout(steps=(50, 100), bake=0.02, min_samples=0)

#: fails at its first step when nothing calls the new code
FAILS_IF_INCONCLUSIVE = Rollout(bake=0.02, on_inconclusive="fail")

FAILING_CODE = "def tag():\n    raise RuntimeError('the new code fails')\n"


FIXTURE = HealthCheck.function_scoped_fixture


# A deployment interrupted by Ctrl-C (SIGINT) while it waits for its rollout:
# running (argv[2] "running"), or just promoted from another thread ("promoted").
INTERRUPTED = """
import os, signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even where the parent ignores it
sys.path.insert(0, sys.argv[1])
with open(os.path.join(sys.argv[1], "canary_mod.py"), "w") as file:
    file.write("def tag():\\n    return 1\\n")
from illunare import ConfigUpdate, Deployment, HotConfig, HotReloader, HotRollout, Rollout, signals
import canary_mod

reloader = HotReloader()
reloader.track("canary_mod")
config = HotConfig({"pool": 1})
deployment = Deployment("canary", reloader=reloader, config=config)
handles = []
main = threading.main_thread().ident

def waiting():
    # The main thread is in the handle's wait(), no longer in swap().
    frame = sys._current_frames().get(main)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_locals.get("self") is handles[0]:
            return True
        frame = frame.f_back
    return False

def interrupt():
    while not waiting():
        time.sleep(0.001)
    if sys.argv[2] == "promoted":
        handles[0].promote()
    else:
        # At the main thread, in wait(). A signal that comes just before it
        # blocks is only handled at the next one: sent again if still waiting.
        while waiting():
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.5)

def started(sender, *, handle, **kwargs):
    handles.append(handle)
    threading.Thread(target=interrupt).start()

def promoted(sender, *, status, **kwargs):
    # Promoted, and wait() not yet returned (it returns once this receiver did).
    if status == "promoted":
        signal.pthread_kill(main, signal.SIGINT)  # at the main thread, blocked in wait()
        time.sleep(0.5)

signals.rollout_step.connect(started)
signals.rollout_finished.connect(promoted)
try:
    deployment.run([
        ConfigUpdate({"pool": 2}),
        HotRollout({"canary_mod": "def tag():\\n    return 2\\n"}, Rollout(bake=3600)),
    ])
except KeyboardInterrupt:
    result = deployment.history()[-1]
    print(handles[0].status, result.status, [step.status for step in result.steps],
          config["pool"], canary_mod.tag(), reloader.current("canary_mod").number)
"""


@pytest.fixture
def service(package: Package, reloader: HotReloader) -> Service:
    return Service(package, reloader)


class Calls:
    """Threads calling ``tag()`` of ``modules`` through the module until stopped; what they got."""

    def __init__(self, service: Service, *modules: str) -> None:
        self.results: set[str] = set()
        self.errors = 0
        self._service = service
        self._modules = modules
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(2)]

    def __enter__(self) -> Calls:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _call(self, module: str) -> str | None:
        try:
            return self._service.tag(module)
        except RuntimeError:
            return None

    def _run(self) -> None:
        results: set[str] = set()
        errors = 0
        while not self._stop.is_set():
            for module in self._modules:
                result = self._call(module)
                if result is None:
                    errors += 1
                else:
                    results.add(result)
        with self._lock:
            self.results |= results
            self.errors += errors


@pytest.fixture
def finished() -> Iterator[list[dict[str, Any]]]:
    """The kwargs of every rollout_finished sent during the test."""
    seen: list[dict[str, Any]] = []

    def receive(sender: object, **kwargs: Any) -> None:
        seen.append(kwargs)

    with signals.rollout_finished.connected_to(receive):
        yield seen


def versions(service: Service) -> dict[str, int]:
    return {module: service.reloader.current(module).number for module in service.modules}


def on_step(action: Callable[[Any], object]) -> Callable[..., None]:
    """A rollout_step receiver calling ``action(handle)`` once, from a thread of its own."""
    called = threading.Event()

    def receive(sender: object, *, handle: Any, **kwargs: Any) -> None:
        if not called.is_set():
            called.set()
            threading.Thread(target=action, args=(handle,)).start()

    return receive


class TestHotRolloutStep:
    def test_a_promoted_rollout_completes_the_step(self, service: Service) -> None:
        """Both modules are split, judged and promoted as one release; the step succeeds."""
        new = {service.alpha: module_code("alpha-2"), service.beta: module_code("beta-2")}
        with Calls(service, service.alpha, service.beta) as calls:
            result = service.deployment.run(
                [HotRollout(new, rollout=Rollout(steps=(50, 100), bake=0.2))]
            )
        assert result.status == "succeeded"
        assert [(step.kind, step.target, step.status) for step in result.steps] == [
            ("HotRollout", f"{service.alpha}, {service.beta}", "succeeded")
        ]
        assert calls.results == {"alpha-1", "alpha-2", "beta-1", "beta-2"}
        assert calls.errors == 0
        assert versions(service) == {service.alpha: 2, service.beta: 2}
        assert service.tag(service.alpha) == "alpha-2"

    def test_the_step_waits_for_the_rollout_to_end(
        self, service: Service, finished: list[dict[str, Any]]
    ) -> None:
        """run() returns only after rollout_finished: the candidate is current then."""
        result = service.deployment.run([HotRollout({service.alpha: module_code("a2")}, QUICK)])
        assert result.status == "succeeded"
        assert [(event["module"], event["status"]) for event in finished] == [
            (service.alpha, "promoted")
        ]
        assert finished[0]["report"]["steps"][0]["weight"] == 50

    def test_the_undo_rolls_back_a_promoted_rollout(self, service: Service) -> None:
        """A later step fails: the promoted modules go back to the versions before the step."""
        before = service.state()
        new = {service.alpha: module_code("alpha-2"), service.beta: module_code("beta-2")}
        result = outcome(
            service.deployment,
            [HotRollout(new, QUICK), service.migration("orders", fails=True)],
        )
        assert result.status == "rolled_back"
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert service.state() == before

    def test_the_undo_rolls_back_a_rollout_promoted_by_hand(self, service: Service) -> None:
        """promote() from another thread: the step succeeds, and its undo still rolls back."""
        before = service.state()
        with signals.rollout_step.connected_to(on_step(lambda handle: handle.promote())):
            result = outcome(
                service.deployment,
                [
                    HotRollout({service.alpha: module_code("alpha-2")}, LONG),
                    service.migration("orders", fails=True),
                ],
            )
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert service.state() == before

    def test_a_breach_fails_the_step_and_undoes_the_earlier_ones(self, service: Service) -> None:
        """Rolled back: the step fails, naming its weight and breach; the config is undone."""
        before = service.state()
        with Calls(service, service.alpha) as calls:
            result = outcome(
                service.deployment,
                [
                    ConfigUpdate({"pool": 9}),
                    HotRollout({service.alpha: FAILING_CODE}, Rollout(bake=0.2)),
                    service.migration("orders"),
                ],
            )
        assert result.status == "rolled_back"
        assert [step.status for step in result.steps] == ["undone", "failed", "not_run"]
        assert result.steps[1].error is not None
        # Nearly 1: a call that started in the step and raised after its end counts in the next.
        breach = re.fullmatch(
            r"RolloutError: rollout rolled back at 10%: error_rate ([\d.]+) > max_error_rate 0\.01",
            result.steps[1].error,
        )
        assert breach is not None, result.steps[1].error
        assert float(breach[1]) > 0.5
        assert result.error == f"HotRollout {service.alpha} failed: {result.steps[1].error}"
        assert calls.errors > 0
        assert service.state() == before
        assert [v.number for v in service.reloader.history(service.alpha)] == [1, 2]

    def test_the_step_fails_with_a_rollout_error(self, service: Service) -> None:
        """The DeploymentError's cause is the RolloutError: module and status named."""
        with pytest.raises(DeploymentError) as caught:
            service.deployment.run(
                [HotRollout({service.alpha: module_code("a2")}, FAILS_IF_INCONCLUSIVE)]
            )
        cause = caught.value.__cause__
        assert isinstance(cause, RolloutError)
        assert (cause.module, cause.status) == (service.alpha, "failed")
        assert str(cause) == (
            "rollout failed at 10%: inconclusive: 0 calls of the new version, min_samples 20"
        )
        assert service.reloader.current(service.alpha).number == 1

    def test_an_abort_fails_the_step(self, service: Service) -> None:
        """abort() from another thread: the step fails, "aborted"."""
        with signals.rollout_step.connected_to(on_step(lambda handle: handle.abort())):
            result = outcome(
                service.deployment, [HotRollout({service.alpha: module_code("a2")}, LONG)]
            )
        assert result.status == "rolled_back"
        assert result.steps[0].error == "RolloutError: rollout rolled back at 10%: aborted"
        assert service.tag(service.alpha) == "alpha-1"

    def test_a_first_step_of_100_is_a_swap_undone_like_any(self, service: Service) -> None:
        """steps=(100,): promoted at once, in the deployment's thread; the undo rolls it back."""
        before = service.state()
        result = outcome(
            service.deployment,
            [
                HotRollout({service.alpha: module_code("alpha-2")}, Rollout(steps=(100,))),
                service.migration("orders", fails=True),
            ],
        )
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert service.state() == before

    def test_the_undo_rolls_back_a_hot_app_rebuilt_by_the_canary(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A canary of a hot app's module: the undo also rolls back the app module it rebuilt."""
        hot, main, pricing = priced_app(package, reloader)
        served = hot.app
        before = {module: reloader.current(module).number for module in (main, pricing)}
        canary = HotRollout({pricing: "def price_of(item):\n    return 90\n"}, QUICK)

        def check_then_fail() -> None:
            assert sys.modules[main].PRICE == 90
            raise RuntimeError("the migration fails")

        result = outcome(
            Deployment("web", reloader=reloader), [canary, Migration("x", check_then_fail)]
        )
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert result.steps[1].error == "RuntimeError: the migration fails"
        assert hot.app is served
        assert {module: reloader.current(module).number for module in (main, pricing)} == before
        assert sys.modules[main].PRICE == 100

    def test_the_undo_refuses_a_module_swapped_since(self, service: Service) -> None:
        """Swapped again after the step: the undo leaves it and says so (rollback_failed)."""

        def swap_then_fail() -> None:
            service.reloader.swap(service.alpha, module_code("alpha-3"))
            raise RuntimeError("the migration fails")

        result = outcome(
            service.deployment,
            [
                HotRollout({service.alpha: module_code("alpha-2")}, QUICK),
                Migration("swap, then fail", swap_then_fail),
            ],
        )
        assert result.status == "rollback_failed"
        assert result.steps[0].status == "undo_failed"
        assert result.steps[0].error == (
            f"RollbackError: swapped again since the deployment, left as they are: "
            f"{service.alpha} (now v3, the deployment made v2)"
        )
        assert service.tag(service.alpha) == "alpha-3"

    def test_identical_code_makes_no_version_and_nothing_to_undo(self, service: Service) -> None:
        """The running code: the rollout is promoted at once, and the undo has nothing to do."""
        result = outcome(
            service.deployment,
            [
                HotRollout({service.alpha: module_code("alpha-1")}, LONG),
                service.migration("orders", fails=True),
            ],
        )
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert [v.number for v in service.reloader.history(service.alpha)] == [1]

    def test_a_module_under_rollout_fails_a_deployment(self, service: Service) -> None:
        """A deployment swapping a module another rollout holds fails at that step."""
        handle = service.reloader.swap(service.alpha, module_code("alpha-2"), rollout=LONG)
        try:
            result = outcome(
                service.deployment,
                [ConfigUpdate({"pool": 9}), HotSwap(service.alpha, module_code("alpha-3"))],
            )
        finally:
            handle.abort()
        assert [step.status for step in result.steps] == ["undone", "failed"]
        assert result.steps[1].error is not None
        assert result.steps[1].error.startswith("RolloutError: ")

    @pytest.mark.parametrize(
        ("when", "handle_status"), [("running", "rolled_back"), ("promoted", "promoted")]
    )
    def test_a_keyboard_interrupt_in_the_wait_undoes_the_rollout(
        self, tmp_path: Path, when: str, handle_status: str
    ) -> None:
        """Ctrl-C in the wait: the rollout aborted (or its promotion undone); then the interrupt."""
        done = subprocess.run(
            [sys.executable, "-c", INTERRUPTED, str(tmp_path), when],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout.split("\n")[0] == f"{handle_status} rolled_back ['undone', 'failed'] 1 1 1"
        )


class TestHotRolloutValues:
    def test_a_step_is_a_frozen_read_only_value(self, service: Service) -> None:
        """The modules are copied into a read-only mapping; the default rollout is Rollout()."""
        given = {service.alpha: "X = 1\n"}
        step = HotRollout(given)
        given[service.alpha] = "X = 2\n"
        assert dict(step.modules) == {service.alpha: "X = 1\n"}
        assert step.rollout == Rollout()
        with pytest.raises(TypeError):
            step.modules[service.alpha] = "X = 3\n"  # type: ignore[index]

    @pytest.mark.parametrize(
        ("modules", "rollout"),
        [
            ({}, Rollout()),
            ("m", Rollout()),
            ({"": "X = 1\n"}, Rollout()),
            ({3: "X = 1\n"}, Rollout()),
            ({"m": b"X = 1\n"}, Rollout()),
            ({"m": "X = 1\n"}, {"steps": [10, 100]}),
            ({"m": "X = 1\n"}, None),
        ],
    )
    def test_bad_values_are_refused_at_construction(self, modules: object, rollout: object) -> None:
        """Not a non-empty mapping of names to code, or not a Rollout: InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError):
            HotRollout(modules, rollout)  # type: ignore[arg-type]

    def test_plan_checks_every_module(self, service: Service) -> None:
        """An untracked module and code that does not compile: listed with their paths."""
        with pytest.raises(PackageError) as caught:
            service.deployment.plan(
                [
                    ConfigUpdate({"pool": 9}),
                    HotRollout({"not.tracked": "X = 1\n", service.alpha: "def f(:\n"}),
                ]
            )
        assert [path for path, _ in caught.value.problems] == [
            '[1].modules["not.tracked"]',
            f'[1].modules["{service.alpha}"]',
        ]


class TestRolloutPart:
    def test_the_modules_are_shipped_as_one_rollout(
        self, service: Service, finished: list[dict[str, Any]]
    ) -> None:
        """A "rollout" mapping: the modules are one rollout; one HotSwap result each."""
        result = service.deployment.run(
            {
                "modules": [
                    {"name": service.alpha, "code": module_code("alpha-2")},
                    {"name": service.beta, "code": module_code("beta-2")},
                ],
                "rollout": {"steps": [50, 100], "bake": 0.02, "min_samples": 0},
                "config": {"pool": 9},
            }
        )
        assert [(step.kind, step.status) for step in result.steps] == [
            ("HotSwap", "succeeded"),
            ("HotSwap", "succeeded"),
            ("ConfigUpdate", "succeeded"),
        ]
        assert [(event["module"], event["status"]) for event in finished] == [
            (service.alpha, "promoted")
        ]
        assert versions(service) == {service.alpha: 2, service.beta: 2}

    def test_a_rollout_value_is_taken_as_it_is(self, service: Service) -> None:
        """A Rollout object in the package, thresholds and all."""
        plan = service.deployment.plan(
            {"modules": [{"name": service.alpha, "code": "X = 1\n"}], "rollout": QUICK}
        )
        assert plan.rollout is QUICK

    def test_the_fields_make_the_rollout(self, service: Service) -> None:
        """Each field given, thresholds included; the others keep their defaults."""
        plan = service.deployment.plan(
            {
                "modules": [{"name": service.alpha, "code": "X = 1\n"}],
                "rollout": {
                    "steps": [5, 25, 50],
                    "bake": 60,
                    "on_inconclusive": "pause",
                    "thresholds": {"max_error_rate": 0.02, "max_latency": 0.25},
                },
            }
        )
        assert plan.rollout is not None
        assert (plan.rollout.steps, plan.rollout.bake, plan.rollout.min_samples) == (
            (5, 25, 50),
            60,
            20,
        )
        assert plan.rollout.on_inconclusive == "pause"
        assert (
            plan.rollout.thresholds.max_error_rate,
            plan.rollout.thresholds.max_latency,
        ) == (0.02, 0.25)

    def test_a_breach_undoes_the_package(self, service: Service) -> None:
        """The package's rollout rolled back: the modules' steps fail, nothing else runs."""
        before = service.state()
        with Calls(service, service.alpha):
            result = outcome(
                service.deployment,
                {
                    "modules": [
                        {"name": service.alpha, "code": FAILING_CODE},
                        {"name": service.beta, "code": module_code("beta-2")},
                    ],
                    "rollout": {"bake": 0.2},
                    "config": {"pool": 9},
                },
            )
        assert [step.status for step in result.steps] == ["failed", "failed", "not_run"]
        assert result.error is not None
        assert result.error.startswith(
            f"HotSwap {service.alpha}, {service.beta} failed: "
            "RolloutError: rollout rolled back at 10%: error_rate "
        )
        assert service.state() == before

    @pytest.mark.parametrize(
        ("rollout", "paths"),
        [
            ({"steps": [50, 10]}, ["rollout.steps"]),
            ({"steps": "10"}, ["rollout.steps"]),
            ({"steps": [], "bake": -1}, ["rollout.steps", "rollout.bake"]),
            ({"bake": None}, ["rollout.bake"]),
            ({"min_samples": 2.5}, ["rollout.min_samples"]),
            ({"on_inconclusive": "wait"}, ["rollout.on_inconclusive"]),
            ({"thresholds": [0.1]}, ["rollout.thresholds"]),
            (
                {"thresholds": {"max_error_rate": 2, "max_latency": -1, "p99": 1}},
                [
                    "rollout.thresholds.max_error_rate",
                    "rollout.thresholds.max_latency",
                    "rollout.thresholds.p99",
                ],
            ),
            ({"sticky": "x-user"}, ["rollout.sticky"]),
            ({"stpes": [10]}, ["rollout.stpes"]),
            (7, ["rollout"]),
            (None, ["rollout"]),
        ],
    )
    def test_bad_fields_are_package_problems(
        self, service: Service, rollout: object, paths: list[str]
    ) -> None:
        """Each bad field of the rollout is a problem at its path; nothing runs."""
        before = service.state()
        with pytest.raises(PackageError) as caught:
            service.deployment.run(
                {"modules": [{"name": service.alpha, "code": "X = 1\n"}], "rollout": rollout}
            )
        assert [path for path, _ in caught.value.problems] == paths
        assert service.state() == before
        assert service.deployment.history() == ()

    @pytest.mark.parametrize("modules", [None, []])
    def test_a_rollout_needs_modules(self, service: Service, modules: object) -> None:
        """A rollout part without modules to ship is a problem."""
        package: dict[str, object] = {"rollout": {"bake": 1}, "config": {"pool": 9}}
        if modules is not None:
            package["modules"] = modules
        with pytest.raises(PackageError) as caught:
            service.deployment.plan(package)
        assert [path for path, _ in caught.value.problems] == ["rollout"]

    @settings(max_examples=150, deadline=None, suppress_health_check=[FIXTURE])
    @given(rollout=ROLLOUT_PARTS)
    def test_any_json_rollout_plans_or_lists_its_problems(
        self, service: Service, rollout: object
    ) -> None:
        """Whatever JSON comes as the rollout: a plan, or PackageError with paths in "rollout"."""
        package = {"modules": [{"name": service.alpha, "code": "X = 1\n"}], "rollout": rollout}
        problems: tuple[tuple[str, str], ...] = ()
        try:
            plan = service.deployment.plan(package)
        except PackageError as error:
            problems = error.problems
        else:
            assert isinstance(plan.rollout, Rollout)
            return
        assert problems
        assert all(path.startswith("rollout") for path, _ in problems)
        assert json.loads(json.dumps(problems))
