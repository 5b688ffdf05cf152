"""HealthGate: a bake watching the monitor after the last step, with real calls in real threads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from illunare import (
    Deployment,
    DeploymentError,
    HealthGate,
    HotReloader,
    HotSwap,
    Migration,
    PerformanceMonitor,
    Thresholds,
    signals,
)

from .conftest import CTRL_C, Package
from .service import outcome

STRICT = Thresholds(max_error_rate=0.05)
HANDLER_V1 = "def handle(n):\n    return 'v1'\n"
# The new code raises on one request in five.
HANDLER_V2_BAD = (
    "def handle(n):\n"
    "    if n % 5 == 0:\n"
    "        raise RuntimeError('v2 fails one request in five')\n"
    "    return 'v2'\n"
)
HANDLER_V2_GOOD = "def handle(n):\n    return 'v2'\n"


@contextmanager
def background(action: Callable[[int], None], threads: int = 1) -> Iterator[None]:
    """Threads calling ``action(n)`` (n counting up) until the block ends."""
    stop = threading.Event()

    def loop(first: int) -> None:
        n = first
        while not stop.is_set():
            action(n)
            n += threads

    workers = [threading.Thread(target=loop, args=(first,)) for first in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join()


class Requests:
    """Requests through a hot module, measured by the monitor; outcomes counted per answer."""

    def __init__(self, monitor: PerformanceMonitor, module: str) -> None:
        self.handle = sys.modules[module].handle  # a reference taken once, as an app holds it
        self.monitor = monitor
        self.answers: dict[str, int] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        try:
            with self.monitor.measure("checkout"):
                answer = self.handle(n)
        except RuntimeError as error:
            with self.lock:
                self.errors.append(str(error))
        else:
            with self.lock:
                self.answers[answer] = self.answers.get(answer, 0) + 1


@pytest.fixture
def handler(package: Package, reloader: HotReloader) -> str:
    package.module("handler", HANDLER_V1)
    reloader.track(package.qualified("handler"))
    return package.qualified("handler")


class TestHealthGate:
    def test_new_code_failing_during_the_bake_is_rolled_back(
        self, handler: str, reloader: HotReloader
    ) -> None:
        """4 threads of requests; v2 raises on 20 %: the gate breaches and v1 serves again."""
        monitor = PerformanceMonitor()
        deployment = Deployment(
            "checkout", reloader=reloader, monitor=monitor,
            health=HealthGate(bake=20.0, thresholds=STRICT),
        )  # fmt: skip
        requests = Requests(monitor, handler)
        with background(requests, threads=4), pytest.raises(DeploymentError) as caught:
            deployment.run([HotSwap(handler, HANDLER_V2_BAD)])
        result = caught.value.result
        assert result is not None
        assert result.status == "rolled_back"
        assert [step.status for step in result.steps] == ["undone"]
        assert "error_rate" in (result.error or "")
        assert requests.errors
        assert set(requests.errors) == {"v2 fails one request in five"}
        assert reloader.current(handler).number == 1
        assert [requests.handle(n) for n in range(10)] == ["v1"] * 10

    def test_healthy_new_code_passes_the_bake(self, handler: str, reloader: HotReloader) -> None:
        """Good new code under real requests: succeeded after the bake, v2 serving."""
        monitor = PerformanceMonitor()
        deployment = Deployment(
            "checkout", reloader=reloader, monitor=monitor,
            health=HealthGate(bake=0.3, thresholds=STRICT),
        )  # fmt: skip
        requests = Requests(monitor, handler)
        with background(requests, threads=2):
            result = deployment.run([HotSwap(handler, HANDLER_V2_GOOD)])
            counted = monitor.metrics("checkout")["error_rate"].count
        assert result.status == "succeeded"
        assert requests.errors == []
        assert counted > 0
        assert requests.handle(0) == "v2"

    def test_only_values_recorded_during_the_bake_are_judged(self, reloader: HotReloader) -> None:
        """Errors recorded before the run do not fail it; no values during the bake is healthy."""
        monitor = PerformanceMonitor(thresholds=STRICT)
        for _ in range(50):
            monitor.record("checkout", "error_rate", 1.0)
        tables: list[str] = []
        deployment = Deployment(
            "checkout", reloader=reloader, monitor=monitor, health=HealthGate(bake=0.05)
        )
        result = deployment.run([Migration("orders", lambda: tables.append("orders"))])
        assert result.status == "succeeded"
        assert not monitor.health("checkout").healthy  # the monitor's own verdict: the window

    def test_values_after_the_id_is_stopped_and_restarted_are_judged(
        self, reloader: HotReloader
    ) -> None:
        """A stop() during the bake restarts the counts: the errors after it still breach."""
        monitor = PerformanceMonitor()
        for _ in range(50):
            monitor.record("pay", "error_rate", 0.0)
        deployment = Deployment(
            "pay", reloader=reloader, monitor=monitor,
            health=HealthGate(bake=20.0, thresholds=STRICT),
        )  # fmt: skip
        baking = threading.Event()

        def restart_and_fail() -> None:
            baking.wait()
            time.sleep(0.5)  # the bake has taken its mark by now
            monitor.stop("pay")
            for _ in range(10):
                monitor.record("pay", "error_rate", 1.0)

        worker = threading.Thread(target=restart_and_fail)
        worker.start()
        with signals.step_succeeded.connected_to(lambda sender, **kwargs: baking.set()):
            result = outcome(deployment, [Migration("noop", lambda: None, lambda: None)])
        worker.join()
        assert result.status == "rolled_back"
        assert "error_rate" in (result.error or "")

    def test_the_reloaders_monitor_and_thresholds_are_the_default(self) -> None:
        """No monitor= and no gate thresholds: the reloader's monitor judges with its own."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_latency=0.1))
        reloader = HotReloader(monitor=monitor)
        tables: set[str] = set()
        deployment = Deployment(
            "search",
            reloader=reloader,
            health=HealthGate(bake=20.0),
        )
        migration = Migration("index", lambda: tables.add("index"), lambda: tables.discard("index"))
        with (
            background(lambda n: monitor.record("search", "latency", 0.5)),
            pytest.raises(DeploymentError) as caught,
        ):
            deployment.run([migration])
        assert caught.value.result is not None
        assert caught.value.result.status == "rolled_back"
        assert "latency" in (caught.value.result.error or "")
        assert tables == set()

    @pytest.mark.parametrize(("gate", "status"), [(STRICT, "rolled_back"), (None, "succeeded")])
    def test_the_gates_thresholds_win_over_the_monitors(
        self, reloader: HotReloader, gate: Thresholds | None, status: str
    ) -> None:
        """A 50 % error rate breaches the gate's 5 %, not the monitor's 90 %."""
        monitor = PerformanceMonitor(thresholds=Thresholds(max_error_rate=0.9))
        deployment = Deployment(
            "pay", reloader=reloader, monitor=monitor,
            health=HealthGate(bake=0.3, thresholds=gate),
        )  # fmt: skip
        with background(lambda n: monitor.record("pay", "error_rate", float(n % 2))):
            result = outcome(deployment, [Migration("noop", lambda: None, lambda: None)])
        assert result.status == status

    def test_the_gate_watches_its_deployment_id(self, reloader: HotReloader) -> None:
        """HealthGate(deployment_id=...) judges that id's values, not the service's."""
        monitor = PerformanceMonitor()
        deployment = Deployment(
            "pay", reloader=reloader, monitor=monitor,
            health=HealthGate(deployment_id="pay-canary", bake=20.0, thresholds=STRICT),
        )  # fmt: skip
        with (
            background(lambda n: monitor.record("pay", "error_rate", 0.0)),
            background(lambda n: monitor.record("pay-canary", "error_rate", 1.0)),
            pytest.raises(DeploymentError),
        ):
            deployment.run([Migration("noop", lambda: None, lambda: None)])

    def test_a_breach_after_a_point_of_no_return_halts(self, reloader: HotReloader) -> None:
        """The gate's rollback stops at an irreversible migration: halted."""
        monitor = PerformanceMonitor()
        tables: set[str] = set()
        deployment = Deployment(
            "pay", reloader=reloader, monitor=monitor,
            health=HealthGate(bake=20.0, thresholds=STRICT),
        )  # fmt: skip
        steps = [
            Migration("a", lambda: tables.add("a")),
            Migration("b", lambda: tables.add("b"), lambda: tables.discard("b")),
        ]
        with (
            background(lambda n: monitor.record("pay", "error_rate", 1.0)),
            pytest.raises(DeploymentError) as caught,
        ):
            deployment.run(steps)
        assert caught.value.result is not None
        assert caught.value.result.status == "halted"
        assert tables == {"a"}


INTERRUPTED_BAKE = (
    CTRL_C
    + """
from illunare import Deployment, HealthGate, HotReloader, Migration, PerformanceMonitor, Thresholds

tables = set()
deployment = Deployment(
    "pay", reloader=HotReloader(), monitor=PerformanceMonitor(),
    health=HealthGate(bake=30.0, thresholds=Thresholds(max_error_rate=0.05)),
)
ctrl_c_in("_bake")
try:
    deployment.run([Migration("a", lambda: tables.add("a"), lambda: tables.discard("a"))])
except KeyboardInterrupt:
    result = deployment.history()[0]
    print(result.status, sorted(tables), result.error)
"""
)


class TestInterruptedBake:
    def test_an_interrupted_bake_undoes_the_deployment(self) -> None:
        """Ctrl-C during the bake: every step is undone, then the interrupt goes on."""
        done = subprocess.run(
            [sys.executable, "-c", INTERRUPTED_BAKE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "rolled_back [] health gate failed: KeyboardInterrupt: \n"
