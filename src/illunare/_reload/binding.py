"""Binding a version's namespace to the module's stable objects, and switching versions.

``absorb`` runs once per version, before it can go live: every function of
the namespace is replaced by the module's stable proxy for its name, every
class by the module's stable class (its contents saved as that version's
class state). ``flip`` then makes a version live with as little work as
possible: one pointer for the namespace, one C-level pass over the proxies,
and the class attributes that differ.
"""

from __future__ import annotations

import contextlib
import gc
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from illunare._reload.classes import (
    ClassState,
    apply_class_state,
    class_state,
    incompatibility,
    rebind_class_cells,
)
from illunare._reload.namespace import install_namespace
from illunare._reload.proxy import HotFunction, retarget_all
from illunare._reload.versions import ModuleVersion, TrackedModule

__all__ = ["absorb", "class_problems", "flip"]

_FunctionType = types.FunctionType


def _is_wrapper_of(value: object, module: str) -> bool:
    """A functools.wraps-style wrapper (lru_cache ...) made in ``module``."""
    return (
        callable(value)
        and not isinstance(value, type)
        and hasattr(value, "__wrapped__")
        and getattr(value, "__module__", None) == module
    )


def is_class_of(value: object, module: str, key: str) -> bool:
    """A class defined at the top level of ``module`` under ``key``, whose identity is kept.

    Classes whose metaclass intercepts attribute assignment (``enum.Enum``
    refuses to reassign members, for one) cannot have their contents
    rewritten safely; each version keeps its own class object for those.
    """
    if not isinstance(value, type) or value.__module__ != module or value.__qualname__ != key:
        return False
    metaclass = type(value)
    return metaclass.__setattr__ is type.__setattr__ and metaclass.__delattr__ is type.__delattr__


def absorb(
    tracked: TrackedModule, namespace: dict[str, Any], hot_names: set[str]
) -> tuple[dict[str, Callable[..., Any]], dict[str, ClassState]]:
    """Bind ``namespace`` to the stable proxies and classes of ``tracked``.

    Returns the version's functions by qualified name and its class states.
    """
    name = tracked.name
    targets: dict[str, Callable[..., Any]] = {}
    classes: dict[str, ClassState] = {}
    stable_of: dict[type, type] = {}
    rebound: dict[str, object] = {}
    instances: list[object] = []
    for key, value in namespace.items():
        if key.startswith("__") and key.endswith("__"):
            continue  # module machinery and hooks stay per version
        kind = type(value)
        if kind is _FunctionType:
            if value.__module__ == name:
                targets[key] = value
                rebound[key] = tracked.proxy(key, value)
        elif kind is HotFunction:
            if value._self_module == name:
                targets[key] = value.__wrapped__
                rebound[key] = tracked.adopt(key, value)
        elif is_class_of(value, name, key):
            stable = stable_of[value] = tracked.classes.setdefault(key, value)
            rebound[key] = stable
            classes[key] = _absorb_class(tracked, key, value, hot_names, targets)
        elif _is_wrapper_of(value, name):
            targets[key] = value
            rebound[key] = tracked.proxy(key, value)
        else:
            instances.append(value)
    namespace.update(rebound)
    for value in instances:
        replacement = stable_of.get(type(value))
        if replacement is not None and replacement is not type(value):
            # An instance made by the new module code, e.g. DEFAULT = Cls().
            with contextlib.suppress(TypeError):
                value.__class__ = replacement
    _settle_classes(stable_of)
    return targets, classes


def _absorb_class(
    tracked: TrackedModule,
    key: str,
    cls: type,
    hot_names: set[str],
    targets: dict[str, Callable[..., Any]],
) -> ClassState:
    state = class_state(cls)
    for attribute, member in state.items():
        qualname = f"{key}.{attribute}"
        if isinstance(member, HotFunction):
            targets[qualname] = member.__wrapped__
            state[attribute] = tracked.adopt(qualname, member)
        elif isinstance(member, _FunctionType):
            targets[qualname] = member
            if qualname in hot_names:
                state[attribute] = tracked.proxy(qualname, member)
    return state


def _settle_classes(stable_of: Mapping[type, type]) -> None:
    """Make a version's classes refer to the stable classes instead of their own."""
    for new, stable in stable_of.items():
        if new is stable:
            # A class first seen now: a subclass of the module's own classes
            # must inherit from their stable objects.
            bases = tuple(stable_of.get(base, base) for base in new.__bases__)
            if bases != new.__bases__:
                new.__bases__ = bases
        else:
            rebind_class_cells(new, stable)


def stable_bases(
    tracked: TrackedModule, namespace: Mapping[str, Any], cls: type
) -> tuple[type, ...]:
    """The bases of ``cls``, the module's own new classes replaced by their stable ones."""
    return tuple(
        tracked.classes.get(base.__qualname__, base)
        if namespace.get(base.__qualname__) is base
        else base
        for base in cls.__bases__
    )


def class_problems(tracked: TrackedModule, namespace: Mapping[str, Any]) -> list[str]:
    """Why the classes of ``namespace`` cannot be moved into the stable classes."""
    problems = []
    for key, new in namespace.items():
        stable = tracked.classes.get(key)
        if stable is None or stable is new or not is_class_of(new, tracked.name, key):
            continue
        problem = incompatibility(stable, new, stable_bases(tracked, namespace, new))
        if problem is not None:
            problems.append(problem)
    return problems


def flip(tracked: TrackedModule, target: ModuleVersion, carry: Iterable[str]) -> None:
    """Make ``target`` the live version: its namespace, class contents and proxy targets.

    ``carry`` names values that move from the leaving namespace into ``target``'s.
    """
    old, new = tracked.current.namespace, target.namespace
    for key in carry:
        if key in old:
            new[key] = old[key]
    if "__path__" in old:
        # Submodules imported since are attributes of the package itself.
        prefix = tracked.name + "."
        for key, value in old.items():
            if isinstance(value, types.ModuleType) and value.__name__ == prefix + key:
                new.setdefault(key, value)
    proxies, functions = tracked.bindings(target)
    # A garbage collection triggered by the few objects allocated below would
    # walk every object the new version just created, in the middle of the
    # switch; it runs right after it instead.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name, state in target.classes.items():
            apply_class_state(tracked.classes[name], state)
        install_namespace(tracked.module, new)
        retarget_all(proxies, functions)
        tracked.current = target
    finally:
        if collecting:
            gc.enable()
