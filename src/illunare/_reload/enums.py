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


def replace_members(namespace: dict[str, Any], members: Mapping[object, object]) -> None:
    """Replace, in ``namespace``, each new member (a key of ``members``) by its stable one.

    Followed: the namespace's values, and inside them dicts, lists, sets,
    tuples and frozensets, the defaults of functions, and the ``__dict__``
    of instances of the module's classes. Other holders (closures, objects
    of other modules) keep the new member.
    """
    kinds = {type(member) for member in members}
    module = namespace.get("__name__")
    seen: set[int] = set()

    def visit(value: Any) -> Any:
        kind = type(value)
        if kind in kinds:
            return members.get(value, value)
        if id(value) in seen:
            return value
        seen.add(id(value))
        if isinstance(value, dict):
            items = [(visit(key), visit(item)) for key, item in value.items()]
            value.clear()
            value.update(items)
        elif isinstance(value, (list, set)):
            items = [visit(item) for item in value]
            value.clear()
            value.extend(items) if isinstance(value, list) else value.update(items)
        elif kind is tuple or kind is frozenset:
            items = [visit(item) for item in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                return kind(items)
        elif kind is types.FunctionType:
            if value.__defaults__:
                value.__defaults__ = visit(value.__defaults__)
            if value.__kwdefaults__:
                visit(value.__kwdefaults__)
        elif kind.__module__ == module and not isinstance(value, type):
            attributes = getattr(value, "__dict__", None)
            if type(attributes) is dict:
                visit(attributes)
        return value

    for key, value in list(namespace.items()):
        if not (key.startswith("__") and key.endswith("__")):
            namespace[key] = visit(value)
