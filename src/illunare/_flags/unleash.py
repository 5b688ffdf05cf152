"""Unleash client payloads (full and delta) translated into illunare's flag model.

A feature is on when it is enabled, its dependencies hold, and any of its
strategies matches (no strategies: on for everyone). A strategy matches when
its constraints, the constraints of its segments and its own rule hold.
Everything is hashed exactly as Unleash does (murmur3, ``groupId:key``), so
a user gets the same answer here as from any Unleash SDK.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import attrs

from illunare._flags import operators
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
    """What a payload changed: flags to (re)install and flags to remove."""

    updated: dict[str, FlagSpec] = attrs.Factory(dict)
    removed: set[str] = attrs.Factory(set)


@attrs.define
class UnleashState:
    """The features and segments received so far."""

    features: dict[str, Mapping[str, Any]] = attrs.Factory(dict)
    segments: dict[Any, Sequence[Mapping[str, Any]]] = attrs.Factory(dict)

    def apply(self, payload: object) -> Changes:
        """Apply a payload; return the resulting changes, or raise with every problem."""
        if not isinstance(payload, Mapping):
            raise FlagConfigError(
                "an Unleash payload must be a mapping", (("", "must be a mapping"),)
            )
        features = dict(self.features)
        segments = dict(self.segments)
        problems: list[tuple[str, str]] = []
        if "events" in payload:
            _apply_events(payload["events"], features, segments, problems)
        elif "features" in payload:
            features = {}
            segments = {}
            _read_segments(payload.get("segments", []), "segments", segments, problems)
            _read_features(payload["features"], "features", features, problems)
        else:
            problems.append(("", "needs 'features' or 'events'"))
        specs = {}
        for name, feature in features.items():
            specs[name] = feature_spec(feature, segments)
        if problems:
            raise FlagConfigError.from_problems("Unleash payload", problems)
        changes = Changes(specs, set(self.features) - set(features))
        self.features, self.segments = features, segments
        return changes


def _is_list(value: object) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _read_segments(
    raw: object,
    path: str,
    segments: dict[Any, Sequence[Mapping[str, Any]]],
    problems: list[tuple[str, str]],
) -> None:
    if not _is_list(raw):
        problems.append((path, "must be a list of segments"))
        return
    for index, segment in enumerate(raw):
        if not isinstance(segment, Mapping) or "id" not in segment:
            problems.append((f"{path}[{index}]", "a segment needs an 'id'"))
            continue
        constraints = segment.get("constraints", [])
        if not _is_list(constraints):
            problems.append((f"{path}[{index}].constraints", "must be a list"))
            continue
        segments[segment["id"]] = copy.deepcopy(list(constraints))


def _read_features(
    raw: object, path: str, features: dict[str, Mapping[str, Any]], problems: list[tuple[str, str]]
) -> None:
    if not _is_list(raw):
        problems.append((path, "must be a list of features"))
        return
    for index, feature in enumerate(raw):
        _read_feature(feature, f"{path}[{index}]", features, problems)


def _read_feature(
    feature: object,
    path: str,
    features: dict[str, Mapping[str, Any]],
    problems: list[tuple[str, str]],
) -> None:
    if not isinstance(feature, Mapping):
        problems.append((path, "a feature must be a mapping"))
        return
    name = feature.get("name")
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "must be a non-empty str"))
        return
    if not isinstance(feature.get("enabled"), bool):
        problems.append((f"{path}.enabled", "must be true or false"))
        return
    for key in ("strategies", "variants", "dependencies"):
        if feature.get(key) is not None and not _is_list(feature[key]):
            problems.append((f"{path}.{key}", "must be a list"))
            return
    features[name] = copy.deepcopy(dict(feature))


def _apply_events(
    events: object,
    features: dict[str, Mapping[str, Any]],
    segments: dict[Any, Sequence[Mapping[str, Any]]],
    problems: list[tuple[str, str]],
) -> None:
    if not _is_list(events):
        problems.append(("events", "must be a list of events"))
        return
    for index, event in enumerate(events):
        path = f"events[{index}]"
        kind = event.get("type") if isinstance(event, Mapping) else None
        if kind == "hydration":
            features.clear()
            segments.clear()
            _read_segments(event.get("segments", []), f"{path}.segments", segments, problems)
            _read_features(event.get("features", []), f"{path}.features", features, problems)
        elif kind == "feature-updated":
            _read_feature(event.get("feature"), f"{path}.feature", features, problems)
        elif kind == "feature-removed":
            features.pop(event.get("featureName"), None)
        elif kind == "segment-updated":
            _read_segments([event.get("segment")], f"{path}.segment", segments, problems)
        elif kind == "segment-removed":
            segments.pop(event.get("segmentId"), None)
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
    operator = raw.get("operator")
    if not isinstance(operator, str) or operator not in operators.OPERATORS:
        return _NEVER  # Unleash: an unknown operator never matches, inverted or not
    name = raw.get("contextName")
    if not isinstance(name, str):
        return _NEVER
    if "values" in raw and raw["values"] is not None:
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


def _variant_set(raw: object, group: str, inherited_stickiness: object = None) -> VariantSet | None:
    if not _is_list(raw) or not raw:
        return None
    options = []
    for variant in raw:
        if not isinstance(variant, Mapping) or not isinstance(variant.get("name"), str):
            continue
        overrides = tuple(
            (
                context_path(str(o.get("contextName"))),
                frozenset(str(v) for v in o.get("values", [])),
            )
            for o in variant.get("overrides") or []
            if isinstance(o, Mapping)
        )
        options.append(
            VariantOption(
                variant["name"],
                _number(variant.get("weight", 0)),
                variant.get("payload"),
                overrides,
            )
        )
    if not options:
        return None
    first = raw[0] if isinstance(raw[0], Mapping) else {}
    sticky = first.get("stickiness") or inherited_stickiness
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
        if not isinstance(strategy, Mapping):
            continue
        prefix = f"strategies[{s_index}]"
        parameters = strategy.get("parameters") or {}
        conditions: list[Condition] = []
        labels: list[str] = []
        for c_index, constraint in enumerate(strategy.get("constraints") or []):
            conditions.append(
                _constraint(constraint) if isinstance(constraint, Mapping) else _NEVER
            )
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
            bool(dependency.get("enabled", True)),
            tuple(str(v) for v in dependency.get("variants") or ()),
        )
        for dependency in feature.get("dependencies") or []
        if isinstance(dependency, Mapping)
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
