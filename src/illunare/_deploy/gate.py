"""``HealthGate``: after a deployment's last step, watch the monitor before calling it done."""

from __future__ import annotations

import sys
import time
from typing import Any

import attrs

from illunare._arguments import optional
from illunare._monitor.health import Thresholds, judge
from illunare._monitor.monitor import PerformanceMonitor
from illunare._monitor.summary import MetricSummary, summarize
from illunare.exceptions import InvalidArgumentError

__all__ = ["HealthGate", "watch"]

#: How often the bake looks at the monitor (seconds): a breach is acted on this soon.
POLL = 0.01


def _deployment_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"deployment_id must be a non-empty str or None, got {value!r}")


def _bake(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # An int too large for a float is as infinite: the bake's deadline is a float.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= sys.float_info.max
    ):
        raise InvalidArgumentError(f"bake must be a finite number of seconds >= 0, got {value!r}")


def _thresholds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    optional("thresholds", value, Thresholds)


@attrs.frozen
class HealthGate:
    """Watched after a deployment's last step; a breach rolls the whole deployment back.

    For ``bake`` seconds the Deployment judges the values recorded in its
    monitor (the Deployment's, else the reloader's) under ``deployment_id``
    (default: the service's name) during the bake only, with ``thresholds``
    (default: the monitor's): p99 latency and mean error rate, as
    ``PerformanceMonitor.health()`` judges. The first breach rolls back; no
    values recorded is healthy.

    Raises:
        InvalidArgumentError: a negative or infinite ``bake``, an empty
            ``deployment_id``, ``thresholds`` not a Thresholds.

    """

    deployment_id: str | None = attrs.field(default=None, validator=_deployment_id)
    bake: float = attrs.field(default=0.0, validator=_bake)
    thresholds: Thresholds | None = attrs.field(default=None, validator=_thresholds)


#: a start of a monitor's id (``PerformanceMonitor._started``) and the count of each metric then
_Mark = tuple[object | None, dict[str, int]]


def _mark(monitor: PerformanceMonitor, deployment_id: str) -> _Mark:
    start = monitor._started(deployment_id)
    counts = {metric: summary.count for metric, summary in monitor.metrics(deployment_id).items()}
    return start, counts


def _during(
    monitor: PerformanceMonitor, deployment_id: str, before: _Mark
) -> dict[str, MetricSummary]:
    """The summaries of the values recorded since the mark ``before`` (those in the window)."""
    start, counts = before
    if monitor._started(deployment_id) is not start:  # stopped and started again: all new
        counts = {}
    recent = {}
    for metric, summary in monitor.metrics(deployment_id).items():
        new = summary.count - counts.get(metric, 0)
        if new > 0:
            values = summary.values[-new:]
            recent[metric] = summarize(new, values)
    return recent


def watch(
    monitor: PerformanceMonitor, deployment_id: str, thresholds: Thresholds | None, bake: float
) -> str | None:
    """Judge the values recorded for ``bake`` seconds from now; the first breach, or None."""
    before = _mark(monitor, deployment_id)
    deadline = time.monotonic() + bake
    while True:
        health = judge(thresholds, _during(monitor, deployment_id, before))
        if not health.healthy:
            return "; ".join(health.breaches)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(POLL, remaining))
