"""Pydantic (v2) models rewritten in place: their validators make instances of the stable class.

A model's validator and serializer are compiled (by pydantic-core) from its
core schema, which names the class to instantiate and holds the model's
validator functions bound to it. For a new version of a model, those are
the new class: moved as they are into the stable class, ``model_validate``
would return instances of a class the program never sees (``isinstance``
false, pickling broken). So, while a swap prepares, every model of the new
version gets a validator and a serializer compiled from a copy of its
schema in which the module's new classes are replaced by their stable ones
(the nested models included). The new class gets them too, so that a
framework that captured it (FastAPI builds its validation from the class it
saw) makes stable instances as well. Rewriting the stable class is then an
ordinary switch of class attributes.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["rebind_models", "unpin"]

# What ``__pydantic_complete__`` of a kept model holds instead of ``True``:
# as true for pydantic, but not a ``bool`` for pydantic-core (see ``unpin``).
_COMPLETE = 1


def _is_model(value: object) -> bool:
    validator = getattr(value, "__dict__", {}).get("__pydantic_validator__")
    return isinstance(value, type) and type(validator).__name__ == "SchemaValidator"


def _replaced(value: Any, stable_of: Mapping[type, type], changed: list[object]) -> Any:
    """A copy of the schema ``value`` with the new classes (and methods bound to them) replaced.

    Each replacement is noted in ``changed``.
    """
    kind = type(value)
    if kind is dict:
        return {key: _replaced(item, stable_of, changed) for key, item in value.items()}
    if kind is list or kind is tuple:
        return kind(_replaced(item, stable_of, changed) for item in value)
    owner = value.__self__ if kind is types.MethodType else value
    stable = stable_of.get(owner) if isinstance(owner, type) else None
    if stable is None:
        return value
    changed.append(value)
    return stable if value is owner else types.MethodType(value.__func__, stable)


def _config(schema: Mapping[str, Any], cls: type) -> Any:
    """The core config of the model schema of ``cls`` inside ``schema``."""
    pending: list[Any] = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if item.get("type") == "model" and item.get("cls") is cls:
                return item.get("config")
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return None


def unpin(cls: type) -> None:
    """Keep pydantic-core from reusing the validator that ``cls`` has now in validators built later.

    pydantic-core builds the schema of a model whose class says it is
    complete (``__pydantic_complete__`` is ``True``) by reusing that class's
    current validator and serializer. For a class whose versions switch,
    that would bake the running version's into the next version's: such
    classes hold a true value that is not ``True`` (pydantic only tests its
    truth), so that their schema is compiled instead.
    """
    if _is_model(cls) and cls.__dict__.get("__pydantic_complete__") is True:
        type.__setattr__(cls, "__pydantic_complete__", _COMPLETE)


def rebind_models(namespace: Mapping[str, object], stable_of: Mapping[type, type]) -> None:
    """Recompile the validators and serializers of the namespace's models for the stable classes.

    ``stable_of`` maps each new class of the version that will be moved into
    a stable class to it. Only models whose schema names one of them change.
    """
    if not stable_of or "pydantic_core" not in sys.modules:
        return
    from pydantic_core import SchemaSerializer, SchemaValidator  # noqa: PLC0415  # if in use

    for value in namespace.values():
        if not _is_model(value):
            continue
        cls: Any = value
        schema = cls.__dict__["__pydantic_core_schema__"]
        changed: list[object] = []
        replaced = _replaced(schema, stable_of, changed)
        if not changed:
            continue
        config = _config(schema, cls)
        cls.__pydantic_core_schema__ = replaced
        cls.__pydantic_validator__ = SchemaValidator(replaced, config)
        cls.__pydantic_serializer__ = SchemaSerializer(replaced, config)
