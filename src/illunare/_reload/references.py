"""Who refers to an object, told by reference counts rather than by a walk of the heap.

``gc.get_referrers`` walks every object of the process, holding the GIL all
along (tens of milliseconds in a web service), at a cost that also grows
with the number of objects asked about. An object's reference count, less
the references counted from the objects known to hold it, tells whether
anything else does: only then is the walk needed (``unexplained``).

Memos (``functools.lru_cache``, as FastAPI and ``typing`` use) keep what
they were called with: a memo is no holder (it changes no behaviour), and
neither is what only memos hold. ``memo_references`` counts the references
they hold, so that an object that only memos hold besides the known ones
needs no walk either (a few levels down: what a memo holds deeper, or an
object held by a memo made later without the library seeing it, is looked
for in the heap as before).
"""

from __future__ import annotations

import collections
import functools
import gc
import itertools
import operator
import sys
import weakref
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

import attrs

from illunare._reload.heap import tracked_objects

__all__ = ["MEMO", "excess", "learn_memos", "memo_references", "unexplained"]

#: The type of a memo (``functools.lru_cache``, ``functools.cache``).
MEMO = type(functools.lru_cache(maxsize=1)(len))
# How many levels below a memo's storage what only memos hold is followed.
_DEPTH = 2


def unexplained(
    objects: list[object],
    known: list[object],
    *,
    among: bool = False,
    held: Mapping[int, int] | None = None,
) -> list[object]:
    """Those of ``objects`` that something besides ``known`` (and, if ``among``, them) refers to.

    As ``excess`` tells, with the same arguments.
    """
    found = excess(objects, known, among=among, held=held)
    return list(itertools.compress(objects, map(found.__contains__, map(id, objects))))


def excess(
    objects: list[object],
    known: list[object],
    *,
    among: bool = False,
    held: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """For each of ``objects`` that something else refers to, by id: how many references.

    An object's reference count, less the references that ``known`` holds
    (counted from their referents; if ``among``, those ``objects`` hold
    too), the references ``held`` counts (id -> number, counted elsewhere)
    and this call's own, tells how many references something else holds.
    ``objects`` must hold each object once, and the caller no other
    reference to them than that list (``known`` none of them).
    """
    counts = collections.Counter(map(id, gc.get_referents(*known)))
    if among:
        counts.update(map(id, gc.get_referents(*objects)))
    others: Mapping[int, int] = held or {}
    # Counted in C (maps over the objects), as a web service's thousands of
    # memo entries need. While counted, each object is referred to by
    # ``objects``, the list below and the map: as the probe is by this
    # local, the list and the map; the probe's count is the base.
    probe = object()
    candidates = [probe, *objects]
    counted = list(map(sys.getrefcount, candidates))
    ids = list(map(id, candidates))
    del candidates, probe
    zeros = itertools.repeat(0)
    known_refs = map(operator.add, map(counts.get, ids, zeros), map(others.get, ids, zeros))
    rest = list(map(operator.sub, counted, known_refs))
    beyond = list(map(operator.sub, rest, itertools.repeat(rest[0])))
    # The probe's own is 0: never found.
    return dict(itertools.compress(zip(ids, beyond, strict=True), map(operator.gt, beyond, zeros)))


# The memos of the process: all of them the first time they are needed (one
# listing of every object), then those that versions' code makes
# (``learn_memos``). One made otherwise later is not known: an object it
# holds is then looked for in the heap, as without this.
_memos: weakref.WeakSet[object] | None = None


def learn_memos(objects: Iterable[object]) -> None:
    """Know the memos among ``objects`` (made by a version's code)."""
    if _memos is not None:
        _memos.update(obj for obj in objects if type(obj) is MEMO)


@attrs.frozen
class _Walk:
    """What one memo holds, as a walk of its storage found it (``memo_references``).

    It holds no object (ids only), so that nothing a memo drops stays alive
    for it; ``signature`` tells whether the storage changed since.
    """

    #: the memo's counters and the size of each of its dicts
    signature: tuple[int, ...]
    #: the ids of the objects the walk could follow (the storage, and the
    #: tracked objects it met): an exclusion touching none of them leaves it as it is
    met: frozenset[int]
    #: the ids of what the walked objects refer to, once per reference
    referents: tuple[int, ...]
    #: the same ids, once each: a walk that counts a reference to one of the
    #: objects asked about is walked afresh (what its objects refer to may
    #: have changed, or a counted object died and its id was taken)
    ids: frozenset[int] = attrs.field(
        default=attrs.Factory(lambda self: frozenset(self.referents), takes_self=True)
    )


# The walk of each memo, reused while its storage is unchanged: a web
# service's memos (typing's, FastAPI's) hold thousands of entries, and a
# release asks what they hold several times.
_walks: weakref.WeakKeyDictionary[object, _Walk] = weakref.WeakKeyDictionary()


def memo_references(
    exclude: Collection[int], wanted: Collection[int] | None = None
) -> collections.Counter[int]:
    """The references that memos hold, and what only memos hold, by the id of what they refer to.

    A memo's storage is the memo and its dicts (its cache, and its
    ``__dict__`` with ``__wrapped__``); below it, an object whose every
    reference comes from that storage (or from such objects, a few levels
    down: a cache key's tuple, an argument in it) is only that memo's. The
    objects whose ids are in ``exclude`` (counted by the caller) are left out.

    Each memo is walked on its own, and its walk is reused until its
    storage changes (an entry added, evicted or cleared changes its counters
    or sizes), except when it counts one of ``wanted`` (the ids of the
    objects the caller asks about): below its storage, what a memo holds
    may have changed with no change to its counters, and an object it held
    may be gone and its id taken. So a release walks only the memos that
    changed or that hold the code it replaced.
    """
    global _memos  # noqa: PLW0603  # found once for the process
    excluded = set(exclude)
    if _memos is None:
        _memos = weakref.WeakSet(obj for obj in tracked_objects() if type(obj) is MEMO)
    walks = []
    for memo in list(_memos):
        if id(memo) in excluded:
            continue
        storage = [obj for obj in gc.get_referents(memo) if type(obj) is dict]
        info = memo.cache_info()  # type: ignore[attr-defined]  # a memo
        signature = (info.misses, info.currsize, *map(id, storage), *map(len, storage))
        walk = _walks.get(memo)
        if (
            walk is None
            or walk.signature != signature
            or not excluded.isdisjoint(walk.met)
            or (wanted is not None and not walk.ids.isdisjoint(wanted))
        ):
            walk = _walk(memo, storage, excluded, signature)
            if excluded.isdisjoint(walk.met):
                _walks[memo] = walk
        walks.append(walk.referents)
    return collections.Counter(itertools.chain.from_iterable(walks))


def _walk(
    memo: object, storage: Sequence[object], excluded: set[int], signature: tuple[int, ...]
) -> _Walk:
    """Walk ``memo``'s storage and what only it holds (``memo_references``)."""
    layer: list[object] = [memo, *(obj for obj in storage if id(obj) not in excluded)]
    met = set(map(id, storage))
    seen = set(map(id, layer))
    counts: collections.Counter[int] = collections.Counter()
    found: list[int] = []
    for depth in range(_DEPTH + 1):
        referents = gc.get_referents(*layer)
        ids = list(map(id, referents))
        counts.update(ids)
        found += ids
        if depth == _DEPTH:
            break
        unique = dict(zip(ids, referents, strict=True))
        del referents
        fresh = unique.keys() - seen
        tracked = list(filter(gc.is_tracked, map(unique.__getitem__, fresh)))
        del unique
        met.update(map(id, tracked))
        candidates = list(_without(tracked, excluded))
        del tracked
        layer = list(_without(candidates, set(excess(candidates, [], held=counts))))
        del candidates
        seen.update(map(id, layer))
    return _Walk(signature, frozenset(met), tuple(found))


def _without(objects: Sequence[object], ids: Collection[int]) -> Iterator[object]:
    """Those of ``objects`` whose id is not in ``ids`` (filtered in C; reads ``objects`` twice)."""
    return itertools.compress(objects, map(operator.not_, map(ids.__contains__, map(id, objects))))
