"""``PerformanceMonitor``: the last values of each metric per deployment, judged as they arrive."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import threading
from collections import deque
from collections.abc import Callable
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

F = TypeVar("F", bound=Callable[..., Any])


class _Window:
    """The last values of one metric of one deployment, guarded by the deployment's lock."""

    __slots__ = ("alert", "count", "limit", "lock", "values")

    def __init__(
        self, size: int, lock: threading.Lock, limit: float, alert: NamedSignal | None
    ) -> None:
        self.values: deque[float] = deque(maxlen=size)
        #: values recorded since the start, the window's and older ones
        self.count = 0
        self.lock = lock
        #: a value above this is a breach (infinite for a metric nobody judges)
        self.limit = limit
        self.alert = alert


class _Deployment:
    """The windows of one deployment id; one lock for all, so its metrics read consistently."""

    __slots__ = ("lock", "windows")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, _Window] = {}


class PerformanceMonitor:
    """Keeps a window of the last ``window`` values of each metric of each deployment id.

    Metrics are named freely: ``latency`` (seconds) and ``error_rate`` (0..1
    per call) are the ones ``measure()`` records and ``thresholds`` judge;
    ``throughput``, ``memory_usage`` or any other name are kept and summed up
    alike. Thread-safe, and cheap enough to sit on every request: a value
    costs a dict lookup, a lock and a deque append.

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
    __slots__ = ("__weakref__", "_deployments", "_judged", "_lock", "_size", "_thresholds")

    def __init__(self, *, window: int = 100, thresholds: Thresholds | None = None) -> None:
        self._size = positive_int("window", window)
        optional("thresholds", thresholds, Thresholds)
        self._thresholds = thresholds
        # Decided once: the limit and signal of each judged metric.
        self._judged: dict[str, tuple[float, NamedSignal]] = {}
        if thresholds is not None and thresholds.max_latency is not None:
            self._judged["latency"] = (thresholds.max_latency, signals.performance_alert)
        if thresholds is not None and thresholds.max_error_rate is not None:
            self._judged["error_rate"] = (thresholds.max_error_rate, signals.rollback_alert)
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
            window = self._deployments[deployment_id].windows[metric]
        except (KeyError, TypeError):  # a new id or metric, or a wrong type to report
            (window,) = self._windows(deployment_id, metric)
        # acquire/release cost half of what "with" does on the lock.
        lock = window.lock
        lock.acquire()
        try:
            window.values.append(value)
            window.count += 1
        finally:
            lock.release()
        if value > window.limit:
            self._alert(window, deployment_id, metric, value)

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
        return Measurement(self, deployment_id)

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

    def _windows(self, deployment_id: object, *metrics: object) -> list[_Window]:
        """The windows of ``metrics`` of ``deployment_id``, made now if need be.

        All from one deployment (so under one lock), and nothing is started
        unless every name is valid.
        """
        names = [_name("metric", metric) for metric in metrics]
        deployment = self._deployment(deployment_id)
        with deployment.lock:
            for name in names:
                if name not in deployment.windows:
                    limit, alert = self._judged.get(name, (_INF, None))
                    deployment.windows[name] = _Window(self._size, deployment.lock, limit, alert)
            return [deployment.windows[name] for name in names]

    def _alert(self, window: _Window, deployment_id: str, metric: str, value: float) -> None:
        """Tell the alert's receivers about a breaching value; a failing receiver is logged."""
        alert = window.alert
        if alert is not None and alert.receivers:
            signals._send(  # the library's own send, each receiver isolated
                alert,
                self,
                deployment_id=deployment_id,
                metric=metric,
                value=value,
                threshold=window.limit,
            )


class Measurement:
    """What ``PerformanceMonitor.measure()`` returns: a context manager and a decorator."""

    __slots__ = ("_deployment_id", "_monitor", "_started")

    def __init__(self, monitor: PerformanceMonitor, deployment_id: str) -> None:
        self._monitor = monitor
        self._deployment_id = deployment_id
        self._started = 0.0

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
        deployment_id = self._deployment_id
        try:
            windows = monitor._deployments[deployment_id].windows
            latency = windows["latency"]
            errors = windows["error_rate"]
        except KeyError:
            latency, errors = monitor._windows(deployment_id, "latency", "error_rate")
        lock = latency.lock  # errors' too: both are the deployment's
        lock.acquire()
        try:
            latency.values.append(seconds)
            latency.count += 1
            errors.values.append(error)
            errors.count += 1
        finally:
            lock.release()
        if seconds > latency.limit:
            monitor._alert(latency, deployment_id, "latency", seconds)
        if error > errors.limit:
            monitor._alert(errors, deployment_id, "error_rate", error)

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
                with Measurement(monitor, deployment_id):
                    return await function(*args, **kwargs)

            return cast("F", measured_coroutine)

        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            with Measurement(monitor, deployment_id):
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
