"""``RolloutHandle``: what ``swap(rollout=...)`` and ``swap(shadow=...)`` return, and its report."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from illunare._monitor.monitor import PerformanceMonitor
from illunare._reload.versions import CodeVersion
from illunare.exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from illunare._rollout.controller import Controller

__all__ = ["RolloutHandle", "version_report"]

#: the latency figures a version's report gives (a MetricSummary's, without its window)
_LATENCY = ("count", "mean", "min", "max", "p50", "p95", "p99")


class RolloutHandle:
    """A running (or ended) rollout or shadow run of a module; made by ``HotReloader.swap``.

    ``status`` is ``"running"``, ``"paused"`` (an inconclusive step under
    ``on_inconclusive="pause"``), or, once it ended, ``"promoted"``,
    ``"rolled_back"`` or ``"failed"``. ``weight`` is the percent of calls on
    the new version now (0 for a shadow run, and after a rollback; 100 once
    promoted). Thread-safe: any thread may wait, promote, abort or read it.
    """

    __slots__ = ("_controller",)

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def __repr__(self) -> str:
        return f"<RolloutHandle {self.module} v{self.version.number} {self.status} {self.weight}%>"

    @property
    def module(self) -> str:
        """The module given to ``swap()``."""
        return self._controller.subject

    @property
    def modules(self) -> tuple[str, ...]:
        """Every module of the rollout's release: ``module``, and those rebuilt with it."""
        return tuple(self._controller.modules)

    @property
    def version(self) -> CodeVersion:
        """The new version (the candidate)."""
        return self._controller.version

    @property
    def previous(self) -> CodeVersion:
        """The version that served before the rollout (``current()`` while it runs)."""
        return self._controller.previous

    @property
    def status(self) -> str:
        """``"running"``, ``"paused"``, ``"promoted"``, ``"rolled_back"`` or ``"failed"``."""
        return self._controller.status

    @property
    def weight(self) -> int:
        """The percent of calls on the new version now."""
        return self._controller.weight

    def wait(self, timeout: float | None = None) -> str:
        """Block until the rollout ends; return its status (the status now at ``timeout``).

        ``"paused"`` is not an end: a paused rollout waits for ``promote()``
        or ``abort()``. When it returns an end, ``rollout_finished`` has been
        sent. ``math.inf`` waits as None does.

        Raises:
            InvalidArgumentError: ``timeout`` is not a number >= 0 or None.
            RolloutError: called by a receiver of the rollout's
                ``rollout_step`` (the rollout goes on once it returns).

        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
        ):
            raise InvalidArgumentError(f"timeout must be a number >= 0 or None, got {timeout!r}")
        return self._controller.wait(timeout)

    def promote(self) -> None:
        """Put every call on the new version now (no more steps, no bake); it becomes current.

        From ``"running"`` or ``"paused"``. Switches in the calling thread and
        returns once ``module_swapped`` and ``rollout_finished`` have been
        sent. On a rollout already promoted, nothing happens.

        Raises:
            RolloutError: the rollout already ended otherwise (``status`` says how).

        """
        self._controller.promote()

    def abort(self) -> None:
        """Put every call back on the old version now: status ``"rolled_back"``.

        Switches in the calling thread and returns once ``rollout_finished``
        has been sent. On a rollout already rolled back, nothing happens.

        Raises:
            RolloutError: the rollout already ended otherwise (``status`` says how).

        """
        self._controller.abort()

    def pin(self, key: object = None) -> AbstractContextManager[int]:
        """Run a block (a job, a message, a request) wholly on one version; yields its number.

        For work that is not a call of the module (a task queue's job, a
        gRPC handler): the version is chosen once, by ``key`` as a sticky
        key (the same key, the same version within a step) or else by the
        step's weighted draw, and every call of the module's functions and
        methods within the block, in this thread or task, runs that version.
        The block counts as one top-level call of that version (timed; an
        ``Exception`` leaving it is an error). Inside another pin (a block,
        a canary request) it keeps that version and counts nothing more.
        Once the rollout ended, the block runs the version serving then.
        """
        return self._controller.pin(key)

    def report(self) -> dict[str, object]:
        """What the rollout saw since ``swap()``, as plain data (``json.dumps`` takes it).

        ``{"module", "status", "weight", "versions": {number: {"role": "old" |
        "new", "calls", "errors", "error_rate", "latency": {"count", "mean",
        "min", "max", "p50", "p95", "p99"}}}, "steps": [{"weight", "calls",
        "errors", "verdict", "breaches", "started_at", "judged_at"}],
        "key_errors"}``; a shadow run adds ``"mismatches"``,
        ``"compare_errors"``, ``"dropped"`` and ``"mismatch_examples"``
        (the first few, as short ``repr`` strings). ``calls`` count the
        top-level calls each version served (for a shadow run, the new
        version's are its shadow runs); ``latency`` sums up the monitor's
        window of the version (``{}`` before any call was timed). A step's
        ``calls`` and ``errors`` are the new version's, which its ``verdict``
        judged (``None`` while it runs, then ``"healthy"``,
        ``"inconclusive"``, ``"breached"``, ``"promoted"`` or ``"aborted"``).
        """
        return report(self._controller)


def report(controller: Controller) -> dict[str, object]:
    """The report of ``controller``'s rollout (see ``RolloutHandle.report``)."""
    figures = controller.figures()
    monitor = controller.monitor
    versions = {}
    for side, role in enumerate(("old", "new")):
        info = (controller.previous, controller.version)[side]
        versions[info.number] = version_report(
            monitor, controller.ids[side], role, figures.calls[side], figures.errors[side]
        )
    made: dict[str, object] = {
        "module": controller.subject,
        "status": figures.status,
        "weight": figures.weight,
        "versions": versions,
        "steps": figures.steps,
        "key_errors": figures.key_errors,
    }
    if controller.reason is not None:
        made["reason"] = controller.reason
    shadow = controller.shadow
    if shadow is not None:
        made.update(shadow.figures())
    return made


def version_report(
    monitor: PerformanceMonitor, deployment_id: str, role: str, calls: int, errors: int
) -> dict[str, object]:
    """One version's part of a report: its counts since the swap and its latency window."""
    latency = monitor.metrics(deployment_id).get("latency")
    return {
        "role": role,
        "calls": calls,
        "errors": errors,
        "error_rate": errors / calls if calls else 0.0,
        "latency": {} if latency is None else {name: getattr(latency, name) for name in _LATENCY},
    }
