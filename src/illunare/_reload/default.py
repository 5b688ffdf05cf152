"""The process-wide default HotReloader behind ``illunare.hot``, made on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from illunare._reload.reloader import HotReloader

__all__ = ["default_reloader", "hot", "reset_default_reloader"]

F = TypeVar("F", bound=Callable[..., Any])

# Made on first use, not at import: importing illunare must work for flags
# users on interpreters where hot swapping cannot (UnsupportedInterpreterError).
_default: HotReloader | None = None
_creating = threading.Lock()


def default_reloader() -> HotReloader:
    """The HotReloader that ``illunare.hot`` uses (made on the first call).

    Raises:
        UnsupportedInterpreterError: hot swapping cannot run on this interpreter.

    """
    global _default  # noqa: PLW0603  # the one place global state lives
    with _creating:
        if _default is None:
            _default = HotReloader()
        return _default


def hot(obj: F) -> F:
    """Decorate a function with the default reloader: see ``HotReloader.hot``."""
    return default_reloader().hot(obj)


def reset_default_reloader() -> HotReloader:
    """Replace the default reloader with a new, empty one (for tests); return it."""
    global _default  # noqa: PLW0603  # the one place global state lives
    with _creating:
        _default = HotReloader()
        return _default
