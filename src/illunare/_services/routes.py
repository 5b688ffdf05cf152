"""Route paths (``/users/{id}``) and the table a Router matches request paths against.

A route matches a request path exactly, or as a prefix at a segment boundary
(``/api`` serves ``/api/other``, never ``/apiX``). Of the routes that match,
the one of most segments wins; among those, a static segment wins over a
``{param}`` at the first position where they differ. Two routes of one shape
(the same segments, parameters at the same places whatever their names)
would match the same paths: they clash.

The table's routes are immutable once built: a registry builds a new table
when a service comes or goes and replaces the router's in one assignment,
so a request reads one table from start to end without a lock. Its cache
maps exact paths to their matches, filled on a miss by a search of its route
tree, and cleared when it grows beyond ``CACHE`` paths (paths with
parameters are many); paths longer than ``CACHED_LENGTH`` are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from illunare._services.flow import Flow
from illunare.exceptions import InvalidArgumentError, NoRouteError, ServiceSpecError

__all__ = ["CACHE", "Match", "Route", "RouteTable", "parse_route"]

#: paths whose match a table keeps at most (cleared beyond)
CACHE = 4096
#: longer paths are searched each time (a cache of long paths would hold much memory)
CACHED_LENGTH = 256

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Handler = Callable[..., Any]

# What no request path's segment holds (a query, a fragment, whitespace) or a
# parameter's half; and the empty segment.
_UNROUTABLE = re.compile(r"^$|[{}?#\s]")


@attrs.frozen
class Route:
    """One parsed route path."""

    path: str
    #: each segment's text, None for a parameter
    segments: tuple[str | None, ...]
    #: the parameters' names, in order
    params: tuple[str, ...]

    @property
    def rank(self) -> tuple[int, tuple[bool, ...]]:
        """Orders the routes matching one path: the greatest wins."""
        return len(self.segments), tuple(segment is not None for segment in self.segments)


def parse_route(path: object) -> Route:
    """The Route of ``path``; ServiceSpecError if it is not a route path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ServiceSpecError(f"a route path is a str starting with '/', got {path!r}")
    if path == "/":
        return Route(path, (), ())
    segments: list[str | None] = []
    params: list[str] = []
    for segment in path[1:].split("/"):
        found = _PARAM.fullmatch(segment)
        if found is not None:
            if found[1] in params:
                raise ServiceSpecError(f"route {path!r} names parameter {found[1]!r} twice")
            params.append(found[1])
            segments.append(None)
        elif segment in (".", "..") or _UNROUTABLE.search(segment) is not None:
            raise ServiceSpecError(
                f"route {path!r}: each segment is text without braces, '?', '#' or "
                f"whitespace, or a whole '{{name}}' parameter (a Python identifier); "
                f"none is empty, '.' or '..'; got {segment!r}"
            )
        else:
            segments.append(segment)
    return Route(path, tuple(segments), tuple(params))


#: what a request path matches: the handler, the path parameters (None for a
#: route without any), the service's Flow, and the matched prefix of the path
#: ("" for the route "/")
Match = tuple[Handler, dict[str, str] | None, Flow, str]


class _Node:
    __slots__ = ("end", "param", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.param: _Node | None = None
        #: the route ending here, with its handler and service
        self.end: tuple[Route, Handler, Flow] | None = None


class RouteTable:
    """The routes of the loaded services, and the matches of the paths seen (a bounded cache)."""

    __slots__ = ("_root", "cache", "paths")

    def __init__(self, routes: Iterable[tuple[Route, Handler, Flow]] = ()) -> None:
        self._root = _Node()
        paths = []
        for route, handler, flow in routes:
            paths.append(route.path)
            node = self._root
            for segment in route.segments:
                if segment is None:
                    if node.param is None:
                        node.param = _Node()
                    node = node.param
                else:
                    node = node.static.setdefault(segment, _Node())
            node.end = (route, handler, flow)
        #: the route paths, in the order given
        self.paths = tuple(paths)
        #: exact path -> its match (a plain dict: the fastest lookup there is)
        self.cache: dict[str, Match] = {}

    def match(self, path: str) -> Match:
        """The match of ``path``, from the cache or found (and cached); NoRouteError if none."""
        if type(path) is not str:
            raise InvalidArgumentError(f"a path must be a str, got {type(path).__name__}")
        cache = self.cache
        try:
            return cache[path]
        except KeyError:
            pass
        match = self.search(path)
        if len(path) > CACHED_LENGTH:
            return match
        if len(cache) >= CACHE:
            cache.clear()
        cache[path] = match
        return match

    def search(self, path: str) -> Match:
        """The match of ``path`` found in the route tree (the cache aside)."""
        segments = path[1:].split("/")
        best: list[Any] = []
        if path.startswith("/"):
            _search(self._root, segments, 0, [], best)
        if not best:
            raise NoRouteError(f"no route matches {path!r}", path=path)
        route, handler, flow, values = best[1], best[2], best[3], best[4]
        matched = "/" + "/".join(segments[: len(route.segments)]) if route.segments else ""
        params = dict(zip(route.params, values, strict=True)) if route.params else None
        return handler, params, flow, matched


def _search(
    node: _Node, segments: list[str], index: int, values: list[str], best: list[Any]
) -> None:
    """Put in ``best`` the greatest route of ``node``'s subtree matching ``segments[index:]``."""
    if node.end is not None:
        route, handler, flow = node.end
        if not best or route.rank > best[0]:
            best[:] = [route.rank, route, handler, flow, tuple(values)]
    if index == len(segments):
        return
    segment = segments[index]
    child = node.static.get(segment)
    if child is not None:
        _search(child, segments, index + 1, values, best)
    if node.param is not None and segment:
        values.append(segment)
        _search(node.param, segments, index + 1, values, best)
        values.pop()
