"""Flags against hostile input: limits, plain JSON, Unleash payloads, regexes, hashing."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from illunare import FeatureFlags, FileBackend, FlagConfigError, MemoryBackend, Reason
from illunare._flags import hashing, regex
from illunare._flags.limits import MAX_CONDITIONS, MAX_NESTING, MAX_TOTAL_WEIGHT

from .strategies import (
    CONTEXTS,
    DEEP_CONDITIONS,
    FLAG_CONFIGS,
    NOT_JSON,
    ODD_NAMES,
    RICH_FLAG_CONFIG,
    TEXT,
    mutated_payloads,
    nest,
    replace,
)

SPEC = Path(__file__).resolve().parent / "data" / "unleash-client-spec"
SPEC_STATES = [
    json.loads((SPEC / name).read_text())["state"]
    for name in json.loads((SPEC / "index.json").read_text())
]
GOOD = {"conditions": [{"type": "user_id", "value": "u-1"}]}
LEAF = {"type": "user_id", "value": "u-1"}


def _kinds(depth: int) -> list[str]:
    """``depth`` group kinds, cycling through not, any and all."""
    return [("not", "any", "all")[level % 3] for level in range(depth)]


def _run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class TestValidateAndCompileFirst:
    @pytest.mark.parametrize("depth", [MAX_NESTING, 199, 400, 1_000, 5_000])
    def test_deep_nesting_is_refused_before_anything_is_stored(self, depth: int) -> None:
        """Too deep conditions raise FlagConfigError with a path; the backend never sees them."""
        backend = MemoryBackend()
        writer, reader = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        writer.update("f", GOOD)
        with pytest.raises(FlagConfigError) as caught:
            writer.update("f", {"conditions": [nest(_kinds(depth), LEAF)]})
        (path, message), *_ = caught.value.problems
        assert path.startswith("conditions[0].condition.conditions[0].conditions[0]")
        assert "deeper than" in message
        assert reader.flags()["f"].config == GOOD
        assert writer.flags()["f"].config == GOOD
        assert reader.is_enabled("f", {"user_id": "u-1"})

    @pytest.mark.parametrize("order", [("not", "any", "all"), ("all",), ("not",)])
    def test_nesting_at_the_limit_compiles_and_evaluates(self, order: tuple[str, ...]) -> None:
        """MAX_NESTING - 1 groups around a leaf (the deepest allowed) compile and evaluate right."""
        kinds = [order[level % len(order)] for level in range(MAX_NESTING - 1)]
        flags = FeatureFlags()
        flags.update("f", {"conditions": [nest(kinds, LEAF)]})
        negations = kinds.count("not")
        assert flags.is_enabled("f", {"user_id": "u-1"}) is (negations % 2 == 0)
        assert flags.evaluate("f", {"user_id": "u-1"}).enabled is (negations % 2 == 0)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(DEEP_CONDITIONS)
    def test_any_nesting_compiles_or_raises_flag_config_error(
        self, condition: dict[str, Any]
    ) -> None:
        """Whatever the depth, update either serves the flag or raises FlagConfigError only."""
        flags = FeatureFlags()
        try:
            flags.update("f", {"conditions": [condition]})
        except FlagConfigError:
            assert "f" not in flags.flags()
        else:
            assert flags.is_enabled("f", {"user_id": "u-1"}) in (True, False)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_payloads([RICH_FLAG_CONFIG]), CONTEXTS)
    def test_mutated_configs_raise_only_flag_config_error(
        self, config: Any, context: dict[str, Any]
    ) -> None:
        """Odd values anywhere in a config: served and evaluated, or a FlagConfigError only."""
        flags = FeatureFlags()
        try:
            flags.update("f", config)
        except FlagConfigError:
            assert "f" not in flags.flags()
        else:
            assert flags.evaluate("f", context).reason != Reason.ERROR

    def test_a_config_that_contains_itself_is_refused(self) -> None:
        """A cyclic config is a FlagConfigError, not a RecursionError."""
        condition: dict[str, Any] = {"type": "not"}
        condition["condition"] = condition
        cyclic: list[Any] = []
        cyclic.append(cyclic)
        for config in ({"conditions": [condition]}, {"metadata": cyclic}):
            with pytest.raises(FlagConfigError, match="deeper than"):
                FeatureFlags().update("f", config)

    def test_more_conditions_than_allowed_are_refused_unstored(self) -> None:
        """A flag over MAX_CONDITIONS raises FlagConfigError; nothing reaches the backend."""
        backend = MemoryBackend()
        flags = FeatureFlags(backend=backend)
        group = {"type": "any", "conditions": [LEAF] * MAX_CONDITIONS}
        with pytest.raises(FlagConfigError, match="conditions, more than"):
            flags.update("f", {"conditions": [group]})
        assert FeatureFlags(backend=backend).flags() == {}

    def test_a_remote_config_that_cannot_compile_keeps_the_last_good_one(self) -> None:
        """A too-deep config stored by a writer that does not validate is ignored by readers."""

        class Unchecked:
            """Another writer of the store (an older version, a script) that checks nothing."""

            def apply_remote(self, name: str, config: Any, revision: int) -> None:
                """It hears nothing."""

        backend = MemoryBackend()
        reader = FeatureFlags(backend=backend)
        reader.update("f", GOOD)
        backend.write("f", {"conditions": [nest(_kinds(150), LEAF)]}, origin=Unchecked())
        assert reader.flags()["f"].config == GOOD
        assert reader.is_enabled("f", {"user_id": "u-1"})

    def test_a_stored_config_that_cannot_compile_is_skipped_at_start(self, tmp_path: Path) -> None:
        """A new process starts with the good flags of a file that also holds a too-deep one."""
        path = tmp_path / "flags.json"
        deep = {"conditions": [nest(_kinds(400), LEAF)]}
        path.write_text(json.dumps({"deep": deep, "good": GOOD}))
        result = _run(
            """
            import logging, sys
            from illunare import FeatureFlags, FileBackend
            logging.basicConfig()  # the application's choice: the library only has a NullHandler
            flags = FeatureFlags(backend=FileBackend(sys.argv[1]))
            print(sorted(flags.flags()), flags.is_enabled("good", {"user_id": "u-1"}))
            """,
            str(path),
        )
        assert (result.returncode, result.stdout.strip()) == (0, "['good'] True")
        assert "ignoring an invalid config for flag 'deep'" in result.stderr


class TestPlainJson:
    def test_a_datetime_is_refused_and_the_file_keeps_working(self, tmp_path: Path) -> None:
        """A datetime schedule is a FlagConfigError with its path; the file backend still writes."""
        path = tmp_path / "flags.json"
        backend = FileBackend(path)
        flags = FeatureFlags(backend=backend)
        moment = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
        with pytest.raises(FlagConfigError) as caught:
            flags.update("f", {"conditions": [{"type": "schedule", "start": moment}]})
        assert [path for path, _ in caught.value.problems] == ["conditions[0].start"]
        flags.update("g", GOOD)
        assert json.loads(path.read_text()) == {"g": GOOD}
        flags.close()
        backend.close()

    @settings(deadline=None)
    @given(NOT_JSON, st.sampled_from(["payload", "metadata", "weight", "value"]))
    def test_values_json_cannot_hold_are_refused_anywhere(self, value: Any, where: str) -> None:
        """NaN, infinities, huge integers, sets, bytes, objects: FlagConfigError, with the place."""
        config: dict[str, Any] = {
            "payload": {"variants": [{"name": "a", "payload": {"x": [value]}}]},
            "metadata": {"metadata": {"owner": value}},
            "weight": {"variants": [{"name": "a", "weight": value}]},
            "value": {"conditions": [{"type": "percentage", "value": value}]},
        }[where]
        with pytest.raises(FlagConfigError) as caught:
            FeatureFlags().update("f", config)
        assert caught.value.problems

    @settings(deadline=None)
    @given(FLAG_CONFIGS, st.recursive(st.none() | TEXT | st.integers(-9, 9), st.lists))
    def test_stored_configs_are_standard_json(self, config: dict[str, Any], payload: Any) -> None:
        """Whatever update accepts is stored as plain JSON: it survives a strict round trip."""
        config = {**config, "metadata": {"payload": (payload, types.MappingProxyType({"k": 1}))}}
        stored = FeatureFlags().update("f", config).config
        text = json.dumps(dict(stored), allow_nan=False)
        assert json.loads(text) == stored

    @pytest.mark.parametrize(
        ("weights", "problem"),
        [
            ([math.inf, 1], "variants[0].weight"),
            ([MAX_TOTAL_WEIGHT, 1], "variants"),
            ([-1, 1], "variants[0].weight"),
        ],
    )
    def test_variant_weights_are_bounded(self, weights: list[float], problem: str) -> None:
        """Weights are finite, at least 0 and add up to at most MAX_TOTAL_WEIGHT."""
        variants = [{"name": f"v{index}", "weight": w} for index, w in enumerate(weights)]
        with pytest.raises(FlagConfigError) as caught:
            FeatureFlags().update("f", {"variants": variants})
        assert problem in [path for path, _ in caught.value.problems]

    def test_the_largest_weights_still_share_the_draw(self) -> None:
        """At the weight limit, each variant still gets its share of users."""
        flags = FeatureFlags()
        half = MAX_TOTAL_WEIGHT // 2
        flags.update(
            "f", {"variants": [{"name": "a", "weight": half}, {"name": "b", "weight": half}]}
        )
        seen = {flags.evaluate("f", {"user_id": f"u{n}"}).variant.name for n in range(100)}  # type: ignore[union-attr]
        assert seen == {"a", "b"}


class TestNeverRaises:
    @settings(deadline=None)
    @given(ODD_NAMES.filter(lambda name: name != "f"))
    def test_is_enabled_answers_false_for_any_name(self, name: Any) -> None:
        """is_enabled never raises, whatever the name: unknown or unhashable names are off.

        (Any name but "f", the one flag that exists.)
        """
        flags = FeatureFlags()
        flags.update("f", {})
        assert flags.is_enabled(name) is False
        evaluation = flags.evaluate(name)
        assert (evaluation.enabled, evaluation.reason) == (False, Reason.FLAG_NOT_FOUND)

    def test_contexts_that_cannot_be_read_answer_false(self) -> None:
        """A context whose truth raises, or that is no mapping, gives False, not an exception."""

        class Unreadable(dict[str, Any]):
            def __bool__(self) -> bool:
                raise ValueError("ambiguous")

        flags = FeatureFlags()
        flags.update("f", GOOD)
        for context in (Unreadable(user_id="u-1"), ["user_id"], 5, "u-1"):
            assert flags.is_enabled("f", context) is False  # type: ignore[arg-type]


class TestBookkeeping:
    def test_deleted_names_leave_nothing_behind(self) -> None:
        """After deleting every flag, no mapping of the FeatureFlags still holds a name."""
        flags = FeatureFlags()
        names = [f"flag-{index}" for index in range(200)]
        for name in names:
            flags.update(name, GOOD)
            flags.delete(name)
        held = [
            name
            for value in vars(flags).values()
            if isinstance(value, dict)
            for name in names
            if name in value
        ]
        assert held == []

    def test_versions_keep_growing_across_flags_and_deletes(self) -> None:
        """Every new version of any flag is numbered higher than all before it."""
        flags = FeatureFlags()
        versions = [flags.update("a", GOOD).version, flags.update("b", GOOD).version]
        flags.delete("a")
        versions.append(flags.update("a", GOOD).version)
        assert versions == sorted(set(versions))


class TestLargeFlags:
    def test_a_flag_of_ten_thousand_conditions_evaluates_right(self) -> None:
        """Chunked compilation keeps every condition: the last one is the one that fails."""
        count = 10_000
        conditions = [
            {"type": "attribute", "attribute": f"k{index}", "operator": "in", "value": "x"}
            for index in range(count)
        ]
        flags = FeatureFlags()
        flags.update("f", {"conditions": conditions})
        context = {f"k{index}": "x" for index in range(count)}
        assert flags.is_enabled("f", context)
        del context[f"k{count - 1}"]
        assert not flags.is_enabled("f", context)
        assert flags.evaluate("f", context).failed_condition == f"conditions[{count - 1}]"

    def test_a_group_of_the_most_conditions_allowed_compiles(self) -> None:
        """An any-group of MAX_CONDITIONS - 1 members (the most allowed) works at both ends."""
        members = [{"type": "user_id", "value": f"u{index}"} for index in range(MAX_CONDITIONS - 1)]
        flags = FeatureFlags()
        flags.update("f", {"conditions": [{"type": "any", "conditions": members}]})
        assert flags.is_enabled("f", {"user_id": "u0"})
        assert flags.is_enabled("f", {"user_id": f"u{MAX_CONDITIONS - 2}"})
        assert not flags.is_enabled("f", {"user_id": "nobody"})


def _unleash_feature(**changes: Any) -> dict[str, Any]:
    feature: dict[str, Any] = {
        "name": "f",
        "enabled": True,
        "strategies": [
            {
                "name": "default",
                "parameters": {},
                "constraints": [{"contextName": "userId", "operator": "IN", "values": ["u-1"]}],
                "segments": [1],
            }
        ],
    }
    feature.update(changes)
    return feature


class TestUnleashPayloads:
    @pytest.mark.parametrize(
        ("where", "value", "problem"),
        [
            (
                ("features", 0, "strategies", 0, "constraints", 0, "values"),
                5,
                "constraints[0].values",
            ),
            (("features", 0, "strategies", 0, "segments"), [[1]], "strategies[0].segments"),
            (
                ("features", 0, "strategies", 0, "parameters"),
                "rollout=5",
                "strategies[0].parameters",
            ),
            (("segments", 0, "id"), [1], "segments[0].id"),
            (
                ("features", 0, "variants"),
                [{"name": "a", "overrides": [{"values": 5}]}],
                "overrides[0].values",
            ),
            (
                ("features", 0, "dependencies"),
                [{"feature": "g", "variants": 5}],
                "dependencies[0].variants",
            ),
            (("features", 0, "variants"), [{"name": "a", "weight": 1e300}], "features[0].variants"),
            (("features", 0, "strategies"), "default", "features[0].strategies"),
        ],
    )
    def test_malformed_payloads_raise_flag_config_error_with_paths(
        self, where: tuple[object, ...], value: Any, problem: str
    ) -> None:
        """Wrongly typed values are FlagConfigError problems at their paths; nothing is applied."""
        payload = {"features": [_unleash_feature()], "segments": [{"id": 1, "constraints": []}]}
        flags = FeatureFlags()
        flags.load_unleash(payload)
        before = dict(flags.flags())
        with pytest.raises(FlagConfigError) as caught:
            flags.load_unleash(replace(payload, where, value))
        assert any(path.endswith(problem) for path, _ in caught.value.problems)
        assert dict(flags.flags()) == before

    @pytest.mark.parametrize(
        "event",
        [
            {"type": "feature-removed", "featureName": ["f"]},
            {"type": "segment-removed", "segmentId": {"id": 1}},
            {"type": "segment-updated", "segment": 5},
            {"type": "feature-updated", "feature": _unleash_feature(enabled="yes")},
        ],
    )
    def test_malformed_events_change_nothing(self, event: dict[str, Any]) -> None:
        """A bad delta event is a FlagConfigError; the features before it stay as they were."""
        flags = FeatureFlags()
        flags.load_unleash({"features": [_unleash_feature()], "segments": [{"id": 1}]})
        before = dict(flags.flags())
        events = [{"type": "feature-updated", "feature": _unleash_feature(name="g")}, event]
        with pytest.raises(FlagConfigError):
            flags.load_unleash({"events": events})
        assert dict(flags.flags()) == before

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_payloads(SPEC_STATES), st.sampled_from(SPEC_STATES))
    def test_mutated_spec_payloads_raise_only_flag_config_error(
        self, payload: Any, first: dict[str, Any]
    ) -> None:
        """A mutated conformance payload is applied whole or refused whole, never a crash."""
        flags = FeatureFlags()
        flags.load_unleash(first)
        before = dict(flags.flags())
        try:
            flags.load_unleash(payload)
        except FlagConfigError:
            assert dict(flags.flags()) == before
        else:
            for name in flags.flags():
                assert flags.evaluate(name, {"userId": "u-1"}).reason != Reason.ERROR

    def test_non_finite_numbers_are_refused(self) -> None:
        """A NaN anywhere in a payload is a FlagConfigError, as in a native config."""
        feature = _unleash_feature(variants=[{"name": "a", "weight": 1, "payload": math.nan}])
        with pytest.raises(FlagConfigError, match="finite"):
            FeatureFlags().load_unleash({"features": [feature]})

    def test_a_payload_that_cannot_compile_applies_nothing(self) -> None:
        """Too many constraints in one feature refuse the whole payload, earlier flags kept."""
        flags = FeatureFlags()
        flags.load_unleash({"features": [_unleash_feature(name="kept")], "segments": []})
        constraint = {"contextName": "userId", "operator": "IN", "values": ["u-1"]}
        huge = _unleash_feature(
            strategies=[{"name": "default", "constraints": [constraint] * (MAX_CONDITIONS + 1)}]
        )
        with pytest.raises(FlagConfigError, match="conditions, more than"):
            flags.load_unleash({"features": [huge, _unleash_feature(name="new")]})
        assert list(flags.flags()) == ["kept"]


BACKTRACKING = r"^(a+)+$"
REGEX_PARTS = ["a", "b", "[ab]", "a+", "b*", "(ab)?", "[^a]", ".", "(x|y)", "^", "$", r"\d"]
REGEX_PARTS += ["[[:alpha:]]", "(?i)", "(?m)", "(?s)", "a{1,2}", r"\w", "[]a]"]
FALLBACK_ONLY = """
import sys
sys.modules["re2"] = None  # as if google-re2 were not installed
"""


class TestRegexEngine:
    def test_re2_runs_a_catastrophic_pattern_in_linear_time(self) -> None:
        """With google-re2, ^(a+)+$ is accepted and answers at once (re would take years)."""
        result = _run(
            f"""
            from illunare import FeatureFlags
            flags = FeatureFlags()
            flags.update("f", {{"conditions": [{{"type": "attribute", "attribute": "name",
                "operator": "regex", "value": {BACKTRACKING!r}}}]}})
            print(flags.is_enabled("f", {{"name": "a" * 5000 + "!"}}),
                  flags.is_enabled("f", {{"name": "a" * 5000}}))
            """,
            timeout=60,
        )
        assert (result.returncode, result.stdout.strip()) == (0, "False True")

    def test_without_re2_a_catastrophic_pattern_is_refused(self) -> None:
        """Without google-re2, ^(a+)+$ is a FlagConfigError that names the extra to install."""
        result = _run(
            FALLBACK_ONLY
            + f"""
from illunare import FeatureFlags, FlagConfigError
flags = FeatureFlags()
try:
    flags.update("f", {{"conditions": [{{"type": "attribute", "attribute": "name",
        "operator": "regex", "value": {BACKTRACKING!r}}}]}})
except FlagConfigError as error:
    print(error.problems[0][0], "illunare[re2]" in error.problems[0][1])
flags.update("g", {{"conditions": [{{"type": "attribute", "attribute": "email",
    "operator": "regex", "value": "^[^@]+@[^@]+$"}}]}})
print(flags.is_enabled("g", {{"email": "a@b"}}), flags.is_enabled("g", {{"email": "a@b@c"}}))
""",
            timeout=60,
        )
        assert (result.returncode, result.stdout.split("\n")[:2]) == (
            0,
            ["conditions[0].value True", "True False"],
        )

    def test_without_re2_the_unleash_regex_cases_pass(self) -> None:
        """The specification's regex cases give the expected answers on the fallback too."""
        result = _run(
            FALLBACK_ONLY
            + """
import json
from illunare import FeatureFlags
document = json.loads(open(sys.argv[1]).read())
flags = FeatureFlags()
flags.load_unleash(document["state"])
wrong = [case["description"] for case in document["tests"]
         if flags.is_enabled(case["toggleName"], case["context"]) is not case["expectedResult"]]
print(len(document["tests"]), wrong)
""",
            str(SPEC / "21-regex-constraint-operators.json"),
        )
        assert result.returncode == 0, result.stderr
        count, wrong = result.stdout.split(" ", 1)
        assert (int(count) > 10, wrong.strip()) == (True, "[]")

    def test_without_re2_an_unleash_catastrophic_regex_never_matches(self) -> None:
        """In an Unleash payload such a pattern never matches (as Unleash does), with a warning."""
        result = _run(
            FALLBACK_ONLY
            + f"""
import logging
from illunare import FeatureFlags
logging.basicConfig()  # the application's choice: the library only has a NullHandler
flags = FeatureFlags()
flags.load_unleash({{"features": [{{"name": "f", "enabled": True, "strategies": [
    {{"name": "default", "constraints": [{{"contextName": "name", "operator": "REGEX",
      "value": {BACKTRACKING!r}}}]}}]}}]}})
print(flags.is_enabled("f", {{"properties": {{"name": "aaa"}}}}))
""",
        )
        assert (result.returncode, result.stdout.strip()) == (0, "False")
        assert "illunare[re2]" in result.stderr

    @pytest.mark.parametrize(
        "pattern",
        [BACKTRACKING, r"(a|ab)*c", r"\w+\d+", r".*a.*", r"^(\d+,)*$", r"(x+x+)+y", r"a*a*b"],
    )
    def test_the_fallback_refuses_patterns_that_backtrack(self, pattern: str) -> None:
        """Nested or adjacent variable repeats are refused by the check of the parsed pattern."""
        refused = regex._compile_bounded(pattern, fold=False)
        assert isinstance(refused, str)
        assert "illunare[re2]" in refused

    @pytest.mark.parametrize(
        ("pattern", "text", "found"),
        [
            (r"^[^@]+@[^@]+$", "me@example.org", True),
            (r"^\d+\.\d+\.\d+$", "1.22.333", True),
            (r"https?://[a-z]+\.example\.com/.*", "see http://www.example.com/x", True),
            (r"^(?i)abc$", "ABC", True),
            (r"colou?r", "color", True),
            (r"^user\d{3}$", "user12", False),
        ],
    )
    def test_the_fallback_accepts_bounded_patterns(
        self, pattern: str, text: str, found: bool
    ) -> None:
        """Patterns whose parts are separated by literals are accepted and match as RE2 does."""
        search = regex._compile_bounded(pattern, fold=False)
        assert not isinstance(search, str)
        assert search(text) is found

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(REGEX_PARTS),
            max_size=6,
        ),
        st.text(alphabet="abAB1xy-\n", max_size=12),
        st.booleans(),
    )
    def test_the_fallback_finds_what_re2_finds(
        self, tokens: list[str], text: str, fold: bool
    ) -> None:
        """Wherever the fallback accepts a pattern, it matches exactly as RE2 does."""
        pattern = "".join(tokens)
        search, reference = (
            regex._compile_bounded(pattern, fold),
            regex.compile_regex(pattern, fold),
        )
        if not isinstance(search, str) and not isinstance(reference, str):
            assert search(text) is reference(text)

    def test_text_that_is_not_utf8_never_matches(self) -> None:
        """A value with a lone surrogate (RE2 reads UTF-8) matches nothing and raises nothing."""
        flags = FeatureFlags()
        regex_condition = {"type": "attribute", "attribute": "name", "operator": "regex"}
        flags.update("f", {"conditions": [{"type": "any", "conditions": [
            {**regex_condition, "value": "a"}, {"type": "user_id", "value": "u-1"},
        ]}]})  # fmt: skip
        assert not flags.is_enabled("f", {"name": "\ud800a"})
        assert flags.is_enabled("f", {"name": "\ud800a", "user_id": "u-1"})
        assert flags.evaluate("f", {"name": "\ud800a"}).reason == Reason.CONDITION_FAILED

    @pytest.mark.parametrize("pattern", [r"^(a)\1$", r"^(?=a)b$", r"(?<!a)b", "(regex"])
    def test_patterns_re2_cannot_run_are_refused_on_both_engines(self, pattern: str) -> None:
        """Back-references, look-around and syntax errors are refused with or without RE2."""
        assert isinstance(regex.compile_regex(pattern, fold=False), str)
        assert isinstance(regex._compile_bounded(pattern, fold=False), str)


class TestHashing:
    @settings(deadline=None)
    @given(st.text(max_size=64), st.integers(0, 2**32 - 1))
    def test_mmh3_and_the_python_murmur3_agree(self, text: str, seed: int) -> None:
        """mmh3 (when installed) and the pure-Python MurmurHash3 give the same number."""
        import mmh3

        expected = mmh3.hash(text, seed, signed=False)
        assert hashing.python_murmur3_32(text, seed) == expected
        assert hashing.murmur3_32(text, seed) == expected

    def test_known_values(self) -> None:
        """Reference values of MurmurHash3 x86_32 (the algorithm's published test vectors)."""
        vectors = {("", 0): 0, ("", 1): 0x514E28B7, ("hello", 0): 0x248BFA47}
        for (text, seed), expected in vectors.items():
            assert hashing.python_murmur3_32(text, seed) == expected
            assert hashing.murmur3_32(text, seed) == expected
