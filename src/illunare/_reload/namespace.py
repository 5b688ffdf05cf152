"""Switching a live module object from one namespace dict to another in one step.

Each version of a module keeps its own namespace: the dict its functions use
as ``__globals__``. Switching versions replaces the module object's
``__dict__`` itself, so ``m.X``, ``vars(m)``, ``from m import X`` and
``m.X = value`` all see the current version, with plain module attribute
speed and no proxy in between.

Python code cannot assign a module's ``__dict__``; CPython's C API can:
``PyObject_GenericSetDict`` finds the object's dict field from its type
(``tp_dictoffset``), checks the value is a dict, and exchanges the two with
exact reference counts, all in one C call during which no other thread runs.
It is reached through ``ctypes.pythonapi``, whose calls keep the GIL. Only a
real module object is ever given to it: anything else (a mock, a proxy, an
object lying about its ``__class__``) is refused before any memory is
touched. The C function is looked up when the first ``HotReloader`` is made
(see ``interpreter.py``), never when illunare is imported.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

from illunare._reload.locking import LOCK
from illunare.exceptions import InvalidArgumentError

__all__ = ["install_namespace", "is_module", "namespace_step"]


def is_module(value: object) -> TypeGuard[types.ModuleType]:
    """Whether ``value`` really is a module object (its type, not what it claims).

    ``isinstance`` consults ``__class__``, which a ``MagicMock(spec=ModuleType)``,
    a wrapt proxy around a module or any object can fake; the memory layout
    the switch relies on is that of the real type.
    """
    return issubclass(type(value), types.ModuleType)


@functools.cache
def set_dict() -> Callable[[Any, Any, None], int]:
    """CPython's ``PyObject_GenericSetDict``, callable from Python (see ``interpreter.py``)."""
    import ctypes  # noqa: PLC0415  # only the swap machinery needs it, not flags users

    function = ctypes.pythonapi.PyObject_GenericSetDict
    function.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.c_void_p]
    function.restype = ctypes.c_int
    setter: Callable[[Any, Any, None], int] = function
    return setter


def _checked(module: object, namespace: object) -> types.ModuleType:
    if not is_module(module):
        raise InvalidArgumentError(f"only a module's namespace can be switched, not {module!r}")
    if type(namespace) is not dict:
        raise InvalidArgumentError(f"a module namespace must be a dict, got {namespace!r}")
    return module


# id of each ``__main__`` module switched -> its first namespace. CPython's
# code that runs a script holds that dict without a reference and still uses
# it at exit (removing ``__file__``), so it must outlive every version.
_main_namespaces: dict[int, dict[str, Any]] = {}


def _pin_main(module: types.ModuleType) -> None:
    current = module.__dict__
    if current.get("__name__") == "__main__":
        _main_namespaces.setdefault(id(module), current)


def namespace_step(module: types.ModuleType, namespace: dict[str, Any]) -> Iterator[int]:
    """A lazy step that makes ``namespace`` the ``__dict__`` of ``module`` when iterated.

    It is meant to be chained into one C-level pass with the rest of a
    switch, under ``LOCK``. The previous dict's reference is dropped
    by the C call; the caller keeps it alive so that nothing is freed (and no
    finalizer runs) in the middle of the switch.
    """
    module = _checked(module, namespace)
    _pin_main(module)
    return map(set_dict(), (module,), (namespace,), (None,))


def install_namespace(module: types.ModuleType, namespace: dict[str, Any]) -> None:
    """Make ``namespace`` the ``__dict__`` of ``module``, releasing the previous one.

    For a module no code runs yet (a check's candidate); a live module's
    namespace changes within a ``Switch``, through ``namespace_step``.

    Raises:
        InvalidArgumentError: ``module`` is not a real module object, or
            ``namespace`` is not a dict.

    """
    module = _checked(module, namespace)
    with LOCK:
        set_dict()(module, namespace, None)
