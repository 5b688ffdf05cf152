"""Cloud Run traffic shifting and Cloud Functions deployment (extra ``gcp``).

::

    from illunare import Rollout
    from illunare.gcp import CloudFunctionDeployer, CloudRunTraffic

    traffic = CloudRunTraffic()  # a run_v2.ServicesClient with the default credentials
    traffic.shift("projects/p/locations/europe-west1/services/shop", "shop-00042-xiv",
                  rollout=Rollout(steps=(10, 50, 100), bake=300), health=probe)

    CloudFunctionDeployer().deploy("projects/p/locations/europe-west1/functions/resize", "src/")

A shift gives the new revision each step's percent of the traffic (the
other targets share the rest as they shared the traffic before), bakes,
then judges; a breach puts every traffic target back as it was (type,
revision, percent, tag; a target following the latest revision pinned to
the revision it served if one was created meanwhile) and raises
``TrafficShiftError``. A Cloud Function
has no traffic call of its own: its traffic is split on its Cloud Run
service. Every write reads the service first and refuses to overwrite a
split someone else set meanwhile (and the service's etag guards the write).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from illunare import signals
from illunare._arguments import optional
from illunare._deploy.gate import watch
from illunare._deploy.steps import Parts, Problem, Undo
from illunare._monitor.monitor import PerformanceMonitor
from illunare._platforms.traffic import (
    Target,
    percent_of,
    pin,
    step_split,
)
from illunare._rollout.config import Rollout
from illunare.exceptions import (
    InvalidArgumentError,
    MissingExtraError,
    PlatformError,
    TrafficShiftError,
)

try:
    from google.api_core.exceptions import GoogleAPICallError, GoogleAPIError
    from google.api_core.operation import Operation
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import functions_v2, run_v2
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("illunare.gcp", "gcp") from error

__all__ = ["CloudFunctionDeployer", "CloudRunShift", "CloudRunTraffic", "TrafficResult"]

logger = logging.getLogger("illunare")

_C = TypeVar("_C")  # a Google client class
_SERVICE = re.compile(r"projects/[^/]+/locations/[^/]+/services/[^/]+")
_FUNCTION = re.compile(r"projects/[^/]+/locations/[^/]+/functions/[^/]+")
#: a revision's short name, as Cloud Run makes and accepts them
_REVISION = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_KIND = "TRAFFIC_TARGET_ALLOCATION_TYPE_"
#: what deploy() changes of a function: its source, and that traffic stays where it is
_MASK = ("build_config.source", "service_config.all_traffic_on_latest_revision")
#: folders of a function's source never uploaded: bytecode caches, a git repository
_SKIPPED = frozenset({"__pycache__", ".git"})
#: seconds an upload of the source may take
_UPLOAD_TIMEOUT = 600.0
#: what the clients raise for a failed call: an HTTP error, a failed operation,
#: credentials, a connection (requests' errors are OSErrors), an operation's timeout
_FAILURES = (GoogleAPIError, GoogleAuthError, OSError, concurrent.futures.TimeoutError)

Split = tuple[Target, ...]


@attrs.frozen
class TrafficResult:
    """How a traffic shift ended: promoted, or rolled back with the traffic as it was."""

    #: the Cloud Run service, ``"projects/P/locations/L/services/S"``
    service: str
    #: the revision shifted to (short name)
    revision: str
    #: ``"promoted"`` (all traffic on ``revision``), ``"rolled_back"`` (the
    #: traffic is back as it was) or ``"failed"`` (it could not be put back)
    status: str
    #: ``((revision, percent), ...)``: the split before the shift, a target
    #: following the latest revision named by the revision it served
    before: tuple[tuple[str, int], ...]
    #: ``((percent, verdict), ...)``: each step baked and judged, ``"healthy"``
    #: or ``"breached"`` (the step of 100 promotes, unjudged, as a rollout's)
    steps: tuple[tuple[int, str], ...]


class _ChangedError(PlatformError):
    """Someone else set the traffic during the shift (or since the step): theirs to keep."""


@attrs.frozen
class _Shift:
    """A shift that promoted, with the splits an undo needs."""

    result: TrafficResult
    before: Split
    after: Split
    #: the latest ready revision at the start (what ``before``'s LATEST targets served)
    latest: str


@attrs.frozen
class _Gate:
    """What a shift judges at each step, checked."""

    rollout: Rollout
    health: Callable[[], object] | None
    monitor: PerformanceMonitor | None
    deployment_id: str | None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.rollout, Rollout):
            raise InvalidArgumentError(f"rollout must be a Rollout, got {self.rollout!r}")
        if self.health is not None and not callable(self.health):
            raise InvalidArgumentError(f"health must be a callable or None, got {self.health!r}")
        optional("monitor", self.monitor, PerformanceMonitor)
        if self.deployment_id is not None and (
            not isinstance(self.deployment_id, str) or not self.deployment_id
        ):
            raise InvalidArgumentError(
                f"deployment_id must be a non-empty str or None, got {self.deployment_id!r}"
            )

    def judge(self, revision: str) -> tuple[str, BaseException | None] | None:
        """Bake, then judge: the breach (and the exception behind it), or None when healthy.

        The monitor's values recorded during the bake under ``deployment_id``
        (default: the revision) are judged by ``rollout.thresholds`` as the
        bake goes, the first breach ending it; then ``health()``, which
        breaches by returning something false or by raising.
        """
        if self.monitor is not None:
            watched = self.deployment_id or revision
            breach = watch(self.monitor, watched, self.rollout.thresholds, self.rollout.bake)
            if breach is not None:
                return breach, None
        else:
            time.sleep(self.rollout.bake)
        if self.health is not None:
            try:
                healthy = self.health()
            except Exception as error:  # noqa: BLE001  # a failing probe is a failed check
                return f"health() raised {type(error).__name__}: {error}", error
            if not healthy:
                return f"health() returned {healthy!r}", None
        return None


def _resource(name: object, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise InvalidArgumentError(
            f"expected a resource name of the form {example!r}, got {name!r}"
        )
    return name


def _revision(service: str, revision: object) -> str:
    """The short name of ``revision``: given short, or as ``<service>/revisions/<name>``."""
    if isinstance(revision, str) and revision.startswith(f"{service}/revisions/"):
        revision = revision.removeprefix(f"{service}/revisions/")
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision):
        raise InvalidArgumentError(
            f"revision must be a revision name of {service} (lowercase letters, digits and "
            f"hyphens), got {revision!r}"
        )
    return revision


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """Turn a failed call to Google Cloud into a PlatformError saying ``what`` failed."""
    try:
        yield
    except _FAILURES as error:
        raise PlatformError(f"{what} failed: {_said(error)}") from error


def _client(given: _C | None, kind: type[_C], argument: str, platform: str) -> _C:
    """``given`` if of ``kind``; None: a ``kind`` made with the default credentials."""
    if given is None:
        with _calling(f"making a {platform} client"):
            return kind()
    if not isinstance(given, kind):
        package = kind.__module__.split(".")[2]  # google.cloud.<package>.services...
        raise InvalidArgumentError(
            f"{argument} must be a {package}.{kind.__name__} or None, got {type(given).__name__}"
        )
    return given


def _said(error: BaseException) -> str:
    """What Google Cloud answered: the status and its message (without the request's URL)."""
    if not isinstance(error, GoogleAPICallError):
        return str(error)
    message = error.message
    body = getattr(error.response, "json", None)  # an HTTP response (an operation has none)
    # not Google's error body: the message as api_core put it
    with contextlib.suppress(ValueError, KeyError, TypeError):
        if callable(body):
            message = body()["error"]["message"]
    return f"{error.code} {message}" if error.code else message


def _wait(operation: Operation) -> Any:
    """The response of a long-running operation, once done (a failed one raises its error)."""
    return operation.result()  # type: ignore[no-untyped-call]  # api_core leaves it untyped


def _targets(traffic: Sequence[run_v2.TrafficTarget]) -> Split:
    return tuple(
        Target(
            run_v2.TrafficTargetAllocationType(t.type_).name.removeprefix(_KIND),
            t.revision,
            t.percent,
            t.tag,
        )
        for t in traffic
    )


def _traffic(split: Split) -> list[run_v2.TrafficTarget]:
    return [
        run_v2.TrafficTarget(
            # any kind read back as it was (the kinds a shift writes are LATEST and REVISION)
            type_=getattr(run_v2.TrafficTargetAllocationType, _KIND + t.kind),
            revision=t.revision,
            percent=t.percent,
            tag=t.tag,
        )
        for t in split
    ]


def _describe(split: Split) -> str:
    return ", ".join(
        f"{t.revision or t.kind.lower()} {t.percent}%" + (f" (tag {t.tag})" if t.tag else "")
        for t in split
    )


class CloudRunTraffic:
    """Shifts a Cloud Run service's traffic to a new revision step by step, judged at each.

    Args:
        services_client: a ``google.cloud.run_v2.ServicesClient``; None makes
            one with the default credentials.

    Raises:
        InvalidArgumentError: ``services_client`` is not a ServicesClient.
        PlatformError: no client could be made (no default credentials).

    """

    def __init__(self, services_client: run_v2.ServicesClient | None = None) -> None:
        self._client = _client(
            services_client, run_v2.ServicesClient, "services_client", "Cloud Run"
        )

    def __repr__(self) -> str:
        return f"<CloudRunTraffic {type(self._client.transport).__name__}>"

    def shift(
        self,
        service: str,
        revision: str,
        *,
        rollout: Rollout = Rollout(),  # noqa: B008  # a frozen value, as in the API
        health: Callable[[], object] | None = None,
        monitor: PerformanceMonitor | None = None,
        deployment_id: str | None = None,
    ) -> TrafficResult:
        """Give ``revision`` the traffic of ``service`` step by step; put it back on a breach.

        Each step of ``rollout.steps`` below 100 gives ``revision`` that
        percent (a step at or below the share it already serves is skipped:
        a shift never takes traffic from it): the service's other targets (a
        target following the latest revision pinned to the one it served)
        keep their order and tags and share the rest in proportion to what
        they served before, in whole percents summing to exactly 100
        (largest remainders). The step bakes
        ``rollout.bake`` seconds, then is judged: a breach of
        ``rollout.thresholds`` in the values ``monitor`` records for
        ``deployment_id`` (default: the revision's name) during the bake, or
        ``health()`` returning something false or raising. Then 100% goes to
        ``revision`` (tagged targets stay, at 0%). ``min_samples``,
        ``on_inconclusive`` and ``sticky`` shape in-process rollouts only.
        A revision already serving all the traffic returns at once.

        Sends ``signals.rollout_step`` once each step's split is in effect and
        ``signals.rollout_finished`` at the end (``platform="cloudrun"``).

        Returns:
            The TrafficResult, status ``"promoted"``.

        Raises:
            InvalidArgumentError: a name not of the form
                ``"projects/P/locations/L/services/S"``, a bad revision name,
                ``rollout``/``monitor`` of the wrong type, ``health`` not
                callable, an empty ``deployment_id``; nothing changed.
            TrafficShiftError: a step breached; the traffic is back exactly
                as it was (a target following the latest revision pinned to
                the one it served if a revision was created meanwhile);
                ``result`` says at which step.
            PlatformError: Google Cloud refused or failed a call (its message,
                the client's error as ``__cause__``), or someone else changed
                the traffic during the shift; the traffic was put back if it
                could be. A ``KeyboardInterrupt`` puts it back too, then goes on.

        """
        return self._shift(service, revision, _Gate(rollout, health, monitor, deployment_id)).result

    # Internals ------------------------------------------------------------------

    def _shift(self, service: str, revision: str, gate: _Gate) -> _Shift:
        service = _resource(service, _SERVICE, "projects/P/locations/L/services/S")
        revision = _revision(service, revision)
        with _calling(f"reading the traffic of {service}"):
            current = self._client.get_service(name=service)
        before = _targets(current.traffic)
        latest = current.latest_ready_revision.rpartition("/")[2]
        served = tuple((t.revision or t.kind, t.percent) for t in pin(before, latest))
        steps: list[tuple[int, str]] = []

        def result(status: str) -> TrafficResult:
            return TrafficResult(service, revision, status, served, tuple(steps))

        share = percent_of(pin(before, latest), revision)
        if share == 100:
            return _Shift(result("promoted"), before, before, latest)
        written = [before]  # every split this shift set, or may have
        started = False  # a step took effect: the end is told
        try:
            breach = None
            # a step at or below the revision's share would take traffic from it
            for weight in (weight for weight in gate.rollout.steps if share < weight < 100):
                written.append(step_split(before, latest, revision, weight))
                self._write(service, written[-1], written[-2:-1])
                started = True
                self._send(
                    signals.rollout_step,
                    target=service,
                    revision=revision,
                    weight=weight,
                    status="running",
                    verdict=steps[-1][1] if steps else None,
                )
                breach = gate.judge(revision)
                steps.append((weight, "healthy" if breach is None else "breached"))
                if breach is not None:
                    break
            else:
                written.append(step_split(before, latest, revision, 100))
                self._write(service, written[-1], written[-2:-1])
        except BaseException as error:
            self._end(
                service,
                (before, latest),
                written,
                result if started else None,
                str(error),
                error=error,
            )
            raise
        if breach is not None:
            why, cause = breach
            weight = steps[-1][0]
            self._end(
                service,
                (before, latest),
                written,
                result,
                f"{revision} breached at {weight}%: {why}",
            )
            raise TrafficShiftError(
                f"shift of {service} to {revision} rolled back at {weight}%: {why}",
                result("rolled_back"),
            ) from cause
        promoted = result("promoted")
        self._finished(promoted)
        return _Shift(promoted, before, written[-1], latest)

    def _pin_latest(self, service: str) -> None:
        """Pin the targets of ``service`` following the latest revision to the one they serve.

        As ``gcloud run deploy --no-traffic`` does: a revision created next
        gets no traffic until a shift gives it some.
        """
        with _calling(f"reading the traffic of {service}"):
            current = self._client.get_service(name=service)
        before = _targets(current.traffic)
        pinned = pin(before, current.latest_ready_revision.rpartition("/")[2])
        if pinned != before:
            self._write(service, pinned, (before,))

    def _end(
        self,
        service: str,
        before: tuple[Split, str],
        written: Sequence[Split],
        result: Callable[[str], TrafficResult] | None,
        failure: str,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Put the traffic back after a breach or an ``error``; tell the end if a step took effect.

        ``before`` is the split and the latest ready revision it was read
        with (see ``_write``). A split someone else set stays theirs. When
        the traffic cannot be put back, PlatformError says why, with
        ``failure`` (an interrupt goes on instead; that is logged).
        """
        status = "failed"
        try:
            if not isinstance(error, _ChangedError):
                self._write(service, before[0], written, served=before[1])
                status = "rolled_back"
        except Exception as failed:
            if error is None or isinstance(error, Exception):
                # chained to Google's error: the put-back's, else the one that ended the shift
                cause = next(
                    (
                        e.__cause__
                        for e in (failed, error)
                        if isinstance(e, PlatformError) and isinstance(e.__cause__, _FAILURES)
                    ),
                    failed,
                )
                raise PlatformError(
                    f"{failure}; putting the traffic back failed: {failed}"
                ) from cause
            logger.exception("the traffic of %s could not be put back", service)
        finally:
            if result is not None:
                self._finished(result(status))

    def _finished(self, result: TrafficResult) -> None:
        self._send(
            signals.rollout_finished,
            target=result.service,
            revision=result.revision,
            status=result.status,
            result=result,
        )

    def _write(
        self, service: str, split: Split, expected: Sequence[Split], *, served: str = ""
    ) -> None:
        """Set the traffic of ``service`` to ``split`` if it is one of ``expected`` now.

        ``served`` is the latest ready revision when ``split`` was read: if
        the service's is another one now, ``split``'s targets following the
        latest revision are written pinned to ``served``, the revision they
        served (a revision created meanwhile gets no traffic by surprise).

        Raises:
            PlatformError: the call failed, or the traffic is another split:
                someone else set it; it is left as it is.

        """
        with _calling(f"updating the traffic of {service}"):
            current = self._client.get_service(name=service)
            now = _targets(current.traffic)
            if served and current.latest_ready_revision.rpartition("/")[2] != served:
                split = pin(split, served)
            if now == split:
                return
            if now not in expected:
                raise _ChangedError(
                    f"the traffic of {service} was changed by someone else ({_describe(now)}); "
                    "left as it is"
                )
            del current.traffic[:]
            current.traffic.extend(_traffic(split))
            _wait(self._client.update_service(service=current))

    def _send(self, signal: Any, **kwargs: Any) -> None:
        if signal.receivers:
            signals._send(signal, self, platform="cloudrun", **kwargs)


def _zip(folder: Path) -> bytes:
    """The files under ``folder`` as a zip archive, paths relative to it, in sorted order.

    Files under a ``__pycache__`` or ``.git`` folder are left out.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and _SKIPPED.isdisjoint(relative.parts):
                archive.write(path, relative.as_posix())
        if not archive.namelist():
            raise InvalidArgumentError(f"the source folder {str(folder)!r} has no files")
    return buffer.getvalue()


def _upload(url: str, archive: bytes, function: str) -> None:
    """PUT ``archive`` to the signed ``url``; PlatformError with the storage's answer."""
    if not url.startswith(("https://", "http://")):
        raise PlatformError(f"the upload URL for {function} is not an HTTP URL: {url!r}")
    request = urllib.request.Request(  # noqa: S310  # the scheme is checked above
        url, data=archive, method="PUT", headers={"Content-Type": "application/zip"}
    )
    what = f"uploading the source of {function}"
    try:
        with urllib.request.urlopen(request, timeout=_UPLOAD_TIMEOUT):  # noqa: S310  # checked above
            pass
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace").strip()
        raise PlatformError(f"{what} failed: HTTP {error.code} {body}") from error
    except OSError as error:
        raise PlatformError(f"{what} failed: {error}") from error


class CloudFunctionDeployer:
    """Uploads new code for a Cloud Function (2nd gen), then shifts traffic to it gradually.

    Args:
        functions_client: a ``google.cloud.functions_v2.FunctionServiceClient``;
            None makes one with the default credentials.
        services_client: the ``run_v2.ServicesClient`` that shifts the traffic
            on the function's Cloud Run service; None makes one.

    Raises:
        InvalidArgumentError: a client of the wrong type.
        PlatformError: no client could be made (no default credentials).

    """

    def __init__(
        self,
        functions_client: functions_v2.FunctionServiceClient | None = None,
        services_client: run_v2.ServicesClient | None = None,
    ) -> None:
        self._client = _client(
            functions_client,
            functions_v2.FunctionServiceClient,
            "functions_client",
            "Cloud Functions",
        )
        #: shifts the traffic of the functions' Cloud Run services (the signals' sender)
        self.traffic = CloudRunTraffic(services_client)

    def __repr__(self) -> str:
        return f"<CloudFunctionDeployer {type(self._client.transport).__name__}>"

    def deploy(
        self,
        function: str,
        source: str | os.PathLike[str],
        *,
        rollout: Rollout = Rollout(),  # noqa: B008  # a frozen value, as in the API
        health: Callable[[], object] | None = None,
        monitor: PerformanceMonitor | None = None,
        deployment_id: str | None = None,
    ) -> TrafficResult:
        """Deploy the code in folder ``source`` as ``function``'s new revision, then shift to it.

        Zips the folder's files (not those under a ``__pycache__`` or
        ``.git`` folder), uploads the archive to the URL
        ``generate_upload_url`` gives, pins the targets of the function's
        Cloud Run service that follow the latest revision to the revision
        they serve (as ``gcloud run deploy --no-traffic`` does), updates the
        function with that source and ``all_traffic_on_latest_revision``
        False (the traffic stays where it was), waits for the operation (the
        build), then shifts the
        traffic of the function's Cloud Run service to the new revision as
        ``CloudRunTraffic.shift`` does, with ``rollout``, ``health``,
        ``monitor`` and ``deployment_id``.

        Raises:
            InvalidArgumentError: a name not of the form
                ``"projects/P/locations/L/functions/F"``, a ``source`` that is
                not a folder with files, or a bad argument of the shift;
                nothing changed.
            TrafficShiftError: a step of the shift breached; the traffic is
                back as it was (the new revision stays, serving nothing).
            PlatformError: Google Cloud refused or failed a call (a failed
                build, with its message); an upload refused.

        """
        function = _resource(function, _FUNCTION, "projects/P/locations/L/functions/F")
        try:
            folder = Path(source)
        except TypeError:
            raise InvalidArgumentError(f"source must be a folder's path, got {source!r}") from None
        if not folder.is_dir():
            raise InvalidArgumentError(f"source must be an existing folder, got {str(source)!r}")
        gate = _Gate(rollout, health, monitor, deployment_id)
        archive = _zip(folder)
        with _calling(f"reading {function}"):
            service = self._client.get_function(name=function).service_config.service
        if not service:
            raise PlatformError(f"{function} has no Cloud Run service (is it 1st gen?)")
        with _calling(f"getting an upload URL for {function}"):
            upload = self._client.generate_upload_url(
                request={"parent": function.rpartition("/functions/")[0]}
            )
        _upload(upload.upload_url, archive, function)
        # all_traffic_on_latest_revision False keeps the split as it is: a target
        # following the latest revision would give the new one its share at once
        self.traffic._pin_latest(service)
        change = functions_v2.Function(
            name=function,
            build_config=functions_v2.BuildConfig(
                source=functions_v2.Source(storage_source=upload.storage_source)
            ),
            service_config=functions_v2.ServiceConfig(all_traffic_on_latest_revision=False),
        )
        with _calling(f"updating {function}"):
            updated = _wait(
                self._client.update_function(
                    request={"function": change, "update_mask": {"paths": list(_MASK)}}
                )
            )
        config = updated.service_config
        if not config.revision:
            raise PlatformError(f"{function} has no Cloud Run revision after its update")
        return self.traffic._shift(config.service, config.revision, gate).result


def _traffic_client(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, CloudRunTraffic):
        raise InvalidArgumentError(
            f"CloudRunShift.traffic must be a CloudRunTraffic, got {value!r}"
        )


@attrs.frozen
class CloudRunShift:
    """A Deployment step: shift a Cloud Run service's traffic to ``revision`` (``shift``).

    The step fails (and the deployment's earlier steps are undone) when the
    shift breaches or fails: the traffic is then already back. Its undo
    puts back the split from before the step (a target following the
    latest revision pinned to the one it served if a revision was created
    since), unless the traffic changed since (then it raises, leaving it).
    """

    traffic: CloudRunTraffic = attrs.field(validator=_traffic_client)
    service: str = attrs.field()
    revision: str = attrs.field()
    rollout: Rollout = attrs.field(factory=Rollout, kw_only=True)
    health: Callable[[], object] | None = attrs.field(default=None, kw_only=True)
    monitor: PerformanceMonitor | None = attrs.field(default=None, kw_only=True)
    deployment_id: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _resource(self.service, _SERVICE, "projects/P/locations/L/services/S")
        _revision(self.service, self.revision)
        _Gate(self.rollout, self.health, self.monitor, self.deployment_id)

    @property
    def target(self) -> str:
        """The service and the revision: ``"<service> -> <revision>"``."""
        return f"{self.service} -> {self.revision}"

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The service must exist, the revision be named as its (read only: nothing changes).

        Cloud Run names a service's revisions ``<service>-<suffix>``; that
        the revision itself exists is checked by the platform at the first
        step (a ``ServicesClient`` cannot list revisions).
        """
        short = self.service.rpartition("/")[2]
        try:
            with _calling(f"reading {self.service}"):
                self.traffic._client.get_service(name=self.service)
        except PlatformError as error:
            return [(path, str(error))]
        revision = _revision(self.service, self.revision)
        if not revision.startswith(f"{short}-"):
            return [(path, f"{revision} is not a revision of {self.service} ({short}-...)")]
        return []

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Shift the traffic; the undo puts the split from before back."""
        gate = _Gate(self.rollout, self.health, self.monitor, self.deployment_id)
        shift = self.traffic._shift(self.service, self.revision, gate)

        def undo() -> None:
            self.traffic._write(self.service, shift.before, (shift.after,), served=shift.latest)

        return undo
