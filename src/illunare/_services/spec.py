"""``ServiceSpec``: what a service is made of, checked when it is made."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from illunare._services.routes import Route, parse_route
from illunare.exceptions import ServiceSpecError

__all__ = ["ServiceSpec", "coroutine_function"]


def _name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ServiceSpecError(
            f"a service name is a non-empty str without outer spaces, got {value!r}"
        )


def coroutine_function(function: object) -> bool:
    """Whether ``function`` is an ``async def`` (or an object whose ``__call__`` is one).

    A plain function that returns a coroutine (a lambda may) is not known as such.
    """
    return inspect.iscoroutinefunction(function) or (
        callable(function) and inspect.iscoroutinefunction(type(function).__call__)
    )


def _plain_callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ServiceSpecError(
            f"ServiceSpec.{attribute.name} must be a callable or None, got {value!r}"
        )
    if coroutine_function(value):
        raise ServiceSpecError(
            f"ServiceSpec.{attribute.name} must be a plain function, not a coroutine function "
            f"(load() and unload() would not run its body), got {value!r}"
        )


def _dependencies(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ServiceSpecError(
            f"ServiceSpec.dependencies is a sequence of service names, got {value!r}"
        )
    for name in value:
        if not isinstance(name, str) or not name:
            raise ServiceSpecError(f"a dependency is a service name (str), got {name!r}")
    return tuple(dict.fromkeys(value))


def _routes(value: object) -> Mapping[str, Callable[..., Any]]:
    if not isinstance(value, Mapping):
        raise ServiceSpecError(f"ServiceSpec.routes maps paths to handlers, got {value!r}")
    for path, handler in value.items():
        if not callable(handler):
            raise ServiceSpecError(f"the handler of route {path!r} is not callable: {handler!r}")
    # Read-only: a frozen spec must not change under the registry's hands.
    return types.MappingProxyType(dict(value))


@attrs.frozen
class ServiceSpec:
    """A service: its name, how it starts and stops, what it needs and the routes it serves.

    ``name`` is unique among the services loaded in a registry. ``start`` is
    called once by ``ServiceRegistry.load()`` with no argument; what it
    returns is the service object (``lookup(name)``; None without a
    ``start``). ``stop`` is called by ``unload()``, once the service has
    drained, with the service object. Both are plain functions (``load()``
    and ``unload()`` are synchronous and run no coroutine): an ``async def``
    is refused. ``dependencies`` name the services that must be loaded
    before it (and cannot be unloaded while it is). ``routes`` map paths to
    handlers: a path is ``/``, or segments each a text or a ``{name}``
    parameter (``/users/{id}``), and also serves the paths below it
    (``/api`` serves ``/api/other``). For ``Router.dispatch`` a handler is
    any callable; for ``Router.adispatch`` a coroutine function; for the
    web adapters an ASGI (resp. WSGI) application.

    Raises:
        ServiceSpecError: a bad name, a start, stop or handler that is not
            callable, a start or stop that is a coroutine function, a
            dependency that is not a name or is the service itself, a bad
            route path, or two routes of the same shape (``/a/{x}`` and
            ``/a/{y}``).

    """

    name: str = attrs.field(validator=_name)
    start: Callable[[], object] | None = attrs.field(default=None, validator=_plain_callable)
    stop: Callable[[Any], None] | None = attrs.field(default=None, validator=_plain_callable)
    dependencies: Sequence[str] = attrs.field(default=(), converter=_dependencies)
    # Compared, not hashed (a mapping is not hashable): a spec stays hashable.
    routes: Mapping[str, Callable[..., Any]] = attrs.field(
        factory=dict, converter=_routes, repr=lambda routes: repr(tuple(routes)), hash=False
    )
    #: the routes parsed, in the order given
    _parsed: tuple[Route, ...] = attrs.field(init=False, eq=False, repr=False)

    @_parsed.default
    def _parse(self) -> tuple[Route, ...]:
        if self.name in self.dependencies:
            raise ServiceSpecError(f"service {self.name!r} cannot depend on itself")
        parsed = tuple(parse_route(path) for path in self.routes)
        shapes: dict[tuple[str | None, ...], str] = {}
        for route in parsed:
            if route.segments in shapes:
                raise ServiceSpecError(
                    f"routes {shapes[route.segments]!r} and {route.path!r} of service "
                    f"{self.name!r} match the same paths"
                )
            shapes[route.segments] = route.path
        return parsed
