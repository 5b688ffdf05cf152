"""illunare.gcp against a fake Cloud Run / Cloud Functions, driven by the real Google clients."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud import run_v2

from illunare import (
    Deployment,
    DeploymentError,
    InvalidArgumentError,
    Migration,
    MissingExtraError,
    PackageError,
    PerformanceMonitor,
    PlatformError,
    Rollout,
    Thresholds,
    TrafficShiftError,
    signals,
)
from illunare.gcp import CloudFunctionDeployer, CloudRunShift, CloudRunTraffic, TrafficResult
from tests.conftest import CTRL_C
from tests.fake_gcp import LATEST, REVISION, FakeGoogleCloud, running

ROOT = Path(__file__).resolve().parent.parent
FAST = Rollout(steps=(10, 50, 100), bake=0.05)
_numbers = itertools.count()
#: the rollout signals sent, in order: (name, sender, kwargs)
Events = list[tuple[str, object, dict[str, Any]]]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGoogleCloud]:
    yield from running()


@pytest.fixture(scope="module")
def traffic(fake: FakeGoogleCloud) -> CloudRunTraffic:
    return CloudRunTraffic(fake.services_client())


@pytest.fixture(scope="module")
def deployer(fake: FakeGoogleCloud) -> CloudFunctionDeployer:
    return CloudFunctionDeployer(fake.functions_client(), fake.services_client())


@pytest.fixture
def events() -> Iterator[Events]:
    """The rollout_step and rollout_finished signals sent."""
    seen: Events = []

    def step(sender: object, **kwargs: Any) -> None:
        seen.append(("rollout_step", sender, kwargs))

    def finished(sender: object, **kwargs: Any) -> None:
        seen.append(("rollout_finished", sender, kwargs))

    with (
        signals.rollout_step.connected_to(step),
        signals.rollout_finished.connected_to(finished),
    ):
        yield seen


def target(revision: str, percent: int, tag: str = "") -> dict[str, Any]:
    return {"type": REVISION, "revision": revision, "percent": percent, "tag": tag}


def new_service(fake: FakeGoogleCloud, revisions: int = 2, **kwargs: Any) -> tuple[str, list[str]]:
    """A new service of ``revisions`` revisions, all the traffic on the first unless given."""
    name = f"projects/demo/locations/europe-west1/services/shop{next(_numbers)}"
    made = fake.add_service(name, revisions)
    fake.set_traffic(name, kwargs.get("traffic", [target(made[0], 100)]))
    fake.splits[name].clear()
    return name, made


def flipping(*answers: bool) -> Callable[[], bool]:
    """A health check answering ``answers`` in turn."""
    given = iter(answers)
    return lambda: next(given)


def failing_next_write(fake: FakeGoogleCloud, healthy: bool) -> Callable[[], bool]:
    """A health check answering ``healthy`` after making the next traffic write fail (500)."""

    def health() -> bool:
        fake.fail_next("PATCH", "/services/", 500, "INTERNAL", "Internal error encountered.")
        return healthy

    return health


def assert_put_back(
    fake: FakeGoogleCloud,
    service: str,
    old: str,
    error: TrafficShiftError,
    steps: tuple[tuple[int, str], ...],
) -> None:
    """The shift breached after ``steps``; ``old`` has all the traffic again."""
    assert error.result is not None
    assert error.result.steps == steps
    assert fake.traffic(service) == [target(old, 100)]


class TestShift:
    def test_promotes_through_each_step(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """10%, 50%, then 100% on the new revision, the old one scaled down at each step."""
        service, (old, new) = new_service(fake)
        result = traffic.shift(service, new, rollout=FAST, health=lambda: True)
        assert result == TrafficResult(
            service, new, "promoted", ((old, 100),), ((10, "healthy"), (50, "healthy"))
        )
        assert fake.splits[service] == [
            [target(old, 90), target(new, 10)],
            [target(old, 50), target(new, 50)],
            [target(new, 100)],
        ]

    def test_the_others_share_the_rest_as_before_tags_kept(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Several revisions before: each scaled in proportion, whole percents; tags stay at 0%."""
        service, (first, second, third, new) = new_service(fake, 4)
        before = [target(first, 30, "old"), target(second, 45), target(third, 25, "blue")]
        fake.set_traffic(service, before)
        fake.splits[service].clear()
        traffic.shift(service, new, rollout=Rollout(steps=(10, 100), bake=0.05))
        assert fake.splits[service] == [
            [target(first, 27, "old"), target(second, 41), target(third, 22, "blue"),
             target(new, 10)],
            [target(first, 0, "old"), target(third, 0, "blue"), target(new, 100)],
        ]  # fmt: skip

    def test_steps_and_the_end_are_signalled(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """rollout_step for each step (platform cloudrun), then rollout_finished with the result."""
        service, (_, new) = new_service(fake)
        result = traffic.shift(service, new, rollout=FAST)
        common = {"platform": "cloudrun", "target": service, "revision": new}
        assert events == [
            ("rollout_step", traffic, {**common, "weight": 10, "status": "running",
                                       "verdict": None}),
            ("rollout_step", traffic, {**common, "weight": 50, "status": "running",
                                       "verdict": "healthy"}),
            ("rollout_finished", traffic, {**common, "status": "promoted", "result": result}),
        ]  # fmt: skip

    def test_a_failed_health_check_puts_every_target_back(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """health() False at 50%: the split is back exactly (types, revisions, percents, tags)."""
        service, (first, second, new, last) = new_service(fake, 4)
        before = [
            target(first, 20, "old"),
            {"type": LATEST, "revision": "", "percent": 70, "tag": "current"},
            target(second, 10),
            target(new, 0, "canary"),
        ]
        fake.set_traffic(service, before)
        fake.splits[service].clear()
        with pytest.raises(TrafficShiftError, match="rolled back at 50%: health") as caught:
            traffic.shift(service, new, rollout=FAST, health=flipping(True, False))
        assert fake.traffic(service) == before
        assert caught.value.result == TrafficResult(
            service,
            new,
            "rolled_back",
            ((first, 20), (last, 70), (second, 10), (new, 0)),
            ((10, "healthy"), (50, "breached")),
        )
        assert fake.splits[service][0] == [
            target(first, 18, "old"), target(last, 63, "current"), target(second, 9),
            target(new, 10, "canary"),
        ]  # fmt: skip
        assert len(fake.splits[service]) == 3  # two steps, then the split put back
        assert events[-1][2]["status"] == "rolled_back"
        assert events[-1][2]["result"] == caught.value.result

    def test_a_health_check_that_raises_is_a_breach(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """An exception from health() breaches the step; it is the error's cause."""
        service, (old, new) = new_service(fake)
        probe_down = ConnectionError("probe down")

        def health() -> bool:
            raise probe_down

        with pytest.raises(TrafficShiftError, match="ConnectionError: probe down") as caught:
            traffic.shift(service, new, rollout=FAST, health=health)
        assert caught.value.__cause__ is probe_down
        assert_put_back(fake, service, old, caught.value, ((10, "breached"),))

    def test_a_monitor_breach_during_the_bake_puts_the_traffic_back(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Error rates recorded for the revision during the bake breach rollout.thresholds."""
        service, (old, new) = new_service(fake)
        monitor = PerformanceMonitor()
        stop = threading.Event()

        def record() -> None:
            while not stop.wait(0.005):
                monitor.record(new, "error_rate", 1.0)

        def start(sender: object, *, weight: int, **extra: object) -> None:
            if weight == 50:
                threading.Thread(target=record, daemon=True).start()

        # A long bake: the breach ends it as soon as it is seen.
        rollout = Rollout(bake=60, thresholds=Thresholds(max_error_rate=0.05))
        try:
            with signals.rollout_step.connected_to(start, sender=traffic):
                rollout_10 = Rollout(steps=(10, 50), bake=0.05, thresholds=rollout.thresholds)
                with pytest.raises(TrafficShiftError, match="error_rate") as caught:
                    traffic.shift(service, new, rollout=rollout_10, monitor=monitor)
        finally:
            stop.set()
        assert_put_back(fake, service, old, caught.value, ((10, "healthy"), (50, "breached")))

    def test_the_monitor_judges_only_values_recorded_during_the_bake(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Breaching values recorded before the shift, or under another id, do not count."""
        service, (_, new) = new_service(fake)
        monitor = PerformanceMonitor()
        monitor.record("checkout", "error_rate", 1.0)
        monitor.record(new, "latency", 9.0)
        rollout = Rollout(bake=0.05, thresholds=Thresholds(max_error_rate=0.1, max_latency=1.0))
        result = traffic.shift(
            service, new, rollout=rollout, monitor=monitor, deployment_id="checkout"
        )
        assert result.status == "promoted"

    def test_a_rollout_of_one_step_of_100_promotes_at_once(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """steps=(100,): one write, no bake, no judgement; rollout_finished only."""
        service, (_, new) = new_service(fake)
        result = traffic.shift(
            service, new, rollout=Rollout(steps=(100,), bake=60), health=lambda: False
        )
        assert (result.status, result.steps) == ("promoted", ())
        assert fake.splits[service] == [[target(new, 100)]]
        assert [name for name, _, _ in events] == ["rollout_finished"]

    def test_steps_at_or_below_the_revisions_share_are_skipped(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Serving 30% already: no step takes traffic from it; 50% then 100%."""
        service, (old, new) = new_service(fake)
        fake.set_traffic(service, [target(old, 70), target(new, 30)])
        fake.splits[service].clear()
        rollout = Rollout(steps=(10, 30, 50, 100), bake=0.05)
        result = traffic.shift(service, new, rollout=rollout)
        assert result.steps == ((50, "healthy"),)
        assert fake.splits[service] == [
            [target(old, 50), target(new, 50)],
            [target(new, 100)],
        ]

    def test_a_revision_already_serving_everything_returns_at_once(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """Nothing to shift: promoted with no step, no write, no signal."""
        service, (_, new) = new_service(fake)
        fake.set_traffic(service, [{"type": LATEST, "percent": 100}])
        fake.splits[service].clear()
        result = traffic.shift(service, f"{service}/revisions/{new}", rollout=FAST)
        assert result == TrafficResult(service, new, "promoted", ((new, 100),), ())
        assert fake.splits[service] == []
        assert events == []

    def test_a_breach_after_a_new_revision_puts_latest_back_pinned(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """LATEST 100% before; a revision made during the shift: the old one gets it all back."""
        service, (old, new) = new_service(fake, traffic=[{"type": LATEST, "percent": 100}])
        made: list[str] = []

        def health() -> bool:
            made.append(fake.add_revision(service))  # a deploy meanwhile, never judged
            return False

        with pytest.raises(TrafficShiftError) as caught:
            traffic.shift(service, old, rollout=FAST, health=health)
        assert caught.value.result is not None
        assert caught.value.result.before == ((new, 100),)
        assert fake.traffic(service) == [target(new, 100)]
        assert made[0] not in {t["revision"] for t in fake.services[service]["trafficStatuses"]}

    def test_a_breach_puts_latest_back_as_latest_when_no_revision_was_made(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """The latest revision unchanged: the LATEST target itself is put back."""
        latest = [{"type": LATEST, "revision": "", "percent": 100, "tag": ""}]
        service, (old, _) = new_service(fake, traffic=latest)
        with pytest.raises(TrafficShiftError):
            traffic.shift(service, old, rollout=FAST, health=lambda: False)
        assert fake.traffic(service) == latest

    def test_a_split_changed_by_someone_else_is_left_alone(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """Another writer during a bake: the next step refuses and leaves their split."""
        service, (old, new) = new_service(fake)
        theirs = [target(old, 60), target(new, 40, "theirs")]

        def health() -> bool:
            fake.set_traffic(service, theirs)
            return True

        with pytest.raises(PlatformError, match="changed by someone else") as caught:
            traffic.shift(service, new, rollout=FAST, health=health)
        assert not isinstance(caught.value, TrafficShiftError)
        assert fake.traffic(service) == theirs
        assert events[-1][2]["status"] == "failed"

    def test_a_platform_error_mid_shift_puts_the_traffic_back(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """A 500 on the second step: PlatformError with Google's message, the split as before."""
        service, (old, new) = new_service(fake)
        with pytest.raises(PlatformError, match="500 Internal error encountered") as caught:
            traffic.shift(service, new, rollout=FAST, health=failing_next_write(fake, True))
        assert isinstance(caught.value.__cause__, google_exceptions.InternalServerError)
        assert fake.traffic(service) == [target(old, 100)]
        assert [kwargs["status"] for _, _, kwargs in events] == [
            "running",
            "rolled_back",
        ]

    def test_a_split_that_cannot_be_put_back_is_said_with_the_breach(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """A breach, then a 500 putting the traffic back: PlatformError naming both, "failed"."""
        service, (old, new) = new_service(fake)
        with pytest.raises(PlatformError) as caught:
            traffic.shift(service, new, rollout=FAST, health=failing_next_write(fake, False))
        assert not isinstance(caught.value, TrafficShiftError)
        assert str(caught.value) == (
            f"{new} breached at 10%: health() returned False; putting the traffic back failed: "
            f"updating the traffic of {service} failed: 500 Internal error encountered."
        )
        assert fake.traffic(service) == [target(old, 90), target(new, 10)]
        assert events[-1][2]["status"] == "failed"
        assert events[-1][2]["result"].status == "failed"

    def test_a_refused_put_back_after_a_conflict_is_chained_to_googles_error(
        self, fake: FakeGoogleCloud
    ) -> None:
        """Someone writes between a step's read and update: 409, theirs kept, Conflict chained."""
        service, (old, new) = new_service(fake)
        theirs = [target(old, 70), target(new, 30)]
        client = fake.services_client()
        update = client.update_service

        def racing(*args: Any, **kwargs: Any) -> Any:
            if fake.splits[service]:  # the second write: another writer gets in first
                fake.set_traffic(service, theirs)
            return update(*args, **kwargs)

        client.update_service = racing  # type: ignore[method-assign]
        rollout = Rollout(steps=(10, 100), bake=0.01)
        with pytest.raises(PlatformError, match=r"409 .*changed by someone else") as caught:
            CloudRunTraffic(client).shift(service, new, rollout=rollout)
        assert isinstance(caught.value.__cause__, google_exceptions.Conflict)
        assert fake.traffic(service) == theirs

    def test_an_unknown_revision_is_refused_by_the_platform(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, events: Events
    ) -> None:
        """Cloud Run's 400 INVALID_ARGUMENT arrives as PlatformError, nothing changed."""
        service, (old, _) = new_service(fake)
        message = "400 Revision 'shop-99999-zzz' referenced in traffic not found."
        with pytest.raises(PlatformError, match=message) as caught:
            traffic.shift(service, "shop-99999-zzz", rollout=FAST)
        assert isinstance(caught.value.__cause__, google_exceptions.BadRequest)
        assert fake.traffic(service) == [target(old, 100)]
        assert events == []

    def test_an_unknown_service_is_not_found(self, traffic: CloudRunTraffic) -> None:
        """Cloud Run's 404 arrives as PlatformError with its message."""
        service = "projects/demo/locations/europe-west1/services/nowhere"
        message = "404 Resource 'nowhere' of kind 'SERVICE' in region 'europe-west1'"
        with pytest.raises(PlatformError, match=message) as caught:
            traffic.shift(service, "nowhere-00001-aaa", rollout=FAST)
        assert isinstance(caught.value.__cause__, google_exceptions.NotFound)

    def test_an_interrupted_bake_puts_the_traffic_back(self) -> None:
        """A real SIGINT during a bake: the split is back, then KeyboardInterrupt goes on."""
        script = CTRL_C + textwrap.dedent(
            """
            import json
            from illunare import Rollout
            from illunare.gcp import CloudRunTraffic
            from tests.fake_gcp import FakeGoogleCloud

            fake = FakeGoogleCloud()
            service = "projects/demo/locations/us-central1/services/shop"
            old, new = fake.add_service(service, 2)
            before = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": old,
                       "percent": 100, "tag": "stable"}]
            fake.set_traffic(service, before)
            traffic = CloudRunTraffic(fake.services_client())

            ctrl_c_in("judge")  # the first step's bake
            try:
                traffic.shift(service, new, rollout=Rollout(bake=60))
            except KeyboardInterrupt:
                print(json.dumps({"back": fake.traffic(service) == before,
                                  "splits": len(fake.splits[service])}))
            fake.close()
            """
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"back": True, "splits": 3}


class TestBadInput:
    @pytest.mark.parametrize(
        "service",
        [
            "shop",
            "projects/demo/locations/europe-west1/functions/shop",
            "projects/demo/services/shop",
            "projects/demo/locations/europe-west1/services/shop/revisions/shop-00001-aaa",
            42,
        ],
    )
    def test_a_service_not_named_projects_locations_services_is_refused(
        self, traffic: CloudRunTraffic, service: object
    ) -> None:
        """InvalidArgumentError before any call."""
        with pytest.raises(InvalidArgumentError, match="projects/P/locations/L/services/S"):
            traffic.shift(service, "shop-00001-aaa")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "revision",
        ["", "Shop-00001-aaa", "shop/00001", "projects/x/locations/y/services/z/revisions/a", None],
    )
    def test_a_bad_revision_name_is_refused(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, revision: object
    ) -> None:
        """InvalidArgumentError; the traffic is untouched."""
        service, _ = new_service(fake)
        with pytest.raises(InvalidArgumentError, match="revision"):
            traffic.shift(service, revision)  # type: ignore[arg-type]
        assert fake.splits[service] == []

    @pytest.mark.parametrize(
        ("argument", "value"),
        [
            ("rollout", {"steps": (10, 100)}),
            ("health", True),
            ("monitor", "monitor"),
            ("deployment_id", ""),
        ],
    )
    def test_bad_gate_arguments_are_refused(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic, argument: str, value: Any
    ) -> None:
        """InvalidArgumentError naming the argument; the traffic is untouched."""
        service, (_, new) = new_service(fake)
        with pytest.raises(InvalidArgumentError, match=argument):
            traffic.shift(service, new, **{argument: value})
        assert fake.splits[service] == []

    def test_no_credentials_for_the_default_clients_is_a_platform_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without a client given and no usable credentials: PlatformError saying why."""
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
        with pytest.raises(PlatformError, match=r"making a Cloud Run client failed: .*missing"):
            CloudRunTraffic()
        with pytest.raises(PlatformError, match="making a Cloud Functions client failed"):
            CloudFunctionDeployer()

    def test_a_client_of_the_wrong_kind_is_refused(self) -> None:
        """The constructors check their clients."""
        with pytest.raises(InvalidArgumentError) as caught:
            CloudRunTraffic("client")  # type: ignore[arg-type]
        assert (
            str(caught.value) == "services_client must be a run_v2.ServicesClient or None, got str"
        )
        with pytest.raises(InvalidArgumentError) as caught:
            CloudFunctionDeployer("client")  # type: ignore[arg-type]
        assert str(caught.value) == (
            "functions_client must be a functions_v2.FunctionServiceClient or None, got str"
        )


class TestFakeServer:
    """The fake refuses what Cloud Run refuses, with Google's error body."""

    def _update(self, fake: FakeGoogleCloud, service: str, split: list[dict[str, Any]]) -> None:
        client = fake.services_client()
        current = client.get_service(name=service)
        del current.traffic[:]
        for entry in split:
            current.traffic.append(
                run_v2.TrafficTarget(
                    type_=getattr(run_v2.TrafficTargetAllocationType, entry["type"]),
                    revision=entry["revision"],
                    percent=entry["percent"],
                    tag=entry["tag"],
                )
            )
        client.update_service(service=current).result()  # type: ignore[no-untyped-call]

    @pytest.mark.parametrize(
        ("split", "message"),
        [
            (lambda old, new: [target(old, 50), target(new, 40)], "must sum to 100, got 90"),
            (lambda old, new: [target(old, 100), target("shop-x", 0, "t")], "'shop-x' referenced"),
            (lambda old, new: [target(old, 100, "t"), target(new, 0, "t")], "tags must be unique"),
        ],
    )
    def test_a_bad_split_is_400_invalid_argument(
        self, fake: FakeGoogleCloud, split: Callable[[str, str], Any], message: str
    ) -> None:
        """A split not summing to 100, an unknown revision, a duplicate tag: 400, unchanged."""
        service, (old, new) = new_service(fake)
        with pytest.raises(google_exceptions.BadRequest, match=message) as caught:
            self._update(fake, service, split(old, new))
        assert caught.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert fake.traffic(service) == [target(old, 100)]

    def test_a_stale_etag_is_409(self, fake: FakeGoogleCloud) -> None:
        """An update from a read older than the last change is refused."""
        service, (_, new) = new_service(fake)
        client = fake.services_client()
        stale = client.get_service(name=service)
        fake.set_traffic(service, [target(new, 100)])
        stale.traffic[0].percent = 100
        with pytest.raises(google_exceptions.Conflict, match="etag"):
            client.update_service(service=stale).result()  # type: ignore[no-untyped-call]
        assert fake.traffic(service) == [target(new, 100)]


def write_source(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


SOURCE = {
    "main.py": "def resize(request):\n    return 'ok'\n",
    "requirements.txt": "pillow\n",
    "lib/sizes.py": "WIDTHS = (320, 640)\n",
}


def new_function(fake: FakeGoogleCloud) -> tuple[str, str, str]:
    """A new function: its name, its Cloud Run service, the revision serving."""
    name = f"projects/demo/locations/europe-west1/functions/resize{next(_numbers)}"
    service = fake.add_function(name)
    return name, service, fake.revisions[service][0]


class TestCloudFunctionDeployer:
    def test_deploys_the_folder_and_shifts_the_traffic(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """Zipped, uploaded, built as a new revision serving nothing, then shifted 10/50/100."""
        function, service, old = new_function(fake)
        result = deployer.deploy(function, write_source(tmp_path, SOURCE), rollout=FAST)
        new = fake.revisions[service][-1]
        assert result == TrafficResult(
            service, new, "promoted", ((old, 100),), ((10, "healthy"), (50, "healthy"))
        )
        assert fake.builds[function] == [["lib/sizes.py", "main.py", "requirements.txt"]]
        assert fake.splits[service] == [
            [target(old, 100)],  # the update: the traffic stays where it was
            [target(old, 90), target(new, 10)],
            [target(old, 50), target(new, 50)],
            [target(new, 100)],
        ]
        config = fake.functions[function]["serviceConfig"]
        assert (config["revision"], config["allTrafficOnLatestRevision"]) == (new, False)

    def test_a_split_following_the_latest_revision_is_pinned_before_the_update(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """LATEST 100% (kept as is by the update) is pinned first: the canary is judged."""
        function, service, old = new_function(fake)
        assert fake.traffic(service)[0]["type"] == LATEST
        seen: list[list[dict[str, Any]]] = []

        def health() -> bool:
            seen.append(fake.traffic(service))
            return False

        with pytest.raises(TrafficShiftError, match="rolled back at 10%"):
            deployer.deploy(function, write_source(tmp_path, SOURCE), rollout=FAST, health=health)
        new = fake.revisions[service][-1]
        assert seen == [[target(old, 90), target(new, 10)]]
        assert fake.traffic(service) == [target(old, 100)]

    def test_the_archive_holds_the_files_as_they_are(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """The uploaded zip has each file under its path relative to the folder."""
        function, _, _ = new_function(fake)
        uploaded = set(fake.uploads)
        deployer.deploy(function, str(write_source(tmp_path, SOURCE)), rollout=FAST)
        (token,) = set(fake.uploads) - uploaded
        archive = fake.uploads[token]
        assert archive is not None
        with zipfile.ZipFile(io.BytesIO(archive)) as files:
            assert {name: files.read(name).decode() for name in files.namelist()} == SOURCE

    def test_bytecode_caches_and_git_folders_are_not_uploaded(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """Files under __pycache__ or .git, at any depth, are left out of the archive."""
        function, _, _ = new_function(fake)
        junk = {
            "__pycache__/main.cpython-312.pyc": "x",
            "lib/__pycache__/sizes.cpython-312.pyc": "x",
            ".git/HEAD": "ref: refs/heads/main\n",
        }
        deployer.deploy(function, write_source(tmp_path, {**SOURCE, **junk}), rollout=FAST)
        assert fake.builds[function] == [sorted(SOURCE)]

    def test_a_breach_leaves_the_new_revision_serving_nothing(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """health() False at 10%: the old revision has all the traffic again."""
        function, service, old = new_function(fake)
        with pytest.raises(TrafficShiftError, match="rolled back at 10%") as caught:
            deployer.deploy(
                function, write_source(tmp_path, SOURCE), rollout=FAST, health=lambda: False
            )
        assert_put_back(fake, service, old, caught.value, ((10, "breached"),))

    def test_a_failed_build_is_a_platform_error_and_changes_nothing(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """No main.py: the operation fails with the build's message; no revision, no traffic."""
        function, service, old = new_function(fake)
        source = write_source(tmp_path, {"app.py": "x = 1\n"})
        with pytest.raises(PlatformError, match=r"Build failed: missing main\.py") as caught:
            deployer.deploy(function, source, rollout=FAST)
        assert isinstance(caught.value.__cause__, google_exceptions.GoogleAPICallError)
        assert fake.revisions[service] == [old]
        assert fake.traffic(service) == [target(old, 100)]  # pinned, serving as before

    def test_a_refused_upload_is_a_platform_error(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """The storage's refusal comes with its answer; the function is not updated."""
        function, service, old = new_function(fake)
        fake.fail_next("PUT", "^/upload/", 403, "PERMISSION_DENIED", "Access denied.")
        with pytest.raises(PlatformError, match=r"uploading the source .* 403 .*Access denied"):
            deployer.deploy(function, write_source(tmp_path, SOURCE), rollout=FAST)
        assert fake.builds[function] == []
        assert fake.revisions[service] == [old]

    def test_a_refused_upload_url_is_a_platform_error(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """generateUploadUrl's 403 arrives as PlatformError with Google's message."""
        function, service, old = new_function(fake)
        message = "Permission 'cloudfunctions.functions.sourceCodeSet' denied"
        fake.fail_next("POST", "generateUploadUrl", 403, "PERMISSION_DENIED", message)
        with pytest.raises(PlatformError, match=f"upload URL .* 403 {message}") as caught:
            deployer.deploy(function, write_source(tmp_path, SOURCE), rollout=FAST)
        assert isinstance(caught.value.__cause__, google_exceptions.Forbidden)
        assert fake.revisions[service] == [old]

    def test_an_unknown_function_is_not_found(
        self, deployer: CloudFunctionDeployer, tmp_path: Path
    ) -> None:
        """Cloud Functions' 404 arrives as PlatformError with its message."""
        function = "projects/demo/locations/europe-west1/functions/nowhere"
        with pytest.raises(PlatformError, match=f"404 Function {function} does not exist"):
            deployer.deploy(function, write_source(tmp_path, SOURCE), rollout=FAST)

    @pytest.mark.parametrize(
        "function",
        ["resize", "projects/demo/locations/europe-west1/services/resize", None],
    )
    def test_a_bad_function_name_is_refused(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path,
        function: object,
    ) -> None:  # fmt: skip
        """InvalidArgumentError before anything is uploaded."""
        uploads = len(fake.uploads)
        with pytest.raises(InvalidArgumentError, match="projects/P/locations/L/functions/F"):
            deployer.deploy(function, write_source(tmp_path, SOURCE))  # type: ignore[arg-type]
        assert len(fake.uploads) == uploads

    @pytest.mark.parametrize("source", ["missing", "main.py", "empty", 42])
    def test_a_source_that_is_not_a_folder_with_files_is_refused(
        self, fake: FakeGoogleCloud, deployer: CloudFunctionDeployer, tmp_path: Path, source: Any
    ) -> None:
        """A missing folder, a file, an empty folder, not a path: nothing uploaded."""
        function, _, _ = new_function(fake)
        write_source(tmp_path, SOURCE)
        (tmp_path / "empty").mkdir()
        uploads = len(fake.uploads)
        given = tmp_path / source if isinstance(source, str) else source
        with pytest.raises(InvalidArgumentError, match=r"source|folder"):
            deployer.deploy(function, given, rollout=FAST)
        assert len(fake.uploads) == uploads


class TestCloudRunShiftStep:
    def _deployment(self) -> Deployment:
        return Deployment(f"gcp-service-{next(_numbers)}")

    def test_a_later_failing_step_undoes_the_shift(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """The shift promoted, a later step failed: the traffic is back as before the step."""
        service, (old, new) = new_service(fake)
        fake.set_traffic(service, [target(old, 100, "stable")])

        def boom() -> None:
            raise RuntimeError("migration failed")

        steps = [CloudRunShift(traffic, service, new, rollout=FAST), Migration("m", boom)]
        with pytest.raises(DeploymentError, match="migration failed") as caught:
            self._deployment().run(steps)
        result = caught.value.result
        assert result is not None
        assert result.status == "rolled_back"
        assert [(s.kind, s.target, s.status) for s in result.steps] == [
            ("CloudRunShift", f"{service} -> {new}", "undone"),
            ("Migration", "m", "failed"),
        ]
        assert fake.traffic(service) == [target(old, 100, "stable")]

    def test_a_breached_shift_fails_the_deployment_and_undoes_earlier_steps(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """The shift's breach is the step's failure; the migration before it is undone."""
        service, (old, new) = new_service(fake)
        undone: list[str] = []
        steps = [
            Migration("m", lambda: None, lambda: undone.append("m")),
            CloudRunShift(traffic, service, new, rollout=FAST, health=lambda: False),
        ]
        with pytest.raises(DeploymentError) as caught:
            self._deployment().run(steps)
        assert isinstance(caught.value.__cause__, TrafficShiftError)
        assert undone == ["m"]
        assert fake.traffic(service) == [target(old, 100)]

    def test_the_undo_pins_latest_to_what_it_served_after_a_new_revision(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """LATEST 100% before the step, a revision made since: the undo gives it nothing."""
        service, (old, new) = new_service(fake, traffic=[{"type": LATEST, "percent": 100}])

        def deploy_then_fail() -> None:
            fake.add_revision(service)
            raise RuntimeError("later step failed")

        steps = [
            CloudRunShift(traffic, service, old, rollout=FAST),
            Migration("m", deploy_then_fail),
        ]
        with pytest.raises(DeploymentError):
            self._deployment().run(steps)
        assert fake.traffic(service) == [target(new, 100)]

    def test_the_undo_leaves_a_split_changed_since(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Someone set the traffic after the step: the undo refuses, rollback_failed."""
        service, (old, new) = new_service(fake)
        theirs = [target(old, 20), target(new, 80)]

        def change_then_fail() -> None:
            fake.set_traffic(service, theirs)
            raise RuntimeError("later step failed")

        steps = [
            CloudRunShift(traffic, service, new, rollout=FAST),
            Migration("m", change_then_fail),
        ]
        with pytest.raises(DeploymentError) as caught:
            self._deployment().run(steps)
        assert caught.value.result is not None
        assert caught.value.result.status == "rollback_failed"
        assert "changed by someone else" in str(caught.value.result.steps[0].error)
        assert fake.traffic(service) == theirs

    def test_a_plan_accepts_the_step(self, fake: FakeGoogleCloud, traffic: CloudRunTraffic) -> None:
        """Deployment.plan() checks it like any step and runs it."""
        service, (_, new) = new_service(fake)
        deployment = self._deployment()
        plan = deployment.plan([CloudRunShift(traffic, service, new, rollout=FAST)])
        assert deployment.run(plan).status == "succeeded"
        assert fake.traffic(service) == [target(new, 100)]

    def test_a_plan_refuses_an_unknown_service_or_a_revision_of_another(
        self, fake: FakeGoogleCloud, traffic: CloudRunTraffic
    ) -> None:
        """Deployment.plan() reads the service: a 404, a foreign revision name; nothing changed."""
        service, (old, _) = new_service(fake)
        nowhere = "projects/demo/locations/europe-west1/services/nowhere"
        deployment = self._deployment()
        with pytest.raises(PackageError) as caught:
            deployment.plan(
                [
                    CloudRunShift(traffic, nowhere, "nowhere-00001-aaa", rollout=FAST),
                    CloudRunShift(traffic, service, "other-00001-aaa", rollout=FAST),
                ]
            )
        message = str(caught.value)
        assert "404 Resource 'nowhere' of kind 'SERVICE'" in message
        assert f"other-00001-aaa is not a revision of {service}" in message
        assert fake.traffic(service) == [target(old, 100)]

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (("traffic", "projects/p/locations/l/services/s", "s-1"), "CloudRunTraffic"),
            ((None, "s", "s-1"), "projects/P/locations/L/services/S"),
            ((None, "projects/p/locations/l/services/s", "S 1"), "revision"),
        ],
    )
    def test_bad_arguments_are_refused_at_construction(
        self, traffic: CloudRunTraffic, arguments: tuple[Any, ...], message: str
    ) -> None:
        """InvalidArgumentError when the step is made."""
        given = (arguments[0] or traffic, *arguments[1:])
        with pytest.raises(InvalidArgumentError, match=message):
            CloudRunShift(*given)


class TestImport:
    def test_all_lists_the_public_names(self) -> None:
        """illunare.gcp.__all__ is sorted and names what the API promises."""
        import illunare.gcp

        assert illunare.gcp.__all__ == [
            "CloudFunctionDeployer",
            "CloudRunShift",
            "CloudRunTraffic",
            "TrafficResult",
        ]
        assert all(hasattr(illunare.gcp, name) for name in illunare.gcp.__all__)

    def test_import_illunare_loads_no_google_module(self) -> None:
        """The integration loads on use: `import illunare` imports nothing of google."""
        code = (
            "import sys, illunare; print(sorted(m for m in sys.modules if m.startswith('google')))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"

    def test_without_the_extra_the_error_says_what_to_install(self) -> None:
        """Importing illunare.gcp without google-cloud-run: MissingExtraError naming the extra."""
        code = textwrap.dedent(
            """
            import sys
            class Refuse:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] == "google":
                        raise ModuleNotFoundError(name)
            sys.meta_path.insert(0, Refuse())
            try:
                import illunare.gcp
            except ImportError as error:
                print(type(error).__name__, error)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == (
            f"{MissingExtraError.__name__} illunare.gcp needs an optional extra: "
            "pip install 'illunare[gcp]'"
        )
