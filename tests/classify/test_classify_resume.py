"""The classifier study on the one G&C loop: killed with SIGKILL it resumes, and split over
two processes it runs, to the results of one uninterrupted process, bit for bit."""

import csv
import dataclasses
import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gcsampler import cli
from gcsampler.classify.task import ROW_FIELDS
from gcsampler.runs import accepted, checkpoint, classify_study, files

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The published baseline (the default), with few short runs so that it takes little time.
FLAGS = ["--task", "kink", "--n_train", "2,4", "--seeds", "1", "--bins", "0.3:0.5,0.5:0.7",
         "--samples", "20000", "--log2_block", "8", "--batch", "256", "--baseline_runs", "8",
         "--baseline_models", "2", "--baseline_max_runs", "16", "--baseline_epochs", "5"]
CELLS = ("n_train=2/seed=0", "n_train=4/seed=0")
TIMES = ("gnc_seconds", "baseline_seconds")

# `gcsampler classify`, slowed down so that a kill lands mid-cell.
CHILD = textwrap.dedent("""
    import os, sys, time
    from gcsampler import cli
    from gcsampler.core import progress

    pause, show = float(os.environ.get("TEST_PAUSE", "0")), progress.Progress.show

    def slow_show(self, *args, **kwargs):
        time.sleep(pause)
        show(self, *args, **kwargs)

    progress.Progress.show = slow_show
    sys.exit(cli.main(sys.argv[1:]))
""")


def child(args, pause=0.0, devices=1, **env):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", TEST_PAUSE=str(pause),
               JAX_NUM_CPU_DEVICES=str(devices), **env)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
    return subprocess.Popen([sys.executable, "-c", CHILD, "classify", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(out):
    with open(out / "results.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(f)]


def rows(out, processes=1):
    return {cell: accepted.read_accepted(out / "cells" / cell, processes, ROW_FIELDS)
            for cell in CELLS}


def assert_same_study(out, reference, processes=1):
    assert results(out) == results(reference)
    assert {row["baseline_protocol"] for row in results(reference)} == {"published"}
    got, want = rows(out, processes), rows(reference)
    for cell in CELLS:
        for name in ROW_FIELDS:
            assert got[cell][name].tobytes() == want[cell][name].tobytes(), (cell, name)
    assert sum(want[cell]["index"].size for cell in CELLS) > 50


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "study"
    proc = child([*FLAGS, "--devices", "1", "--out", str(out)])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_a_killed_study_resumes_to_the_same_results(reference, tmp_path, capsys):
    out = tmp_path / "study"
    proc = child([*FLAGS, "--devices", "1", "--out", str(out), "--checkpoint_every", "0"],
                 pause=0.3)
    path, deadline = out / "cells" / CELLS[0] / checkpoint.FILE, time.monotonic() + 180
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.01)
    time.sleep(np.random.default_rng(20261206).uniform(0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "cells" / CELLS[0] / "summary.json").exists()
    # a changed setting is refused; --batch and --devices may change
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--resume", str(out), "--samples", "30000"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "cannot resume" in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exit_info:   # the bins' logits are a setting too
        cli.main(["classify", "--resume", str(out), "--logits", "raw"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--logits=raw" in err and err.count("\n") == 1, err
    assert cli.main(["classify", "--resume", str(out), "--batch", "512",
                     "--checkpoint_every", "0"]) == 0
    assert "results:" in capsys.readouterr().out
    assert_same_study(out, reference)
    # a finished study resumes to nothing new
    assert cli.main(["classify", "--resume", str(out)]) == 0
    assert_same_study(out, reference)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_results_of_one(reference, tmp_path):
    out, port = tmp_path / "study", free_port()
    procs = [child([*FLAGS, "--out", str(out), "--num_processes", "2", "--process_id", str(p),
                    "--coordinator_address", f"127.0.0.1:{port}"], devices=p + 1)
             for p in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert "results:" in outputs[0][0] and "process 1 of 2: done" in outputs[1][0]
    assert files.read_json(out / "cells" / CELLS[0] / "config.json")["processes"] == 2
    assert_same_study(out, reference, processes=2)


# StudyConfig fields an earlier gcsampler (raw-logit [lo, hi) bins, full-batch baseline) did
# not have, so did not write to study.json.
NEWER_FIELDS = ("first_seed", "hidden_biases", "padding", "logits", "baseline_protocol",
                "baseline_epochs", "baseline_batch_size", "baseline_models", "baseline_max_runs")


def snapshot(root):
    return {str(path): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for path in pathlib.Path(root).rglob("*")}


@pytest.mark.parametrize("dropped", [NEWER_FIELDS, ("logits",)])
def test_a_study_made_by_an_earlier_version_is_refused(dropped, tmp_path, capsys, monkeypatch):
    study = tmp_path / "study"
    (study / "cells" / "n_train=2" / "seed=0").mkdir(parents=True)
    settings = dataclasses.asdict(classify_study.StudyConfig(n_train=(2,), seeds=1))
    files.write_json(study / classify_study.STUDY_FILE,
                     {k: v for k, v in settings.items() if k not in dropped})
    (study / classify_study.RESULTS_FILE).write_text("task,model\n")
    before = snapshot(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--resume", str(study)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert "earlier gcsampler" in err and "start a new study" in err, err
    assert capsys.readouterr().out == ""
    assert snapshot(tmp_path) == {**before, str(work): "dir"}   # nothing written
    with pytest.raises(files.RunDirError, match="earlier gcsampler"):
        classify_study.load_config(study)
