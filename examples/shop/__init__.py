"""A tiny FastAPI shop: the demo's application, rebuilt by hot releases while it serves."""
