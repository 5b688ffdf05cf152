"""The steps of a deployment: what each changes, how it is checked, and how it is undone.

A step is checked at ``Deployment.plan()`` (``problems``: every problem with
its path, running nothing) and applied at ``run()`` (``apply``: it changes
the service and returns its undo, or ``None`` when it cannot be undone: a
point of no return). An undo puts back what the step replaced; it refuses
(raises) rather than overwrite a change someone else made since the step.
"""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from illunare import signals
from illunare._reload.source import compile_source
from illunare._rollout.config import Rollout
from illunare._services.spec import ServiceSpec
from illunare.exceptions import (
    ConfigError,
    FlagConfigError,
    FlagError,
    InvalidArgumentError,
    RollbackError,
    RolloutError,
    ServiceNotFoundError,
    SwapError,
)

if TYPE_CHECKING:
    from illunare._deploy.hotconfig import HotConfig
    from illunare._flags.flags import FeatureFlags
    from illunare._reload.reloader import HotReloader
    from illunare._reload.versions import CodeVersion
    from illunare._rollout.handle import RolloutHandle
    from illunare._services.registry import ServiceRegistry

__all__ = [
    "ConfigUpdate",
    "FlagUpdate",
    "HotRollout",
    "HotSwap",
    "LoadService",
    "Migration",
    "Parts",
    "Release",
    "Step",
    "StepProtocol",
    "Undo",
    "UnloadService",
    "code_problems",
    "module_problems",
]

#: Puts back what a step changed; raises if it cannot.
Undo = Callable[[], object]
#: (path, message)
Problem = tuple[str, str]


@attrs.frozen
class Parts:
    """What a Deployment was given for its steps to act on (None: not given)."""

    reloader: Callable[[], HotReloader]
    config: HotConfig | None
    flags: FeatureFlags | None
    services: ServiceRegistry | None = None


class Action(Protocol):
    """Something ``run()`` applies: one step, or a release of several modules."""

    def apply(self, parts: Parts, reason: str) -> Undo | None:
        """Make the change; return its undo (None: a point of no return)."""


@runtime_checkable
class StepProtocol(Action, Protocol):
    """What any step provides, beyond the built-in ones (a platform's, e.g. ``CloudRunShift``).

    ``target`` names what it changes (its StepResult's target),
    ``problems`` checks it at ``plan()`` (running nothing), ``apply`` makes
    the change at ``run()`` and returns its undo.
    """

    @property
    def target(self) -> str:
        """What the step changes."""

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """Every problem of the step, with its path; empty when it can run."""


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str, got {value!r}"
        )


def _source(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"HotSwap.code must be the new source (str), got {value!r}")


def _callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value) and not (attribute.name == "down" and value is None):
        wanted = "a callable or None" if attribute.name == "down" else "a callable"
        raise InvalidArgumentError(
            f"{type(instance).__name__}.{attribute.name} must be {wanted}, got {value!r}"
        )


def _read_only(value: object) -> Mapping[Any, Any]:
    """A read-only copy of a mapping (a frozen step must not change under its owner's hands)."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"ConfigUpdate.values and FlagUpdate.config are mappings, got {type(value).__name__}"
        )
    return types.MappingProxyType(dict(value))


def module_problems(parts: Parts, module: str, path: str) -> list[Problem]:
    """The reloader must track ``module``: its refusal, if any, at ``path``."""
    try:
        parts.reloader().current(module)
    except SwapError as error:
        return [(path, str(error))]
    return []


def code_problems(module: str, code: str, path: str) -> list[Problem]:
    """Compile a module's new code: its syntax error, if any, at ``path``."""
    try:
        compile_source(code, f"<deployment of {module}>", module)
    except SwapError as error:
        return [(path, str(error))]
    return []


@attrs.frozen
class HotSwap:
    """Swap tracked module ``module`` to ``code``; undone by rolling it back.

    The undo returns the module to the version current before the step
    (nothing, if the code was identical and no version was made).
    """

    module: str = attrs.field(validator=_text)
    code: str = attrs.field(validator=_source, repr=False)

    @property
    def target(self) -> str:
        """The module swapped."""
        return self.module

    def problems(self, parts: Parts, path: str, module_key: str = "module") -> list[Problem]:
        """The module must be tracked and the code must compile.

        ``module_key`` names the module's field in the package (``"name"``
        in the mapping form).
        """
        return module_problems(parts, self.module, f"{path}.{module_key}") + code_problems(
            self.module, self.code, f"{path}.code"
        )


@attrs.frozen
class ConfigUpdate:
    """Merge ``values`` into the Deployment's HotConfig; undone by rolling the config back."""

    values: Mapping[Any, Any] = attrs.field(converter=_read_only)

    @property
    def target(self) -> str:
        """The keys updated, comma separated."""
        return ", ".join(sorted(map(str, self.values)))

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The Deployment needs a config to update."""
        if parts.config is None:
            return [(path, "a config update needs a Deployment given config= (a HotConfig)")]
        return []

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Update the config; the undo rolls it back to the version before."""
        config = parts.config
        assert config is not None  # checked by plan()
        with config._lock:  # re-entrant: no other change between the update and the check
            before = config.version
            try:
                after = config.update(self.values)
            except BaseException:
                # update() changes nothing when it raises, but for an interrupt
                # from a config_updated receiver, sent once the version is served.
                if config.version != before:
                    config.rollback(to=before)
                raise

        def undo() -> None:
            if after == before:
                return
            if config.version != after:
                raise ConfigError(
                    f"the config changed since the step (now version {config.version}, "
                    f"the step made {after}); left as it is"
                )
            config.rollback(to=before)

        return undo


@attrs.frozen
class FlagUpdate:
    """Set flag ``name`` to ``config`` in the Deployment's FeatureFlags (through its backend).

    The undo restores the flag's previous config, or deletes the flag if the
    step created it.
    """

    name: str = attrs.field(validator=_text)
    config: Mapping[str, Any] = attrs.field(converter=_read_only)

    @property
    def target(self) -> str:
        """The flag updated."""
        return self.name

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The Deployment needs flags; the config must be a valid flag config."""
        if parts.flags is None:
            return [(path, "a flag update needs a Deployment given flags= (a FeatureFlags)")]
        try:
            parts.flags._prepare(self.name, self.config)
        except FlagConfigError as error:
            return [
                (f"{path}.{inner}" if inner else path, message) for inner, message in error.problems
            ]
        return []

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Update the flag; the undo restores (or deletes) it."""
        flags = parts.flags
        assert flags is not None  # checked by plan()
        previous = flags.flags().get(self.name)
        replaced = None if previous is None else previous.config

        def restore() -> None:
            if replaced is None:
                flags.delete(self.name)
            else:
                flags.update(self.name, replaced)

        try:
            served = flags.update(self.name, self.config).config
        except BaseException as error:
            # update() changes nothing when it raises an Exception; an interrupt
            # from a flag_updated receiver or listener comes after the change.
            if not isinstance(error, Exception) and flags.flags().get(self.name) != previous:
                restore()
            raise

        def undo() -> None:
            if served == replaced:
                return  # the same config: the step changed nothing
            now = flags.flags().get(self.name)
            # Compared by config, not version: undoing a later update of the
            # same flag serves this step's config again, as a new version.
            if now is None or now.config != served:
                raise FlagError(f"flag {self.name!r} changed since the step; left as it is")
            restore()

        return undo


@attrs.frozen
class Migration:
    """Run ``up()``; the undo runs ``down()``.

    Without ``down`` the migration is a point of no return: a later failure
    halts the deployment (status ``"halted"``) instead of undoing past it.
    """

    name: str = attrs.field(validator=_text)
    up: Callable[[], object] = attrs.field(validator=_callable)
    down: Callable[[], object] | None = attrs.field(default=None, validator=_callable)

    @property
    def target(self) -> str:
        """The migration's name."""
        return self.name

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """Nothing to check beyond construction."""
        return []

    def apply(self, parts: Parts, reason: str) -> Undo | None:
        """Run ``up``; the undo is ``down`` (None without one)."""
        self.up()
        return self.down


def _services_problems(parts: Parts, path: str) -> list[Problem]:
    if parts.services is None:
        return [(path, "a service step needs a Deployment given services= (a ServiceRegistry)")]
    return []


def _spec(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, ServiceSpec):
        raise InvalidArgumentError(f"LoadService.spec must be a ServiceSpec, got {value!r}")


def _drain_timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentError(
            f"UnloadService.drain_timeout must be a number of seconds >= 0, got {value!r}"
        )


@attrs.frozen
class LoadService:
    """Load ``spec`` into the Deployment's ServiceRegistry (``services=``); undone by unloading it.

    The undo unloads the service with ``drain_timeout`` (its requests in
    flight finish first); it refuses (ServiceNotFoundError) if the service
    was unloaded, or loaded again from another spec, since the step. An undo
    that fails (its drain times out, ``stop`` raises) leaves the service
    loaded and serving, as the step left it.
    """

    spec: ServiceSpec = attrs.field(validator=_spec)
    drain_timeout: float = attrs.field(default=30.0, validator=_drain_timeout)

    @property
    def target(self) -> str:
        """The service loaded."""
        return self.spec.name

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The Deployment needs a ServiceRegistry."""
        return _services_problems(parts, path)

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Load the service; the undo unloads it."""
        services = parts.services
        assert services is not None  # checked by plan()
        services.load(self.spec)

        def undo() -> None:
            if services._spec(self.spec.name) is not self.spec:
                raise ServiceNotFoundError(
                    f"service {self.spec.name!r} was loaded again since the step; left as it is",
                    service=self.spec.name,
                )
            services._unload(self.spec.name, self.drain_timeout, restore=True)

        return undo


@attrs.frozen
class UnloadService:
    """Unload service ``name`` from the Deployment's ServiceRegistry; undone by loading it again.

    The unload drains the service for up to ``drain_timeout`` seconds; if
    requests are still in flight then, or ``stop`` raises, the step fails
    and the service takes requests again (a failed step changes nothing;
    what a raising ``stop`` did is not undone). The undo loads the same
    spec again (its ``start`` runs anew: a new service object); it refuses
    if a service of that name was loaded since.
    """

    name: str = attrs.field(validator=_text)
    drain_timeout: float = attrs.field(default=30.0, validator=_drain_timeout)

    @property
    def target(self) -> str:
        """The service unloaded."""
        return self.name

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """The Deployment needs a ServiceRegistry."""
        return _services_problems(parts, path)

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Unload the service; the undo loads its spec again."""
        services = parts.services
        assert services is not None  # checked by plan()
        spec = services._spec(self.name)
        services._unload(self.name, self.drain_timeout, restore=True)
        return lambda: services.load(spec)


def _sources(value: object) -> Mapping[str, str]:
    """A read-only copy of ``HotRollout.modules``, or InvalidArgumentError."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidArgumentError(
            f"HotRollout.modules must be a non-empty mapping of module names to code, got {value!r}"
        )
    for module, code in value.items():
        if not isinstance(module, str) or not module:
            raise InvalidArgumentError(
                f"HotRollout.modules: a module name must be a str, got {module!r}"
            )
        if not isinstance(code, str):
            raise InvalidArgumentError(
                f"HotRollout.modules[{module!r}] must be the new source (str), got {code!r}"
            )
    return types.MappingProxyType(dict(value))


def _rollout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Rollout):
        raise InvalidArgumentError(f"HotRollout.rollout must be a Rollout, got {value!r}")


@attrs.frozen
class HotRollout:
    """Ship tracked modules as one release, rolled out gradually: a canary.

    The new versions take each step's share of calls in turn, as
    ``HotReloader.swap(..., rollout=)`` shifts them. The step succeeds when
    the rollout promotes; it fails, and the deployment's earlier steps are
    undone, when the rollout rolls back or fails (the error names the step's
    weight and the breach). A ``KeyboardInterrupt`` while the rollout runs
    aborts it, then goes on. The undo rolls the modules back to the versions
    current before the step (refused if they were swapped since).
    """

    #: module -> its new source: one release
    modules: Mapping[str, str] = attrs.field(converter=_sources, repr=False)
    rollout: Rollout = attrs.field(factory=Rollout, validator=_rollout)

    @property
    def target(self) -> str:
        """The modules shipped, comma separated."""
        return ", ".join(self.modules)

    def problems(self, parts: Parts, path: str) -> list[Problem]:
        """Each module must be tracked and its code must compile."""
        problems: list[Problem] = []
        for module, code in self.modules.items():
            at = f"{path}.modules[{json.dumps(module)}]"
            problems += module_problems(parts, module, at) + code_problems(module, code, at)
        return problems

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Roll the release out and wait for its end; the undo rolls the modules back."""
        swaps = tuple(HotSwap(module, code) for module, code in self.modules.items())
        return Release(swaps, self.rollout).apply(parts, reason)


Step = (
    HotSwap
    | HotRollout
    | ConfigUpdate
    | FlagUpdate
    | Migration
    | LoadService
    | UnloadService
    | StepProtocol
)


@attrs.frozen
class Release:
    """Modules swapped as one release (``swap_many``: one flip), each its own step.

    With ``rollout``, the release is shipped as one gradual rollout, and
    applied when it promotes.
    """

    swaps: tuple[HotSwap, ...]
    rollout: Rollout | None = None

    def apply(self, parts: Parts, reason: str) -> Undo:
        """Swap every module in one flip; the undo rolls back, in one flip, those that changed.

        Those that changed include the modules the release executed anew
        with them (a hot web app's, ``illunare.web``): they are told by
        ``module_swapped``, which the release sends in this thread, and a
        rollout in the thread that promotes it.

        Raises:
            RolloutError: the rollout rolled back or failed: every call is
                on the old versions again.

        """
        reloader = parts.reloader()
        sources = {swap.module: swap.code for swap in self.swaps}
        here = threading.get_ident()
        swapped: list[tuple[int, CodeVersion]] = []
        # Those of a rollout's release: it may be promoted by any thread, but
        # its modules are the rollout's alone until it ends.
        rolled_out: frozenset[str] = frozenset()

        def collect(sender: object, *, version: CodeVersion, **extra: object) -> None:
            swapped.append((threading.get_ident(), version))

        def undo() -> None:
            made: dict[str, int] = {}
            for thread, version in swapped:
                if thread == here or version.module in rolled_out:
                    made.setdefault(version.module, version.number)
            if not made:
                return
            moved = [
                f"{name} (now v{reloader.current(name).number}, the deployment made v{number})"
                for name, number in made.items()
                if reloader.current(name).number != number
            ]
            if moved:
                raise RollbackError(
                    f"swapped again since the deployment, left as they are: {', '.join(moved)}",
                    module=next(iter(made)),
                )
            reloader.rollback_many(list(made))

        with signals.module_swapped.connected_to(collect, sender=reloader):
            if self.rollout is None:
                reloader.swap_many(sources, reason=reason)
            else:
                handle = reloader._start_rollout(
                    sources, checks=(), reason=reason, rollout=self.rollout, shadow=None
                )
                rolled_out = frozenset(handle.modules)
                _wait(handle, self.rollout, undo)
        return undo


def _wait(handle: RolloutHandle, rollout: Rollout, undo: Undo) -> None:
    """Wait for the end of ``handle``'s rollout; RolloutError unless it promoted.

    An interrupt (``KeyboardInterrupt``, ``SystemExit``) during the wait
    aborts the rollout, or undoes it if it promoted first, then goes on.
    """
    try:
        status = handle.wait()
    except BaseException:
        try:
            handle.abort()
        except RolloutError:  # it promoted first: once it is told (module_swapped), undo it
            handle.wait()
            undo()
        raise
    if status != "promoted":
        raise RolloutError(_failure(handle, rollout), module=handle.module, status=status)


def _failure(handle: RolloutHandle, rollout: Rollout) -> str:
    """Why a rollout ended without promoting: ``rollout rolled back at 10%: error_rate ...``."""
    report = handle.report()
    status = str(report["status"]).replace("_", " ")
    steps = report["steps"]
    assert isinstance(steps, list)
    if not steps:
        return f"rollout {status}"
    last = steps[-1]
    why = "; ".join(last["breaches"]) or last["verdict"]
    if why == "inconclusive":
        why += f": {last['calls']} calls of the new version, min_samples {rollout.min_samples}"
    return f"rollout {status} at {last['weight']}%: {why}"
