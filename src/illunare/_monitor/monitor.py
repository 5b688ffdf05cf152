"""``PerformanceMonitor``: the last values of each metric per deployment, judged as they arrive."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import threading
from collections import deque
from collections.abc import Callable, Sequence
from operator import itemgetter
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar, cast

from blinker import NamedSignal

from illunare import signals
from illunare._arguments import optional, positive_int
from illunare._monitor.health import Health, Thresholds, judge
from illunare._monitor.summary import MetricSummary, summarize
from illunare.exceptions import InvalidArgumentError

__all__ = ["Measurement", "PerformanceMonitor"]

_INF = math.inf

#: how many measured blocks' pairs may wait beyond a window's worth (see ``_backlog``)
_BATCH = 256

# The two values of a measured block's (latency, error_rate) pair.
_latency = itemgetter(0)
_error = itemgetter(1)

F = TypeVar("F", bound=Callable[..., Any])


class _Window:
    """The last values of one metric of one deployment, guarded by the deployment's lock."""

    __slots__ = ("count", "limit", "values")

    def __init__(self, size: int, limit: float) -> None:
        self.values: deque[float] = deque(maxlen=size)
        #: values recorded since the start, the window's and older ones
        self.count = 0
        #: a value above this is a breach (infinite for a metric nobody judges)
        self.limit = limit


class _Deployment:
    """The windows of one deployment id; one lock for all, so its metrics read consistently."""

    __slots__ = ("arrivals", "lock", "windows")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, _Window] = {}
        #: the (latency, error_rate) pairs of measured blocks not yet in the windows, oldest
        #: first: a block appends its pair without the lock (list.append is atomic), and
        #: whoever holds the lock moves them in (``_settle``) before reading or adding values
        self.arrivals: list[tuple[float, float]] = []


class PerformanceMonitor:
    """Keeps a window of the last ``window`` values of each metric of each deployment id.

    Metrics are named freely: ``latency`` (seconds) and ``error_rate`` (0..1
    per call) are the ones ``measure()`` records and ``thresholds`` judge;
    ``throughput``, ``memory_usage`` or any other name are kept and summed up
    alike. Thread-safe, and cheap enough to sit on every request: a value
    costs a dict lookup, a lock and a deque append; a measured block, a dict
    lookup and a list append (its values join the windows in batches, before
    anything reads them).

    Args:
        window: how many of the most recent values of each metric are kept
            (an int >= 1).
        thresholds: the limits judged as values arrive and by ``health()``;
            None judges nothing.

    Raises:
        InvalidArgumentError: ``window`` is not an int >= 1, or ``thresholds``
            not a ``Thresholds`` or None.

    """

    # __weakref__: receivers connected for one monitor (connect_via) leave with it.
    __slots__ = (
        "__weakref__",
        "_backlog",
        "_deployments",
        "_judged",
        "_lock",
        "_max_error_rate",
        "_max_latency",
        "_size",
        "_thresholds",
    )

    def __init__(self, *, window: int = 100, thresholds: Thresholds | None = None) -> None:
        self._size = positive_int("window", window)
        # Measured blocks' pairs wait until a reader or record() settles them,
        # or until this many wait: then the block that fills the backlog
        # settles them. Only the last window's worth is moved (the others
        # would leave the windows anyway), so each block pays a small share.
        self._backlog = self._size + _BATCH
        optional("thresholds", thresholds, Thresholds)
        self._thresholds = thresholds
        # Decided once: the limit and signal of each judged metric, and the two
        # limits a measured block is judged by (infinite: not judged).
        self._judged: dict[str, tuple[float, NamedSignal]] = {}
        if thresholds is not None and thresholds.max_latency is not None:
            self._judged["latency"] = (thresholds.max_latency, signals.performance_alert)
        if thresholds is not None and thresholds.max_error_rate is not None:
            self._judged["error_rate"] = (thresholds.max_error_rate, signals.rollback_alert)
        self._max_latency = self._judged.get("latency", (_INF,))[0]
        self._max_error_rate = self._judged.get("error_rate", (_INF,))[0]
        # Guards the dict itself (ids started and stopped); each deployment
        # guards its own windows.
        self._lock = threading.Lock()
        self._deployments: dict[str, _Deployment] = {}

    def __repr__(self) -> str:
        return (
            f"<PerformanceMonitor window={self._size} thresholds={self._thresholds!r} "
            f"deployments={list(self._deployments)}>"
        )

    @property
    def window(self) -> int:
        """How many of the most recent values of each metric are kept."""
        return self._size

    @property
    def thresholds(self) -> Thresholds | None:
        """The limits judged as values arrive and by ``health()``."""
        return self._thresholds

    def start(self, deployment_id: str) -> None:
        """Start monitoring ``deployment_id``; an id already started keeps its values.

        ``record()`` and ``measure()`` start an id themselves; to start
        afresh, ``stop()`` it first.

        Raises:
            InvalidArgumentError: ``deployment_id`` is not a non-empty str.

        """
        self._deployment(deployment_id)

    def stop(self, deployment_id: str) -> None:
        """Stop monitoring ``deployment_id`` and discard its values (nothing if it was not started).

        Raises:
            InvalidArgumentError: ``deployment_id`` is not a non-empty str.

        """
        name = _name("deployment_id", deployment_id)
        with self._lock:
            self._deployments.pop(name, None)

    def record(self, deployment_id: str, metric: str, value: float) -> None:
        """Add ``value`` to the window of ``metric`` of ``deployment_id`` (started if need be).

        ``metric`` is any name: ``"latency"`` (seconds), ``"throughput"``,
        ``"error_rate"`` (0..1), ``"memory_usage"`` ... A ``latency`` above
        the thresholds' ``max_latency`` sends ``signals.performance_alert``,
        an ``error_rate`` above ``max_error_rate`` sends
        ``signals.rollback_alert``: once per breaching value, from the
        recording thread, after the value is in the window.

        Raises:
            InvalidArgumentError: ``value`` is not a finite real number (a NaN
                would make every comparison false and hide a breach), or an
                id or metric is not a non-empty str; nothing is recorded.

        """
        if value.__class__ is not float or not -_INF < value < _INF:
            value = _finite(value)
        try:
            deployment = self._deployments[deployment_id]
            window = deployment.windows[metric]
        except (KeyError, TypeError):  # a new id or metric, or a wrong type to report
            deployment, window = self._window(deployment_id, metric)
        # acquire/release cost half of what "with" does on the lock.
        lock = deployment.lock
        lock.acquire()
        try:
            if deployment.arrivals:  # blocks measured before this value come first
                self._settle(deployment)
            window.values.append(value)
            window.count += 1
        finally:
            lock.release()
        if value > window.limit:
            self._alert(deployment_id, metric, value)

    def measure(self, deployment_id: str) -> Measurement:
        """Time a block or each call of a function: records ``latency`` and ``error_rate``.

        As a context manager (``with monitor.measure("checkout"):``) or a
        decorator (``@monitor.measure("checkout")``, for plain and ``async``
        functions). When the body ends, its duration in seconds
        (``time.perf_counter``) is recorded as ``latency`` and ``error_rate``
        gets 1.0 if it raised an ``Exception``, else 0.0. A body ended by
        another ``BaseException`` (a cancellation, ``KeyboardInterrupt``,
        ``SystemExit``) did not finish its work, so records nothing.

        The object returned may be entered again once its block has ended;
        blocks that may overlap (threads, tasks) each need their own
        ``measure()`` call. A decorated function can run concurrently.

        Raises:
            InvalidArgumentError: ``deployment_id`` is not a non-empty str.

        """
        if deployment_id.__class__ is not str or not deployment_id:
            _name("deployment_id", deployment_id)
        # Slots set here rather than by an __init__: one Python call less per block.
        measurement = Measurement()
        measurement._monitor = self
        measurement._deployment_id = deployment_id
        return measurement

    def metrics(self, deployment_id: str) -> dict[str, MetricSummary]:
        """The summary of each metric recorded for ``deployment_id``, by metric name.

        A new dict of ``MetricSummary`` (``count`` since the start; ``last``,
        ``mean``, ``min``, ``max``, nearest-rank ``p50``/``p95``/``p99`` and
        ``values`` of the window), all taken at one instant. Empty for an id
        that was never started, was stopped, or has no values yet.

        Raises:
            InvalidArgumentError: ``deployment_id`` is not a non-empty str.

        """
        deployment = self._deployments.get(_name("deployment_id", deployment_id))
        if deployment is None:
            return {}
        with deployment.lock:
            if deployment.arrivals:
                self._settle(deployment)
            taken = [
                (metric, window.count, tuple(window.values))
                for metric, window in deployment.windows.items()
            ]
        return {metric: summarize(count, values) for metric, count, values in taken if values}

    def health(self, deployment_id: str) -> Health:
        """The window of ``deployment_id`` judged by the thresholds: p99 latency, mean error rate.

        Healthy when no threshold is set, or the id has no values.

        Raises:
            InvalidArgumentError: ``deployment_id`` is not a non-empty str.

        """
        return judge(self._thresholds, self.metrics(deployment_id))

    # Internals ------------------------------------------------------------------

    def _record_batch(
        self, deployment_id: str, metric: str, values: Sequence[float], count: int
    ) -> None:
        """Add the finite ``values`` to a window at once, as ``count`` values recorded.

        For the library's own feeds (a rollout's per-version metrics, every
        100 ms): one lock for the whole batch. Not judged value by value: such
        a feed is judged as a whole by its owner (a rollout's step verdict,
        which sends its own alert), and one error among a few calls of a
        period is no breach. ``count`` may exceed ``len(values)`` when only
        the most recent of the values counted are given.
        """
        if not values and not count:
            return
        deployment, window = self._window(deployment_id, metric)
        with deployment.lock:
            if deployment.arrivals:
                self._settle(deployment)
            window.values.extend(values[-self._size :])
            window.count += count

    def _deployment(self, deployment_id: object) -> _Deployment:
        """The windows of ``deployment_id``, started now if need be."""
        name = _name("deployment_id", deployment_id)
        with self._lock:
            deployment = self._deployments.get(name)
            if deployment is None:
                deployment = self._deployments[name] = _Deployment()
            return deployment

    def _started(self, deployment_id: str) -> object | None:
        """The current start of ``deployment_id``, None if not started.

        A stop() and a restart make another one; ``count`` tells values apart
        only within one start.
        """
        return self._deployments.get(deployment_id)

    def _window(self, deployment_id: object, metric: object) -> tuple[_Deployment, _Window]:
        """The deployment of ``deployment_id`` and its window of ``metric``, made now if need be.

        Nothing is started unless both names are valid.
        """
        name = _name("metric", metric)
        deployment = self._deployment(deployment_id)
        with deployment.lock:
            return deployment, self._made(deployment, name)

    def _made(self, deployment: _Deployment, metric: str) -> _Window:
        """The window of ``metric`` of ``deployment``, made now if need be (its lock held)."""
        window = deployment.windows.get(metric)
        if window is None:
            limit = self._judged.get(metric, (_INF,))[0]
            window = deployment.windows[metric] = _Window(self._size, limit)
        return window

    def _settle(self, deployment: _Deployment) -> None:
        """Move the pairs of measured blocks waiting in ``deployment`` into its windows.

        The caller holds the deployment's lock. Blocks keep appending while
        this runs: only the pairs taken are removed (blocks only append, and
        only a holder of the lock removes).
        """
        arrivals = deployment.arrivals
        pairs = arrivals[:]
        del arrivals[: len(pairs)]
        recent = pairs[-self._size :]  # older ones would leave the windows anyway
        for window, values in (
            (self._made(deployment, "latency"), map(_latency, recent)),
            (self._made(deployment, "error_rate"), map(_error, recent)),
        ):
            window.values.extend(values)
            window.count += len(pairs)

    def _alert(self, deployment_id: str, metric: str, value: float) -> None:
        """Tell the alert's receivers about a breaching value; a failing receiver is logged."""
        limit, alert = self._judged[metric]
        if alert.receivers:
            signals._send(  # the library's own send, each receiver isolated
                alert,
                self,
                deployment_id=deployment_id,
                metric=metric,
                value=value,
                threshold=limit,
            )


class Measurement:
    """What ``PerformanceMonitor.measure()`` returns: a context manager and a decorator.

    Only ``measure()`` makes them (it sets the slots itself).
    """

    __slots__ = ("_deployment_id", "_monitor", "_started")

    _monitor: PerformanceMonitor
    _deployment_id: str
    _started: float

    def __repr__(self) -> str:
        return f"<Measurement of {self._deployment_id!r}>"

    def __enter__(self) -> Measurement:
        self._started = perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        seconds = perf_counter() - self._started
        if kind is None:
            error = 0.0
        elif issubclass(kind, Exception):
            error = 1.0
        else:  # cancelled or interrupted: the body did not finish its work
            return
        monitor = self._monitor
        try:
            deployment = monitor._deployments[self._deployment_id]
        except KeyError:
            deployment = monitor._deployment(self._deployment_id)
        # No lock on the request path: readers settle the pair first.
        arrivals = deployment.arrivals
        arrivals.append((seconds, error))
        if len(arrivals) >= monitor._backlog:
            with deployment.lock:
                monitor._settle(deployment)
        if seconds > monitor._max_latency:
            monitor._alert(self._deployment_id, "latency", seconds)
        if error > monitor._max_error_rate:
            monitor._alert(self._deployment_id, "error_rate", error)

    def __call__(self, function: F) -> F:
        """Measure every call of ``function`` (a plain or ``async`` function).

        Raises:
            InvalidArgumentError: ``function`` is not callable, or is a
                generator function (its body runs when iterated, not called).

        """
        if not callable(function):
            raise InvalidArgumentError(f"measure() decorates a function, got {function!r}")
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise InvalidArgumentError(
                f"measure() cannot time generator function {function.__qualname__}: "
                "its body runs when it is iterated; measure the loop instead"
            )
        monitor = self._monitor
        deployment_id = self._deployment_id

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def measured_coroutine(*args: Any, **kwargs: Any) -> Any:
                with monitor.measure(deployment_id):
                    return await function(*args, **kwargs)

            return cast("F", measured_coroutine)

        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            with monitor.measure(deployment_id):
                return function(*args, **kwargs)

        return cast("F", measured)


def _name(argument: str, value: object) -> str:
    """``value`` if it is a non-empty str, else InvalidArgumentError naming ``argument``."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{argument} must be a non-empty str, got {value!r}")
    return value


def _finite(value: object) -> float:
    """``value`` as a finite float, or InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"value must be a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = _INF
    if not math.isfinite(number):
        raise InvalidArgumentError(f"value must be a finite number, got {value!r}")
    return number
