"""Figures of a run directory (needs the ``plots`` extra: matplotlib).

- ``losses.png``: the 2-D histogram of (log10 train loss, log10 gen loss) over all
  draws, with the acceptance threshold and the prior, G&C and GD gen losses marked.
- ``gd_curves.png``: GD train and gen loss against steps, one line per run.
- ``curve.png`` (splitting runs, in place of ``losses.png``): log10 p and the G&C gen
  loss against the threshold, from the prior down to eps, with 95% bands.

``plot_sweep`` draws a sweep (one setting varied over seeds): per swept value, the median over
seeds with an inter-quartile bar, as in the paper's figures. ``plot_study`` draws a classifier
study the same way, one panel per cross-entropy bin.
"""

import math
import pathlib

import numpy as np

from gcsampler.runs import aggregate, files, record, splitting_files
from gcsampler.runs.methods import METHODS

INSTALL_HINT = "plots need matplotlib: pip install -e '.[plots]'"


def available():
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir):
    """Write the run's figures into ``run_dir``; returns the paths written."""
    run_dir = pathlib.Path(run_dir)
    summary = files.read_json(run_dir / record.SUMMARY_FILE)
    written = [_RUN_FIGURES[METHODS[summary["method"]].figure](run_dir, summary)]
    if (run_dir / "gd.npz").is_file():
        written.append(_plot_gd(run_dir))
    return written


def _plot_curve(run_dir, summary):
    """``curve.png``: a splitting run's log10 p and G&C gen loss against eps."""
    curve = splitting_files.read_curve(run_dir)
    return plot_curves({None: [curve]}, run_dir / "curve", summary=summary)[0]


def _log10_or_none(value):
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return math.log10(value)


def _zoom(ax, hist, edges, x_marks, y_marks, margin=0.5):
    """Limit the axes to the populated cells and the marked values, plus ``margin`` decades."""
    rows, cols = np.nonzero(hist)
    if rows.size:
        xs = [edges[rows.min()], edges[rows.max() + 1], *x_marks]
        ys = [edges[cols.min()], edges[cols.max() + 1], *y_marks]
        ax.set_xlim(max(min(xs) - margin, edges[0]), min(max(xs) + margin, edges[-1]))
        ax.set_ylim(max(min(ys) - margin, edges[0]), min(max(ys) + margin, edges[-1]))


def _plot_losses(run_dir, summary):
    plt = pyplot()
    arrays = files.load_arrays(run_dir / "statistics.npz")
    hist, edges = arrays["hist_log10_train_gen"], arrays["hist_log10_edges"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    image = ax.pcolormesh(edges, edges, np.ma.masked_equal(hist.T, 0), cmap="viridis",
                          norm=plt.matplotlib.colors.LogNorm())
    fig.colorbar(image, ax=ax, label="draws")
    log_eps = math.log10(summary["eps"])
    ax.axvline(log_eps, color="red", linestyle="--",
               label=f"eps = {summary['eps']:g} (accept left of it)")
    marks = []
    lines = (("prior_gen_loss_mean", "prior gen loss", {"color": "tab:gray", "linewidth": 3}),
             ("gnc_gen_loss_mean", "G&C gen loss", {"color": "red"}),
             ("gd_gen_loss", "GD gen loss", {"color": "black", "linestyle": ":"}))
    for key, label, style in lines:
        value = _log10_or_none(summary.get(key))
        if value is not None:
            ax.axhline(value, label=label, **style)
            marks.append(value)
    _zoom(ax, hist, edges, [log_eps], marks)
    ax.set_xlabel("log10 train loss")
    ax.set_ylabel("log10 gen loss")
    ax.set_title(f"{summary['draws']:,} draws, {summary['accepted']:,} accepted")
    ax.legend(loc="lower right", fontsize="small")
    path = run_dir / "losses.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_gd(run_dir):
    plt = pyplot()
    curves = files.load_arrays(run_dir / "gd.npz")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for run, (train, gen) in enumerate(zip(curves["train_loss"], curves["gen_loss"])):
        ax.plot(curves["steps"], train, color="C0", alpha=0.7, label="train" if run == 0 else None)
        ax.plot(curves["steps"], gen, color="C1", alpha=0.7, label="gen" if run == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"gradient descent, {len(curves['train_loss'])} runs")
    ax.legend()
    path = run_dir / "gd_curves.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# Colours match losses.png: G&C red, GD black, the prior gray. Reference solutions are dashed.
_SWEEP_STYLE = {
    "gnc_gen_loss_mean": {"color": "red", "marker": "o"},
    "acceptance_rate": {"color": "red", "marker": "o"},
    "gd_gen_loss": {"color": "black", "marker": "s"},
    "prior_gen_loss_mean": {"color": "tab:gray", "marker": "^"},
    "min_nuclear_gen_loss": {"color": "tab:blue", "linestyle": "--"},
    "min_frobenius_gen_loss": {"color": "tab:green", "linestyle": "--"},
}
_SERIES_SPACING = 5 / 72  # inches between the series at one x, so their bars do not overlap


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


def plot_sweep(rows, axis, out_stem, *, quantity="gen_loss", title="", note=""):
    """Figure of one sweep: per value of ``row[axis]``, each series' median over seeds with
    an inter-quartile bar; writes ``out_stem.png`` and ``out_stem.pdf`` and returns both.

    The series are ``aggregate.QUANTITIES[quantity]``; one with no finite value is left out.
    A point whose median comes from fewer seeds than another series' at that x is marked
    ``n=k``. ``note`` is a small line under the title (e.g. the draws per seed).
    """
    if not rows:
        raise ValueError("plot_sweep: no rows")
    plt = pyplot()
    from matplotlib.transforms import ScaledTranslation

    spec = aggregate.QUANTITIES[quantity]
    values, positions, x_scale = _sweep_axis(rows, axis)
    plotted = []
    for label, column in spec.series:
        by_value = {band.value: band for band in aggregate.median_iqr(rows, axis, column)}
        bands = [by_value[value] for value in values]
        if any(band.n for band in bands):
            plotted.append((label, column, bands))
    max_n = [max((bands[i].n for _, _, bands in plotted), default=0)
             for i in range(len(values))]

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for index, (label, column, bands) in enumerate(plotted):
        shift = (index - (len(plotted) - 1) / 2) * _SERIES_SPACING
        median, q25, q75 = np.array([(b.median, b.q25, b.q75) for b in bands]).T
        style = _SWEEP_STYLE.get(column, {"marker": "o"})
        bars = ax.errorbar(positions, median, yerr=[median - q25, q75 - median], label=label,
                           capsize=3, **style)
        # Shift after drawing, so the axis limits come from the unshifted data.
        shifted = ax.transData + ScaledTranslation(shift, 0, fig.dpi_scale_trans)
        for artist in bars.get_children():
            artist.set_transform(shifted)
        for x, band, most in zip(positions, bands, max_n):
            if 0 < band.n < most:
                ax.annotate(f"n={band.n}", (x, band.median), xytext=(shift * 72 + 4, 4),
                            textcoords="offset points", fontsize="x-small",
                            color=style.get("color"))

    drawn = np.array([(b.median, b.q25, b.q75) for _, _, bands in plotted for b in bands])
    drawn = drawn[np.isfinite(drawn)]
    if spec.log_y and drawn.size and drawn.min() > 0:
        ax.set_yscale("log")
    if x_scale == "log":
        ax.set_xscale("log")
    elif x_scale == "category":
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xticks(positions, [str(value) for value in values])
    ax.set_xticks([], minor=True)
    ax.set_xlabel(axis)
    ax.set_ylabel(spec.label)
    ax.set_title(title, pad=16 if note else 6)
    if note:
        ax.text(0.5, 1.01, note, transform=ax.transAxes, ha="center", va="bottom",
                fontsize="small", color="dimgray")
    if plotted:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(plt, fig, out_stem)


def save_figure(plt, fig, out_stem):
    """Write ``fig`` as ``out_stem.png`` and ``.pdf``, close it, return the paths."""
    out_stem = pathlib.Path(out_stem)
    paths = [out_stem.with_name(out_stem.name + suffix) for suffix in (".png", ".pdf")]
    for path in paths:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_curves(curves, path, *, axis=None, summary=None, title=None, note=None):
    """log10 p and the G&C gen loss against the threshold eps (log x-axis, falling to the
    right), one line per key of ``curves`` (a value of ``axis`` -> the ``curve.csv``
    dicts of its seeds: the median over seeds, with the inter-quartile range as a band;
    one seed: its 95% interval). ``summary`` (one run) adds its prior and GD gen losses.
    Writes ``path`` .png and .pdf; returns the paths."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 7.0), sharex=True)
    # Start a grid step above the largest threshold any draw of the prior exceeds.
    falling = [np.flatnonzero(seed["log10_p"] < 0) for seeds in curves.values() for seed in seeds]
    first = max(0, min((f[0] for f in falling if f.size), default=0) - 1)
    for i, (value, seeds) in enumerate(curves.items()):
        label = None if axis is None else f"{axis} = {value}"
        color = f"C{i}" if axis is not None else "red"
        seeds = [{name: column[first:] for name, column in seed.items()} for seed in seeds]
        eps = seeds[0]["eps"]
        for ax, key, lo_key, hi_key, scale in (
                (top, "log10_p", "log10_p_lo", "log10_p_hi", 1.0),
                (bottom, "gen_loss", None, None, 1.0)):
            stack = np.array([seed[key] for seed in seeds]) * scale
            if len(seeds) == 1 and lo_key is not None:
                mid, lo, hi = stack[0], seeds[0][lo_key] * scale, seeds[0][hi_key] * scale
            elif len(seeds) == 1:
                err = seeds[0]["gen_loss_stderr"] * 1.96
                mid, lo, hi = stack[0], stack[0] - err, stack[0] + err
            else:
                lo, mid, hi = np.nanpercentile(stack, [25, 50, 75], axis=0)
            ax.plot(eps, mid, color=color, label=label)
            ax.fill_between(eps, lo, hi, color=color, alpha=0.2, linewidth=0)
    if summary is not None:
        for key, text, style in (("prior_gen_loss_mean", "prior", {"color": "tab:gray"}),
                                 ("gd_gen_loss", "GD", {"color": "black", "linestyle": ":"})):
            value = summary.get(key)
            if value is not None and math.isfinite(value):
                bottom.axhline(value, label=f"{text} gen loss", **style)
    top.set_xscale("log")
    top.invert_xaxis()
    top.set_ylabel("log10 P(train loss < eps)")
    bottom.set_ylabel("G&C gen loss")
    bottom.set_xlabel("eps (train-loss threshold)")
    top.set_title(title or "multilevel splitting: volume and G&C gen loss")
    if axis is not None or summary is not None:
        bottom.legend(fontsize="small")
    if note:
        fig.text(0.01, 0.005, note, fontsize="x-small", color="dimgray")
    return save_figure(plt, fig, path)


def plot_study(rows, out_dir, cfg):
    """``test_accuracy.png/.pdf`` of a classifier study (a
    :class:`~gcsampler.runs.classify_study.StudyConfig`): one panel per bin, G&C and the
    baseline against the training-set size, median over seeds; returns the paths."""
    title = f"{cfg.task}, {cfg.model}: Guess & Check vs {cfg.baseline.upper()}"
    note = (f"{cfg.samples:,} draws per cell, {cfg.seeds} seeds, prior {cfg.prior}; "
            f"{cfg.baseline} stopped at 100% train accuracy below each bin's upper edge")
    return plot_study_figure(rows, pathlib.Path(out_dir) / "test_accuracy",
                             baseline=cfg.baseline, title=title, note=note)


def plot_study_figure(rows, out_stem, *, baseline, title="", note=""):
    """Figure of a classifier study: one panel per cross-entropy bin, test accuracy of
    G&C and of ``baseline`` against the training-set size (median over seeds with an
    inter-quartile bar; a point from fewer seeds than others is marked ``n=k``).
    Writes ``out_stem.png`` and ``.pdf`` and returns both."""
    plt = pyplot()
    bins = list(dict.fromkeys((row["bin_lo"], row["bin_hi"]) for row in rows))
    columns = min(4, len(bins))
    grid = (-(-len(bins) // columns), columns)
    fig, axes = plt.subplots(*grid, figsize=(3.2 * grid[1], 2.6 * grid[0] + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    series = [("G&C", "gnc_test_accuracy", {"color": "red", "marker": "o"})]
    if baseline != "none":
        series.append((baseline.upper(), "baseline_test_accuracy", {"color": "black",
                                                                    "marker": "s"}))
    for ax, (lo, hi) in zip(axes.flat, bins):
        cell = [row for row in rows if (row["bin_lo"], row["bin_hi"]) == (lo, hi)]
        for label, column, style in series:
            bands = aggregate.median_iqr(cell, "n_train", column)
            x = np.array([band.value for band in bands], float)
            median, q25, q75 = np.array([(b.median, b.q25, b.q75) for b in bands]).T
            ax.errorbar(x, median, yerr=[median - q25, q75 - median], label=label, capsize=3,
                        **style)
            most = max(band.n for band in bands)
            for band in bands:
                if 0 < band.n < most:
                    ax.annotate(f"n={band.n}", (band.value, band.median), xytext=(4, 4),
                                textcoords="offset points", fontsize="x-small",
                                color=style["color"])
        ax.axhline(0.5, color="tab:gray", linewidth=0.8, linestyle=":")
        ax.set_xticks(sorted({row["n_train"] for row in rows}))
        ax.set_title(f"train CE in [{lo:g}, {hi:g})", fontsize="small")
    for ax in axes.flat[len(bins):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training examples")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize="medium")
    fig.tight_layout()
    return save_figure(plt, fig, out_stem)


# The figure of a run, by the ``figure`` its method names.
_RUN_FIGURES = {"losses": _plot_losses, "curve": _plot_curve}
