"""Who gets which version during a rollout: exact weighted draws and sticky buckets.

Weighted: a ``Draw`` hands out sides from a shuffled pattern of ``PATTERN``
calls holding exactly ``10 * weight`` new ones, in a cycle; one C-level
``next`` gives the call's side, so the share over any 1000 consecutive
calls is exact, whatever the mix of threads, and the number of calls on
each side is known from where the cycle is (``Draw.tally``).

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
import operator
import random
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
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
#: The cycles of its pattern a ``Draw`` can hand out: more than any process draws.
_CYCLES = sys.maxsize

# Shuffles patterns; its own generator, so that the program's seeding of
# ``random`` neither decides nor is disturbed by a rollout.
_shuffle = random.Random().shuffle  # noqa: S311  # spreads calls; no secret in it


class Draw:
    """An endless run of sides cycling through one pattern, one C call each: ``next(draw.sides)``.

    A side is 0.0 (old) or 1.0 (new), plus ``TIMED`` for a call to time: the
    timing is in the pattern, so that a router tells a call to time from
    the value it draws anyway. Each place of the pattern is a float object
    of its own, so the object a draw gives tells its place; the cycles
    begun are what an ``itertools.repeat`` of the pattern has handed out
    (its length hint). So the draws are counted (``tally``) with no counter
    running per call, and a draw replaced while routers still hold it keeps
    being counted until it goes quiet.
    """

    __slots__ = ("_cycles", "_ones", "_pattern", "_places", "_tallied", "sides")

    def __init__(self, pattern: Sequence[float]) -> None:
        # float() of an int makes a new object; of a float, it is that float.
        self._pattern = tuple(map(float, pattern))
        self._places = {id(side): place for place, side in enumerate(self._pattern)}
        if len(self._places) != len(self._pattern):
            raise ValueError("each place of a pattern must be a float object of its own")
        self._ones = tuple(int(side) & 1 for side in self._pattern)
        self._cycles = itertools.repeat(self._pattern, _CYCLES)
        #: ``next(sides)``: the side of one call (a float, ``TIMED`` added for one to time)
        self.sides: Iterator[float] = itertools.chain.from_iterable(self._cycles)
        #: the index of the first draw ``tally()`` has not counted
        self._tallied = 0

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
    def counter(cls, timed_every: int) -> Draw:
        """Counts calls, marking one in ``timed_every`` ``TIMED`` (0: none); old sides only."""
        return cls([TIMED] + [0] * (timed_every - 1) if timed_every else [0])

    @staticmethod
    def sampling(share: float) -> Iterator[int]:
        """An endless run of 0 and 1 whose share of ones is ``share`` (``MIN_SAMPLE`` to 1).

        Its cycle is as short as the share allows: ``share`` as a fraction
        with a denominator of at most ``1 / MIN_SAMPLE`` (0.0004 is one in
        2500, 0.25 one in 4), shuffled.
        """
        exact = fractions.Fraction(share).limit_denominator(round(1 / MIN_SAMPLE))
        pattern = [1] * exact.numerator + [0] * (exact.denominator - exact.numerator)
        _shuffle(pattern)
        return itertools.cycle(pattern)

    def tally(self) -> tuple[int, int]:
        """The sides drawn since the last tally (old, new); takes a draw itself, not counted."""
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
        drawn, wasted = self._draw()
        first, self._tallied = self._tallied, drawn + 1
        new = self._new(first, drawn)
        old = drawn - first - new
        for place in wasted:  # draws of this tally's own, in the range counted
            if self._ones[place]:
                new -= 1
            else:
                old -= 1
        return (old, new), drawn

    def _draw(self) -> tuple[int, list[int]]:
        """Take one draw: its index, and the places of draws taken and lost on the way.

        The cycles begun are read before and after it: if another thread
        began one in between, which cycle this draw fell in is not known,
        and another is taken.
        """
        wasted: list[int] = []
        size = len(self._pattern)
        while True:
            left = operator.length_hint(self._cycles)
            place = self._places[id(next(self.sides))]
            after = operator.length_hint(self._cycles)
            if after == left or (after == left - 1 and place == 0):
                return (_CYCLES - after - 1) * size + place, wasted
            wasted.append(place)

    def _new(self, first: int, stop: int) -> int:
        """How many of the draws ``first`` to ``stop`` (excluded) were new."""
        ones = self._ones
        size = len(ones)
        whole = sum(ones) * (stop // size - first // size)
        return whole + sum(ones[: stop % size]) - sum(ones[: first % size])


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
