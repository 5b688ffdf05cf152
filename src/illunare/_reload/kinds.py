"""The kind of a function (plain, coroutine, generator, async generator) is part of its contract.

Frameworks decide how to call a function when it is registered: a web
framework awaits an ``async def`` endpoint and runs a ``def`` one in a
thread pool, a task runner iterates a generator. A proxy registered there
keeps the kind it had: a new version that turns ``def`` into ``async def``
(or a generator into a plain function) would make every call return an
unawaited coroutine, or a result that is not iterated. Such a version is
refused, naming the function.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["kind_changes"]

_KINDS = {
    inspect.CO_ASYNC_GENERATOR: "an async generator function",
    inspect.CO_COROUTINE: "a coroutine function (async def)",
    inspect.CO_GENERATOR: "a generator function",
    0: "a plain function (def)",
}
_MASK = inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE | inspect.CO_GENERATOR
_FunctionType = types.FunctionType


def _kind(function: object) -> int | None:
    """The kind flags of ``function`` (unwrapped); ``None`` if it is no Python function."""
    if type(function) is not _FunctionType or hasattr(function, "__wrapped__"):
        try:
            if isinstance(function, (staticmethod, classmethod)):
                function = function.__func__
            function = inspect.unwrap(function)  # type: ignore[arg-type]
        except ValueError:  # a cycle of __wrapped__
            return None
        if not isinstance(function, _FunctionType):
            return None
    return function.__code__.co_flags & _MASK


def kind_changes(
    module: str,
    old: Mapping[str, Callable[..., Any]],
    classes: Mapping[str, Mapping[str, object]],
    new: Mapping[str, object],
) -> list[str]:
    """The functions of ``old`` (by qualified name) that ``new`` defines as another kind.

    ``old`` and ``classes`` are a version's targets and class states (whose
    class methods are no targets); ``new`` is a version's namespace; a
    method ``Cls.name`` is looked up in that namespace's class ``Cls``.
    """
    problems = []
    for qualname, function in _with_class_methods(old, classes).items():
        owner, _, attribute = qualname.rpartition(".")
        if owner:
            cls = new.get(owner)
            value = cls.__dict__.get(attribute) if isinstance(cls, type) else None
        else:
            value = new.get(qualname)
        before, after = _kind(function), _kind(value)
        if before is not None and after is not None and before != after:
            problems.append(
                f"{module}.{qualname} changed from {_KINDS[before]} to {_KINDS[after]}: "
                "callers that registered it decided how to call it"
            )
    return problems


def _with_class_methods(
    old: Mapping[str, Callable[..., Any]], classes: Mapping[str, Mapping[str, object]]
) -> Mapping[str, object]:
    """``old`` and the class methods of ``classes``, by qualified name."""
    found: dict[str, object] = {
        f"{name}.{attribute}": member
        for name, state in classes.items()
        for attribute, member in state.items()
        if type(member) is classmethod
    }
    if not found:
        return old
    found.update(old)
    return found
