"""The server's entry point: ``uvicorn shop.hot:app`` serves the shop, rebuilt by every release."""

import asyncio

import httpx

from illunare.web import HotASGI


def no_negative_prices(app: object) -> bool:
    """The release check: the new app quotes every item at zero or more."""

    async def quotes() -> list[int]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI app
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return [
                (await client.get(f"/price/{item}")).json()["cents"] for item in ("apple", "pear")
            ]

    return all(cents >= 0 for cents in asyncio.run(quotes()))


app = HotASGI("shop.main:app", checks=[no_negative_prices])
