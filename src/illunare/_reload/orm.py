"""ORM-mapped classes: their mapping lives in a registry, outside the class; they are not swapped.

SQLAlchemy's declarative registry (and the ``MetaData`` behind it) records
each mapped class and its table when the class statement runs: running it
again for a new version fails ("Table ... is already defined") or, where it
succeeds, leaves two classes mapped for one name. Neither can be undone by
a rollback. So a module whose running version has mapped classes can be
swapped only if the new source's ``__hot_preserve__`` names each of them: the
live class is then kept as it is, and the new version's statement for it
does not run. Otherwise the swap is refused, naming the classes: before the
new code runs when its ``__hot_preserve__`` is a literal, after it otherwise.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Collection, Mapping

from illunare.exceptions import ValidationError

__all__ = ["declared_preserve", "mapped_classes", "refuse_unpreserved", "without_classes"]


def _mapped(value: object) -> bool:
    # SQLAlchemy instruments each mapped class with its class manager.
    return isinstance(value, type) and "_sa_class_manager" in value.__dict__


def mapped_classes(namespace: Mapping[str, object], module: str) -> list[str]:
    """The names of the ORM-mapped classes that ``module`` defines at its top level."""
    return [
        key
        for key, value in list(namespace.items())
        if _mapped(value)
        and getattr(value, "__module__", None) == module
        and getattr(value, "__qualname__", None) == key
    ]


def refuse_unpreserved(module: str, mapped: Collection[str], preserve: Collection[str]) -> None:
    """Raise ValidationError naming the mapped classes that ``preserve`` does not list."""
    refused = sorted(key for key in mapped if key not in preserve)
    if refused:
        listed = ", ".join(f"{module}.{key}" for key in refused)
        raise ValidationError(
            f"the new version of {module} cannot replace the running one: {listed} "
            f"{'is an ORM-mapped class' if len(refused) == 1 else 'are ORM-mapped classes'} "
            "(SQLAlchemy): the ORM's registry keeps the mapping, which a new class "
            "statement cannot replace nor a rollback restore. Keep ORM models in a module "
            "that is not swapped, or list them in __hot_preserve__ to keep the live classes",
            module=module,
        )


def declared_preserve(text: str, filename: str) -> frozenset[str] | None:
    """The names that a top-level ``__hot_preserve__ = (...)`` of ``text`` lists, not running it.

    ``None`` when the source does not assign it a literal of str names at
    the top level (it may compute it): only running it can tell.
    """
    try:
        tree = ast.parse(text, filename)
    except (SyntaxError, ValueError):
        return None  # compiling it reports the error
    found: frozenset[str] = frozenset()
    for item in tree.body:
        if isinstance(item, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__hot_preserve__"
            for target in item.targets
        ):
            try:
                names = ast.literal_eval(item.value)
            except ValueError:
                return None
            if not (isinstance(names, tuple) and all(isinstance(n, str) for n in names)):
                return None
            found = frozenset(names)
        elif _binds_preserve(item):
            return None
    return found


def _binds_preserve(item: ast.stmt) -> bool:
    """Whether ``item`` may bind ``__hot_preserve__`` otherwise than by a plain assignment."""
    return any(
        isinstance(node, ast.Name)
        and node.id == "__hot_preserve__"
        and isinstance(node.ctx, ast.Store)
        for node in ast.walk(item)
    )


def without_classes(text: str, filename: str, names: Collection[str]) -> types.CodeType:
    """``text`` compiled with its top-level class statements for ``names`` left out."""
    tree = ast.parse(text, filename)
    tree.body = [
        ast.copy_location(ast.Pass(), item)
        if isinstance(item, ast.ClassDef) and item.name in names
        else item
        for item in tree.body
    ]
    return compile(tree, filename, "exec", dont_inherit=True)
