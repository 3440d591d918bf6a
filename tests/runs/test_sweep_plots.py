"""Tests of gcsampler.runs.aggregate (median and quartiles over seeds) and
plots.plot_sweep."""

import math

import numpy as np
import pytest

from gcsampler.runs import aggregate

NAN = math.nan


# ------------------------------------------------------------------ median_iqr


# Widths in shuffled order; G&C with NaNs, a missing key and an all-NaN width (20).
ROWS = [
    {"width": 40, "problem_seed": 0, "gnc_gen_loss_mean": 0.30, "prior_gen_loss_mean": 0.24},
    {"width": 5, "problem_seed": 0, "gnc_gen_loss_mean": 0.10, "prior_gen_loss_mean": 0.25},
    {"width": 20, "problem_seed": 0, "gnc_gen_loss_mean": NAN, "prior_gen_loss_mean": 0.26},
    {"width": 40, "problem_seed": 1, "gnc_gen_loss_mean": NAN, "prior_gen_loss_mean": 0.23},
    {"width": 5, "problem_seed": 1, "gnc_gen_loss_mean": 0.14, "prior_gen_loss_mean": 0.21},
    {"width": 40, "problem_seed": 2, "prior_gen_loss_mean": 0.22},
    {"width": 5, "problem_seed": 2, "gnc_gen_loss_mean": 0.11, "prior_gen_loss_mean": 0.20},
    {"width": 20, "problem_seed": 1, "prior_gen_loss_mean": 0.27},
    {"width": 40, "problem_seed": 3, "gnc_gen_loss_mean": 0.36, "prior_gen_loss_mean": 0.29},
    {"width": 5, "problem_seed": 3, "gnc_gen_loss_mean": 0.19, "prior_gen_loss_mean": 0.24},
]


@pytest.mark.parametrize("column, finite", [
    ("gnc_gen_loss_mean", {40: [0.30, 0.36], 5: [0.10, 0.14, 0.11, 0.19], 20: []}),
    ("prior_gen_loss_mean", {40: [0.24, 0.23, 0.22, 0.29], 5: [0.25, 0.21, 0.20, 0.24],
                             20: [0.26, 0.27]}),
])
def test_median_iqr_matches_percentile(column, finite):
    bands = aggregate.median_iqr(ROWS, "width", column)
    assert [band.value for band in bands] == [40, 5, 20]  # first appearance, not sorted
    for band in bands:
        values = finite[band.value]
        assert band.n == len(values)
        if values:
            q25, median, q75 = np.percentile(values, [25, 50, 75])
            assert (band.median, band.q25, band.q75) == pytest.approx((median, q25, q75),
                                                                     rel=1e-15)
        else:
            assert math.isnan(band.median) and math.isnan(band.q25) and math.isnan(band.q75)


def test_median_iqr_column_missing_everywhere():
    bands = aggregate.median_iqr(ROWS, "width", "gd_gen_loss")
    assert [band.n for band in bands] == [0, 0, 0]


def test_median_iqr_categorical_values():
    rows = [{"normalize": flag, "accepted": k} for flag, k in
            [(True, 3), (False, 1), (True, 5), (False, 2), (True, 4)]]
    bands = aggregate.median_iqr(rows, "normalize", "accepted")
    assert bands == [aggregate.Band(True, 4.0, 3.5, 4.5, 3),
                     aggregate.Band(False, 1.5, 1.25, 1.75, 2)]


# ------------------------------------------------------------------ median_table


def test_median_table():
    table = aggregate.median_table(ROWS, "width", "gen_loss")
    lines = table.splitlines()
    assert lines[0].startswith("generalization loss")
    assert lines[1].split()[:2] == ["width", "G&C"]
    assert "prior (chance)" in lines[1] and "min Frobenius norm" in lines[1]
    # width 5: G&C median of (0.10, 0.11, 0.14, 0.19) = 0.125, quartiles 0.1075 and 0.1525
    assert lines[3].startswith("5 ") and "0.125 [0.1075, 0.1525] n=4" in lines[3]
    # width 20: no finite G&C value, and GD / the reference solutions are missing everywhere
    assert lines[4].startswith("20 ") and lines[4].count("missing") == 4
    assert "0.265 [0.2625, 0.2675] n=2" in lines[4]


def test_median_table_four_significant_digits():
    rows = [{"depth": 3, "acceptance_rate": 1.234567e-6}]
    assert "1.235e-06 [1.235e-06, 1.235e-06] n=1" in aggregate.median_table(
        rows, "depth", "acceptance_rate")


# ------------------------------------------------------------------ plot_sweep


def sweep_rows(axis, values, seeds=4):
    """Rows of a made-up sweep: G&C between GD and chance; nothing accepted at the last value
    for seeds 0 and 1; GD not run (NaN); no min Frobenius results (key missing)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, value in enumerate(values):
        for seed in range(seeds):
            accepted = 0 if i == len(values) - 1 and seed < 2 else int(rng.integers(1, 50))
            rows.append({axis: value, "problem_seed": seed, "accepted": accepted,
                         "draws": 10**6, "acceptance_rate": accepted / 10**6,
                         "gnc_gen_loss_mean": (0.1 + 0.02 * i + 0.01 * rng.random()
                                               if accepted else NAN),
                         "prior_gen_loss_mean": 0.24 + 0.01 * rng.random(), "gd_gen_loss": NAN,
                         "min_nuclear_gen_loss": 1e-3 * (1 + rng.random())})
    return rows


@pytest.fixture
def figures(monkeypatch):
    """The figures plot_sweep makes, kept open (its ``plt.close`` is intercepted)."""
    plt = pytest.importorskip("matplotlib.pyplot")
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plt.close(fig)


def check_written(paths, stem):
    assert paths == [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    png, pdf = (path.read_bytes() for path in paths)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


@pytest.mark.parametrize("axis, values, x_scale, ticks", [
    ("width", [20, 5, 160, 10, 80, 40], "log", ["5", "10", "20", "40", "80", "160"]),
    ("depth", [2, 4, 6, 8, 10], "linear", ["2", "4", "6", "8", "10"]),
    ("activation", ["linear", "tanh", "leaky_relu"], "linear", ["linear", "tanh", "leaky_relu"]),
    ("normalize", [True, False], "linear", ["True", "False"]),
])
def test_plot_sweep_axes(tmp_path, figures, axis, values, x_scale, ticks):
    from gcsampler import plots

    stem = tmp_path / f"{axis}_1e6"  # a dot in the stem is kept, not taken as a suffix
    paths = plots.plot_sweep(sweep_rows(axis, values), axis, stem, title=f"{axis} sweep",
                             note="1e6 draws per seed (x0.01 of the paper's 1e8)")
    check_written(paths, stem)
    (ax,) = figures[0].axes
    assert ax.get_xscale() == x_scale and ax.get_yscale() == "linear"  # gen loss: as the paper
    assert [label.get_text() for label in ax.get_xticklabels()] == ticks
    assert ax.get_xlabel() == axis and ax.get_ylabel() == "generalization loss"
    # GD (all NaN) and min Frobenius norm (key missing) are left out
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["G&C", "prior (chance)", "min nuclear norm"]
    # G&C at the last value comes from 2 of the 4 seeds; nothing else is short
    last = ticks.index(str(values[-1]))
    marks = [(text.get_text(), text.xy[0]) for text in ax.texts
             if text.get_text().startswith("n=")]
    assert marks == [("n=2", ax.get_xticks()[last])]


def test_plot_sweep_acceptance_rate(tmp_path, figures):
    from gcsampler import plots

    rows = sweep_rows("width", [5, 10, 20])
    paths = plots.plot_sweep(rows, "width", tmp_path / "acceptance", quantity="acceptance_rate")
    check_written(paths, tmp_path / "acceptance")
    (ax,) = figures[0].axes
    assert ax.get_ylabel() == "acceptance rate (accepted / draws)"
    assert ax.get_yscale() == "linear"  # two seeds accepted nothing at width 20: a rate of 0
    positive = [{**row, "acceptance_rate": row["acceptance_rate"] or 1e-7} for row in rows]
    plots.plot_sweep(positive, "width", tmp_path / "positive", quantity="acceptance_rate")
    assert figures[1].axes[0].get_yscale() == "log"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["G&C acceptance"]


def test_plot_sweep_all_series_missing(tmp_path, figures):
    from gcsampler import plots

    rows = [{"width": w, "problem_seed": 0, "gnc_gen_loss_mean": NAN} for w in (5, 50)]
    check_written(plots.plot_sweep(rows, "width", tmp_path / "empty"), tmp_path / "empty")
    assert figures[0].axes[0].get_legend() is None
