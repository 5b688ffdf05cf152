"""Checks of arguments shared by the swap core and the flag backends."""

from __future__ import annotations

import math

from illunare.exceptions import InvalidArgumentError

__all__ = ["seconds"]


def seconds(name: str, value: object) -> float:
    """``value`` as a positive, finite number of seconds.

    Raises:
        InvalidArgumentError: anything else (a busy loop or a thread that dies
            on its first wait would follow).

    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
