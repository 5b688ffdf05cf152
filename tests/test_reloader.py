"""HotReloader: every semantic of API section 1 on real modules imported from disk."""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.resources
import inspect
import logging
import pickle
import sys
import types
import warnings
from pathlib import Path

import pytest

import illunare
from illunare import (
    CodeVersion,
    CompileError,
    FunctionRemovedError,
    HotReloader,
    InvalidArgumentError,
    LoadError,
    RollbackError,
    UnknownModuleError,
    ValidationError,
    signals,
)

from .conftest import Package, dedent

V1 = """
VERSION = 1
ONLY_V1 = "old"

def value():
    return VERSION

def add(x, y=1):
    '''Add y to x.'''
    return x + y + VERSION * 0

class Greeter:
    prefix = "hello"

    def greet(self, name):
        return f"{self.prefix} {name} v1"

    def legacy(self):
        return "legacy"
"""

V2 = """
VERSION = 2

def value():
    return VERSION

def add(x, y=1):
    '''Add y to x, twice.'''
    return 2 * (x + y)

class Greeter:
    prefix = "hi"

    def greet(self, name):
        return f"{self.prefix} {name} v2"
"""


@pytest.fixture
def mod(package: Package, reloader: HotReloader) -> types.ModuleType:
    """A tracked module at version 1 (V1)."""
    module = package.module("mod", V1)
    reloader.track(module)
    return module


class TestTrack:
    def test_returns_the_module_object_still_in_sys_modules(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """track() returns the module itself, still in sys.modules and on its parent package."""
        module = package.module("mod", V1)
        proxy = reloader.track(package.qualified("mod"))
        assert proxy is module
        assert sys.modules[package.qualified("mod")] is proxy
        assert sys.modules[package.name].mod is proxy

    def test_version_one_is_the_code_as_loaded(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Version 1 records the digest of the file the module was loaded from."""
        import hashlib

        version = reloader.current(mod.__name__)
        assert version.number == 1
        assert version.parent is None
        assert version.sha256 == hashlib.sha256(dedent(V1).encode()).hexdigest()
        assert reloader.history(mod.__name__) == (version,)
        assert reloader.modules() == (mod.__name__,)

    def test_tracking_twice_is_idempotent(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A second track() changes nothing and returns the same module."""
        f = mod.value
        assert reloader.track(mod.__name__) is mod
        assert mod.value is f
        assert len(reloader.history(mod.__name__)) == 1

    def test_unknown_name_raises(self, reloader: HotReloader) -> None:
        """A module that cannot be imported is an UnknownModuleError (a LookupError)."""
        with pytest.raises(UnknownModuleError):
            reloader.track("illunare_no_such_module_anywhere")
        with pytest.raises(LookupError):
            reloader.current("illunare_no_such_module_anywhere")

    def test_bad_input_raises(self, reloader: HotReloader) -> None:
        """Built-in modules and non-modules are refused with InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError):
            reloader.track("sys")
        with pytest.raises(InvalidArgumentError):
            reloader.track(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            HotReloader(keep=0)
        with pytest.raises(InvalidArgumentError):
            HotReloader(keep="3")  # type: ignore[arg-type]

    def test_another_reloader_takes_the_module_over(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A second reloader tracking the module takes it over; the first forgets it."""
        reloader.swap(mod.__name__, V2)
        value = mod.value
        other = HotReloader()
        other.track(mod)
        assert mod.__name__ not in reloader.modules()
        with pytest.raises(UnknownModuleError):
            reloader.rollback(mod.__name__)
        assert other.current(mod.__name__).number == 1
        other.swap(mod.__name__, "def value():\n    return 'taken'\n")
        assert value() == "taken"
        assert other.rollback(mod.__name__).number == 1
        assert value() == 2

    def test_untracked_module_is_unknown(self, package: Package, reloader: HotReloader) -> None:
        """swap(), rollback(), current() and history() name only tracked modules."""
        module = package.module("plain", "X = 1\n")
        for call in (
            lambda: reloader.swap(module.__name__, "X = 2\n"),
            lambda: reloader.rollback(module.__name__),
            lambda: reloader.current(module.__name__),
            lambda: reloader.history(module.__name__),
        ):
            with pytest.raises(UnknownModuleError):
                call()
        assert module.X == 1

    def test_module_tracked_signal(self, package: Package, reloader: HotReloader) -> None:
        """module_tracked is sent with the module name and version 1."""
        seen = []
        module = package.module("mod", V1)
        with signals.module_tracked.connected_to(lambda sender, **kw: seen.append((sender, kw))):
            reloader.track(module)
        assert seen == [
            (reloader, {"module": module.__name__, "version": reloader.current(module.__name__)})
        ]


class TestReferences:
    def test_every_kind_of_reference_follows_swap_and_rollback(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """from-import, m.f, a stored callback and @hot all run the current version."""
        namespace: dict[str, object] = {}
        exec(f"from {mod.__name__} import value", namespace)
        from_import = namespace["value"]
        attribute = mod.value
        callbacks = [mod.value]
        decorated = reloader.hot(mod.value)

        def results() -> list[object]:
            return [from_import(), attribute(), callbacks[0](), decorated(), mod.value()]  # type: ignore[operator]

        assert results() == [1] * 5
        reloader.swap(mod.__name__, V2)
        assert results() == [2] * 5
        reloader.rollback(mod.__name__)
        assert results() == [1] * 5

    def test_module_attributes_are_the_current_versions(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """m.X gives the current value; names only the old version had are gone."""
        reloader.swap(mod.__name__, V2)
        assert mod.VERSION == 2
        assert not hasattr(mod, "ONLY_V1")
        assert "ONLY_V1" not in vars(mod)
        reloader.rollback(mod.__name__)
        assert mod.ONLY_V1 == "old"

    def test_assigning_through_the_module_reaches_the_running_code(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """m.X = v changes what the current version's functions read (monkeypatching works)."""
        reloader.swap(mod.__name__, V2)
        mod.VERSION = 20
        assert mod.value() == 20

    def test_removed_function_raises_a_typed_error(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A held reference to a function the new version lacks raises FunctionRemovedError."""
        reloader.swap(mod.__name__, V2 + "\ndef extra():\n    return 'extra'\n")
        extra = mod.extra
        assert extra() == "extra"
        reloader.rollback(mod.__name__)
        with pytest.raises(FunctionRemovedError):
            extra()
        with pytest.raises(NameError):
            extra()
        reloader.rollback(mod.__name__, to=2)
        assert extra() == "extra"

    def test_decorated_functions_and_closures_take_the_new_behaviour(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """functools.wraps decorators and module-level closures run the new version's code."""
        source = """
            import functools

            def logged(function):
                @functools.wraps(function)
                def wrapper(*args, **kwargs):
                    return ("logged", function(*args, **kwargs))
                return wrapper

            def make_handler(tag):
                def handler():
                    return tag
                return handler

            @logged
            def work():
                return {n}

            handler = make_handler("v{n}")

            @functools.lru_cache(maxsize=None)
            def cached():
                return {n}
        """
        module = package.module("deco", source.format(n=1))
        reloader.track(module)
        work, handler, cached = module.work, module.handler, module.cached
        assert (work(), handler(), cached()) == (("logged", 1), "v1", 1)
        reloader.swap(module.__name__, dedent(source.format(n=2)))
        assert (work(), handler(), cached()) == (("logged", 2), "v2", 2)

    def test_functions_defined_elsewhere_are_left_alone(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Names imported from other modules are not proxied."""
        module = package.module("imports", "from os.path import join\nimport json\n")
        reloader.track(module)
        import json
        import os.path

        assert module.join is os.path.join
        assert module.json is json


class TestClasses:
    def test_live_instances_use_the_new_methods(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """An instance made before the swap runs the new methods and class attributes."""
        greeter = mod.Greeter()
        reloader.swap(mod.__name__, V2)
        assert greeter.greet("ann") == "hi ann v2"
        reloader.rollback(mod.__name__)
        assert greeter.greet("ann") == "hello ann v1"

    def test_identity_isinstance_and_pickle_survive(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """The class object stays the same, so isinstance and pickling keep working."""
        cls = mod.Greeter
        greeter = cls()
        reloader.swap(mod.__name__, V2)
        assert mod.Greeter is cls
        assert isinstance(greeter, mod.Greeter)
        assert isinstance(mod.Greeter(), cls)
        clone = pickle.loads(pickle.dumps(greeter))
        assert type(clone) is cls
        assert clone.greet("bo") == "hi bo v2"

    def test_removed_method_is_gone_and_comes_back(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A method the new version lacks is gone from old instances; rollback restores it."""
        greeter = mod.Greeter()
        reloader.swap(mod.__name__, V2)
        assert not hasattr(greeter, "legacy")
        reloader.rollback(mod.__name__)
        assert greeter.legacy() == "legacy"

    def test_subclasses_defined_elsewhere_and_super(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """super() inside the module and subclasses in other modules see the new version."""
        source = """
            class Base:
                def who(self):
                    return "base{n}"

            class Child(Base):
                def who(self):
                    return "child{n}+" + super().who()
        """
        module = package.module("family", source.format(n=1))
        reloader.track(module)
        other = package.module(
            "other",
            f"""
            from {module.__name__} import Child

            class GrandChild(Child):
                def who(self):
                    return "grand+" + super().who()
            """,
        )
        grand = other.GrandChild()
        child = module.Child()
        reloader.swap(module.__name__, dedent(source.format(n=2)))
        assert child.who() == "child2+base2"
        assert grand.who() == "grand+child2+base2"
        assert isinstance(grand, module.Base)
        reloader.rollback(module.__name__)
        assert grand.who() == "grand+child1+base1"

    def test_descriptors_are_swapped(self, package: Package, reloader: HotReloader) -> None:
        """classmethod, staticmethod and property take the new version, with super() inside."""
        source = """
            class Base:
                @property
                def size(self):
                    return {n}

            class Thing(Base):
                @classmethod
                def make(cls):
                    return (cls.__name__, {n})

                @staticmethod
                def tag():
                    return "t{n}"

                @property
                def size(self):
                    return super().size * 10
        """
        module = package.module("desc", source.format(n=1))
        reloader.track(module)
        thing = module.Thing()
        reloader.swap(module.__name__, dedent(source.format(n=2)))
        assert (module.Thing.make(), thing.tag(), thing.size) == (("Thing", 2), "t2", 20)

    def test_instances_made_by_the_new_module_code_are_of_the_stable_class(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """DEFAULT = Cls() in the new source is an instance of the class the program holds."""
        source = "class Cls:\n    n = {n}\n\nDEFAULT = Cls()\n"
        module = package.module("inst", source.format(n=1))
        reloader.track(module)
        cls = module.Cls
        reloader.swap(module.__name__, source.format(n=2))
        assert type(module.DEFAULT) is cls
        assert module.DEFAULT.n == 2

    def test_new_subclass_inherits_from_the_stable_class(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A class added by the new version that subclasses an old one keeps isinstance working."""
        reloader.swap(mod.__name__, V2 + "\nclass Loud(Greeter):\n    pass\n")
        loud = mod.Loud()
        assert isinstance(loud, mod.Greeter)
        assert loud.greet("x") == "hi x v2"

    def test_changing_bases_is_refused(self, mod: types.ModuleType, reloader: HotReloader) -> None:
        """A class whose bases change cannot be swapped in place: ValidationError."""
        with pytest.raises(ValidationError, match="base classes"):
            reloader.swap(mod.__name__, V2.replace("class Greeter:", "class Greeter(dict):"))
        assert mod.Greeter().greet("a") == "hello a v1"


class TestHotProxy:
    def test_introspection(self, mod: types.ModuleType) -> None:
        """signature, __name__, __doc__, __wrapped__ and __module__ are the function's."""
        add = mod.add
        assert str(inspect.signature(add)) == "(x, y=1)"
        assert add.__name__ == "add"
        assert add.__doc__ == "Add y to x."
        assert inspect.isfunction(add.__wrapped__)
        assert add.__module__ == mod.__name__
        assert "hot function" in repr(add)

    def test_pickle_and_copy_by_reference(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A proxy pickles as a reference and copies to itself, like a plain function."""
        add = mod.add
        assert pickle.loads(pickle.dumps(add)) is add
        assert copy.copy(add) is add
        assert copy.deepcopy({"f": add})["f"] is add
        reloader.swap(mod.__name__, V2)
        assert pickle.loads(pickle.dumps(add))(1) == 4

    @pytest.mark.parametrize("above", [True, False], ids=["hot-above", "hot-below"])
    def test_static_and_class_methods(
        self, package: Package, reloader: HotReloader, above: bool
    ) -> None:
        """@hot above or below @staticmethod/@classmethod: held references follow, both ways."""

        def decorated(kind: str, signature: str) -> str:
            decorators = ["@hot", f"@{kind}"] if above else [f"@{kind}", "@hot"]
            return "\n".join(f"    {d}" for d in decorators) + f"\n    def {signature}:"

        source = "\n".join(
            [
                "from illunare import hot\n",
                "class Tool:",
                decorated("staticmethod", "make()"),
                "        return {n}",
                decorated("classmethod", "create(cls)"),
                "        return (cls.__name__, {n})",
            ]
        )
        module = package.module(f"tools_{above}", source.format(n=1))
        make, create = module.Tool.make, module.Tool.create
        assert (make(), create()) == (1, ("Tool", 1))
        reloader = illunare.default_reloader()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing stale: they follow
            reloader.swap(module.__name__, source.format(n=2))
            assert (make(), create()) == (2, ("Tool", 2))
            assert (module.Tool.make(), module.Tool().create()) == (2, ("Tool", 2))
            reloader.rollback(module.__name__)
        assert (make(), create()) == (1, ("Tool", 1))

    def test_binds_self_as_a_method(self, package: Package, reloader: HotReloader) -> None:
        """@hot on a method binds self, follows swaps and pickles by qualified name."""
        source = """
            from illunare import hot

            class Service:
                def __init__(self):
                    self.calls = 0

                @hot
                def handle(self, x):
                    self.calls += 1
                    return (x, {n})
        """
        module = package.module("svc", source.format(n=1))
        service = module.Service()
        handle = module.Service.handle
        assert service.handle(5) == (5, 1)
        reloader = illunare.default_reloader()
        reloader.swap(module.__name__, dedent(source.format(n=2)))
        assert service.handle(5) == (5, 2)
        assert handle(service, 6) == (6, 2)
        assert service.calls == 3
        assert module.Service.handle is handle
        assert pickle.loads(pickle.dumps(handle)) is handle

    def test_hot_during_first_import_tracks_the_module(self, package: Package) -> None:
        """@hot in a module being imported tracks it once the import finishes."""
        module = package.module(
            "early",
            """
            from illunare import hot

            @hot
            def f():
                return 1

            def g():
                return f() + 1
            """,
        )
        reloader = illunare.default_reloader()
        assert module.__name__ in reloader.modules()
        f = module.f
        reloader.swap(module.__name__, "from illunare import hot\n@hot\ndef f():\n    return 10\n")
        assert f() == 10
        assert module.f is f

    def test_hot_on_a_tracked_module_returns_the_existing_proxy(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """hot(m.f) and hot(raw f) give the one proxy the module holds."""
        assert reloader.hot(mod.value) is mod.value
        assert reloader.hot(mod.value.__wrapped__) is mod.value

    def test_hot_on_a_method_of_a_tracked_class(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """hot(Cls.method) after tracking gives a proxy that follows swaps."""
        greet = reloader.hot(mod.Greeter.greet)
        greeter = mod.Greeter()
        reloader.swap(mod.__name__, V2)
        assert greet(greeter, "z") == "hi z v2"

    def test_hot_refuses_what_it_cannot_follow(self, reloader: HotReloader) -> None:
        """Classes, non-callables and local functions are InvalidArgumentError."""

        def local() -> None:
            pass

        for bad in (int, 3, local, functools.partial(print)):
            with pytest.raises(InvalidArgumentError):
                reloader.hot(bad)


class TestSources:
    def test_text_bytes_path_and_traversable(
        self, mod: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Every accepted kind of source swaps the module."""
        name = mod.__name__
        reloader.swap(name, "def value():\n    return 'text'\n")
        assert mod.value() == "text"
        reloader.swap(
            name, "# -*- coding: latin-1 -*-\ndef value():\n    return 'b\xe9'\n".encode("latin-1")
        )
        assert mod.value() == "bé"
        path = package.path / "release_a.py"
        path.write_text("def value():\n    return 'path'\n")
        reloader.swap(name, path)
        assert mod.value() == "path"
        (package.path / "release_b.py").write_text("def value():\n    return 'traversable'\n")
        resource = importlib.resources.files(package.name) / "release_b.py"
        reloader.swap(name, resource)
        assert mod.value() == "traversable"

    def test_none_rereads_the_module_file(
        self, mod: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """source=None reads the module's own file again."""
        package.write("mod", V2)
        version = reloader.swap(mod.__name__)
        assert version.number == 2
        assert mod.value() == 2
        assert inspect.getsource(mod.value).startswith("def value")

    def test_identical_source_makes_no_new_version(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Swapping in the code already running returns the current version."""
        assert reloader.swap(mod.__name__) == reloader.current(mod.__name__)
        reloader.swap(mod.__name__, V2)
        again = reloader.swap(mod.__name__, V2)
        assert again.number == 2
        assert len(reloader.history(mod.__name__)) == 2

    def test_bad_sources(
        self, mod: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """A wrong type, a missing file or a module without file are typed errors."""
        with pytest.raises(InvalidArgumentError):
            reloader.swap(mod.__name__, 42)  # type: ignore[arg-type]
        with pytest.raises(LoadError):
            reloader.swap(mod.__name__, package.path / "missing.py")
        with pytest.raises(InvalidArgumentError):
            reloader.swap(mod.__name__, V2, checks=[1])  # type: ignore[list-item]
        with pytest.raises(InvalidArgumentError):
            reloader.swap(mod.__name__, V2, reason=5)  # type: ignore[arg-type]
        dynamic = types.ModuleType("illunare_test_dynamic")
        exec("def f():\n    return 1\n", dynamic.__dict__)
        sys.modules[dynamic.__name__] = dynamic
        try:
            reloader.track(dynamic)
            with pytest.raises(LoadError, match="no source file"):
                reloader.swap(dynamic.__name__)
            reloader.swap(dynamic.__name__, "def f():\n    return 2\n")
            assert dynamic.f() == 2
        finally:
            del sys.modules[dynamic.__name__]
        assert reloader.current(mod.__name__).number == 1

    def test_tracebacks_show_lines_of_text_sources(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Code swapped in as text still has its source lines for inspect and tracebacks."""
        reloader.swap(mod.__name__, "def value():\n    return 'from text'\n")
        assert "from text" in inspect.getsource(mod.value)


def _state(module: types.ModuleType, reloader: HotReloader) -> tuple[object, ...]:
    name = module.__name__
    return (
        reloader.history(name),
        reloader.current(name),
        module.value.__wrapped__,
        module.Greeter.greet,
        dict(vars(module)),
        dict(sys.modules),
    )


class TestFailureAtomicity:
    @pytest.mark.parametrize(
        ("source", "checks", "error"),
        [
            ("def value(:\n    pass\n", (), CompileError),
            ("import illunare_test_helper_ok\nraise RuntimeError('boom')\n", (), LoadError),
            (V2, (lambda m: m.value() == 3,), ValidationError),
            (V2, (lambda m: 1 / 0,), ValidationError),
            (
                V2 + "\ndef __hot_migrate__(old):\n    raise KeyError(old['VERSION'])\n",
                (),
                ValidationError,
            ),
            (V2 + "\n__hot_preserve__ = 'VERSION'\n", (), ValidationError),
        ],
        ids=["syntax", "import-error", "check-false", "check-raises", "migrate", "preserve"],
    )
    def test_failure_changes_nothing(
        self,
        mod: types.ModuleType,
        reloader: HotReloader,
        package: Package,
        source: str,
        checks: tuple[object, ...],
        error: type[Exception],
    ) -> None:
        """Each failing swap leaves every reference, the history and sys.modules as before."""
        (package.path.parent / "illunare_test_helper_ok.py").write_text("X = 1\n")
        greeter = mod.Greeter()
        value = mod.value
        before = _state(mod, reloader)
        failures = []
        with (
            signals.swap_failed.connected_to(lambda sender, **kw: failures.append(kw)),
            pytest.raises(error),
        ):
            reloader.swap(mod.__name__, source, checks=checks)  # type: ignore[arg-type]
        assert _state(mod, reloader) == before
        assert value() == 1
        assert greeter.greet("x") == "hello x v1"
        assert [type(f["error"]) for f in failures] == [error]
        assert failures[0]["module"] == mod.__name__

    def test_compile_error_locates_the_problem(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """CompileError carries filename, lineno and offset of the syntax error."""
        with pytest.raises(CompileError) as caught:
            reloader.swap(mod.__name__, "x = 1\ny = (\n")
        assert caught.value.lineno == 2
        assert caught.value.offset is not None
        assert caught.value.filename is not None
        assert isinstance(caught.value, ValueError)

    def test_load_error_keeps_the_original_exception(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """LoadError's __cause__ is what the new source raised."""
        with pytest.raises(LoadError) as caught:
            reloader.swap(mod.__name__, "raise KeyError('missing')\n")
        assert isinstance(caught.value.__cause__, KeyError)

    def test_version_numbers_are_not_spent_on_failures(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A failed swap creates no version; the next good one is number 2."""
        with pytest.raises(CompileError):
            reloader.swap(mod.__name__, "def (")
        assert reloader.swap(mod.__name__, V2).number == 2


class TestState:
    def test_preserved_names_keep_their_live_values(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """__hot_preserve__ names carry the live value into the new version and back."""
        source = """
            __hot_preserve__ = ("counter", "cache")
            counter = 0
            cache = {{}}

            def bump():
                global counter
                counter += {n}
                return counter
        """
        module = package.module("state", source.format(n=1))
        reloader.track(module)
        module.bump()
        module.cache["k"] = "v"
        reloader.swap(module.__name__, dedent(source.format(n=10)))
        assert module.bump() == 11
        assert module.cache == {"k": "v"}
        reloader.rollback(module.__name__)
        assert module.counter == 11
        assert module.bump() == 12

    def test_migrate_sees_the_old_namespace_read_only(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """__hot_migrate__(old) gets a read-only mapping and may return new values."""
        seen = {}
        mod.SEEN = seen
        source = V2 + dedent(
            """
            def __hot_migrate__(old):
                old["SEEN"]["version"] = old["VERSION"]
                try:
                    old["VERSION"] = 99
                except TypeError:
                    old["SEEN"]["read_only"] = True
                return {"MIGRATED_FROM": old["VERSION"]}
            """
        )
        reloader.swap(mod.__name__, source)
        assert seen == {"version": 1, "read_only": True}
        assert mod.MIGRATED_FROM == 1

    def test_checks_see_the_new_module(self, mod: types.ModuleType, reloader: HotReloader) -> None:
        """Checks are called with the new version before it goes live."""
        during = []
        reloader.swap(mod.__name__, V2, checks=[lambda m: during.append((m.value(), mod.value()))])
        assert during == [(2, 1)]


class TestRollback:
    def test_rollback_goes_to_the_parent(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Each rollback returns to the version that was current when this one was made."""
        name = mod.__name__
        reloader.swap(name, V2)
        reloader.swap(name, "def value():\n    return 3\n")
        assert reloader.rollback(name).number == 2
        assert reloader.rollback(name).number == 1
        with pytest.raises(RollbackError, match="no parent"):
            reloader.rollback(name)

    def test_rollback_to_a_number(self, mod: types.ModuleType, reloader: HotReloader) -> None:
        """rollback(to=n) jumps to any kept version; the current one is a no-op."""
        name = mod.__name__
        reloader.swap(name, V2)
        reloader.swap(name, "def value():\n    return 3\n")
        assert reloader.rollback(name, to=1).number == 1
        assert mod.value() == 1
        assert reloader.rollback(name, to=3).number == 3
        assert reloader.rollback(name, to=3).number == 3
        assert mod.value() == 3

    def test_rollback_targets_that_do_not_exist(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Unknown numbers raise RollbackError (a LookupError); bad types are refused."""
        with pytest.raises(RollbackError, match="does not exist"):
            reloader.rollback(mod.__name__, to=7)
        with pytest.raises(LookupError):
            reloader.rollback(mod.__name__, to=0)
        with pytest.raises(InvalidArgumentError):
            reloader.rollback(mod.__name__, to="1")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            reloader.rollback(mod.__name__, to=True)

    def test_swap_after_rollback_has_the_rolled_back_version_as_parent(
        self, mod: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Numbers are never reused; parents follow what was current."""
        name = mod.__name__
        reloader.swap(name, V2)
        reloader.rollback(name)
        version = reloader.swap(name, "def value():\n    return 3\n")
        assert (version.number, version.parent) == (3, 1)
        assert reloader.rollback(name).number == 1

    def test_signals(self, mod: types.ModuleType, reloader: HotReloader) -> None:
        """module_swapped and module_rolled_back carry both versions and a duration."""
        events: list[tuple[str, dict[str, object]]] = []
        with (
            signals.module_swapped.connected_to(lambda s, **kw: events.append(("swapped", kw))),
            signals.module_rolled_back.connected_to(lambda s, **kw: events.append(("back", kw))),
        ):
            v2 = reloader.swap(mod.__name__, V2, reason="fix")
            v1 = reloader.rollback(mod.__name__)
        assert [kind for kind, _ in events] == ["swapped", "back"]
        assert events[0][1]["version"] == v2
        assert events[0][1]["previous"] == v1
        assert events[1][1]["version"] == v1
        assert events[1][1]["previous"] == v2
        assert all(isinstance(kw["duration"], float) for _, kw in events)
        assert v2.reason == "fix"


class TestHistory:
    def test_keep_bounds_the_history(self, package: Package) -> None:
        """Only the keep newest versions stay, plus the current one and its parent if older."""
        reloader = HotReloader(keep=3)
        module = package.module("hist", "def value():\n    return 1\n")
        reloader.track(module)
        name = module.__name__
        for n in range(2, 7):
            reloader.swap(name, f"def value():\n    return {n}\n")
        assert [v.number for v in reloader.history(name)] == [4, 5, 6]
        reloader.rollback(name, to=4)
        for n in range(7, 10):
            reloader.swap(name, f"def value():\n    return {n}\n")
        assert [v.number for v in reloader.history(name)] == [7, 8, 9]
        reloader.rollback(name, to=7)
        reloader.swap(name, "def value():\n    return 10\n")
        assert [v.number for v in reloader.history(name)] == [7, 8, 9, 10]  # 7: 10's parent
        with pytest.raises(RollbackError, match="evicted"):
            reloader.rollback(name, to=2)

    def test_current_is_kept_even_when_old(self, package: Package) -> None:
        """After rolling back to an old version, new swaps never evict it while current."""
        reloader = HotReloader(keep=2)
        module = package.module("hist2", "def value():\n    return 1\n")
        reloader.track(module)
        name = module.__name__
        reloader.swap(name, "def value():\n    return 2\n")
        reloader.swap(name, "def value():\n    return 3\n")
        reloader.rollback(name, to=2)
        assert [v.number for v in reloader.history(name)] == [2, 3]

    def test_code_version_is_a_validated_value(self) -> None:
        """CodeVersion is frozen and validates its fields."""
        version = CodeVersion("m", 1, "a" * 64, 1.0, "")
        with pytest.raises(AttributeError):
            version.number = 2  # type: ignore[misc]
        with pytest.raises(ValueError):
            CodeVersion("m", 0, "a" * 64, 1.0, "")
        with pytest.raises(ValueError):
            CodeVersion("m", 1, "xyz", 1.0, "")


class TestRelease:
    def test_evicted_versions_are_released(self, package: Package) -> None:
        """Nothing of the library keeps an evicted version's functions or namespace alive."""
        import gc
        import weakref

        reloader = HotReloader(keep=2)
        module = package.module(
            "rel", "def value():\n    return 1\n\nclass C:\n    def m(self):\n        return 1\n"
        )
        reloader.track(module)
        name = module.__name__
        reloader.swap(
            name, "def value():\n    return 2\n\nclass C:\n    def m(self):\n        return 2\n"
        )
        function = weakref.ref(module.value.__wrapped__)
        method = weakref.ref(module.C.__dict__["m"])
        namespace_probe = module.__dict__.setdefault("PROBE", type("Probe", (), {})())
        namespace = weakref.ref(namespace_probe)
        del namespace_probe
        reloader.swap(
            name, "def value():\n    return 3\n\nclass C:\n    def m(self):\n        return 3\n"
        )
        assert function() is not None  # version 2 is still kept
        reloader.swap(
            name, "def value():\n    return 4\n\nclass C:\n    def m(self):\n        return 4\n"
        )
        gc.collect()
        assert function() is None
        assert method() is None
        assert namespace() is None
        assert module.value() == 4


class TestSpecialClasses:
    def test_enums_are_replaced_not_rewritten(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """An Enum (whose metaclass guards its members) takes the new version's class object."""
        source = (
            "import enum\n\nclass Color(enum.Enum):\n    RED = {n}\n\n"
            "def red():\n    return Color.RED\n"
        )
        module = package.module("colors", source.format(n=1))
        reloader.track(module)
        reloader.swap(module.__name__, source.format(n=2))
        assert module.red().value == 2
        assert module.red() is module.Color.RED
        reloader.rollback(module.__name__)
        assert module.Color.RED.value == 1

    def test_dataclasses_keep_identity(self, package: Package, reloader: HotReloader) -> None:
        """A dataclass keeps its identity; its generated methods come from the new version."""
        source = (
            "import dataclasses\n\n@dataclasses.dataclass\nclass Point:\n    x: int\n"
            "    def norm(self):\n        return abs(self.x) * {n}\n"
        )
        module = package.module("points", source.format(n=1))
        reloader.track(module)
        point = module.Point(-3)
        reloader.swap(module.__name__, source.format(n=2))
        assert point.norm() == 6
        assert point == module.Point(-3)


class TestReimport:
    def test_a_module_imported_again_under_the_same_name(self, tmp_path: Path) -> None:
        """@hot in a fresh module object with a tracked name tracks the new one, not the old."""
        import importlib

        source = "from illunare import hot\n\n@hot\ndef f():\n    return {n}\n"
        name = "illunare_test_reimported"
        reloader = illunare.default_reloader()
        for n, folder in enumerate((tmp_path / "a", tmp_path / "b"), 1):
            folder.mkdir()
            (folder / f"{name}.py").write_text(source.format(n=n))
            sys.path.insert(0, str(folder))
            importlib.invalidate_caches()
            try:
                module = importlib.import_module(name)
                assert module.f() == n
                assert reloader.current(name).number == 1
                reloader.swap(name, source.format(n=n * 10))
                assert module.f() == n * 10
            finally:
                sys.path.remove(str(folder))
                sys.modules.pop(name, None)


class TestFailingReceivers:
    @pytest.mark.parametrize(
        "signal", ["module_swapped", "module_rolled_back", "swap_failed", "module_tracked"]
    )
    def test_a_raising_receiver_is_logged_and_what_it_reports_stands(
        self,
        signal: str,
        package: Package,
        reloader: HotReloader,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A receiver that raises is logged; the caller gets the swap, rollback or refusal."""
        told: list[str] = []

        def broken(sender: object, **kwargs: object) -> None:
            raise RuntimeError("metrics backend down")

        def listening(sender: object, **kwargs: object) -> None:
            told.append(str(kwargs["module"]))

        with (
            caplog.at_level(logging.ERROR, logger="illunare"),
            getattr(signals, signal).connected_to(broken),
            getattr(signals, signal).connected_to(listening),
        ):
            module = package.module("told", V1)
            reloader.track(module)
            assert reloader.swap(module.__name__, V2).number == 2
            assert module.value() == 2
            with pytest.raises(CompileError):
                reloader.swap(module.__name__, "def broken(:\n")
            assert reloader.rollback(module.__name__).number == 1
            assert module.value() == 1
        assert told == [module.__name__]
        assert [record.args[0] for record in caplog.records] == [signal]  # type: ignore[index]
