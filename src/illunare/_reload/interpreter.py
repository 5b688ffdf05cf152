"""Whether this interpreter can run hot code swapping, checked when the first HotReloader is made.

A switch relies on three things only CPython with a GIL provides: a
module's dict can be exchanged through the C API (``namespace.py``); a
C-level pass over built-in callables runs without any other thread or
signal handler getting in (``switch.py``: the GIL is handed over, and
signal handlers run, only between bytecodes); and the layouts of the
supported versions, 3.10 to 3.13, which the tests exercise. Proxies are
retargeted by wrapt's C setter; without wrapt's C extension a switch would
run Python code, so that is refused too. Free-threaded
builds (3.13t) have no GIL, so the premise of an atomic switch is false
there. Importing illunare never runs this check: feature flags work on any
interpreter.
"""

from __future__ import annotations

import sys
import types

from illunare._reload.namespace import set_dict
from illunare._reload.proxy import C_PROXIES
from illunare.exceptions import UnsupportedInterpreterError

__all__ = ["SUPPORTED", "require_supported_interpreter"]

#: The (major, minor) versions whose internals hot swapping is built and tested on.
SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))

_verified = False


def _problem() -> str | None:
    """Why hot swapping cannot run here, or ``None``."""
    implementation = sys.implementation.name
    if implementation != "cpython":
        return f"hot code swapping needs CPython; this is {implementation}"
    version = tuple(sys.version_info[:2])
    if version not in SUPPORTED:
        supported = ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)
        return f"hot code swapping supports CPython {supported}; this is {version[0]}.{version[1]}"
    import sysconfig  # noqa: PLC0415  # costs milliseconds; only reloaders need it

    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if sysconfig.get_config_var("Py_GIL_DISABLED") or (gil_enabled and not gil_enabled()):
        return (
            "hot code swapping needs the GIL to make a switch atomic; "
            "this is a free-threaded build of CPython"
        )
    if not C_PROXIES:
        return (
            "hot code swapping needs wrapt's C extension "
            "(it is disabled by WRAPT_DISABLE_EXTENSIONS, or failed to build)"
        )
    try:
        setter = set_dict()
    except (ImportError, AttributeError) as error:
        return f"hot code swapping needs ctypes.pythonapi (CPython's C API): {error}"
    probe = types.ModuleType("illunare_probe")
    replacement = {"__name__": "illunare_probe"}
    setter(probe, replacement, None)
    if probe.__dict__ is not replacement:
        return "this interpreter's modules do not take a new namespace through its C API"
    return None


def require_supported_interpreter() -> None:
    """Raise ``UnsupportedInterpreterError`` unless hot swapping can run here (checked once)."""
    global _verified  # noqa: PLW0603  # a one-time verdict for the whole process
    if _verified:
        return
    problem = _problem()
    if problem is not None:
        raise UnsupportedInterpreterError(problem)
    _verified = True
