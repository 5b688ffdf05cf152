"""Who refers to an object, told by reference counts: what memos hold, what else refers."""

from __future__ import annotations

import functools
import gc

from illunare._reload import references
from illunare._reload.references import excess, learn_memos, memo_references, unexplained


class Identity:
    __slots__ = ("call",)

    def __init__(self, call: object) -> None:
        self.call = call


def handler() -> None:
    pass


def memoized() -> functools._lru_cache_wrapper[str]:
    @functools.lru_cache(maxsize=8)
    def analysed(identity: Identity) -> str:
        return type(identity).__name__

    learn_memos([analysed])
    return analysed


class TestExcess:
    def test_what_only_a_known_list_holds_is_explained(self) -> None:
        """Objects held by a known list have no excess; one held by one more list, one."""
        objects = [object(), object()]
        known: list[object] = [list(objects)]
        elsewhere = [objects[1]]
        assert excess(objects, known) == {id(elsewhere[0]): 1}
        assert unexplained(objects, known) == elsewhere

    def test_references_among_the_objects_count_with_among(self) -> None:
        """A list among the objects holding another of them explains it."""
        objects: list[object] = [object()]
        objects.append([objects[0]])
        assert excess(objects, [], among=True) == {}
        assert excess(objects, []) == {id(objects[0]): 1}


class TestMemoReferences:
    def test_a_memos_key_and_what_it_holds_are_counted(self) -> None:
        """The function in a memo's key object is held once by what only the memo holds."""

        def call() -> None:
            pass

        memo = memoized()
        memo(Identity(call))
        assert memo_references(set())[id(call)] == 1

    def test_an_object_held_elsewhere_too_is_not_followed(self) -> None:
        """A key object another list holds too is not only the memo's: what it holds is not."""

        def call() -> None:
            pass

        memo = memoized()
        key = Identity(call)
        memo(key)
        assert memo_references(set())[id(call)] == 0
        assert key.call is call

    def test_an_excluded_memo_is_left_out(self) -> None:
        """The memos whose ids are excluded (counted by the caller) count nothing."""

        def call() -> None:
            pass

        memo = memoized()
        memo(Identity(call))
        assert memo_references({id(memo)})[id(call)] == 0

    def test_a_memos_walk_is_reused_until_its_storage_changes(self) -> None:
        """An unchanged memo is not walked again; an entry added or a clear is seen at once."""

        def first() -> None:
            pass

        def second() -> None:
            pass

        memo = memoized()
        memo(Identity(first))
        assert memo_references(set())[id(first)] == 1
        walk = references._walks[memo]
        memo(Identity(first))  # a miss: another key object
        assert references._walks[memo] is walk  # not asked yet
        assert memo_references(set())[id(first)] == 2
        assert references._walks[memo] is not walk
        walk = references._walks[memo]
        assert memo_references(set())[id(first)] == 2
        assert references._walks[memo] is walk
        memo(Identity(second))
        assert memo_references(set())[id(second)] == 1
        memo.cache_clear()
        counts = memo_references(set())
        assert counts[id(first)] == counts[id(second)] == 0

    def test_an_exclusion_reaching_into_a_memo_walks_it_afresh(self) -> None:
        """A key's object that the caller counted itself is left out, for that call only."""

        def call() -> None:
            pass

        memo = memoized()
        memo(Identity(call))
        assert memo_references(set())[id(call)] == 1
        storage = [obj for obj in gc.get_referents(memo) if type(obj) is dict]
        [key] = [
            obj
            for part in storage
            for held in part
            for obj in gc.get_referents(held)
            if isinstance(obj, Identity)
        ]
        excluded = {id(key)}
        del key, storage
        assert memo_references(excluded)[id(call)] == 0
        assert memo_references(set())[id(call)] == 1
