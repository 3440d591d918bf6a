"""The classifier study: G&C against gradient training across training-set sizes.

For each training-set size and data seed (a fresh split, and for MNIST a fresh class pair,
per seed: "a new data seed per run" as published), one cell runs classifier G&C
(:mod:`gcsampler.classify.task`) over a list of cross-entropy bins ``(lo, hi]`` of the
normalized (default, as published) or raw logits, then the baseline on the same network and
training set, once per bin: by default the published protocol of Chiang et al. (ICLR 2023,
:mod:`gcsampler.classify.published_sgd`: minibatch SGD from the prior that freezes at the
bin's upper edge, runs at or below its lower edge discarded, batches until
``baseline_models`` runs land in the bin), or full-batch training stopped below the upper
edge (``baseline_protocol='full_batch'``). Each cell value is a per-run mean; the table
reports, per size and bin, the mean of the per-run means with its 95% interval (the
published statistic) beside the median. A study directory holds::

    study.json      the settings
    results.csv     one row per (training-set size, seed, bin)
    cells/n_train=K/seed=S/   a run directory (gcsampler.runs.rejection_run): config.json,
                    checkpoint.npz, accepted/, and summary.json with the cell's rows
    test_accuracy.png/.pdf    mean over seeds of the per-run means with 95% intervals
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

from gcsampler.classify import baselines, data, networks, published_sgd
from gcsampler.classify.task import bytes_per_draw, check_bins, classify_task
from gcsampler.core import devices as devices_lib
from gcsampler.core import progress
from gcsampler.runs import aggregate, distributed, files, record, rejection_run
from gcsampler.runs.checkpoint import DEFAULT_EVERY
from gcsampler.runs.classify_presets import PAPER_BINS
from gcsampler.runs.config import check_loop_settings

MODELS = ("mlp", "linear", "lenet")
BASELINES = ("sgd", "adam", "random_search", "none")
PROTOCOLS = ("published", "full_batch")
# Tasks split as published (the first 70% of a shuffled set), so of any training-set size
# from 3 (fewer would leave no test point).
UNBALANCED_TASKS = ("published_kink", "published_slab")
RESULTS_FILE = "results.csv"
STUDY_FILE = "study.json"
RESULT_COLUMNS = (
    "task", "model", "n_train", "seed", "bin_lo", "bin_hi", "draws", "perfect", "accepted",
    "acceptance_rate", "acceptance_ci95_lo", "acceptance_ci95_hi", "gnc_test_accuracy",
    "gnc_test_accuracy_stderr", "baseline", "baseline_protocol", "baseline_test_accuracy",
    "baseline_test_accuracy_stderr", "baseline_fitted", "baseline_models", "baseline_tried",
    "baseline_landed", "baseline_train_loss", "logits", "n_test", "gnc_seconds",
    "baseline_seconds",
)
@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Every setting of a classifier study (see ``gcsampler classify --help``)."""

    task: str = "kink"
    n_train: tuple = (2, 4, 8, 16)
    seeds: int = 4
    first_seed: int = 0
    model: str = "mlp"
    depth: int = 1
    width: int = 10
    activation: str = "relu"
    hidden_biases: bool = True
    lenet_width: float = 0.5
    padding: str = "SAME"
    prior: str = "uniform"
    logits: str = "normalized"
    bins: tuple = PAPER_BINS
    samples: int | tuple = 10**6    # G&C draws per cell, or one count per n_train
    batch: int | None = None
    devices: str = "all"
    log2_block: int = 12
    baseline: str = "sgd"
    baseline_protocol: str = "published"
    baseline_lr: float = 0.1
    baseline_epochs: int = 200
    baseline_batch_size: int = 3
    baseline_steps: int = 10_000
    baseline_runs: int = 64
    baseline_models: int = 20
    baseline_max_runs: int = 1024
    baseline_init: str = "uniform"

    def validate(self):
        """Raise ValueError naming the first bad setting and what it allows."""
        _one_of("task", self.task, tuple(data.TASKS))
        _one_of("model", self.model, MODELS)
        _one_of("activation", self.activation, tuple(networks.ACTIVATIONS))
        _one_of("prior", self.prior, networks.PRIORS)
        _one_of("logits", self.logits, networks.LOGITS)
        _one_of("padding", self.padding, networks.PADDINGS)
        _one_of("baseline", self.baseline, BASELINES)
        _one_of("baseline_protocol", self.baseline_protocol, PROTOCOLS)
        _one_of("baseline_init", self.baseline_init, baselines.INITS)
        if self.baseline_protocol == "published" and self.baseline in ("adam", "random_search"):
            raise ValueError(f"--baseline {self.baseline} needs --baseline_protocol full_batch "
                             f"(the published protocol is minibatch SGD)")
        if not isinstance(self.hidden_biases, bool):
            raise ValueError(f"--hidden_biases must be true or false, got {self.hidden_biases!r}")
        smallest, step = (3, 1) if self.task in UNBALANCED_TASKS else (2, 2)
        if not self.n_train or any(not isinstance(n, int) or n < smallest or n % step
                                   for n in self.n_train):
            kind = "integers >= 3" if step == 1 else "even integers >= 2"
            raise ValueError(f"--n_train must be a list of {kind} for {self.task}, "
                             f"got {self.n_train}")
        counts = self.samples if isinstance(self.samples, tuple) else (self.samples,)
        if (len(counts) not in (1, len(self.n_train))
                or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts)):
            raise ValueError(f"--samples must be a positive integer or one per --n_train value "
                             f"({len(self.n_train)}), got {self.samples!r}")
        for name in ("seeds", "first_seed", "depth", "width", "baseline_epochs",
                     "baseline_batch_size", "baseline_steps", "baseline_runs",
                     "baseline_models", "baseline_max_runs"):
            value = getattr(self, name)
            low = 0 if name in ("depth", "first_seed") else 1
            if isinstance(value, bool) or not (isinstance(value, int) and value >= low):
                kind = "non-negative" if low == 0 else "positive"
                raise ValueError(f"--{name} must be a {kind} "
                                 f"integer, got {value!r}")
        if (self.baseline != "none" and self.baseline_protocol == "published"
                and (self.first_seed + self.seeds) * len(self.bins) * self.baseline_max_runs
                + self.baseline_runs >= 2**32):
            raise ValueError("--first_seed, --seeds and --baseline_max_runs are too large: the "
                             "baseline's run seeds must stay below 2**32")
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

    def samples_for(self, n_train):
        """G&C draws of a cell with ``n_train`` training points."""
        if isinstance(self.samples, tuple):
            return self.samples[self.n_train.index(n_train)] if len(self.samples) > 1 else \
                self.samples[0]
        return self.samples

    def network(self, dataset):
        """The model for ``dataset``'s inputs."""
        in_shape = dataset.train_x.shape[1:]
        if self.model == "lenet":
            if len(in_shape) != 3:
                raise ValueError(f"--model lenet needs image inputs; {self.task} has inputs of "
                                 f"shape {in_shape}")
            try:
                return networks.lenet(self.lenet_width, in_shape=in_shape, padding=self.padding)
            except ValueError as err:
                raise ValueError(f"--padding {self.padding}: {err}") from None
        depth = 0 if self.model == "linear" else self.depth
        return networks.MLP(math.prod(in_shape), depth=depth, width=self.width,
                            activation=self.activation, hidden_biases=self.hidden_biases)


def load_config(out_dir):
    """The StudyConfig a study directory was made with (its ``study.json``)."""
    path = pathlib.Path(out_dir) / STUDY_FILE
    if not path.is_file():
        raise files.RunDirError(f"{out_dir} is not a gcsampler classify study (no {STUDY_FILE})")
    values = files.read_json(path)
    if isinstance(values, dict) and "logits" not in values:
        raise files.RunDirError(f"{out_dir} was made by an earlier gcsampler (raw-logit [lo, hi) "
                                f"bins, full-batch baseline): start a new study")
    try:
        values["n_train"] = tuple(values["n_train"])
        values["bins"] = tuple(tuple(pair) for pair in values["bins"])
        if isinstance(values.get("samples"), list):
            values["samples"] = tuple(values["samples"])
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
        for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
            dataset = data.make_dataset(cfg.task, n_train, seed)
            model = cfg.network(dataset)
            devices_lib.check_batch(cfg.batch, cfg.samples_for(n_train),
                                    bytes_per_draw(model, dataset),
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
    show = progress.SweepProgress(sum(cfg.samples_for(cell.n_train) for cell in todo),
                                  len(todo), stream)
    rows = []
    for cell in todo:
        rows += run_cell(cfg, cell, out_dir, show.for_cell(cell.name), stream,
                         checkpoint_every)
        show.finish_cell(cfg.samples_for(cell.n_train))
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
    task = classify_task(cell.dataset, cell.model, cfg.prior, bins=cfg.bins, logits=cfg.logits)
    settings = rejection_run.LoopSettings(cfg.samples_for(cell.n_train), cell.seed, cfg.batch,
                                          cfg.devices,
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
    fits = [_baseline(cfg, cell, j) for j in range(len(cfg.bins))]
    baseline_seconds = time.perf_counter() - started
    rows = [{"task": cfg.task, "model": cfg.model, "n_train": cell.n_train, "seed": cell.seed,
             **gnc_cell, **fit, "logits": cfg.logits, "n_test": summary["n_test"],
             "gnc_seconds": summary["seconds"], "baseline_seconds": baseline_seconds}
            for gnc_cell, fit in zip(summary["cells"], fits)]
    files.write_json(cell_dir / record.SUMMARY_FILE, {**summary, "rows": rows})
    return rows


class _Quiet(io.StringIO):
    """Swallows a cell's header line: the study shows its own progress."""


def _baseline(cfg, cell, j):
    """The baseline's results on ``cell`` for bin ``j`` (NaN where none ran)."""
    lo, hi = (float(edge) for edge in check_bins(cfg.bins)[j])
    row = {"baseline": cfg.baseline, "baseline_protocol": cfg.baseline_protocol}
    if cfg.baseline == "none":
        return {**row, "baseline_test_accuracy": math.nan,
                "baseline_test_accuracy_stderr": math.nan, "baseline_fitted": math.nan,
                "baseline_models": 0, "baseline_tried": 0, "baseline_landed": 0,
                "baseline_train_loss": math.nan}
    if cfg.baseline_protocol == "published":
        first = ((cell.seed * len(cfg.bins)) + j) * cfg.baseline_max_runs
        filled = published_sgd.fill_bin(
            cell.model, cell.dataset, models=cfg.baseline_models, runs_per_batch=cfg.baseline_runs,
            max_runs=cfg.baseline_max_runs, first_seed=first, lr=cfg.baseline_lr,
            epochs=cfg.baseline_epochs, bin=(lo, hi), init=cfg.baseline_init, logits=cfg.logits,
            batch_size=published_batch_size(cfg, cell.n_train))
        accuracy, loss, tried, landed = filled
        kept = len(accuracy) / cfg.baseline_models   # the bin filled (1.0) or not
    else:
        common = dict(steps=cfg.baseline_steps, seeds=cfg.baseline_runs, init=cfg.baseline_init,
                      target_loss=hi, logits=cfg.logits)
        if cfg.baseline == "random_search":
            fit = baselines.random_search(cell.model, cell.dataset, sigma=cfg.baseline_lr,
                                          **common)
        else:
            fit = baselines.train(cell.model, cell.dataset, optimizer=cfg.baseline,
                                  lr=cfg.baseline_lr, **common)
        fitted = np.asarray(fit.fitted, bool)
        accuracy = np.asarray(fit.test_accuracy)[fitted]
        loss = np.asarray(fit.train_loss)[fitted]
        tried, landed, kept = len(fitted), int(fitted.sum()), float(np.mean(fitted))
    accuracy = np.asarray(accuracy, np.float64)
    return {**row,
            "baseline_test_accuracy": float(np.mean(accuracy)) if accuracy.size else math.nan,
            "baseline_test_accuracy_stderr": (float(np.std(accuracy, ddof=1)
                                                    / math.sqrt(accuracy.size))
                                              if accuracy.size > 1 else math.nan),
            "baseline_fitted": kept, "baseline_models": int(accuracy.size),
            "baseline_tried": int(tried), "baseline_landed": int(landed),
            "baseline_train_loss": float(np.mean(loss)) if accuracy.size else math.nan}


def published_batch_size(cfg, n_train):
    """The published SGD minibatch: ``min(n_train // 2, baseline_batch_size)``, at least 1
    (the published code halves its sample count, which for the kink and slab sets is the
    70/30 total; for them gcsampler takes the training points)."""
    return max(1, min(n_train // 2, cfg.baseline_batch_size))


def table(rows):
    """Plain-text summary per training-set size and bin: accepted draws (total over seeds),
    G&C's test accuracy and the baseline's, each as the mean over seeds of the per-run means
    with its 95% interval (Chiang et al.'s statistic) and the median, and the baseline's
    runs kept of those tried."""
    seeds = len({row["seed"] for row in rows})
    published = any(row.get("baseline_protocol") == "published" for row in rows)
    kept = "baseline kept/tried" if published else "baseline fit/runs"
    logits = " and ".join(sorted({str(row.get("logits", "raw")) for row in rows}))
    lines = [f"bins of the {logits} logits' train cross-entropy; over {seeds} data seed(s): "
             f"mean of the per-seed means [95% CI], then the median",
             f"{'n_train':>7}  {'CE bin':<16}  {'accepted':>9}  {'G&C test acc':>26}  "
             f"{'baseline test acc':>26}  {kept:>19}"]
    keys = dict.fromkeys((row["n_train"], row["bin_lo"], row["bin_hi"]) for row in rows)
    for n_train, lo, hi in keys:
        cell = [row for row in rows if (row["n_train"], row["bin_lo"], row["bin_hi"]) == (
            n_train, lo, hi)]
        accepted = sum(int(row["accepted"]) for row in cell)
        models = sum(int(row.get("baseline_models") or 0) for row in cell)
        tried = sum(int(row.get("baseline_tried") or 0) for row in cell)
        lines.append(f"{n_train:>7}  ({lo:g}, {hi:g}]".ljust(25) + f"  {accepted:>9}  "
                     f"{_mean_and_median(cell, 'gnc_test_accuracy'):>26}  "
                     f"{_mean_and_median(cell, 'baseline_test_accuracy'):>26}  "
                     f"{f'{models}/{tried}':>19}")
    return "\n".join(lines)


def _mean_and_median(cell, column):
    """``mean [lo, hi] median`` over the seeds with a value, or 'none'."""
    (band,) = aggregate.mean_ci(cell, "n_train", column)
    if not band.n:
        return "none"
    (middle,) = aggregate.median_iqr(cell, "n_train", column)
    interval = f"[{band.q25:.3f}, {band.q75:.3f}]" if band.n > 1 else "[n=1]"
    return f"{band.median:.3f} {interval} {middle.median:.3f}"


def write_results(rows, path):
    """Write ``rows`` as CSV (atomically), columns in :data:`RESULT_COLUMNS` order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buffer.getvalue())
