"""Helpers for the tests of programs that use illunare."""

from __future__ import annotations

from illunare._reload.default import reset_default_reloader

__all__ = ["reset_default_reloader"]
