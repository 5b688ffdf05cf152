"""Reading new source: decoded as import decodes it, and every bad source a typed error."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import importlib
import types
import warnings

import importlib_resources
import pytest
from hypothesis import HealthCheck, given, settings

from illunare import CompileError, HotReloader, SwapError, signals

from .conftest import Package, eventually
from .strategies import SOURCE_BYTES, SOURCE_TEXTS

BOM = codecs.BOM_UTF8
LATIN_1 = b"# -*- coding: latin-1 -*-\nWORD = 'caf\xe9'\n\ndef value():\n    return WORD\n"


def _source(n: int) -> str:
    return f"def value():\n    return {n}\n"


@pytest.fixture
def module(package: Package, reloader: HotReloader) -> types.ModuleType:
    """A tracked module whose value() returns 1."""
    tracked = package.module("enc", _source(1))
    reloader.track(tracked)
    return tracked


class TestByteOrderMark:
    def test_str(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """A str starting with a byte order mark swaps, with the digest of the text without it."""
        version = reloader.swap(module.__name__, "\ufeff" + _source(2))
        assert module.value() == 2
        assert version.sha256 == hashlib.sha256(_source(2).encode()).hexdigest()

    def test_bytes(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """UTF-8 bytes behind a byte order mark swap; without it they are the same source."""
        version = reloader.swap(module.__name__, BOM + _source(2).encode())
        assert module.value() == 2
        assert reloader.swap(module.__name__, _source(2).encode()) == version

    def test_own_file(self, package: Package, reloader: HotReloader) -> None:
        """A module whose file has a byte order mark re-reads it: same text, no new version."""
        path = package.path / "bom.py"
        path.write_bytes(BOM + _source(1).encode())
        module = importlib.import_module(package.qualified("bom"))
        reloader.track(module)
        assert reloader.swap(module.__name__).number == 1
        path.write_bytes(BOM + _source(2).encode())
        assert reloader.swap(module.__name__).number == 2
        assert module.value() == 2

    def test_path(self, module: types.ModuleType, reloader: HotReloader, package: Package) -> None:
        """A path to a file with a byte order mark swaps."""
        path = package.path / "release.py"
        path.write_bytes(BOM + _source(2).encode())
        reloader.swap(module.__name__, path)
        assert module.value() == 2

    def test_traversable(
        self, module: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Package data with a byte order mark swaps."""
        (package.path / "release.py").write_bytes(BOM + _source(2).encode())
        reloader.swap(module.__name__, importlib_resources.files(package.name) / "release.py")
        assert module.value() == 2

    def test_watch(self, module: types.ModuleType, reloader: HotReloader, package: Package) -> None:
        """The watcher applies a save with a byte order mark."""
        pytest.importorskip("watchfiles")
        with reloader.watch(package.path):
            (package.path / "enc.py").write_bytes(BOM + _source(2).encode())
            assert eventually(lambda: module.value() == 2)

    def test_newlines_do_not_make_a_new_source(
        self, module: types.ModuleType, reloader: HotReloader
    ) -> None:
        """CRLF bytes decode to the same text (and version) as LF bytes, as import does."""
        version = reloader.swap(module.__name__, _source(2).encode())
        assert reloader.swap(module.__name__, _source(2).replace("\n", "\r\n").encode()) == version


class TestCodingDeclaration:
    def test_bytes(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """Bytes with a latin-1 coding declaration are decoded as latin-1."""
        version = reloader.swap(module.__name__, LATIN_1)
        assert module.value() == "café"
        text = LATIN_1.decode("latin-1")
        assert version.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()

    def test_path_and_traversable(
        self, module: types.ModuleType, reloader: HotReloader, package: Package
    ) -> None:
        """Files with a coding declaration are decoded by it, from a path or package data."""
        path = package.path / "release.py"
        path.write_bytes(LATIN_1)
        reloader.swap(module.__name__, path)
        assert module.value() == "café"
        reloader.rollback(module.__name__)
        reloader.swap(module.__name__, importlib_resources.files(package.name) / "release.py")
        assert module.value() == "café"

    def test_own_file(self, package: Package, reloader: HotReloader) -> None:
        """A module imported from a latin-1 file re-reads it as the same source."""
        (package.path / "latin.py").write_bytes(LATIN_1)
        module = importlib.import_module(package.qualified("latin"))
        reloader.track(module)
        assert reloader.swap(module.__name__).number == 1
        assert module.value() == "café"

    def test_str_is_already_text(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """A declaration in a str source changes nothing: the text is used as it is."""
        reloader.swap(module.__name__, LATIN_1.decode("latin-1"))
        assert module.value() == "café"


class TestBadEncodings:
    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"def value():\n    return '\xff'\n", id="not-utf-8"),
            pytest.param(b"x = 1\n\n\ny = '\xff'\n", id="not-utf-8-after-line-2"),
            pytest.param(b"# coding: bogus\nx = 1\n", id="unknown-encoding"),
            pytest.param(b"# coding: rot13\nx = 1\n", id="not-a-text-encoding"),
            pytest.param(BOM + b"# coding: latin-1\nx = 1\n", id="bom-against-declaration"),
        ],
    )
    def test_bytes_and_files(
        self,
        module: types.ModuleType,
        reloader: HotReloader,
        package: Package,
        data: bytes,
    ) -> None:
        """Undecodable bytes are a CompileError naming the file; nothing changes."""
        failures: list[object] = []
        path = package.path / "bad.py"
        path.write_bytes(data)
        with signals.swap_failed.connected_to(lambda sender, **kw: failures.append(kw["error"])):
            with pytest.raises(CompileError, match="cannot be decoded") as raised:
                reloader.swap(module.__name__, data)
            assert raised.value.filename is None
            with pytest.raises(CompileError, match="cannot be decoded") as raised:
                reloader.swap(module.__name__, path)
            assert raised.value.filename == str(path)
            traversable = importlib_resources.files(package.name) / "bad.py"
            with pytest.raises(CompileError, match="cannot be decoded") as raised:
                reloader.swap(module.__name__, traversable)
            assert raised.value.filename == str(traversable)
        assert len(failures) == 3
        assert module.value() == 1
        assert [v.number for v in reloader.history(module.__name__)] == [1]


class TestLoneSurrogates:
    def test_str(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """A lone surrogate is a CompileError (a ValueError) at its line and column."""
        with pytest.raises(CompileError, match=r"lone surrogate .* line 2, column 6") as raised:
            reloader.swap(module.__name__, "x = 1\ny = '\ud800'\n")
        assert isinstance(raised.value, ValueError)
        assert (raised.value.lineno, raised.value.offset) == (2, 6)
        assert module.value() == 1
        assert [v.number for v in reloader.history(module.__name__)] == [1]

    def test_decoded_bytes(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """Bytes whose declared encoding yields a lone surrogate are a CompileError."""
        with pytest.raises(CompileError, match="lone surrogate"):
            reloader.swap(module.__name__, b"# coding: unicode_escape\nx = '\\ud800'\n")
        assert module.value() == 1


class TestWarningsAsErrors:
    def test_a_decoding_warning_made_an_error(
        self, module: types.ModuleType, reloader: HotReloader
    ) -> None:
        """A warning the codec emits, under filters that make it an error, is a CompileError."""
        data = b"# coding: unicode_escape\nx = 1  # \\q\n"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(CompileError, match="cannot be decoded"):
                reloader.swap(module.__name__, data)
        assert module.value() == 1


class TestTooComplex:
    def test_deeply_nested_source(self, module: types.ModuleType, reloader: HotReloader) -> None:
        """Code nested too deeply for the compiler is a CompileError, not a RecursionError."""
        with pytest.raises(CompileError, match="too complex"):
            reloader.swap(module.__name__, "x = " + "-" * 100_000 + "1\n")
        assert module.value() == 1


_ANY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class TestArbitrarySources:
    @_ANY
    @given(text=SOURCE_TEXTS)
    def test_text(self, module: types.ModuleType, reloader: HotReloader, text: str) -> None:
        """Any str either swaps or raises a SwapError."""
        with contextlib.suppress(SwapError):
            reloader.swap(module.__name__, text)

    @_ANY
    @given(data=SOURCE_BYTES)
    def test_bytes(self, module: types.ModuleType, reloader: HotReloader, data: bytes) -> None:
        """Any bytes, behind any coding declaration, either swap or raise a SwapError."""
        with contextlib.suppress(SwapError):
            reloader.swap(module.__name__, data)
