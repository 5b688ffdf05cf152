"""What a window of values sums up to: ``MetricSummary`` and nearest-rank percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = ["MetricSummary", "nearest_rank", "summarize"]


@attrs.frozen
class MetricSummary:
    """One metric of one deployment: everything but ``count`` describes the window.

    Percentiles are nearest-rank: ``p95`` is the smallest value of the window
    that at least 95 % of the window's values do not exceed (so it is always
    one of the recorded values, never an interpolation).
    """

    #: values recorded since the deployment id was started (the window's and older ones)
    count: int
    #: the most recent value
    last: float
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    #: the window: the most recent values, oldest first
    values: tuple[float, ...]


def nearest_rank(ordered: Sequence[float], percent: int) -> float:
    """The ``percent``-th percentile (1..100) of non-empty, sorted ``ordered``, by nearest rank.

    The rank is ``ceil(percent / 100 * n)``, computed in integers so that no
    rounding moves it.
    """
    rank = -(-percent * len(ordered) // 100)
    return ordered[max(rank, 1) - 1]


def summarize(count: int, values: tuple[float, ...]) -> MetricSummary:
    """The summary of a non-empty window ``values``, ``count`` values having been recorded."""
    ordered = sorted(values)
    size = len(values)
    try:
        mean = math.fsum(values) / size
    except OverflowError:
        # Huge values: scaled down by a power of two first (exactly, unlike a
        # division by ``size``, whose roundings can still add up past the
        # largest float), so that their sum stays finite.
        scale = 2.0 ** (size.bit_length() + 1)
        mean = math.fsum(value / scale for value in values) / size * scale
    # Rounding may put the mean a hair outside the values it averages.
    return MetricSummary(
        count=count,
        last=values[-1],
        mean=min(max(mean, ordered[0]), ordered[-1]),
        min=ordered[0],
        max=ordered[-1],
        p50=nearest_rank(ordered, 50),
        p95=nearest_rank(ordered, 95),
        p99=nearest_rank(ordered, 99),
        values=values,
    )
