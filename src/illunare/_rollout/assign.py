"""Who gets which version during a rollout: exact weighted draws and sticky buckets.

Weighted: a ``Draw`` hands out sides from a shuffled pattern of ``PATTERN``
calls holding exactly ``10 * weight`` new ones, in a cycle; one C-level
``next`` gives the call's index and its side, so the share over any 1000
consecutive calls is exact, whatever the mix of threads, and the number of
calls on each side is known from the index alone.

Sticky: a key gets the new version iff its bucket, a MurmurHash3 of the
release's salt and the key's text modulo 100, is below the weight: the same
key gets the same side in every process (no ``hash()``), and a key on the
new version at 10 % is on it at 50 %. ``Buckets`` caches the sides of the
keys seen at one weight.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import uuid
from collections.abc import Callable, Sequence

from illunare._flags.hashing import murmur3_32

__all__ = ["PATTERN", "TIMED", "Buckets", "Draw", "bucket", "key_text"]

#: Calls per cycle of a weighted draw: a weight's share is exact over each.
PATTERN = 1000
#: Added to a drawn side: time this call.
TIMED = 2
#: The most sides ``Buckets`` caches; then it starts again.
CACHED = 65_536

# Shuffles patterns; its own generator, so that the program's seeding of
# ``random`` neither decides nor is disturbed by a rollout.
_shuffle = random.Random().shuffle  # noqa: S311  # spreads calls; no secret in it


class Draw:
    """An endless run of sides cycling through one pattern of ``PATTERN``.

    A side is 0 (old) or 1 (new), plus ``TIMED`` for a call to time: the
    timing is in the pattern, so that a router tells a call to time from
    the value it draws anyway.
    """

    __slots__ = ("_pattern", "next")

    def __init__(self, pattern: Sequence[int]) -> None:
        self._pattern = tuple(pattern)
        #: ``next()`` -> (this draw's index, its side), in one C call
        self.next: Callable[[], tuple[int, int]] = zip(
            itertools.count(), itertools.cycle(self._pattern)
        ).__next__

    @classmethod
    def of(cls, weight: int, timed_every: int = 0) -> Draw:
        """A draw giving exactly ``weight`` percent of new sides per cycle, shuffled.

        ``timed_every``: one draw in that many (in every cycle) is marked
        ``TIMED``; 0: none.
        """
        return cls.sampling(weight / 100, timed_every)

    @classmethod
    def sampling(cls, share: float, timed_every: int = 0) -> Draw:
        """A draw whose share of ones per cycle is ``share`` (0..1) to the nearest 1/1000."""
        ones = round(PATTERN * share)
        pattern = [1] * ones + [0] * (PATTERN - ones)
        _shuffle(pattern)
        if timed_every:
            for index in range(0, PATTERN, timed_every):
                pattern[index] |= TIMED
        return cls(pattern)

    def stop(self) -> tuple[tuple[int, int], Draw]:
        """The sides drawn so far (old, new) and a draw going on from here in the same cycle.

        Takes one draw itself: the continuation starts with that one, so
        that the cycle's share stays exact.
        """
        drawn, _ = self.next()
        cycles, rest = divmod(drawn, PATTERN)
        pattern = self._pattern
        new = cycles * _new(pattern) + _new(pattern[:rest])
        return (drawn - new, new), Draw(pattern[rest:] + pattern[:rest])


def _new(sides: Sequence[int]) -> int:
    """How many of ``sides`` are new."""
    return sum(side & 1 for side in sides)


def key_text(key: object) -> str:
    """The text a sticky key is hashed by: a str, ``str()`` of an int or UUID, else ``repr()``."""
    kind = type(key)
    if kind is str:
        return key  # type: ignore[return-value]  # checked just above
    if kind is int or isinstance(key, uuid.UUID):
        return str(key)
    return repr(key)


def bucket(salt: str, key: object) -> int:
    """The bucket (0..99) of ``key`` in a release salted ``salt``: the same in every process."""
    return murmur3_32(f"{salt}:{key_text(key)}") % 100


class Buckets:
    """The sides of sticky keys at one weight: computed once per key, cached."""

    __slots__ = ("_salt", "_weight", "sides")

    def __init__(self, salt: str, weight: int) -> None:
        self._salt = salt
        self._weight = weight
        #: key -> its side at this weight (read by the routers directly)
        self.sides: dict[object, int] = {}

    def assign(self, key: object) -> int:
        """The side of ``key``, cached when it can be (a key that cannot be printed gets old)."""
        try:
            side = int(bucket(self._salt, key) < self._weight)
        except Exception:  # noqa: BLE001  # its repr raised: no stable text, so the safe side
            return 0
        sides = self.sides
        if len(sides) >= CACHED:
            sides.clear()
        # Unhashable (or its __hash__/__eq__ raised): not cached, as it cannot be.
        with contextlib.suppress(Exception):
            sides[key] = side
        return side
