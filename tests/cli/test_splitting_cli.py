"""`gcsampler run --method splitting` end to end: the run directory, report and its
re-thresholding, and a splitting sweep with its gen_loss_vs_eps figure (bad splitting flags
are among test_cli.py's cases)."""

import json
import math

import numpy as np
import pytest

from gcsampler.factorization import problems
from gcsampler.runs import accepted, files, runner, splitting_files, splitting_run, sweep_results
from test_cli import finished, gcsampler

LN10 = math.log(10)
EPS = 0.05
SMALL = ["--method", "splitting", "--eps", str(EPS), "--particles", "128", "--replicates", "2",
         "--moves", "4", "--gd_steps", "200", "--gd_log_every", "100", "--gd_runs", "2",
         "--gd_lr", "1e-2", "--gd_init_scale", "1e-2"]


@pytest.fixture(scope="module")
def splitting_run_dir(tmp_path_factory):
    return finished("run", tmp_path_factory, *SMALL)


def test_run_prints_levels_and_the_table(splitting_run_dir):
    _, run_dir, proc = splitting_run_dir
    assert "splitting  level" in proc.stderr and "log p" in proc.stderr and "ETA" in proc.stderr
    for label in ("log10 p", "log10 p spread", "G&C gen loss", "prior gen loss", "GD gen loss",
                  "levels", "diagnostics", "throughput", "run directory"):
        assert f"\n{label} " in "\n" + proc.stdout, label
    assert f"figure: {run_dir.name}/curve.png" in proc.stdout


def test_run_directory_holds_the_sample_and_the_curve(splitting_run_dir):
    _, run_dir, _ = splitting_run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "splitting" and summary["replicates"] == 2
    # log10 p and its interval are log p / ln 10: the same order, the same sign
    assert summary["log10_p_ci95"][0] < summary["log10_p"] < summary["log10_p_ci95"][1] < 0
    assert math.isclose(summary["acceptance_rate"], math.exp(summary["log10_p"] * LN10))
    assert summary["draws"] > 2 * 128   # loss evaluations (once also named "evaluations")
    assert summary["moves_per_level_max"] == 4 and bool(summary["fiber_moves"])

    rows = accepted.read_accepted(run_dir, fields=splitting_files.accepted_layout(5, 5))
    assert len(rows["index"]) == summary["accepted"] == sum(summary["accepted_per_replicate"])
    assert np.all(rows["train_loss"] < np.float32(EPS))
    assert np.array_equal(rows["replicate"], rows["index"] // 128)
    train, gen = problems.losses(problems.matrix_sensing(0), rows["matrix"])
    np.testing.assert_allclose(rows["train_loss"], train, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(rows["gen_loss"], gen, rtol=1e-4, atol=1e-7)
    means = [rows["gen_loss"][rows["replicate"] == r].astype(np.float64).mean() for r in (0, 1)]
    assert math.isclose(summary["gnc_gen_loss_mean"], np.mean(means), rel_tol=1e-6)

    curve = splitting_files.read_curve(run_dir)
    log_p = curve["log10_p"] * LN10
    assert np.isclose(curve["eps"][-1], EPS) and np.isclose(log_p[-1], summary["log10_p"] * LN10)
    assert log_p[0] == 0 and np.all(np.diff(log_p) <= 1e-12)
    levels = files.load_arrays(run_dir / splitting_files.LEVELS_FILE)
    assert levels["level"].shape[1] == 2 and levels["grid_count"].shape[2] == len(levels["edges"])


def test_report_and_rethreshold_both_ways(splitting_run_dir):
    cwd, run_dir, _ = splitting_run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    below = gcsampler("report", str(run_dir), "--eps", "0.045", cwd=cwd)
    assert below.returncode == 0, below.stderr
    assert "log10 p" in below.stdout and "from final particles" in below.stdout
    # Exact from the stored particles, the prior restricted to {L < eps}: p(0.045) = p(eps)
    # x each replicate's fraction of its accepted particles below 0.045.
    rows = accepted.read_accepted(run_dir, fields=("replicate", "train_loss"))
    logs = [summary["log10_p_replicates"][r] * LN10 + math.log(
        np.sum((rows["replicate"] == r) & (rows["train_loss"] < np.float32(0.045)))
        / summary["accepted_per_replicate"][r]) for r in (0, 1)]
    assert f"log10 p {np.mean(logs) / LN10:.4g}" in below.stdout   # the report gives log10 p
    # at the run's own eps it is the summary's estimate
    at_eps = runner.rethreshold(run_dir, EPS)
    assert at_eps["source"] == "final particles"
    assert math.isclose(at_eps["log10_p"], summary["log10_p"], rel_tol=1e-12)
    assert math.isclose(at_eps["gnc_gen_loss_mean"], summary["gnc_gen_loss_mean"], rel_tol=1e-6)
    above = gcsampler("report", str(run_dir), "--eps", "0.3", cwd=cwd)
    assert above.returncode == 0 and "from curve.csv" in above.stdout


def test_what_a_splitting_run_refuses(splitting_run_dir):
    cwd, run_dir, _ = splitting_run_dir
    regen = gcsampler("regenerate", str(run_dir), "--index", "0", cwd=cwd)
    assert regen.returncode == 2 and regen.stderr.count("\n") == 1 and "splitting" in regen.stderr
    done = gcsampler("run", "--resume", str(run_dir), cwd=cwd)
    assert done.returncode == 0 and "is complete" in done.stdout


def test_an_unfinished_splitting_run_is_resumed(splitting_run_dir, tmp_path):
    """A splitting run stopped before its first checkpoint (its config.json written, nothing
    drawn yet): report says how to continue it, and `run --resume` draws it from its start,
    to the results of the run made without a stop. (Splitting runs are checkpointed now:
    this test used to check that such a run was refused and had to be started again.)"""
    _, reference, _ = splitting_run_dir
    cfg, _ = runner.load_run(reference)            # the settings of SMALL
    run_dir = tmp_path / "stopped"
    run_dir.mkdir()
    files.write_json(run_dir / "config.json",
                     splitting_run.config_record(cfg, runner.prepare(cfg), run_dir))
    report = gcsampler("report", str(run_dir), cwd=tmp_path)
    assert report.returncode == 2 and report.stderr.count("\n") == 1, report.stderr
    assert (f"{run_dir} did not finish: it has no checkpoint yet; continue it with "
            f"`gcsampler run --resume {run_dir}`") in report.stderr
    proc = gcsampler("run", "--resume", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming {run_dir} from its start (no checkpoint yet)" in proc.stderr
    times = ("seconds", "compile_seconds", "samples_per_second", "gd_seconds", "run_dir")
    got, want = ({k: v for k, v in json.loads((d / "summary.json").read_text()).items()
                  if k not in times} for d in (run_dir, reference))
    assert got == want


def test_splitting_sweep_draws_log_p_and_gen_loss_against_eps(tmp_path):
    proc = gcsampler("sweep", "--vary", "eps=0.1,0.05", "--seeds", "1", "--method", "splitting",
                     "--particles", "128", "--replicates", "2", "--moves", "4", "--nogd",
                     "--out", "sw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sweep cell 2/2 (eps=0.05/seed=0)  splitting  level" in proc.stderr
    header, *rows = (tmp_path / "sw" / "results.csv").read_text().splitlines()
    assert "log10_p" in header.split(",") and len(rows) == 2
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        assert (tmp_path / "sw" / f"gen_loss_vs_eps{suffix}").read_bytes().startswith(magic)
    again = gcsampler("plot", "sw", "--y", "gen_loss_vs_eps", cwd=tmp_path)
    assert again.returncode == 0 and "gen_loss_vs_eps.png" in again.stdout
    rethreshold = gcsampler("plot", "sw", "--eps", "0.1", cwd=tmp_path)
    assert rethreshold.returncode == 0, rethreshold.stderr
    note = sweep_results.figure_note(*sweep_results.load_sweep(tmp_path / "sw"))
    assert note.startswith("splitting, 128 particles x 2 replicates per seed; ")  # not draws


def test_gd_of_a_finished_splitting_run_runs_on_resume(tmp_path):
    first = gcsampler("run", *SMALL, "--nogd", "--out", "run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = json.loads((tmp_path / "run" / "summary.json").read_text())
    resumed = gcsampler("run", "--resume", "run", "--gd", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(after["gd_gen_loss"]) and after["log10_p"] == before["log10_p"]
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["method"] == "splitting" and record["settings"]["gd"]
