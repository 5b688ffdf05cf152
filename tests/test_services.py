"""Plug and play services: ServiceSpec, ServiceRegistry, Router, and the deployment steps."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from illunare import (
    Deployment,
    DeploymentError,
    DrainTimeoutError,
    InvalidArgumentError,
    LoadService,
    Migration,
    NoRouteError,
    PackageError,
    Router,
    ServiceError,
    ServiceInUseError,
    ServiceNotFoundError,
    ServiceRegistry,
    ServiceSpec,
    ServiceSpecError,
    ServiceUnavailableError,
    UnloadService,
    UnsupportedInterpreterError,
    signals,
)
from illunare._services.routes import CACHED_LENGTH
from illunare._services.web import ASGIAdapter, WSGIAdapter, _Response, _response

from .conftest import eventually, failing_first_stop
from .strategies import REQUEST_PATHS, ROUTE_PATHS


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


class Service:
    """A real service object: started, stopped, and the calls it serves."""

    def __init__(self, name: str = "svc") -> None:
        self.name = name
        self.running = False
        self.starts = 0
        self.stops = 0
        self.active = 0
        self.served = 0
        #: what went wrong: a call on a stopped service, a stop during a call
        self.violations: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> Service:
        self.running = True
        self.starts += 1
        return self

    def stop(self, service: object) -> None:
        assert service is self
        with self._lock:
            if self.active:
                self.violations.append(f"stopped with {self.active} calls in flight")
            self.running = False
            self.stops += 1

    def handle(self, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            if not self.running:
                self.violations.append("called while stopped")
            self.active += 1
        try:
            return self.name
        finally:
            with self._lock:
                self.active -= 1
                self.served += 1

    def spec(self, routes: tuple[str, ...] = ("/svc",), **options: Any) -> ServiceSpec:
        return ServiceSpec(
            self.name,
            start=self.start,
            stop=self.stop,
            routes=dict.fromkeys(routes, self.handle),
            **options,
        )


class Gate:
    """A handler that blocks until opened, counting the calls that entered it."""

    def __init__(self) -> None:
        self.entered = 0
        self.finished = 0
        self._open = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            self.entered += 1
        self._open.wait(30)
        with self._lock:
            self.finished += 1
        return "done"

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def registry() -> ServiceRegistry:
    return ServiceRegistry()


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    """Runs callables in real threads; joins them all after the test."""
    started: list[Background] = []

    def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Background:
        job = Background(function, *args, **kwargs)
        started.append(job)
        return job

    yield run
    for job in started:
        job.join()


class Background:
    """One call in a thread; its result or exception."""

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, args, kwargs))
        self._thread.start()

    def _run(self, function: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            self.result = function(*args, **kwargs)
        except BaseException as error:
            self.error = error

    def join(self, timeout: float = 30) -> Background:
        self._thread.join(timeout)
        assert not self._thread.is_alive()
        return self

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


class TestServiceSpec:
    def test_a_spec_keeps_its_parts_read_only(self) -> None:
        """The routes are a read-only copy; dependencies a tuple."""
        routes = {"/a": echo}
        spec = ServiceSpec("a", dependencies=["db", "cache"], routes=routes)
        routes["/b"] = echo
        assert list(spec.routes) == ["/a"]
        assert spec.dependencies == ("db", "cache")
        with pytest.raises(TypeError):
            spec.routes["/c"] = echo  # type: ignore[index]

    def test_specs_are_values(self) -> None:
        """Specs of equal parts are equal and hash alike; a spec is a set member."""
        one = ServiceSpec("a", start=echo, routes={"/a": echo}, dependencies=["db"])
        two = ServiceSpec("a", start=echo, routes={"/a": echo}, dependencies=("db",))
        assert one == two
        assert len({one, two}) == 1
        assert one != ServiceSpec("a", start=echo, routes={"/b": echo}, dependencies=["db"])
        assert repr(one).startswith("ServiceSpec(name='a'")
        assert "routes=('/a',)" in repr(one)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"name": ""}, "service name"),
            ({"name": 3}, "service name"),
            ({"name": " a"}, "service name"),
            ({"start": "go"}, "start must be a callable"),
            ({"stop": 1}, "stop must be a callable"),
            ({"dependencies": "db"}, "dependencies is a sequence"),
            ({"dependencies": ["db", 2]}, "a dependency is a service name"),
            ({"dependencies": ["a"]}, "cannot depend on itself"),
            ({"routes": [("/a", echo)]}, "maps paths to handlers"),
            ({"routes": {"/a": "handler"}}, "not callable"),
            ({"routes": {"a": echo}}, "starting with '/'"),
            ({"routes": {"/a/": echo}}, "none is empty"),
            ({"routes": {"/a//b": echo}}, "none is empty"),
            ({"routes": {"/a{id}": echo}}, "without braces"),
            ({"routes": {"/{1d}": echo}}, "without braces"),
            ({"routes": {"/{id}/{id}": echo}}, "names parameter 'id' twice"),
            ({"routes": {"/a?x": echo}}, "or whitespace"),
            ({"routes": {"/a#x": echo}}, "or whitespace"),
            ({"routes": {"/a b": echo}}, "or whitespace"),
            ({"routes": {"/a/../b": echo}}, r"none is empty, '\.' or"),
            ({"routes": {"/.": echo}}, r"none is empty, '\.' or"),
            ({"routes": {"/u/{id}": echo, "/u/{key}": echo}}, "match the same paths"),
        ],
    )
    def test_a_bad_spec_is_refused_when_made(self, options: dict[str, Any], message: str) -> None:
        """Bad names, callables, dependencies and route paths raise ServiceSpecError."""
        arguments: dict[str, Any] = {"name": "a", **options}
        with pytest.raises(ServiceSpecError, match=message) as raised:
            ServiceSpec(**arguments)
        assert isinstance(raised.value, ValueError)


class TestErrors:
    def test_each_service_error_refines_its_builtin_and_pickles(self) -> None:
        """The errors are ServiceErrors and builtins, and keep their attributes through pickle."""
        errors = [
            (ServiceSpecError("m", service="a"), ValueError),
            (ServiceInUseError("m", service="a", dependents=("b",)), RuntimeError),
            (ServiceNotFoundError("m", service="a"), LookupError),
            (NoRouteError("m", path="/x"), LookupError),
            (ServiceUnavailableError("m", service="a"), RuntimeError),
            (DrainTimeoutError("m", service="a", inflight=2), TimeoutError),
        ]
        for error, builtin in errors:
            assert isinstance(error, ServiceError)
            assert isinstance(error, builtin)
            copy = pickle.loads(pickle.dumps(error))
            assert (type(copy), str(copy), vars(copy)) == (type(error), str(error), vars(error))


class TestLoadUnloadLookup:
    def test_load_starts_registers_and_routes(self, registry: ServiceRegistry) -> None:
        """load() returns what start returned; lookup, services and the routes serve it."""
        service = Service()
        assert registry.load(service.spec()) is service
        assert registry.lookup("svc") is service
        assert registry.services() == ("svc",)
        assert registry.router.dispatch("/svc") == "svc"
        assert service.starts == 1

    def test_a_service_without_start_is_none(self, registry: ServiceRegistry) -> None:
        """Without start the service object is None; the routes still serve."""
        assert registry.load(ServiceSpec("plain", routes={"/p": echo})) is None
        assert registry.lookup("plain") is None
        assert registry.router.dispatch("/p", 1) == ((1,), {})
        registry.unload("plain")
        assert registry.services() == ()

    def test_services_lists_in_load_order(self, registry: ServiceRegistry) -> None:
        """services() names the loaded services in the order they were loaded."""
        for name in ("c", "a", "b"):
            registry.load(ServiceSpec(name))
        registry.unload("a")
        assert registry.services() == ("c", "b")

    def test_unload_stops_and_unregisters(self, registry: ServiceRegistry) -> None:
        """unload() stops the service once; its name and routes are gone."""
        service = Service()
        registry.load(service.spec())
        registry.unload("svc")
        assert (service.stops, service.running) == (1, False)
        assert registry.services() == ()
        with pytest.raises(ServiceNotFoundError):
            registry.lookup("svc")
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/svc")

    def test_a_service_can_be_loaded_again_after_unload(self, registry: ServiceRegistry) -> None:
        """The name and routes are free again once unloaded."""
        service = Service()
        registry.load(service.spec())
        registry.unload("svc")
        registry.load(service.spec())
        assert registry.router.dispatch("/svc") == "svc"
        assert service.starts == 2

    def test_unknown_names_are_not_found(self, registry: ServiceRegistry) -> None:
        """lookup and unload of a name never loaded raise ServiceNotFoundError."""
        with pytest.raises(ServiceNotFoundError, match="'nope'") as raised:
            registry.lookup("nope")
        assert isinstance(raised.value, LookupError)
        assert raised.value.service == "nope"
        with pytest.raises(ServiceNotFoundError):
            registry.unload("nope")

    def test_a_duplicate_name_is_refused_before_start(self, registry: ServiceRegistry) -> None:
        """Loading a second service of a loaded name raises; its start never runs."""
        registry.load(Service().spec())
        other = Service()
        with pytest.raises(ServiceSpecError, match="already loaded"):
            registry.load(other.spec(routes=("/other",)))
        assert other.starts == 0
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/other")

    def test_load_takes_a_spec(self, registry: ServiceRegistry) -> None:
        """Anything but a ServiceSpec is refused."""
        with pytest.raises(InvalidArgumentError):
            registry.load("svc")  # type: ignore[arg-type]

    @pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
    def test_a_bad_drain_timeout_is_refused(
        self, registry: ServiceRegistry, timeout: object
    ) -> None:
        """drain_timeout must be a number >= 0; the service is untouched."""
        registry.load(Service().spec())
        with pytest.raises(InvalidArgumentError):
            registry.unload("svc", drain_timeout=timeout)  # type: ignore[arg-type]
        assert registry.router.dispatch("/svc") == "svc"

    def test_a_router_serves_one_registry(self) -> None:
        """A given router is the registry's; a second registry cannot take it."""
        router = Router()
        registry = ServiceRegistry(router=router)
        assert registry.router is router
        with pytest.raises(InvalidArgumentError):
            ServiceRegistry(router=router)
        with pytest.raises(InvalidArgumentError):
            ServiceRegistry(router="router")  # type: ignore[arg-type]

    def test_signals_are_sent_after_load_and_unload(self, registry: ServiceRegistry) -> None:
        """service_loaded once routed, service_unloaded once gone, with name, service and spec."""
        service = Service()
        spec = service.spec()
        seen: list[tuple[str, dict[str, Any], bool]] = []

        def loaded(sender: object, **kwargs: Any) -> None:
            assert sender is registry
            seen.append(("loaded", kwargs, "/svc" in registry.router.__repr__()))

        def unloaded(sender: object, **kwargs: Any) -> None:
            assert sender is registry
            seen.append(("unloaded", kwargs, "svc" in registry.services()))

        with (
            signals.service_loaded.connected_to(loaded),
            signals.service_unloaded.connected_to(unloaded),
        ):
            registry.load(spec)
            registry.unload("svc")
        expected = {"name": "svc", "service": service, "spec": spec}
        assert seen == [("loaded", expected, True), ("unloaded", expected, False)]


class TestDependencies:
    def test_a_missing_dependency_is_refused_by_name(self, registry: ServiceRegistry) -> None:
        """Loading a service whose dependency is not loaded names it; nothing starts."""
        api = Service("api")
        with pytest.raises(ServiceSpecError, match="depends on 'db', which is not loaded"):
            registry.load(api.spec(dependencies=["db"]))
        assert api.starts == 0
        assert registry.services() == ()

    def test_unloading_a_dependency_is_refused_naming_dependents(
        self, registry: ServiceRegistry
    ) -> None:
        """ServiceInUseError names every dependent; the dependency still serves."""
        db = Service("db")
        registry.load(db.spec(routes=("/db",)))
        registry.load(ServiceSpec("api", dependencies=["db"]))
        registry.load(ServiceSpec("jobs", dependencies=["db"]))
        with pytest.raises(ServiceInUseError, match="'api', 'jobs'") as raised:
            registry.unload("db")
        assert raised.value.dependents == ("api", "jobs")
        assert isinstance(raised.value, RuntimeError)
        assert registry.router.dispatch("/db") == "db"
        assert db.stops == 0
        registry.unload("api")
        registry.unload("jobs")
        registry.unload("db")
        assert db.stops == 1

    def test_no_dependent_loads_on_a_draining_service(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """While a service drains, a service depending on it is refused."""
        gate = Gate()
        registry.load(ServiceSpec("db", routes={"/db": gate, "/db-probe": echo}))
        call = background(registry.router.dispatch, "/db")
        assert eventually(lambda: gate.entered == 1)
        unload = background(registry.unload, "db")
        assert eventually(lambda: _refused(registry.router, "/db-probe"))
        with pytest.raises(ServiceSpecError, match="'db', which is being unloaded"):
            registry.load(ServiceSpec("api", dependencies=["db"]))
        gate.open()
        assert (call.join().result, unload.join().error) == ("done", None)


def _refused(router: Router, path: str) -> bool:
    """Whether a call to ``path`` (a fast route of the service) is refused: it drains."""
    try:
        router.dispatch(path)
    except ServiceUnavailableError:
        return True
    return False


class TestRouteClashes:
    def test_a_clash_with_a_loaded_route_names_both(self, registry: ServiceRegistry) -> None:
        """A route of the same shape as a loaded one is refused; nothing starts."""
        registry.load(ServiceSpec("users", routes={"/users/{id}": echo}))
        other = Service("accounts")
        with pytest.raises(
            ServiceSpecError,
            match=r"route '/users/\{key\}' clashes with route '/users/\{id\}' of service 'users'",
        ):
            registry.load(other.spec(routes=("/users/{key}", "/accounts")))
        assert other.starts == 0
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/accounts")

    def test_overlapping_routes_of_other_shapes_load(self, registry: ServiceRegistry) -> None:
        """/users/me, /users/{id} and /users are different shapes: each serves its paths."""
        registry.load(ServiceSpec("users", routes={"/users": lambda: "users"}))
        registry.load(ServiceSpec("me", routes={"/users/me": lambda: "me"}))
        registry.load(ServiceSpec("ids", routes={"/users/{id}": lambda id: id}))
        router = registry.router
        assert [router.dispatch(p) for p in ("/users", "/users/me", "/users/7")] == [
            "users",
            "me",
            "7",
        ]

    def test_concurrent_loads_of_clashing_routes_let_one_win(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """Two services racing for one route: exactly one loads, the other is refused."""
        for _ in range(20):
            gates = threading.Barrier(2)

            def load(name: str, gates: threading.Barrier = gates) -> object:
                gates.wait()
                return registry.load(ServiceSpec(name, routes={"/shared/{x}": lambda **k: name}))

            jobs = [background(load, "left"), background(load, "right")]
            errors = [job.join().error for job in jobs]
            assert sum(isinstance(error, ServiceSpecError) for error in errors) == 1
            assert sum(error is None for error in errors) == 1
            (winner,) = registry.services()
            assert registry.router.dispatch("/shared/1") == winner
            registry.unload(winner)


class TestFailingStartAndStop:
    def test_a_failing_start_is_reraised_and_registers_nothing(
        self, registry: ServiceRegistry
    ) -> None:
        """start's exception comes out as is; no name, no route; the spec can load later."""
        failure = OSError("database unreachable")
        attempts = []

        def start() -> object:
            attempts.append(1)
            if len(attempts) == 1:
                raise failure
            return "connected"

        spec = ServiceSpec("db", start=start, routes={"/db": echo})
        with pytest.raises(OSError, match="database unreachable") as raised:
            registry.load(spec)
        assert raised.value is failure
        assert registry.services() == ()
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/db")
        with pytest.raises(ServiceNotFoundError):
            registry.lookup("db")
        assert registry.load(spec) == "connected"

    def test_routes_appear_together_once_started(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """While start runs the service's routes and name are unseen; then all at once."""
        started, release = threading.Event(), threading.Event()

        def start() -> str:
            started.set()
            release.wait(30)
            return "ready"

        load = background(
            registry.load, ServiceSpec("slow", start=start, routes={"/a": echo, "/b/{x}": echo})
        )
        assert started.wait(30)
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/a")
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/b/1")
        with pytest.raises(ServiceNotFoundError):
            registry.lookup("slow")
        assert registry.services() == ()
        with pytest.raises(ServiceSpecError, match="already loaded"):
            registry.load(ServiceSpec("slow"))
        release.set()
        assert load.join().result == "ready"
        assert registry.router.dispatch("/b/1") == ((), {"x": "1"})

    def test_a_failing_stop_is_reraised_and_unload_can_retry(
        self, registry: ServiceRegistry
    ) -> None:
        """stop's exception comes out as is; the service stays registered, refusing new work."""
        stops, stop = failing_first_stop(RuntimeError("flush failed"))
        registry.load(ServiceSpec("q", start=lambda: "queue", stop=stop, routes={"/q": echo}))
        with pytest.raises(RuntimeError, match="flush failed"):
            registry.unload("q")
        assert registry.services() == ("q",)
        with pytest.raises(ServiceUnavailableError):
            registry.router.dispatch("/q")
        registry.unload("q")
        assert stops == ["queue", "queue"]
        assert registry.services() == ()


class TestDrain:
    def test_slow_requests_in_flight_complete_before_stop(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """unload waits for every call in flight; new calls are refused meanwhile; then 404."""
        gate = Gate()
        stopped = threading.Event()
        registry.load(
            ServiceSpec(
                "slow", stop=lambda _: stopped.set(), routes={"/slow": gate, "/probe": echo}
            )
        )
        calls = [background(registry.router.dispatch, "/slow") for _ in range(5)]
        assert eventually(lambda: gate.entered == 5)
        unload = background(registry.unload, "slow", drain_timeout=30)
        assert eventually(lambda: _refused(registry.router, "/probe"))
        with pytest.raises(ServiceUnavailableError, match="'slow' is being unloaded") as raised:
            registry.router.dispatch("/slow")
        assert raised.value.service == "slow"
        assert registry.services() == ("slow",)
        assert not stopped.is_set()
        assert not unload.done
        gate.open()
        assert [call.join().result for call in calls] == ["done"] * 5
        assert unload.join().error is None
        assert stopped.is_set()
        assert gate.finished == 5
        with pytest.raises(NoRouteError):
            registry.router.dispatch("/slow")

    def test_a_drain_timeout_leaves_the_service_refusing_and_running(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """DrainTimeoutError: registered, not stopped, refusing; a second unload finishes."""
        gate = Gate()
        service = Service("stuck")
        spec = ServiceSpec("stuck", start=service.start, stop=service.stop, routes={"/s": gate})
        registry.load(spec)
        call = background(registry.router.dispatch, "/s")
        assert eventually(lambda: gate.entered == 1)
        with pytest.raises(DrainTimeoutError, match="1 request") as raised:
            registry.unload("stuck", drain_timeout=0.05)
        assert (raised.value.service, raised.value.inflight) == ("stuck", 1)
        assert isinstance(raised.value, TimeoutError)
        assert registry.services() == ("stuck",)
        assert registry.lookup("stuck") is service
        assert (service.running, service.stops) == (True, 0)
        with pytest.raises(ServiceUnavailableError):
            registry.router.dispatch("/s")
        with pytest.raises(DrainTimeoutError):
            registry.unload("stuck", drain_timeout=0)
        gate.open()
        assert call.join().result == "done"
        registry.unload("stuck", drain_timeout=0)
        assert (service.running, service.stops, registry.services()) == (False, 1, ())

    def test_a_second_unload_waits_for_the_first(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """Two unloads of one service: one stops it; the other finds it gone."""
        gate = Gate()
        service = Service("s")
        registry.load(
            ServiceSpec(
                "s", start=service.start, stop=service.stop, routes={"/s": gate, "/probe": echo}
            )
        )
        call = background(registry.router.dispatch, "/s")
        assert eventually(lambda: gate.entered == 1)
        first = background(registry.unload, "s")
        assert eventually(lambda: _refused(registry.router, "/probe"))
        second = background(registry.unload, "s")
        gate.open()
        call.join()
        errors = sorted([type(first.join().error).__name__, type(second.join().error).__name__])
        assert errors == ["NoneType", "ServiceNotFoundError"]
        assert service.stops == 1

    def test_an_async_handler_counts_until_it_finishes(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """adispatch awaits the coroutine and the unload waits for it to finish."""
        entered, release = threading.Event(), threading.Event()

        async def report(day: str, *, fmt: str) -> str:
            entered.set()
            while not release.is_set():
                await asyncio.sleep(0.005)
            return f"{day}.{fmt}"

        registry.load(ServiceSpec("reports", routes={"/reports/{day}": report, "/probe": echo}))
        call = background(asyncio.run, registry.router.adispatch("/reports/mon", fmt="csv"))
        assert entered.wait(30)
        unload = background(registry.unload, "reports")
        assert eventually(lambda: _refused(registry.router, "/probe"))
        with pytest.raises(ServiceUnavailableError):
            asyncio.run(registry.router.adispatch("/reports/wed", fmt="csv"))
        assert not unload.done
        release.set()
        assert call.join().result == "mon.csv"
        assert unload.join().error is None

    def test_a_handler_that_raises_leaves_the_flight(self, registry: ServiceRegistry) -> None:
        """A call that raises is counted out: the unload does not wait for it."""

        def broken() -> None:
            raise KeyError("boom")

        registry.load(ServiceSpec("b", routes={"/b": broken}))
        with pytest.raises(KeyError):
            registry.router.dispatch("/b")
        registry.unload("b", drain_timeout=0)
        assert registry.services() == ()

    def test_a_kept_traceback_of_a_call_does_not_keep_it_in_flight(
        self, registry: ServiceRegistry
    ) -> None:
        """The error of a call, kept with its traceback (and so dispatch's frame): not in flight."""

        def broken() -> None:
            raise KeyError("boom")

        registry.load(ServiceSpec("b", routes={"/b": broken}))
        with pytest.raises(KeyError) as raised:
            registry.router.dispatch("/b")
        kept = raised.value
        assert kept.__traceback__ is not None
        registry.unload("b", drain_timeout=0)
        assert registry.services() == ()

    @pytest.mark.parametrize("how", ["dispatch", "adispatch"])
    def test_a_snapshot_of_the_routing_frames_variables_keeps_no_call_in_flight_after_it(
        self, registry: ServiceRegistry, how: str
    ) -> None:
        """A debugger or error reporter reading the routing frame's f_locals mid-call.

        adispatch holds the token on its stack, which no snapshot sees.
        dispatch holds it in a variable: on 3.10 to 3.12 the snapshot (a dict
        the frame keeps) holds it as long as the frame, kept by a traceback,
        lives; the unload waits for it, as documented; from 3.13 the
        snapshot is a view.
        """
        snapshots: list[object] = []

        def snapshot() -> None:
            frame = sys._getframe(2)  # the routing frame (dispatch's or adispatch's)
            assert frame.f_code in (Router.dispatch.__code__, Router.adispatch.__code__)
            snapshots.append(frame.f_locals)
            raise KeyError("boom")

        def broken() -> None:
            snapshot()

        async def abroken() -> None:
            snapshot()

        registry.load(ServiceSpec("b", routes={"/b": broken, "/a": abroken}))
        router = registry.router
        call = (lambda: router.dispatch("/b")) if how == "dispatch" else _run(router, "/a")
        with pytest.raises(KeyError) as raised:
            call()
        assert raised.value.__traceback__ is not None  # it keeps the routing frame
        assert snapshots
        if how == "dispatch" and sys.version_info < (3, 13):
            with pytest.raises(DrainTimeoutError) as timed_out:
                registry.unload("b", drain_timeout=0)
            assert timed_out.value.inflight == 1
            snapshots.clear()
            raised = None  # type: ignore[assignment]  # the traceback goes, and the frame
        registry.unload("b", drain_timeout=0)
        assert registry.services() == ()

    def test_a_streamed_wsgi_response_is_in_flight_until_its_body_ends(
        self, registry: ServiceRegistry
    ) -> None:
        """A server that iterates the response and drops it (Starlette's WSGIMiddleware)."""
        release = threading.Event()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            start_response("200 OK", [])
            yield b"first"
            release.wait(30)
            yield b"last"

        registry.load(ServiceSpec("w", routes={"/w": app}))
        body = iter(registry.router.as_wsgi()({"PATH_INFO": "/w"}, lambda *args: None))
        assert next(body) == b"first"  # the response itself is dropped: only its iterator is left
        with pytest.raises(DrainTimeoutError) as raised:
            registry.unload("w", drain_timeout=0)
        assert raised.value.inflight == 1
        release.set()
        assert list(body) == [b"last"]
        registry.unload("w", drain_timeout=0)
        assert registry.services() == ()

    def test_a_kept_frame_of_a_call_that_returned_does_not_keep_it_in_flight(
        self, registry: ServiceRegistry
    ) -> None:
        """A handler keeping dispatch's frame (as a profiler may): out of flight once returned."""
        frames: list[Any] = []

        def keeping() -> str:
            frames.append(sys._getframe(1))
            return "kept"

        registry.load(ServiceSpec("k", routes={"/k": keeping}))
        assert registry.router.dispatch("/k") == "kept"
        assert frames[0].f_code is Router.dispatch.__code__
        registry.unload("k", drain_timeout=0)
        assert registry.services() == ()

    @pytest.mark.parametrize("calls", [1, 3])
    def test_the_drain_timeout_counts_each_call_in_flight(
        self, registry: ServiceRegistry, background: Callable[..., Background], calls: int
    ) -> None:
        """DrainTimeoutError says how many calls are in flight, sync and async alike."""
        gate, entered, release = Gate(), threading.Event(), threading.Event()

        async def waiting() -> str:
            entered.set()
            while not release.is_set():
                await asyncio.sleep(0.005)
            return "done"

        registry.load(ServiceSpec("g", routes={"/g": gate, "/a": waiting}))
        threads = [background(registry.router.dispatch, "/g") for _ in range(calls)]
        coroutine = background(asyncio.run, registry.router.adispatch("/a"))
        assert eventually(lambda: gate.entered == calls)
        assert entered.wait(30)
        with pytest.raises(DrainTimeoutError) as raised:
            registry.unload("g", drain_timeout=0.05)
        assert raised.value.inflight == calls + 1
        gate.open()
        release.set()
        assert [job.join().result for job in [*threads, coroutine]] == ["done"] * (calls + 1)
        registry.unload("g", drain_timeout=0)

    def test_a_wsgi_response_is_in_flight_until_closed_or_dropped(
        self, registry: ServiceRegistry
    ) -> None:
        """as_wsgi(): the response counts until closed; one dropped unclosed counts out too."""

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            start_response("200 OK", [])
            return [b"ok"]

        registry.load(ServiceSpec("w", routes={"/w": app}))
        wsgi = registry.router.as_wsgi()
        environ = {"PATH_INFO": "/w", "REQUEST_METHOD": "GET"}
        closed = wsgi(dict(environ), lambda *args: None)
        dropped = wsgi(dict(environ), lambda *args: None)
        with pytest.raises(DrainTimeoutError) as raised:
            registry.unload("w", drain_timeout=0)
        assert raised.value.inflight == 2
        closed.close()  # type: ignore[attr-defined]
        closed.close()  # type: ignore[attr-defined]  # a second close counts nothing out
        with pytest.raises(DrainTimeoutError) as raised:
            registry.unload("w", drain_timeout=0)
        assert raised.value.inflight == 1
        del dropped
        registry.unload("w", drain_timeout=0)
        assert registry.services() == ()

    def test_an_interpreter_without_reference_counts_is_refused(
        self, registry: ServiceRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Counting in flight needs reference counts: elsewhere load() says so, typed."""
        monkeypatch.delattr(sys, "getrefcount")
        with pytest.raises(UnsupportedInterpreterError, match="need CPython"):
            registry.load(ServiceSpec("s", routes={"/s": echo}))
        monkeypatch.undo()
        assert registry.services() == ()

    def test_a_free_threaded_build_is_refused(
        self, registry: ServiceRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Reference counts are read under the GIL: without it load() says so, typed."""
        monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
        with pytest.raises(UnsupportedInterpreterError, match="free-threaded"):
            registry.load(ServiceSpec("s", routes={"/s": echo}))
        monkeypatch.undo()
        assert registry.services() == ()
        registry.load(ServiceSpec("s", routes={"/s": echo}))
        assert registry.services() == ("s",)


class TestRouter:
    @pytest.fixture
    def router(self, registry: ServiceRegistry) -> Router:
        registry.load(
            ServiceSpec(
                "shop",
                routes={
                    "/": lambda *a, **k: "root",
                    "/api": lambda *a, **k: ("api", k),
                    "/users/{id}": lambda *a, **k: ("user", a, k),
                    "/users/me": lambda *a, **k: "me",
                    "/users/{id}/orders/{order}": lambda **k: ("order", k),
                },
            )
        )
        return registry.router

    @pytest.mark.parametrize("path", [None, b"/api", ["/api"], 1])
    def test_a_path_that_is_not_a_str_is_refused(self, router: Router, path: Any) -> None:
        """dispatch and adispatch say what a path must be, for any other type."""
        with pytest.raises(InvalidArgumentError, match="a path must be a str"):
            router.dispatch(path)
        with pytest.raises(InvalidArgumentError, match="a path must be a str"):
            asyncio.run(router.adispatch(path))

    def test_long_paths_are_matched_but_not_cached(self, router: Router) -> None:
        """A path longer than CACHED_LENGTH is searched each time: the cache holds no long text."""
        long = "/users/" + "7" * CACHED_LENGTH
        assert router.dispatch(long)[2] == {"id": "7" * CACHED_LENGTH}
        assert router.dispatch("/users/8")[2] == {"id": "8"}
        cached = router._table.cache
        assert "/users/8" in cached
        assert long not in cached

    def test_arguments_and_path_parameters_reach_the_handler(self, router: Router) -> None:
        """Positional and keyword arguments pass through; path parameters come as keywords."""
        assert router.dispatch("/users/42", "req", trace=1) == (
            "user",
            ("req",),
            {"trace": 1, "id": "42"},
        )
        assert router.dispatch("/users/4/orders/9") == ("order", {"id": "4", "order": "9"})

    def test_a_prefix_matches_at_segment_boundaries_only(self, router: Router) -> None:
        """/api serves /api and /api/other, never /apiX (which the root route takes)."""
        assert router.dispatch("/api") == ("api", {})
        assert router.dispatch("/api/other/deep") == ("api", {})
        assert router.dispatch("/api/") == ("api", {})
        assert router.dispatch("/apiX") == "root"

    def test_the_longest_match_wins(self, router: Router) -> None:
        """/users/7/orders/1/lines goes to the deepest route that matches."""
        assert router.dispatch("/users/7/orders/1/lines") == ("order", {"id": "7", "order": "1"})
        assert router.dispatch("/users/7/profile") == ("user", (), {"id": "7"})

    def test_a_static_segment_wins_over_a_parameter(self, router: Router) -> None:
        """/users/me is not /users/{id} with id="me"."""
        assert router.dispatch("/users/me") == "me"
        assert router.dispatch("/users/mee") == ("user", (), {"id": "mee"})

    def test_a_parameter_needs_a_segment(self, router: Router) -> None:
        """/users/ has no id: the root route takes it."""
        assert router.dispatch("/users/") == "root"
        assert router.dispatch("/users") == "root"

    def test_no_route_raises(self, registry: ServiceRegistry) -> None:
        """A path no route matches raises NoRouteError carrying the path."""
        registry.load(ServiceSpec("a", routes={"/a": echo}))
        for path in ("/b", "/", "", "a"):
            with pytest.raises(NoRouteError) as raised:
                registry.router.dispatch(path)
            assert raised.value.path == path

    def test_a_handler_may_take_a_keyword_named_path(self, registry: ServiceRegistry) -> None:
        """dispatch's path is positional only: a handler's own ``path`` keyword passes."""
        registry.load(ServiceSpec("files", routes={"/files": echo}))
        assert registry.router.dispatch("/files", path="a.txt") == ((), {"path": "a.txt"})

    def test_the_cache_never_outlives_an_unload(self, registry: ServiceRegistry) -> None:
        """A path served before a service's unload is routed anew after it."""
        registry.load(ServiceSpec("root", routes={"/": lambda: "root"}))
        registry.load(ServiceSpec("deep", routes={"/a/{x}": lambda x: x}))
        assert registry.router.dispatch("/a/1") == "1"
        registry.unload("deep")
        assert registry.router.dispatch("/a/1") == "root"

    @settings(max_examples=300, deadline=None)
    @given(ROUTE_PATHS, REQUEST_PATHS)
    def test_matching_agrees_with_a_simple_model(self, paths: list[str], path: str) -> None:
        """Whatever the routes, dispatch picks the route and parameters a brute-force model does."""
        registry = ServiceRegistry()
        registry.load(ServiceSpec("s", routes={route: _answering(route) for route in paths}))
        expected = _model(paths, path)
        if expected is None:
            with pytest.raises(NoRouteError):
                registry.router.dispatch(path)
        else:
            assert registry.router.dispatch(path) == expected
            assert registry.router.dispatch(path) == expected  # from the cache too


def _answering(route: str) -> Callable[..., tuple[str, dict[str, str]]]:
    """A handler answering its route and the path parameters it got."""

    def handler(**params: str) -> tuple[str, dict[str, str]]:
        return route, params

    return handler


def _model(routes: list[str], path: str) -> tuple[str, dict[str, str]] | None:
    """The route of most segments matching ``path``; static before parameter, left to right."""
    segments = path[1:].split("/")
    best: tuple[tuple[int, tuple[bool, ...]], str, dict[str, str]] | None = None
    for route in routes:
        parts = route[1:].split("/") if route != "/" else []
        if len(parts) > len(segments):
            continue
        params = {}
        for part, segment in zip(parts, segments, strict=False):
            if part.startswith("{"):
                if not segment:
                    break
                params[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            rank = (len(parts), tuple(not part.startswith("{") for part in parts))
            if best is None or rank > best[0]:
                best = (rank, route, params)
    return None if best is None else (best[1], best[2])


# A pool of services that overlap: dependencies, nested prefixes, a clash.
_POOL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (routes, dependencies)
    "db": (("/db",), ()),
    "api": (("/api", "/users/{id}"), ("db",)),
    "admin": (("/api/admin", "/users/me"), ("api",)),
    "people": (("/users/{key}",), ()),  # clashes with api's /users/{id}
    "home": (("/",), ()),
}
_PROBES = ("/db", "/api/x", "/api/admin/y", "/users/7", "/users/me", "/other", "/")


def _pool_spec(name: str) -> ServiceSpec:
    routes, dependencies = _POOL[name]
    return ServiceSpec(
        name,
        start=lambda: f"{name} object",
        routes={route: (lambda **params: name) for route in routes},
        dependencies=dependencies,
    )


class RegistryMachine(RuleBasedStateMachine):
    """Random loads, unloads and dispatches against a model of what must be loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = ServiceRegistry()
        #: the loaded services, in load order
        self.loaded: list[str] = []

    @rule(name=st.sampled_from(sorted(_POOL)))
    def load(self, name: str) -> None:
        routes, dependencies = _POOL[name]
        shapes = {_shape(route) for other in self.loaded for route in _POOL[other][0]}
        refused = (
            name in self.loaded
            or not set(dependencies) <= set(self.loaded)
            or any(_shape(route) in shapes for route in routes)
        )
        if refused:
            with pytest.raises(ServiceSpecError):
                self.registry.load(_pool_spec(name))
        else:
            assert self.registry.load(_pool_spec(name)) == f"{name} object"
            self.loaded.append(name)

    @rule(name=st.sampled_from(sorted(_POOL)))
    def unload(self, name: str) -> None:
        dependents = [other for other in self.loaded if name in _POOL[other][1]]
        if name not in self.loaded:
            with pytest.raises(ServiceNotFoundError):
                self.registry.unload(name)
        elif dependents:
            with pytest.raises(ServiceInUseError) as raised:
                self.registry.unload(name)
            assert raised.value.dependents == tuple(dependents)
        else:
            self.registry.unload(name)
            self.loaded.remove(name)

    @invariant()
    def registers_and_routes_the_model(self) -> None:
        assert self.registry.services() == tuple(self.loaded)
        routes = {route: name for name in self.loaded for route in _POOL[name][0]}
        for path in _PROBES:
            expected = _model(list(routes), path)
            if expected is None:
                with pytest.raises(NoRouteError):
                    self.registry.router.dispatch(path)
            else:
                assert self.registry.router.dispatch(path) == routes[expected[0]]


def _shape(route: str) -> tuple[str, ...]:
    return tuple("{}" if part.startswith("{") else part for part in route.split("/"))


TestRegistryStateful = RegistryMachine.TestCase
TestRegistryStateful.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)


class TestConcurrency:
    def test_dispatch_during_loads_and_unloads_loses_no_request(
        self, registry: ServiceRegistry
    ) -> None:
        """Threads dispatching while a service loads and unloads 200 times: no call is lost."""
        # Every call either ran to its end on a running service, or was refused
        # (no route, or draining); no stop ever ran with a call in flight.
        service = Service("flaky")
        spec = service.spec(routes=("/flaky/{n}",))
        stop = threading.Event()
        outcomes: list[dict[str, int]] = []

        def client() -> None:
            counts = {"served": 0, "no route": 0, "draining": 0}
            number = 0
            while not stop.is_set():
                number += 1
                try:
                    assert registry.router.dispatch(f"/flaky/{number % 50}") == "flaky"
                    counts["served"] += 1
                except NoRouteError:
                    counts["no route"] += 1
                except ServiceUnavailableError:
                    counts["draining"] += 1
            outcomes.append(counts)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # preempt threads as often as possible
        try:
            clients = [threading.Thread(target=client) for _ in range(4)]
            for thread in clients:
                thread.start()
            for _ in range(200):
                served = service.served
                registry.load(spec)
                # Unloaded while the clients are being served, not before they got there.
                while service.served == served:
                    time.sleep(1e-4)
                registry.unload("flaky")
            stop.set()
            for thread in clients:
                thread.join(60)
        finally:
            sys.setswitchinterval(interval)
        assert service.violations == []
        assert (service.starts, service.stops, service.active) == (200, 200, 0)
        assert sum(counts["served"] for counts in outcomes) == service.served
        assert service.served > 0
        assert len(outcomes) == 4

    def test_concurrent_loads_and_unloads_of_many_services(self, registry: ServiceRegistry) -> None:
        """Threads each loading and unloading their own service while others dispatch to theirs."""
        services = [Service(f"s{n}") for n in range(4)]
        errors: list[BaseException] = []

        def churn(service: Service) -> None:
            try:
                for _ in range(100):
                    registry.load(service.spec(routes=(f"/{service.name}",)))
                    assert registry.router.dispatch(f"/{service.name}") == service.name
                    registry.unload(service.name)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=churn, args=(service,)) for service in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert registry.services() == ()
        assert [(s.starts, s.stops, s.violations) for s in services] == [(100, 100, [])] * 4


class TestUnloadRace:
    @pytest.mark.parametrize("how", ["dispatch", "adispatch", "asgi", "wsgi"])
    def test_a_call_paused_at_any_instruction_never_runs_on_a_stopped_service(
        self, how: str
    ) -> None:
        """Paused at each instruction of the routing code, then unloaded: never run when stopped."""
        # The call is paused (a real thread, held by a trace function) before
        # each bytecode instruction of the routing code in turn (dispatch,
        # adispatch, the ASGI adapter, the WSGI adapter and its response
        # streamed by a generator), and the service unloaded meanwhile without
        # waiting: either the call had counted itself in flight (the unload
        # times out) or it sees the drain when it goes on.
        pauses = 0
        for pause in itertools.count(1):
            service = _unloaded_during(how, pause)
            if service is None:  # the call ended before that instruction: all were tried
                break
            pauses += 1
            assert service.violations == [], f"paused before instruction {pause}"
            assert (service.starts, service.stops) == (1, 1)
        assert pauses > 10


_TRACED = {
    code.__code__
    for code in (
        Router.dispatch,
        Router.adispatch,
        ASGIAdapter.__call__,
        WSGIAdapter.__call__,
        _response,
        _Response.__init__,
        _Response.__iter__,
        _Response.close,
    )
}


def _unloaded_during(how: str, pause: int) -> Service | None:
    """Unload a service while a call to it is paused before the routing code's ``pause``-th step.

    Returns the service once the call went on and the service was unloaded,
    or None when the call ended before that instruction.
    """
    service = Service("race")

    async def handle() -> str:
        return service.handle()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        service.handle()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield service.handle().encode()  # the body runs the service, as it streams

    handlers = {"dispatch": service.handle, "adispatch": handle, "asgi": asgi, "wsgi": wsgi}
    registry = ServiceRegistry()
    registry.load(
        ServiceSpec("race", start=service.start, stop=service.stop, routes={"/r": handlers[how]})
    )
    paused, resume = threading.Event(), threading.Event()
    steps = 0

    def step(frame: Any, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "opcode":
            steps += 1
            if steps == pause:
                paused.set()
                resume.wait(30)
        return step

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code not in _TRACED:
            return None
        frame.f_trace_opcodes = True
        return step

    def call() -> None:
        # Python 3.12 sends opcode events only if some frame asked for them before settrace.
        sys._getframe().f_trace_opcodes = True
        sys.settrace(tracer)
        try:
            _call(registry.router, how)
        except (NoRouteError, ServiceUnavailableError):
            pass
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=call)
    thread.start()
    while not paused.is_set() and thread.is_alive():
        paused.wait(0.005)
    if not paused.is_set():
        thread.join()
        return None
    with contextlib.suppress(DrainTimeoutError):  # it counted itself in flight
        registry.unload("race", drain_timeout=0)
    resume.set()
    thread.join(30)
    if registry.services():
        registry.unload("race")
    return service


def _run(router: Router, path: str) -> Callable[[], object]:
    """A call of ``adispatch(path)`` run to its end in a new event loop."""
    return lambda: asyncio.run(router.adispatch(path))


def _call(router: Router, how: str) -> None:
    """One request to ``/r``: through dispatch, adispatch, or an adapter (a server's part too)."""
    if how == "dispatch":
        router.dispatch("/r")
    elif how == "adispatch":
        asyncio.run(router.adispatch("/r"))
    elif how == "asgi":

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = {"type": "http", "path": "/r", "root_path": ""}
        asyncio.run(router.as_asgi()(scope, receive, send))
    else:
        # As Starlette's WSGIMiddleware does: iterate, drop, never close.
        for _ in router.as_wsgi()({"PATH_INFO": "/r"}, lambda *args: None):
            pass


class TestDeploymentSteps:
    def test_a_deployment_loads_and_unloads_services(self, registry: ServiceRegistry) -> None:
        """LoadService and UnloadService steps change the registry given as services=."""
        old, new = Service("old"), Service("new")
        registry.load(old.spec(routes=("/old",)))
        deployment = Deployment("shop", services=registry)
        assert deployment.services is registry
        result = deployment.run([LoadService(new.spec(routes=("/new",))), UnloadService("old")])
        assert [(s.kind, s.target, s.status) for s in result.steps] == [
            ("LoadService", "new", "succeeded"),
            ("UnloadService", "old", "succeeded"),
        ]
        assert registry.services() == ("new",)
        assert old.stops == 1

    def test_a_failed_deployment_undoes_its_service_steps(self, registry: ServiceRegistry) -> None:
        """Undo: the loaded service is unloaded, the unloaded one loaded again from its spec."""
        old, new = Service("old"), Service("new")
        registry.load(old.spec(routes=("/old",)))

        def fail() -> None:
            raise RuntimeError("migration failed")

        steps = [
            LoadService(new.spec(routes=("/new",))),
            UnloadService("old"),
            Migration("m", fail),
        ]
        with pytest.raises(DeploymentError) as raised:
            Deployment("shop", services=registry).run(steps)
        assert raised.value.result is not None
        assert [s.status for s in raised.value.result.steps] == ["undone", "undone", "failed"]
        assert registry.services() == ("old",)
        assert registry.router.dispatch("/old") == "old"
        assert (new.starts, new.stops, old.starts, old.stops) == (1, 1, 2, 1)

    def test_a_refused_load_fails_its_step(self, registry: ServiceRegistry) -> None:
        """A load the registry refuses (missing dependency) fails the step; earlier steps undone."""
        first = Service("first")
        steps = [
            LoadService(first.spec(routes=("/first",))),
            LoadService(ServiceSpec("api", dependencies=["db"])),
        ]
        with pytest.raises(DeploymentError, match="'db', which is not loaded"):
            Deployment("shop", services=registry).run(steps)
        assert registry.services() == ()
        assert first.stops == 1

    def test_the_undo_of_a_load_refuses_a_service_loaded_again(
        self, registry: ServiceRegistry
    ) -> None:
        """If the service was unloaded and loaded again since, the undo leaves it alone."""
        spec = Service("svc").spec()
        again = Service("svc").spec()

        def reload() -> None:
            registry.unload("svc")
            registry.load(again)

        with pytest.raises(DeploymentError) as raised:
            Deployment("shop", services=registry).run(
                [
                    LoadService(spec),
                    Migration("swap it", reload, _nothing),
                    Migration("fail", _fail),
                ]
            )
        assert raised.value.result is not None
        assert raised.value.result.status == "rollback_failed"
        assert "loaded again since the step" in str(raised.value.result.steps[0].error)
        assert registry.services() == ("svc",)

    def test_an_unload_step_that_times_out_leaves_the_service_serving(
        self, registry: ServiceRegistry, background: Callable[..., Background]
    ) -> None:
        """A drain timeout fails the step; the service, never stopped, serves again."""
        gate = Gate()
        service = Service("busy")
        registry.load(
            ServiceSpec("busy", start=service.start, stop=service.stop, routes={"/busy": gate})
        )
        call = background(registry.router.dispatch, "/busy")
        assert eventually(lambda: gate.entered == 1)
        with pytest.raises(DeploymentError, match="DrainTimeoutError") as raised:
            Deployment("shop", services=registry).run([UnloadService("busy", drain_timeout=0.05)])
        assert raised.value.result is not None
        assert [s.status for s in raised.value.result.steps] == ["failed"]
        gate.open()
        assert call.join().result == "done"
        assert registry.router.dispatch("/busy") == "done"
        assert (service.running, service.stops, registry.services()) == (True, 0, ("busy",))

    def test_service_steps_need_a_registry(self) -> None:
        """Without services= the plan lists each service step as a problem; nothing runs."""
        with pytest.raises(PackageError) as raised:
            Deployment("shop").plan([LoadService(ServiceSpec("a")), UnloadService("b")])
        assert [path for path, _ in raised.value.problems] == ["[0]", "[1]"]
        assert "services=" in raised.value.problems[0][1]

    def test_steps_check_their_arguments(self) -> None:
        """LoadService takes a ServiceSpec; UnloadService a name and a drain_timeout >= 0."""
        with pytest.raises(InvalidArgumentError):
            LoadService("a")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            UnloadService("")
        with pytest.raises(InvalidArgumentError):
            UnloadService("a", drain_timeout=-1)
        with pytest.raises(InvalidArgumentError):
            Deployment("shop", services="registry")  # type: ignore[arg-type]


def _fail() -> None:
    raise RuntimeError("fail")


def _nothing() -> None:
    pass
