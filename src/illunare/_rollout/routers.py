"""Routers: generated functions that send each call to the old or the new version.

During a rollout every proxy of the release's modules points at a router
(and each class attribute that differs between the versions holds one),
closing over both versions' targets. A call is *pinned* when a pin is
active in its context (a canary request, ``Split.pin``) or when its direct
Python caller is code of a version of the release (its frame's globals are
that version's namespace: each version has its own dict), and then runs
that version, uncounted. Any other call is a top-level call: a sticky key or
the weighted draw picks its side; it is counted (one C-level ``next`` of a
``assign.Draw``, which also marks the calls to time), and an ``Exception``
leaving it is counted as that side's error.

A rollout's coroutine function also pins its context to its side for the
whole call (``Split.enter``): the Tasks it creates, ``asyncio.to_thread`` and
``contextvars.copy_context()`` inherit the pin, where the caller's frame
cannot tell (a Task's first step runs from the event loop). Once a split has
such a router, every router of it checks for a pin (one ``ContextVar.get``
per call); the sync routers of a release without coroutine functions keep
skipping it.

Routers are generated (``exec`` of a template, once per shape) so that the
per-call path is a handful of bytecodes. Everything they use is a global of
their own dict (``Shared``): a closure's cells would be copied into every
call's frame, which costs more than a global read; what a weight change
replaces (the draw, the sticky sides) is stored into every router's dict.
When both versions take the same plain arguments (positional-or-keyword, no
defaults) the router takes exactly those; otherwise ``(*args, **kwargs)``.
The function's kind is kept: coroutine functions get an ``async def`` router
(deciding when awaited), generator functions one that delegates with ``yield
from``, async generator functions one that forwards
``asend``/``athrow``/``aclose``. Generators are counted when first resumed
and never timed.
"""

from __future__ import annotations

import builtins
import dis
import functools
import inspect
import keyword
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import attrs

from illunare._rollout.assign import TIMED
from illunare.exceptions import ValidationError

__all__ = ["Routing", "SplitAttribute", "kind_of", "named"]

_PLAIN, _COROUTINE, _GENERATOR, _ASYNC_GENERATOR = 0, 1, 2, 3
_FLAGS = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_SIMPLE = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS

# The globals a generated router reads: arguments with any of these names
# get the generic shape. Each router has its own values for the first four
# and "offer"; the others are the same in every router of its split.
_GLOBALS = (
    "old",
    "new",
    "old_globals",
    "new_globals",
    "draw",
    "sides",
    "assign",
    "pins",
    "getframe",
    "clock",
    "affine",
    "errors",
    "counted",
    "record",
    "sticky",
    "key_error",
    "pinned",
    "enter",
    "leave",
    "offer",
    "sampled",
)
# Its locals and the builtins it uses too (a parameter ``id`` would hide ``id()``).
_RESERVED = frozenset((*_GLOBALS, "side", "n", "key", "caller", "start", "result", "token"))
_RESERVED |= frozenset(("target", "agen", "value", "sent", "error", "make", "seconds"))
_RESERVED |= frozenset(("id", "next", "int", "Exception", "BaseException", "ValueError"))
_RESERVED |= frozenset(("GeneratorExit", "StopAsyncIteration"))


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
if pins:
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

# A coroutine's whole call, pinned to its side: Tasks it creates (gather,
# create_task), asyncio.to_thread and copy_context() inherit the pin, which
# the caller's frame could not tell them.
_ENTERED = """\
token = enter({side})
try:
    {call}
finally:
    leave(token)"""

_WEIGHTED = """\
side = next(draw)
"""

_STICKY = """\
try:
    key = sticky({args})
except Exception:
    key = key_error()
if key is None:
    n = next(draw)
    side = int(n) & 1
else:
    try:
        side = sides[key]
    except Exception:
        side = assign(key)
    n = next(counted[side])
"""

# A shadow run: old serves every top-level call, counted; a sampled one is
# timed and offered, with its outcome, to run again on new off the caller's path.
_SHADOW = """\
n = next(counted[0])
side = 0
if next(sampled):
    start = clock()
    try:
        result = {await_}old({args})
    except Exception as error:
        seconds = clock() - start
        errors[0]()
        offer(new, {packed}, (True, error), seconds)
        raise
    seconds = clock() - start
    record[0](seconds)
    offer(new, {packed}, (False, result), seconds)
    return result
"""

_UNSHADOWED = """\
n = next(counted[0])
side = 0
"""

# A top-level call: some are timed (a weighted one when its side is drawn
# with TIMED, a sticky one when its count is); errors counted. A side drawn
# is a float (``assign.Draw``): an int again where it indexes.
_TIMED = """\
if {untimed} < {timed}:
    try:
        {call_target}
    except Exception:
        errors[int(side)]()
        raise
{timed_side}target = new if side else old
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


def _call(kind: int, target: str, args: str, level: int, side: str | None = None) -> str:
    """The statements calling ``target`` with ``args`` and returning what it gives, for ``kind``.

    ``side``: the expression of the side a coroutine's call is pinned to
    (``_ENTERED``), None for none.
    """
    if kind == _ASYNC_GENERATOR:
        text = _FORWARD.format(target=target, args=args)
    else:
        text = _CALL[kind].format(target=target, args=args)
    if side is not None and kind == _COROUTINE:
        text = _ENTERED.format(side=side, call=text)
    # Continuation lines of a block are indented to the level it is placed at.
    first, _, rest = text.partition("\n")
    return first + ("\n" + _indent(rest, level) if rest else "")


@attrs.frozen
class _Shape:
    kind: int
    parameters: tuple[str, ...] | None
    #: "weighted", "sticky" or "shadow"
    mode: str
    #: whether it checks the caller's frame (affinity)
    frames: bool
    several: bool


@functools.cache
def _factory(shape: _Shape) -> types.CodeType:
    """The code of routers of ``shape`` (reading ``_GLOBALS`` from their globals)."""
    code = compile(_source(shape), "<illunare rollout router>", "exec")
    return next(const for const in code.co_consts if isinstance(const, types.CodeType))


def _source(shape: _Shape) -> str:
    """The source of a module defining one router of ``shape``, ``routed``."""
    kind = shape.kind
    if shape.parameters is None:
        params = args = "*args, **kwargs"
        packed = "args, kwargs"
    else:
        params = args = ", ".join(shape.parameters)
        packed = f"({args}{',' if len(shape.parameters) == 1 else ''}), {{}}"
    await_ = "await " if kind == _COROUTINE else ""
    # A rollout's coroutine routers pin the context for the whole call; a
    # shadow run's need not (every call not pinned runs the old version).
    entered = kind == _COROUTINE and shape.mode != "shadow"
    body = _PIN.format(call_side=_call(kind, "(new if side else old)", args, 2))
    if shape.frames:
        body += _AFFINITY.format(
            call_new=_call(kind, "new", args, 1, "1" if entered else None),
            call_old=_call(kind, "old", args, 1, "0" if entered else None),
        )
    if shape.frames and shape.several:
        body += _AFFINE.format(
            call_side=_call(kind, "(new if side else old)", args, 1, "side" if entered else None)
        )
    timed = kind in (_PLAIN, _COROUTINE)
    if shape.mode == "shadow":
        body += _SHADOW.format(await_=await_, args=args, packed=packed) if timed else _UNSHADOWED
    elif shape.mode == "sticky":
        body += _STICKY.format(args=args)
    else:
        body += _WEIGHTED if timed else _WEIGHTED + "side = int(side) & 1  # never timed\n"
    if timed:
        weighted = shape.mode == "weighted"
        call = _TIMED.format(
            untimed="side" if weighted else "n",
            timed=float(TIMED),
            call_target=_call(kind, "(new if side else old)", args, 2),
            timed_side=f"side = int(side) - {TIMED}\n" if weighted else "",
            await_=await_,
            args=args,
        )
        if entered:
            call = _ENTERED.format(side="int(side) & 1", call=_indent(call, 1).strip()) + "\n"
        body += call
    else:
        body += _UNTIMED.format(call_target=_call(kind, "(new if side else old)", args, 1))
    prefix = "async def" if kind in (_COROUTINE, _ASYNC_GENERATOR) else "def"
    return f"{prefix} routed({params}):\n{_indent(body, 1)}\n"


class Shared:
    """What every router of one split reads, copied into each router's globals.

    ``function`` makes a router whose globals are these values, its own
    ones and the builtins. ``set`` stores a value into the globals of every
    router alive (and of those made later), one after another: a router
    reads it once per call, so each call sees one value or the other.
    """

    __slots__ = ("_lock", "_made", "_values")

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values: dict[str, object] = {"__builtins__": builtins.__dict__, **values}
        # Weak: a router gone (the split ended) takes its globals with it.
        self._made: weakref.WeakSet[types.FunctionType] = weakref.WeakSet()
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def function(self, code: types.CodeType, own: Mapping[str, object]) -> types.FunctionType:
        """A router running ``code`` with the shared values and ``own`` as its globals."""
        with self._lock:
            routed = types.FunctionType(code, {**self._values, **own}, code.co_name)
            self._made.add(routed)
        return routed

    def forked(self) -> None:
        """In a forked child: a fresh lock (a thread of the parent may have held this one)."""
        self._lock = threading.Lock()

    def set(self, name: str, value: object) -> None:
        """``name`` is ``value`` in every router's globals from now on."""
        self.update({name: value})

    def update(self, values: Mapping[str, object]) -> None:
        """Each of ``values`` in every router's globals from now on (one pass over them)."""
        with self._lock:
            self._values.update(values)
            for routed in list(self._made):
                routed.__globals__.update(values)


def _never() -> None:
    return None


@attrs.define(eq=False)
class Routing:
    """What every router of one split shares; ``route`` makes one for a pair of targets."""

    #: what every router reads (``split.Split.shared``), which a weight change
    #: sets: "draw", "sides", "assign" and "pins" (whether a pin may be in effect)
    shared: Shared
    #: per side: count one error
    errors: tuple[Callable[[], int], Callable[[], int]]
    #: per side: ``next()`` counts one keyed call (``TIMED`` for one to time)
    counted: tuple[Iterator[float], Iterator[float]]
    #: per side: record one timed call's seconds
    record: tuple[Callable[[float], None], Callable[[float], None]]
    #: the key function, or None for weighted draws only
    sticky: Callable[..., object] | None
    #: counts a key function's error; returns None
    key_error: Callable[[], None]
    #: the pin in effect in this context (0, 1 or None)
    pinned: Callable[[], int | None]
    #: pins this context to a side, returning a token for ``leave``
    enter: Callable[[int], object]
    #: undoes an ``enter``
    leave: Callable[[Any], None]
    #: a shadow run's sink: ``offer(new, args, kwargs, outcome, seconds)`` (None: a rollout)
    offer: Callable[..., object] | None = None
    #: the same for a coroutine function ``new``
    offer_coroutine: Callable[..., object] | None = None
    #: a shadow run's draw: ``next(sampled)`` is 1 for the calls to offer
    sampled: Iterator[int] | None = None
    #: id of a namespace of a version of a release of several modules -> its side
    namespaces: dict[int, int] = attrs.Factory(dict)
    #: every router made
    made: list[Callable[..., Any]] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        values = {
            "getframe": sys._getframe,
            "clock": time.perf_counter,
            "affine": self.namespaces.get,
            "errors": self.errors,
            "counted": self.counted,
            "record": self.record,
            "sticky": self.sticky or _never,
            "key_error": self.key_error,
            "pinned": self.pinned,
            "enter": self.enter,
            "leave": self.leave,
            "sampled": self.sampled,
        }
        self.shared.update(values)

    def route(
        self,
        old: Callable[..., Any],
        new: Callable[..., Any],
        old_globals: dict[str, Any],
        new_globals: dict[str, Any],
        face: Callable[..., Any] | None = None,
        *,
        frames: bool = True,
    ) -> Callable[..., Any]:
        """A router between ``old`` and ``new``, the two versions' targets.

        ``old_globals``, ``new_globals``: the two versions' namespaces;
        ``face``: the one whose name, signature and kind it shows (``old``
        unless that is a stand-in for a missing name); ``frames``: check the
        caller's version (False only where no code of the release can call
        it directly: ``named``).
        """
        face = old if face is None else face
        shape = _Shape(
            kind=kind_of(face),
            parameters=_shape(old, new),
            mode="shadow" if self.offer else "sticky" if self.sticky else "weighted",
            frames=frames,
            several=len(self.namespaces) > 2,
        )
        code = _factory(shape)
        own = {
            "old": old,
            "new": new,
            "old_globals": old_globals,
            "new_globals": new_globals,
            "offer": self.offer_coroutine if kind_of(new) == _COROUTINE else self.offer,
        }
        if shape.kind == _COROUTINE and shape.mode != "shadow":
            # Its calls pin their context: every router looks for pins from now on.
            self.shared.set("pins", True)
        # A code object of its own (so its specialised global reads, which
        # remember one dict, are its own) named as the user's function, so
        # that argument errors and tracebacks name it.
        named = getattr(face, "__code__", None)
        names: dict[str, Any] = {}
        if isinstance(named, types.CodeType):
            names["co_name"] = named.co_name
            if sys.version_info >= (3, 11):
                names["co_qualname"] = named.co_qualname
        code = code.replace(**names)
        routed = self.shared.function(code, own)
        functools.update_wrapper(routed, face)
        self.made.append(routed)
        return routed

    def contents(
        self,
        cls: type,
        old: Mapping[str, object],
        new: Mapping[str, object],
        *,
        kept: Collection[str],
        namespaces: tuple[dict[str, Any], dict[str, Any]],
    ) -> dict[str, object]:
        """What the stable class ``cls`` holds during the split, where its versions differ.

        ``old``, ``new``: the two versions' contents of it; ``kept``: data
        attributes that stay live; ``namespaces``: the two versions'. A
        method (also inside a staticmethod, classmethod or property) gets a
        router; other values that differ a ``SplitAttribute``, but for
        special data attributes (a library's bookkeeping), which keep the
        old version's.

        Raises:
            ValidationError: an attribute cannot be split per call (a data
                descriptor other than property, or a special attribute the
                interpreter reads from the type's slots, such as ``__hash__ = None``).

        """
        contents: dict[str, object] = {}
        for name in [*old, *(name for name in new if name not in old)]:
            before, after = old.get(name, _MISSING), new.get(name, _MISSING)
            if before is after or name in _MACHINERY or name in kept:
                continue
            value = self._attribute(cls, name, before, after, namespaces)
            if value is not _KEEP:
                contents[name] = value
        return contents

    def _attribute(
        self,
        cls: type,
        name: str,
        old: object,
        new: object,
        namespaces: tuple[dict[str, Any], dict[str, Any]],
    ) -> object:
        wrapper = _wrapper(old, new)
        if wrapper is not None:

            def route(before: object, after: object) -> Callable[..., Any] | None:
                if before is None and after is None:
                    return None
                missing = _missing(cls, name)
                return self.route(
                    before if callable(before) else missing,
                    after if callable(after) else missing,
                    *namespaces,
                    face=before if callable(before) else after,  # type: ignore[arg-type]
                )

            if wrapper is types.FunctionType:
                return route(_unwrapped(old), _unwrapped(new))
            if wrapper is property:
                present: Any = new if old is _MISSING else old
                fget, fset, fdel = (route(_part(old, part), _part(new, part)) for part in _PROPERTY)
                return property(fget, fset, fdel, present.__doc__)
            return wrapper(route(_unwrapped(old), _unwrapped(new)))
        what = f"{cls.__qualname__}.{name}"
        if any(_is_data_descriptor(value) for value in (old, new)):
            raise ValidationError(
                f"{what} is a data descriptor that differs between the versions: it cannot "
                "be split per call; swap the module without a rollout",
                module=cls.__module__,
            )
        if name.startswith("__") and name.endswith("__"):
            if old is None or new is None:
                raise ValidationError(
                    f"{what} is set to None in one version: the interpreter reads it from the "
                    "type, so it cannot be split per call; swap the module without a rollout",
                    module=cls.__module__,
                )
            if _is_data(old) and _is_data(new):
                # A library's bookkeeping (__dataclass_fields__, __attrs_attrs__,
                # __pydantic_validator__ ...), often read from the class's
                # __dict__: the old version's serves until the promotion.
                return _KEEP
        return SplitAttribute(name, (old, new), self.pinned, self.namespaces)


# Affinity ---------------------------------------------------------------------------


def named(roots: Iterable[object]) -> frozenset[str]:
    """Every name the code of ``roots`` (code objects, functions, class attributes) may look up.

    The names its bytecode loads (globals, attributes) and its string
    constants (``getattr(module, "f")``, ``globals()["f"]``), in every code
    object nested in it; not the names a module or class body only defines.
    A module-level function no code of a release can name is called from
    that code only through something outside the release: its routers need
    no caller check.
    """
    found: set[str] = set()
    pending: list[object] = [part for root in roots for part in _parts(root)]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.CodeType):
            found.update(_loaded(item))
            pending.extend(_constants(item))
        elif isinstance(item, str):
            found.add(item)
        elif isinstance(item, (tuple, frozenset)):  # a code object's constants
            pending.extend(item)
    return frozenset(found)


def _loaded(code: types.CodeType) -> Iterable[str]:
    """The names ``code`` looks up (not those a module or class body only defines)."""
    if code.co_flags & inspect.CO_OPTIMIZED:
        return code.co_names  # a function's: stores to globals are rare, and harmless here
    return (
        instruction.argval
        for instruction in dis.get_instructions(code)
        if instruction.opname not in _STORES and instruction.opname != "LOAD_CONST"
        if isinstance(instruction.argval, str)
    )


def _constants(code: types.CodeType) -> Iterable[object]:
    """The constants of ``code``, but a body's functions' qualified names (before 3.11)."""
    if code.co_flags & inspect.CO_OPTIMIZED:
        return code.co_consts
    instructions = list(dis.get_instructions(code))
    return [
        instruction.argval
        for instruction, following in zip(instructions, [*instructions[1:], None], strict=True)
        if instruction.opname == "LOAD_CONST"
        and not (following is not None and following.opname == "MAKE_FUNCTION")
    ]


_STORES = frozenset({"STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL"})


def _parts(value: object) -> Iterator[object]:
    """The code of a code object, function or class attribute wrapping functions."""
    if isinstance(value, types.CodeType):
        yield value
    elif isinstance(value, types.FunctionType):
        yield value.__code__
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None:
            yield from _parts(wrapped)
    elif isinstance(value, (staticmethod, classmethod)):
        yield from _parts(value.__func__)
    elif isinstance(value, property):
        for part in (value.fget, value.fset, value.fdel):
            yield from _parts(part)
    elif isinstance(value, functools.cached_property):
        yield from _parts(value.func)


# Class attributes -----------------------------------------------------------------

# What a class is made of rather than what it offers: never split.
_MACHINERY = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__annotations__",
        "__annotate__",
        "__annotate_func__",
        "__annotations_cache__",
        "__dict__",
        "__weakref__",
        "__slots__",
        "__orig_bases__",
        "__parameters__",
        "__type_params__",
        "__firstlineno__",
        "__static_attributes__",
    }
)

_PROPERTY = ("fget", "fset", "fdel")


class _Missing:
    """An attribute one version of a class lacks."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()

# ``_attribute``: the class keeps the old version's value.
_KEEP: Any = object()

_WRAPPERS = (staticmethod, classmethod)


def _wrapper(old: object, new: object) -> type | None:
    """How the two values wrap the functions a router can take (None: they do not alike)."""
    kinds: set[type] = set()
    for value in (old, new):
        if value is _MISSING:
            continue
        if type(value) is types.FunctionType:
            kinds.add(types.FunctionType)
        elif type(value) in _WRAPPERS and type(value.__func__) is types.FunctionType:  # type: ignore[attr-defined]
            kinds.add(type(value))
        elif type(value) is property and all(
            part is None or type(part) is types.FunctionType
            for part in (value.fget, value.fset, value.fdel)
        ):
            kinds.add(property)
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _unwrapped(value: object) -> object:
    """The function of a method, staticmethod or classmethod (``_MISSING`` stays)."""
    return value.__func__ if type(value) in _WRAPPERS else value  # type: ignore[attr-defined]


def _part(value: object, part: str) -> object:
    return None if value is _MISSING else getattr(value, part)


def _is_data(value: object) -> bool:
    """Plain data: neither callable nor a descriptor (as ``classes.data_attributes`` sees it)."""
    return value is not _MISSING and not callable(value) and not hasattr(type(value), "__get__")


def _is_data_descriptor(value: object) -> bool:
    kind = type(value)
    return kind is not property and (hasattr(kind, "__set__") or hasattr(kind, "__delete__"))


def _missing(cls: type, name: str) -> Callable[..., Any]:
    """What a router calls on the side whose version of ``cls`` lacks ``name``."""

    def missing(*args: object, **kwargs: object) -> Any:
        raise AttributeError(
            f"this version of {cls.__qualname__} has no attribute {name!r}", name=name
        )

    return missing


class SplitAttribute:
    """Stands in a stable class, during a split, for a value that differs between the versions.

    A non-data descriptor (an instance attribute of the same name wins, as
    for any class attribute): the pinned side's value, else the value of
    the version whose code looks it up (the caller frame's globals), else
    the old version's. A value that is itself a descriptor is bound as the
    class would bind it.
    """

    __slots__ = ("name", "pinned", "sides", "values")

    def __init__(
        self,
        name: str,
        values: tuple[object, object],
        pinned: Callable[[], int | None],
        sides: Mapping[int, int],
    ) -> None:
        self.name = name
        self.values = values
        self.pinned = pinned
        #: id of a version's namespace -> its side
        self.sides = sides

    def __repr__(self) -> str:
        return f"<attribute {self.name!r} split between two versions>"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        side = self.pinned()
        if side is None:
            try:
                caller = sys._getframe(1).f_globals
            except ValueError:  # looked up from C with no Python frame
                caller = None
            side = self.sides.get(id(caller), 0)
        value = self.values[side]
        if value is _MISSING:
            kind = owner if instance is None else type(instance)
            raise AttributeError(
                f"this version of {getattr(kind, '__qualname__', kind)} has no attribute "
                f"{self.name!r}",
                name=self.name,
            )
        get = getattr(type(value), "__get__", None)
        if get is None:
            return value
        return get(value, instance, owner if owner is not None else type(instance))
