"""Garbage collection paused while a switch runs or a version's code runs under a snapshot.

A collection in a switch could run finalizers (Python code) in the middle
of it, and one while a new version's code runs under a snapshot would make
the snapshot a guess (``registrations.Snapshot``). Pauses nest and overlap
across threads: collection resumes when the last one ends, and only if it
was enabled when the first began.

A ``KeyboardInterrupt`` (from a signal handler, or sent to a thread) is
raised between any two bytecodes: between pausing and the ``try`` meant
to resume, or in the middle of resuming. Counted by calls, the pause would
then last for the life of the process, and the heap grow without bound.
So each pause is a token, and collection is paused while a token lives:

* taking a pause and ending one are each one C-level pass (a chain of
  built-in calls drained in C, as ``switch.py`` does), which no interrupt
  can split;
* a token that interrupted code drops without ``leave`` ends its pause when
  it dies (a weak reference's callback), or when the next pause ends,
  should that callback itself be interrupted;
* a pause taken for a whole release (a snapshot's) names the frame of the
  library's outermost call in its thread (``owner``): once that call has
  ended, however its code was cut short and whatever still holds its token
  (an abandoned generator, a reference cycle that only the paused collector
  would free), the end of the next pause ends it.

A pause without an owner (a switch's) ends only with its token: no other
thread may resume collection while a switch is under way.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import sys
import sysconfig
import types
import weakref
from collections import deque
from collections.abc import Sequence
from itertools import chain, compress, starmap
from operator import and_, not_

__all__ = ["PAUSE", "Token", "collection_paused", "ended", "outermost_call"]

_drain = deque[object](maxlen=0).extend
# ``starmap(f, _NO_ARGUMENTS)`` calls ``f()`` once, allocating nothing.
_NO_ARGUMENTS = ((),)


class Token:
    """What a pause's holder keeps: dropping it ends the pause."""

    __slots__ = ("__weakref__",)


class _Pause:
    __slots__ = ("_callback", "_found", "_tokens")

    def __init__(self) -> None:
        #: a weak reference to each token taken and not yet ended -> the frame
        #: of the call that the pause lasts for, if named
        self._tokens: dict[weakref.ref[Token], types.FrameType | None] = {}
        #: whether collection was enabled, at each pause begun since it was
        #: last resumed: resumed if it was at any (the first, unless the
        #: program enabled it meanwhile)
        self._found: list[bool] = []
        self._callback = self._gone

    def enter(self, owner: types.FrameType | None = None) -> Token:
        """Pause collection until ``leave(token)``, or until the token returned is dropped.

        With ``owner`` (a running frame), also until that frame's call ends
        (see the module's docstring).
        """
        token = Token()
        ref = weakref.ref(token, self._callback)
        hash(ref)  # while the token lives: its callback needs it
        _drain(
            chain(
                map(self._found.append, starmap(gc.isenabled, _NO_ARGUMENTS)),
                map(self._tokens.__setitem__, (ref,), (owner,)),
                starmap(gc.disable, _NO_ARGUMENTS),
            )
        )
        return token

    def leave(self, token: Token) -> None:
        """End the pause of ``token`` (again: nothing); collection resumes with the last."""
        self._end(weakref.ref(token))
        if self._found:  # still paused: by others, or by pauses whose calls have ended
            self._end_orphans()

    @property
    def paused(self) -> bool:
        """Whether some pause is under way (in any thread)."""
        self._end_orphans()
        return bool(self._tokens)

    def rearm(self) -> None:
        """In a forked child: the parent's threads, which paused, are not there."""
        self._tokens.clear()
        self._end_orphans()

    def _gone(self, ref: weakref.ref[Token]) -> None:
        with contextlib.suppress(TypeError):  # never hashed: an interrupt came first, none taken
            self._end(ref)

    def _end(self, ref: weakref.ref[Token]) -> None:
        """Forget ``ref``'s pause, and resume collection if it was the last: one pass.

        Nothing in the pass allocates an object the collector tracks, and
        collection resumes last: on 3.10 and 3.11 such an allocation may
        start a collection at once, running finalizers (Python code) in it.
        """
        tokens, found = self._tokens, self._found
        resume: list[bool] = []
        # What the pop drops (an ended call's frame) is dropped after the pass.
        popped: list[object] = []
        _drain(
            chain(
                map(popped.append, map(tokens.pop, (ref,), (None,))),
                # Whether no pause is left, read in the pass (after the pop):
                # ``not_`` of the dict. Resumed if it ran when a pause began.
                map(resume.append, map(and_, map(not_, (tokens,)), map(any, (found,)))),
                starmap(found.clear, compress(_NO_ARGUMENTS, map(not_, (tokens,)))),
                starmap(gc.enable, compress(_NO_ARGUMENTS, resume)),
            )
        )

    def _end_orphans(self) -> None:
        """End the pauses whose token died or whose owner's call has ended."""
        for ref in ended(list(self._tokens.items())):
            self._tokens.pop(ref, None)  # its callback, or its code, cut short
        self._end(_NOTHING)


def _dead_reference() -> weakref.ref[Token]:
    token = Token()
    reference = weakref.ref(token)
    hash(reference)  # computed while it lives: a dead reference has none to give
    return reference


# A weak reference that names no pause.
_NOTHING = _dead_reference()


PAUSE = _Pause()

if sys.platform != "win32":
    os.register_at_fork(after_in_child=PAUSE.rearm)

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STANDARD = tuple(
    os.path.join(path, "")
    for path in {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
)


def ended(
    holds: Sequence[tuple[weakref.ref[Token], types.FrameType | None]],
) -> list[weakref.ref[Token]]:
    """Those of ``holds`` (a token's weak reference, its owner) whose token died or owner ended."""
    running = _running_frames({id(owner) for _, owner in holds if owner is not None})
    return [
        ref
        for ref, owner in holds
        if ref() is None or (owner is not None and id(owner) not in running)
    ]


def _running_frames(wanted: set[int]) -> set[int]:
    """Those of the frames ``wanted`` (by id) that some thread runs now, or all of them if unknown.

    The current thread's stack first: most often every frame asked about
    is there. (Greenlets, as gevent runs them, keep the stacks of those not
    running out of every thread's: a release in one may end the hold of a
    release suspended in another. What that release's code makes stays
    known exactly all the same: ``registrations`` follows any collection.)
    """
    if not wanted:
        return wanted
    running = _stack(sys._getframe(), wanted)
    if running < wanted:
        for top in sys._current_frames().values():
            running |= _stack(top, wanted)
    return running


def _stack(top: types.FrameType, wanted: set[int]) -> set[int]:
    """Those of ``wanted`` among ``top`` and the frames below it."""
    found = set()
    frame: types.FrameType | None = top
    while frame is not None:
        if id(frame) in wanted:
            found.add(id(frame))
        frame = frame.f_back
    return found


# A generator's or coroutine's frame leaves the stack while it is suspended.
_SUSPENDING = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def outermost_call(frame: types.FrameType) -> types.FrameType | None:
    """The frame of the library's outermost call running ``frame`` (a pause's owner), if any.

    Climbs from ``frame`` through the library's frames and the standard
    library's (``contextlib``'s) to the first frame of other code (the
    program, or user code that a release runs and that called the library
    again), and names the outermost of the library's function frames met:
    one that stays on the stack until the call ends. ``None`` when there is
    none (a context manager of the library entered by the program itself).
    """
    found = None
    current: types.FrameType | None = frame
    while current is not None:
        code = current.f_code
        if code.co_filename.startswith(_PACKAGE):
            if not code.co_flags & _SUSPENDING:
                found = current
        elif not code.co_filename.startswith(_STANDARD):
            break
        current = current.f_back
    return found


class collection_paused:  # noqa: N801  # used as a function: ``with collection_paused():``
    """No garbage collection within the block (around a switch)."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        # Owned by the switch's own frame: on the stack while the switch runs.
        self._token = PAUSE.enter(sys._getframe(1))

    def __exit__(self, *exc_info: object) -> None:
        PAUSE.leave(self._token)
