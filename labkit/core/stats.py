"""Statistics over seeds: the mean and sample std a multi-seed run reports, and the one-sided
Student-t bound of the mean with which the slow suite decides whether a claim holds.

    mean - t(c, n-1) * s / sqrt(n)  >  bound      (a claim "above": its lower bound clears it)
"""
from __future__ import annotations

import math

# t(0.95, df) for df = 1..30 (one-sided 95%); beyond, the Cornish-Fisher expansion around the
# normal quantile z is exact to 1e-4.
_T95 = (6.3138, 2.9200, 2.3534, 2.1318, 2.0150, 1.9432, 1.8946, 1.8595, 1.8331, 1.8125,
        1.7959, 1.7823, 1.7709, 1.7613, 1.7531, 1.7459, 1.7396, 1.7341, 1.7291, 1.7247,
        1.7207, 1.7171, 1.7139, 1.7109, 1.7081, 1.7056, 1.7033, 1.7011, 1.6991, 1.6973)
Z95 = 1.6449


def mean_std(values) -> tuple[float, float]:
    """(mean, sample std); the std of one value is 0; NaN for both if any value is not finite."""
    xs = [float(x) for x in values]
    if not xs:
        raise ValueError("mean_std needs at least one value; got none")
    if not all(math.isfinite(x) for x in xs):
        return math.nan, math.nan
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return mean, std


def t95(df: int) -> float:
    """The one-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an integer >= 1; got {df!r}")
    if df <= len(_T95):
        return _T95[df - 1]
    z = Z95
    # t ~ z + (z^3 + z) / 4df + (5z^5 + 16z^3 + 3z) / 96df^2
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_bounds(values) -> tuple[float, float, float]:
    """(mean, lower, upper): the one-sided 95% Student-t bounds of the mean of `values` (>= 2)."""
    xs = list(values)
    if len(xs) < 2:
        raise ValueError(f"mean_bounds needs at least 2 values (seeds); got {len(xs)}")
    mean, std = mean_std(xs)
    half = t95(len(xs) - 1) * std / math.sqrt(len(xs))
    return mean, mean - half, mean + half
