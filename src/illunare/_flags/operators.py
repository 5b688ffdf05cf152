"""Comparison operators of attribute conditions, with Unleash's constraint semantics.

``build(operator, values, case_insensitive)`` turns an operator and its
configured values into a one-argument test of a context value, prepared once
(numbers parsed, regexes compiled, networks built) so that evaluation does
only the comparison. A test never raises: a missing or ill-typed context
value simply fails it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import math
import re
from collections.abc import Callable, Sequence
from operator import eq, ge, gt, le, lt
from typing import Any

from illunare._flags.regex import compile_regex

__all__ = [
    "OPERATORS",
    "Test",
    "build",
    "canonical",
    "parse_date",
    "parse_network",
    "parse_number",
    "parse_semver",
]

logger = logging.getLogger("illunare")

#: A prepared test of one context value.
Test = Callable[[object], bool]

# Friendly names accepted in illunare's own flag format, beside Unleash's.
_ALIASES = {
    "in": "IN",
    "eq": "IN",
    "not_in": "NOT_IN",
    "starts_with": "STR_STARTS_WITH",
    "ends_with": "STR_ENDS_WITH",
    "contains": "STR_CONTAINS",
    "num_eq": "NUM_EQ",
    "num_gt": "NUM_GT",
    "num_gte": "NUM_GTE",
    "num_lt": "NUM_LT",
    "num_lte": "NUM_LTE",
    "gt": "NUM_GT",
    "gte": "NUM_GTE",
    "lt": "NUM_LT",
    "lte": "NUM_LTE",
    "date_after": "DATE_AFTER",
    "date_before": "DATE_BEFORE",
    "semver_eq": "SEMVER_EQ",
    "semver_gt": "SEMVER_GT",
    "semver_gte": "SEMVER_GTE",
    "semver_lt": "SEMVER_LT",
    "semver_lte": "SEMVER_LTE",
    "regex": "REGEX",
    "in_cidr": "IN_CIDR",
    "cidr": "IN_CIDR",
}


def canonical(operator: str) -> str | None:
    """The Unleash name of ``operator`` (either spelling), or ``None`` if unknown."""
    name = _ALIASES.get(operator, operator)
    return name if name in OPERATORS else None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _in(values: Sequence[str], fold: bool) -> Test:
    accepted = frozenset(v.lower() for v in values) if fold else frozenset(values)

    def test(value: object) -> bool:
        text = _text(value)
        if text is None:
            return False
        return (text.lower() if fold else text) in accepted

    return test


def _not_in(values: Sequence[str], fold: bool) -> Test:
    inside = _in(values, fold)
    return lambda value: not inside(value)


def _string(method: str) -> Callable[[Sequence[str], bool], Test]:
    def make(values: Sequence[str], fold: bool) -> Test:
        needles = tuple(v.lower() for v in values) if fold else tuple(values)

        def test(value: object) -> bool:
            if not isinstance(value, str):
                return False
            text = value.lower() if fold else value
            if method == "contains":
                return any(needle in text for needle in needles)
            return bool(getattr(text, method)(needles))

        return test

    return make


def parse_number(value: object) -> float | None:
    """A float from a number or numeric text (bools and NaN are not numbers), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def parse_date(value: object) -> datetime.datetime | None:
    """An aware datetime from an ISO 8601 string or a datetime (naive means UTC)."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

_Semver = tuple[int, int, int, tuple[tuple[int, int | str], ...]]


def parse_semver(value: object) -> _Semver | None:
    """A sortable key for a strict semantic version (no leading "v"), or ``None``."""
    if not isinstance(value, str):
        return None
    match = _SEMVER.fullmatch(value.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    # A release sorts after all its pre-releases; numeric identifiers sort
    # before alphanumeric ones.
    prerelease: tuple[tuple[int, int | str], ...] = (
        tuple((0, int(part)) if part.isdigit() else (1, part) for part in pre.split("."))
        if pre
        else ((2, 0),)
    )
    return int(major), int(minor), int(patch), prerelease


def _comparison(
    parse: Callable[[object], Any], compare: Callable[[Any, Any], bool]
) -> Callable[[Sequence[str], bool], Test]:
    """Compare the parsed context value with the one configured value, parsed once."""

    def make(values: Sequence[str], fold: bool) -> Test:
        target = parse(values[0]) if values else None
        if target is None:
            return lambda value: False

        def test(value: object) -> bool:
            parsed = parse(value)
            return parsed is not None and compare(parsed, target)

        return test

    return make


def _regex(values: Sequence[str], fold: bool) -> Test:
    searches = []
    for value in values:
        search = compile_regex(value, fold)
        if isinstance(search, str):
            # Only Unleash payloads get here (native configs are refused
            # first); as in Unleash, such a pattern never matches.
            logger.warning("the regex %r never matches: it %s", value, search)
        else:
            searches.append(search)
    if not searches:
        return lambda value: False

    def test(value: object) -> bool:
        return isinstance(value, str) and any(search(value) for search in searches)

    return test


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP network (a plain address is a one-address network), or ``None``."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _cidr(values: Sequence[str], fold: bool) -> Test:
    # Unleash ignores values that are not addresses or networks.
    networks = [network for value in values if (network := parse_network(value)) is not None]

    def test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        return any(address in network for network in networks)

    return test


#: Unleash operator name -> factory of a prepared test.
OPERATORS: dict[str, Callable[[Sequence[str], bool], Test]] = {
    "IN": _in,
    "NOT_IN": _not_in,
    "STR_STARTS_WITH": _string("startswith"),
    "STR_ENDS_WITH": _string("endswith"),
    "STR_CONTAINS": _string("contains"),
    "NUM_EQ": _comparison(parse_number, eq),
    "NUM_GT": _comparison(parse_number, gt),
    "NUM_GTE": _comparison(parse_number, ge),
    "NUM_LT": _comparison(parse_number, lt),
    "NUM_LTE": _comparison(parse_number, le),
    "DATE_AFTER": _comparison(parse_date, gt),
    "DATE_BEFORE": _comparison(parse_date, lt),
    "SEMVER_EQ": _comparison(parse_semver, eq),
    "SEMVER_GT": _comparison(parse_semver, gt),
    "SEMVER_GTE": _comparison(parse_semver, ge),
    "SEMVER_LT": _comparison(parse_semver, lt),
    "SEMVER_LTE": _comparison(parse_semver, le),
    "REGEX": _regex,
    "IN_CIDR": _cidr,
}


def build(operator: str, values: Sequence[str], case_insensitive: bool = False) -> Test:
    """The prepared test for a canonical ``operator`` and its values."""
    return OPERATORS[operator](values, case_insensitive)
