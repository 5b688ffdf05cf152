"""One blinker signal for every event illunare produces.

Connect a receiver to wire illunare into your own logging, metrics or alerting::

    from illunare import signals

    @signals.module_swapped.connect
    def log_swap(sender, *, module, version, previous, **extra):
        logger.info("swapped %s to v%d", module, version.number)

Every receiver is called as ``receiver(sender, **kwargs)``; the keyword
arguments of each signal are listed in its docstring. Receivers should accept
``**extra`` so that new keywords do not break them. A receiver that raises
an ``Exception`` is logged on the ``illunare`` logger; the other receivers
still run, and what the signal reports stands: a swap that was made is not
reported as failed because a metrics backend is down.
A signal with no receivers costs almost nothing: illunare checks
``signal.receivers`` before sending on hot paths.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

__all__ = [
    "backend_error",
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

logger = logging.getLogger("illunare")

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
    (seconds the whole swap took, preparation included), ``stale``
    (``tuple[str, ...]``: one description per reference to the replaced
    version's functions or classes that the library could not move, each
    also issued as a ``StaleReferenceWarning``; empty when there are none).
    A release of several modules (``swap_many``, a watcher's) sends it once
    per module, each with the duration of the whole release. A rollout
    sends it when it promotes (never before), from the thread that promoted
    it, with the duration of the promotion's switch.
    """,
)

swap_failed = _signals.signal(
    "swap_failed",
    doc="""A swap was refused; the running version is unchanged.

    sender: the HotReloader. kwargs: ``module`` (str), ``error`` (the SwapError
    raised to the caller), ``reason`` (str, the reason given to ``swap``).
    A refused release of several modules sends it once per module (the same
    error); a rollback refused by a participant of the release sends it too,
    with ``reason="rollback"``.
    """,
)

module_rolled_back = _signals.signal(
    "module_rolled_back",
    doc="""A module went back to an earlier version.

    sender: the HotReloader. kwargs: ``module`` (str), ``version`` (the
    CodeVersion now current), ``previous`` (the CodeVersion left),
    ``duration`` (seconds), ``stale`` (``tuple[str, ...]``, as for
    ``module_swapped``: references to the left version's code).
    ``rollback_many`` sends it once per module, each with the duration of
    the whole rollback.
    """,
)

# Gradual rollouts and shadow runs (HotReloader.swap(rollout=, shadow=)) ------------

rollout_step = _signals.signal(
    "rollout_step",
    doc="""A step of a rollout took effect, or the rollout paused.

    Every sender gives ``platform`` (str), ``weight`` (int, percent now on the
    new version), ``status`` and ``verdict`` (str, the verdict on the step
    judged before this one: ``"healthy"`` or ``"inconclusive"``; None for the
    first step), so one receiver can log every kind of rollout.

    In the process (``platform="process"``): sender: the HotReloader. kwargs
    also: ``module`` (str, the module given to ``swap``), ``version`` (the
    candidate CodeVersion), ``previous`` (the CodeVersion serving the other
    calls), ``status`` (``"running"`` or ``"paused"``), ``handle`` (the
    RolloutHandle). Sent by ``swap()`` for the first step, then by the
    rollout's thread.

    On Kubernetes (``platform="kubernetes"``): sender: the
    KubernetesDeployer. kwargs also: ``target`` (``"namespace/name"`` of the
    Deployment), ``revision`` (int), ``image`` (str), ``status``
    (``"running"``), ``rollout`` (the latest RolloutStatus); ``weight`` is
    the updated replicas' share of the desired ones, ``verdict`` None (kubectl
    judges no steps). Sent on each change of the rollout's judgement, from
    the thread calling ``deploy()``.

    On Cloud Run (``platform="cloudrun"``): sender: the CloudRunTraffic.
    kwargs also: ``target`` (the service's resource name), ``revision`` (str,
    the new revision), ``status`` (``"running"``). Sent once the step's split
    is in effect, before its bake.

    A receiver that raises is logged; the others still run.
    """,
)

rollout_finished = _signals.signal(
    "rollout_finished",
    doc="""A rollout or shadow run ended: promoted, rolled back or failed.

    Every sender gives ``platform`` (str) and ``status`` (``"promoted"``,
    ``"rolled_back"`` or ``"failed"``).

    In the process (``platform="process"``): sender: the HotReloader. kwargs
    also: ``module`` (str), ``version`` (the candidate CodeVersion),
    ``previous`` (the CodeVersion that served before), ``handle`` (the
    RolloutHandle), ``report`` (its final ``report()``). Sent by the thread
    that ended it (the rollout's own, or the one calling
    ``promote()``/``abort()``/``rollback()``), before ``wait()`` returns. A
    promotion sends ``module_swapped`` first.

    On Kubernetes (``platform="kubernetes"``): sender: the
    KubernetesDeployer. kwargs also: ``target``, ``revision``, ``image`` and
    ``rollout`` (the final RolloutStatus). ``"rolled_back"``: the rollout
    failed and was undone; ``"failed"``: it failed and was left as it is.

    On Cloud Run (``platform="cloudrun"``): sender: the CloudRunTraffic.
    kwargs also: ``target``, ``revision`` and ``result`` (the
    TrafficResult). ``"rolled_back"``: a step breached or the shift failed,
    and the traffic is back as it was; ``"failed"``: it could not be put
    back (or someone else set it meanwhile, and it is theirs). Sent only
    once a step took effect.

    A receiver that raises is logged; the others still run.
    """,
)


# Feature flags -----------------------------------------------------------------

flag_updated = _signals.signal(
    "flag_updated",
    doc="""A flag changed.

    sender: the FeatureFlags. kwargs: ``name`` (str), ``old`` (the Flag
    replaced, None for a new flag), ``new`` (the Flag now served, None when it
    was deleted). A receiver that raises is logged; the others still run.
    """,
)

backend_error = _signals.signal(
    "backend_error",
    doc="""A flag backend could not use something and carries on with the last good flags.

    Sent for a malformed message or stored entry, an unreadable or vanished
    file, a lost connection, or a store that lost flags it held.
    sender: the FileBackend or RedisBackend. kwargs: ``error`` (str, the same
    text as ``backend.error``), ``cause`` (the exception, or None).
    """,
)


# Hot configuration (HotConfig) --------------------------------------------------

config_updated = _signals.signal(
    "config_updated",
    doc="""A HotConfig now serves another version (an update or a rollback).

    sender: the HotConfig. kwargs: ``version`` (int, the version now
    current), ``previous`` (int, the version it replaced), ``values`` (the
    read-only mapping of the version now current), ``changed``
    (``frozenset`` of the keys added, removed or given another value),
    ``rollback`` (bool: True when a ``rollback()`` made the change).
    Sent by the thread that made the change, after readers see it, and
    before another change of the same HotConfig starts (so receivers see
    the versions in order). A receiver that raises is logged; the others
    still run, and the change stands.
    """,
)


# Deployments --------------------------------------------------------------------
# Sent from the thread that called ``Deployment.run()``; a receiver that raises
# is logged, and the deployment (its undos included) goes on.

deployment_started = _signals.signal(
    "deployment_started",
    doc="""A deployment's package passed its checks and its first step is about to run.

    sender: the Deployment. kwargs: ``id`` (str, the DeploymentResult's id to
    come), ``service`` (str), ``plan`` (the DeploymentPlan).
    """,
)

step_succeeded = _signals.signal(
    "step_succeeded",
    doc="""A step of a deployment was applied.

    sender: the Deployment. kwargs: ``id`` (str), ``service`` (str), ``step``
    (its StepResult). The modules of a package's release are switched together
    and each sends it.
    """,
)

step_failed = _signals.signal(
    "step_failed",
    doc="""A step of a deployment failed; the completed steps are about to be undone.

    sender: the Deployment. kwargs: ``id`` (str), ``service`` (str), ``step``
    (its StepResult), ``error`` (the exception the step raised).
    """,
)

deployment_succeeded = _signals.signal(
    "deployment_succeeded",
    doc="""Every step of a deployment was applied (and its health gate passed).

    sender: the Deployment. kwargs: ``result`` (the DeploymentResult).
    """,
)

deployment_rolled_back = _signals.signal(
    "deployment_rolled_back",
    doc="""A deployment failed (a step, or its health gate) and every completed step was undone.

    sender: the Deployment. kwargs: ``result`` (the DeploymentResult, status
    ``"rolled_back"``).
    """,
)

deployment_failed = _signals.signal(
    "deployment_failed",
    doc="""A deployment failed and could not be undone completely: the service needs attention.

    sender: the Deployment. kwargs: ``result`` (the DeploymentResult, status
    ``"rollback_failed"``: the steps whose status is ``"undo_failed"`` stay
    applied; or ``"halted"``: a point of no return and the steps before it
    stay applied).
    """,
)


# Performance monitoring (PerformanceMonitor) -------------------------------------

performance_alert = _signals.signal(
    "performance_alert",
    doc="""A recorded latency is above the monitor's ``max_latency``.

    Sent once per breaching value, by the thread that recorded it, once the
    value is in the window. sender: the PerformanceMonitor. kwargs:
    ``deployment_id`` (str), ``metric`` (``"latency"``), ``value`` (float,
    seconds), ``threshold`` (float, the ``max_latency`` breached). A
    receiver that raises is logged; the others still run, and the recording
    call does not fail.
    """,
)

rollback_alert = _signals.signal(
    "rollback_alert",
    doc="""A recorded error rate is above the monitor's ``max_error_rate``, or a rollout breached.

    Sent once per breaching value (each call ``measure()`` sees fail, when
    ``max_error_rate`` is below 1), by the thread that recorded it, once the
    value is in the window. sender: the PerformanceMonitor. kwargs:
    ``deployment_id`` (str), ``metric`` (``"error_rate"``), ``value``
    (float), ``threshold`` (float, the ``max_error_rate`` breached). A
    receiver that raises is logged; the others still run, and the recording
    call does not fail.

    A rollout whose step breached sends it too, once per breached metric,
    as it rolls back: sender the monitor the rollout reports to,
    ``deployment_id`` ``"<module>@<candidate number>"``, ``metric``
    ``"error_rate"`` (``value``: the step's error rate) or ``"latency"``
    (``value``: the step's p99), ``threshold`` the limit breached.
    """,
)


# Plug and play services (ServiceRegistry) ----------------------------------------
# Sent from the thread that called ``load()`` or ``unload()``; a receiver that
# raises is logged, and the load or unload stands.

service_loaded = _signals.signal(
    "service_loaded",
    doc="""A service started and its routes are served.

    sender: the ServiceRegistry. kwargs: ``name`` (str), ``service`` (the
    object its ``start`` returned, None without one), ``spec`` (the ServiceSpec).
    """,
)

service_unloaded = _signals.signal(
    "service_unloaded",
    doc="""A service drained, was stopped and left the registry (its routes answer no more).

    sender: the ServiceRegistry. kwargs: ``name`` (str), ``service`` (the
    object its ``start`` returned), ``spec`` (the ServiceSpec).
    """,
)


def _send(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Call each receiver of ``signal`` on its own: one that raises is logged, the rest still run.

    Used by illunare's modules, not part of the API. Flag and config signals
    are sent after a change is made, alerts from the caller's request, flag
    signals from background threads too: a faulty receiver must neither
    kill the thread, fail the request nor make the change look failed.
    """
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:  # noqa: PERF203  # isolated like on_change listeners
            logger.exception("a receiver of %s failed", signal.name)
