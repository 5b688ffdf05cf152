"""Gunicorn server hooks that keep every worker on the current release.

Each worker of a pre-fork server runs its own copy of the code, so each
swaps for itself: give every worker a watcher (call ``HotReloader.watch()``
where the app is built) and a save reaches them all. These hooks make sure a
worker takes its first request only once its watcher is in place and has
swapped whatever was saved while the worker was starting, so that a new or
recycled worker (``--max-requests``) never serves an older release than
the others. Use them from your gunicorn configuration file::

    from illunare.web.gunicorn import post_worker_init

or, when you have no configuration file of your own::

    gunicorn -c python:illunare.web.gunicorn app.hot:app

Swaps and rollbacks made through the API (``HotReloader.swap`` called from
an admin endpoint, say) change only the worker that runs them: to change
every worker, save the file.
"""

from __future__ import annotations

import logging
import os

from illunare._reload.watcher import caught_up, running_watchers

__all__ = ["post_worker_init"]

logger = logging.getLogger("illunare")

# How long a starting worker waits for its watchers: catching up is a few
# milliseconds per changed module, and a stuck one must not keep the worker
# from ever serving (gunicorn kills a worker silent for --timeout, 30 s).
_CATCH_UP_SECONDS = 10.0


def post_worker_init(worker: object) -> None:
    """Called by gunicorn in each worker once the app is loaded, before its first request.

    Waits until every watcher of the worker (made by the app's import, or
    inherited from the master under ``--preload``) watches and has caught
    up with the files. A worker with no watcher, or one that cannot catch up
    within 10 seconds, is logged to the ``illunare`` logger (WARNING): it
    serves, but a save may not reach it.

    Args:
        worker: the gunicorn worker (unused: the hook acts on its process).

    """
    if not running_watchers():
        logger.warning(
            "gunicorn worker %s has no running watcher: saves will not reach it "
            "(call HotReloader.watch() where the app is built)",
            os.getpid(),
        )
        return
    for watcher in caught_up(_CATCH_UP_SECONDS):
        logger.warning(
            "%r of gunicorn worker %s has not caught up with its files after %s s; "
            "the worker serves, on whatever version it runs",
            watcher,
            os.getpid(),
            _CATCH_UP_SECONDS,
        )
