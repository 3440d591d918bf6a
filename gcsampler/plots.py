"""Figures of a run directory (needs the ``plots`` extra: matplotlib).

- ``losses.png``: the 2-D histogram of (log10 train loss, log10 gen loss) over all
  draws, with the acceptance threshold and the prior, G&C and GD gen losses marked.
- ``gd_curves.png``: GD train and gen loss against steps, one line per run.
"""

import math
import pathlib

import numpy as np

from gcsampler import store

INSTALL_HINT = "plots need matplotlib: pip install -e '.[plots]'"


def available():
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir):
    """Write the run's figures into ``run_dir``; returns the paths written."""
    run_dir = pathlib.Path(run_dir)
    summary = store.read_json(run_dir / "summary.json")
    written = [_plot_losses(run_dir, summary)]
    if (run_dir / "gd.npz").is_file():
        written.append(_plot_gd(run_dir))
    return written


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
    plt = _pyplot()
    arrays = store.load_arrays(run_dir / "statistics.npz")
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
    plt = _pyplot()
    curves = store.load_arrays(run_dir / "gd.npz")
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
