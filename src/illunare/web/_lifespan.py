"""Driving one ASGI application's lifespan protocol, as a server does, on the running loop.

HotASGI answers the server's lifespan itself and runs each application's
own lifespan through a ``Lifespan``: the first app's when the server starts,
a rebuilt app's before it takes traffic, an old app's after its last
request, and every started one's when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from illunare.exceptions import ValidationError

__all__ = ["ASGIApp", "Lifespan", "Message"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]

logger = logging.getLogger("illunare")


class Lifespan:
    """The lifespan of one application: ``startup()`` then ``shutdown()``, each awaited once.

    Follows what servers do (uvicorn's ``lifespan="auto"``): an application
    that raises before answering the startup event, or returns without
    answering it, has no lifespan, and starts and stops at once.

    Args:
        app: the ASGI application.
        state: the dict given as the lifespan scope's ``state`` (the app's
            own: requests it serves get a copy of it), or ``None`` when the
            server gives no state.

    """

    def __init__(self, app: ASGIApp, state: dict[str, Any] | None) -> None:
        self._app = app
        self.state = state
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[Exception | None] | None = None

    async def startup(self) -> None:
        """Send the startup event and wait for the answer.

        Raises:
            ValidationError: the application answered ``lifespan.startup.failed``
                (its message is in the error's).

        """
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
        }
        if self.state is not None:
            scope["state"] = self.state
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            self._task = None  # no lifespan: nothing to shut down
        elif answer["type"] == "lifespan.startup.failed":
            raise ValidationError(
                f"the app's lifespan startup failed: {answer.get('message', '')}"
            ) from await self._finished()

    async def shutdown(self) -> None:
        """Send the shutdown event and wait for the answer; failures are logged, not raised."""
        if self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._answer()
        error = await self._finished()
        if error is not None:
            logger.warning("the lifespan shutdown of %r failed", self._app, exc_info=error)
        elif answer is not None and answer["type"] == "lifespan.shutdown.failed":
            logger.warning(
                "the lifespan shutdown of %r failed: %s", self._app, answer.get("message", "")
            )

    async def _run(self, scope: dict[str, Any]) -> Exception | None:
        """Run the app's lifespan; what it raised, if anything."""
        try:
            await self._app(scope, self._inbox.get, self._answers.put)
        except Exception as error:  # noqa: BLE001  # an app without lifespan support raises
            return error
        return None

    async def _answer(self) -> Message | None:
        """The app's next lifespan message, or ``None`` if its lifespan ended without one."""
        assert self._task is not None
        answer = asyncio.ensure_future(self._answers.get())
        await asyncio.wait((answer, self._task), return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answer
        return None

    async def _finished(self) -> Exception | None:
        """Wait for the app's lifespan to end; what it raised, if anything."""
        task, self._task = self._task, None
        return None if task is None else await task
