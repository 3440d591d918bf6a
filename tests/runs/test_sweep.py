"""Sweeps: presets resolve to the paper's settings, cells expand as specified, and a tiny
sweep writes run directories and a results.csv that agree with standalone runs."""

import collections
import csv
import io
import math
import shutil
import time

import numpy as np
import pytest

from gcsampler.factorization import gd, interpolants
from gcsampler.runs import (accepted, checkpoint, config, files, finish, presets, runner,
                            sweep, sweep_results)
from gcsampler.runs.methods import METHODS
from gcsampler.threshold import statistics

from cli_calls import cli_run

TINY = {"eps": 0.1, "samples": 3000, "log2_block": 8, "devices": "1", "gd_steps": 40,
        "gd_log_every": 20, "gd_lr": 1e-2, "gd_init_scale": 1e-2, "gd_runs": 2}


def test_width_presets_are_the_papers_fig1():
    for activation in presets.ACTIVATIONS:
        preset = presets.get(f"fig1-{activation}")
        assert preset.axis == "width" and preset.values == (5, 10, 20, 40, 80, 160)
        assert preset.seeds == 8
        cells = sweep.expand(sweep.SweepSpec(preset.axis, preset.values, preset.seeds,
                                             dict(preset.settings), dict(preset.per_value)))
        assert len(cells) == 6 * 8
        for cell in cells:
            cfg = cell.cfg
            assert (cfg.depth, cfg.eps, cfg.samples, cfg.normalize) == (2, 0.02, 10**8, False)
            assert (cfg.task, cfg.rank, cfg.prior, cfg.activation) == (
                "sensing", 1, "gaussian", activation)
            assert (cfg.gd_optimizer, cfg.gd_lr, cfg.gd_steps, cfg.gd_init_scale, cfg.gd_momentum,
                    cfg.gd_runs) == ("grouprmsprop", 1e-4, 100_000, 1e-3, 0.0, 1)
            assert cfg.seed == cfg.problem_seed == cell.seed
            assert cfg.width == cell.value
        if activation == "leaky_relu":
            assert cells[0].cfg.leaky_slope == 0.2


def test_depth_presets_are_the_papers_fig2():
    preset = presets.get("fig2-tanh")
    assert preset.axis == "depth" and preset.values == tuple(range(2, 11))
    cells = sweep.expand(sweep.SweepSpec(preset.axis, preset.values, preset.seeds,
                                         dict(preset.settings), dict(preset.per_value)))
    expected_init = {2: 1e-3, 3: 1e-3, 4: 1e-3, 5: 0.1, 6: 0.1, 7: 0.1, 8: 0.1, 9: 0.2, 10: 0.2}
    for cell in cells:
        cfg = cell.cfg
        assert (cfg.width, cfg.eps, cfg.samples, cfg.normalize, cfg.activation) == (
            5, 0.0035, 10**9, True, "tanh")
        assert (cfg.gd_lr, cfg.gd_steps, cfg.gd_init_scale) == (
            1e-2, 20_000, expected_init[cfg.depth])


# The published configs (YoniSlutzky98/nn-gd-gen-mf at 056dcb82b576b7db4558b1c7ff44c4a6f6e2e3ef),
# one entry per file, in gcsampler's names: completion false/true -> task sensing/completion,
# gnc_init gauss/unif -> prior gaussian/uniform, gd_epochs -> gd_steps, gnc_eps_train -> eps,
# gnc_num_samples -> samples, gnc_normalize -> normalize, num_measurements -> measurements,
# gd_lrs -> gd_lr (one value for all).
# gd_init_scales is per swept value; a one-element list applies to every value.
Published = collections.namedtuple(
    "Published", "preset axis task rank measurements activation prior normalize eps "
                 "samples gd_lr gd_steps gd_momentum gd_init_scales")
P = Published
PUBLISHED = [
    # configs/width/width_gt_rank=1_act=Linear_gnc_init=gauss.json
    P("fig1-linear", "width", "sensing", 1, 15, "linear", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=Tanh_gnc_init=gauss.json
    P("fig1-tanh", "width", "sensing", 1, 15, "tanh", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=LeakyReLU_gnc_init=gauss.json
    P("fig1-leaky_relu", "width", "sensing", 1, 15, "leaky_relu", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/depth/depth_gt_rank=1_act=Linear_gnc_init=gauss.json
    P("fig2-linear", "depth", "sensing", 1, 15, "linear", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=Tanh_gnc_init=gauss.json
    P("fig2-tanh", "depth", "sensing", 1, 15, "tanh", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=LeakyReLU_gnc_init=gauss.json
    P("fig2-leaky_relu", "depth", "sensing", 1, 15, "leaky_relu", "gaussian", True, 0.0035,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # configs/width/width_gt_rank=1_act=Linear_gnc_init=gauss_gd_momentum=0.9.json
    P("fig3-linear", "width", "sensing", 1, 15, "linear", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.9, [1e-3]),
    # configs/width/width_gt_rank=1_act=Tanh_gnc_init=gauss_gd_momentum=0.9.json
    P("fig3-tanh", "width", "sensing", 1, 15, "tanh", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.9, [1e-3]),
    # configs/width/width_gt_rank=1_act=LeakyReLU_gnc_init=gauss_gd_momentum=0.9.json
    P("fig3-leaky_relu", "width", "sensing", 1, 15, "leaky_relu", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.9, [1e-3]),
    # configs/depth/depth_gt_rank=1_act=Linear_gnc_init=gauss_gd_momentum=0.9.json
    P("fig4-linear", "depth", "sensing", 1, 15, "linear", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.9, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=Tanh_gnc_init=gauss_gd_momentum=0.9.json
    P("fig4-tanh", "depth", "sensing", 1, 15, "tanh", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.9, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=LeakyReLU_gnc_init=gauss_gd_momentum=0.9.json
    P("fig4-leaky_relu", "depth", "sensing", 1, 15, "leaky_relu", "gaussian", True, 0.0035,
      1e9, 0.01, 50000, 0.9, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # configs/width/width_gt_rank=2_act=Linear_gnc_init=gauss.json
    P("fig5-linear", "width", "sensing", 2, 22, "linear", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=2_act=Tanh_gnc_init=gauss.json
    P("fig5-tanh", "width", "sensing", 2, 22, "tanh", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=2_act=LeakyReLU_gnc_init=gauss.json
    P("fig5-leaky_relu", "width", "sensing", 2, 22, "leaky_relu", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/depth/depth_gt_rank=2_act=Linear_gnc_init=gauss.json
    P("fig6-linear", "depth", "sensing", 2, 22, "linear", "gaussian", True, 0.01,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=2_act=Tanh_gnc_init=gauss.json
    P("fig6-tanh", "depth", "sensing", 2, 22, "tanh", "gaussian", True, 0.01,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=2_act=LeakyReLU_gnc_init=gauss.json
    P("fig6-leaky_relu", "depth", "sensing", 2, 22, "leaky_relu", "gaussian", True, 0.01,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # configs/width/width_gt_rank=1_act=Linear_gnc_init=unif.json
    P("fig7-linear", "width", "sensing", 1, 15, "linear", "uniform", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=Tanh_gnc_init=unif.json
    P("fig7-tanh", "width", "sensing", 1, 15, "tanh", "uniform", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=LeakyReLU_gnc_init=unif.json
    P("fig7-leaky_relu", "width", "sensing", 1, 15, "leaky_relu", "uniform", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/depth/depth_gt_rank=1_act=Linear_gnc_init=unif.json
    P("fig8-linear", "depth", "sensing", 1, 15, "linear", "uniform", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=Tanh_gnc_init=unif.json
    P("fig8-tanh", "depth", "sensing", 1, 15, "tanh", "uniform", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=LeakyReLU_gnc_init=unif.json
    P("fig8-leaky_relu", "depth", "sensing", 1, 15, "leaky_relu", "uniform", True, 0.0035,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # configs/width/width_gt_rank=1_act=Linear_gnc_init=gauss_completion.json
    P("fig9-linear", "width", "completion", 1, 15, "linear", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=Tanh_gnc_init=gauss_completion.json
    P("fig9-tanh", "width", "completion", 1, 15, "tanh", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/width/width_gt_rank=1_act=LeakyReLU_gnc_init=gauss_completion.json
    P("fig9-leaky_relu", "width", "completion", 1, 15, "leaky_relu", "gaussian", False, 0.02,
      1e8, 1e-4, 100000, 0.0, [1e-3]),
    # configs/depth/depth_gt_rank=1_act=Linear_gnc_init=gauss_completion.json
    P("fig10-linear", "depth", "completion", 1, 15, "linear", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=Tanh_gnc_init=gauss_completion.json
    P("fig10-tanh", "depth", "completion", 1, 15, "tanh", "gaussian", True, 0.0035,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=LeakyReLU_gnc_init=gauss_completion.json
    P("fig10-leaky_relu", "depth", "completion", 1, 15, "leaky_relu", "gaussian", True, 0.0035,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # configs/depth/depth_gt_rank=1_act=Linear_gnc_init=gauss_normalize=False.json
    P("fig11-linear", "depth", "sensing", 1, 15, "linear", "gaussian", False, 0.01,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=Tanh_gnc_init=gauss_normalize=False.json
    P("fig11-tanh", "depth", "sensing", 1, 15, "tanh", "gaussian", False, 0.01,
      1e9, 0.01, 20000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]),
    # configs/depth/depth_gt_rank=1_act=LeakyReLU_gnc_init=gauss_normalize=False.json
    P("fig11-leaky_relu", "depth", "sensing", 1, 15, "leaky_relu", "gaussian", False, 0.01,
      1e9, 0.01, 50000, 0.0, [0.001, 0.001, 0.001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
]
# Every config file: n_rows = n_cols = 5, gt_norm 1.0, num_seeds 8, negative_slope 0.2; every
# configs/width file sweeps widths [5, 10, 20, 40, 80, 160] at depth 2, every configs/depth
# file depths [2, ..., 10] at width 5.
PUBLISHED_SWEEPS = {"width": ((5, 10, 20, 40, 80, 160), "depth", 2),
                    "depth": ((2, 3, 4, 5, 6, 7, 8, 9, 10), "width", 5)}


def _cells(preset, seeds=None):
    return sweep.expand(sweep.SweepSpec(preset.axis, preset.values, seeds or preset.seeds,
                                        dict(preset.settings), dict(preset.per_value)))


def _check_published(preset, published):
    values, fixed, fixed_value = PUBLISHED_SWEEPS[published.axis]
    assert (preset.axis, preset.values, preset.seeds) == (published.axis, values, 8)
    cells = _cells(preset)
    assert [(c.value, c.seed) for c in cells] == [(v, s) for v in values for s in range(8)]
    scales = published.gd_init_scales * (len(values) if len(published.gd_init_scales) == 1
                                         else 1)
    for cell in cells:
        cfg = cell.cfg
        assert getattr(cfg, published.axis) == cell.value and getattr(cfg, fixed) == fixed_value
        assert (cfg.rows, cfg.cols, cfg.gt_norm, cfg.leaky_slope) == (5, 5, 1.0, 0.2)
        assert cfg.seed == cfg.problem_seed == cell.seed
        assert (cfg.task, cfg.rank, cfg.measurements, cfg.activation, cfg.prior) == (
            published.task, published.rank, published.measurements, published.activation,
            published.prior)
        assert (cfg.normalize, cfg.eps, cfg.samples, cfg.method) == (
            published.normalize, published.eps, published.samples, "rejection")
        assert (cfg.gd, cfg.gd_optimizer, cfg.gd_runs, cfg.gd_lr, cfg.gd_steps,
                cfg.gd_momentum) == (True, "grouprmsprop", 1, published.gd_lr,
                                     published.gd_steps, published.gd_momentum)
        assert cfg.gd_init_scale == scales[values.index(cell.value)]


def test_published_table_has_one_entry_per_config():
    names = [p.preset for p in PUBLISHED]
    assert len(names) == len(set(names)) == 33
    assert set(names) == {name for name in presets.PRESETS if not name.endswith("-as-run")}


@pytest.mark.parametrize("published", PUBLISHED, ids=[p.preset for p in PUBLISHED])
def test_presets_are_the_published_configs(published):
    _check_published(presets.get(published.preset), published)


@pytest.mark.parametrize("figure", [3, 4])
def test_as_run_presets_are_the_momentum_figures_without_momentum(figure):
    """The published GroupRMSprop never applies its momentum: fig3/fig4 as run."""
    listing = presets.listing()
    for activation in presets.ACTIVATIONS:
        name = f"fig{figure}-{activation}-as-run"
        preset = presets.get(name)
        published = next(p for p in PUBLISHED if p.preset == f"fig{figure}-{activation}")
        assert published.gd_momentum == 0.9
        _check_published(preset, published._replace(gd_momentum=0.0))
        assert preset.figure == f"Fig. {figure}" and "never applies" in preset.description
        assert name in listing
        # With momentum gone, the published config is fig1's (fig2's) in every setting.
        base = presets.get(f"fig{figure - 2}-{activation}")
        assert [c.cfg for c in _cells(preset, 1)] == [c.cfg for c in _cells(base, 1)]


def test_every_preset_expands_to_valid_cells():
    assert len(presets.PRESETS) == 11 * 3 + 2 * 3
    for preset in presets.PRESETS.values():
        cells = sweep.expand(sweep.SweepSpec(preset.axis, preset.values, 1, dict(preset.settings),
                                             dict(preset.per_value), scale=1e-4))
        assert len(cells) == len(preset.values)
    assert "fig2-leaky_relu" in presets.listing()
    with pytest.raises(ValueError, match="--preset must be one of fig1-linear"):
        presets.get("fig12-linear")


def test_parse_values_types_and_errors():
    assert sweep.parse_values("width", "5,10, 20") == (5, 10, 20)
    assert sweep.parse_values("samples", "1e6,2e6") == (10**6, 2 * 10**6)
    assert sweep.parse_values("eps", "0.02,1e-3") == (0.02, 0.001)
    assert sweep.parse_values("normalize", "true,False") == (True, False)
    assert sweep.parse_values("activation", "linear,tanh") == ("linear", "tanh")
    for axis, text, message in [
        ("bogus", "1,2", "--vary must name a setting"),
        ("seed", "1,2", "seeds come from --seeds"),
        ("width", "", "comma-separated list"),
        ("width", "5,,6", "comma-separated list"),
        ("width", "5,a", "takes integers"),
        ("width", "5.5", "takes integers"),
        ("eps", "x", "takes numbers"),
        ("normalize", "yes", "true or false"),
        ("width", "5,5", "lists a value twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            sweep.parse_values(axis, text)


def test_expand_precedence_scale_and_errors():
    spec = sweep.SweepSpec("depth", (2, 3), 2, {"eps": 0.5, "samples": 1000, "gd_lr": 1.0},
                           per_value={3: {"gd_lr": 0.5, "eps": 0.25}}, overrides={"eps": 0.75},
                           scale=0.5)
    cells = sweep.expand(spec)
    assert [(c.value, c.seed) for c in cells] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert [c.cfg.gd_lr for c in cells] == [1.0, 1.0, 0.5, 0.5]   # per-value beats settings
    assert {c.cfg.eps for c in cells} == {0.75}                    # the user's flags beat both
    assert {c.cfg.samples for c in cells} == {500}
    assert cells[3].name == "depth=3/seed=1"
    with pytest.raises(ValueError, match="measurements=25: --measurements must be below"):
        sweep.expand(sweep.SweepSpec("measurements", (10, 25), 1, {}))
    with pytest.raises(ValueError, match="depth=0: --depth must be a positive integer"):
        sweep.expand(sweep.SweepSpec("depth", (2, 0), 1, {}))
    with pytest.raises(ValueError, match="--seeds must be a positive integer"):
        sweep.expand(sweep.SweepSpec("depth", (2,), 0, {}))
    with pytest.raises(ValueError, match=r"--scale must be in \(0, 1\]"):
        sweep.expand(sweep.SweepSpec("depth", (2,), 1, {}, scale=2.0))


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    spec = sweep.SweepSpec("width", (5, 7), 2, dict(TINY), title="tiny")
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "tiny"
    stream = io.StringIO()
    began = time.monotonic()
    rows = sweep.run_sweep(spec, sweep_dir, stream)
    elapsed = time.monotonic() - began
    finished = files.read_json(sweep_dir / sweep.SWEEP_FILE)["finished"]
    assert 0.5 * elapsed < finished["wall_seconds"] <= elapsed
    return spec, sweep_dir, rows, stream.getvalue()


def test_tiny_sweep_results_csv(tiny_sweep):
    spec, sweep_dir, rows, log = tiny_sweep
    assert "sweep cell 4/4 (width=7/seed=1)" in log and "samples/s" in log and "ETA" in log
    assert log.count("GD for width=") == 2
    with open(sweep_dir / sweep_results.RESULTS_FILE, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(int(r["width"]), int(r["problem_seed"]), int(r["seed"])) for r in table] == [
        (5, 0, 0), (5, 1, 1), (7, 0, 0), (7, 1, 1)]
    assert set(sweep_results.columns()) <= set(table[0])
    for row, line in zip(rows, table):
        summary = files.read_json(sweep_dir / line["run_dir"] / "summary.json")
        assert int(line["draws"]) == summary["draws"] == 3000
        assert int(line["accepted"]) == summary["accepted"]
        assert float(line["gnc_gen_loss_mean"]) == summary["gnc_gen_loss_mean"]
        assert float(line["prior_gen_loss_mean"]) == summary["prior_gen_loss_mean"]
        assert float(line["gd_gen_loss"]) == summary["gd_gen_loss"]
        assert (float(line["samples_scale"]) == 1.0
                and line["sampler_used"] == summary["sampler_used"])
        assert math.isclose(float(line["wall_seconds"]), float(line["seconds"]) + float(
            line["compile_seconds"]) + float(line["gd_seconds"]))
        assert line["gd_fitted"] in ("True", "False")
        assert float(line["gd_fitted_fraction"]) == summary["gd_fitted_fraction"]
        assert float(line["acceptance_rate"]) == row["acceptance_rate"]


def test_tiny_sweep_cells_equal_standalone_runs(tiny_sweep, tmp_path):
    """A cell is exactly the run `gcsampler run` would make with its settings: same G&C
    statistics bit for bit; same GD (vmapped over the seeds, so to float tolerance);
    the reference solutions of its problem."""
    _, sweep_dir, rows, _ = tiny_sweep
    row = rows[3]
    cfg = config.from_dict(row)
    assert (cfg.width, cfg.seed) == (7, 1)
    pieces = runner.prepare(cfg)
    alone = METHODS[cfg.method].start(cfg, pieces, tmp_path / "alone", stream=io.StringIO(),
                                      checkpoint_every=checkpoint.DEFAULT_EVERY,
                                      display=lambda *a: None)
    for key in ("draws", "accepted", "gnc_gen_loss_mean", "prior_gen_loss_mean", "nonfinite"):
        assert alone[key] == files.read_json(sweep_dir / row["run_dir"] / "summary.json")[key]
    curves = gd.gd_train(pieces.problem, pieces.model, cfg.optimizer(), seed=cfg.seed,
                         runs=cfg.gd_runs, steps=cfg.gd_steps, init_scale=cfg.gd_init_scale,
                         log_every=cfg.gd_log_every)
    # vmapped vs alone: float32 reassociation over 40 steps, far from the loss floor
    np.testing.assert_allclose(row["gd_gen_loss"], np.mean(curves.final_gen_loss), rtol=1e-4)
    expected = interpolants.reference_losses(pieces.problem)
    assert row["min_nuclear_gen_loss"] == expected["min_nuclear_gen_loss"]
    assert row["min_frobenius_gen_loss"] == expected["min_frobenius_gen_loss"]
    # Different seeds are different problems.
    assert rows[2]["prior_gen_loss_mean"] != rows[3]["prior_gen_loss_mean"]


def test_load_rebuilds_rows_and_rethresholds(tiny_sweep):
    _, sweep_dir, rows, _ = tiny_sweep
    record, loaded = sweep_results.load_sweep(sweep_dir)
    assert record["axis"] == "width" and record["values"] == [5, 7]
    for a, b in zip(rows, loaded):
        assert a == b
    # Below the runs' eps the re-threshold is exact: count the stored rows.
    _, lower = sweep_results.load_sweep(sweep_dir, eps=0.05)
    for row in lower:
        stored = accepted.read_accepted(sweep_dir / row["run_dir"])
        below = stored["train_loss"] < statistics.float32_threshold(0.05)
        assert row["accepted"] == int(below.sum()) and row["eps"] == 0.05
        assert math.isclose(row["gnc_gen_loss_mean"],
                            stored["gen_loss"][below].astype(float).mean(), rel_tol=1e-9)
        assert row["acceptance_rate"] == row["accepted"] / row["draws"]


def test_load_refuses_foreign_directories(tmp_path):
    with pytest.raises(files.RunDirError, match="not a gcsampler sweep directory"):
        sweep_results.load_sweep(tmp_path)
    files.write_json(tmp_path / sweep.SWEEP_FILE, {"axis": "width"})
    with pytest.raises(files.RunDirError, match="not a valid sweep record"):
        sweep_results.load_sweep(tmp_path)


def test_sweep_refuses_an_existing_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(files.RunDirError):
        sweep.run_sweep(sweep.SweepSpec("width", (5,), 1, dict(TINY)), tmp_path, io.StringIO())
    assert (tmp_path / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_figure_note_says_draws_scale_eps_and_hardware(tiny_sweep):
    _, sweep_dir, _, _ = tiny_sweep
    record, rows = sweep_results.load_sweep(sweep_dir)
    note = sweep_results.figure_note(record, rows)
    assert note.startswith("3e+03 draws per seed; 1 x cpu, ") and note.endswith(" min")
    assert "scaled" not in note
    scaled = sweep_results.figure_note({**record, "scale": 0.01}, rows)
    assert "(scaled x0.01 from the setting's 3e+05)" in scaled
    _, above = sweep_results.load_sweep(sweep_dir, eps=0.5)   # above the runs' eps: from the bins
    assert "effective eps 0.3981 (train-loss bins)" in sweep_results.figure_note(record, above)


def test_values_that_leave_gd_unchanged_reuse_its_runs(tmp_path):
    """Sweeping eps changes G&C only: GD trains once per seed and every value reports it."""
    spec = sweep.SweepSpec("eps", (0.1, 0.05), 2, dict(TINY))
    stream = io.StringIO()
    rows = sweep.run_sweep(spec, tmp_path / "eps", stream)
    log = stream.getvalue()
    assert log.count("GD for eps=0.1: 2 seeds") == 1 and "GD for eps=0.05: same as" in log
    assert [r["gd_gen_loss"] for r in rows[:2]] == [r["gd_gen_loss"] for r in rows[2:]]
    assert all(r["gd_seconds"] > 0 for r in rows[:2])
    assert all(r["gd_seconds"] == 0 for r in rows[2:])
    assert rows[0]["accepted"] > rows[2]["accepted"]   # G&C did change


# ---------------------------------------------------------- resumed sweeps

G_AND_C = ("draws", "accepted", "gnc_gen_loss_mean", "prior_gen_loss_mean", "nonfinite")


def _mtimes(directory):
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_resumed_sweep_continues_where_it_stopped(tiny_sweep, tmp_path):
    """A sweep stopped with one cell finished, one stopped before GD, one stopped part-way
    through G&C and one not started: resuming keeps the finished cell's files, and every
    cell ends with the G&C results of the sweep made without a stop."""
    _, original, rows, _ = tiny_sweep
    stopped = tmp_path / "tiny"
    shutil.copytree(original, stopped)
    record = files.read_json(stopped / sweep.SWEEP_FILE)
    del record["finished"]
    files.write_json(stopped / sweep.SWEEP_FILE, record)
    cells = stopped / "cells"
    before_gd = files.read_json(cells / "width=5/seed=1/summary.json")
    files.write_json(cells / "width=5/seed=1/summary.json",
                     {k: v for k, v in before_gd.items() if k not in finish.GD_FIELDS
                      and k != "completed"})
    (cells / "width=5/seed=1/gd.npz").unlink()
    (cells / "width=7/seed=0/summary.json").unlink()       # G&C stopped at its checkpoint
    shutil.rmtree(cells / "width=7/seed=1")                # never started
    kept = _mtimes(cells / "width=5/seed=0")
    # Until it resumes, the stopped sweep's rows are those of its cells with G&C done.
    assert [(r["width"], r["seed"]) for r in sweep_results.load_sweep(stopped)[1]] == [
        (5, 0), (5, 1)]
    stream = io.StringIO()
    resumed = sweep.run_sweep(sweep.spec_from_record(record), stopped, stream, resume=True)
    log = stream.getvalue()
    assert "width=7/seed=0 continues from its checkpoint" in log
    assert f"gcsampler: resuming {cells / 'width=7/seed=0'} at draw" in log   # its own progress
    assert "GD for width=5: 1 seed x" in log and "GD for width=7: 2 seeds" in log
    assert _mtimes(cells / "width=5/seed=0") == kept
    for old, new in zip(rows, resumed):
        assert (old["width"], old["seed"]) == (new["width"], new["seed"])
        assert [old[k] for k in G_AND_C] == [new[k] for k in G_AND_C]
        # GD vmapped over other groups of seeds: float32 reassociation over 40 steps
        np.testing.assert_allclose(new["gd_gen_loss"], old["gd_gen_loss"], rtol=1e-4)
    written = files.read_json(stopped / sweep.SWEEP_FILE)
    assert len(written["sessions"]) == 2 and written["sessions"][0] == pytest.approx(
        files.read_json(original / sweep.SWEEP_FILE)["finished"]["wall_seconds"])
    assert written["finished"]["wall_seconds"] == pytest.approx(sum(written["sessions"]))
    assert sweep_results.load_sweep(stopped)[1] == resumed


def test_resumed_sweep_adds_seeds(tiny_sweep, tmp_path, capsys):
    """`gcsampler sweep --resume DIR --seeds 2` on a 1-seed sweep runs seed 1 of every
    value alone: the same G&C as the 2-seed sweep's cells; the seed-0 cells are kept."""
    _, two_seeds, rows, _ = tiny_sweep
    one = tmp_path / "one"
    sweep.run_sweep(sweep.SweepSpec("width", (5, 7), 1, dict(TINY), title="tiny"), one,
                    io.StringIO())
    kept = _mtimes(one / "cells" / "width=5" / "seed=0")
    code, out = cli_run(["sweep", "--resume", one, "--seeds", "2"], capsys)
    assert code == 0, out.err
    assert _mtimes(one / "cells" / "width=5" / "seed=0") == kept
    record, resumed = sweep_results.load_sweep(one)
    assert record["seeds"] == 2 and len(record["cells"]) == 4
    assert [(r["width"], r["seed"]) for r in resumed] == [(5, 0), (5, 1), (7, 0), (7, 1)]
    for old, new in zip(rows, resumed):
        assert [old[k] for k in G_AND_C] == [new[k] for k in G_AND_C]
    assert "results.csv" in out.out
    code, out = cli_run(["sweep", "--resume", one], capsys)      # finished: nothing runs
    assert code == 0 and "sweep cell" not in out.err
    assert len(files.read_json(one / sweep.SWEEP_FILE)["sessions"]) == 3


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "1"], "--seeds must be at least the 2 the sweep was made with"),
    (["--eps", "0.05"], "--resume takes its settings from the sweep's sweep.json; of the "
                        "others only --seeds (to add seeds) may be given with it, got --eps"),
    (["--preset", "fig2-tanh", "--out", "x"], "got --preset, --out"),
])
def test_resumed_sweep_refuses_other_settings(tiny_sweep, extra, message, capsys):
    _, sweep_dir, _, _ = tiny_sweep
    before = _mtimes(sweep_dir)
    code, out = cli_run(["sweep", "--resume", sweep_dir, *extra], capsys)
    assert code == 2 and message in out.err and "Traceback" not in out.err
    assert len(out.err.strip().splitlines()) == 1
    assert _mtimes(sweep_dir) == before


def test_resume_refuses_a_directory_that_is_no_sweep(tmp_path, capsys):
    code, out = cli_run(["sweep", "--resume", tmp_path], capsys)
    assert code == 2 and "is not a gcsampler sweep directory (no sweep.json)" in out.err


def test_a_stopped_sweep_says_how_to_continue(tmp_path, monkeypatch):
    """A signal that stops a cell's G&C stops the sweep with one message naming the sweep's
    own resume command (not the cell's), and its record keeps the session's time."""
    rejection = METHODS["rejection"]
    calls = []

    def start(cfg, *args, **kwargs):
        calls.append(cfg.seed)
        if len(calls) == 2:
            raise checkpoint.Interrupted("stopped: continue with `gcsampler run --resume x`", 15)
        return rejection.start(cfg, *args, **kwargs)

    monkeypatch.setattr(sweep, "METHODS", {"rejection": rejection._replace(start=start)})
    sweep_dir = tmp_path / "stopped"
    with pytest.raises(checkpoint.Interrupted) as stop:
        sweep.run_sweep(sweep.SweepSpec("width", (5,), 2, dict(TINY)), sweep_dir, io.StringIO())
    assert stop.value.signal == 15
    assert str(stop.value) == (f"stopped by a signal in width=5/seed=1 (its checkpoint is "
                               f"saved); continue the sweep with `gcsampler sweep --resume "
                               f"{sweep_dir}`")
    record = files.read_json(sweep_dir / sweep.SWEEP_FILE)
    assert len(record["sessions"]) == 1 and "finished" not in record
