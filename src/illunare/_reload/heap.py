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
    return _read(0)


def tracked_objects(generation: int | None = None) -> list[object]:
    """The objects the collector tracks (in ``generation``, if given) that are not exact tuples."""
    return _read(generation)


def _read(generation: int | None) -> list[object]:
    read = chain(chain.from_iterable(map(gc.get_objects, (generation,))), (None,))
    runs: Iterable[Iterable[object]] = starmap(_DROPPED.get, groupby(read, type))
    objects = list(chain.from_iterable(runs))
    with contextlib.suppress(ValueError):  # not there if a collection moved it meanwhile
        del objects[indexOf(map(id, objects), id(objects))]
    return objects
