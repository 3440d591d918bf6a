"""Inject faults into `gcsampler run` and check that nothing is lost: a table last.

Every case makes the same run as an uninterrupted reference (the default problem, width
5, eps 0.05, seed 3, no GD unless said) and must end bit-identical to it (statistics, the
summary's numbers, every accepted row), or refuse with one line:

  kill      SIGKILL after t seconds (spread over the run), then `--resume` until done
  kill x3   three SIGKILLs in one run, each resume killed again
  stop      SIGTERM: the stop line, exit 143 within a bound, then `--resume`
  finish    a --nogd run killed as soon as summary.json appears, then `--resume` (the
            reference losses and figure must be completed)
  damage    a finished run with a chunk deleted or altered (each array; start, middle,
            end): `report` refuses, `verify --repair` makes it identical again
  resume    an unfinished run with its first index chunk deleted: `--resume` refuses
            with one line and changes nothing; repaired, it resumes to identical
  splitting SIGTERM of a splitting run: the stop line at a level boundary, then
            `--resume` identical to an uninterrupted splitting run
  disk full on a small tmpfs (needs root to mount one; skipped otherwise): full while
            drawing, full before the first checkpoint, filled as the final figure is
            drawn, and a resume on a full disk: one line and exit 2 each, nothing on disk
            changed by the refused resume; with room again, `--resume` ends identical

    PYTHONPATH=. python scripts/fault_injection.py --out /tmp/faults            # ~15 min
    PYTHONPATH=. python scripts/fault_injection.py --out /tmp/faults --samples 5e5  # quicker
    PYTHONPATH=. python scripts/fault_injection.py --out /tmp/faults-disk --only disk
"""

import argparse
import contextlib
import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from same_results import assert_same_results  # noqa: E402

RUN = [sys.executable, "-m", "gcsampler"]
BASE = ["--width", "5", "--eps", "0.05", "--seed", "3", "--checkpoint_every", "1"]


def gcsampler(*argv, wait=True, **kwargs):
    """Start `gcsampler ARGV` (its output captured); wait for it unless ``wait`` is False."""
    process = subprocess.Popen([*RUN, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **kwargs)
    if wait:
        process.out, process.err = process.communicate()
    return process


def finish(process):
    process.out, process.err = process.communicate()
    return process


def resume_until_done(run_dir, flags, attempts=5):
    """`--resume` until it succeeds (the same command again if it was stopped before it
    wrote config.json); the last process."""
    for _ in range(attempts):
        if (run_dir / "config.json").exists():
            done = gcsampler("run", "--resume", str(run_dir))
        else:
            done = gcsampler("run", *flags, "--out", str(run_dir))
        if done.returncode == 0:
            return done
    raise AssertionError(f"resume failed: {done.err.strip()}")


def same(run_dir, reference):
    """'' when ``run_dir`` has the reference's results, else why not."""
    try:
        assert_same_results(run_dir, reference)
    except AssertionError as err:
        return f"differs: {err}"[:200]
    except Exception as err:  # a file that cannot be read is a result lost
        return f"unreadable: {err}"[:200]
    return ""


def wait_for(path, process, timeout=600):
    began = time.monotonic()
    while not path.exists() and process.poll() is None and time.monotonic() - began < timeout:
        time.sleep(0.01)


def case_kill(out, reference, flags, delays):
    run_dir = out / f"kill-{'-'.join(f'{d:g}' for d in delays)}"
    for k, delay in enumerate(delays):
        again = k and (run_dir / "config.json").exists()
        argv = ["run", "--resume", str(run_dir)] if again else ["run", *flags, "--out",
                                                                 str(run_dir)]
        process = gcsampler(*argv, wait=False)
        time.sleep(delay)
        process.kill()
        finish(process)
    resume_until_done(run_dir, flags)
    return same(run_dir, reference)


def case_stop(out, reference, flags, delay):
    run_dir = out / f"stop-{delay:g}"
    process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    finish(process)
    took = time.monotonic() - sent
    if process.returncode == 0:  # it finished before the signal
        return same(run_dir, reference) + f" (finished first, {took:.1f} s)"
    early = (process.returncode == -signal.SIGTERM
             and not (run_dir / "checkpoint.npz").exists() and not (run_dir / "accepted").exists())
    if not early and (process.returncode != 128 + signal.SIGTERM
                      or "stopped by a signal" not in process.err):
        return f"rc {process.returncode}: {process.err.strip()[-200:]}"
    resume_until_done(run_dir, flags)
    how = ("the signal came before drawing began (ended by it, nothing written), started again"
           if early else f"stop line, exit {took:.1f} s after SIGTERM")
    return same(run_dir, reference) or f"ok: {how}"


def case_finish(out, reference, flags):
    run_dir = out / "finish"
    process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
    wait_for(run_dir / "summary.json", process)
    process.kill()
    finish(process)
    done = resume_until_done(run_dir, flags)
    summary = (run_dir / "summary.json").read_text()
    missing = [name for name in ("min_nuclear_gen_loss", "min_frobenius_gen_loss")
               if f'"{name}": null' in summary or f'"{name}"' not in summary]
    if missing or not (run_dir / "losses.png").exists():
        return f"not completed: {missing or 'losses.png'} ({done.err.strip()[-120:]})"
    return same(run_dir, reference)


def damage(run_dir, name, where):
    array = run_dir / "accepted" / name
    chunks = sorted(int(p.name.split(".")[0]) for p in array.iterdir() if p.name[0].isdigit())
    chunk = {"start": chunks[0], "middle": chunks[len(chunks) // 2], "end": chunks[-1]}[where]
    path = array / (f"{chunk}" + ".0.0" * (name == "matrix"))
    if where == "middle":
        data = bytearray(path.read_bytes())
        data[10] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()


def case_damage(out, reference, name, where):
    run_dir = out / f"damage-{name}-{where}"
    shutil.copytree(reference, run_dir)
    damage(run_dir, name, where)
    report = gcsampler("report", str(run_dir), "--eps", "0.04")
    reads = name in ("train_loss", "gen_loss")
    if reads and (report.returncode != 2 or report.err.count("\n") != 1):
        return f"report not refused: rc {report.returncode} {report.out[-100:]}"
    repaired = gcsampler("verify", str(run_dir), "--repair")
    if repaired.returncode != 0:
        return f"repair failed: {repaired.err.strip()[-200:]}"
    return same(run_dir, reference)


def case_damaged_resume(out, reference, flags, delay):
    run_dir = out / "damaged-resume"
    process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
    time.sleep(delay)
    process.kill()
    finish(process)
    if not (run_dir / "checkpoint.npz").exists() or not any(
            (run_dir / "accepted" / "index").glob("0")):
        return "skipped: killed before the first chunk and checkpoint"
    (run_dir / "accepted" / "index" / "0").unlink()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    refused = gcsampler("run", "--resume", str(run_dir))
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    if refused.returncode != 2 or refused.err.count("\n") != 1 or before != after:
        return f"not refused cleanly: rc {refused.returncode} {refused.err.strip()[-150:]}"
    repaired = gcsampler("verify", str(run_dir), "--repair")
    if repaired.returncode != 0:
        return f"repair failed: {repaired.err.strip()[-200:]}"
    resume_until_done(run_dir, flags)
    return same(run_dir, reference)


def case_splitting(out, splitting_reference, flags):
    run_dir = out / "splitting-stop"
    process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
    wait_for(run_dir / "checkpoint.npz", process)
    process.send_signal(signal.SIGTERM)
    finish(process)
    if process.returncode == 0:
        return "finished before the signal"
    if process.returncode != 128 + signal.SIGTERM or "stopped by a signal" not in process.err:
        return f"rc {process.returncode}: {process.err.strip()[-200:]}"
    resume_until_done(run_dir, flags)
    for name in ("curve.csv",):
        if (run_dir / name).read_bytes() != (splitting_reference / name).read_bytes():
            return f"{name} differs"
    return ""


class NoMount(Exception):
    """A tmpfs could not be mounted (mounting needs root)."""


@contextlib.contextmanager
def small_disk(path, size):
    """A tmpfs of ``size`` (as mount spells it: 64k, 2m) mounted at ``path``, unmounted after."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        raise NoMount(mounted.stderr.strip() or "mount failed")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def grow(path, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def fill(path):
    """Write zeros under ``path`` until the disk is full; the filler file."""
    filler = path / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 16))
                handle.flush()
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
    return filler


def refused_for_space(process):
    """'' when ``process`` ended with exit 2 and one line about the full disk, else why not."""
    lines = [line for line in process.err.replace("\r", "\n").splitlines() if line.strip()]
    if (process.returncode != 2 or "Traceback" in process.err
            or "No space left" not in lines[-1] or not lines[-1].startswith("gcsampler")):
        return f"not one line: rc {process.returncode} {process.err.strip()[-200:]}"
    return ""


def case_disk_full(out, reference, flags, size):
    """A run on a disk too small for it: one line; with room again, resumed to identical."""
    with small_disk(out / f"disk-full-{size}", size) as disk:
        run_dir = disk / "run"
        stopped = gcsampler("run", *flags, "--out", str(run_dir))
        why = refused_for_space(stopped)
        if why:
            return why
        grow(disk, "64m")
        resume_until_done(run_dir, flags)
        return same(run_dir, reference) or f"ok: {stopped.err.strip().splitlines()[-1][:150]}"


def case_disk_full_figure(out, reference, flags):
    """The disk filled the moment summary.json appears (while the final figure is drawn)."""
    with small_disk(out / "disk-full-figure", "64m") as disk:
        run_dir = disk / "run"
        process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
        wait_for(run_dir / "summary.json", process)
        filler = fill(disk)
        finish(process)
        if process.returncode == 0:
            return "finished before the disk filled"
        why = refused_for_space(process)
        if why:
            return why
        filler.unlink()
        resume_until_done(run_dir, flags)
        if not (run_dir / "losses.png").exists():
            return "the resume did not draw the figure"
        return same(run_dir, reference) or f"ok: {process.err.strip().splitlines()[-1][:150]}"


def case_resume_full_disk(out, reference, flags, delay):
    """A killed run resumed on a full disk: refused, nothing changed; then resumed."""
    with small_disk(out / "disk-full-resume", "64m") as disk:
        run_dir = disk / "run"
        process = gcsampler("run", *flags, "--out", str(run_dir), wait=False)
        time.sleep(delay)
        process.kill()
        finish(process)
        if not (run_dir / "checkpoint.npz").exists():
            return "skipped: killed before the first checkpoint"
        filler = fill(disk)
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        refused = gcsampler("run", "--resume", str(run_dir))
        after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        why = refused_for_space(refused)
        if why or before != after:
            return why or "the refused resume changed files"
        filler.unlink()
        resume_until_done(run_dir, flags)
        return same(run_dir, reference) or f"ok: {refused.err.strip().splitlines()[-1][:150]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="new directory for the runs")
    parser.add_argument("--samples", default="2e6", help="draws per run")
    parser.add_argument("--only", default="", help="run only the cases whose name has this")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True)
    flags = [*BASE, "--samples", args.samples, "--nogd"]
    began = time.monotonic()
    reference = out / "reference"
    made = gcsampler("run", *flags, "--out", str(reference))
    assert made.returncode == 0, made.err
    seconds = time.monotonic() - began
    split_flags = ["--method", "splitting", "--particles", "256", "--replicates", "2",
                   "--eps", "0.01", "--nogd", "--checkpoint_every", "0", "--seed", "3"]
    split_reference = out / "splitting-reference"
    made = gcsampler("run", *split_flags, "--out", str(split_reference))
    assert made.returncode == 0, made.err
    cases = []
    for fraction in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        cases.append((f"kill at {fraction:.0%}",
                      lambda f=fraction: case_kill(out, reference, flags, [f * seconds])))
    cases.append(("kill x3", lambda: case_kill(out, reference, flags,
                                               [0.3 * seconds, 0.2 * seconds, 0.2 * seconds])))
    for fraction in (0.3, 0.7):
        cases.append((f"stop at {fraction:.0%}",
                      lambda f=fraction: case_stop(out, reference, flags, f * seconds)))
    cases.append(("finish killed", lambda: case_finish(out, reference, flags)))
    for name in ("index", "train_loss", "gen_loss", "matrix"):
        for where in ("start", "middle", "end"):
            cases.append((f"damage {name} {where}",
                          lambda n=name, w=where: case_damage(out, reference, n, w)))
    cases.append(("damaged resume", lambda: case_damaged_resume(out, reference, flags,
                                                                0.5 * seconds)))
    cases.append(("splitting stop", lambda: case_splitting(out, split_reference, split_flags)))
    half = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file()) // 2048
    cases.append(("disk full drawing", lambda: case_disk_full(out, reference, flags,
                                                              f"{half}k")))
    cases.append(("disk full first", lambda: case_disk_full(out, reference, flags, "64k")))
    cases.append(("disk full figure", lambda: case_disk_full_figure(out, reference, flags)))
    cases.append(("disk full resume", lambda: case_resume_full_disk(out, reference, flags,
                                                                    0.5 * seconds)))
    results = []
    for name, case in [(name, case) for name, case in cases if args.only in name]:
        began = time.monotonic()
        try:
            outcome = case()
        except NoMount as err:
            outcome = f"skipped: no tmpfs ({err})"[:200]
        except Exception as err:  # a case that breaks is a failed case
            outcome = f"error: {err}"[:200]
        verdict = ("SKIP" if outcome.startswith("skipped")
                   else "PASS" if not outcome or outcome.startswith("ok") else "FAIL")
        results.append((name, verdict, outcome, time.monotonic() - began))
        print(f"{name:22s} {verdict}  {outcome}", flush=True)
    print(f"\nreference run: {seconds:.0f} s ({args.samples} draws); runs in {out}")
    print(f"{'case':22s} {'verdict':8s} {'s':>6s}  detail")
    for name, verdict, outcome, took in results:
        print(f"{name:22s} {verdict:8s} {took:6.0f}  {outcome or 'identical'}")
    count = {v: sum(verdict == v for _, verdict, _, _ in results) for v in ("PASS", "FAIL", "SKIP")}
    print(f"{count['PASS']} of {len(results)} cases passed, {count['FAIL']} failed, "
          f"{count['SKIP']} skipped")
    failed = count["FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("GCSAMPLER_COMPILATION_CACHE", str(pathlib.Path.home() / ".cache"
                                                              / "gcsampler" / "jax"))
    sys.exit(main())
