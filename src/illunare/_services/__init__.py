"""Plug and play services: loaded and unloaded at runtime, routed, drained."""
