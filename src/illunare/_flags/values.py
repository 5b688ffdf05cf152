"""What feature flag evaluation hands back: flags, evaluations and variants."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Evaluation", "Flag", "Reason", "Variant"]


class Reason(str, enum.Enum):
    """Why an evaluation came out as it did (OpenFeature's vocabulary, plus two)."""

    #: the flag is switched off
    DISABLED = "disabled"
    #: a condition (named by ``Evaluation.failed_condition``) does not hold
    CONDITION_FAILED = "condition_failed"
    #: the context matched the flag's targeting conditions
    TARGETING_MATCH = "targeting_match"
    #: a percentage rollout put the context in
    SPLIT = "split"
    #: the flag is on for everyone
    DEFAULT = "default"
    #: no flag of that name
    FLAG_NOT_FOUND = "flag_not_found"
    #: evaluation failed (``Evaluation.error`` says why)
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Variant:
    """The variant a context gets: ``name``, its ``payload``, and whether it is ``enabled``."""

    name: str
    payload: Any = None
    enabled: bool = True


#: What Unleash hands out when no variant applies.
DISABLED_VARIANT = Variant("disabled", None, False)


@attrs.frozen
class Flag:
    """One version of a flag: its name, its config as given, and its version number."""

    name: str
    config: Mapping[str, Any]
    version: int
    enabled: bool
    #: "illunare" for the native format, "unleash" for flags from ``load_unleash``
    source: str = "illunare"


@attrs.frozen
class Evaluation:
    """The full answer for one flag and one context."""

    flag: str
    enabled: bool
    reason: Reason
    flag_version: int
    variant: Variant | None = None
    #: the configuration path of the condition that did not hold
    failed_condition: str | None = None
    error: str | None = None
