"""What the shop answers, version 2: quotes say their currency."""

from pydantic import BaseModel


class Quote(BaseModel):
    """The price of one item for one customer."""

    item: str
    cents: int
    currency: str = "EUR"
    release: str
    payment_flow: str
