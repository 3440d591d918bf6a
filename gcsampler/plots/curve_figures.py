"""Multilevel splitting's curves: log10 p and the G&C gen loss against the threshold eps,
of one run (its ``curve.png``) or of a sweep (one line per swept value).
"""

import math

import numpy as np

from gcsampler.plots.common import _gd_label, _titles, _y_scale, pyplot, save_figure


def plot_curves(curves, path, **options):
    """Draw :func:`curves_figure` and write it as ``path`` .png and .pdf; returns the paths."""
    return save_figure(curves_figure(curves, **options), path)


def curves_figure(curves, *, axis=None, summary=None, title=None, note=None, log_y=True):
    """log10 p and the G&C gen loss against the threshold eps (log x-axis, falling to the
    right), one line per key of ``curves`` (a value of ``axis`` -> the ``curve.csv``
    dicts of its seeds: the median over seeds, with the inter-quartile range as a band;
    one seed: its 95% interval). ``summary`` (one run) adds its prior and GD gen losses.
    ``log_y``: a log (default) or linear gen-loss axis. Returns the figure."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.6, 7.0), sharex=True,
                                      layout="constrained")
    # Start a grid step above the largest threshold any draw of the prior exceeds.
    falling = [np.flatnonzero(seed["log10_p"] < 0) for seeds in curves.values() for seed in seeds]
    first = max(0, min((f[0] for f in falling if f.size), default=0) - 1)
    for i, (value, seeds) in enumerate(curves.items()):
        label = None if axis is None else f"{axis} = {value}"
        color = f"C{i}" if axis is not None else "red"
        seeds = [{name: column[first:] for name, column in seed.items()} for seed in seeds]
        eps = seeds[0]["eps"]
        for ax, key, lo_key, hi_key in ((top, "log10_p", "log10_p_lo", "log10_p_hi"),
                                        (bottom, "gen_loss", None, None)):
            stack = np.array([seed[key] for seed in seeds])
            if len(seeds) == 1 and lo_key is not None:
                mid, lo, hi = stack[0], seeds[0][lo_key], seeds[0][hi_key]
            elif len(seeds) == 1:
                err = seeds[0]["gen_loss_stderr"] * 1.96
                mid, lo, hi = stack[0], stack[0] - err, stack[0] + err
            else:
                lo, mid, hi = np.nanpercentile(stack, [25, 50, 75], axis=0)
            ax.plot(eps, mid, color=color, label=label)
            ax.fill_between(eps, lo, hi, color=color, alpha=0.2, linewidth=0)
    if summary is not None:
        for key, text, style in (("prior_gen_loss_mean", "prior (chance) gen loss",
                                  {"color": "tab:gray"}),
                                 ("gd_gen_loss", _gd_label(summary),
                                  {"color": "black", "linestyle": ":"})):
            value = summary.get(key)
            if value is not None and math.isfinite(value):
                bottom.axhline(value, label=text, **style)
    if _drawable(curves):
        top.set_xscale("log")
        top.invert_xaxis()
        _y_scale(bottom, log_y)
    else:  # say so, rather than fail on log axes with nothing on them
        top.text(0.5, 0.5, "no finite losses: every loss of the prior's draws was NaN or inf",
                 transform=top.transAxes, ha="center", va="center")
        for ax in (top, bottom):  # no scale: its numbers would mean nothing
            ax.set_xticks([])
            ax.set_yticks([])
    top.set_ylabel("log10 P(train loss < eps)")
    bottom.set_ylabel("G&C gen loss")
    bottom.set_xlabel("eps (train-loss threshold)")
    _titles(top, title or "multilevel splitting: volume and G&C gen loss", note or "")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return fig


def _drawable(curves):
    """Whether any curve has a point a log axis can show (a finite, positive eps)."""
    return any(np.any(np.isfinite(seed["eps"]) & (seed["eps"] > 0) & np.isfinite(seed["log10_p"]))
               for seeds in curves.values() for seed in seeds)
