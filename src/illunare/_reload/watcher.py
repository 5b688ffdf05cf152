"""``HotReloader.watch``: swapping tracked modules when their files are saved."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from illunare._arguments import seconds
from illunare._forks import restart_in_children, whole_in_children
from illunare.exceptions import (
    CompileError,
    IllunareError,
    InvalidArgumentError,
    MissingExtraError,
)

if TYPE_CHECKING:
    from illunare._reload.reloader import HotReloader

__all__ = ["Watcher", "caught_up", "running_watchers", "watched_paths"]

logger = logging.getLogger("illunare")

# How long to wait, after a change, for more changes before swapping: long
# enough to group an editor's write-then-rename, short enough to feel instant.
_STEP_MS = 10
# How often the watching thread wakes up with nothing to do. Its first wake-up
# tells that the operating system watch is in place, which a starting worker
# waits for (post_worker_init): a few idle wake-ups a second cost nothing.
_IDLE_MS = 50

# Every watcher made in this process (or inherited through a fork), for caught_up().
_WATCHERS: weakref.WeakSet[Watcher] = weakref.WeakSet()


def running_watchers() -> list[Watcher]:
    """The watchers of this process whose thread is alive."""
    return [watcher for watcher in list(_WATCHERS) if watcher.running]


def caught_up(timeout: float) -> list[Watcher]:
    """Wait until every running watcher of this process has caught up; return those that did not.

    A watcher has caught up once its operating system watch is armed and it
    has swapped every module saved before that (see ``Watcher``). Waits at
    most ``timeout`` seconds in all; a stopped watcher is not waited for.
    """
    deadline = time.monotonic() + timeout
    return [watcher for watcher in list(_WATCHERS) if not watcher._caught_up(deadline)]


def watched_paths(
    reloader: HotReloader, paths: Iterable[str | os.PathLike[str]]
) -> tuple[str, ...]:
    """The absolute paths a watcher of ``paths`` watches (none: the tracked modules' directories).

    Raises InvalidArgumentError for a path that is not one or does not exist.
    """
    roots = [os.path.abspath(_path(path)) for path in paths]
    if not roots:
        roots = sorted({os.path.dirname(path) for path in reloader.source_files().values()})
    if not roots:
        raise InvalidArgumentError(
            "nothing to watch: no paths given and no tracked module has a file"
        )
    for root in roots:
        if not os.path.exists(root):
            raise InvalidArgumentError(f"cannot watch {root}: it does not exist")
    return tuple(roots)


class Watcher:
    """A background thread that swaps tracked modules whose source files change.

    Created by ``HotReloader.watch``; ``stop()`` (or leaving a ``with`` block)
    ends it. Files saved together (until none has changed for a moment, at
    most ``debounce`` seconds) are one release (``swap_many``). A release
    that fails keeps the running versions: the reloader sends
    ``swap_failed``, the watcher logs a warning and tries the refused
    modules again when a watched Python file changes next.

    Whenever it starts watching (when made, and again in a child forked
    from its process, such as a pre-fork server's worker), it first catches
    up: once the operating system watch is armed, every watched module whose
    file no longer holds its current version is swapped, as one release. So
    a save made while the module was importing, or while the parent had not
    swapped it yet when the child was forked, is never missed. ``watch()``
    returns once that is done.
    """

    def __init__(
        self,
        reloader: HotReloader,
        paths: Iterable[str | os.PathLike[str]],
        *,
        debounce: float = 0.05,
        wait: bool = True,
    ) -> None:
        try:
            import watchfiles  # noqa: PLC0415  # optional extra, imported on use
        except ImportError as error:
            raise MissingExtraError("HotReloader.watch", "watch") from error
        debounce = seconds("debounce", debounce)
        self.paths = watched_paths(reloader, paths)
        self._reloader = reloader
        self._debounce_ms = max(int(debounce * 1000), _STEP_MS)
        self._watch = watchfiles.watch
        self._stop = threading.Event()
        # Modules of a refused release, tried again with the next change.
        self._refused: list[str] = []
        with whole_in_children():  # a child forked meanwhile watches too
            self._start()
            restart_in_children(self)
            _WATCHERS.add(self)
        if wait:
            self._caught_up(time.monotonic() + 5.0)

    @property
    def reloader(self) -> HotReloader:
        """The reloader whose modules this watcher swaps."""
        return self._reloader

    def _caught_up(self, deadline: float) -> bool:
        """Wait until ``deadline`` (monotonic) for the catch-up; whether it is done (or moot)."""
        # _ready is set once the OS watch is armed (from then on no save is
        # missed) and what was saved before has been swapped. A watcher whose
        # thread ended never will be.
        while not self._stop.is_set() and not self._ready.wait(_STEP_MS / 1000):
            if not self.running or time.monotonic() >= deadline:
                return False
        return True

    def _start(self) -> None:
        self._ready = threading.Event()
        self._changes = self._watch(
            *self.paths,
            watch_filter=None,
            debounce=self._debounce_ms,
            step=_STEP_MS,
            stop_event=self._stop,
            rust_timeout=_IDLE_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        self._thread = threading.Thread(target=self._run, name="illunare-watch", daemon=True)
        self._thread.start()

    def _restart(self) -> None:
        # In a forked child (a pre-fork server's worker): the watching thread
        # and the operating system watch do not exist there, nor may the stop
        # event's lock be usable. A watcher stopped before the fork stays so.
        if not self._stop.is_set():
            self._stop = threading.Event()
            self._start()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Watcher {state} paths={list(self.paths)}>"

    @property
    def running(self) -> bool:
        """Whether the watching thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop watching and wait up to ``timeout`` seconds (``None``: as long as it takes)."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise InvalidArgumentError(f"timeout must be None or seconds >= 0, got {timeout!r}")
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            for changes in self._changes:
                if not self._ready.is_set():
                    # The first batch arrives once the OS watch is armed:
                    # catch up. A file that holds the running version makes
                    # no new version, so this swaps exactly the modules
                    # saved since this process loaded them.
                    self._catch_up()
                    self._ready.set()
                    continue
                changed = {os.path.abspath(path) for _, path in changes}
                if changed:
                    self._release(changed)
        except Exception:
            # Nobody waits on this thread: its end must at least be heard.
            logger.exception("watching %s failed; the watcher stopped", ", ".join(self.paths))

    def _catch_up(self) -> None:
        """Swap, as one release, every watched module whose file changed since it loaded."""
        importlib.invalidate_caches()
        modules = [
            module
            for module, path in self._reloader.source_files().items()
            if _inside(path, self.paths) and os.path.exists(path)
        ]
        if modules:
            self._refused = self._swap(modules) or []

    def _release(self, changed: set[str]) -> None:
        """Swap the tracked modules whose files changed, as one release.

        A refused release may need a file not saved yet (the new code of
        one module imports a name another file will have): its modules are
        kept and tried again, with the next batch, whenever a watched Python
        file changes (a new one too). If that combined release is refused, the
        new batch gets a release of its own, so that a module that stays
        broken never holds the others back.
        """
        importlib.invalidate_caches()  # a file new in a watched package is importable
        files = {
            module: path
            for module, path in self._reloader.source_files().items()
            if os.path.exists(path)
        }
        batch = [module for module, path in files.items() if path in changed]
        if not batch and not any(path.endswith(".py") for path in changed):
            return  # not a saved source (a bytecode cache an import wrote, say)
        retry = [module for module in self._refused if module in files and module not in batch]
        if not batch and not retry:
            return
        refused = self._swap(batch + retry)
        if refused is None:
            self._refused = []
        elif retry and batch and self._swap(batch) is None:
            self._refused = retry
        else:
            self._refused = refused

    def _swap(self, modules: list[str]) -> list[str] | None:
        """Swap ``modules`` as one release; ``None``, or those to try again with the next save.

        The running versions stay whatever happened (``sys.exit()`` included:
        the reloader makes it a LoadError; it has already sent
        ``swap_failed``). A module whose own source does not compile is not
        tried again until it is saved again.
        """
        try:
            self._reloader.swap_many(dict.fromkeys(modules), reason="file changed")
        except IllunareError as error:
            logger.warning(
                "keeping the running version of %s: %s", ", ".join(modules), error, exc_info=error
            )
            if isinstance(error, CompileError):
                return [module for module in modules if module != error.module]
            return modules
        except Exception:  # a bug must not end the watcher either
            logger.exception(
                "swapping %s after a save failed; keeping the running version", ", ".join(modules)
            )
            return []
        return None


def _inside(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies under one of them."""
    return any(path == root or path.startswith(os.path.join(root, "")) for root in roots)


def _path(path: object) -> str:
    """``path`` (a str or ``os.PathLike[str]``) as a str, or InvalidArgumentError."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise InvalidArgumentError(f"a path to watch must be a str or os.PathLike, got {path!r}")
    return path
