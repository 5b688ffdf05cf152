"""illunare.testing: the flag test double, as a context manager and as a pytest fixture."""

from __future__ import annotations

import pytest

from illunare import FeatureFlags, InvalidArgumentError, MemoryBackend
from illunare.testing import FlagOverrides, override_flags


class TestOverrideFlags:
    def test_sets_flags_inside_the_block_and_restores_them(self) -> None:
        """True, False and full configs apply inside the block; the old flags come back after."""
        flags = FeatureFlags()
        flags.update("existing", {"enabled": False})
        seen = []
        flags.on_change("existing")(
            lambda name, old, new: seen.append(new.enabled if new else None)
        )
        with override_flags(flags, existing=True, brand_new={"variants": [{"name": "dark"}]}):
            assert flags.is_enabled("existing")
            assert flags.evaluate("brand_new").variant.name == "dark"  # type: ignore[union-attr]
        assert not flags.is_enabled("existing")
        assert "brand_new" not in flags.flags()
        assert flags.flags()["existing"].version == 1
        assert seen == [True, False]

    def test_nothing_reaches_the_backend(self) -> None:
        """Overrides stay in the one FeatureFlags; others on the same backend do not see them."""
        backend = MemoryBackend()
        flags, other = FeatureFlags(backend=backend), FeatureFlags(backend=backend)
        with override_flags(flags, beta=True):
            assert not other.is_enabled("beta")

    def test_bad_input(self) -> None:
        """Values must be booleans or configs, and configs must be valid."""
        flags = FeatureFlags()
        with pytest.raises(InvalidArgumentError), override_flags(flags, beta="yes"):  # type: ignore[arg-type]
            pass
        with pytest.raises(InvalidArgumentError):
            FlagOverrides()("not flags", beta=True)  # type: ignore[arg-type]
        assert flags.flags() == {}


class TestPytestFixture:
    def test_fixture_overrides_for_the_test(self, illunare_flags: FlagOverrides) -> None:
        """The illunare_flags fixture is registered by the plugin and overrides flags."""
        flags = FeatureFlags()
        illunare_flags(flags, beta=True)
        assert flags.is_enabled("beta")
