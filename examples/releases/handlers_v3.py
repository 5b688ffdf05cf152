"""Request handlers of the shop, version 3: a bad release (the discount sign is wrong)."""

RELEASE = "v3"
PRICES = {"apple": 120, "pear": 95, "plum": 60}


def price(item: str) -> dict[str, object]:
    """A negative price: the release check must refuse this version."""
    return {"item": item, "cents": -PRICES.get(item, 0), "release": RELEASE}
