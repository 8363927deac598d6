"""Confidence intervals of a mean over replications (Student's t, computed here: no SciPy needed)."""

from __future__ import annotations

import math

import numpy as np


def t_two_sided_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer `df` degrees of freedom, in closed form
    (Abramowitz and Stegun 26.7.3 for odd df, 26.7.4 for even df)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        total, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):  # cos(1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return (2 / math.pi) * (theta + math.sin(theta) * total) if df > 1 else (2 / math.pi) * theta
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value t such that P(|T| <= t) = confidence (bisection to 1e-12)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    lo, hi = 0.0, 1.0
    while t_two_sided_probability(hi, df) < confidence:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_two_sided_probability(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[int, float, float, float]:
    """(n, mean, sample standard deviation, CI half-width) over the finite values; the half-width is
    NaN below two values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return 0, float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if n < 2:
        return n, mean, float("nan"), float("nan")
    std = float(x.std(ddof=1)) if np.ptp(x) > 0 else 0.0  # equal values: exactly 0, not rounding noise
    return n, mean, std, t_critical(n - 1, confidence) * std / math.sqrt(n)
