"""Binding a version's namespace to the module's stable objects, and switching versions.

``absorb`` runs once per version, before it can go live: every function of
the namespace is replaced by the module's stable proxy for its name, every
class by the module's stable class (its contents saved as that version's
class state). ``flip`` then makes a version live with as little work as
possible, planned first and applied as one atomic ``Switch``: the namespace
pointer, the preserved values, the class attributes that differ, the proxy
targets and the tracked module's current version, all in one C-level pass.
A class gets every attribute of the target version set (a C-level setattr
costs less than finding, in Python, the ones that differ) and the others
deleted.
"""

from __future__ import annotations

import contextlib
import types
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from illunare._reload.classes import (
    ClassState,
    class_state,
    enum_state,
    incompatibility,
    keeps_identity,
    kept_names,
    rebind_class_cells,
)
from illunare._reload.enums import new_members, replace_members
from illunare._reload.inflight import VERSION_KEY, Removed, VersionContents
from illunare._reload.models import unpin
from illunare._reload.namespace import is_module
from illunare._reload.pause import collection_paused
from illunare._reload.proxy import HotFunction
from illunare._reload.registrations import exchange
from illunare._reload.switch import Switch
from illunare._reload.versions import ModuleVersion, TrackedModule

__all__ = [
    "Absorbed",
    "absorb",
    "class_problems",
    "flip",
    "flip_many",
    "kept_data",
    "plan",
    "stable_classes",
]

_NOTHING: Mapping[type, type] = types.MappingProxyType({})

_FunctionType = types.FunctionType

# Tracked module -> class name -> a ``Removed`` placeholder for each
# (non-special) attribute name that some version of the class defined:
# what a flip puts where the version it switches to lacks one.
_placeholders: weakref.WeakKeyDictionary[TrackedModule, dict[str, dict[str, Removed]]] = (
    weakref.WeakKeyDictionary()
)


def _is_wrapper_of(value: object, module: str) -> bool:
    """A functools.wraps-style wrapper (lru_cache ...) made in ``module``."""
    return (
        callable(value)
        and not isinstance(value, type)
        and hasattr(value, "__wrapped__")
        and getattr(value, "__module__", None) == module
    )


def kept_class(tracked: TrackedModule, value: object, key: str) -> type | None:
    """The stable class for ``value``, a class defined at the top level of the module as ``key``.

    ``None`` for anything else, and for classes whose identity cannot be kept
    (``classes.keeps_identity``): those keep their own class object per version.
    """
    if not (
        isinstance(value, type) and value.__module__ == tracked.name and value.__qualname__ == key
    ):
        return None
    stable = tracked.classes.get(key, value)
    return stable if keeps_identity(value, stable) else None


#: What ``absorb`` finds of a version: its functions by qualified name, its
#: class states, and (weakly) the class objects whose contents it moved.
Absorbed = tuple[
    dict[str, Callable[..., Any]], dict[str, ClassState], tuple[weakref.ref[type], ...]
]


def absorb(tracked: TrackedModule, namespace: dict[str, Any], hot_names: set[str]) -> Absorbed:
    """Bind ``namespace`` to the stable proxies and classes of ``tracked``.

    Returns the version's functions by qualified name and its class states,
    which the namespace also keeps for its calls in flight (``inflight.py``),
    and the class objects its class statements made whose contents moved
    into the stable classes (``ModuleVersion.husks``).
    """
    name = tracked.name
    targets: dict[str, Callable[..., Any]] = {}
    classes: dict[str, ClassState] = {}
    stable_of: dict[type, type] = {}
    rebound: dict[str, object] = {}
    others: list[str] = []
    for key, value in list(namespace.items()):
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
        elif (stable := kept_class(tracked, value, key)) is not None:
            tracked.classes.setdefault(key, stable)
            unpin(value)
            stable_of[value] = rebound[key] = stable
            classes[key] = _absorb_class(tracked, key, value, hot_names, targets, stable=stable)
        elif _is_wrapper_of(value, name):
            targets[key] = value
            rebound[key] = tracked.proxy(key, value)
        else:
            others.append(key)
    _adopt_members(namespace, classes, stable_of)
    namespace.update(rebound)
    for key in others:
        value = namespace.get(key)  # another thread may have removed it meanwhile
        replacement = stable_of.get(type(value))
        if replacement is not None and replacement is not type(value):
            # An instance made by the new module code, e.g. DEFAULT = Cls().
            with contextlib.suppress(TypeError):
                value.__class__ = replacement
    _settle_classes(stable_of)
    namespace[VERSION_KEY] = VersionContents(name, targets, classes)
    husks = tuple(weakref.ref(new) for new, stable in stable_of.items() if new is not stable)
    return targets, classes, husks


def _absorb_class(
    tracked: TrackedModule,
    key: str,
    cls: type,
    hot_names: set[str],
    targets: dict[str, Callable[..., Any]],
    *,
    stable: type,
) -> dict[str, object]:
    state = enum_state(
        cls,
        stable,
        {
            attribute: member
            for attribute, member in class_state(cls).items()
            if type(member) is not Removed  # a stable class seen while a name is missing
        },
    )
    placeholders = _placeholders.setdefault(tracked, {}).setdefault(key, {})
    for attribute in state:
        if attribute not in placeholders and not (
            attribute.startswith("__") and attribute.endswith("__")
        ):
            placeholders[attribute] = Removed(attribute)
            tracked.generation += 1  # every version's class plans lack it
    for attribute, member in state.items():
        qualname = f"{key}.{attribute}"
        wrapper: Any = None
        function = member
        if type(member) is staticmethod or type(member) is classmethod:
            wrapper, function = type(member), member.__func__
        if isinstance(function, HotFunction):
            targets[qualname] = function.__wrapped__
            function = tracked.adopt(qualname, function)
        elif isinstance(function, _FunctionType):
            if wrapper is classmethod and qualname not in hot_names:
                # Not a target: frameworks keep it bound to the class in the
                # version's own records (pydantic's validators), out of the
                # stale check's reach. ``kind_changes`` reads it from the class.
                continue
            targets[qualname] = function
            if qualname not in hot_names:
                continue
            function = tracked.proxy(qualname, function)
        else:
            continue
        # A static or class method stays one, around the stable proxy.
        state[attribute] = function if wrapper is None else wrapper(function)
    return state


def _adopt_members(
    namespace: dict[str, Any], classes: Mapping[str, ClassState], stable_of: Mapping[type, type]
) -> None:
    """Put the stable members of kept enums where the new code holds its own (``enums.py``).

    Also inside its data (``PRICES = {Status.PAID: 10}``) and class attributes.
    """
    members = new_members(stable_of)
    if members:
        replace_members(namespace, members)
        for state in classes.values():
            replace_members(state, members)  # type: ignore[arg-type]  # built by absorb, a dict


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


def _stable(
    tracked: TrackedModule,
    namespace: Mapping[str, Any],
    cls: type,
    released: Mapping[type, type] = _NOTHING,
) -> type:
    """``cls``, or the stable class it is a new version of.

    The module's own new classes, and those of other modules of the same
    release (``released``: new class -> its stable class).
    """
    found = released.get(cls)
    if found is not None:
        return found
    key = cls.__qualname__
    return tracked.classes.get(key, cls) if namespace.get(key) is cls else cls


def stable_classes(tracked: TrackedModule, namespace: Mapping[str, Any]) -> dict[type, type]:
    """Each new class of ``namespace`` that will be moved into a stable class -> that class."""
    found = {}
    for key, new in list(namespace.items()):
        stable = tracked.classes.get(key)
        if stable is not None and stable is not new and kept_class(tracked, new, key) is not None:
            found[new] = stable
    return found


def class_problems(
    tracked: TrackedModule, namespace: Mapping[str, Any], released: Mapping[type, type] = _NOTHING
) -> list[str]:
    """Why the classes of ``namespace`` cannot be moved into the stable classes."""
    problems = []
    for new, stable in stable_classes(tracked, namespace).items():
        problem = incompatibility(
            stable,
            new,
            _stable(tracked, namespace, type(new), released),
            tuple(_stable(tracked, namespace, base, released) for base in new.__bases__),
        )
        if problem is not None:
            problems.append(problem)
    return problems


def flip(tracked: TrackedModule, target: ModuleVersion, carry: Collection[str]) -> None:
    """``flip_many`` of one module."""
    flip_many(((tracked, target, carry),))


def flip_many(
    changes: Iterable[tuple[TrackedModule, ModuleVersion, Collection[str]]],
    attributes: Iterable[tuple[object, str, object]] = (),
) -> None:
    """Make each ``target`` the live version of its module, all in one atomic switch.

    For each module: its namespace, class contents and proxy targets.
    ``carry`` names values that move from the leaving namespace into
    ``target``'s, with the value they have at the switch. Every thread sees
    the modules wholly before or wholly after; flipping to the current version
    re-applies all of it (the repair after an interrupted switch, or the end
    of a rollout that reverts), leaving the registrations as they are. The
    same switch sets each (owner, name, value) of ``attributes``. The caller
    holds ``LOCK``.
    """
    with collection_paused():
        switch = Switch()
        registrations = []
        for tracked, target, carry in changes:
            leaving = tracked.current
            if leaving is not target:
                registrations.append((leaving.registrations, target.registrations))
            old, new = leaving.namespace, target.namespace
            if "__path__" in old and old is not new:
                # Submodules imported since are attributes of the package itself.
                prefix = tracked.name + "."
                for key, value in old.items():
                    if is_module(value) and getattr(value, "__name__", None) == prefix + key:
                        new.setdefault(key, value)
            proxies, functions = tracked.bindings(target)
            switch.namespace(tracked.module, new)
            switch.carry(old, new, carry)
            if target.classes:
                data = leaving is not target and leaving.class_data and target.class_data
                for name, stable, kept, planned in _class_plans(tracked, target):
                    # Beyond those kept, the class has what the leaving version's
                    # special names (which get no placeholders) or a hand set.
                    names = stable.__dict__.keys()
                    delete = () if names <= kept else list(names - kept)
                    live = kept_data(leaving, target, name, stable) if data else ()
                    contents = (
                        {key: value for key, value in planned.items() if key not in live}
                        if live
                        else planned
                    )
                    switch.class_contents(stable, delete, contents)
            switch.retarget(proxies, functions)
            switch.attribute(tracked, "current", target)
        for owner, name, value in attributes:
            switch.attribute(owner, name, value)
        switch.run()
        # Right after the switch, not in it: withdrawing runs Python code (a
        # dict key's __eq__). Meanwhile another thread may see the new code
        # with the leaving version's registrations still in place.
        for withdrawn, restored in registrations:
            if withdrawn or restored:  # most versions register nothing
                exchange(withdrawn, restored)


def plan(tracked: TrackedModule, version: ModuleVersion) -> None:
    """Work out now what a flip to ``version`` needs, so that the flip itself is short.

    Its bindings (proxies and their targets) and class plans: made once,
    reused by every flip to it until the module gets a new proxy or class
    attribute name. Under LOCK.
    """
    tracked.bindings(version)
    _class_plans(tracked, version)


def _class_plans(
    tracked: TrackedModule, version: ModuleVersion
) -> tuple[tuple[str, type, frozenset[str], ClassState], ...]:
    """For each class of ``version``: its name, stable class, the names a switch keeps, contents.

    Computed once per version (until the module gets a new proxy or class
    attribute name: ``TrackedModule.generation``), so that a flip to a
    version it has been at before plans nothing per attribute.
    """
    cached = version.class_plans
    if cached is None or cached[0] != tracked.generation:
        placeholders = _placeholders.get(tracked, {})
        plans = []
        for name, state in version.classes.items():
            stable = tracked.classes[name]
            contents = _with_placeholders(state, placeholders.get(name))
            plans.append((name, stable, kept_names(stable, contents), contents))
        cached = version.class_plans = (tracked.generation, tuple(plans))
    return cached[1]


def kept_data(leaving: ModuleVersion, target: ModuleVersion, name: str, stable: type) -> list[str]:
    """The data attributes of class ``name`` defined alike in both versions: they stay live.

    Not set by the switch, they keep the value they have at that moment,
    whichever way it goes (a swap or a rollback).
    """
    before, after = leaving.class_data.get(name), target.class_data.get(name)
    if not before or not after:
        return []
    present = stable.__dict__
    return [
        key for key, expression in after.items() if before.get(key) == expression and key in present
    ]


def _with_placeholders(state: ClassState, known: dict[str, Removed] | None) -> ClassState:
    """``state`` plus a ``Removed`` placeholder for each name another version defined.

    So that calls still running on that version find it while no one else
    does (``inflight.py``).
    """
    if not known or known.keys() <= state.keys():
        return state
    return {**state, **{key: known[key] for key in known.keys() - state.keys()}}
