"""How a rollout or a shadow run proceeds: ``Rollout`` and ``Shadow``, validated values."""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable
from typing import Any

import attrs

from illunare._monitor.health import Thresholds
from illunare._rollout.assign import MIN_SAMPLE
from illunare.exceptions import InvalidArgumentError

__all__ = ["POLICIES", "Rollout", "Shadow"]

#: what ``on_inconclusive`` may say
POLICIES = ("extend", "pause", "fail")


def _steps(value: object) -> tuple[int, ...]:
    """``value`` as a tuple of steps, or InvalidArgumentError (a converter, before validation)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidArgumentError(f"steps must be a sequence of percentages, got {value!r}")
    return tuple(value)


def _check_steps(instance: object, attribute: attrs.Attribute[Any], steps: tuple[int, ...]) -> None:
    if not steps:
        raise InvalidArgumentError("steps must name at least one percentage")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            raise InvalidArgumentError(f"each step must be an int from 1 to 100, got {step!r}")
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise InvalidArgumentError(f"steps must be strictly increasing, got {steps!r}")


def _check_bake(instance: object, attribute: attrs.Attribute[Any], bake: object) -> None:
    if isinstance(bake, bool) or not isinstance(bake, (int, float)) or not 0 <= bake < math.inf:
        raise InvalidArgumentError(f"bake must be a finite number of seconds >= 0, got {bake!r}")


def _check_thresholds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Thresholds):
        raise InvalidArgumentError(f"thresholds must be a Thresholds, got {type(value).__name__}")


def _check_min_samples(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"min_samples must be an int >= 0, got {value!r}")


def _check_policy(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or value not in POLICIES:
        raise InvalidArgumentError(
            f"on_inconclusive must be one of {', '.join(map(repr, POLICIES))}, got {value!r}"
        )


def _callable(optional: bool) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: a callable (or None when ``optional``)."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not callable(value) and not (optional and value is None):
            kind = "a callable or None" if optional else "a callable"
            raise InvalidArgumentError(f"{attribute.name} must be {kind}, got {value!r}")

    return validate


def _check_sample(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not MIN_SAMPLE <= value <= 1
    ):
        raise InvalidArgumentError(
            f"sample must be a number from {MIN_SAMPLE:g} to 1, got {value!r}"
        )


@attrs.frozen
class Rollout:
    """A gradual shift of calls from a module's running version to a new one.

    Given to ``HotReloader.swap(..., rollout=)``. Each step puts that
    percentage of calls on the new version for ``bake`` seconds, then judges
    the new version's calls of the step: an error rate above
    ``thresholds.max_error_rate`` or a (nearest-rank) p99 latency above
    ``thresholds.max_latency`` rolls back at once; fewer than
    ``min_samples`` calls is inconclusive (``on_inconclusive``); otherwise the
    next step follows. A step of 100 promotes at once; a last step below 100
    promotes after its bake.

    Raises:
        InvalidArgumentError: ``steps`` is not a non-empty, strictly increasing
            sequence of ints from 1 to 100; ``bake`` is not a finite number
            >= 0; ``thresholds`` is not a ``Thresholds``; ``min_samples`` is
            not an int >= 0; ``on_inconclusive`` is not ``"extend"``,
            ``"pause"`` or ``"fail"``; ``sticky`` is neither callable nor None.

    """

    #: percent of calls on the new version at each step
    steps: tuple[int, ...] = attrs.field(
        default=(10, 50, 100), converter=_steps, validator=_check_steps
    )
    #: seconds at each step before it is judged
    bake: float = attrs.field(default=30.0, validator=_check_bake)
    #: the limits the new version's calls of a step are judged by
    thresholds: Thresholds = attrs.field(
        default=Thresholds(max_error_rate=0.01), validator=_check_thresholds
    )
    #: fewer new-version calls than this in a step make it inconclusive (with
    #: ``max_latency``, calls that finished: a hung version is not healthy)
    min_samples: int = attrs.field(default=20, validator=_check_min_samples)
    #: what an inconclusive step does: bake again ("extend"), wait for
    #: ``promote()``/``abort()`` ("pause"), or end in "failed" ("fail")
    on_inconclusive: str = attrs.field(default="extend", validator=_check_policy)
    #: called with each call's arguments; calls with the same key (not None)
    #: get the same version within a step, and stay on the new one at later steps
    sticky: Callable[..., object] | None = attrs.field(default=None, validator=_callable(True))


@attrs.frozen
class Shadow:
    """An experiment: the old version serves every call, the new one runs beside it off the path.

    Given to ``HotReloader.swap(..., shadow=)``. A ``sample`` fraction of
    calls is also run on the new version by a background worker, whose
    result is compared with the old one's by ``compare`` (a falsy answer is
    a mismatch); its exceptions are counted as errors, never raised to the
    caller. The new version's code must be free of side effects the program
    cannot afford twice: it runs on the same arguments.

    ``sample`` is applied as the nearest fraction with a denominator of at
    most 100,000 (0.0004 runs exactly one call in 2,500 again).

    Raises:
        InvalidArgumentError: ``sample`` is not a number from 0.00001 to 1,
            or ``compare`` is not callable.

    """

    #: the fraction of calls also run on the new version
    sample: float = attrs.field(default=1.0, validator=_check_sample)
    #: ``compare(old_result, new_result)``: true when they agree
    compare: Callable[[object, object], bool] = attrs.field(
        default=operator.eq, validator=_callable(False)
    )
