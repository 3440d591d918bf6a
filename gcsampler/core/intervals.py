"""Confidence intervals and moments shared by every task and method.

- :func:`wilson_interval`: a binomial proportion (acceptance rates), good at 0 successes;
- :func:`moments`: mean, standard deviation and standard error from running sums;
- :func:`t_interval`: the mean of a few independent estimates (splitting replicates).
"""

import math

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054
CONFIDENCE = 0.95


def wilson_interval(successes, trials, z=Z95):
    """Wilson score interval for a binomial proportion (good at 0 successes too)."""
    if trials == 0:
        return (math.nan, math.nan)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def moments(count, total, total_sq):
    """Mean, sample standard deviation and standard error; NaN where undefined."""
    if count == 0:
        return math.nan, math.nan, math.nan
    mean = total / count
    if count == 1:
        return mean, math.nan, math.nan
    var = max(0.0, (total_sq - total * mean) / (count - 1))
    return mean, math.sqrt(var), math.sqrt(var / count)


def t_interval(values, confidence=CONFIDENCE):
    """(mean, standard error, lo, hi) of the finite ``values``: a t interval over them
    (NaN where fewer than two)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, math.nan, math.nan, math.nan
    se = float(np.std(values, ddof=1) / math.sqrt(values.size))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, values.size - 1)) * se
    return mean, se, mean - half, mean + half
