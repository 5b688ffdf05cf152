"""What a deployment hands back: the result of each step and of the whole run.

Plain values only (str, float, None, tuples), so that ``attrs.asdict(result)``
is JSON-serialisable: an audit trail to ship to a log store.
"""

from __future__ import annotations

import attrs

__all__ = ["DeploymentResult", "StepResult"]


@attrs.frozen
class StepResult:
    """How one step went.

    ``kind`` is the step's class name (``"HotSwap"``, ``"HotRollout"``,
    ``"ConfigUpdate"``, ``"FlagUpdate"``, ``"Migration"``), ``target`` what
    it changed (a module, the modules of a rollout, the config keys, a flag,
    a migration's name). ``status`` is
    ``"succeeded"``, ``"failed"``, ``"undone"``, ``"undo_failed"`` or
    ``"not_run"``; ``error`` says what failed (the step, or its undo), else
    None. The times (``time.time()``) are those of applying the step; None
    for a step not run.
    """

    kind: str
    target: str
    status: str
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@attrs.frozen
class DeploymentResult:
    """How a deployment went.

    ``status`` is ``"succeeded"``, ``"rolled_back"`` (a step or the health
    gate failed and every completed step was undone), ``"rollback_failed"``
    (an undo failed: the steps whose status is ``"undo_failed"`` are still
    applied) or ``"halted"`` (a failure after a point of no return: the steps
    after it were undone, it and those before it stay applied). ``error``
    says what made the deployment fail (None when it succeeded).
    """

    id: str
    service: str
    status: str
    steps: tuple[StepResult, ...]
    started_at: float
    finished_at: float
    error: str | None = None
