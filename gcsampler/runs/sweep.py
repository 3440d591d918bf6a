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

A stopped sweep continues with :func:`run_sweep` (``resume=True``) and the spec its record
describes (:func:`spec_from_record`), with as many seeds or more: finished cells are kept,
a cell stopped part-way continues from its checkpoint, and the missing cells run, each with
the G&C results of a sweep made without a stop (each cell's are a function of its settings).

Cells may use custom pieces: a prior, model or problem given to :func:`run` as an
object, or as a function of the cell's RunConfig that makes one. The result rows are
:mod:`.sweep_results`'.
"""

import dataclasses
import io
import json
import math
import pathlib
import sys
import time

from gcsampler.core import progress
from gcsampler.runs import (checkpoint, config, files, finish, pieces as pieces_lib, record,
                            runner, sweep_results)
from gcsampler.runs.methods import METHODS

SWEEP_FILE = sweep_results.SWEEP_FILE
# Settings a sweep controls itself: the seeds come from --seeds.
NOT_SWEEPABLE = ("seed", "problem_seed")
# What a resumed sweep keeps from the sweep it continues (its seeds may grow).
DEFINITION = ("axis", "values", "settings", "per_value", "overrides", "scale", "preset", "title")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs.

    Attributes:
      axis: the :class:`~gcsampler.runs.config.RunConfig` field that is varied.
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
    """One (value, seed) of a sweep, with its pieces; ``label`` is ``AXIS=VALUE``."""

    value: object
    seed: int
    label: str
    cfg: config.RunConfig
    pieces: pieces_lib.Pieces
    objects: dict = dataclasses.field(default_factory=dict)  # pieces given as objects

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


def expand(spec, problem=None, model=None, prior=None):
    """The sweep's cells in run order (values outer, seeds inner), each config validated
    and its pieces built (``problem``, ``model``, ``prior``: objects, or functions of a
    cell's RunConfig that make them, in place of those its settings name).

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
                cfg, objects = pieces_lib.with_objects(
                    cfg, *(_made(given, cfg) for given in (problem, model, prior)))
                built = runner.prepare(cfg, objects, tuple(objects))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{spec.axis}={value}: {err}") from None
            cells.append(Cell(value, seed, f"{spec.axis}={value}", cfg, built, objects))
    return cells


def _made(given, cfg):
    """``given`` itself, or what it makes for ``cfg`` if it is a function."""
    return given(cfg) if callable(given) else given


def spec_from_record(sweep_record, seeds=None):
    """The :class:`SweepSpec` a sweep directory's record (``sweep.json``) describes, with
    ``seeds`` seeds (None: as many as it has; never fewer). ValueError if ``seeds`` is
    fewer."""
    seeds = sweep_record["seeds"] if seeds is None else seeds
    _check_seeds(sweep_record, seeds)
    return SweepSpec(axis=sweep_record["axis"], values=tuple(sweep_record["values"]),
                     seeds=seeds, settings=sweep_record["settings"],
                     per_value={value: settings for value, settings in sweep_record["per_value"]},
                     overrides=sweep_record["overrides"], scale=sweep_record["scale"],
                     preset=sweep_record["preset"], title=sweep_record["title"])


def run_sweep(spec, sweep_dir, stream=None, *, problem=None, model=None, prior=None,
              resume=False):
    """Run every cell of ``spec`` into ``sweep_dir`` (which must not exist or be empty);
    ``problem``, ``model``, ``prior`` as for :func:`expand`. With ``resume``, continue
    the sweep in ``sweep_dir`` instead (``spec``: its :func:`spec_from_record`, perhaps
    with more seeds): finished cells are kept, stopped ones continue, missing ones run.

    G&C runs cell by cell with one progress display for the whole sweep; after the
    seeds of a value, their GD runs go through one vmapped program. ``results.csv``
    is rewritten after each value, so a stopped sweep keeps what it finished.
    ``sweep.json`` records each session's wall time. Returns the result rows.
    """
    stream = stream if stream is not None else sys.stderr
    began = time.monotonic()
    cells = expand(spec, problem, model, prior)
    sweep_record = _record(spec, cells)
    if resume:
        sweep_dir = pathlib.Path(sweep_dir)
        previous = files.read_json(sweep_dir / SWEEP_FILE)
        _check_continues(previous, sweep_record, sweep_dir)
        sessions = _sessions(previous)
    else:
        sweep_dir, sessions = files.create_run_dir(sweep_dir), []

    def write_record(**more):
        files.write_json(sweep_dir / SWEEP_FILE, {
            **sweep_record, "sessions": sessions + [time.monotonic() - began], **more})

    write_record()
    display = progress.SweepProgress(sum(c.cfg.samples for c in cells), len(cells), stream)
    rows, gd_results = [], {}
    for first in range(0, len(cells), spec.seeds):
        group = cells[first:first + spec.seeds]
        finished = []
        for cell in group:
            try:
                run, found = _gnc(cell, sweep_dir / "cells" / cell.name, display)
            except checkpoint.Interrupted as stop:   # a cell's message would name the cell
                write_record()
                raise checkpoint.Interrupted(
                    f"stopped by a signal in {cell.name} (its checkpoint is saved); continue "
                    f"the sweep with `gcsampler sweep --resume {sweep_dir}`", stop.signal) from None
            (display.skip_cell if found else display.finish_cell)(cell.cfg.samples)
            finished.append(run)
        finish.finish([run for run in finished if finish.missing(run.summary, run.cfg.gd)],
                      note=display.note, label=group[0].label, done=gd_results)
        rows += [sweep_results.result_row(run.cfg, run.summary, spec.scale, f"cells/{cell.name}")
                 for cell, run in zip(group, finished)]
        sweep_results.write_results(sweep_dir, rows)
        write_record()
    device = files.read_json(sweep_dir / "cells" / cells[0].name / record.CONFIG_FILE)
    wall = sum(sessions) + time.monotonic() - began
    write_record(finished={"wall_seconds": wall,
                           "hardware": f"{device['resolved']['devices']} x "
                                       f"{device['device_kind']}"})
    return rows


def _gnc(cell, cell_dir, display):
    """``(run, found)``: the :class:`~gcsampler.runs.finish.Finished` G&C of one cell, and
    whether it was found finished. A cell without a run directory runs; a stopped one
    continues from its checkpoint; what a finished one lacks after G&C (the references,
    GD) is left to :func:`~gcsampler.runs.finish.finish`."""
    method = METHODS[cell.cfg.method]
    if not (cell_dir / record.CONFIG_FILE).is_file():
        summary = method.start(cell.cfg, cell.pieces, cell_dir, stream=_Quiet(),
                               checkpoint_every=checkpoint.DEFAULT_EVERY,
                               display=method.display(cell.cfg, display, cell.name))
        return finish.Finished(cell.cfg, cell.pieces, summary), False
    try:
        resumption, pieces = runner.prepare_resume(cell_dir, {}, cell.objects)
    except ValueError as err:
        raise files.RunDirError(f"cannot continue {cell_dir}: {err}") from None
    if resumption.gnc_done:
        return finish.Finished(resumption.cfg, pieces,
                               {**resumption.previous, "run_dir": str(cell_dir)}), True
    display.note(f"gcsampler sweep: {cell.name} continues from its checkpoint")
    summary = method.resume(resumption, pieces, stream=display.stream,   # its own progress
                            checkpoint_every=checkpoint.DEFAULT_EVERY)
    return finish.Finished(resumption.cfg, pieces, summary), False


def _check_seeds(previous, seeds):
    """ValueError unless ``seeds`` is at least the seeds of the sweep recorded in
    ``previous``."""
    if not isinstance(seeds, int) or seeds < previous["seeds"]:
        raise ValueError(f"--seeds must be at least the {previous['seeds']} the sweep was made "
                         f"with (a resumed sweep can only add seeds), got {seeds!r}")


def _check_continues(previous, sweep_record, sweep_dir):
    """ValueError unless ``sweep_record`` continues the sweep recorded in ``previous``."""
    _check_seeds(previous, sweep_record["seeds"])
    changed = [name for name in DEFINITION
               if json.loads(json.dumps(sweep_record[name])) != previous.get(name)]
    if changed:
        raise ValueError(f"{sweep_dir} is a sweep of other {', '.join(changed)}: a resumed "
                         f"sweep keeps its definition, only its seeds may grow")


def _sessions(previous):
    """The wall seconds of the earlier sessions of a sweep, from its record (a record
    written before sessions were kept has its finished sweep's time, or nothing)."""
    if "sessions" in previous:
        return list(previous["sessions"])
    return [previous["finished"]["wall_seconds"]] if "finished" in previous else []


class _Quiet(io.StringIO):
    """Swallows the per-run header line: the sweep shows its own progress."""


def _record(spec, cells):
    return {
        "axis": spec.axis, "values": list(spec.values), "seeds": spec.seeds,
        "preset": spec.preset, "title": spec.title, "scale": spec.scale,
        "settings": spec.settings, "overrides": spec.overrides,
        "per_value": [[value, settings] for value, settings in spec.per_value.items()],
        "cells": [{"value": c.value, "seed": c.seed, "run_dir": f"cells/{c.name}"} for c in cells],
    }
