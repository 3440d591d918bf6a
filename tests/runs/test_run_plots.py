"""Tests of the figures of one run (plots.losses_figure, gd_figure, curves_figure) on
made-up arrays: titles, the eps line, GD's fit verdict, legends outside the data."""

import math

import pathlib

import numpy as np
import pytest

SETTING = "sensing 5x5 rank 1, 15 measurements; depth 2, width 20, linear, gaussian prior"
SETTINGS = {"gd_optimizer": "grouprmsprop", "gd_lr": 1e-4, "gd_momentum": 0.0,
            "gd_init_scale": 1e-3}


def legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]


def outside(legend, ax):
    """Whether ``legend`` lies outside the data area of ``ax`` (drawn figure)."""
    renderer = ax.figure.canvas.get_renderer()
    return not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def summary(**changes):
    return {"method": "rejection", "eps": 0.02, "draws": 200_000, "accepted": 2,
            "prior_gen_loss_mean": 0.24, "gnc_gen_loss_mean": 0.26, "gd_gen_loss": 0.04,
            "gd_gen_loss_runs": [0.04] * 4, "gd_fitted": False, "gd_fitted_fraction": 0.25,
            **changes}


def test_losses_figure(plots):
    edges = np.linspace(-4, 1, 26)
    hist = np.zeros((25, 25))
    hist[5:20, 8:22] = 7
    fig = plots.losses_figure({"hist_log10_train_gen": hist, "hist_log10_edges": edges},
                              summary(), title="G&C draws: " + SETTING)
    ax = fig.axes[0]
    assert ax.get_title() == "G&C draws: " + SETTING
    (legend,) = fig.legends
    assert legend_texts(legend) == [
        "eps = 0.02 (accepted: left of it)", "prior (chance) gen loss",
        "G&C gen loss (mean of 2 accepted)", "GD gen loss (did not fit: 3 of 4 runs)"]
    assert outside(legend, ax)


def test_losses_figure_without_finite_draws(plots, tmp_path):
    """Every draw NaN or inf: an empty panel that says so, around eps, and it saves."""
    edges = np.linspace(-8, 4, 121)
    fig = plots.losses_figure({"hist_log10_train_gen": np.zeros((120, 120), np.int64),
                               "hist_log10_edges": edges},
                              summary(accepted=0, gnc_gen_loss_mean=None,
                                      prior_gen_loss_mean=None, gd_gen_loss=None))
    (ax,) = fig.axes  # no colour bar
    assert [text.get_text() for text in ax.texts] == [
        "no finite draws:\nevery draw's train or gen loss was NaN or inf"]
    assert ax.get_xlim()[0] < math.log10(0.02) < ax.get_xlim()[1]
    assert plots.save_figure(fig, tmp_path / "losses", (".png",))[0].stat().st_size > 0


def test_titles_say_eps_and_the_draws():
    from gcsampler.plots import run_figures

    assert run_figures.draws_text(summary()) == "eps = 0.02: 2 of 200,000 draws accepted"
    splitting = summary(method="splitting", eps=1e-3, accepted=688, draws=45_890_154)
    assert run_figures.particles_text(splitting) == ("eps = 0.001: 688 particles below eps, "
                                                     "45,890,154 loss evaluations")


def gd_curves(final_train_loss):
    steps = np.arange(0, 2001, 1000)
    runs = len(final_train_loss)
    train = np.linspace(0.05, 1, runs)[:, None] * np.array(final_train_loss)[:, None] ** (
        steps / steps[-1])
    return {"steps": steps, "train_loss": train, "gen_loss": 2 * train,
            "final_train_loss": np.array(final_train_loss)}


@pytest.mark.parametrize("log_y, scale", [(True, "log"), (False, "linear")])
def test_gd_figure(plots, log_y, scale):
    fig = plots.gd_figure(gd_curves([1e-6, 0.03, math.nan]), 0.02, SETTINGS, SETTING,
                          log_y=log_y)
    (ax,) = fig.axes
    assert ax.get_yscale() == scale and ax.yaxis.get_offset_text().get_text() == ""
    assert ax.get_title() == (f"gradient descent: {SETTING}\ngrouprmsprop, lr 0.0001, init "
                              f"scale 0.001; 3 runs x 2,000 steps")
    texts = legend_texts(ax.get_legend())
    assert texts == ["train loss", "gen loss", "train loss (did not fit: 2 of 3 runs)",
                     "gen loss (did not fit: 2 of 3 runs)", "eps = 0.02"]
    (eps,) = [line for line in ax.lines if line.get_label() == "eps = 0.02"]
    assert eps.get_linestyle() == "--" and list(eps.get_ydata()) == [0.02, 0.02]
    assert outside(ax.get_legend(), ax)


def test_gd_figure_all_fit_and_momentum(plots):
    fig = plots.gd_figure(gd_curves([1e-6, 1e-7]), 0.02, {**SETTINGS, "gd_momentum": 0.9},
                          SETTING)
    (ax,) = fig.axes
    assert legend_texts(ax.get_legend()) == ["train loss", "gen loss", "eps = 0.02"]
    assert "lr 0.0001, momentum 0.9, init scale 0.001" in ax.get_title()


def curve(eps, gen_loss):
    eps = np.asarray(eps, float)
    log10_p = np.minimum(0.0, np.log10(eps) + 1)
    return {"eps": eps, "log10_p": log10_p, "log10_p_lo": log10_p - 0.2,
            "log10_p_hi": log10_p + 0.2, "gen_loss": np.asarray(gen_loss, float),
            "gen_loss_stderr": np.full(len(eps), 1e-3)}


@pytest.mark.parametrize("log_y, scale", [(True, "log"), (False, "linear")])
def test_curves_figure_of_a_run(plots, log_y, scale):
    fig = plots.curves_figure({None: [curve([1.0, 0.1, 0.01, 0.001], [0.08, 0.08, 0.03, 0.004])]},
                              summary=summary(gd_fitted=True, gd_fitted_fraction=1.0),
                              title="multilevel splitting: " + SETTING, log_y=log_y)
    top, bottom = fig.axes
    assert top.get_title() == "multilevel splitting: " + SETTING
    assert bottom.get_yscale() == scale
    assert legend_texts(bottom.get_legend()) == ["prior (chance) gen loss", "GD gen loss"]
    assert outside(bottom.get_legend(), bottom)


@pytest.mark.parametrize("eps", [[], [np.inf, 1.0]])
def test_curves_figure_without_finite_losses_says_so(plots, tmp_path, eps):
    """A splitting run whose every loss is NaN or inf has nothing a log axis can show."""
    blank = np.full(len(eps), np.nan)
    lost = {"eps": np.asarray(eps, float), "log10_p": blank, "log10_p_lo": blank,
            "log10_p_hi": blank, "gen_loss": blank, "gen_loss_stderr": blank}
    paths = plots.plot_curves({None: [lost]}, tmp_path / "curve")
    assert all(pathlib.Path(path).stat().st_size for path in paths)
    top = plots.curves_figure({None: [lost]}).axes[0]
    assert "no finite losses" in top.texts[0].get_text()


def test_curves_figure_of_a_sweep(plots):
    seeds = [curve([1.0, 0.1, 0.01], [0.08, 0.05, 0.01 * k]) for k in (1, 2)]
    fig = plots.curves_figure({2: seeds, 4: seeds}, axis="depth", note="2 seeds")
    bottom = fig.axes[1]
    assert legend_texts(bottom.get_legend()) == ["depth = 2", "depth = 4"]
    assert outside(bottom.get_legend(), bottom)
