"""Stable function proxies: one object per function name whose target is the current version."""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable
from typing import Any

import attrs
import wrapt

from illunare._reload.inflight import caller_contents
from illunare.exceptions import FunctionRemovedError

__all__ = ["C_PROXIES", "HotFunction", "Preparation", "preparing", "retarget"]


@attrs.define
class Preparation:
    """A new version of ``module`` whose source is executing right now."""

    module: str
    #: qualified names the new source decorated with ``@hot``
    hot_names: set[str] = attrs.Factory(set)


#: While a swap executes new source, ``@hot`` must not touch the live proxies
#: (the new code is not live yet); it notes the name here instead.
preparing: contextvars.ContextVar[Preparation | None] = contextvars.ContextVar(
    "illunare_preparing", default=None
)


class HotFunction(wrapt.CallableObjectProxy[Callable[..., Any]]):
    """A callable that always runs the current version of one function.

    ``from m import f``, ``m.f``, a stored callback and the result of ``@hot``
    are all this one object; a swap or rollback retargets it. It is called at
    C speed (wrapt's ``CallableObjectProxy``), binds ``self`` when stored on a
    class, pickles by reference like a plain function, and ``copy`` returns
    it unchanged.
    """

    # Slots keep the proxy without an instance dict, which halves the cost
    # of every lookup on it: calls, retargets and the fixups hook below.
    __slots__ = ("_self_module", "_self_qualname", "_self_removed")

    def __init__(self, target: Callable[..., Any], module: str, qualname: str) -> None:
        super().__init__(target)
        self._self_module = module
        self._self_qualname = qualname
        self._self_removed: Callable[..., Any] | None = None

    # wrapt's C setter for __wrapped__ calls this after every assignment; a
    # missing attribute would make each retarget raise and swallow an
    # AttributeError. `tuple` is a no-op callable that runs entirely in C.
    __wrapped_setattr_fixups__ = tuple

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self, instance)

    def __reduce_ex__(self, protocol: object) -> str:
        # A string makes pickle store a global reference, resolved by name on
        # load, exactly as for a plain function.
        return self._self_qualname

    def __reduce__(self) -> str:
        return self._self_qualname

    def __copy__(self) -> HotFunction:
        return self

    def __deepcopy__(self, memo: object) -> HotFunction:
        return self

    def __repr__(self) -> str:
        return f"<hot function {self._self_module}.{self._self_qualname}>"

    def removed_stub(self) -> Callable[..., Any]:
        """The target used while the function is missing from the current version."""
        stub = self._self_removed
        if stub is None:
            stub = self._self_removed = _removed_stub(self._self_module, self._self_qualname)
        return stub


def _removed_stub(module: str, qualname: str) -> Callable[..., Any]:
    def removed(*args: object, **kwargs: object) -> Any:
        # A call still running on a version that has the function (one that
        # started before the switch) gets that version's; anyone else learns
        # that the function is gone.
        contents = caller_contents(1)
        if contents is not None and contents.module == module:
            function = contents.targets.get(qualname)
            if function is not None:
                return function(*args, **kwargs)
        raise FunctionRemovedError(
            f"{module}.{qualname} does not exist in the current version of {module}",
            module=module,
        )

    removed.__name__ = qualname.rpartition(".")[2]
    removed.__qualname__ = qualname
    removed.__module__ = module
    return removed


def _set_wrapped(proxy: HotFunction, target: Callable[..., Any]) -> None:
    proxy.__wrapped__ = target


def _wrapped_descriptor() -> Any:
    """The C ``__wrapped__`` getset descriptor of wrapt's proxy, or ``None`` without it."""
    for klass in HotFunction.__mro__:
        descriptor = klass.__dict__.get("__wrapped__")
        if isinstance(descriptor, types.GetSetDescriptorType):
            return descriptor
    # wrapt without its C extension: switches would run Python code, so the
    # interpreter check refuses to make a HotReloader at all (``C_PROXIES``).
    return None


_descriptor = _wrapped_descriptor()

#: Whether wrapt's C extension is in use, which ``retarget`` needs.
C_PROXIES = _descriptor is not None

#: ``retarget(proxy, function)``: the C setter of ``__wrapped__`` itself, so
#: that a flip can retarget every proxy of a module inside its one C-level
#: pass (``switch.py``); it runs no Python code.
retarget: Callable[[HotFunction, Callable[..., Any]], None] = (
    _descriptor.__set__ if C_PROXIES else _set_wrapped
)
