"""Stale references: what still runs a replaced version after a swap is reported, not left."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import illunare
import illunare._reload.reloader
from illunare import HotReloader, IllunareError, StaleReferenceWarning, exceptions, signals
from illunare._reload.registrations import Snapshot

from .conftest import Package, eventually

HELPERS = "def raw(x=0):\n    return {n}\n"


def swapped_with_warnings(
    reloader: HotReloader, module: str, source: str
) -> tuple[list[warnings.WarningMessage], dict[str, Any]]:
    """Swap; return the warnings issued and the keywords ``module_swapped`` was sent."""
    sent: dict[str, Any] = {}

    def receiver(sender: object, **kwargs: Any) -> None:
        sent.update(kwargs)

    with (
        warnings.catch_warnings(record=True) as caught,
        signals.module_swapped.connected_to(receiver),
    ):
        warnings.simplefilter("always")
        reloader.swap(module, source)
    return caught, sent


def stale_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, StaleReferenceWarning)]


@pytest.fixture
def helpers(package: Package) -> types.ModuleType:
    return package.module("helpers", HELPERS.format(n=1))


def served(app: Any, path: str) -> bytes:
    """The body the ASGI ``app`` answers to GET ``path``, called directly."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [], "server": ("test", 80), "client": ("test", 1),
    }  # fmt: skip
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        body.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return b"".join(body)


class TestTheWarning:
    def test_it_is_a_user_warning_in_the_error_tree(self) -> None:
        """StaleReferenceWarning is a UserWarning and an IllunareError, exported twice."""
        assert issubclass(StaleReferenceWarning, UserWarning)
        assert issubclass(StaleReferenceWarning, IllunareError)
        assert exceptions.StaleReferenceWarning is illunare.StaleReferenceWarning

    def test_it_points_at_the_swap_call(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """The warning's location is the caller's line, not illunare's code."""
        package.module("user", f"import functools\nfrom {package.name} import helpers\n"
                               "P = functools.partial(helpers.raw, 1)\n")  # fmt: skip
        reloader.track(helpers)
        caught, _ = swapped_with_warnings(reloader, helpers.__name__, HELPERS.format(n=2))
        [warning] = [w for w in caught if issubclass(w.category, StaleReferenceWarning)]
        assert __file__ == warning.filename


class TestReported:
    def test_a_partial_of_the_old_function(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A functools.partial made before the swap is named, with the function."""
        user = package.module(
            "user",
            f"import functools\nfrom {package.name} import helpers\n"
            "P = functools.partial(helpers.raw, 1)\n",
        )
        reloader.track(helpers)
        caught, sent = swapped_with_warnings(reloader, helpers.__name__, HELPERS.format(n=2))
        [message] = stale_warnings(caught)
        assert "functools.partial" in message
        assert "raw" in message
        assert len(sent["stale"]) == 1
        assert sent["stale"][0] in message
        assert user.P() == 1  # reported, not moved

    def test_a_static_method_held_elsewhere(self, package: Package, reloader: HotReloader) -> None:
        """Tool.make kept in another module's globals is named."""
        source = "class Tool:\n    @staticmethod\n    def make():\n        return {n}\n"
        tools = package.module("tools", source.format(n=1))
        user = package.module("user", f"from {package.name} import tools\nMAKE = tools.Tool.make\n")
        reloader.track(tools)
        caught, sent = swapped_with_warnings(reloader, tools.__name__, source.format(n=2))
        [message] = sent["stale"]
        assert "Tool.make of version 1" in message
        [warning] = stale_warnings(caught)
        assert warning.startswith(message)
        assert tools.Tool.make() == 2
        assert user.MAKE() == 1  # reported, not moved

    def test_an_enum_whose_members_changed_held_elsewhere(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The enum class of version 1, kept by another module, is named: it is not current."""
        source = "import enum\n\nclass Color(enum.Enum):\n    RED = 1\n{more}"
        colors = package.module("colors", source.format(more=""))
        reloader.track(colors)
        user = package.module("user", f"from {package.name}.colors import Color\n")
        caught, sent = swapped_with_warnings(
            reloader, colors.__name__, source.format(more="    BLUE = 2\n")
        )
        [message] = sent["stale"]
        assert "holds Color of version 1" in message
        assert len(stale_warnings(caught)) == 1
        assert user.Color is not colors.Color

    def test_the_routes_of_an_app_that_a_server_holds(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A swapped module's FastAPI app, held by the server, still serves the old route: named.

        Its objects keep their attributes inline (CPython 3.11+, no instance
        dict until one is asked for): the scan must not make them one midway.
        """
        source = (
            "from fastapi import FastAPI\n\napp = FastAPI()\n\n"
            "@app.get('/price')\nasync def price():\n    return {n}\n"
        )
        site = package.module("site", source.format(n=1))
        reloader.track(site)
        server = package.module("server", f"from {package.name} import site\n\nAPP = site.app\n")
        _, sent = swapped_with_warnings(reloader, site.__name__, source.format(n=2))
        assert any("holds price of version 1" in message for message in sent["stale"])
        assert served(server.APP, "/price") == b"1"  # reported, not moved

    def test_a_dict_of_old_functions_in_another_module(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A dict that another module filled with the raw function is reported."""
        package.module(
            "user", f"from {package.name} import helpers\nTABLE = {{'raw': helpers.raw}}\n"
        )
        reloader.track(helpers)
        caught, sent = swapped_with_warnings(reloader, helpers.__name__, HELPERS.format(n=2))
        [message] = stale_warnings(caught)
        assert "'raw'" in message
        assert isinstance(sent["stale"], tuple)

    def test_a_rollback_reports_references_to_the_version_left(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """module_rolled_back gets stale= too, naming what holds the rolled-back code."""
        reloader.track(helpers)
        reloader.swap(helpers.__name__, HELPERS.format(n=2))
        holder = package.module(
            "user", f"import functools\nfrom {package.name} import helpers\n"
                    "P = functools.partial(helpers.raw.__wrapped__, 1)\n",
        )  # fmt: skip
        sent: dict[str, Any] = {}

        def receiver(sender: object, **kwargs: Any) -> None:
            sent.update(kwargs)

        with (
            signals.module_rolled_back.connected_to(receiver),
            pytest.warns(StaleReferenceWarning, match="partial"),
        ):
            reloader.rollback(helpers.__name__)
        assert len(sent["stale"]) == 1
        assert holder.P() == 2

    def test_a_route_an_api_router_captured(self, package: Package, reloader: HotReloader) -> None:
        """Swapping an APIRouter's module without rebuilding the app names the route's path."""
        pytest.importorskip("fastapi")
        routes = package.module(
            "routes",
            "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n"
            '@router.get("/price")\nasync def price():\n    return {"version": 1}\n',
        )
        reloader.track(routes)
        package.module(
            "main",
            f"from fastapi import FastAPI\nfrom {package.name} import routes\n\n"
            "app = FastAPI()\napp.include_router(routes.router)\n",
        )
        caught, sent = swapped_with_warnings(
            reloader,
            routes.__name__,
            "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n"
            '@router.get("/price")\nasync def price():\n    return {"version": 2}\n',
        )
        [message] = stale_warnings(caught)
        assert "path='/price'" in message
        assert "price" in message
        assert len(sent["stale"]) == 1


class TestNotReported:
    def test_nothing_to_report_is_an_empty_tuple(
        self, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A module nobody holds on to swaps with stale=() and no warning."""
        reloader.track(helpers)
        caught, sent = swapped_with_warnings(reloader, helpers.__name__, HELPERS.format(n=2))
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()

    def test_references_through_proxies_follow_and_are_not_stale(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """What was imported after tracking (the stable proxy) is no stale reference."""
        reloader.track(helpers)
        user = package.module(
            "user",
            f"import functools\nfrom {package.name}.helpers import raw\n"
            "P = functools.partial(raw, 1)\nTABLE = {'raw': raw}\nCALLBACKS = [raw]\n",
        )
        caught, sent = swapped_with_warnings(reloader, helpers.__name__, HELPERS.format(n=2))
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()
        assert 2 == user.P() == user.TABLE["raw"]() == user.CALLBACKS[0]()

    def test_a_kept_versions_own_objects_are_not_stale(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The old version's own app, closures and classes are kept for rollback: not stale."""
        package.module(
            "framework",
            "class Route:\n    def __init__(self, handler):\n        self.handler = handler\n\n"
            "class App:\n    def __init__(self):\n        self.routes = []\n"
            "    def add(self, handler):\n        self.routes.append(Route(handler))\n"
            "        return handler\n",
        )
        source = (
            f"import functools\nfrom {package.name} import framework\n\n"
            "app = framework.App()\n\n"
            "@app.add\ndef handler():\n    return {n}\n\n"
            "def make():\n    def inner():\n        return handler()\n    return inner\n\n"
            "INNER = make()\nPARTIAL = functools.partial(handler)\n"
            "class Keeper:\n    default = staticmethod(handler)\n"
            "    def method(self, callback=handler):\n        return callback()\n"
        )
        module = package.module("service", source.format(n=1))
        reloader.track(module)
        caught, sent = swapped_with_warnings(reloader, module.__name__, source.format(n=2))
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()
        assert module.app.routes[0].handler() == 2


HOT_APP = """
def handler():
    return {n}


class App:
    def __init__(self):
        self.handler = handler

    async def __call__(self, scope, receive, send):
        pass


app = App()
"""


class TestKeptAndLive:
    def test_what_only_a_kept_app_holds_is_not_stale(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The previous app, kept for a rollback, holds the old handler: nothing is reported."""
        from illunare.web import HotASGI

        main = package.module("main", HOT_APP.format(n=1))
        hot = HotASGI(f"{main.__name__}:app", reloader=reloader)
        caught, sent = swapped_with_warnings(reloader, main.__name__, HOT_APP.format(n=2))
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()
        assert hot.app.handler() == 2

    def test_a_live_list_holding_what_a_kept_app_holds_too_is_stale(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The old handler in a list of another module is reported, though a kept app holds it."""
        from illunare.web import HotASGI

        outside = package.module("outside", "HELD = []\n")
        main = package.module("main", HOT_APP.format(n=1))
        hot = HotASGI(f"{main.__name__}:app", reloader=reloader)
        outside.HELD.append(hot.app.handler)
        caught, sent = swapped_with_warnings(reloader, main.__name__, HOT_APP.format(n=2))
        [message] = stale_warnings(caught)
        assert "handler" in message
        assert len(sent["stale"]) == 1

    def test_only_the_kept_apps_built_from_the_version_left_are_followed(
        self, package: Package
    ) -> None:
        """Apps built from other versions, evicted ones awaiting collection too, are left out.

        Following every app still in memory at each release made releases
        slower with each one under a server (uncollected apps piled up).
        """
        from illunare.web import HotASGI

        reloader = HotReloader(keep=2)
        main = package.module("main", HOT_APP.format(n=1))
        hot = HotASGI(f"{main.__name__}:app", reloader=reloader)
        built = [hot.app]
        gc.disable()  # the apps of evicted versions stay in memory, as uncollected garbage
        try:
            for n in range(2, 6):
                reloader.swap(main.__name__, HOT_APP.format(n=n))
                built.append(hot.app)
            versions = reloader._modules[main.__name__].history.versions.values()
            namespaces = [version.namespace for version in versions]
            assert [ns["app"] for ns in namespaces] == built[-2:]
            assert list(hot.kept(namespaces[0])) == [built[-2]]
            assert list(hot.kept(namespaces[1])) == [built[-1]]
            assert list(hot.kept({})) == []
        finally:
            gc.enable()

    def test_every_kept_app_built_while_the_version_left_was_current_is_followed(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Apps rebuilt for another module's change hold the same handlers: none is stale."""
        from illunare.web import HotASGI

        package.module("extra", "VALUE = 1\n")
        routes = package.module("routes", "def handler():\n    return 1\n\nROUTES = [handler]\n")
        main = package.module(
            "main",
            f"from {package.name} import extra, routes\n\n\n"
            "class App:\n    def __init__(self):\n        self.routes = routes.ROUTES\n\n"
            "    async def __call__(self, scope, receive, send):\n        pass\n\n\napp = App()\n",
        )
        hot = HotASGI(f"{main.__name__}:app", reloader=reloader)
        first = hot.app
        reloader.swap(package.qualified("extra"), "VALUE = 2\n")  # main executes anew
        second = hot.app
        assert second is not first
        assert set(hot.kept(routes.__dict__)) == {first, second}
        caught, sent = swapped_with_warnings(
            reloader, routes.__name__, "def handler():\n    return 2\n\nROUTES = [handler]\n"
        )
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()
        assert hot.app.routes[0]() == 2

    def test_an_evicted_apps_routes_still_in_memory_are_not_stale(self, package: Package) -> None:
        """The release evicting the first app's version leaves it alive: its routes are no holder.

        The leaving routes version's own records still hold the first app
        (through its route list, whose documentation routes hold the app),
        though the app's own record is gone, or it is garbage not collected
        yet: either way it holds the old handler on purpose.
        """
        from illunare.web import HotASGI

        reloader = HotReloader(keep=2)
        source = (
            "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n\n"
            "@router.get('/h')\ndef handler():\n    return {n}\n"
        )
        routes = package.module("routes", source.format(n=1))
        main_source = (
            f"from fastapi import FastAPI\nfrom {package.name} import routes\n\nN = {{n}}\n"
            "app = FastAPI()\napp.include_router(routes.router)\n"
        )
        main = package.module("main", main_source.format(n=1))
        hot = HotASGI(f"{main.__name__}:app", reloader=reloader)
        assert served(hot.app, "/h") == b"1"  # FastAPI builds the included routes now
        reloader.swap(main.__name__, main_source.format(n=2))  # the first app kept for a rollback
        gc.collect()  # long-lived now, as under a server
        caught, sent = swapped_with_warnings(reloader, routes.__name__, source.format(n=2))
        assert (stale_warnings(caught), sent["stale"]) == ([], ())
        assert hot.version == 3


MEMOIZED = """
import functools


class Identity:
    def __init__(self, call):
        self.call = call


@functools.lru_cache(maxsize=16)
def analysed(identity):
    return identity.call.__name__
"""


class TestMemos:
    def test_what_only_a_memo_holds_is_not_stale(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """An old handler held through a memo's key (FastAPI's analysis cache) is not reported."""
        memo = package.module("memo", MEMOIZED)
        source = f"from {package.name} import memo\n\ndef handler():\n    return {{n}}\n\n"
        source += "memo.analysed(memo.Identity(handler))\n"
        module = package.module("service", source.format(n=1))
        reloader.track(module)
        caught, sent = swapped_with_warnings(reloader, module.__name__, source.format(n=2))
        assert stale_warnings(caught) == []
        assert sent["stale"] == ()
        assert memo.analysed.cache_info().currsize == 2

    def test_what_a_memo_and_a_live_list_hold_is_stale(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """The same key object also in another module's list: the old handler is reported."""
        memo = package.module("memo", MEMOIZED + "\nHELD = []\n")
        source = f"from {package.name} import memo\n\ndef handler():\n    return {{n}}\n\n"
        source += "memo.analysed(memo.Identity(handler))\n"
        module = package.module("service", source.format(n=1))
        reloader.track(module)
        [key] = [args[0] for args in _memo_keys(memo.analysed)]
        memo.HELD.append(key)
        caught, sent = swapped_with_warnings(reloader, module.__name__, source.format(n=2))
        [message] = stale_warnings(caught)
        assert "handler" in message
        assert len(sent["stale"]) == 1

    @pytest.mark.parametrize("change", ["cleared", "mutated"])
    def test_a_memo_that_let_go_of_the_code_no_longer_explains_it(
        self, package: Package, change: str
    ) -> None:
        """A memo cleared and refilled, or whose cached result changed, hides no holder later.

        Its counters and sizes stay the same either way, so what was walked
        of it before must not be taken for what it holds now.
        """
        reloader = HotReloader(keep=5)
        memos = package.module(
            "memos",
            "import functools\n\n\n@functools.lru_cache(maxsize=None)\n"
            "def analyse(fn):\n    return fn.__name__\n\n\n"
            "@functools.lru_cache(maxsize=None)\ndef registry():\n    return {}\n",
        )
        module = package.module("handlers", "def handler():\n    return 1\n")
        reloader.track(module)
        raw = module.handler.__wrapped__
        if change == "cleared":
            memos.analyse(raw)
        else:
            memos.registry()["current"] = raw
        del raw
        caught, sent = swapped_with_warnings(
            reloader, module.__name__, "def handler():\n    return 2\n"
        )
        assert sent["stale"] == ()  # only a memo holds it
        if change == "cleared":
            memos.analyse.cache_clear()
            memos.analyse(len)  # as many misses as before
        else:
            memos.registry().clear()  # a hit: the memo's own storage is unchanged
        reloader.rollback(module.__name__, to=1)
        package.module(
            "user", f"from {package.name} import handlers\nHELD = [handlers.handler.__wrapped__]\n"
        )
        caught, sent = swapped_with_warnings(
            reloader, module.__name__, "def handler():\n    return 3\n"
        )
        [message] = stale_warnings(caught)
        assert "handler" in message


def _memo_keys(memo: Any) -> list[tuple[Any, ...]]:
    """The argument tuples a memo keeps (its cache dict's keys)."""
    import gc

    return [
        key
        for storage in gc.get_referents(memo)
        if type(storage) is dict and "__wrapped__" not in storage
        for key in storage
    ]


class TestToldWithoutAScan:
    def test_a_holder_taken_after_an_earlier_flip_is_reported(
        self, package: Package, helpers: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Once a version left with nothing to report, what takes its code later is still named."""
        reloader.track(helpers)
        reloader.swap(helpers.__name__, HELPERS.format(n=2))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reloader.rollback(helpers.__name__, to=1)
            reloader.rollback(helpers.__name__, to=2)
        assert stale_warnings(caught) == []
        reloader.rollback(helpers.__name__, to=1)
        package.module(
            "user", f"import functools\nfrom {package.name} import helpers\n"
                    "P = functools.partial(helpers.raw.__wrapped__, 1)\n",
        )  # fmt: skip
        with pytest.warns(StaleReferenceWarning, match="partial"):
            reloader.rollback(helpers.__name__, to=2)

    def test_a_class_object_collected_since_no_longer_counts_for_its_version(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """v2's own class object held its method; once collected, a holder taking it is named."""
        source = "class Handler:\n    def method(self):\n        return {n}\n"
        module = package.module("handlers", source.format(n=1))
        reloader.track(module)
        # An open snapshot keeps the swap from collecting the garbage it left
        # (collect_young), so that v2's class object is alive until held here.
        snapshot = Snapshot()
        try:
            reloader.swap(module.__name__, source.format(n=2))
            version = reloader._modules[module.__name__].history.get(2)
            assert version is not None
            [husk] = version.husks
            alive = husk()  # until the references are counted
        finally:
            snapshot.release()
        assert alive is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reloader.rollback(module.__name__, to=1)  # counts v2's references, its class alive
            reloader.rollback(module.__name__, to=2)
        assert stale_warnings(caught) == []
        del alive
        gc.collect()
        assert husk() is None
        package.module(
            "user", f"from {package.name} import handlers\nMETHODS = [handlers.Handler.method]\n"
        )
        with pytest.warns(StaleReferenceWarning, match="Handler.method"):
            reloader.rollback(module.__name__, to=1)

    def test_a_method_of_a_version_whose_class_lacks_a_name_is_reported(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """v1 lacks v2's helper (a placeholder in its contents): a holder of its method is named."""
        v1 = "class Handler:\n    def method(self):\n        return 1\n"
        v2 = v1 + "    def helper(self):\n        return 2\n"
        module = package.module("lacking", v1)
        reloader.track(module)
        reloader.swap(module.__name__, v2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reloader.rollback(module.__name__, to=1)  # v1's contents, with a placeholder
            reloader.rollback(module.__name__, to=2)
            reloader.rollback(module.__name__, to=1)
        assert stale_warnings(caught) == []
        package.module(
            "user", f"from {package.name} import lacking\nMETHODS = [lacking.Handler.method]\n"
        )
        with pytest.warns(StaleReferenceWarning, match="Handler.method"):
            reloader.rollback(module.__name__, to=2)


RUNNING = """
import time

state = {{"started": False, "released": False}}


def wait(x=0):
    state["started"] = True
    while not state["released"]:
        time.sleep(0.001)  # C code: the thread's innermost frame stays this one
    return {n}
"""


class TestCallsInFlight:
    @pytest.fixture
    def waiting(self, package: Package, reloader: HotReloader) -> Iterator[types.ModuleType]:
        """A tracked module whose raw ``wait`` a thread is running, blocked until the test ends."""
        module = package.module("waiting", RUNNING.format(n=1))
        reloader.track(module)
        # Called directly, as a framework calls what it captured, and then
        # held by the call alone.
        box = [module.wait.__wrapped__]
        thread = threading.Thread(target=lambda: box.pop()())  # noqa: PLW0108  # box holds it until the call
        state = module.state
        thread.start()
        assert eventually(lambda: state["started"])
        try:
            yield module
        finally:
            state["released"] = True
            thread.join(10)

    def test_a_call_running_the_old_function_is_told_without_a_scan_from_3_11(
        self, waiting: types.ModuleType, reloader: HotReloader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The thread's innermost frame runs the replaced function: nothing to walk the heap for.

        On 3.10 a frame holds no function (its caller does): the scan tells
        there, and finds the call in flight no stale reference either.
        """
        scans: list[str] = []
        scan = illunare._reload.reloader.stale_references

        def spy(*args: Any) -> tuple[str, ...]:
            scans.append("scan")
            return scan(*args)

        monkeypatch.setattr(illunare._reload.reloader, "stale_references", spy)
        caught, sent = swapped_with_warnings(reloader, waiting.__name__, RUNNING.format(n=2))
        assert (stale_warnings(caught), sent["stale"]) == ([], ())
        assert scans == ([] if sys.version_info >= (3, 11) else ["scan"])

    def test_a_holder_beside_a_call_in_flight_is_still_reported(
        self, package: Package, waiting: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A call in flight explains its own reference: a list holding the function is named."""
        package.module(
            "user", f"from {package.name} import waiting\nHELD = [waiting.wait.__wrapped__]\n"
        )
        caught, sent = swapped_with_warnings(reloader, waiting.__name__, RUNNING.format(n=2))
        [message] = stale_warnings(caught)
        assert "wait" in message
        assert len(sent["stale"]) == 1

    def test_a_call_of_another_closure_of_the_same_code_explains_nothing(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A thread runs a closure sharing a version function's code: its holder is named."""
        source = (
            "import time\n\nstate = {{'started': False, 'released': False}}\n\n\n"
            "def make(n):\n    def inner():\n        state['started'] = True\n"
            "        while not state['released']:\n            time.sleep(0.001)\n"
            "        return n + {n}\n    return inner\n\n\nwait = make(1)\n"
        )
        module = package.module("closures", source.format(n=0))
        reloader.track(module)
        state = module.state
        thread = threading.Thread(target=module.make(5))  # same code as wait, not the version's
        thread.start()
        try:
            assert eventually(lambda: state["started"])
            package.module(
                "user", f"from {package.name} import closures\nHELD = [closures.wait.__wrapped__]\n"
            )
            caught, _ = swapped_with_warnings(reloader, module.__name__, source.format(n=100))
        finally:
            state["released"] = True
            thread.join(10)
        [message] = stale_warnings(caught)
        assert "inner" in message

    def test_a_call_on_a_version_sharing_compiled_code_explains_nothing_of_another(
        self, package: Package
    ) -> None:
        """Versions of one text share code: a call on one hides no holder of the other."""
        reloader = HotReloader(keep=5)
        first = RUNNING.format(n=1)
        second = RUNNING.format(n=2)
        module = package.module("shared", first)
        reloader.track(module)
        reloader.swap(module.__name__, second)  # v2
        state = module.state
        thread = threading.Thread(target=module.wait)  # a call in flight on v2
        thread.start()
        try:
            assert eventually(lambda: state["started"])
            reloader.swap(module.__name__, first)  # v3
            reloader.swap(module.__name__, second)  # v4: v2's compiled code again
            package.module(
                "user", f"from {package.name} import shared\nHELD = [shared.wait.__wrapped__]\n"
            )
            caught, _ = swapped_with_warnings(reloader, module.__name__, first)  # v4 leaves
        finally:
            state["released"] = True
            thread.join(10)
        [message] = stale_warnings(caught)
        assert "wait" in message
