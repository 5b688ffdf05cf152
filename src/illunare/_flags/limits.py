"""What every flag config must be: plain JSON, within limits that keep each step bounded.

Configs travel through backends as JSON and are compiled into Python code, so
a config (or an Unleash payload) is refused, with the path of every problem,
unless it is made of JSON values only (str, bool, None, finite numbers,
integers within I-JSON's ±(2**53 - 1), lists, and objects with str keys),
nested at most ``MAX_JSON_DEPTH`` deep and at most ``MAX_JSON_VALUES`` values
in all. The walk keeps its own stack: no input, however deep, wide or
self-containing, can exhaust Python's stack or run unbounded. The other limits
are checked where the config is understood: condition nesting by the parsers,
the number of conditions when a flag is compiled, variant weights by each format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_CONDITIONS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES",
    "MAX_NESTING",
    "MAX_TOTAL_WEIGHT",
    "plain_json",
]

#: How deep ``any``/``all``/``not`` conditions may nest (Python's compiler
#: refuses 200 nested parentheses, and recursion ends near 1000).
MAX_NESTING = 32
#: How many conditions one flag may have, counting nested ones.
MAX_CONDITIONS = 20_000
#: How deep any JSON value in a config may nest (room for MAX_NESTING groups).
MAX_JSON_DEPTH = 100
#: How many JSON values (containers and scalars) one config may hold.
MAX_JSON_VALUES = 1_000_000
#: The most the variant weights of one flag may add up to: the sticky draw
#: is a 32-bit hash modulo the total, so a larger total would starve variants.
MAX_TOTAL_WEIGHT = 1_000_000
# I-JSON (RFC 7493): integers beyond this are not read back exactly everywhere.
_MAX_INT = 2**53 - 1

Problems = list[tuple[str, str]]


_CONTAINER = "container"


def _problem(item: object) -> str | None:
    """What is wrong with ``item`` as a JSON value: None, a message, or ``_CONTAINER``."""
    if item is None or isinstance(item, (str, bool)):
        return None
    if isinstance(item, int):
        return None if abs(item) <= _MAX_INT else f"integers must be within ±{_MAX_INT} (I-JSON)"
    if isinstance(item, float):
        return None if math.isfinite(item) else f"must be a finite number, got {item!r}"
    if isinstance(item, (Mapping, list, tuple)):
        return _CONTAINER
    return f"must be a JSON value (str, number, bool, null...), not {type(item).__name__}"


def plain_json(value: object, path: str = "") -> tuple[Any, Problems]:
    """A copy of ``value`` made of dicts, lists, str, int, float, bool and None; and its problems.

    Every problem is ``(path, message)``, with paths under ``path``; the copy
    is only meaningful when there are none.
    """
    problems: Problems = []
    root: list[Any] = [value]
    # Containers still to copy in place of themselves: (their parent, slot, path, depth).
    stack: list[tuple[Any, Any, str, int]] = []
    count = 0

    def visit(parent: Any, slot: Any, where: str, depth: int) -> None:
        problem = _problem(parent[slot])
        if problem is _CONTAINER:
            stack.append((parent, slot, where, depth))
        elif problem is not None:
            problems.append((where, problem))

    visit(root, 0, path, 0)
    while stack:
        parent, slot, where, depth = stack.pop()
        item = parent[slot]
        count += len(item)
        if count > MAX_JSON_VALUES:
            problems.append((path, f"holds more than {MAX_JSON_VALUES} values"))
            break
        if depth >= MAX_JSON_DEPTH:
            problems.append((where, f"nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        # The copy first holds the original members; visiting replaces
        # each container among them with its own copy.
        if isinstance(item, Mapping):
            members = parent[slot] = {}
            for key, member in item.items():
                if isinstance(key, str):
                    members[key] = member
                    visit(members, key, f"{where}.{key}" if where else key, depth + 1)
                else:
                    problems.append((where, f"object keys must be str, got {key!r}"))
        else:
            elements = parent[slot] = list(item)
            for index in range(len(elements)):
                visit(elements, index, f"{where}[{index}]", depth + 1)
    return root[0], problems
