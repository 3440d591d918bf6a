"""The figure of a sweep (one setting varied over seeds): per swept value, the median over
seeds with a 25th-75th percentile bar, as in the paper's figures, on a log y axis by default.
Nothing missing is dropped: a point from fewer seeds than ran is marked ``n=k/N``, a value where
no seed has one gets a 'v' on the x axis, a baseline that did not fit in every seed is hollow.
"""

import collections
import math

import numpy as np

from gcsampler.plots.common import (_draw_series, _legend, _shift, _titles, _y_scale, pyplot,
                                    save_figure)
from gcsampler.runs import aggregate


# Colours match losses.png: G&C red, GD black, the prior gray. Reference solutions are dashed.
_SWEEP_STYLE = {
    "gnc_gen_loss_mean": {"color": "red", "marker": "o"},
    "acceptance_rate": {"color": "red", "marker": "o"},
    "gd_gen_loss": {"color": "black", "marker": "s"},
    "prior_gen_loss_mean": {"color": "tab:gray", "marker": "^"},
    "min_nuclear_gen_loss": {"color": "tab:blue", "linestyle": "--"},
    "min_frobenius_gen_loss": {"color": "tab:green", "linestyle": "--"},
}


def _is_number(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def _sweep_axis(rows, axis):
    """The swept values in plotting order, their x positions, and the x scale.

    Numbers are sorted and placed at their value, on a "log" scale when all positive and
    spanning a factor of 10 or more (e.g. widths), else "linear" (e.g. depths); anything else
    (str, bool) is a "category" at 0, 1, ... in first-appearance order.
    """
    values = list(dict.fromkeys(row[axis] for row in rows))
    if not all(map(_is_number, values)):
        return values, list(range(len(values))), "category"
    values.sort()
    low, high = float(values[0]), float(values[-1])
    return values, [float(v) for v in values], "log" if 0 < low and 10 * low <= high else "linear"


def plot_sweep(rows, axis, out_stem, *, quantity="gen_loss", title="", note="", log_y=None):
    """Draw :func:`sweep_figure` and write it as ``out_stem.png`` and ``.pdf``; returns both."""
    return save_figure(sweep_figure(rows, axis, quantity=quantity, title=title, note=note,
                                    log_y=log_y), out_stem)


def sweep_figure(rows, axis, *, quantity="gen_loss", title="", note="", log_y=None):
    """Figure of one sweep: per value of ``row[axis]``, each series of
    ``aggregate.QUANTITIES[quantity]`` as the median over seeds with a 25th-75th percentile
    bar (:func:`_draw_series` says how missing values and unfit baselines are marked);
    returns the figure.

    A series with no value anywhere is left out unless its ``empty`` says why (G&C: no draw
    accepted). ``log_y``: a log (True) or linear (False) y axis; None: the quantity's default.
    A log axis needs a positive value: without one it is linear. The subtitle is eps (unless
    swept) and ``note`` (e.g. the draws per seed).
    """
    if not rows:
        raise ValueError("plot_sweep: no rows")
    plt = pyplot()
    from matplotlib.lines import Line2D

    spec = aggregate.QUANTITIES[quantity]
    values, positions, x_scale = _sweep_axis(rows, axis)
    per_value = collections.Counter(row[axis] for row in rows)
    seeds = [per_value[value] for value in values]
    drawn, absent = [], []
    for series in spec.series:
        by_value = {band.value: band for band in aggregate.median_iqr(rows, axis, series.column)}
        bands = [by_value[value] for value in values]
        if series.empty or any(band.n for band in bands):
            drawn.append((series, bands))
        else:
            absent.append(series.label)
    ys = np.array([(b.median, b.q25, b.q75) for _, bands in drawn for b in bands], float)
    log = spec.log_y if log_y is None else log_y
    floor = _log_floor(ys, spec.floor) if log else None

    fig, ax = plt.subplots(figsize=(9.0, 4.6), layout="constrained")
    entries = {}
    for index, (series, bands) in enumerate(drawn):
        fits = None
        if series.verdict:
            counts = aggregate.fit_counts(rows, axis, series.verdict)
            fits = [counts[value] for value in values]
        style = _SWEEP_STYLE.get(series.column, {"marker": "o"})
        entries.update(_draw_series(ax, positions, bands, seeds, series, style,
                                    shift=_shift(index, len(drawn)), floor=floor, fits=fits))
    _y_scale(ax, floor is not None)
    if floor is not None and np.any(ys <= floor):
        style = {"color": "dimgray", "linestyle": ":", "linewidth": 1}
        ax.axhline(floor, **style)
        entries[f"\u2264 {floor:.0e}: drawn on the dotted line".replace("e-0", "e-")] = (
            Line2D([], [], **style))
    elif floor is None and not np.any(ys < 0):  # a linear axis of values >= 0 starts at 0
        ax.set_ylim(bottom=-0.04 * ax.get_ylim()[1])
    if absent:
        entries[f"no value, left out: {', '.join(absent)}"] = Line2D([], [], linestyle="none")
    if x_scale == "log":
        ax.set_xscale("log")
    elif x_scale == "category":
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xticks(positions, [str(value) for value in values])
    ax.set_xticks([], minor=True)
    ax.set_xlabel(axis)
    ax.set_ylabel(spec.label)
    _titles(ax, title, "; ".join(filter(None, [_eps_text(rows, axis), note])))
    _legend(ax, [ax], entries, seeds, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def _eps_text(rows, axis):
    """'eps = 0.02' of the rows ('' when eps is swept or the rows do not say)."""
    eps = sorted({row["eps"] for row in rows if "eps" in row})
    if axis == "eps" or not eps:
        return ""
    return "eps = " + ", ".join(f"{value:g}" for value in eps)


def _log_floor(values, floor=None):
    """The floor of a log y axis for ``values``: ``floor``, or a decade below the smallest
    positive value when that is higher; None when no value is positive."""
    positive = values[values > 0]  # NaN is not
    if not positive.size:
        return None
    return max(floor or 0.0, 10.0 ** (math.floor(math.log10(positive.min())) - 1))
