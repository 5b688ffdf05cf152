"""The feature flags the shop consults (the demo gives them a shared backend)."""

from illunare import FeatureFlags

FLAGS = FeatureFlags()
