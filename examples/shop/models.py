"""What the shop answers, version 1."""

from pydantic import BaseModel


class Quote(BaseModel):
    """The price of one item for one customer."""

    item: str
    cents: int
    release: str
    payment_flow: str
