"""Keeping class identity across versions: one live class object, its contents swapped.

A new version's class statement creates a new class object. Handing that out
would break ``isinstance``, pickling, ``super()`` and every instance already
alive, so the class first loaded stays the one the program sees (the
"stable" class) and each version contributes only the contents of its
``__dict__``. Switching versions rewrites the stable class's attributes in
place (atomically: see ``switch.py``); functions that use ``super()`` or
``__class__`` have their implicit ``__class__`` cell pointed at the stable class.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Iterator, Mapping

__all__ = [
    "ClassState",
    "class_state",
    "incompatibility",
    "rebind_class_cells",
    "rewritable",
    "stale_names",
]

#: The attribute values that make up one version of a class.
ClassState = Mapping[str, object]

# Attributes owned by the class object's layout, never copied between versions.
_LAYOUT = frozenset({"__dict__", "__weakref__"})


def _slots(cls: type) -> frozenset[str]:
    slots = cls.__dict__.get("__slots__", ())
    return frozenset((slots,) if isinstance(slots, str) else slots)


def class_state(cls: type) -> dict[str, object]:
    """The attributes of ``cls`` that a version defines."""
    skip = _LAYOUT | _slots(cls)
    return {name: value for name, value in cls.__dict__.items() if name not in skip}


def stale_names(cls: type, state: ClassState) -> list[str]:
    """The attributes of ``cls`` that ``state`` does not define: what a switch to it deletes."""
    stale = cls.__dict__.keys() - state.keys()
    if stale:
        stale -= _LAYOUT | _slots(cls)
    return list(stale)


def rewritable(cls: type) -> bool:
    """Whether setting and deleting attributes of ``cls`` runs no Python code.

    A metaclass that intercepts attribute assignment (``enum.Enum`` refuses
    to reassign members, for one), or defines a data descriptor that a class
    attribute of the same name would go through, runs its own code for each
    change: such classes cannot be rewritten in place, let alone atomically.
    """
    return not any(
        name in _HOOKS or hasattr(type(value), "__set__") or hasattr(type(value), "__delete__")
        for klass in inspect.getmro(type(cls))
        if klass is not type and klass is not object
        for name, value in vars(klass).items()
    )


_HOOKS = frozenset({"__setattr__", "__delattr__"})


def incompatibility(stable: type, new: type, stable_bases: tuple[type, ...]) -> str | None:
    """Why the contents of ``new`` cannot be moved into ``stable``, or ``None``.

    ``stable_bases`` are the bases of ``new`` with the module's own temporary
    classes replaced by their stable counterparts.
    """
    name = stable.__qualname__
    if type(new) is not type(stable):
        return f"class {name} changed its metaclass"
    if stable_bases != stable.__bases__:
        return f"class {name} changed its base classes"
    if _slots(new) != _slots(stable):
        return f"class {name} changed its __slots__"
    return None


def _functions(value: object) -> Iterator[types.FunctionType]:
    """The plain functions inside a class attribute: methods, wrappers and descriptors."""
    seen: set[int] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.FunctionType):
            yield item
        if isinstance(item, (staticmethod, classmethod)):
            pending.append(item.__func__)
        elif isinstance(item, property):
            pending.extend(part for part in (item.fget, item.fset, item.fdel) if part)
        elif isinstance(item, functools.cached_property):
            pending.append(item.func)
        wrapped = getattr(item, "__wrapped__", None)
        if wrapped is not None:
            pending.append(wrapped)


def rebind_class_cells(new: type, stable: type) -> None:
    """Point the ``__class__`` cells of the methods of ``new`` at ``stable``."""
    for value in new.__dict__.values():
        for function in _functions(value):
            code = function.__code__
            if "__class__" not in code.co_freevars or function.__closure__ is None:
                continue
            cell = function.__closure__[code.co_freevars.index("__class__")]
            if cell.cell_contents is new:
                cell.cell_contents = stable
