"""Hypothesis strategies and generated sources shared by the property-based tests."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType


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
