"""The life of one rollout or shadow run: steps, bakes, verdicts, promotion and rollback.

A ``Controller`` owns a split (the two live versions, ``split.Split``) and
one daemon thread, ``"illunare-rollout <module>"``. Every ``TICK`` the thread
takes the split's period (fresh counters in, the finished ones out) and
feeds the reloader's monitor, off the callers' path (and ``EARLY`` before
each bake's end, so little is left to take then); a breach already beyond
doubt (``judge.evident``) reverts at once, at any tick; at the end of each
bake it judges the step (``judge.verdict``) and acts: a breach reverts at
once, an inconclusive step follows ``on_inconclusive``, a healthy one moves
on. ``promote()`` and ``abort()`` switch in the calling thread.

One condition guards the status, the weight and every use of the split, so
the thread and the callers of ``promote``/``abort``/``rollback`` never
switch at once: whoever ends the rollout first wins, and the others find
its end (waiting until its ``rollout_finished`` has been sent).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import attrs

from illunare import signals
from illunare._monitor.monitor import PerformanceMonitor
from illunare._reload.courtesy import courteous
from illunare._reload.versions import CodeVersion
from illunare._rollout.config import Rollout
from illunare._rollout.handle import RolloutHandle
from illunare._rollout.judge import Tally, Verdict, evident, verdict
from illunare._rollout.shadow import ShadowRun
from illunare._rollout.split import Split
from illunare.exceptions import RolloutError

if TYPE_CHECKING:
    from illunare._reload.reloader import HotReloader

__all__ = ["TERMINAL", "TICK", "Controller", "Step"]

logger = logging.getLogger("illunare")

#: how often the thread takes a period and feeds the monitor (s)
TICK = 0.1
#: the last tick before a bake's end comes this early (s): the verdict then
#: takes only the calls since, which a revert's wait is shorter for
EARLY = 0.01
#: the shortest bake an extended or paused step waits again (so bake=0 cannot spin)
_AGAIN = 0.01
#: the statuses a rollout ends in
TERMINAL = frozenset({"promoted", "rolled_back", "failed"})


class Step:
    """One step of a rollout: its weight, the new version's tally, and its verdict."""

    __slots__ = (
        "breaches",
        "judged_at",
        "mark",
        "marked",
        "started_at",
        "tally",
        "verdict",
        "weight",
    )

    def __init__(self, weight: int, limit: float | None) -> None:
        self.weight = weight
        self.tally = Tally(limit)
        self.started_at = time.time()
        self.judged_at: float | None = None
        #: None while it runs; "healthy", "inconclusive", "breached", "promoted", "aborted"
        self.verdict: str | None = None
        self.breaches: tuple[str, ...] = ()
        #: since when (monotonic) the calls per second are measured, and the
        #: tally's calls and timed calls then: from the step's start, its bake
        #: begun again, or the period its first calls came in
        self.mark = time.monotonic()
        self.marked = (0, 0)

    def remark(self, now: float) -> None:
        """Measure the calls per second from ``now`` on."""
        self.mark, self.marked = now, (self.tally.calls, self.tally.timed)

    def ahead(self, now: float, deadline: float) -> tuple[float, float]:
        """Calls and timed calls the rest of the bake may bring: twice the rate since the mark."""
        seen = max(now - self.mark, 1e-3)
        calls, timed = self.marked
        share = 2 * max(deadline - now, 0.0) / seen
        return (self.tally.calls - calls) * share, (self.tally.timed - timed) * share

    def report(self) -> dict[str, object]:
        """The step as the rollout's report lists it."""
        return {
            "weight": self.weight,
            "calls": self.tally.calls,
            "errors": self.tally.errors,
            "verdict": self.verdict,
            "breaches": list(self.breaches),
            "started_at": self.started_at,
            "judged_at": self.judged_at,
        }


class Controller:
    """Runs one rollout (``rollout``) or shadow run (``shadow``) of ``split``; see the module.

    Made by the reloader right after the split switch; ``start()`` sends the
    first ``rollout_step`` and starts the thread. ``split`` None: a rollout
    that ended as it began (see below), with no thread.
    """

    def __init__(
        self,
        reloader: HotReloader,
        split: Split | None,
        *,
        subject: str,
        previous: CodeVersion,
        version: CodeVersion,
        rollout: Rollout | None,
        shadow: ShadowRun | None,
        monitor: PerformanceMonitor,
        ended: Callable[[Controller], None],
    ) -> None:
        self.reloader = reloader
        self._split = split
        # The first bake runs from the switch (the reloader makes this right
        # after it), not from when swap() returns or the thread first runs:
        # busy callers may hold the swapping thread up for a while after it.
        self._began = time.monotonic()
        #: when the next tick is due: every TICK from the switch, however late the thread starts
        self._due = self._began + TICK
        self.rollout = rollout
        self.shadow = shadow
        self.monitor = monitor
        self.subject = subject
        self.version = version
        self.previous = previous
        #: every module of the release (the subject, and those swapped with it)
        self.modules = (subject,) if split is None else split.modules
        self._ended = ended
        self._cond = threading.Condition(threading.RLock())
        self._done = threading.Event()
        #: the thread that ended the rollout (its signal receivers find it ended)
        self._ender: int | None = None
        #: the rollout's own thread, and one sending its rollout_step (they never wait for it)
        self._judge: int | None = None
        self._announcer: int | None = None
        # Without a split, the rollout ended as it began (an identical source, or
        # a first step of 100 that a plain swap made current): "promoted".
        self.status = "running"
        self.weight = 0 if rollout is None else rollout.steps[0]
        if split is None:
            self.status, self.weight = "promoted", 100
        self.limit = rollout.thresholds.max_latency if rollout is not None else None
        self.steps = [Step(self.weight, self.limit)] if rollout and split else list[Step]()
        #: since the swap, per side (old, new): calls and errors; sticky keys that raised
        self.calls = [0, 0]
        self.errors = [0, 0]
        self.key_errors = 0
        self.ids = (
            f"{self.subject}@{self.previous.number}",
            f"{self.subject}@{self.version.number}",
        )
        #: set when the rollout ended otherwise than by its own judgement (e.g. "forked")
        self.reason: str | None = None
        self.handle = RolloutHandle(self)

    # Life ---------------------------------------------------------------------------

    @property
    def split(self) -> Split:
        """The split of a rollout that has one (every one not ended as it began)."""
        split = self._split
        assert split is not None  # used only while running or paused
        return split

    def start(self) -> None:
        """Announce the first step and start judging (called once, by the reloader).

        A rollout that ended as it began sends ``rollout_finished`` if it made
        a version, and nothing for an identical source.
        """
        if self._split is None:
            if self.previous != self.version:
                self._after([], 0.0, None)
            self._done.set()
            return
        if self.rollout is not None:
            self._announce(None)
        threading.Thread(
            target=self._steps_from,
            args=(self._began,),
            name=f"illunare-rollout {self.subject}",
            daemon=True,
        ).start()

    def wait(self, timeout: float | None) -> str:
        """The status once the rollout ended and ``rollout_finished`` was sent (or at timeout).

        A receiver of the end's own signals (in the thread that ended it) gets
        the status at once: waiting for the signals to be sent would hang.

        Raises:
            RolloutError: called from the rollout's own thread or a receiver
                of its ``rollout_step``, which the rollout waits for to go on.

        """
        caller = threading.get_ident()
        if self._ender == caller:
            return self.status
        if caller in (self._judge, self._announcer) and self.status not in TERMINAL:
            raise RolloutError(
                f"wait() on the rollout of {self.subject} from a receiver of its rollout_step "
                "(or its own thread) would wait forever: the rollout goes on only once the "
                "receiver returns",
                module=self.subject,
                status=self.status,
            )
        # Event.wait refuses timeouts beyond TIMEOUT_MAX (math.inf among them).
        self._done.wait(None if timeout is None else min(timeout, threading.TIMEOUT_MAX))
        return self.status

    def promote(self) -> None:
        """Put every call on the new version now; returns after ``rollout_finished``."""
        self._end("promoted", "promoted")

    def abort(self) -> None:
        """Put every call back on the old version now; returns after ``rollout_finished``."""
        self._end("rolled_back", "aborted")

    @contextlib.contextmanager
    def pin(self, key: object) -> Iterator[int]:
        """Run the block on one version, chosen once; yields its number (see the handle)."""
        split = self._split
        if split is None or self.status in TERMINAL:
            # Ended: the block runs what serves now, as every call does.
            yield (self.version if self.status == "promoted" else self.previous).number
            return
        outer = split.pinned()
        if outer is not None:
            # Inside a pin already (another block, a canary request): its
            # version, chosen and counted once, holds for the whole of it.
            yield (self.previous, self.version)[outer].number
            return
        side = split.choose(key)
        started = time.perf_counter()
        try:
            with split.pin(side):
                yield (self.previous, self.version)[side].number
        except Exception:
            split.requests.finished(side, time.perf_counter() - started, True)
            raise
        split.requests.finished(side, time.perf_counter() - started, False)

    def forked(self) -> None:
        """In a forked child (no thread): revert at once, without signals.

        The parent's threads may have held this rollout's locks at the fork:
        the child takes fresh ones first.
        """
        self._cond = threading.Condition(threading.RLock())
        self._done = threading.Event()
        if self._split is not None:
            self._split.forked()
        if self.shadow is not None:
            self.shadow.forked()
        with self._cond:
            if self.status in TERMINAL:
                return
            self.split.revert()
            self.status = "rolled_back"
            self.weight = 0
            self.reason = "forked"
            self._close_step("aborted")
            self._split = None
        self._ended(self)
        self._done.set()

    # The thread ---------------------------------------------------------------------

    def _steps_from(self, began: float) -> None:
        """The thread: take periods every tick, judge each step at the end of its bake."""
        self._judge = threading.get_ident()
        try:
            rollout = self.rollout
            deadline: float | None = math.inf if rollout is None else began + rollout.bake
            while deadline is not None:
                # Threads busy calling keep this one waiting for the GIL when it
                # wakes (a switch interval each, in turns: 100 ms seen with 4
                # threads), which would delay the verdict and the revert: the
                # releases' courtesy (a short switch interval) holds over the
                # last two ticks of a bake, so that even the wake into them
                # may be a tick late.
                near = deadline - time.monotonic() <= 2 * TICK
                with courteous() if near else contextlib.nullcontext():
                    deadline = self._tick(rollout, deadline)
        except Exception:
            if self.status in TERMINAL:  # what failed came after the end, which stands
                logger.exception("the rollout of %s failed after it ended", self.subject)
                return
            logger.exception("the rollout of %s failed; the old version serves again", self.subject)
            self._end("failed", None, by_thread=True)

    def _tick(self, rollout: Rollout | None, deadline: float) -> float | None:
        """Wait a tick (or to the deadline), take a period, judge at the deadline.

        Returns the deadline to wait for next; None once the rollout ended.
        """
        with self._cond:
            if self.status in TERMINAL:
                return None
            now = time.monotonic()
            remaining = deadline - now
            wait = min(self._due - now, remaining - EARLY) if remaining > EARLY else remaining
            if wait > 0:
                self._cond.wait(wait)
            now = time.monotonic()
            if now >= self._due:  # the next on schedule, but never right after a late one
                self._due = max(self._due + TICK, now + TICK / 2)
            if self.status in TERMINAL:
                return None
            sides = self._take()
            decided = None if rollout is None else self._judged(rollout, deadline)
            if rollout is None or decided is None:
                self._feed(sides)
                return deadline
            action, judged, found = decided
            # The end's switch right away, under the same hold (no other turn
            # first); the monitor is fed after it, which takes a while.
            if action in TERMINAL:
                ending = self._switch(action, judged, found, taken=sides)
            else:
                ending = None
                self._feed(sides)
        if ending is not None:
            self._conclude(ending, action, by_thread=True)
            return None
        # Extended, paused or the next step: judged again after another bake.
        deadline = time.monotonic() + max(rollout.bake, _AGAIN)
        if self.steps:  # a step baked again: its rate is measured from its new bake on
            self.steps[-1].remark(time.monotonic())
        if judged is not None:
            self._announce(judged)
        return deadline

    def _judged(self, rollout: Rollout, deadline: float) -> tuple[str, str | None, Verdict] | None:
        """Right after a period was taken: ``_decide`` at the deadline, else a breach or None.

        Before the deadline only a breach beyond doubt (``judge.evident``) is
        acted on; None: bake on. Under the condition.
        """
        step = self.steps[-1]
        now = time.monotonic()
        if step.tally.calls == step.marked[0]:  # none yet: measured from this period on
            step.remark(now)
        if now >= deadline:
            return self._decide(rollout)
        found = evident(
            rollout.thresholds, step.tally, rollout.min_samples, ahead=step.ahead(now, deadline)
        )
        return ("rolled_back", "breached", found) if found.breaches else None

    def _decide(self, rollout: Rollout) -> tuple[str, str | None, Verdict]:
        """Judge the step at the end of its bake: what to do, the verdict to tell, the verdict.

        Under the condition. The action is a terminal status to end in, or
        ``"again"`` (bake again; a verdict to announce when a step began or
        the rollout paused).
        """
        found = verdict(rollout.thresholds, self.steps[-1].tally, rollout.min_samples)
        if found.breaches:
            return "rolled_back", "breached", found
        if self.status == "paused":  # judged for breaches only, until promote() or abort()
            return "again", None, found
        if found.inconclusive:
            if rollout.on_inconclusive == "fail":
                return "failed", "inconclusive", found
            if rollout.on_inconclusive == "pause":
                self.status = "paused"
                return "again", "inconclusive", found
            return "again", None, found  # extended: the step's counts accumulate
        later = [weight for weight in rollout.steps if weight > self.weight]
        if not later or later[0] == 100:
            return "promoted", "healthy", found
        self._close_step("healthy")
        self.weight = later[0]
        self.split.set_weight(self.weight)
        self.steps.append(Step(self.weight, self.limit))
        return "again", "healthy", found

    def _flush(self) -> None:
        """Take the split's period: into the totals, the step's tally and the monitor."""
        self._feed(self._take())

    def _take(self) -> list[tuple[int, int, Sequence[float]]]:
        """Take the split's period into the totals and the step's tally; its calls per side."""
        period = self.split.take()
        sides: list[tuple[int, int, Sequence[float]]]
        if self.shadow is not None:
            sides = [(period.calls[0], period.errors[0], period.samples[0]), self.shadow.take()]
        else:
            sides = list(zip(period.calls, period.errors, period.samples, strict=True))
        self.key_errors += period.key_errors
        for side, (calls, errors, _) in enumerate(sides):
            self.calls[side] += calls
            self.errors[side] += errors
        if self.steps and self.status not in TERMINAL:
            self.steps[-1].tally.add(*sides[1])
        return sides

    def _feed(self, sides: list[tuple[int, int, Sequence[float]]]) -> None:
        """A taken period's calls, errors and latencies, per side, into the monitor."""
        for side, (calls, errors, samples) in enumerate(sides):
            feed = self.ids[side]
            if samples:
                self.monitor._record_batch(feed, "latency", samples, len(samples))
            if calls:
                self.monitor._record_batch(feed, "error_rate", [errors / calls], 1)
                self.monitor._record_batch(feed, "calls", [float(calls)], 1)

    # Ending ---------------------------------------------------------------------------

    def _end(
        self,
        status: str,
        step_verdict: str | None,
        *,
        by_thread: bool = False,
        found: Verdict | None = None,
    ) -> None:
        """End the rollout in ``status`` (once), then send its signals outside the condition.

        A rollout that ended already: the same end asked by a user is a no-op
        (once that end's signals are sent); any other is a RolloutError.
        """
        with self._cond:
            ending = self._switch(status, step_verdict, found)
        self._conclude(ending, status, by_thread=by_thread)

    def _switch(
        self,
        status: str,
        step_verdict: str | None,
        found: Verdict | None,
        *,
        taken: list[tuple[int, int, Sequence[float]]] | None = None,
    ) -> Ending:
        """Under the condition: the switch that ends the rollout in ``status``, unless it ended.

        ``taken``: a period taken for the verdict, fed to the monitor after the switch.
        """
        if self.status in TERMINAL:
            return Ending(already=self.status)
        started = time.perf_counter()
        promoted = []
        if status == "promoted":
            promoted = self.split.promote()
            self.weight = 100
        else:
            self.split.revert()
            self.weight = 0
        duration = time.perf_counter() - started
        # The last calls are counted after the switch (which a revert must not
        # wait for): a period taken after the end still has them all.
        try:
            if taken is not None:
                self._feed(taken)
            self._flush()
        except Exception:  # the accounting failing must not stop the end
            logger.exception("the rollout of %s could not count its last calls", self.subject)
        self._ender = threading.get_ident()
        self.status = status
        if step_verdict is not None:
            self._close_step(step_verdict, found)
        self._cond.notify_all()
        return Ending(already=None, promoted=promoted, duration=duration, found=found)

    def _conclude(self, ending: Ending, status: str, *, by_thread: bool) -> None:
        """Outside the condition: the end's signals, or what a second end asked gets."""
        if ending.already is not None:
            if by_thread:
                return
            if self._ender != threading.get_ident():  # not a receiver of its own end
                self._done.wait()
            if ending.already != status:
                raise RolloutError(
                    f"the rollout of {self.subject} already ended: {ending.already}",
                    module=self.subject,
                    status=ending.already,
                )
            return
        self._stop_shadow()
        self._ended(self)
        try:
            self._after(ending.promoted, ending.duration, ending.found)
        finally:
            # What the split holds (both versions' namespaces, the routers) goes:
            # a handle kept after the end must not keep evicted versions alive.
            self._split = None

    def _close_step(self, step_verdict: str, found: Verdict | None = None) -> None:
        if self.steps and self.steps[-1].verdict is None:
            step = self.steps[-1]
            step.verdict = step_verdict
            step.judged_at = time.time()
            if found is not None:
                step.breaches = tuple(map(str, found.breaches))

    def _stop_shadow(self) -> None:
        if self.shadow is not None:
            self.shadow.stop()

    def _after(
        self,
        promoted: list[tuple[CodeVersion, CodeVersion]],
        duration: float,
        found: Verdict | None,
    ) -> None:
        """The signals of the end: module_swapped (promoted), rollback_alert, rollout_finished.

        Each receiver runs on its own (one that raises is logged), and
        ``rollout_finished`` is sent whatever happened before it.
        """
        try:
            try:
                for previous, version in promoted:
                    self.reloader._promoted(previous, version, duration, self.split.kept())
                if found is not None:
                    for breach in found.breaches:
                        if signals.rollback_alert.receivers:
                            signals._send(
                                signals.rollback_alert,
                                self.monitor,
                                deployment_id=self.ids[1],
                                metric=breach.metric,
                                value=breach.value,
                                threshold=breach.threshold,
                            )
            finally:
                if signals.rollout_finished.receivers:
                    signals._send(
                        signals.rollout_finished,
                        self.reloader,
                        platform="process",
                        module=self.subject,
                        version=self.version,
                        previous=self.previous,
                        status=self.status,
                        handle=self.handle,
                        report=self.handle.report(),
                    )
        finally:
            self._done.set()

    def _announce(self, judged: str | None) -> None:
        """Send ``rollout_step`` for the step now in effect (or the pause), unless it ended."""
        if signals.rollout_step.receivers and self.status not in TERMINAL:
            self._announcer = threading.get_ident()
            try:
                signals._send(
                    signals.rollout_step,
                    self.reloader,
                    platform="process",
                    module=self.subject,
                    version=self.version,
                    previous=self.previous,
                    weight=self.weight,
                    status=self.status,
                    verdict=judged,
                    handle=self.handle,
                )
            finally:
                self._announcer = None

    # Reading --------------------------------------------------------------------------

    def figures(self) -> Figures:
        """A consistent copy of the counts the report needs, up to this moment."""
        with self._cond:
            if self._split is not None and self.status not in TERMINAL:
                # The calls since the last tick count too (a report lagging a
                # tick would disagree with what the callers saw).
                self._flush()
            # After the end no period is taken any more, but the shadow's worker
            # counted runs since the last one (and may finish its last call):
            # they count with the mismatches they found.
            ended = self.shadow is not None and self.status in TERMINAL
            runs, failed = self.shadow.untaken() if ended and self.shadow else (0, 0)
            return Figures(
                status=self.status,
                weight=self.weight,
                calls=(self.calls[0], self.calls[1] + runs),
                errors=(self.errors[0], self.errors[1] + failed),
                steps=[step.report() for step in self.steps],
                key_errors=self.key_errors,
            )


@attrs.frozen
class Ending:
    """What ending a rollout did under its condition, for what follows outside it."""

    #: the status the rollout had already ended in (None: this end ended it)
    already: str | None
    #: (previous, new) of each module a promotion made current
    promoted: list[tuple[CodeVersion, CodeVersion]] = attrs.Factory(list)
    #: seconds the end's switch took
    duration: float = 0.0
    #: the verdict that ended it, if one did
    found: Verdict | None = None


@attrs.frozen
class Figures:
    """The counts of a rollout at one instant (``Controller.figures``)."""

    status: str
    weight: int
    calls: tuple[int, int]
    errors: tuple[int, int]
    steps: list[dict[str, object]]
    key_errors: int
