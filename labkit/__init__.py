"""labkit: the shared substrate behind the notebook series (see DESIGN.md).

The top level re-exports what every notebook uses; imports are lazy so `import labkit`
stays fast and a notebook that needs no torch never loads it.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "setup": "labkit.lab.session",
    "ParameterError": "labkit.core.checks",
    "record": "labkit.lab.record",
    "results": "labkit.lab.record",
    "record_time": "labkit.lab.record",
    "verdict": "labkit.lab.verdicts",
    "LivePlot": "labkit.lab.live",
    "load_policy": "labkit.core.policy",
    "check": "labkit.lab.exercises",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


# the keys of _EXPORTS, written out so that static tools can read them (tests/test_machinery.py checks)
__all__ = ["LivePlot", "ParameterError", "check", "load_policy", "record", "record_time", "results", "setup", "verdict"]
