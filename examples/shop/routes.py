"""The shop's routes, release v1: GET /price/{item}.

The customer's segment and region come in the X-Segment and X-Region
headers; the ``new_payment_flow`` flag decides which payment flow the
answer offers them.
"""

from fastapi import APIRouter, Header

from shop import flags
from shop.models import Quote
from shop.pricing import price_of

RELEASE = "v1"
router = APIRouter()


@router.get("/price/{item}")
async def price(item: str, x_segment: str = Header(""), x_region: str = Header("")) -> Quote:
    """The price of one item, and the payment flow offered."""
    customer = {"user_segment": x_segment, "region": x_region}
    new_flow = flags.FLAGS.is_enabled("new_payment_flow", customer)
    return Quote(
        item=item,
        cents=price_of(item),
        release=RELEASE,
        payment_flow="new" if new_flow else "classic",
    )
