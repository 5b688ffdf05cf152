"""A tiny shop service: the demo's application, hot-swapped while it serves."""
