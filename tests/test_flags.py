"""FeatureFlags with illunare's own flag format: conditions, evaluation, updates, listeners."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest

from illunare import (
    FeatureFlags,
    Flag,
    FlagConfigError,
    FlagNotFoundError,
    InvalidArgumentError,
    MemoryBackend,
    Reason,
    signals,
)

PAYMENT = {
    "enabled": True,
    "conditions": [
        {"type": "user_segment", "value": "premium"},
        {"type": "region", "value": ["BR", "AR", "MX"]},
    ],
}


@pytest.fixture
def flags() -> FeatureFlags:
    return FeatureFlags()


def _one(flags: FeatureFlags, condition: dict[str, Any], context: dict[str, Any]) -> bool:
    flags.update("f", {"conditions": [condition]})
    return flags.is_enabled("f", context)


class TestUpdate:
    def test_update_returns_the_new_version(self, flags: FeatureFlags) -> None:
        """Each real change makes a new version; an identical config does not."""
        first = flags.update("new_payment_flow", PAYMENT)
        assert (first.name, first.version, first.enabled) == ("new_payment_flow", 1, True)
        assert flags.update("new_payment_flow", PAYMENT) == first
        second = flags.update("new_payment_flow", {**PAYMENT, "enabled": False})
        assert second.version == 2
        assert flags.flags() == {"new_payment_flow": second}

    def test_the_stored_config_is_a_copy(self, flags: FeatureFlags) -> None:
        """Mutating the dict given to update() changes nothing."""
        config: dict[str, Any] = {"enabled": True, "conditions": []}
        flag = flags.update("f", config)
        config["enabled"] = False
        assert flags.is_enabled("f")
        assert flag.config["enabled"] is True
        with pytest.raises(TypeError):
            flag.config["enabled"] = False  # type: ignore[index]

    def test_every_problem_is_listed_and_nothing_changes(self, flags: FeatureFlags) -> None:
        """An invalid config lists each problem with its path; the old flag serves."""
        flags.update("f", PAYMENT)
        bad = {
            "enabled": "yes",
            "colour": 1,
            "conditions": [
                {"type": "percentage", "value": 130},
                {"type": "region"},
                {"type": "attribute", "attribute": "age", "operator": "older", "value": 1},
                {"type": "teleport"},
            ],
            "variants": [{"name": "a", "weight": -1}],
        }
        with pytest.raises(FlagConfigError) as caught:
            flags.update("f", bad)
        paths = {path for path, _ in caught.value.problems}
        assert paths == {
            "enabled",
            "colour",
            "conditions[0].value",
            "conditions[1].value",
            "conditions[2].operator",
            "conditions[3].type",
            "variants[0].weight",
        }
        assert isinstance(caught.value, ValueError)
        assert flags.flags()["f"].version == 1
        assert flags.is_enabled("f", {"user_segment": "premium", "region": "BR"})

    @pytest.mark.parametrize(
        "config",
        [
            None,
            [],
            {"conditions": "region"},
            {"conditions": [{"type": "user_id", "value": 5}]},
            {
                "conditions": [
                    {"type": "attribute", "attribute": "v", "operator": "num_gt", "value": "x"}
                ]
            },
            {
                "conditions": [
                    {"type": "attribute", "attribute": "v", "operator": "semver_gt", "value": "v1"}
                ]
            },
            {
                "conditions": [
                    {"type": "attribute", "attribute": "v", "operator": "regex", "value": "(a"}
                ]
            },
            {
                "conditions": [
                    {"type": "attribute", "attribute": "ip", "operator": "in_cidr", "value": "x"}
                ]
            },
            {
                "conditions": [
                    {"type": "attribute", "attribute": "v", "value": "a", "values": ["b"]}
                ]
            },
            {"conditions": [{"type": "schedule"}]},
            {"conditions": [{"type": "schedule", "start": "2030-01-01", "end": "2020-01-01"}]},
            {"conditions": [{"type": "flag", "flag": "f"}]},
            {"conditions": [{"type": "any", "conditions": [{"type": "region", "value": 1}]}]},
            {"conditions": [{"type": "not"}]},
            {"variants": [{"name": "a", "weight": 0}]},
            {"variants": [{"name": "a"}, {"name": "a"}]},
            {"stickiness": 3},
        ],
    )
    def test_invalid_configs(self, flags: FeatureFlags, config: Any) -> None:
        """Each kind of bad config is refused with FlagConfigError."""
        with pytest.raises(FlagConfigError) as caught:
            flags.update("f", config)
        assert caught.value.problems
        assert "f" not in flags.flags()

    def test_bad_names(self, flags: FeatureFlags) -> None:
        """A flag name must be a non-empty str."""
        for name in ("", None, 3):
            with pytest.raises(FlagConfigError):
                flags.update(name, PAYMENT)  # type: ignore[arg-type]

    def test_delete(self, flags: FeatureFlags) -> None:
        """A deleted flag evaluates as unknown; deleting an unknown flag is a LookupError."""
        flags.update("f", PAYMENT)
        flags.delete("f")
        assert "f" not in flags.flags()
        assert not flags.is_enabled("f", {"user_segment": "premium", "region": "BR"})
        with pytest.raises(FlagNotFoundError):
            flags.delete("f")
        with pytest.raises(LookupError):
            flags.delete("never")

    def test_versions_are_never_reused(self, flags: FeatureFlags) -> None:
        """A flag deleted and created again continues its version numbers."""
        flags.update("f", PAYMENT)
        flags.delete("f")
        assert flags.update("f", PAYMENT).version == 2


class TestConditions:
    def test_segment_and_region(self, flags: FeatureFlags) -> None:
        """The seed's flag: premium users in BR, AR or MX."""
        flags.update("new_payment_flow", PAYMENT)
        on = flags.is_enabled
        assert on("new_payment_flow", {"user_segment": "premium", "region": "AR"})
        assert not on("new_payment_flow", {"user_segment": "premium", "region": "US"})
        assert not on("new_payment_flow", {"user_segment": "free", "region": "BR"})
        assert not on("new_payment_flow", {})
        assert not on("new_payment_flow")

    def test_disabled_flag_is_off_for_everyone(self, flags: FeatureFlags) -> None:
        """enabled: false wins over every condition."""
        flags.update("f", {"enabled": False})
        assert not flags.is_enabled("f", {"user_segment": "premium"})

    def test_no_conditions_means_on(self, flags: FeatureFlags) -> None:
        """A flag without conditions is on for everyone."""
        flags.update("f", {"enabled": True})
        assert flags.is_enabled("f")

    def test_user_id_and_negate(self, flags: FeatureFlags) -> None:
        """user_id reads the user_id key; negate inverts a condition."""
        assert _one(flags, {"type": "user_id", "value": ["7", "8"]}, {"user_id": "8"})
        assert _one(flags, {"type": "user_id", "value": "7"}, {"user_id": 7})
        assert not _one(flags, {"type": "user_id", "value": "7", "negate": True}, {"user_id": "7"})

    @pytest.mark.parametrize(
        ("operator", "value", "context_value", "expected"),
        [
            ("in", ["a", "b"], "b", True),
            ("not_in", ["a", "b"], "c", True),
            ("not_in", ["a"], None, True),
            ("starts_with", "pre", "prefix", True),
            ("ends_with", ["x", "fix"], "prefix", True),
            ("contains", "ef", "prefix", True),
            ("contains", "zz", "prefix", False),
            ("num_eq", 12, "12.0", True),
            ("num_gt", "10", 11, True),
            ("num_gte", 10, 10, True),
            ("num_lt", 10, 10, False),
            ("num_lte", 10, "9.5", True),
            ("date_after", "2024-01-01T00:00:00Z", "2024-06-01T00:00:00+02:00", True),
            ("date_before", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", False),
            ("semver_gt", "1.2.3", "1.10.0", True),
            ("semver_lt", "2.0.0", "2.0.0-rc.1", True),
            ("semver_eq", "1.0.0", "1.0", False),
            ("regex", "^[a-z]+@corp\\.com$", "ann@corp.com", True),
            ("in_cidr", ["10.0.0.0/8"], "10.1.2.3", True),
            ("in_cidr", ["10.0.0.0/8"], "11.1.2.3", False),
        ],
    )
    def test_attribute_operators(
        self, flags: FeatureFlags, operator: str, value: Any, context_value: Any, expected: bool
    ) -> None:
        """Each operator compares the named context attribute."""
        condition = {"type": "attribute", "attribute": "x", "operator": operator, "value": value}
        assert _one(flags, condition, {"x": context_value}) is expected

    def test_case_insensitive_and_nested_attributes(self, flags: FeatureFlags) -> None:
        """case_insensitive folds case; a list attribute digs into nested mappings."""
        condition = {
            "type": "attribute",
            "attribute": ["account", "plan"],
            "operator": "in",
            "value": "Gold",
            "case_insensitive": True,
        }
        assert _one(flags, condition, {"account": {"plan": "GOLD"}})
        assert not _one(flags, condition, {"account": "GOLD"})

    def test_percentage_is_sticky_and_stable(self, flags: FeatureFlags) -> None:
        """The same user always gets the same answer; 0 and 100 are none and all."""
        flags.update("f", {"conditions": [{"type": "percentage", "value": 50}]})
        answers = {uid: flags.is_enabled("f", {"user_id": uid}) for uid in map(str, range(200))}
        assert answers == {uid: flags.is_enabled("f", {"user_id": uid}) for uid in answers}
        assert 60 < sum(answers.values()) < 140
        assert not flags.is_enabled("f", {})
        assert not _one(flags, {"type": "percentage", "value": 0}, {"user_id": "1"})
        assert _one(flags, {"type": "percentage", "value": 100}, {"user_id": "1"})

    def test_percentage_on_another_attribute(self, flags: FeatureFlags) -> None:
        """attribute names the stickiness key."""
        condition = {"type": "percentage", "value": 100, "attribute": "team"}
        assert _one(flags, condition, {"team": "red"})
        assert not _one(flags, condition, {"user_id": "1"})

    def test_schedule(self, flags: FeatureFlags) -> None:
        """A schedule holds between its start and end."""
        now = datetime.datetime.now(datetime.timezone.utc)
        past, future = (
            (now - datetime.timedelta(days=1)).isoformat(),
            (now + datetime.timedelta(days=1)).isoformat(),
        )
        assert _one(flags, {"type": "schedule", "start": past, "end": future}, {})
        assert not _one(flags, {"type": "schedule", "start": future}, {})
        assert not _one(flags, {"type": "schedule", "end": past}, {})

    def test_groups(self, flags: FeatureFlags) -> None:
        """any, all and not combine conditions."""
        segment = {"type": "user_segment", "value": "premium"}
        region = {"type": "region", "value": "BR"}
        anyone = {"type": "any", "conditions": [segment, region]}
        assert _one(flags, anyone, {"region": "BR"})
        assert not _one(flags, {"type": "all", "conditions": [segment, region]}, {"region": "BR"})
        assert _one(flags, {"type": "not", "condition": anyone}, {"region": "US"})
        assert not _one(flags, {"type": "any", "conditions": []}, {})

    def test_prerequisite_flags(self, flags: FeatureFlags) -> None:
        """A flag condition follows another flag's state and variant, and survives cycles."""
        flags.update(
            "parent",
            {"conditions": [{"type": "region", "value": "BR"}], "variants": [{"name": "blue"}]},
        )
        flags.update("child", {"conditions": [{"type": "flag", "flag": "parent"}]})
        flags.update(
            "not_parent", {"conditions": [{"type": "flag", "flag": "parent", "enabled": False}]}
        )
        flags.update(
            "blue_child", {"conditions": [{"type": "flag", "flag": "parent", "variants": ["blue"]}]}
        )
        flags.update("orphan", {"conditions": [{"type": "flag", "flag": "missing"}]})
        br, us = {"region": "BR"}, {"region": "US"}
        assert flags.is_enabled("child", br)
        assert not flags.is_enabled("child", us)
        assert flags.is_enabled("not_parent", us)
        assert not flags.is_enabled("not_parent", br)
        assert flags.is_enabled("blue_child", br)
        assert not flags.is_enabled("orphan", br)
        flags.update("a", {"conditions": [{"type": "flag", "flag": "b"}]})
        flags.update("b", {"conditions": [{"type": "flag", "flag": "a"}]})
        assert not flags.is_enabled("a")


class TestEvaluate:
    def test_reasons(self, flags: FeatureFlags) -> None:
        """evaluate() says why: disabled, which condition failed, match, split, default, unknown."""
        flags.update("f", PAYMENT)
        failed = flags.evaluate("f", {"user_segment": "premium", "region": "US"})
        assert (failed.enabled, failed.reason, failed.failed_condition) == (
            False,
            Reason.CONDITION_FAILED,
            "conditions[1]",
        )
        matched = flags.evaluate("f", {"user_segment": "premium", "region": "BR"})
        assert (matched.enabled, matched.reason, matched.flag_version) == (
            True,
            Reason.TARGETING_MATCH,
            1,
        )
        flags.update("off", {"enabled": False})
        assert flags.evaluate("off").reason == Reason.DISABLED
        flags.update("all", {})
        assert flags.evaluate("all").reason == Reason.DEFAULT
        flags.update("half", {"conditions": [{"type": "percentage", "value": 100}]})
        assert flags.evaluate("half", {"user_id": "1"}).reason == Reason.SPLIT
        unknown = flags.evaluate("nope")
        assert (unknown.enabled, unknown.reason, unknown.variant) == (
            False,
            Reason.FLAG_NOT_FOUND,
            None,
        )
        assert str(Reason.SPLIT) == "split"

    def test_variants_are_sticky_and_weighted(self, flags: FeatureFlags) -> None:
        """Variants split by weight, the same user always gets the same one, payloads come along."""
        flags.update(
            "checkout",
            {
                "variants": [
                    {"name": "a", "weight": 1, "payload": {"color": "red"}},
                    {"name": "b", "weight": 3},
                ]
            },
        )
        seen = {}
        for uid in map(str, range(400)):
            variant = flags.evaluate("checkout", {"user_id": uid}).variant
            assert variant is not None
            assert variant.enabled
            assert flags.evaluate("checkout", {"user_id": uid}).variant == variant
            seen[uid] = variant.name
        share = sum(name == "a" for name in seen.values()) / len(seen)
        assert 0.15 < share < 0.35
        first_a = next(uid for uid, name in seen.items() if name == "a")
        assert flags.evaluate("checkout", {"user_id": first_a}).variant.payload == {"color": "red"}  # type: ignore[union-attr]

    def test_no_variant_when_none_configured_or_off(self, flags: FeatureFlags) -> None:
        """variant is None for flags without variants and for contexts the flag is off for."""
        flags.update("f", PAYMENT)
        assert flags.evaluate("f", {"user_segment": "premium", "region": "BR"}).variant is None
        flags.update("g", {"enabled": False, "variants": [{"name": "a"}]})
        assert flags.evaluate("g").variant is None

    def test_bad_contexts_never_raise(self, flags: FeatureFlags) -> None:
        """Missing, ill-typed or odd context values make conditions false, never errors."""
        flags.update("f", PAYMENT)
        flags.update(
            "n",
            {
                "conditions": [
                    {"type": "attribute", "attribute": "age", "operator": "gt", "value": 18}
                ]
            },
        )
        for context in (
            [],
            "ctx",
            5,
            {"region": ["BR"]},
            {"region": {}},
            {"age": object()},
            {"age": float("nan")},
        ):
            assert flags.is_enabled("f", context) is False  # type: ignore[arg-type]
            assert flags.is_enabled("n", context) is False  # type: ignore[arg-type]
            assert flags.evaluate("n", context).enabled is False  # type: ignore[arg-type]


class TestListeners:
    def test_on_change_for_one_flag_and_for_all(self, flags: FeatureFlags) -> None:
        """Callbacks get (name, old, new); None stands for created and deleted."""
        one: list[tuple[str, Flag | None, Flag | None]] = []
        every: list[str] = []
        flags.on_change("f")(lambda *args: one.append(args))

        @flags.on_change()
        def any_flag(name: str, old: Flag | None, new: Flag | None) -> None:
            every.append(name)

        first = flags.update("f", PAYMENT)
        flags.update("g", {})
        second = flags.update("f", {**PAYMENT, "enabled": False})
        flags.delete("f")
        assert one == [("f", None, first), ("f", first, second), ("f", second, None)]
        assert every == ["f", "g", "f", "f"]

    def test_bare_decorator_listens_to_every_flag(self, flags: FeatureFlags) -> None:
        """@flags.on_change without parentheses registers for every flag."""
        names: list[str] = []

        @flags.on_change
        def record(name: str, old: object, new: object) -> None:
            names.append(name)

        flags.update("a", {})
        flags.update("b", {})
        assert names == ["a", "b"]
        assert callable(record)

    def test_flag_updated_signal_and_failing_listeners(self, flags: FeatureFlags) -> None:
        """flag_updated is sent; a listener that raises does not stop the others or the update."""
        received = []

        @flags.on_change("f")
        def broken(name: str, old: object, new: object) -> None:
            raise RuntimeError("listener bug")

        with signals.flag_updated.connected_to(
            lambda sender, **kw: received.append((sender, kw["name"]))
        ):
            flags.update("f", PAYMENT)
        assert received == [(flags, "f")]
        assert flags.is_enabled("f", {"user_segment": "premium", "region": "MX"})

    def test_listeners_run_without_the_lock(self, flags: FeatureFlags) -> None:
        """load_unleash and override call listeners after letting go of the flags' lock."""
        finished: list[tuple[str, bool]] = []

        @flags.on_change()
        def wait_for_another_thread(name: str, old: object, new: object) -> None:
            if name.startswith("side-"):
                return
            # Before the fix this thread waited for a lock the caller held.
            worker = threading.Thread(target=flags.update, args=(f"side-{name}", {}))
            worker.start()
            worker.join(30)
            finished.append((name, not worker.is_alive()))

        feature = {"name": "u", "enabled": True, "strategies": [{"name": "default"}]}
        flags.load_unleash({"features": [feature]})
        flags.load_unleash({"features": []})  # removes "u"
        flags.override("o", {})()
        assert finished == [("u", True), ("u", True), ("o", True), ("o", True)]

    def test_bad_listener_arguments(self, flags: FeatureFlags) -> None:
        """on_change takes a name or None, and a callable."""
        with pytest.raises(InvalidArgumentError):
            flags.on_change(3)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            flags.on_change("f")(5)  # type: ignore[arg-type]


class TestSharing:
    def test_a_shared_memory_backend_propagates_changes(self) -> None:
        """Two FeatureFlags on one MemoryBackend see each other's updates and deletes."""
        backend = MemoryBackend()
        first, second = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        first.update("f", PAYMENT)
        assert second.is_enabled("f", {"user_segment": "premium", "region": "BR"})
        second.delete("f")
        assert "f" not in first.flags()
        third = FeatureFlags(backend=backend)
        first.update("g", {})
        assert third.flags().keys() == {"g"}


class TestThreads:
    def test_readers_never_see_a_torn_flag(self, flags: FeatureFlags) -> None:
        """8 threads evaluate while another flips between two configs: no error, no mixed rule."""
        a = {
            "conditions": [
                {"type": "region", "value": "BR"},
                {"type": "user_segment", "value": "a"},
            ]
        }
        b = {
            "conditions": [
                {"type": "region", "value": "US"},
                {"type": "user_segment", "value": "b"},
            ]
        }
        flags.update("f", a)
        mixed = {"region": "BR", "user_segment": "b"}
        errors: list[BaseException] = []
        torn = []
        done = threading.Event()

        def reader() -> None:
            try:
                while not done.is_set():
                    if flags.is_enabled("f", mixed) or flags.evaluate("f", mixed).enabled:
                        torn.append(True)
                    assert flags.is_enabled("f", {"region": "BR", "user_segment": "a"}) in (
                        True,
                        False,
                    )
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for thread in threads:
            thread.start()
        for index in range(500):
            flags.update("f", b if index % 2 else a)
        done.set()
        for thread in threads:
            thread.join()
        assert errors == []
        assert torn == []


class TestMetadata:
    def test_metadata_keys_are_kept(self, flags: FeatureFlags) -> None:
        """description, tags, metadata and a matching name are accepted and kept."""
        config = {"description": "d", "tags": ["t"], "metadata": {"owner": "payments"}, "name": "f"}
        assert flags.update("f", config).config["metadata"] == {"owner": "payments"}

    def test_a_mismatched_name_is_refused(self, flags: FeatureFlags) -> None:
        """A name key that differs from the flag's name is a problem."""
        with pytest.raises(FlagConfigError) as caught:
            flags.update("f", {"name": "g"})
        assert caught.value.problems == (("name", "does not match the flag's name 'f'"),)


class TestClose:
    def test_a_closed_feature_flags_stops_receiving_changes(self) -> None:
        """close() detaches from the backend: later changes made elsewhere do not arrive."""
        backend = MemoryBackend()
        writer, reader = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        reader.close()
        writer.update("f", {})
        assert "f" not in reader.flags()
        assert "f" in FeatureFlags(backend=backend).flags()
