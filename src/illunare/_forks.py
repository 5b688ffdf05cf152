"""Making illunare work in a child made by ``os.fork``: fresh locks, then restarted threads.

A child starts with one thread, the one that forked. Any lock another thread
of the parent held at that moment stays held for ever in the child, and
background threads (a file poller, a Redis listener, a file watcher) do not
exist there. Pre-fork servers (gunicorn, uWSGI) create FeatureFlags, backends
and watchers before forking their workers, so every object that owns a lock
or a thread registers here; the child gives each a fresh lock first, and only then
restarts the threads, which take those locks as soon as they run.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

__all__ = ["relock_in_children", "restart_in_children", "whole_in_children"]


class Relockable(Protocol):
    """An object whose locks a child replaces."""

    def _relock(self) -> None: ...


class Restartable(Protocol):
    """An object whose background thread a child starts again."""

    def _restart(self) -> None: ...


_LOCKED: weakref.WeakSet[Relockable] = weakref.WeakSet()
_THREADED: weakref.WeakSet[Restartable] = weakref.WeakSet()


def relock_in_children(owner: Relockable) -> None:
    """Call ``owner._relock()`` in every child forked from now on."""
    _LOCKED.add(owner)


def restart_in_children(owner: Restartable) -> None:
    """Call ``owner._restart()`` in every child forked from now on (after every relock)."""
    _THREADED.add(owner)


# Held by os.fork while it forks: a block that holds it is never cut in two.
_FORKING = threading.Lock()


@contextlib.contextmanager
def whole_in_children() -> Iterator[None]:
    """A short block that a fork never falls inside: a child sees all of it, or none.

    For state a child must be able to undo, such as a descriptor it inherits
    and has to close (keep it short: a fork waits for it).
    """
    with _FORKING:
        yield


def _in_child() -> None:
    _FORKING.release()
    for owner in list(_LOCKED):
        owner._relock()
    for threaded in list(_THREADED):
        threaded._restart()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(
        before=_FORKING.acquire, after_in_parent=_FORKING.release, after_in_child=_in_child
    )
