"""The server's entry point: ``uvicorn shop.hot:app`` serves the shop, rebuilt by every release."""

from fastapi.testclient import TestClient

from illunare.web import HotASGI


def no_negative_prices(app: object) -> bool:
    """The release check: every item has a price of zero or more in the new app."""
    client = TestClient(app)  # type: ignore[arg-type]  # an ASGI app
    return all(client.get(f"/price/{item}").json()["cents"] >= 0 for item in ("apple", "pear"))


app = HotASGI("shop.main:app", checks=[no_negative_prices])
