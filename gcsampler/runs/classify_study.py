"""The classifier study: G&C against gradient training across training-set sizes.

For each training-set size and data seed (a fresh balanced split per seed), one
cell runs classifier G&C (:mod:`gcsampler.classify.task`) over a list of
cross-entropy bins, then the baseline optimizer on the same architecture and
training set, once per bin, each run stopped at the first step with 100%
training accuracy and a training cross-entropy below the bin's upper edge (the
comparison of Chiang et al., ICLR 2023). A study directory holds::

    study.json      the settings
    results.csv     one row per (training-set size, seed, bin)
    cells/n_train=K/seed=S/   a run directory (gcsampler.runs.rejection_run): config.json,
                    checkpoint.npz, accepted/, and summary.json with the cell's rows
    test_accuracy.png/.pdf    median over seeds with inter-quartile bars
                    (gcsampler.plots.plot_study, drawn by ``gcsampler classify``)

A study stopped or killed part-way continues with :func:`run` (``resume=True``):
finished cells are kept, the cell in progress continues from its checkpoint, and the
results are those of a study made without a stop. Its G&C runs over several processes
like any run (:mod:`gcsampler.runs.distributed`); process 0 runs the baselines.
"""

import csv
import dataclasses
import io
import math
import pathlib
import sys
import time
from typing import NamedTuple

import numpy as np

from gcsampler.classify import baselines, data, networks
from gcsampler.classify.task import bytes_per_draw, check_bins, classify_task
from gcsampler.core import devices as devices_lib
from gcsampler.core import progress
from gcsampler.runs import aggregate, distributed, files, record, rejection_run
from gcsampler.runs.checkpoint import DEFAULT_EVERY
from gcsampler.runs.config import check_loop_settings

MODELS = ("mlp", "linear", "lenet")
BASELINES = ("sgd", "adam", "random_search", "none")
RESULTS_FILE = "results.csv"
STUDY_FILE = "study.json"
RESULT_COLUMNS = (
    "task", "model", "n_train", "seed", "bin_lo", "bin_hi", "draws", "perfect", "accepted",
    "acceptance_rate", "acceptance_ci95_lo", "acceptance_ci95_hi", "gnc_test_accuracy",
    "gnc_test_accuracy_stderr", "baseline", "baseline_test_accuracy",
    "baseline_test_accuracy_stderr", "baseline_fitted", "baseline_train_loss", "n_test",
    "gnc_seconds", "baseline_seconds",
)
# The cross-entropy bins of the paper's tables: 0.30-0.35 up to 0.60-0.65.
PAPER_BINS = tuple((round(0.30 + 0.05 * i, 2), round(0.35 + 0.05 * i, 2)) for i in range(7))
# Bins for networks with large logits (image tasks), whose perfect fits mostly have a
# training cross-entropy far below 0.3 under the U(-1, 1) prior.
LOW_BINS = ((0.0, 0.01), (0.01, 0.1), (0.1, 0.3), (0.3, 0.65))


PRESETS = {
    "kink-mlp": ("Chiang et al.'s 2-D kink set, MLP with one hidden layer of 10 units, "
                 "2 to 20 training points",
                 dict(task="kink", model="mlp", depth=1, width=10, n_train=tuple(range(2, 21, 2)))),
    "slabs-mlp": ("the 2-D slabs set, MLP with one hidden layer of 10 units, 2 to 20 points",
                  dict(task="slabs", model="mlp", depth=1, width=10,
                       n_train=tuple(range(2, 21, 2)))),
    "digits-lenet": ("digits 0 vs 1 (scikit-learn's 8x8 images), LeNet at width 0.5, 2 to 32 "
                     "training images; lower bins, where its perfect fits lie",
                     dict(task="digits", model="lenet", lenet_width=0.5, samples=200_000,
                          n_train=(2, 4, 8, 16, 32), bins=LOW_BINS)),
    "digits-mlp": ("digits 0 vs 1, MLP with one hidden layer of 10 units, 2 to 32 images",
                   dict(task="digits", model="mlp", depth=1, width=10, samples=500_000,
                        n_train=(2, 4, 8, 16, 32), bins=LOW_BINS)),
}


def preset_listing():
    """One line per preset: its name and what it runs."""
    return "\n".join(f"{name:14s} {text}" for name, (text, _) in PRESETS.items())


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Every setting of a classifier study (see ``gcsampler classify --help``)."""

    task: str = "kink"
    n_train: tuple = (2, 4, 8, 16)
    seeds: int = 4
    model: str = "mlp"
    depth: int = 1
    width: int = 10
    activation: str = "relu"
    lenet_width: float = 0.5
    prior: str = "uniform"
    bins: tuple = PAPER_BINS
    samples: int = 10**6
    batch: int | None = None
    devices: str = "all"
    log2_block: int = 12
    baseline: str = "sgd"
    baseline_lr: float = 0.1
    baseline_steps: int = 10_000
    baseline_runs: int = 8
    baseline_init: str = "pytorch"

    def validate(self):
        """Raise ValueError naming the first bad setting and what it allows."""
        _one_of("task", self.task, tuple(data.TASKS))
        _one_of("model", self.model, MODELS)
        _one_of("activation", self.activation, tuple(networks.ACTIVATIONS))
        _one_of("prior", self.prior, networks.PRIORS)
        _one_of("baseline", self.baseline, BASELINES)
        _one_of("baseline_init", self.baseline_init, ("pytorch", "uniform"))
        if not self.n_train or any(not isinstance(n, int) or n < 2 or n % 2 for n in self.n_train):
            raise ValueError(f"--n_train must be a list of even integers >= 2, got {self.n_train}")
        for name in ("seeds", "depth", "width", "samples", "baseline_steps", "baseline_runs"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "depth" else 1)):
                kind = "non-negative" if name == "depth" else "positive"
                raise ValueError(f"--{name} must be a {kind} "
                                 f"integer, got {value!r}")
        for name in ("lenet_width", "baseline_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name} must be a positive number, got {value!r}")
        try:
            check_bins(self.bins)
        except ValueError as err:
            raise ValueError(f"--{err}") from None
        check_loop_settings(self.log2_block, self.devices)
        return self

    def network(self, dataset):
        """The model for ``dataset``'s inputs."""
        in_shape = dataset.train_x.shape[1:]
        if self.model == "lenet":
            if len(in_shape) != 3:
                raise ValueError(f"--model lenet needs image inputs; {self.task} has inputs of "
                                 f"shape {in_shape}")
            return networks.lenet(self.lenet_width, in_shape=in_shape)
        depth = 0 if self.model == "linear" else self.depth
        return networks.MLP(math.prod(in_shape), depth=depth, width=self.width,
                            activation=self.activation)


def load_config(out_dir):
    """The StudyConfig a study directory was made with (its ``study.json``)."""
    path = pathlib.Path(out_dir) / STUDY_FILE
    if not path.is_file():
        raise files.RunDirError(f"{out_dir} is not a gcsampler classify study (no {STUDY_FILE})")
    values = files.read_json(path)
    try:
        values["n_train"] = tuple(values["n_train"])
        values["bins"] = tuple(tuple(pair) for pair in values["bins"])
        return StudyConfig(**values).validate()
    except (KeyError, TypeError, ValueError) as err:
        raise files.RunDirError(f"{path} is not a valid study config ({err})") from None


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")


class Cell(NamedTuple):
    """One (training-set size, seed) of a study, with its data and network."""

    n_train: int
    seed: int
    dataset: data.Dataset
    model: object

    @property
    def name(self):
        return f"n_train={self.n_train}/seed={self.seed}"


def make_cells(cfg):
    """Every cell of ``cfg``; raises ValueError (or ImportError for a missing optional
    package) for settings no cell can run (a --batch too large for the device's memory
    included), before anything is written."""
    cfg.validate()
    found = []
    for n_train in cfg.n_train:
        for seed in range(cfg.seeds):
            dataset = data.make_dataset(cfg.task, n_train, seed)
            model = cfg.network(dataset)
            devices_lib.check_batch(cfg.batch, cfg.samples, bytes_per_draw(model, dataset),
                                    log2_block=cfg.log2_block, name="--batch")
            found.append(Cell(n_train, seed, dataset, model))
    return found


def run(cfg, out_dir, stream=None, cells=None, *, resume=False,
        checkpoint_every=DEFAULT_EVERY):
    """Run every cell of ``cfg`` (``cells``, if already made by :func:`make_cells`) into the
    new directory ``out_dir``, or, with ``resume``, continue the study in ``out_dir``;
    returns the result rows (every process returns them; process 0 writes them)."""
    todo = cells if cells is not None else make_cells(cfg)
    stream = stream if stream is not None else sys.stderr
    out_dir = pathlib.Path(out_dir)
    team = distributed.team()

    def create():
        if team.leader:
            files.create_run_dir(out_dir)
            files.write_json(out_dir / STUDY_FILE, dataclasses.asdict(cfg))

    if not resume:
        distributed.together(team, create)
    show = progress.SweepProgress(cfg.samples * len(todo), len(todo), stream)
    rows = []
    for cell in todo:
        rows += run_cell(cfg, cell, out_dir, show.for_cell(cell.name), stream,
                         checkpoint_every)
        show.finish_cell(cfg.samples)
        if team.leader:
            write_results(rows, out_dir / RESULTS_FILE)
    distributed.leave()
    return rows


def run_cell(cfg, cell, out_dir, on_progress, stream, checkpoint_every=DEFAULT_EVERY):
    """G&C and the baseline on one cell: a run directory under ``out_dir``; continues the
    cell's G&C from its checkpoint if it has one, and keeps a finished cell's rows.
    Returns its rows."""
    cell_dir = pathlib.Path(out_dir) / "cells" / cell.name
    found = record.read_summary(cell_dir) if (cell_dir / record.CONFIG_FILE).is_file() else None
    if found is not None and "rows" in found:  # JSON has null where the rows had NaN
        return [{k: math.nan if v is None else v for k, v in row.items()}
                for row in found["rows"]]
    task = classify_task(cell.dataset, cell.model, cfg.prior, bins=cfg.bins)
    settings = rejection_run.LoopSettings(cfg.samples, cell.seed, cfg.batch, cfg.devices,
                                          cfg.log2_block)
    config = {"method": rejection_run.METHOD.name, "settings": settings._asdict(),
              "task": task.describe, "resume": f"`gcsampler classify --resume {out_dir}`"}
    if found is not None:
        summary = found
    elif (cell_dir / record.CONFIG_FILE).is_file():
        summary = rejection_run.continue_task(
            task, cell_dir, settings, config, stream=_Quiet(), checkpoint_every=checkpoint_every,
            resume_hint=config["resume"], previous=record.read_config(cell_dir))
    else:
        summary = rejection_run.run_task(
            task, cell_dir, settings, config, stream=_Quiet(), on_progress=on_progress,
            checkpoint_every=checkpoint_every, resume_hint=config["resume"])
    if not distributed.team().leader:
        return []
    started = time.perf_counter()
    fits = [_baseline(cfg, cell.model, cell.dataset, hi) for _, hi in cfg.bins]
    baseline_seconds = time.perf_counter() - started
    rows = [{"task": cfg.task, "model": cfg.model, "n_train": cell.n_train, "seed": cell.seed,
             **gnc_cell, **fit, "n_test": summary["n_test"], "gnc_seconds": summary["seconds"],
             "baseline_seconds": baseline_seconds}
            for gnc_cell, fit in zip(summary["cells"], fits)]
    files.write_json(cell_dir / record.SUMMARY_FILE, {**summary, "rows": rows})
    return rows


class _Quiet(io.StringIO):
    """Swallows a cell's header line: the study shows its own progress."""


def _baseline(cfg, model, dataset, target_loss):
    """The baseline's results when stopped below ``target_loss`` (NaN when none ran)."""
    if cfg.baseline == "none":
        return {"baseline": "none", "baseline_test_accuracy": math.nan,
                "baseline_test_accuracy_stderr": math.nan, "baseline_fitted": math.nan,
                "baseline_train_loss": math.nan}
    common = dict(steps=cfg.baseline_steps, seeds=cfg.baseline_runs, init=cfg.baseline_init,
                  target_loss=float(target_loss))
    if cfg.baseline == "random_search":
        fit = baselines.random_search(model, dataset, sigma=cfg.baseline_lr, **common)
    else:
        fit = baselines.train(model, dataset, optimizer=cfg.baseline, lr=cfg.baseline_lr, **common)
    fitted = np.asarray(fit.fitted, bool)
    accuracy = np.asarray(fit.test_accuracy, np.float64)[fitted]
    return {"baseline": cfg.baseline,
            "baseline_test_accuracy": float(np.mean(accuracy)) if accuracy.size else math.nan,
            "baseline_test_accuracy_stderr": (float(np.std(accuracy, ddof=1)
                                                    / math.sqrt(accuracy.size))
                                              if accuracy.size > 1 else math.nan),
            "baseline_fitted": float(np.mean(fitted)),
            "baseline_train_loss": (float(np.mean(np.asarray(fit.train_loss)[fitted]))
                                    if fitted.any() else math.nan)}


def table(rows):
    """Plain-text summary: per training-set size and bin, medians over the seeds of the
    accepted draws, G&C's test accuracy, the baseline's, and its fitted fraction."""
    seeds = len({row["seed"] for row in rows})
    lines = [f"median over {seeds} seed(s) of each cell's value",
             f"{'n_train':>7}  {'CE bin':<11}  {'accepted':>9}  {'G&C test acc':>12}  "
             f"{'baseline test acc':>17}  {'baseline fitted':>15}"]
    keys = dict.fromkeys((row["n_train"], row["bin_lo"], row["bin_hi"]) for row in rows)
    for n_train, lo, hi in keys:
        cell = [row for row in rows if (row["n_train"], row["bin_lo"], row["bin_hi"]) == (
            n_train, lo, hi)]

        def median(column, spec):
            band = aggregate.median_iqr(cell, "n_train", column)[0]
            return format(band.median, spec) if band.n else "none"

        lines.append(f"{n_train:>7}  [{lo:.2f}, {hi:.2f})  {median('accepted', '.4g'):>9}  "
                     f"{median('gnc_test_accuracy', '.3f'):>12}  "
                     f"{median('baseline_test_accuracy', '.3f'):>17}  "
                     f"{median('baseline_fitted', '.0%'):>15}")
    return "\n".join(lines)


def write_results(rows, path):
    """Write ``rows`` as CSV (atomically), columns in :data:`RESULT_COLUMNS` order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buffer.getvalue())
