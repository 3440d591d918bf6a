"""Multi-process runs through jax.distributed: two local CPU processes give the same bits as
one process, are killed and resumed like one, refuse what would move their shares, and end
within --distributed_timeout, each with one line, when they lose each other.

Each process is a `gcsampler run` subprocess (JAX's distributed runtime is per process),
joined through a coordinator on a free local port. The processes get different numbers
of local devices, which must not matter either.
"""

import io
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gcsampler import cli
from gcsampler.core import devices, totals as totals_lib
from gcsampler.factorization import task
from gcsampler.runs import (accepted, checkpoint, config, distributed, files, runner,
                            integrity, splitting_files, splitting_run)

from cli_calls import cli_run
from same_results import NOT_RESULTS, assert_same_results

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 256
CFG = config.RunConfig(eps=0.1, samples=40 * BLOCK + 100, log2_block=8, batch=BLOCK, gd=False)
FLAGS = ["--eps", "0.1", "--log2_block", "8", "--batch", str(BLOCK), "--nogd"]
# A run long enough to be killed mid-way: 7 device calls per process at --batch 256.
LONG = 200 * BLOCK + 100

# `gcsampler run`, slowed down so that kills land mid-run (as in test_resume).
CHILD = textwrap.dedent("""
    import os, sys, time
    from gcsampler import cli
    from gcsampler.core import progress

    pause, show = float(os.environ.get("TEST_PAUSE", "0")), progress.Progress.__call__

    def slow_show(self, totals, seconds):
        time.sleep(pause)
        show(self, totals, seconds)

    progress.Progress.__call__ = slow_show
    sys.exit(cli.main(sys.argv[1:]))
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes(args, pause=0.0, processes=(0, 1)):
    """`gcsampler run` processes of one two-process run (by default both), with 1 and 2 local
    CPU devices."""
    port = free_port()
    procs = []
    for process in processes:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
                   JAX_NUM_CPU_DEVICES=str(process + 1), TEST_PAUSE=str(pause))
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={process + 1}").strip()
        procs.append(subprocess.Popen(
            [sys.executable, "-c", CHILD, "run", *args, "--num_processes", "2", "--process_id",
             str(process), "--coordinator_address", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=240):
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return outputs


def checkpoint_times(run_dir):
    """When each process of the two-process run in ``run_dir`` wrote its last checkpoint
    (None: not yet)."""
    parts = [files.part_dir(run_dir, p, 2) / checkpoint.FILE for p in range(2)]
    return [path.stat().st_mtime_ns if path.exists() else None for path in parts]


def wait_for_checkpoints(procs, run_dir, since=(None, None)):
    """Wait until both processes of the run in ``run_dir`` have written a checkpoint after
    ``since`` (their :func:`checkpoint_times`)."""
    deadline = time.monotonic() + 180
    while True:
        times = checkpoint_times(run_dir)
        if all(time_ is not None and time_ != before for time_, before in zip(times, since)):
            return
        assert all(proc.poll() is None for proc in procs), procs[0].communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoints within 180 s"
        time.sleep(0.01)


def reference_run(tmp_path_factory, cfg):
    run_dir = tmp_path_factory.mktemp("one_process") / "run"
    runner.execute(cfg, run_dir, stream=io.StringIO(), checkpoint_every=0)
    return run_dir


@pytest.mark.parametrize("samples", [1, 255, 256, 257, 41 * BLOCK - 156, 10**6])
@pytest.mark.parametrize("processes", [1, 2, 3, 8])
def test_process_shares_are_contiguous_and_cover_every_draw(samples, processes):
    shares = [devices.draw_indices(devices.process_blocks(samples, 8, p, processes), samples, 8)
              for p in range(processes)]
    assert shares[0].start == 0 and shares[-1].stop == samples
    for before, after in zip(shares, shares[1:]):
        assert before.stop == after.start or len(after) == 0
    assert sum(len(s) for s in shares) == samples
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= BLOCK


def test_shares_combined_equal_one_process(sensing_problem, linear_model, gaussian_prior):
    """In one process: the loop's totals of each share, combined, equal one run's."""
    def run(blocks=None):
        rows = []
        result = task.guess_and_check(sensing_problem, linear_model, gaussian_prior, eps=0.1,
                                      samples=3000, seed=11, log2_block=8, batch=BLOCK,
                                      devices=1, blocks=blocks,
                                      on_rows=lambda index, *_: rows.append(index))
        return result.totals, np.concatenate(rows) if rows else np.zeros(0, np.uint64)

    whole, index = run()
    for processes in (2, 3):
        shares = [run(devices.process_blocks(3000, 8, p, processes)) for p in range(processes)]
        combined = totals_lib.combine(totals for totals, _ in shares)
        for name, value in vars(whole).items():
            assert np.array_equal(getattr(combined, name), value), name
        assert np.array_equal(np.concatenate([i for _, i in shares]), index)
    with pytest.raises(ValueError, match="blocks must be a range"):
        run(range(5, 13))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """A finished two-process run of CFG (not to be changed) and its processes' output."""
    run_dir = tmp_path_factory.mktemp("two_processes") / "run"
    return run_dir, finish(start_processes([*FLAGS, "--samples", str(CFG.samples), "--out",
                                            str(run_dir)]))


def test_two_processes_give_the_bits_of_one(two_processes, tmp_path_factory, capsys):
    run_dir, outputs = two_processes
    assert_same_results(run_dir, reference_run(tmp_path_factory, CFG))
    # each process wrote its own share of the rows, in its own directory
    for process, share in enumerate([range(0, 20 * BLOCK), range(20 * BLOCK, CFG.samples)]):
        rows = accepted.read_accepted(files.part_dir(run_dir, process, 2))
        assert rows["index"].size and share.start <= rows["index"].min()
        assert rows["index"].max() < share.stop
    assert files.read_json(run_dir / "config.json")["processes"] == 2
    assert "G&C process 1/2" in outputs[1][1] and "acceptance" in outputs[0][0]
    assert "process 1 of 2: done" in outputs[1][0]
    assert cli.main(["report", str(run_dir), "--eps", "0.05"]) == 0
    report = capsys.readouterr().out
    assert "acceptance" in report and "re-threshold" in report
    # more draws would move the processes' shares: refused by both, nothing touched
    before = sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    for proc in start_processes(["--resume", str(run_dir), "--samples", str(2 * CFG.samples)]):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert "keeps its --samples" in err
    assert sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before



def run_files(run_dir):
    """Every file of a run, by path (the parts' locks aside)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != files.LOCK_FILE}


def test_damage_to_both_parts_is_found_and_repaired_exactly(two_processes, tmp_path, capsys):
    """Process 0's index chunk deleted, process 1's train_loss chunk altered: verify names
    both, readers refuse, and --repair redraws each from its process's share of the draws."""
    clean, run_dir = two_processes[0], tmp_path / "run"
    shutil.copytree(clean, run_dir)
    parts = [files.part_dir(run_dir, p, 2) / accepted.ACCEPTED_DIR for p in range(2)]
    (parts[0] / "index" / "0").unlink()
    chunk = parts[1] / "train_loss" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    code, out = cli_run(["verify", str(run_dir)], capsys)
    assert code == 1, out
    lines = out.out.splitlines()
    damaged = [i for i, line in enumerate(lines) if "DAMAGED" in line]
    assert [lines[i].split(":")[0] for i in damaged[:2]] == ["process-0", "process-1"], out.out
    assert lines[damaged[0] + 1].startswith("  accepted/index: rows 0 to ")
    assert lines[damaged[1] + 1].startswith("  accepted/train_loss: rows 0 to ")
    assert lines[-1] == f"{run_dir}: DAMAGED"
    code, out = cli_run(["report", str(run_dir), "--eps", "0.05"], capsys)  # reads the losses
    assert code == 2 and out.err.count("\n") == 1, out.err
    assert f"{parts[1]}/train_loss rows 0 to " in out.err and "--repair" in out.err
    with pytest.raises(files.RunDirError, match=f"{re.escape(str(parts[0]))}/index rows 0 to "):
        accepted.read_accepted(run_dir, 2)
    code, out = cli_run(["verify", str(run_dir), "--repair"], capsys)
    assert code == 0, out
    assert out.err.count("redrawing draws") == 2, out.err
    for process, share in enumerate([range(0, 20 * BLOCK), range(20 * BLOCK, CFG.samples)]):
        assert (f"redrawing draws {share.start:,} to {share.stop - 1:,} of "
                f"{files.part_dir(run_dir, process, 2)} (rows 0 to ") in out.err, out.err
    assert run_files(run_dir) == run_files(clean)
    code, out = cli_run(["verify", str(run_dir)], capsys)
    assert code == 0 and out.out.strip().endswith(f"{run_dir}: intact"), out
    assert integrity.verify(run_dir).intact


def test_killed_processes_resume_to_the_bits_of_one(tmp_path, tmp_path_factory, capsys):
    run_dir = tmp_path / "run"
    args = [*FLAGS, "--samples", str(LONG), "--checkpoint_every", "0"]
    procs = start_processes([*args, "--out", str(run_dir)], pause=0.1)
    wait_for_checkpoints(procs, run_dir)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert not (run_dir / "summary.json").exists()
    # One process cannot take over a two-process run, nor can more draws move the shares.
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--resume", str(run_dir)])
    assert exit_.value.code == 2
    assert "--num_processes 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["report", str(run_dir)])
    assert "on 2 processes (--num_processes 2)" in capsys.readouterr().err
    finish(start_processes(["--resume", str(run_dir), "--checkpoint_every", "0"]))
    long_cfg = config.RunConfig(**{**vars(CFG), "samples": LONG})
    assert_same_results(run_dir, reference_run(tmp_path_factory, long_cfg))


# Processes that lose each other end within --distributed_timeout, each with one line.
TIMEOUT = 5
# A process may take this long to start (imports, on a busy machine) before it joins.
STARTUP = 60
# What a killed or stopped process leaves to the one that notices: its last device call.
SLACK = 3


def ended_with(proc, line, code=2):
    """Wait for ``proc``; it ended with ``code`` and its last stderr line matches ``line`` (a
    regular expression), the only such line, with no stack trace of JAX's runtime."""
    _, err = proc.communicate(timeout=2 * TIMEOUT + STARTUP)
    lines = err.strip().splitlines()
    assert proc.returncode == code, err[-3000:]
    assert re.fullmatch(line, lines[-1]), err[-3000:]
    assert not any(re.fullmatch(line, earlier) for earlier in lines[:-1]), err[-3000:]
    assert "Check failure" not in err and "Traceback" not in err, err[-3000:]
    return lines


ADVICE = (r"; start every process with the same --num_processes and --coordinator_address "
          r"and its own --process_id \(or raise --distributed_timeout\)")


@pytest.mark.parametrize("process, reason", [
    (0, r"did not see every process join the run at 127\.0\.0\.1:\d+"),
    (1, r"could not reach the coordinator \(process 0\) at 127\.0\.0\.1:\d+")])
def test_a_process_alone_ends_within_the_timeout(tmp_path, process, reason):
    started = time.monotonic()
    [proc] = start_processes([*FLAGS, "--samples", "1000", "--out", str(tmp_path / "run"),
                              "--distributed_timeout", str(TIMEOUT)], processes=(process,))
    lines = ended_with(proc, rf"gcsampler run: process {process} of 2 {reason} within "
                             rf"{TIMEOUT} s{ADVICE}")
    assert len(lines) == 1 and time.monotonic() - started < TIMEOUT + STARTUP
    assert not (tmp_path / "run").exists()


def stopping(process, why, run_dir):
    """The line of ``process`` when it stops because ``why`` (regular expressions)."""
    return (rf"gcsampler run: process {process} of 2 stops: {why}; its checkpoints are kept: "
            rf"continue the run with `gcsampler run --resume {re.escape(str(run_dir))} "
            rf"--num_processes 2 --process_id P --coordinator_address 127\.0\.0\.1:\d+` on "
            rf"every process P")


def test_processes_that_lose_each_other_end_within_the_timeout(tmp_path, tmp_path_factory):
    """A killed process ends the other within the timeout, one stopped by a signal at once;
    the run then resumes to the bits of one process."""
    run_dir = tmp_path / "run"
    control = ["--checkpoint_every", "0", "--distributed_timeout", str(2 * TIMEOUT)]
    procs = start_processes([*FLAGS, *control, "--samples", str(LONG), "--out", str(run_dir)],
                            pause=0.1)
    wait_for_checkpoints(procs, run_dir)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    ended_with(procs[0], stopping(0, r"process 1 stopped responding \(killed, crashed or cut "
                                     r"off: silent for [\d.]+ s\)", run_dir))
    assert time.monotonic() - killed < 2 * TIMEOUT + SLACK
    procs[1].communicate()
    # Process 1 stopped by a signal (once drawing again): it says so, and process 0 (drawing,
    # or done and waiting for it) ends at once.
    killed_at = checkpoint_times(run_dir)[1]
    procs = start_processes(["--resume", str(run_dir), *control], pause=0.1)
    wait_for_checkpoints(procs, run_dir, since=(None, killed_at))
    procs[1].send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    ended_with(procs[1], r"gcsampler run: stopped by a signal after .*; continue with "
                         rf"`gcsampler run --resume {re.escape(str(run_dir))}`",
               128 + signal.SIGTERM)
    ended_with(procs[0], stopping(0, r"process 1 stopped \(its own output says why\)",
                                  run_dir))
    assert time.monotonic() - signalled < TIMEOUT + SLACK
    assert not (run_dir / "summary.json").exists()
    finish(start_processes(["--resume", str(run_dir), *control]))
    long_cfg = config.RunConfig(**{**vars(CFG), "samples": LONG})
    assert_same_results(run_dir, reference_run(tmp_path_factory, long_cfg))


def test_a_killed_process_0_ends_the_others_within_the_timeout(tmp_path):
    """Process 0, whose runtime serves the others' (which abort at once without it), killed
    mid-run: the others still end within the timeout, with their line, and its service
    ends with them."""
    run_dir = tmp_path / "run"
    procs = start_processes([*FLAGS, "--checkpoint_every", "0", "--distributed_timeout",
                             str(2 * TIMEOUT), "--samples", str(LONG), "--out", str(run_dir)],
                            pause=0.1)
    wait_for_checkpoints(procs, run_dir)
    procs[0].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    lines = ended_with(procs[1], stopping(1, r"process 0 stopped responding \(killed, crashed "
                                             r"or cut off: silent for [\d.]+ s\)", run_dir))
    assert time.monotonic() - killed < 2 * TIMEOUT + SLACK
    procs[0].communicate(timeout=TIMEOUT)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", lines[-1])[1])
    deadline = time.monotonic() + TIMEOUT
    while True:  # until nothing listens at the port: a new run may take it
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "process 0's service outlived the run"
        time.sleep(0.1)


@pytest.mark.parametrize("replicates", [1, 2, 5, 8])
@pytest.mark.parametrize("processes", [1, 2, 3])
def test_replicate_shares_are_contiguous_and_even(replicates, processes):
    team = distributed.Team
    if replicates < processes:
        with pytest.raises(ValueError, match="--replicates must be at least --num_processes"):
            splitting_run.replicate_share(replicates, team(0, processes))
        return
    shares = [splitting_run.replicate_share(replicates, team(p, processes))
              for p in range(processes)]
    assert [r for share in shares for r in share] == list(range(replicates))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1 and min(map(len, shares)) >= 1


SPLITTING_FLAGS = ["--method", "splitting", "--eps", "0.05", "--particles", "64",
                   "--replicates", "3", "--moves", "3", "--seed", "4", "--nogd"]
SPLITTING_CFG = config.RunConfig(method="splitting", eps=0.05, particles=64, replicates=3,
                                 moves="3", seed=4, gd=False, devices="1")
# The processes run 2 and 1 replicates, one process all 3. Each replicate is computed on
# its own, with the same shapes however many replicates a device holds, so every value is
# the same bits (vmapped over replicates, XLA's rounding changed with the batch shape, and
# on some CPUs an elliptical slice then took one more evaluation).


def assert_same_bits(got, want, where):
    if isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for key in want:
            if key not in NOT_RESULTS:
                assert_same_bits(got[key], want[key], f"{where}.{key}")
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, where
    np.testing.assert_array_equal(got, want, err_msg=where)


def test_two_processes_split_the_replicates(tmp_path, tmp_path_factory, capsys):
    run_dir = tmp_path / "run"
    outputs = finish(start_processes([*SPLITTING_FLAGS, "--out", str(run_dir)]))
    reference = reference_run(tmp_path_factory, SPLITTING_CFG)
    assert files.read_json(run_dir / "config.json")["processes"] == 2
    assert_same_bits(files.read_json(run_dir / "summary.json"),
                             files.read_json(reference / "summary.json"), "summary")
    assert_same_bits(files.load_arrays(run_dir / "levels.npz"),
                             files.load_arrays(reference / "levels.npz"), "levels")
    assert_same_bits(splitting_files.read_curve(run_dir),
                             splitting_files.read_curve(reference), "curve")
    fields = tuple(splitting_files.accepted_layout(5, 5))
    assert_same_bits(accepted.read_accepted(run_dir, 2, fields),
                             accepted.read_accepted(reference, 1, fields), "accepted")
    # each process wrote the rows of its own replicates: 0 and 1, then 2
    for process, share in enumerate([{0, 1}, {2}]):
        rows = accepted.read_accepted(files.part_dir(run_dir, process, 2), 1, ("replicate",))
        assert set(rows["replicate"].tolist()) == share
    assert "splitting process 1/2" in outputs[1][1] and "runs replicate 2;" in outputs[1][1]
    assert "log10 p" in outputs[0][0] and "process 1 of 2: done" in outputs[1][0]
    assert cli.main(["report", str(run_dir), "--eps", "0.02"]) == 0
    assert "re-threshold" in capsys.readouterr().out
    for eps in (0.02, 0.1):  # from the accepted rows of both processes, and from curve.csv
        assert_same_bits(runner.rethreshold(run_dir, eps),
                                 runner.rethreshold(reference, eps), f"rethreshold {eps}")


def test_splitting_gives_the_same_bits_on_one_or_two_devices(tmp_path):
    """Two devices hold 2 replicates each, one device all 4: the same bits."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="2")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=2").strip()
    flags = list(SPLITTING_FLAGS)
    flags[flags.index("--replicates") + 1] = "4"
    runs = {}
    for count in ("1", "2"):
        runs[count] = tmp_path / f"devices-{count}"
        subprocess.run([sys.executable, "-m", "gcsampler", "run", *flags, "--devices", count,
                        "--out", str(runs[count]), "--compilation_cache", "none"],
                       env=env, check=True, capture_output=True, timeout=300)
    assert_same_bits(files.read_json(runs["2"] / "summary.json"),
                     files.read_json(runs["1"] / "summary.json"), "summary")
    assert_same_bits(files.load_arrays(runs["2"] / "levels.npz"),
                     files.load_arrays(runs["1"] / "levels.npz"), "levels")


def test_a_damaged_replicates_file_is_a_one_line_error(tmp_path):
    files.save_arrays(tmp_path / splitting_files.PART_FILE, log_p=np.zeros(2))
    with pytest.raises(files.RunDirError, match=r"replicates.npz is damaged \(no levels_"):
        splitting_files.load_part(tmp_path)
    with pytest.raises(files.RunDirError, match="missing"):
        splitting_files.load_part(tmp_path / "elsewhere")
