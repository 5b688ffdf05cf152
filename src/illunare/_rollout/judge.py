"""What a step of a rollout saw of the new version (``Tally``), and the verdict on it.

The controller adds each period the split hands it (every 100 ms, and at
the bake's end) to the step's tally, then judges the tally at the end of the
bake, in the issue's order: a breach (error rate, or nearest-rank p99
latency, over the whole step), else inconclusive (too few calls), else
healthy. Between, each period looks for a breach already beyond doubt
(``evident``): a version failing one call in five is rolled back at the
first tick that sees it, not at the bake's end, while a few errors on a
cold start wait for the bake's verdict.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import attrs

from illunare._monitor.health import Thresholds
from illunare._monitor.summary import nearest_rank

__all__ = ["CERTAINTY", "RESERVOIR", "Breach", "Tally", "Verdict", "evident", "verdict"]

#: how many of a step's latencies are kept to report its p99 (a uniform sample beyond)
RESERVOIR = 4096
#: how sure a breach found before the bake's end must be: the lower bound of
#: the Wilson score interval of its rate at this z (99.95 %, one-sided) is
#: above the limit
CERTAINTY = 3.29


@attrs.frozen
class Breach:
    """A threshold the new version's calls of a step went over."""

    #: ``"error_rate"`` or ``"latency"`` (as ``rollback_alert`` names it)
    metric: str
    #: the step's error rate, or its p99 latency in seconds
    value: float
    #: the limit breached
    threshold: float

    def __str__(self) -> str:
        # The wording of health.judge, so reports and health() read alike.
        if self.metric == "latency":
            return f"latency p99 {self.value:g} > max_latency {self.threshold:g}"
        return f"error_rate {self.value:g} > max_error_rate {self.threshold:g}"


@attrs.frozen
class Verdict:
    """The judgement of a step: its breaches, or whether it saw too few calls."""

    breaches: tuple[Breach, ...] = ()
    inconclusive: bool = False

    @property
    def name(self) -> str:
        """``"breached"``, ``"inconclusive"`` or ``"healthy"``, as the report says it."""
        if self.breaches:
            return "breached"
        return "inconclusive" if self.inconclusive else "healthy"


class Tally:
    """The new version's calls, errors and latencies in one step; the controller's alone.

    ``slow`` counts the latencies above ``limit`` exactly (``least_slow`` is
    the smallest of them); the reservoir keeps a uniform sample of at most
    ``RESERVOIR`` latencies for the reported p99.
    """

    __slots__ = (
        "_random",
        "calls",
        "errors",
        "least_slow",
        "limit",
        "reservoir",
        "slow",
        "timed",
    )

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.calls = 0
        self.errors = 0
        self.timed = 0
        self.slow = 0
        self.least_slow = float("inf")
        self.reservoir: list[float] = []
        self._random = random.Random()  # noqa: S311  # a sample, not a secret

    def add(self, calls: int, errors: int, latencies: Sequence[float]) -> None:
        """Count a period: its calls and errors, and the latencies of its timed calls."""
        self.calls += calls
        self.errors += errors
        if self.limit is not None:
            slow = [latency for latency in latencies if latency > self.limit]
            if slow:
                self.slow += len(slow)
                self.least_slow = min(self.least_slow, *slow)
        reservoir = self.reservoir
        for latency in latencies:
            self.timed += 1
            if len(reservoir) < RESERVOIR:
                reservoir.append(latency)
            else:  # each of the step's latencies is kept with equal chance
                slot = self._random.randrange(self.timed)
                if slot < RESERVOIR:
                    reservoir[slot] = latency

    @property
    def error_rate(self) -> float:
        """Errors per call over the step (0.0 with no calls)."""
        return self.errors / self.calls if self.calls else 0.0

    def p99(self) -> float | None:
        """The nearest-rank p99 of the kept latencies, None with none."""
        return nearest_rank(sorted(self.reservoir), 99) if self.reservoir else None


def verdict(thresholds: Thresholds, tally: Tally, min_samples: int) -> Verdict:
    """Judge a step: a breach first, then too few calls (inconclusive), else healthy.

    The error rate breaches when above ``max_error_rate`` (with at least one
    call). The p99 latency breaches when above ``max_latency``: with ``T``
    timed calls of which ``S`` took longer, the nearest-rank p99 (the value
    of rank ``ceil(0.99 T)``) is above the limit exactly when ``S >= T -
    ceil(0.99 T) + 1``, so every latency of the step counts, none sorted.

    Too few: fewer than ``min_samples`` calls, or, when ``max_latency`` is
    judged (every call is then timed), fewer than ``min_samples`` calls that
    finished. Calls count when they start and are timed when they end: a
    version whose calls are still running at the bake's end (slow, or hung)
    must not pass for healthy on the few that did not finish yet.
    """
    breaches = []
    limit = thresholds.max_error_rate
    if limit is not None and tally.calls and tally.error_rate > limit:
        breaches.append(Breach("error_rate", tally.error_rate, limit))
    limit = thresholds.max_latency
    timed = tally.timed
    if limit is not None and timed and tally.slow >= timed - -(-99 * timed // 100) + 1:
        p99 = tally.p99()
        if p99 is None or p99 <= limit:
            # Beyond the reservoir a sample may miss what breached; the true
            # p99 is one of the slow latencies, so at least the least of them.
            p99 = tally.least_slow
        breaches.append(Breach("latency", p99, limit))
    if breaches:
        return Verdict(tuple(breaches))
    timed = thresholds.max_latency is None or tally.timed >= min_samples
    return Verdict(inconclusive=tally.calls < min_samples or not timed)


def evident(
    thresholds: Thresholds, tally: Tally, min_samples: int, *, ahead: tuple[float, float]
) -> Verdict:
    """The breaches of a step that the rest of its bake is not expected to undo.

    Judged while the step bakes, on its calls so far (at least
    ``min_samples``); ``ahead`` is how many calls, and timed calls, the
    rest of the bake may still bring (the controller allows for twice the
    rate seen lately: an estimate, not a bound). A rate of errors, or of
    latencies above ``max_latency`` (over 1 % puts the p99 above it),
    breaches early only when both hold:

    - it stays above the limit even if every call still to come is fine
      (a burst of errors on a cold start is diluted by the calls after it);
    - the lower bound of its Wilson score interval (``CERTAINTY``) is above
      the limit (a few unlucky calls are no proof).

    A Verdict without breaches: bake on.
    """
    if tally.calls < min_samples:
        return Verdict()
    certain = []
    for breach in verdict(thresholds, tally, min_samples).breaches:
        if breach.metric == "error_rate":
            hits, trials, limit, more = tally.errors, tally.calls, breach.threshold, ahead[0]
        else:
            hits, trials, limit, more = tally.slow, tally.timed, 0.01, ahead[1]
            if trials < min_samples:
                continue
        if hits / (trials + more) > limit and _least_rate(hits, trials) > limit:
            certain.append(breach)
    return Verdict(tuple(certain))


def _least_rate(hits: int, trials: int) -> float:
    """The lower bound of the Wilson score interval of ``hits / trials`` (``CERTAINTY``).

    A step may count more errors than calls (a call counts in the period it
    started in, its error in the one it raised in): a rate of 1 then.
    """
    z2 = CERTAINTY * CERTAINTY
    rate = min(hits / trials, 1.0)
    centre = rate + z2 / (2 * trials)
    spread = CERTAINTY * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials))
    return (centre - spread) / (1 + z2 / trials)
