"""What the figures share: loading matplotlib, saving a figure, axes, titles, legends and
the median-with-quartiles series of sweeps and studies.

Tick labels never use an offset ("1e-5" above the axis).
"""

import functools
import importlib.util
import pathlib
import textwrap

import numpy as np

from gcsampler.runs import files

INSTALL_HINT = "plots need matplotlib: pip install -e '.[plots]'"


def available():
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_stem, suffixes=(".png", ".pdf")):
    """Write ``fig`` as ``out_stem`` + each suffix, close it, return the paths.

    Each file is written atomically: a failed write (full disk, read-only location) is a
    one-line :class:`~gcsampler.runs.files.WriteError` and leaves the file as it was.
    """
    out_stem = pathlib.Path(out_stem)
    paths = [out_stem.with_name(out_stem.name + suffix) for suffix in suffixes]
    try:
        for path in paths:
            files.write_bytes(path, functools.partial(fig.savefig, format=path.suffix[1:],
                                                      dpi=120, bbox_inches="tight"))
    finally:
        pyplot().close(fig)
    return paths


def _y_scale(ax, log):
    """A log or linear y axis with plain tick labels: no offset text such as '1e-5'
    (it collides with titles); a log axis labels every decade it can."""
    from matplotlib import ticker

    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(numticks=12))
        # Under two decades, label some of the ticks between the powers of ten as well.
        ax.yaxis.set_minor_formatter(ticker.LogFormatterSciNotation(
            labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    else:
        ax.set_yscale("linear")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))


def _titles(ax, title, note):
    """``title`` over ``ax``, and under it ``note`` in small gray print (wrapped)."""
    note = textwrap.fill(note, 100)
    lines = note.count("\n") + 1 if note else 0
    ax.set_title(title, pad=6 + 11 * lines, fontsize="medium")
    if note:
        ax.annotate(note, (0.5, 1), xycoords="axes fraction", xytext=(0, 5),
                    textcoords="offset points", ha="center", va="bottom", fontsize="small",
                    color="dimgray")


def _gd_label(summary):
    """'GD gen loss', with ' (did not fit: k of n runs)' when not every GD run ended with
    train loss below eps."""
    if summary.get("gd_fitted") is not False:
        return "GD gen loss"
    runs = len(summary["gd_gen_loss_runs"])
    unfit = runs - round(summary["gd_fitted_fraction"] * runs)
    return f"GD gen loss (did not fit: {unfit} of {runs} runs)"


_SERIES_SPACING = 5 / 72  # inches between the series at one x, so their bars do not overlap


def _shift(index, count):
    """How far right (inches) series ``index`` of ``count`` is drawn, so bars do not overlap."""
    return (index - (count - 1) / 2) * _SERIES_SPACING


def _draw_series(ax, x, bands, seeds, series, style, *, shift=0.0, floor=None, fits=None):
    """Draw one series (an :class:`aggregate.Series`) on ``ax``, ``shift`` inches right:
    per x, the band's middle over its ``seeds`` with a bar from its low to its high value
    (median and quartiles, or mean and confidence interval). Returns the legend
    entries ({text: handle}) its marks need.

    Values at or below ``floor`` (a log axis) are drawn at it. A point from
    k < N seeds is marked n=k/N; an x where no seed has a value gets a 'v' on the x axis.
    ``fits`` ((seeds that fit, seeds judged) per x, :func:`aggregate.fit_counts`): a point
    where not every judged seed fit is hollow and marked fit k/N.
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    fig = ax.figure
    x = np.asarray(x, float)
    median, q25, q75 = np.array([(b.median, b.q25, b.q75) for b in bands], float).T
    if floor is not None:
        median, q25, q75 = (np.where(v <= floor, floor, v) for v in (median, q25, q75))
    color = style.get("color")
    bars = ax.errorbar(x, median, yerr=[median - q25, q75 - median], label=series.label,
                       capsize=3, **style)
    # Shift after drawing, so the axis limits come from the unshifted data.
    offset = ScaledTranslation(shift, 0, fig.dpi_scale_trans)
    shifted = ax.transData + offset
    for artist in bars.get_children():
        artist.set_transform(shifted)

    entries = {}
    counts = np.array([band.n for band in bands])
    empty = counts == 0
    if empty.any():
        on_axis = blended_transform_factory(ax.transData, ax.transAxes) + offset
        ax.plot(x[empty], np.zeros(empty.sum()), "v", color=color, clip_on=False,
                transform=on_axis)
        entries[f"{series.label}: {series.empty or 'no value'} (n=0)"] = Line2D(
            [], [], marker="v", linestyle="none", color=color)
    mark = {"xycoords": shifted, "textcoords": "offset points", "fontsize": "x-small",
            "color": color, "bbox": {"boxstyle": "square,pad=0.1", "color": "white",
                                     "alpha": 0.7}}
    last = np.max(x)

    def note(text, xi, yi, dy):
        """A label that starts beside its point, or ends there at the last x (inside the axes)."""
        ax.annotate(text, (xi, yi), xytext=(4, dy), ha="right" if xi == last else "left", **mark)

    for xi, yi, n, total in zip(x, median, counts, seeds):
        if 0 < n < total:
            note(f"n={n}/{total}", xi, yi, 4)
    if fits is None:
        return entries
    unfit = np.array([fit < judged for fit, judged in fits]) & ~empty
    if unfit.any():
        hollow = {"marker": style.get("marker", "o"), "linestyle": "none", "color": color,
                  "markerfacecolor": "white"}
        ax.plot(x[unfit], median[unfit], transform=shifted, zorder=bars.lines[0].zorder + 0.1,
                **hollow)
        for xi, yi, (fit, judged) in zip(x[unfit], median[unfit], np.array(fits)[unfit]):
            note(f"fit {fit}/{judged}", xi, yi, -10)
        text = series.shortfall or (f"not every {series.label} run reached\n"
                                    f"{series.goal} (fit k/N seeds)")
        entries[f"hollow: {text}"] = Line2D([], [], **hollow)
    return entries


MEDIAN_IQR = ("median over {count}", "25th-75th percentile")


def _legend(owner, axes, entries, seeds, statistic=MEDIAN_IQR, **placement):
    """The legend of ``axes`` (their labelled artists, one per label, then ``entries``) on
    ``owner`` (an axes or the figure), titled with what the points and bars are
    (``statistic``: the points' and the bars' descriptions; ``{count}`` names the seeds)."""
    found = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    found.update(entries)
    if not found:
        return
    lo, hi = min(seeds), max(seeds)
    count = f"{hi} seed" + "s" * (hi > 1) if lo == hi else f"{lo}-{hi} seeds"
    points, bars = statistic
    title = f"points: {points.format(count=count)}\nbars: {bars}"
    owner.legend(list(found.values()), list(found), title=title, fontsize="small",
                 title_fontsize="small", **placement)
