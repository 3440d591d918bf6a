"""Tests of gcsampler.runs.aggregate (median and quartiles over seeds) and
plots.plot_sweep."""

import math

import numpy as np
import pytest

from gcsampler.runs import aggregate
from test_run_plots import outside

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
    # width 20: no finite G&C value (said why), and GD / the reference solutions are
    # missing everywhere
    assert lines[4].startswith("20 ") and lines[4].count("missing") == 3
    assert "no draw accepted" in lines[4]
    assert "0.265 [0.2625, 0.2675] n=2" in lines[4]


def test_median_table_four_significant_digits():
    rows = [{"depth": 3, "acceptance_rate": 1.234567e-6}]
    assert "1.235e-06 [1.235e-06, 1.235e-06] n=1" in aggregate.median_table(
        rows, "depth", "acceptance_rate")


# ------------------------------------------------------------------ fit_counts


def test_fit_counts_reads_every_verdict_form():
    rows = [{"width": 5, "gd_fitted": verdict} for verdict in (True, 1.0, False, 0.0, NAN, None)]
    rows += [{"width": 10, "gd_fitted": 0.75}, {"width": 10, "gd_fitted": np.bool_(True)},
             {"width": 20}]
    assert aggregate.fit_counts(rows, "width", "gd_fitted") == {5: (2, 4), 10: (1, 2),
                                                                20: (0, 0)}


# ------------------------------------------------------------------ plot_sweep


def sweep_rows(axis, values, seeds=4):
    """Rows of a made-up sweep: G&C between GD and chance; nothing accepted at the last value
    for seeds 0 and 1; GD not run (NaN); no min Frobenius results (key missing)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, value in enumerate(values):
        for seed in range(seeds):
            accepted = 0 if i == len(values) - 1 and seed < 2 else int(rng.integers(1, 50))
            rows.append({axis: value, "problem_seed": seed, "eps": 0.02, "accepted": accepted,
                         "draws": 10**6, "acceptance_rate": accepted / 10**6,
                         "gnc_gen_loss_mean": (0.1 + 0.02 * i + 0.01 * rng.random()
                                               if accepted else NAN),
                         "prior_gen_loss_mean": 0.24 + 0.01 * rng.random(), "gd_gen_loss": NAN,
                         "gd_fitted": NAN, "min_nuclear_gen_loss": 1e-3 * (1 + rng.random())})
    return rows


def legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def axis_markers(ax):
    """The x data of the 'v' markers drawn on the x axis (at the bottom of the axes)."""
    bottom = ax.transAxes.transform((0, 0))[1]
    return [list(line.get_xdata()) for line in ax.lines if line.get_marker() == "v"
            and all(line.get_transform().transform((x, 0))[1] == pytest.approx(bottom)
                    for x in line.get_xdata())]


def check_written(paths, stem):
    assert paths == [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    png, pdf = (path.read_bytes() for path in paths)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_plot_sweep_writes_png_and_pdf(tmp_path, plots):
    stem = tmp_path / "width_1e6"  # a dot in the stem is kept, not taken as a suffix
    check_written(plots.plot_sweep(sweep_rows("width", [5, 10]), "width", stem), stem)


@pytest.mark.parametrize("axis, values, x_scale, ticks", [
    ("width", [20, 5, 160, 10, 80, 40], "log", ["5", "10", "20", "40", "80", "160"]),
    ("depth", [2, 4, 6, 8, 10], "linear", ["2", "4", "6", "8", "10"]),
    ("activation", ["linear", "tanh", "leaky_relu"], "linear", ["linear", "tanh", "leaky_relu"]),
    ("normalize", [True, False], "linear", ["True", "False"]),
])
def test_sweep_figure_axes(plots, axis, values, x_scale, ticks):
    fig = plots.sweep_figure(sweep_rows(axis, values), axis, title=f"{axis} sweep",
                             note="1e6 draws per seed")
    (ax,) = fig.axes
    assert ax.get_xscale() == x_scale and ax.get_yscale() == "log"
    assert [label.get_text() for label in ax.get_xticklabels()] == ticks
    assert ax.get_xlabel() == axis and ax.get_ylabel() == "generalization loss"
    assert ax.get_title() == f"{axis} sweep"
    assert "eps = 0.02; 1e6 draws per seed" in [text.get_text() for text in ax.texts]
    # GD (all NaN) and min Frobenius norm (key missing) are left out, and the legend says so
    assert legend_texts(ax) == ["G&C", "prior (chance)", "min nuclear norm",
                                "no value, left out: GD, min Frobenius norm"]
    assert outside(ax.get_legend(), ax)
    title = ax.get_legend().get_title().get_text()
    assert title == "points: median over 4 seeds\nbars: 25th-75th percentile"
    # G&C at the last value comes from 2 of the 4 seeds; nothing else is short
    last = ticks.index(str(values[-1]))
    marks = [(text.get_text(), text.xy[0]) for text in ax.texts
             if text.get_text().startswith("n=")]
    assert marks == [("n=2/4", ax.get_xticks()[last])]
    assert axis_markers(ax) == []


@pytest.mark.parametrize("quantity", ["gen_loss", "acceptance_rate"])
def test_sweep_figure_linear_switch(plots, quantity):
    rows = sweep_rows("width", [5, 10, 20])
    (ax,) = plots.sweep_figure(rows, "width", quantity=quantity, log_y=False).axes
    assert ax.get_yscale() == "linear" and ax.yaxis.get_offset_text().get_text() == ""
    assert ax.get_ylim()[0] < 0 < 0.1 * ax.get_ylim()[1]  # from 0, as the values are >= 0


def test_sweep_figure_acceptance_rate_zeros_on_the_floor(plots):
    # two seeds accepted nothing at width 20: a rate of 0, drawn on the floor of the log axis
    (ax,) = plots.sweep_figure(sweep_rows("width", [5, 10, 20]), "width",
                               quantity="acceptance_rate").axes
    assert ax.get_ylabel() == "acceptance rate (accepted / draws)"
    assert ax.get_yscale() == "log"
    assert legend_texts(ax) == ["G&C acceptance", "\u2264 1e-7: drawn on the dotted line"]
    floor = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert [line.get_ydata()[0] for line in floor] == [1e-7]


def test_sweep_figure_exact_recovery_on_the_floor(plots):
    rows = [{**row, "min_nuclear_gen_loss": 1e-21} for row in sweep_rows("width", [5, 10])]
    (ax,) = plots.sweep_figure(rows, "width").axes
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] < 1e-10 < ax.get_ylim()[1]
    assert "\u2264 1e-10: drawn on the dotted line" in legend_texts(ax)


def test_sweep_figure_marks_a_value_without_accepted_draws(plots):
    rows = [{**row, "gnc_gen_loss_mean": NAN} if row["width"] == 10 else row
            for row in sweep_rows("width", [5, 10, 20])]
    (ax,) = plots.sweep_figure(rows, "width").axes
    assert "G&C: no draw accepted (n=0)" in legend_texts(ax)
    (xs,) = axis_markers(ax)
    assert xs == [10.0]


def test_sweep_figure_all_gnc_missing(plots):
    rows = [{"width": w, "problem_seed": 0, "gnc_gen_loss_mean": NAN} for w in (5, 50)]
    (ax,) = plots.sweep_figure(rows, "width").axes
    assert ax.get_yscale() == "linear"  # no positive value to put on a log axis
    assert legend_texts(ax)[:2] == ["G&C", "G&C: no draw accepted (n=0)"]
    assert axis_markers(ax) == [[5.0, 50.0]]


def gd_rows(verdicts):
    """sweep_rows with GD run: per width, the seeds' gd_fitted verdicts."""
    rows = sweep_rows("width", list(verdicts))
    for row in rows:
        row["gd_fitted"] = verdicts[row["width"]][row["problem_seed"]]
        row["gd_gen_loss"] = 1e-6 if row["gd_fitted"] in (True, 1.0) else 0.05
    return rows


def hollow_points(ax):
    return [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines
            if line.get_markerfacecolor() == "white"]


def test_sweep_figure_hollow_where_gd_did_not_fit(plots):
    rows = gd_rows({5: [True, True, 1.0, True], 10: [True, 0.0, False, None],
                    20: [1.0, NAN, True, True]})
    (ax,) = plots.sweep_figure(rows, "width").axes
    assert legend_texts(ax)[1] == "GD"
    assert ("hollow: not every GD run reached\ntrain loss < eps (fit k/N seeds)"
            in legend_texts(ax))
    median = np.median([1e-6, 0.05, 0.05, 0.05])
    assert hollow_points(ax) == [([10.0], [pytest.approx(median)])]
    fits = [(text.get_text(), text.xy[0]) for text in ax.texts if text.get_text().startswith("fit")]
    assert fits == [("fit 1/3", 10.0)]


def test_sweep_figure_gd_fitted_everywhere(plots):
    rows = gd_rows({5: [True] * 4, 10: [1.0] * 4})
    (ax,) = plots.sweep_figure(rows, "width").axes
    assert hollow_points(ax) == []
    assert not any(text.startswith("hollow") for text in legend_texts(ax))


# ------------------------------------------------------------------ study figure


def test_study_figure(plots):
    rows = [{"bin_lo": lo, "bin_hi": lo + 0.1, "n_train": n, "seed": seed,
             "gnc_test_accuracy": NAN if (lo, n) == (0.3, 4) else 0.7,
             "baseline_test_accuracy": 0.6 if seed else NAN,
             "baseline_fitted": 1.0 if n == 2 else 0.5 * seed}
            for lo in (0.3, 0.4) for n in (2, 4) for seed in range(3)]
    fig = plots.study_figure(rows, baseline="sgd", title="kink, mlp", note="3 seeds")
    (legend,) = fig.legends
    texts = [text.get_text() for text in legend.get_texts()]
    assert {"G&C", "SGD", "chance (0.5)", "G&C: no draw in the bin (n=0)",
            "hollow: not every SGD run reached\n100% train accuracy (fit k/N seeds)"} == set(texts)
    # the points are Chiang et al.'s statistic: the mean over seeds of each seed's mean
    assert legend.get_title().get_text() == ("points: mean over 3 seeds of each seed's mean\n"
                                             "bars: 95% confidence interval (cut at 0 and 1)")
    first = fig.axes[0]
    assert axis_markers(first) == [[4.0]]
    assert hollow_points(first) == [([4.0], [0.6])]
    assert [text.get_text() for text in first.texts if text.get_text()[0] in "nf"] == [
        "n=2/3", "n=2/3", "fit 1/3"]


def test_study_figure_published_baseline_mean_and_shortfall(plots):
    # 3 seeds whose mean (0.7) is not their median (0.6); the published baseline's bin was
    # left short for one seed at n_train=4 (baseline_fitted: kept / asked < 1)
    rows = [{"bin_lo": 0.3, "bin_hi": 0.35, "n_train": n, "seed": seed,
             "gnc_test_accuracy": [0.5, 0.6, 1.0][seed],
             "baseline_test_accuracy": [0.55, 0.65, 0.9][seed],
             "baseline_fitted": 0.5 if (n, seed) == (4, 0) else 1.0}
            for n in (2, 4) for seed in range(3)]
    short = ("fewer than 20 SGD runs landed\nin the bin for some seed (fit k/N: seeds whose "
             "bin filled)")
    fig = plots.study_figure(rows, baseline="sgd", shortfall=short)
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    half = stats_t_half([0.5, 0.6, 1.0])
    points = {line.get_marker(): line for line in ax.lines if line.get_marker() in "os"
              and line.get_markerfacecolor() != "white"}
    assert list(points["o"].get_ydata()) == pytest.approx([0.7, 0.7])   # G&C: the mean
    assert list(points["s"].get_ydata()) == pytest.approx([0.7, 0.7])   # SGD: the mean
    bars = [segment for collection in ax.collections for segment in collection.get_segments()]
    assert any(segment[:, 1].tolist() == pytest.approx([0.7 - half, 0.7 + half])
               for segment in bars)   # the 95% interval of the mean
    assert hollow_points(ax) == [([4.0], [pytest.approx(0.7)])]
    assert [text.get_text() for text in ax.texts] == ["fit 2/3"]
    (legend,) = fig.legends
    assert f"hollow: {short}" in [text.get_text() for text in legend.get_texts()]


def stats_t_half(values):
    """The half-width of the Student-t 95% interval of the mean of ``values``."""
    from scipy import stats
    values = np.asarray(values)
    return (stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1)
            / math.sqrt(values.size))
