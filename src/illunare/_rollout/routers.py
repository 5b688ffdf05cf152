"""Routers: generated functions that send each call to the old or the new version.

During a rollout every proxy of the release's modules points at a router
(and each class attribute that differs between the versions holds one),
closing over both versions' targets. A call is *pinned* when a pin is
active in its context (a canary request, ``Split.pin``) or when its direct
Python caller is code of a version of the release (its frame's globals are
that version's namespace: each version has its own dict), and then runs
that version, uncounted. Any other call is a top-level call: a sticky key or
the weighted draw picks its side; it is counted, one in ``mask + 1`` timed,
and an ``Exception`` leaving it is counted as that side's error.

Routers are generated (``exec`` of a template, once per shape) so that the
per-call path is a handful of bytecodes: everything fixed for the rollout
is in closure cells, and what a weight change replaces is read from
``split.live`` once per call. When both versions take the same plain
arguments (positional-or-keyword, no defaults) the router takes exactly
those; otherwise ``(*args, **kwargs)``. The function's kind is kept:
coroutine functions get an ``async def`` router (deciding when awaited),
generator functions one that delegates with ``yield from``, async generator
functions one that forwards ``asend``/``athrow``/``aclose``. Generators are
counted when first resumed and never timed.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from illunare._rollout.split import Split

__all__ = ["Routing", "kind_of"]

_PLAIN, _COROUTINE, _GENERATOR, _ASYNC_GENERATOR = 0, 1, 2, 3
_FLAGS = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_SIMPLE = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS

# The names a generated router closes over: arguments with any of these
# names get the generic shape.
_CELLS = (
    "old",
    "new",
    "split",
    "getframe",
    "clock",
    "old_globals",
    "new_globals",
    "affine",
    "errors",
    "counted",
    "record",
    "mask",
    "sticky",
    "key_error",
    "pinned",
)
_RESERVED = frozenset((*_CELLS, "side", "n", "live", "key", "caller", "start", "result"))
_RESERVED |= frozenset(("target", "agen", "value", "sent", "error", "make"))


def kind_of(function: object) -> int:
    """0 plain, 1 coroutine, 2 generator, 3 async generator function (plain for non-functions)."""
    code = getattr(function, "__code__", None) if type(function) is types.FunctionType else None
    flags = code.co_flags & _FLAGS if isinstance(code, types.CodeType) else 0
    if flags & inspect.CO_COROUTINE:
        return _COROUTINE
    if flags & inspect.CO_GENERATOR:
        return _GENERATOR
    if flags & inspect.CO_ASYNC_GENERATOR:
        return _ASYNC_GENERATOR
    return _PLAIN


def _parameters(function: object) -> tuple[str, ...] | None:
    """The argument names of a function taking only plain positional-or-keyword ones, else None."""
    if type(function) is not types.FunctionType:
        return None
    code = function.__code__
    if (
        code.co_flags & _SIMPLE
        or code.co_posonlyargcount
        or code.co_kwonlyargcount
        or function.__defaults__
        or function.__kwdefaults__
    ):
        return None
    names = code.co_varnames[: code.co_argcount]
    if any(name in _RESERVED or keyword.iskeyword(name) for name in names):
        return None
    return names


def _shape(old: object, new: object) -> tuple[str, ...] | None:
    """The exact arguments of a router for these two targets, or None for ``(*args, **kwargs)``."""
    before, after = _parameters(old), _parameters(new)
    return before if before is not None and before == after else None


# Template pieces ------------------------------------------------------------------

_CALL = {
    _PLAIN: "return {target}({args})",
    _COROUTINE: "return await {target}({args})",
    _GENERATOR: "return (yield from {target}({args}))",
    _ASYNC_GENERATOR: "{forward}",
}

_FORWARD = """\
agen = {target}({args})
try:
    value = await agen.__anext__()
except StopAsyncIteration:
    return
while True:
    try:
        sent = yield value
    except GeneratorExit:
        await agen.aclose()
        raise
    except BaseException as error:
        try:
            value = await agen.athrow(error)
        except StopAsyncIteration:
            return
    else:
        try:
            value = await agen.asend(sent)
        except StopAsyncIteration:
            return"""

_PIN = """\
side = pinned()
if side is not None:
    {call_side}
"""

_AFFINITY = """\
try:
    caller = getframe(1).f_globals
except ValueError:
    caller = None
if caller is new_globals:
    {call_new}
if caller is old_globals:
    {call_old}
"""

_AFFINE = """\
side = affine(id(caller))
if side is not None:
    {call_side}
"""

_WEIGHTED = """\
live = split.live
n, side = live.draw()
"""

_STICKY = """\
live = split.live
try:
    key = sticky({args})
except Exception:
    key = key_error()
if key is None:
    n, side = live.draw()
else:
    try:
        side = live.sides[key]
    except Exception:
        side = live.assign(key)
    n = counted[side]()
"""

# A top-level call: one in ``mask + 1`` timed; errors counted.
_TIMED = """\
target = new if side else old
if n & mask:
    try:
        {call_target}
    except Exception:
        errors[side]()
        raise
start = clock()
try:
    result = {await_}target({args})
except Exception:
    errors[side]()
    raise
record[side](clock() - start)
return result
"""

# Generators: counted, errors counted, never timed.
_UNTIMED = """\
try:
    {call_target}
except Exception:
    errors[side]()
    raise
"""


def _indent(text: str, level: int) -> str:
    pad = "    " * level
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def _call(kind: int, target: str, args: str, level: int) -> str:
    """The statements calling ``target`` with ``args`` and returning what it gives, for ``kind``."""
    if kind == _ASYNC_GENERATOR:
        text = _FORWARD.format(target=target, args=args)
    else:
        text = _CALL[kind].format(target=target, args=args)
    # Continuation lines of a block are indented to the level it is placed at.
    first, _, rest = text.partition("\n")
    return first + ("\n" + _indent(rest, level) if rest else "")


@attrs.frozen
class _Shape:
    kind: int
    parameters: tuple[str, ...] | None
    sticky: bool
    pins: bool
    several: bool


@functools.cache
def _factory(shape: _Shape) -> Callable[..., Callable[..., Any]]:
    """The function making routers of ``shape`` (their fixed parts as its arguments)."""
    kind = shape.kind
    if shape.parameters is None:
        params = args = "*args, **kwargs"
    else:
        params = args = ", ".join(shape.parameters)
    body = ""
    if shape.pins:
        body += _PIN.format(call_side=_call(kind, "(new if side else old)", args, 1))
    body += _AFFINITY.format(
        call_new=_call(kind, "new", args, 1), call_old=_call(kind, "old", args, 1)
    )
    if shape.several:
        body += _AFFINE.format(call_side=_call(kind, "(new if side else old)", args, 1))
    body += _STICKY.format(args=args) if shape.sticky else _WEIGHTED
    if kind in (_PLAIN, _COROUTINE):
        body += _TIMED.format(
            call_target=_call(kind, "target", args, 2),
            await_="await " if kind == _COROUTINE else "",
            args=args,
        )
    else:
        body += _UNTIMED.format(call_target=_call(kind, "(new if side else old)", args, 1))
    prefix = "async def" if kind in (_COROUTINE, _ASYNC_GENERATOR) else "def"
    source = (
        f"def make({', '.join(_CELLS)}):\n"
        f"    {prefix} routed({params}):\n"
        f"{_indent(body, 2)}\n"
        f"    return routed\n"
    )
    scope: dict[str, Any] = {}
    exec(compile(source, f"<illunare router {kind}>", "exec"), scope)  # noqa: S102  # our template
    made: Callable[..., Callable[..., Any]] = scope["make"]
    return made


def _never() -> None:
    return None


@attrs.define(eq=False)
class Routing:
    """What every router of one split shares; ``route`` makes one for a pair of targets."""

    #: has ``live``: the per-weight draw and sticky sides (``split.Live``)
    split: Split
    #: per side: count one error
    errors: tuple[Callable[[], int], Callable[[], int]]
    #: per side: count one sticky call (its number decides timing)
    counted: tuple[Callable[[], int], Callable[[], int]]
    #: per side: record one timed call's seconds
    record: tuple[Callable[[float], None], Callable[[float], None]]
    #: a top-level call ``n`` is timed when ``n & mask`` is 0
    mask: int
    #: the key function, or None for weighted draws only
    sticky: Callable[..., object] | None
    #: counts a key function's error; returns None
    key_error: Callable[[], None]
    #: the pin in effect in this context (0, 1 or None)
    pinned: Callable[[], int | None]
    #: id of a namespace of a version of a release of several modules -> its side
    namespaces: dict[int, int] = attrs.Factory(dict)
    #: whether routers check ``pinned``
    pins: bool = True

    def route(
        self,
        old: Callable[..., Any],
        new: Callable[..., Any],
        old_globals: dict[str, Any],
        new_globals: dict[str, Any],
    ) -> Callable[..., Any]:
        """A router between ``old`` and ``new`` (functions whose globals are the two namespaces)."""
        kind = kind_of(old) if type(old) is types.FunctionType else kind_of(new)
        shape = _Shape(
            kind=kind,
            parameters=_shape(old, new),
            sticky=self.sticky is not None,
            pins=self.pins,
            several=len(self.namespaces) > 2,
        )
        routed = _factory(shape)(
            old,
            new,
            self.split,
            sys._getframe,
            time.perf_counter,
            old_globals,
            new_globals,
            self.namespaces.get,
            self.errors,
            self.counted,
            self.record,
            self.mask,
            self.sticky or _never,
            self.key_error,
            self.pinned,
        )
        face = old if type(old) is types.FunctionType else new
        code = getattr(face, "__code__", None)
        if isinstance(code, types.CodeType):
            # Argument errors and tracebacks name the user's function.
            names: dict[str, Any] = {"co_name": code.co_name}
            if sys.version_info >= (3, 11):
                names["co_qualname"] = code.co_qualname
            routed.__code__ = routed.__code__.replace(**names)
        functools.update_wrapper(routed, face)
        return routed
