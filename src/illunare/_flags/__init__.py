"""Feature flags: a compiled rule engine with Unleash-compatible semantics."""
