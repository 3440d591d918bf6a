"""Per-value summaries of a sweep: median and inter-quartile range over seeds.

A sweep varies one setting (the axis, e.g. ``width``) over several problem seeds; each
(value, seed) cell gives one row, a dict of results. Like the paper (Alexander et al.,
NeurIPS 2025), a swept value is summarized by the median over seeds with an inter-quartile
bar (25th to 75th percentile). Pure NumPy; ``plots.plot_sweep`` draws these numbers.
"""

import math
from typing import NamedTuple

import numpy as np


class Band(NamedTuple):
    """One swept value's median and quartiles over the ``n`` finite results (NaN when n = 0)."""

    value: object
    median: float
    q25: float
    q75: float
    n: int


class Quantity(NamedTuple):
    """A plottable y quantity: its axis label, its (legend label, row key) series, and
    whether its y axis is logarithmic."""

    label: str
    series: tuple[tuple[str, str], ...]
    log_y: bool


QUANTITIES = {
    "gen_loss": Quantity("generalization loss", (
        ("G&C", "gnc_gen_loss_mean"),
        ("GD", "gd_gen_loss"),
        ("prior (chance)", "prior_gen_loss_mean"),
        ("min nuclear norm", "min_nuclear_gen_loss"),
        ("min Frobenius norm", "min_frobenius_gen_loss"),
    ), log_y=False),  # linear, as in the paper: GD and exact recovery sit at 0
    "acceptance_rate": Quantity("acceptance rate (accepted / draws)", (
        ("G&C acceptance", "acceptance_rate"),
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


def _cell(band):
    if band.n == 0:
        return "missing"
    return f"{band.median:.4g} [{band.q25:.4g}, {band.q75:.4g}] n={band.n}"


def median_table(rows, axis, quantity):
    """Plain-text table of ``QUANTITIES[quantity]``: one line per axis value, one column per series.

    A cell is ``median [q25, q75] n=k`` (4 significant digits), or ``missing`` when no seed
    gave a finite value.
    """
    spec = QUANTITIES[quantity]
    bands = [median_iqr(rows, axis, column) for _, column in spec.series]
    columns = [[axis, *(str(band.value) for band in bands[0])]]
    columns += [[label, *map(_cell, series)] for (label, _), series in zip(spec.series, bands)]
    widths = [max(map(len, column)) for column in columns]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in zip(*columns)]
    return f"{spec.label}: median [25th, 75th percentile] over seeds\n" + "\n".join(lines)
