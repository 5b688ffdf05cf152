"""illunare.openfeature: the provider through the official openfeature-sdk client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from illunare import FeatureFlags, InvalidArgumentError
from illunare.openfeature import IllunareProvider


@pytest.fixture
def flags() -> Iterator[FeatureFlags]:
    flags = FeatureFlags()
    flags.update(
        "new_payment_flow",
        {
            "conditions": [
                {"type": "user_segment", "value": "premium"},
                {"type": "region", "value": "BR"},
            ]
        },
    )
    flags.update(
        "theme",
        {"variants": [{"name": "dark", "payload": "dark-mode"}]},
    )
    flags.update("limits", {"variants": [{"name": "big", "payload": {"max": 10}}]})
    flags.update("retries", {"variants": [{"name": "three", "payload": 3}]})
    api.set_provider(IllunareProvider(flags))
    yield flags
    api.clear_providers()


PREMIUM_BR = EvaluationContext("user-1", {"user_segment": "premium", "region": "BR"})


class TestProvider:
    def test_boolean_resolution_with_reasons(self, flags: FeatureFlags) -> None:
        """Booleans are the flag's state, with OpenFeature reasons."""
        client = api.get_client()
        details = client.get_boolean_details("new_payment_flow", False, PREMIUM_BR)
        assert (details.value, details.reason) == (True, Reason.TARGETING_MATCH)
        details = client.get_boolean_details("new_payment_flow", True, EvaluationContext("u", {}))
        assert (details.value, details.reason) == (False, Reason.DEFAULT)
        assert details.flag_metadata == {"flag_version": 1}

    def test_typed_values_come_from_variant_payloads(self, flags: FeatureFlags) -> None:
        """Strings, integers, floats and objects resolve from the variant's payload."""
        client = api.get_client()
        assert client.get_string_value("theme", "light", PREMIUM_BR) == "dark-mode"
        assert client.get_integer_value("retries", 0, PREMIUM_BR) == 3
        assert client.get_float_value("retries", 0.5, PREMIUM_BR) == 3.0
        assert client.get_object_value("limits", {}, PREMIUM_BR) == {"max": 10}
        assert client.get_string_details("theme", "light", PREMIUM_BR).variant == "dark"

    def test_errors_map_to_error_codes(self, flags: FeatureFlags) -> None:
        """Unknown flags and wrong types give the default with the matching error code."""
        client = api.get_client()
        missing = client.get_boolean_details("nope", True)
        assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        mismatch = client.get_integer_details("theme", 7, PREMIUM_BR)
        assert (mismatch.value, mismatch.error_code) == (7, ErrorCode.TYPE_MISMATCH)

    def test_unleash_payloads_are_decoded(self, flags: FeatureFlags) -> None:
        """An Unleash variant payload {type, value} resolves to its typed value."""
        flags.load_unleash(
            {
                "features": [
                    {
                        "name": "price",
                        "enabled": True,
                        "strategies": [{"name": "default"}],
                        "variants": [
                            {
                                "name": "a",
                                "weight": 1,
                                "payload": {"type": "number", "value": "9.5"},
                            }
                        ],
                    }
                ]
            }
        )
        client = api.get_client()
        assert client.get_float_value("price", 0.0, EvaluationContext("user-1")) == 9.5

    def test_changes_emit_configuration_changed(self, flags: FeatureFlags) -> None:
        """Each flag change is PROVIDER_CONFIGURATION_CHANGED with the flag's key."""
        seen: list[EventDetails] = []
        api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, seen.append)
        try:
            flags.update("theme", {"enabled": False})
        finally:
            api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, seen.append)
        assert [event.flags_changed for event in seen] == [["theme"]]

    def test_bad_input(self) -> None:
        """The provider needs a FeatureFlags."""
        with pytest.raises(InvalidArgumentError):
            IllunareProvider("flags")  # type: ignore[arg-type]


class TestExtras:
    def test_missing_extras_say_what_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without openfeature-sdk or redis, the integrations name their extra."""
        import importlib
        import sys

        from illunare import MissingExtraError

        monkeypatch.setitem(sys.modules, "openfeature.provider", None)
        monkeypatch.delitem(sys.modules, "illunare.openfeature", raising=False)
        with pytest.raises(MissingExtraError, match=r"illunare\[openfeature\]"):
            importlib.import_module("illunare.openfeature")
        monkeypatch.undo()
        from illunare import RedisBackend

        monkeypatch.setitem(sys.modules, "redis", None)
        with pytest.raises(MissingExtraError, match=r"illunare\[redis\]"):
            RedisBackend("redis://127.0.0.1:1/0")
