"""Amounts to whole cents, for the shop's pricing: a small library outside the ``shop`` package.

A release of a module of the shop's package rebuilds its web app, and each
request then runs one app's code throughout; a release of this module
does not, so each call the shop makes to it can be routed on its own: the
demo runs a new version of it in the shadow of this one.
"""

import math


def to_cents(amount: float) -> int:
    """``amount`` (in cents, maybe with a fraction) in whole cents, rounded down."""
    return math.floor(amount)
