"""FileBackend: flags in a JSON file, edits picked up live, bad edits kept out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from illunare import FeatureFlags, FileBackend, FlagConfigError, InvalidArgumentError

from .conftest import eventually

PREMIUM = {"conditions": [{"type": "user_segment", "value": "premium"}]}


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"checkout": PREMIUM}))
    return path


@pytest.fixture
def backend(flag_file: Path) -> Iterator[FileBackend]:
    backend = FileBackend(flag_file, poll_interval=0.02)
    yield backend
    backend.close()


class TestFileBackend:
    def test_flags_come_from_the_file(self, backend: FileBackend) -> None:
        """The file's flags are there from the start."""
        flags = FeatureFlags(backend=backend)
        assert flags.is_enabled("checkout", {"user_segment": "premium"})

    def test_edits_are_picked_up_live(self, backend: FileBackend, flag_file: Path) -> None:
        """Changing, adding and removing flags in the file reaches every FeatureFlags."""
        flags = FeatureFlags(backend=backend)
        flag_file.write_text(json.dumps({"search": {"enabled": True}}))
        assert eventually(lambda: flags.is_enabled("search"))
        assert "checkout" not in flags.flags()

    def test_a_bad_edit_keeps_the_last_good_flags(
        self, backend: FileBackend, flag_file: Path
    ) -> None:
        """Broken JSON or a bad flag config is refused and explained; the next good edit applies."""
        flags = FeatureFlags(backend=backend)
        flag_file.write_text("{not json")
        assert eventually(lambda: backend.error is not None)
        assert "JSON" in (backend.error or "")
        assert flags.is_enabled("checkout", {"user_segment": "premium"})
        flag_file.write_text(json.dumps({"checkout": {"conditions": [{"type": "nope"}]}}))
        assert eventually(lambda: backend.error is None)
        assert flags.is_enabled("checkout", {"user_segment": "premium"})
        flag_file.write_text(json.dumps({"checkout": {"enabled": False}}))
        assert eventually(lambda: not flags.is_enabled("checkout", {"user_segment": "premium"}))

    def test_updates_write_the_file_for_everyone(
        self, backend: FileBackend, flag_file: Path
    ) -> None:
        """update() writes the file atomically; another backend on it sees the change."""
        other_backend = FileBackend(flag_file, poll_interval=0.02)
        try:
            other = FeatureFlags(backend=other_backend)
            flags = FeatureFlags(backend=backend)
            flags.update("search", {"enabled": True})
            assert json.loads(flag_file.read_text())["search"] == {"enabled": True}
            assert eventually(lambda: other.is_enabled("search"))
            flags.delete("checkout")
            assert eventually(lambda: "checkout" not in other.flags())
        finally:
            other_backend.close()

    def test_a_missing_file_starts_empty(self, tmp_path: Path) -> None:
        """No file yet: no flags; the first update creates it."""
        backend = FileBackend(tmp_path / "new" / "flags.json")
        try:
            flags = FeatureFlags(backend=backend)
            assert flags.flags() == {}
            flags.update("f", {})
            assert (tmp_path / "new" / "flags.json").exists()
        finally:
            backend.close()

    def test_bad_input(self, tmp_path: Path) -> None:
        """A file that is not a JSON object, or a bad poll interval, is refused at once."""
        path = tmp_path / "flags.json"
        path.write_text("[1, 2]")
        with pytest.raises(FlagConfigError):
            FileBackend(path)
        with pytest.raises(InvalidArgumentError):
            FileBackend(tmp_path / "x.json", poll_interval=0)
