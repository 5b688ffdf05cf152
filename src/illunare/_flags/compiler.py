"""Compiling a ``FlagSpec`` once, at update time, into the functions evaluation calls.

``is_enabled`` runs one generated function per flag: the whole rule as a
single Python expression over the context mapping, so that the common
checks (``ctx.get("region") in {...}``) cost what a hand-written check costs.
Configured values never become source text: they are passed to the
generated code as constants in its namespace, so no config can inject code.
The richer ``evaluate`` path uses one generated test per condition to say
which condition failed, and ``choose_variant`` for sticky weighted variants.
"""

from __future__ import annotations

import datetime
import itertools
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from illunare._flags import operators
from illunare._flags.hashing import VARIANT_SEED, bucket, murmur3_32
from illunare._flags.model import (
    AllOf,
    AnyOf,
    Attribute,
    Condition,
    FlagSpec,
    Not,
    Path,
    Percentage,
    Prerequisite,
    Schedule,
    VariantOption,
    VariantSet,
)

__all__ = ["CompiledFlag", "Predicate", "compile_flag", "dig"]

#: A test of one context mapping.
Predicate = Callable[[Any], bool]
#: How a prerequisite learns about another flag: (enabled, variant name) or None.
ParentLookup = Callable[[str, Any], "tuple[bool, str | None] | None"]

_EMPTY: Mapping[str, Any] = {}
# Up to this many values, a tuple scan beats hashing the context value.
_SMALL = 8
# Unleash's default stickiness for variants, in order.
_DEFAULT_STICKINESS: tuple[Path, ...] = (("userId",), ("sessionId",), ("remoteAddress",))


def dig(context: Any, path: Path) -> Any:
    """The value at ``path`` in nested mappings, or ``None``."""
    value = context
    for key in path:
        getter = getattr(value, "get", None)
        if getter is None:
            return None
        value = getter(key)
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _now_if_missing(value: Any) -> Any:
    return datetime.datetime.now(datetime.timezone.utc) if value is None else value


def _always_false(context: Any) -> bool:
    return False


@attrs.define(eq=False)
class CompiledFlag:
    """A flag ready to evaluate."""

    spec: FlagSpec
    version: int
    #: the whole flag as one generated predicate
    check: Predicate
    #: per rule, one test per condition (same semantics as ``check``)
    rule_tests: tuple[tuple[Predicate, ...], ...]
    prerequisite_tests: tuple[Predicate, ...]
    #: whether each rule contains a percentage (its matches are splits)
    rule_splits: tuple[bool, ...]


class _Emitter:
    """Builds Python expressions for conditions, collecting their constants."""

    def __init__(self, flag: str, parents: ParentLookup) -> None:
        self.flag = flag
        self.parents = parents
        self.constants: dict[str, Any] = {
            "_text": _text,
            "_dig": dig,
            "_now_if_missing": _now_if_missing,
        }
        self._names = itertools.count()

    def constant(self, value: Any) -> str:
        name = f"_k{next(self._names)}"
        self.constants[name] = value
        return name

    def lookup(self, path: Path) -> str:
        if len(path) == 1:
            return f"ctx.get({self.constant(path[0])})"
        if len(path) == 2:  # e.g. Unleash's properties: inlined for plain dicts
            outer, inner = self.constant(path[0]), self.constant(path[1])
            return (
                f"(_p.get({inner}) if (_p := ctx.get({outer})).__class__ is dict "
                f"else _dig(_p, ({inner},)))"
            )
        return f"_dig(ctx, {self.constant(path)})"

    def expression(self, condition: Condition) -> str:
        if isinstance(condition, Attribute):
            return self._attribute(condition)
        if isinstance(condition, AllOf):
            parts = [self.expression(part) for part in condition.conditions]
            return "(" + " and ".join(parts) + ")" if parts else "True"
        if isinstance(condition, AnyOf):
            parts = [self.expression(part) for part in condition.conditions]
            return "(" + " or ".join(parts) + ")" if parts else "False"
        if isinstance(condition, Not):
            return f"(not {self.expression(condition.condition)})"
        if isinstance(condition, Percentage):
            return f"{self.constant(_percentage(condition))}(ctx)"
        if isinstance(condition, Schedule):
            return f"{self.constant(_schedule(condition))}()"
        return f"{self.constant(_prerequisite(condition, self.parents))}(ctx)"

    def _membership(self, value: str, values: tuple[str, ...]) -> str:
        """Whether the context value is one of ``values``, inlined for the hot path."""
        if not any(map(_numeric_text, values)) and len(values) <= _SMALL:
            # Only a string can equal a non-numeric string: == needs no
            # conversion and, unlike hashing, cannot fail on odd values.
            if len(values) == 1:
                return f"({value} == {self.constant(values[0])})"
            return f"({value} in {self.constant(tuple(values))})"
        # Strings are looked up directly, numbers by their text, anything
        # else (lists, dicts ...) matches nothing.
        accepted = self.constant(frozenset(values))
        return f"((_v if (_v := {value}).__class__ is str else _text(_v)) in {accepted})"

    def _attribute(self, condition: Attribute) -> str:
        value = self.lookup(condition.path)
        if condition.default_now:
            value = f"_now_if_missing({value})"
        if condition.operator in ("IN", "NOT_IN") and not condition.case_insensitive:
            test = self._membership(value, condition.values)
            if condition.operator == "NOT_IN":
                test = f"(not {test})"
        else:
            prepared = operators.build(
                condition.operator, condition.values, condition.case_insensitive
            )
            test = f"{self.constant(prepared)}({value})"
        return f"(not {test})" if condition.negate else test


def _numeric_text(value: str) -> bool:
    return operators.parse_number(value) is not None


def _percentage(condition: Percentage) -> Predicate:
    percentage, paths, group = condition.percentage, condition.stickiness, condition.group
    fallback = condition.random_fallback

    def test(context: Any) -> bool:
        if percentage <= 0:
            return False
        for path in paths:
            key = dig(context, path)
            if key is not None and key != "":
                return bucket(group, str(key)) <= percentage
        return fallback and random.randint(1, 100) <= percentage  # noqa: S311  # a draw, not a secret

    return test


def _schedule(condition: Schedule) -> Callable[[], bool]:
    start, end = condition.start, condition.end

    def test() -> bool:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (start is None or start <= now) and (end is None or now < end)

    return test


# Prerequisites can form cycles through configs written separately; a depth
# limit per thread turns a cycle into "not satisfied" instead of a recursion error.
_depth = threading.local()
_MAX_DEPTH = 8


def _prerequisite(condition: Prerequisite, parents: ParentLookup) -> Predicate:
    def test(context: Any) -> bool:
        depth = getattr(_depth, "value", 0)
        if depth >= _MAX_DEPTH:
            return False
        _depth.value = depth + 1
        try:
            parent = parents(condition.flag, context)
        finally:
            _depth.value = depth
        if parent is None:
            return False
        enabled, variant = parent
        if not condition.enabled:
            return not enabled
        return enabled and (not condition.variants or variant in condition.variants)

    return test


def _function(emitter: _Emitter, expression: str, label: str) -> Predicate:
    source = (
        "def check(ctx):\n"
        "    try:\n"
        f"        return {expression}\n"
        "    except Exception:\n"
        "        return False\n"
    )
    namespace = dict(emitter.constants)
    exec(compile(source, f"<flag {label!r}>", "exec"), namespace)  # noqa: S102  # constants only
    check: Predicate = namespace["check"]
    return check


def compile_flag(spec: FlagSpec, version: int, parents: ParentLookup) -> CompiledFlag:
    """Compile ``spec``; ``parents`` resolves prerequisite flags at evaluation time."""
    emitter = _Emitter(spec.name, parents)
    # Each condition becomes one expression, shared by the whole-flag check
    # and by its own test (its constants prepared once).
    prerequisites = [emitter.expression(p) for p in spec.prerequisites]
    conditions = [[emitter.expression(c) for c in rule.conditions] for rule in spec.rules]
    rules = ["(" + " and ".join(parts) + ")" if parts else "True" for parts in conditions]
    whole = " and ".join([*prerequisites, "(" + " or ".join(rules) + ")" if rules else "True"])
    check = _function(emitter, whole, spec.name) if spec.enabled else _always_false
    rule_tests = tuple(
        tuple(_function(emitter, part, spec.name) for part in parts) for parts in conditions
    )
    prerequisite_tests = tuple(_function(emitter, part, spec.name) for part in prerequisites)
    splits = tuple(any(_has_percentage(c) for c in rule.conditions) for rule in spec.rules)
    return CompiledFlag(spec, version, check, rule_tests, prerequisite_tests, splits)


def _has_percentage(condition: Condition) -> bool:
    if isinstance(condition, Percentage):
        return True
    if isinstance(condition, (AllOf, AnyOf)):
        return any(_has_percentage(part) for part in condition.conditions)
    if isinstance(condition, Not):
        return _has_percentage(condition.condition)
    return False


def choose_variant(variants: VariantSet, context: Any) -> VariantOption | None:
    """The variant for ``context``: an override, else a sticky weighted draw."""
    for option in variants.options:
        for path, values in option.overrides:
            value = dig(context, path)
            if value is not None and str(value) in values:
                return option
    total = sum(option.weight for option in variants.options)
    if total <= 0:
        return None
    key = None
    for path in variants.stickiness or _DEFAULT_STICKINESS:
        value = dig(context, path)
        if value is not None and value != "":
            key = str(value)
            break
    if key is None:
        key = str(random.random())  # noqa: S311  # no sticky key: a plain draw
    target = murmur3_32(f"{variants.group}:{key}", VARIANT_SEED) % total + 1
    counter = 0.0
    for option in variants.options:
        if option.weight == 0:
            continue
        counter += option.weight
        if counter >= target:
            return option
    return None
