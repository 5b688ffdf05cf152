"""A fake Kubernetes API server for apps/v1 Deployments and ReplicaSets, with a controller.

Real HTTP (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a free port), spoken
by the official Python client and by ``kubectl`` alike: discovery (``/api``,
``/apis``, ``/apis/apps/v1``), get, list (label and field selectors), create,
strategic-merge / JSON / merge patches, delete, and watches streamed in
chunks from a ``resourceVersion`` (``410 Gone`` once :meth:`FakeKube.compact`
dropped it), ending after ``timeoutSeconds``.

A small deployment controller ticks every ``tick`` seconds as the real one
does, a step at a time: it observes each spec change
(``observedGeneration``), keeps one owned ReplicaSet per pod template (named
by its ``pod-template-hash``, with its ``deployment.kubernetes.io/revision``),
rolls replicas over within maxSurge / maxUnavailable, and sets the
Progressing condition, up to ProgressDeadlineExceeded. A pod becomes ready
one tick after it starts, unless its image contains ``bad``: then it never
does.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeKube", "semantic"]

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
_KINDS = {"deployments": "Deployment", "replicasets": "ReplicaSet"}
_ROUTE = re.compile(
    r"^/apis/apps/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>deployments|replicasets)"
    r"(?:/(?P<name>[^/]+))?$"
)
#: lists merged by a key in a strategic merge patch (the rest are replaced)
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
}
_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


class ApiError(Exception):
    """An API Status to answer with."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        """The ``Status`` object the API server sends."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    safe = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(safe[byte % len(safe)] for byte in digest[:10])


def semantic(value: Any) -> Any:
    """``value`` without empty or null fields, as typed objects compare (empty is none)."""
    if isinstance(value, dict):
        kept = {key: semantic(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [semantic(item) for item in value]
    return value


def _same_template(rs: Obj, template: Obj) -> bool:
    """Whether a ReplicaSet's pod template, without its hash label, is ``template``."""
    mine = copy.deepcopy(rs["spec"]["template"])
    mine.get("metadata", {}).get("labels", {}).pop(HASH, None)
    return bool(semantic(mine) == semantic(template))


#: a label selector requirement: ``k in (a,b)``, ``k notin (a)``, ``k=v``, ``k!=v``, ``!k``, ``k``
_REQUIREMENT = re.compile(
    r"\s*(?:(?P<key>[^\s,=!()]+)\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\)"
    r"|(?P<absent>!)\s*(?P<gone>[^\s,=!()]+)"
    r"|(?P<name>[^\s,=!()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,=!()]*))?)\s*(?:,|$)"
)


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether ``selector`` matches ``labels``: equality- and set-based requirements."""
    position = 0
    while position < len(selector):
        match = _REQUIREMENT.match(selector, position)
        if match is None:
            raise ValueError(f"unable to parse requirement: {selector[position:]!r}")
        position = match.end()
        if match["set"]:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            inside = match["key"] in labels and labels[match["key"]] in values
            if inside != (match["set"] == "in"):
                return False
        elif match["absent"]:
            if match["gone"] in labels:
                return False
        elif match["op"] is None:
            if match["name"] not in labels:
                return False
        elif (labels.get(match["name"]) == match["value"]) != (match["op"] != "!="):
            return False
    return True


def _fields(selector: str, obj: Obj) -> bool:
    metadata = obj["metadata"]
    for term in filter(None, selector.split(",")):
        key, _, value = term.replace("==", "=").partition("=")
        if {"metadata.name": metadata["name"], "metadata.namespace": metadata["namespace"]}.get(
            key
        ) != value:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """A strategic merge patch: maps merge, lists with a merge key merge by it, ``$`` directives."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith(("$setElementOrder/", "$retainKeys", "$deleteFromPrimitiveList/")):
                continue  # ordering and retention hints: the merged order is kept
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value, key)
        return result
    if isinstance(patch, list) and field in _MERGE_KEYS and isinstance(target, list):
        key = _MERGE_KEYS[field]
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            index = next((i for i, old in enumerate(merged) if old.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del merged[index]
            elif index is None:
                merged.append(strategic_merge_patch({}, item))
            else:
                merged[index] = strategic_merge_patch(merged[index], item)
        return merged
    return copy.deepcopy(patch)


def json_patch(target: Any, operations: list[Obj]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test)."""
    document = copy.deepcopy(target)
    for operation in operations:
        path = [
            part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
        ]
        if not path:
            document = copy.deepcopy(operation.get("value"))
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = path[-1]
        op = operation["op"]
        if op == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != operation["value"]:
                raise ApiError(422, "Invalid", f"the test of {operation['path']} failed")
        elif op == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace"):
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                elif op == "add":
                    parent.insert(int(last), value)
                else:
                    parent[int(last)] = value
            else:
                if op == "replace" and last not in parent:
                    raise ApiError(
                        422, "Invalid", f"replace operation does not apply: {operation['path']}"
                    )
                parent[last] = value
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {op!r}")
    return document


class FakeKube:
    """The fake API server and its deployment controller; a context manager.

    ``url`` is the server's address once started. ``tick`` is the
    controller's period in seconds.
    """

    def __init__(self, *, tick: float = 0.05) -> None:
        self.tick = tick
        self._lock = threading.Condition()
        self._rv = itertools.count(1)
        self._version = 0
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._events: list[tuple[int, str, str, Obj]] = []
        self._oldest = 0  # watches from a resourceVersion before this one get 410 Gone
        self._pods: dict[str, list[list[int]]] = {}  # rs uid -> [[age, ready?]]
        self._progress: dict[str, float] = {}  # deployment uid -> last progress (monotonic)
        self._forbidden: set[str] = set()
        self._epoch = 0  # bumped by expire(): the watches of an earlier epoch end
        #: every request answered: "METHOD path?query"
        self.requests: list[str] = []
        #: (namespace, name) -> time.perf_counter() when ProgressDeadlineExceeded was set
        self.exceeded_at: dict[tuple[str, str], float] = {}
        #: (namespace, name) -> time.perf_counter() of the Deployment's last spec change
        self.changed_at: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._control, daemon=True),
        ]

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> FakeKube:
        """Serve and run the controller, in daemon threads; returns self."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving (every watch ends) and stop the controller."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join()

    # Test helpers -------------------------------------------------------------

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (JSON, which is YAML) to ``path``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    def add_deployment(
        self,
        name: str,
        image: str,
        *,
        replicas: int = 3,
        namespace: str = "default",
        containers: tuple[str, ...] = ("app",),
        progress_deadline: int = 1,
    ) -> Obj:
        """Create a Deployment (as ``kubectl create``) and wait until it is rolled out."""
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": progress_deadline,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": c, "image": image} for c in containers]},
                },
            },
        }
        with self._lock:
            self._create("deployments", namespace, body)
            self._lock.wait_for(
                lambda: _complete(self._objects[("deployments", namespace, name)]), timeout=30
            )
            return copy.deepcopy(self._objects[("deployments", namespace, name)])

    def get(self, plural: str, name: str, namespace: str = "default") -> Obj:
        """A copy of a stored object."""
        with self._lock:
            return copy.deepcopy(self._objects[(plural, namespace, name)])

    def replicasets(self, name: str, namespace: str = "default") -> list[Obj]:
        """The ReplicaSets owned by Deployment ``name``, oldest revision first."""
        with self._lock:
            owner = self._objects[("deployments", namespace, name)]
            return sorted(
                (copy.deepcopy(rs) for rs in self._owned(owner)),
                key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
            )

    def expire(self) -> None:
        """End every watch and forget the history, as a restarted API server does.

        A watch from an earlier resourceVersion then gets 410 Gone.
        """
        with self._lock:
            # A version of its own marks the cut: a list now gives a version still valid.
            self._version = next(self._rv)
            self._oldest = self._version
            self._epoch += 1
            self._lock.notify_all()

    def pause(self) -> None:
        """Stop the controller's ticks (as a controller manager down): specs go unobserved."""
        self._paused.set()

    def resume(self) -> None:
        """Let the controller tick again."""
        self._paused.clear()

    def forbid(self, namespace: str) -> None:
        """Refuse every request in ``namespace`` with 403 Forbidden, as RBAC would."""
        with self._lock:
            self._forbidden.add(namespace)

    def wait_for(self, name: str, test: Any, namespace: str = "default") -> Obj:
        """Wait (up to 10 s) until ``test(deployment)``; the Deployment then."""
        key = ("deployments", namespace, name)
        with self._lock:
            if not self._lock.wait_for(
                lambda: key in self._objects and test(self._objects[key]), timeout=10
            ):
                raise TimeoutError(f"deployment {name} never got there")
            return copy.deepcopy(self._objects[key])

    # Store --------------------------------------------------------------------

    def _write(self, kind: str, obj: Obj, event: str = "MODIFIED") -> Obj:
        """Store ``obj`` (caller holds the lock) at a new resourceVersion; record the event."""
        self._version = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self._version)
        plural = "deployments" if kind == "Deployment" else "replicasets"
        key = (plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if event == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._events.append((self._version, event, plural, copy.deepcopy(obj)))
        self._lock.notify_all()
        return obj

    def _create(self, plural: str, namespace: str, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name", "")
        if (plural, namespace, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{plural}.apps "{name}" already exists')
        metadata.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=_now(),
        )
        obj["apiVersion"], obj["kind"] = "apps/v1", _KINDS[plural]
        if plural == "deployments":
            spec = obj["spec"]
            spec.setdefault("replicas", 1)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault(
                "strategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            )
            _validate(obj)
            obj["status"] = {}
        return self._write(_KINDS[plural], obj, "ADDED")

    def _update(self, plural: str, old: Obj, new: Obj) -> Obj:
        """Store ``new`` in place of ``old``: identity kept, generation bumped by a spec change."""
        new["metadata"].update(
            {k: old["metadata"][k] for k in ("name", "namespace", "uid", "creationTimestamp")}
        )
        new["metadata"]["generation"] = old["metadata"]["generation"] + (
            new.get("spec") != old.get("spec")
        )
        new["status"] = old.get("status", {})
        new["apiVersion"], new["kind"] = "apps/v1", _KINDS[plural]
        if plural == "deployments":
            _validate(new)
        if new == old:
            return old
        if new.get("spec") != old.get("spec"):
            self.changed_at[new["metadata"]["namespace"], new["metadata"]["name"]] = (
                time.perf_counter()
            )
        return self._write(_KINDS[plural], new)

    def _delete(self, plural: str, obj: Obj) -> None:
        self._write(_KINDS[plural], copy.deepcopy(obj), "DELETED")
        if plural == "deployments":  # the garbage collector's cascade
            for rs in self._owned(obj):
                self._write("ReplicaSet", copy.deepcopy(rs), "DELETED")

    def _owned(self, deployment: Obj) -> list[Obj]:
        uid = deployment["metadata"]["uid"]
        return [
            obj
            for (plural, namespace, _), obj in self._objects.items()
            if plural == "replicasets"
            and namespace == deployment["metadata"]["namespace"]
            and any(
                ref.get("controller") and ref.get("uid") == uid
                for ref in obj["metadata"].get("ownerReferences", ())
            )
        ]

    # Controller -----------------------------------------------------------------

    def _control(self) -> None:
        while not self._stop.wait(self.tick):
            if self._paused.is_set():
                continue
            with self._lock:
                for key in [k for k in self._objects if k[0] == "replicasets"]:
                    self._run_replicaset(self._objects[key])
                for key in [k for k in self._objects if k[0] == "deployments"]:
                    self._sync(self._objects[key])

    def _run_replicaset(self, rs: Obj) -> None:
        """The ReplicaSet controller: pods started and stopped, ready one tick after starting."""
        uid = rs["metadata"]["uid"]
        pods = self._pods.setdefault(uid, [])
        bad = any("bad" in c.get("image", "") for c in rs["spec"]["template"]["spec"]["containers"])
        for pod in pods:
            pod[0] += 1
        wanted = rs["spec"]["replicas"]
        if len(pods) > wanted:  # the unready go first
            pods.sort(key=lambda pod: bad or pod[0] == 0)
            del pods[wanted:]
        pods += [[0] for _ in range(wanted - len(pods))]
        ready = 0 if bad else sum(pod[0] >= 1 for pod in pods)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if rs.get("status") != status:
            changed = copy.deepcopy(rs)
            changed["status"] = status
            self._write("ReplicaSet", changed)

    def _sync(self, deployment: Obj) -> None:
        """The deployment controller: one rolling update step and the status."""
        d = copy.deepcopy(deployment)
        metadata, spec = d["metadata"], d["spec"]
        if spec.get("paused"):  # observed, but no new template is rolled out
            d.setdefault("status", {})["observedGeneration"] = metadata["generation"]
            if d != deployment:
                self._write("Deployment", d)
            return
        template = spec["template"]
        owned = self._owned(d)
        new = next((rs for rs in owned if _same_template(rs, template)), None)
        top = max((_revision(rs) for rs in owned), default=0)
        progressing: tuple[str, str] | None = None
        if new is None:
            new = self._new_replicaset(d, top + 1)
            progressing = (
                "NewReplicaSetCreated",
                f'Created new replica set "{new["metadata"]["name"]}"',
            )
        elif _revision(new) < top:  # an old template is back (an undo): it is the newest now
            new = copy.deepcopy(new)
            new["metadata"]["annotations"][REVISION] = str(top + 1)
            new = self._write("ReplicaSet", new)
            progressing = (
                "FoundNewReplicaSet",
                f'Found new replica set "{new["metadata"]["name"]}"',
            )
        old = [rs for rs in owned if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        metadata.setdefault("annotations", {})[REVISION] = new["metadata"]["annotations"][REVISION]
        self._roll(spec, new, old)
        self._status(d, new, [new, *old], progressing)
        if d != deployment:
            self._write("Deployment", d)

    def _new_replicaset(self, d: Obj, revision: int) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        digest = _template_hash(template)
        template["metadata"].setdefault("labels", {})[HASH] = digest
        annotations = {REVISION: str(revision)}
        cause = d["metadata"].get("annotations", {}).get("kubernetes.io/change-cause")
        if cause is not None:
            annotations["kubernetes.io/change-cause"] = cause
        body = {
            "metadata": {
                "name": f"{d['metadata']['name']}-{digest}",
                "labels": template["metadata"]["labels"],
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": d["metadata"]["name"],
                        "uid": d["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": {
                    **d["spec"]["selector"],
                    "matchLabels": {**d["spec"]["selector"].get("matchLabels", {}), HASH: digest},
                },
                "template": template,
            },
            "status": {"replicas": 0},
        }
        return self._create("replicasets", d["metadata"]["namespace"], body)

    def _roll(self, spec: Obj, new: Obj, old: list[Obj]) -> None:
        """One step of a RollingUpdate, as the controller's reconcile of new then old sets."""
        desired = spec["replicas"]
        rolling = spec["strategy"].get("rollingUpdate", {})
        surge = _scaled(rolling.get("maxSurge", "25%"), desired, math.ceil)
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, math.floor)
        if surge == unavailable == 0:
            unavailable = 1
        every = [new, *old]
        total = sum(rs["spec"]["replicas"] for rs in every)
        if new["spec"]["replicas"] > desired:
            self._scale(new, desired)
            return
        if new["spec"]["replicas"] < desired and total < desired + surge:
            up = min(desired + surge - total, desired - new["spec"]["replicas"])
            self._scale(new, new["spec"]["replicas"] + up)
            return
        minimum = desired - unavailable
        new_unavailable = new["spec"]["replicas"] - new["status"].get("availableReplicas", 0)
        room = total - minimum - new_unavailable
        for rs in old:  # the unhealthy old replicas go first
            unhealthy = rs["spec"]["replicas"] - rs["status"].get("availableReplicas", 0)
            cut = min(unhealthy, max(room, 0))
            if cut > 0:
                self._scale(rs, rs["spec"]["replicas"] - cut)
                room -= cut
        available = sum(rs["status"].get("availableReplicas", 0) for rs in every)
        room = available - minimum
        for rs in old:
            cut = min(rs["spec"]["replicas"], max(room, 0))
            if cut > 0:
                self._scale(rs, rs["spec"]["replicas"] - cut)
                room -= cut

    def _scale(self, rs: Obj, replicas: int) -> None:
        changed = copy.deepcopy(rs)
        changed["spec"]["replicas"] = replicas
        changed["metadata"]["generation"] += 1
        rs.update(self._write("ReplicaSet", changed))

    def _status(
        self, d: Obj, new: Obj, every: list[Obj], progressing: tuple[str, str] | None
    ) -> None:
        desired = d["spec"]["replicas"]
        before = d.get("status", {})
        status = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": sum(rs["status"].get("replicas", 0) for rs in every),
            "updatedReplicas": new["status"].get("replicas", 0),
            "readyReplicas": sum(rs["status"].get("readyReplicas", 0) for rs in every),
            "availableReplicas": sum(rs["status"].get("availableReplicas", 0) for rs in every),
        }
        status["unavailableReplicas"] = max(
            sum(rs["spec"]["replicas"] for rs in every) - status["availableReplicas"], 0
        )
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        uid, name = d["metadata"]["uid"], new["metadata"]["name"]
        now = time.monotonic()
        conditions = {c["type"]: c for c in before.get("conditions", ())}
        current = conditions.get("Progressing", {}).get("reason")
        moved = any(
            status.get(k, 0) > before.get(k, 0)
            for k in ("updatedReplicas", "readyReplicas", "availableReplicas")
        ) or status.get("replicas", 0) - status.get("updatedReplicas", 0) < before.get(
            "replicas", 0
        ) - before.get("updatedReplicas", 0)
        if _complete({**d, "status": status}):
            reason = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        elif progressing is not None:
            reason = ("True", *progressing)
        elif moved:
            reason = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        elif (
            current != "ProgressDeadlineExceeded"
            and now - self._progress.get(uid, now) > d["spec"]["progressDeadlineSeconds"]
        ):
            reason = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
            )
            key = (d["metadata"]["namespace"], d["metadata"]["name"])
            self.exceeded_at[key] = time.perf_counter()
        else:
            reason = None
        if reason is not None and (
            reason[1] != current or reason[1] in ("ReplicaSetUpdated", "NewReplicaSetCreated")
        ):
            self._progress[uid] = now
            old = conditions.get("Progressing", {})
            stamp = _now()
            conditions["Progressing"] = {
                "type": "Progressing",
                "status": reason[0],
                "reason": reason[1],
                "message": reason[2],
                "lastUpdateTime": stamp,
                "lastTransitionTime": old.get("lastTransitionTime", stamp)
                if old.get("status") == reason[0]
                else stamp,
            }
        else:
            self._progress.setdefault(uid, now)
        minimum = desired - _scaled(
            d["spec"]["strategy"].get("rollingUpdate", {}).get("maxUnavailable", "25%"),
            desired,
            math.floor,
        )
        enough = status.get("availableReplicas", 0) >= minimum
        available = conditions.get("Available", {})
        if available.get("status") != ("True" if enough else "False"):
            stamp = _now()
            conditions["Available"] = {
                "type": "Available",
                "status": "True" if enough else "False",
                "reason": "MinimumReplicasAvailable" if enough else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if enough
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }
        status["conditions"] = [
            conditions[k] for k in ("Available", "Progressing") if k in conditions
        ]
        d["status"] = status

    # HTTP -----------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes, kind: str) -> tuple[int, Obj]:
        """Answer one non-watch request: (HTTP status, JSON body)."""
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        discovery = _discovery(url.path, self.url)
        if discovery is not None:
            return 200, discovery
        match = _ROUTE.match(url.path)
        if match is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, namespace, name = match["plural"], match["ns"], match["name"]
        with self._lock:
            if namespace in self._forbidden:
                raise ApiError(
                    403,
                    "Forbidden",
                    f"{plural}.apps{f' {name!r}'.replace(chr(39), chr(34)) if name else ''} is "
                    f'forbidden: User "system:anonymous" cannot {method.lower()} resource '
                    f'"{plural}" in API group "apps" in the namespace "{namespace}"',
                )
            if name is None:
                if method == "GET":
                    return 200, self._list(plural, namespace, query)
                if method == "POST" and namespace is not None:
                    return 201, self._create(plural, namespace, _decoded(json.loads(body)))
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
            key = (plural, namespace or "", name)
            obj = self._objects.get(key)
            if obj is None:
                raise ApiError(404, "NotFound", f'{plural}.apps "{name}" not found')
            if method == "GET":
                return 200, obj
            if method == "DELETE":
                self._delete(plural, obj)
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": "apps",
                        "kind": plural,
                        "uid": obj["metadata"]["uid"],
                    },
                }
            if method == "PUT":
                return 200, self._update(plural, obj, _decoded(json.loads(body)))
            if method == "PATCH":
                return 200, self._update(plural, obj, _decoded(_patched(obj, body, kind)))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _list(self, plural: str, namespace: str | None, query: Mapping[str, str]) -> Obj:
        return {
            "kind": f"{_KINDS[plural]}List",
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": str(self._version)},
            "items": self._matching(plural, namespace, query),
        }

    def _matching(self, plural: str, namespace: str | None, query: Mapping[str, str]) -> list[Obj]:
        return [
            copy.deepcopy(obj)
            for (kind, ns, _), obj in sorted(self._objects.items())
            if kind == plural and _wanted(obj, namespace, query)
        ]

    def watch(self, target: str) -> Iterator[Obj]:
        """The events of a watch request, as the API server streams them (errors raised now)."""
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        match = _ROUTE.match(url.path)
        if match is None or match["name"] is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, namespace = match["plural"], match["ns"]
        if namespace in self._forbidden:
            raise ApiError(
                403,
                "Forbidden",
                f'{plural}.apps is forbidden: User "system:anonymous" cannot watch resource '
                f'"{plural}" in API group "apps" in the namespace "{namespace}"',
            )
        ends = time.monotonic() + float(query.get("timeoutSeconds", 1800))
        return self._events_since(plural, namespace, query, ends)

    def _woken(self, epoch: int, seen: int, ends: float) -> bool:
        """Whether a watch that saw ``seen`` has something to do: events, its end."""
        return (
            self._stop.is_set()
            or self._epoch != epoch
            or self._version > seen
            or time.monotonic() >= ends
        )

    def _events_since(
        self, plural: str, namespace: str | None, query: Mapping[str, str], ends: float
    ) -> Iterator[Obj]:
        with self._lock:
            epoch = self._epoch
            since = query.get("resourceVersion", "")
            if since in ("", "0"):  # the current state first, as ADDED events
                initial = self._matching(plural, namespace, query)
                seen = self._version
            else:
                initial, seen = [], int(since)
                if seen < self._oldest:
                    gone = ApiError(
                        410, "Expired", f"too old resource version: {seen} ({self._version})"
                    )
                    initial = [gone.status()]
        if initial and initial[0]["kind"] == "Status":
            yield {"type": "ERROR", "object": initial[0]}
            return
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._lock:
                self._lock.wait_for(
                    functools.partial(self._woken, epoch, seen, ends),
                    timeout=max(ends - time.monotonic(), 0),
                )
                if self._stop.is_set() or self._epoch != epoch or time.monotonic() >= ends:
                    return
                fresh = [
                    (event, obj)
                    for version, event, kind, obj in self._events
                    if version > seen and kind == plural and _wanted(obj, namespace, query)
                ]
                seen = self._version
            for event, obj in fresh:
                yield {"type": event, "object": obj}


def _decoded(value: Any) -> Any:
    """``value`` as the API server stores it once decoded: without its null fields."""
    if isinstance(value, dict):
        return {key: _decoded(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value


def _wanted(obj: Obj, namespace: str | None, query: Mapping[str, str]) -> bool:
    metadata = obj["metadata"]
    return (
        (namespace is None or metadata["namespace"] == namespace)
        and _selects(query.get("labelSelector", ""), metadata.get("labels", {}))
        and _fields(query.get("fieldSelector", ""), obj)
    )


def _patched(obj: Obj, body: bytes, kind: str) -> Obj:
    try:
        patch = json.loads(body)
    except ValueError as error:
        raise ApiError(400, "BadRequest", f"error decoding patch: {error}") from None
    try:
        if kind == "application/strategic-merge-patch+json":
            return strategic_merge_patch(obj, patch)
        if kind == "application/merge-patch+json":
            return merge_patch(obj, patch)
        if kind == "application/json-patch+json":
            return json_patch(obj, patch)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ApiError(422, "Invalid", f"the patch does not apply: {error}") from None
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json; got {kind}",
    )


def _validate(d: Obj) -> None:
    name = d["metadata"].get("name", "")
    spec = d.get("spec", {})
    problems = []
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name or ""):
        problems.append(f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain')
    for index, container in enumerate(
        spec.get("template", {}).get("spec", {}).get("containers", [])
    ):
        if not container.get("image"):
            problems.append(f"spec.template.spec.containers[{index}].image: Required value")
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    if not _selects(
        ",".join(f"{k}={v}" for k, v in spec.get("selector", {}).get("matchLabels", {}).items()),
        labels,
    ):
        problems.append(
            "spec.template.metadata.labels: Invalid value: "
            "`selector` does not match template `labels`"
        )
    if problems:
        raise ApiError(
            422, "Invalid", f'Deployment.apps "{name}" is invalid: ' + ", ".join(problems)
        )


def _revision(rs: Obj) -> int:
    return int(rs["metadata"].get("annotations", {}).get(REVISION, 0))


def _scaled(value: int | str, desired: int, rounding: Any) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return int(rounding(desired * int(value[:-1]) / 100))
    return int(value)


def _complete(d: Obj) -> bool:
    status, desired = d.get("status", {}), d["spec"]["replicas"]
    return (
        status.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
    )


def _discovery(path: str, url: str) -> Obj | None:
    if path == "/api":
        address = url.removeprefix("http://")
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
        }
    if path == "/api/v1":
        namespaces = {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": ["get", "list"],
            "shortNames": ["ns"],
        }
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [namespaces]}
    if path == "/apis":
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [{"name": "apps", "versions": [version], "preferredVersion": version}],
        }
    if path == "/apis/apps/v1":
        resources = []
        for plural, kind in _KINDS.items():
            resources += [
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": True,
                    "kind": kind,
                    "verbs": _VERBS,
                    "shortNames": ["deploy" if kind == "Deployment" else "rs"],
                    "categories": ["all"],
                },
                {
                    "name": f"{plural}/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                },
            ]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "apps/v1",
            "resources": resources,
        }
    if path == "/version":
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-fake",
            "platform": "linux/amd64",
        }
    return None


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read the client's side

        def _answer(self, code: int, body: Obj) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            query = parse_qs(urlsplit(self.path).query)
            with fake._lock:
                fake.requests.append(f"{self.command} {self.path}")
            try:
                if self.command == "GET" and query.get("watch", [""])[-1] in ("true", "1"):
                    self._stream(fake.watch(self.path))
                else:
                    self._answer(*fake.handle(self.command, self.path, body, kind))
            except ApiError as error:
                self._answer(error.code, error.status())

        def _stream(self, events: Iterator[Obj]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for event in events:
                    data = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client went away
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
