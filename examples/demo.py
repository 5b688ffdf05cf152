"""make demo: a FastAPI shop under uvicorn, hot-released under load, and what happened.

The shop (examples/shop) answers GET /price/<item> through ``HotASGI``
under a real uvicorn while client threads call it continuously (half of
them premium customers in Brazil, half free customers in the US). The demo
releases v2 (its routes module gains a discount and a new route, its model
a field: the app is rebuilt and the new route appears), tries a bad v3
(refused by the app's release check: nothing changes), rolls the release
back (the v1 app serves again at once), then turns the ``new_payment_flow``
flag on for premium users in BR/AR/MX. Where a redis-server is installed,
the flags live in Redis and a second, real process watches the flag change
arrive. Then three ``Deployment``s: v4 (two modules and a config change)
succeeds and passes its health gate; v5's migration fails and it is rolled
back; v6 passes every step, but its pricing fails one request in five: the
health gate sees the error rate during its bake and rolls it back. Then
canaries of the pricing module, sticky by the ``X-Customer`` header each
client sends: v7 takes 10 %, then 50 % of the customers, and is promoted;
v8 fails one request in five and is rolled back at the end of its first
step; v9, which rounds prices to the nearest cent instead of down (a new
version of the ``rounding`` library the pricing calls), runs in the shadow
of the running version for a while, and its mismatches are counted. Last,
a ``reports`` service (examples/services) is plugged in while the traffic
flows: a Deployment's LoadService step loads it into a ServiceRegistry whose
router a second uvicorn serves; report clients call it; it is unloaded with
slow requests in flight, which complete, while new requests get 503 from the
moment the unload began, and 404 once it is gone. It prints how every
request went.
"""

from __future__ import annotations

import collections
import http.client
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import attrs
import uvicorn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from services.reports import Reports  # noqa: E402
from services.reports import spec as reports_spec  # noqa: E402

from illunare import (  # noqa: E402  # after the path is set
    Deployment,
    DeploymentError,
    DeploymentResult,
    FeatureFlags,
    HealthGate,
    LoadService,
    MemoryBackend,
    Migration,
    RedisBackend,
    Rollout,
    RolloutHandle,
    ServiceRegistry,
    Shadow,
    SwapError,
    Thresholds,
    default_reloader,
    signals,
)
from illunare.testing import RedisServer  # noqa: E402
from illunare.web import HotASGI, header_key  # noqa: E402

PAYMENT_FLAG = {
    "enabled": True,
    "conditions": [
        {"type": "user_segment", "value": "premium"},
        {"type": "region", "value": ["BR", "AR", "MX"]},
    ],
}
CUSTOMERS = [("premium", "BR"), ("free", "US")]

# The second process: it only watches the flag through Redis.
WATCHER = """
import sys, time
from illunare import FeatureFlags, RedisBackend
flags = FeatureFlags(backend=RedisBackend(sys.argv[1]))
print("ready", flush=True)
customer = {"user_segment": "premium", "region": "BR"}
deadline = time.monotonic() + 30
while not flags.is_enabled("new_payment_flow", customer) and time.monotonic() < deadline:
    time.sleep(0.0005)
seen = flags.is_enabled("new_payment_flow", customer)
print("seen" if seen else "never", time.monotonic(), flush=True)
"""

CLIENTS = 4
PHASE_SECONDS = 1.0
BAKE_SECONDS = 1.0
# What a client gets from release v6's pricing bug (an HTTP 500 saying so).
V6_BUG = "pricing v6 fails one request in five"
# ... and from v8's, which only its canary's customers meet.
V8_BUG = "pricing v8 fails one request in five"
# The clients' customers, one X-Customer header each: the canaries' sticky key.
CUSTOMER_IDS = 1000
CANARY = Rollout(steps=(10, 50, 100), bake=1.0, sticky=header_key("x-customer"))
SHADOW_SECONDS = 2.0


class ClientThreads:
    """Client threads calling the service on ``port`` until stopped."""

    def __init__(self, port: int, threads: list[threading.Thread]) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = threads

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


class Traffic(ClientThreads):
    """Client threads calling the service until stopped, counting every answer."""

    def __init__(self, port: int) -> None:
        self.by_release: collections.Counter[str] = collections.Counter()
        self.by_flow: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: list[str] = []
        #: when each request that met v6's bug started (time.monotonic())
        self.bad_code: list[float] = []
        #: when each request that met v8's bug started (time.monotonic())
        self.canary_errors: list[float] = []
        super().__init__(
            port,
            [
                threading.Thread(target=self._run, args=(CUSTOMERS[n % len(CUSTOMERS)], n))
                for n in range(CLIENTS)
            ],
        )

    def _run(self, customer: tuple[str, str], client: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"X-Segment": customer[0], "X-Region": customer[1]}
        seen: collections.Counter[str] = collections.Counter()
        flows: collections.Counter[tuple[str, str]] = collections.Counter()
        failures = []
        bugs: dict[str, list[float]] = {V6_BUG: [], V8_BUG: []}
        customer_ids = itertools.count(client, CLIENTS)
        while not self._stop.is_set():
            started = time.monotonic()
            headers["X-Customer"] = f"c{next(customer_ids) % CUSTOMER_IDS}"
            try:
                connection.request("GET", "/price/apple", headers=headers)
                response = connection.getresponse()
                body = response.read()
                bug = json.loads(body).get("error") if response.status == 500 else None
                if bug in bugs:
                    bugs[bug].append(started)
                    continue
                if response.status != 200:
                    failures.append(f"HTTP {response.status}")
                    continue
                answer = json.loads(body)
                if answer["cents"] < 0:
                    failures.append(f"negative price from {answer['release']}")
                seen[answer["release"]] += 1
                flows[(customer[0], answer["payment_flow"])] += 1
            except (OSError, http.client.HTTPException, ValueError) as error:
                failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.close()
        with self._lock:
            self.by_release.update(seen)
            self.by_flow.update(flows)
            self.failures.extend(failures)
            self.bad_code.extend(bugs[V6_BUG])
            self.canary_errors.extend(bugs[V8_BUG])


def flag_backend(stack: ExitStack) -> tuple[RedisBackend | MemoryBackend, str | None]:
    """Redis on a throwaway server where redis-server is installed, else memory."""
    if shutil.which("redis-server") is None:
        return MemoryBackend(), None
    directory = stack.enter_context(tempfile.TemporaryDirectory())
    server = stack.enter_context(RedisServer(directory))
    backend = RedisBackend(server.url)
    stack.callback(backend.close)
    return backend, server.url


RELEASE_MODULES = ("shop.routes", "shop.models", "shop.main")


def probe(port: int, path: str) -> tuple[int, dict[str, object]]:
    """One request from the demo itself: the status and the JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, json.loads(body) if response.status == 200 else {}


def observe(port: int, phase: str, results: dict[str, str]) -> None:
    """What the shop answers now: its release, whether quotes carry a currency, GET /stock."""
    _, quote = probe(port, "/price/apple")
    stock, _ = probe(port, "/stock/apple")
    currency = quote.get("currency", "-")
    results[phase] = f"release {quote['release']}, currency {currency}, /stock {stock}"


def release_phase(
    hot: HotASGI, port: int, timings: dict[str, float], results: dict[str, str]
) -> None:
    """v1 -> v2 (routes and model), a refused v3, and back to v1, while the clients call."""
    reloader = default_reloader()
    observe(port, "v1", results)
    start = time.perf_counter()
    reloader.swap_many(
        {"shop.routes": HERE / "releases" / "routes_v2.py",
         "shop.models": HERE / "releases" / "models_v2.py"},
        reason="discount, stock and currency",
    )  # fmt: skip
    timings["release v1 -> v2"] = time.perf_counter() - start
    observe(port, "after v2", results)
    print(f"released v2: {results['after v2']}")
    time.sleep(PHASE_SECONDS)

    try:
        reloader.swap("shop.routes", HERE / "releases" / "routes_v3.py", reason="bad release")
    except SwapError as error:
        print(f"v3 refused, still serving app {hot.version}: {error}")
    observe(port, "after v3", results)
    time.sleep(PHASE_SECONDS)

    start = time.perf_counter()
    reloader.rollback_many(RELEASE_MODULES)
    timings["rollback to v1"] = time.perf_counter() - start
    observe(port, "after rollback", results)
    print(f"rolled back: {results['after rollback']}")
    time.sleep(PHASE_SECONDS)


def flag_phase(flags: FeatureFlags, redis_url: str | None, timings: dict[str, float]) -> bool:
    """Turn new_payment_flow on; a second process watches it arrive through Redis."""
    watcher = None
    if redis_url is not None:
        watcher = subprocess.Popen(
            [sys.executable, "-c", WATCHER, redis_url], stdout=subprocess.PIPE, text=True
        )
        assert watcher.stdout is not None
        watcher.stdout.readline()  # "ready"
    sent = time.monotonic()
    flags.update("new_payment_flow", PAYMENT_FLAG)
    print("new_payment_flow is on for premium users in BR, AR and MX")
    seen = True
    if watcher is not None:
        assert watcher.stdout is not None
        answer, when = watcher.stdout.readline().split()
        watcher.wait(30)
        watcher.stdout.close()
        seen = answer == "seen"
        timings["flag seen by a 2nd process"] = float(when) - sent
    time.sleep(PHASE_SECONDS)
    return seen


def routes_of(release: str) -> str:
    """The shop's routes module, answering as ``release``."""
    source = (HERE / "shop" / "routes.py").read_text()
    return source.replace('RELEASE = "v1"', f'RELEASE = "{release}"')


def add_loyalty_column() -> None:
    """Release v5's migration, which the database refuses."""
    raise RuntimeError("column loyalty_points already exists")


def outcome(deployment: Deployment, package: object) -> DeploymentResult:
    """The result of running ``package``, whether it succeeded or raised DeploymentError."""
    try:
        return deployment.run(package)
    except DeploymentError as error:
        if error.result is None:
            raise
        return error.result


def deployment_phase(
    port: int, results: dict[str, str], bake: list[float]
) -> list[tuple[str, DeploymentResult]]:
    """Three deployments under load: v4 succeeds, v5 and v6 are rolled back.

    ``bake`` gets the start and end (time.monotonic()) of v6's deployment:
    the only time a request may meet its bug.
    """
    from shop.ops import CONFIG, MONITOR

    deployment = Deployment(
        "shop",
        config=CONFIG,
        monitor=MONITOR,
        health=HealthGate(bake=BAKE_SECONDS, thresholds=Thresholds(max_error_rate=0.05)),
    )
    pricing = (HERE / "releases" / "pricing_{}.py").as_posix()
    packages = [
        ("v4: 2 modules + config", {
            "modules": [
                {"name": "shop.pricing", "code": Path(pricing.format("v4")).read_text()},
                {"name": "shop.routes", "code": routes_of("v4")},
            ],
            "config": {"markup_percent": 10},
        }),
        ("v5: failing migration", {
            "modules": [{"name": "shop.routes", "code": routes_of("v5")}],
            "config": {"markup_percent": 50},
            "migrations": [Migration("add loyalty_points column", add_loyalty_column)],
        }),
        ("v6: bad code, gated", {
            "modules": [
                {"name": "shop.pricing", "code": Path(pricing.format("v6")).read_text()},
                {"name": "shop.routes", "code": routes_of("v6")},
            ],
        }),
    ]  # fmt: skip
    outcomes = []
    for name, package in packages:
        started = time.monotonic()
        result = outcome(deployment, package)
        bake[:] = [started, time.monotonic()]
        outcomes.append((name, result))
        _, quote = probe(port, "/price/apple")
        results[f"after {name[:2]}"] = f"release {quote['release']}, apple {quote['cents']} cents"
        print(
            f"deployment {name}: {result.status}" + (f" ({result.error})" if result.error else "")
        )
        time.sleep(PHASE_SECONDS)
    return outcomes


SLOW_REPORTS = 4
REPORT_CLIENTS = 2


@attrs.frozen
class Answer:
    """One report request as a client saw it."""

    sent: float
    received: float
    status: int
    retry_after: str | None = None
    error: str | None = None


class ReportTraffic(ClientThreads):
    """Client threads calling GET /reports/daily until stopped, recording every answer."""

    def __init__(self, port: int) -> None:
        self.answers: list[Answer] = []
        super().__init__(port, [threading.Thread(target=self._run) for _ in range(REPORT_CLIENTS)])

    def seen(self, status: int) -> bool:
        with self._lock:
            return any(answer.status == status for answer in self.answers)

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                connection.request("GET", "/reports/daily")
                response = connection.getresponse()
                response.read()
                answer = Answer(
                    sent, time.monotonic(), response.status, response.getheader("Retry-After")
                )
            except (OSError, http.client.HTTPException) as error:
                answer = Answer(sent, time.monotonic(), 0, error=repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            with self._lock:
                self.answers.append(answer)
        connection.close()


@attrs.frozen
class ServicesOutcome:
    """What the services phase saw (times from time.monotonic())."""

    answers: tuple[Answer, ...]
    slow: tuple[Answer, ...]
    reports: Reports
    loaded: float
    unload_began: float
    unload_ended: float
    load_status: str


def services_phase(port: int) -> ServicesOutcome:
    """Load the reports service under load, serve it, unload it with slow requests in flight."""
    registry = ServiceRegistry()
    reports = Reports()
    with serve_in_thread(registry.router.as_asgi()) as services_port:
        traffic = ReportTraffic(services_port)
        traffic.start()
        time.sleep(0.2)  # not loaded yet: 404
        result = Deployment("reports", services=registry).run([LoadService(reports_spec(reports))])
        loaded = time.monotonic()
        print(f"reports service loaded by a deployment ({result.status}), served on port "
              f"{services_port}; the shop keeps serving on {port}")  # fmt: skip
        time.sleep(PHASE_SECONDS)
        slow: list[Answer] = []

        def slow_report() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", services_port, timeout=30)
            sent = time.monotonic()
            connection.request("GET", "/reports/slow")
            response = connection.getresponse()
            response.read()
            slow.append(Answer(sent, time.monotonic(), response.status))
            connection.close()

        slow_clients = [threading.Thread(target=slow_report) for _ in range(SLOW_REPORTS)]
        for thread in slow_clients:
            thread.start()
        deadline = time.monotonic() + 10
        while reports.slow_started < SLOW_REPORTS and time.monotonic() < deadline:
            time.sleep(0.005)
        unload_began = time.monotonic()
        unload = threading.Thread(target=registry.unload, args=("reports",))
        unload.start()
        # The slow reports are held until the report clients have met the drain.
        deadline = time.monotonic() + 10
        while not traffic.seen(503) and time.monotonic() < deadline:
            time.sleep(0.005)
        reports.release.set()
        unload.join(30)
        unload_ended = time.monotonic()
        for thread in slow_clients:
            thread.join(30)
        print(f"reports service unloaded with {SLOW_REPORTS} slow requests in flight")
        time.sleep(0.3)  # gone: 404
        traffic.stop()
    return ServicesOutcome(
        tuple(traffic.answers),
        tuple(slow),
        reports,
        loaded,
        unload_began,
        unload_ended,
        result.status,
    )


@contextmanager
def serve_in_thread(app: object) -> Iterator[int]:
    """uvicorn serving ``app`` on a free loopback port while the block runs; yields the port."""
    server, thread, port = serve(app)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def canary(release: str) -> RolloutHandle:
    """Roll release ``release`` of shop.pricing out as a canary; its handle once it ended."""
    source = HERE / "releases" / f"pricing_{release}.py"
    handle = default_reloader().swap(
        "shop.pricing", source, reason=f"canary {release}", rollout=CANARY
    )
    status = handle.wait(timeout=60)
    if status not in ("promoted", "rolled_back", "failed"):
        handle.abort()  # stuck: the report says so
    print(f"canary {release}: {status}")
    return handle


def canary_phase() -> tuple[list[tuple[str, RolloutHandle]], float]:
    """Canaries of shop.pricing under load: v7 promoted, v8 rolled back; v9 shadowed.

    Returns the canaries' and the shadow run's handles, and when v8's
    canary had ended (time.monotonic()): no request started after it may
    meet v8's bug.
    """
    v7 = canary("v7")
    time.sleep(PHASE_SECONDS)
    v8 = canary("v8")
    rolled_back = time.monotonic()
    time.sleep(PHASE_SECONDS)
    shadow = default_reloader().swap(
        "rounding", HERE / "releases" / "pricing_v9.py", reason="shadow v9", shadow=Shadow()
    )
    time.sleep(SHADOW_SECONDS)
    shadow.abort()
    print("shadow v9: aborted after its run")
    return [("canary v7", v7), ("canary v8", v8), ("shadow v9", shadow)], rolled_back


def serve(app: object) -> tuple[uvicorn.Server, threading.Thread, int]:
    """uvicorn serving ``app`` on a free loopback port, in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def main() -> int:
    import rounding  # imported after the path is set

    # Tracked before the pricing imports it, so that its releases reach the pricing.
    default_reloader().track(rounding.__name__)
    from shop import flags as shop_flags
    from shop.hot import app as hot

    with ExitStack() as stack:
        backend, redis_url = flag_backend(stack)
        flags = shop_flags.FLAGS = FeatureFlags(backend=backend)
        server, thread, port = serve(hot)
        traffic = Traffic(port)
        refused: list[str] = []
        signals.swap_failed.connect(
            lambda sender, **kw: refused.append(str(kw["error"])), weak=False
        )
        print(f"shop serving on http://127.0.0.1:{port}/price/apple through HotASGI under uvicorn")
        print(f"{CLIENTS} clients; flags in {'Redis at ' + redis_url if redis_url else 'memory'}")
        traffic.start()
        time.sleep(PHASE_SECONDS)
        timings: dict[str, float] = {}
        results: dict[str, str] = {}
        release_phase(hot, port, timings, results)
        seen = flag_phase(flags, redis_url, timings)
        bake: list[float] = []
        deployed = {}
        deployments = deployment_phase(port, deployed, bake)
        canaries, rolled_back = canary_phase()
        services = services_phase(port)
        traffic.stop()
        server.should_exit = True
        thread.join(10)
    failed = report(traffic, timings, results, refused, seen=seen)
    failed = report_deployments(traffic, deployments, deployed, bake) or failed
    failed = report_canaries(traffic, canaries, rolled_back) or failed
    return report_services(services) or failed


def report(
    traffic: Traffic,
    timings: dict[str, float],
    results: dict[str, str],
    refused: list[str],
    *,
    seen: bool,
) -> int:
    """Print what happened; 0 when every request succeeded and everything went to plan."""
    print()
    print("report")
    print(f"  requests served      {sum(traffic.by_release.values())}")
    print(f"  requests failed      {len(traffic.failures)}")
    for release, count in sorted(traffic.by_release.items()):
        print(f"  served by {release:<10} {count}")
    for phase, result in results.items():
        print(f"  {phase:<20} {result}")
    for (segment, flow), count in sorted(traffic.by_flow.items()):
        print(f"  {segment:<8} {flow:<8} flow {count}")
    for what, seconds in timings.items():
        print(f"  {what:<28} {seconds * 1e3:.3f} ms")
    print(f"  releases refused     {len(refused)}")
    v1 = "release v1, currency -, /stock 404"
    v2 = "release v2, currency EUR, /stock 200"
    planned = {"v1": v1, "after v2": v2, "after v3": v2, "after rollback": v1}
    problems = []
    if traffic.failures:
        problems.append(f"failed requests: {traffic.failures[:5]}")
    served = set(traffic.by_release)
    if not {"v1", "v2", "v4"} <= served <= {"v1", "v2", "v4", "v5", "v6"}:
        problems.append(f"unexpected releases served: {sorted(served)}")
    if len(refused) != 1 or results != planned:
        problems.append("the releases did not go as planned")
    if not traffic.by_flow[("premium", "new")] or traffic.by_flow[("free", "new")]:
        problems.append("the flag did not reach exactly the premium customers")
    if not seen:
        problems.append("the second process never saw the flag")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def report_deployments(
    traffic: Traffic,
    deployments: list[tuple[str, DeploymentResult]],
    results: dict[str, str],
    bake: list[float],
) -> int:
    """Print each deployment's result and the requests v6's bug met; 0 when all went to plan."""
    for name, result in deployments:
        steps = ", ".join(f"{step.kind} {step.target} {step.status}" for step in result.steps)
        print(f"  deployment {name:<24} {result.status}: {steps}")
        if result.error:
            print(f"    {result.error}")
    for phase, result in results.items():
        print(f"  {phase:<20} {result}")
    start, end = bake
    during = [started for started in traffic.bad_code if start <= started <= end]
    print(f"  requests failed because of a deployment  {len(traffic.failures)}")
    print(f"  requests that met v6's bug during its bake  {len(during)}")
    print(f"  requests that met v6's bug after it        {len(traffic.bad_code) - len(during)}")
    statuses = [result.status for _, result in deployments]
    problems = []
    if statuses != ["succeeded", "rolled_back", "rolled_back"]:
        problems.append(f"the deployments ended {statuses}")
    if not deployments[2][1].error or "health gate" not in deployments[2][1].error:
        problems.append("v6 was not rolled back by its health gate")
    if set(results.values()) != {"release v4, apple 132 cents"}:
        problems.append("v4 is not what serves after each deployment")
    if traffic.failures or len(during) != len(traffic.bad_code):
        problems.append("a request failed because of a deployment")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def report_services(outcome: ServicesOutcome) -> int:
    """Print how the reports service's requests went; 0 when all went to plan."""
    answers = outcome.answers
    by_status = collections.Counter(answer.status for answer in answers)
    refused = [answer for answer in answers if answer.status == 503]
    early = [answer for answer in refused if answer.received < outcome.unload_began]
    gone = [answer for answer in answers if answer.status == 404 and answer.sent >= outcome.loaded]
    completed = [answer for answer in outcome.slow if answer.status == 200]
    first = min((answer.received for answer in refused), default=outcome.unload_began)
    print(f"  reports load                     {outcome.load_status} (a LoadService step)")
    print(f"  reports requests served          {by_status[200]}")
    finished = outcome.reports.slow_finished_running
    print(f"  reports in flight at unload      {len(outcome.slow)}, completed "
          f"{len(completed)}, on the running service {finished}")  # fmt: skip
    print(f"  reports 503 while draining       {len(refused)}, the first "
          f"{(first - outcome.unload_began) * 1e3:.1f} ms after the unload began")  # fmt: skip
    print(f"  reports 503 before unload began  {len(early)}")
    print(f"  reports 404 after unload         {len(gone)}")
    print(f"  reports requests failed          {by_status[0]}")
    drain = (outcome.unload_ended - outcome.unload_began) * 1e3
    print(f"  unload of reports (drain)        {drain:.1f} ms")
    problems = []
    if outcome.load_status != "succeeded" or not by_status[200]:
        problems.append("the reports service did not serve")
    if len(completed) != SLOW_REPORTS or finished != SLOW_REPORTS:
        problems.append("a request in flight at the unload did not complete on the running service")
    if not refused or early or any(answer.retry_after != "1" for answer in refused):
        problems.append("new requests did not get 503 (with Retry-After) only once unload began")
    if not gone or any(answer.sent < outcome.unload_began for answer in gone):
        problems.append("the unloaded service's route did not answer 404 after the unload")
    if set(by_status) - {200, 404, 503}:
        problems.append(f"report requests failed: {sorted(by_status.items())}")


def report_canaries(
    traffic: Traffic, handles: list[tuple[str, RolloutHandle]], rolled_back: float
) -> int:
    """Print the requests each version served in each canary; 0 when all went to plan."""
    problems = []
    outcomes = []
    for name, handle in handles:
        report = handle.report()
        versions = report["versions"]
        assert isinstance(versions, dict)
        old, new = (
            next(v for v in versions.values() if v["role"] == role) for role in ("old", "new")
        )
        steps = report["steps"]
        assert isinstance(steps, list)
        status = str(report["status"])
        outcomes.append((status, steps[-1]["weight"] if steps else None))
        if name.startswith("shadow"):
            print(
                f"  {name}  calls {new['calls']} mismatches {report['mismatches']} "
                f"errors {new['errors']}"
            )
            if not new["calls"] or not report["mismatches"] or new["errors"]:
                problems.append(f"{name} found no mismatch, or errors")
            continue
        ended = f"{status} at {steps[-1]['weight']}%" if status != "promoted" else status
        errors = f"  errors {new['errors']}" if new["errors"] else ""
        print(f"  {name} {ended}  requests old {old['calls']} new {new['calls']}{errors}")
        if not old["calls"] or not new["calls"]:
            problems.append(f"{name} did not split the requests")
    after = [started for started in traffic.canary_errors if started > rolled_back]
    print(f"  requests that met v8's bug            {len(traffic.canary_errors)}")
    print(f"  requests that met v8's bug after its rollback  {len(after)}")
    # (status, the weight of the last step judged): v7 promoted after its 50 % step
    if outcomes != [("promoted", 50), ("rolled_back", 10), ("rolled_back", None)]:
        problems.append(f"the canaries ended {outcomes}")
    if not traffic.canary_errors or after:
        problems.append("v8's canary was not rolled back within its first step")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
