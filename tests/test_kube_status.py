"""The rules of ``kubectl rollout status`` for a Deployment, case by case, in kubectl's words."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from illunare._platforms.kubestatus import RolloutStatus, judge, revision_of

from .strategies import deployments


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    desired: int | None = 3,
    replicas: int = 3,
    updated: int = 3,
    available: int = 3,
    reason: str | None = None,
    revision: str | None = "4",
) -> dict[str, Any]:
    """A Deployment named web as the API returns it."""
    metadata: dict[str, Any] = {"name": "web", "generation": generation}
    if revision is not None:
        metadata["annotations"] = {"deployment.kubernetes.io/revision": revision}
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": updated,
        "availableReplicas": available,
    }
    if reason is not None:
        status["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "False", "reason": reason},
        ]
    spec = {} if desired is None else {"replicas": desired}
    return {"metadata": metadata, "spec": spec, "status": status}


WAITING = 'Waiting for deployment "web" rollout to finish: '

#: (case, deployment, done, failed, kubectl's message)
CASES = [
    (
        "spec change not observed",
        deployment(generation=3, observed=2),
        False,
        False,
        "Waiting for deployment spec update to be observed...",
    ),
    (
        "not observed wins over the deadline",
        deployment(generation=3, observed=2, reason="ProgressDeadlineExceeded"),
        False,
        False,
        "Waiting for deployment spec update to be observed...",
    ),
    (
        "deadline exceeded before the counts",
        deployment(updated=1, available=0, reason="ProgressDeadlineExceeded"),
        False,
        True,
        'deployment "web" exceeded its progress deadline',
    ),
    (
        "deadline exceeded even with every count reached",
        deployment(reason="ProgressDeadlineExceeded"),
        False,
        True,
        'deployment "web" exceeded its progress deadline',
    ),
    (
        "other Progressing reasons do not fail",
        deployment(updated=2, reason="ReplicaSetUpdated"),
        False,
        False,
        f"{WAITING}2 out of 3 new replicas have been updated...",
    ),
    (
        "updated below the desired replicas",
        deployment(replicas=4, updated=1, available=3),
        False,
        False,
        f"{WAITING}1 out of 3 new replicas have been updated...",
    ),
    (
        "old replicas pending termination",
        deployment(replicas=4, updated=3, available=3),
        False,
        False,
        f"{WAITING}1 old replicas are pending termination...",
    ),
    (
        "updated replicas not all available",
        deployment(available=2),
        False,
        False,
        f"{WAITING}2 of 3 updated replicas are available...",
    ),
    (
        "rolled out",
        deployment(),
        True,
        False,
        'deployment "web" successfully rolled out',
    ),
    (
        "observed generation ahead counts as observed",
        deployment(generation=2, observed=3),
        True,
        False,
        'deployment "web" successfully rolled out',
    ),
    (
        "no spec.replicas: the updated count is not compared",
        deployment(desired=None, replicas=0, updated=0, available=0),
        True,
        False,
        'deployment "web" successfully rolled out',
    ),
    (
        "scaled to zero",
        deployment(desired=0, replicas=0, updated=0, available=0),
        True,
        False,
        'deployment "web" successfully rolled out',
    ),
]


class TestRolloutStatusRules:
    @pytest.mark.parametrize(
        ("given_deployment", "done", "failed", "message"),
        [case[1:] for case in CASES],
        ids=[case[0] for case in CASES],
    )
    def test_each_rule_in_kubectls_order_and_words(
        self, given_deployment: dict[str, Any], done: bool, failed: bool, message: str
    ) -> None:
        """Each case is judged as kubectl rollout status judges it, with its message."""
        status = judge(given_deployment)
        assert (done, failed, message) == (status.done, status.failed, status.message)

    def test_counts_and_revision_are_reported(self) -> None:
        """The status carries the desired, updated and available counts and the revision."""
        status = judge(deployment(replicas=4, updated=2, available=3))
        assert (
            RolloutStatus(
                False,
                False,
                f"{WAITING}2 out of 3 new replicas have been updated...",
                4,
                3,
                2,
                3,
            )
            == status
        )

    def test_a_new_deployment_without_status_waits(self) -> None:
        """A Deployment the controller has not seen yet (no status) waits for it."""
        status = judge({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 2}})
        assert status.message == "Waiting for deployment spec update to be observed..."

    @pytest.mark.parametrize(("annotation", "expected"), [(None, 0), ("7", 7), ("x", 0)])
    def test_revision_annotation(self, annotation: str | None, expected: int) -> None:
        """The revision is the annotation's number; without one (or not a number) it is 0."""
        assert expected == revision_of(deployment(revision=annotation))

    @given(deployments())
    def test_done_exactly_when_kubectl_would_stop_successfully(
        self, given_deployment: dict[str, Any]
    ) -> None:
        """Done and failed never both hold; done means every count reached, nothing old left."""
        status = judge(given_deployment)
        state: Any = given_deployment["status"]
        observed = state["observedGeneration"] >= given_deployment["metadata"]["generation"]
        exceeded = "conditions" in state and (
            state["conditions"][0]["reason"] == "ProgressDeadlineExceeded"
        )
        counts = (
            state["updatedReplicas"] >= status.replicas
            and state["replicas"] <= state["updatedReplicas"]
            and state["availableReplicas"] >= state["updatedReplicas"]
        )
        assert not (status.done and status.failed)
        assert status.failed == (observed and exceeded)
        assert status.done == (observed and not exceeded and counts)
