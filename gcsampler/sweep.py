"""Sweeps: one setting varied over a list of values, several seeds each, G&C and GD per cell.

Each (value, seed) cell is a fresh problem (problem seed = seed, as in Alexander et
al. 2025), a G&C run with that seed, GD and the reference solutions, written as an
ordinary run directory. The GD runs of all seeds of one value share one compiled,
vmapped program. A sweep directory holds::

    sweep.json     the sweep's definition and the cells' run directories
    results.csv    one row per cell: every setting and every result
    cells/AXIS=VALUE/seed=S/   one run directory per cell
    gen_loss.png/.pdf, acceptance_rate.png/.pdf   median over seeds, inter-quartile bars
    gen_loss_vs_eps.png/.pdf   (--method splitting) log p and the G&C gen loss against
                               eps, one line per value (:func:`curves`)

With ``--method splitting`` a cell's acceptance rate is its estimate of p, and
``log_p`` with its interval is the splitting estimate (for rejection cells, the log
of the acceptance rate and of its Wilson interval).
"""

import csv
import dataclasses
import io
import math
import pathlib
import sys
import time

from gcsampler import config, gd, progress, runner, stats, store

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.csv"
# Settings a sweep controls itself: the seeds come from --seeds.
NOT_SWEEPABLE = ("seed", "problem_seed")

RESULT_COLUMNS = (
    "draws", "accepted", "acceptance_rate", "acceptance_ci95_lo", "acceptance_ci95_hi",
    "log_p", "log_p_ci95_lo", "log_p_ci95_hi",
    "gnc_gen_loss", "gnc_gen_loss_stderr", "prior_gen_loss", "gd_gen_loss", "gd_train_loss",
    "min_nuclear_gen_loss", "min_frobenius_gen_loss", "nonfinite", "sampler", "samples_scale",
    "gnc_seconds", "gd_seconds", "wall_seconds", "run_dir",
)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs.

    Attributes:
      axis: the :class:`~gcsampler.config.RunConfig` field that is varied.
      values: its values, in plotting order.
      seeds: number of seeds; cell seeds are 0 .. seeds-1.
      settings: RunConfig fields shared by all cells (the paper's samples, before scaling).
      per_value: value -> settings that depend on it.
      overrides: settings given explicitly by the user; they win over the two above.
      scale: factor applied to the number of draws (< 1 for a quick look).
      preset: the preset's name, if the sweep is one.
      title: a one-line description for figures.
    """

    axis: str
    values: tuple
    seeds: int
    settings: dict
    per_value: dict = dataclasses.field(default_factory=dict)
    overrides: dict = dataclasses.field(default_factory=dict)
    scale: float = 1.0
    preset: str | None = None
    title: str = ""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (value, seed) of a sweep; ``label`` is ``AXIS=VALUE``."""

    value: object
    seed: int
    label: str
    cfg: config.RunConfig

    @property
    def name(self):
        """The cell's run directory, relative to ``cells/``."""
        return f"{self.label}/seed={self.seed}"


def field_types():
    """RunConfig field name -> the Python type of its values."""
    kinds = {}
    for field in dataclasses.fields(config.RunConfig):
        default = field.default
        kinds[field.name] = int if field.name == "batch" else type(default)
    return kinds


def parse_values(axis, text):
    """The values of ``--vary AXIS=V1,V2,...`` typed like the setting; ValueError if bad."""
    kinds = field_types()
    check_axis(axis)
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"--vary {axis}= needs a comma-separated list of values, got {text!r}")
    values = tuple(_parse_value(axis, kinds[axis], item) for item in items)
    if len(set(values)) != len(values):
        raise ValueError(f"--vary {axis}= lists a value twice: {text!r}")
    return values


def check_axis(axis):
    """ValueError unless ``axis`` is a setting a sweep may vary."""
    kinds = field_types()
    if axis not in kinds or axis in NOT_SWEEPABLE:
        allowed = ", ".join(k for k in kinds if k not in NOT_SWEEPABLE)
        raise ValueError(f"--vary must name a setting ({allowed}); seeds come from --seeds, "
                         f"got {axis!r}")


def _parse_value(axis, kind, item):
    if kind is bool:
        lowered = item.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise ValueError(f"--vary {axis}= takes true or false, got {item!r}")
        return lowered in ("true", "1")
    if kind is int:
        try:
            number = float(item)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number == int(number)):
            raise ValueError(f"--vary {axis}= takes integers (1e8 is fine), got {item!r}")
        return int(number)
    if kind is float:
        try:
            return float(item)
        except ValueError:
            raise ValueError(f"--vary {axis}= takes numbers, got {item!r}") from None
    return item


def expand(spec):
    """The sweep's cells in run order (values outer, seeds inner), each config validated.

    Raises ValueError naming the value and the bad setting if any cell is invalid,
    so nothing runs (or is written) unless every cell can.
    """
    check_axis(spec.axis)
    if not isinstance(spec.seeds, int) or spec.seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {spec.seeds!r}")
    if not (math.isfinite(spec.scale) and 0 < spec.scale <= 1):
        raise ValueError(f"--scale must be in (0, 1], got {spec.scale!r}")
    cells = []
    for value in spec.values:
        settings = {**spec.settings, **spec.per_value.get(value, {}), **spec.overrides,
                    spec.axis: value}
        settings["samples"] = max(1, round(settings.get("samples", config.RunConfig.samples)
                                           * spec.scale))
        for seed in range(spec.seeds):
            try:
                cfg = config.RunConfig(**{**settings, "seed": seed, "problem_seed": seed})
                cfg.validate()
            except (TypeError, ValueError) as err:
                raise ValueError(f"{spec.axis}={value}: {err}") from None
            cells.append(Cell(value, seed, f"{spec.axis}={value}", cfg))
    return cells


def run(spec, sweep_dir, stream=None):
    """Run every cell of ``spec`` into ``sweep_dir`` (which must not exist or be empty).

    G&C runs cell by cell with one progress display for the whole sweep; after the
    seeds of a value, their GD runs go through one vmapped program. ``results.csv``
    is rewritten after each value, so a stopped sweep keeps what it finished.
    Returns the result rows.
    """
    stream = stream if stream is not None else sys.stderr
    began = time.monotonic()
    cells = expand(spec)
    sweep_dir = store.create_run_dir(sweep_dir)
    store.write_json(sweep_dir / SWEEP_FILE, _record(spec, cells))
    display = progress.SweepProgress(sum(c.cfg.samples for c in cells), len(cells), stream)
    rows, gd_results = [], {}
    for first in range(0, len(cells), spec.seeds):
        group = cells[first:first + spec.seeds]
        summaries = []
        for cell in group:
            summary = runner.run_gnc(cell.cfg, sweep_dir / "cells" / cell.name,
                                     display.for_cell(cell.name, cell.cfg), _Quiet())
            display.finish_cell(cell.cfg.samples)
            runner.add_references(summary, cell.cfg.problem())
            summaries.append(summary)
        if group[0].cfg.gd:
            _run_gd(group, summaries, display, gd_results)
        for cell, summary in zip(group, summaries):
            store.write_json(pathlib.Path(summary["run_dir"]) / "summary.json", summary)
            rows.append(result_row(cell.cfg, summary, spec.scale, f"cells/{cell.name}"))
        write_results(sweep_dir, rows)
    device = store.read_json(sweep_dir / "cells" / cells[0].name / "config.json")
    record = store.read_json(sweep_dir / SWEEP_FILE)
    record["finished"] = {"wall_seconds": time.monotonic() - began,
                          "hardware": f"{device['resolved']['devices']} x {device['device_kind']}"}
    store.write_json(sweep_dir / SWEEP_FILE, record)
    return rows


class _Quiet(io.StringIO):
    """Swallows the per-run header line: the sweep shows its own progress."""


# The settings a cell's GD result depends on: cells that agree on them share one GD run.
GD_SETTINGS = ("task", "rows", "cols", "rank", "gt_norm", "measurements", "problem_seed", "depth",
               "width", "activation", "leaky_slope", "seed", "gd_optimizer", "gd_lr",
               "gd_momentum", "gd_steps", "gd_init_scale", "gd_runs", "gd_log_every")


def _gd_key(cfg):
    return tuple(getattr(cfg, name) for name in GD_SETTINGS)


def _run_gd(group, summaries, display, done):
    """GD of one value's seeds in one vmapped program; adds each cell's results to its summary.

    ``done`` maps :func:`_gd_key` to (result, seconds) of the cells trained so far: a value
    that leaves GD unchanged (eps, the prior, the number of draws, ...) reuses them, at a
    cost of 0 seconds.
    """
    reused = {_gd_key(c.cfg) for c in group} & set(done)
    todo = [c for c in group if _gd_key(c.cfg) not in done]
    cfg = group[0].cfg
    if todo:
        display.note(f"gcsampler sweep: GD for {group[0].label}: {len(todo)} seeds x "
                     f"{cfg.gd_runs} run(s) x {cfg.gd_steps:,} steps ({cfg.gd_optimizer}, "
                     f"lr {cfg.gd_lr:g})")
        start = time.perf_counter()
        curves = gd.train_many([c.cfg.problem() for c in todo], cfg.model(), cfg.optimizer(),
                               seed=[c.cfg.seed for c in todo], runs=cfg.gd_runs,
                               steps=cfg.gd_steps, init_scale=cfg.gd_init_scale,
                               log_every=cfg.gd_log_every)
        seconds = (time.perf_counter() - start) / len(todo)
        done.update((_gd_key(c.cfg), (result, seconds)) for c, result in zip(todo, curves))
    else:
        display.note(f"gcsampler sweep: GD for {group[0].label}: same as an earlier value, reused")
    for cell, summary in zip(group, summaries):
        result, seconds = done[_gd_key(cell.cfg)]
        runner.add_gd(summary, result, 0.0 if _gd_key(cell.cfg) in reused else seconds)


def result_row(cfg, summary, scale, run_dir):
    """The ``results.csv`` row of one cell: every setting, then every result.

    ``run_dir`` is the cell's directory relative to the sweep directory.
    """
    lo, hi = summary["acceptance_ci95"]
    log_p = summary.get("log_p_ci95", [_log(lo), _log(hi)])
    results = {
        "draws": summary["draws"], "accepted": summary["accepted"],
        "acceptance_rate": summary["acceptance_rate"],
        "acceptance_ci95_lo": lo, "acceptance_ci95_hi": hi,
        "log_p": summary.get("log_p", _log(summary["acceptance_rate"])),
        "log_p_ci95_lo": log_p[0], "log_p_ci95_hi": log_p[1],
        "gnc_gen_loss": summary["gnc_gen_loss_mean"],
        "gnc_gen_loss_stderr": summary["gnc_gen_loss_stderr"],
        "prior_gen_loss": summary["prior_gen_loss_mean"],
        "gd_gen_loss": summary.get("gd_gen_loss", math.nan),
        "gd_train_loss": summary.get("gd_train_loss", math.nan),
        "min_nuclear_gen_loss": summary.get("min_nuclear_gen_loss", math.nan),
        "min_frobenius_gen_loss": summary.get("min_frobenius_gen_loss", math.nan),
        "nonfinite": summary["nonfinite"], "sampler": summary["sampler"],
        "samples_scale": scale, "gnc_seconds": summary["seconds"],
        "gd_seconds": summary.get("gd_seconds", 0.0),
        "run_dir": run_dir,
    }
    results["wall_seconds"] = results["gnc_seconds"] + results["gd_seconds"]
    return {**dataclasses.asdict(cfg), **_none_to_nan(results)}


def _log(value):
    return math.log(value) if value is not None and value > 0 else math.nan


def _none_to_nan(values):
    return {k: math.nan if v is None else v for k, v in values.items()}


def write_results(sweep_dir, rows):
    """Write ``results.csv`` (atomically): the result columns first, then the settings."""
    settings = [f.name for f in dataclasses.fields(config.RunConfig)]
    columns = [*RESULT_COLUMNS, *settings]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    store.write_text(pathlib.Path(sweep_dir) / RESULTS_FILE, buffer.getvalue())


def load(sweep_dir, eps=None):
    """``(record, rows)`` of a sweep directory, rows rebuilt from the cells' run directories.

    Cells that did not finish G&C are left out. With ``eps``, each cell's G&C
    results are re-thresholded (:func:`gcsampler.runner.rethreshold`): exact from the
    accepted rows at or below the run's eps, from the train-loss bins above it
    (``effective_eps`` then says which bin edge was used).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    if not (sweep_dir / SWEEP_FILE).is_file():
        raise store.RunDirError(f"{sweep_dir} is not a gcsampler sweep directory "
                                f"(no {SWEEP_FILE})")
    record = store.read_json(sweep_dir / SWEEP_FILE)
    rows = []
    try:
        cells, scale = record["cells"], record["scale"]
        for cell in cells:
            cfg, summary = runner.load_run(sweep_dir / cell["run_dir"])
            if summary is None:
                continue
            row = result_row(cfg, summary, scale, cell["run_dir"])
            if eps is not None:
                row.update(_rethresholded(sweep_dir / cell["run_dir"], row["draws"], eps))
            rows.append(row)
    except (KeyError, TypeError) as err:
        raise store.RunDirError(f"{sweep_dir}/{SWEEP_FILE} is not a valid sweep record "
                                f"(bad or missing {err})") from None
    return record, rows


def figure_note(record, rows):
    """A figure's small print: draws per seed (and their scaling), the effective eps of
    re-thresholded cells, and the hardware and wall time of a finished sweep."""
    draws = sorted({row["samples"] for row in rows})
    scale = record["scale"]
    text = f"{', '.join(f'{d:.3g}' for d in draws)} draws per seed"
    if scale < 1:
        text += f" (scaled x{scale:g} from the setting's {draws[-1] / scale:.3g})"
    effective = sorted({row["effective_eps"] for row in rows
                        if math.isfinite(row.get("effective_eps", math.nan))})
    if effective and effective != [rows[0]["eps"]]:
        text += f"; effective eps {', '.join(f'{e:.4g}' for e in effective)} (train-loss bins)"
    if "finished" in record:
        finished = record["finished"]
        text += f"; {finished['hardware']}, {finished['wall_seconds'] / 60:.1f} min"
    return text


def _rethresholded(run_dir, draws, eps):
    result = runner.rethreshold(run_dir, eps)
    if result is not None and "log_p" in result:  # a splitting cell
        lo, hi = result["log_p_ci95"]
        return {"eps": eps, "effective_eps": result["effective_eps"], "accepted": math.nan,
                "acceptance_rate": math.exp(result["log_p"]), "acceptance_ci95_lo": math.exp(lo),
                "acceptance_ci95_hi": math.exp(hi), "log_p": result["log_p"],
                "log_p_ci95_lo": lo, "log_p_ci95_hi": hi,
                "gnc_gen_loss": result["gnc_gen_loss_mean"],
                "gnc_gen_loss_stderr": result["gnc_gen_loss_stderr"]}
    if result is None:
        return {"eps": eps, "effective_eps": math.nan, "accepted": math.nan,
                "acceptance_rate": math.nan,
                "acceptance_ci95_lo": math.nan, "acceptance_ci95_hi": math.nan,
                "gnc_gen_loss": math.nan, "gnc_gen_loss_stderr": math.nan}
    lo, hi = stats.wilson_interval(result["accepted"], draws)
    return {"eps": eps, "effective_eps": result["effective_eps"],
            "accepted": result["accepted"], "acceptance_rate": result["accepted"] / draws,
            "acceptance_ci95_lo": lo, "acceptance_ci95_hi": hi,
            "log_p": _log(result["accepted"] / draws), "log_p_ci95_lo": _log(lo),
            "log_p_ci95_hi": _log(hi),
            "gnc_gen_loss": result["gnc_gen_loss_mean"],
            "gnc_gen_loss_stderr": result["gnc_gen_loss_stderr"]}


def curves(sweep_dir, record):
    """Each swept value's ``curve.csv`` dicts (one per finished splitting cell, in seed
    order), for :func:`gcsampler.plots.plot_curves`; empty for a rejection sweep."""
    from gcsampler import splitting_run

    by_value = {}
    for cell in record["cells"]:
        run_dir = pathlib.Path(sweep_dir) / cell["run_dir"]
        if (run_dir / splitting_run.CURVE_FILE).is_file():
            by_value.setdefault(cell["value"], []).append(splitting_run.read_curve(run_dir))
    return by_value


def _record(spec, cells):
    return {
        "axis": spec.axis, "values": list(spec.values), "seeds": spec.seeds,
        "preset": spec.preset, "title": spec.title, "scale": spec.scale,
        "settings": spec.settings, "overrides": spec.overrides,
        "per_value": [[value, settings] for value, settings in spec.per_value.items()],
        "cells": [{"value": c.value, "seed": c.seed, "run_dir": f"cells/{c.name}"} for c in cells],
    }
