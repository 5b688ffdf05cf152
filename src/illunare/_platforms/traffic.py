"""A Cloud Run traffic split as plain values, and the split of each step of a shift.

Pure arithmetic, no client: ``step_split`` gives the new revision a step's
percent and scales the rest of the split that served before down to what
is left, in whole percents summing to exactly 100 (``largest_remainder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = ["LATEST", "REVISION", "Target", "largest_remainder", "percent_of", "pin", "step_split"]

#: a target following the service's latest ready revision
LATEST = "LATEST"
#: a target pinned to one revision
REVISION = "REVISION"


@attrs.frozen
class Target:
    """One entry of a service's traffic: what it routes to, its share, its tag."""

    #: ``LATEST`` or ``REVISION`` (the allocation type, without its prefix)
    kind: str
    #: the revision's short name ("" for ``LATEST``)
    revision: str
    #: whole percent of the requests, 0..100
    percent: int
    #: the tag giving the target its own URL ("" for none)
    tag: str = ""


def largest_remainder(weights: Sequence[int], total: int) -> tuple[int, ...]:
    """``weights`` scaled to whole numbers summing to exactly ``total`` (Hamilton's method).

    Each share is its exact value ``weight * total / sum(weights)`` rounded
    down, or up for the largest fractional parts until the sum is
    ``total``; equal fractions go to the earlier weight. Every share is
    therefore within 1 of its exact value, a zero weight gets zero, and a
    larger weight never gets less than a smaller one. ``weights`` must be
    non-negative with a positive sum.
    """
    whole = sum(weights)
    shares = [weight * total // whole for weight in weights]
    left = total - sum(shares)
    # Ranked by remainder (the same denominator for all), then by position.
    ranked = sorted(range(len(weights)), key=lambda i: (-(weights[i] * total % whole), i))
    for index in ranked[:left]:
        shares[index] += 1
    return tuple(shares)


def pin(split: Sequence[Target], latest: str) -> tuple[Target, ...]:
    """``split`` with its ``LATEST`` targets pinned to ``latest`` (unchanged if "")."""
    return tuple(
        attrs.evolve(t, kind=REVISION, revision=latest) if t.kind == LATEST and latest else t
        for t in split
    )


def percent_of(split: Sequence[Target], revision: str) -> int:
    """The percent ``split`` gives to ``revision`` pinned by name."""
    return sum(t.percent for t in split if t.kind == REVISION and t.revision == revision)


def step_split(
    before: Sequence[Target], latest: str, revision: str, percent: int
) -> tuple[Target, ...]:
    """The split that gives ``revision`` ``percent`` and the rest of ``before`` what is left.

    ``LATEST`` targets are pinned to ``latest`` (the latest ready revision,
    "" if unknown): a shift must not move with a revision created
    meanwhile. The targets of ``revision`` itself are folded into one, first
    in their place (keeping the first one's tag; the others keep their tags
    at 0%), else appended. The others keep their order and tags, their
    percents scaled by ``largest_remainder`` to ``100 - percent``; an
    untagged target scaled to 0% is left out. Needs the others to have
    served some traffic unless ``percent`` is 100.
    """
    pinned = pin(before, latest)
    mine = [i for i, t in enumerate(pinned) if t.kind == REVISION and t.revision == revision]
    others = [i for i, t in enumerate(pinned) if i not in mine]
    weights = [pinned[i].percent for i in others]
    shares = (
        largest_remainder(weights, 100 - percent) if sum(weights) else tuple(0 for _ in weights)
    )
    scaled = dict(zip(others, shares, strict=True))
    split = []
    for index, target in enumerate(pinned):
        # the others their scaled share, the first of the revision's targets the step's
        share = scaled[index] if index in scaled else percent if index == mine[0] else 0
        if share or target.tag:
            split.append(attrs.evolve(target, percent=share))
    if not mine:
        split.append(Target(REVISION, revision, percent))
    return tuple(split)
