"""Versions of a tracked module: the public ``CodeVersion`` record and the kept history."""

from __future__ import annotations

import functools
import gc
import operator
import re
import sys
import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from illunare._reload.classes import ClassState
from illunare._reload.inflight import VERSION_KEY
from illunare._reload.proxy import HotFunction
from illunare._reload.registrations import Registration
from illunare._reload.source import SourceText, forget_lines

__all__ = ["CodeVersion", "History", "ModuleVersion", "TrackedModule"]

# Held by one tuple only, as a version's functions are by ``ModuleVersion.functions``.
_PROBE = (object(),)


def _base() -> int:
    """The reference count ``map(sys.getrefcount, ...)`` sees of an object held by one tuple."""
    return next(map(sys.getrefcount, _PROBE))


# Calls what it is given: a C-level step of ``map`` (no bytecode runs in between).
_CALL = operator.methodcaller("__call__")


def _alive(ref: weakref.ref[type]) -> type | None:
    return ref()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_sha256(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _SHA256.fullmatch(value):
        raise ValueError(f"{attribute.name} must be 64 lowercase hex digits, got {value!r}")


@attrs.frozen
class CodeVersion:
    """One version of a module's code.

    Attributes:
        module: the module's name.
        number: 1 for the code as first loaded, then 2, 3 ...; never reused.
        sha256: hex digest of the source's UTF-8 bytes (the text as decoded, so a
            byte order mark or CRLF line ends make no difference).
        created_at: ``time.time()`` when the version was created.
        reason: the reason given to ``swap()`` ("loaded" for version 1).
        parent: the version that was current when this one was created.

    """

    module: str = attrs.field(validator=attrs.validators.instance_of(str))
    number: int = attrs.field(validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)])
    sha256: str = attrs.field(validator=[attrs.validators.instance_of(str), _is_sha256])
    created_at: float = attrs.field(validator=attrs.validators.instance_of(float))
    reason: str = attrs.field(validator=attrs.validators.instance_of(str))
    parent: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            [attrs.validators.instance_of(int), attrs.validators.ge(1)]
        ),
    )


@attrs.define(eq=False)
class ModuleVersion:
    """Everything needed to make one version live again, without recompiling."""

    info: CodeVersion
    #: the dict that the version's functions use as ``__globals__``
    namespace: dict[str, Any]
    #: qualified name ("f", "Cls.method") -> that version's function
    targets: dict[str, Callable[..., Any]]
    #: stable class name -> that version's class contents
    classes: dict[str, ClassState]
    #: names whose live value follows the module from version to version
    preserve: frozenset[str]
    code: types.CodeType | None
    #: class name -> data attribute -> its defining expression (``classes.data_attributes``)
    class_data: Mapping[str, Mapping[str, str]] = attrs.Factory(dict)
    #: the linecache entry holding the source of a version with no file
    #: (named by digest, so versions with the same source share it)
    lines_key: str | None = None
    #: the version's source, so that a release can execute it anew
    #: (``None`` for a module loaded from no findable source)
    source: SourceText | None = None
    #: the modules its top-level code imports (``release.top_level_imports``),
    #: read from ``source`` when first asked for
    imports: frozenset[str] | None = None
    #: (proxy generation, proxies, their targets in this version): what a
    #: flip to this version hands to ``Switch.retarget``, computed once
    bindings: tuple[int, tuple[HotFunction, ...], tuple[Callable[..., Any], ...]] | None = None
    #: what the version's top-level code registered outside its namespace,
    #: in effect while it is current (``registrations.py``)
    registrations: tuple[Registration, ...] = ()
    #: (the module's generation, for each class: its name, its stable class,
    #: the names a switch to this version keeps, the contents it sets): what
    #: a flip to this version does to the classes, computed once (``binding.flip_many``)
    class_plans: tuple[int, tuple[tuple[str, type, frozenset[str], ClassState], ...]] | None = None
    #: the class objects its class statements made, whose contents moved into
    #: the stable classes (weakly: they go with the next garbage collection,
    #: referring to the version's functions until then)
    husks: tuple[weakref.ref[type], ...] = ()
    # Computed once (``functions``, ``own_classes``, ``sole_holder``).
    _functions: tuple[object, ...] | None = attrs.field(default=None, init=False, repr=False)
    _classes: tuple[type, ...] | None = attrs.field(default=None, init=False, repr=False)
    _references: tuple[tuple[int | None, int | None, int], int] | None = attrs.field(
        default=None, init=False, repr=False
    )

    def functions(self) -> tuple[object, ...]:
        """The version's own functions: its ``targets`` that its code defined, each once."""
        functions = self._functions
        if functions is None:
            namespace = self.namespace
            functions = self._functions = tuple(
                {
                    id(function): function
                    for function in self.targets.values()
                    if getattr(function, "__globals__", namespace) is namespace
                }.values()
            )
        return functions

    def own_classes(self, tracked: TrackedModule) -> tuple[type, ...]:
        """The classes its code defined that keep their own object (not moved into a stable one).

        Those its namespace holds under their own name when first asked (once
        it has left: what it defined does not change).
        """
        classes = self._classes
        if classes is None:
            stable = set(map(id, list(tracked.classes.values())))
            classes = self._classes = tuple(
                value
                for key, value in list(self.namespace.items())
                if issubclass(type(value), type)  # not isinstance: a proxy lies about its class
                and value.__module__ == tracked.name
                and value.__qualname__ == key
                and id(value) not in stable
            )
        return classes

    def planned_contents(self) -> list[ClassState]:
        """The class contents its class plans made (its own, with placeholders added)."""
        if self.class_plans is None:
            return []
        states = self.classes
        return [
            contents
            for name, _, _, contents in self.class_plans[1]
            if contents is not states.get(name)
        ]

    def sole_holder(self, *, running: bool = False) -> bool:
        """Whether nothing but the version's own records refers to any of its functions.

        Its records are its ``targets``, class contents (and those its class
        plans made), registrations and bindings, and the class objects it moved
        into the stable classes while they live. None of them changes once the
        version exists (bindings and plans are counted again when they are
        replaced, the class objects when one goes),
        so the references they hold to the functions are counted once; each
        function has at least its share, so a total beyond theirs means that
        something else holds one (a stale reference, a call in flight, another
        version sharing it): then ``False``, and only a scan of the heap can tell.

        With ``running``, the calls in flight that no scan could see are told
        apart too: on CPython 3.11+, a call's frame holds one reference to
        the function it runs, and no object the collector sees does. A thread
        whose innermost frame runs one of the functions' code counts one
        reference; the threads' frames and the reference counts are read in
        one C-level pass, so that no thread moves in between. (A call in
        flight deeper in a thread's stack is not told: the scan tells.)
        """
        functions = self.functions()
        generation, bindings = (None, ()) if self.bindings is None else self.bindings[::2]
        planned = None if self.class_plans is None else self.class_plans[0]
        cached = self._references
        husks = [cls for cls in map(_alive, self.husks) if cls is not None] if self.husks else ()
        if cached is None or cached[0] != (generation, planned, len(husks)):
            ids = set(map(id, functions))
            records = [self.targets, *self.classes.values(), *self.registrations, bindings]
            records += self.planned_contents()
            # The static and class methods, each holding its function.
            records += [
                member
                for state in self.classes.values()
                for member in state.values()
                if type(member) in (staticmethod, classmethod)
            ]
            # The husks' attribute dicts: the referents of their mapping proxies.
            records += gc.get_referents(*map(vars, husks))
            held = sum(map(ids.__contains__, map(id, gc.get_referents(*records))))
            # Each function is also referred to by ``functions`` and, while it
            # is counted, by ``map``: as the probe is.
            cached = self._references = (
                (generation, planned, len(husks)),
                held + len(ids) * _base(),
            )
        if not running:
            return sum(map(sys.getrefcount, functions)) <= cached[1]
        if sys.version_info < (3, 11):
            return False  # frames hold no function: the caller's stack or a proxy does
        # Only a code that no other function can run with these globals: a
        # closure's code is shared by every closure its factory makes, and
        # a version executed from reused compiled code shares its codes
        # with another version (whose frames have other globals).
        namespace = self.namespace
        codes = {
            id(function.__code__)
            for function in functions
            # not a proxy's (wrapt forwards ``__code__`` to what it wraps)
            if type(function) is types.FunctionType and not function.__code__.co_freevars
        }
        counted = map(sys.getrefcount, functions)
        frames, total = map(_CALL, (sys._current_frames, functools.partial(sum, counted)))
        in_flight = sum(
            id(frame.f_code) in codes and frame.f_globals is namespace for frame in frames.values()
        )
        del frames
        return total - in_flight <= cached[1]


@attrs.define(eq=False)
class TrackedModule:
    """A module under version control: its live object, versions and stable objects."""

    name: str
    module: types.ModuleType
    current: ModuleVersion
    history: History
    #: qualified name -> the one proxy handed out for it
    proxies: dict[str, HotFunction] = attrs.Factory(dict)
    #: class name -> the class object the program sees, whatever the version
    classes: dict[str, type] = attrs.Factory(dict)
    #: grows whenever a proxy or a class attribute name is added, invalidating
    #: every version's bindings and class plans
    generation: int = 0

    def proxy(self, qualname: str, target: Callable[..., Any]) -> HotFunction:
        """The proxy for ``qualname``, created (pointing at ``target``) if there is none."""
        proxy = self.proxies.get(qualname)
        if proxy is None:
            proxy = self.adopt(qualname, HotFunction(target, self.name, qualname))
        return proxy

    def adopt(self, qualname: str, proxy: HotFunction) -> HotFunction:
        """Register a proxy made elsewhere (by ``@hot`` before tracking) unless one exists."""
        known = self.proxies.setdefault(qualname, proxy)
        if known is proxy:
            self.generation += 1
        return known

    def bindings(
        self, version: ModuleVersion
    ) -> tuple[tuple[HotFunction, ...], tuple[Callable[..., Any], ...]]:
        """Every proxy and what it calls in ``version`` (a stub where the name is missing)."""
        cached = version.bindings
        if cached is None or cached[0] != self.generation:
            targets = version.targets
            proxies = tuple(self.proxies.values())
            functions = tuple(
                targets.get(qualname) or proxy.removed_stub()
                for qualname, proxy in self.proxies.items()
            )
            cached = version.bindings = (self.generation, proxies, functions)
        return cached[1], cached[2]


@attrs.define(eq=False)
class History:
    """The versions kept for one module.

    Kept: the ``keep`` most recently created versions, plus the current one
    and its parent when they are older than those, so that ``rollback()``
    from the current version always works.
    """

    keep: int
    versions: dict[int, ModuleVersion] = attrs.Factory(dict)
    next_number: int = 1

    def add(self, version: ModuleVersion) -> None:
        """Record a newly created version (numbers only grow)."""
        self.versions[version.info.number] = version
        self.next_number = version.info.number + 1

    def get(self, number: int) -> ModuleVersion | None:
        """The kept version ``number``, or ``None``."""
        return self.versions.get(number)

    def find(self, sha256: str) -> ModuleVersion | None:
        """A kept version with this source digest, newest first."""
        for version in reversed(self.versions.values()):
            if version.info.sha256 == sha256:
                return version
        return None

    def evict(self, current: ModuleVersion) -> None:
        """Release every version that is neither kept for its age nor ``current`` or its parent."""
        numbers = list(self.versions)  # in order of creation
        spared = {current.info.number, current.info.parent}
        evicted = [
            self.versions.pop(number)
            for number in numbers[: max(len(numbers) - self.keep, 0)]
            if number not in spared
        ]
        in_use = {version.lines_key for version in self.versions.values()}
        for version in evicted:
            # The contents a version keeps for its calls in flight refer to its
            # functions, whose globals are that namespace: a cycle that only a
            # full garbage collection would free. Evicted, a version is released
            # at once (a call still running on it no longer finds names that
            # the current version lacks).
            version.namespace.pop(VERSION_KEY, None)
            if version.lines_key is not None and version.lines_key not in in_use:
                forget_lines(version.lines_key)

    def infos(self) -> tuple[CodeVersion, ...]:
        """Public records of the kept versions, oldest first."""
        return tuple(version.info for version in self.versions.values())
