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
import fractions
import itertools
import numbers
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from illunare._flags.hashing import murmur3_32

__all__ = ["MIN_SAMPLE", "PATTERN", "TIMED", "Buckets", "Draw", "bucket", "canonical", "key_text"]

#: Calls per cycle of a weighted draw: a weight's share is exact over each.
PATTERN = 1000
#: Added to a drawn side: time this call.
TIMED = 2
#: The smallest share ``Draw.sampling`` represents (the finest a shadow run samples).
MIN_SAMPLE = 0.00001
#: The most sides ``Buckets`` caches; then it starts again.
CACHED = 65_536

# Shuffles patterns; its own generator, so that the program's seeding of
# ``random`` neither decides nor is disturbed by a rollout.
_shuffle = random.Random().shuffle  # noqa: S311  # spreads calls; no secret in it


class Draw:
    """An endless run of sides cycling through one pattern.

    A side is 0 (old) or 1 (new), plus ``TIMED`` for a call to time: the
    timing is in the pattern, so that a router tells a call to time from
    the value it draws anyway. The sides drawn are counted from the draw
    indices (``tally``), so a draw replaced while routers still hold it
    keeps being counted until it goes quiet.
    """

    __slots__ = ("_pattern", "_tallied", "next")

    def __init__(self, pattern: Sequence[int]) -> None:
        self._pattern = tuple(pattern)
        #: the index of the first draw ``tally()`` has not counted
        self._tallied = 0
        #: ``next()`` -> (this draw's index, its side), in one C call
        self.next: Callable[[], tuple[int, int]] = zip(
            itertools.count(), itertools.cycle(self._pattern)
        ).__next__

    @classmethod
    def of(cls, weight: int, timed_every: int = 0) -> Draw:
        """A draw giving exactly ``weight`` percent of new sides per cycle of ``PATTERN``, shuffled.

        ``timed_every``: one draw in that many (in every cycle) is marked
        ``TIMED``; 0: none.
        """
        pattern = [1] * (10 * weight) + [0] * (PATTERN - 10 * weight)
        _shuffle(pattern)
        if timed_every:
            for index in range(0, PATTERN, timed_every):
                pattern[index] |= TIMED
        return cls(pattern)

    @classmethod
    def sampling(cls, share: float) -> Draw:
        """A draw whose share of ones is ``share`` (``MIN_SAMPLE`` to 1), shuffled.

        Its cycle is as short as the share allows: ``share`` as a fraction
        with a denominator of at most ``1 / MIN_SAMPLE`` (0.0004 is one in
        2500, 0.25 one in 4).
        """
        exact = fractions.Fraction(share).limit_denominator(round(1 / MIN_SAMPLE))
        pattern = [1] * exact.numerator + [0] * (exact.denominator - exact.numerator)
        _shuffle(pattern)
        return cls(pattern)

    def tally(self) -> tuple[int, int]:
        """The sides drawn since the last tally (old, new); takes one draw itself, not counted."""
        return self._tally()[0]

    def stop(self) -> tuple[tuple[int, int], Draw]:
        """``tally()``, and a draw going on from here in the same cycle.

        The continuation starts with the place of the draw the tally took,
        so that the cycle's share stays exact. Draws still made on this one
        (by a router that read it before it was replaced) are counted by its
        next ``tally()``.
        """
        counts, drawn = self._tally()
        rest = drawn % len(self._pattern)
        return counts, Draw(self._pattern[rest:] + self._pattern[:rest])

    def _tally(self) -> tuple[tuple[int, int], int]:
        drawn, _ = self.next()
        first, self._tallied = self._tallied, drawn + 1
        new = self._new(first, drawn)
        return (drawn - first - new, new), drawn

    def _new(self, first: int, stop: int) -> int:
        """How many of the draws ``first`` to ``stop`` (excluded) were new."""
        pattern = self._pattern
        size = len(pattern)
        whole = _new(pattern) * (stop // size - first // size)
        return whole + _new(pattern[: stop % size]) - _new(pattern[: first % size])


def _new(sides: Sequence[int]) -> int:
    """How many of ``sides`` are new."""
    return sum(side & 1 for side in sides)


def key_text(key: object) -> str:
    """The text a sticky key is hashed by: the same for keys that are equal.

    A str is itself; an int or UUID its ``str()``; anything else the
    ``repr()`` of its canonical form (``canonical``), so that ``1``,
    ``1.0``, ``True`` and ``Decimal(1)`` (equal, and one key to a dict) get
    one bucket, whichever of them a process sees first.
    """
    kind = type(key)
    if kind is str:
        return key  # type: ignore[return-value]  # checked just above
    if kind is int or isinstance(key, uuid.UUID):
        return str(key)
    return repr(canonical(key))


def canonical(key: object) -> object:
    """``key`` with each number in it (in tuples too) as an int, else a float, where equal."""
    kind = type(key)
    if kind is str or kind is int:
        return key
    if isinstance(key, tuple) and kind is tuple:
        return tuple(map(canonical, key))
    if not isinstance(key, numbers.Number):
        return key
    number: Any = key
    if isinstance(number, numbers.Complex) and not isinstance(number, numbers.Real):
        if number.imag != 0:
            return key
        number = number.real
    for exact in _EXACT:
        # int(1.5), float(Decimal("sNaN")) ... raise, inf has no int: not that form.
        with contextlib.suppress(Exception):
            value = exact(number)
            if value == key:
                return value
    return key


#: the forms of a number ``canonical`` tries, in order
_EXACT: tuple[Callable[[Any], object], ...] = (int, float)


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
