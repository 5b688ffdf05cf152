"""Plug and play services at their edges: failed service steps, async start/stop, typed errors.

Each class pins one defect found in review: a deployment step whose unload
fails leaves the service serving as it found it; a coroutine never passes
for a start or a stop; bad names and handlers get typed errors; the WSGI
adapter cuts PATH_INFO where the server's own text has the prefix.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from illunare import (
    Deployment,
    DeploymentError,
    DeploymentResult,
    HotReloader,
    InvalidArgumentError,
    LoadService,
    Migration,
    ServiceRegistry,
    ServiceSpec,
    ServiceSpecError,
    ServiceUnavailableError,
    UnloadService,
)

from .conftest import Package, failing_first_stop
from .strategies import PATH_SEGMENTS
from .webservers import wsgi_server


class Slow:
    """A handler held until released, in a real thread; what each call returned."""

    def __init__(self, registry: ServiceRegistry, path: str) -> None:
        self.registry = registry
        self.path = path
        self.entered = threading.Event()
        self.release = threading.Event()
        self.results: list[object] = []
        self._threads: list[threading.Thread] = []

    def __call__(self) -> str:
        self.entered.set()
        self.release.wait(30)
        return "slow"

    def request(self) -> None:
        """Send a request to the slow route from a new thread (it stays in flight)."""

        def call() -> None:
            self.results.append(self.registry.router.dispatch(self.path))

        thread = threading.Thread(target=call)
        thread.start()
        self._threads.append(thread)

    def finish(self) -> list[object]:
        self.release.set()
        for thread in self._threads:
            thread.join(30)
            assert not thread.is_alive()
        return self.results


@pytest.fixture
def registry() -> ServiceRegistry:
    return ServiceRegistry()


@pytest.fixture
def slow(registry: ServiceRegistry) -> Iterator[Slow]:
    handler = Slow(registry, "/search/slow")
    yield handler
    handler.release.set()


def _nothing() -> None:
    pass


def _failed_run(registry: ServiceRegistry, steps: list[Any]) -> DeploymentResult:
    with pytest.raises(DeploymentError) as raised:
        Deployment("shop", services=registry).run(steps)
    assert raised.value.result is not None
    return raised.value.result


def _load_legacy(registry: ServiceRegistry, error: BaseException) -> None:
    """Load the service "legacy" (``/legacy`` answers "ok"), its stop raising ``error``."""

    def stop(service: object) -> None:
        raise error

    registry.load(ServiceSpec("legacy", stop=stop, routes={"/legacy": lambda: "ok"}))


def _serving(registry: ServiceRegistry, path: str) -> bool:
    try:
        registry.router.dispatch(path)
    except ServiceUnavailableError:
        return False
    return True


class TestFailedServiceStepsChangeNothing:
    def test_a_load_undo_that_times_out_leaves_the_service_serving(
        self, registry: ServiceRegistry, slow: Slow
    ) -> None:
        """The undo's drain times out: rollback_failed, and the service still serves (no 503)."""

        def fail() -> None:
            assert slow.entered.wait(30)
            raise RuntimeError("migration failed")

        spec = ServiceSpec("search", routes={"/search/slow": slow, "/search": lambda: "served"})
        result = _failed_run(
            registry,
            [
                LoadService(spec, drain_timeout=0.05),
                Migration("request", slow.request, down=_nothing),
                Migration("fail", fail),
            ],
        )
        assert result.status == "rollback_failed"
        assert [step.status for step in result.steps] == ["undo_failed", "undone", "failed"]
        assert str(result.steps[0].error).startswith("DrainTimeoutError")
        assert registry.router.dispatch("/search") == "served"
        assert slow.finish() == ["slow"]
        assert registry.services() == ("search",)
        registry.unload("search")

    def test_a_load_undo_whose_stop_raises_leaves_the_service_serving(
        self, registry: ServiceRegistry
    ) -> None:
        """The undo's stop raises: undo_failed, and the service serves until a later unload."""
        stops, stop = failing_first_stop(OSError("cannot flush the cache"))
        spec = ServiceSpec("cache", start=lambda: "pool", stop=stop, routes={"/c": lambda: "hit"})
        result = _failed_run(registry, [LoadService(spec), Migration("fail", _raise)])
        assert result.status == "rollback_failed"
        assert result.steps[0].error == "OSError: cannot flush the cache"
        assert registry.router.dispatch("/c") == "hit"
        registry.unload("cache")
        assert (stops, registry.services()) == (["pool", "pool"], ())

    def test_an_unload_step_whose_stop_raises_leaves_the_service_serving(
        self, registry: ServiceRegistry
    ) -> None:
        """stop raises: the step fails, the deployment is rolled back, the service serves."""
        _load_legacy(registry, OSError("cannot flush the cache"))
        result = _failed_run(registry, [UnloadService("legacy")])
        assert result.status == "rolled_back"
        assert [(step.status, step.error) for step in result.steps] == [
            ("failed", "OSError: cannot flush the cache")
        ]
        assert registry.services() == ("legacy",)
        assert registry.router.dispatch("/legacy") == "ok"

    def test_an_interrupted_unload_step_leaves_the_service_serving(
        self, registry: ServiceRegistry
    ) -> None:
        """A KeyboardInterrupt in the unload ends the run; the service serves as before."""
        _load_legacy(registry, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            Deployment("shop", services=registry).run([UnloadService("legacy")])
        assert registry.router.dispatch("/legacy") == "ok"

    def test_a_failed_unload_step_leaves_a_draining_service_draining(
        self, registry: ServiceRegistry, slow: Slow
    ) -> None:
        """A service an earlier unload left refusing work still refuses it after a failed step."""
        registry.load(ServiceSpec("search", routes={"/search/slow": slow, "/search": _nothing}))
        slow.request()
        assert slow.entered.wait(30)
        with pytest.raises(TimeoutError):
            registry.unload("search", drain_timeout=0)
        result = _failed_run(registry, [UnloadService("search", drain_timeout=0)])
        assert [step.status for step in result.steps] == ["failed"]
        assert not _serving(registry, "/search")
        assert slow.finish() == ["slow"]
        registry.unload("search")
        assert registry.services() == ()

    def test_a_failed_unload_outside_a_deployment_still_refuses_new_work(
        self, registry: ServiceRegistry
    ) -> None:
        """unload() itself keeps its contract: a stop that raises leaves the service refusing."""
        _load_legacy(registry, OSError("cannot flush the cache"))
        with pytest.raises(OSError, match="flush"):
            registry.unload("legacy")
        assert registry.services() == ("legacy",)
        assert not _serving(registry, "/legacy")

    def test_the_undo_of_a_load_names_a_replaced_service_with_a_typed_error(
        self, registry: ServiceRegistry
    ) -> None:
        """A service loaded again since the step: the undo fails with a ServiceNotFoundError."""
        again = ServiceSpec("svc", routes={"/svc": lambda: "again"})

        def reload() -> None:
            registry.unload("svc")
            registry.load(again)

        result = _failed_run(
            registry,
            [
                LoadService(ServiceSpec("svc", routes={"/svc": lambda: "first"})),
                Migration("reload", reload, down=_nothing),
                Migration("fail", _raise),
            ],
        )
        assert str(result.steps[0].error).startswith("ServiceNotFoundError: ")
        assert "loaded again since the step" in str(result.steps[0].error)
        assert registry.router.dispatch("/svc") == "again"


def _raise() -> None:
    raise RuntimeError("migration failed")


async def _start() -> str:
    return "never"


async def _stop(service: object) -> None:
    pass


class _AsyncCallable:
    async def __call__(self, *args: object) -> None:
        pass


class TestCoroutineStartAndStop:
    @pytest.mark.parametrize(
        "options",
        [
            {"start": _start},
            {"stop": _stop},
            {"start": _AsyncCallable()},
            {"stop": functools.partial(_stop)},
        ],
    )
    def test_a_coroutine_function_is_refused_when_the_spec_is_made(
        self, options: dict[str, Any]
    ) -> None:
        """An async def (or async __call__, or a partial of one) is no start or stop."""
        with pytest.raises(ServiceSpecError, match="not a coroutine function"):
            ServiceSpec("consumer", **options)

    def test_a_start_that_returns_a_coroutine_registers_nothing(
        self, registry: ServiceRegistry
    ) -> None:
        """load() raises ServiceSpecError; the coroutine is closed (no warning); nothing loaded."""
        ran: list[str] = []

        async def body() -> str:
            ran.append("start")
            return "pool"

        def start() -> Coroutine[None, None, str]:  # a plain function, as ServiceSpec sees it
            return body()

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ServiceSpecError, match="start of service 'consumer' returned"):
                registry.load(ServiceSpec("consumer", start=start, routes={"/c": _nothing}))
            gc.collect()
        assert (ran, registry.services()) == ([], ())
        registry.load(ServiceSpec("consumer", start=lambda: "pool", routes={"/c": _nothing}))

    def test_a_stop_that_returns_a_coroutine_does_not_unload(
        self, registry: ServiceRegistry
    ) -> None:
        """unload() raises ServiceSpecError: the service, never stopped, stays registered."""
        ran: list[str] = []

        async def body() -> None:
            ran.append("stop")

        registry.load(ServiceSpec("consumer", stop=lambda _: body(), routes={"/c": _nothing}))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ServiceSpecError, match="stop of service 'consumer' returned"):
                registry.unload("consumer")
            gc.collect()
        assert (ran, registry.services()) == ([], ("consumer",))

    def test_a_start_may_return_a_running_awaitable(self, registry: ServiceRegistry) -> None:
        """A Future (work already under way, such as a Task) is a service object like any other."""
        loop = asyncio.new_event_loop()
        try:
            future = loop.create_future()
            assert registry.load(ServiceSpec("consumer", start=lambda: future)) is future
            assert registry.lookup("consumer") is future
        finally:
            loop.close()


class TestTypedErrors:
    @pytest.mark.parametrize("name", [["svc"], {"svc": 1}, 42, None])
    def test_a_name_that_is_not_a_str_is_an_invalid_argument(
        self, registry: ServiceRegistry, name: Any
    ) -> None:
        """lookup() and unload() refuse a name that is not a str (hashable or not), typed."""
        registry.load(ServiceSpec("svc", routes={"/svc": lambda: "ok"}))
        for call in (registry.lookup, registry.unload):
            with pytest.raises(InvalidArgumentError, match="a service name is a str"):
                call(name)
        assert registry.router.dispatch("/svc") == "ok"

    def test_adispatch_refuses_what_a_plain_handler_returns(
        self, registry: ServiceRegistry
    ) -> None:
        """A plain function under adispatch(): InvalidArgumentError naming dispatch()."""
        calls: list[str] = []

        def plain() -> str:
            calls.append("plain")
            return "plain"

        registry.load(ServiceSpec("svc", routes={"/plain": plain}))
        with pytest.raises(InvalidArgumentError, match="call plain handlers with dispatch"):
            asyncio.run(registry.router.adispatch("/plain"))
        assert calls == ["plain"]
        registry.unload("svc", drain_timeout=0)  # nothing was left in flight

    def test_adispatch_awaits_a_decorated_coroutine_function(
        self, registry: ServiceRegistry
    ) -> None:
        """A sync wrapper returning an async def's coroutine (a decorator) is awaited."""

        def logged(function: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(function)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return function(*args, **kwargs)

            return wrapper

        @logged
        async def report(day: str) -> str:
            return f"report of {day}"

        registry.load(ServiceSpec("svc", routes={"/r/{day}": report}))
        assert asyncio.run(registry.router.adispatch("/r/mon")) == "report of mon"

    def test_adispatch_awaits_async_callables_and_hot_functions(
        self, registry: ServiceRegistry, package: Package
    ) -> None:
        """Objects with an async __call__ and hot async functions of tracked modules are awaited."""
        module = package.module("handlers", "async def report(**params):\n    return params\n")
        reloader = HotReloader()
        reloader.track(module.__name__)
        routes = {"/r/{day}": module.report, "/obj": _AsyncCallable()}
        registry.load(ServiceSpec("svc", routes=routes))
        assert asyncio.run(registry.router.adispatch("/r/mon")) == {"day": "mon"}
        assert asyncio.run(registry.router.adispatch("/obj")) is None


def _recording(
    seen: list[tuple[str, str, dict[str, str]]],
) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append((environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["illunare.path_params"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def _as_wsgi(text: str) -> str:
    """The PEP 3333 form of a path: the latin-1 text of its UTF-8 bytes."""
    return text.encode().decode("latin-1")


class TestWSGIPaths:
    @pytest.mark.parametrize("region", ["eu", "日本", "é", "zürich"])
    def test_a_server_that_decodes_the_path_gets_it_cut_at_the_prefix(self, region: str) -> None:
        """httpx's WSGITransport gives PATH_INFO decoded: the split and parameters stay right."""
        seen: list[tuple[str, str, dict[str, str]]] = []
        registry = ServiceRegistry()
        registry.load(ServiceSpec("admin", routes={"/admin/{region}": _recording(seen)}))
        transport = httpx.WSGITransport(app=registry.router.as_wsgi())
        with httpx.Client(transport=transport, base_url="http://test") as client:
            assert client.get(f"/admin/{region}/stats").status_code == 200
        assert seen == [(f"/admin/{region}", "/stats", {"region": region})]

    @pytest.mark.parametrize("region", ["日本", "é"])
    def test_a_real_server_gets_the_same_split_in_its_own_form(self, region: str) -> None:
        """Under werkzeug (PEP 3333, latin-1 text) the split is the same, in the server's form."""
        seen: list[tuple[str, str, dict[str, str]]] = []
        registry = ServiceRegistry()
        registry.load(ServiceSpec("admin", routes={"/admin/{region}": _recording(seen)}))
        with wsgi_server(registry.router.as_wsgi()) as url, httpx.Client(base_url=url) as client:
            assert client.get(f"/admin/{region}/stats").status_code == 200
        assert seen == [(_as_wsgi(f"/admin/{region}"), "/stats", {"region": region})]

    @given(region=PATH_SEGMENTS, rest=PATH_SEGMENTS, decoded=st.booleans())
    def test_the_split_keeps_the_servers_path_whole(
        self, region: str, rest: str, decoded: bool
    ) -> None:
        """SCRIPT_NAME + PATH_INFO is the server's PATH_INFO; the parameter is the segment text."""
        if decoded:
            # A decoded path of latin-1 characters only may read as a PEP 3333 one
            # (what a server gives cannot say): one wider character says which it is.
            rest += "日"
        seen: list[tuple[str, str, dict[str, str]]] = []
        registry = ServiceRegistry()
        registry.load(ServiceSpec("admin", routes={"/admin/{region}": _recording(seen)}))
        path = f"/admin/{region}/{rest}"
        raw = path if decoded else _as_wsgi(path)
        registry.router.as_wsgi()({"PATH_INFO": raw, "SCRIPT_NAME": ""}, lambda *a: None)
        [(script_name, path_info, params)] = seen
        assert script_name + path_info == raw
        assert params == {"region": region}
