"""Splitting against rejection on the networks of the depth sweep (Fig. 2): a PASS/FAIL table
last, a JSON file and a figure.

Width 5, depths 2 to 10, linear, tanh and leaky ReLU, the normalized Gaussian prior, the
default problem (matrix_sensing(seed=0)), at one eps where rejection accepts at least
1,000 of its draws in every cell:

(a) log10 p and the G&C gen-loss mean of splitting (N particles x R replicates, the
    default moves) against rejection (D draws). Each difference is set against its 95%
    interval (Welch: the splitting error has R - 1 degrees of freedom, rejection's is
    normal). Correct samplers leave about 5% of the comparisons outside: the count
    outside must be consistent with that (binomial P(>= count) >= ALPHA), and no
    comparison may fall outside the family-wise (Bonferroni, ALPHA) interval.
(b) stability, at --stability_depths: 2N particles, and 2M fixed moves per level (M the
    base run's mean under 'auto'), each against the base run, within their joint
    family-wise interval (each difference's z, and whether it falls outside its own 95%
    interval, are printed too).

With --draws 0 there is no rejection and no (a): splitting alone, with its checks (b), at a
threshold rejection cannot reach (the paper's eps = 0.0035 needs about 1e7 to 1e8 draws per
accepted one there).

Each cell also reports its worst level's decorrelation (the largest correlation with the
level's start after its moves; 'auto' aims at 0.1) and its seconds.

    PYTHONPATH=. python scripts/validate_depth.py --out OUT               # CPU: an hour or more
    PYTHONPATH=. python scripts/validate_depth.py --depths 2,6 --activations linear \\
        --particles 64 --replicates 4 --draws 2e5 --eps 0.05 --stability_depths ''   # smoke
    PYTHONPATH=. python scripts/validate_depth.py --eps 0.0035 --draws 0 --depths 10 \\
        --stability_depths 10 --out OUT                      # (b) at the paper's threshold
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats

import gcsampler as gcs

ALPHA = 1e-3          # family-wise false-failure rate of each check
LEVEL = 0.95          # the per-comparison interval
LN10 = math.log(10)


def welch_z(a, se_a, dof_a, b, se_b, dof_b):
    """(|a - b| / combined standard error, Welch-Satterthwaite degrees of freedom)."""
    var = se_a**2 + se_b**2
    finite = [(se**2, dof) for se, dof in ((se_a, dof_a), (se_b, dof_b))
              if math.isfinite(dof) and se > 0]
    dof = var**2 / sum(v**2 / d for v, d in finite) if finite else math.inf
    return (abs(a - b) / math.sqrt(var) if var > 0 else math.nan), dof


def quantile(alpha, dof):
    """The two-sided level-``alpha`` quantile of Student's t (normal for infinite dof)."""
    return float(stats.t.ppf(1 - alpha / 2, dof) if math.isfinite(dof)
                 else stats.norm.ppf(1 - alpha / 2))


def rejection(problem, model, prior, eps, draws):
    """Rejection G&C: log10 p and the gen-loss mean, each with its standard error."""
    run = gcs.guess_and_check(problem, model, prior, eps=eps, samples=draws, seed=1)
    r = gcs.summarize(run.totals, run.seconds)
    accepted, p = r["accepted"], r["accepted"] / r["draws"]
    return {"accepted": accepted, "draws": r["draws"], "seconds": run.seconds,
            "log10_p": math.log10(p) if accepted else -math.inf,
            "log10_p_stderr": math.sqrt((1 - p) / accepted) / LN10 if accepted else math.nan,
            "gen": r["gnc_gen_loss_mean"], "gen_stderr": r["gnc_gen_loss_stderr"]}


def splitting(problem, model, prior, eps, particles, replicates, moves="auto", seed=1):
    """A splitting run's log10 p, gen-loss mean (standard errors from the replicates),
    moves, worst decorrelation and seconds."""
    result = gcs.multilevel_splitting(problem, model, prior, eps=eps, particles=particles,
                                      replicates=replicates, seed=seed, moves=moves)
    s = gcs.summarize_splitting(result)
    return {"log10_p": s["log10_p"], "log10_p_stderr": s["log10_p_stderr"],
            "gen": s["gnc_gen_loss_mean"], "gen_stderr": s["gnc_gen_loss_stderr"],
            "moves_mean": s["moves_per_level_mean"], "moves_max": s["moves_per_level_max"],
            "correlation_max": s["final_correlation_max"], "levels": s["levels"],
            "seconds": s["seconds"], "converged": s["converged"], "dof": replicates - 1}


def compare(a, b, dof_a, dof_b):
    """{quantity: (z, dof)} of two runs' log10 p and gen-loss means."""
    return {q: welch_z(a[q], a[q + "_stderr"], dof_a, b[q], b[q + "_stderr"], dof_b)
            for q in ("log10_p", "gen")}


def part_a(cells, comparisons):
    """The checks of (a): the count outside 95% and the family-wise bound."""
    outside = sum(z > quantile(1 - LEVEL, dof) for z, dof in comparisons)
    tail = float(stats.binom.sf(outside - 1, len(comparisons), 1 - LEVEL))
    worst = max(z / quantile(ALPHA / len(comparisons), dof) for z, dof in comparisons)
    accepted_min = min(c["rejection"]["accepted"] for c in cells)
    return [("a", "rejection accepts >= 1,000 in every cell", f"least {accepted_min:,}",
             accepted_min >= 1000),
            ("a", "comparisons outside their 95% interval",
             f"{outside} of {len(comparisons)} (expected {len(comparisons) * (1 - LEVEL):.1f}; "
             f"P(>= {outside}) = {tail:.2g})", tail >= ALPHA),
            ("a", "largest difference / family-wise bound", f"{worst:.2f}", worst <= 1)]


def figure(cells, path):
    """log10 p and gen loss against depth: splitting (95% intervals) beside rejection and
    the doubled runs of (b), where they ran."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"linear": "C0", "tanh": "C1", "leaky_relu": "C2"}
    # (label, offset on the depth axis, marker, the cell's run)
    series = (("splitting", -0.15, "o", lambda c: c["splitting"]),
              ("rejection", 0.15, "s", lambda c: c["rejection"]),
              ("splitting, 2N particles", 0.0, "^", lambda c: c.get("stability", {}).get("2N")),
              ("splitting, 2M moves", 0.3, "v", lambda c: c.get("stability", {}).get("2M")))
    for activation, color in colors.items():
        for name, offset, marker, run_of in series:
            rows = [(c["depth"], run_of(c)) for c in cells
                    if c["activation"] == activation and run_of(c) is not None]
            if not rows:
                continue
            depth = np.array([d for d, _ in rows]) + offset
            for ax, q in zip(axes, ("log10_p", "gen")):
                value = np.array([run[q] for _, run in rows])
                half = np.array([run[q + "_stderr"] * quantile(1 - LEVEL, run.get("dof", math.inf))
                                 for _, run in rows])
                ax.errorbar(depth, value, half, fmt=marker, color=color, capsize=3,
                            mfc=color if marker == "o" else "none",
                            label=f"{activation}: {name}")
    eps = cells[0]["eps"]
    axes[0].set_ylabel(f"log10 P(train loss < {eps:g})")
    axes[1].set_ylabel("G&C gen loss (mean of accepted)")
    for ax in axes:
        ax.set_xlabel("depth (width 5, normalized Gaussian prior)")
        ax.set_xticks(sorted({c["depth"] for c in cells}))  # whole depths only
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    against = "against rejection " if any(c["rejection"] for c in cells) else ""
    fig.suptitle(f"Splitting {against}at eps {eps:g}, 95% intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out, record):
    """validate_depth.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "validate_depth.json").write_text(json.dumps(record, indent=2, default=float))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--depths", default="2,3,4,5,6,7,8,9,10")
    parser.add_argument("--activations", default="linear,tanh,leaky_relu")
    parser.add_argument("--particles", type=int, default=256)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--draws", type=float, default=1e7,
                        help="rejection draws per cell (0: no rejection, no (a))")
    parser.add_argument("--stability_depths", default="4,10",
                        help="depths of (b), for every activation ('' for none)")
    parser.add_argument("--out", help="directory for validate_depth.json and validate_depth.png")
    args = parser.parse_args()
    problem = gcs.matrix_sensing(seed=0)
    prior = gcs.gaussian(normalize=True)
    device = jax.devices()[0]
    header = f"device: {device.device_kind} ({device.platform}), JAX {jax.__version__}"
    print(header, flush=True)
    began = time.perf_counter()
    cells, comparisons, checks = [], [], []
    stability = [int(d) for d in args.stability_depths.split(",") if d]
    record = {"device": device.device_kind, "jax_version": jax.__version__,
              "settings": vars(args), "cells": cells}
    for activation in args.activations.split(","):
        for depth in (int(d) for d in args.depths.split(",")):
            model = gcs.factorization(5, 5, depth, 5, activation)
            rej = rejection(problem, model, prior, args.eps, int(args.draws)) if args.draws else None
            split = splitting(problem, model, prior, args.eps, args.particles, args.replicates)
            cell = {"activation": activation, "depth": depth, "eps": args.eps,
                    "rejection": rej, "splitting": split}
            label = f"{activation} d{depth}"
            p_vs = gen_vs = ""
            if rej is not None:
                cell["z"] = compare(split, rej, split["dof"], math.inf)
                comparisons += cell["z"].values()
                p_vs = f" vs {rej['log10_p']:.3f} +- {rej['log10_p_stderr']:.3f}"
                gen_vs = (f" vs {rej['gen']:.4g} +- {rej['gen_stderr']:.2g} "
                          f"({rej['accepted']:,} accepted)")
            print(f"{label}: log10 p {split['log10_p']:.3f} +- {split['log10_p_stderr']:.3f}{p_vs}; "
                  f"gen {split['gen']:.4g} +- {split['gen_stderr']:.2g}{gen_vs}; worst "
                  f"decorrelation {split['correlation_max']:.2f}, {split['moves_mean']:.0f} "
                  f"moves/level (most {split['moves_max']}), {split['seconds']:.0f} s", flush=True)
            if depth in stability:
                doubled = {"2N": splitting(problem, model, prior, args.eps, 2 * args.particles,
                                           args.replicates, seed=2),
                           "2M": splitting(problem, model, prior, args.eps, args.particles,
                                           args.replicates, 2 * round(split["moves_mean"]),
                                           seed=2)}
                cell["stability"] = doubled
                for name, run in doubled.items():
                    zs = compare(split, run, split["dof"], run["dof"])
                    bound = max(z / quantile(ALPHA / 2, dof) for z, dof in zs.values())
                    outside = [q for q, (z, dof) in zs.items() if z > quantile(1 - LEVEL, dof)]
                    checks.append(("b", f"{label}: {name}", f"log10 p {run['log10_p']:.3f} (z "
                                   f"{zs['log10_p'][0]:.1f}), gen {run['gen']:.4g} (z "
                                   f"{zs['gen'][0]:.1f}); outside 95%: "
                                   f"{', '.join(outside) or 'none'}; difference / bound "
                                   f"{bound:.2f}", bound <= 1))
                    print(f"{label} {name}: {checks[-1][2]}", flush=True)
            cells.append(cell)
            if args.out:  # after every cell, so that a stopped run keeps what it measured
                write(Path(args.out), record)
    checks = (part_a(cells, comparisons) if comparisons else []) + checks
    seconds = time.perf_counter() - began
    if args.out:
        write(Path(args.out), {**record, "seconds": seconds, "checks": checks})
        figure(cells, Path(args.out) / "validate_depth.png")
    print(f"\n{header}; {seconds:.0f} s")
    print("cell           log10 p split / rejection   gen split / rejection   worst corr")
    for c in cells:
        s, r = c["splitting"], c["rejection"] or {"log10_p": math.nan, "gen": math.nan}
        print(f"{c['activation']:<10} d{c['depth']:<3} {s['log10_p']:8.3f} / {r['log10_p']:8.3f}"
              f"      {s['gen']:.4f} / {r['gen']:.4f}        {s['correlation_max']:.2f}")
    failed = sum(ok is False for *_, ok in checks)
    for part, name, value, ok in checks:
        print(f"{part}  {name:<45} {'PASS' if ok else 'FAIL'}  {value}")
    print(f"{len(checks) - failed} of {len(checks)} checks pass" + ("" if failed else ": PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
