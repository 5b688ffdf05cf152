"""The public surface: __all__, __version__, the error tree and the signals."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import blinker

import illunare
from illunare import exceptions, signals


class TestPublicApi:
    def test_all_lists_exactly_the_public_names(self) -> None:
        """illunare.__all__ is sorted and names every public attribute, nothing else."""
        public = {
            name
            for name in vars(illunare)
            if not name.startswith("_") and not isinstance(getattr(illunare, name), type(illunare))
        }
        assert set(illunare.__all__) - {"__version__"} == public
        assert list(illunare.__all__) == sorted(illunare.__all__)

    def test_version_matches_the_installed_metadata(self) -> None:
        """__version__ is the installed distribution's version."""
        assert illunare.__version__ == importlib.metadata.version("illunare")

    def test_every_error_has_one_root_and_refines_a_builtin(self) -> None:
        """Each exception derives from IllunareError and from the builtin it means."""
        builtins = (
            TypeError,
            ValueError,
            LookupError,
            RuntimeError,
            NameError,
            ImportError,
            OSError,
            UserWarning,
        )
        for name in exceptions.__all__:
            error = getattr(exceptions, name)
            assert issubclass(error, illunare.IllunareError)
            assert getattr(illunare, name) is error
            if error not in (illunare.IllunareError, illunare.SwapError, illunare.FlagError):
                assert issubclass(error, builtins), name

    def test_every_signal_is_documented(self) -> None:
        """signals.__all__ holds blinker signals whose docstrings name the sender and kwargs."""
        expected = {
            "module_tracked", "module_swapped", "swap_failed", "module_rolled_back",
            "flag_updated", "backend_error", "deployment_started", "step_succeeded",
            "step_failed", "deployment_succeeded", "deployment_rolled_back", "deployment_failed",
            "performance_alert", "rollback_alert", "rollout_step", "rollout_finished",
            "config_updated",
        }  # fmt: skip
        assert set(signals.__all__) == expected
        for name in signals.__all__:
            signal = getattr(signals, name)
            assert isinstance(signal, blinker.NamedSignal)
            assert signal.name == name
            assert "sender" in (signal.__doc__ or "")
            assert "kwargs" in (signal.__doc__ or "")

    def test_every_signal_is_sent_by_some_code(self) -> None:
        """No signal is documented for a feature that does not send it (yet)."""
        source = "".join(
            path.read_text()
            for path in Path(signals.__file__).parent.rglob("*.py")
            if path.name != "signals.py"
        )
        for name in signals.__all__:
            assert f"signals.{name}" in source, name
