"""illunare: zero-downtime production updates inside a running Python process."""

import logging as _logging
from importlib.metadata import version as _version

from illunare._deploy.deployment import Deployment
from illunare._deploy.gate import HealthGate
from illunare._deploy.hotconfig import HotConfig
from illunare._deploy.plan import DeploymentPlan
from illunare._deploy.results import DeploymentResult, StepResult
from illunare._deploy.steps import (
    ConfigUpdate,
    FlagUpdate,
    HotRollout,
    HotSwap,
    LoadService,
    Migration,
    UnloadService,
)
from illunare._flags.backends import FlagBackend, MemoryBackend
from illunare._flags.file import FileBackend
from illunare._flags.flags import FeatureFlags
from illunare._flags.redis import RedisBackend
from illunare._flags.values import Evaluation, Flag, Reason, Variant
from illunare._monitor.health import Health, Thresholds
from illunare._monitor.monitor import PerformanceMonitor
from illunare._monitor.summary import MetricSummary
from illunare._reload.default import default_reloader, hot
from illunare._reload.reloader import HotReloader
from illunare._reload.versions import CodeVersion
from illunare._reload.watcher import Watcher
from illunare._rollout.config import Rollout, Shadow
from illunare._rollout.handle import RolloutHandle
from illunare._services.registry import ServiceRegistry
from illunare._services.router import Router
from illunare._services.spec import ServiceSpec
from illunare.exceptions import (
    BackendUnavailableError,
    CompileError,
    ConfigError,
    DeploymentError,
    DeploymentInProgressError,
    DrainTimeoutError,
    FlagConfigError,
    FlagError,
    FlagNotFoundError,
    FunctionRemovedError,
    IllunareError,
    InvalidArgumentError,
    KubernetesRolloutError,
    LoadError,
    MissingExtraError,
    NoRouteError,
    PackageError,
    PlatformError,
    RollbackError,
    RolloutError,
    ServiceError,
    ServiceInUseError,
    ServiceNotFoundError,
    ServiceSpecError,
    ServiceUnavailableError,
    StaleReferenceWarning,
    SwapError,
    TrafficShiftError,
    UnknownModuleError,
    UnsupportedInterpreterError,
    ValidationError,
)

__version__ = _version("illunare")

# What the library meets in the background is logged to "illunare"; where it
# goes is the application's choice (a library adds nothing but this).
_logging.getLogger("illunare").addHandler(_logging.NullHandler())

__all__ = [
    "BackendUnavailableError",
    "CodeVersion",
    "CompileError",
    "ConfigError",
    "ConfigUpdate",
    "Deployment",
    "DeploymentError",
    "DeploymentInProgressError",
    "DeploymentPlan",
    "DeploymentResult",
    "DrainTimeoutError",
    "Evaluation",
    "FeatureFlags",
    "FileBackend",
    "Flag",
    "FlagBackend",
    "FlagConfigError",
    "FlagError",
    "FlagNotFoundError",
    "FlagUpdate",
    "FunctionRemovedError",
    "Health",
    "HealthGate",
    "HotConfig",
    "HotReloader",
    "HotRollout",
    "HotSwap",
    "IllunareError",
    "InvalidArgumentError",
    "KubernetesRolloutError",
    "LoadError",
    "LoadService",
    "MemoryBackend",
    "MetricSummary",
    "Migration",
    "MissingExtraError",
    "NoRouteError",
    "PackageError",
    "PerformanceMonitor",
    "PlatformError",
    "Reason",
    "RedisBackend",
    "RollbackError",
    "Rollout",
    "RolloutError",
    "RolloutHandle",
    "Router",
    "ServiceError",
    "ServiceInUseError",
    "ServiceNotFoundError",
    "ServiceRegistry",
    "ServiceSpec",
    "ServiceSpecError",
    "ServiceUnavailableError",
    "Shadow",
    "StaleReferenceWarning",
    "StepResult",
    "SwapError",
    "Thresholds",
    "TrafficShiftError",
    "UnknownModuleError",
    "UnloadService",
    "UnsupportedInterpreterError",
    "ValidationError",
    "Variant",
    "Watcher",
    "__version__",
    "default_reloader",
    "hot",
]
