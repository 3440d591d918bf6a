"""Splitting vs rejection: time to reach p = 1e-10 and 1e-20 on the default problem.

For each workload (depth 2 on ``matrix_sensing(seed=0)``, Gaussian prior, every
width x activation) it measures, in one process:

- eps with log10 p about log10(target), for every target: one exploratory
  splitting run that stops a level or two past the smallest target, read through
  :func:`gcsampler.splitting_curve`; it has the timed runs' shapes, so it also
  compiles their programs;
- splitting to that eps: the median wall time of ``--repeats`` runs of one batch
  of ``--replicates`` replicates of ``--particles`` particles, with that run's
  log10 p (95% t interval over replicates), levels, moves per level and loss
  evaluations per second (the summary's ``samples_per_second``, also as a fraction of
  rejection's rate: ``evals/rej``);
- rejection G&C (``gcsampler.guess_and_check``, the sampler it picks): samples/s at
  the largest target's eps (nearly nothing is accepted, so the rate is that of any
  small eps), warmed up, median of ``--repeats``. It needs about 1/p draws per
  accepted sample, so 1/p / rate seconds, p the timed splitting run's estimate.

Prints a table last and writes JSON.

    PYTHONPATH=. python benchmarks/splitting.py                        # sizes for this platform
    PYTHONPATH=. python benchmarks/splitting.py --particles 256 --replicates 2 --widths 5 \
        --activations linear --targets 1e-10                          # a quick CPU check
"""

import argparse
import json
import math
import statistics
import time


import jax
import numpy as np

import gcsampler as gcs
from gcsampler.splitting.base import DEFAULT_SURVIVAL
from gcsampler.splitting.moves import elliptical_slice

DEFAULTS = {  # by backend: (particles, replicates, rejection draws per timing)
    "cpu": (1024, 4, 2**17),
    "gpu": (16384, 8, 2**28),
}
EXPLORE_EPS = 1e-30  # far below any target: the exploration stops on its level count
EXTRA_LEVELS = 2     # levels past the smallest target, so the curve crosses it


def find_eps(problem, model, prior, targets, *, particles, replicates, seed=0, **kwargs):
    """eps with log10 P(train loss < eps) about log10(target), for each target p.

    One splitting run with these particles and replicates, stopped a few levels past
    the smallest target (a level keeps at most half the particles, so log p falls by
    at least log 2 a level); on the curve of log10 p over the grid thresholds the
    crossing of each log10 target is interpolated in log eps (the base of the logs
    does not change the interpolation). Returns ``(eps list, the run's result)``.
    """
    kept = math.floor(DEFAULT_SURVIVAL * particles) / particles
    levels = math.ceil(math.log(min(targets)) / math.log(kept)) + EXTRA_LEVELS
    result = gcs.multilevel_splitting(problem, model, prior, eps=EXPLORE_EPS,
                                      particles=particles, replicates=replicates, seed=seed,
                                      max_levels=levels, **kwargs)
    curve = gcs.splitting_curve(result)
    ok = np.isfinite(curve["log10_p"]) & (curve["replicates"] == replicates)
    log_eps, log10_p = np.log(curve["eps"][ok]), curve["log10_p"][ok]  # ascending in eps
    found = []
    for target in targets:
        above = np.flatnonzero(log10_p >= math.log10(target))
        if above.size == 0 or above[0] == 0:
            raise RuntimeError(f"the exploratory run's curve does not cross p = {target:g} "
                               f"(log10 p from {log10_p.min():.1f} to {log10_p.max():.1f})")
        i = above[0]
        t = (math.log10(target) - log10_p[i - 1]) / (log10_p[i] - log10_p[i - 1])
        found.append(float(math.exp(log_eps[i - 1] + t * (log_eps[i] - log_eps[i - 1]))))
    return found, result


def timed_splitting(problem, model, prior, eps, *, repeats, seed=1, **kwargs):
    """Median wall time of ``repeats`` splitting runs (seeds ``seed``, ``seed + 1``, ...;
    compile first: a run with the same particles and replicates) and the summary of
    the run that took the median time. Returns ``(seconds, summary, result)``."""
    runs = []
    for i in range(repeats):
        start = time.perf_counter()
        result = gcs.multilevel_splitting(problem, model, prior, eps=eps, seed=seed + i,
                                          **kwargs)
        runs.append((time.perf_counter() - start, result))
    median = statistics.median(t for t, _ in runs)
    _, result = min(runs, key=lambda run: abs(run[0] - median))
    return median, gcs.summarize_splitting(result), result


def rejection_rate(problem, model, prior, eps, samples, repeats):
    """Samples/s of ``gcsampler.guess_and_check`` (its own sampler) at ``eps``: one warm-up
    run, then the median of ``repeats``. Returns ``(rate, sampler name)``."""
    def run(seed):
        return gcs.guess_and_check(problem, model, prior, eps=eps, samples=samples, seed=seed)

    sampler = run(0).sampler
    times = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        run(seed)
        times.append(time.perf_counter() - start)
    return samples / statistics.median(times), sampler


def measure(problem, label, model, prior, targets, args):
    """The table rows of one workload, one per target."""
    size = dict(particles=args.particles, replicates=args.replicates,
                move=elliptical_slice(chain=args.ess_chain) if args.ess_chain > 1 else "ess")
    eps_list, _ = find_eps(problem, model, prior, targets, **size)
    rate, sampler = rejection_rate(problem, model, prior, eps_list[0], args.rejection_samples,
                                   args.repeats)
    rows = []
    for target, eps in zip(targets, eps_list):
        seconds, s, _ = timed_splitting(problem, model, prior, eps, repeats=args.repeats, **size)
        rejection_seconds = 10.0 ** -s["log10_p"] / rate
        rows.append({
            "workload": label, "target_p": target, "eps": eps, "log10_p": s["log10_p"],
            "log10_p_ci95": s["log10_p_ci95"], "levels": s["levels"],
            "moves_per_level": s["moves_per_level_mean"],
            "samples_per_second": s["samples_per_second"],
            "seconds_per_batch": seconds, "rejection_sampler": sampler,
            "rejection_samples_per_second": rate, "rejection_seconds": rejection_seconds,
            "speedup": rejection_seconds / seconds, "spread_ratio": s["spread_ratio"],
            "accepted": s["accepted"], "message": s["splitting_message"]})
        print(f"measured {label} p={target:g}: eps {eps:.4g}, log10 p {s['log10_p']:.2f}, "
              f"{seconds:.3g} s", flush=True)
    return rows


def print_table(rows, header):
    print("\n" + header)
    print(f"{'workload':<16} {'target':>7} {'eps':>9} {'log10 p [95% CI]':>23} {'levels':>6} "
          f"{'moves/lvl':>9} {'evals/s':>9} {'s/batch':>8} {'rej/s':>9} {'evals/rej':>9} "
          f"{'rej s':>9} {'speed-up':>9}")
    for r in rows:
        lo, hi = r["log10_p_ci95"]
        print(f"{r['workload']:<16} {r['target_p']:>7.0e} {r['eps']:>9.3g} "
              f"{r['log10_p']:>7.2f} [{lo:>6.2f},{hi:>6.2f}] {r['levels']:>6d} "
              f"{r['moves_per_level']:>9.1f} {r['samples_per_second']:>9.3g} "
              f"{r['seconds_per_batch']:>8.3g} {r['rejection_samples_per_second']:>9.3g} "
              f"{r['samples_per_second'] / r['rejection_samples_per_second']:>9.2f} "
              f"{r['rejection_seconds']:>9.3g} {r['speedup']:>9.3g}")
    for r in rows:
        if r["message"]:
            print(f"note: {r['workload']} p={r['target_p']:g}: {r['message']}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--particles", type=int, help="particles per replicate (default: 16384 "
                        "on GPU, 1024 on CPU)")
    parser.add_argument("--replicates", type=int, help="replicates per batch (default: 8 on "
                        "GPU, 4 on CPU)")
    parser.add_argument("--widths", default="5,400", help="comma-separated widths (depth 2)")
    parser.add_argument("--activations", default="linear,tanh", help="comma-separated")
    parser.add_argument("--targets", default="1e-10,1e-20", help="comma-separated p targets")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--ess_chain", type=int, default=1,
                        help="elliptical slices per step (elliptical_slice(chain=K))")
    parser.add_argument("--rejection-samples", type=float, help="draws per rejection timing "
                        "(default: 2**17 on CPU, 2**28 on GPU)")
    parser.add_argument("--out", default="benchmarks/splitting.json", help="JSON path")
    args = parser.parse_args()
    particles, replicates, samples = DEFAULTS["cpu" if jax.default_backend() == "cpu" else "gpu"]
    args.particles = args.particles or particles
    args.replicates = args.replicates or replicates
    args.rejection_samples = int(args.rejection_samples or samples)
    return args


def main():
    args = parse_args()
    targets = sorted((float(t) for t in args.targets.split(",")), reverse=True)
    problem = gcs.matrix_sensing(seed=0)
    prior = gcs.gaussian()
    rows = []
    for activation in args.activations.split(","):
        for width in map(int, args.widths.split(",")):
            model = gcs.factorization(5, 5, 2, width, activation)
            rows += measure(problem, f"d2 w{width} {activation}", model, prior, targets, args)
    device = jax.devices()[0]
    header = (f"device: {device.device_kind} ({device.platform}, {jax.device_count()} "
              f"device(s)), JAX {jax.__version__}; splitting: {args.particles} particles x "
              f"{args.replicates} replicates per batch, median of {args.repeats}; rejection: "
              f"{args.rejection_samples:,} draws per timing")
    print_table(rows, header)
    with open(args.out, "w") as f:
        json.dump({"device": device.device_kind, "platform": device.platform,
                   "devices": jax.device_count(), "jax_version": jax.__version__,
                   "particles": args.particles, "replicates": args.replicates,
                   "repeats": args.repeats, "rejection_samples": args.rejection_samples,
                   "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
