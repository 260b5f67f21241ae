"""Parameter checks: each accepted value, or a one-line :class:`ParameterError` that names the
parameter and says what is accepted, e.g. ``scale must be one of smoke, workshop, gpu; got 'big'``."""
from __future__ import annotations

import math
import numbers

SCALES = ("smoke", "workshop", "gpu")


class ParameterError(ValueError):
    """A notebook parameter has a value that is not accepted. The message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# ---------------------------------------------------------------------------- validation

def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _bounds_text(kind: str, min=None, max=None, gt=None) -> str:
    if gt is not None and max is not None:
        return f"{kind} in ({_fmt(gt)}, {_fmt(max)}]"
    if min is not None and max is not None:
        return f"{kind} in [{_fmt(min)}, {_fmt(max)}]"
    if gt is not None:
        return f"{kind} > {_fmt(gt)}"
    if min is not None:
        return f"{kind} >= {_fmt(min)}"
    if max is not None:
        return f"{kind} <= {_fmt(max)}"
    return kind


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    # numpy / torch integer scalars
    return type(value).__name__ in {"int8", "int16", "int32", "int64", "uint8", "uint16",
                                    "uint32", "uint64"} and hasattr(value, "item")


def check_int(name: str, value, min=None, max=None) -> int:
    """Return ``value`` as an int, or raise a one-line :class:`ParameterError`.

    >>> check_int("steps", -3, min=1)
    Traceback (most recent call last):
    labkit.core.checks.ParameterError: steps must be an integer >= 1; got -3
    """
    want = _bounds_text("an integer", min=min, max=max)
    if not _is_int(value):
        raise ParameterError(f"{name} must be {want}; got {_fmt(value)}")
    value = int(value)
    if (min is not None and value < min) or (max is not None and value > max):
        raise ParameterError(f"{name} must be {want}; got {value}")
    return value


def check_float(name: str, value, min=None, max=None, gt=None) -> float:
    """Return ``value`` as a finite float (ints accepted), or raise a one-line ParameterError.

    ``min``/``max`` are inclusive bounds, ``gt`` a strict lower bound (``lr``: ``gt=0``).
    """
    want = _bounds_text("a finite number", min=min, max=max, gt=gt)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) and not (
            hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        raise ParameterError(f"{name} must be {want}; got {_fmt(value)}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be {want}; got {_fmt(value)}") from None
    if (not math.isfinite(value) or (min is not None and value < min)
            or (max is not None and value > max) or (gt is not None and value <= gt)):
        raise ParameterError(f"{name} must be {want}; got {value!r}")
    return value


def check_choice(name: str, value, choices):
    """Return ``value`` if it is one of ``choices``, or raise a one-line ParameterError.

    >>> check_choice("scale", "big", ("smoke", "workshop", "gpu"))
    Traceback (most recent call last):
    labkit.core.checks.ParameterError: scale must be one of smoke, workshop, gpu; got 'big'
    """
    choices = list(choices)
    try:
        ok = any(value is c or (type(value) is type(c) and value == c) for c in choices)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        listed = ", ".join(str(c) for c in choices)
        raise ParameterError(f"{name} must be one of {listed}; got {_fmt(value)}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is True or False, or raise a one-line ParameterError."""
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be True or False; got {_fmt(value)}")
    return value


def check_timeout(value) -> float | None:
    """Seconds allowed per notebook cell: None (no limit) or a finite number > 0; fractions
    are honoured (``1.5`` waits a second and a half)."""
    return None if value is None else check_float("timeout", value, gt=0)


def is_finite_value(value) -> bool:
    """False when ``value`` is, or contains (in lists and dicts), a NaN or infinite float."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_finite_value(v) for v in value)
    if isinstance(value, dict):
        return all(is_finite_value(v) for v in value.values())
    return True


def check_seed(seed) -> int:
    if not _is_int(seed) or int(seed) < 0:
        raise ParameterError(f"seed must be a non-negative integer; got {_fmt(seed)}")
    if int(seed) >= 2 ** 32:
        raise ParameterError(f"seed must be a non-negative integer below 2**32; got {seed}")
    return int(seed)
