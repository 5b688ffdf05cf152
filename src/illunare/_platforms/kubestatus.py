"""The rules of ``kubectl rollout status`` for a Deployment, in its own words.

Pure: a judgement of one Deployment object (the API's JSON, as a mapping),
with no client and no waiting, so the rules are checked case by case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["REVISION", "TIMED_OUT", "UNOBSERVED", "RolloutStatus", "judge", "revision_of"]

#: the annotation holding a Deployment's (and its ReplicaSets') revision
REVISION = "deployment.kubernetes.io/revision"
#: the Progressing condition's reason once the progress deadline has passed
TIMED_OUT = "ProgressDeadlineExceeded"
#: kubectl's words while the spec change is not observed (the counts are the old template's)
UNOBSERVED = "Waiting for deployment spec update to be observed..."


@attrs.frozen
class RolloutStatus:
    """One judgement of a Deployment's rollout, with kubectl's rules and words.

    ``message`` is what ``kubectl rollout status`` prints (or its error,
    without kubectl's ``error:`` prefix). ``replicas`` is the desired count
    (``spec.replicas``); ``updated`` and ``available`` are the status's.
    """

    done: bool
    failed: bool
    message: str
    revision: int
    replicas: int
    updated: int
    available: int


def revision_of(obj: Mapping[str, Any]) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation of an object (0 without one)."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION, 0))
    except ValueError:  # as kubectl, a revision that is not a number counts as none
        return 0


def judge(deployment: Mapping[str, Any]) -> RolloutStatus:
    """Judge ``deployment`` (an apps/v1 Deployment as JSON) as ``kubectl rollout status`` does.

    In kubectl's order: the spec change must be observed
    (``metadata.generation <= status.observedGeneration``); then a Progressing
    condition with reason ProgressDeadlineExceeded fails the rollout, before
    any count is read; then the updated replicas must reach the desired ones,
    no old replica may remain, and every updated replica must be available.
    """
    metadata = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    name = metadata.get("name", "")
    # The API server defaults spec.replicas to 1; kubectl skips the check without one.
    desired = spec.get("replicas")
    replicas = status.get("replicas", 0)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)

    def result(message: str, *, done: bool = False, failed: bool = False) -> RolloutStatus:
        return RolloutStatus(
            done, failed, message, revision_of(deployment), desired or 0, updated, available
        )

    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if metadata.get("generation", 0) > status.get("observedGeneration", 0):
        return result(UNOBSERVED)
    conditions = status.get("conditions") or []
    if any(c.get("type") == "Progressing" and c.get("reason") == TIMED_OUT for c in conditions):
        return result(f'deployment "{name}" exceeded its progress deadline', failed=True)
    if desired is not None and updated < desired:
        return result(f"{waiting}{updated} out of {desired} new replicas have been updated...")
    if replicas > updated:
        return result(f"{waiting}{replicas - updated} old replicas are pending termination...")
    if available < updated:
        return result(f"{waiting}{available} of {updated} updated replicas are available...")
    return result(f'deployment "{name}" successfully rolled out', done=True)
