"""``HotWSGI``: a WSGI application rebuilt from the new code of every release of its package."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from illunare.web._hotapp import HotApp

__all__ = ["HotWSGI"]


class HotWSGI(HotApp):
    """Serves a WSGI application (Flask, Django ...) that every change of its package rebuilds.

    Give it to the server instead of the app (``gunicorn pkg.hot:app``).
    Works as ``HotASGI`` does, without lifespans: the new app takes new
    requests once every check has passed; a request keeps the app that took
    it until its response is sent (the response iterable is that app's);
    a rollback serves the previous app again at once; a release made with
    ``rollout=`` splits the requests between the two apps (a canary).

    Args:
        app: ``"package.module:attribute"`` naming a WSGI application, or
            ``"package.module:factory()"`` naming a function that builds one.
        reloader: the HotReloader whose releases rebuild the app (the
            default reloader if None).
        checks: callables given each rebuilt app before it takes traffic;
            one that raises or returns ``False`` refuses the release.

    Raises:
        InvalidArgumentError: ``app`` is not such a name, ``checks`` not callables.
        UnknownModuleError, LoadError: the app's module cannot be imported.
        ValidationError: the module has no such attribute, or the factory raised.

    """

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Serve one request with the current app (or a canary's)."""
        canary = self._canary
        if canary is not None:
            return canary.call(environ, start_response)
        served = self._module.__dict__[self._key]
        app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]] = served.app
        served.requests[id(environ)] = environ
        try:
            return app(environ, start_response)
        finally:
            del served.requests[id(environ)]
