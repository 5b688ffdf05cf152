"""A fake of the Cloud Run v2 and Cloud Functions v2 REST endpoints illunare uses, on 127.0.0.1.

Driven by the real Google clients (``transport="rest"``, ``api_endpoint``
pointing here, anonymous credentials): services (get, update of the traffic
as a long-running operation), operations (get), functions (get, update as an
operation whose build makes a new revision of the function's Cloud Run
service), ``generateUploadUrl`` and the signed upload itself. It refuses what
the real servers refuse, with Google's error body
(``{"error": {"code", "message", "status"}}``): a split not summing to 100,
an unknown revision, a duplicate tag, an unknown service or function (404),
a stale etag (409), an upload without its content type (403, as storage
answers), a source without ``main.py`` (the build fails).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.auth.credentials import AnonymousCredentials
from google.cloud import functions_v2, run_v2

KIND = "TRAFFIC_TARGET_ALLOCATION_TYPE_"
LATEST = KIND + "LATEST"
REVISION = KIND + "REVISION"
_KINDS = {0: KIND + "UNSPECIFIED", 1: LATEST, 2: REVISION}

_SERVICE = re.compile(r"/v2/(projects/[^/]+/locations/[^/]+/services/[^/:?]+)")
_FUNCTION = re.compile(r"/v2/(projects/[^/]+/locations/[^/]+/functions/[^/:?]+)")
_OPERATION = re.compile(r"/v2/(projects/[^/]+/locations/[^/]+/operations/[^/:?]+)")
_UPLOAD_URL = re.compile(r"/v2/(projects/([^/]+)/locations/([^/]+))/functions:generateUploadUrl")
_UPLOAD = re.compile(r"/upload/([0-9a-f]+)")
#: the fields of a function an update may change (snake case, as in the client's mask), with
#: the value a field named in the mask but absent from the body (proto3: a default) takes
MASKABLE = {
    "build_config.source": ("buildConfig", "source", None),
    "service_config.all_traffic_on_latest_revision": (
        "serviceConfig",
        "allTrafficOnLatestRevision",
        False,
    ),
}


class GoogleError(Exception):
    """An error answered as Google's APIs answer it."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def _target(raw: dict[str, Any]) -> dict[str, Any]:
    """A traffic target as the client sent it (defaults left out, enums as numbers), filled in."""
    kind = raw.get("type", 0)
    return {
        "type": _KINDS.get(kind, kind) if isinstance(kind, int) else kind,
        "revision": raw.get("revision", ""),
        "percent": int(raw.get("percent", 0)),
        "tag": raw.get("tag", ""),
    }


class FakeGoogleCloud:
    """Cloud Run services and Cloud Functions in memory, served over HTTP by a thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.services: dict[str, dict[str, Any]] = {}
        #: each service's revisions, oldest first
        self.revisions: dict[str, list[str]] = {}
        self.functions: dict[str, dict[str, Any]] = {}
        #: operation name -> what completes it (called once, at the first get)
        self.pending: dict[str, Any] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        #: upload token -> the archive PUT there (None until it is)
        self.uploads: dict[str, bytes | None] = {}
        #: function -> the file names of each archive built, in order
        self.builds: dict[str, list[list[str]]] = {}
        #: service -> every split set on it, in order (as stored)
        self.splits: dict[str, list[list[dict[str, Any]]]] = {}
        #: (method, path pattern) -> the error the next matching request gets
        self.failures: list[tuple[str, re.Pattern[str], GoogleError]] = []
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            do_PATCH = do_POST = do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    # Clients ------------------------------------------------------------------------

    def services_client(self) -> run_v2.ServicesClient:
        """A real Cloud Run client talking to this fake."""
        return run_v2.ServicesClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    def functions_client(self) -> functions_v2.FunctionServiceClient:
        """A real Cloud Functions client talking to this fake."""
        return functions_v2.FunctionServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    # Setting up and looking -------------------------------------------------------------

    def add_service(
        self, name: str, revisions: int = 1, traffic: list[dict[str, Any]] | None = None
    ) -> list[str]:
        """Make service ``name`` with ``revisions`` revisions; all traffic on the latest.

        Returns the revisions' names, oldest first.
        """
        short = name.rpartition("/")[2]
        with self.lock:
            self.revisions[name] = []
            self.services[name] = {
                "name": name,
                "uid": f"uid-{next(self._ids)}",
                "generation": "1",
                "etag": f'"{next(self._ids)}"',
                "template": {"containers": [{"image": f"gcr.io/p/{short}:1"}]},
                "traffic": [_target({"type": LATEST, "percent": 100})],
            }
            self.splits[name] = []
            for _ in range(revisions):
                self._new_revision(name)
            if traffic is not None:
                self.services[name]["traffic"] = [_target(t) for t in traffic]
            self._statuses(name)
            return list(self.revisions[name])

    def add_revision(self, service: str) -> str:
        """A new revision of ``service`` serving nothing, as ``gcloud run deploy --no-traffic``."""
        with self.lock:
            self._pin_latest(service)  # as gcloud does: the traffic stays where it is
            name = self._new_revision(service)
            self._statuses(service)
            return name

    def add_function(self, name: str) -> str:
        """Make 2nd gen function ``name`` on a Cloud Run service of one revision; its service."""
        project_location, _, short = name.rpartition("/functions/")
        service = f"{project_location}/services/{short}"
        (revision,) = self.add_service(service)
        with self.lock:
            self.functions[name] = {
                "name": name,
                "environment": "GEN_2",
                "state": "ACTIVE",
                "buildConfig": {"runtime": "python312", "entryPoint": "main"},
                "serviceConfig": {
                    "service": service,
                    "revision": revision,
                    "allTrafficOnLatestRevision": True,
                },
            }
            self.builds[name] = []
        return service

    def traffic(self, service: str) -> list[dict[str, Any]]:
        """The service's traffic now: ``[{type, revision, percent, tag}, ...]``."""
        with self.lock:
            return [dict(t) for t in self.services[service]["traffic"]]

    def set_traffic(self, service: str, traffic: list[dict[str, Any]]) -> None:
        """Change the traffic as someone else would (a new etag too)."""
        with self.lock:
            self._set_traffic(service, [_target(t) for t in traffic])

    def fail_next(self, method: str, path: str, code: int, status: str, message: str) -> None:
        """The next ``method`` request whose path matches the regex ``path`` gets this error."""
        with self.lock:
            self.failures.append((method, re.compile(path), GoogleError(code, status, message)))

    # Serving ----------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        try:
            with self.lock:
                self._fail_if_asked(request.command, url.path)
                status, body = self._route(request, url.path, query, raw)
        except GoogleError as error:
            status, body = error.code, error.body()
        if isinstance(body, bytes):
            data, kind = body, "application/xml"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _fail_if_asked(self, method: str, path: str) -> None:
        for index, (wanted, pattern, error) in enumerate(self.failures):
            if wanted == method and pattern.search(path):
                del self.failures[index]
                raise error

    def _route(
        self, request: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any] | bytes]:
        method = request.command
        if method == "PUT" and (match := _UPLOAD.fullmatch(path)):
            return self._upload(match[1], request.headers.get("Content-Type"), raw)
        if method == "POST" and (match := _UPLOAD_URL.fullmatch(path)):
            return 200, self._upload_url(match[1], match[2], match[3])
        if method == "GET" and (match := _OPERATION.fullmatch(path)):
            return 200, self._operation(match[1])
        if match := _SERVICE.fullmatch(path):
            service = self._service(match[1])
            if method == "GET":
                return 200, service
            if method == "PATCH":
                return 200, self._update_service(match[1], json.loads(raw or b"{}"))
        if match := _FUNCTION.fullmatch(path):
            function = self._function(match[1])
            if method == "GET":
                return 200, function
            if method == "PATCH":
                mask = query.get("updateMask", [""])[0]
                return 200, self._update_function(match[1], json.loads(raw or b"{}"), mask)
        raise GoogleError(404, "NOT_FOUND", f"no such method: {method} {path}")

    # Cloud Run ------------------------------------------------------------------------

    def _service(self, name: str) -> dict[str, Any]:
        try:
            return self.services[name]
        except KeyError:
            project, location, service = name.split("/")[1::2]
            raise GoogleError(
                404,
                "NOT_FOUND",
                f"Resource '{service}' of kind 'SERVICE' in region '{location}' "
                f"in project '{project}' does not exist.",
            ) from None

    def _new_revision(self, service: str) -> str:
        revisions = self.revisions[service]
        short = service.rpartition("/")[2]
        name = f"{short}-{len(revisions) + 1:05d}-{'abcdefghij'[len(revisions) % 10] * 3}"
        revisions.append(name)
        self.services[service]["latestReadyRevision"] = f"{service}/revisions/{name}"
        self.services[service]["latestCreatedRevision"] = f"{service}/revisions/{name}"
        return name

    def _statuses(self, service: str) -> None:
        """Fill in ``trafficStatuses``: each target, the latest one resolved to its revision."""
        body = self.services[service]
        latest = self.revisions[service][-1]
        body["trafficStatuses"] = [
            {**t, "revision": latest if t["type"] == LATEST else t["revision"]}
            for t in body["traffic"]
        ]

    def _pin_latest(self, service: str) -> None:
        """Pin the targets following the latest revision to it (a new split only if any)."""
        latest = self.revisions[service][-1]
        traffic = self.services[service]["traffic"]
        pinned = [
            {**t, "type": REVISION, "revision": latest} if t["type"] == LATEST else t
            for t in traffic
        ]
        if pinned != traffic:
            self._set_traffic(service, pinned)

    def _set_traffic(self, service: str, traffic: list[dict[str, Any]]) -> None:
        body = self.services[service]
        body["traffic"] = traffic
        body["generation"] = str(int(body["generation"]) + 1)
        body["etag"] = f'"{next(self._ids)}"'
        self.splits[service].append([dict(t) for t in traffic])
        self._statuses(service)

    def _check_traffic(self, service: str, traffic: list[dict[str, Any]]) -> None:
        """Refuse a split as Cloud Run does: 400 INVALID_ARGUMENT with its reason."""
        tags = [t["tag"] for t in traffic if t["tag"]]
        for target in traffic:
            if target["type"] not in (LATEST, REVISION):
                raise GoogleError(
                    400, "INVALID_ARGUMENT", "spec.traffic.type: the allocation type must be set."
                )
            if target["type"] == REVISION and target["revision"] not in self.revisions[service]:
                raise GoogleError(
                    400,
                    "INVALID_ARGUMENT",
                    f"Revision '{target['revision']}' referenced in traffic not found.",
                )
            if target["type"] == LATEST and target["revision"]:
                raise GoogleError(
                    400,
                    "INVALID_ARGUMENT",
                    "spec.traffic.revision: must be empty when the type is LATEST.",
                )
            if not 0 <= target["percent"] <= 100:
                raise GoogleError(
                    400, "INVALID_ARGUMENT", "spec.traffic.percent: must be between 0 and 100."
                )
        if len(tags) != len(set(tags)):
            raise GoogleError(400, "INVALID_ARGUMENT", "spec.traffic.tag: tags must be unique.")
        total = sum(t["percent"] for t in traffic)
        if total != 100:
            raise GoogleError(
                400,
                "INVALID_ARGUMENT",
                f"Traffic targets' percent values must sum to 100, got {total}.",
            )

    def _update_service(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self.services[name]
        if "etag" in body and body["etag"] != current["etag"]:
            raise GoogleError(
                409,
                "ABORTED",
                "The service has been modified since it was read (etag mismatch); "
                "read it again and retry.",
            )
        traffic = [_target(t) for t in body.get("traffic", [])]
        self._check_traffic(name, traffic)
        if traffic != current["traffic"]:
            self._set_traffic(name, traffic)
        service = json.loads(json.dumps(current))
        return self._start(name, lambda: ("google.cloud.run.v2.Service", service))

    # Operations -----------------------------------------------------------------------

    def _start(self, resource: str, complete: Any) -> dict[str, Any]:
        """A long-running operation, done when first read: ``complete()`` gives its outcome."""
        project_location = resource.split("/services/", maxsplit=1)[0].split(
            "/functions/", maxsplit=1
        )[0]
        name = f"{project_location}/operations/operation-{next(self._ids)}"
        self.operations[name] = {"name": name, "done": False}
        self.pending[name] = complete
        return self.operations[name]

    def _operation(self, name: str) -> dict[str, Any]:
        if name not in self.operations:
            raise GoogleError(404, "NOT_FOUND", f"Operation '{name}' not found.")
        complete = self.pending.pop(name, None)
        if complete is not None:
            try:
                kind, response = complete()
            except GoogleError as error:
                self.operations[name] = {
                    "name": name,
                    "done": True,
                    "error": {"code": 3, "message": error.message},
                }
            else:
                response = {"@type": f"type.googleapis.com/{kind}", **response}
                self.operations[name] = {"name": name, "done": True, "response": response}
        return self.operations[name]

    # Cloud Functions ----------------------------------------------------------------------

    def _function(self, name: str) -> dict[str, Any]:
        try:
            return self.functions[name]
        except KeyError:
            raise GoogleError(404, "NOT_FOUND", f"Function {name} does not exist") from None

    def _upload_url(self, parent: str, project: str, location: str) -> dict[str, Any]:
        token = f"{next(self._ids):08x}"
        self.uploads[token] = None
        return {
            "uploadUrl": f"{self.url}/upload/{token}",
            "storageSource": {
                "bucket": f"gcf-v2-uploads-{project}-{location}",
                "object": f"{token}.zip",
            },
        }

    def _upload(self, token: str, kind: str | None, data: bytes) -> tuple[int, bytes]:
        if token not in self.uploads or kind != "application/zip":
            # Google Cloud Storage's answer to a signed URL used otherwise than signed.
            return 403, (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code>"
                b"<Message>The request signature we calculated does not match the signature "
                b"you provided.</Message></Error>"
            )
        self.uploads[token] = data
        return 200, b""

    def _update_function(self, name: str, body: dict[str, Any], mask: str) -> dict[str, Any]:
        paths = [path for path in mask.split(",") if path]
        if not paths:
            raise GoogleError(400, "INVALID_ARGUMENT", "update_mask must name the fields to update")
        unknown = [path for path in paths if _snake(path) not in MASKABLE]
        if unknown:
            raise GoogleError(
                400, "INVALID_ARGUMENT", f"Invalid field mask paths: {', '.join(unknown)}"
            )
        changes = {}
        for path in paths:
            section, field, default = MASKABLE[_snake(path)]
            changes[(section, field)] = body.get(section, {}).get(field, default)
        source = changes.get(("buildConfig", "source"))
        archive = None
        if source is not None:
            token = source.get("storageSource", {}).get("object", "").removesuffix(".zip")
            archive = self.uploads.get(token)
            if archive is None:
                raise GoogleError(
                    400,
                    "INVALID_ARGUMENT",
                    f"Cannot find the uploaded source object {token}.zip: upload it first.",
                )

        def build() -> tuple[str, dict[str, Any]]:
            function = self.functions[name]
            config = function["serviceConfig"]
            if archive is not None:
                self._build(name, archive)
            for (section, field), value in changes.items():
                function[section][field] = value
            service = config["service"]
            if archive is not None:
                # False keeps the split as it is: a LATEST target serves the new revision
                config["revision"] = self._new_revision(service)
                if config.get("allTrafficOnLatestRevision"):
                    self._set_traffic(service, [_target({"type": LATEST, "percent": 100})])
                self._statuses(service)
            return "google.cloud.functions.v2.Function", json.loads(json.dumps(function))

        return self._start(name, build)

    def _build(self, name: str, archive: bytes) -> None:
        """Check the archive as the Python runtime's build does; keep its file names."""
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as files:
                names = sorted(files.namelist())
        except zipfile.BadZipFile:
            raise GoogleError(
                400, "INVALID_ARGUMENT", "Build failed: the source archive is not a zip file."
            ) from None
        self.builds[name].append(names)
        if "main.py" not in names:
            raise GoogleError(
                400,
                "INVALID_ARGUMENT",
                "Build failed: missing main.py and GOOGLE_FUNCTION_SOURCE not specified. "
                "Either create the function in main.py or specify GOOGLE_FUNCTION_SOURCE "
                "to point to the file that contains the function",
            )


def _snake(path: str) -> str:
    """A field mask path in snake case (REST sends camel case)."""
    return re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), path)


def running() -> Iterator[FakeGoogleCloud]:
    """A fake for a fixture: yielded running, closed after."""
    fake = FakeGoogleCloud()
    try:
        yield fake
    finally:
        fake.close()
