"""Reading a module's new source from text, bytes, a path or package data, and compiling it."""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import os
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


def read_source(module: types.ModuleType, source: Source) -> SourceText:
    """Return the new source of ``module`` from ``source`` (``None``: its own file).

    Bytes are decoded as the import system decodes a module's file: a UTF-8
    byte order mark or a PEP 263 coding declaration names the encoding (UTF-8
    otherwise) and every newline becomes a line feed. So a file with a byte
    order mark and the same text without one are the same source (the same
    ``sha256``); a ``str`` source loses a leading byte order mark too.

    Raises:
        CompileError: the bytes cannot be decoded, or the text holds a lone surrogate.
        LoadError: the file cannot be read, or the module has none.
        InvalidArgumentError: ``source`` is of none of the accepted types.

    """
    name = module.__name__
    path: str | None = None
    try:
        if isinstance(source, str):
            return _source_text(source.removeprefix(_BOM), name, None)
        if isinstance(source, bytes):
            return _source_text(_decode(source, name, None), name, None)
        if source is None:
            path = getattr(module, "__file__", None)
            if path is None:
                raise LoadError(
                    f"{name} has no source file; pass the new code as swap(source=...)",
                    module=name,
                )
            label = path
            data = _read_path(path)
        elif isinstance(source, os.PathLike):
            label = path = os.fsdecode(source)
            data = _read_path(path)
        elif isinstance(source, Traversable):
            label = str(source)
            data = source.read_bytes()
        else:
            raise InvalidArgumentError(
                "source must be str, bytes, os.PathLike, an importlib-resources "
                f"Traversable or None, not {type(source).__name__}"
            )
    except OSError as error:
        raise LoadError(f"cannot read the new source of {name}: {error}", module=name) from error
    return _source_text(_decode(data, name, label), name, label, path)


_BOM = "\ufeff"


def _decode(data: bytes, module: str, filename: str | None) -> str:
    try:
        # The import system's own decoding: BOM, coding cookie, universal newlines.
        return importlib.util.decode_source(data)
    except (SyntaxError, UnicodeError, LookupError, Warning) as error:
        # SyntaxError: a bad or unknown coding declaration; UnicodeError: bytes
        # the encoding rejects; LookupError: a codec that is not a text encoding;
        # Warning: one the warning filters make an error (as compile() turns a
        # SyntaxWarning into a SyntaxError), e.g. unicode_escape's on 3.12+.
        reason = error.msg if isinstance(error, SyntaxError) else str(error)
        raise CompileError(
            f"the new source of {module} cannot be decoded: {reason}",
            module=module,
            filename=filename,
        ) from error


def _source_text(
    text: str, module: str, filename: str | None, path: str | None = None
) -> SourceText:
    """``text`` with its digest; a lone surrogate (which no code can hold) is a CompileError."""
    try:
        sha256 = digest(text)
    except UnicodeEncodeError as error:
        lineno = text.count("\n", 0, error.start) + 1
        offset = error.start - text.rfind("\n", 0, error.start)
        raise CompileError(
            f"the new source of {module} holds a lone surrogate "
            f"({text[error.start]!a}) at line {lineno}, column {offset}",
            module=module,
            filename=filename,
            lineno=lineno,
            offset=offset,
        ) from error
    return SourceText(text, sha256, path)


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
    except (RecursionError, MemoryError) as error:
        # What the parser and compiler raise for code nested too deeply.
        raise CompileError(
            f"the new source of {module} is too complex to compile: "
            f"{type(error).__name__}: {error}",
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
