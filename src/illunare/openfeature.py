"""An OpenFeature provider backed by illunare's FeatureFlags (extra ``openfeature``).

::

    from openfeature import api
    from illunare import FeatureFlags
    from illunare.openfeature import IllunareProvider

    flags = FeatureFlags()
    api.set_provider(IllunareProvider(flags))
    client = api.get_client()
    context = EvaluationContext("user-1", {"region": "BR"})
    client.get_boolean_value("new_payment_flow", False, context)

Booleans resolve to whether the flag is on; strings, integers, floats and
objects resolve to the payload of the variant the context gets (an Unleash
payload ``{"type": ..., "value": ...}`` is decoded by its type). The
evaluation context's attributes are the illunare context, and its targeting
key is ``user_id`` (and Unleash's ``userId``). Every flag change is emitted as
``PROVIDER_CONFIGURATION_CHANGED`` with the flag's key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from illunare._flags.flags import FeatureFlags
from illunare._flags.values import Evaluation, Flag, Reason
from illunare.exceptions import InvalidArgumentError, MissingExtraError

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails
    from openfeature.flag_evaluation import Reason as OpenFeatureReason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("illunare.openfeature", "openfeature") from error

__all__ = ["IllunareProvider"]

T = TypeVar("T")

_REASONS = {
    Reason.DISABLED: OpenFeatureReason.DISABLED,
    Reason.CONDITION_FAILED: OpenFeatureReason.DEFAULT,
    Reason.TARGETING_MATCH: OpenFeatureReason.TARGETING_MATCH,
    Reason.SPLIT: OpenFeatureReason.SPLIT,
    Reason.DEFAULT: OpenFeatureReason.STATIC,
    Reason.FLAG_NOT_FOUND: OpenFeatureReason.ERROR,
    Reason.ERROR: OpenFeatureReason.ERROR,
}


def _context(evaluation_context: EvaluationContext | None) -> dict[str, Any]:
    if evaluation_context is None:
        return {}
    context = dict(evaluation_context.attributes)
    key = evaluation_context.targeting_key
    if key is not None:
        context.setdefault("user_id", key)
        context.setdefault("userId", key)
    return context


def _decode(payload: Any) -> Any:
    """A variant payload as a value: Unleash's ``{"type", "value"}`` form decoded."""
    if isinstance(payload, Mapping) and set(payload) == {"type", "value"}:
        kind, value = payload["type"], payload["value"]
        if kind == "number" and isinstance(value, str):
            number = float(value)
            return int(number) if number.is_integer() and "." not in value else number
        if kind == "json" and isinstance(value, str):
            return json.loads(value)
        if kind == "csv" and isinstance(value, str):
            return [item.strip() for item in value.split(",")]
        return value
    return payload


class IllunareProvider(AbstractProvider):
    """OpenFeature provider: typed resolution from a ``FeatureFlags``, change events included."""

    def __init__(self, flags: FeatureFlags) -> None:
        if not isinstance(flags, FeatureFlags):
            raise InvalidArgumentError(f"IllunareProvider needs a FeatureFlags, got {flags!r}")
        super().__init__()
        self.flags = flags
        flags.on_change()(self._changed)

    def get_metadata(self) -> Metadata:
        """The provider's name."""
        return Metadata(name="illunare")

    def _changed(self, name: str, old: Flag | None, new: Flag | None) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[name]))

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Whether the flag is on for the context."""
        evaluation = self.flags.evaluate(flag_key, _context(evaluation_context))
        failure = self._failure(evaluation, default_value)
        if failure is not None:
            return failure
        return FlagResolutionDetails(
            evaluation.enabled,
            reason=_REASONS[evaluation.reason],
            variant=evaluation.variant.name if evaluation.variant else None,
            flag_metadata={"flag_version": evaluation.flag_version},
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        """The variant payload, as a string."""
        return self._typed(flag_key, default_value, evaluation_context, (str,))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        """The variant payload, as an integer."""
        return self._typed(flag_key, default_value, evaluation_context, (int,))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """The variant payload, as a float (integers are widened)."""
        details = self._typed(flag_key, default_value, evaluation_context, (float, int))
        if isinstance(details.value, int) and not isinstance(details.value, bool):
            details.value = float(details.value)
        return details

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        """The variant payload, as a JSON object or list."""
        return self._typed(flag_key, default_value, evaluation_context, (dict, list))

    def _failure(self, evaluation: Evaluation, default: T) -> FlagResolutionDetails[T] | None:
        if evaluation.reason is Reason.FLAG_NOT_FOUND:
            return FlagResolutionDetails(
                default,
                error_code=ErrorCode.FLAG_NOT_FOUND,
                error_message=f"no flag named {evaluation.flag!r}",
                reason=OpenFeatureReason.ERROR,
            )
        if evaluation.reason is Reason.ERROR:
            return FlagResolutionDetails(
                default,
                error_code=ErrorCode.GENERAL,
                error_message=evaluation.error,
                reason=OpenFeatureReason.ERROR,
            )
        return None

    def _typed(
        self,
        flag_key: str,
        default: T,
        evaluation_context: EvaluationContext | None,
        types: tuple[type, ...],
    ) -> FlagResolutionDetails[T]:
        evaluation = self.flags.evaluate(flag_key, _context(evaluation_context))
        failure = self._failure(evaluation, default)
        if failure is not None:
            return failure
        metadata = {"flag_version": evaluation.flag_version}
        variant = evaluation.variant
        if not evaluation.enabled or variant is None or not variant.enabled:
            reason = (
                _REASONS[evaluation.reason] if not evaluation.enabled else OpenFeatureReason.DEFAULT
            )
            return FlagResolutionDetails(default, reason=reason, flag_metadata=metadata)
        try:
            value = _decode(variant.payload)
        except ValueError as error:
            return FlagResolutionDetails(
                default,
                error_code=ErrorCode.PARSE_ERROR,
                error_message=f"variant {variant.name!r} of {flag_key!r}: {error}",
                reason=OpenFeatureReason.ERROR,
            )
        if not isinstance(value, types) or isinstance(value, bool):
            return FlagResolutionDetails(
                default,
                error_code=ErrorCode.TYPE_MISMATCH,
                error_message=(
                    f"variant {variant.name!r} of {flag_key!r} holds a {type(value).__name__}, "
                    f"not a {types[0].__name__}"
                ),
                reason=OpenFeatureReason.ERROR,
            )
        return FlagResolutionDetails(
            value,  # type: ignore[arg-type]  # checked against the requested type above
            reason=_REASONS[evaluation.reason],
            variant=variant.name,
            flag_metadata=metadata,
        )
