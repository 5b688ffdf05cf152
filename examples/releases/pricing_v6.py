"""Prices of the shop, release v6: a bug makes one request in five fail."""

import itertools

from shop.ops import CONFIG

PRICES = {"apple": 120, "pear": 95, "plum": 60}
_calls = itertools.count(1)


def price_of(item: str) -> int:
    """The list price of one item, with the configured markup; fails one call in five."""
    if next(_calls) % 5 == 0:
        raise RuntimeError("pricing v6 fails one request in five")
    return PRICES.get(item, 0) * (100 + CONFIG.get("markup_percent", 0)) // 100
