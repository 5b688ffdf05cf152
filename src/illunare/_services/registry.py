"""``ServiceRegistry``: services loaded and unloaded at runtime, their routes served by a Router."""

from __future__ import annotations

import inspect
import math
import threading
import time

import attrs

from illunare import signals
from illunare._arguments import optional
from illunare._services.flow import Flow
from illunare._services.router import Router
from illunare._services.routes import RouteTable
from illunare._services.spec import ServiceSpec
from illunare.exceptions import (
    DrainTimeoutError,
    InvalidArgumentError,
    ServiceInUseError,
    ServiceNotFoundError,
    ServiceSpecError,
)

__all__ = ["ServiceRegistry"]


@attrs.define(eq=False)
class _Entry:
    """A service the registry knows: loading (reserved, not routed), loaded, or unloading."""

    spec: ServiceSpec
    flow: Flow
    service: object = None
    loaded: bool = False
    #: held by the unload under way, so that one unload of it runs at a time
    unloading: threading.Lock = attrs.Factory(threading.Lock)


class ServiceRegistry:
    """The services loaded in this process, started and stopped at runtime, their routes served.

    ``load()`` checks a spec, starts the service and, only then, registers it
    with its routes in one step; ``unload()`` stops routing new requests to
    it, lets those in flight finish, stops it and unregisters it. Thread
    safe: loads, unloads and dispatches may run concurrently (a service
    starting or draining holds no lock others wait for).

    Args:
        router: the Router serving the routes (a new one if None); a router
            serves one registry.

    Raises:
        InvalidArgumentError: ``router`` is not a Router, or serves another registry.

    """

    def __init__(self, *, router: Router | None = None) -> None:
        optional("router", router, Router)
        self._router = Router() if router is None else router
        self._router._adopt(self)
        self._lock = threading.Lock()
        # Every name in use, in load order: a service starting holds its name
        # and routes (and is not routed yet); an unloaded one leaves.
        self._entries: dict[str, _Entry] = {}

    def __repr__(self) -> str:
        return f"<ServiceRegistry services={list(self.services())}>"

    @property
    def router(self) -> Router:
        """The Router serving the loaded services' routes."""
        return self._router

    def load(self, spec: ServiceSpec) -> object:
        """Start the service of ``spec`` and register it with its routes; return the service.

        The checks come first, then ``spec.start()`` (outside any lock: other
        loads, unloads and requests go on meanwhile), then the service and
        its routes are registered in one step: a request sees all its routes
        or none. Sends ``service_loaded``.

        Raises:
            ServiceSpecError: a service of that name is loaded (or loading),
                a route clashes with a route of a loaded service (the same
                shape: ``/a/{x}`` and ``/a/{y}``), or a dependency is not
                loaded. The message names each. Nothing started. Also when
                ``spec.start()`` returns a coroutine (the body of an async
                function, which nothing runs): nothing is registered.
            InvalidArgumentError: ``spec`` is not a ServiceSpec.
            Whatever ``spec.start()`` raises, as it is: nothing is registered.

        """
        if not isinstance(spec, ServiceSpec):
            raise InvalidArgumentError(f"load() takes a ServiceSpec, got {type(spec).__name__}")
        with self._lock:
            problems = self._problems(spec)
            if problems:
                raise ServiceSpecError(
                    f"cannot load service {spec.name!r}: {'; '.join(problems)}", service=spec.name
                )
            entry = self._entries[spec.name] = _Entry(spec, Flow(spec.name))
        try:
            service = None if spec.start is None else _returned(spec, "start", spec.start())
        except BaseException:
            with self._lock:
                del self._entries[spec.name]
            raise
        with self._lock:
            entry.service = service
            entry.loaded = True
            self._publish()
        if signals.service_loaded.receivers:
            signals._send(signals.service_loaded, self, name=spec.name, service=service, spec=spec)
        return service

    def unload(self, name: str, *, drain_timeout: float = 30.0) -> None:
        """Stop routing new requests to service ``name``, drain it, stop it, unregister it.

        From the start of the unload, new requests for its routes get
        ``ServiceUnavailableError`` (503 through the web adapters); the
        requests in flight finish as they would. Once none is left,
        ``spec.stop(service)`` runs, then the service and its routes leave
        the registry in one step (their paths then match no route, or
        another service's). Sends ``service_unloaded``. It blocks while the
        service drains: from async code, call it in a thread
        (``await asyncio.to_thread(registry.unload, name)``), or the event
        loop it blocks cannot finish the requests it waits for.

        Args:
            name: the service.
            drain_timeout: seconds to wait for the requests in flight (0:
                do not wait; ``math.inf``: as long as they take).

        Raises:
            ServiceNotFoundError: no service ``name`` is loaded.
            ServiceInUseError: loaded services depend on it (``dependents``
                names them); nothing changed.
            DrainTimeoutError: requests were still in flight after
                ``drain_timeout``. The service stays registered, refusing new
                requests, and is not stopped; call ``unload`` again to go on.
            Whatever ``spec.stop`` raises, as it is: the service stays
                registered and refusing new requests; ``unload`` may be called
                again (it calls ``stop`` again). A ``stop`` that returns a
                coroutine (which nothing runs) is a ServiceSpecError, alike.
            InvalidArgumentError: ``name`` is not a str, or ``drain_timeout``
                is not a number >= 0.

        """
        self._unload(name, drain_timeout, restore=False)

    def lookup(self, name: str) -> object:
        """The service object of loaded service ``name`` (what its ``start`` returned).

        Raises:
            ServiceNotFoundError: no service ``name`` is loaded (a service
                still starting is not).
            InvalidArgumentError: ``name`` is not a str.

        """
        return self._entry(name).service

    def services(self) -> tuple[str, ...]:
        """The names of the loaded services (those draining included), in load order."""
        with self._lock:
            return tuple(name for name, entry in self._entries.items() if entry.loaded)

    # Internals ------------------------------------------------------------------

    def _unload(self, name: str, drain_timeout: float, *, restore: bool) -> None:
        """``unload()``; with ``restore``, an unload that fails leaves the service as it found it.

        A Deployment's service step that fails changes nothing: a service
        that was serving when the unload began serves again when its drain
        times out, its ``stop`` raises or an interrupt comes (what ``stop``
        did before it raised is the service's own: not undone).
        """
        if (
            isinstance(drain_timeout, bool)
            or not isinstance(drain_timeout, (int, float))
            or math.isnan(drain_timeout)
            or drain_timeout < 0
        ):
            raise InvalidArgumentError(
                f"drain_timeout must be a number of seconds >= 0, got {drain_timeout!r}"
            )
        deadline = time.monotonic() + drain_timeout
        entry = self._entry(name)
        # Another unload of it may be draining it: wait for that one first.
        if not entry.unloading.acquire(timeout=min(drain_timeout, threading.TIMEOUT_MAX)):
            raise self._timeout(entry, drain_timeout)
        try:
            with self._lock:
                if self._entries.get(name) is not entry:
                    raise ServiceNotFoundError(
                        f"service {name!r} was unloaded meanwhile", service=name
                    )
                dependents = tuple(
                    other.spec.name
                    for other in self._entries.values()
                    if name in other.spec.dependencies
                )
                if dependents:
                    raise ServiceInUseError(
                        f"cannot unload service {name!r}: {', '.join(map(repr, dependents))} "
                        "depend on it",
                        service=name,
                        dependents=dependents,
                    )
                serving = not entry.flow.draining
                entry.flow.draining = True
            try:
                self._stop(entry, deadline, drain_timeout)
            except BaseException:
                if restore and serving:
                    entry.flow.draining = False  # no other unload of it runs: we hold it
                raise
            with self._lock:
                del self._entries[name]
                self._publish()
        finally:
            entry.unloading.release()
        if signals.service_unloaded.receivers:
            signals._send(
                signals.service_unloaded, self, name=name, service=entry.service, spec=entry.spec
            )

    def _stop(self, entry: _Entry, deadline: float, drain_timeout: float) -> None:
        """Wait until ``deadline`` for no request of ``entry`` in flight, then stop its service.

        Raises:
            DrainTimeoutError: requests are still in flight at ``deadline``.
            Whatever ``stop`` raises; ServiceSpecError if it returns a coroutine.

        """
        if not entry.flow.drained(max(0.0, deadline - time.monotonic())):
            raise self._timeout(entry, drain_timeout)
        if entry.spec.stop is not None:
            _returned(entry.spec, "stop", entry.spec.stop(entry.service))

    def _entry(self, name: str) -> _Entry:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a service name is a str, got {type(name).__name__}")
        entry = self._entries.get(name)
        if entry is None or not entry.loaded:
            raise ServiceNotFoundError(f"no service {name!r} is loaded", service=name)
        return entry

    def _spec(self, name: str) -> ServiceSpec:
        """The spec of loaded service ``name``; ServiceNotFoundError if none."""
        return self._entry(name).spec

    def _problems(self, spec: ServiceSpec) -> list[str]:
        """Why ``spec`` cannot be loaded now (under the lock)."""
        problems = []
        if spec.name in self._entries:
            problems.append(f"a service named {spec.name!r} is already loaded (or loading)")
        for dependency in spec.dependencies:
            entry = self._entries.get(dependency)
            if entry is None or not entry.loaded:
                problems.append(f"it depends on {dependency!r}, which is not loaded")
            elif entry.flow.draining:
                problems.append(f"it depends on {dependency!r}, which is being unloaded")
        taken = {
            route.segments: (other.spec.name, route.path)
            for other in self._entries.values()
            for route in other.spec._parsed
        }
        for route in spec._parsed:
            if route.segments in taken:
                owner, path = taken[route.segments]
                problems.append(
                    f"route {route.path!r} clashes with route {path!r} of service {owner!r}"
                )
        return problems

    def _publish(self) -> None:
        """Give the router a table of the loaded services' routes (under the lock)."""
        self._router._publish(
            RouteTable(
                (route, entry.spec.routes[route.path], entry.flow)
                for entry in self._entries.values()
                if entry.loaded
                for route in entry.spec._parsed
            )
        )

    @staticmethod
    def _timeout(entry: _Entry, drain_timeout: float) -> DrainTimeoutError:
        inflight = entry.flow.inflight()
        return DrainTimeoutError(
            f"service {entry.spec.name!r} still had {inflight} request(s) in flight after "
            f"{drain_timeout} s; it stays registered and refuses new requests: call unload() "
            "again to finish",
            service=entry.spec.name,
            inflight=inflight,
        )


def _returned(spec: ServiceSpec, role: str, result: object) -> object:
    """``result`` of the spec's ``start`` or ``stop`` (``role``); ServiceSpecError for a coroutine.

    A coroutine is the body of an async function, never run: nothing was
    started (or stopped). It is closed, so that Python does not warn of it.
    """
    if inspect.iscoroutine(result):
        result.close()
        raise ServiceSpecError(
            f"the {role} of service {spec.name!r} returned a coroutine, which nothing runs: "
            f"{role} must be a plain function (it may run async code with asyncio.run, or "
            "hand it to the service's own event loop)",
            service=spec.name,
        )
    return result
