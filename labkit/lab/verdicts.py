"""Verdicts: what a single run says about a claimed effect, without ever failing on it.

A paper's effect is a statement about the mean over seeds; one seed can miss it by noise. So a
notebook never asserts an effect. It states each claim with :func:`verdict`, which prints one
line (held / not on this seed, with the measured value and the claimed bound) and records the
value and the verdict. ``tests/test_effects.py`` (``pytest -m slow``) asserts the claims on the
mean over at least five seeds, with an explicit margin.

Assertions stay in notebooks only for what must hold on every seed because the code is right
(an identity, a budget that must match); never for what the training happens to reach.

    labkit.verdict("sec_informative_gain", frac_sec - frac_uniform, above=0,
                   claim="SEC draws more informative groups than uniform")
    # verdict  sec_informative_gain: held on this seed (+0.062; claimed > 0): SEC draws ...

Records: ``<name>`` (the value) and ``held/<name>`` (a bool), so the summary over seeds of
``labkit run NB --seed 0 1 2 3 4`` shows the mean value and the share of seeds where it held.
"""
from __future__ import annotations

import math

from labkit.lab.session import current_run
from labkit.lab.record import record

__all__ = ["verdict"]


def _check_bound(name: str, bound) -> float | None:
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
        raise ValueError(f"verdict({name!r}): bounds must be finite numbers; got {bound!r}")
    return float(bound)


def verdict(name: str, value, *, above=None, below=None, claim: str = "", scale_note: bool = True) -> bool:
    """Say whether a claimed effect held on this run: ``above < value < below``.

    ``value`` is a number (the measured effect on this seed: a gap, a rate, a correlation);
    ``above``/``below`` are the claim's bounds (at least one). Prints one line, records
    ``name`` -> value and ``held/name`` -> bool, and returns the bool. Never raises because an
    effect did not show; only for a malformed call (a bad name, no bound, a non-number)."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"verdict: name must be a non-empty string without '/'; got {name!r}")
    low, high = _check_bound(name, above), _check_bound(name, below)
    if low is None and high is None:
        raise ValueError(f"verdict({name!r}): give the claimed bound as above= and/or below=")
    numeric = not isinstance(value, (bool, str)) and hasattr(value, "__float__")  # numpy/torch scalars too
    if not numeric:
        raise ValueError(f"verdict({name!r}): value must be a number; got {type(value).__name__}")
    value = float(value)
    held = math.isfinite(value) and (low is None or value > low) and (high is None or value < high)
    bounds = " and ".join(b for b in (f"> {low:+.3g}" if low is not None else "",
                                      f"< {high:+.3g}" if high is not None else "") if b)
    state = "held on this seed" if held else "NOT on this seed"
    line = f"verdict  {name}: {state} ({value:+.3f}; claimed {bounds})"
    if claim:
        line += f": {claim}"
    run = current_run()
    if scale_note and run is not None and run.scale == "smoke":
        line += "  [smoke scale: too short for effects; informational]"
    print(line)
    record(name, value)
    record(f"held/{name}", bool(held))
    return bool(held)
