"""Calls in flight: code of a version that is no longer current still finds what it needs.

A call that started on version 2 may still be running when a rollback makes
version 1 current. It keeps its own globals (each version has its own
namespace), but ``self.helper()`` looks in the stable class, which now holds
version 1's contents, and ``helper()`` calls the module's stable proxy,
which now points at version 1's function. Where version 1 has no
``helper``, that call would fail because a switch happened concurrently.

So each version's namespace carries that version's own functions and class
contents under ``VERSION_KEY``, and two fallbacks consult them, only on a
miss, so that ordinary lookups and calls cost nothing more:

* the removed-function stub a proxy points at while its name is missing
  from the current version (``proxy.py``);
* a ``__getattr__`` put into a class while its current contents lack a name
  that another kept version has (``binding.py``).

Both look at the calling frame's globals: code of the version that defined
the name still gets it; any other caller (the current version's code,
code outside the module) gets the usual error, so a method removed in the
current version is gone from old instances for everyone else.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["VERSION_KEY", "VersionContents", "caller_contents", "in_flight_getattr"]

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
    # The caller's globals are its version's namespace (one dict per version).
    contents = sys._getframe(depth + 1).f_globals.get(VERSION_KEY)
    return contents if isinstance(contents, VersionContents) else None


def in_flight_getattr(self: object, name: str) -> Any:
    """``__getattr__`` of a class whose current contents lack a name another version has."""
    kind = type(self)
    contents = caller_contents(1)
    if contents is not None:
        for cls in kind.__mro__:
            if cls.__module__ != contents.module:
                continue
            state = contents.classes.get(cls.__qualname__)
            if state is not None and name in state:
                value = state[name]
                get = getattr(type(value), "__get__", None)
                return value if get is None else get(value, self, kind)
    raise AttributeError(f"{kind.__name__!r} object has no attribute {name!r}", name=name, obj=self)
