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

import functools
import operator
import sys
import types
import typing
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


def _running_models(schema: Any, running: Mapping[type, type]) -> set[type]:
    """The stable classes (keys of ``running``) that ``schema`` names as models to build."""
    found: set[type] = set()
    pending: list[Any] = [schema]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            cls = item.get("cls")
            if item.get("type") == "model" and isinstance(cls, type) and cls in running:
                found.add(cls)
            pending.extend(item.values())
        elif type(item) is list or type(item) is tuple:
            pending.extend(item)
    return found


def _resolve_running(
    models: list[Any], running: Mapping[type, type], namespace: Mapping[str, object]
) -> None:
    """Make the new models refer to each other where they were built with the running ones.

    pydantic evaluates string annotations (``from __future__ import
    annotations``, forward references) in the namespace of the module as it
    runs (``sys.modules``), not in the version being prepared: a new model
    can come out built with a running class of the module. Its fields are
    pointed at the new classes and every model of the version is built again.
    """
    stale = [cls for cls in models if _running_models(cls.__pydantic_core_schema__, running)]
    if not stale:
        return
    for cls in stale:
        for field in cls.__pydantic_fields__.values():
            field.annotation = _substituted(field.annotation, running)
    for cls in models:
        # Built again from their fields, not from the schemas they cache.
        type.__setattr__(cls, "__pydantic_complete__", False)
        for name in (
            "__pydantic_core_schema__",
            "__pydantic_validator__",
            "__pydantic_serializer__",
        ):
            if name in cls.__dict__:
                type.__delattr__(cls, name)
    for cls in models:
        cls.model_rebuild(force=True, _types_namespace=dict(namespace))
    for cls in models:
        left = _running_models(cls.__pydantic_core_schema__, running)
        if left:
            names = ", ".join(sorted(model.__qualname__ for model in left))
            raise TypeError(
                f"model {cls.__qualname__} still refers to the running version of {names}"
            )


def _substituted(annotation: Any, running: Mapping[type, type]) -> Any:
    """``annotation`` with each class of ``running``'s keys replaced by its value."""
    if isinstance(annotation, type) and annotation in running:
        return running[annotation]
    arguments = typing.get_args(annotation)
    replaced = tuple(_substituted(argument, running) for argument in arguments)
    if all(a is b for a, b in zip(replaced, arguments, strict=True)):
        return annotation
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType):
        return functools.reduce(operator.or_, replaced)
    if origin is typing.Union:
        return typing.Union[replaced]  # noqa: UP007  # rebuilding what pydantic has
    if origin is typing.Annotated:
        return typing.Annotated[replaced]
    if isinstance(annotation, types.GenericAlias):
        return types.GenericAlias(origin, replaced)
    return annotation.copy_with(replaced)


def rebind_models(namespace: Mapping[str, object], stable_of: Mapping[type, type]) -> None:
    """Recompile the validators and serializers of the namespace's models for the stable classes.

    ``stable_of`` maps each new class of the version that will be moved into
    a stable class to it. Only models whose schema names one of them change.
    """
    if not stable_of or "pydantic_core" not in sys.modules:
        return
    from pydantic_core import SchemaSerializer, SchemaValidator  # noqa: PLC0415  # if in use

    module = namespace.get("__name__")
    models: list[Any] = [
        value
        for value in list(namespace.values())
        if _is_model(value) and value.__module__ == module
    ]
    _resolve_running(models, {stable: new for new, stable in stable_of.items()}, namespace)
    for cls in models:
        schema = cls.__dict__["__pydantic_core_schema__"]
        changed: list[object] = []
        replaced = _replaced(schema, stable_of, changed)
        if not changed:
            continue
        config = _config(schema, cls)
        cls.__pydantic_core_schema__ = replaced
        cls.__pydantic_validator__ = SchemaValidator(replaced, config)
        cls.__pydantic_serializer__ = SchemaSerializer(replaced, config)
