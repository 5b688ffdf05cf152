"""Helpers for the tests of programs that use illunare.

``override_flags`` sets flags on a ``FeatureFlags`` for the duration of a test,
in that object only (nothing reaches its backend), and puts everything back
afterwards::

    from illunare.testing import override_flags

    def test_new_checkout(flags):
        with override_flags(flags, new_payment_flow=True, theme={"variants": [{"name": "dark"}]}):
            assert checkout(flags, user) == "new flow"

With pytest, the ``illunare_flags`` fixture does the same and undoes it when
the test ends (the plugin is registered when illunare is installed)::

    def test_new_checkout(illunare_flags, flags):
        illunare_flags(flags, new_payment_flow=True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from illunare._flags.flags import FeatureFlags
from illunare._reload.default import reset_default_reloader
from illunare.exceptions import InvalidArgumentError

__all__ = ["FlagOverrides", "override_flags", "reset_default_reloader"]


def _config(name: str, value: object) -> Mapping[str, Any]:
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, Mapping):
        return value
    raise InvalidArgumentError(
        f"override for {name!r} must be True, False or a flag config mapping, got {value!r}"
    )


class FlagOverrides:
    """Overrides set so far, undone together by ``restore()`` (latest first)."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def __call__(self, flags: FeatureFlags, **values: bool | Mapping[str, Any]) -> None:
        """Serve ``values`` (flag name -> True, False or a config) on ``flags``."""
        if not isinstance(flags, FeatureFlags):
            raise InvalidArgumentError(f"expected a FeatureFlags, got {flags!r}")
        configs = {name: _config(name, value) for name, value in values.items()}
        for name, config in configs.items():
            self._undo.append(flags.override(name, config))

    def restore(self) -> None:
        """Put back every flag as it was before the overrides."""
        while self._undo:
            self._undo.pop()()


@contextlib.contextmanager
def override_flags(
    flags: FeatureFlags, **values: bool | Mapping[str, Any]
) -> Iterator[FeatureFlags]:
    """Serve ``values`` (flag name -> True, False or a config) on ``flags`` inside the block."""
    overrides = FlagOverrides()
    overrides(flags, **values)
    try:
        yield flags
    finally:
        overrides.restore()
