"""Kubernetes Deployments rolled out as kubectl does, from Python (extra ``kubernetes``).

::

    from illunare.kubernetes import KubernetesDeployer

    deployer = KubernetesDeployer(namespace="shop")
    status = deployer.deploy("web", "registry.example/web:2.4.1", timeout=600)
    print(status.message)        # deployment "web" successfully rolled out

``deploy`` is ``kubectl set image`` then ``kubectl rollout status``, with
``kubectl rollout undo`` when the rollout fails; ``status`` and ``undo`` are
the other two on their own. The judgement follows kubectl's rules and words
(``RolloutStatus.message``), the rollout is followed through a watch, and
every change of its counts is sent as ``rollout_step`` (``platform=
"kubernetes"``), its end as ``rollout_finished``. ``KubernetesRollout`` is
the same as a ``Deployment`` step, undone with the package's other steps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, NoReturn

import attrs

from illunare import signals
from illunare._arguments import seconds
from illunare._deploy.steps import Parts, Problem, Undo
from illunare._platforms.kubestatus import (
    REVISION,
    UNOBSERVED,
    RolloutStatus,
    judge,
    revision_of,
)
from illunare.exceptions import (
    InvalidArgumentError,
    KubernetesRolloutError,
    MissingExtraError,
    PlatformError,
)

try:
    import urllib3
    from kubernetes import client as k8s
    from kubernetes import config as kubeconfig
    from kubernetes import watch as k8s_watch
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("illunare.kubernetes", "kubernetes") from error

__all__ = ["KubernetesDeployer", "KubernetesRollout", "RolloutStatus"]

logger = logging.getLogger("illunare")

Obj = dict[str, Any]

#: the label a Deployment's controller adds to each ReplicaSet's pod template
_HASH_LABEL = "pod-template-hash"
#: the Deployment's own annotations an undo keeps, as kubectl does (not the ReplicaSet's)
_KEPT_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: seconds a request other than a watch may take (a watch is bounded by its own timeout)
_REQUEST_TIMEOUT = 30.0
#: kubectl's words when the Deployment is deleted while it watches
_DELETED = "object has been deleted"
#: the words when another client changes the pod template while a rollout is followed
_CHANGED = "pod template changed by another client during the rollout"


def _name(what: str, value: object, pattern: re.Pattern[str], longest: int) -> str:
    if not isinstance(value, str) or len(value) > longest or not pattern.fullmatch(value):
        raise InvalidArgumentError(
            f"{what} must be a Kubernetes name (lowercase letters, digits and '-', "
            f"at most {longest} characters), got {value!r}"
        )
    return value


def _image(value: object) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise InvalidArgumentError(
            f"image must be a non-empty container image reference, got {value!r}"
        )
    return value


def _selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector as the string a list request takes (``app=web,tier in (a,b)``)."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or ()))
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(terms)


def _pruned(value: Any) -> Any:
    """``value`` without null, empty map and empty list entries: kubectl's "semantic" equality."""
    if isinstance(value, dict):
        kept = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def _template(obj: Obj) -> Obj:
    """The pod template of a Deployment or ReplicaSet, compared as kubectl compares them."""
    return dict(_pruned(_without_hash(obj["spec"]["template"])))


def _without_hash(template: Obj) -> Obj:
    """A pod template without the ``pod-template-hash`` label the controller gave it."""
    labels = dict(template.get("metadata", {}).get("labels") or {})
    labels.pop(_HASH_LABEL, None)
    return {**template, "metadata": {**template.get("metadata", {}), "labels": labels}}


def _api_message(error: Exception) -> str:
    """The platform's own words for a failed call: the Status message and its code."""
    if isinstance(error, k8s.ApiException):
        try:
            message = json.loads(error.body or "")["message"]
        except (ValueError, KeyError, TypeError):
            message = error.reason or "no message"
        return f"{message} (HTTP {error.status})"
    return str(error)


def _expired(error: PlatformError) -> bool:
    """Whether the API refused a watch's resourceVersion as too old (410 Gone)."""
    cause = error.__cause__
    return isinstance(cause, k8s.ApiException) and cause.status == 410


def _decoded(response: Any) -> Obj:
    """The JSON body of an unparsed response (the client's models are not needed)."""
    try:
        return dict(json.loads(response.data))
    finally:
        response.release_conn()


class KubernetesDeployer:
    """Rolls a Deployment's container image out, and back, as ``kubectl`` does. Thread safe.

    Args:
        api_client: a ``kubernetes.client.ApiClient``; None loads the
            kubeconfig (``$KUBECONFIG``, ``~/.kube/config``), else the
            in-cluster config, as kubectl finds them.
        namespace: the namespace of the Deployments when a call names none.

    Raises:
        InvalidArgumentError: not an ApiClient; a bad namespace.
        PlatformError: no kubeconfig and not in a cluster.

    """

    def __init__(self, api_client: Any = None, *, namespace: str = "default") -> None:
        self._namespace = _name("namespace", namespace, _LABEL, 63)
        if api_client is None:
            api_client = _default_client()
        elif not isinstance(api_client, k8s.ApiClient):
            raise InvalidArgumentError(
                f"api_client must be a kubernetes.client.ApiClient or None, "
                f"got {type(api_client).__name__}"
            )
        self._client = api_client
        self._apps = k8s.AppsV1Api(api_client)

    def __repr__(self) -> str:
        return f"<KubernetesDeployer {self._client.configuration.host} namespace={self._namespace}>"

    @property
    def namespace(self) -> str:
        """The namespace of the Deployments when a call names none."""
        return self._namespace

    def deploy(
        self,
        name: str,
        image: str,
        *,
        container: str | None = None,
        namespace: str | None = None,
        timeout: float = 300.0,
        undo_on_failure: bool = True,
    ) -> RolloutStatus:
        """Set a container's image (``kubectl set image``) and follow the rollout to its end.

        The image is set by a strategic merge patch, then the rollout is
        followed through a watch of the Deployment, judged by the rules of
        ``kubectl rollout status``. An image equal to the current one
        changes nothing: a finished rollout returns its status at once, one
        under way is followed to its end (a failed one raises, and is not
        undone: it is not this call's).

        Args:
            name: the Deployment.
            image: the new image.
            container: the container to update; None for the Deployment's
                only container.
            namespace: the Deployment's namespace (default: the deployer's).
            timeout: seconds the rollout may take.
            undo_on_failure: on failure, ``undo()`` to the revision before.

        Returns:
            The final judgement (``done``).

        Raises:
            InvalidArgumentError: a bad argument; a container the Deployment
                does not have, or None when it has several (the message names
                them).
            PlatformError: the Deployment is paused (refused before any
                change: its rollout would never start).
            KubernetesRolloutError: the rollout exceeded its progress deadline,
                took longer than ``timeout``, the Deployment was deleted, or
                another client changed its pod template meanwhile; ``status``
                is the last judgement. Raised after the undo.
            PlatformError: an API call failed (HTTP error); raised after the
                undo when it ends a rollout under way (``rollout_finished``
                is sent, as for any end, and for an interrupt too).

        """
        _, _, status = self._deploy(
            name,
            image,
            container=container,
            namespace=namespace,
            timeout=timeout,
            undo_on_failure=undo_on_failure,
        )
        return status

    def status(self, name: str, *, namespace: str | None = None) -> RolloutStatus:
        """One judgement of the Deployment's rollout now, with kubectl's rules and words.

        Raises:
            InvalidArgumentError: a bad name or namespace.
            PlatformError: the API call failed (e.g. no such Deployment).

        """
        name = _name("name", name, _SUBDOMAIN, 253)
        return judge(self._get(name, self._space(namespace)))

    def undo(
        self, name: str, *, namespace: str | None = None, to_revision: int | None = None
    ) -> int:
        """``kubectl rollout undo``: back to the previous revision (or ``to_revision``).

        The revision's ReplicaSet is found among those the Deployment owns
        (its selector, then its controller UID); its pod template, without
        the ``pod-template-hash`` label, replaces the Deployment's, with its
        annotations. As kubectl, a template already equal to the revision's
        is left alone ("skipped rollback", logged).

        Returns:
            The revision now rolling out: the revision number the controller
            gives the restored template (unchanged when skipped).

        Raises:
            InvalidArgumentError: a bad name, namespace or ``to_revision``.
            PlatformError: an API call failed; the revision is not in the
                history, there is no history, or the Deployment is paused
                (kubectl's words).

        """
        name = _name("name", name, _SUBDOMAIN, 253)
        if to_revision is not None and (
            isinstance(to_revision, bool) or not isinstance(to_revision, int) or to_revision < 1
        ):
            raise InvalidArgumentError(
                f"to_revision must be a revision number >= 1 or None, got {to_revision!r}"
            )
        return self._undo(self._get(name, self._space(namespace)), to_revision or 0)

    # Internals ------------------------------------------------------------------

    def _space(self, namespace: str | None) -> str:
        return self._namespace if namespace is None else _name("namespace", namespace, _LABEL, 63)

    def _call(self, what: str, call: Callable[[], Any]) -> Obj:
        """The JSON answer of one API call; PlatformError with the platform's words if it fails."""
        try:
            return _decoded(call())
        except (k8s.ApiException, urllib3.exceptions.HTTPError) as error:
            raise PlatformError(f"Kubernetes API: {what}: {_api_message(error)}") from error

    def _get(self, name: str, namespace: str) -> Obj:
        return self._call(
            f"get deployment {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=_REQUEST_TIMEOUT
            ),
        )

    def _deploy(
        self,
        name: str,
        image: str,
        *,
        container: str | None,
        namespace: str | None,
        timeout: float,
        undo_on_failure: bool,
    ) -> tuple[Obj, Obj, RolloutStatus]:
        """``deploy()``; also the pod templates before it (what an undo returns to) and after."""
        name = _name("name", name, _SUBDOMAIN, 253)
        image = _image(image)
        if container is not None:
            _name("container", container, _LABEL, 63)
        space = self._space(namespace)
        timeout = seconds("timeout", timeout)
        if not isinstance(undo_on_failure, bool):
            raise InvalidArgumentError(f"undo_on_failure must be a bool, got {undo_on_failure!r}")
        deadline = time.monotonic() + timeout
        current = self._get(name, space)
        # The template, not the revision number: the number of a template
        # just restored is stale until the controller renumbers it.
        before = _template(current)
        containers = current["spec"]["template"]["spec"]["containers"]
        chosen = _container(name, containers, container)
        _unpaused(current)
        if chosen["image"] == image:
            now = judge(current)
            if now.done:
                return before, before, now
            # This image's rollout is under way or failed: follow it; none of it is ours to undo.
            undo_on_failure = False
            ours = current
        else:
            ours = self._set_image(name, space, containers, chosen, image)
        after = _template(ours)
        target = f"{space}/{name}"
        status: RolloutStatus | None = None
        try:
            for status in self._follow(name, space, deadline, ours):
                self._send(signals.rollout_step, target, status, image, status="running")
        except BaseException:  # an API error or an interrupt: the image is not left half out
            outcome = "failed"
            if undo_on_failure:
                try:
                    self._restore(name, space, before, after)
                except PlatformError:  # the error that stopped the rollout is the one to raise
                    logger.exception("the undo of the rollout of %s to %s failed", image, target)
                else:
                    outcome = "rolled_back"
            last = status or judge(ours)
            self._send(signals.rollout_finished, target, last, image, status=outcome)
            raise
        assert status is not None  # _follow yields at least once
        if not status.done:
            undo = (before, after) if undo_on_failure else None
            self._failed(name, space, status, image, timeout=timeout, undo=undo)
        self._send(signals.rollout_finished, target, status, image, status="promoted")
        return before, after, status

    def _set_image(
        self, name: str, space: str, containers: list[Obj], chosen: Obj, image: str
    ) -> Obj:
        """``kubectl set image``: a strategic merge patch; the Deployment it answers."""
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": c["name"]} for c in containers],
                        "containers": [{"name": chosen["name"], "image": image}],
                    }
                }
            }
        }
        return self._call(
            f"set image of deployment {space}/{name}",
            lambda: self._apps.patch_namespaced_deployment(
                name,
                space,
                patch,
                _content_type="application/strategic-merge-patch+json",
                _preload_content=False,
                _request_timeout=_REQUEST_TIMEOUT,
            ),
        )

    def _failed(
        self,
        name: str,
        namespace: str,
        status: RolloutStatus,
        image: str,
        *,
        timeout: float,
        undo: tuple[Obj, Obj] | None,
    ) -> NoReturn:
        """Undo a failed rollout (``undo``: the templates before and after it; None: do not)."""
        target = f"{namespace}/{name}"
        if status.message == _DELETED:
            why = "the Deployment was deleted"
        elif status.message == _CHANGED:
            why = "another client changed its pod template meanwhile (left as it is)"
        elif status.failed:
            why = status.message
        else:
            why = f"timed out after {timeout:g} s: {status.message}"
        message = f"rollout of {image} to deployment {target} failed: {why}"
        undo_error: PlatformError | None = None
        outcome = "failed"
        if undo is not None and status.message not in (_DELETED, _CHANGED):
            try:
                revision = self._restore(name, namespace, *undo)
            except PlatformError as error:
                undo_error = error
                message += f"; the undo failed: {error}"
            else:
                outcome = "rolled_back"
                message += f"; rolled back (now revision {revision})"
        self._send(signals.rollout_finished, target, status, image, status=outcome)
        raise KubernetesRolloutError(message, status) from undo_error

    def _follow(
        self, name: str, namespace: str, deadline: float, ours: Obj
    ) -> Iterator[RolloutStatus]:
        """Each new judgement of the rollout of ``ours`` until it ends or is out of time.

        A list, then a watch from the list's resourceVersion, each watch
        bounded by the server (``timeoutSeconds``); a ``410 Gone`` (the
        version is too old) lists again. The last judgement is the end:
        ``done``, ``failed``, the Deployment deleted (``message`` is
        kubectl's "object has been deleted"), its pod template changed by
        a later generation than ``ours`` (``message`` is ``_CHANGED``: the
        rollout judged is no longer ours), or neither (out of time).
        """
        last: RolloutStatus | None = None
        version: str | None = None
        while True:
            if version is None:
                version, events = self._list(name, namespace)
            else:
                events = self._watch(name, namespace, version, deadline)
            try:
                # Closed at once when left early: its response goes back to the pool now.
                with contextlib.closing(events):
                    for kind, obj in events:
                        ended = _taken_away(name, kind, obj, last, ours)
                        if ended is not None:
                            yield ended
                            return
                        if kind != "LISTED":  # a listed object's version may predate the list's
                            version = obj["metadata"]["resourceVersion"]
                        if kind == "BOOKMARK":
                            continue
                        status = judge(obj)
                        if status != last:
                            last = status
                            yield status
                        if status.done or status.failed:
                            return
            except PlatformError as error:
                if not _expired(error):
                    raise
                version = None  # too old: list again
                continue
            if time.monotonic() >= deadline:
                assert last is not None  # the list judged it once
                return

    def _list(
        self, name: str, namespace: str
    ) -> tuple[str, Generator[tuple[str, Obj], None, None]]:
        """The list's resourceVersion, and the Deployment as a ``LISTED`` event (or ``DELETED``)."""
        listed = self._call(
            f"list deployment {namespace}/{name}",
            lambda: self._apps.list_namespaced_deployment(
                namespace,
                field_selector=f"metadata.name={name}",
                _preload_content=False,
                _request_timeout=_REQUEST_TIMEOUT,
            ),
        )
        events = [("LISTED", item) for item in listed["items"]] or [("DELETED", {})]
        return listed["metadata"]["resourceVersion"], (event for event in events)

    def _watch(
        self, name: str, namespace: str, version: str, deadline: float
    ) -> Generator[tuple[str, Obj], None, None]:
        """The watch events from ``version`` on, until the server ends the watch at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stream = k8s_watch.Watch().stream(
            self._apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            allow_watch_bookmarks=True,
            # The server ends the watch in whole seconds; a read that waits
            # past the deadline ends it on time.
            timeout_seconds=max(math.ceil(remaining), 1),
            _request_timeout=(_REQUEST_TIMEOUT, remaining),
        )
        try:
            for event in stream:
                yield event["type"], event["raw_object"]
                if time.monotonic() >= deadline:
                    return
        except urllib3.exceptions.ReadTimeoutError as error:
            if time.monotonic() < deadline:  # a read timed out early: the server went silent
                raise PlatformError(
                    f"Kubernetes API: watch deployment {namespace}/{name}: {error}"
                ) from error
        except (k8s.ApiException, urllib3.exceptions.HTTPError) as error:
            raise PlatformError(
                f"Kubernetes API: watch deployment {namespace}/{name}: {_api_message(error)}"
            ) from error
        finally:
            stream.close()

    def _undo(self, deployment: Obj, to_revision: int) -> int:
        """Roll ``deployment`` back to ``to_revision`` (0: the previous one), as kubectl does."""
        owned = self._owned(deployment)
        chosen = _revision_to(deployment["metadata"]["name"], owned, to_revision)
        return self._rollback(deployment, owned, chosen, to_revision)

    def _restore(self, name: str, namespace: str, template: Obj, ours: Obj) -> int:
        """Roll back to the revision whose pod template is ``template``, as kubectl does.

        Only while the Deployment's pod template is ``ours`` (what the
        rollout to undo set): another client's later change is left as it
        is (PlatformError).
        """
        deployment = self._get(name, namespace)
        if _template(deployment) != ours:
            raise PlatformError(
                f"deployment {namespace}/{name} has another pod template than the rollout "
                "to undo set (changed since); left as it is"
            )
        owned = self._owned(deployment)
        for rs in owned:
            if _template(rs) == template:
                return self._rollback(deployment, owned, rs, revision_of(rs))
        raise PlatformError(
            f"no ReplicaSet of deployment {namespace}/{name} has the pod template to restore"
        )

    def _rollback(self, deployment: Obj, owned: list[Obj], chosen: Obj, to_revision: int) -> int:
        """Patch ``chosen``'s pod template into ``deployment``; the revision now rolling out."""
        metadata = deployment["metadata"]
        name, namespace = metadata["name"], metadata["namespace"]
        if deployment["spec"].get("paused"):
            raise PlatformError(
                "you cannot rollback a paused deployment; resume it first with "
                "'kubectl rollout resume' and try again"
            )
        if _template(chosen) == _template(deployment):
            logger.info(
                "deployment %s/%s skipped rollback (current template already matches revision %d)",
                namespace,
                name,
                to_revision,
            )
            return revision_of(deployment)
        template = _without_hash(chosen["spec"]["template"])
        annotations = {
            key: value
            for key, value in (metadata.get("annotations") or {}).items()
            if key in _KEPT_ANNOTATIONS
        }
        annotations.update(
            (key, value)
            for key, value in (chosen["metadata"].get("annotations") or {}).items()
            if key not in _KEPT_ANNOTATIONS
        )
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        self._call(
            f"roll back deployment {namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(
                name,
                namespace,
                patch,
                _content_type="application/json-patch+json",
                _preload_content=False,
                _request_timeout=_REQUEST_TIMEOUT,
            ),
        )
        # The controller makes the restored template the newest revision:
        # it keeps its number if it is the newest already (no ReplicaSet yet
        # for the template it replaces).
        newest = max(revision_of(rs) for rs in owned)
        return newest if revision_of(chosen) == newest else newest + 1

    def _owned(self, deployment: Obj) -> list[Obj]:
        """The ReplicaSets the Deployment owns: by its selector, then its controller UID."""
        metadata = deployment["metadata"]
        namespace = metadata["namespace"]
        listed = self._call(
            f"list replicasets of deployment {namespace}/{metadata['name']}",
            lambda: self._apps.list_namespaced_replica_set(
                namespace,
                label_selector=_selector(deployment["spec"]["selector"]),
                _preload_content=False,
                _request_timeout=_REQUEST_TIMEOUT,
            ),
        )
        return [
            rs
            for rs in listed["items"]
            if any(
                ref.get("controller") and ref.get("uid") == metadata["uid"]
                for ref in rs["metadata"].get("ownerReferences") or ()
            )
        ]

    def _send(
        self, signal: Any, target: str, rollout: RolloutStatus, image: str, *, status: str
    ) -> None:
        """Send ``rollout_step`` (with the weight) or ``rollout_finished``; receivers isolated."""
        if not signal.receivers:
            return
        step: dict[str, Any] = {}
        if signal is signals.rollout_step:
            # kubectl judges no step: there is no verdict on the one before.
            if rollout.message == UNOBSERVED:  # the counts are still the old template's
                share = 0
            elif rollout.replicas:
                share = 100 * rollout.updated // rollout.replicas
            else:
                share = 100
            step = {"weight": min(share, 100), "verdict": None}
        signals._send(
            signal,
            self,
            platform="kubernetes",
            target=target,
            revision=rollout.revision,
            image=image,
            rollout=rollout,
            status=status,
            **step,
        )


def _default_client() -> Any:
    """An ApiClient from the kubeconfig, else from the in-cluster config, as kubectl."""
    try:
        return kubeconfig.new_client_from_config()
    except kubeconfig.ConfigException as error:
        configuration = k8s.Configuration()
        try:
            kubeconfig.load_incluster_config(client_configuration=configuration)
        except kubeconfig.ConfigException:
            raise PlatformError(
                f"no Kubernetes configuration: no kubeconfig ({error}) and not in a cluster"
            ) from error
        return k8s.ApiClient(configuration)


def _container(name: str, containers: list[Obj], wanted: str | None) -> Obj:
    """The container to update: ``wanted``, or the only one; InvalidArgumentError naming them."""
    names = ", ".join(c["name"] for c in containers)
    if wanted is None:
        if len(containers) != 1:
            raise InvalidArgumentError(
                f"deployment {name!r} has {len(containers)} containers ({names}): "
                "name the one to update with container="
            )
        return containers[0]
    for container in containers:
        if container["name"] == wanted:
            return container
    raise InvalidArgumentError(f"deployment {name!r} has no container {wanted!r} (it has {names})")


def _unpaused(deployment: Obj) -> None:
    """PlatformError if ``deployment`` is paused: its new template would never roll out."""
    if deployment["spec"].get("paused"):
        raise PlatformError(
            f'deployment "{deployment["metadata"]["name"]}" is paused; resume it first with '
            "'kubectl rollout resume' and try again"
        )


def _taken_away(
    name: str, kind: str, obj: Obj, last: RolloutStatus | None, ours: Obj
) -> RolloutStatus | None:
    """The end of a rollout taken away: the Deployment deleted, or ``ours`` replaced since."""
    if kind == "DELETED":
        gone = last or judge({"metadata": {"name": name}})
        return attrs.evolve(gone, done=False, failed=True, message=_DELETED)
    if (
        kind != "BOOKMARK"
        and obj["metadata"]["generation"] > ours["metadata"]["generation"]
        and _template(obj) != _template(ours)
    ):
        return attrs.evolve(judge(obj), done=False, failed=True, message=_CHANGED)
    return None


def _revision_to(name: str, owned: list[Obj], to_revision: int) -> Obj:
    """The ReplicaSet of ``to_revision`` (0: the one before the newest), as kubectl picks it."""
    if to_revision:
        for rs in owned:
            if revision_of(rs) == to_revision:
                return rs
        raise PlatformError(f"unable to find specified revision {to_revision} in history")
    ordered = sorted(owned, key=revision_of, reverse=True)
    if len(ordered) < 2:  # the newest and the one before it
        raise PlatformError(f'no rollout history found for deployment "{name}"')
    return ordered[1]


def _deployer(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, KubernetesDeployer):
        raise InvalidArgumentError(
            f"KubernetesRollout.deployer must be a KubernetesDeployer, got {value!r}"
        )


def _checked_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _name(f"KubernetesRollout.{attribute.name}", value, _SUBDOMAIN, 253)


def _checked_optional(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _name(f"KubernetesRollout.{attribute.name}", value, _LABEL, 63)


def _checked_image(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _image(value)


def _checked_timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    seconds("KubernetesRollout.timeout", value)


@attrs.frozen
class KubernetesRollout:
    """A ``Deployment`` step: ``deployer.deploy(name, image, ...)``; undone by ``undo()``.

    A failed rollout is undone by ``deploy`` itself and fails the step (the
    package's earlier steps are undone). The step's undo rolls the
    Deployment back to the pod template before the step; it refuses (a
    PlatformError) if the Deployment's pod template is no longer the one
    the step rolled out (someone changed it since).
    """

    deployer: KubernetesDeployer = attrs.field(validator=_deployer)
    name: str = attrs.field(validator=_checked_name)
    image: str = attrs.field(validator=_checked_image)
    container: str | None = attrs.field(default=None, kw_only=True, validator=_checked_optional)
    namespace: str | None = attrs.field(default=None, kw_only=True, validator=_checked_optional)
    timeout: float = attrs.field(default=300.0, kw_only=True, validator=_checked_timeout)

    @property
    def target(self) -> str:
        """``namespace/name`` of the Deployment."""
        return f"{self.deployer._space(self.namespace)}/{self.name}"

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The Deployment must exist, have the container and not be paused (read only)."""
        try:
            deployment = self.deployer._get(self.name, self.deployer._space(self.namespace))
            _container(
                self.name, deployment["spec"]["template"]["spec"]["containers"], self.container
            )
            _unpaused(deployment)
        except (PlatformError, InvalidArgumentError) as error:
            return [(path, str(error))]
        return []

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Roll the image out; the undo rolls the Deployment back to the revision before."""
        before, after, _ = self.deployer._deploy(
            self.name,
            self.image,
            container=self.container,
            namespace=self.namespace,
            timeout=self.timeout,
            undo_on_failure=True,
        )
        deployer, name = self.deployer, self.name
        space = deployer._space(self.namespace)

        def undo() -> None:
            # The template, not the revision: undoing a later step of the same
            # Deployment gives this step's template a new revision number.
            deployer._restore(name, space, before, after)  # skipped if it was already there

        return undo
