"""Every error illunare raises on purpose.

Each class refines the builtin exception it means, so callers can catch either
the precise illunare error or the builtin they already handle::

    IllunareError
    ├── InvalidArgumentError(TypeError, ValueError)   a parameter of the wrong type or value
    ├── MissingExtraError(ImportError)                an optional integration is not installed
    ├── UnsupportedInterpreterError(RuntimeError)     hot swapping cannot run on this interpreter
    ├── SwapError                                     hot code swapping
    │   ├── CompileError(ValueError)                  the new source does not compile
    │   ├── LoadError(RuntimeError)                   reading or executing the new source failed
    │   ├── ValidationError(ValueError)               a check or ``__hot_migrate__`` refused it
    │   ├── RollbackError(LookupError)                no version to roll back to
    │   ├── UnknownModuleError(LookupError)           the module is not tracked
    │   ├── FunctionRemovedError(NameError)           the called function left the current version
    │   └── RolloutError(RuntimeError)                a rollout refused it (running, or ended)
    ├── FlagError                                     feature flags
    │   ├── FlagConfigError(ValueError)               a flag config or Unleash payload is invalid
    │   ├── FlagNotFoundError(LookupError)            no flag of that name
    │   └── BackendUnavailableError(ConnectionError)  the flag store cannot be reached
    ├── ConfigError(ValueError)                       a HotConfig refused an update or a rollback
    ├── PackageError(ValueError)                      a deployment package is invalid; nothing ran
    ├── DeploymentError(RuntimeError)                 a deployment failed (``result`` says how)
    │   └── DeploymentInProgressError                 the service is already being deployed
    ├── ServiceError                                  plug and play services
    │   ├── ServiceSpecError(ValueError)              a bad spec, clash or missing dependency
    │   ├── ServiceInUseError(RuntimeError)           other loaded services depend on it
    │   ├── ServiceNotFoundError(LookupError)         no service of that name is loaded
    │   ├── NoRouteError(LookupError)                 no route matches the path
    │   ├── ServiceUnavailableError(RuntimeError)     the service drains: no new work
    │   └── DrainTimeoutError(TimeoutError)           requests still in flight at the timeout
    ├── PlatformError(RuntimeError)                   a platform's API failed (``__cause__``)
    │   ├── KubernetesRolloutError                    a Deployment's rollout failed (``status``)
    │   └── TrafficShiftError                         a traffic shift was put back (``result``)
    └── StaleReferenceWarning(UserWarning)            a swap left a reference to the old code

Errors carry their context as attributes (``module``, ``filename``,
``lineno`` ...), and the original exception, where there is one, is the
``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from illunare._deploy.results import DeploymentResult
    from illunare.gcp import TrafficResult
    from illunare.kubernetes import RolloutStatus

__all__ = [
    "BackendUnavailableError",
    "CompileError",
    "ConfigError",
    "DeploymentError",
    "DeploymentInProgressError",
    "DrainTimeoutError",
    "FlagConfigError",
    "FlagError",
    "FlagNotFoundError",
    "FunctionRemovedError",
    "IllunareError",
    "InvalidArgumentError",
    "KubernetesRolloutError",
    "LoadError",
    "MissingExtraError",
    "NoRouteError",
    "PackageError",
    "PlatformError",
    "RollbackError",
    "RolloutError",
    "ServiceError",
    "ServiceInUseError",
    "ServiceNotFoundError",
    "ServiceSpecError",
    "ServiceUnavailableError",
    "StaleReferenceWarning",
    "SwapError",
    "TrafficShiftError",
    "UnknownModuleError",
    "UnsupportedInterpreterError",
    "ValidationError",
]


class IllunareError(Exception):
    """The root of every error illunare raises on purpose."""


class InvalidArgumentError(IllunareError, TypeError, ValueError):
    """A parameter has the wrong type or an impossible value; nothing changed."""


class MissingExtraError(IllunareError, ImportError):
    """An optional integration needs an extra; the message says which ``pip install`` to run."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs an optional extra: pip install 'illunare[{extra}]'")
        self.extra = extra


class UnsupportedInterpreterError(IllunareError, RuntimeError):
    """Hot code swapping needs CPython 3.10-3.13 with the GIL; the message says what is missing.

    Raised when a ``HotReloader`` is made (``hot`` and ``default_reloader()``
    make one on first use), and by ``ServiceRegistry.load()`` without
    CPython's reference counts and GIL; importing illunare and feature flags
    work anywhere.
    """


class SwapError(IllunareError):
    """Base of the hot code swapping errors; ``module`` names the module concerned."""

    def __init__(self, message: str, *, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


class CompileError(SwapError, ValueError):
    """The new source has a syntax error; ``filename``, ``lineno`` and ``offset`` locate it."""

    def __init__(
        self,
        message: str,
        *,
        module: str | None = None,
        filename: str | None = None,
        lineno: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, module=module)
        self.filename = filename
        self.lineno = lineno
        self.offset = offset


class LoadError(SwapError, RuntimeError):
    """The new source could not be read, or executing it raised (see ``__cause__``)."""


class ValidationError(SwapError, ValueError):
    """A check or ``__hot_migrate__`` refused the new version; nothing changed."""


class RollbackError(SwapError, LookupError):
    """There is no version to roll back to: no parent, or an evicted or unknown number."""


class UnknownModuleError(SwapError, LookupError):
    """The module is not tracked by this reloader (or cannot be imported)."""


class FunctionRemovedError(SwapError, NameError):
    """A hot reference was called after its function left the current version."""


class RolloutError(SwapError, RuntimeError):
    """A rollout or shadow run refused the action; nothing changed.

    Raised by a swap (or a release, or a watcher's save) of a module under a
    running rollout, and by ``RolloutHandle.promote()``/``abort()`` on a
    rollout that already ended otherwise. ``module`` names the module,
    ``status`` the rollout's status at that moment.
    """

    def __init__(
        self, message: str, *, module: str | None = None, status: str | None = None
    ) -> None:
        super().__init__(message, module=module)
        self.status = status


class FlagError(IllunareError):
    """Base of the feature flag errors."""


class FlagConfigError(FlagError, ValueError):
    """A flag config (or Unleash payload) is invalid; the flags in use did not change.

    ``problems`` lists every problem as ``(path, message)``, e.g.
    ``("conditions[1].value", "must be a number from 0 to 100")``.
    """

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    @classmethod
    def from_problems(cls, subject: str, problems: list[tuple[str, str]]) -> FlagConfigError:
        """An error whose message lists every problem found in ``subject``."""
        listed = "; ".join(f"{path or '(root)'}: {message}" for path, message in problems)
        return cls(f"invalid config for {subject!r}: {listed}", tuple(problems))


class FlagNotFoundError(FlagError, LookupError):
    """No flag of that name exists."""


class BackendUnavailableError(FlagError, ConnectionError):
    """The flag backend (e.g. Redis) cannot be reached; the change was not made."""


class ConfigError(IllunareError, ValueError):
    """A HotConfig refused a change: the validator refused the values, or no version to return to.

    Nothing changed: the version served before is still served. When the
    validator refused, its exception is the ``__cause__``.
    """


class PackageError(IllunareError, ValueError):
    """A deployment package is invalid; nothing ran, no history entry, no signal.

    ``problems`` lists every problem as ``(path, message)``, e.g.
    ``("modules[1].code", "invalid syntax (line 3)")``.
    """

    def __init__(self, problems: tuple[tuple[str, str], ...]) -> None:
        listed = "; ".join(f"{path}: {message}" for path, message in problems)
        super().__init__(f"invalid deployment package: {listed}")
        self.problems = problems

    def __reduce__(self) -> tuple[type[PackageError], tuple[tuple[tuple[str, str], ...]]]:
        # Pickled with its own arguments (a process pool sends it back to the caller).
        return type(self), (self.problems,)


class DeploymentError(IllunareError, RuntimeError):
    """A deployment failed; ``result`` (a ``DeploymentResult``) says what ran and what was undone.

    The step's exception, where there is one, is the ``__cause__``.
    """

    def __init__(self, message: str, result: DeploymentResult | None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[DeploymentError], tuple[str, DeploymentResult | None]]:
        # Pickled with its own arguments (a process pool sends it back to the caller).
        return type(self), (self.args[0], self.result)


class DeploymentInProgressError(DeploymentError):
    """Another deployment of the same service is running in this process; ``result`` is None."""

    def __init__(self, service: str) -> None:
        super().__init__(f"a deployment of {service!r} is already running", None)
        self.service = service

    def __reduce__(self) -> tuple[type[DeploymentInProgressError], tuple[str]]:  # type: ignore[override]
        return type(self), (self.service,)


class ServiceError(IllunareError):
    """Base of the plug and play service errors; ``service`` names the service concerned."""

    def __init__(self, message: str, *, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


class ServiceSpecError(ServiceError, ValueError):
    """A spec is invalid, or cannot be loaded now: nothing started, nothing registered.

    A bad name, callable or route path; a name already loaded; a route that
    clashes with a loaded one; a dependency not loaded. The message names it.
    Also a ``start`` (or ``stop``) that returned a coroutine, which nothing
    runs: ``load()`` registers nothing (``unload()`` stops nothing).
    """


class ServiceInUseError(ServiceError, RuntimeError):
    """The service cannot be unloaded: ``dependents`` (loaded services) depend on it."""

    def __init__(
        self, message: str, *, service: str | None = None, dependents: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, service=service)
        self.dependents = dependents


class ServiceNotFoundError(ServiceError, LookupError):
    """No service of that name is loaded."""


class NoRouteError(ServiceError, LookupError):
    """No route matches ``path``."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ServiceUnavailableError(ServiceError, RuntimeError):
    """The service is being unloaded: it takes no new requests (the web adapters answer 503)."""


class DrainTimeoutError(ServiceError, TimeoutError):
    """Requests were still in flight when an unload's ``drain_timeout`` ran out.

    The service stays registered, refuses new requests and is not stopped;
    ``unload`` may be called again. ``inflight`` is how many requests it had.
    """

    def __init__(self, message: str, *, service: str | None = None, inflight: int = 0) -> None:
        super().__init__(message, service=service)
        self.inflight = inflight


class PlatformError(IllunareError, RuntimeError):
    """A platform's API refused or failed a call, or a platform rollout failed.

    An HTTP error (4xx/5xx) from Kubernetes or Google Cloud keeps the
    platform's own message, and the client's exception is the ``__cause__``.
    """


class KubernetesRolloutError(PlatformError):
    """A Deployment's rollout failed; ``status`` (a ``RolloutStatus``) is the last judgement.

    Raised by ``KubernetesDeployer.deploy`` on ProgressDeadlineExceeded, a
    timeout or the Deployment deleted, after the undo when it was asked for.
    """

    def __init__(self, message: str, status: RolloutStatus | None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[KubernetesRolloutError], tuple[str, RolloutStatus | None]]:
        return type(self), (self.args[0], self.status)


class TrafficShiftError(PlatformError):
    """A traffic shift breached its health gate; ``result`` (a ``TrafficResult``) says how.

    By then the traffic is back exactly as it was before the shift.
    """

    def __init__(self, message: str, result: TrafficResult | None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[TrafficShiftError], tuple[str, TrafficResult | None]]:
        return type(self), (self.args[0], self.result)


class StaleReferenceWarning(IllunareError, UserWarning):  # noqa: N818  # a warning, named so
    """A swap or rollback succeeded, but something the library cannot move still runs the old code.

    Issued (``warnings.warn``, pointing at the swap call) once per reference:
    the message names the holder (a route, a ``functools.partial``, a dict of
    functions ...) and the replaced function or class. The same descriptions
    are the ``stale`` argument of the ``module_swapped`` and
    ``module_rolled_back`` signals.
    """
