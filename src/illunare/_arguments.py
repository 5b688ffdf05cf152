"""Checks of arguments shared by the public classes."""

from __future__ import annotations

import math

from illunare.exceptions import InvalidArgumentError

__all__ = ["optional", "positive_int", "seconds"]


def seconds(name: str, value: object) -> float:
    """``value`` as a positive, finite number of seconds.

    Raises:
        InvalidArgumentError: anything else (a busy loop or a thread that dies
            on its first wait would follow).

    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (a count of versions, a window), else InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")
    return value


def optional(name: str, value: object, kind: type) -> None:
    """Nothing if ``value`` is None or a ``kind``, else InvalidArgumentError."""
    if value is not None and not isinstance(value, kind):
        raise InvalidArgumentError(
            f"{name} must be a {kind.__name__} or None, got {type(value).__name__}"
        )
