"""Checkpoint and resume of `gcsampler run`: killed, stopped, extended and damaged runs.

The runs in this process have one schedule (blocks of 256 draws, one block per device
step, up to 16 steps per call: the first two calls take one), so they share one compiled
kernel. A resumed run must give the
same bits as a run without a stop: statistics.npz, the summary's numbers and the
accepted rows.
"""

import dataclasses
import errno
import io
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorstore as ts

from gcsampler import cli
from gcsampler.runs import accepted, checkpoint, config, files, runner
from gcsampler.runs.methods import METHODS
from gcsampler.threshold.statistics import Totals, train_loss_edges

from read_only import read_only
from same_results import assert_same_results

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 256
CALL = 16 * BLOCK                       # draws of the longest call at --batch 256, 1 device
KEPT = 2 * BLOCK                        # the second checkpoint: after two one-step calls
SHORT = 20 * BLOCK + 100                # a partial last block: the last snapshot is at 16 blocks
LONG = 50 * BLOCK + 100                 # 4 calls: snapshots after 1, 2 and 3 of them
CFG = config.RunConfig(eps=0.1, samples=LONG, log2_block=8, batch=BLOCK, devices="1", gd=False)
FLAGS = ["--eps", "0.1", "--log2_block", "8", "--batch", str(BLOCK), "--devices", "1", "--nogd"]


def execute(cfg, run_dir):
    return runner.execute(cfg, run_dir, stream=io.StringIO(), checkpoint_every=0)


def resume(run_dir, **given):
    return runner.resume(*runner.prepare_resume(run_dir, given), stream=io.StringIO(),
                         checkpoint_every=0)


def first_rows(run_dir, count):
    """The first ``count`` rows of each accepted array, read with tensorstore directly."""
    out = {}
    for name in accepted.ACCEPTED_FIELDS:
        path = pathlib.Path(run_dir) / "accepted" / name
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}
        out[name] = ts.open(spec).result()[:count].read().result()
    return out


def fresh_totals(eps):
    """The totals of a run at ``eps`` before its first draw: the template a checkpoint
    is read into."""
    return Totals(edges=train_loss_edges(eps))


def assert_checkpoint_rows_intact(run_dir, reference_dir):
    """The last checkpoint's rows are on disk and are the uninterrupted run's first rows."""
    last = checkpoint.load(run_dir, CFG.log2_block, fresh_totals(CFG.eps))
    assert last is not None and last.draws % BLOCK == 0
    want = accepted.read_accepted(reference_dir)
    assert int(np.sum(want["index"] < last.draws)) == last.accepted
    for name, rows in first_rows(run_dir, last.accepted).items():
        assert rows.tobytes() == want[name][:last.accepted].tobytes(), name
    return last


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of LONG draws."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    execute(CFG, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """A run whose disk fills up while it writes its third checkpoint: (run_dir, error)."""
    run_dir = tmp_path_factory.mktemp("full_disk") / "run"
    saves = []

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as patch:
        real_save = checkpoint.save

        def save(*args):
            saves.append(args)
            if len(saves) == 3:
                patch.setattr(os, "fsync", failing_fsync)   # from now on, the disk is full
            real_save(*args)

        patch.setattr(checkpoint, "save", save)
        with pytest.raises(files.WriteError) as error:
            execute(CFG, run_dir)
    return run_dir, str(error.value)


def fresh_copy(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


# --------------------------------------------------------- killed with SIGKILL

# The child is `gcsampler run`, slowed down so that kills land mid-run; with
# TEST_KILL_AT_WRITE=n it kills itself in the middle of its n-th accepted-array write,
# after growing the arrays and writing one of the four; with TEST_TRACE=1 it says on
# stderr when it launches a device call and when it first sees a stop request.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from gcsampler import cli
    from gcsampler.core import loop, progress
    from gcsampler.runs import accepted, checkpoint

    pause = float(os.environ["TEST_PAUSE"])
    kill_at = int(os.environ.get("TEST_KILL_AT_WRITE", "0"))
    show, write, writes = progress.Progress.__call__, accepted.AcceptedWriter._write, []

    def slow_show(self, totals, seconds):
        time.sleep(pause)
        show(self, totals, seconds)

    def dying_write(self, start, block):
        writes.append(start)
        if len(writes) == kill_at:
            stop = start + len(block["index"])
            self._grow(stop)
            self._stores["index"][start:stop].write(block["index"]).result()
            os.kill(os.getpid(), signal.SIGKILL)
        write(self, start, block)

    def traced(compiled_call, requested):
        def launching(*args):
            call, seconds = compiled_call(*args)

            def launch(*call_args):
                print("launch", int(call_args[1]), file=sys.stderr, flush=True)
                return call(*call_args)
            return launch, seconds

        def asked(self):
            if requested(self) and not getattr(self, "seen", False):
                self.seen = True
                print("stop seen", file=sys.stderr, flush=True)
            return requested(self)
        return launching, asked

    progress.Progress.__call__ = slow_show
    accepted.AcceptedWriter._write = dying_write
    if os.environ.get("TEST_TRACE"):
        loop.compiled_call, checkpoint.StopRequest.__call__ = traced(
            loop.compiled_call, checkpoint.StopRequest.__call__)
    sys.exit(cli.main(sys.argv[1:]))
""")
KILLED = 40 * CALL + 100                 # draws of the killed run: 41 calls or more


def start_child(cwd, args, devices=1, **env):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", TEST_PAUSE="0.05",
               JAX_NUM_CPU_DEVICES=str(devices), **env)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
    return subprocess.Popen([sys.executable, "-c", CHILD, "run", *args, "--checkpoint_every", "0"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def kill_after_next_checkpoint(proc, run_dir, delay, sig=signal.SIGKILL):
    """Send ``sig`` (SIGKILL) to ``proc`` ``delay`` seconds after it writes its next
    checkpoint; returns its stderr and the seconds from the signal to its exit."""
    path = run_dir / checkpoint.FILE

    def version():
        return (path.stat().st_ino, path.stat().st_mtime_ns) if path.exists() else None

    before, deadline = version(), time.monotonic() + 120
    while version() == before:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(sig)
    signalled = time.monotonic()
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{err[-3000:]}"
    return err, time.monotonic() - signalled


@pytest.fixture(scope="module")
def killed_reference(tmp_path_factory):
    """An uninterrupted run of KILLED draws."""
    run_dir = tmp_path_factory.mktemp("killed_reference") / "run"
    execute(dataclasses.replace(CFG, samples=KILLED), run_dir)
    return run_dir


def test_killed_run_resumes_to_identical_results(tmp_path, killed_reference, capsys):
    """kill -9 at random moments (and once inside an accepted-array write), resume each time,
    on another batch and device count too: the same bits as a run without a stop."""
    reference_dir = killed_reference
    rng = np.random.default_rng(20261123)
    run_dir = tmp_path / "killed"

    proc = start_child(tmp_path, [*FLAGS, "--samples", str(KILLED), "--out", str(run_dir)])
    kill_after_next_checkpoint(proc, run_dir, rng.uniform(0, 0.4))
    first = assert_checkpoint_rows_intact(run_dir, reference_dir)
    assert 0 < first.draws < KILLED
    with pytest.raises(SystemExit) as exit_info:     # report says where the run stopped
        cli.main(["report", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert (f"did not finish: its last checkpoint covers {first.draws:,} of {KILLED:,} draws "
            f"({first.accepted:,} accepted); continue it with `gcsampler run --resume") in err

    proc = start_child(tmp_path, ["--resume", str(run_dir), "--batch", str(2 * BLOCK)])
    kill_after_next_checkpoint(proc, run_dir, rng.uniform(0, 0.4))
    second = assert_checkpoint_rows_intact(run_dir, reference_dir)
    assert first.draws < second.draws < KILLED

    proc = start_child(tmp_path, ["--resume", str(run_dir)], TEST_KILL_AT_WRITE="3")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    third = assert_checkpoint_rows_intact(run_dir, reference_dir)
    assert len(first_rows(run_dir, None)["index"]) > third.accepted   # rows it did not count
    assert second.draws < third.draws < KILLED

    proc = start_child(tmp_path, ["--resume", str(run_dir), "--devices", "2"], devices=2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert f"resuming {run_dir} at draw {third.draws:,}" in err and "on 2 cpu device(s)" in err
    assert_same_results(run_dir, reference_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_checkpoints_and_resumes(sig, tmp_path, killed_reference):
    """SIGTERM (a scheduler's pre-emption) or Ctrl-C stops the run after the device call in
    flight, launching none after the signal, with a checkpoint of everything drawn; one
    line says how to continue, the exit code is 128 + the signal, and the resumed run has
    the same bits.

    Calls here take milliseconds (steps of one 256-draw block), so the run stops within
    one call of about a second (``loop.CALL_SECONDS``) plus the checkpoint and the
    process's exit; 15 s leaves room for a busy machine."""
    run_dir = tmp_path / "stopped"
    proc = start_child(tmp_path, [*FLAGS, "--samples", str(KILLED), "--out", str(run_dir)],
                       TEST_TRACE="1")
    err, seconds = kill_after_next_checkpoint(proc, run_dir, 0.0, sig)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert seconds < 15, seconds
    lines = err.splitlines()
    seen = lines.index("stop seen")
    assert "launch 0" in lines[:seen] and not any(l.startswith("launch") for l in lines[seen:])
    last_line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "stopped by a signal after" in last_line
    assert f"continue with `gcsampler run --resume {run_dir}`" in last_line
    stopped = assert_checkpoint_rows_intact(run_dir, killed_reference)
    assert f"after {stopped.draws:,} draws of {KILLED:,}" in last_line
    proc = start_child(tmp_path, ["--resume", str(run_dir)])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert_same_results(run_dir, killed_reference)


# ------------------------------------------------------------- extending a run


def test_extension_equals_the_longer_run(tmp_path, reference):
    """A finished run whose last block is partial, resumed with more samples, equals a
    run made with the larger count from the start."""
    run_dir = tmp_path / "run"
    summary = execute(dataclasses.replace(CFG, samples=SHORT), run_dir)
    assert summary["draws"] == SHORT
    last = checkpoint.load(run_dir, CFG.log2_block, fresh_totals(CFG.eps))
    # the call with the partial block 20 is not in a snapshot
    assert last.draws % BLOCK == 0 and last.draws <= 20 * BLOCK
    assert runner.prepare_resume(run_dir, {})[0].done
    assert cli.main(["run", "--resume", str(run_dir)]) == 0      # nothing to do, says so
    resume(run_dir, samples=LONG)
    assert_same_results(run_dir, reference)
    assert runner.prepare_resume(run_dir, {})[0].done


def test_gd_runs_on_resume_when_it_had_not(tmp_path):
    """A run stopped between G&C and GD: resume runs GD (with GD settings given now) and
    leaves G&C alone; afterwards GD settings are fixed too."""
    run_dir = tmp_path / "run"
    cfg = dataclasses.replace(CFG, samples=SHORT, gd=True)
    # G&C alone, as a sweep runs it
    METHODS[cfg.method].start(cfg, runner.prepare(cfg), run_dir, stream=io.StringIO(),
                              checkpoint_every=checkpoint.DEFAULT_EVERY, display=lambda *_: None)
    before = (run_dir / "statistics.npz").read_bytes()
    resumption, pieces = runner.prepare_resume(run_dir, {"gd_steps": 20, "gd_log_every": 10})
    assert resumption.gnc_done and not resumption.done
    summary = runner.resume(resumption, pieces, stream=io.StringIO())
    assert len(summary["gd_gen_loss_runs"]) == cfg.gd_runs
    assert files.load_arrays(run_dir / "gd.npz")["train_loss"].shape == (cfg.gd_runs, 3)
    assert (run_dir / "statistics.npz").read_bytes() == before
    assert runner.prepare_resume(run_dir, {})[0].done
    with pytest.raises(ValueError, match="with --gd_lr=0.5: it ran with --gd_lr=0.0001"):
        runner.prepare_resume(run_dir, {"gd_lr": 0.5})


# ---------------------------------------------------------- settings on resume


@pytest.mark.parametrize("flags, named", [
    (["--eps", "0.05"], "--eps=0.05: it ran with --eps=0.1"),
    (["--seed", "3", "--width", "6"], "--width=6 --seed=3: it ran with --width=5 --seed=0"),
    (["--log2_block", "9"], "--log2_block=9"),
    (["--problem_seed", "1"], "--problem_seed=1"),
    (["--prior", "uniform"], "--prior=uniform"),
    (["--sampler", "wishart"], "--sampler=wishart: it ran with --sampler=direct"),
    (["--samples", "1e3"], "--samples=1000: it has --samples=12900"),
    (["--out", "elsewhere"], "--out cannot be combined with --resume"),
    (["--checkpoint_every", "-1"], "--checkpoint_every must be a non-negative number"),
])
def test_resume_refuses_settings_that_change_results(flags, named, reference, capsys):
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*")}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--resume", str(reference), *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err, err
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*")} == before


def test_resume_takes_settings_from_the_run(reference):
    resumption, _ = runner.prepare_resume(reference, {"eps": 0.1, "batch": 512, "gd_lr": 0.5})
    assert resumption.cfg == dataclasses.replace(CFG, batch=512, gd_lr=0.5)
    assert resumption.done and resumption.sampler == "direct"


# ---------------------------------------------------- failures and damaged runs


def test_full_disk_error_keeps_the_last_checkpoint(full_disk, reference, tmp_path):
    run_dir, error = full_disk
    assert "\n" not in error
    assert error.startswith(f"cannot write {run_dir}/checkpoint.npz: No space left on device; "
                            f"the last checkpoint ({KEPT:,} draws) is kept: continue with "
                            f"`gcsampler run --resume {run_dir}`")
    assert list(run_dir.glob(".*.tmp")) == []
    assert_checkpoint_rows_intact(run_dir, reference)
    run_dir = fresh_copy(run_dir, tmp_path)
    resume(run_dir)
    assert_same_results(run_dir, reference)


def test_read_only_run_directory(full_disk, reference, tmp_path, capsys):
    run_dir = fresh_copy(full_disk[0], tmp_path)
    with read_only(run_dir):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["run", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert (f"gcsampler run: cannot write {run_dir}/config.json: " in err
            and f"the last checkpoint ({KEPT:,} draws) is kept" in err)
    resume(run_dir)
    assert_same_results(run_dir, reference)


def test_a_run_in_use_is_not_resumed(reference, tmp_path, capsys):
    """A resume started while another process holds the run (it still draws) is refused
    with one line, and writes nothing."""
    run_dir = fresh_copy(reference, tmp_path)
    before = sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    with files.claim_part(run_dir, 0, 1):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["run", "--resume", str(run_dir), "--samples", str(2 * LONG)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert f"{run_dir} is in use by another gcsampler process" in err
    assert sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before


def test_report_on_an_unfinished_run(full_disk, capsys):
    run_dir, _ = full_disk
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert f"its last checkpoint covers {KEPT:,} of {LONG:,} draws" in err
    assert f"`gcsampler run --resume {run_dir}`" in err


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, named", [
    (lambda d: _truncate(d / "config.json"), "config.json is damaged (not valid JSON"),
    (lambda d: _truncate(d / "summary.json"), "summary.json is damaged (not valid JSON"),
    (lambda d: (d / "config.json").write_text(
        '{"method": "rejection", "settings": {"width": 0}, "task": {"kind": "factorization", '
        '"sampler": "x"}}'),
     "config.json is not a valid gcsampler config: --width must be a positive integer"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json is not a gcsampler config"),
    (lambda d: (d / "config.json").unlink(), "is not a gcsampler run directory (no config.json)"),
    (lambda d: (d / "summary.json").write_text('{"x": 1}'), "is not a gcsampler summary"),
])
def test_damaged_run_directory_gives_one_line(damage, named, reference, tmp_path, capsys):
    run_dir = fresh_copy(reference, tmp_path)
    damage(run_dir)
    for argv in (["report", str(run_dir)], ["run", "--resume", str(run_dir)]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err, (argv, err)


@pytest.mark.parametrize("damage, named", [
    (lambda d: _truncate(d / "checkpoint.npz"), "checkpoint.npz is damaged"),
    (lambda d: files.save_arrays(d / "checkpoint.npz", format=np.asarray("x")),
     "checkpoint.npz is damaged or not from this run (format x"),
    (lambda d: shutil.rmtree(d / "accepted" / "matrix"), "(missing accepted/matrix)"),
    (lambda d: _truncate(d / "accepted" / "index" / ".zarray"), "accepted/index/.zarray"),
    (lambda d: (d / "accepted" / "index" / "0").unlink(), "accepted/index rows 0 to "),
])
def test_damaged_unfinished_run_gives_one_line(damage, named, full_disk, tmp_path, capsys):
    """One line, before anything is written (no "resuming" line first)."""
    run_dir = fresh_copy(full_disk[0], tmp_path)
    damage(run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("gcsampler run: ") and named in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
