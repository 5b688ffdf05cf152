"""Reading a module's new source from text, bytes, a path or package data, and compiling it."""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import os
import re
import types
from typing import Union

import attrs
from importlib_resources.abc import Traversable

from illunare.exceptions import CompileError, InvalidArgumentError, LoadError

__all__ = [
    "Source",
    "SourceText",
    "compile_source",
    "forget_lines",
    "read_source",
    "remember_lines",
]

#: What ``HotReloader.swap`` accepts as new code.
Source = Union[str, bytes, "os.PathLike[str]", Traversable, None]


@attrs.frozen
class SourceText:
    """The decoded text of a version, its digest, and the file it came from (if any)."""

    text: str
    sha256: str
    path: str | None


def digest(text: str) -> str:
    """Hex SHA-256 of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# PEP 263: a coding declaration on the first or second line.
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)


def _decode(data: bytes, module: str) -> str:
    head = b"\n".join(data.split(b"\n", 2)[:2])
    declared = _CODING.search(head)
    if b"\r" not in data and (declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")):
        # The common case, decoded in C; the general path below is several
        # times slower.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CompileError(
                f"the new source of {module} is not valid UTF-8: {error}", module=module
            ) from error
    try:
        # Honours a PEP 263 coding cookie and normalises newlines, like import does.
        return importlib.util.decode_source(data)
    except (SyntaxError, UnicodeDecodeError) as error:
        raise CompileError(
            f"the new source of {module} cannot be decoded: {error}", module=module
        ) from error


def read_source(module: types.ModuleType, source: Source) -> SourceText:
    """Return the new source of ``module`` from ``source`` (``None``: its own file)."""
    name = module.__name__
    path: str | None = None
    try:
        if isinstance(source, str):
            return SourceText(source, digest(source), None)
        if isinstance(source, bytes):
            text = _decode(source, name)
            return SourceText(text, digest(text), None)
        if source is None:
            path = getattr(module, "__file__", None)
            if path is None:
                raise LoadError(
                    f"{name} has no source file; pass the new code as swap(source=...)",
                    module=name,
                )
            data = _read_path(path)
        elif isinstance(source, os.PathLike):
            path = os.fsdecode(source)
            data = _read_path(path)
        elif isinstance(source, Traversable):
            data = source.read_bytes()
        else:
            raise InvalidArgumentError(
                "source must be str, bytes, os.PathLike, an importlib-resources "
                f"Traversable or None, not {type(source).__name__}"
            )
    except OSError as error:
        raise LoadError(f"cannot read the new source of {name}: {error}", module=name) from error
    text = _decode(data, name)
    return SourceText(text, digest(text), path)


def _read_path(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def compile_source(text: str, filename: str, module: str) -> types.CodeType:
    """Compile module source, turning a syntax error into ``CompileError``."""
    try:
        return compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        raise CompileError(
            f"the new source of {module} does not compile: {error.msg} "
            f"({error.filename}, line {error.lineno})",
            module=module,
            filename=error.filename,
            lineno=error.lineno,
            offset=error.offset,
        ) from error
    except ValueError as error:  # null bytes in the source
        raise CompileError(
            f"the new source of {module} does not compile: {error}",
            module=module,
            filename=filename,
        ) from error


def remember_lines(filename: str, text: str) -> None:
    """Let tracebacks and ``inspect.getsource`` show the lines of source with no file."""
    lines = text.splitlines(keepends=True)
    # An mtime of None keeps linecache.checkcache() from discarding the entry.
    linecache.cache[filename] = (len(text), None, lines, filename)


def forget_lines(filename: str) -> None:
    """Drop what ``remember_lines`` stored."""
    linecache.cache.pop(filename, None)
