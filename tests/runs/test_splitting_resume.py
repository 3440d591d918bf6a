"""Splitting runs checkpoint at level boundaries: stopped (Ctrl-C, SIGTERM) or killed, they
resume to the bits of a run without a stop."""

import io
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gcsampler import cli
from gcsampler.core import progress
from gcsampler.runs import accepted, config, files, runner, splitting_files
from same_results import NOT_RESULTS

ROOT = pathlib.Path(__file__).resolve().parents[2]
CFG = config.RunConfig(method="splitting", eps=1e-3, particles=64, replicates=2, moves="3",
                       seed=3, gd=False, devices="1")
FLAGS = ["--method", "splitting", "--eps", "1e-3", "--particles", "64", "--replicates", "2",
         "--moves", "3", "--seed", "3", "--nogd", "--devices", "1"]


def execute(cfg, run_dir):
    return runner.execute(cfg, run_dir, stream=io.StringIO(), checkpoint_every=0)


def resume(run_dir, **given):
    resumption, pieces = runner.prepare_resume(run_dir, given)
    return runner.resume(resumption, pieces, stream=io.StringIO(), checkpoint_every=0)


def assert_same_splitting(run_dir, reference):
    got, want = (files.read_json(d / "summary.json") for d in (run_dir, reference))
    assert {k: v for k, v in got.items() if k not in NOT_RESULTS} == {
        k: v for k, v in want.items() if k not in NOT_RESULTS}
    got, want = (files.load_arrays(d / splitting_files.LEVELS_FILE) for d in (run_dir, reference))
    assert got.keys() == want.keys() and all(got[k].tobytes() == want[k].tobytes() for k in want)
    assert ((run_dir / splitting_files.CURVE_FILE).read_text()
            == (reference / splitting_files.CURVE_FILE).read_text())
    fields = tuple(splitting_files.accepted_layout(5, 5))
    got, want = (accepted.read_accepted(d, 1, fields) for d in (run_dir, reference))
    assert all(got[k].tobytes() == want[k].tobytes() for k in fields)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    execute(CFG, run_dir)
    return run_dir


@pytest.mark.parametrize("stop_at", [5])
def test_a_stopped_run_resumes_to_the_same_bits(stop_at, reference, tmp_path, monkeypatch,
                                               capsys):
    run_dir = tmp_path / "run"
    show, levels = progress.LevelProgress.__call__, []

    def stopping(self, info, seconds):
        levels.append(1)
        if len(levels) == stop_at + 1:  # the checkpoint after level stop_at is written
            raise KeyboardInterrupt
        show(self, info, seconds)

    with monkeypatch.context() as patch:
        patch.setattr(progress.LevelProgress, "__call__", stopping)
        with pytest.raises(KeyboardInterrupt):
            execute(CFG, run_dir)
    part = splitting_files.load_checkpoint(run_dir)
    assert part.level == stop_at and not (run_dir / "summary.json").exists()
    with pytest.raises(SystemExit) as exit_info:       # report says how far it got
        cli.main(["report", str(run_dir)])
    assert exit_info.value.code == 2
    assert f"its last checkpoint is after level {stop_at}" in capsys.readouterr().err
    resume(run_dir)
    assert_same_splitting(run_dir, reference)
    assert not (run_dir / splitting_files.CHECKPOINT_FILE).exists()   # the results hold it


def test_settings_that_change_results_are_refused(reference, tmp_path):
    with pytest.raises(ValueError, match="--particles=128: it ran with --particles=64"):
        runner.prepare_resume(reference, {"particles": 128})


# `gcsampler run`, slowed down at every level so that a signal lands mid-run.
CHILD = textwrap.dedent("""
    import sys, time
    from gcsampler import cli
    from gcsampler.core import progress

    show = progress.LevelProgress.__call__

    def slow_show(self, info, seconds):
        time.sleep(0.2)
        show(self, info, seconds)

    progress.LevelProgress.__call__ = slow_show
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_run_resumes_to_the_same_bits(sig, reference, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "run", *FLAGS, "--out", str(run_dir),
                             "--checkpoint_every", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    path, deadline = run_dir / splitting_files.CHECKPOINT_FILE, time.monotonic() + 180
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(sig)
    signalled = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (128 + sig if sig == signal.SIGTERM else -sig), err[-3000:]
    if sig == signal.SIGTERM:  # at the next level boundary, saved; one line says so
        assert time.monotonic() - signalled < 15   # a level here: well under a second
        last = err.strip().splitlines()[-1]
        assert "stopped by a signal after level" in last and "--resume" in last, last
        level = int(last.split("after level ")[1].split(",")[0])
        assert splitting_files.load_checkpoint(run_dir).level == level
    assert not (run_dir / "summary.json").exists()
    assert cli.main(["run", "--resume", str(run_dir), "--checkpoint_every", "0"]) == 0
    assert_same_splitting(run_dir, reference)
