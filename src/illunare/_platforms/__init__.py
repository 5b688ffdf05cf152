"""Helpers of the platform adapters (illunare.kubernetes, illunare.gcp) that need no extra."""
