"""The application as a product of the release: rebuilt whenever its package changes.

``HotApp`` is what HotASGI and HotWSGI share. It tracks the app's top-level
package and takes part in every release of the reloader (the private
participant protocol of ``illunare._reload.release``):

* ``dependents``: a release touching the package also executes anew the
  app's module and every module of the package that imports a changed one
  (transitively), so that objects built at import (a router, the app
  itself) are built again from the new code;
* ``prepare``: the new version of the app's module gives the new app
  (attribute or factory), which is started and checked before anything
  switches; raising refuses the whole release;
* ``split``: a release with ``rollout=`` switches no app: the hot app
  gets a ``Canary`` that splits the requests between the old app and the
  new one until the rollout ends (``_canary``, set and reset by the
  rollout's switches);
* ``committed`` / ``abort``: bookkeeping of the apps kept started (a
  promoted rollout is committed, a reverted one aborted).

The app serving new requests is always the one the app module's *current*
namespace holds (under ``self._key``): the reloader's flip switches it together
with the code.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from illunare._reload.courtesy import courteous
from illunare._reload.default import default_reloader
from illunare._reload.prepare import run_checks, validate_checks
from illunare._reload.reloader import HotReloader
from illunare.exceptions import InvalidArgumentError, ValidationError
from illunare.web._canary import Canary
from illunare.web._inflight import Served, served_key
from illunare.web._spec import AppSpec

if TYPE_CHECKING:
    from illunare._rollout.split import RequestSplit

__all__ = ["HotApp"]

_PACKAGE = __name__.rpartition(".")[0] + "."

Namespaces = Mapping[str, dict[str, Any]]


def _caller_module() -> str | None:
    """The module making the HotASGI/HotWSGI: the first calling frame outside this package."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]  # None ends the loop
    return None if frame is None else frame.f_globals.get("__name__")


class HotApp:
    """Builds the app from its module's versions and takes part in the reloader's releases."""

    def __init__(
        self,
        app: str,
        *,
        reloader: HotReloader | None = None,
        checks: Sequence[Callable[[Any], object]] = (),
    ) -> None:
        self._spec = AppSpec.parse(app)
        if reloader is not None and not isinstance(reloader, HotReloader):
            raise InvalidArgumentError(f"reloader must be a HotReloader, got {reloader!r}")
        self._checks: tuple[Callable[[Any], object], ...] = validate_checks(checks)
        self._reloader = reloader if reloader is not None else default_reloader()
        # The module that makes this object (the server's entry point, e.g.
        # pkg/hot.py) is never executed anew: it would make a second one.
        self._home = _caller_module()
        self._numbers = itertools.count(1)
        self._reloader.install(self._spec.package)
        self._module = self._reloader.track(self._spec.module)
        served = Served(self._spec.build(self._module.__dict__), next(self._numbers))
        served.sources = self._sources({})
        #: every app built and not yet released, and its requests: what ``kept`` reports
        self._built: weakref.WeakSet[Served] = weakref.WeakSet()
        #: the same apps by themselves, as long as they live (a Served may go first)
        self._apps: weakref.WeakKeyDictionary[object, frozenset[int]] = weakref.WeakKeyDictionary()
        self._record(served)
        self._key = served_key()
        self._module.__dict__[self._key] = served
        #: the app that was current before the last release that changed it
        self._previous: Served | None = None
        #: the rollout's split of the requests while a release with rollout= runs
        self._canary: Canary | None = None
        self._reloader._add_participant(self)  # the release protocol is private

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._spec} version={self.version}>"

    @property
    def app(self) -> object:
        """The application serving new requests now."""
        return self._served().app

    @property
    def version(self) -> int:
        """The number of the app serving new requests: 1, 2, 3 ... one per app built."""
        return self._served().number

    def _served(self) -> Served:
        served: Served = self._module.__dict__[self._key]
        return served

    def _in_package(self, module: str) -> bool:
        package = self._spec.package
        return module == package or module.startswith(package + ".")

    # The release participant protocol ------------------------------------------------

    def dependents(self, changed: frozenset[str]) -> frozenset[str]:
        """The app's module, and the package's modules importing a changed one (transitively).

        Refuses a release of the module that made this object (executed
        anew, it would make a second one, which no server serves).
        """
        if self._home is not None and self._home in changed:
            raise ValidationError(
                f"{self._home} made {self!r}: executed anew, it would make a second one, "
                "which the server does not serve. Restart the server to change it (keep it "
                "small), or make the HotASGI/HotWSGI in a module that is not released",
                module=self._home,
            )
        found = {name for name in changed if self._in_package(name)}
        if not found:
            return frozenset()
        pending = list(found)
        while pending:
            for importer in self._reloader._importers(pending.pop()):
                if importer not in found and self._in_package(importer) and importer != self._home:
                    found.add(importer)
                    pending.append(importer)
        found.add(self._spec.module)
        return frozenset(found - changed)

    def prepare(self, namespaces: Namespaces) -> None:
        """Build, start and check the app of the app module's version to be current.

        A rollback's target version already has its app: it is started again
        if it was shut down. Raises (refusing the release) when the build,
        the startup or a check fails; nothing started is left running.
        """
        namespace = namespaces.get(self._spec.module)
        if namespace is None:
            # A swap always executes the app's module anew (``dependents``):
            # only a rollback can leave it out, and then the app would go on
            # serving what it captured from the versions rolled back.
            leaving = sorted(name for name in namespaces if self._in_package(name))
            if leaving:
                raise ValidationError(
                    f"rolling back {', '.join(leaving)} alone would leave the app of "
                    f"{self._spec} serving the code it was built from; roll back "
                    f"{self._spec.module} in the same release: "
                    f"rollback_many({[*leaving, self._spec.module]!r})",
                    module=self._spec.module,
                )
            return
        served = namespace.get(self._key)
        if isinstance(served, Served):
            self._start(served)
            return
        with courteous():  # building the app runs the new code, as the release's did
            served = Served(self._spec.build(namespace), sources=self._sources(namespaces))
        self._record(served)
        try:
            self._start(served)
            self._check(served.app)
        except BaseException:
            self._settle()
            raise
        served.number = next(self._numbers)
        namespace[self._key] = served

    def split(
        self, namespaces: Namespaces, previous: Namespaces, requests: RequestSplit
    ) -> Sequence[tuple[object, str, object]]:
        """A rollout of a release that rebuilt the app: its requests split between the two apps.

        Called under the library's lock after ``prepare`` (the new app is
        started and checked), so it only looks the two apps up. The
        rollout's split switch sets ``self._canary``; the switch ending it
        resets it to None, and then ``committed`` (promoted) or ``abort``
        (reverted: the new app is shut down after its last request) follows.
        """
        namespace = namespaces.get(self._spec.module)
        if namespace is None:
            return ()  # the release does not rebuild the app: its calls alone are split
        old: Served = previous[self._spec.module][self._key]
        new: Served = namespace[self._key]
        return [(self, "_canary", Canary(requests, (old, new)))]

    def abort(self, namespaces: Namespaces) -> None:
        """The release did not switch: shut down what ``prepare`` started for it."""
        if self._spec.module in namespaces:
            self._settle()

    def committed(self, namespaces: Namespaces, previous: Namespaces) -> None:
        """The release switched: keep the current and previous apps, retire the others."""
        if self._spec.module not in namespaces:
            return
        before = previous.get(self._spec.module, {}).get(self._key)
        if isinstance(before, Served):
            self._previous = before
        self._settle()

    def kept(self, namespace: Mapping[str, Any]) -> Iterable[object]:
        """The apps built from ``namespace``, and the requests in flight on them.

        They hold older code on purpose (for a rollback, or until the last
        request on an old app ends): not stale references. Only the apps
        built while ``namespace`` was current or new can hold its code:
        following the others at every release would cost more with each.
        """
        wanted = id(namespace)
        # Every one still alive, kept or not: one of an evicted version may
        # still be held (by the leaving version's own records, or as garbage
        # not yet collected), its Served record gone or not, and the scan,
        # bounded in depth, would take a route deep inside it for a live holder.
        served = [served for served in list(self._built) if wanted in served.sources]
        apps = {id(app): app for app, sources in list(self._apps.items()) if wanted in sources}
        apps.update((id(record.app), record.app) for record in served)
        return [*apps.values(), *(r for s in served for r in list(s.requests.values()))]

    def _record(self, served: Served) -> None:
        """Know ``served`` and its app until they go (``kept``)."""
        self._built.add(served)
        with contextlib.suppress(TypeError):  # an app that takes no weak reference
            self._apps[served.app] = served.sources

    def _sources(self, namespaces: Namespaces) -> frozenset[int]:
        """The ids of what an app built now is built from: ``namespaces``, else the current ones."""
        current = {**self._reloader._current_namespaces(), **namespaces}
        return frozenset(map(id, current.values()))

    def _check(self, app: object) -> None:
        run_checks(app, self._checks, what=f"the new app of {self._spec}", module=self._spec.module)

    # What the server kind adds (ASGI: lifespans) ------------------------------------------

    def _start(self, served: Served) -> None:
        """Make ``served`` ready to take requests (called from the releasing thread)."""

    def _settle(self) -> None:
        """Retire every started app but the current and the previous one."""
