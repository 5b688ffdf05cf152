"""KubernetesDeployer and the KubernetesRollout step, on the official client, against the fake."""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from illunare import (
    Deployment,
    DeploymentError,
    HealthGate,
    HotReloader,
    HotSwap,
    InvalidArgumentError,
    KubernetesRolloutError,
    Migration,
    PackageError,
    PerformanceMonitor,
    PlatformError,
    Thresholds,
    signals,
)
from illunare._platforms.kubestatus import UNOBSERVED, judge
from illunare.kubernetes import KubernetesDeployer, KubernetesRollout, RolloutStatus

from .conftest import Package
from .fake_kube import FakeKube


@pytest.fixture(scope="module")
def api(fake_kube: FakeKube) -> Iterator[client.ApiClient]:
    """The official client, configured for the fake."""
    with client.ApiClient(client.Configuration(host=fake_kube.url)) as made:
        yield made


@pytest.fixture
def deployer(api: client.ApiClient) -> KubernetesDeployer:
    return KubernetesDeployer(api)


@pytest.fixture
def web(fake_kube: FakeKube, deployment_name: str) -> str:
    """A Deployment of 3 replicas of shop:1, rolled out (revision 1)."""
    fake_kube.add_deployment(deployment_name, "shop:1")
    return deployment_name


@pytest.fixture
def sent() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every rollout_step and rollout_finished sent during the test: (signal, kwargs)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: object, **kwargs: Any) -> None:
            seen.append((name, {"sender": sender, **kwargs}))

        return receive

    step, finished = receiver("step"), receiver("finished")
    with (
        signals.rollout_step.connected_to(step),
        signals.rollout_finished.connected_to(finished),
    ):
        yield seen


def at_first_step(action: Callable[[], object]) -> contextlib.AbstractContextManager[object]:
    """Within the block, ``action()`` runs once, from the first ``rollout_step`` sent."""
    done = threading.Event()

    def receive(sender: object, **kwargs: Any) -> None:
        if not done.is_set():
            done.set()
            action()

    return signals.rollout_step.connected_to(receive)


def image_of(fake: FakeKube, name: str) -> str:
    """The image of the Deployment's first container, as stored."""
    containers = fake.get("deployments", name)["spec"]["template"]["spec"]["containers"]
    return str(containers[0]["image"])


def set_image(api: client.ApiClient, name: str, image: str) -> None:
    """Another client sets the image of the Deployment's container ``app``."""
    container = {"name": "app", "image": image}
    client.AppsV1Api(api).patch_namespaced_deployment(
        name, "default", {"spec": {"template": {"spec": {"containers": [container]}}}}
    )


def revision(obj: dict[str, Any]) -> int:
    """The revision annotation of a Deployment or ReplicaSet."""
    return int(obj["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0))


class TestDeploy:
    def test_a_good_image_rolls_out(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """deploy() returns once kubectl would say so: every replica on the new ReplicaSet."""
        status = deployer.deploy(web, "shop:2")
        assert status == RolloutStatus(
            True, False, f'deployment "{web}" successfully rolled out', 2, 3, 3, 3
        )
        assert image_of(fake_kube, web) == "shop:2"
        replicas = {
            rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["status"]["replicas"]
            for rs in fake_kube.replicasets(web)
        }
        assert replicas == {"shop:1": 0, "shop:2": 3}

    def test_the_rollout_is_followed_by_one_watch(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """A get, a patch, a list, then one watch from the list's version: no polling."""
        start = len(fake_kube.requests)
        deployer.deploy(web, "shop:2")
        requests = [r for r in fake_kube.requests[start:] if f"/{web}" in r or web in r]
        assert [r.split(" ")[0] for r in requests] == ["GET", "PATCH", "GET", "GET"]
        listed, watched = requests[2], requests[3]
        assert "watch" not in listed
        assert "watch=true" in watched
        assert "timeoutSeconds=300" in watched
        assert "resourceVersion=" in watched

    def test_the_same_image_returns_at_once(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """Deploying the image already there changes nothing and returns the status now."""
        before = fake_kube.get("deployments", web)
        start = len(fake_kube.requests)
        status = deployer.deploy(web, "shop:1")
        assert status.done
        assert status.revision == 1
        assert len(fake_kube.requests) == start + 1  # the get
        assert (
            fake_kube.get("deployments", web)["metadata"]["generation"]
            == (before["metadata"]["generation"])
        )

    def test_the_same_image_of_a_failed_rollout_raises(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """The image already set by a failed rollout is not a success: it raises, left as it is."""
        with pytest.raises(KubernetesRolloutError):
            deployer.deploy(web, "shop:bad", undo_on_failure=False)
        with pytest.raises(KubernetesRolloutError, match="exceeded its progress deadline"):
            deployer.deploy(web, "shop:bad")
        assert image_of(fake_kube, web) == "shop:bad"

    def test_the_same_image_under_way_is_followed_to_its_end(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, api: client.ApiClient, web: str
    ) -> None:
        """The image already set, its rollout not finished: deploy() returns once it is done."""
        fake_kube.pause()
        try:
            set_image(api, web, "shop:2")
            with signals.rollout_step.connected_to(lambda sender, **kwargs: fake_kube.resume()):
                status = deployer.deploy(web, "shop:2")
        finally:
            fake_kube.resume()
        assert status.done
        assert status.revision == 2

    def test_a_paused_deployment_is_refused_before_any_change(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, api: client.ApiClient, web: str
    ) -> None:
        """A paused Deployment never rolls a new template out: refused, nothing changed."""
        client.AppsV1Api(api).patch_namespaced_deployment(
            web, "default", {"spec": {"paused": True}}
        )
        generation = fake_kube.get("deployments", web)["metadata"]["generation"]
        with pytest.raises(PlatformError, match="is paused; resume it first"):
            deployer.deploy(web, "shop:2")
        assert image_of(fake_kube, web) == "shop:1"
        assert fake_kube.get("deployments", web)["metadata"]["generation"] == generation
        step = KubernetesRollout(deployer, web, "shop:2")
        with pytest.raises(PackageError, match="is paused"):
            Deployment("shop", reloader=HotReloader()).plan([step])

    def test_a_named_container_of_several(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, deployment_name: str
    ) -> None:
        """container= picks one of several; the others keep their images."""
        fake_kube.add_deployment(deployment_name, "shop:1", containers=("app", "proxy"))
        deployer.deploy(deployment_name, "envoy:2", container="proxy")
        containers = fake_kube.get("deployments", deployment_name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert [(c["name"], c["image"]) for c in containers] == [
            ("app", "shop:1"),
            ("proxy", "envoy:2"),
        ]

    def test_no_container_named_among_several_is_refused(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, deployment_name: str
    ) -> None:
        """Without container=, a Deployment of two containers is refused, naming them."""
        fake_kube.add_deployment(deployment_name, "shop:1", containers=("app", "proxy"))
        with pytest.raises(InvalidArgumentError, match=r"2 containers \(app, proxy\)"):
            deployer.deploy(deployment_name, "shop:2")
        with pytest.raises(InvalidArgumentError, match=r"no container 'db' \(it has app, proxy\)"):
            deployer.deploy(deployment_name, "shop:2", container="db")
        assert fake_kube.get("deployments", deployment_name)["metadata"]["generation"] == 1

    def test_a_bad_image_exceeds_its_deadline_and_is_undone(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """ProgressDeadlineExceeded: the error carries kubectl's judgement; shop:1 is back."""
        with pytest.raises(KubernetesRolloutError) as caught:
            deployer.deploy(web, "shop:bad")
        status = caught.value.status
        assert status is not None
        assert (status.failed, status.done, status.message, status.revision) == (
            True,
            False,
            f'deployment "{web}" exceeded its progress deadline',
            2,
        )
        assert "rolled back (now revision 3)" in str(caught.value)
        assert image_of(fake_kube, web) == "shop:1"
        done = fake_kube.wait_for(web, lambda d: judge(d).done)
        assert revision(done) == 3

    def test_a_failure_right_after_an_undo_restores_the_template_before(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """The undo goes back to the template before deploy(), whatever its revision number says.

        Right after an undo the Deployment's revision annotation is stale
        (the controller has not renumbered the restored template yet).
        """
        deployer.deploy(web, "shop:2")
        fake_kube.pause()  # the undo is not observed before the next deploy() starts
        try:
            deployer.undo(web)  # shop:1 again; the annotation still says revision 2
            with (
                signals.rollout_step.connected_to(lambda sender, **kwargs: fake_kube.resume()),
                pytest.raises(KubernetesRolloutError, match="exceeded its progress deadline"),
            ):
                deployer.deploy(web, "shop:bad")
        finally:
            fake_kube.resume()
        assert image_of(fake_kube, web) == "shop:1"

    def test_an_undo_before_the_new_replicaset_names_the_revision_kept(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """Timed out before the controller saw the new template: the undo keeps revision 1."""
        fake_kube.pause()
        try:
            with pytest.raises(KubernetesRolloutError, match=r"now revision 1\)"):
                deployer.deploy(web, "shop:2", timeout=0.5)
        finally:
            fake_kube.resume()
        done = fake_kube.wait_for(web, lambda d: judge(d).done)
        assert revision(done) == 1
        assert image_of(fake_kube, web) == "shop:1"

    def test_undo_on_failure_false_leaves_it(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """undo_on_failure=False raises the same error and leaves the bad image in place."""
        with pytest.raises(KubernetesRolloutError, match="exceeded its progress deadline"):
            deployer.deploy(web, "shop:bad", undo_on_failure=False)
        assert image_of(fake_kube, web) == "shop:bad"

    def test_a_timeout_is_undone(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, deployment_name: str
    ) -> None:
        """A rollout still going at the timeout fails (not failed by kubectl) and is undone."""
        fake_kube.add_deployment(deployment_name, "shop:1", progress_deadline=600)
        with pytest.raises(KubernetesRolloutError, match=r"timed out after 0\.5 s") as caught:
            deployer.deploy(deployment_name, "shop:bad", timeout=0.5)
        status = caught.value.status
        assert status is not None
        assert (status.done, status.failed) == (False, False)
        assert image_of(fake_kube, deployment_name) == "shop:1"

    def test_a_deleted_deployment_fails_cleanly(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        api: client.ApiClient,
        deployment_name: str,
        sent: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Deleted during its rollout: kubectl's words, no undo attempted, status failed."""
        fake_kube.add_deployment(deployment_name, "shop:1", progress_deadline=600)

        apps = client.AppsV1Api(api)
        with (
            at_first_step(lambda: apps.delete_namespaced_deployment(deployment_name, "default")),
            pytest.raises(KubernetesRolloutError, match="the Deployment was deleted") as caught,
        ):
            deployer.deploy(deployment_name, "shop:bad")
        assert caught.value.status is not None
        assert caught.value.status.message == "object has been deleted"
        assert caught.value.__cause__ is None
        assert sent[-1][1]["status"] == "failed"

    def test_another_clients_change_meanwhile_fails_and_is_left(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        api: client.ApiClient,
        deployment_name: str,
        sent: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Another image set during the rollout: no success for it, and no undo over it."""
        fake_kube.add_deployment(deployment_name, "shop:1", progress_deadline=600)
        with (
            at_first_step(lambda: set_image(api, deployment_name, "shop:3")),
            pytest.raises(KubernetesRolloutError, match="another client changed") as caught,
        ):
            deployer.deploy(deployment_name, "shop:bad", timeout=20)
        assert caught.value.status is not None
        assert caught.value.status.failed
        assert image_of(fake_kube, deployment_name) == "shop:3"
        assert sent[-1][1]["status"] == "failed"

    def test_an_interrupt_leaves_another_clients_change(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, api: client.ApiClient, web: str
    ) -> None:
        """Interrupted after another client set its image: the undo leaves that image."""

        def change_and_interrupt(sender: object, **kwargs: Any) -> None:
            set_image(api, web, "shop:3")
            raise KeyboardInterrupt

        with (
            signals.rollout_step.connected_to(change_and_interrupt),
            pytest.raises(KeyboardInterrupt),
        ):
            deployer.deploy(web, "shop:2")
        assert image_of(fake_kube, web) == "shop:3"

    def test_a_410_gone_lists_again(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """When the watch ends and its version is gone (410), the rollout is listed again."""
        start = len(fake_kube.requests)
        with at_first_step(fake_kube.expire):
            status = deployer.deploy(web, "shop:2")
        assert status.done
        reads = [r for r in fake_kube.requests[start:] if r.startswith("GET") and web in r]
        lists = [r for r in reads if "watch" not in r and f"/{web}" not in r]
        assert len(lists) == 2

    def test_a_relist_watches_from_the_lists_version(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, deployment_name: str
    ) -> None:
        """After a 410, the watch starts from the new list's version, not the object's older one."""
        fake_kube.add_deployment(deployment_name, "shop:1", progress_deadline=600)
        stuck = threading.Thread(
            target=lambda: (
                fake_kube.wait_for(
                    deployment_name, lambda d: d["status"].get("updatedReplicas") == 1
                ),
                time.sleep(0.3),  # the stuck rollout's objects stop changing
                fake_kube.expire(),
            )
        )
        start = len(fake_kube.requests)
        stuck.start()
        try:
            with pytest.raises(KubernetesRolloutError, match="timed out"):
                deployer.deploy(deployment_name, "shop:bad", timeout=1.5)
        finally:
            stuck.join()
        lists = [
            r
            for r in fake_kube.requests[start:]
            if r.startswith("GET") and "fieldSelector" in r and "watch" not in r
        ]
        assert len(lists) == 2  # the first, and one after the 410

    def test_an_interrupt_undoes_the_rollout(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """A KeyboardInterrupt while following the rollout undoes it, then goes on."""

        def interrupt(sender: object, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        # Receivers are isolated from Exceptions only: the interrupt reaches deploy().
        with (
            signals.rollout_step.connected_to(interrupt),
            pytest.raises(KeyboardInterrupt),
        ):
            deployer.deploy(web, "shop:2")
        assert image_of(fake_kube, web) == "shop:1"


class TestStatusAndUndo:
    def test_status_judges_now(self, deployer: KubernetesDeployer, web: str) -> None:
        """status() is one judgement with kubectl's words."""
        assert deployer.status(web) == RolloutStatus(
            True, False, f'deployment "{web}" successfully rolled out', 1, 3, 3, 3
        )

    def test_undo_to_the_previous_and_to_a_revision(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """undo() restores the previous template, or to_revision's; returns the new revision."""
        deployer.deploy(web, "shop:2")
        deployer.deploy(web, "shop:3")
        assert deployer.undo(web) == 4
        fake_kube.wait_for(web, lambda d: revision(d) == 4)
        assert image_of(fake_kube, web) == "shop:2"
        assert deployer.undo(web, to_revision=1) == 5
        assert image_of(fake_kube, web) == "shop:1"
        labels = fake_kube.get("deployments", web)["spec"]["template"]["metadata"]["labels"]
        assert labels == {"app": web}

    def test_undo_ignores_replicasets_it_does_not_own(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        api: client.ApiClient,
        web: str,
    ) -> None:
        """A ReplicaSet matching the selector but controlled by another owner is not history."""
        deployer.deploy(web, "shop:2")
        stray = {
            "metadata": {
                "name": f"{web}-stray",
                "labels": {"app": web},
                "annotations": {"deployment.kubernetes.io/revision": "9"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "other",
                        "uid": "not-the-owner",
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": web}},
                "template": {
                    "metadata": {"labels": {"app": web}},
                    "spec": {"containers": [{"name": "app", "image": "stray:9"}]},
                },
            },
        }
        client.AppsV1Api(api).create_namespaced_replica_set("default", stray)
        with pytest.raises(PlatformError, match="unable to find specified revision 9 in history"):
            deployer.undo(web, to_revision=9)
        deployer.undo(web)
        assert image_of(fake_kube, web) == "shop:1"

    def test_undo_with_a_set_based_selector(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        api: client.ApiClient,
        deployment_name: str,
    ) -> None:
        """matchExpressions select ReplicaSets as kubectl's ``tier in (a,b)``: undo finds them."""
        labels = {"app": deployment_name, "tier": "a"}
        selector = {
            "matchLabels": {"app": deployment_name},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment_name},
            "spec": {
                "replicas": 1,
                "selector": selector,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "shop:1"}]},
                },
            },
        }
        client.AppsV1Api(api).create_namespaced_deployment("default", body)
        fake_kube.wait_for(deployment_name, lambda d: judge(d).done)
        deployer.deploy(deployment_name, "shop:2")
        assert deployer.undo(deployment_name) == 3
        assert image_of(fake_kube, deployment_name) == "shop:1"

    def test_undo_errors_in_kubectls_words(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, api: client.ApiClient, web: str
    ) -> None:
        """No history, an unknown revision and a paused Deployment are refused as kubectl does."""
        with pytest.raises(PlatformError, match=f'no rollout history found for deployment "{web}"'):
            deployer.undo(web)
        with pytest.raises(PlatformError, match="unable to find specified revision 7 in history"):
            deployer.undo(web, to_revision=7)
        deployer.deploy(web, "shop:2")
        client.AppsV1Api(api).patch_namespaced_deployment(
            web, "default", {"spec": {"paused": True}}
        )
        with pytest.raises(PlatformError, match="you cannot rollback a paused deployment"):
            deployer.undo(web)
        assert image_of(fake_kube, web) == "shop:2"


class TestSignals:
    def test_steps_and_the_end_of_a_good_rollout(
        self, deployer: KubernetesDeployer, web: str, sent: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """rollout_step on each change of the counts, then rollout_finished promoted."""
        status = deployer.deploy(web, "shop:2")
        steps = [kwargs for name, kwargs in sent if name == "step"]
        assert [name for name, _ in sent] == ["step"] * len(steps) + ["finished"]
        for kwargs in steps:
            assert kwargs["sender"] is deployer
            assert (kwargs["platform"], kwargs["target"], kwargs["image"]) == (
                "kubernetes",
                f"default/{web}",
                "shop:2",
            )
            assert kwargs["status"] == "running"
            observed = kwargs["rollout"].message != UNOBSERVED
            assert kwargs["weight"] == (100 * kwargs["rollout"].updated // 3 if observed else 0)
        rollouts = [kwargs["rollout"] for kwargs in steps]
        assert all(a != b for a, b in itertools.pairwise(rollouts))  # only changes are sent
        finished = sent[-1][1]
        assert (finished["status"], finished["rollout"], finished["revision"]) == (
            "promoted",
            status,
            2,
        )

    def test_the_weight_is_0_until_the_new_spec_is_observed(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        web: str,
        sent: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Before the controller observes the new spec, the old replicas are no share of it."""
        fake_kube.pause()
        try:
            with signals.rollout_step.connected_to(lambda sender, **kwargs: fake_kube.resume()):
                deployer.deploy(web, "shop:2")
        finally:
            fake_kube.resume()
        first = sent[0][1]
        assert first["rollout"].message == UNOBSERVED
        assert first["rollout"].updated == 3  # the old template's replicas
        assert first["weight"] == 0

    def test_a_failed_rollout_ends_rolled_back_or_failed(
        self, deployer: KubernetesDeployer, web: str, sent: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """rollout_finished says rolled_back when undone, failed when left as it is."""
        for undo, expected in ((True, "rolled_back"), (False, "failed")):
            with pytest.raises(KubernetesRolloutError):
                deployer.deploy(web, "shop:bad", undo_on_failure=undo)
            name, kwargs = sent[-1]
            assert (name, kwargs["status"], kwargs["rollout"].failed) == (
                "finished",
                expected,
                True,
            )

    def test_an_api_error_or_an_interrupt_ends_the_rollout_with_its_signal(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        deployment_name: str,
        sent: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """An interrupt (undone) ends it rolled_back; an API error (undo refused too) failed."""

        def interrupt(sender: object, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        fake_kube.add_deployment(deployment_name, "shop:1", namespace="lost")
        with signals.rollout_step.connected_to(interrupt), pytest.raises(KeyboardInterrupt):
            deployer.deploy(deployment_name, "shop:2", namespace="lost")
        assert (sent[-1][0], sent[-1][1]["status"]) == ("finished", "rolled_back")

        def refuse(sender: object, **kwargs: Any) -> None:
            fake_kube.forbid("lost")
            fake_kube.expire()  # the watch ends; the next request is refused

        with signals.rollout_step.connected_to(refuse), pytest.raises(PlatformError):
            deployer.deploy(deployment_name, "shop:3", namespace="lost")
        assert (sent[-1][0], sent[-1][1]["status"]) == ("finished", "failed")
        assert sent[-1][1]["target"] == f"lost/{deployment_name}"


class TestErrors:
    def test_api_errors_are_platform_errors_with_the_platforms_words(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer
    ) -> None:
        """A 404 and a 403 keep the API's message; the client's exception is the cause."""
        with pytest.raises(PlatformError, match=r'deployments\.apps "nope" not found') as caught:
            deployer.deploy("nope", "shop:2")
        assert isinstance(caught.value.__cause__, client.ApiException)
        assert caught.value.__cause__.status == 404
        fake_kube.forbid("locked")
        with pytest.raises(PlatformError, match=r"forbidden: .* \(HTTP 403\)"):
            deployer.status("web", namespace="locked")

    def test_an_api_error_while_following_is_raised_after_trying_the_undo(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        deployment_name: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The API refusing the watch mid-rollout: that PlatformError, the failed undo logged."""
        fake_kube.add_deployment(deployment_name, "shop:1", namespace="doomed")

        def refuse() -> None:
            fake_kube.forbid("doomed")
            fake_kube.expire()  # the watch ends; the next request is refused

        with (
            at_first_step(refuse),
            pytest.raises(PlatformError, match=r"watch deployment doomed/.*\(HTTP 403\)") as caught,
        ):
            deployer.deploy(deployment_name, "shop:2", namespace="doomed")
        assert not isinstance(caught.value, KubernetesRolloutError)
        assert "the undo of the rollout of shop:2 to doomed/" in caplog.text

    def test_an_unreachable_server_is_a_platform_error(self) -> None:
        """No server at the address: PlatformError, the connection error chained."""
        configuration = client.Configuration(host="http://127.0.0.1:9")
        configuration.retries = False
        with (
            client.ApiClient(configuration) as api,
            pytest.raises(PlatformError, match="get deployment default/web") as caught,
        ):
            KubernetesDeployer(api).status("web")
        assert caught.value.__cause__ is not None

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda d: d.deploy("Web_1", "shop:2"), "name must be a Kubernetes name"),
            (lambda d: d.deploy("web", ""), "image must be a non-empty"),
            (lambda d: d.deploy("web", "shop 2"), "image must be a non-empty"),
            (lambda d: d.deploy("web", 3), "image must be a non-empty"),
            (lambda d: d.deploy("web", "shop:2", timeout=0), "timeout must be a positive"),
            (lambda d: d.deploy("web", "shop:2", timeout=-1.0), "timeout must be a positive"),
            (lambda d: d.deploy("web", "shop:2", timeout=float("nan")), "timeout must be"),
            (lambda d: d.deploy("web", "shop:2", namespace="Prod!"), "namespace must be"),
            (lambda d: d.deploy("web", "shop:2", container="A"), "container must be"),
            (lambda d: d.deploy("web", "shop:2", undo_on_failure=1), "undo_on_failure must"),
            (lambda d: d.undo("web", to_revision=0), "to_revision must be"),
            (lambda d: d.undo("web", to_revision=True), "to_revision must be"),
            (lambda d: d.undo("web", to_revision="2"), "to_revision must be"),
            (lambda d: d.status(""), "name must be"),
            (lambda d: KubernetesDeployer(object()), "api_client must be"),
            (lambda d: KubernetesDeployer(d._client, namespace=""), "namespace must be"),
            (lambda d: KubernetesRollout(d, "web", ""), "image must be"),
            (lambda d: KubernetesRollout(d, "web", "x", timeout=0), "timeout must be"),
            (lambda d: KubernetesRollout("d", "web", "x"), "deployer must be"),
        ],
    )
    def test_bad_input_is_refused_before_any_request(
        self,
        fake_kube: FakeKube,
        deployer: KubernetesDeployer,
        call: Callable[[KubernetesDeployer], object],
        message: str,
    ) -> None:
        """Each bad argument raises InvalidArgumentError naming it; no request is made."""
        start = len(fake_kube.requests)
        with pytest.raises(InvalidArgumentError, match=message):
            call(deployer)
        assert len(fake_kube.requests) == start

    def test_the_rollout_error_pickles_with_its_status(self) -> None:
        """KubernetesRolloutError crosses a process boundary with its status."""
        status = RolloutStatus(
            False, True, 'deployment "web" exceeded its progress deadline', 2, 3, 1, 3
        )
        error = pickle.loads(pickle.dumps(KubernetesRolloutError("failed", status)))
        assert (str(error), error.status) == ("failed", status)


def tracking_prices(package: Package) -> tuple[HotReloader, str]:
    """A reloader tracking a new module ``prices`` (``PRICE = 1``), and the module's name."""
    reloader = HotReloader()
    package.module("prices", "PRICE = 1\n")
    module = package.qualified("prices")
    reloader.track(module)
    return reloader, module


class TestKubernetesRolloutStep:
    def test_undone_with_an_in_process_swap_when_a_later_step_fails(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str, package: Package
    ) -> None:
        """A HotSwap and a KubernetesRollout, then a failing migration: both are undone."""
        reloader, module = tracking_prices(package)
        deployment = Deployment("shop", reloader=reloader)

        def fail() -> None:
            raise RuntimeError("the migration fails")

        with pytest.raises(DeploymentError) as caught:
            deployment.run(
                [
                    HotSwap(module, "PRICE = 2\n"),
                    KubernetesRollout(deployer, web, "shop:2"),
                    Migration("fails", fail),
                ]
            )
        result = caught.value.result
        assert result is not None
        assert [(s.kind, s.target, s.status) for s in result.steps] == [
            ("HotSwap", module, "undone"),
            ("KubernetesRollout", f"default/{web}", "undone"),
            ("Migration", "fails", "failed"),
        ]
        assert sys.modules[module].PRICE == 1
        assert image_of(fake_kube, web) == "shop:1"

    def test_undone_together_when_the_health_gate_fails(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str, package: Package
    ) -> None:
        """The health gate breaches after the image rolled out: swap and image both undone."""
        reloader, module = tracking_prices(package)
        monitor = PerformanceMonitor()
        deployment = Deployment(
            "shop",
            reloader=reloader,
            monitor=monitor,
            health=HealthGate(bake=0.2, thresholds=Thresholds(max_error_rate=0.05)),
        )
        failing = threading.Event()

        def errors() -> None:
            while not failing.wait(0.01):
                monitor.record("shop", "error_rate", 1.0)

        recorder = threading.Thread(target=errors)
        recorder.start()
        try:
            with pytest.raises(DeploymentError, match="health gate breached"):
                deployment.run(
                    [HotSwap(module, "PRICE = 2\n"), KubernetesRollout(deployer, web, "shop:2")]
                )
        finally:
            failing.set()
            recorder.join()
        assert sys.modules[module].PRICE == 1
        assert image_of(fake_kube, web) == "shop:1"

    def test_a_failed_rollout_fails_the_step(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """A bad image fails the step (after its own undo); the deployment is rolled back."""
        deployment = Deployment("shop", reloader=HotReloader())
        with pytest.raises(DeploymentError, match="exceeded its progress deadline") as caught:
            deployment.run([KubernetesRollout(deployer, web, "shop:bad")])
        assert isinstance(caught.value.__cause__, KubernetesRolloutError)
        assert image_of(fake_kube, web) == "shop:1"

    def test_plan_reports_a_missing_deployment_and_container(
        self, deployer: KubernetesDeployer, web: str
    ) -> None:
        """plan() finds the Deployment missing, or the container, with the step's path."""
        deployment = Deployment("shop", reloader=HotReloader())
        with pytest.raises(PackageError) as caught:
            deployment.plan(
                [
                    KubernetesRollout(deployer, "nope", "shop:2"),
                    KubernetesRollout(deployer, web, "shop:2", container="db"),
                ]
            )
        paths = [path for path, _ in caught.value.problems]
        messages = " ".join(message for _, message in caught.value.problems)
        assert paths == ["[0]", "[1]"]
        assert 'deployments.apps "nope" not found' in messages
        assert "no container 'db'" in messages

    def test_two_steps_on_one_deployment_are_both_undone(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """Undoing the later step renumbers the earlier one's revision: both undos still run."""

        def fail() -> None:
            raise RuntimeError("the migration fails")

        deployment = Deployment("shop", reloader=HotReloader())
        with pytest.raises(DeploymentError) as caught:
            deployment.run(
                [
                    KubernetesRollout(deployer, web, "shop:2"),
                    KubernetesRollout(deployer, web, "shop:3"),
                    Migration("fails", fail),
                ]
            )
        result = caught.value.result
        assert result is not None
        assert [s.status for s in result.steps] == ["undone", "undone", "failed"]
        assert image_of(fake_kube, web) == "shop:1"

    def test_undo_refuses_a_deployment_moved_since(
        self, fake_kube: FakeKube, deployer: KubernetesDeployer, web: str
    ) -> None:
        """The step's undo leaves a Deployment rolled to another revision since the step."""
        step = KubernetesRollout(deployer, web, "shop:2")
        deployment = Deployment("shop", reloader=HotReloader())
        undo = step.apply(deployment._parts, "test")
        deployer.deploy(web, "shop:3")
        with pytest.raises(PlatformError, match="left as it is"):
            undo()
        assert image_of(fake_kube, web) == "shop:3"


class TestConfiguration:
    def test_no_client_reads_the_kubeconfig_as_kubectl(
        self, fake_kube: FakeKube, web: str, tmp_path: Path
    ) -> None:
        """KubernetesDeployer() finds the cluster through $KUBECONFIG, as kubectl does."""
        config = fake_kube.kubeconfig(tmp_path / "config")
        code = (
            "from illunare.kubernetes import KubernetesDeployer\n"
            f"print(KubernetesDeployer().status({web!r}).message)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout) == (
            0,
            f'deployment "{web}" successfully rolled out\n',
        ), result.stderr

    def test_no_kubeconfig_outside_a_cluster_is_a_platform_error(self, tmp_path: Path) -> None:
        """Without a kubeconfig or an in-cluster service account: PlatformError saying so."""
        code = (
            "from illunare import PlatformError\n"
            "from illunare.kubernetes import KubernetesDeployer\n"
            "try:\n"
            "    KubernetesDeployer()\n"
            "except PlatformError as error:\n"
            "    print(error)\n"
        )
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_")
        }
        environment.update(KUBECONFIG=str(tmp_path / "missing"), HOME=str(tmp_path))
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("no Kubernetes configuration: no kubeconfig")


class TestImports:
    def test_import_illunare_loads_no_platform_client(self) -> None:
        """import illunare imports neither kubernetes nor google (integrations load on use)."""
        code = (
            "import sys, illunare\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'google')]\n"
            "print(loaded)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr

    def test_without_the_extra_the_error_says_what_to_install(self) -> None:
        """Without the kubernetes package, importing illunare.kubernetes names the extra."""
        code = (
            "import sys\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'kubernetes':\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "from illunare import MissingExtraError\n"
            "try:\n"
            "    import illunare.kubernetes\n"
            "except MissingExtraError as error:\n"
            "    print(error)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "pip install 'illunare[kubernetes]'" in result.stdout
