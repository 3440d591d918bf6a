"""The figure of a classifier study: test accuracy against the training-set size.

Needs the ``plots`` extra (matplotlib), like every figure of :mod:`gcsampler.plots`.
"""

import numpy as np

from gcsampler import plots
from gcsampler.runs import aggregate


def plot_study(rows, out_stem, *, baseline, title="", note=""):
    """Figure of a classifier study: one panel per cross-entropy bin, test accuracy of
    G&C and of ``baseline`` against the training-set size (median over seeds with an
    inter-quartile bar; a point from fewer seeds than others is marked ``n=k``).
    Writes ``out_stem.png`` and ``.pdf`` and returns both."""
    plt = plots.pyplot()
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
    return plots.save_figure(plt, fig, out_stem)
