"""One blinker signal for every event illunare produces.

Connect a receiver to wire illunare into your own logging, metrics or alerting::

    from illunare import signals

    @signals.module_swapped.connect
    def log_swap(sender, *, module, version, previous, **extra):
        logger.info("swapped %s to v%d", module, version.number)

Every receiver is called as ``receiver(sender, **kwargs)``; the keyword
arguments of each signal are listed in its docstring. Receivers should accept
``**extra`` so that new keywords do not break them. A signal with no receivers
costs almost nothing: illunare checks ``signal.receivers`` before sending on
hot paths.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "config_updated",
    "deployment_failed",
    "deployment_rolled_back",
    "deployment_started",
    "deployment_succeeded",
    "flag_updated",
    "module_rolled_back",
    "module_swapped",
    "module_tracked",
    "performance_alert",
    "rollback_alert",
    "rollout_finished",
    "rollout_step",
    "service_loaded",
    "service_unloaded",
    "step_failed",
    "step_succeeded",
    "swap_failed",
]

_signals = Namespace()

# Hot code swapping (HotReloader) ------------------------------------------------

module_tracked = _signals.signal(
    "module_tracked",
    doc="""A module became tracked (version 1 is the code as loaded).

    sender: the HotReloader. kwargs: ``module`` (str), ``version`` (CodeVersion).
    """,
)

module_swapped = _signals.signal(
    "module_swapped",
    doc="""A module now runs a new version.

    sender: the HotReloader. kwargs: ``module`` (str), ``version`` (the new
    CodeVersion), ``previous`` (the CodeVersion it replaced), ``duration``
    (seconds the whole swap took, preparation included).
    """,
)

swap_failed = _signals.signal(
    "swap_failed",
    doc="""A swap was refused; the running version is unchanged.

    sender: the HotReloader. kwargs: ``module`` (str), ``error`` (the SwapError
    raised to the caller), ``reason`` (str, the reason given to ``swap``).
    """,
)

module_rolled_back = _signals.signal(
    "module_rolled_back",
    doc="""A module went back to an earlier version.

    sender: the HotReloader. kwargs: ``module`` (str), ``version`` (the
    CodeVersion now current), ``previous`` (the CodeVersion left),
    ``duration`` (seconds).
    """,
)

# Deployment --------------------------------------------------------------------

deployment_started = _signals.signal(
    "deployment_started",
    doc="""A deployment began. sender: the Deployment. kwargs: ``id``, ``service``, ``steps``.""",
)

step_succeeded = _signals.signal(
    "step_succeeded",
    doc="""A deployment step completed. sender: the Deployment. kwargs: ``id``, ``step``.""",
)

step_failed = _signals.signal(
    "step_failed",
    doc="""A deployment step failed.

    sender: the Deployment. kwargs: ``id``, ``step``, ``error``.
    """,
)

deployment_succeeded = _signals.signal(
    "deployment_succeeded",
    doc="""A deployment succeeded. sender: the Deployment. kwargs: ``result``.""",
)

deployment_rolled_back = _signals.signal(
    "deployment_rolled_back",
    doc="""A deployment failed and was undone. sender: the Deployment. kwargs: ``result``.""",
)

deployment_failed = _signals.signal(
    "deployment_failed",
    doc="""A deployment halted or could not be undone.

    sender: the Deployment. kwargs: ``result``.
    """,
)

config_updated = _signals.signal(
    "config_updated",
    doc="""A HotConfig got a new version.

    sender: the HotConfig. kwargs: ``version``, ``old``, ``new``.
    """,
)

# Feature flags -----------------------------------------------------------------

flag_updated = _signals.signal(
    "flag_updated",
    doc="""A flag changed. sender: the FeatureFlags. kwargs: ``name``, ``old``, ``new``.""",
)

# Services ----------------------------------------------------------------------

service_loaded = _signals.signal(
    "service_loaded",
    doc="""A service started. sender: the ServiceRegistry. kwargs: ``name``, ``service``.""",
)

service_unloaded = _signals.signal(
    "service_unloaded",
    doc="""A service was drained and stopped. sender: the ServiceRegistry. kwargs: ``name``.""",
)

# Monitoring and rollout --------------------------------------------------------

performance_alert = _signals.signal(
    "performance_alert",
    doc="""A latency exceeded its threshold. sender: the PerformanceMonitor.
    kwargs: ``deployment_id``, ``metric``, ``value``, ``threshold``.""",
)

rollback_alert = _signals.signal(
    "rollback_alert",
    doc="""An error rate exceeded its threshold. sender: the PerformanceMonitor.
    kwargs: ``deployment_id``, ``metric``, ``value``, ``threshold``.""",
)

rollout_step = _signals.signal(
    "rollout_step",
    doc="""A rollout moved to a new weight.

    sender: the RolloutHandle. kwargs: ``module``, ``weight``.
    """,
)

rollout_finished = _signals.signal(
    "rollout_finished",
    doc="""A rollout ended. sender: the RolloutHandle. kwargs: ``module``, ``status``.""",
)
