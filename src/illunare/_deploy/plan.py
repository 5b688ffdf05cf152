"""``DeploymentPlan``: a package checked completely, its code compiled, ready to run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from illunare._deploy.package import Entry, read_package
from illunare._deploy.steps import (
    Action,
    ConfigUpdate,
    HotSwap,
    Parts,
    Problem,
    Release,
    Step,
)
from illunare._rollout.config import Rollout
from illunare.exceptions import PackageError

__all__ = ["DeploymentPlan", "make_plan"]


@attrs.frozen
class DeploymentPlan:
    """The steps of a valid package, in the order ``run()`` applies them.

    Made by ``Deployment.plan()``, and run by the Deployment that made it.
    ``paths[i]`` is the path of ``steps[i]`` in the package. The first
    ``release`` steps are the package's modules: one release, switched in
    one flip, or shipped as one gradual ``rollout``.
    """

    service: str
    steps: tuple[Step, ...]
    paths: tuple[str, ...]
    release: int = 0
    #: the Deployment that checked the steps against its parts
    owner: object = attrs.field(default=None, eq=False, repr=False)
    #: how the package's modules are rolled out (None: switched at once)
    rollout: Rollout | None = None

    def stages(self) -> Iterator[tuple[range, Action]]:
        """What ``run()`` applies in turn: the indices of the steps each covers, and the action."""
        if self.release:
            swaps = tuple(step for step in self.steps[: self.release] if isinstance(step, HotSwap))
            yield range(self.release), Release(swaps, self.rollout)
        for index in range(self.release, len(self.steps)):
            step = self.steps[index]
            yield (
                range(index, index + 1),
                Release((step,)) if isinstance(step, HotSwap) else step,
            )


def make_plan(service: str, package: object, parts: Parts, owner: object) -> DeploymentPlan:
    """Check every step of ``package`` against ``parts``; PackageError lists every problem."""
    read = read_package(package, parts)
    problems: list[Problem] = list(read.problems)
    refused = _refused_configs(read.entries, parts)
    for entry in read.entries:
        step = entry.step
        if isinstance(step, HotSwap):
            problems += step.problems(parts, entry.path, entry.module_key)
        else:
            problems += step.problems(parts, entry.path)
        if entry.path in refused:
            problems.append((entry.path, refused[entry.path]))
    if problems:
        raise PackageError(tuple(problems))
    return DeploymentPlan(
        service,
        tuple(entry.step for entry in read.entries),
        tuple(entry.path for entry in read.entries),
        read.release,
        owner,
        read.rollout,
    )


def _refused_configs(entries: Sequence[Entry], parts: Parts) -> dict[str, str]:
    """The config updates the validator refuses, by path (each merged in turn, as at run)."""
    if parts.config is None:
        return {}
    updates = [(e.path, e.step) for e in entries if isinstance(e.step, ConfigUpdate)]
    refusals = parts.config._refusals(step.values for _, step in updates)
    return {
        path: str(refusal)
        for (path, _), refusal in zip(updates, refusals, strict=True)
        if refusal is not None
    }
