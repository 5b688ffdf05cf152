"""Enum classes across versions: one class object and one set of members while they are unchanged.

A new version's ``class Status(Enum)`` creates a new class with new member
objects. When its members are those of the stable class (same names and
aliases, in the same order, with equal values of the same types), the
stable class and its members stay the ones the program sees: the new
version contributes its methods and other attributes, while the member
entries and the enum machinery's own bookkeeping (``_member_map_``,
``_value2member_map_`` ...) stay the stable class's. The members the new
code created are replaced by the stable ones wherever the new namespace
holds them (``PRICES = {Status.PAID: 10}``), so that lookups by the stable
members keep working.

An enum whose members changed keeps its own new class object, as any class
that cannot be rewritten in place: members made before the swap are then
not the new ones (``is``, ``==`` and dict lookups tell them apart).

``EnumType.__setattr__`` refuses to reassign members and is Python code;
the switch sets class attributes through the C-level ``type.__setattr__``
(``switch.py``), and only ever sets the names of the class's own state.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["ENUM_INTERNALS", "is_enum", "new_members", "replace_members", "same_members"]

#: Entries the enum machinery puts in an enum class's ``__dict__`` (3.10 to
#: 3.13): they describe the members, so they stay the stable class's.
ENUM_INTERNALS = frozenset(
    {
        "__new__",
        "_member_map_",
        "_member_names_",
        "_member_type_",
        "_value2member_map_",
        "_new_member_",
        "_use_args_",
        "_value_repr_",
        "_unhashable_values_",
        "_unhashable_values_map_",
        "_hashable_values_",
        "_flag_mask_",
        "_all_bits_",
        "_boundary_",
        "_singles_mask_",
        "_inverted_",
    }
)


def is_enum(cls: type) -> bool:
    """Whether ``cls`` is an ``enum.Enum`` subclass with the standard metaclass (or a subclass)."""
    return isinstance(cls, enum.EnumMeta)


def _signature(cls: Any) -> list[tuple[str, str, type, object]]:
    return [
        (name, member._name_, type(member._value_), member._value_)
        for name, member in cls._member_map_.items()
    ]


def _same_type(a: type, b: type) -> bool:
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def same_members(stable: type, new: type) -> bool:
    """Whether the enum ``new`` has the members of ``stable``: names, aliases, order, values."""
    if not _same_type(stable._member_type_, new._member_type_):  # type: ignore[attr-defined]
        return False
    old, fresh = _signature(stable), _signature(new)
    if len(old) != len(fresh):
        return False
    try:
        return all(
            a[:2] == b[:2] and _same_type(a[2], b[2]) and bool(a[3] == b[3])
            for a, b in zip(old, fresh, strict=True)
        )
    except Exception:  # noqa: BLE001  # values that cannot be compared are not the same
        return False


def new_members(stable_of: Mapping[type, type]) -> dict[object, object]:
    """Each member of the new enums of ``stable_of`` (new class -> stable) -> its stable member."""
    return {
        member: stable._member_map_[name]  # type: ignore[attr-defined]
        for new, stable in stable_of.items()
        if new is not stable and is_enum(new)
        for name, member in new._member_map_.items()  # type: ignore[attr-defined]
    }


def stable_member(value: object, classes: Mapping[str, type]) -> object:
    """``value``, or the stable member it is when it is a member of a kept enum's new class.

    ``classes``: the module's stable classes by name (``TrackedModule.classes``).
    """
    kind = type(value)
    if not is_enum(kind):
        return value
    stable = classes.get(kind.__qualname__)
    if stable is None or stable is kind or stable.__module__ != kind.__module__:
        return value
    if not same_members(stable, kind):
        return value
    return stable._member_map_[value._name_]  # type: ignore[attr-defined]


def replace_members(namespace: dict[str, Any], members: Mapping[object, object]) -> None:
    """Replace, in ``namespace``, each new member (a key of ``members``) by its stable one.

    Followed: the namespace's values, and inside them dicts, lists, sets,
    tuples and frozensets, the defaults of functions, and the ``__dict__``
    of instances of the module's classes. Other holders (closures, objects
    of other modules) keep the new member. A container is changed only
    where it holds a new member, one item at a time (a dict whose keys are
    new members is refilled in its order): objects the new code did not
    fill with its members are left as they are.
    """
    replacer = _Replacer(members, namespace.get("__name__"))
    for key, value in list(namespace.items()):
        if not (key.startswith("__") and key.endswith("__")):
            replaced = replacer.visit(value)
            if replaced is not value:
                namespace[key] = replaced


class _Replacer:
    """Walks values, replacing new members by stable ones (see ``replace_members``)."""

    def __init__(self, members: Mapping[object, object], module: object) -> None:
        self.members = members
        self.kinds = {type(member) for member in members}
        self.module = module
        self.seen: set[int] = set()

    def visit(self, value: Any) -> Any:
        """``value``, or what replaces it (a member, a rebuilt tuple or frozenset)."""
        kind = type(value)
        if kind in self.kinds:
            return self.members.get(value, value)
        if id(value) in self.seen:
            return value
        self.seen.add(id(value))
        if isinstance(value, dict):
            self._dict(value)
        elif isinstance(value, (list, set)):
            self._collection(value)
        elif kind is tuple or kind is frozenset:
            items = [self.visit(item) for item in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                return kind(items)
        elif kind is types.FunctionType:
            self._function(value)
        elif kind.__module__ == self.module and type(getattr(value, "__dict__", None)) is dict:
            self._dict(value.__dict__)
        return value

    def _dict(self, mapping: dict[Any, Any]) -> None:
        pairs = [(key, self.visit(key), value, self.visit(value)) for key, value in mapping.items()]
        if any(new_key is not key for key, new_key, _, _ in pairs):
            mapping.clear()
            mapping.update((new_key, new_value) for _, new_key, _, new_value in pairs)
        else:
            mapping.update((key, new) for key, _, value, new in pairs if new is not value)

    def _collection(self, collection: list[Any] | set[Any]) -> None:
        for index, item in enumerate(list(collection)):
            replaced = self.visit(item)
            if replaced is item:
                continue
            if isinstance(collection, list):
                collection[index] = replaced
            else:
                collection.discard(item)
                collection.add(replaced)

    def _function(self, function: types.FunctionType) -> None:
        if function.__defaults__:
            defaults = self.visit(function.__defaults__)
            if defaults is not function.__defaults__:
                function.__defaults__ = defaults
        if function.__kwdefaults__:
            self._dict(function.__kwdefaults__)
