"""Limits on a deployment's metrics (``Thresholds``) and the verdict on a window (``Health``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from illunare._monitor.summary import MetricSummary
from illunare.exceptions import InvalidArgumentError

__all__ = ["Health", "Thresholds", "judge"]


def _limit(upper: float) -> Callable[[Any, attrs.Attribute[Any], object], None]:
    """An attrs validator: None, or a number from 0 to ``upper``."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(
                f"{attribute.name} must be a number or None, got {type(value).__name__}"
            )
        if not 0 <= value <= upper:
            raise InvalidArgumentError(f"{attribute.name} must be from 0 to {upper}, got {value!r}")

    return validate


@attrs.frozen
class Thresholds:
    """The limits a deployment must stay within; None leaves a metric unjudged.

    Each value recorded is judged as it arrives: a ``latency`` above
    ``max_latency`` sends ``signals.performance_alert``, an ``error_rate``
    above ``max_error_rate`` sends ``signals.rollback_alert`` (once per
    breaching value). ``PerformanceMonitor.health()`` judges the whole window:
    its p99 latency and its mean error rate.

    Raises:
        InvalidArgumentError: a limit is not a number, is negative or NaN, or
            ``max_error_rate`` is above 1.

    """

    #: seconds
    max_latency: float | None = attrs.field(default=None, validator=_limit(math.inf))
    #: a fraction of calls, 0..1
    max_error_rate: float | None = attrs.field(default=None, validator=_limit(1.0))


@attrs.frozen
class Health:
    """The verdict on a deployment's window: healthy when nothing breached."""

    #: one line per breach, e.g. ``"latency p99 0.31 > max_latency 0.25"``
    breaches: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """True when no threshold is breached."""
        return not self.breaches


def judge(thresholds: Thresholds | None, metrics: Mapping[str, MetricSummary]) -> Health:
    """The health of ``metrics`` under ``thresholds``: p99 latency, mean error rate.

    A metric with no values, or a threshold that is None, is no breach.
    """
    if thresholds is None:
        return Health()
    breaches = []
    latency = metrics.get("latency")
    limit = thresholds.max_latency
    if limit is not None and latency is not None and latency.p99 > limit:
        breaches.append(f"latency p99 {latency.p99:g} > max_latency {limit:g}")
    errors = metrics.get("error_rate")
    limit = thresholds.max_error_rate
    if limit is not None and errors is not None and errors.mean > limit:
        breaches.append(f"error_rate mean {errors.mean:g} > max_error_rate {limit:g}")
    return Health(tuple(breaches))
