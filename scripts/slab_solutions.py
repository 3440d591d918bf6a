"""Simple or complex solutions? Which rule the networks a slab study's Guess & Check accepted
learned, as in Fig. 3 of Chiang et al. (ICLR 2023): a table, slab_solutions.csv and a figure.

On the four slabs the label is both a linear function of x and an alternating function of y.
For every finished cell of a `gcsampler classify` study of the slabs (e.g. `--preset
slab-published`), the accepted draws are regenerated from their indices
(gcsampler.classify.slab_probes, checked against the stored rows: each must fit its training
set with the stored training loss) and counted: those that classify every point of the
LINEAR probe (x = +-0.1), of the NONLINEAR probe (the zigzag between the slabs), of both and
of neither. Fractions are of the accepted draws, with Wilson 95% intervals; the totals pool
the seeds (their intervals treat every accepted draw as independent, although the draws of
one seed share its training set). The published figure drew 10,000 runs of one accepted
network each, a new data seed per run; a study draws many networks per seed.

Writes STUDY_DIR/slab_solutions.csv and slab_solutions.png/.pdf (refusing to replace them).
Bad input is one line on stderr and exit 2.

    .venv/bin/python scripts/slab_solutions.py /tmp/study/slab
"""

import argparse
import csv
import io
import pathlib
import sys

import numpy as np

from gcsampler import plots
from gcsampler.classify import data, slab_probes
from gcsampler.core.intervals import wilson_interval
from gcsampler.runs import accepted, classify_study, files, record

SLAB_TASKS = ("published_slab", "slabs")   # the four slabs: the probes' geometry
CSV_FILE = "slab_solutions.csv"
FIGURE_STEM = "slab_solutions"
LOSS_RTOL = 1e-4   # regenerated losses on another backend: equal up to float32 rounding
COLUMNS = ("n_train", "seed", "accepted", "linear", "nonlinear", "both", "neither",
           "linear_fraction", "linear_ci95_lo", "linear_ci95_hi", "nonlinear_fraction",
           "nonlinear_ci95_lo", "nonlinear_ci95_hi", "losses")
PROG = "slab_solutions.py"


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse(argv):
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("study_dir", metavar="STUDY_DIR",
                        help="a `gcsampler classify` study directory of the slabs")
    parser.add_argument("--figure", action="store_true", default=True,
                        help="draw slab_solutions.png/.pdf (needs matplotlib; the default)")
    parser.add_argument("--nofigure", dest="figure", action="store_false",
                        help="write the table only")
    return parser.parse_args(argv)


def load_study(study_dir):
    """The study's config, refusing what is not a finished-enough slab study."""
    if not study_dir.is_dir():
        raise UsageError(f"{study_dir}: no such directory")
    cfg = classify_study.load_config(study_dir)
    if cfg.task not in SLAB_TASKS:
        raise UsageError(f"{study_dir} is a study of {cfg.task}, not of the slabs "
                         f"({', '.join(SLAB_TASKS)}): the probes are the slabs'")
    return cfg


def outputs(study_dir, figure):
    """The files this writes, refused if any exists."""
    paths = [study_dir / CSV_FILE]
    if figure:
        paths += [study_dir / f"{FIGURE_STEM}{suffix}" for suffix in (".png", ".pdf")]
    for path in paths:
        if path.exists():
            raise UsageError(f"{path} exists; move it away to count again")
    return paths


def cell_dirs(study_dir, cfg):
    """(n_train, seed, cell directory) of every cell of the study."""
    return [(n_train, seed, study_dir / "cells" / f"n_train={n_train}" / f"seed={seed}")
            for n_train in cfg.n_train
            for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds)]


def count_cell(cfg, n_train, seed, cell_dir):
    """The counts of one finished cell, and how its regenerated losses matched the stored
    ones ('bits' or 'close')."""
    rec = record.read_config(cell_dir)
    settings = rec["settings"]
    run_seed, log2_block = settings["seed"], settings["log2_block"]
    chunk = rec.get("resolved", {}).get("draws_at_once", slab_probes.CHUNK)
    rows = accepted.read_accepted(cell_dir, record.processes(rec),
                                  fields=("index", "train_loss"))
    dataset = data.make_dataset(cfg.task, n_train, seed)
    model = cfg.network(dataset)
    accuracy, loss = slab_probes.training_fits(model, cfg.prior, run_seed, rows["index"],
                                               log2_block, dataset.train_x, dataset.train_y,
                                               cfg.logits, chunk=chunk)
    unfit = int(np.sum(accuracy != 1.0))
    stored = rows["train_loss"]
    if unfit or not np.allclose(loss, stored, rtol=LOSS_RTOL, atol=0):
        worst = float(np.max(np.abs(loss - stored), initial=0.0))
        raise UsageError(f"{cell_dir}: the regenerated draws are not the accepted ones ({unfit} "
                         f"of {len(stored)} do not fit the training set; losses differ by up "
                         f"to {worst:.3g})")
    counts = slab_probes.solution_counts(model, cfg.prior, run_seed, rows["index"], log2_block)
    return counts, "bits" if np.array_equal(loss, stored) else "close"


def with_fractions(row):
    """``row`` with each probe's fraction of the accepted draws and its Wilson interval."""
    for probe in ("linear", "nonlinear"):
        k, n = row[probe], row["accepted"]
        lo, hi = wilson_interval(k, n)
        lo, hi = (0.0 if k == 0 else lo), (1.0 if n and k == n else hi)   # not 2e-19 at k = 0
        row.update({f"{probe}_fraction": k / n if n else float("nan"),
                    f"{probe}_ci95_lo": lo, f"{probe}_ci95_hi": hi})
    return row


def totals(rows):
    """One row per training-set size: the counts summed over its seeds (seed 'all')."""
    out = []
    for n_train in dict.fromkeys(row["n_train"] for row in rows):
        mine = [row for row in rows if row["n_train"] == n_train]
        summed = {name: sum(row[name] for row in mine) for name in slab_probes.COUNTS}
        losses = "bits" if all(row["losses"] == "bits" for row in mine) else "close"
        out.append(with_fractions({"n_train": n_train, "seed": "all", **summed,
                                   "losses": losses}))
    return out


def fraction_text(row, probe):
    if not row["accepted"]:
        return "none accepted"
    return (f"{row[f'{probe}_fraction']:.4f} [{row[f'{probe}_ci95_lo']:.4f}, "
            f"{row[f'{probe}_ci95_hi']:.4f}]")


def table(rows):
    lines = [f"{'n_train':>7} {'seed':>5} {'accepted':>9} {'linear':>7} {'nonlinear':>9} "
             f"{'both':>5} {'neither':>8}  {'linear fraction [95% CI]':<26}  "
             f"{'nonlinear fraction [95% CI]':<26}"]
    for row in rows:
        lines.append(f"{row['n_train']:>7} {row['seed']:>5} {row['accepted']:>9,} "
                     f"{row['linear']:>7,} {row['nonlinear']:>9,} {row['both']:>5,} "
                     f"{row['neither']:>8,}  {fraction_text(row, 'linear'):<26}  "
                     f"{fraction_text(row, 'nonlinear'):<26}")
    return "\n".join(line.rstrip() for line in lines)


def write_csv(rows, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buffer.getvalue())


def figure(rows, cfg):
    """Bars of the linear and nonlinear fractions per seed and in all, with their Wilson
    intervals."""
    plt = plots.pyplot()
    rows = [row for row in rows if row["accepted"]]
    labels = [f"{row['seed']}" if len(cfg.n_train) == 1 else f"{row['n_train']}/{row['seed']}"
              for row in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(rows) + 2), 3.8),
                           layout="constrained")
    top = 0.0
    for shift, probe, color, name in ((-0.2, "linear", "tab:blue", "linear (x = ±0.1)"),
                                      (0.2, "nonlinear", "tab:orange", "nonlinear (zigzag)")):
        value = np.array([row[f"{probe}_fraction"] for row in rows])
        high = np.array([row[f"{probe}_ci95_hi"] for row in rows])
        low = np.array([row[f"{probe}_ci95_lo"] for row in rows])
        bars = ax.bar(x + shift, value, 0.4, yerr=np.clip([value - low, high - value], 0, None),
                      capsize=3, color=color, label=name)
        ax.bar_label(bars, [f"{row[probe]:,}" for row in rows], padding=2, fontsize=7)
        top = max(top, float(np.max(high, initial=0.0)))
    ax.set_xticks(x, labels)
    ax.set_xlabel("data seed" if len(cfg.n_train) == 1 else "n_train / data seed")
    ax.set_ylabel("fraction of accepted networks\nthat classify the probe (count on bars)")
    ax.set_ylim(0, min(1.0, max(0.05, 1.3 * top)))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right")
    every = sum(row["accepted"] for row in rows if row["seed"] != "all")
    ax.set_title(f"{cfg.task}: which rule G&C's networks learned (Chiang et al. Fig. 3)\n"
                 f"{every:,} accepted networks in all, of {cfg.samples:,} draws per seed; "
                 f"Wilson 95% intervals",
                 fontsize=9)
    return fig


def run(argv):
    args = parse(argv)
    study_dir = pathlib.Path(args.study_dir)
    cfg = load_study(study_dir)
    paths = outputs(study_dir, args.figure)
    if args.figure and not plots.available():
        raise UsageError(f"{plots.INSTALL_HINT} (or --nofigure)")
    rows, unfinished = [], []
    for n_train, seed, cell_dir in cell_dirs(study_dir, cfg):
        if not (cell_dir.is_dir() and record.read_summary(cell_dir) is not None):
            unfinished.append(f"{n_train}/{seed}")
            continue
        counts, losses = count_cell(cfg, n_train, seed, cell_dir)
        rows.append(with_fractions({"n_train": n_train, "seed": seed, **counts,
                                    "losses": losses}))
    if not rows:
        raise UsageError(f"{study_dir} has no finished cell yet")
    rows += totals(rows)
    model = cfg.network(data.make_dataset(cfg.task, cfg.n_train[0], cfg.first_seed))
    biases = "" if getattr(model, "hidden_biases", True) else ", no hidden biases"
    print(f"{study_dir}: {cfg.task}, {cfg.model} width {cfg.width}{biases}, prior {cfg.prior}, "
          f"{cfg.samples:,} draws per seed")
    print("accepted networks that classify every point of the linear probe (x = +-0.1) and of "
          "the nonlinear one (the zigzag between the slabs); Wilson 95% intervals")
    print(table(rows))
    if unfinished:
        print(f"skipped {len(unfinished)} unfinished cell(s) (n_train/seed): "
              f"{', '.join(unfinished)}")
    same = "bit for bit" if all(row["losses"] == "bits" for row in rows) else (
        f"within {LOSS_RTOL:g} (another backend?)")
    regenerated = sum(row["accepted"] for row in rows if row["seed"] == "all")
    print(f"regenerated {regenerated:,} accepted draws: each fits its training set, its "
          f"training loss equal to the stored one {same}")
    drawn = figure(rows, cfg) if args.figure else None   # before anything is written
    write_csv(rows, paths[0])
    print(f"csv: {paths[0]}")
    if drawn is not None:
        written = plots.save_figure(drawn, study_dir / FIGURE_STEM)
        print(f"figure: {written[0]}")
    return 0


def main(argv=None):
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (UsageError, files.RunDirError) as err:
        sys.stderr.write(f"{PROG}: {str(err).splitlines()[0] if str(err) else 'error'}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
