"""A small real service for deployments to change: modules, a config, flags and a database."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from typing import Any

from illunare import (
    BackendUnavailableError,
    Deployment,
    DeploymentError,
    DeploymentResult,
    FeatureFlags,
    HotConfig,
    HotReloader,
    MemoryBackend,
    Migration,
)
from illunare._flags.backends import FlagSink

from .conftest import Package

_services = itertools.count()

BROKEN_CODE = "raise RuntimeError('the new code cannot load')\n"


def module_code(tag: str) -> str:
    """A module whose ``tag()`` answers ``tag``."""
    return f"def tag():\n    return {tag!r}\n"


class FragileBackend(MemoryBackend):
    """A MemoryBackend whose store refuses the writes of the flags named in ``refused``."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()

    def write(self, name: str, config: Mapping[str, Any] | None, *, origin: FlagSink) -> int:
        if name in self.refused:
            raise BackendUnavailableError(f"the store refused flag {name!r}")
        return super().write(name, config, origin=origin)


class Service:
    """Two tracked modules, a HotConfig, FeatureFlags on a FragileBackend, a set of tables."""

    def __init__(self, package: Package, reloader: HotReloader, **options: Any) -> None:
        self.reloader = reloader
        self.modules = []
        for short in ("alpha", "beta"):
            package.module(short, module_code(f"{short}-1"))
            self.modules.append(package.qualified(short))
            reloader.track(package.qualified(short))
        self.alpha, self.beta = self.modules
        #: the database's connection limit, which the config's pool must not exceed
        self.max_pool = 100
        self.config = HotConfig({"pool": 5}, validator=self.pool_fits)
        self.backend = FragileBackend()
        self.flags = FeatureFlags(backend=self.backend)
        self.flags.update("existing", {"enabled": False})
        self.tables: set[str] = set()
        self.deployment = Deployment(
            f"service-{next(_services)}",
            reloader=reloader,
            config=self.config,
            flags=self.flags,
            **options,
        )

    def pool_fits(self, values: Mapping[str, Any]) -> None:
        """The config's validator: a pool above the database's connection limit is refused."""
        if values.get("pool", 0) > self.max_pool:
            raise ValueError(f"pool {values['pool']} is more than {self.max_pool}")

    def tag(self, module: str) -> str:
        """What the module's ``tag()`` answers now, called through the module."""
        result: str = sys.modules[module].tag()
        return result

    def state(self) -> dict[str, object]:
        """Everything a deployment may change: versions, behaviour, config, flags, tables."""
        return {
            **{
                module: (self.reloader.current(module).number, self.tag(module))
                for module in self.modules
            },
            "config": dict(self.config.snapshot()),
            **{f"flag {name}": dict(flag.config) for name, flag in self.flags.flags().items()},
            "tables": frozenset(self.tables),
        }

    def migration(
        self, table: str, *, reversible: bool = True, fails: bool = False, down_fails: bool = False
    ) -> Migration:
        """Create ``table`` (``fails``: raise instead); the down drops it (or raises)."""

        def up() -> None:
            if fails:
                raise RuntimeError(f"creating {table} failed")
            self.tables.add(table)

        def down() -> None:
            if down_fails:
                raise RuntimeError(f"dropping {table} failed")
            self.tables.discard(table)

        return Migration(f"create {table}", up, down if reversible else None)


def outcome(deployment: Deployment, package: object) -> DeploymentResult:
    """Run ``package``: its result, whether the deployment succeeded or raised DeploymentError."""
    try:
        return deployment.run(package)
    except DeploymentError as error:
        if error.result is None:
            raise
        return error.result
