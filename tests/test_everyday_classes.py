"""Everyday classes across swaps: Enum, class data, Pydantic, attrs, dataclasses, ORM, async."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import pickle
import threading
import types
import warnings
from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from illunare import HotReloader, ValidationError

from .conftest import Package, dedent
from .strategies import ENUM_MEMBERS, enum_source

_modules = itertools.count()

# Enum ---------------------------------------------------------------------------------

ENUM = """
import enum

class Status(enum.Enum):
    PAID = 1
    NEW = 2
    OLD = 1

    def label(self):
        return "{label} " + self.name

PRICES = {{Status.PAID: 10, Status.NEW: 20}}
ORDER = [Status.NEW, Status.PAID]
DEFAULT = Status.NEW

def price(status, fallback=Status.PAID):
    return PRICES[status], fallback

class Order:
    status = Status.PAID
"""


def enum_module(package: Package, reloader: HotReloader, label: str = "v1") -> types.ModuleType:
    module = package.module("statuses", ENUM.format(label=label))
    reloader.track(module)
    return module


class TestEnumIdentity:
    def test_unchanged_members_keep_the_class_and_members(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A swap that changes only a method keeps the class object and every member."""
        module = enum_module(package, reloader)
        status, paid = module.Status, module.Status.PAID
        reloader.swap(module.__name__, ENUM.format(label="v2"))
        assert module.Status is status
        assert module.Status.PAID is paid
        assert status(1) is paid
        assert status["NEW"] is module.DEFAULT
        assert status.OLD is paid
        assert list(status) == [paid, status.NEW]

    def test_methods_follow_the_new_version_and_rollback_restores_them(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Members made before the swap run the current version's methods."""
        module = enum_module(package, reloader)
        paid = module.Status.PAID
        reloader.swap(module.__name__, ENUM.format(label="v2"))
        assert paid.label() == "v2 PAID"
        reloader.rollback(module.__name__)
        assert paid.label() == "v1 PAID"

    def test_the_new_code_uses_the_stable_members_in_its_data(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Dicts, lists, defaults and class attributes of the new code hold the stable members."""
        module = enum_module(package, reloader)
        paid, new = module.Status.PAID, module.Status.NEW
        reloader.swap(module.__name__, ENUM.format(label="v2"))
        assert module.price(paid) == (10, paid)
        assert module.ORDER[0] is new
        assert module.ORDER[1] is paid
        assert module.DEFAULT is new
        assert module.Order.status is paid

    def test_a_registry_of_another_module_gets_the_stable_member(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A member the new code puts into a live container is the stable one."""
        package.write("registry", "HANDLERS = {'first': None}\nORDER = []\n")
        registering = (
            "\nfrom .registry import HANDLERS, ORDER\n"
            "HANDLERS['status'] = Status.NEW\n"
            "ORDER.append(Status.PAID)\n"
        )
        module = package.module("registering", ENUM.format(label="v1") + registering)
        reloader.track(module)
        registry = importlib.import_module(package.qualified("registry"))
        handlers = registry.HANDLERS
        reloader.swap(module.__name__, ENUM.format(label="v2") + registering)
        assert registry.HANDLERS is handlers
        assert list(handlers) == ["first", "status"]
        assert handlers["status"] is module.Status.NEW
        # How many entries stay depends on whether an instance the code
        # registers counts as its registration (a function or class always
        # does); whichever, each is the member the program holds.
        assert registry.ORDER
        assert all(member is module.Status.PAID for member in registry.ORDER)
        reloader.swap(module.__name__, ENUM.format(label="v3") + registering)
        assert all(member is module.Status.PAID for member in registry.ORDER)

    def test_members_pickle_across_the_swap(self, package: Package, reloader: HotReloader) -> None:
        """A member pickled before the swap loads as the same member after it."""
        module = enum_module(package, reloader)
        data = pickle.dumps(module.Status.PAID)
        reloader.swap(module.__name__, ENUM.format(label="v2"))
        assert pickle.loads(data) is module.Status.PAID  # our own data

    @pytest.mark.parametrize(
        "change",
        [
            ("    NEW = 2\n", "    NEW = 2\n    LATE = 3\n"),  # a member added
            ("    NEW = 2\n", "    NEW = 3\n"),  # a value changed
            ("    PAID = 1\n    NEW = 2\n", "    NEW = 2\n    PAID = 1\n"),  # the order
            ("    OLD = 1\n", ""),  # an alias removed
            ("    NEW = 2\n", "    NEW = '2'\n"),  # a value's type
        ],
    )
    def test_changed_members_make_a_new_class(
        self, package: Package, reloader: HotReloader, change: tuple[str, str]
    ) -> None:
        """The new version's own class takes over; the old class and members stay intact."""
        module = enum_module(package, reloader)
        status, paid = module.Status, module.Status.PAID
        reloader.swap(module.__name__, ENUM.format(label="v2").replace(*change))
        assert module.Status is not status
        assert module.Status.PAID is not paid
        assert paid.label() == "v1 PAID"
        assert module.price(module.Status.PAID)[0] == 10
        reloader.rollback(module.__name__)
        assert module.Status is status

    @pytest.mark.parametrize(
        "base", ["enum.Flag", "enum.IntFlag", "enum.IntEnum", "str, enum.Enum"]
    )
    def test_every_kind_of_enum_keeps_its_identity(
        self, package: Package, reloader: HotReloader, base: str
    ) -> None:
        """Flags, int and str mixins: unchanged members, one class."""
        value = "'a'" if base.startswith("str") else "1"
        source = dedent(f"""
        import enum

        class Kind({base}):
            A = {value}

            def tag(self):
                return {{n}}
        """)
        module = package.module("kinds", source.format(n=1))
        reloader.track(module)
        kind, member = module.Kind, module.Kind.A
        reloader.swap(module.__name__, source.format(n=2))
        assert module.Kind is kind
        assert module.Kind.A is member
        assert member.tag() == 2
        assert kind(member.value) is member

    def test_a_method_added_and_removed(self, package: Package, reloader: HotReloader) -> None:
        """Other attributes follow the current version like those of any class."""
        module = enum_module(package, reloader)
        paid = module.Status.PAID
        extra = ENUM.format(label="v2").replace(
            "PRICES", "def extra(self):\n        return 'extra'\n\nPRICES", 1
        )
        extra = extra.replace("\ndef extra", "    def extra", 1)
        reloader.swap(module.__name__, extra)
        assert paid.extra() == "extra"
        reloader.rollback(module.__name__)
        assert not hasattr(paid, "extra")

    def test_threads_using_members_while_swaps_flip(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Lookups, methods and identity hold in other threads during swaps and rollbacks."""
        module = enum_module(package, reloader)
        status, paid = module.Status, module.Status.PAID
        stop = threading.Event()
        errors: list[BaseException] = []

        def use() -> None:
            try:
                while not stop.is_set():
                    assert status(1) is paid
                    assert module.Status is status
                    assert paid.label() in {"v1 PAID", "v2 PAID"}
                    assert module.price(paid)[0] == 10
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=use) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(30):
                reloader.swap(module.__name__, ENUM.format(label="v2"))
                reloader.rollback(module.__name__)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert errors == []

    @given(first=ENUM_MEMBERS, second=ENUM_MEMBERS, shift=st.integers(0, 1))
    @settings(max_examples=30, deadline=None)
    def test_identity_is_kept_iff_the_members_are_unchanged(
        self, first: list[str], second: list[str], shift: int
    ) -> None:
        """Random member sets: the class survives exactly when names, order and values match."""
        module = types.ModuleType(f"illunare_enum_property_{next(_modules)}")
        exec(enum_source(first, 0), module.__dict__)  # the test's own code
        reloader = HotReloader()
        reloader.track(module)
        original = module.E
        reloader.swap(module.__name__, enum_source(second, shift))
        assert (module.E is original) is (first == second and shift == 0)
        assert [member.name for member in module.E] == second


# Class data ---------------------------------------------------------------------------

DATA = """
LIMIT = {limit}

class Counter:
    count = 0
    _cache = {{}}
    instance = None
    limit = LIMIT
    label = "{label}"

    def hit(self):
        type(self).count += 1
        return "{version}", type(self).count
"""


class TestClassData:
    def test_data_attributes_defined_alike_keep_their_live_values(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A counter, a cache and a singleton survive a swap that changes only a method."""
        module = package.module("counter", DATA.format(limit=5, label="a", version="v1"))
        reloader.track(module)
        counter = module.Counter()
        counter.hit()
        counter.hit()
        cache = module.Counter._cache
        cache["key"] = 1
        module.Counter.instance = counter
        reloader.swap(module.__name__, DATA.format(limit=5, label="a", version="v2"))
        assert counter.hit() == ("v2", 3)
        assert module.Counter._cache is cache
        assert module.Counter.instance is counter

    def test_rollback_keeps_the_live_values_too(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Data is not code: going back a version does not reset it."""
        module = package.module("counter2", DATA.format(limit=5, label="a", version="v1"))
        reloader.track(module)
        counter = module.Counter()
        reloader.swap(module.__name__, DATA.format(limit=5, label="a", version="v2"))
        counter.hit()
        reloader.rollback(module.__name__)
        assert counter.hit() == ("v1", 2)

    def test_a_changed_definition_takes_the_new_value(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A changed expression, or a changed module constant it reads, gives the new value."""
        module = package.module("counter3", DATA.format(limit=5, label="a", version="v1"))
        reloader.track(module)
        module.Counter().hit()
        reloader.swap(module.__name__, DATA.format(limit=6, label="b", version="v2"))
        assert module.Counter.label == "b"
        assert module.Counter.limit == 6
        assert module.Counter.count == 1
        reloader.rollback(module.__name__)
        assert (module.Counter.label, module.Counter.limit) == ("a", 5)

    def test_the_live_value_is_read_at_the_switch(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A change made while the new version prepares (here by a check) is kept."""
        module = package.module("counter4", DATA.format(limit=5, label="a", version="v1"))
        reloader.track(module)
        stable = module.Counter

        def bump(candidate: types.ModuleType) -> None:
            stable.count = 41

        reloader.swap(module.__name__, DATA.format(limit=5, label="a", version="v2"), checks=[bump])
        assert module.Counter().hit() == ("v2", 42)

    def test_an_attribute_becoming_a_method_follows_the_code(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Only data stays live: a name that now holds a function is the new version's."""
        module = package.module("counter5", DATA.format(limit=5, label="a", version="v1"))
        reloader.track(module)
        source = DATA.format(limit=5, label="a", version="v2").replace(
            "    instance = None\n", "    def instance(self):\n        return 'method'\n"
        )
        reloader.swap(module.__name__, source)
        assert module.Counter().instance() == "method"


# Pydantic -----------------------------------------------------------------------------

MODELS = """
from pydantic import BaseModel, field_validator

class Item(BaseModel):
    name: str
{item_fields}
class Order(BaseModel):
    id: int
    items: list[Item] = []

    @field_validator("id")
    @classmethod
    def checked(cls, value):
        if value {rule}:
            raise ValueError("bad id")
        return value

    def total(self):
        return {total}
"""
V1_MODELS = MODELS.format(item_fields="", rule="< 0", total="len(self.items)")
V2_MODELS = MODELS.format(
    item_fields="    qty: int = 1\n", rule="> 100", total="sum(i.qty for i in self.items)"
)


@pytest.fixture
def models(package: Package, reloader: HotReloader) -> types.ModuleType:
    """Two pydantic models, one nested in the other, tracked at version 1."""
    pytest.importorskip("pydantic")
    module = package.module("models", V1_MODELS)
    reloader.track(module)
    return module


class TestPydantic:
    def test_validation_returns_instances_of_the_stable_classes(
        self, models: types.ModuleType, reloader: HotReloader
    ) -> None:
        """After a field is added, model_validate makes stable instances, nested ones too."""
        order_class, item_class = models.Order, models.Item
        reloader.swap(models.__name__, V2_MODELS)
        order = order_class.model_validate({"id": 1, "items": [{"name": "a", "qty": 3}]})
        assert models.Order is order_class
        assert type(order) is order_class
        assert type(order.items[0]) is item_class
        assert order.total() == 3
        assert pickle.loads(pickle.dumps(order)) == order  # our own data

    def test_fields_schema_validators_and_serialization_are_the_new_ones(
        self, models: types.ModuleType, reloader: HotReloader
    ) -> None:
        """model_fields, the JSON schema, a field validator and model_dump all change."""
        reloader.swap(models.__name__, V2_MODELS)
        assert list(models.Item.model_fields) == ["name", "qty"]
        assert "qty" in models.Item.model_json_schema()["properties"]
        assert models.Item(name="a").model_dump() == {"name": "a", "qty": 1}
        assert models.Order(id=-1).id == -1
        with pytest.raises(ValueError, match="bad id"):
            models.Order(id=101)

    def test_rollback_restores_the_old_model(
        self, models: types.ModuleType, reloader: HotReloader
    ) -> None:
        """The old fields and validator are back, and instances are still stable."""
        item_class = models.Item
        reloader.swap(models.__name__, V2_MODELS)
        reloader.rollback(models.__name__)
        order = models.Order.model_validate({"id": 1, "items": [{"name": "a", "qty": 3}]})
        assert list(item_class.model_fields) == ["name"]
        assert type(order.items[0]) is item_class
        assert order.items[0].model_dump() == {"name": "a"}
        with pytest.raises(ValueError, match="bad id"):
            models.Order(id=-1)

    def test_a_captured_new_class_makes_stable_instances(
        self, models: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A framework that kept the class it saw while the version prepared validates alike."""
        captured: list[type] = []
        item_class = models.Item
        reloader.swap(
            models.__name__, V2_MODELS, checks=[lambda candidate: captured.append(candidate.Item)]
        )
        assert captured[0] is not item_class
        item = captured[0].model_validate({"name": "a", "qty": 2})  # type: ignore[attr-defined]
        assert type(item) is item_class

    def test_models_referring_to_each_other(self, package: Package, reloader: HotReloader) -> None:
        """Forward references between two models of one module resolve to the stable classes."""
        pytest.importorskip("pydantic")
        source = """
        from __future__ import annotations
        from pydantic import BaseModel

        class Node(BaseModel):
            child: Leaf | None = None

        class Leaf(BaseModel):
            parent: Node | None = None
            depth: int = {depth}

        Node.model_rebuild()
        """
        module = package.module("graph", source.format(depth=0))
        reloader.track(module)
        node_class, leaf_class = module.Node, module.Leaf
        reloader.swap(module.__name__, dedent(source.format(depth=5)))
        node = node_class.model_validate({"child": {"parent": {}}})
        assert type(node) is node_class
        assert type(node.child) is leaf_class
        assert type(node.child.parent) is node_class
        assert node.child.depth == 5

    def test_threads_validating_while_swaps_flip(
        self, models: types.ModuleType, reloader: HotReloader
    ) -> None:
        """Every instance validated during swaps and rollbacks is of the stable class."""
        order_class, item_class = models.Order, models.Item
        stop = threading.Event()
        errors: list[BaseException] = []

        def validate() -> None:
            try:
                while not stop.is_set():
                    order = order_class.model_validate({"id": 1, "items": [{"name": "a"}]})
                    assert type(order) is order_class
                    assert type(order.items[0]) is item_class
                    assert order.model_dump()["items"][0]["name"] == "a"
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=validate) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(15):
                reloader.swap(models.__name__, V2_MODELS)
                reloader.rollback(models.__name__)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert errors == []


# attrs and dataclasses ------------------------------------------------------------------

ATTRS = """
import attrs

@attrs.define
class Point:
    x: int
    y: int = 0
{extra}
    def norm(self):
        return {norm}
"""


class TestAttrsAndDataclasses:
    def test_a_slotted_attrs_class_takes_method_changes(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Identity kept, old instances run the new method."""
        module = package.module("points", ATTRS.format(extra="", norm="self.x + self.y"))
        reloader.track(module)
        point_class = module.Point
        point = point_class(1, 2)
        reloader.swap(module.__name__, ATTRS.format(extra="", norm="self.x * self.y"))
        assert module.Point is point_class
        assert point.norm() == 2
        assert attrs.asdict(module.Point(3, 4)) == {"x": 3, "y": 4}

    def test_a_field_added_to_a_slotted_class_is_refused(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Its instances' layout is fixed: the swap fails saying why, nothing changes."""
        module = package.module("points2", ATTRS.format(extra="", norm="self.x"))
        reloader.track(module)
        with pytest.raises(ValidationError, match=r"Point changed its __slots__.*slotted"):
            reloader.swap(module.__name__, ATTRS.format(extra="    z: int = 0\n", norm="self.z"))
        assert module.Point(1).norm() == 1

    def test_a_field_added_to_a_dict_attrs_class_follows_in_init(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Without slots, attrs' generated __init__, repr and eq are the new version's."""
        source = ATTRS.replace("@attrs.define", "@attrs.define(slots=False)")
        module = package.module("points3", source.format(extra="", norm="self.x"))
        reloader.track(module)
        point_class = module.Point
        reloader.swap(module.__name__, source.format(extra="    z: int = 7\n", norm="self.z"))
        point = point_class(1)
        assert type(point) is point_class
        assert point.norm() == 7
        assert attrs.asdict(point) == {"x": 1, "y": 0, "z": 7}

    def test_a_dataclass_field_added_follows_in_init(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A plain dataclass gains a field: the generated __init__ is the new one."""
        source = """
        import dataclasses

        @dataclasses.dataclass
        class Row:
            a: int
        {extra}
            def total(self):
                return {total}
        """
        module = package.module("rows", source.format(extra="", total="self.a"))
        reloader.track(module)
        row_class = module.Row
        reloader.swap(
            module.__name__, dedent(source.format(extra="    b: int = 5", total="self.a + self.b"))
        )
        row = row_class(1)
        assert type(row) is row_class
        assert row.total() == 6
        assert dataclasses.asdict(row) == {"a": 1, "b": 5}

    def test_a_frozen_dataclass_stays_frozen(self, package: Package, reloader: HotReloader) -> None:
        """Methods change; assignment is still refused."""
        source = """
        import dataclasses

        @dataclasses.dataclass(frozen=True)
        class Money:
            cents: int

            def show(self):
                return "{fmt}".format(self.cents)
        """
        module = package.module("money", source.format(fmt="{}c"))
        reloader.track(module)
        money = module.Money(5)
        reloader.swap(module.__name__, dedent(source.format(fmt="${}")))
        assert money.show() == "$5"
        with pytest.raises(dataclasses.FrozenInstanceError):
            money.cents = 6  # type: ignore[misc]

    def test_a_field_added_to_a_slotted_dataclass_is_refused(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """dataclass(slots=True) has the same fixed layout as attrs.define."""
        source = """
        import dataclasses

        @dataclasses.dataclass(slots=True)
        class Cell:
            a: int
        {extra}
        """
        module = package.module("cells", source.format(extra=""))
        reloader.track(module)
        with pytest.raises(ValidationError, match="__slots__"):
            reloader.swap(module.__name__, dedent(source.format(extra="    b: int = 0")))

    @pytest.mark.parametrize(
        ("definition", "extra"),
        [
            ("class Point(typing.NamedTuple):\n    x: int\n{extra}", "    y: int = 0"),
            ("Point = collections.namedtuple('Point', ['x'{extra}])", ", 'y'"),
        ],
        ids=["NamedTuple", "namedtuple"],
    )
    def test_a_field_added_to_a_named_tuple_is_refused(
        self, package: Package, reloader: HotReloader, definition: str, extra: str
    ) -> None:
        """Old instances are tuples of the old fields: refused, they keep working."""
        source = (
            "import collections\nimport typing\n\n"
            + definition
            + "\n\ndef tag():\n    return {n}\n"
        )
        module = package.module("points", source.format(extra="", n=1))
        reloader.track(module)
        point = module.Point(1)
        with pytest.raises(ValidationError, match=r"Point changed its fields"):
            reloader.swap(module.__name__, source.format(extra=extra, n=2))
        assert module.tag() == 1
        assert point == module.Point(1)
        assert repr(point) == "Point(x=1)"

    def test_a_named_tuple_takes_method_changes(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """Same fields, new methods: old instances use them."""
        source = (
            "import typing\n\nclass Point(typing.NamedTuple):\n    x: int\n\n"
            "    def show(self):\n        return {fmt!r} % self.x\n"
        )
        module = package.module("points2", source.format(fmt="%d"))
        reloader.track(module)
        point = module.Point(3)
        reloader.swap(module.__name__, source.format(fmt="<%d>"))
        assert point.show() == "<3>"
        assert isinstance(point, module.Point)


# ORM ----------------------------------------------------------------------------------

ORM_BASE = """
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass
"""

ORM_MODELS = """
{preserve}
from sqlalchemy.orm import Mapped, mapped_column
from .base import Base

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)

def version():
    return {n}
"""


@pytest.fixture
def orm(package: Package) -> Callable[[str], types.ModuleType]:
    """Import a models module (ORM_MODELS, with the given __hot_preserve__ line)."""
    pytest.importorskip("sqlalchemy")
    package.write("base", ORM_BASE)
    return lambda preserve: package.module("orm_models", ORM_MODELS.format(preserve=preserve, n=1))


class TestOrm:
    def test_a_mapped_class_is_refused_naming_it(
        self, orm: Callable[[str], types.ModuleType], reloader: HotReloader
    ) -> None:
        """A ValidationError names the class and why; nothing ran, the ORM saw nothing."""
        module = orm("")
        reloader.track(module)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValidationError, match=r"orm_models\.User is an ORM-mapped") as info:
                reloader.swap(module.__name__, ORM_MODELS.format(preserve="", n=2))
        assert "already defined" not in str(info.value)
        assert "__hot_preserve__" in str(info.value)
        assert module.version() == 1

    def test_a_preserved_mapped_class_is_kept_as_it_is(
        self, orm: Callable[[str], types.ModuleType], reloader: HotReloader
    ) -> None:
        """The rest of the module swaps; the live class stays, its statement does not run."""
        preserve = '__hot_preserve__ = ("User",)'
        module = orm(preserve)
        reloader.track(module)
        user = module.User
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reloader.swap(module.__name__, ORM_MODELS.format(preserve=preserve, n=2))
        assert module.version() == 2
        assert module.User is user
        reloader.rollback(module.__name__)
        assert module.User is user
        assert module.version() == 1

    @pytest.mark.parametrize(
        "preserve",
        ['__hot_preserve__ = ("User",)', '__hot_preserve__ = tuple(["User"])'],
        ids=["literal", "computed"],
    )
    def test_preserving_in_the_new_source_only_is_enough(
        self, orm: Callable[[str], types.ModuleType], reloader: HotReloader, preserve: str
    ) -> None:
        """A running version without __hot_preserve__ can still be replaced by one that has it."""
        module = orm("")
        reloader.track(module)
        user = module.User
        reloader.swap(module.__name__, ORM_MODELS.format(preserve=preserve, n=2))
        assert module.version() == 2
        assert module.User is user

    @pytest.mark.parametrize(
        ("running", "new"),
        [
            ('__hot_preserve__ = ("User",)', ""),
            ("", "__hot_preserve__ = ()"),
            ("", "__hot_preserve__ = tuple()"),
        ],
        ids=["dropped", "literal-without-it", "computed-without-it"],
    )
    def test_a_new_version_that_does_not_preserve_the_class_is_refused(
        self, orm: Callable[[str], types.ModuleType], reloader: HotReloader, running: str, new: str
    ) -> None:
        """Refused, before or after its code runs (a computed list): nothing of it stays."""
        module = orm(running)
        reloader.track(module)
        with pytest.raises(ValidationError, match="User is an ORM-mapped"):
            reloader.swap(module.__name__, ORM_MODELS.format(preserve=new, n=2))
        assert module.version() == 1


# Function kinds -----------------------------------------------------------------------

KINDS = """
def handler():
    return 1

class Service:
    def items(self):
        return [1]

    @staticmethod
    def build():
        return 1

    @classmethod
    def create(cls):
        return 1
"""


class TestFunctionKinds:
    @pytest.mark.parametrize(
        ("old", "new", "name", "words"),
        [
            ("def handler():", "async def handler():", "handler", "coroutine"),
            ("        return [1]", "        yield 1", "Service.items", "generator"),
            ("    def build():", "    async def build():", "Service.build", "coroutine"),
            ("    def create(cls):", "    async def create(cls):", "Service.create", "coroutine"),
        ],
    )
    def test_a_changed_kind_is_refused_naming_the_function(
        self,
        package: Package,
        reloader: HotReloader,
        old: str,
        new: str,
        name: str,
        words: str,
    ) -> None:
        """def <-> async def, or a generator: refused, the old version keeps running."""
        module = package.module("kinds_mod", KINDS)
        reloader.track(module)
        with pytest.raises(ValidationError, match=rf"kinds_mod\.{name} changed from .*{words}"):
            reloader.swap(module.__name__, KINDS.replace(old, new))
        assert module.handler() == 1
        assert module.Service().items() == [1]
        assert module.Service.build() == module.Service.create() == 1

    def test_async_to_def_is_refused(self, package: Package, reloader: HotReloader) -> None:
        """The other direction too: an awaited endpoint must stay awaitable."""
        source = KINDS.replace("def handler():", "async def handler():")
        module = package.module("kinds_async", source)
        reloader.track(module)
        with pytest.raises(ValidationError, match="to a plain function"):
            reloader.swap(module.__name__, KINDS)

    def test_the_same_kind_swaps(self, package: Package, reloader: HotReloader) -> None:
        """Only a change of kind is refused."""
        module = package.module("kinds_same", KINDS)
        reloader.track(module)
        reloader.swap(module.__name__, KINDS.replace("return 1", "return 2"))
        assert module.handler() == 2


class TestAbstractBaseClasses:
    def test_registrations_stay_with_the_class(
        self, package: Package, reloader: HotReloader
    ) -> None:
        """A class registered as a virtual subclass before a swap still is after it."""
        source = """
        import abc

        class Shape(abc.ABC):
            def sides(self):
                return {n}
        """
        module = package.module("abcs", source.format(n=1))
        reloader.track(module)
        module.Shape.register(int)
        reloader.swap(module.__name__, dedent(source.format(n=2)))
        assert isinstance(3, module.Shape)
        assert issubclass(int, module.Shape)
