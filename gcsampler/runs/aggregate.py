"""Per-value summaries of a sweep: median and inter-quartile range (or mean and its
confidence interval) over seeds.

A sweep varies one setting (the axis, e.g. ``width``) over several problem seeds; each
(value, seed) cell gives one row, a dict of results. Like the paper (Alexander et al.,
NeurIPS 2025), a swept value is summarized by the median over seeds with an inter-quartile
bar (25th to 75th percentile). Pure NumPy; ``plots.plot_sweep`` draws these numbers.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import stats


class Band(NamedTuple):
    """One swept value's median and quartiles over the ``n`` finite results (NaN when n = 0)."""

    value: object
    median: float
    q25: float
    q75: float
    n: int


class Series(NamedTuple):
    """One line of a figure or column of a table: its legend label and row key.

    ``empty``: why a seed can have no value when that is itself a result (G&C: nothing
    accepted); such a series is drawn even where no seed has a value, others are left out.
    ``verdict``: the row key saying whether the seed's runs fit the training data (1.0 or
    True: all of them; a smaller fraction or False: not all), ``goal`` what fitting means;
    ``shortfall`` (optional) says in full what a hollow mark means, if not that.
    """

    label: str
    column: str
    empty: str = ""
    verdict: str = ""
    goal: str = ""
    shortfall: str = ""


class Quantity(NamedTuple):
    """A plottable y quantity: its axis label, its series, whether its y axis is
    logarithmic by default, and the floor of that axis (values below it, such as exact
    recovery at 1e-21, are drawn on it; None: a decade below the smallest positive value)."""

    label: str
    series: tuple[Series, ...]
    log_y: bool
    floor: float | None = None


QUANTITIES = {
    "gen_loss": Quantity("generalization loss", (
        Series("G&C", "gnc_gen_loss_mean", empty="no draw accepted"),
        Series("GD", "gd_gen_loss", verdict="gd_fitted", goal="train loss < eps"),
        Series("prior (chance)", "prior_gen_loss_mean"),
        Series("min nuclear norm", "min_nuclear_gen_loss"),
        Series("min Frobenius norm", "min_frobenius_gen_loss"),
    ), log_y=True, floor=1e-10),  # log: GD and exact recovery lie decades below chance
    "acceptance_rate": Quantity("acceptance rate (accepted / draws)", (
        Series("G&C acceptance", "acceptance_rate", empty="no estimate"),
    ), log_y=True),
}
QUANTITY_NAMES = tuple(QUANTITIES)  # the choices of the CLI's --y


def _finite(value):
    """``value`` as a float if it is a finite number, else None (missing, None or NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _band(value, results):
    finite = [x for x in map(_finite, results) if x is not None]
    if not finite:
        return Band(value, math.nan, math.nan, math.nan, 0)
    q25, median, q75 = np.percentile(finite, [25, 50, 75], method="linear")
    return Band(value, float(median), float(q25), float(q75), len(finite))


def median_iqr(rows, axis, column):
    """Median and quartiles of ``row[column]`` per distinct ``row[axis]`` (first-appearance order).

    NaN, None and a missing ``column`` are ignored; ``n`` counts the finite values used. The
    quartiles are ``np.percentile``'s default linear interpolation between order statistics
    (so with 2 seeds they lie a quarter of the way in from each end).
    """
    groups = {}
    for row in rows:
        groups.setdefault(row[axis], []).append(row.get(column))
    return [_band(value, results) for value, results in groups.items()]


def mean_ci(rows, axis, column):
    """Per distinct ``row[axis]``, the mean of ``row[column]`` over the finite values with a
    Student-t 95% confidence interval, as a :class:`Band` (``median`` holds the mean, ``q25``
    and ``q75`` the interval; the interval is the mean itself for a single value and NaN for
    none). The classifier study's "mean of per-run means" (Chiang et al.) is this over seeds."""
    groups = {}
    for row in rows:
        groups.setdefault(row[axis], []).append(row.get(column))
    bands = []
    for value, results in groups.items():
        finite = np.array([x for x in map(_finite, results) if x is not None])
        if not finite.size:
            bands.append(Band(value, math.nan, math.nan, math.nan, 0))
            continue
        mean = float(finite.mean())
        half = 0.0
        if finite.size > 1:
            half = float(stats.t.ppf(0.975, finite.size - 1) * finite.std(ddof=1)
                         / math.sqrt(finite.size))
        bands.append(Band(value, mean, mean - half, mean + half, int(finite.size)))
    return bands


def fit_counts(rows, axis, verdict):
    """Per distinct ``row[axis]``: ``(fit, judged)``, the seeds whose ``row[verdict]`` says
    every run fit (True or 1.0) and the seeds with a verdict (not None, NaN or missing)."""
    counts = {}
    for row in rows:
        fit, judged = counts.get(row[axis], (0, 0))
        value = _finite(row.get(verdict))
        if value is not None:
            fit, judged = fit + int(value >= 1), judged + 1
        counts[row[axis]] = (fit, judged)
    return counts


def _cell(band, series):
    if band.n == 0:
        return series.empty or "missing"
    return f"{band.median:.4g} [{band.q25:.4g}, {band.q75:.4g}] n={band.n}"


def median_table(rows, axis, quantity):
    """Plain-text table of ``QUANTITIES[quantity]``: one line per axis value, one column per series.

    A cell is ``median [q25, q75] n=k`` (4 significant digits), or, when no seed gave a
    finite value, why (the series' ``empty``, such as 'no draw accepted') or ``missing``.
    """
    spec = QUANTITIES[quantity]
    bands = [median_iqr(rows, axis, series.column) for series in spec.series]
    columns = [[axis, *(str(band.value) for band in bands[0])]]
    columns += [[series.label, *(_cell(band, series) for band in cells)]
                for series, cells in zip(spec.series, bands)]
    widths = [max(map(len, column)) for column in columns]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in zip(*columns)]
    return f"{spec.label}: median [25th, 75th percentile] over seeds\n" + "\n".join(lines)
