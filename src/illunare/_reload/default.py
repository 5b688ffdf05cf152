"""The process-wide default HotReloader behind ``illunare.hot``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from illunare._reload.reloader import HotReloader

__all__ = ["default_reloader", "hot", "reset_default_reloader"]

F = TypeVar("F", bound=Callable[..., Any])

_default = HotReloader()


def default_reloader() -> HotReloader:
    """The HotReloader that ``illunare.hot`` uses."""
    return _default


def hot(obj: F) -> F:
    """Decorate a function with the default reloader: see ``HotReloader.hot``."""
    return _default.hot(obj)


def reset_default_reloader() -> HotReloader:
    """Replace the default reloader with a new, empty one (for tests); return it."""
    global _default  # noqa: PLW0603  # the one place global state lives
    _default = HotReloader()
    return _default
