"""The switches of a rollout: split a release's calls between two versions, then end it.

``begin`` runs where a release would commit (under ``LOCK``, the release
prepared and bound): it records the candidates in their histories without
making them live, and, in one atomic ``Switch``, points every proxy of the
release's modules at a router (``routers.py``) and sets the participants'
attributes. The old version stays each module's namespace and ``current``;
the candidate's namespace is live only through the routers, and what its
code registered while executing is withdrawn until it is promoted.

Both ends are the ordinary ``flip_many``: a revert flips each module to its
current version again (which also removes every router), a promotion flips
to the candidate. Afterwards every proxy points at a plain function: the
call path is the one before the rollout, exactly.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from illunare._reload.binding import Absorbed, flip_many, kept_data
from illunare._reload.courtesy import take_turn
from illunare._reload.locking import LOCK
from illunare._reload.pause import collection_paused
from illunare._reload.proxy import HotFunction
from illunare._reload.registrations import exchange
from illunare._reload.release import (
    Change,
    Entry,
    Participant,
    new_versions,
    notify_aborted,
    notify_committed,
    record,
)
from illunare._reload.switch import Switch
from illunare._reload.versions import CodeVersion, ModuleVersion, TrackedModule
from illunare._rollout.assign import Draw
from illunare._rollout.routers import Routing, named
from illunare._rollout.split import Split
from illunare.exceptions import ValidationError

if TYPE_CHECKING:
    from illunare._reload.reloader import HotReloader

__all__ = ["ShadowSink", "begin"]


class ShadowSink(Protocol):
    """Where a shadow run's routers offer their sampled calls (``shadow.ShadowRun``)."""

    def offer(
        self,
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: tuple[bool, object],
        seconds: float,
    ) -> bool:
        """Run ``new(*args, **kwargs)`` off the caller's path; False: dropped.

        ``outcome``: (True, the exception) or (False, the result) of the old
        version, which took ``seconds``.
        """

    def offer_coroutine(
        self,
        new: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: tuple[bool, object],
        seconds: float,
    ) -> bool:
        """``offer`` for a coroutine function ``new``: it runs on the caller's event loop."""


#: One timed call in ``TIMED_EVERY`` when no latency threshold is set.
TIMED_EVERY = 64


def begin(
    reloader: HotReloader,
    entries: Sequence[Entry],
    bound: Sequence[Absorbed],
    *,
    subject: str,
    weight: int,
    sticky: Callable[..., object] | None,
    mask_all: bool,
    participants: Sequence[Participant],
    shadow: ShadowSink | None = None,
    sample: float = 1.0,
) -> Split:
    """Record the release's candidates and split its calls between them and the old versions.

    ``entries`` and ``bound`` are the prepared, bound release (as
    ``release.commit`` takes them); ``subject`` its module the rollout is
    named after; ``weight`` the first step's percent; ``sticky`` the key
    function; ``mask_all``: time every top-level call (a latency threshold
    is judged), else one in ``TIMED_EVERY``. With ``shadow``, a shadow run:
    the old version serves every call and ``sample`` (0..1) of the
    top-level ones are offered to ``shadow`` to run again on the new one
    (``weight`` is then 0). Takes ``LOCK``.

    Raises:
        ValidationError: nothing of the release can be split per call (no
            function, method or participant to route), a participant's
            ``split`` raised, or a shadow run would rebuild a hot web app.
            Nothing changed.

    """
    del reloader  # the contract's: what a split needs of it comes in the entries
    with LOCK:
        changes = new_versions(entries, bound)
        bases = {tracked.name: base for tracked, base, _, _ in entries}
        candidates = {tracked.name: version for tracked, version, _ in changes}
        split = Split(
            subject=subject,
            old=bases[subject].info,
            new=candidates[subject].info,
            modules=tuple(candidates),
            salt=f"{subject}:{candidates[subject].info.sha256}",
            sticky=sticky,
            weight=weight,
            timed_every=1 if mask_all else TIMED_EVERY,
        )
        namespaces = {name: version.namespace for name, version in candidates.items()}
        previous = {name: base.namespace for name, base in bases.items()}
        sides = {id(namespace): 0 for namespace in previous.values()}
        sides.update((id(namespace), 1) for namespace in namespaces.values())
        routing = Routing(
            shared=split.shared,
            errors=split.errors,
            counted=split.counted,
            record=split.record,
            sticky=sticky,
            key_error=split.key_error,
            pinned=split.pinned,
            enter=split.enter,
            leave=split.leave,
            namespaces=sides,
            offer=None if shadow is None else shadow.offer,
            offer_coroutine=None if shadow is None else shadow.offer_coroutine,
            sampled=None if shadow is None else Draw.sampling(sample),
        )
        # What the release's code can name: other functions keep no caller check.
        versions = [*bases.values(), *candidates.values()]
        used = named(
            [
                *(version.code for version in versions),
                *(function for version in versions for function in version.targets.values()),
                *(
                    value
                    for version in versions
                    for state in version.classes.values()
                    for value in state.values()
                ),
            ]
        )
        routes = [
            _routes(routing, tracked, bases[tracked.name], version, used)
            for tracked, version, _ in changes
        ]
        attributes = _participant_attributes(participants, namespaces, previous, split)
        if shadow is not None and attributes:
            # The old app serves every request, its calls pinned to the old
            # version: nothing would run the new code.
            raise ValidationError(
                f"a shadow run of {subject} cannot shadow a release that rebuilds a hot "
                "web app: its requests are served by the old app alone; roll it out as a "
                "canary (rollout=), or shadow a module the app does not import",
                module=subject,
            )
        if not any(proxies or classes for proxies, _, classes in routes) and not attributes:
            raise ValidationError(
                f"nothing of {subject} can be split between two versions per call (no "
                "function, method or request router): swap it without a rollout",
                module=subject,
            )
        record(changes)
        ends = _Ends(
            changes=changes,
            bases=bases,
            attributes=[(owner, name, None) for owner, name, _ in attributes],
            participants=tuple(participants),
            namespaces=namespaces,
            previous=previous,
            held=routing.made,
        )
        split.ends = ends
        with collection_paused():
            switch = Switch()
            for proxies, routers, classes in routes:
                switch.retarget(proxies, routers)
                for stable, contents in classes:
                    switch.class_contents(stable, (), contents)
            for owner, name, value in attributes:
                switch.attribute(owner, name, value)
            switch.run()
            # What the candidates registered while executing is in effect only
            # once they are current (right after the switch, as flip_many does).
            for tracked, version, _ in changes:
                if version.registrations or bases[tracked.name].registrations:
                    exchange(version.registrations, bases[tracked.name].registrations)
    return split


#: What a split sets for one module: its proxies and their routers, and, for
#: each stable class, the contents that route where its versions differ.
_Routes = tuple[list[HotFunction], list[Callable[..., Any]], list[tuple[type, dict[str, object]]]]


def _routes(
    routing: Routing,
    tracked: TrackedModule,
    base: ModuleVersion,
    candidate: ModuleVersion,
    used: frozenset[str],
) -> _Routes:
    """The proxies whose target differs between the versions, a router for each, and classes."""
    proxies, olds = tracked.bindings(base)
    _, news = tracked.bindings(candidate)
    routed: list[HotFunction] = []
    routers: list[Callable[..., Any]] = []
    old_globals, new_globals = base.namespace, candidate.namespace
    for proxy, old, new in zip(proxies, olds, news, strict=True):
        if old is not new:
            routed.append(proxy)
            face = new if old is proxy.removed_stub() else old
            qualname = proxy._self_qualname
            # Methods always check: getattr(self, name) is common.
            frames = "." in qualname or qualname in used
            routers.append(
                routing.route(old, new, old_globals, new_globals, face=face, frames=frames)
            )
    classes = []
    # Classes of both versions only: one that a version lacks is reached by
    # that version's code alone, or only by instances the other one made.
    for name in base.classes.keys() & candidate.classes.keys():
        stable = tracked.classes[name]
        contents = routing.contents(
            stable,
            base.classes[name],
            candidate.classes[name],
            kept=kept_data(base, candidate, name, stable),
            namespaces=(old_globals, new_globals),
        )
        if contents:
            classes.append((stable, contents))
    return routed, routers, classes


def _participant_attributes(
    participants: Sequence[Participant],
    namespaces: Mapping[str, dict[str, Any]],
    previous: Mapping[str, dict[str, Any]],
    split: Split,
) -> list[tuple[object, str, object]]:
    """What the participants set while the calls are split (``release.Splitting``)."""
    attributes: list[tuple[object, str, object]] = []
    view, before = types.MappingProxyType(namespaces), types.MappingProxyType(previous)
    for participant in participants:
        split_of = getattr(participant, "split", None)
        if split_of is None:
            continue  # a participant that takes no part in rollouts
        try:
            attributes.extend(split_of(view, before, split.requests))
        except BaseException as error:
            raise ValidationError(
                f"{participant!r} refused the rollout of {split.subject}: "
                f"{type(error).__name__}: {error}",
                module=split.subject,
            ) from error
    return attributes


@attrs.define(eq=False)
class _Ends:
    """The two ways a split ends, both ``flip_many``."""

    changes: list[Change]
    bases: dict[str, ModuleVersion]
    #: the participants' attributes, each back to None
    attributes: list[tuple[object, str, object]]
    participants: tuple[Participant, ...]
    namespaces: dict[str, dict[str, Any]]
    previous: dict[str, dict[str, Any]]
    #: the routers, held until the end's switch is over: the proxies are
    #: their only other holders, and one freed in the switch would run its
    #: weak references' callbacks (Python code) in the middle of it
    held: list[Callable[..., Any]]
    #: the routers still alive after the end (on a stack)
    routers: weakref.WeakSet[Callable[..., Any]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.routers = weakref.WeakSet(self.held)

    def revert(self) -> None:
        """Every module on its current (old) version again, routers and attributes gone."""
        take_turn()  # so that the switch runs whole
        with LOCK:
            flip_many(
                [(tracked, tracked.current, ()) for tracked, _, _ in self.changes],
                self.attributes,
            )
            for tracked, _, _ in self.changes:
                tracked.history.evict(tracked.current)
        self.held.clear()
        notify_aborted(self.participants, self.namespaces)

    def promote(self) -> list[tuple[CodeVersion, CodeVersion]]:
        """Every module on its candidate, routers and attributes gone; (previous, new) each."""
        take_turn()
        with LOCK:
            flip_many(self.changes, self.attributes)
            for tracked, version, _ in self.changes:
                tracked.history.evict(version)
        self.held.clear()
        notify_committed(self.participants, self.namespaces, self.previous)
        return [
            (self.bases[tracked.name].info, version.info) for tracked, version, _ in self.changes
        ]

    def kept(self) -> list[object]:
        """The routers still alive."""
        return list(self.routers)
