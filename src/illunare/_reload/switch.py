"""The atomic switch: every change of a flip gathered first, then made in one C-level pass.

Other threads and signal handlers get in only between bytecodes: CPython's
eval loop hands the GIL over, runs signal handlers and raises asynchronous
exceptions (``KeyboardInterrupt``, ``PyThreadState_SetAsyncExc``) when it
checks its "eval breaker", which it does while executing bytecode. A call
into C that executes no bytecode therefore runs from start to end with no
other thread in between and cannot be interrupted. A ``Switch`` collects
each change as a lazy ``map`` over a built-in callable (``setattr``,
``delattr``, ``dict.update``, wrapt's C ``__wrapped__`` setter,
``PyObject_GenericSetDict`` through ``ctypes.pythonapi``, which keeps the
GIL) and ``run()`` drains all of them with one
``deque(maxlen=0).extend(chain(...))``: one C call. Nothing observes half a
switch, and an asynchronous exception lands either before it or after it.

For that to hold, nothing inside may run Python code:

* no finalizer: every value the switch replaces stays referenced until the
  pass has ended (``keep``, or the leaving version for proxy targets), so no
  ``__del__`` or weakref callback runs in it;
* no garbage collection: the caller disables it around the whole flip, as a
  collection could run finalizers of unrelated objects;
* no attribute hooks: classes whose metaclass intercepts attribute
  assignment, or has data descriptors, keep one class object per version
  instead (``classes.rewritable``); special names are never given
  placeholders (``inflight.py``).

Every step is also built not to fail: a name to delete is set first, so a
concurrent ``del`` between planning and switching cannot make ``delattr``
raise half way.
"""

from __future__ import annotations

import itertools
import types
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from illunare._reload.classes import ClassState
from illunare._reload.namespace import namespace_step
from illunare._reload.proxy import HotFunction, retarget

__all__ = ["Switch"]

# Stands in for a class attribute between the two halves of a deletion.
_PLACEHOLDER = object()

# Drains an iterator in C, keeping nothing: shared, since it has no state
# (a new deque per switch would cost more than the switch's bookkeeping).
_drain = deque[object](maxlen=0).extend


class Switch:
    """The changes of one flip (of one module or of several), applied together by ``run()``."""

    __slots__ = ("_keep", "_steps")

    def __init__(self) -> None:
        self._steps: list[Iterator[object]] = []
        # What the steps replace: referenced until the pass ends.
        self._keep: list[object] = []

    def namespace(self, module: types.ModuleType, namespace: dict[str, Any]) -> None:
        """Make ``namespace`` the ``__dict__`` of ``module``."""
        self._steps.append(namespace_step(module, namespace))
        self._keep.append(module.__dict__)

    def carry(self, source: dict[str, Any], target: dict[str, Any], names: Collection[str]) -> None:
        """Copy the values that ``names`` have in ``source`` at the switch into ``target``."""
        if not names:
            return
        # Lazy, so that the names present and their values are read at the switch.
        keys, lookups = itertools.tee(filter(source.__contains__, names))
        pairs = zip(keys, map(source.__getitem__, lookups), strict=True)
        self._steps.append(map(self._keep.extend, (map(target.get, names),)))
        self._steps.append(map(target.update, (pairs,)))

    def class_contents(self, cls: type, delete: Sequence[str], state: ClassState) -> None:
        """Delete the attributes ``delete`` of ``cls`` and set every attribute of ``state``."""
        classes = itertools.repeat(cls)
        self._steps.append(map(self._keep.extend, (cls.__dict__.values(),)))
        if delete:
            self._steps.append(map(setattr, classes, delete, itertools.repeat(_PLACEHOLDER)))
            self._steps.append(map(delattr, classes, delete))
        self._steps.append(map(setattr, classes, state.keys(), state.values()))

    def retarget(
        self, proxies: Iterable[HotFunction], targets: Iterable[Callable[..., Any]]
    ) -> None:
        """Point each proxy at its target.

        What a proxy points at before is a function of a kept version (the
        leaving one, which the caller holds) or the proxy's own removed-name
        stub, so nothing is freed: reading every target to keep it too would
        cost as much as retargeting. (A target assigned to a proxy by hand,
        outside illunare, is not covered.)
        """
        self._steps.append(map(retarget, proxies, targets))

    def attribute(self, owner: object, name: str, value: object) -> None:
        """Set one plain (slot or instance dict) attribute, bypassing any ``__setattr__`` hook."""
        self._keep.append(getattr(owner, name))
        self._steps.append(itertools.starmap(object.__setattr__, ((owner, name, value),)))

    def run(self) -> None:
        """Apply every change in one C-level pass (see the module docstring).

        The caller must have disabled garbage collection (``gc.disable()``):
        a collection could run finalizers of unrelated objects in the pass.
        """
        try:
            _drain(itertools.chain.from_iterable(self._steps))
        finally:
            self._steps.clear()
