"""Stable function proxies: one object per function name whose target is the current version."""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable
from typing import Any

import attrs
import wrapt

from illunare.exceptions import FunctionRemovedError

__all__ = ["HotFunction", "Preparation", "preparing"]


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

    def __init__(self, target: Callable[..., Any], module: str, qualname: str) -> None:
        super().__init__(target)
        self._self_module = module
        self._self_qualname = qualname

    # wrapt's C setter for __wrapped__ looks this up on every assignment; a
    # missing attribute makes each retarget raise and swallow an
    # AttributeError, four times slower than this no-op.
    def __wrapped_setattr_fixups__(self) -> None:
        pass

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

    def retarget(self, target: Callable[..., Any] | None) -> None:
        """Make calls run ``target``; ``None`` means the function no longer exists."""
        self.__wrapped__ = self._removed() if target is None else target

    def _removed(self) -> Callable[..., Any]:
        module, qualname = self._self_module, self._self_qualname
        current = self.__wrapped__

        def removed(*args: object, **kwargs: object) -> Any:
            raise FunctionRemovedError(
                f"{module}.{qualname} does not exist in the current version of {module}",
                module=module,
            )

        removed.__name__ = getattr(current, "__name__", qualname)
        removed.__qualname__ = qualname
        removed.__module__ = module
        removed.__doc__ = getattr(current, "__doc__", None)
        return removed
