"""The command line end to end: a real run in a subprocess, read back from disk,
report and regenerate (the table of bad command lines is in test_bad_invocations.py)."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorstore as ts

import gcsampler as gcs
from gcsampler import cli
from gcsampler.factorization import problems
from gcsampler.runs import accepted, files

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL_RUN = ["--width", "5", "--depth", "2", "--eps", "0.1", "--samples", "2e4",
             "--log2_block", "10", "--gd_steps", "400", "--gd_log_every", "100", "--gd_runs", "2",
             "--gd_lr", "1e-2", "--gd_init_scale", "1e-2"]


def gcsampler(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gcsampler", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def finished(command, tmp_path_factory, *flags, out="run1"):
    """``gcsampler COMMAND FLAGS --out OUT`` run to the end in a fresh directory:
    (that directory, the output directory, the finished process)."""
    cwd = tmp_path_factory.mktemp(command)
    proc = gcsampler(command, *flags, "--out", out, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd, cwd / out, proc


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return finished("run", tmp_path_factory, *SMALL_RUN, "--compilation_cache", "jax-cache")


def test_run_prints_progress_and_table(finished_run):
    _, run_dir, proc = finished_run
    assert "G&C" in proc.stderr and "samples/s" in proc.stderr and "ETA" in proc.stderr
    for label in ("acceptance", "G&C gen loss", "prior gen loss", "GD gen loss", "throughput",
                  "run directory"):
        assert label in proc.stdout
    assert str(run_dir.name) in proc.stdout
    # the header says what the table shows; throughput keeps compilation apart
    assert "depth 2, width 5, linear, gaussian prior" in proc.stdout
    assert "rejection G&C at eps 0.1; ± is one standard error" in proc.stdout
    assert " s sampling, " in proc.stdout and " s compiling)" in proc.stdout


def test_run_keeps_compiled_programs_in_the_cache(finished_run):
    cwd, _, _ = finished_run
    assert any((cwd / "jax-cache").iterdir())


def test_a_compilation_cache_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    proc = gcsampler("run", "--compilation_cache", "file/cache", "--out", "r", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--compilation_cache" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_run_directory_contents(finished_run):
    _, run_dir, _ = finished_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("draws", "accepted", "acceptance_rate", "acceptance_ci95", "gnc_gen_loss_mean",
                "gnc_gen_loss_stderr", "prior_gen_loss_mean", "gd_gen_loss", "nonfinite",
                "samples_per_second"):
        assert key in summary
    assert summary["draws"] == 20000
    assert 0 < summary["accepted"] < 20000
    config = json.loads((run_dir / "config.json").read_text())
    assert config["settings"]["width"] == 5 and config["settings"]["samples"] == 20000
    assert config["jax_version"] and config["backend"] == "cpu" and config["gcsampler_version"]

    # The accepted rows, read with tensorstore directly, are consistent with the problem.
    def read(name):
        spec = {"driver": "zarr",
                "kvstore": {"driver": "file", "path": str(run_dir / "accepted" / name)}}
        return ts.open(spec).result().read().result()

    index, train, gen, matrix = (read(n) for n in ("index", "train_loss", "gen_loss", "matrix"))
    assert index.dtype == np.uint64 and len(index) == summary["accepted"]
    assert np.all(np.diff(index.astype(np.int64)) > 0) and np.all(train < 0.1)
    problem = problems.matrix_sensing(0)
    ref_train, ref_gen = problems.losses(problem, matrix)
    np.testing.assert_allclose(train, ref_train, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gen, ref_gen, rtol=1e-4, atol=1e-6)
    assert np.isclose(summary["gnc_gen_loss_mean"], gen.astype(np.float64).mean(), rtol=1e-9)

    statistics = files.load_arrays(run_dir / "statistics.npz")
    assert statistics["bin_count"].sum() == summary["draws"] - summary["nonfinite"]
    assert statistics["hist_log10_train_gen"].sum() == summary["draws"] - summary["nonfinite"]
    curves = files.load_arrays(run_dir / "gd.npz")
    assert curves["train_loss"].shape == (2, 5)
    assert np.isclose(summary["gd_gen_loss"], curves["final_gen_loss"].mean())
    fitted = curves["final_train_loss"] < 0.1
    assert summary["gd_fitted"] == bool(fitted.all())
    assert summary["gd_fitted_fraction"] == fitted.mean()
    assert summary["compile_seconds"] > 0 and summary["seconds"] > 0
    assert np.isclose(summary["samples_per_second"], summary["draws"] / summary["seconds"])


def test_run_writes_figures(finished_run):
    _, run_dir, proc = finished_run
    for name in ("losses.png", "gd_curves.png"):
        data = (run_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
        assert f"figure: {run_dir.name}/{name}" in proc.stdout


def test_report_and_rethreshold(finished_run):
    cwd, run_dir, _ = finished_run
    proc = gcsampler("report", str(run_dir), "--eps", "0.05", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "acceptance" in proc.stdout and "from accepted rows" in proc.stdout
    rows = accepted.read_accepted(run_dir)
    expected = int(np.sum(rows["train_loss"] < np.float32(0.05)))
    assert f"accepted {expected:,}" in proc.stdout


def test_regenerate_matches_stored_row(finished_run):
    cwd, run_dir, _ = finished_run
    rows = accepted.read_accepted(run_dir)
    index = int(rows["index"][0])
    proc = gcsampler("regenerate", str(run_dir), "--index", str(index), "--out", "w.npz", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    weights = np.load(cwd / "w.npz")
    product = weights["W_1"].astype(np.float64) @ weights["W_2"].astype(np.float64)
    np.testing.assert_allclose(product, rows["matrix"][0], rtol=1e-5, atol=1e-6)
    # A second call must not overwrite the file.
    again = gcsampler("regenerate", str(run_dir), "--index", str(index), "--out", "w.npz", cwd=cwd)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_existing_run_directory_is_not_overwritten(finished_run):
    cwd, run_dir, _ = finished_run
    before = (run_dir / "summary.json").read_bytes()
    proc = gcsampler("run", *SMALL_RUN, "--out", str(run_dir), cwd=cwd)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "already exists" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (run_dir / "summary.json").read_bytes() == before


def test_bad_flag_in_a_subprocess_has_no_traceback(tmp_path):
    proc = gcsampler("run", "--width", "-5", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "gcsampler run: --width must be a positive integer, got -5\n"
    assert list(tmp_path.iterdir()) == []


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, *_ in cli.flags.RUN_FLAGS:
        assert f"--{name}" in out
    assert "(default: 20000000)" in out


def test_run_help_explains_resume_and_checkpoints(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, *_ in cli.flags.RUN_CONTROL_FLAGS:
        assert f"--{name}" in out
    assert "from its last checkpoint" in out and "(default: 10.0)" in out


def test_flagfile(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.flags").write_text("--width=0\n")
    with pytest.raises(SystemExit):
        cli.main(["run", "--flagfile=bad.flags"])
    assert "--width must be a positive integer, got 0" in capsys.readouterr().err


SMALL_SWEEP = ["--vary", "width=5,7", "--seeds", "2", "--eps", "0.1", "--samples", "4096",
               "--log2_block", "10", "--gd_steps", "40", "--gd_log_every", "20",
               "--gd_lr", "1e-2", "--gd_init_scale", "1e-2"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    return finished("sweep", tmp_path_factory, *SMALL_SWEEP, "--scale", "0.5", out="sw")


def test_sweep_writes_cells_csv_and_figures(finished_sweep):
    cwd, sweep_dir, proc = finished_sweep
    assert "sweep cell 4/4" in proc.stderr and "GD for width=7" in proc.stderr
    for cell in ("width=5/seed=0", "width=5/seed=1", "width=7/seed=0", "width=7/seed=1"):
        summary = json.loads((sweep_dir / "cells" / cell / "summary.json").read_text())
        assert summary["draws"] == 2048        # 4096 scaled by 0.5
        assert (sweep_dir / "cells" / cell / "gd.npz").is_file()
    lines = (sweep_dir / "results.csv").read_text().splitlines()
    assert len(lines) == 5 and "samples_scale" in lines[0]
    for stem in ("gen_loss", "acceptance_rate"):
        for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
            data = (sweep_dir / (stem + suffix)).read_bytes()
            assert data.startswith(magic) and len(data) > 5_000
    assert "G&C" in proc.stdout and "scaled x0.5" not in proc.stdout  # the note is on the figure
    assert f"results: {sweep_dir.name}/results.csv" in proc.stdout


def test_table_gathers_runs_and_sweeps_into_one_table(finished_run, finished_sweep, tmp_path):
    _, run_dir, _ = finished_run
    cwd, sweep_dir, _ = finished_sweep
    proc = gcsampler("table", str(run_dir), str(sweep_dir), "--csv", str(tmp_path / "t.csv"),
                     cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["run", "status"] and "width" in lines[0].split()
    assert len(lines) == 1 + 5 + 1 and lines[-1].startswith("wrote ")
    with open(tmp_path / "t.csv") as f:
        table = list(csv.DictReader(f))
    assert [row["run_dir"] for row in table] == [str(run_dir)] + [
        str(sweep_dir / "cells" / cell) for cell in ("width=5/seed=0", "width=5/seed=1",
                                                     "width=7/seed=0", "width=7/seed=1")]
    for row in table:
        summary = json.loads((pathlib.Path(row["run_dir"]) / "summary.json").read_text())
        assert float(row["gnc_gen_loss_mean"]) == summary["gnc_gen_loss_mean"]
        assert float(row["acceptance_ci95_lo"]) == summary["acceptance_ci95"][0]
        assert json.loads(row["gd_gen_loss_runs"]) == summary["gd_gen_loss_runs"]
        assert row["gd_fitted"] == str(summary["gd_fitted"]) and row["status"] == "finished"
    # pandas: the same rows and columns
    frame = gcs.load_runs([run_dir, sweep_dir])
    assert list(frame["run_dir"]) == [row["run_dir"] for row in table]
    assert list(frame.columns) == list(table[0]) and (frame["width"] == [5, 5, 5, 7, 7]).all()


def test_table_refuses_to_overwrite_and_names_what_is_wrong(finished_run, tmp_path):
    _, run_dir, _ = finished_run
    (tmp_path / "t.csv").write_text("keep")
    for args in (["--csv", "t.csv", str(run_dir)], [str(tmp_path / "nothing")]):
        proc = gcsampler("table", *args, cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert (tmp_path / "t.csv").read_text() == "keep"


def test_report_of_a_sweep_points_to_plot_and_table(finished_sweep):
    cwd, sweep_dir, _ = finished_sweep
    proc = gcsampler("report", str(sweep_dir), cwd=cwd)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "gcsampler plot" in proc.stderr and "gcsampler table" in proc.stderr


def test_plot_redraws_with_another_eps_and_quantity(finished_sweep):
    cwd, sweep_dir, _ = finished_sweep
    proc = gcsampler("plot", str(sweep_dir), "--eps", "0.05", "--y", "acceptance_rate", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    for suffix in (".png", ".pdf"):
        assert (sweep_dir / f"acceptance_rate_eps0.05{suffix}").stat().st_size > 5_000
    assert "width" in proc.stdout and "G&C acceptance" in proc.stdout


@pytest.mark.parametrize("flag", ["--list_presets", "--list-presets"])
def test_sweep_list_presets(capsys, flag):
    assert cli.main(["sweep", flag]) == 0
    out = capsys.readouterr().out
    assert "fig1-linear" in out and "fig11-leaky_relu" in out and "1e+09 draws x 8 seeds" in out
    assert "fig4-leaky_relu-as-run" in out and "never applies" in out


def test_flags_may_use_hyphens_but_values_are_kept():
    assert cli._underscored("--gd-lr=1e-3") == "--gd_lr=1e-3"
    assert cli._underscored("--out=my-run_dir") == "--out=my-run_dir"
    assert cli._underscored("my-dir") == "my-dir" and cli._underscored("-5") == "-5"


def test_sweep_help_explains_its_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("--preset", "--list_presets", "--vary", "--seeds", "--scale", "--width",
                 "--gd_runs"):
        assert name in out
    assert "--problem_seed" not in out
