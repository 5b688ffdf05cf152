"""The fake Kubernetes API server against the real kubectl: it must behave as a cluster does.

Each command runs the real ``kubectl`` with a kubeconfig pointing at the
fake. CI installs kubectl (``ILLUNARE_REQUIRE_KUBECTL``: a missing one FAILS);
elsewhere these tests skip without it. The illunare side of each rule is
compared with kubectl's on the same objects.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from illunare.kubernetes import KubernetesDeployer

from .fake_kube import FakeKube, semantic

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def kubectl(fake_kube: FakeKube, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """Run the real kubectl against the fake: ``kubectl("rollout", "status", ...)``."""
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("ILLUNARE_REQUIRE_KUBECTL"):
            pytest.fail("kubectl is required (ILLUNARE_REQUIRE_KUBECTL is set) but missing")
        pytest.skip("kubectl is not installed (CI installs it)")
    home = tmp_path_factory.mktemp("kubectl")
    config = fake_kube.kubeconfig(home / "config")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(config)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [path, *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    return run


@pytest.fixture(scope="module")
def deployer(fake_kube: FakeKube) -> Iterator[KubernetesDeployer]:
    """A KubernetesDeployer on the official client, talking to the fake."""
    with client.ApiClient(client.Configuration(host=fake_kube.url)) as api:
        yield KubernetesDeployer(api)


def image_of(fake: FakeKube, name: str) -> str:
    """The image of the Deployment's first container, as stored."""
    image: str = fake.get("deployments", name)["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def history(fake: FakeKube, name: str) -> list[tuple[int, str]]:
    """(revision, image) of each ReplicaSet the Deployment owns, oldest revision first."""
    return [
        (revision(rs), rs["spec"]["template"]["spec"]["containers"][0]["image"])
        for rs in fake.replicasets(name)
    ]


def revision(obj: dict[str, Any]) -> int:
    """The revision annotation of a Deployment or ReplicaSet."""
    return int(obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


def rolled_out(deployment: dict[str, Any]) -> bool:
    """Whether the fake's Deployment has finished its rollout."""
    status = deployment.get("status", {})
    return bool(
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas")
        == status.get("availableReplicas")
        == status.get("replicas")
        == deployment["spec"]["replicas"]
    )


def rollout_status(
    fake: FakeKube, kubectl: Kubectl, name: str, image: str, *options: str, **deployment: Any
) -> subprocess.CompletedProcess[str]:
    """Add Deployment ``name`` at shop:1, set its image to ``image``, then run rollout status."""
    fake.add_deployment(name, "shop:1", **deployment)
    kubectl("set", "image", f"deployment/{name}", f"app={image}")
    return kubectl("rollout", "status", f"deployment/{name}", *options)


class TestKubectlSetImage:
    def test_set_image_patches_the_container(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """kubectl set image answers as on a cluster and changes the template and generation."""
        before = fake_kube.add_deployment(deployment_name, "shop:1")
        result = kubectl("set", "image", f"deployment/{deployment_name}", "app=shop:2")
        assert (0, f"deployment.apps/{deployment_name} image updated\n") == (
            result.returncode,
            result.stdout,
        )
        after = fake_kube.get("deployments", deployment_name)
        assert image_of(fake_kube, deployment_name) == "shop:2"
        assert before["metadata"]["generation"] + 1 == after["metadata"]["generation"]

    def test_set_image_of_one_of_two_containers(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """The strategic merge patch by container name leaves the other container alone."""
        fake_kube.add_deployment(deployment_name, "shop:1", containers=("app", "sidecar"))
        result = kubectl("set", "image", f"deployment/{deployment_name}", "sidecar=proxy:2")
        assert result.returncode == 0, result.stderr
        containers = fake_kube.get("deployments", deployment_name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert [(c["name"], c["image"]) for c in containers] == [
            ("app", "shop:1"),
            ("sidecar", "proxy:2"),
        ]


class TestKubectlRolloutStatus:
    def test_a_good_image_rolls_out(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """rollout status prints kubectl's waiting lines, then success, and exits 0."""
        result = rollout_status(fake_kube, kubectl, deployment_name, "shop:2")
        lines = result.stdout.splitlines()
        assert result.returncode == 0, result.stderr
        assert f'deployment "{deployment_name}" successfully rolled out' == lines[-1]
        waiting = f'Waiting for deployment "{deployment_name}" rollout to finish: '
        assert any(line.startswith(waiting) for line in lines[:-1])
        assert rolled_out(fake_kube.get("deployments", deployment_name))

    def test_a_bad_image_exceeds_its_deadline(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """A pod that never becomes ready ends in ProgressDeadlineExceeded: kubectl exits 1."""
        result = rollout_status(fake_kube, kubectl, deployment_name, "shop:bad")
        assert (1, f'error: deployment "{deployment_name}" exceeded its progress deadline\n') == (
            result.returncode,
            result.stderr,
        )

    def test_a_timeout_exits_1(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """A rollout longer than --timeout ends kubectl with its timeout error."""
        result = rollout_status(
            fake_kube, kubectl, deployment_name, "shop:bad", "--timeout=1s", progress_deadline=600
        )
        assert (
            result.returncode,
            result.stderr,
        ) == (1, "error: timed out waiting for the condition\n")

    def test_kubectl_and_illunare_judge_alike(
        self,
        fake_kube: FakeKube,
        kubectl: Kubectl,
        deployer: KubernetesDeployer,
        deployment_name: str,
    ) -> None:
        """Once a rollout stopped, kubectl's last words are status().message, word for word."""
        for image in ("shop:2", "shop:bad"):
            name = f"{deployment_name}-{image[5:]}"
            result = rollout_status(fake_kube, kubectl, name, image)
            said = (result.stdout.splitlines() + result.stderr.splitlines())[-1]
            assert said.removeprefix("error: ") == deployer.status(name).message


class TestKubectlRolloutUndo:
    def test_undo_restores_the_previous_revision(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """rollout undo puts the previous template back; the controller renumbers it."""
        fake_kube.add_deployment(deployment_name, "shop:1")
        kubectl("set", "image", f"deployment/{deployment_name}", "app=shop:2")
        fake_kube.wait_for(deployment_name, rolled_out)
        kubectl("set", "image", f"deployment/{deployment_name}", "app=shop:bad")
        fake_kube.wait_for(deployment_name, lambda d: revision(d) == 3)
        result = kubectl("rollout", "undo", f"deployment/{deployment_name}")
        assert (0, f"deployment.apps/{deployment_name} rolled back\n") == (
            result.returncode,
            result.stdout,
        )
        fake_kube.wait_for(deployment_name, rolled_out)
        assert image_of(fake_kube, deployment_name) == "shop:2"
        assert history(fake_kube, deployment_name) == [
            (1, "shop:1"),
            (3, "shop:bad"),
            (4, "shop:2"),
        ]
        listed = kubectl("rollout", "history", f"deployment/{deployment_name}")
        assert listed.returncode == 0
        assert [line.strip() for line in listed.stdout.splitlines()[1:] if line.strip()] == [
            "REVISION  CHANGE-CAUSE",
            "1         <none>",
            "3         <none>",
            "4         <none>",
        ]

    def test_undo_errors_in_kubectls_words(
        self, fake_kube: FakeKube, kubectl: Kubectl, deployment_name: str
    ) -> None:
        """An unknown revision, and a Deployment with no history, fail kubectl with exit 1."""
        fake_kube.add_deployment(deployment_name, "shop:1")
        result = kubectl("rollout", "undo", f"deployment/{deployment_name}")
        assert (1, f'error: no rollout history found for deployment "{deployment_name}"\n') == (
            result.returncode,
            result.stderr,
        )
        result = kubectl("rollout", "undo", f"deployment/{deployment_name}", "--to-revision=9")
        assert (
            result.returncode,
            result.stderr,
        ) == (1, "error: unable to find specified revision 9 in history\n")

    def test_undo_to_the_current_revision_is_skipped(
        self,
        fake_kube: FakeKube,
        kubectl: Kubectl,
        deployer: KubernetesDeployer,
        deployment_name: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Both kubectl and undo() skip a rollback to the template already there, saying so."""
        fake_kube.add_deployment(deployment_name, "shop:1")
        kubectl("set", "image", f"deployment/{deployment_name}", "app=shop:2")
        fake_kube.wait_for(deployment_name, rolled_out)
        result = kubectl("rollout", "undo", f"deployment/{deployment_name}", "--to-revision=2")
        skipped = "skipped rollback (current template already matches revision 2)"
        assert f"deployment.apps/{deployment_name} {skipped}\n" == result.stdout
        with caplog.at_level(logging.INFO, logger="illunare"):
            assert deployer.undo(deployment_name, to_revision=2) == 2
        assert f"deployment default/{deployment_name} {skipped}" in caplog.messages

    def test_illunare_undo_patches_as_kubectl_does(
        self,
        fake_kube: FakeKube,
        kubectl: Kubectl,
        deployer: KubernetesDeployer,
        deployment_name: str,
    ) -> None:
        """undo() and kubectl rollout undo leave the same template and annotations."""
        names = (f"{deployment_name}-kubectl", f"{deployment_name}-illunare")
        for name in names:
            fake_kube.add_deployment(name, "shop:1")
            fake_kube.wait_for(name, rolled_out)
            kubectl("annotate", f"deployment/{name}", "kubernetes.io/change-cause=two")
            kubectl("set", "image", f"deployment/{name}", "app=shop:2")
            fake_kube.wait_for(name, rolled_out)
        assert kubectl("rollout", "undo", f"deployment/{names[0]}").returncode == 0
        assert deployer.undo(names[1]) == 3
        results = []
        for name in names:
            deployment = fake_kube.wait_for(name, rolled_out)
            template = deployment["spec"]["template"]
            template["metadata"]["labels"]["app"] = "same"
            results.append((semantic(template), deployment["metadata"]["annotations"]))
        # kubectl's Go encoding adds empty fields ("resources": {}) that a typed
        # API server stores either way: compared as the controller compares them.
        assert results[0] == results[1]
        assert "pod-template-hash" not in results[1][0]["metadata"]["labels"]
