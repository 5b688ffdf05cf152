"""``FeatureFlags``: compiled, thread-safe flag evaluation with live updates."""

from __future__ import annotations

import itertools
import logging
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from illunare import signals
from illunare._flags import unleash
from illunare._flags.backends import FlagBackend, MemoryBackend
from illunare._flags.compiler import CompiledFlag, choose_variant, compile_flag
from illunare._flags.config import parse_flag, validate_name
from illunare._flags.values import DISABLED_VARIANT, Evaluation, Flag, Reason, Variant
from illunare._forks import relock_in_children
from illunare.exceptions import FlagNotFoundError, InvalidArgumentError

__all__ = ["FeatureFlags"]

logger = logging.getLogger("illunare")

Listener = Callable[[str, "Flag | None", "Flag | None"], object]
#: A change to tell listeners of: name, old flag, new flag.
Notice = tuple[str, "Flag | None", "Flag | None"]
L = TypeVar("L", bound=Listener)

_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


class FeatureFlags:
    """Feature flags evaluated locally, in the caller's thread, against a context mapping.

    Each flag is validated completely and compiled into a predicate when it
    is updated; ``is_enabled`` then takes no lock and builds no object.
    Readers always see one whole version of a flag.

    Args:
        backend: where configs are stored and shared (default: a private
            ``MemoryBackend``). ``FileBackend`` and ``RedisBackend`` share
            flags between processes.

    """

    def __init__(self, *, backend: FlagBackend | None = None) -> None:
        self._lock = threading.RLock()
        self._compiled: dict[str, CompiledFlag] = {}
        # name -> predicate; read without a lock by is_enabled
        self._checks: dict[str, Callable[[Any], bool]] = {}
        self._flags: dict[str, Flag] = {}
        # One counter for every flag: a flag deleted and made again goes on
        # from a higher number, and nothing is kept per deleted name.
        self._versions = itertools.count(1)
        # name -> the store's revision of what is served (or was deleted):
        # a change is applied only if it is newer, whatever order changes arrive in.
        self._revisions: dict[str, int] = {}
        self._listeners: list[tuple[str | None, Listener]] = []
        self._unleash = unleash.UnleashState()
        self.backend: FlagBackend = backend if backend is not None else MemoryBackend()
        relock_in_children(self)
        for name, (config, revision) in self.backend.attach(self).items():
            self.apply_remote(name, config, revision)

    def __repr__(self) -> str:
        return f"<FeatureFlags {len(self._flags)} flags backend={type(self.backend).__name__}>"

    # Changing flags -------------------------------------------------------------

    def update(self, name: str, config: Mapping[str, Any]) -> Flag:
        """Validate, store and apply a flag's config; return the new version.

        If a newer change of the same flag, made elsewhere, arrived while this
        one was being stored, the newer one is served (as in every process)
        and this returns the flag as written, with version 0: never served.

        Raises:
            FlagConfigError: listing every problem of ``config`` (with paths);
                the flag in use keeps serving unchanged.
            BackendUnavailableError: the backend cannot store it; nothing changed here.

        """
        compiled = self._prepare(name, config)
        revision = self.backend.write(name, compiled.spec.config, origin=self)
        return self._install(compiled, "illunare", revision)

    def delete(self, name: str) -> None:
        """Remove a flag (it then evaluates as unknown: disabled).

        Raises:
            FlagNotFoundError: there is no flag of that name.

        """
        validate_name(name)
        if name not in self._flags:
            raise FlagNotFoundError(f"no flag named {name!r}")
        revision = self.backend.write(name, None, origin=self)
        self._remove(name, revision)

    def apply_remote(self, name: str, config: Mapping[str, Any] | None, revision: int) -> None:
        """Apply a change that a backend received from elsewhere (backends call this).

        Only a ``revision`` newer than the one served applies. A remote config
        that cannot be used is logged and ignored: the last good version keeps
        serving. Never raises: backends call this from their threads.
        """
        if config is None:
            self._remove(name, revision)
            return
        try:
            self._install(self._prepare(name, config), "illunare", revision)
        except Exception as error:  # whatever the store holds, keep the last good
            logger.warning(
                "ignoring an invalid config for flag %r from %r: %s",
                name,
                self.backend,
                error,
                exc_info=error,
            )

    def load_unleash(self, payload: Mapping[str, Any]) -> None:
        """Import an Unleash client features payload (or a delta ``events`` payload).

        Strategies, constraints, segments, dependencies and variants become
        flags evaluated by the same engine; pass an Unleash context mapping
        (``userId``, ``sessionId``, ``properties`` ...) to ``is_enabled`` and
        ``evaluate``. A full payload replaces the flags of earlier payloads;
        delta events apply in order. Nothing changes if any part is invalid.
        The flags apply to this FeatureFlags only: they are not written to
        its backend (each process loads the payload it polls from Unleash).

        Raises:
            FlagConfigError: listing every problem of the payload.

        """
        notices: list[Notice | None] = []
        with self._lock:
            changes = self._unleash.read(payload)
            # Every flag compiles before anything changes: all or nothing.
            compiled = [compile_flag(spec, self._parent) for spec in changes.updated.values()]
            self._unleash.adopt(changes)
            notices += [self._serve(flag, "unleash")[1] for flag in compiled]
            for name in changes.removed:
                if name in self._flags and self._flags[name].source == "unleash":
                    notices.append((name, self._drop(name), None))
        for notice in notices:  # listeners run without the lock
            if notice is not None:
                self._notify(*notice)

    # Evaluating -----------------------------------------------------------------

    def is_enabled(self, name: str, context: Mapping[str, Any] | None = None) -> bool:
        """Whether the flag is on for ``context``; unknown flags are off.

        Never raises: a name that is no flag's (even an unhashable one) and a
        context that cannot be read give False.
        """
        # One expression on purpose: this is the hot path of every flag check
        # (the try costs nothing from Python 3.11 on, next to nothing before).
        try:
            return self._checks.get(name, _off)(context or _EMPTY)
        except Exception:  # noqa: BLE001  # documented: never raises, answers False
            return False

    def evaluate(self, name: str, context: Mapping[str, Any] | None = None) -> Evaluation:
        """The full answer: enabled, variant, reason (and failed condition), flag version.

        Never raises: an unknown (or unhashable) name gives reason
        ``flag_not_found``, a failing evaluation reason ``error``.
        """
        try:
            compiled = self._compiled.get(name)
        except TypeError:  # an unhashable name names no flag
            compiled = None
        if compiled is None:
            return Evaluation(name, False, Reason.FLAG_NOT_FOUND, 0, error="flag not found")
        context = _EMPTY if context is None else context
        try:
            return _evaluate(compiled, context)
        except Exception as error:  # evaluation must answer, whatever the context holds
            logger.exception("evaluating flag %r failed", name)
            return Evaluation(name, False, Reason.ERROR, compiled.version, error=repr(error))

    def flags(self) -> Mapping[str, Flag]:
        """Every flag, by name (a read-only snapshot)."""
        return types.MappingProxyType(dict(self._flags))

    # Listening ------------------------------------------------------------------

    def on_change(self, name: str | None = None) -> Any:
        """Decorator: call ``callback(name, old, new)`` when the flag (any, if None) changes.

        ``old`` is None for a new flag, ``new`` is None for a deleted one.
        ``@flags.on_change("name")``, ``@flags.on_change()`` and the bare
        ``@flags.on_change`` (every flag) all work.
        """
        if callable(name):
            return self.on_change(None)(name)
        if name is not None and not isinstance(name, str):
            raise InvalidArgumentError(f"on_change takes a flag name or None, got {name!r}")

        def register(callback: L) -> L:
            if not callable(callback):
                raise InvalidArgumentError(f"on_change needs a callable, got {callback!r}")
            with self._lock:
                self._listeners.append((name, callback))
            return callback

        return register

    def close(self) -> None:
        """Stop receiving changes from the backend."""
        self.backend.detach(self)

    # Test doubles ---------------------------------------------------------------

    def override(self, name: str, config: Mapping[str, Any]) -> Callable[[], None]:
        """Serve ``config`` for ``name`` in this object only; return the undo.

        Nothing is written to the backend. Used by ``illunare.testing``.
        """
        compiled = self._prepare(name, config)
        with self._lock:
            previous = (self._flags.get(name), self._compiled.get(name))
            notice = self._serve(compiled, "override")[1]
        if notice is not None:
            self._notify(*notice)

        def undo() -> None:
            flag, compiled = previous
            with self._lock:
                current = self._flags.get(name)
                if flag is None or compiled is None:
                    self._drop(name)
                else:
                    self._put(flag, compiled)
            self._notify(name, current, flag)

        return undo

    # Internals ------------------------------------------------------------------

    def _prepare(self, name: str, config: object) -> CompiledFlag:
        """Validate and compile a native config, storing nothing; the one way in for configs.

        Thread-safe and takes no lock. The result's ``spec.config`` is a plain
        JSON copy of ``config``, the one to store and to hand to ``_install``.

        Raises:
            FlagConfigError: listing every problem; any config that cannot be
                compiled (too deep, too many conditions ...) is one of them.

        """
        return compile_flag(parse_flag(name, config), self._parent)

    def _install(self, compiled: CompiledFlag, source: str, revision: int | None = None) -> Flag:
        """Serve a prepared flag (see ``_serve``), then notify; return the flag."""
        with self._lock:
            flag, notice = self._serve(compiled, source, revision)
        if notice is not None:
            self._notify(*notice)
        return flag

    def _serve(
        self, compiled: CompiledFlag, source: str, revision: int | None = None
    ) -> tuple[Flag, Notice | None]:
        """Serve a prepared flag, a new version unless it is the one served (lock held).

        A flag from the backend (``revision`` given) is served only if that
        revision is newer than the one served. Returns the flag and what to
        tell listeners, once the lock is released (None: nothing changed).
        """
        spec = compiled.spec
        name = spec.name
        config = types.MappingProxyType(dict(spec.config))
        old = self._flags.get(name)
        if not self._newer(name, revision):
            # Overtaken by a newer change from elsewhere: written, never served here.
            return Flag(name, config, 0, spec.enabled, source), None
        if old is not None and old.source == source and old.config == spec.config:
            self._put(old, self._compiled[name], revision)
            return old, None
        compiled = attrs.evolve(compiled, version=next(self._versions))
        flag = Flag(name, config, compiled.version, spec.enabled, source)
        self._put(flag, compiled, revision)
        return flag, (name, old, flag)

    def _remove(self, name: str, revision: int | None = None) -> None:
        with self._lock:
            old = self._drop(name, revision) if self._newer(name, revision) else None
        if old is not None:
            self._notify(name, old, None)

    def _newer(self, name: str, revision: int | None) -> bool:
        """Whether a change at ``revision`` (None: a local one) is newer than the served."""
        return revision is None or revision > self._revisions.get(name, 0)

    def _put(self, flag: Flag, compiled: CompiledFlag, revision: int | None = None) -> None:
        """Make ``flag`` the one served, at the store's ``revision`` (call with the lock held)."""
        self._compiled[flag.name] = compiled
        self._checks[flag.name] = compiled.check
        self._flags[flag.name] = flag
        if revision is not None:
            self._revisions[flag.name] = revision

    def _drop(self, name: str, revision: int | None = None) -> Flag | None:
        """Stop serving ``name``; return the flag that was served (call with the lock held).

        Nothing of a deleted flag is kept here: its backend keeps the
        revision of the deletion and passes on no older change.
        """
        self._revisions.pop(name, None)
        self._checks.pop(name, None)
        self._compiled.pop(name, None)
        return self._flags.pop(name, None)

    def _notify(self, name: str, old: Flag | None, new: Flag | None) -> None:
        if signals.flag_updated.receivers:
            signals._send(signals.flag_updated, self, name=name, old=old, new=new)
        for wanted, callback in list(self._listeners):
            if wanted is None or wanted == name:
                try:
                    callback(name, old, new)
                except Exception:  # one listener must not stop the others
                    logger.exception("a flag listener failed for %r", name)

    def _parent(self, name: str, context: Any) -> tuple[bool, str | None] | None:
        compiled = self._compiled.get(name)
        if compiled is None:
            return None
        if compiled.spec.source == "unleash" and compiled.spec.prerequisites:
            return None  # Unleash: a parent that has dependencies itself never satisfies one
        evaluation = _evaluate(compiled, context)
        variant = evaluation.variant.name if evaluation.variant is not None else None
        return evaluation.enabled, variant

    def _relock(self) -> None:
        # Called in a forked child, where a thread of the parent may have held it.
        self._lock = threading.RLock()


def _off(context: object) -> bool:
    return False


def _evaluate(compiled: CompiledFlag, context: Any) -> Evaluation:
    spec = compiled.spec
    none = DISABLED_VARIANT if spec.source == "unleash" else None
    if not spec.enabled:
        return Evaluation(spec.name, False, Reason.DISABLED, compiled.version, none)
    index = compiled.prerequisite_failure(context)
    if index >= 0:
        return Evaluation(
            spec.name, False, Reason.CONDITION_FAILED, compiled.version, none,
            failed_condition=f"dependencies[{index}]",
        )  # fmt: skip
    matched = None
    reason = Reason.DEFAULT
    failed = None
    rules = zip(spec.rules, compiled.rule_failures, compiled.rule_splits, strict=True)
    for rule, first_failure, split in rules:
        index = first_failure(context)
        if index >= 0:
            failed = failed or rule.labels[index]
        else:
            matched = rule
            if rule.conditions:
                reason = Reason.SPLIT if split else Reason.TARGETING_MATCH
            break
    else:
        if spec.rules:
            return Evaluation(
                spec.name, False, Reason.CONDITION_FAILED, compiled.version, none,
                failed_condition=failed,
            )  # fmt: skip
    variants = matched.variants if matched is not None and matched.variants else spec.variants
    option = choose_variant(variants, context) if variants is not None else None
    variant = Variant(option.name, option.payload, True) if option is not None else none
    return Evaluation(spec.name, True, reason, compiled.version, variant)
