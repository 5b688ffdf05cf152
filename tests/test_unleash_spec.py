"""The public Unleash client specification (tests/data/unleash-client-spec), every case of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from illunare import FeatureFlags

SPEC = Path(__file__).resolve().parent / "data" / "unleash-client-spec"


def _cases() -> list[Any]:
    cases = []
    for file in json.loads((SPEC / "index.json").read_text()):
        document = json.loads((SPEC / file).read_text())
        cases.extend(
            pytest.param(document["state"], kind, case, id=f"{file[:2]}:{case['description']}")
            for kind in ("tests", "variantTests")
            for case in document.get(kind, [])
        )
    return cases


CASES = _cases()


def _variant(flags: FeatureFlags, name: str, context: dict[str, Any]) -> dict[str, Any]:
    evaluation = flags.evaluate(name, context)
    variant = evaluation.variant
    result: dict[str, Any] = {
        "name": variant.name if variant else "disabled",
        "enabled": variant.enabled if variant else False,
        "feature_enabled": evaluation.enabled,
    }
    if variant is not None and variant.payload is not None:
        result["payload"] = variant.payload
    return result


def test_the_whole_specification_is_here() -> None:
    """All 279 cases are collected (227 is-enabled, 52 variant)."""
    assert len(CASES) == 279


@pytest.mark.parametrize(("state", "kind", "case"), CASES)
def test_case(state: Any, kind: str, case: dict[str, Any]) -> None:
    """Each case gives the specification's expected answer."""
    flags = FeatureFlags()
    flags.load_unleash(state)
    if kind == "tests":
        assert flags.is_enabled(case["toggleName"], case["context"]) is case["expectedResult"]
        assert flags.evaluate(case["toggleName"], case["context"]).enabled is case["expectedResult"]
    else:
        assert _variant(flags, case["toggleName"], case["context"]) == case["expectedResult"]
