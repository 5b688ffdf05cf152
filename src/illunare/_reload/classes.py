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

import ast
import enum
import functools
import inspect
import types
from collections.abc import Iterator, Mapping

from illunare._reload.enums import ENUM_INTERNALS, is_enum, same_members

__all__ = [
    "ClassState",
    "class_state",
    "data_attributes",
    "enum_state",
    "incompatibility",
    "keeps_identity",
    "kept_names",
    "rebind_class_cells",
    "rewritable",
]

#: The attribute values that make up one version of a class.
ClassState = Mapping[str, object]

# Attributes owned by the class object (its layout, its ABC registrations and
# caches), never copied between versions.
_LAYOUT = frozenset({"__dict__", "__weakref__", "_abc_impl"})


def _slots(cls: type) -> frozenset[str]:
    slots = cls.__dict__.get("__slots__", ())
    return frozenset((slots,) if isinstance(slots, str) else slots)


def class_state(cls: type) -> dict[str, object]:
    """The attributes of ``cls`` that a version defines."""
    skip = _LAYOUT | _slots(cls)
    return {name: value for name, value in list(cls.__dict__.items()) if name not in skip}


def keeps_identity(new: type, stable: type) -> bool:
    """Whether ``new`` can be moved into ``stable`` (or is the first version, ``new is stable``).

    An enum can when its members are unchanged (``enums.py``); any class
    only when it can be rewritten in place.
    """
    if not rewritable(new):
        return False
    return new is stable or not is_enum(new) or (is_enum(stable) and same_members(stable, new))


def enum_state(new: type, stable: type, state: dict[str, object]) -> dict[str, object]:
    """``state`` of the enum ``new`` with the members and enum internals of ``stable``."""
    if new is stable or not is_enum(new):
        return state
    kept = stable.__dict__
    for name in ENUM_INTERNALS | stable._member_map_.keys():  # type: ignore[attr-defined]
        if name in kept:
            state[name] = kept[name]
        else:
            state.pop(name, None)
    return state


def kept_names(cls: type, state: ClassState) -> frozenset[str]:
    """The attributes of ``cls`` that a switch to ``state`` keeps: the state's and the layout's.

    A switch deletes every other attribute the class has at that moment.
    """
    return _LAYOUT.union(_slots(cls), state)


def rewritable(cls: type) -> bool:
    """Whether ``cls`` can be rewritten in place with no Python code of its metaclass.

    For a class whose metaclass has its own ``__setattr__``, the switch
    sets and deletes attributes with the C-level ``type.__setattr__`` and
    ``type.__delattr__``, bypassing it: only ``enum.EnumMeta``'s may be, as
    it only guards members, which a switch never changes (``enums.py``). Any other
    metaclass that intercepts attribute assignment keeps a state of its own
    (an ORM's mapping, for one): such classes get a new class object per
    version. So do those whose metaclass has a data descriptor for a name
    the class itself defines, which setting it would run.
    """
    own = cls.__dict__
    return not any(
        name in _HOOKS
        or (name in own and (hasattr(type(value), "__set__") or hasattr(type(value), "__delete__")))
        for klass in inspect.getmro(type(cls))
        if klass not in _KNOWN_METACLASSES
        for name, value in list(vars(klass).items())
    )


_HOOKS = frozenset({"__setattr__", "__delattr__"})

# Metaclasses whose hooks and descriptors a switch may bypass.
_KNOWN_METACLASSES = (type, object, enum.EnumMeta)


def incompatibility(
    stable: type, new: type, metaclass: type, bases: tuple[type, ...]
) -> str | None:
    """Why the contents of ``new`` cannot be moved into ``stable``, or ``None``.

    ``metaclass`` and ``bases`` are those of ``new``, the module's own new
    classes replaced by their stable counterparts.
    """
    name = stable.__qualname__
    if metaclass is not type(stable):
        return f"class {name} changed its metaclass"
    if bases != stable.__bases__:
        return f"class {name} changed its base classes"
    if _slots(new) != _slots(stable):
        return (
            f"class {name} changed its __slots__ (a slotted class, such as an attrs.define or "
            "dataclass(slots=True) class, cannot gain or lose fields: the layout of its "
            "instances is fixed)"
        )
    if issubclass(stable, tuple) and getattr(new, "_fields", None) != getattr(
        stable, "_fields", None
    ):
        return (
            f"class {name} changed its fields (a NamedTuple or namedtuple class cannot gain, "
            "lose or reorder fields: its instances are tuples of the old fields)"
        )
    return None


def data_attributes(source: str, namespace: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """Class name -> data attribute -> its definition in ``source``, as a string.

    A data attribute is one that the class body of a top-level class of
    ``source`` assigns (``count = 0``, ``_cache: dict = {}``) and whose
    value in ``namespace``'s class is neither callable nor a descriptor.
    Its definition is the AST of the expression, with the definitions of
    the names it reads that the class body or the module assigns
    (``KIND = VERSION`` changes when ``VERSION = 2`` does). Between two
    versions that define it alike, it keeps its live value (``binding.flip``).
    """
    name = namespace.get("__name__")
    if not any(
        isinstance(value, type)
        and value.__module__ == name
        and any(
            _is_data(item) and not (key.startswith("__") and key.endswith("__"))
            for key, item in list(value.__dict__.items())
        )
        for value in list(namespace.values())
    ):
        return {}  # no class with data: the source need not be parsed again
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    module = _assignments(tree.body)
    found: dict[str, dict[str, str]] = {}
    for statement in tree.body:
        if not isinstance(statement, ast.ClassDef):
            continue
        cls = namespace.get(statement.name)
        if not isinstance(cls, type):
            continue
        body = _assignments(statement.body)
        found[cls.__qualname__] = {
            name: _definition(value, (body, module))
            for name, value in body.items()
            if not (name.startswith("__") and name.endswith("__"))
            and _is_data(cls.__dict__.get(name, _ABSENT))
        }
    return found


def _assignments(statements: list[ast.stmt]) -> dict[str, ast.expr]:
    """Name -> the expression last assigned to it by the simple assignments of ``statements``."""
    assigned: dict[str, ast.expr] = {}
    for item in statements:
        if isinstance(item, ast.Assign) and len(item.targets) == 1:
            target, value = item.targets[0], item.value
        elif isinstance(item, ast.AnnAssign) and item.value is not None:
            target, value = item.target, item.value
        else:
            continue
        if isinstance(target, ast.Name):
            assigned[target.id] = value
    return assigned


def _definition(expression: ast.expr, scopes: tuple[dict[str, ast.expr], ...]) -> str:
    """``expression`` and, transitively, the expressions assigned to the names it reads."""
    parts, pending, seen = [], [expression], set()
    while pending:
        item = pending.pop()
        parts.append(ast.dump(item))
        for node in ast.walk(item):
            if isinstance(node, ast.Name) and node.id not in seen:
                seen.add(node.id)
                found = next((scope[node.id] for scope in scopes if node.id in scope), None)
                if found is not None:
                    pending.append(found)
    return "\n".join(parts)


_ABSENT = object()


def _is_data(value: object) -> bool:
    return value is not _ABSENT and not callable(value) and not hasattr(type(value), "__get__")


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
    for value in list(new.__dict__.values()):
        for function in _functions(value):
            code = function.__code__
            if "__class__" not in code.co_freevars or function.__closure__ is None:
                continue
            cell = function.__closure__[code.co_freevars.index("__class__")]
            if cell.cell_contents is new:
                cell.cell_contents = stable
