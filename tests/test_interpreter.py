"""Which interpreters can hot-swap: checked by the first HotReloader, never by ``import illunare``.

Each unsupported interpreter is faked in a fresh subprocess before illunare
is imported; flags must keep working there, and hot swapping must refuse
with a clear, typed error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from illunare import HotReloader, IllunareError, UnsupportedInterpreterError

# Imports illunare the way a flags-only user does, then tries each way of
# making a reloader; prints one line per refusal.
ATTEMPTS = """
from illunare import FeatureFlags, HotReloader, UnsupportedInterpreterError
from illunare import default_reloader, hot

flags = FeatureFlags()
flags.update("beta", {"enabled": True})
print("flags", flags.is_enabled("beta"))
for attempt in (HotReloader, default_reloader, lambda: hot(print)):
    try:
        attempt()
    except UnsupportedInterpreterError as error:
        print("refused:", error)
"""


def run(fake: str, environment: dict[str, str]) -> list[str]:
    """Run ``fake`` then ATTEMPTS in a fresh interpreter; its output lines."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(fake) + ATTEMPTS],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


class TestUnsupportedInterpreters:
    @pytest.mark.parametrize(
        ("fake", "environment", "reason"),
        [
            ("import ctypes\ndel ctypes.pythonapi\n", {}, "needs ctypes.pythonapi"),
            ("import sys\nsys.implementation.name = 'pypy'\n", {}, "needs CPython; this is pypy"),
            (
                # after importing: attrs itself branches on the version
                "import illunare, sys\nsys.version_info = (3, 14, 0, 'final', 0)\n",
                {},
                "supports CPython 3.10, 3.11, 3.12, 3.13; this is 3.14",
            ),
            ("import sys\nsys._is_gil_enabled = lambda: False\n", {}, "free-threaded build"),
            ("", {"WRAPT_DISABLE_EXTENSIONS": "1"}, "needs wrapt's C extension"),
        ],
        ids=["no-pythonapi", "pypy", "python-3.14", "free-threaded", "pure-python-wrapt"],
    )
    def test_flags_work_and_reloaders_refuse_with_a_clear_error(
        self, fake: str, environment: dict[str, str], reason: str
    ) -> None:
        """import illunare and flags work; HotReloader, default_reloader and hot raise the error."""
        lines = run(fake, environment)
        assert lines[0] == "flags True"
        assert len(lines) == 4
        assert all(line.startswith("refused: hot code swapping") for line in lines[1:])
        assert all(reason in line for line in lines[1:])

    def test_importing_illunare_does_not_touch_the_c_api(self) -> None:
        """Neither ctypes nor the layout probe is loaded before a reloader is made."""
        done = subprocess.run(
            [sys.executable, "-c", "import sys, illunare; print('ctypes' in sys.modules)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False"]


class TestSupportedInterpreter:
    def test_this_interpreter_is_supported(self) -> None:
        """The test suite's own interpreters are CPython 3.10-3.13 with a GIL."""
        assert isinstance(HotReloader(), HotReloader)

    def test_the_error_refines_runtime_error(self) -> None:
        """UnsupportedInterpreterError is an IllunareError and a RuntimeError."""
        assert issubclass(UnsupportedInterpreterError, IllunareError)
        assert issubclass(UnsupportedInterpreterError, RuntimeError)
