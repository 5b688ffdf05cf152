"""The one process-wide lock behind every switch of a module's version, made fork-safe."""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from itertools import compress
from operator import methodcaller

__all__ = ["LOCK", "hold", "release_held"]

#: Serialises what must never interleave, across every HotReloader of the
#: process: which reloader owns a module, each reloader's registry and
#: history, and every switch of a module's namespace (a switch rewrites a raw
#: pointer with its reference counts: two at once on one module corrupt
#: memory). Only the library's own bookkeeping runs under it, never a new
#: source, a migration, a check or a signal receiver, so user code that never
#: finishes blocks nothing but the swap that runs it.
LOCK = threading.RLock()

if sys.platform != "win32":
    # A child forked while another thread holds the lock would inherit it held
    # forever, possibly with a switch half done. Since it is only ever held
    # for a few microseconds, the fork waits for it instead, and parent and
    # child each let go of it afterwards.
    os.register_at_fork(
        before=LOCK.acquire, after_in_parent=LOCK.release, after_in_child=LOCK.release
    )


# Drains an iterator in C, keeping nothing.
_drain = deque[object](maxlen=0).extend
_ACQUIRE, _RELEASE, _OWNED = (
    methodcaller("acquire"),
    methodcaller("release"),
    methodcaller("_is_owned"),
)


def hold(locks: Sequence[threading.RLock]) -> None:
    """Acquire each of ``locks`` in order, in one C call.

    An asynchronous exception (a ``KeyboardInterrupt`` sent to the thread)
    is raised between bytecodes: before the call or after it, never between
    one lock taken and the note that it was, which would leave it held
    forever. A signal that interrupts a wait leaves those taken so far held:
    ``release_held`` releases them.
    """
    _drain(map(_ACQUIRE, locks))


def release_held(locks: Sequence[threading.RLock]) -> None:
    """Release, in reverse order and in one C call, each of ``locks`` that this thread holds."""
    held = list(reversed(locks))
    _drain(map(_RELEASE, compress(held, map(_OWNED, held))))
