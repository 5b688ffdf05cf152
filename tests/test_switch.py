"""The switch itself: atomic for every thread, immune to asynchronous exceptions, only on modules.

The scenarios that could crash the interpreter (or did, before) run in a
subprocess; a crash there is a failed test.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import types
import weakref
from pathlib import Path
from typing import Any

import pytest
import wrapt
from hypothesis import given, settings
from hypothesis import strategies as st

from illunare import FunctionRemovedError, HotReloader, InvalidArgumentError
from illunare._reload import switch
from illunare._reload.namespace import install_namespace
from illunare._reload.proxy import HotFunction, retarget

from .conftest import Package, run_script
from .strategies import CLASS_VERSIONS, METHOD_NAMES, class_source

_modules = itertools.count()

# Version 2 adds a method and a function that its own code calls: a call
# of version 2 still running when version 1 comes back must find them.
V1 = """
TAG = 1

def compute():
    return (TAG, TAG)

class Handler:
    KIND = 1

    def handle(self):
        return (TAG, TAG)
"""

V2 = """
TAG = 2

def extra():
    return TAG

def compute():
    return (TAG, extra())

class Handler:
    KIND = 2

    def handle(self):
        return (TAG, self.helper())

    def helper(self):
        return TAG
"""

WAITING = """
import threading

TAG = {n}
entered = threading.Event()
release = threading.Event()
__hot_preserve__ = ("entered", "release")
{extra}
class Handler:
    def handle(self):
        entered.set()
        release.wait(10)
        return {call}
"""


def write_versions(directory: Path, name: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(V1))
    (directory / "v2.txt").write_text(textwrap.dedent(V2))


# Shared by the subprocess scripts: a tracked module at version 2, current
# after a swap, and a check that everything live is of one version.
PRELUDE = """
import functools, operator, sys, threading, pathlib, types
sys.path.insert(0, sys.argv[1])
import flipped
from illunare import HotReloader

reloader = HotReloader()
reloader.track(flipped)
reloader.swap("flipped", pathlib.Path(sys.argv[1], "v2.txt").read_text())
compute, Handler = flipped.compute, flipped.Handler
READS = (
    functools.partial(getattr, Handler, "KIND"),
    functools.partial(getattr, flipped, "TAG"),
    functools.partial(getattr, compute, "__wrapped__"),
    functools.partial(Handler.__dict__.get, "helper"),
)

def version():
    # One C-level pass reading the class, the module and a proxy: atomic,
    # so that a consistent switch can only ever show one version.
    kind, tag, function, helper = map(operator.methodcaller("__call__"), READS)
    assert kind == tag == function.__globals__["TAG"], (kind, tag, function)
    assert isinstance(helper, types.FunctionType) == (kind == 2), (kind, helper)
    return kind
"""


# 4 threads call, 1 reads the state, while the main thread flips.
CALLERS = """
sys.setswitchinterval(1e-6)
errors, results, versions = [], set(), set()
done = threading.Event()

def caller():
    try:
        while not done.is_set():
            results.add(Handler().handle())
            results.add(compute())
    except BaseException as error:
        errors.append(error)

def reader():
    try:
        while not done.is_set():
            versions.add(version())
    except BaseException as error:
        errors.append(error)

threads = [threading.Thread(target=caller) for _ in range(4)]
threads.append(threading.Thread(target=reader))
for thread in threads:
    thread.start()
for flip in range(4_000):
    reloader.rollback("flipped", to=1 + flip % 2)
done.set()
for thread in threads:
    thread.join()
assert errors == [], errors[:3]
assert results <= {(1, 1), (2, 2)}, results
print(sorted(results), sorted(versions))
"""

# SIGINT at random moments while the main thread flips.
INTERRUPTED = """
import _thread, random, signal, time

armed = [False]

def interrupt(signum, frame):
    if armed[0]:
        raise KeyboardInterrupt

signal.signal(signal.SIGINT, interrupt)
done = threading.Event()
interval = sys.getswitchinterval()

def interrupter():
    while not done.is_set():
        time.sleep(random.random() / 20_000)
        _thread.interrupt_main()

thread = threading.Thread(target=interrupter, daemon=True)
thread.start()
interrupted = 0
for flip in range(10_000):
    armed[0] = True
    try:
        reloader.rollback("flipped", to=1 + flip % 2)
    except KeyboardInterrupt:
        interrupted += 1
    finally:
        armed[0] = False
    assert version() == reloader.current("flipped").number
# Swaps too: each pauses the collector and lowers the switch interval.
import gc
from illunare import SwapError

sources = [pathlib.Path(sys.argv[1], name).read_text() for name in ("flipped.py", "v2.txt")]
for swap in range(300):
    armed[0] = True
    try:
        reloader.swap("flipped", sources[swap % 2] + "#" * swap)
    except (KeyboardInterrupt, SwapError):
        interrupted += 1
    finally:
        armed[0] = False
done.set()
thread.join()
assert reloader.rollback("flipped", to=reloader.current("flipped").number)
reloader.swap("flipped", sources[0])
version()
# Nothing an interrupt cut short stays in effect once the next release ends:
# the collector runs, and the switch interval is the one the process had.
print(interrupted > 0, gc.isenabled(), sys.getswitchinterval() == interval)
"""


class TestAtomicSwitch:
    def test_callers_never_fail_nor_mix_versions_at_the_finest_switch_interval(
        self, tmp_path: Path
    ) -> None:
        """4 threads call methods and functions, 1 reads state, while 4,000 flips run at 1 us."""
        write_versions(tmp_path, "flipped")
        output = run_script(
            PRELUDE + CALLERS,
            str(tmp_path),
        )
        assert output.split() == ["[(1,", "1),", "(2,", "2)]", "[1,", "2]"]

    def test_a_keyboard_interrupt_never_leaves_a_torn_module(self, tmp_path: Path) -> None:
        """SIGINT at random moments of 10,000 flips and 300 swaps: never a torn module.

        Nor a paused collector or a lowered switch interval left behind.
        """
        write_versions(tmp_path, "flipped")
        output = run_script(
            PRELUDE + INTERRUPTED,
            str(tmp_path),
        )
        assert output.split() == ["True", "True", "True"]

    def test_the_switch_runs_no_python_code(self, package: Package, reloader: HotReloader) -> None:
        """No Python function is entered from inside the one C-level pass of a switch."""
        module = package.module("quiet", V1)
        reloader.track(module)
        reloader.swap(module.__name__, V2)
        entered: list[str] = []
        run_code = switch.Switch.run.__code__

        def profile(frame: types.FrameType, event: str, arg: object) -> None:
            if event == "call" and frame.f_back is not None and frame.f_back.f_code is run_code:
                entered.append(frame.f_code.co_qualname if sys.version_info >= (3, 11) else "")

        sys.setprofile(profile)
        try:
            reloader.rollback(module.__name__, to=1)
            reloader.rollback(module.__name__, to=2)
        finally:
            sys.setprofile(None)
        assert entered == []
        assert module.Handler().handle() == (2, 2)

    def test_values_the_switch_replaces_are_released_after_it(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A finalizer of a value the switch drops runs after the switch, never inside it."""
        module = package.module("released", V1)
        reloader.track(module)
        reloader.swap(module.__name__, V2)
        inside: list[bool] = []

        def finalized() -> None:
            frames = [sys._getframe(depth) for depth in range(1, 8)]
            inside.append(any(frame.f_code is switch.Switch.run.__code__ for frame in frames))

        class Attribute:
            pass

        value = Attribute()
        module.Handler.stray = value  # set at run time: only the class holds it
        weakref.finalize(value, finalized)
        del value
        reloader.rollback(module.__name__, to=2)
        assert inside == [False]

    def test_rollback_to_the_current_version_repairs_the_module(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """rollback(to=current) re-applies the namespace, class contents and proxy targets."""
        module = package.module("repaired", V1)
        reloader.track(module)
        reloader.swap(module.__name__, V2)
        handler, compute = module.Handler, module.compute
        v2_handle, v2_compute = handler.__dict__["handle"], compute.__wrapped__
        # Tear it by hand, as an interrupted switch of an older release could.
        del handler.helper
        handler.handle = lambda self: "torn"
        retarget(compute, lambda: "torn")
        assert reloader.rollback(module.__name__, to=2).number == 2
        assert handler.__dict__["handle"] is v2_handle
        assert compute.__wrapped__ is v2_compute
        assert handler().handle() == (2, 2)
        assert compute() == (2, 2)


class TestClassPlans:
    def test_a_special_method_is_deleted_by_every_flip_to_a_version_without_it(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """__len__ of v2 is gone on v1 each time v1 comes back (its plan made once)."""
        source = "class Box:\n    version = {n}\n{extra}"
        extra = "    def __len__(self):\n        return 2\n"
        module = package.module("special", source.format(n=1, extra=""))
        reloader.track(module)
        box = module.Box()
        reloader.swap(module.__name__, source.format(n=2, extra=extra))
        for number in (1, 2, 1, 2, 1):
            reloader.rollback(module.__name__, to=number)
            assert module.Box.version == number
            assert hasattr(box, "__len__") is (number == 2)

    def test_an_attribute_set_by_hand_goes_with_every_flip(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A flip leaves a class exactly its version's contents, whatever was set since."""
        source = "class Box:\n    def size(self):\n        return {n}\n"
        module = package.module("handset", source.format(n=1))
        reloader.track(module)
        reloader.swap(module.__name__, source.format(n=2))
        for number in (1, 2, 1):
            module.Box.added = number
            reloader.rollback(module.__name__, to=number)
            assert not hasattr(module.Box, "added")
            assert module.Box().size() == number


def handled_across_rollback(
    reloader: HotReloader, module: types.ModuleType, handler: Any
) -> object:
    """What ``handler.handle()`` returns, started before a rollback to version 1, ended after."""
    result: list[object] = []
    # handle is looked up in the thread: bound beforehand, the method would be
    # a stale reference to the version rolled back from.
    thread = threading.Thread(target=lambda: result.append(handler.handle()))
    thread.start()
    assert module.entered.wait(5)
    reloader.rollback(module.__name__, to=1)
    module.release.set()
    thread.join(5)
    [value] = result
    return value


class TestCallsInFlight:
    def test_a_running_method_finds_the_method_its_version_added(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A call of v2 running when v1 returns gets v2's helper(); other callers don't."""
        extra = "\n"
        module = package.module("inflight", WAITING.format(n=1, extra=extra, call="TAG"))
        reloader.track(module)
        v2 = WAITING.format(
            n=2, extra=extra, call="(TAG, self.helper())\n    def helper(self):\n        return TAG"
        )
        reloader.swap(module.__name__, v2)
        handler = module.Handler()
        assert handled_across_rollback(reloader, module, handler) == (2, 2)
        with pytest.raises(AttributeError, match="helper"):
            handler.helper()  # removed in the current version
        assert handler.handle() == 1

    def test_a_version_flipped_to_before_the_method_existed_still_finds_it_for_calls(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """v1 is planned before v3 adds helper(): back on v1, a running v3 call still finds it."""
        extra = "\n"
        module = package.module("inflightlate", WAITING.format(n=1, extra=extra, call="TAG"))
        reloader.track(module)
        reloader.swap(module.__name__, WAITING.format(n=2, extra=extra, call="TAG"))
        reloader.rollback(module.__name__, to=1)  # plans v1 while no version has helper()
        v3 = WAITING.format(
            n=3, extra=extra, call="(TAG, self.helper())\n    def helper(self):\n        return TAG"
        )
        reloader.swap(module.__name__, v3)
        handler = module.Handler()
        assert handled_across_rollback(reloader, module, handler) == (3, 3)
        with pytest.raises(AttributeError, match="helper"):
            handler.helper()

    def test_a_running_function_finds_the_function_its_version_added(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A call of v2 running when v1 returns gets v2's extra(); other callers don't."""
        extra = "\ndef extra():\n    return TAG\n"
        module = package.module("inflightf", WAITING.format(n=1, extra="", call="TAG"))
        reloader.track(module)
        reloader.swap(module.__name__, WAITING.format(n=2, extra=extra, call="(TAG, extra())"))
        removed = module.extra
        assert handled_across_rollback(reloader, module, module.Handler()) == (2, 2)
        with pytest.raises(FunctionRemovedError):
            removed()

    def test_a_removed_function_called_from_c_with_no_python_caller_says_so(
        self, tmp_path: Path
    ) -> None:
        """An atexit callback (no Python frame above it) gets FunctionRemovedError, not a crash."""
        (tmp_path / "leaving.py").write_text("def goodbye():\n    print('bye')\n")
        script = (
            "import atexit, sys\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "import leaving\n"
            "from illunare import HotReloader\n"
            "reloader = HotReloader()\n"
            "reloader.track(leaving)\n"
            "atexit.register(leaving.goodbye)\n"
            "reloader.swap('leaving', 'VALUE = 1\\n')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "FunctionRemovedError: leaving.goodbye does not exist" in done.stderr

    def test_a_running_method_finds_its_versions_overrides_through_super(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """In flight, super().helper() reaches v2's base method, never the override again."""
        v1 = (
            "class Base:\n    pass\n\n"
            "class Handler(Base):\n    def handle(self, hold):\n        return 1\n"
        )
        v2 = (
            "class Base:\n    def helper(self):\n        return 'base'\n\n"
            "class Handler(Base):\n"
            "    def helper(self):\n        return 'handler+' + super().helper()\n"
            "    def handle(self, hold):\n        hold()\n        return self.helper()\n"
        )
        module = package.module("supers", v1)
        reloader.track(module)
        reloader.swap(module.__name__, v2)
        result = module.Handler().handle(lambda: reloader.rollback(module.__name__, to=1))
        assert result == "handler+base"
        assert module.Handler().handle(lambda: None) == 1
        assert not hasattr(module.Base(), "helper")

    def test_a_removed_method_is_absent_for_everyone_else(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Outside a call in flight, a name the current version lacks is absent, as usual."""
        module = package.module("absent", V1)
        reloader.track(module)
        reloader.swap(module.__name__, V2)
        handler = module.Handler()
        reloader.rollback(module.__name__, to=1)
        assert not hasattr(handler, "helper")
        assert not hasattr(module.Handler, "helper")
        with pytest.raises(AttributeError, match=r"^'Handler' object has no attribute 'helper'$"):
            handler.helper
        # No __getattr__: it would slow every attribute lookup of the class.
        assert "__getattr__" not in vars(module.Handler)

    def test_a_removed_override_uncovers_the_inherited_method(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """When the current version no longer overrides a base class method, the base's is used."""
        package.write("base", "class Base:\n    def helper(self):\n        return 'base'\n")
        module = package.module(
            "child", f"from .base import Base\n{V1}".replace("Handler:", "Handler(Base):")
        )
        reloader.track(module)
        reloader.swap(
            module.__name__, f"from .base import Base\n{V2}".replace("Handler:", "Handler(Base):")
        )
        assert module.Handler().helper() == 2
        reloader.rollback(module.__name__, to=1)
        assert module.Handler().helper() == "base"

    def test_a_class_with_its_own_getattr_keeps_it(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A version's own __getattr__ is never replaced by the fallback."""
        own = V1 + "\n    def __getattr__(self, name):\n        return 'own ' + name\n"
        module = package.module("owngetattr", own)
        reloader.track(module)
        reloader.swap(module.__name__, V2)
        reloader.rollback(module.__name__, to=1)
        assert module.Handler().helper == "own helper"


class TestClassContentsProperty:
    @given(versions=CLASS_VERSIONS, path=st.lists(st.integers(0, 3), max_size=10))
    @settings(max_examples=40, deadline=None)
    def test_after_any_flips_a_class_has_exactly_its_current_methods(
        self, versions: list[frozenset[str]], path: list[int]
    ) -> None:
        """Any versions, any rollbacks: an old instance has the current version's methods only."""
        module = types.ModuleType(f"illunare_property_{next(_modules)}")
        exec(class_source(1, versions[0]), module.__dict__)
        reloader = HotReloader()
        reloader.track(module)
        thing = module.Thing()
        for number, methods in enumerate(versions[1:], start=2):
            reloader.swap(module.__name__, class_source(number, methods))
        for index in [len(versions) - 1, *(step % len(versions) for step in path)]:
            reloader.rollback(module.__name__, to=index + 1)
            present = {name for name in METHOD_NAMES if hasattr(thing, name)}
            assert present == versions[index]
            assert {getattr(thing, name)() for name in present} == {
                (index + 1, name) for name in present
            }
            assert module.Thing.KIND == module.VERSION == index + 1


class TestRealModulesOnly:
    @pytest.mark.parametrize(
        "fake",
        [
            "unittest.mock.MagicMock(spec=types.ModuleType)",
            "wrapt.ObjectProxy(types.ModuleType('fake'))",
            "type('Liar', (), {'__class__': types.ModuleType, '__name__': 'fake'})()",
        ],
    )
    def test_an_object_posing_as_a_module_is_refused(self, fake: str) -> None:
        """Mocks, proxies and spoofed __class__ pass isinstance, but are never written into."""
        output = run_script(
            f"""
            import sys, types, unittest.mock, wrapt
            from illunare import HotReloader, InvalidArgumentError
            from illunare._reload.namespace import install_namespace

            fake = {fake}
            assert isinstance(fake, types.ModuleType)
            sys.modules["fake"] = fake
            reloader = HotReloader()
            for attempt in (lambda: reloader.track(fake), lambda: reloader.track("fake"),
                            lambda: install_namespace(fake, {{}})):
                try:
                    attempt()
                except InvalidArgumentError as error:
                    print("refused")
            reloader.install("fake")
            print(reloader.modules())
            """
        )
        assert output.split() == ["refused", "refused", "refused", "()"]

    def test_concurrent_namespace_switches_keep_reference_counts_exact(self) -> None:
        """Threads switching one module's namespace at once never corrupt it."""
        output = run_script(
            """
            import sys, threading, types
            from illunare import HotReloader
            from illunare._reload.namespace import install_namespace

            HotReloader()
            sys.setswitchinterval(1e-6)
            module = types.ModuleType("contended")
            namespaces = [{"n": n} for n in range(4)]
            before = [sys.getrefcount(namespace) for namespace in namespaces]

            def switcher(n):
                for _ in range(20_000):
                    install_namespace(module, namespaces[n])

            threads = [threading.Thread(target=switcher, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            live = [namespace for namespace in namespaces if module.__dict__ is namespace]
            after = [sys.getrefcount(namespace) for namespace in namespaces]
            print(len(live), [a - b for a, b in zip(after, before)].count(0))
            """
        )
        assert output.split() == ["1", "3"]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_child_forked_while_a_switch_runs_can_switch(self) -> None:
        """A fork waits for a switch in progress, so the child never inherits the lock held."""
        output = run_script(
            """
            import os, signal, threading, types
            from illunare import HotReloader
            from illunare._reload.locking import LOCK
            from illunare._reload.namespace import install_namespace

            HotReloader()
            held = threading.Event()

            def switch_in_progress():
                with LOCK:
                    held.set()
                    threading.Event().wait(0.3)

            thread = threading.Thread(target=switch_in_progress)
            thread.start()
            held.wait(10)
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a child stuck on the lock dies instead of lingering
                module, namespace = types.ModuleType("child"), {"x": 1}
                install_namespace(module, namespace)
                os._exit(0 if module.x == 1 else 1)
            thread.join()
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
            """,
            timeout=60,
        )
        assert output.split() == ["0"]

    def test_a_namespace_must_be_a_dict(self) -> None:
        """install_namespace refuses anything but a plain dict, before touching the module."""
        module = types.ModuleType("target")
        with pytest.raises(InvalidArgumentError):
            install_namespace(module, types.MappingProxyType({}))  # type: ignore[arg-type]


class TestMetaclassHooks:
    def test_a_class_defining_a_name_of_a_metaclass_data_descriptor_gets_new_classes(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Setting that attribute would run the descriptor's code: the class is never rewritten."""
        source = """
        class Meta(type):
            @property
            def label(cls):
                return "meta"

        class Model(metaclass=Meta):
            label = "own"

            def value(self):
                return {n}
        """
        module = package.module("metaprop", source.format(n=1))
        reloader.track(module)
        first = module.Model
        reloader.swap(module.__name__, textwrap.dedent(source.format(n=2)))
        assert module.Model is not first
        assert module.Model().value() == 2
        assert first().value() == 1

    def test_a_metaclass_data_descriptor_the_class_does_not_shadow_is_no_obstacle(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """No attribute the switch sets goes through it: the class keeps its identity."""
        source = """
        class Meta(type):
            @property
            def label(cls):
                return "meta"

        class Model(metaclass=Meta):
            def value(self):
                return {n}
        """
        module = package.module("metaprop2", source.format(n=1))
        reloader.track(module)
        first = module.Model
        reloader.swap(module.__name__, textwrap.dedent(source.format(n=2)))
        assert module.Model is first
        assert first().value() == 2
        assert first.label == "meta"

    def test_a_metaclass_setattr_hook_other_than_enums_keeps_one_class_per_version(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Its hook may keep a state of its own, which bypassing it would leave behind."""
        source = """
        class Meta(type):
            def __setattr__(cls, name, value):
                super().__setattr__(name, value)

        class Model(metaclass=Meta):
            def value(self):
                return {n}
        """
        module = package.module("metahook", source.format(n=1))
        reloader.track(module)
        first = module.Model
        reloader.swap(module.__name__, textwrap.dedent(source.format(n=2)))
        assert module.Model is not first
        assert module.Model().value() == 2


class TestWraptContract:
    """What proxy.py relies on in wrapt; a wrapt release that changes it fails here."""

    def test_the_c_implementation_is_in_use(self) -> None:
        """HotFunction's proxy base classes come from wrapt's C extension."""
        bases = [cls for cls in HotFunction.__mro__ if cls.__name__ == "ObjectProxy"]
        assert [cls.__module__ for cls in bases] == ["_wrappers"]

    def test_the_major_version_is_the_pinned_one(self) -> None:
        """pyproject pins wrapt>=2.0,<3."""
        assert wrapt.__version__.split(".")[0] == "2"

    def test_the_c_wrapped_setter_retargets(self) -> None:
        """retarget is the C getset descriptor's __set__, and it changes what the proxy calls."""
        descriptor = next(
            cls.__dict__["__wrapped__"]
            for cls in HotFunction.__mro__
            if "__wrapped__" in cls.__dict__
        )
        assert type(descriptor).__name__ == "getset_descriptor"
        proxy = HotFunction(lambda: 1, "m", "f")
        retarget(proxy, lambda: 2)
        assert proxy() == 2

    def test_the_setter_calls_the_fixups_hook_after_every_assignment(self) -> None:
        """__wrapped_setattr_fixups__ is looked up and called once per assignment."""
        calls: list[object] = []

        class Counting(HotFunction):
            __slots__ = ()
            __wrapped_setattr_fixups__ = staticmethod(lambda: calls.append(1))

        proxy = Counting(len, "m", "f")
        for target in (abs, len, abs):
            retarget(proxy, target)
        assert len(calls) == 3
        assert HotFunction.__wrapped_setattr_fixups__ is tuple

    def test_slots_work_on_callable_proxy_subclasses(self) -> None:
        """HotFunction's own fields are slots of the C proxy subclass."""
        proxy = HotFunction(len, "mod", "name")
        assert type(HotFunction.__dict__["_self_module"]).__name__ == "member_descriptor"
        assert (proxy._self_module, proxy._self_qualname) == ("mod", "name")
        assert proxy([1, 2]) == 2


class TestMainModule:
    def test_a_script_swapping_its_own_functions_exits_cleanly(self, tmp_path: Path) -> None:
        """@hot in a script tracks __main__; after its first namespace is evicted, exit is clean."""
        script = tmp_path / "script.py"
        script.write_text(
            textwrap.dedent(
                """
                import illunare

                BODY = "import illunare\\n\\n@illunare.hot\\ndef f():\\n    return {n}\\n"
                exec(BODY.format(n=1))
                reloader = illunare.default_reloader()
                for n in range(2, 30):
                    reloader.swap("__main__", BODY.format(n=n))
                print(f(), len(reloader.history("__main__")))
                """
            )
        )
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["29", "10"]
