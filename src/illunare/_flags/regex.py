r"""Regular expressions for the ``regex`` operator, in time that a pattern cannot blow up.

Patterns are written in RE2's syntax (what Unleash uses). With the
``google-re2`` package installed (extra ``re2``) they run on RE2 itself, in
time linear in the length of the text, whatever the pattern. Without it they
run on Python's backtracking ``re``, which takes exponential time on patterns
such as ``^(a+)+$``; so only patterns whose backtracking stays at most
quadratic are accepted there, by a conservative check of the parsed pattern:

- no back-references or look-around (RE2 has neither anyway);
- no repeated group that itself holds a variable repeat or an alternation
  (``(a+)+``, ``(a|ab)*``);
- between any two variable parts (a repeat such as ``+``, ``*``, ``?`` or
  ``{2,5}``, or an alternation), a literal character that the first cannot
  match (``[^@]+@[^@]+`` is accepted, ``\w+\d+`` and ``.*a.*`` are not).

Any other pattern is refused with a message naming the extra to install.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from typing import Any

try:  # the parser of the ``re`` module: public as sre_parse until 3.11
    from re import _parser as sre_parse  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # pragma: no cover  # Python 3.10
    import sre_parse  # type: ignore[no-redef,unused-ignore]

__all__ = ["Search", "compile_regex"]

#: A compiled pattern: whether it is found in the text.
Search = Callable[[str], bool]

# RE2 (what Unleash evaluates regexes with) has POSIX classes; its inline
# flags may stand anywhere.
_POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\s",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "punct": r"!-/:-@\[-`{-~",
}
# RE2's inline flags: "(?i)" (to the end of the group) and "(?i:...)".
_INLINE_FLAGS = re.compile(r"\(\?([ims]+)(\)|:)")
_REFUSED = (
    "could take very long to match on Python's backtracking re: "
    "pip install 'illunare[re2]' to run it on RE2"
)

_C = sre_parse  # the opcode constants live beside the parser
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
_GROUPS = {_C.SUBPATTERN, getattr(_C, "ATOMIC_GROUP", _C.SUBPATTERN)}
_UNSUPPORTED = {_C.GROUPREF, _C.GROUPREF_EXISTS, _C.ASSERT, _C.ASSERT_NOT}
_ASCII_SPACE = " \t\n\r\f\v"
_CATEGORIES: dict[Any, Callable[[str], bool]] = {
    _C.CATEGORY_DIGIT: lambda ch: "0" <= ch <= "9",
    _C.CATEGORY_NOT_DIGIT: lambda ch: not "0" <= ch <= "9",
    _C.CATEGORY_SPACE: lambda ch: ch in _ASCII_SPACE,
    _C.CATEGORY_NOT_SPACE: lambda ch: ch not in _ASCII_SPACE,
    _C.CATEGORY_WORD: lambda ch: ch.isascii() and (ch.isalnum() or ch == "_"),
    _C.CATEGORY_NOT_WORD: lambda ch: not (ch.isascii() and (ch.isalnum() or ch == "_")),
}


@functools.cache
def _re2() -> Any:
    """The ``re2`` module of google-re2, or None; looked up once."""
    try:
        return importlib.import_module("re2")
    except ImportError:
        return None


def compile_regex(pattern: str, fold: bool) -> Search | str:
    """The search for an RE2-style ``pattern``, or why it is refused.

    Args:
        pattern: the pattern, in RE2's syntax.
        fold: match case-insensitively.

    """
    re2 = _re2()
    if re2 is not None:
        options = re2.Options()
        options.log_errors = False  # refusals are reported to the caller instead
        options.case_sensitive = not fold
        try:
            compiled = re2.compile(pattern, options)
        except re2.error:
            return "is not a supported regular expression"

        def search(text: str) -> bool:
            try:
                return compiled.search(text) is not None
            except UnicodeEncodeError:  # RE2 reads UTF-8: a lone surrogate matches nothing
                return False

        return search
    return _compile_bounded(pattern, fold)


def _compile_bounded(pattern: str, fold: bool) -> Search | str:
    flags = re.ASCII | (re.IGNORECASE if fold else 0)
    for name, members in _POSIX.items():
        pattern = pattern.replace(f"[:{name}:]", members)
    pattern = _as_python(pattern)
    try:
        parsed = sre_parse.parse(pattern, flags)
        compiled = re.compile(pattern, flags)
    except (re.error, RecursionError, OverflowError):
        return "is not a supported regular expression"
    problem = _backtracking_problem(list(parsed))
    if problem is not None:
        return problem
    return lambda text: compiled.search(text) is not None


def _as_python(pattern: str) -> str:
    r"""An RE2 pattern rewritten where Python's ``re`` reads the same text otherwise.

    RE2's ``(?i)`` holds to the end of its group (Python takes flags only at
    the start): it becomes a scoped ``(?i:...)``. RE2's ``$`` outside
    multi-line mode matches only at the very end (Python's also before a
    final newline): it becomes ``\Z``.
    """
    out: list[str] = []
    # Per open group: the scoped groups to close with it, and whether "m" holds.
    groups: list[list[Any]] = [[0, False]]
    index, in_class = 0, False
    while index < len(pattern):
        char, step = pattern[index], 1
        flags = None if in_class else _INLINE_FLAGS.match(pattern, index)
        if char == "\\":
            char, step = pattern[index : index + 2], 2
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith(("^]", "]"), index + 1):  # a leading "]" is a member
                char = pattern[index : pattern.index("]", index + 1) + 1]
                step = len(char)
        elif flags is not None:
            multiline = groups[-1][1] or "m" in flags.group(1)
            if flags.group(2) == ")":  # to the end of the enclosing group
                groups[-1][0] += 1
                groups[-1][1] = multiline
            else:
                groups.append([0, multiline])
            char, step = f"(?{flags.group(1)}:", flags.end() - index
        elif char == "(":
            groups.append([0, groups[-1][1]])
        elif char == ")" and len(groups) > 1:
            char = ")" * groups.pop()[0] + ")"
        elif char == "$" and not groups[-1][1]:
            char = r"\Z"
        out.append(char)
        index += step
    out.append(")" * groups[0][0])
    return "".join(out)


def _flat(items: list[Any]) -> list[Any]:
    """The items of a sequence, with plain groups opened in place."""
    flat = []
    for op, av in items:
        if op in _GROUPS:
            flat += _flat(list(av[-1] if isinstance(av, tuple) else av))
        else:
            flat.append((op, av))
    return flat


def _is_variable(op: Any, av: Any) -> bool:
    return op is _C.BRANCH or (op in _REPEATS and av[0] != av[1])


def _parts(op: Any, av: Any) -> list[Any]:
    """What a repeat repeats, or every alternative of an alternation."""
    if op is _C.BRANCH:
        return [item for branch in av[1] for item in _flat(list(branch))]
    return _flat(list(av[2]))


def _backtracking_problem(items: list[Any]) -> str | None:
    """Why backtracking over this sequence could take more than quadratic time, or None."""
    previous: list[Any] | None = None  # the variable part not yet closed by a literal
    for op, av in _flat(items):
        if op in _UNSUPPORTED:
            return "uses a back-reference or look-around, which RE2 does not support"
        if op is _C.LITERAL:
            if previous is not None and not _can_match(previous, chr(av)):
                previous = None
            continue
        if op is _C.BRANCH:
            for branch in av[1]:
                if (problem := _backtracking_problem(list(branch))) is not None:
                    return problem
        elif op in _REPEATS:
            body = _parts(op, av)
            if (problem := _backtracking_problem(body)) is not None:
                return problem
            if av[1] > 1 and any(_is_variable(*item) for item in body):
                return _REFUSED
        if _is_variable(op, av):
            if previous is not None:
                return _REFUSED
            previous = _parts(op, av)
    return None


def _can_match(items: list[Any], ch: str) -> bool:
    """Whether any of ``items`` might match the character ``ch`` (True when unsure)."""
    for op, av in items:
        if op is _C.LITERAL:
            if chr(av).lower() == ch.lower():
                return True
        elif op is _C.NOT_LITERAL:
            if chr(av) != ch:
                return True
        elif op is _C.IN:
            if _in_set(av, ch):
                return True
        elif op in _REPEATS or op is _C.BRANCH:
            if _can_match(_parts(op, av), ch):
                return True
        elif op is not _C.AT:  # anything else (., [^x] ...) may
            return True
    return False


def _in_set(members: list[Any], ch: str) -> bool:
    """Whether a character set might hold ``ch`` (True when unsure)."""
    negated = bool(members) and members[0][0] is _C.NEGATE
    found = False
    for op, av in members[1:] if negated else members:
        if op is _C.LITERAL:
            # Case is compared loosely where that can only add matches.
            found = chr(av) == ch if negated else chr(av).lower() == ch.lower()
        elif op is _C.RANGE:
            low, high = chr(av[0]), chr(av[1])
            found = low <= ch <= high or (not negated and low <= ch.swapcase() <= high)
        elif op is _C.CATEGORY and av in _CATEGORIES:
            found = _CATEGORIES[av](ch)
        else:
            return True
        if found:
            break
    return found != negated
