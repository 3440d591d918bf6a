"""The figures of one run (:func:`plot_run`), titled with its setting, eps and draws:

- ``losses.png``: the 2-D histogram of (log10 train loss, log10 gen loss) over all
  draws, with the acceptance threshold and the prior, G&C and GD gen losses marked.
- ``gd_curves.png``: GD train and gen loss against steps, one line per run, eps dashed;
  runs whose final train loss is not below eps are dotted and labelled "did not fit".
- ``curve.png`` (splitting runs, in place of ``losses.png``): log10 p and the G&C gen
  loss against the threshold, from the prior down to eps, with 95% bands
  (:func:`gcsampler.plots.curve_figures.curves_figure`).
"""

import math
import pathlib
import textwrap

import numpy as np

from gcsampler.plots.common import _gd_label, _y_scale, pyplot, save_figure
from gcsampler.plots.curve_figures import curves_figure
from gcsampler.runs import files, finish, runner, splitting_files
from gcsampler.runs.methods import METHODS

_TITLE_WIDTH = 60  # characters per line of a run figure's setting


def plot_run(run_dir, *, log_y=True):
    """Write the run's figures into ``run_dir``; returns the paths written.

    ``log_y``: log (default) or linear loss axes of ``gd_curves.png`` and of
    ``curve.png``'s gen-loss panel. A figure that cannot be written (full disk, read-only
    run) is a one-line WriteError; the run's data and summary are untouched.
    """
    run_dir = pathlib.Path(run_dir)
    rec, summary = _finished(run_dir)
    setting = textwrap.fill(runner.setting_title(rec, run_dir), _TITLE_WIDTH)
    written = []
    try:
        for stem, suffixes, draw in _figures(run_dir, summary):
            written += save_figure(draw(run_dir, rec, summary, setting, log_y), run_dir / stem,
                                   suffixes)
    except files.WriteError as err:
        raise files.WriteError(f"{err}; the run's data and summary are intact: `gcsampler "
                               f"report {run_dir} --plot` draws its figures once {run_dir} "
                               f"can be written") from None
    return written


def missing_figures(run_dir):
    """The names of the files :func:`plot_run` writes that the finished run in ``run_dir``
    lacks (it was stopped, or its disk filled, after its summary)."""
    run_dir = pathlib.Path(run_dir)
    _, summary = _finished(run_dir)
    return [stem + suffix for stem, suffixes, _ in _figures(run_dir, summary)
            for suffix in suffixes if not (run_dir / (stem + suffix)).is_file()]


def _finished(run_dir):
    """``(record, summary)`` of a finished run; RunDirError for an unfinished one."""
    rec, summary = runner.read_run(run_dir)
    if summary is None:
        raise files.RunDirError(runner.unfinished_message(run_dir))
    return rec, summary


def _figures(run_dir, summary):
    """``(stem, suffixes, draw)`` of each figure of a finished run: its method's, and GD's
    once it has ``gd.npz``; ``draw(run_dir, record, summary, setting, log_y)`` makes it."""
    name = METHODS[summary["method"]].figure
    figures = [(name, *_RUN_FIGURES[name])]
    if (run_dir / finish.GD_FILE).is_file():
        figures.append(("gd_curves", (".png",), _gd_curves))
    return figures


def draws_text(summary):
    """eps and the draws of a rejection run, e.g. 'eps = 0.02: 2 of 200,000 draws
    accepted'."""
    return (f"eps = {summary['eps']:g}: {summary['accepted']:,} of {summary['draws']:,} draws "
            f"accepted")


def particles_text(summary):
    """eps and the particles of a splitting run, e.g. 'eps = 0.001: 688 particles below
    eps, 45,890,154 loss evaluations'."""
    return (f"eps = {summary['eps']:g}: {summary['accepted']:,} particles below eps, "
            f"{summary['draws']:,} loss evaluations")


def _curve(run_dir, rec, summary, setting, log_y):
    """``curve``: a splitting run's log10 p and G&C gen loss against eps."""
    curve = splitting_files.read_curve(run_dir)
    title = f"multilevel splitting: {setting}\n{particles_text(summary)}"
    return curves_figure({None: [curve]}, summary=summary, title=title, log_y=log_y)


def _losses(run_dir, rec, summary, setting, log_y):
    """``losses`` (its axes are log10 values already, so ``log_y`` does not apply)."""
    return losses_figure(files.load_arrays(run_dir / "statistics.npz"), summary,
                         title=f"G&C draws: {setting}\n{draws_text(summary)}")


def _gd_curves(run_dir, rec, summary, setting, log_y):
    """``gd_curves``: GD's curves from ``gd.npz``."""
    return gd_figure(files.load_arrays(run_dir / finish.GD_FILE), summary["eps"],
                     rec["settings"], setting, log_y=log_y)


def _log10_or_none(value):
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return math.log10(value)


def _zoom(ax, hist, edges, x_marks, y_marks, margin=0.5):
    """Limit the axes to the populated cells and the marked values, plus ``margin`` decades
    (with no populated cell: to the marks, y as x where no y is marked)."""
    rows, cols = np.nonzero(hist)
    if rows.size:
        xs = [edges[rows.min()], edges[rows.max() + 1], *x_marks]
        ys = [edges[cols.min()], edges[cols.max() + 1], *y_marks]
    else:
        xs, ys = list(x_marks), list(y_marks or x_marks)
    ax.set_xlim(max(min(xs) - margin, edges[0]), min(max(xs) + margin, edges[-1]))
    ax.set_ylim(max(min(ys) - margin, edges[0]), min(max(ys) + margin, edges[-1]))


def losses_figure(arrays, summary, *, title=""):
    """The 2-D histogram of (log10 train loss, log10 gen loss) over the draws of a rejection
    run (``arrays``: its ``statistics.npz``), with eps and the prior, G&C and GD gen losses
    marked; returns the figure. With no finite draw, the panel says so instead."""
    plt = pyplot()
    hist, edges = arrays["hist_log10_train_gen"], arrays["hist_log10_edges"]
    fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    if hist.any():
        image = ax.pcolormesh(edges, edges, np.ma.masked_equal(hist.T, 0), cmap="viridis",
                              norm=plt.matplotlib.colors.LogNorm())
        fig.colorbar(image, ax=ax, label="draws")
    else:
        ax.text(0.5, 0.5, "no finite draws:\nevery draw's train or gen loss was NaN or inf",
                transform=ax.transAxes, ha="center", va="center", color="dimgray",
                bbox={"color": "white"}, zorder=3)
    log_eps = math.log10(summary["eps"])
    ax.axvline(log_eps, color="red", linestyle="--",
               label=f"eps = {summary['eps']:g} (accepted: left of it)")
    marks = []
    lines = (("prior_gen_loss_mean", "prior (chance) gen loss",
              {"color": "tab:gray", "linewidth": 3}),
             ("gnc_gen_loss_mean", f"G&C gen loss (mean of {summary['accepted']:,} accepted)",
              {"color": "red"}),
             ("gd_gen_loss", _gd_label(summary), {"color": "black", "linestyle": ":"}))
    for key, label, style in lines:
        value = _log10_or_none(summary.get(key))
        if value is not None:
            ax.axhline(value, label=label, **style)
            marks.append(value)
    _zoom(ax, hist, edges, [log_eps], marks)
    ax.set_xlabel("log10 train loss")
    ax.set_ylabel("log10 gen loss")
    ax.set_title(title, fontsize="medium")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    return fig


def gd_figure(curves, eps, settings, setting, *, log_y=True):
    """GD train and gen loss against steps, one line per run of ``curves`` (a run's
    ``gd.npz``), eps dashed; runs whose final train loss is not below eps are dotted and
    labelled 'did not fit'. ``settings``: the run's, for the optimizer line of the title.
    Returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.4), layout="constrained")
    fitted = np.asarray(curves["final_train_loss"]) < eps  # NaN (diverged) did not fit
    for fit in (True, False):
        runs = np.flatnonzero(fitted == fit)
        tag = "" if fit else f" (did not fit: {runs.size} of {fitted.size} runs)"
        for name, color in (("train", "C0"), ("gen", "C1")):
            for i, run in enumerate(runs):
                ax.plot(curves["steps"], curves[f"{name}_loss"][run], color=color, alpha=0.7,
                        linestyle="-" if fit else ":", label=None if i else f"{name} loss{tag}")
    ax.axhline(eps, color="red", linestyle="--", label=f"eps = {eps:g}")
    _y_scale(ax, log_y)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    momentum = settings.get("gd_momentum")
    optimizer = ", ".join([settings["gd_optimizer"], f"lr {settings['gd_lr']:g}",
                           *([f"momentum {momentum:g}"] if momentum else []),
                           f"init scale {settings['gd_init_scale']:g}"])
    ax.set_title(f"gradient descent: {setting}\n{optimizer}; {fitted.size} runs x "
                 f"{int(curves['steps'][-1]):,} steps", fontsize="medium")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return fig


# The figure of a run, by the ``figure`` its method names: its suffixes and how it is drawn.
_RUN_FIGURES = {"losses": ((".png",), _losses), "curve": ((".png", ".pdf"), _curve)}
