"""The depth sweep (Fig. 2) as one markdown table, depth x activation, from sweep directories.

For each depth, and for each sweep given (one per activation): the median over seeds of
log10 p, of G&C's gen loss with its inter-quartile range over seeds, and of GD's gen loss
with how many seeds' GD fit the train data (where half or fewer did, the median is that of
unfinished runs and is marked: not a baseline); then the medians over seeds of the prior's
chance level and of the two reference interpolants (the problems are those of the first
sweep). G&C entries name the seeds whose cells had a level at the cap of sweeps per level
("cap k/n"), a level that ended with a correlation above 0.3 with its start ("corr > 0.3
k/n") or a flagged replicate spread ("spread k/n"), and how many seeds have finished where
not all have ("k of n seeds": a sweep still running). Below the table, per sweep: the
seeds, the cells whose replicate spread was flagged, the cells with a level at the move
cap, the worst decorrelation left at the end of a level, the fewest ancestors at eps and
the wall time.

    PYTHONPATH=. python scripts/depth_table.py SWEEP_LINEAR SWEEP_TANH SWEEP_LEAKY
"""

import argparse
import math
import sys

import numpy as np

from gcsampler.runs import files, sweep_results
from gcsampler.splitting.base import DEFAULT_MAX_MOVES

UNMIXED = 0.3   # a level left more correlated than this with its start is not decorrelated


def median_and_quartiles(values):
    """``(median, 25th, 75th percentile)`` of the finite ``values`` (NaN if none)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    return tuple(float(q) for q in np.percentile(finite, (50, 25, 75)))


def _float(row, name):
    value = row.get(name)
    return math.nan if value is None else float(value)


def flagged(rows):
    """The cells of ``rows`` whose replicate spread was flagged, those with a level at the
    cap of sweeps per level (not decorrelated to the target there), and those with a level
    that ended with a correlation above ``UNMIXED``."""
    return ([r for r in rows if r.get("spread_flag")],
            [r for r in rows if _float(r, "moves_per_level_max") >= DEFAULT_MAX_MOVES],
            [r for r in rows if _float(r, "final_correlation_max") > UNMIXED])


def cell_text(rows, seeds):
    """The three entries of one depth and one sweep of ``seeds`` seeds: log10 p, G&C (with
    how many seeds have finished, where not all have, and the seeds whose diagnostics
    warn, if any), GD (with the seeds whose GD fit)."""
    log10_p, _, _ = median_and_quartiles([_float(r, "log10_p") for r in rows])
    gen, lo, hi = median_and_quartiles([_float(r, "gnc_gen_loss_mean") for r in rows])
    gd, _, _ = median_and_quartiles([_float(r, "gd_gen_loss") for r in rows])
    spread, capped, unmixed = flagged(rows)
    warnings = [f"{text} {len(cells)}/{len(rows)}" for text, cells in
                (("cap", capped), (f"corr > {UNMIXED}", unmixed), ("spread", spread)) if cells]
    if len(rows) < seeds:
        warnings.insert(0, f"{len(rows)} of {seeds} seeds")
    fitted = sum(bool(r.get("gd_fitted")) for r in rows)
    verdict = f"{fitted} of {len(rows)}" + (
        "" if fitted == len(rows) else " fit" if 2 * fitted > len(rows) else
        ": **not a baseline**")     # a median of mostly unfinished runs
    return [f"{log10_p:.1f}",
            f"{gen:.4f} ({lo:.4f}-{hi:.4f})" + (f" [{', '.join(warnings)}]" if warnings else ""),
            f"{gd:.1e} ({verdict})"]


def diagnostics(name, record, rows):
    """One line of the mixing and spread diagnostics of a sweep's cells."""
    spread, capped, _ = flagged(rows)
    worst = max(_float(r, "final_correlation_max") for r in rows)
    ancestors = min(_float(r, "ancestors_min") for r in rows)
    wall = (f"{record['finished']['wall_seconds'] / 60:.0f} min in all"
            if "finished" in record else "not finished")
    return (f"- {name}: {len(rows)} cells ({record['seeds']} seeds); spread flagged in "
            f"{len(spread)}; a level at the cap of {DEFAULT_MAX_MOVES} sweeps in {len(capped)}; "
            f"worst decorrelation at the end of a level {worst:.2f}; at eps the particles of a "
            f"replicate descend from at least {ancestors:.0f} initial ones; {wall}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", help="sweep directories of the depth presets")
    args = parser.parse_args()
    sweeps = []
    for directory in args.sweeps:
        try:
            record, rows = sweep_results.load_sweep(directory)
        except files.RunDirError as err:
            sys.exit(f"depth_table: {err}")
        if record.get("axis") != "depth" or not rows:
            sys.exit(f"depth_table: {directory} is not a depth sweep with finished cells")
        sweeps.append((rows[0]["activation"], record, rows))
    depths = sorted({r["depth"] for _, _, rows in sweeps for r in rows})
    header = ["depth"] + [f"{name}: {column}" for name, _, _ in sweeps
                          for column in ("log10 p", "G&C gen loss (IQR)", "GD gen loss (fitted)")]
    header += ["prior", "min Frobenius", "min nuclear"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for depth in depths:
        line = [str(depth)]
        for _, record, rows in sweeps:
            at = [r for r in rows if r["depth"] == depth]
            line += cell_text(at, record["seeds"]) if at else ["", "", ""]
        first = [r for r in sweeps[0][2] if r["depth"] == depth]
        for name in ("prior_gen_loss_mean", "min_frobenius_gen_loss", "min_nuclear_gen_loss"):
            line.append(f"{median_and_quartiles([_float(r, name) for r in first])[0]:.3g}")
        print("| " + " | ".join(line) + " |")
    print()
    for name, record, rows in sweeps:
        print(diagnostics(name, record, rows))


if __name__ == "__main__":
    main()
