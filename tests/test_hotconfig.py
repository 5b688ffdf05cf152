"""HotConfig: whole versions, validated merges, rollback, the config_updated signal, threads."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from illunare import ConfigError, HotConfig, IllunareError, InvalidArgumentError, signals

from .strategies import CONFIG_UPDATES


def refuse_negative(values: Mapping[str, Any]) -> None:
    """The tests' validator: no value may be -1."""
    for key, value in values.items():
        if value == -1:
            raise ValueError(f"{key} must not be -1")


@attrs.define
class Updates:
    """What config_updated receivers were sent, in order."""

    sent: list[dict[str, Any]] = attrs.Factory(list)

    def receive(self, sender: object, **kwargs: Any) -> None:
        self.sent.append({"sender": sender, **kwargs})


@pytest.fixture
def updates() -> Iterator[Updates]:
    """A receiver connected to config_updated for the test."""
    received = Updates()
    with signals.config_updated.connected_to(received.receive):
        yield received


class TestReading:
    def test_initial_values_are_version_1(self) -> None:
        """A new HotConfig serves its initial mapping as version 1."""
        config = HotConfig({"pool": 5, "ttl": 60})
        assert (config.version, config["pool"], config.get("ttl")) == (1, 5, 60)
        assert "pool" in config
        assert "missing" not in config

    def test_initial_may_be_pairs_or_nothing(self) -> None:
        """initial takes what dict() takes; by default the config is empty."""
        assert dict(HotConfig([("a", 1)]).snapshot()) == {"a": 1}
        assert dict(HotConfig().snapshot()) == {}

    def test_missing_keys(self) -> None:
        """get() gives the default for a missing key; [] raises KeyError."""
        config = HotConfig({"a": 1})
        assert (config.get("b"), config.get("b", 7), config.get("b", default=8)) == (None, 7, 8)
        with pytest.raises(KeyError):
            config["b"]

    def test_snapshot_is_read_only_and_never_changes(self) -> None:
        """snapshot() is an immutable view of one version, unchanged by later updates."""
        config = HotConfig({"a": 1})
        snapshot = config.snapshot()
        with pytest.raises(TypeError):
            snapshot["a"] = 2  # type: ignore[index]
        config.update({"a": 2, "b": 3})
        assert (dict(snapshot), dict(config.snapshot())) == ({"a": 1}, {"a": 2, "b": 3})

    def test_the_live_config_is_not_iterable(self) -> None:
        """Iterating a HotConfig is refused (it could mix versions); snapshot() iterates."""
        with pytest.raises(TypeError, match="not iterable"):
            list(HotConfig({"a": 1}))  # type: ignore[call-overload]

    def test_values_given_are_copied_at_update(self) -> None:
        """Changing the dict given to the constructor or to update() changes no version."""
        initial = {"a": 1}
        config = HotConfig(initial)
        given = {"b": 2}
        config.update(given)
        initial["a"] = 99
        given["b"] = 99
        assert dict(config.snapshot()) == {"a": 1, "b": 2}
        assert "version=2" in repr(config)


class TestConstruction:
    @pytest.mark.parametrize("keep", [0, -1, 2.0, True, "3", None])
    def test_bad_keep_is_refused(self, keep: object) -> None:
        """keep must be an int >= 1."""
        with pytest.raises(InvalidArgumentError, match="keep"):
            HotConfig(keep=keep)  # type: ignore[arg-type]

    @pytest.mark.parametrize("initial", [42, "ab", [1, 2], None])
    def test_bad_initial_is_refused(self, initial: object) -> None:
        """initial must be a mapping or pairs."""
        with pytest.raises(InvalidArgumentError, match="initial"):
            HotConfig(initial)  # type: ignore[arg-type]

    def test_bad_validator_is_refused(self) -> None:
        """A validator that is not callable raises InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="validator"):
            HotConfig(validator="strict")  # type: ignore[arg-type]

    def test_validator_refusing_the_initial_values(self) -> None:
        """The validator checks initial too; refused, the constructor raises ConfigError."""
        with pytest.raises(ConfigError, match="must not be -1") as raised:
            HotConfig({"a": -1}, validator=refuse_negative)
        assert isinstance(raised.value.__cause__, ValueError)
        assert isinstance(raised.value, (IllunareError, ValueError))


class TestUpdate:
    def test_update_merges_into_a_new_version(self, updates: Updates) -> None:
        """update() keeps the keys it does not name and returns the new version number."""
        config = HotConfig({"pool": 5, "ttl": 60})
        assert config.update({"pool": 20, "retries": 3}) == 2
        assert (config.version, dict(config.snapshot())) == (
            2,
            {"pool": 20, "ttl": 60, "retries": 3},
        )
        assert updates.sent == [
            {
                "sender": config,
                "version": 2,
                "previous": 1,
                "values": {"pool": 20, "ttl": 60, "retries": 3},
                "changed": frozenset({"pool", "retries"}),
                "rollback": False,
            }
        ]

    def test_validator_sees_the_merged_mapping_read_only(self) -> None:
        """The validator is called with a read-only view of the whole merged mapping."""
        seen: list[Mapping[str, Any]] = []

        def validator(values: Mapping[str, Any]) -> None:
            seen.append(values)
            if len(seen) == 2:
                values["sneaky"] = 1  # type: ignore[index]

        config = HotConfig({"a": 1}, validator=validator)
        with pytest.raises(ConfigError, match="does not support item assignment"):
            config.update({"b": 2})
        assert [dict(values) for values in seen] == [{"a": 1}, {"a": 1, "b": 2}]
        assert dict(config.snapshot()) == {"a": 1}

    def test_refused_update_changes_nothing(self, updates: Updates) -> None:
        """A refused update raises ConfigError (cause chained); version, values, history stay."""
        config = HotConfig({"a": 1}, validator=refuse_negative)
        with pytest.raises(ConfigError, match="a must not be -1") as raised:
            config.update({"a": -1, "b": 2})
        assert isinstance(raised.value.__cause__, ValueError)
        assert (config.version, dict(config.snapshot()), updates.sent) == (1, {"a": 1}, [])
        assert config.update({"a": 2}) == 2

    def test_an_update_that_changes_nothing_makes_no_version(self, updates: Updates) -> None:
        """Values equal to the current ones: same version, no validator call, no signal."""
        calls: list[object] = []
        config = HotConfig({"a": 1, "b": "x"}, validator=calls.append)
        assert config.update({"a": 1}) == 1
        assert config.update({}) == 1
        assert (config.version, len(calls), updates.sent) == (1, 1, [])

    @pytest.mark.parametrize("values", [[("a", 1)], "a=1", None, 3])
    def test_update_needs_a_mapping(self, values: object) -> None:
        """update() of anything but a mapping raises InvalidArgumentError."""
        config = HotConfig({"a": 1})
        with pytest.raises(InvalidArgumentError, match="mapping"):
            config.update(values)  # type: ignore[arg-type]
        assert config.version == 1

    def test_a_failing_receiver_is_logged_and_the_update_stands(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A config_updated receiver that raises is logged; the update is made and returned."""

        def broken(sender: object, **kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        config = HotConfig({"a": 1})
        with (
            caplog.at_level(logging.ERROR, logger="illunare"),
            signals.config_updated.connected_to(broken),
        ):
            assert config.update({"a": 2}) == 2
        assert config["a"] == 2
        assert [record.args[0] for record in caplog.records] == ["config_updated"]  # type: ignore[index]

    def test_it_can_be_weakly_referenced(self) -> None:
        """A HotConfig can be weakly referenced, so blinker drops what was connected for it."""
        config = HotConfig({"a": 1})
        reference = weakref.ref(config)
        del config
        gc.collect()
        assert reference() is None

    def test_a_receiver_sees_the_new_version(self) -> None:
        """Receivers run once readers see the new version."""
        config = HotConfig({"a": 1})
        seen: list[tuple[int, int]] = []

        def receiver(sender: HotConfig, **kwargs: Any) -> None:
            seen.append((sender.version, sender["a"]))

        with signals.config_updated.connected_to(receiver):
            config.update({"a": 2})
        assert seen == [(2, 2)]


class TestRollback:
    def test_rollback_returns_to_the_parent(self, updates: Updates) -> None:
        """rollback() serves the parent again and says so with rollback=True."""
        config = HotConfig({"a": 1})
        config.update({"a": 2, "b": 1})
        assert config.rollback() == 1
        assert (config.version, dict(config.snapshot())) == (1, {"a": 1})
        assert updates.sent[-1] == {
            "sender": config,
            "version": 1,
            "previous": 2,
            "values": {"a": 1},
            "changed": frozenset({"a", "b"}),
            "rollback": True,
        }

    def test_rollback_walks_back_through_parents(self) -> None:
        """Each rollback() goes one parent further, down to version 1."""
        config = HotConfig({"a": 0})
        for value in (1, 2, 3):
            config.update({"a": value})
        assert [config.rollback(), config.rollback(), config.rollback()] == [3, 2, 1]
        assert config["a"] == 0

    def test_version_1_has_no_parent(self, updates: Updates) -> None:
        """rollback() of version 1 raises ConfigError and changes nothing."""
        config = HotConfig({"a": 1})
        with pytest.raises(ConfigError, match="no parent"):
            config.rollback()
        assert (config.version, updates.sent) == (1, [])

    def test_rollback_to_any_kept_version(self) -> None:
        """rollback(to=n) serves version n, back or forth."""
        config = HotConfig({"a": 0})
        for value in (1, 2, 3):
            config.update({"a": value})
        assert config.rollback(to=2) == 2
        assert config["a"] == 1
        assert config.rollback(to=4) == 4
        assert config["a"] == 3

    def test_rollback_to_the_current_version_changes_nothing(self, updates: Updates) -> None:
        """rollback(to=current) returns it, sends nothing."""
        config = HotConfig({"a": 0})
        config.update({"a": 1})
        updates.sent.clear()
        assert config.rollback(to=2) == 2
        assert updates.sent == []

    def test_numbers_are_never_reused(self) -> None:
        """After a rollback an update gets a new number; its parent is the version rolled to."""
        config = HotConfig({"a": 0})
        config.update({"a": 1})
        config.rollback()
        assert config.update({"a": 5}) == 3
        assert config.rollback() == 1

    def test_evicted_and_unknown_versions(self) -> None:
        """rollback(to=n) of an evicted or never made version raises ConfigError saying which."""
        config = HotConfig({"a": 0}, keep=2)
        for value in (1, 2, 3, 4):
            config.update({"a": value})
        with pytest.raises(ConfigError, match="version 2 was evicted"):
            config.rollback(to=2)
        with pytest.raises(ConfigError, match="version 9 does not exist"):
            config.rollback(to=9)
        with pytest.raises(ConfigError, match="version 0 does not exist"):
            config.rollback(to=0)
        assert (config.version, config["a"]) == (5, 4)

    def test_the_parent_is_kept_whatever_keep_says(self) -> None:
        """keep=1 still keeps the current version's parent for rollback()."""
        config = HotConfig({"a": 0}, keep=1)
        for value in (1, 2, 3):
            config.update({"a": value})
        assert config.rollback() == 3
        with pytest.raises(ConfigError, match="evicted"):
            config.rollback()

    @pytest.mark.parametrize("to", ["2", 2.0, True])
    def test_bad_target_is_refused(self, to: object) -> None:
        """to must be an int or None."""
        config = HotConfig({"a": 0})
        config.update({"a": 1})
        with pytest.raises(InvalidArgumentError, match="to must be"):
            config.rollback(to=to)  # type: ignore[arg-type]
        assert config.version == 2


class TestThreads:
    @pytest.fixture(autouse=True)
    def _frequent_switches(self) -> Iterator[None]:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads take turns as often as they can
        try:
            yield
        finally:
            sys.setswitchinterval(interval)

    def test_concurrent_updates_and_readers(self, updates: Updates) -> None:
        """8 updating threads and a reader: nothing lost, versions distinct, readers see wholes."""
        writers, per_writer = 8, 50
        config = HotConfig({"left": 0, "right": 0})
        barrier = threading.Barrier(writers + 1)
        done = threading.Event()
        torn: list[Mapping[str, Any]] = []
        returned: list[int] = []

        def write(index: int) -> None:
            barrier.wait()
            for step in range(per_writer):
                value = index * 1000 + step
                returned.append(config.update({"left": value, "right": value, index: step}))

        def read() -> None:
            barrier.wait()
            while not done.is_set():
                snapshot = config.snapshot()
                if snapshot["left"] != snapshot["right"]:
                    torn.append(dict(snapshot))

        threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
        reader = threading.Thread(target=read)
        for thread in [*threads, reader]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        reader.join()
        total = writers * per_writer
        assert sorted(returned) == list(range(2, total + 2))
        assert torn == []
        assert {index: config[index] for index in range(writers)} == dict.fromkeys(
            range(writers), per_writer - 1
        )
        assert [sent["version"] for sent in updates.sent] == list(range(2, total + 2))
        assert [sent["previous"] for sent in updates.sent] == list(range(1, total + 1))


@attrs.define
class Model:
    """The versions a HotConfig should hold: values, parents, what is kept, and the current one."""

    keep: int
    values: dict[int, dict[str, int]] = attrs.Factory(lambda: {1: {"a": 0}})
    parents: dict[int, int | None] = attrs.Factory(lambda: {1: None})
    kept: list[int] = attrs.Factory(lambda: [1])
    made: int = 1
    current: int = 1

    def switch(self, number: int) -> None:
        """Serve ``number``; forget what is neither among the newest ``keep`` nor spared."""
        self.current = number
        spared = {number, self.parents[number]}
        surplus = max(len(self.kept) - self.keep, 0)
        self.kept = [n for i, n in enumerate(self.kept) if i >= surplus or n in spared]


class HotConfigMachine(RuleBasedStateMachine):
    """Random updates, refused updates and rollbacks against a model of the versions."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model(keep=3)
        self.config = HotConfig({"a": 0}, validator=refuse_negative, keep=3)

    @rule(values=CONFIG_UPDATES)
    def update(self, values: dict[str, int]) -> None:
        merged = {**self.model.values[self.model.current], **values}
        if -1 in merged.values():
            with pytest.raises(ConfigError):
                self.config.update(values)
        elif merged == self.model.values[self.model.current]:
            assert self.config.update(values) == self.model.current
        else:
            self.model.made += 1
            number = self.model.made
            self.model.values[number] = merged
            self.model.parents[number] = self.model.current
            self.model.kept.append(number)
            self.model.switch(number)
            assert self.config.update(values) == number

    @rule()
    def rollback(self) -> None:
        parent = self.model.parents[self.model.current]
        if parent is None or parent not in self.model.kept:
            with pytest.raises(ConfigError):
                self.config.rollback()
        else:
            self.model.switch(parent)
            assert self.config.rollback() == parent

    @precondition(lambda self: self.model.made > 1)
    @rule(data=st.data())
    def rollback_to(self, data: st.DataObject) -> None:
        number = data.draw(st.integers(0, self.model.made + 1))
        if number not in self.model.kept:
            with pytest.raises(ConfigError):
                self.config.rollback(to=number)
        else:
            if number != self.model.current:
                self.model.switch(number)
            assert self.config.rollback(to=number) == number

    @invariant()
    def serves_the_model_version(self) -> None:
        assert self.config.version == self.model.current
        assert dict(self.config.snapshot()) == self.model.values[self.model.current]
        assert self.config.get("a") == self.model.values[self.model.current]["a"]


TestHotConfigStateful = HotConfigMachine.TestCase
TestHotConfigStateful.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
