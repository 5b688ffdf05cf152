"""``HotASGI``: an ASGI application rebuilt from the new code of every release of its package."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from illunare._reload.reloader import HotReloader
from illunare.exceptions import ValidationError
from illunare.web._hotapp import HotApp
from illunare.web._inflight import Served
from illunare.web._lifespan import Lifespan, Message

__all__ = ["HotASGI"]

# How often a release waiting for the server's loop checks that the loop still runs (s).
_POLL = 0.5


class HotASGI(HotApp):
    """Serves an ASGI application that every change of its package rebuilds, with no downtime.

    Give it to the server instead of the app (``uvicorn pkg.hot:app``). It
    tracks the app's top-level package (as ``HotReloader.install`` does) and
    imports the app. Whenever a release (``swap``, ``swap_many``,
    ``rollback``, a save seen by ``watch``) changes modules of that package,
    the app's module and the modules importing a changed one are executed
    anew in the same release, and the new app takes new requests only once
    its lifespan startup (when the server runs lifespans) and every check
    have passed. Requests in flight finish on the app that took them; an
    app that is neither current nor the previous one is shut down after its
    last request. A rollback serves the previous app again at once. A
    release made with ``rollout=`` is a canary: each step's share of the
    requests goes to the new app, each request served whole by one app.

    Args:
        app: ``"package.module:attribute"`` naming an ASGI application, or
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

    def __init__(
        self,
        app: str,
        *,
        reloader: HotReloader | None = None,
        checks: Sequence[Callable[[Any], object]] = (),
    ) -> None:
        # Set by the server's lifespan startup; read by releasing threads.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._with_state = False
        # The apps whose lifespan is started; touched on the loop only.
        self._started: set[Served] = set()
        # Shutdowns of drained apps under way; the server's shutdown waits for them.
        self._stopping: set[asyncio.Task[None]] = set()
        super().__init__(app, reloader=reloader, checks=checks)  # releases reach us from here on

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Serve one connection: with the current app (or a canary's), or the lifespan ourselves."""
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        canary = self._canary
        if canary is not None:
            await canary.handle(scope, receive, send)
            return
        served: Served = self._module.__dict__[self._key]
        await served.handle(scope, receive, send)

    async def _lifespan(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        await receive()  # lifespan.startup
        self._with_state = "state" in scope
        self._loop = asyncio.get_running_loop()
        try:
            await self._started_app(self._served())
        except Exception as error:  # noqa: BLE001  # the server is told, as the ASGI spec says
            self._loop = None
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self._loop = None  # releases from now on start nothing
        for served in list(self._started):
            await self._stopped(served)
        await asyncio.gather(*self._stopping)
        await send({"type": "lifespan.shutdown.complete"})

    # Running on the server's loop ---------------------------------------------------------

    async def _started_app(self, served: Served) -> None:
        """Start ``served``'s lifespan, unless it runs (then it is no longer retired)."""
        served.retired = False
        if served in self._started:
            return
        if served.stopping is not None:
            await served.stopping  # shut down before it starts again
        lifespan = Lifespan(served.app, {} if self._with_state else None)
        await lifespan.startup()
        served.lifespan = lifespan
        served.on_drained = self._drained
        self._started.add(served)

    async def _stopped(self, served: Served) -> None:
        """Shut ``served``'s lifespan down (at once: requests must be over)."""
        self._started.discard(served)
        lifespan, served.lifespan = served.lifespan, None
        if lifespan is not None:
            await lifespan.shutdown()

    def _drained(self, served: Served) -> None:
        loop = asyncio.get_running_loop()
        served.stopping = task = loop.create_task(self._stopped(served))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _retire_others(self) -> None:
        keep = {self._served(), self._previous}
        for served in list(self._started):
            if served not in keep and not served.retired:
                served.retired = True
                if not served.inflight:
                    self._drained(served)

    # Called by the releasing thread ---------------------------------------------------------

    def _start(self, served: Served) -> None:
        self._on_loop(self._started_app(served))

    def _settle(self) -> None:
        # Waits for the loop to run it: a request that took the old app just
        # before the switch has recorded itself in it by then (its lookup and
        # record happen in one step of the loop), so that the stale-reference
        # scan that follows counts it among what is kept.
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        if _running_loop() is loop:
            self._retire_others()
            return
        with contextlib.suppress(ValidationError):  # the server stopped: nothing to retire
            self._on_loop(self._retired())

    async def _retired(self) -> None:
        self._retire_others()

    def _on_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the server's loop and wait for it; nothing to do without one."""
        loop = self._loop
        if loop is None or not loop.is_running():
            coroutine.close()  # the server runs no lifespan: apps need no start
            return
        if _running_loop() is loop:
            coroutine.close()
            raise ValidationError(
                f"the new app of {self._spec} must start on the server's event loop, which "
                "this release is blocking: call swap/rollback from a thread, e.g. "
                "`await asyncio.to_thread(reloader.swap, ...)` or loop.run_in_executor",
                module=self._spec.module,
            )
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(coroutine, loop)
        while not concurrent.futures.wait((future,), _POLL).done:
            # A server stopping meanwhile would never run it: do not wait forever.
            if not loop.is_running():
                future.cancel()
                raise ValidationError(
                    f"the server stopped while the new app of {self._spec} was starting",
                    module=self._spec.module,
                )
        future.result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
