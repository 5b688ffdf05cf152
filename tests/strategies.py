"""Hypothesis strategies and generated sources shared by the property-based tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType


def module_source(token: int) -> str:
    """A module whose function, method and constant all report ``token``."""
    return (
        f"TOKEN = {token}\n\n"
        "def value():\n    return TOKEN\n\n"
        "class Thing:\n    def token(self):\n        return TOKEN\n"
    )


def _refuse(module: ModuleType) -> bool:
    return False


#: Sources that every swap must refuse, by the kind of failure, with their checks.
BAD_SOURCES: dict[str, tuple[str, tuple[Callable[[ModuleType], object], ...]]] = {
    "syntax": ("def value(:\n    return 1\n", ()),
    "raises": ("TOKEN = 1 / 0\n", ()),
    "check": (module_source(99), (_refuse,)),
    "migrate": (module_source(98) + "def __hot_migrate__(old):\n    raise ValueError\n", ()),
}


# Feature flags ---------------------------------------------------------------

from hypothesis import strategies as st  # noqa: E402  # grouped with the flag strategies

KEYS = st.sampled_from(["user_id", "region", "user_segment", "age", "version", "email", "ip"])
TEXT = st.text(max_size=8)
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    TEXT,
    st.lists(TEXT, max_size=2),
    st.dictionaries(TEXT, TEXT, max_size=2),
)
#: contexts with any kind of value under the keys conditions read
CONTEXTS = st.dictionaries(KEYS, ODD_VALUES, max_size=6)

_OPERANDS = {
    "in": st.lists(TEXT, min_size=1, max_size=3),
    "not_in": st.lists(TEXT, min_size=1, max_size=3),
    "starts_with": TEXT,
    "ends_with": TEXT,
    "contains": TEXT,
    "num_gt": st.integers(-100, 100),
    "num_lte": st.integers(-100, 100),
    "date_after": st.just("2024-01-01T00:00:00Z"),
    "semver_gte": st.just("1.2.3"),
    "regex": st.sampled_from(["^a", "b$", "[0-9]+"]),
    "in_cidr": st.just(["10.0.0.0/8"]),
}


def _attribute(operator: str) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("attribute"),
            "attribute": KEYS,
            "operator": st.just(operator),
            "value": _OPERANDS[operator],
        },
        optional={"negate": st.booleans(), "case_insensitive": st.booleans()},
    )


_LEAVES = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["user_segment", "region", "user_id"]),
            "value": st.lists(TEXT, min_size=1, max_size=3),
        },
        optional={"negate": st.booleans()},
    ),
    st.fixed_dictionaries({"type": st.just("percentage"), "value": st.integers(0, 100)}),
    *[_attribute(operator) for operator in _OPERANDS],
)

#: any valid condition, groups included
CONDITIONS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["any", "all"]), "conditions": st.lists(inner, max_size=3)}
        ),
        st.fixed_dictionaries({"type": st.just("not"), "condition": inner}),
    ),
    max_leaves=6,
)

#: any valid flag config
FLAG_CONFIGS = st.fixed_dictionaries(
    {"enabled": st.booleans(), "conditions": st.lists(CONDITIONS, max_size=4)},
    optional={
        "variants": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["a", "b", "c"]), "weight": st.integers(1, 5)}
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda variant: variant["name"],
        )
    },
)

_KNOWN_TYPES = {
    "user_segment", "region", "user_id", "percentage", "attribute",
    "schedule", "flag", "any", "all", "not",
}  # fmt: skip
_UNKNOWN_CONDITION = st.fixed_dictionaries({"type": TEXT.filter(lambda t: t not in _KNOWN_TYPES)})
_NOT_A_NUMBER = {"type": "attribute", "attribute": "x", "operator": "num_gt", "value": "n"}

#: configs that are wrong in at least one place
INVALID_FLAG_CONFIGS = st.one_of(
    st.none(),
    st.integers(),
    st.fixed_dictionaries({"enabled": st.sampled_from(["yes", 1, None])}),
    st.fixed_dictionaries({"conditions": st.lists(_UNKNOWN_CONDITION, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"conditions": st.just([{"type": "percentage", "value": 101}])}),
    st.fixed_dictionaries({"conditions": st.just([_NOT_A_NUMBER])}),
    st.fixed_dictionaries({"variants": st.just([{"name": ""}])}),
    st.fixed_dictionaries({"unknown_key": st.integers()}),
)  # fmt: skip


# Hostile bytes for flag backends ---------------------------------------------

#: JSON nested deeper than any parser's stack allows
NESTED_JSON = b"[" * 100_000 + b"]" * 100_000

#: what another program may put in a Redis channel, hash or flag file
HOSTILE_BYTES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda text: text.encode("latin-1", "replace")),
    st.text(alphabet='{}[]":, 0123456789abcnulltrue', max_size=48).map(str.encode),
    st.builds(
        lambda name, revision, config: json.dumps(
            {"name": name, "revision": revision, "config": config}
        ).encode(),
        st.one_of(st.text(max_size=4), st.integers()),
        st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none()),
        st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
    ),
    # From shallow to too deep for the parser (10,000 levels), small enough to print.
    st.integers(1, 4).map(lambda exponent: b"[" * 10**exponent),
)
