"""Pricing release v9, a new version of the ``rounding`` module: to the nearest cent, not down."""


def to_cents(amount: float) -> int:
    """``amount`` (in cents, maybe with a fraction) in whole cents, to the nearest one."""
    return round(amount)
