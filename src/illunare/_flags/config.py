"""illunare's own flag format: parsing and complete validation into a ``FlagSpec``.

Every problem is collected with its path (``"conditions[1].value"``) before
anything is built; a config with any problem raises ``FlagConfigError``
listing them all. A config must first be plain JSON within the limits of
``limits``; conditions may nest at most ``MAX_NESTING`` deep.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeGuard

from illunare._flags import operators
from illunare._flags.limits import MAX_NESTING, MAX_TOTAL_WEIGHT, plain_json
from illunare._flags.model import (
    AllOf,
    AnyOf,
    Attribute,
    Condition,
    FlagSpec,
    Not,
    Percentage,
    Prerequisite,
    Rule,
    Schedule,
    VariantOption,
    VariantSet,
)
from illunare._flags.regex import compile_regex
from illunare.exceptions import FlagConfigError

__all__ = ["parse_flag", "validate_name"]

# Metadata keys are accepted and kept; any other unknown key is refused, so
# that a typo ("conditons") cannot silently turn a flag on for everyone.
_FLAG_KEYS = frozenset(
    {"enabled", "conditions", "variants", "stickiness", "description", "tags", "metadata", "name"}
)
_SHORTHANDS = ("user_segment", "region", "user_id")
_SHORTHAND_KEYS = frozenset({"type", "value", "negate"})
_ATTRIBUTE_KEYS = frozenset(
    {"type", "attribute", "operator", "value", "values", "negate", "case_insensitive"}
)


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.found.append((path, message))


def validate_name(name: object) -> str:
    """A flag name: a non-empty str."""
    if not isinstance(name, str) or not name:
        raise FlagConfigError(
            f"a flag name must be a non-empty str, got {name!r}",
            (("name", "must be a non-empty str"),),
        )
    return name


def parse_flag(name: str, config: object) -> FlagSpec:
    """Validate ``config`` completely and build the flag; raise FlagConfigError otherwise.

    The spec's ``config`` is a plain JSON copy of ``config``, ready to store.
    """
    validate_name(name)
    problems = _Problems()
    if not isinstance(config, Mapping):
        problems.add("", f"a flag config must be a mapping, got {type(config).__name__}")
        raise FlagConfigError.from_problems(name, problems.found)
    # Only plain JSON is read further: the checks below then meet no cycle,
    # no unbounded depth and nothing a backend could not store.
    plain, problems.found = plain_json(config)
    if problems.found:
        raise FlagConfigError.from_problems(name, problems.found)
    for key in plain:
        if key not in _FLAG_KEYS:
            problems.add(str(key), f"unknown key (expected one of {sorted(_FLAG_KEYS)})")
    if "name" in plain and plain["name"] != name:
        problems.add("name", f"does not match the flag's name {name!r}")
    enabled = plain.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add("enabled", "must be true or false")
    stickiness = plain.get("stickiness", "user_id")
    if not isinstance(stickiness, str) or not stickiness:
        problems.add("stickiness", "must be the name of a context key")
        stickiness = "user_id"
    raw_conditions = plain.get("conditions", [])
    conditions: list[Condition] = []
    if _is_list(raw_conditions):
        for index, raw in enumerate(raw_conditions):
            condition = _condition(raw, f"conditions[{index}]", name, stickiness, problems, depth=1)
            if condition is not None:
                conditions.append(condition)
    else:
        problems.add("conditions", "must be a list of conditions")
    variants = _variants(plain.get("variants"), name, stickiness, problems)
    if problems.found:
        raise FlagConfigError.from_problems(name, problems.found)
    labels = tuple(f"conditions[{index}]" for index in range(len(conditions)))
    rules = (Rule(tuple(conditions), labels),) if conditions else ()
    return FlagSpec(name, bool(enabled), rules, variants, (), plain)


def _is_list(value: object) -> TypeGuard[list[Any]]:
    return isinstance(value, list)  # configs are plain JSON by now


def _strings(value: object, path: str, problems: _Problems) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if _is_list(value) and all(isinstance(item, str) for item in value):
        return tuple(value)
    problems.add(path, "must be a string or a list of strings")
    return None


def _check_keys(
    raw: Mapping[str, Any], allowed: frozenset[str], path: str, problems: _Problems
) -> None:
    if not allowed.issuperset(raw):
        for key in raw:
            if key not in allowed:
                problems.add(f"{path}.{key}", f"unknown key for a {raw.get('type')} condition")


def _flag_bool(raw: Mapping[str, Any], key: str, path: str, problems: _Problems) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.add(f"{path}.{key}", "must be true or false")
        return False
    return value


def _condition(
    raw: object, path: str, flag: str, stickiness: str, problems: _Problems, *, depth: int
) -> Condition | None:
    if depth > MAX_NESTING:
        problems.add(path, f"conditions nested deeper than {MAX_NESTING} levels")
        return None
    if not isinstance(raw, dict):
        problems.add(path, "a condition must be a mapping with a 'type'")
        return None
    kind = raw.get("type")
    if kind in _SHORTHANDS:
        _check_keys(raw, _SHORTHAND_KEYS, path, problems)
        values = _strings(raw.get("value"), f"{path}.value", problems)
        negate = _flag_bool(raw, "negate", path, problems)
        return None if values is None else Attribute((kind,), "IN", values, negate)
    if kind == "attribute":
        return _attribute(raw, path, problems)
    if kind == "percentage":
        return _percentage(raw, path, flag, stickiness, problems)
    if kind == "schedule":
        return _schedule(raw, path, problems)
    if kind == "flag":
        return _prerequisite(raw, path, flag, problems)
    if kind in ("any", "all"):
        _check_keys(raw, frozenset({"type", "conditions"}), path, problems)
        items = raw.get("conditions")
        if not _is_list(items):
            problems.add(f"{path}.conditions", "must be a list of conditions")
            return None
        parts = [
            _condition(
                item, f"{path}.conditions[{index}]", flag, stickiness, problems, depth=depth + 1
            )
            for index, item in enumerate(items)
        ]
        valid = tuple(part for part in parts if part is not None)
        return AnyOf(valid) if kind == "any" else AllOf(valid)
    if kind == "not":
        _check_keys(raw, frozenset({"type", "condition"}), path, problems)
        inner = _condition(
            raw.get("condition"), f"{path}.condition", flag, stickiness, problems, depth=depth + 1
        )
        return None if inner is None else Not(inner)
    problems.add(
        f"{path}.type",
        f"unknown condition type {kind!r} (expected user_segment, region, user_id, percentage, "
        "attribute, schedule, flag, any, all or not)",
    )
    return None


def _attribute(raw: Mapping[str, Any], path: str, problems: _Problems) -> Condition | None:
    _check_keys(raw, _ATTRIBUTE_KEYS, path, problems)
    attribute = raw.get("attribute")
    if isinstance(attribute, str) and attribute:
        key: tuple[str, ...] | None = (attribute,)
    elif _is_list(attribute) and attribute and all(isinstance(p, str) for p in attribute):
        key = tuple(attribute)
    else:
        problems.add(f"{path}.attribute", "must name a context key (or be a list of keys)")
        key = None
    operator = raw.get("operator", "in")
    canonical = operators.canonical(operator) if isinstance(operator, str) else None
    if canonical is None:
        problems.add(f"{path}.operator", f"unknown operator {operator!r}")
    if ("value" in raw) == ("values" in raw):
        problems.add(path, "needs exactly one of 'value' and 'values'")
        values = None
    else:
        field = "value" if "value" in raw else "values"
        values = _strings(_as_text(raw[field]), f"{path}.{field}", problems)
    negate = _flag_bool(raw, "negate", path, problems)
    fold = _flag_bool(raw, "case_insensitive", path, problems)
    if key is None or canonical is None or values is None:
        return None
    problem = _operand_problem(canonical, values)
    if problem:
        problems.add(f"{path}.{'value' if 'value' in raw else 'values'}", problem)
        return None
    return Attribute(key, canonical, values, negate, fold)


def _as_text(value: object) -> object:
    """Numbers are accepted where operators compare text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if _is_list(value):
        return [_as_text(item) for item in value]
    return value


def _operand_problem(operator: str, values: tuple[str, ...]) -> str | None:
    if operator in ("IN", "NOT_IN") or operator.startswith("STR_"):
        return None  # any strings will do
    if operator.startswith(("NUM_", "DATE_", "SEMVER_")) and len(values) != 1:
        return f"{operator} compares with exactly one value"
    checks = {
        "NUM_": (operators.parse_number, "is not a number"),
        "DATE_": (operators.parse_date, "is not an ISO 8601 date"),
        "SEMVER_": (operators.parse_semver, "is not a semantic version"),
    }
    for prefix, (parse, message) in checks.items():
        if operator.startswith(prefix) and parse(values[0]) is None:
            return f"{values[0]!r} {message}"
    if operator == "REGEX":
        for value in values:
            if isinstance(refused := compile_regex(value, fold=False), str):
                return f"{value!r} {refused}"
    if operator == "IN_CIDR":
        for value in values:
            if operators.parse_network(value) is None:
                return f"{value!r} is not an IP address or network"
    return None


def _percentage(
    raw: Mapping[str, Any], path: str, flag: str, stickiness: str, problems: _Problems
) -> Condition | None:
    _check_keys(raw, frozenset({"type", "value", "attribute"}), path, problems)
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        problems.add(f"{path}.value", "must be a number from 0 to 100")
        return None
    attribute = raw.get("attribute", stickiness)
    if not isinstance(attribute, str) or not attribute:
        problems.add(f"{path}.attribute", "must name a context key")
        return None
    return Percentage(float(value), ((attribute,),), flag)


def _schedule(raw: Mapping[str, Any], path: str, problems: _Problems) -> Condition | None:
    _check_keys(raw, frozenset({"type", "start", "end"}), path, problems)
    moments: dict[str, datetime.datetime | None] = {}
    for key in ("start", "end"):
        if raw.get(key) is None:
            moments[key] = None
            continue
        moment = operators.parse_date(raw[key])
        if moment is None:
            problems.add(f"{path}.{key}", "must be an ISO 8601 date and time")
            return None
        moments[key] = moment
    if moments["start"] is None and moments["end"] is None:
        problems.add(path, "needs a 'start', an 'end' or both")
        return None
    start, end = moments["start"], moments["end"]
    if start is not None and end is not None and start >= end:
        problems.add(path, "'start' must be before 'end'")
        return None
    return Schedule(start, end)


def _prerequisite(
    raw: Mapping[str, Any], path: str, flag: str, problems: _Problems
) -> Condition | None:
    _check_keys(raw, frozenset({"type", "flag", "enabled", "variants"}), path, problems)
    parent = raw.get("flag")
    if not isinstance(parent, str) or not parent:
        problems.add(f"{path}.flag", "must name another flag")
        return None
    if parent == flag:
        problems.add(f"{path}.flag", "a flag cannot depend on itself")
        return None
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{path}.enabled", "must be true or false")
        return None
    variants = _strings(raw.get("variants", []), f"{path}.variants", problems)
    return None if variants is None else Prerequisite(parent, enabled, variants)


def _variants(raw: object, flag: str, stickiness: str, problems: _Problems) -> VariantSet | None:
    if raw is None:
        return None
    if not _is_list(raw):
        problems.add("variants", "must be a list of variants")
        return None
    options = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        path = f"variants[{index}]"
        if not isinstance(item, dict):
            problems.add(path, "a variant must be a mapping with a 'name'")
            continue
        for key in item:
            if key not in ("name", "weight", "payload"):
                problems.add(f"{path}.{key}", "unknown key for a variant")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.add(f"{path}.name", "must be a non-empty str")
            continue
        if name in names:
            problems.add(f"{path}.name", f"duplicate variant {name!r}")
        names.add(name)
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            problems.add(f"{path}.weight", "must be a number >= 0")
            continue
        options.append(VariantOption(name, float(weight), item.get("payload")))
    total = sum(option.weight for option in options)
    if options and total <= 0:
        problems.add("variants", "the weights must not all be zero")
    if total > MAX_TOTAL_WEIGHT:
        problems.add("variants", f"the weights must add up to at most {MAX_TOTAL_WEIGHT}")
    return VariantSet(tuple(options), flag, ((stickiness,),)) if options else None
