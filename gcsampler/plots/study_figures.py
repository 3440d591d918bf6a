"""The figure of a classifier study: one panel per cross-entropy bin, G&C and the baseline
against the training-set size (the mean over data seeds of each seed's mean, with its 95%
interval, as Chiang et al. report), marked as a sweep's figure is.
"""

import collections
import pathlib
import textwrap

from gcsampler.plots.common import _draw_series, _legend, _shift, _y_scale, pyplot, save_figure

MEAN_CI = ("mean over {count} of each seed's mean", "95% confidence interval (cut at 0 and 1)")
from gcsampler.runs import aggregate


def plot_study(rows, out_dir, cfg):
    """``test_accuracy.png/.pdf`` of a classifier study (a
    :class:`~gcsampler.runs.classify_study.StudyConfig`): one panel per bin, G&C and the
    baseline against the training-set size, mean of per-seed means; returns the paths."""
    title = f"{cfg.task}, {cfg.model}: Guess & Check vs {cfg.baseline.upper()}"
    if cfg.baseline_protocol == "published":
        how = (f"{cfg.baseline} as published: runs freeze at 100% train accuracy and loss <= "
               f"the bin's upper edge, those at or below its lower edge discarded, up to "
               f"{cfg.baseline_models} kept per bin and seed")
        short = (f"fewer than {cfg.baseline_models} {cfg.baseline.upper()} runs landed\n"
                 f"in the bin for some seed (fit k/N: seeds whose bin filled)")
    else:
        how = f"{cfg.baseline} stopped at 100% train accuracy below each bin's upper edge"
        short = ""
    draws = (", ".join(f"{count:,}" for count in cfg.samples) + " draws per cell (by size)"
             if isinstance(cfg.samples, tuple) else f"{cfg.samples:,} draws per cell")
    note = (f"{draws}, {cfg.seeds} seed{'s' * (cfg.seeds != 1)}, prior {cfg.prior}, "
            f"{cfg.logits} logits; {how}")
    return plot_study_figure(rows, pathlib.Path(out_dir) / "test_accuracy",
                             baseline=cfg.baseline, title=title, note=note, shortfall=short)


def plot_study_figure(rows, out_stem, *, baseline, title="", note="", shortfall=""):
    """Draw :func:`study_figure` and write it as ``out_stem.png`` and ``.pdf``; returns both."""
    return save_figure(study_figure(rows, baseline=baseline, title=title, note=note,
                                    shortfall=shortfall), out_stem)


def study_figure(rows, *, baseline, title="", note="", shortfall=""):
    """Figure of a classifier study: one panel per cross-entropy bin, test accuracy of
    G&C and of ``baseline`` against the training-set size, marked as in
    :func:`_draw_series` (the baseline hollow where not all its runs fit for some seed, or
    with the published protocol where its bin was left short, as ``shortfall`` says:
    ``baseline_fitted`` < 1). Returns the figure."""
    plt = pyplot()
    bins = list(dict.fromkeys((row["bin_lo"], row["bin_hi"]) for row in rows))
    columns = min(4, len(bins))
    grid = (-(-len(bins) // columns), columns)
    fig, axes = plt.subplots(*grid, figsize=(max(3.2 * grid[1], 6.4), 2.6 * grid[0] + 1.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    series = [(aggregate.Series("G&C", "gnc_test_accuracy", empty="no draw in the bin"),
               {"color": "red", "marker": "o"})]
    if baseline != "none":
        series.append((aggregate.Series(baseline.upper(), "baseline_test_accuracy",
                                        empty="no run landed" if shortfall else "no run fit",
                                        verdict="baseline_fitted",
                                        goal="100% train accuracy", shortfall=shortfall),
                       {"color": "black", "marker": "s"}))
    entries, seeds = {}, []
    for ax, (lo, hi) in zip(axes.flat, bins):
        cell = [row for row in rows if (row["bin_lo"], row["bin_hi"]) == (lo, hi)]
        per_size = collections.Counter(row["n_train"] for row in cell)
        seeds += per_size.values()
        for index, (line, style) in enumerate(series):
            bands = aggregate.mean_ci(cell, "n_train", line.column)
            fits = None
            if line.verdict:
                counts = aggregate.fit_counts(cell, "n_train", line.verdict)
                fits = [counts[band.value] for band in bands]
            entries.update(_draw_series(
                ax, [band.value for band in bands], bands,
                [per_size[band.value] for band in bands], line, style,
                shift=_shift(index, len(series)), fits=fits))
        entries["chance (0.5)"] = ax.axhline(0.5, color="tab:gray", linewidth=0.8,
                                             linestyle=":")
        ax.set_xticks(sorted({row["n_train"] for row in rows}))
        ax.set_title(f"train CE in ({lo:g}, {hi:g}]", fontsize="small")
    for ax in axes.flat[len(bins):]:
        ax.set_visible(False)
    for column in axes.T:  # the lowest panel of each column shows its x axis
        lowest = [ax for ax in column if ax.get_visible()][-1]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("training examples")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    _y_scale(axes.flat[0], False)
    axes.flat[0].set_ylim(-0.02, 1.02)   # accuracies; a few seeds' t-intervals reach beyond
    _legend(fig, axes.flat[:len(bins)], entries, seeds, MEAN_CI, loc="outside lower center",
            ncols=3)
    width = int(fig.get_figwidth() * 12)  # characters of a medium-sized line
    fig.suptitle(textwrap.fill(title, width) + (f"\n{textwrap.fill(note, width)}" if note
                                               else ""), fontsize="medium")
    return fig
