"""Compilation apart from sampling, and what JAX's persistent compilation cache saves.

Runs ``gcsampler run`` (G&C only) three times per setting, each in a fresh process: with
no cache, then twice with a new, empty cache directory (the first fills it, the second
reads it). Each run's ``summary.json`` gives ``compile_seconds`` (the device program's,
before sampling) and ``seconds`` (sampling only); the wall clock of the whole process
is timed here. A table is printed last.

    PYTHONPATH=. python benchmarks/compile_cache.py
    PYTHONPATH=. python benchmarks/compile_cache.py --settings "--width 400" --samples 1e6
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETTINGS = ("--width 5", "--width 400", "--depth 6 --activation tanh --normalize")


def run(flags, samples, out, cache):
    """One `gcsampler run` in a fresh process: (its summary, its wall-clock seconds)."""
    command = [sys.executable, "-m", "gcsampler", "run", *flags.split(), "--samples",
               samples, "--nogd", "--out", str(out), "--compilation_cache", cache]
    began = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - began
    return json.loads((out / "summary.json").read_text()), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", action="append",
                        help=f"run flags of one setting (repeatable; default: {SETTINGS})")
    parser.add_argument("--samples", default="1e6")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for i, flags in enumerate(args.settings or SETTINGS):
            cache = tmp / f"cache{i}"
            for label, where in (("no cache", "none"), ("cache, empty", str(cache)),
                                 ("cache, filled", str(cache))):
                summary, wall = run(flags, args.samples, tmp / f"run{len(rows)}", where)
                rows.append((flags, label, summary["compile_seconds"], summary["seconds"],
                             summary["samples_per_second"], wall))
    print(f"{'setting':<42} {'compilation cache':<18} {'compile s':>9} {'sampling s':>10} "
          f"{'samples/s':>10} {'process s':>9}")
    for flags, label, compile_s, sampling, rate, wall in rows:
        print(f"{flags:<42} {label:<18} {compile_s:>9.2f} {sampling:>10.2f} {rate:>10.3g} "
              f"{wall:>9.1f}")


if __name__ == "__main__":
    main()
