"""A running split: both versions of a release live, each call sent to one (``routers.py``).

``Split`` is the live state the routers read and the controller steers: the
weight (a store of ``live``: the draw and sticky sides of that weight), the
counters and timing samples (drained by ``take()`` into a ``Period``), the
pins, and the two ends (``revert``, ``promote``: switches made by
``switching.py``). ``RequestSplit`` routes whole requests of a canary web
app with the same salt, draw and counters.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import attrs

from illunare._reload.versions import CodeVersion
from illunare._rollout.assign import Buckets, Draw
from illunare._rollout.routers import Shared
from illunare.exceptions import InvalidArgumentError

__all__ = ["Live", "Period", "RequestSplit", "Split"]

logger = logging.getLogger("illunare")

_Pair = tuple[int, int]


@attrs.frozen
class Period:
    """What one side or the other served since the last ``take()``: each field (old, new).

    ``calls`` are top-level calls (or requests), each counted in the period it
    started in (one drawing its side as the period ended: in the next);
    ``errors`` those that raised an ``Exception`` (counted when raised);
    ``samples`` the seconds of those timed; ``key_errors`` how often the
    sticky key function raised.
    """

    calls: _Pair
    errors: _Pair
    samples: tuple[tuple[float, ...], tuple[float, ...]]
    key_errors: int = 0


class Live:
    """How calls are assigned at the weight in effect (read once per call by each router)."""

    __slots__ = ("assign", "buckets", "draw", "sides", "source")

    def __init__(self, source: Draw, buckets: Buckets) -> None:
        self.source = source
        self.buckets = buckets
        #: ``next(draw)``: the side of a weighted call (a float, ``TIMED`` added to time it)
        self.draw = source.sides
        #: sticky key -> side, cached
        self.sides = buckets.sides
        #: sticky key -> side, computed (and cached)
        self.assign = buckets.assign


class Ends(Protocol):
    """The switches that end a split (``switching.py``)."""

    def revert(self) -> None:
        """Every call on the old version again, routers gone."""

    def promote(self) -> list[tuple[CodeVersion, CodeVersion]]:
        """Every call on the new version, routers gone; (previous, new) per module."""

    def kept(self) -> list[object]:
        """The routers still alive (on a stack), which hold old functions on purpose."""


def _counter() -> Callable[[], int]:
    return itertools.count().__next__


@attrs.define(eq=False)
class Split:
    """Both versions of a release live; the weight, the counters and the ends of a rollout.

    Made by ``switching.begin``. Thread-safe: routers read it without a
    lock; ``set_weight``, ``take``, ``revert`` and ``promote`` may be called
    from any thread.
    """

    #: the module the rollout was asked for
    subject: str
    #: the subject's version serving before (current during the split)
    old: CodeVersion
    #: the subject's candidate
    new: CodeVersion
    #: every module of the release
    modules: tuple[str, ...]
    #: salts the sticky buckets: the subject and the candidate's digest, the
    #: same in every process running this release
    salt: str = attrs.field(repr=False)
    #: the key function of sticky rollouts (``None``: weighted only)
    sticky: Callable[..., object] | None = attrs.field(repr=False)
    #: percent of top-level calls on the new version now
    weight: int
    #: one top-level call in that many is timed (1: every call)
    timed_every: int = attrs.field(default=64, repr=False)
    #: how calls are assigned now (its parts are also in ``cells``)
    live: Live = attrs.field(init=False, repr=False)
    #: what every router of the split reads: "draw", "sides" and "assign"
    #: (of ``live``), and "pins" (whether a pin may be in effect)
    shared: Shared = attrs.field(init=False, repr=False)
    #: routes whole requests of a canary web app
    requests: RequestSplit = attrs.field(init=False, repr=False)
    # Counters that live as long as the split (read by ``take``).
    _counted: tuple[Draw, Draw] = attrs.field(init=False, repr=False)
    _errors: tuple[Callable[[], int], Callable[[], int]] = attrs.field(init=False, repr=False)
    _samples: tuple[list[float], list[float]] = attrs.field(init=False, repr=False)
    _key_errors: Callable[[], int] = attrs.field(init=False, repr=False, factory=_counter)
    _key_logged: bool = attrs.field(init=False, repr=False, default=False)
    # Counter values already reported (each read adds one itself).
    _seen: list[int] = attrs.field(init=False, repr=False, factory=lambda: [0] * 3)
    # Draws of this period replaced by a weight change, still to be counted.
    _retired: list[Draw] = attrs.field(init=False, repr=False, factory=list)
    _pin: contextvars.ContextVar[int | None] = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(init=False, repr=False, factory=threading.Lock)
    # Held while the split ends (a second revert or promote waits for the first).
    _ending: threading.RLock = attrs.field(init=False, repr=False, factory=threading.RLock)
    #: set by ``switching.begin`` once the routers are live
    ends: Ends | None = attrs.field(init=False, repr=False, default=None)
    #: "running", "reverted" or "promoted"
    state: str = attrs.field(init=False, default="running")
    _promoted: list[tuple[CodeVersion, CodeVersion]] = attrs.field(
        init=False, repr=False, factory=list
    )
    # How calls go once the split ends, by weight (0 or 100): made beforehand,
    # so that an end (a revert on a breach) takes no time to make them.
    _final: dict[int, Live] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_weight(self.weight)
        self.shared = Shared({"pins": False})
        self._use(self._live(self.weight))
        self._final = {weight: self._live(weight) for weight in (0, 100)}
        self.requests = RequestSplit(self)
        self._counted = (Draw.counter(self.timed_every), Draw.counter(self.timed_every))
        self._errors = (_counter(), _counter())
        self._samples = ([], [])
        self._pin = contextvars.ContextVar(f"illunare_pin_{self.subject}", default=None)

    def _live(self, weight: int) -> Live:
        return Live(Draw.of(weight, self.timed_every), Buckets(self.salt, weight))

    def _use(self, live: Live) -> None:
        """Assign calls by ``live`` from now on (its parts into the routers' globals).

        A period's continuation keeps the weight's buckets: only its draw is stored.
        """
        before: Live | None = getattr(self, "live", None)
        self.live = live
        if before is not None and before.buckets is live.buckets:
            self.shared.set("draw", live.draw)
            return
        # A router reading the sides of one weight and assigning by another
        # caches in a dict no longer in use: harmless.
        self.shared.update({"assign": live.assign, "sides": live.sides, "draw": live.draw})

    # Read by the routers (``routers.Routing``) ----------------------------------

    @property
    def errors(self) -> tuple[Callable[[], int], Callable[[], int]]:
        """Per side: count one error."""
        return self._errors

    @property
    def counted(self) -> tuple[Iterator[float], Iterator[float]]:
        """Per side: ``next()`` counts one keyed call; ``TIMED`` (2.0) for one to time, else 0.0."""
        return (self._counted[0].sides, self._counted[1].sides)

    @property
    def record(self) -> tuple[Callable[[float], None], Callable[[float], None]]:
        """Per side: record the seconds of one timed call."""
        return (self._samples[0].append, self._samples[1].append)

    @property
    def pinned(self) -> Callable[[], int | None]:
        """The side pinned in this context, or None."""
        return self._pin.get

    @property
    def enter(self) -> Callable[[int], contextvars.Token[int | None]]:
        """Pin this context to a side (uncounted, no check): a coroutine router's whole call."""
        return self._pin.set

    def leave(self, token: contextvars.Token[int | None]) -> None:
        """Undo ``enter`` (a coroutine closed outside its context has nothing to undo there)."""
        with contextlib.suppress(ValueError):
            self._pin.reset(token)

    def key_error(self) -> None:
        """Count a key function's error (logged the first time); the call's key is None."""
        self._key_errors()
        if not self._key_logged:
            self._key_logged = True
            logger.warning(
                "the sticky key function of the rollout of %s raised; such calls get a "
                "weighted draw (logged once)",
                self.subject,
                exc_info=True,
            )

    # Steering -----------------------------------------------------------------------

    def key(self, *args: object, **kwargs: object) -> object:
        """The sticky key of a call with these arguments (None: weighted; a raising key is None)."""
        sticky = self.sticky
        if sticky is None:
            return None
        try:
            return sticky(*args, **kwargs)
        except Exception:  # noqa: BLE001  # the user's key function never fails the call
            self.key_error()
            return None

    def choose(self, key: object = None) -> int:
        """The side of one top-level call or request with this key (None: a draw), counted."""
        live = self.live
        if key is None:
            return int(next(live.draw)) & 1  # not TIMED
        try:
            side = live.sides[key]
        except Exception:  # noqa: BLE001  # not cached yet, or unhashable: assign() copes
            side = live.assign(key)
        next(self._counted[side].sides)
        return side

    def set_weight(self, weight: int) -> None:
        """From now on, ``weight`` percent of top-level calls go to the new version.

        Calls that start after it returns are assigned at the new weight.
        Sticky keys are re-bucketed: a key on the new version stays on it
        when the weight grows.
        """
        _check_weight(weight)
        with self._lock:
            if self.state != "running":
                return
            self._retired.append(self.live.source)
            self._use(self._live(weight))
            self.weight = weight

    def take(self) -> Period:
        """The period since the last ``take()`` (or the split); a new one starts."""
        with self._lock:
            live = self.live
            calls, following = live.source.stop()
            # Draws replaced earlier: counted until they are quiet (a router
            # may have read one just before it was replaced).
            retired, self._retired = self._retired, []
            for draw in retired:
                old, new = draw.tally()
                calls = (calls[0] + old, calls[1] + new)
                if old or new:
                    self._retired.append(draw)
            if self.state == "running":
                self._use(Live(following, live.buckets))
                self._retired.append(live.source)
            keyed = [sum(counter.tally()) for counter in self._counted]
            seen = self._seen
            values = [counter() for counter in (*self._errors, self._key_errors)]
            fresh = keyed + [value - before for value, before in zip(values, seen, strict=True)]
            seen[:] = [value + 1 for value in values]
        batches = []
        for samples in self._samples:
            batch = samples.copy()
            del samples[: len(batch)]  # an append meanwhile stays for the next period
            batches.append(tuple(batch))
        return Period(
            calls=(calls[0] + fresh[0], calls[1] + fresh[1]),
            errors=(fresh[2], fresh[3]),
            samples=(batches[0], batches[1]),
            key_errors=fresh[4],
        )

    @contextlib.contextmanager
    def pin(self, side: int) -> Iterator[None]:
        """Within the block, every call of the release in this context runs ``side``, uncounted.

        ``side``: 0 the old version, 1 the new one.
        """
        if side not in (0, 1) or type(side) is not int:
            raise InvalidArgumentError(f"side must be 0 (old) or 1 (new), got {side!r}")
        # From the first pin on, routers look for pins (until then they skip it).
        if not self.shared["pins"]:
            self.shared.set("pins", True)
        token = self._pin.set(side)
        try:
            yield
        finally:
            self._pin.reset(token)

    def forked(self) -> None:
        """In a forked child: fresh locks (a thread of the parent may have held these)."""
        self._lock = threading.Lock()
        self._ending = threading.RLock()
        self.shared.forked()

    # Ending -------------------------------------------------------------------------

    def revert(self) -> None:
        """Every call on the old version from now on; the routers go. Idempotent.

        A no-op after ``promote()``.
        """
        with self._ending:
            if not self._end("reverted", 0):
                return
            assert self.ends is not None  # set before the split is handed out
            self.ends.revert()

    def promote(self) -> list[tuple[CodeVersion, CodeVersion]]:
        """Every call on the new version from now on, by the pre-rollout path; (previous, new).

        Idempotent (the same list again).

        Raises:
            InvalidArgumentError: the split was reverted.

        """
        with self._ending:
            if self.state == "reverted":
                raise InvalidArgumentError(f"the rollout of {self.subject} was reverted")
            if self._end("promoted", 100):
                assert self.ends is not None  # set before the split is handed out
                self._promoted = self.ends.promote()
            return list(self._promoted)

    def _end(self, state: str, weight: int) -> bool:
        """Whether the split was running: then every call goes to the side of ``weight``."""
        with self._lock:
            if self.state != "running":
                return False
            # A router that read its proxy's target just before the switch
            # takes this draw; the one replaced is counted by the next take().
            self._retired.append(self.live.source)
            self._use(self._final[weight])
            self.weight = weight
            self.state = state
            return True

    def kept(self) -> list[object]:
        """The routers still alive: they hold old functions on purpose (not stale)."""
        return [] if self.ends is None else self.ends.kept()


def _check_weight(weight: object) -> None:
    if type(weight) is not int or not 0 <= weight <= 100:
        raise InvalidArgumentError(f"weight must be an int from 0 to 100, got {weight!r}")


class RequestSplit:
    """Routes whole requests of a canary web app: same salt, draw and counters as the calls."""

    __slots__ = ("_split",)

    def __init__(self, split: Split) -> None:
        self._split = split

    def choose(self, request: object) -> int:
        """The side (0 old, 1 new) serving ``request``, by its sticky key or a draw; counted."""
        split = self._split
        return split.choose(split.key(request))

    def pinned(self, side: int) -> contextlib.AbstractContextManager[None]:
        """Within the block, every call of the release in this context runs ``side``."""
        return self._split.pin(side)

    def finished(self, side: int, seconds: float, error: bool) -> None:  # contract
        """A request served by ``side`` took ``seconds``; ``error``: it failed (raised, or 5xx)."""
        split = self._split
        split.record[side](seconds)
        if error:
            split.errors[side]()
