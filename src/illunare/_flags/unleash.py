"""Unleash client payloads (full and delta) translated into illunare's flag model.

A feature is on when it is enabled, its dependencies hold, and any of its
strategies matches (no strategies: on for everyone). A strategy matches when
its constraints, the constraints of its segments and its own rule hold.
Everything is hashed exactly as Unleash does (murmur3, ``groupId:key``), so
a user gets the same answer here as from any Unleash SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import attrs

from illunare._flags import operators
from illunare._flags.limits import MAX_TOTAL_WEIGHT, Problems, plain_json
from illunare._flags.model import (
    AllOf,
    AnyOf,
    Attribute,
    Condition,
    FlagSpec,
    Path,
    Percentage,
    Prerequisite,
    Rule,
    VariantOption,
    VariantSet,
)
from illunare.exceptions import FlagConfigError

__all__ = ["Changes", "UnleashState", "context_path"]

# Context fields Unleash reads at the top level; every other name is a property.
_STANDARD_FIELDS = frozenset(
    {"userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime"}
)
_NEVER = AnyOf(())


def context_path(name: str) -> Path:
    """Where an Unleash context field lives in the context mapping."""
    return (name,) if name in _STANDARD_FIELDS else ("properties", name)


@attrs.define
class Changes:
    """What a payload changes: flags to (re)install, flags to remove, and the state after."""

    updated: dict[str, FlagSpec]
    removed: set[str]
    features: dict[str, Mapping[str, Any]]
    segments: dict[SegmentId, Sequence[Mapping[str, Any]]]


SegmentId = int | str
Segments = dict[SegmentId, Sequence[Mapping[str, Any]]]


@attrs.define
class UnleashState:
    """The features and segments received so far."""

    features: dict[str, Mapping[str, Any]] = attrs.Factory(dict)
    segments: dict[SegmentId, Sequence[Mapping[str, Any]]] = attrs.Factory(dict)

    def read(self, payload: object) -> Changes:
        """What applying ``payload`` would change; nothing changes yet.

        Raises:
            FlagConfigError: listing every problem of the payload, with paths.

        """
        if not isinstance(payload, Mapping):
            raise FlagConfigError(
                "an Unleash payload must be a mapping", (("", "must be a mapping"),)
            )
        plain, problems = plain_json(payload)
        if problems:
            raise FlagConfigError.from_problems("Unleash payload", problems)
        features = dict(self.features)
        segments = dict(self.segments)
        if "events" in plain:
            _apply_events(plain["events"], features, segments, problems)
        elif "features" in plain:
            features = {}
            segments = {}
            _read_segments(plain.get("segments"), "segments", segments, problems)
            _read_features(plain["features"], "features", features, problems)
        else:
            problems.append(("", "needs 'features' or 'events'"))
        if problems:
            raise FlagConfigError.from_problems("Unleash payload", problems)
        specs = {name: feature_spec(feature, segments) for name, feature in features.items()}
        return Changes(specs, set(self.features) - set(features), features, segments)

    def adopt(self, changes: Changes) -> None:
        """Make the state after ``changes`` the current one."""
        self.features, self.segments = changes.features, changes.segments


# Validation. Payloads arrive as plain JSON (see ``plain_json``): every
# mapping is a dict and every array a list. Unleash's own leniency stays
# (an unknown operator or strategy never matches); a value of the wrong type
# is a problem, reported with its path.

_SCALAR = (str, int, float, bool)


def _objects(value: object, path: str, what: str, problems: Problems) -> list[tuple[str, Any]]:
    """The (path, object) items of an optional list of objects; a problem for anything else."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append((path, f"must be a list of {what}"))
        return []
    items = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            items.append((f"{path}[{index}]", item))
        else:
            problems.append((f"{path}[{index}]", f"must be an object (one of the {what})"))
    return items


def _expect(
    raw: dict[str, Any],
    key: str,
    kinds: tuple[type, ...],
    path: str,
    what: str,
    *,
    problems: Problems,
    required: bool = False,
) -> None:
    value = raw.get(key)
    if value is None:
        if required:
            problems.append((f"{path}.{key}", f"is required: {what}"))
    elif not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        problems.append((f"{path}.{key}", f"must be {what}"))


def _scalars(raw: dict[str, Any], key: str, path: str, problems: Problems) -> None:
    value = raw.get(key)
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(item, _SCALAR) for item in value)
    ):
        problems.append((f"{path}.{key}", "must be a list of strings"))


def _check_constraints(value: object, path: str, problems: Problems) -> None:
    for where, constraint in _objects(value, path, "constraints", problems):
        _expect(constraint, "contextName", (str,), where, "a str", problems=problems, required=True)
        _expect(constraint, "operator", (str,), where, "a str", problems=problems, required=True)
        _scalars(constraint, "values", where, problems)
        _expect(constraint, "value", _SCALAR, where, "a string", problems=problems)
        for key in ("inverted", "caseInsensitive"):
            _expect(constraint, key, (bool,), where, "true or false", problems=problems)


def _check_variants(value: object, path: str, problems: Problems) -> None:
    total = 0.0
    for where, variant in _objects(value, path, "variants", problems):
        _expect(variant, "name", (str,), where, "a str", problems=problems, required=True)
        _expect(variant, "stickiness", (str,), where, "a str", problems=problems)
        weight = variant.get("weight", 0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            problems.append((f"{where}.weight", "must be a number >= 0"))
        else:
            total += weight
        overrides = _objects(variant.get("overrides"), f"{where}.overrides", "overrides", problems)
        for override, raw in overrides:
            _expect(raw, "contextName", (str,), override, "a str", problems=problems, required=True)
            _scalars(raw, "values", override, problems)
    if total > MAX_TOTAL_WEIGHT:
        problems.append((path, f"the weights must add up to at most {MAX_TOTAL_WEIGHT}"))


def _check_strategy(strategy: dict[str, Any], path: str, problems: Problems) -> None:
    _expect(strategy, "name", (str,), path, "a str", problems=problems, required=True)
    _expect(strategy, "parameters", (dict,), path, "an object", problems=problems)
    _check_constraints(strategy.get("constraints"), f"{path}.constraints", problems)
    segments = strategy.get("segments")
    if segments is not None and (
        not isinstance(segments, list)
        or not all(isinstance(s, (int, str)) and not isinstance(s, bool) for s in segments)
    ):
        problems.append((f"{path}.segments", "must be a list of segment ids"))
    _check_variants(strategy.get("variants"), f"{path}.variants", problems)


def _check_feature(feature: dict[str, Any], path: str, problems: Problems) -> None:
    name = feature.get("name")
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "must be a non-empty str"))
    if not isinstance(feature.get("enabled"), bool):
        problems.append((f"{path}.enabled", "must be true or false"))
    strategies = _objects(feature.get("strategies"), f"{path}.strategies", "strategies", problems)
    for where, strategy in strategies:
        _check_strategy(strategy, where, problems)
    _check_variants(feature.get("variants"), f"{path}.variants", problems)
    dependencies = _objects(
        feature.get("dependencies"), f"{path}.dependencies", "dependencies", problems
    )
    for where, dependency in dependencies:
        _expect(dependency, "feature", (str,), where, "a str", problems=problems, required=True)
        _expect(dependency, "enabled", (bool,), where, "true or false", problems=problems)
        variants = dependency.get("variants")
        if variants is not None and (
            not isinstance(variants, list) or not all(isinstance(v, str) for v in variants)
        ):
            problems.append((f"{where}.variants", "must be a list of strings"))


def _is_segment_id(value: object) -> TypeGuard[SegmentId]:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _read_segments(raw: object, path: str, segments: Segments, problems: Problems) -> None:
    for where, segment in _objects(raw, path, "segments", problems):
        segment_id = segment.get("id")
        if not _is_segment_id(segment_id):
            problems.append((f"{where}.id", "must be a number or a str"))
            continue
        before = len(problems)
        _check_constraints(segment.get("constraints"), f"{where}.constraints", problems)
        if len(problems) == before:
            segments[segment_id] = segment.get("constraints") or []


def _read_features(
    raw: object, path: str, features: dict[str, Mapping[str, Any]], problems: Problems
) -> None:
    if not isinstance(raw, list):
        problems.append((path, "must be a list of features"))
        return
    for where, feature in _objects(raw, path, "features", problems):
        _read_feature(feature, where, features, problems)


def _read_feature(
    feature: object, path: str, features: dict[str, Mapping[str, Any]], problems: Problems
) -> None:
    if not isinstance(feature, dict):
        problems.append((path, "a feature must be an object"))
        return
    before = len(problems)
    _check_feature(feature, path, problems)
    if len(problems) == before:
        features[feature["name"]] = feature


def _apply_events(
    events: object,
    features: dict[str, Mapping[str, Any]],
    segments: dict[SegmentId, Sequence[Mapping[str, Any]]],
    problems: Problems,
) -> None:
    if not isinstance(events, list):
        problems.append(("events", "must be a list of events"))
        return
    for path, event in _objects(events, "events", "events", problems):
        kind = event.get("type")
        if kind == "hydration":
            features.clear()
            segments.clear()
            _read_segments(event.get("segments"), f"{path}.segments", segments, problems)
            _read_features(event.get("features", []), f"{path}.features", features, problems)
        else:
            _apply_change(event, path, features, segments, problems)


def _apply_change(
    event: dict[str, Any],
    path: str,
    features: dict[str, Mapping[str, Any]],
    segments: Segments,
    problems: Problems,
) -> None:
    kind = event.get("type")
    if kind == "feature-updated":
        _read_feature(event.get("feature"), f"{path}.feature", features, problems)
    elif kind == "feature-removed":
        name = event.get("featureName")
        if isinstance(name, str):
            features.pop(name, None)
        else:
            problems.append((f"{path}.featureName", "must be a str"))
    elif kind == "segment-updated":
        segment = event.get("segment")
        if isinstance(segment, dict):
            _read_segments([segment], f"{path}.segment", segments, problems)
        else:
            problems.append((f"{path}.segment", "must be an object"))
    elif kind == "segment-removed":
        segment_id = event.get("segmentId")
        if _is_segment_id(segment_id):
            segments.pop(segment_id, None)
        else:
            problems.append((f"{path}.segmentId", "must be a number or a str"))
    else:
        problems.append((f"{path}.type", f"unknown event type {kind!r}"))


def _number(value: object) -> float:
    parsed = operators.parse_number(value)
    return 0.0 if parsed is None else parsed


def _split(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _constraint(raw: Mapping[str, Any]) -> Condition:
    operator = raw["operator"]
    if operator not in operators.OPERATORS:
        return _NEVER  # Unleash: an unknown operator never matches, inverted or not
    name = raw["contextName"]
    if raw.get("values") is not None:
        values = tuple(str(v) for v in raw["values"])
    elif raw.get("value") is not None:
        values = (str(raw["value"]),)
    else:
        values = ()
    return Attribute(
        context_path(name),
        operator,
        values,
        negate=bool(raw.get("inverted", False)),
        case_insensitive=bool(raw.get("caseInsensitive", False)),
        default_now=name == "currentTime",
    )


def _stickiness(name: object, random_fallback: bool) -> tuple[tuple[Path, ...], bool]:
    if name in (None, "", "default"):
        return (("userId",), ("sessionId",)), True
    if name == "random":
        return (), True
    return (context_path(str(name)),), random_fallback


def _strategy_rule(name: object, parameters: Mapping[str, Any], feature: str) -> Condition | None:
    group = str(parameters.get("groupId") or feature)
    if name == "default":
        return None
    if name == "userWithId":
        return Attribute(("userId",), "IN", _split(parameters.get("userIds")))
    if name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        field = "userId" if name == "gradualRolloutUserId" else "sessionId"
        return Percentage(_number(parameters.get("percentage")), ((field,),), group)
    if name == "gradualRolloutRandom":
        return Percentage(_number(parameters.get("percentage")), (), group, random_fallback=True)
    if name == "flexibleRollout":
        paths, random_fallback = _stickiness(parameters.get("stickiness"), False)
        return Percentage(_number(parameters.get("rollout")), paths, group, random_fallback)
    if name == "remoteAddress":
        return Attribute(("remoteAddress",), "IN_CIDR", _split(parameters.get("IPs")))
    return _NEVER  # a strategy this client does not know never matches


def _variant_set(
    raw: list[dict[str, Any]] | None, group: str, inherited_stickiness: object = None
) -> VariantSet | None:
    if not raw:
        return None
    options = []
    for variant in raw:
        overrides = tuple(
            (
                context_path(str(o.get("contextName"))),
                frozenset(str(v) for v in o.get("values") or ()),
            )
            for o in variant.get("overrides") or []
        )
        options.append(
            VariantOption(
                variant["name"],
                _number(variant.get("weight", 0)),
                variant.get("payload"),
                overrides,
            )
        )
    sticky = raw[0].get("stickiness") or inherited_stickiness
    paths = () if sticky in (None, "", "default") else (context_path(str(sticky)),)
    return VariantSet(tuple(options), group, paths)


def feature_spec(
    feature: Mapping[str, Any], segments: Mapping[Any, Sequence[Mapping[str, Any]]]
) -> FlagSpec:
    """The flag for one Unleash feature, given the known segments."""
    name = feature["name"]
    rules = []
    used_segments = {}
    for s_index, strategy in enumerate(feature.get("strategies") or []):
        prefix = f"strategies[{s_index}]"
        parameters = strategy.get("parameters") or {}
        conditions: list[Condition] = []
        labels: list[str] = []
        for c_index, constraint in enumerate(strategy.get("constraints") or []):
            conditions.append(_constraint(constraint))
            labels.append(f"{prefix}.constraints[{c_index}]")
        for segment_id in strategy.get("segments") or []:
            constraints = segments.get(segment_id)
            used_segments[str(segment_id)] = constraints
            labels.append(f"{prefix}.segments[{segment_id}]")
            if constraints is None:
                conditions.append(_NEVER)  # a missing segment fails the strategy
            else:
                conditions.append(AllOf(tuple(_constraint(c) for c in constraints)))
        rule = _strategy_rule(strategy.get("name"), parameters, name)
        if rule is not None:
            conditions.append(rule)
            labels.append(prefix)
        group = str(parameters.get("groupId") or name)
        variants = _variant_set(strategy.get("variants"), group, parameters.get("stickiness"))
        rules.append(Rule(tuple(conditions), tuple(labels), variants))
    prerequisites = tuple(
        Prerequisite(
            str(dependency.get("feature")),
            dependency.get("enabled") is not False,
            tuple(str(v) for v in dependency.get("variants") or ()),
        )
        for dependency in feature.get("dependencies") or []
    )
    strategies = feature.get("strategies") or []
    return FlagSpec(
        name,
        bool(feature["enabled"]),
        tuple(rules) if strategies else (),
        _variant_set(feature.get("variants"), name),
        prerequisites,
        {"unleash": feature, "segments": used_segments},
        source="unleash",
    )
