"""The collector's lists of objects, read without holding what other threads are still building.

``tuple(iterable)`` fills a new tuple and then resizes it in place, which
CPython allows only while nothing else refers to the tuple; meanwhile the
tuple is already in the youngest generation. A list from
``gc.get_objects()`` held while another thread builds one makes that
thread fail (``SystemError: bad argument to internal function``). So the
list is read and its tuples are dropped in one pass of C code (grouped by
type, no bytecode runs, so the GIL goes to no other thread), and no tuple
is ever kept. The pass's own objects hold nothing once it ends: the last
value it reads is a None.

Nor does the list hold itself. It is made, tracked in the youngest
generation, before the collector's list is read, so it is listed; its entry
is removed by identity (ids compared: no ``__eq__`` runs). Left in, it would
make the list a garbage cycle holding every object it lists (all the
process's, or all a release made) until the next collection, with the
collector paused during releases: functions a swap replaced would look held,
and reports of stale references would walk the heap for nothing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable
from itertools import chain, groupby, starmap
from operator import indexOf

__all__ = ["tracked_objects", "young_objects"]

# Each run of objects of one type is kept, except these (an empty run instead).
_DROPPED: dict[type, Iterable[object]] = {tuple: (), type(None): ()}


def young_objects() -> list[object]:
    """The objects of the youngest generation that are not exact tuples."""
    return _read((0,))


def tracked_objects(*generations: int, end: object = None) -> list[object]:
    """The objects the collector tracks that are not exact tuples: of ``generations``, or all.

    ``end``, if given, is put last in the same pass (a mark that tells what
    the list is, to code that finds it among the referrers of an object).
    """
    return _read(generations or (None,), end)


def _read(generations: tuple[int | None, ...], end: object = None) -> list[object]:
    read = chain(chain.from_iterable(map(gc.get_objects, generations)), (None,))
    runs: Iterable[Iterable[object]] = starmap(_DROPPED.get, groupby(read, type))
    objects = list(chain(chain.from_iterable(runs), () if end is None else (end,)))
    with contextlib.suppress(ValueError):  # not there if a collection moved it meanwhile
        del objects[indexOf(map(id, objects), id(objects))]
    return objects
