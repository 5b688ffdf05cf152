"""Prices of the shop, release v8: v7's prices, but a bug makes one call in five fail."""

import itertools

from rounding import to_cents
from shop.ops import CONFIG

PRICES = {"apple": 120, "pear": 95, "plum": 60}
_calls = itertools.count(1)


def price_of(item: str) -> int:
    """The list price of one item, as v7 prices it; fails one call in five."""
    if next(_calls) % 5 == 0:
        raise RuntimeError("pricing v8 fails one request in five")
    listed = PRICES.get(item, 0) * (100 + CONFIG.get("markup_percent", 0)) // 100
    return to_cents(listed * 1.05)
