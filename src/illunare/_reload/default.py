"""The process-wide default HotReloader behind ``illunare.hot``, made on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from illunare._reload.interpreter import require_supported_interpreter
from illunare._reload.locking import LOCK
from illunare._reload.reloader import HotReloader

__all__ = ["default_reloader", "hot", "reset_default_reloader"]

F = TypeVar("F", bound=Callable[..., Any])

# Made on first use, not at import: importing illunare must work for flags
# users on interpreters where hot swapping cannot (UnsupportedInterpreterError).
# Set under LOCK, which a fork waits for, so a child never inherits it held.
_default: HotReloader | None = None


def default_reloader() -> HotReloader:
    """The HotReloader that ``illunare.hot`` uses (made on the first call).

    Raises:
        UnsupportedInterpreterError: hot swapping cannot run on this interpreter.

    """
    global _default  # noqa: PLW0603  # the one place global state lives
    require_supported_interpreter()  # its first run imports: not under the lock
    with LOCK:
        if _default is None:
            _default = HotReloader()
        return _default


def hot(obj: F) -> F:
    """Decorate a function with the default reloader: see ``HotReloader.hot``."""
    return default_reloader().hot(obj)


def reset_default_reloader() -> HotReloader:
    """Replace the default reloader with a new, empty one (for tests); return it."""
    global _default  # noqa: PLW0603  # the one place global state lives
    require_supported_interpreter()
    with LOCK:
        _default = HotReloader()
        return _default
