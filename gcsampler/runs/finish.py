"""After G&C: the reference solutions and the gradient-descent baseline of factorization runs.

One path for a single run and for a sweep's cells: :func:`finish` adds the minimum
nuclear- and Frobenius-norm interpolants' losses to each summary, runs GD for the runs
that ask for it and do not have it yet (runs that share everything a GD program depends
on but the problem and seed train together, vmapped), saves ``gd.npz`` and writes
``summary.json``. The summary's ``completed`` field records which of these parts it
holds, so a run stopped between them knows exactly what it lacks (:func:`missing`).
"""

import dataclasses
import math
import pathlib
import time
from typing import NamedTuple

import numpy as np

from gcsampler.factorization import gd, interpolants
from gcsampler.runs import files, record, summary as schema
from gcsampler.runs.config import RunConfig

GD_FILE = "gd.npz"
# The settings a resumed run may change until GD has run.
GD_FLAGS = tuple(f.name for f in dataclasses.fields(RunConfig)
                 if f.name == "gd" or f.name.startswith("gd_"))
# The settings a GD result depends on: runs that agree on them have the same GD result.
GD_DEPENDS_ON = ("task", "rows", "cols", "rank", "gt_norm", "measurements", "problem_seed",
                 "depth", "width", "activation", "leaky_slope", "seed", "gd_optimizer", "gd_lr",
                 "gd_momentum", "gd_steps", "gd_init_scale", "gd_runs", "gd_log_every")
# ... and what one compiled program depends on: runs differing only in their problem and
# seed train together.
GD_PROGRAM = tuple(name for name in GD_DEPENDS_ON if name not in ("problem_seed", "seed"))
GD_FIELDS = ("gd_gen_loss", "gd_gen_loss_runs", "gd_train_loss", "gd_train_loss_runs",
             "gd_fitted", "gd_fitted_fraction", "gd_seconds")


class Finished(NamedTuple):
    """A run whose G&C has finished: its config, pieces and summary (completed in place)."""

    cfg: RunConfig
    pieces: object
    summary: dict


# How the parts after G&C are named in messages.
PART_WORDS = {"references": "the reference solutions' losses", "gd": "GD"}
# The field that shows a part in a summary written before ``completed`` recorded it.
_SHOWN_BY = {"references": "min_nuclear_gen_loss", "gd": "gd_gen_loss_runs"}


def completed(summary):
    """The parts after G&C (:data:`~gcsampler.runs.summary.PARTS`) that ``summary`` (None:
    none yet) holds: as its ``completed`` field records them, or, until it does, as its
    fields show them."""
    if summary is None:
        return ()
    if summary.get("completed") is not None:
        return tuple(summary["completed"])
    return tuple(part for part in schema.PARTS if summary.get(_SHOWN_BY[part]) is not None)


def missing(summary, gd):
    """The parts after G&C a run asks for (GD only if ``gd``) and its ``summary`` lacks."""
    return tuple(part for part in schema.PARTS
                 if part not in completed(summary) and (part != "gd" or gd))


def in_words(parts):
    """'the reference solutions' losses and GD' for ``parts``."""
    return " and ".join(PART_WORDS[part] for part in parts)


def _complete_part(summary, part):
    """Record in ``summary`` that it holds ``part`` (its fields are in it)."""
    summary["completed"] = [p for p in schema.PARTS if p == part or p in completed(summary)]


def gd_ran(summary):
    """Whether ``summary`` holds GD results."""
    return "gd" in completed(summary)


def carried(previous):
    """The GD fields a run extended to more draws keeps (it ran GD already)."""
    if not gd_ran(previous):
        return {}
    return {**{k: previous[k] for k in GD_FIELDS if k in previous}, "completed": ["gd"]}


def finish(runs, note, label=None, done=None):
    """Complete the summaries of ``runs`` (:class:`Finished`): references, GD where asked
    for and missing, ``gd.npz`` and ``summary.json``. ``note(text)`` shows what GD does;
    ``label`` names the runs in it (a sweep's value). ``done`` (GD key -> (result,
    seconds)) reuses GD results of earlier runs, which then cost 0 seconds here.
    """
    done = {} if done is None else done
    for run in runs:
        run.summary.update(interpolants.reference_losses(run.pieces.problem))
        _complete_part(run.summary, "references")
    todo = [run for run in runs if run.cfg.gd and not gd_ran(run.summary)]
    fresh = [run for run in todo if _gd_key(run.cfg) not in done]
    groups = {}
    for run in fresh:
        groups.setdefault((tuple(getattr(run.cfg, n) for n in GD_PROGRAM), run.pieces.model),
                          []).append(run)
    for group in groups.values():
        cfg = group[0].cfg
        note(f"gcsampler: GD ({cfg.gd_optimizer}, lr {cfg.gd_lr:g}, {cfg.gd_runs} runs x "
             f"{cfg.gd_steps:,} steps)..." if label is None else
             f"gcsampler sweep: GD for {label}: {len(group)} seed{'s' if len(group) > 1 else ''}"
             f" x {cfg.gd_runs} run(s) x {cfg.gd_steps:,} steps ({cfg.gd_optimizer}, lr "
             f"{cfg.gd_lr:g})")
        began = time.perf_counter()
        curves = gd.gd_train_many([run.pieces.problem for run in group], group[0].pieces.model,
                               cfg.optimizer(), seed=[run.cfg.seed for run in group],
                               runs=cfg.gd_runs, steps=cfg.gd_steps,
                               init_scale=cfg.gd_init_scale, log_every=cfg.gd_log_every)
        seconds = (time.perf_counter() - began) / len(group)
        done.update((_gd_key(run.cfg), (result, seconds)) for run, result in zip(group, curves))
    if todo and not fresh and label is not None:
        note(f"gcsampler sweep: GD for {label}: same as an earlier value, reused")
    for run in todo:
        result, seconds = done[_gd_key(run.cfg)]
        add_gd(run.summary, result, seconds if run in fresh else 0.0)
    for run in runs:
        files.write_json(pathlib.Path(run.summary["run_dir"]) / record.SUMMARY_FILE,
                         schema.complete(run.summary))


def _gd_key(cfg):
    return tuple(getattr(cfg, name) for name in GD_DEPENDS_ON)


def add_gd(summary, curves, seconds):
    """Save one run's GD ``curves`` as ``gd.npz`` and add their summary fields."""
    files.save_arrays(pathlib.Path(summary["run_dir"]) / GD_FILE, **curves._asdict())
    finite = np.isfinite(curves.final_gen_loss)
    summary.update({
        "gd_gen_loss": float(np.mean(curves.final_gen_loss)) if finite.all() else math.nan,
        "gd_gen_loss_runs": curves.final_gen_loss.tolist(),
        "gd_train_loss": float(np.mean(curves.final_train_loss)),
        "gd_train_loss_runs": curves.final_train_loss.tolist(),
        **gd_verdict(curves.final_train_loss, summary["eps"]),
        "gd_seconds": seconds,
    })
    _complete_part(summary, "gd")


def gd_verdict(final_train_losses, eps):
    """``gd_fitted`` (every run's final train loss below ``eps``) and the fitted fraction.

    A run that did not fit ends near its initialization, so its gen loss says nothing
    about how GD generalizes: tables and figures mark it.
    """
    fitted = np.asarray(final_train_losses) < eps  # NaN (diverged) compares False
    return {"gd_fitted": bool(fitted.all()), "gd_fitted_fraction": float(fitted.mean())}


def with_verdict(summary, run_dir):
    """``summary`` with GD's fit verdict, read from ``gd.npz`` for runs made before
    summaries recorded it."""
    if not gd_ran(summary) or summary.get("gd_fitted") is not None:
        return summary
    path = pathlib.Path(run_dir) / GD_FILE
    if not path.is_file():
        return summary
    final_train_loss = files.load_arrays(path)["final_train_loss"]
    return {**summary, "gd_train_loss_runs": final_train_loss.tolist(),
            **gd_verdict(final_train_loss, summary["eps"])}
