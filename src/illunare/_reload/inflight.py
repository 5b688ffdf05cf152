"""Calls in flight: code of a version that is no longer current still finds what it needs.

A call that started on version 2 may still be running when a rollback makes
version 1 current. It keeps its own globals (each version has its own
namespace), but ``self.helper()`` looks in the stable class, which now holds
version 1's contents, and ``helper()`` calls the module's stable proxy,
which now points at version 1's function. Where version 1 has no
``helper``, that call would fail because a switch happened concurrently.

So each version's namespace carries that version's own functions and class
contents under ``VERSION_KEY``, and two fallbacks consult them, only where
a name is missing, so that every other lookup and call costs nothing more:

* the removed-function stub a proxy points at while its name is missing
  from the current version (``proxy.py``);
* a ``Removed`` placeholder put into a class, while its current contents
  lack a name that some version of it defined (``binding.py``). Unlike a
  ``__getattr__``, which would slow every attribute lookup on the class
  (CPython stops specialising them), it costs only lookups of that name.

Both look at the calling frame's globals: code of a version that defines
the name still gets that version's; any other caller (the current
version's code, code outside the module) sees the name as absent, so a
method removed in the current version is gone from old instances for
everyone else. Special (dunder) methods are looked up by the interpreter
through type slots, not by a caller's frame, and get no placeholder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["VERSION_KEY", "Removed", "VersionContents", "caller_contents"]

#: The namespace key under which a version keeps its ``VersionContents``.
VERSION_KEY = "__illunare_version__"


@attrs.frozen(eq=False)
class VersionContents:
    """What one version of ``module`` defines, for its calls that outlive its switch."""

    module: str
    #: qualified name ("f", "Cls.method") -> that version's function
    targets: Mapping[str, Callable[..., Any]]
    #: class name -> that version's class contents
    classes: Mapping[str, Mapping[str, object]]


def caller_contents(depth: int) -> VersionContents | None:
    """The contents of the version whose code called us ``depth`` frames up, if any."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:  # called from C with no Python caller (atexit, a C thread)
        return None
    # The caller's globals are its version's namespace (one dict per version).
    contents = frame.f_globals.get(VERSION_KEY)
    return contents if isinstance(contents, VersionContents) else None


class Removed:
    """Stands in a class for an attribute its current version lacks but another version defines.

    It is a non-data descriptor, like a method: an instance attribute of the
    same name still wins. Looked up by code of a version that defines the
    name, it gives that version's attribute; looked up by anyone else, it
    behaves as if the name were absent from the class (inherited attributes
    and the class's own ``__getattr__`` included).
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<removed attribute {self.name!r}>"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        kind = type(instance) if owner is None else owner
        contents = caller_contents(1)
        name = self.name
        # The lookup the caller's version would make, from the class holding
        # this placeholder on (``super()`` starts past the caller's class):
        # its own contents for the module's classes, the live dict for others.
        mro = kind.__mro__
        start = next((i for i, cls in enumerate(mro) if cls.__dict__.get(name) is self), 0)
        for cls in mro[start:]:
            found: Mapping[str, object] | None = None
            if contents is not None and cls.__module__ == contents.module:
                found = contents.classes.get(cls.__qualname__)
            value = (cls.__dict__ if found is None else found).get(name, _ABSENT)
            if value is not _ABSENT and type(value) is not Removed:
                get = getattr(type(value), "__get__", None)
                return value if get is None else get(value, instance, kind)
        if instance is None:
            message = f"type object {kind.__name__!r} has no attribute {name!r}"
        else:
            message = f"{kind.__name__!r} object has no attribute {name!r}"
        raise AttributeError(message, name=name, obj=kind if instance is None else instance)


_ABSENT = object()
