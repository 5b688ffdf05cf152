"""The pytest plugin illunare registers: fixtures for tests of programs that use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from illunare.testing import FlagOverrides

__all__ = ["illunare_flags"]


@pytest.fixture
def illunare_flags() -> Iterator[FlagOverrides]:
    """Call it as ``illunare_flags(flags, name=True, ...)``; undone when the test ends."""
    overrides = FlagOverrides()
    yield overrides
    overrides.restore()
