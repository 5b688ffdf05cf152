"""Reading a deployment package: the seed's mapping format, or a list of steps.

Every problem of the package's shape is collected with its path
(``"modules[1].code"``, ``"flags.new_payment_flow"``, ``"rollout.steps"``)
before any step is checked or run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from illunare._deploy.steps import (
    ConfigUpdate,
    FlagUpdate,
    HotRollout,
    HotSwap,
    LoadService,
    Migration,
    Parts,
    Problem,
    Step,
    StepProtocol,
    UnloadService,
    code_problems,
    module_problems,
)
from illunare._monitor.health import Thresholds
from illunare._rollout.config import Rollout
from illunare.exceptions import InvalidArgumentError

__all__ = ["Entry", "Package", "read_package"]

_PARTS = ("modules", "rollout", "config", "flags", "migrations")
_STEPS = (HotSwap, HotRollout, ConfigUpdate, FlagUpdate, Migration, LoadService, UnloadService)
#: the fields a package may give of the values it makes (a rollout's ``sticky`` is a function)
_FIELDS: dict[object, tuple[str, ...]] = {
    Rollout: ("steps", "bake", "thresholds", "min_samples", "on_inconclusive"),
    Thresholds: ("max_error_rate", "max_latency"),
}
_STICKY = "a key function cannot come in a package: ship the modules with a HotRollout step"
_T = TypeVar("_T")


@attrs.frozen
class Entry:
    """One step of a package and its path in it."""

    path: str
    step: Step
    #: where the module's name is, for a HotSwap (``"name"`` in the mapping form)
    module_key: str = "module"


@attrs.frozen
class Package:
    """The steps of a package in run order; the first ``release`` are the package's modules.

    ``rollout``: the modules are shipped as one rollout.
    """

    entries: tuple[Entry, ...]
    release: int
    problems: tuple[Problem, ...]
    rollout: Rollout | None = None


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def read_package(package: object, parts: Parts) -> Package:
    """The entries of ``package`` and every problem of its shape.

    A module entry that cannot become a step has its name and code checked here.
    """
    if isinstance(package, Mapping):
        return _read_mapping(package, parts)
    if _is_list(package):
        assert isinstance(package, Sequence)
        return _read_steps(package)
    return Package(
        (),
        0,
        (("", f"a package is a mapping or a list of steps, not {type(package).__name__}"),),
    )


def _read_steps(package: Sequence[object]) -> Package:
    entries: list[Entry] = []
    problems: list[Problem] = []
    for index, step in enumerate(package):
        # Any object following the step protocol (a platform's step) runs as the built-in ones.
        if isinstance(step, (*_STEPS, StepProtocol)):
            entries.append(Entry(f"[{index}]", step))
        else:
            kind = type(step).__name__
            known = ", ".join(s.__name__ for s in _STEPS)
            problems.append(
                (f"[{index}]", f"not a step ({known}, or with target, problems(), apply()): {kind}")
            )
    if not package:
        problems.append(("", "the package has no steps"))
    return Package(tuple(entries), 0, tuple(problems))


def _read_mapping(package: Mapping[Any, Any], parts: Parts) -> Package:
    problems: list[Problem] = [
        (str(key), "not a part of a package (modules, rollout, config, flags, migrations)")
        for key in package
        if key not in _PARTS
    ]
    modules = _modules(package.get("modules", ()), parts, problems)
    entries = list(modules)
    rollout = None
    if "rollout" in package:
        rollout = _rollout(package["rollout"], problems)
        if not package.get("modules"):
            problems.append(("rollout", "a rollout ships the package's modules: it has none"))
    if "config" in package:
        if isinstance(package["config"], Mapping):
            entries.append(Entry("config", ConfigUpdate(package["config"])))
        else:
            problems.append(("config", "must be a mapping of configuration values"))
    entries += _flags(package.get("flags", {}), problems)
    entries += _migrations(package.get("migrations", ()), problems)
    if not entries and not problems:
        problems.append(("", "the package has no steps"))
    return Package(tuple(entries), len(modules), tuple(problems), rollout)


def _rollout(rollout: object, problems: list[Problem]) -> Rollout | None:
    """The package's ``Rollout``: one given, or one made of a mapping of its fields (as in JSON)."""
    if isinstance(rollout, Rollout):
        return rollout
    if not isinstance(rollout, Mapping):
        problems.append(
            ("rollout", f"must be a Rollout or a mapping of its fields, not {rollout!r}")
        )
        return None
    return _made("rollout", rollout, Rollout, problems)


def _made(path: str, given: object, kind: Callable[..., _T], problems: list[Problem]) -> _T | None:
    """A ``kind`` made of the mapping ``given`` of its fields; None, its problems added."""
    names = _FIELDS[kind]
    if not isinstance(given, Mapping):
        problems.append((path, f"must be a mapping of {', '.join(names)}, not {given!r}"))
        return None
    found: list[Problem] = []
    fields: dict[str, object] = {}
    for key, value in given.items():
        at = f"{path}.{key}"
        if key not in names:
            known = f"unknown field ({', '.join(names)})"
            found.append((at, _STICKY if key == "sticky" else known))
            continue
        field = _made(at, value, Thresholds, found) if key == "thresholds" else value
        if field is None and key == "thresholds":  # its problems are listed
            continue
        try:
            kind(**{key: field})
        except InvalidArgumentError as error:
            found.append((at, str(error)))
        fields[key] = field
    problems += found
    return None if found else kind(**fields)


def _modules(modules: object, parts: Parts, problems: list[Problem]) -> list[Entry]:
    if not _is_list(modules):
        problems.append(("modules", "must be a list of {name, code} mappings"))
        return []
    assert isinstance(modules, Sequence)
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for index, module in enumerate(modules):
        entry = _module(f"modules[{index}]", module, seen, parts, problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _module(
    path: str, module: object, seen: dict[str, str], parts: Parts, problems: list[Problem]
) -> Entry | None:
    """The HotSwap of one ``{name, code}`` entry, or None (its problems added to ``problems``)."""
    if not isinstance(module, Mapping):
        problems.append((path, f"must be a mapping with name and code, not {module!r}"))
        return None
    found: list[Problem] = [
        (f"{path}.{key}", "unknown key (a module has name and code)")
        for key in module
        if key not in ("name", "code")
    ]
    given, code = module.get("name"), module.get("code")
    name = given if isinstance(given, str) and given else None
    if name is None:
        found.append((f"{path}.name", f"must be a module name (str), got {given!r}"))
    elif name in seen:
        found.append((f"{path}.name", f"{name} is already in {seen[name]}"))
    else:
        seen[name] = path
    if not isinstance(code, str):
        found.append((f"{path}.code", f"must be the module's new source (str), got {code!r}"))
    elif name is not None and not found:
        return Entry(path, HotSwap(name, code), "name")
    # No step to check later: what can be checked is checked now.
    if name is not None:
        found += module_problems(parts, name, f"{path}.name")
    if isinstance(code, str):
        found += code_problems(str(given), code, f"{path}.code")
    problems += found
    return None


def _flags(flags: object, problems: list[Problem]) -> list[Entry]:
    if not isinstance(flags, Mapping):
        problems.append(("flags", "must be a mapping of flag names to flag configs"))
        return []
    entries: list[Entry] = []
    for name, config in flags.items():
        path = f"flags.{name}"
        if not isinstance(name, str) or not name:
            problems.append((path, f"a flag name must be a non-empty str, got {name!r}"))
        elif not isinstance(config, Mapping):
            problems.append((path, f"must be a flag config (a mapping), not {config!r}"))
        else:
            entries.append(Entry(path, FlagUpdate(name, config)))
    return entries


def _migrations(migrations: object, problems: list[Problem]) -> list[Entry]:
    if not _is_list(migrations):
        problems.append(("migrations", "must be a list of Migration objects"))
        return []
    assert isinstance(migrations, Sequence)
    entries: list[Entry] = []
    for index, migration in enumerate(migrations):
        path = f"migrations[{index}]"
        if isinstance(migration, Migration):
            entries.append(Entry(path, migration))
        else:
            problems.append((path, f"must be a Migration, not {type(migration).__name__}"))
    return entries
