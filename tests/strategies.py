"""Hypothesis strategies and generated sources shared by the property-based tests."""

from __future__ import annotations

import decimal
import fractions
import json
import math
from collections.abc import Callable
from types import ModuleType

from hypothesis import strategies as st

from illunare._platforms.traffic import LATEST, REVISION, Target


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


#: any text, lone surrogates included (text() leaves them out, and they are
#: too rare among all characters to come up unasked)
SOURCE_TEXTS = st.lists(
    st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"])),
    max_size=60,
).map("".join)
METHOD_NAMES = ("alpha", "beta", "gamma", "delta")


def class_source(number: int, methods: frozenset[str]) -> str:
    """A module whose class has ``methods``, each returning ``(number, its name)``."""
    lines = [f"VERSION = {number}", "", "class Thing:", "    KIND = VERSION"]
    for name in sorted(methods):
        lines += [f"    def {name}(self):", f"        return (VERSION, {name!r})"]
    return "\n".join(lines) + "\n"


#: the members of an enum: 1 to 4 distinct names, in order
ENUM_MEMBERS = st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=4, unique=True)


def enum_source(names: list[str], shift: int) -> str:
    """A module with ``class E(enum.Enum)`` of ``names``, distinct values; the first shifted."""
    members = "".join(
        f"    {name} = {2 * index + (shift if index == 0 else 0)}\n"
        for index, name in enumerate(names)
    )
    return f"import enum\n\nclass E(enum.Enum):\n{members}"


# Feature flags ---------------------------------------------------------------

#: encodings a coding declaration may name: text codecs, codecs that are not
#: text encodings, and names that are no codec at all
_CODINGS = st.sampled_from(
    [
        "utf-8", "latin-1", "ascii", "cp1252", "utf-16", "utf-7", "idna", "punycode",
        "unicode_escape", "raw_unicode_escape", "rot13", "hex", "base64", "zlib", "bogus",
    ]
)  # fmt: skip

#: any bytes, some behind a UTF-8 byte order mark or a coding declaration
SOURCE_BYTES = st.one_of(
    st.binary(max_size=60),
    st.binary(max_size=60).map(lambda data: b"\xef\xbb\xbf" + data),
    st.tuples(_CODINGS, st.binary(max_size=60)).map(
        lambda pair: f"# coding: {pair[0]}\n".encode() + pair[1]
    ),
)


# Feature flags ---------------------------------------------------------------

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
#: the methods of successive versions of one class (2 to 4 versions)
CLASS_VERSIONS = st.lists(st.frozensets(st.sampled_from(METHOD_NAMES)), min_size=2, max_size=4)
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


# Arguments of the wrong type ----------------------------------------------------

#: values that are neither a module nor a module name, nor any other argument the API takes
NOT_AN_ARGUMENT = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(TEXT, st.integers(), max_size=2),
    st.builds(object),
)
# Hardening: hostile configs and payloads ---------------------------------------


def nest(kinds: list[str], leaf: dict[str, object]) -> dict[str, object]:
    """``leaf`` wrapped in one ``not``/``any``/``all`` condition per kind, innermost last."""
    condition = leaf
    for kind in reversed(kinds):
        condition = (
            {"type": "not", "condition": condition}
            if kind == "not"
            else {"type": kind, "conditions": [condition]}
        )
    return condition


#: one condition nested 0 to 1,500 levels deep (far beyond any limit)
DEEP_CONDITIONS = st.builds(
    nest,
    st.lists(st.sampled_from(["not", "any", "all"]), max_size=1_500),
    st.sampled_from([{"type": "user_id", "value": "u-1"}, {"type": "percentage", "value": 50}]),
)

#: names and keys of any type, hashable or not
ODD_NAMES = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    TEXT,
    st.binary(max_size=4),
    st.lists(TEXT, max_size=2),
    st.dictionaries(TEXT, TEXT, max_size=2),
    st.tuples(st.lists(TEXT, max_size=1)),
)

#: values no JSON document can hold exactly, or at all
NOT_JSON = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 2**53, -(2**60)]),
    st.datetimes(),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=2),
    st.builds(object),
)

#: what a mutation puts in place of a value in an Unleash payload
ODD_JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.just([]),
    st.just({}),
    st.lists(st.one_of(st.integers(), TEXT, st.just([1])), max_size=2),
    st.dictionaries(TEXT, st.integers(), max_size=2),
)


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside a JSON document (the root excluded)."""
    found = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, member in items:
        found.append((*path, key))
        found.extend(_paths(member, (*path, key)))
    return found


def replace(document: object, path: tuple[object, ...], new: object) -> object:
    """A deep copy of ``document`` with the value at ``path`` replaced by ``new``."""
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


@st.composite
def mutated_payloads(draw: st.DrawFn, payloads: list[dict[str, object]]) -> object:
    """A payload of ``payloads`` with one to three values replaced by odd ones."""
    payload: object = draw(st.sampled_from(payloads))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        payload = replace(payload, draw(st.sampled_from(paths)), draw(ODD_JSON))
    return payload


#: a config using every kind of condition and field, for mutating
RICH_FLAG_CONFIG = {
    "enabled": True,
    "stickiness": "user_id",
    "description": "every kind of condition",
    "tags": ["a"],
    "metadata": {"owner": [1, 2]},
    "conditions": [
        {"type": "user_segment", "value": ["premium"], "negate": False},
        {"type": "percentage", "value": 30, "attribute": "user_id"},
        {
            "type": "attribute",
            "attribute": ["app", "version"],
            "operator": "semver_gte",
            "value": "1.2.3",
            "case_insensitive": True,
        },
        {"type": "attribute", "attribute": "email", "operator": "regex", "values": ["^a", "b$"]},
        {"type": "schedule", "start": "2024-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"},
        {"type": "flag", "flag": "other", "enabled": True, "variants": ["a"]},
        {
            "type": "any",
            "conditions": [{"type": "not", "condition": {"type": "region", "value": "BR"}}],
        },
    ],
    "variants": [{"name": "a", "weight": 1, "payload": {"x": 1}}, {"name": "b", "weight": 2}],
}
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


#: Import graphs of a release: module name -> the names it imports (cycles allowed).
IMPORT_GRAPHS = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True).flatmap(
    lambda names: st.fixed_dictionaries(
        {name: st.frozensets(st.sampled_from(names)) for name in names}
    )
)

#: One step of a sequence of releases: ("swap", n), ("refuse", a key of BAD_SOURCES or
#: "registering": a source that registers and a check that refuses it), ("rollback", 0).
RELEASE_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("swap"), st.integers(1, 5)),
        st.tuples(st.just("refuse"), st.sampled_from(["registering", *sorted(BAD_SOURCES)])),
        st.tuples(st.just("rollback"), st.just(0)),
    ),
    max_size=12,
)

# Web apps: names of the form "package.module:attribute" or "...:factory()".
IDENTIFIERS = st.text(
    st.characters(categories=("Lu", "Ll", "Nd", "Pc")), min_size=1, max_size=6
).filter(str.isidentifier)
APP_NAMES = st.builds(
    lambda parts, name, factory: ".".join(parts) + ":" + name + ("()" if factory else ""),
    st.lists(IDENTIFIERS, min_size=1, max_size=3),
    IDENTIFIERS,
    st.booleans(),
)


# Deployment packages --------------------------------------------------------------

#: (value, the problem's path under the module entry's path, or None when valid)
_MODULE_NAMES = [("no_such_module_anywhere", ".name"), (3, ".name"), ("", ".name")]
_MODULE_CODES = [
    ("def broken(:\n", ".code"),
    ("x = (\n", ".code"),
    (b"X = 1", ".code"),
    (None, ".code"),
]
_FLAG_CONFIGS = [
    ({"enabled": True}, None),
    ({"enabled": "yes"}, ".enabled"),
    ({"conditions": [{"type": "percentage", "value": 300}]}, ".conditions[0].value"),
    ({"conditons": []}, ".conditons"),
    ("on", ""),
]


@st.composite
def _module_entry(draw: st.DrawFn, index: int, tracked: list[str]) -> tuple[object, set[str]]:
    path = f"modules[{index}]"
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([3, "app.users", None])), {path}
    problems: set[str] = set()
    entry: dict[str, object] = {}
    if draw(st.booleans()):
        name, where = draw(st.sampled_from(_MODULE_NAMES))
        problems.add(path + where)
    else:
        name = draw(st.sampled_from(tracked))
    entry["name"] = name
    if draw(st.booleans()):
        code, where = draw(st.sampled_from(_MODULE_CODES))
        problems.add(path + where)
    else:
        code = f"X = {draw(st.integers(0, 9))}\n"
    entry["code"] = code
    if draw(st.integers(0, 4)) == 0:
        entry["version"] = 2
        problems.add(f"{path}.version")
    return entry, problems


#: a package's "rollout" part, and the paths of its problems
_ROLLOUTS = [
    ({"steps": [10, 100], "bake": 1, "thresholds": {"max_error_rate": 0.05}}, set()),
    ({"steps": [50, 10]}, {"rollout.steps"}),
    ({"sticky": "x-user", "bake": -1}, {"rollout.sticky", "rollout.bake"}),
    ({"thresholds": {"max_latency": "1s"}}, {"rollout.thresholds.max_latency"}),
    ("fast", {"rollout"}),
]


@st.composite
def bad_packages(draw: st.DrawFn, tracked: list[str], migration: object) -> tuple[object, set[str]]:
    """A package in the mapping form with at least one problem, and the paths of all of them.

    ``tracked`` are module names the reloader tracks, ``migration`` a valid
    Migration. A module named twice is a problem of the second entry.
    """
    package: dict[str, object] = {}
    problems: set[str] = set()
    if draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            package["modules"] = draw(st.sampled_from(["app.users", 7, {"name": "x"}]))
            problems.add("modules")
        else:
            entries = []
            seen: set[str] = set()
            for index in range(draw(st.integers(0, 3))):
                entry, found = draw(_module_entry(index, tracked))
                name = entry.get("name") if isinstance(entry, dict) else None
                if isinstance(name, str) and name:
                    if name in seen:
                        found.add(f"modules[{index}].name")
                    seen.add(name)
                entries.append(entry)
                problems |= found
            package["modules"] = entries
    if draw(st.booleans()):
        valid = draw(st.booleans())
        # {"pool": 1000}: a config the tests' service's validator refuses (its pool limit is 100)
        bad = st.sampled_from([["pool"], 7, "x", {"pool": 1000}])
        package["config"] = {"pool": 7} if valid else draw(bad)
        if not valid:
            problems.add("config")
    if draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            package["flags"] = ["new_flow"]
            problems.add("flags")
        else:
            flags = {}
            for name in draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True)):
                config, where = draw(st.sampled_from(_FLAG_CONFIGS))
                flags[name] = config
                if where is not None:
                    problems.add(f"flags.{name}{where}")
            package["flags"] = flags
    if draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            package["migrations"] = "create orders"
            problems.add("migrations")
        else:
            items = draw(st.lists(st.sampled_from([migration, "create", {"up": None}]), max_size=3))
            package["migrations"] = items
            problems |= {
                f"migrations[{n}]" for n, item in enumerate(items) if item is not migration
            }
    if draw(st.booleans()):
        package["rollout"], where = draw(st.sampled_from(_ROLLOUTS))
        problems |= where
    for key in draw(st.lists(st.sampled_from(["extra", "module", "flag"]), unique=True)):
        package[key] = {}
        problems.add(key)
    if not problems:
        package["modules"] = [{"name": tracked[0], "code": "def broken(:\n"}]
        problems.add("modules[0].code")
    if "rollout" in package and not package.get("modules"):
        problems.add("rollout")  # nothing to roll out
    return package, problems


# Monitoring: values as record() takes them (finite reals), windows, and limits.
METRIC_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6)
)
LATENCIES = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
WINDOWS = st.integers(min_value=1, max_value=12)

# Hot configuration: updates of a few keys; -1 is the value the tests' validator refuses.
CONFIG_UPDATES = st.dictionaries(st.sampled_from("abcd"), st.integers(-1, 3), max_size=3)

# Services: route paths over a small alphabet (so that routes overlap, share
# prefixes and compete), and request paths over the same segments.
_ROUTE_SEGMENTS = st.sampled_from(["a", "b", "ab", "{p}"])


def _route_path(segments: list[str]) -> str:
    """``/a/{p0}/b``: each parameter named by its position, so that none repeats."""
    named = [f"{{p{n}}}" if segment == "{p}" else segment for n, segment in enumerate(segments)]
    return "/" + "/".join(named)


#: route paths, "/" included, no two of one shape (they would clash)
ROUTE_PATHS = st.lists(
    st.lists(_ROUTE_SEGMENTS, max_size=4).map(_route_path),
    min_size=1,
    max_size=12,
    unique_by=lambda path: tuple("{" if "{" in s else s for s in path.split("/")),
)
#: request paths: those segments and others, empty ones included ("/a//b", "/a/")
REQUEST_PATHS = st.lists(st.sampled_from(["a", "b", "ab", "abc", "x", ""]), max_size=6).map(
    lambda segments: "/" + "/".join(segments)
)
#: one segment of a request path: any text but "/" (and lone surrogates, which no URL holds)
PATH_SEGMENTS = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1, max_size=6
)

# A package's "rollout" part as JSON might bring it: mappings keyed mostly by the fields
# of a rollout and of its thresholds, any JSON value in them.
_ROLLOUT_KEYS = ["steps", "bake", "min_samples", "on_inconclusive", "thresholds"]
_ROLLOUT_KEYS += ["max_error_rate", "max_latency", "sticky", "x"]
ROLLOUT_PARTS = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_ROLLOUT_KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)


def _equal_forms(value: int | float) -> list[object]:
    """``value`` as each numeric type that can hold it exactly (all equal, one dict key)."""
    forms: list[object] = [value, float(value), decimal.Decimal(value), complex(value)]
    if math.isfinite(value):
        forms.append(fractions.Fraction(value))
    if value in (0, 1):
        forms.append(bool(value))
    if float(value).is_integer():
        forms.append(int(value))
    return [form for form in forms if form == value]


#: Groups of equal numbers of different types (1, 1.0, True, Decimal(1), Fraction(1), 1+0j ...).
equal_numbers = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=True),
).map(_equal_forms)
#: Tuples whose members are equal numbers of different types, and a str.
equal_tuples = st.tuples(equal_numbers, st.text(max_size=5)).map(
    lambda pair: [(form, pair[1]) for form in pair[0]]
)


@st.composite
def deployments(draw: st.DrawFn) -> dict[str, object]:
    """An apps/v1 Deployment as JSON, at any point of a rollout (counts, conditions, generation)."""
    count = st.integers(min_value=0, max_value=6)
    generation = draw(st.integers(min_value=1, max_value=5))
    reason = draw(
        st.sampled_from(
            [
                None,
                "NewReplicaSetCreated",
                "ReplicaSetUpdated",
                "NewReplicaSetAvailable",
                "ProgressDeadlineExceeded",
            ]
        )
    )
    status: dict[str, object] = {
        "observedGeneration": draw(st.integers(min_value=0, max_value=generation + 1)),
        "replicas": draw(count),
        "updatedReplicas": draw(count),
        "availableReplicas": draw(count),
    }
    if reason is not None:
        status["conditions"] = [{"type": "Progressing", "reason": reason}]
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": draw(count)},
        "status": status,
    }


# Cloud Run traffic (illunare.gcp): splits as a service may hold them.
#: the revisions a split may name
REVISIONS = ("shop-00001-aaa", "shop-00002-bbb", "shop-00003-ccc", "shop-00004-ddd")


@st.composite
def traffic_splits(draw: st.DrawFn) -> tuple[Target, ...]:
    """A valid split: 1 to 6 targets, whole percents summing to 100, unique tags, LATEST or not.

    At most one untagged target per revision (LATEST counting as the first
    revision, which it serves), so that a pinned split has no two alike.
    """
    size = draw(st.integers(1, 6))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=size - 1, max_size=size - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    tags = draw(
        st.lists(
            st.sampled_from(["", "", "blue", "green", "canary", "old"]),
            min_size=size,
            max_size=size,
        )
    )
    seen: set[str] = set()
    split: list[Target] = []
    untagged: dict[tuple[str, str], int] = {}  # one untagged target per revision, as Cloud Run
    for percent, tag in zip(percents, tags, strict=True):
        unique = tag if tag not in seen else ""
        seen.add(unique)
        if draw(st.integers(0, 5)) == 0:
            target = Target(LATEST, "", percent, unique)
        else:
            target = Target(REVISION, draw(st.sampled_from(REVISIONS)), percent, unique)
        # LATEST serves the first revision (the tests pin it there)
        key = (REVISION, REVISIONS[0]) if target.kind == LATEST else (REVISION, target.revision)
        where = untagged.get(key) if not unique else None
        if where is not None:
            earlier = split[where]
            split[where] = Target(earlier.kind, earlier.revision, earlier.percent + percent)
            continue
        if not unique:
            untagged[key] = len(split)
        split.append(target)
    return tuple(split)


#: percents a step may give
STEP_PERCENTS = st.integers(1, 100)
#: weights to scale: non-negative, at least one positive
WEIGHTS = st.lists(st.integers(0, 1000), min_size=1, max_size=12).filter(any)
