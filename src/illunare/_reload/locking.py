"""The one process-wide lock behind every switch of a module's version, made fork-safe."""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["LOCK"]

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
