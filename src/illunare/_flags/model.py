"""The flag model: conditions, variants and rules as validated attrs values.

Both illunare's own flag format and Unleash payloads are parsed into these
values; the compiler turns them into predicates. Paths into the context are
tuples of keys (``("region",)``, ``("properties", "plan")``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Union

import attrs

__all__ = [
    "AllOf",
    "AnyOf",
    "Attribute",
    "Condition",
    "FlagSpec",
    "Not",
    "Path",
    "Percentage",
    "Prerequisite",
    "Rule",
    "Schedule",
    "VariantOption",
    "VariantSet",
]

Path = tuple[str, ...]


@attrs.frozen
class Attribute:
    """A context value tested by an operator (canonical Unleash operator names)."""

    path: Path
    operator: str
    values: tuple[str, ...]
    negate: bool = False
    case_insensitive: bool = False
    #: a missing value means "now" (Unleash's ``currentTime``)
    default_now: bool = False


@attrs.frozen
class Percentage:
    """True for ``percentage`` percent of stickiness keys, always the same ones.

    The key is the first present context value among ``stickiness``; the
    bucket is Unleash's normalised murmur3 hash of ``"group:key"``. With no
    key, ``random_fallback`` draws at random, else the condition is false.
    """

    percentage: float
    stickiness: tuple[Path, ...]
    group: str
    random_fallback: bool = False


@attrs.frozen
class Schedule:
    """True between ``start`` (inclusive) and ``end`` (exclusive); either may be open."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None


@attrs.frozen
class Prerequisite:
    """Another flag must be enabled (or disabled), optionally with one of some variants."""

    flag: str
    enabled: bool = True
    variants: tuple[str, ...] = ()


@attrs.frozen
class AllOf:
    """Every condition holds (true when empty)."""

    conditions: tuple[Condition, ...]


@attrs.frozen
class AnyOf:
    """At least one condition holds (false when empty)."""

    conditions: tuple[Condition, ...]


@attrs.frozen
class Not:
    """The condition does not hold."""

    condition: Condition


# A runtime alias: Python 3.10 cannot write it with "|" between these classes here.
Condition = Union[Attribute, Percentage, Schedule, Prerequisite, AllOf, AnyOf, Not]  # noqa: UP007


@attrs.frozen
class VariantOption:
    """One variant to choose: its weight, payload and the context values that force it."""

    name: str
    weight: float
    payload: Any = None
    overrides: tuple[tuple[Path, frozenset[str]], ...] = ()


@attrs.frozen
class VariantSet:
    """Weighted variants, chosen stickily by ``"group:key"`` as Unleash does."""

    options: tuple[VariantOption, ...]
    group: str
    #: where the key comes from; empty means Unleash's default (userId,
    #: sessionId, remoteAddress, then random)
    stickiness: tuple[Path, ...] = ()


@attrs.frozen
class Rule:
    """One way for a flag to be on: all ``conditions``, then ``variants`` (if any) to choose."""

    conditions: tuple[Condition, ...]
    #: where each condition came from in the configuration, for explanations
    labels: tuple[str, ...]
    variants: VariantSet | None = None


@attrs.frozen
class FlagSpec:
    """A whole flag: on when enabled, its prerequisites hold and any rule matches.

    No rules means on for everyone (when enabled).
    """

    name: str
    enabled: bool
    rules: tuple[Rule, ...]
    variants: VariantSet | None = None
    prerequisites: tuple[Prerequisite, ...] = ()
    #: the configuration it was made from, as given
    config: Mapping[str, Any] = attrs.field(factory=dict)
    #: "illunare" (the native format) or "unleash" (from ``load_unleash``)
    source: str = "illunare"
