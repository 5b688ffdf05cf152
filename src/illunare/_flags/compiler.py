"""Compiling a ``FlagSpec`` once, at update time, into the functions evaluation calls.

``is_enabled`` runs one generated function per flag: the whole rule as a
single Python expression over the context mapping, so that the common
checks (``ctx.get("region") in {...}``) cost what a hand-written check costs.
Configured values never become source text: they are passed to the
generated code as constants in its namespace, so no config can inject code.
The richer ``evaluate`` path uses one generated function per rule to say
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
from illunare._flags.limits import MAX_CONDITIONS
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
from illunare.exceptions import FlagConfigError

__all__ = ["CompiledFlag", "Predicate", "compile_flag", "dig"]

#: A test of one context mapping.
Predicate = Callable[[Any], bool]
#: How a prerequisite learns about another flag: (enabled, variant name) or None.
ParentLookup = Callable[[str, Any], "tuple[bool, str | None] | None"]

_EMPTY: Mapping[str, Any] = {}
# Up to this many values, a tuple scan beats hashing the context value.
_SMALL = 8
# The most conditions one generated function holds: CPython compiles a
# function in time superlinear in its size, and 500 keeps the hot path of any
# realistic flag in one function.
_CHUNK = 500
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


@attrs.frozen(eq=False)
class CompiledFlag:
    """A flag ready to evaluate."""

    spec: FlagSpec
    #: the whole flag as one predicate; it may raise (a context that is no
    #: mapping): is_enabled, its caller, answers False then
    check: Predicate
    #: per rule, the index of its first condition that fails (-1: all hold)
    rule_failures: tuple[Callable[[Any], int], ...]
    #: the index of the first prerequisite that fails, or -1
    prerequisite_failure: Callable[[Any], int]
    #: whether each rule contains a percentage (its matches are splits)
    rule_splits: tuple[bool, ...]
    #: set when the flag is installed
    version: int = 0


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
        #: the source of helper functions the expressions call
        self.helpers: list[str] = []

    def join(self, parts: list[str], operator: str) -> str:
        """``parts`` joined by ``and``/``or``, in helper functions of at most ``_CHUNK`` parts."""
        if not parts:
            return "True" if operator == "and" else "False"
        while len(parts) > _CHUNK:
            calls = []
            for start in range(0, len(parts), _CHUNK):
                name = f"_chunk{len(self.helpers)}"
                body = f" {operator} ".join(parts[start : start + _CHUNK])
                self.helpers.append(f"def {name}(ctx):\n    return ({body})")
                calls.append(f"{name}(ctx)")
            parts = calls
        return "(" + f" {operator} ".join(parts) + ")"

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
            return self.join([self.expression(part) for part in condition.conditions], "and")
        if isinstance(condition, AnyOf):
            return self.join([self.expression(part) for part in condition.conditions], "or")
        if isinstance(condition, Not):
            return f"(not {self.expression(condition.condition)})"
        if isinstance(condition, Percentage):
            if len(condition.stickiness) == 1 and not condition.random_fallback:
                # The common case, inlined: one context key decides.
                key = self.lookup(condition.stickiness[0])
                return f"{self.constant(_rollout(condition))}({key})"
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


def _rollout(condition: Percentage) -> Callable[[Any], bool]:
    """Whether a stickiness key is in the rollout (a missing or empty key is not)."""
    percentage, group = condition.percentage, condition.group
    if percentage <= 0:
        return _always_false

    def test(key: Any) -> bool:
        return key is not None and key != "" and bucket(group, str(key)) <= percentage

    return test


def _percentage(condition: Percentage) -> Predicate:
    """The whole condition: the first key present among the stickiness paths decides."""
    rollout, paths = _rollout(condition), condition.stickiness
    fallback, percentage = condition.random_fallback, condition.percentage

    def test(context: Any) -> bool:
        for path in paths:
            key = dig(context, path)
            if key is not None and key != "":
                return rollout(key)
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


def _first_failure(name: str, parts: list[str], start: int) -> str:
    """A function: the index of the first part that fails, counting from ``start``; else -1.

    It lets exceptions through: only a context that is no mapping makes a
    condition raise, and ``evaluate`` then answers with reason ``error``.
    """
    lines = [f"def {name}(ctx):"]
    lines += [f"    if not {part}: return {index}" for index, part in enumerate(parts, start)]
    lines.append("    return -1")
    return "\n".join(lines)


def _never_fails(context: Any) -> int:
    return -1


def _first_of(chunks: list[Callable[[Any], int]]) -> Callable[[Any], int]:
    """The first failure found by any of ``chunks``, in order."""
    if not chunks:
        return _never_fails
    if len(chunks) == 1:
        return chunks[0]

    def first_failure(context: Any) -> int:
        for chunk in chunks:
            index = chunk(context)
            if index >= 0:
                return index
        return -1

    return first_failure


def compile_flag(spec: FlagSpec, parents: ParentLookup) -> CompiledFlag:
    """Compile ``spec`` (its ``version`` is 0: the installer sets it).

    ``parents`` resolves prerequisite flags at evaluation time. All the
    generated functions are compiled as one module, in time linear in the
    number of conditions: no generated function holds more than ``_CHUNK``
    of them (CPython compiles one huge function in superlinear time).

    Raises:
        FlagConfigError: the flag has more than ``MAX_CONDITIONS`` conditions.

    """
    count = sum(_count(c) for rule in spec.rules for c in rule.conditions)
    if count > MAX_CONDITIONS:
        raise FlagConfigError.from_problems(
            spec.name, [("", f"has {count} conditions, more than the {MAX_CONDITIONS} allowed")]
        )
    emitter = _Emitter(spec.name, parents)
    # Each condition becomes one expression, shared by the whole-flag check
    # and by its rule's test (its constants prepared once).
    prerequisites = [emitter.expression(p) for p in spec.prerequisites]
    conditions = [[emitter.expression(c) for c in rule.conditions] for rule in spec.rules]
    failures = {
        f"_fail{index}_{start}": (parts[start : start + _CHUNK], start)
        for index, parts in enumerate([prerequisites, *conditions])
        for start in range(0, len(parts), _CHUNK)
    }
    source = [
        *emitter.helpers,
        *(_first_failure(name, parts, start) for name, (parts, start) in failures.items()),
    ]
    # A flag small enough to be a hot path gets the whole check as one
    # expression; a larger one is checked through its rules' tests, which
    # saves compiling every condition twice.
    small = count + len(prerequisites) <= _CHUNK
    if small:
        rules = [emitter.join(parts, "and") for parts in conditions]
        anyrule = emitter.join(rules, "or") if rules else "True"  # no rules: on for everyone
        whole = emitter.join([*prerequisites, anyrule], "and")
        # No try here: is_enabled, its one caller, answers False for any exception.
        source.append(f"def check(ctx):\n    return {whole}")
    namespace = emitter.constants
    code = compile("\n".join(source), f"<flag {spec.name!r}>", "exec")
    exec(code, namespace)  # noqa: S102  # configured values are constants, never source text
    prerequisite_failure, *rule_failures = (
        _first_of([namespace[f"_fail{index}_{start}"] for start in range(0, len(parts), _CHUNK)])
        for index, parts in enumerate([prerequisites, *conditions])
    )
    check: Predicate
    if not spec.enabled:
        check = _always_false
    elif small:
        check = namespace["check"]
    else:
        check = _through_rules(prerequisite_failure, rule_failures)
    return CompiledFlag(
        spec,
        check,
        tuple(rule_failures),
        prerequisite_failure,
        tuple(any(_has_percentage(c) for c in rule.conditions) for rule in spec.rules),
    )


def _through_rules(
    prerequisite_failure: Callable[[Any], int], rule_failures: list[Callable[[Any], int]]
) -> Predicate:
    """The whole-flag check of a large flag, from its rules' tests."""

    def check(context: Any) -> bool:
        if prerequisite_failure(context) >= 0:
            return False
        return not rule_failures or any(fails(context) < 0 for fails in rule_failures)

    return check


def _count(condition: Condition) -> int:
    if isinstance(condition, (AllOf, AnyOf)):
        return 1 + sum(_count(part) for part in condition.conditions)
    if isinstance(condition, Not):
        return 1 + _count(condition.condition)
    return 1


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
