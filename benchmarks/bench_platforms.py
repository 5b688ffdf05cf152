"""Platform rollouts: KubernetesDeployer against kubectl, deadline detection, import cost.

Three figures, each against its baseline in the same run:

- ``deploy()`` of a good image, against the test suite's fake API server
  (its controller ticking every 0.1 s over 3 replicas), timed against
  ``kubectl rollout status`` following the same change on a twin
  Deployment (the real kubectl; skipped without it). Both wait for the same
  controller ticks: the ratio shows what following the rollout adds.
- Detection of ProgressDeadlineExceeded: from the moment the fake sets the
  condition to the moment ``deploy()`` raises (``undo_on_failure=False``).
- ``import illunare`` in a fresh interpreter with the kubernetes and Google
  clients installed, against the same with them refused by an import hook:
  the integrations load on use only.

Run: make bench  (or .venv/bin/python benchmarks/bench_platforms.py)
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client

from _common import report
from illunare import KubernetesRolloutError
from illunare.kubernetes import KubernetesDeployer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fake_kube import FakeKube  # the suite's fake, found from the repo root

ROUNDS = 9
DETECTIONS = 3
IMPORTS = 15

#: run in a fresh interpreter: the seconds ``import illunare`` takes there
IMPORT_TIMER = """
import sys, time
if sys.argv[1] == "without":
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("kubernetes", "google"):
                raise ImportError(name)
    sys.meta_path.insert(0, Refuse())
started = time.perf_counter()
import illunare
print(time.perf_counter() - started)
"""


def rollouts(fake: FakeKube, deployer: KubernetesDeployer) -> tuple[list[float], list[float]]:
    """Seconds from each round's change to its end, for deploy() and for kubectl (or []).

    Both clocks start when the fake takes the new image (deploy()'s patch,
    ``kubectl set image``'s) and stop when the rollout is reported done
    (deploy() returns, ``kubectl rollout status`` exits). The rounds start
    at random points between ticks, the same for both.
    """
    kubectl = shutil.which("kubectl")
    home = Path(tempfile.mkdtemp(prefix="illunare-kubectl-"))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "KUBECONFIG": str(fake.kubeconfig(home / "config")),
    }
    fake.add_deployment("ours", "shop:0", progress_deadline=600)
    fake.add_deployment("theirs", "shop:0", progress_deadline=600)
    ours: list[float] = []
    theirs: list[float] = []
    phases = random.Random(12)
    for round_ in range(1, ROUNDS + 1):
        image = f"shop:{round_}"
        # Each change lands at the same random point between two ticks for both.
        phase = phases.uniform(0, fake.tick)
        time.sleep(phase)
        deployer.deploy("ours", image)
        ours.append(time.perf_counter() - fake.changed_at["default", "ours"])
        if kubectl is None:
            continue
        time.sleep(phase)
        for command in (["set", "image", "deployment/theirs", f"app={image}"],
                        ["rollout", "status", "deployment/theirs"]):  # fmt: skip
            subprocess.run([kubectl, *command], env=env, check=True, capture_output=True)
        theirs.append(time.perf_counter() - fake.changed_at["default", "theirs"])
    return ours, theirs


def detections(fake: FakeKube, deployer: KubernetesDeployer) -> list[float]:
    """Seconds from the fake setting ProgressDeadlineExceeded to deploy() raising."""
    seen: list[float] = []
    for round_ in range(DETECTIONS):
        name = f"bad-{round_}"
        fake.add_deployment(name, "shop:0", progress_deadline=1)
        try:
            deployer.deploy(name, "shop:bad", undo_on_failure=False)
        except KubernetesRolloutError:
            raised = time.perf_counter()
        else:
            raise AssertionError("the bad image should exceed its deadline")
        seen.append(raised - fake.exceeded_at[("default", name)])
    return seen


def import_times() -> tuple[float, float]:
    """The best seconds of ``import illunare`` in fresh interpreters: with the clients, without.

    The two kinds of run alternate, so a busy moment of the machine weighs on both.
    """
    best = {"with": float("inf"), "without": float("inf")}
    for _ in range(IMPORTS):
        for mode, fastest in best.items():
            command = [sys.executable, "-c", IMPORT_TIMER, mode]
            run = subprocess.run(command, capture_output=True, text=True, check=True)
            best[mode] = min(fastest, float(run.stdout))
    return best["with"], best["without"]


def main() -> None:
    with (
        FakeKube(tick=0.1) as fake,
        client.ApiClient(client.Configuration(host=fake.url)) as api,
    ):
        deployer = KubernetesDeployer(api)
        ours, theirs = rollouts(fake, deployer)
        figure = "deploy() of a good image, 3 replicas, 0.1 s ticks"
        report(f"{figure}: median", statistics.median(ours), "s", "-")
        if theirs:
            report("kubectl rollout status on the same change: median", statistics.median(theirs),
                   "s", "-")  # fmt: skip
            ratio = statistics.median(ours) / statistics.median(theirs)
            report(f"{figure} / kubectl rollout status", ratio, "x", "<= 1.1")
        else:
            print("kubectl is not installed: the comparison with kubectl rollout status is skipped")
        seen = detections(fake, deployer)
        report("ProgressDeadlineExceeded set -> deploy() raises: max", max(seen) * 1e3, "ms",
               "<= 50")  # fmt: skip
    with_extras, without = import_times()
    report("import illunare, kubernetes and google installed", with_extras * 1e3, "ms", "-")
    report("import illunare, kubernetes and google refused", without * 1e3, "ms", "-")
    report("import illunare: with the extras / without", with_extras / without, "x", "~ 1.0")


if __name__ == "__main__":
    main()
