"""A state machine of swaps, failed swaps, rollbacks and evictions, checked against a model."""

from __future__ import annotations

import importlib
import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from illunare import (
    CodeVersion,
    CompileError,
    HotReloader,
    LoadError,
    RollbackError,
    ValidationError,
)

from .strategies import BAD_SOURCES, module_source

_names = itertools.count()


@attrs.define
class Model:
    """What the history should be: numbers, their tokens and parents, and the current one.

    A new version evicts every version that is neither among the ``keep`` most
    recently created, nor the current one, nor the current one's parent.
    """

    keep: int
    tokens: dict[int, int] = attrs.Factory(dict)
    parents: dict[int, int | None] = attrs.Factory(dict)
    created: list[int] = attrs.Factory(list)
    kept: set[int] = attrs.Factory(set)
    current: int = 1

    def add(self, number: int, token: int, parent: int | None) -> None:
        self.tokens[number] = token
        self.parents[number] = parent
        self.created.append(number)
        self.current = number
        spared = {number, parent, *self.created[-self.keep :]}
        self.kept = (self.kept | {number}) & spared

    def parent_is_kept(self) -> bool:
        """Whether ``rollback()`` can go back from the current version."""
        return self.parents[self.current] in self.kept


class SwapMachine(RuleBasedStateMachine):
    """Drives a real module on disk through random swaps and rollbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.name = f"illunare_stateful_{next(_names)}"
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        (self.root / f"{self.name}.py").write_text(module_source(0))
        self.module = importlib.import_module(self.name)

    @initialize(keep=st.integers(min_value=1, max_value=4))
    def start(self, keep: int) -> None:
        self.reloader = HotReloader(keep=keep)
        self.reloader.track(self.module)
        self.model = Model(keep=keep)
        self.model.add(1, 0, None)
        self.value = self.module.value
        self.instance = self.module.Thing()

    def teardown(self) -> None:
        sys.path.remove(str(self.root))
        sys.modules.pop(self.name, None)
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(token=st.integers(min_value=0, max_value=6))
    def swap(self, token: int) -> None:
        self.swapped(token, self.reloader.swap(self.name, module_source(token)))

    @rule(token=st.integers(min_value=0, max_value=6))
    def reload(self, token: int) -> None:
        """importlib.reload() of the saved file is the same as a swap."""
        (self.root / f"{self.name}.py").write_text(module_source(token))
        assert importlib.reload(self.module) is self.module
        self.swapped(token, self.reloader.current(self.name))

    def swapped(self, token: int, version: CodeVersion) -> None:
        """Check what a swap to ``token`` returned and record it in the model."""
        if token == self.model.tokens[self.model.current]:
            assert version.number == self.model.current
            return
        assert version.number == max(self.model.created) + 1
        assert version.parent == self.model.current
        self.model.add(version.number, token, self.model.current)
        # Whatever came before, the version a swap replaced is never evicted by it.
        assert version.parent in [v.number for v in self.reloader.history(self.name)]

    @rule(bad=st.sampled_from(sorted(BAD_SOURCES)))
    def failed_swap(self, bad: str) -> None:
        source, checks = BAD_SOURCES[bad]
        try:
            self.reloader.swap(self.name, source, checks=checks)
        except (CompileError, LoadError, ValidationError):
            return
        raise AssertionError(f"the {bad} source was accepted")

    @rule()
    def rollback_to_parent(self) -> None:
        parent = self.model.parents[self.model.current]
        if not self.model.parent_is_kept():
            try:
                self.reloader.rollback(self.name)
            except RollbackError:
                return
            raise AssertionError("rollback without a kept parent succeeded")
        assert self.reloader.rollback(self.name).number == parent
        self.model.current = parent

    @rule(number=st.integers(min_value=-1, max_value=14))
    def rollback_to(self, number: int) -> None:
        if number not in self.model.kept:
            try:
                self.reloader.rollback(self.name, to=number)
            except RollbackError:
                return
            raise AssertionError(f"rollback to {number} succeeded")
        assert self.reloader.rollback(self.name, to=number).number == number
        self.model.current = number

    @invariant()
    def references_run_the_current_version(self) -> None:
        if not hasattr(self, "model"):
            return
        token = self.model.tokens[self.model.current]
        assert self.value() == token
        assert self.module.value() == token
        assert self.instance.token() == token
        assert token == self.module.TOKEN
        assert self.reloader.current(self.name).number == self.model.current

    @invariant()
    def history_matches_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        history = self.reloader.history(self.name)
        assert [v.number for v in history] == sorted(self.model.kept)
        assert all(v.parent == self.model.parents[v.number] for v in history)


TestSwapMachine = SwapMachine.TestCase
TestSwapMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


class ReleaseMachine(RuleBasedStateMachine):
    """Two real modules driven through random releases (swap_many) and rollback_many."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        self.names = [f"illunare_release_{next(_names)}" for _ in range(2)]
        for name in self.names:
            (self.root / f"{name}.py").write_text(module_source(0))
        self.modules = [importlib.import_module(name) for name in self.names]

    @initialize(keep=st.integers(min_value=1, max_value=4))
    def start(self, keep: int) -> None:
        self.reloader = HotReloader(keep=keep)
        self.models = {}
        for name, module in zip(self.names, self.modules, strict=True):
            self.reloader.track(module)
            self.models[name] = Model(keep=keep)
            self.models[name].add(1, 0, None)
        self.values = [module.value for module in self.modules]

    def teardown(self) -> None:
        sys.path.remove(str(self.root))
        for name in self.names:
            sys.modules.pop(name, None)
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(
        tokens=st.lists(st.integers(min_value=0, max_value=4), min_size=2, max_size=2),
        which=st.sampled_from([(0,), (1,), (0, 1), (1, 0)]),
    )
    def swap_many(self, tokens: list[int], which: tuple[int, ...]) -> None:
        names = [self.names[index] for index in which]
        versions = self.reloader.swap_many(
            {self.names[index]: module_source(tokens[index]) for index in which}
        )
        assert [version.module for version in versions] == names
        for index, version in zip(which, versions, strict=True):
            model = self.models[self.names[index]]
            if tokens[index] == model.tokens[model.current]:
                assert version.number == model.current
            else:
                assert version.number == max(model.created) + 1
                model.add(version.number, tokens[index], model.current)

    @rule(bad=st.sampled_from(sorted(BAD_SOURCES)), token=st.integers(min_value=0, max_value=4))
    def failed_release(self, bad: str, token: int) -> None:
        """A good module beside a bad one: the release changes neither."""
        source, checks = BAD_SOURCES[bad]
        try:
            self.reloader.swap_many(
                {self.names[0]: module_source(token), self.names[1]: source}, checks=checks
            )
        except (CompileError, LoadError, ValidationError):
            return
        raise AssertionError(f"the {bad} source was accepted")

    @rule()
    def rollback_many(self) -> None:
        models = [self.models[name] for name in self.names]
        if not all(model.parent_is_kept() for model in models):
            try:
                self.reloader.rollback_many(self.names)
            except RollbackError:
                return
            raise AssertionError("rollback_many without a kept parent succeeded")
        versions = self.reloader.rollback_many(self.names)
        for model, version in zip(models, versions, strict=True):
            parent = model.parents[model.current]
            assert version.number == parent
            assert parent is not None
            model.current = parent

    @invariant()
    def every_module_runs_its_current_version(self) -> None:
        if not hasattr(self, "models"):
            return
        for name, module, value in zip(self.names, self.modules, self.values, strict=True):
            model = self.models[name]
            token = model.tokens[model.current]
            assert value() == module.value() == module.TOKEN == token
            assert self.reloader.current(name).number == model.current
            assert [v.number for v in self.reloader.history(name)] == sorted(model.kept)


TestReleaseMachine = ReleaseMachine.TestCase
TestReleaseMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
