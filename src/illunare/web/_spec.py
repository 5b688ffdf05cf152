"""Naming a web application: ``"package.module:attribute"`` or ``"package.module:factory()"``."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import attrs

from illunare._reload.inflight import VERSION_KEY, VersionContents
from illunare._reload.proxy import HotFunction
from illunare.exceptions import InvalidArgumentError, ValidationError

__all__ = ["AppSpec"]


@attrs.frozen
class AppSpec:
    """Where the application comes from: a module's attribute, or a factory it defines."""

    module: str
    name: str
    factory: bool

    @classmethod
    def parse(cls, spec: object) -> AppSpec:
        """``spec`` as an AppSpec.

        Raises:
            InvalidArgumentError: not a str of the form ``"package.module:app"``
                or ``"package.module:create_app()"``.

        """
        module, colon, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
        factory = name.endswith("()")
        name = name.removesuffix("()")
        if not (colon and name.isidentifier() and all(p.isidentifier() for p in module.split("."))):
            raise InvalidArgumentError(
                "the app must be named as 'package.module:attribute' or "
                f"'package.module:factory()', got {spec!r}"
            )
        return cls(module, name, factory=factory)

    @property
    def package(self) -> str:
        """The top-level package of the app's module: what is tracked."""
        return self.module.partition(".")[0]

    def __str__(self) -> str:
        return f"{self.module}:{self.name}{'()' if self.factory else ''}"

    def build(self, namespace: Mapping[str, Any]) -> object:
        """The application that a version of the app's module (its namespace) defines.

        For a factory, the version's own function is called, not the
        module's stable proxy: before a switch the proxy still runs the
        current version.

        Raises:
            ValidationError: the name is missing, the factory is not callable,
                or it raised (the error is the ``__cause__``).

        """
        if self.name not in namespace:
            raise ValidationError(
                f"{self.module} has no attribute {self.name!r}", module=self.module
            )
        value = namespace[self.name]
        if not self.factory:
            return value
        if isinstance(value, HotFunction):
            contents = namespace.get(VERSION_KEY)
            if isinstance(contents, VersionContents):
                value = contents.targets.get(self.name, value)
        if not callable(value) or isinstance(value, types.ModuleType):
            raise ValidationError(
                f"{self} names {value!r}, which cannot be called", module=self.module
            )
        try:
            return value()
        except Exception as error:
            raise ValidationError(
                f"building the app with {self} raised {type(error).__name__}: {error}",
                module=self.module,
            ) from error
