"""Switching a live module object from one namespace dict to another in one step.

Each version of a module keeps its own namespace: the dict its functions use
as ``__globals__``. Switching versions replaces the module object's
``__dict__`` itself, so ``m.X``, ``vars(m)``, ``from m import X`` and
``m.X = value`` all see the current version, with plain module attribute
speed and no proxy in between. CPython keeps a module's dict in one pointer
field (``md_dict``) right after the object header; that field is replaced
under the GIL, with reference counts kept exact. The layout is verified when
illunare is imported, so an interpreter with another layout fails loudly at
import instead of corrupting memory later.
"""

from __future__ import annotations

import ctypes
import types

__all__ = ["install_namespace"]

# The field that follows PyObject_HEAD in PyModuleObject.
_OFFSET = object.__basicsize__

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None
_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None


def _slot(module: types.ModuleType) -> ctypes.c_void_p:
    return ctypes.c_void_p.from_address(id(module) + _OFFSET)


def install_namespace(module: types.ModuleType, namespace: dict[str, object]) -> None:
    """Make ``namespace`` the ``__dict__`` of ``module``, releasing the previous one."""
    previous = module.__dict__
    if previous is namespace:
        return
    _incref(namespace)
    _slot(module).value = id(namespace)
    # `previous` is still referenced by this frame, so the decref cannot free it here.
    _decref(previous)


def _verify_layout() -> None:
    probe = types.ModuleType("illunare_layout_probe")
    if _slot(probe).value != id(probe.__dict__):
        raise ImportError(
            "illunare needs CPython's module object layout to switch module versions; "
            "this interpreter has another one"
        )


_verify_layout()
