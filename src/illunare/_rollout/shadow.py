"""Shadow runs: sampled calls run again on the new version, off the callers' path, and compared.

The old version serves every call. The routers offer a sample of the
top-level calls (with the old version's outcome) to a ``ShadowRun``, which
queues them (a bounded queue: a call that finds it full is dropped and
counted) for one worker thread. The worker runs the new version with the new
side pinned, so every call it makes stays on the new version, catches
whatever it raises and compares the outcomes. Coroutine functions are run as
tasks on the caller's event loop instead (at most ``MAX_PENDING`` at once).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import reprlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["EXAMPLES", "MAX_PENDING", "Outcome", "ShadowRun", "describe", "matches"]

logger = logging.getLogger("illunare")

#: how many calls may wait for the worker (or run as tasks) at once
MAX_PENDING = 1024
#: how many mismatches the report shows
EXAMPLES = 5
#: the longest string an example holds
_LONGEST = 200

#: what a version did with a call: (True, the exception it raised) or (False, its result)
Outcome = tuple[bool, object]

_repr = reprlib.Repr()
_repr.maxstring = _LONGEST
_repr.maxother = _LONGEST


def describe(value: object) -> str:
    """A short, safe description of ``value`` for a report (no live object is kept)."""
    try:
        text = _repr.repr(value)
    except Exception:  # noqa: BLE001  # a broken __repr__ must not stop the shadow run
        text = f"<{type(value).__name__} object (repr raised)>"
    return text if len(text) <= _LONGEST else text[: _LONGEST - 3] + "..."


def matches(old: Outcome, new: object, compare: Callable[[object, object], object]) -> bool:
    """Whether the new version's result ``new`` agrees with the old version's ``old`` outcome.

    An exception of the old version never agrees with a result. A
    ``compare`` that raises propagates (the caller counts it).
    """
    raised, value = old
    return not raised and bool(compare(value, new))


class ShadowRun:
    """The sink sampled calls are offered to, its worker, and what they found.

    Calls offered before ``start()`` (between the switch that splits the
    calls and the start) wait for it.

    Args:
        subject: the module whose rollout this is (names the worker thread).
        compare: ``compare(old_result, new_result)``, true when they agree.

    """

    def __init__(self, subject: str, compare: Callable[[object, object], object]) -> None:
        self._subject = subject
        self._compare = compare
        self._pin: Callable[[int], AbstractContextManager[object]] | None = None
        self._queue: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Outcome, float] | None
        ] = queue.SimpleQueue()
        #: calls waiting or running (queued calls and tasks), bounded by MAX_PENDING
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._lock = threading.Lock()
        # What the new version did, for the controller's periods (drained by take()).
        self._runs = 0
        self._errors = 0
        self._latencies: list[float] = []
        # Since the start, read by report().
        self.mismatches = 0
        self.compare_errors = 0
        self.dropped = 0
        self.examples: list[dict[str, str]] = []

    def start(self, pin: Callable[[int], AbstractContextManager[object]]) -> None:
        """Start the worker; ``pin(side)`` keeps every call in its block on that side."""
        self._pin = pin
        threading.Thread(
            target=self._work, args=(pin,), name=f"illunare-shadow {self._subject}", daemon=True
        ).start()

    def offer(
        self,
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: Outcome,
        seconds: float,
    ) -> bool:
        """Run ``new(*args, **kwargs)`` off the caller's path, to compare with ``outcome``.

        Called by the router of a function after the old version served the
        call (``seconds``: how long it took). False when the call was
        dropped: too many wait, or the shadow run ended.
        """
        if self._stopped or not self._pending.acquire(blocking=False):
            self._count_dropped()
            return False
        self._queue.put((new, args, kwargs, outcome, seconds))
        return True

    def offer_coroutine(
        self,
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: Outcome,
        seconds: float,
    ) -> bool:
        """``offer`` of a coroutine function ``new``: a task on the caller's running loop.

        The router knows which of the two to call when it is made (by the
        kind of ``new``), so no sampled call asks.
        """
        del seconds  # the contract's; a task's run is timed on its own
        if self._stopped or not self._pending.acquire(blocking=False):
            self._count_dropped()
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending.release()
            self._count_dropped()
            return False
        task = loop.create_task(self._run_coroutine(new, args, kwargs, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def take(self) -> tuple[int, int, list[float]]:
        """The new version's runs, errors and latencies since the last take (the controller's)."""
        with self._lock:
            taken = (self._runs, self._errors, self._latencies)
            self._runs = self._errors = 0
            self._latencies = []
        return taken

    def untaken(self) -> tuple[int, int]:
        """The new version's runs and errors that ``take()`` has not drained yet."""
        with self._lock:
            return self._runs, self._errors

    def figures(self) -> dict[str, object]:
        """What the shadow run found since it started, as its report gives it."""
        with self._lock:
            return {
                "mismatches": self.mismatches,
                "compare_errors": self.compare_errors,
                "dropped": self.dropped,
                "mismatch_examples": [dict(example) for example in self.examples],
            }

    def stop(self) -> None:
        """End the shadow run: nothing more is offered; the worker ends after its current call.

        Does not wait for a call in progress (a hung new version holds up
        nothing but itself).
        """
        self._stopped = True
        # Its pin holds the split (both versions): it goes with the run, not
        # with a handle kept after it.
        self._pin = None
        self._queue.put(None)

    def forked(self) -> None:
        """In a forked child: the worker does not exist there; take nothing more."""
        self._lock = threading.Lock()
        self._stopped = True

    def _count_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def _work(self, pin: Callable[[int], AbstractContextManager[object]]) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopped:
                # The calls still queued hold the new version's functions and the
                # callers' arguments: they go with the run, not with the handle.
                while not self._queue.empty():
                    self._queue.get_nowait()
                return
            new, args, kwargs, outcome, _ = item
            try:
                self._judge((args, kwargs), outcome, *self._run(pin, new, args, kwargs))
            finally:
                self._pending.release()

    @staticmethod
    def _run(
        pin: Callable[[int], AbstractContextManager[object]],
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Outcome, float]:
        started = time.perf_counter()
        try:
            with pin(1):
                result: Outcome = (False, new(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001  # whatever the new code raises stays here
            result = (True, error)
        return result, time.perf_counter() - started

    async def _run_coroutine(
        self,
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: Outcome,
    ) -> None:
        try:
            while (pin := self._pin) is None:  # offered before the start, or after the stop
                if self._stopped:
                    return
                await asyncio.sleep(0.001)
            started = time.perf_counter()
            try:
                with pin(1):
                    result: Outcome = (False, await new(*args, **kwargs))
            except asyncio.CancelledError:  # the loop is closing: the task ends
                raise
            except BaseException as error:  # noqa: BLE001  # whatever the new code raises stays here
                result = (True, error)
            self._judge((args, kwargs), outcome, result, time.perf_counter() - started)
        finally:
            self._pending.release()

    def _judge(
        self,
        call: tuple[tuple[Any, ...], dict[str, Any]],
        old: Outcome,
        new: Outcome,
        seconds: float,
    ) -> None:
        """Count one shadow run: an error if the new version raised, else compared."""
        agreed = True
        if not new[0]:
            try:
                agreed = matches(old, new[1], self._compare)
            except Exception:
                with self._lock:
                    self.compare_errors += 1
                    first = self.compare_errors == 1
                if first:  # once: the same compare usually fails the same way every time
                    logger.exception(
                        "the compare function of the shadow run of %s raised", self._subject
                    )
        with self._lock:
            self._runs += 1
            self._latencies.append(seconds)
            self._errors += new[0]
            if not agreed:
                self.mismatches += 1
                if len(self.examples) < EXAMPLES:
                    args, kwargs = call
                    self.examples.append(
                        {
                            "args": describe(args),
                            "kwargs": describe(kwargs),
                            "old": _outcome(old),
                            "new": _outcome(new),
                        }
                    )


def _outcome(outcome: Outcome) -> str:
    raised, value = outcome
    return f"raised {describe(value)}" if raised else describe(value)
