"""Validate the splitting sampler (gcsampler.multilevel_splitting) in one command: a PASS/FAIL
table last.

Log p is reported as log10 p (as splitting summaries give it); z scores do not depend on
the base of the logs.

(a) exact answer: depth-1 linear Gaussian on matrix_sensing(seed=0) at the eps where the
    exact p (gcsampler.linear_log_volume) is 1e-12; many replicates: the coverage of
    4-replicate 95% t intervals, and their mean against the exact log p.
(b) brute force: depth 2 width 5 tanh, depth 3 width 5 leaky_relu and depth 4 width 5
    linear with the normalized prior (its cone moves) at p ~ 3e-5;
    rejection G&C (gcsampler.guess_and_check, 1e8 draws) against splitting: log p and the
    G&C gen-loss mean (within 4 combined standard errors), and a two-sample KS test of
    the accepted gen losses.
(c) stability, on (b)'s tanh workload: N against 2N particles, and M against 2M fixed
    moves per level (M: the mean of the automatic schedule at N), log p and gen loss.
(d) showcase: the default problem, depth 2 width 5 linear, ln p near -25 (log10 p near
    -10.9, p ~ 1e-11), 16k particles x 8 replicates: seconds per replicate batch (target
    < 5 s on an H100).

--scale multiplies particle counts, rejection draws and the replicates of (a) and (d)
(at least 8 and 2), for a smoke run on the CPU; the checks are sized for --scale 1 on a
GPU.

    PYTHONPATH=$PWD python3 scripts/validate_splitting.py --out $OUT     # GPU, minutes
    PYTHONPATH=. python scripts/validate_splitting.py --scale 0.02 --repeats 1   # CPU smoke
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import splitting as splitting_benchmark  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

import gcsampler as gcs  # noqa: E402
from gcsampler.core.intervals import t_interval  # noqa: E402

EXACT = {"particles": 2048, "replicates": 64, "target": 1e-12, "group": 4}
BRUTE = {"particles": 4096, "replicates": 8, "draws": 1e8, "target": 3e-5,
         "workloads": (("d2 w5 tanh", 2, "tanh", False),
                       ("d3 w5 leaky_relu", 3, "leaky_relu", False),
                       ("d4 w5 linear normalized", 4, "linear", True))}
SHOWCASE = {"particles": 16384, "replicates": 8, "log_p": -25.0, "seconds": 5.0}  # ln p
Z_MAX = 4.0          # agreement: within this many combined standard errors
ALPHA = 1e-3         # KS and coverage tests fail below this p-value
SHOWCASE_BAND = 2.0  # |ln p + 25| of the showcase run
LN10 = math.log(10)  # ln p = log10 p * LN10


class Validation:
    """The checks made so far and each part's details."""

    def __init__(self):
        self.checks, self.details = [], {}

    def check(self, part, name, value, ok):
        """Record a check; ``ok`` None is information only."""
        status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
        self.checks.append({"part": part, "check": name, "value": value, "status": status})
        print(f"  [{part}] {name}: {value} -> {status}", flush=True)


def z_score(a, se_a, b, se_b):
    """(a - b) in combined standard errors (NaN where undefined)."""
    se = math.hypot(se_a, se_b)
    return (a - b) / se if se > 0 else math.nan


def agree(z):
    return bool(abs(z) <= Z_MAX)  # NaN fails


def eps_for_log_volume(problem, log_p, iterations=50):
    """Bisection in log eps for the exact depth-1 log volume ``log_p`` (natural log)."""
    lo, hi = math.log(1e-10), 0.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = gcs.linear_log_volume(problem, math.exp(mid)) < log_p
        lo, hi = (mid, hi) if below else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def part_exact(v, problem, scale):
    """(a): coverage of 4-replicate t intervals and the mean against the exact log p."""
    group = EXACT["group"]
    replicates = max(2 * group, group * round(EXACT["replicates"] * scale / group))
    particles = max(32, round(EXACT["particles"] * scale))
    eps = eps_for_log_volume(problem, math.log(EXACT["target"]))
    exact = gcs.linear_log_volume(problem, eps)  # ln p
    exact10 = exact / LN10
    result = gcs.multilevel_splitting(problem, gcs.factorization(5, 5, 1, 1), gcs.gaussian(),
                                      eps=eps, particles=particles, replicates=replicates, seed=1)
    s = gcs.summarize_splitting(result)
    intervals = [t_interval(g) for g in result.log_p.reshape(-1, group)]  # ln p, as exact
    covered = sum(bool(lo <= exact <= hi) for _, _, lo, hi in intervals)
    coverage_p = float(scipy_stats.binom.cdf(covered, len(intervals), 0.95))
    z = (s["log10_p"] - exact10) / s["log10_p_stderr"]
    # the mean of ln p estimates is biased by about -Var(ln p)/2; in log10 p units:
    bias10 = -0.5 * (s["log10_p_stderr"] * LN10) ** 2 * replicates / LN10
    v.details["a"] = {"eps": eps, "exact_log10_p": exact10, "particles": particles,
                      "replicates": replicates, "covered": covered, "intervals": len(intervals),
                      "coverage_p_value": coverage_p, "z": z, "summary": s}
    v.check("a", f"coverage of {group}-replicate 95% CIs",
            f"{covered}/{len(intervals)} (P(<= this | 95%) = {coverage_p:.2g})",
            coverage_p >= ALPHA)
    v.check("a", "mean log10 p vs exact",
            f"{s['log10_p']:.3f} +- {s['log10_p_stderr']:.3f} vs {exact10:.3f} (z {z:+.2f}; "
            f"bias -var/2 ~ {bias10:+.3f})", agree(z))
    v.check("a", "replicate spread / formula", f"{s['spread_ratio']:.2f}", None)


def split_at(problem, model, prior, target, particles, replicates, **kwargs):
    """eps with p ~ target (splitting_benchmark.find_eps, which also compiles) and a
    splitting run there: ``(eps, result, summary)``."""
    (eps,), _ = splitting_benchmark.find_eps(problem, model, prior, [target],
                                             particles=particles, replicates=replicates)
    result = gcs.multilevel_splitting(problem, model, prior, eps=eps, particles=particles,
                                      replicates=replicates, seed=1, **kwargs)
    return eps, result, gcs.summarize_splitting(result)


def part_brute(v, problem, scale, label, depth, activation, normalize):
    """(b) for one workload: rejection against splitting. Returns the splitting base run."""
    model = gcs.factorization(5, 5, depth, 5, activation)
    prior = gcs.gaussian(normalize=normalize)
    particles = max(64, round(BRUTE["particles"] * scale))
    eps, result, s = split_at(problem, model, prior, BRUTE["target"], particles,
                              BRUTE["replicates"])
    gens = []
    run = gcs.guess_and_check(problem, model, prior, eps=eps,
                              samples=max(2**16, round(BRUTE["draws"] * scale)), seed=1,
                              on_rows=lambda index, train, gen, matrix: gens.append(gen))
    r = gcs.summarize(run.totals, run.seconds)
    accepted = r["accepted"]
    p = accepted / r["draws"]
    log10_p = math.log10(p) if accepted else -math.inf
    log10_p_se = math.sqrt((1 - p) / accepted) / LN10 if accepted else math.nan  # delta method
    z_log_p = z_score(s["log10_p"], s["log10_p_stderr"], log10_p, log10_p_se)
    z_gen = z_score(s["gnc_gen_loss_mean"], s["gnc_gen_loss_stderr"], r["gnc_gen_loss_mean"],
                    r["gnc_gen_loss_stderr"])
    split_gens = result.final_gen[result.accepted]
    ks = scipy_stats.ks_2samp(split_gens, np.concatenate(gens)) if accepted else None
    v.details.setdefault("b", {})[label] = {
        "eps": eps, "particles": particles, "splitting": s, "rejection": r,
        "rejection_log10_p": log10_p, "rejection_log10_p_stderr": log10_p_se,
        "ks_statistic": ks.statistic if ks else math.nan,
        "ks_p_value": ks.pvalue if ks else math.nan}
    v.check("b", f"{label}: log10 p", f"split {s['log10_p']:.3f} +- "
            f"{s['log10_p_stderr']:.3f}, rejection {log10_p:.3f} +- {log10_p_se:.3f} "
            f"({accepted} of {r['draws']:.3g}; z {z_log_p:+.2f})", agree(z_log_p))
    v.check("b", f"{label}: gen loss", f"split {s['gnc_gen_loss_mean']:.4g} +- "
            f"{s['gnc_gen_loss_stderr']:.2g}, rejection {r['gnc_gen_loss_mean']:.4g} +- "
            f"{r['gnc_gen_loss_stderr']:.2g} (z {z_gen:+.2f})", agree(z_gen))
    v.check("b", f"{label}: KS of gen losses",
            f"D {ks.statistic:.3f}, p {ks.pvalue:.3g} ({split_gens.size} vs {accepted})"
            if ks else "no rejection draw accepted", bool(ks and ks.pvalue >= ALPHA))
    return model, eps, particles, s


def part_stability(v, problem, base):
    """(c): N vs 2N particles and M vs 2M fixed moves per level, at the base run's eps."""
    model, eps, particles, s_n = base
    replicates = BRUTE["replicates"]
    moves = max(2, round(s_n["moves_per_level_mean"]))

    def run(n, schedule):
        result = gcs.multilevel_splitting(problem, model, gcs.gaussian(), eps=eps, particles=n,
                                          replicates=replicates, seed=2, moves=schedule)
        return gcs.summarize_splitting(result)

    runs = {"N": s_n, "2N": run(2 * particles, "auto"), "M": run(particles, moves),
            "2M": run(particles, 2 * moves)}
    v.details["c"] = {"eps": eps, "particles": particles, "moves": moves, "runs": runs}
    for a, b, what in (("N", "2N", f"N={particles} vs 2N (auto moves)"),
                       ("M", "2M", f"M={moves} vs 2M moves/level")):
        sa, sb = runs[a], runs[b]
        z_log_p = z_score(sa["log10_p"], sa["log10_p_stderr"], sb["log10_p"],
                          sb["log10_p_stderr"])
        z_gen = z_score(sa["gnc_gen_loss_mean"], sa["gnc_gen_loss_stderr"],
                        sb["gnc_gen_loss_mean"], sb["gnc_gen_loss_stderr"])
        v.check("c", what, f"log10 p {sa['log10_p']:.3f} vs {sb['log10_p']:.3f} "
                f"(z {z_log_p:+.2f}), gen {sa['gnc_gen_loss_mean']:.4g} vs "
                f"{sb['gnc_gen_loss_mean']:.4g} (z {z_gen:+.2f})", agree(z_log_p) and agree(z_gen))


def part_showcase(v, problem, scale, repeats):
    """(d): seconds per replicate batch at ln p ~ -25, default problem, depth 2 width 5."""
    model = gcs.factorization(5, 5, 2, 5)
    size = {"particles": max(64, round(SHOWCASE["particles"] * scale)),
            "replicates": max(2, round(SHOWCASE["replicates"] * scale))}
    (eps,), _ = splitting_benchmark.find_eps(problem, model, gcs.gaussian(),
                                             [math.exp(SHOWCASE["log_p"])], **size)
    seconds, s, _ = splitting_benchmark.timed_splitting(problem, model, gcs.gaussian(), eps,
                                                        repeats=repeats, **size)
    v.details["d"] = {"eps": eps, **size, "seconds": seconds, "summary": s}
    full = scale >= 1 and jax.default_backend() == "gpu"
    v.check("d", f"seconds per batch ({size['particles']} x {size['replicates']})",
            f"{seconds:.2f} s ({s['levels']} levels, {s['moves_per_level_mean']:.1f} "
            f"moves/level, {s['samples_per_second']:.3g} evals/s; target < "
            f"{SHOWCASE['seconds']:g} s on an H100)",
            seconds < SHOWCASE["seconds"] if full else None)
    target10, band10 = SHOWCASE["log_p"] / LN10, SHOWCASE_BAND / LN10
    v.check("d", f"log10 p near {target10:.2f} (ln p {SHOWCASE['log_p']:g})",
            f"{s['log10_p']:.2f} [{s['log10_p_ci95'][0]:.2f}, "
            f"{s['log10_p_ci95'][1]:.2f}] at eps {eps:.4g}; "
            f"{s['splitting_message'] or 'no warning'}",
            abs(s["log10_p"] - target10) <= band10 and s["converged"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies particles, draws and the replicates of (a) and (d) "
                        "(1: the GPU sizes)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs in (d) (median)")
    parser.add_argument("--parts", default="abcd", help="which of a, b, c, d to run")
    parser.add_argument("--out", help="directory for validate_splitting.json")
    args = parser.parse_args()
    problem = gcs.matrix_sensing(seed=0)
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), JAX {jax.__version__}, "
          f"scale {args.scale:g}", flush=True)
    v = Validation()
    seconds = {}
    began = time.perf_counter()
    if "a" in args.parts:
        part_exact(v, problem, args.scale)
        seconds["a"] = time.perf_counter() - began
    base = None
    if "b" in args.parts or "c" in args.parts:
        for index, workload in enumerate(BRUTE["workloads"]):
            if "b" in args.parts or index == 0:
                run = part_brute(v, problem, args.scale, *workload)
                base = base or run
        seconds["b"] = time.perf_counter() - began - sum(seconds.values())
    if "c" in args.parts:
        part_stability(v, problem, base)
        seconds["c"] = time.perf_counter() - began - sum(seconds.values())
    if "d" in args.parts:
        part_showcase(v, problem, args.scale, args.repeats)
        seconds["d"] = time.perf_counter() - began - sum(seconds.values())
    failed = sum(c["status"] == "FAIL" for c in v.checks)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with open(Path(args.out) / "validate_splitting.json", "w") as f:
            json.dump({"device": device.device_kind, "platform": device.platform,
                       "jax_version": jax.__version__, "scale": args.scale,
                       "seconds": seconds, "checks": v.checks, "details": v.details}, f,
                      indent=2, default=float)
    print(f"\ndevice: {device.device_kind} ({device.platform}), JAX {jax.__version__}, "
          f"scale {args.scale:g}; seconds per part: "
          + ", ".join(f"{k} {t:.0f}" for k, t in seconds.items()))
    width = max(len(c["check"]) for c in v.checks)
    for c in v.checks:
        print(f"{c['part']}  {c['check']:<{width}}  {c['status']:<4}  {c['value']}")
    print(f"{len(v.checks) - failed} of {len(v.checks)} checks without FAIL"
          + ("" if failed else ": PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
