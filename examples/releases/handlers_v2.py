"""Request handlers of the shop, version 2: a 10% discount on every item."""

RELEASE = "v2"
PRICES = {"apple": 120, "pear": 95, "plum": 60}


def price(item: str) -> dict[str, object]:
    """The discounted price of one item, in cents."""
    return {"item": item, "cents": PRICES.get(item, 0) * 9 // 10, "release": RELEASE}
