"""``Deployment``: a package of steps run in order, undone in reverse when anything fails."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
from blinker import NamedSignal

from illunare import signals
from illunare._arguments import optional
from illunare._deploy.gate import HealthGate, watch
from illunare._deploy.hotconfig import HotConfig
from illunare._deploy.plan import DeploymentPlan, make_plan
from illunare._deploy.results import DeploymentResult, StepResult
from illunare._deploy.steps import Parts, Undo
from illunare._flags.flags import FeatureFlags
from illunare._monitor.monitor import PerformanceMonitor
from illunare._reload.default import default_reloader
from illunare._reload.reloader import HotReloader
from illunare._services.registry import ServiceRegistry
from illunare.exceptions import (
    DeploymentError,
    DeploymentInProgressError,
    InvalidArgumentError,
)

__all__ = ["Deployment"]

# The services being deployed in this process, whichever Deployment object
# runs them: two deployments of one service would undo each other's steps.
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def _forget_running() -> None:
    # A forked child runs none of its parent's deployments (they run in the
    # parent's threads), and may have got the lock held by one of them.
    global _RUNNING_LOCK  # noqa: PLW0603  # replaced in the child only
    _RUNNING_LOCK = threading.Lock()
    _RUNNING.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_running)


@contextlib.contextmanager
def _exclusive(service: str) -> Iterator[None]:
    """Hold ``service`` for one deployment; DeploymentInProgressError if one holds it."""
    with _RUNNING_LOCK:
        if service in _RUNNING:
            raise DeploymentInProgressError(service)
        _RUNNING.add(service)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(service)


def _describe(error: BaseException) -> str:
    """``Kind: message`` for a result; never raises: an odd exception must not stop the undo."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001  # an exception whose __str__ fails is named by its kind
        message = "<str() failed>"
    return f"{type(error).__name__}: {message}"


class Deployment:
    """Ships updates to one service: modules, configuration, flags and migrations, all or nothing.

    ``plan()`` checks a whole package and compiles its code, running nothing;
    ``run()`` applies its steps in order, each recording how to undo itself.
    When a step fails, or the health gate sees the new version degrade, every
    completed step is undone in reverse order and ``DeploymentError`` is
    raised with the ``DeploymentResult``. One deployment of a service runs at
    a time in the whole process. Thread safe.

    Args:
        service: the service's name (also the health gate's default monitor id).
        reloader: swaps the modules (default: ``default_reloader()``).
        config: the HotConfig that ``ConfigUpdate`` steps update.
        flags: the FeatureFlags that ``FlagUpdate`` steps update (through its
            backend: a Redis-shared flag changes on every process).
        monitor: the PerformanceMonitor the health gate watches (default: the
            reloader's).
        health: watched after the last step; a breach rolls everything back.
        services: the ServiceRegistry that ``LoadService`` and ``UnloadService``
            steps load services into and unload them from.

    Raises:
        InvalidArgumentError: an argument of the wrong type; a health gate
            with no monitor to watch, or no thresholds to judge by.

    """

    def __init__(
        self,
        service: str,
        *,
        reloader: HotReloader | None = None,
        config: HotConfig | None = None,
        flags: FeatureFlags | None = None,
        monitor: PerformanceMonitor | None = None,
        health: HealthGate | None = None,
        services: ServiceRegistry | None = None,
    ) -> None:
        if not isinstance(service, str) or not service:
            raise InvalidArgumentError(f"service must be a non-empty str, got {service!r}")
        optional("reloader", reloader, HotReloader)
        optional("config", config, HotConfig)
        optional("flags", flags, FeatureFlags)
        optional("monitor", monitor, PerformanceMonitor)
        optional("health", health, HealthGate)
        optional("services", services, ServiceRegistry)
        self._service = service
        self._health = health
        self._reloader = reloader
        self._parts = Parts(self._reloader_in_use, config, flags, services)
        self._monitor = monitor
        self._lock = threading.Lock()
        self._history: list[DeploymentResult] = []
        if health is not None:
            watched = self._watched()
            if health.thresholds is None and watched.thresholds is None:
                raise InvalidArgumentError(
                    "the health gate has no thresholds to judge by, and neither has its monitor"
                )

    def __repr__(self) -> str:
        return f"<Deployment {self.service!r} deployments={len(self._history)}>"

    @property
    def service(self) -> str:
        """The service's name: one deployment of it runs at a time in the process."""
        return self._service

    @property
    def reloader(self) -> HotReloader:
        """The HotReloader that swaps the modules."""
        return self._reloader_in_use()

    @property
    def config(self) -> HotConfig | None:
        """The HotConfig that ``ConfigUpdate`` steps update, if any."""
        return self._parts.config

    @property
    def flags(self) -> FeatureFlags | None:
        """The FeatureFlags that ``FlagUpdate`` steps update, if any."""
        return self._parts.flags

    @property
    def services(self) -> ServiceRegistry | None:
        """The ServiceRegistry that ``LoadService`` and ``UnloadService`` steps change, if any."""
        return self._parts.services

    @property
    def health(self) -> HealthGate | None:
        """The health gate watched after the last step, if any."""
        return self._health

    def plan(self, package: object) -> DeploymentPlan:
        """Check the whole package and compile its code; run nothing.

        ``package`` is a mapping (``modules``: a list of ``{"name", "code"}``,
        ``rollout``: a ``Rollout``, or a mapping of its fields, that ships the
        modules as one gradual rollout, ``config``: values to merge,
        ``flags``: flag name -> config, ``migrations``: a list of
        ``Migration``) or a list of steps.

        Raises:
            PackageError: listing every problem with its path (code that does
                not compile, a module not tracked, an invalid flag config, a
                config update the config's validator refuses, merged in turn
                as ``run()`` will merge it, a config or flag update without
                ``config=`` or ``flags=``, a bad rollout field ...).
                Nothing ran; no history entry, no signal.

        """
        return make_plan(self.service, package, self._parts, self)

    def run(self, package_or_plan: object) -> DeploymentResult:
        """Apply the steps in order (modules, config, flags, migrations); return the result.

        A package's modules are one release: prepared together and switched
        in one flip (or shipped as one rollout, which must promote), each
        with its own StepResult. After the last step the
        health gate (if any) watches the monitor for ``bake`` seconds.

        Raises:
            PackageError: the package is invalid (see ``plan``); nothing ran.
            DeploymentError: a step or the health gate failed; its ``result``
                says what was undone (``rolled_back``), what could not be
                (``rollback_failed``), or that a point of no return stopped the
                undo (``halted``). The step's exception is the ``__cause__``.
                A ``KeyboardInterrupt`` or ``SystemExit`` raised by a step, by a
                receiver of ``deployment_started`` or of a step signal, or
                during the bake, is re-raised as it is, once the completed
                steps are undone (the result is in ``history()``); so is one
                raised by an undo, once the other undos ran.
            DeploymentInProgressError: a deployment of this service is running.
            InvalidArgumentError: a plan made by another Deployment.

        """
        if isinstance(package_or_plan, DeploymentPlan):
            if package_or_plan.owner is not self:
                raise InvalidArgumentError("a plan runs on the Deployment that made it")
            plan = package_or_plan
        else:
            plan = self.plan(package_or_plan)
        with _exclusive(self.service):
            return self._run(plan)

    def history(self) -> tuple[DeploymentResult, ...]:
        """The result of every run of this Deployment, oldest first."""
        with self._lock:
            return tuple(self._history)

    # Internals ------------------------------------------------------------------

    def _reloader_in_use(self) -> HotReloader:
        return self._reloader if self._reloader is not None else default_reloader()

    def _watched(self) -> PerformanceMonitor:
        """The monitor the health gate watches: this Deployment's, else the reloader's."""
        monitor = self._monitor if self._monitor is not None else self.reloader.monitor
        if monitor is None:
            raise InvalidArgumentError(
                "a health gate needs a PerformanceMonitor: pass monitor=, "
                "or give the reloader one (HotReloader(monitor=...))"
            )
        return monitor

    def _run(self, plan: DeploymentPlan) -> DeploymentResult:
        deployment_id = uuid.uuid4().hex
        reason = f"deployment {deployment_id} of {self.service}"
        started = time.time()
        steps = [StepResult(type(step).__name__, step.target, "not_run") for step in plan.steps]
        done: list[tuple[range, Undo | None]] = []
        failure: BaseException | None = None
        error: str | None = None
        try:
            self._send(
                signals.deployment_started, id=deployment_id, service=self.service, plan=plan
            )
            for indices, action in plan.stages():
                began = time.time()
                try:
                    undo = action.apply(self._parts, reason)
                except BaseException as raised:  # noqa: BLE001  # whatever a step raises, the rest is undone
                    failure = raised
                    error = f"{_name(steps, indices)} failed: {_describe(raised)}"
                    self._mark(deployment_id, steps, indices, began, raised)
                    break
                done.append((indices, undo))
                self._mark(deployment_id, steps, indices, began)
            else:
                try:
                    breach = self._bake()
                except BaseException as raised:  # noqa: BLE001  # an interrupted bake is no pass
                    failure = raised
                    error = f"health gate failed: {_describe(raised)}"
                else:
                    if breach is not None:
                        error = f"health gate breached: {breach}"
        except BaseException as raised:  # noqa: BLE001  # a receiver of a signal interrupted it
            failure = raised
            if error is None:
                error = f"deployment interrupted: {_describe(raised)}"
        status, interrupt = ("succeeded", None) if error is None else _undo(done, steps)
        result = DeploymentResult(
            deployment_id, self.service, status, tuple(steps), started, time.time(), error
        )
        with self._lock:
            self._history.append(result)
        terminal = {
            "succeeded": signals.deployment_succeeded,
            "rolled_back": signals.deployment_rolled_back,
        }.get(status, signals.deployment_failed)
        self._send(terminal, result=result)
        if status == "succeeded":
            return result
        if failure is not None and not isinstance(failure, Exception):
            raise failure
        if interrupt is not None:  # an undo was interrupted: the interrupt goes on
            raise interrupt
        raise DeploymentError(
            f"deployment {deployment_id} of {self.service} {status.replace('_', ' ')}: {error}",
            result,
        ) from failure

    def _mark(
        self,
        deployment_id: str,
        steps: list[StepResult],
        indices: range,
        began: float,
        raised: BaseException | None = None,
    ) -> None:
        """Record how the steps of ``indices`` went (``raised``: failed); send the step signal."""
        ended = time.time()
        status, error = ("succeeded", None) if raised is None else ("failed", _describe(raised))
        for index in indices:
            steps[index] = attrs.evolve(
                steps[index], status=status, error=error, started_at=began, finished_at=ended
            )
        for index in indices:
            if raised is None:
                self._send(
                    signals.step_succeeded,
                    id=deployment_id,
                    service=self.service,
                    step=steps[index],
                )
            else:
                self._send(
                    signals.step_failed,
                    id=deployment_id,
                    service=self.service,
                    step=steps[index],
                    error=raised,
                )

    def _bake(self) -> str | None:
        """Watch the monitor for the health gate's bake; the breach seen, or None."""
        if self.health is None:
            return None
        monitor = self._watched()
        deployment_id = self.health.deployment_id or self.service
        thresholds = self.health.thresholds
        if thresholds is None:
            thresholds = monitor.thresholds
        return watch(monitor, deployment_id, thresholds, self.health.bake)

    def _send(self, signal: NamedSignal, **kwargs: Any) -> None:
        if signal.receivers:
            signals._send(signal, self, **kwargs)


def _name(steps: list[StepResult], indices: range) -> str:
    """The failing stage, for messages: ``HotSwap app.a, app.b``."""
    return f"{steps[indices[0]].kind} " + ", ".join(steps[index].target for index in indices)


def _undo(
    done: list[tuple[range, Undo | None]], steps: list[StepResult]
) -> tuple[str, BaseException | None]:
    """Undo the completed stages in reverse, up to a point of no return.

    The final status, and the first interrupt (``KeyboardInterrupt``,
    ``SystemExit``) an undo raised, to re-raise once the result is recorded:
    an undo that fails, even so, does not stop the others.
    """
    failed = False
    interrupt: BaseException | None = None
    for indices, undo in reversed(done):
        if undo is None:  # a point of no return: it and what came before stay applied
            return ("rollback_failed" if failed else "halted"), interrupt
        try:
            undo()
        except BaseException as error:  # noqa: BLE001  # recorded; the other undos go on
            failed = True
            if interrupt is None and not isinstance(error, Exception):
                interrupt = error
            for index in indices:
                steps[index] = attrs.evolve(
                    steps[index], status="undo_failed", error=_describe(error)
                )
        else:
            for index in indices:
                steps[index] = attrs.evolve(steps[index], status="undone")
    return ("rollback_failed" if failed else "rolled_back"), interrupt
