"""Request handlers of the shop, version 1."""

RELEASE = "v1"
PRICES = {"apple": 120, "pear": 95, "plum": 60}


def price(item: str) -> dict[str, object]:
    """The price of one item, in cents."""
    return {"item": item, "cents": PRICES.get(item, 0), "release": RELEASE}
