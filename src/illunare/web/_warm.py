"""What a framework builds at an app's first request, built before the app takes traffic.

Frameworks defer some of an app's construction to the first request that
needs it. On a server that is the event loop (or a worker thread) of the
requests in flight: after every rebuild, the first requests on the new app
would wait for it, and with them every request the loop serves meanwhile.
``warm`` builds it in the releasing thread instead, while the old app still
serves:

* FastAPI builds the routes of an included router (``include_router``) at
  the first request that reaches it: their request and response models,
  dependencies and parameters, some milliseconds per few dozen routes;
* Werkzeug (Flask) compiles an app's URL map at the first request.

Nothing here runs a request or the app's own code. What a framework does
not have (another version, another framework) is skipped; a build that
fails is logged to the ``illunare`` logger and left to the first request,
as without illunare.
"""

from __future__ import annotations

import logging
from collections import deque

__all__ = ["warm"]

logger = logging.getLogger("illunare")

# The builders of FastAPI's included routers: each yields what it builds.
_ROUTER_BUILDERS = ("effective_route_contexts", "effective_low_priority_routes")


def warm(app: object) -> None:
    """Build what ``app``'s framework would build at its first request."""
    try:
        _fastapi_routes(app)
        _werkzeug_url_map(app)
    except Exception:  # the first request will build it, as without illunare
        logger.warning("building %r ahead of its first request failed", app, exc_info=True)


def _fastapi_routes(app: object) -> None:
    routes = getattr(getattr(app, "router", None), "routes", None)
    if not isinstance(routes, list):
        return
    for route in list(routes):
        for name in _ROUTER_BUILDERS:
            build = getattr(type(route), name, None)
            if callable(build):
                deque(build(route), maxlen=0)


def _werkzeug_url_map(app: object) -> None:
    update = getattr(getattr(app, "url_map", None), "update", None)
    if callable(update):
        update()
