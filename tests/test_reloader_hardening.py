"""HotReloader under adversity: races, forks, stuck or exiting new code, bad input.

Scenarios that crashed or hung the interpreter before they were fixed run in a
subprocess: a crash (negative return code) or a hang (timeout) fails the test.
"""

from __future__ import annotations

import functools
import importlib
import linecache
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from illunare import (
    CodeVersion,
    HotReloader,
    InvalidArgumentError,
    LoadError,
    RollbackError,
    UnknownModuleError,
    ValidationError,
    signals,
)
from illunare._reload.importer import HotFinder

from .conftest import Package, eventually
from .strategies import NOT_AN_ARGUMENT

# Long enough for a loaded machine, short enough that a hang fails the test.
SUBPROCESS_TIMEOUT = 120
# How long a thread may take to come back before the test calls it stuck.
JOIN_TIMEOUT = 60

SOURCE = "VERSION = {n}\n\ndef value():\n    return VERSION\n"


def run_python(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as a file with this interpreter; fail on a crash, a hang or an error."""
    path = tmp_path / "scenario.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def in_thread(function: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``function`` in a daemon thread; its result or exception lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def outcome_of(call: Callable[[], object]) -> object:
    """What ``call`` returns or raises (a KeyboardInterrupt fails the test, not the run)."""
    try:
        return call()
    except BaseException as error:
        return error


def untracking_methods(reloader: HotReloader) -> tuple[Callable[[Any], object], ...]:
    """The methods that take the name of a module that must be tracked already."""
    return (
        reloader.current,
        reloader.history,
        reloader.rollback,
        functools.partial(reloader.swap, source="X = 1\n"),
    )


@pytest.fixture
def mod(package: Package, reloader: HotReloader) -> types.ModuleType:
    """A tracked module at version 1."""
    module = package.module("mod", SOURCE.format(n=1))
    reloader.track(module)
    return module


@pytest.fixture
def gate(package: Package) -> Iterator[types.ModuleType]:
    """A module with two events a new source can use to stop half-way: entered and release."""
    module = package.module(
        "gate", "import threading\n\nentered = threading.Event()\nrelease = threading.Event()\n"
    )
    yield module
    module.release.set()


def stuck_source(gate: types.ModuleType, n: int, *, then: str = "") -> str:
    """A new source whose top-level code waits for the gate to be released."""
    return (
        f"import {gate.__name__} as gate\n"
        "gate.entered.set()\n"
        "gate.release.wait()\n"
        f"{then}\n" + SOURCE.format(n=n)
    )


class TestOwnership:
    def test_concurrent_tracking_and_rollbacks_never_crash(self, tmp_path: Path) -> None:
        """9 rounds: 8 threads of 4 reloaders track one module and roll it back: no crash."""
        run_python(
            tmp_path,
            """
            import pathlib, sys, threading
            from illunare import HotReloader, IllunareError

            pathlib.Path("racy.py").write_text("X = 1\\ndef f():\\n    return X\\n")
            sys.path.insert(0, ".")
            import racy

            sys.setswitchinterval(1e-6)

            def worker(reloader, i):
                for _ in range(5):
                    try:
                        reloader.track(racy)
                        reloader.swap("racy", f"X = {i}\\ndef f():\\n    return X\\n")
                        for k in range(50):
                            reloader.rollback("racy", to=1 + k % 2)
                    except IllunareError:
                        pass  # taken over by another reloader meanwhile

            for _ in range(9):
                reloaders = [HotReloader(keep=3) for _ in range(4)]
                threads = [
                    threading.Thread(target=worker, args=(reloaders[i % 4], i)) for i in range(8)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                owners = [r for r in reloaders if "racy" in r.modules()]
                assert len(owners) == 1, owners
                assert racy.f() == racy.X
            """,
        )

    def test_one_module_has_one_owner_however_many_track_it_at_once(self, package: Package) -> None:
        """Threads of several reloaders tracking one module at once leave exactly one owner."""
        module = package.module("owned", SOURCE.format(n=1))
        reloaders = [HotReloader() for _ in range(3)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for _ in range(25):
                start = threading.Barrier(6)

                def track(reloader: HotReloader, start: threading.Barrier = start) -> None:
                    start.wait()
                    reloader.track(module)

                threads = [threading.Thread(target=track, args=(r,)) for r in reloaders * 2]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                owners = [r for r in reloaders if module.__name__ in r.modules()]
                assert len(owners) == 1
        finally:
            sys.setswitchinterval(interval)


class TestLiveNamespaces:
    def test_a_thread_adding_and_removing_globals_meanwhile_breaks_nothing(
        self, package: Package
    ) -> None:
        """Track, swap and roll back while a thread adds and removes the module's globals."""
        source = SOURCE + "\nclass Item:\n    def price(self):\n        return VERSION\n"
        module = package.module("churned", source.format(n=0))
        namespace = vars(module)
        done = threading.Event()

        def churn() -> None:  # a registry filling and emptying itself, lazy globals ...
            while not done.is_set():
                for n in range(50):
                    namespace[f"lazy_{n}"] = n
                for n in range(50):
                    del namespace[f"lazy_{n}"]

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        thread = threading.Thread(target=churn)
        thread.start()
        try:
            reloader = HotReloader()
            reloader.track(module)
            for round_ in range(1, 16):
                reloader.swap(module.__name__, source.format(n=round_))
                assert module.value() == module.Item().price() == round_
                reloader.rollback(module.__name__)
                assert module.value() == round_ - 1
                reloader.swap(module.__name__, source.format(n=round_))
        finally:
            done.set()
            thread.join()
            sys.setswitchinterval(interval)


class TestUserCodeOutsideTheLock:
    def test_a_stuck_new_source_holds_up_nothing_else(
        self, package: Package, reloader: HotReloader, gate: types.ModuleType
    ) -> None:
        """While a new source waits forever, every other method and import under install() works."""
        stuck = package.module("stuck", SOURCE.format(n=1))
        other = package.module("other", SOURCE.format(n=1))
        reloader.track(stuck)
        reloader.track(other)
        swapping, swapped = in_thread(lambda: reloader.swap(stuck.__name__, stuck_source(gate, 2)))
        assert gate.entered.wait(JOIN_TIMEOUT)
        package.write("later", SOURCE.format(n=1))

        def everything_else() -> object:
            reloader.install(package.name)
            try:
                later = importlib.import_module(package.qualified("later"))
            finally:
                sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, HotFinder)]
            return (
                reloader.current(stuck.__name__).number,
                reloader.history(stuck.__name__)[-1].number,
                later.__name__ in reloader.modules(),
                reloader.swap(other.__name__, SOURCE.format(n=2)).number,
                other.value(),
                reloader.source_files()[other.__name__] == other.__file__,
            )

        thread, result = in_thread(everything_else)
        thread.join(JOIN_TIMEOUT)
        gate.release.set()
        swapping.join(JOIN_TIMEOUT)
        assert result == [(1, 1, True, 2, 2, True)]
        assert [version.number for version in swapped] == [2]  # type: ignore[attr-defined]
        assert stuck.value() == 2

    def test_a_check_may_ask_for_the_current_version_from_another_thread(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A check that calls current() in a thread and joins it does not deadlock."""
        module = package.module("checked", SOURCE.format(n=1))
        reloader.track(module)

        def check(candidate: types.ModuleType) -> bool:
            thread, seen = in_thread(lambda: reloader.current(module.__name__).number)
            thread.join(JOIN_TIMEOUT)
            return seen == [1] and candidate.value() == 2

        assert reloader.swap(module.__name__, SOURCE.format(n=2), checks=[check]).number == 2

    def test_a_rollback_while_a_swap_is_prepared_wins(
        self, package: Package, reloader: HotReloader, gate: types.ModuleType
    ) -> None:
        """The rollback is instant; the swap prepared against the replaced version is refused."""
        module = package.module("contested", SOURCE.format(n=1))
        reloader.track(module)
        reloader.swap(module.__name__, SOURCE.format(n=2))
        failures: list[object] = []
        with signals.swap_failed.connected_to(lambda sender, **kw: failures.append(kw["error"])):
            swapping, swapped = in_thread(
                lambda: reloader.swap(module.__name__, stuck_source(gate, 3))
            )
            assert gate.entered.wait(JOIN_TIMEOUT)
            rolling, rolled = in_thread(lambda: reloader.rollback(module.__name__).number)
            rolling.join(JOIN_TIMEOUT)
            gate.release.set()
            swapping.join(JOIN_TIMEOUT)
        assert rolled == [1]
        assert len(swapped) == 1
        assert isinstance(swapped[0], LoadError)
        assert failures == swapped
        assert module.value() == 1
        assert [v.number for v in reloader.history(module.__name__)] == [1, 2]
        assert reloader.swap(module.__name__, SOURCE.format(n=4)).number == 3
        assert reloader.current(module.__name__).parent == 1

    def test_racing_swaps_and_rollbacks_keep_the_history_consistent(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Racing swaps and rollbacks: unique numbers, real parents, the current code runs."""
        module = package.module("raced", SOURCE.format(n=0))
        reloader.track(module)
        made: dict[int, int] = {1: 0}
        unexpected: list[object] = []
        done = threading.Event()

        def swapper(base: int) -> None:
            for n in range(base, base + 30):
                swapped = outcome_of(
                    functools.partial(reloader.swap, module.__name__, SOURCE.format(n=n))
                )
                if isinstance(swapped, CodeVersion):
                    made[swapped.number] = n
                elif not (isinstance(swapped, LoadError) and "rolled back" in str(swapped)):
                    unexpected.append(swapped)  # a refusal must be the rollback's doing

        def roller() -> None:
            while not done.is_set():
                rolled = outcome_of(functools.partial(reloader.rollback, module.__name__))
                if isinstance(rolled, BaseException) and not isinstance(rolled, RollbackError):
                    unexpected.append(rolled)  # RollbackError: back at version 1 already

        swappers = [threading.Thread(target=swapper, args=(b * 100,)) for b in (1, 2, 3)]
        rolling = threading.Thread(target=roller)
        for thread in [*swappers, rolling]:
            thread.start()
        for thread in swappers:
            thread.join()
        done.set()
        rolling.join()
        assert unexpected == []
        history = reloader.history(module.__name__)
        numbers = [version.number for version in history]
        assert numbers == sorted(set(numbers))
        assert set(numbers) <= set(made)
        assert all(v.parent is None or v.parent < v.number for v in history)
        assert all(v.parent in made for v in history if v.parent is not None)
        assert module.value() == made[reloader.current(module.__name__).number]


class TestFork:
    def test_a_child_forked_during_a_swap_can_swap(self, tmp_path: Path) -> None:
        """Fork while one thread prepares a swap and another flips versions: the child swaps."""
        run_python(
            tmp_path,
            """
            import os, pathlib, sys, threading, time
            from illunare import HotReloader

            pathlib.Path("gate.py").write_text(
                "import threading\\nentered = threading.Event()\\nrelease = threading.Event()\\n"
            )
            pathlib.Path("forked.py").write_text("def f():\\n    return 1\\n")
            pathlib.Path("busy.py").write_text("def f():\\n    return 1\\n")
            sys.path.insert(0, ".")
            import busy, forked, gate

            reloader = HotReloader()
            reloader.track(forked)
            reloader.track(busy)
            reloader.swap("busy", "def f():\\n    return 2\\n")
            stuck = "import gate\\ngate.entered.set()\\ngate.release.wait()\\n" + (
                "def f():\\n    return 2\\n"
            )
            swapping = threading.Thread(target=reloader.swap, args=("forked", stuck))
            swapping.start()
            assert gate.entered.wait(30)
            done = threading.Event()

            def flip():
                while not done.is_set():
                    reloader.rollback("busy", to=1)
                    reloader.rollback("busy", to=2)

            flipping = threading.Thread(target=flip)
            flipping.start()

            def wait(pid):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    finished, status = os.waitpid(pid, os.WNOHANG)
                    if finished:
                        return os.waitstatus_to_exitcode(status)
                    time.sleep(0.01)
                os.kill(pid, 9)
                return "hung"

            try:
                for _ in range(10):
                    pid = os.fork()
                    if pid == 0:
                        code = 1
                        try:
                            reloader.swap("forked", "def f():\\n    return 3\\n")
                            reloader.rollback("busy", to=1)
                            code = 0 if (forked.f(), busy.f()) == (3, 1) else 2
                        finally:
                            os._exit(code)
                    assert wait(pid) == 0
            finally:
                done.set()
                gate.release.set()
                flipping.join()
                swapping.join()
            assert forked.f() == 2
            """,
        )

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_child_forked_while_the_default_reloader_is_made_can_use_it(
        self, tmp_path: Path
    ) -> None:
        """A fork waits for the default reloader being made: no child inherits a held lock."""
        run_python(
            tmp_path,
            """
            import os, signal, sys, threading
            import illunare

            entered, release = threading.Event(), threading.Event()

            def pause_in_the_constructor(frame, event, arg):
                code = frame.f_code
                if event == "call" and code.co_name == "__init__" and (
                    code.co_filename.endswith("reloader.py")
                ):
                    entered.set()
                    release.wait()

            def make():
                sys.settrace(pause_in_the_constructor)  # this thread only
                illunare.default_reloader()
                sys.settrace(None)

            making = threading.Thread(target=make)
            making.start()
            assert entered.wait(30)
            # The fork starts while the default reloader is being made.
            threading.Timer(0.5, release.set).start()
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a child stuck on a lock ends itself
                code = 1
                try:
                    made = illunare.default_reloader()
                    code = 0 if isinstance(made, illunare.HotReloader) else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            making.join()
            """,
        )


class TestMain:
    def test_a_script_swapping_its_own_functions_exits_cleanly(self, tmp_path: Path) -> None:
        """@hot in a script: its first namespace outlives eviction and the interpreter exits 0."""
        done = run_python(
            tmp_path,
            """
            import atexit, weakref
            from illunare import HotReloader

            class Sentinel:
                pass

            SENTINEL = Sentinel()
            reloader = HotReloader(keep=1)

            @reloader.hot
            def answer():
                return 0

            for n in range(1, 30):
                reloader.swap("__main__", f"DATA = [str(i) * 3 for i in range(200)]\\n"
                                          f"def answer():\\n    return {n}\\n")
                assert answer() == n
            assert 1 not in [v.number for v in reloader.history("__main__")]  # evicted

            # Asked once the script's own frame is gone: a function of this
            # script would keep its namespace alive itself.
            report = {}
            exec("def report(ref):\\n    print('kept' if ref() else 'freed', flush=True)", report)
            atexit.register(report["report"], weakref.ref(SENTINEL))
            """,
        )
        assert done.stdout.split() == ["kept"]


BASE_EXCEPTIONS = [
    "raise SystemExit(3)",
    "raise KeyboardInterrupt",
    "raise GeneratorExit",
    "class Custom(BaseException):\n    pass\nraise Custom()",
]


class TestBaseExceptions:
    @pytest.mark.parametrize("statement", BASE_EXCEPTIONS, ids=["exit", "ctrl-c", "genexit", "own"])
    @pytest.mark.parametrize("where", ["top level", "migrate", "check"])
    def test_become_typed_errors_and_leave_nothing_behind(
        self,
        package: Package,
        reloader: HotReloader,
        gate: types.ModuleType,
        statement: str,
        where: str,
    ) -> None:
        """SystemExit & co. from a new source refuse it: typed error, signal, no leftovers."""
        module = package.module("exiting", SOURCE.format(n=1))
        reloader.track(module)
        package.write("dependency", "X = 1\n")
        source = f"import {package.qualified('dependency')}\n" + SOURCE.format(n=2)

        def check(candidate: types.ModuleType) -> None:
            exec(statement, {})

        if where == "top level":
            source += statement + "\n"
        elif where == "migrate":
            source += "def __hot_migrate__(old):\n" + textwrap.indent(statement, "    ") + "\n"
        checks = (check,) if where == "check" else ()
        expected = LoadError if where == "top level" else ValidationError
        cached = set(linecache.cache)
        imported = set(sys.modules)
        failures: list[object] = []
        with signals.swap_failed.connected_to(lambda sender, **kw: failures.append(kw["error"])):
            error = outcome_of(lambda: reloader.swap(module.__name__, source, checks=checks))
        assert type(error) is expected
        assert isinstance(error.__cause__, BaseException)
        assert not isinstance(error.__cause__, Exception)
        assert failures == [error]
        assert set(linecache.cache) == cached
        assert set(sys.modules) == imported
        assert module.value() == 1
        assert [v.number for v in reloader.history(module.__name__)] == [1]

    def test_a_save_calling_sys_exit_keeps_the_watcher(
        self, package: Package, reloader: HotReloader, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The watcher logs the refused save with its cause and applies the next good one."""
        module = package.module("watched", SOURCE.format(n=1))
        reloader.track(module)
        failed = threading.Event()
        with (
            caplog.at_level(logging.WARNING, logger="illunare"),
            signals.swap_failed.connected_to(lambda sender, **kw: failed.set()),
            reloader.watch(package.path) as watcher,
        ):
            package.write("watched", "import sys\nsys.exit(1)\n")
            assert failed.wait(JOIN_TIMEOUT)
            assert watcher.running
            package.write("watched", SOURCE.format(n=3))
            assert eventually(lambda: module.value() == 3)
        records = [r for r in caplog.records if r.name == "illunare"]
        assert records
        for record in records:
            assert record.levelno == logging.WARNING
            assert module.__name__ in record.getMessage()
            assert record.exc_info is not None
            assert isinstance(record.exc_info[1], LoadError)
            assert isinstance(record.exc_info[1].__cause__, SystemExit)


class TestModuleNames:
    @pytest.mark.parametrize("name", ["", ".", "..", "pkg..x", "pkg.", ".pkg", "1pkg", "a b"])
    def test_what_is_not_a_module_name_is_an_unknown_module(
        self, reloader: HotReloader, name: str
    ) -> None:
        """Malformed names are UnknownModuleError (a LookupError) for every method."""
        for call in (reloader.track, *untracking_methods(reloader)):
            error = outcome_of(functools.partial(call, name))
            assert type(error) is UnknownModuleError
            assert isinstance(error, LookupError)
            assert "not a module name" in str(error)

    def test_a_module_that_does_not_exist(self, reloader: HotReloader) -> None:
        """A missing module, or a missing parent package, is UnknownModuleError."""
        for name in ("illunare_no_such_module", "illunare_no_such_package.sub", "illunare.nope"):
            error = outcome_of(functools.partial(reloader.track, name))
            assert type(error) is UnknownModuleError
            assert isinstance(error.__cause__, ModuleNotFoundError)

    @pytest.mark.parametrize(
        ("body", "cause"),
        [
            ("raise RuntimeError('boom')", RuntimeError),
            ("import sys\nsys.exit(2)", SystemExit),
            ("import illunare_no_such_dependency", ModuleNotFoundError),
        ],
        ids=["raises", "exits", "missing-dependency"],
    )
    def test_a_module_that_raises_when_imported(
        self, package: Package, reloader: HotReloader, body: str, cause: type[BaseException]
    ) -> None:
        """track() of a module whose import raises is LoadError with the original as __cause__."""
        package.write("broken", body + "\n")
        error = outcome_of(lambda: reloader.track(package.qualified("broken")))
        assert type(error) is LoadError
        assert type(error.__cause__) is cause
        assert package.qualified("broken") not in sys.modules
        assert reloader.modules() == ()


class TestInstallExtensions:
    def test_extension_modules_of_an_installed_package_are_left_alone(self, tmp_path: Path) -> None:
        """install() of a package with a compiled module tracks the rest and imports it fine."""
        run_python(
            tmp_path,
            """
            from illunare import HotReloader

            reloader = HotReloader()
            reloader.install("watchfiles")
            import watchfiles
            import watchfiles._rust_notify

            tracked = reloader.modules()
            assert "watchfiles.main" in tracked, tracked
            assert "watchfiles._rust_notify" not in tracked, tracked
            HotReloader().install("watchfiles")  # the same for modules imported already
            """,
        )


class TestImportsOfFailedSwaps:
    def test_only_the_modules_the_failed_swap_imported_are_removed(
        self, package: Package, reloader: HotReloader, gate: types.ModuleType
    ) -> None:
        """A module another thread imports during a failing swap stays in sys.modules."""
        module = package.module("failing", SOURCE.format(n=1))
        reloader.track(module)
        package.write("mine", f"import {package.qualified('mine_too')}\n")
        package.write("mine_too", "X = 1\n")
        package.write("theirs", "X = 1\n")
        source = f"import {package.qualified('mine')}\n" + stuck_source(
            gate, 2, then="raise RuntimeError('refused')"
        )
        swapping, swapped = in_thread(lambda: reloader.swap(module.__name__, source))
        assert gate.entered.wait(JOIN_TIMEOUT)
        theirs = importlib.import_module(package.qualified("theirs"))
        gate.release.set()
        swapping.join(JOIN_TIMEOUT)
        assert [type(error) for error in swapped] == [LoadError]
        assert sys.modules[package.qualified("theirs")] is theirs
        assert package.qualified("mine") not in sys.modules
        assert package.qualified("mine_too") not in sys.modules

    def test_a_successful_swap_keeps_what_it_imported(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Modules a swap imports stay when the swap succeeds."""
        module = package.module("importing", SOURCE.format(n=1))
        reloader.track(module)
        package.write("needed", "X = 5\n")
        reloader.swap(
            module.__name__,
            f"from {package.qualified('needed')} import X\n\ndef value():\n    return X\n",
        )
        assert module.value() == 5
        assert package.qualified("needed") in sys.modules


class TestBadInput:
    @given(value=st.one_of(NOT_AN_ARGUMENT, st.booleans()))
    @settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def test_a_module_argument_of_the_wrong_type(
        self, mod: types.ModuleType, reloader: HotReloader, value: object
    ) -> None:
        """Every method taking a module refuses anything but a module or a str, changing nothing."""
        before = (reloader.modules(), reloader.history(mod.__name__), mod.value)
        methods: tuple[Callable[[Any], object], ...] = (
            reloader.track,
            *untracking_methods(reloader),
        )
        for call in methods:
            assert type(outcome_of(functools.partial(call, value))) is InvalidArgumentError
        assert (reloader.modules(), reloader.history(mod.__name__), mod.value) == before

    @given(name=st.text(max_size=12))
    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def test_an_untracked_name(
        self, mod: types.ModuleType, reloader: HotReloader, name: str
    ) -> None:
        """Any name but a tracked one is UnknownModuleError for swap, rollback, current, history."""
        if name == mod.__name__:
            return
        before = (reloader.modules(), reloader.history(mod.__name__), mod.value)
        for call in untracking_methods(reloader):
            assert type(outcome_of(functools.partial(call, name))) is UnknownModuleError
        assert (reloader.modules(), reloader.history(mod.__name__), mod.value) == before

    def test_other_arguments_of_the_wrong_type_or_value(
        self, mod: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Sources, checks, reasons, versions, packages, paths and debounces are checked first."""
        name = mod.__name__
        before = (reloader.modules(), reloader.history(name), mod.value, list(sys.meta_path))

        class Spoofed:
            """Claims to be a module: isinstance() believes it."""

            __name__ = name

            @property  # type: ignore[misc]
            def __class__(self) -> type:
                return types.ModuleType

        spoofed = Spoofed()
        assert isinstance(spoofed, types.ModuleType)
        calls: list[Callable[[], object]] = [
            lambda: reloader.swap(name, 42),  # type: ignore[arg-type]
            lambda: reloader.swap(name, "X = 1\n", checks=[1]),  # type: ignore[list-item]
            lambda: reloader.swap(name, "X = 1\n", checks="check"),  # type: ignore[arg-type]
            lambda: reloader.swap(name, "X = 1\n", reason=1),  # type: ignore[arg-type]
            lambda: reloader.rollback(name, to="1"),  # type: ignore[arg-type]
            lambda: reloader.rollback(name, to=True),
            lambda: reloader.track(spoofed),
            lambda: reloader.install(package.name, 1),  # type: ignore[arg-type]
            lambda: reloader.install(package.name, "a..b"),
            lambda: reloader.hot(1),  # type: ignore[type-var]
            lambda: reloader.hot(lambda: 1),
            lambda: reloader.watch(42),  # type: ignore[arg-type]
            lambda: reloader.watch(package.path, b"bytes"),  # type: ignore[arg-type]
            lambda: reloader.watch(package.path, debounce=math.nan),
            lambda: reloader.watch(package.path, debounce=math.inf),
            lambda: reloader.watch(package.path, debounce=True),
            lambda: HotReloader(keep=True),
        ]
        for call in calls:
            assert type(outcome_of(call)) is InvalidArgumentError
        assert (reloader.modules(), reloader.history(name), mod.value, sys.meta_path) == before

    def test_stopping_a_watcher_with_a_bad_timeout(
        self, mod: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Watcher.stop() refuses a timeout that is not None or seconds, and keeps watching."""
        with reloader.watch(package.path) as watcher:
            bad: tuple[Any, ...] = ("1", -1, True)
            for timeout in bad:
                stopping = functools.partial(watcher.stop, timeout)
                assert type(outcome_of(stopping)) is InvalidArgumentError
            assert watcher.running
        assert not watcher.running
