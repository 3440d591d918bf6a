"""Rejection G&C into a run directory: any task, checkpointed, over several processes.

Run directory of a rejection run::

    config.json        how it was made (see gcsampler.runs.record)
    checkpoint.npz     where G&C continues after a stop (see gcsampler.runs.checkpoint)
    summary.json       the results (written after G&C; a factorization run's is completed
                       with the reference solutions and GD by gcsampler.runs.finish)
    accepted/          one row per accepted draw, in index order (gcsampler.runs.accepted)
    statistics.npz     what the task keeps of all draws (a threshold task: the train-loss
                       bins and the 2-D loss histogram)

A run made by several processes (:mod:`gcsampler.runs.distributed`) has one
``process-<p>/`` directory per process instead of ``checkpoint.npz`` and ``accepted/``:
each process draws its own range of draws, writes its rows and checkpoints there, and
process 0 writes the other files, with the totals of all of them combined (the same
bits as one process drawing everything).

:func:`run_task` and :func:`continue_task` do this for any
:class:`~gcsampler.core.loop.Task`; :data:`METHOD` is the ``rejection`` method of
factorization runs built on them.
"""

import dataclasses
import pathlib
from typing import NamedTuple

from gcsampler.core import devices as devices_lib
from gcsampler.core import loop, progress
from gcsampler.factorization import samplers
from gcsampler.factorization.task import factorization_task
from gcsampler.runs import (accepted, accepted_metadata, checkpoint, distributed, files, record,
                            summary as schema, tables)
from gcsampler.runs.method import Method
from gcsampler.threshold import statistics

STATISTICS_FILE = "statistics.npz"


class LoopSettings(NamedTuple):
    """How a task's draws are made: the loop's settings (a RunConfig has them too)."""

    samples: int
    seed: int = 0
    batch: int | None = None
    devices: str = "all"
    log2_block: int = devices_lib.DEFAULT_LOG2_BLOCK

    @property
    def device_count(self):
        return "all" if self.devices == "all" else int(self.devices)


def loop_settings(settings):
    """The :class:`LoopSettings` of anything that has them (a RunConfig, a dict)."""
    get = settings.get if isinstance(settings, dict) else lambda name: getattr(settings, name)
    return LoopSettings(*(get(name) for name in LoopSettings._fields))


def blocks_of(settings, team):
    """The blocks process ``team.process`` draws."""
    return devices_lib.process_blocks(settings.samples, settings.log2_block, team.process,
                                      team.processes)


def share_of(settings, team):
    """The global indices of the draws process ``team.process`` makes."""
    return devices_lib.draw_indices(blocks_of(settings, team), settings.samples,
                                    settings.log2_block)


def plan(task, settings, team):
    """The schedule of this process's draws."""
    return loop.plan(task, max(len(share_of(settings, team)), 1), batch=settings.batch,
                     devices=settings.device_count, log2_block=settings.log2_block)


def _full_config(config, team, schedule):
    """``config.json``: ``config``, the processes, the schedule, the versions and hardware."""
    return {**config, "processes": team.processes,
            "resolved": {"batch": schedule.batch, "blocks_per_step": schedule.blocks,
                         "draws_at_once": schedule.chunk, "most_steps_per_call": schedule.steps,
                         "devices": len(schedule.devices), "block_size": schedule.block_size},
            **record.versions(schedule.devices)}


def display(settings, team, stream, done_before=0):
    """The progress display of this process's draws."""
    prefix = "G&C" if team.processes == 1 else f"G&C process {team.process}/{team.processes}"
    return progress.Progress(len(share_of(settings, team)), stream, done_before=done_before,
                             prefix=prefix)


def run_task(task, run_dir, settings, config, *, stream, on_progress, checkpoint_every,
             resume_hint, finalize=dict):
    """G&C of ``task`` into the new directory ``run_dir`` (this process's share of it in a
    multi-process run): ``config.json`` (``config`` and the schedule), checkpoints, the
    accepted rows, then (process 0) the statistics and summary of all processes.

    ``resume_hint`` is the command that continues the run, for messages; ``finalize``
    makes the summary's final form (e.g. :func:`gcsampler.runs.summary.complete`). Returns
    the summary (written to ``summary.json``, with ``run_dir``).
    """
    team = distributed.team()
    run_dir = pathlib.Path(run_dir)
    schedule = plan(task, settings, team)

    def create():
        if team.leader:
            files.create_run_dir(run_dir)
            files.write_json(run_dir / record.CONFIG_FILE, _full_config(config, team, schedule))

    distributed.together(team, create)
    with distributed.claim(team, run_dir):
        stream.write(f"gcsampler: G&C with {settings.samples:,} draws{_share_text(settings, team)}"
                     f" {_setup(task, schedule)}; run directory {run_dir}\n")
        return _draw(task, run_dir, settings, team, on_progress, checkpoint_every, resume_hint,
                     finalize)


def continue_task(task, run_dir, settings, config, *, stream, checkpoint_every, resume_hint,
                  carried=None, previous=None, finalize=dict):
    """Continue G&C of ``task`` in ``run_dir`` from this process's last checkpoint (the
    directory's ``config.json`` is rewritten as ``config``, with this schedule), with the
    same bits as a run without a stop. ``carried`` summary fields are kept; ``previous``
    is the record the run had (its JAX version and backend are compared); the rest as
    for :func:`run_task`.
    """
    team = distributed.team()
    run_dir = pathlib.Path(run_dir)
    try:
        claim = distributed.claim(team, run_dir)
    except files.WriteError as err:
        raise _kept(err, resume_hint, last_checkpoint(task, run_dir, settings, team)) from None
    with claim:
        start = last_checkpoint(task, run_dir, settings, team)
        checked = None
        if start and start.accepted:  # damaged rows are refused before anything is written
            checked = accepted.check_part(files.part_dir(run_dir, team.process, team.processes),
                                          tuple(task.row_layout))
        schedule = plan(task, settings, team)

        try:
            distributed.rewrite_config(team, run_dir, _full_config(config, team, schedule))
        except files.WriteError as err:
            raise _kept(err, resume_hint, start) from None
        ran_with = ((previous or {}).get("jax_version"), (previous or {}).get("backend"))
        now = record.versions(schedule.devices)
        if previous and ran_with != (now["jax_version"], now["backend"]):
            stream.write(f"gcsampler: note: {run_dir} ran with JAX {ran_with[0]} on "
                         f"{ran_with[1]} so far; statistics are bit-identical only on one "
                         f"backend and JAX version\n")
        done_before = start.draws if start else 0
        stream.write(f"gcsampler: resuming {run_dir} at draw "
                     f"{share_of(settings, team).start + done_before:,} of {settings.samples:,}"
                     f"{_share_text(settings, team)} {_setup(task, schedule)}\n")
        return _draw(task, run_dir, settings, team,
                     display(settings, team, stream, done_before=done_before), checkpoint_every,
                     resume_hint, finalize, start=start, keep=start.accepted if start else 0,
                     checked=checked, carried=carried)


def last_checkpoint(task, run_dir, settings, team):
    """The last checkpoint of process ``team.process``'s share of the run (None: none yet)."""
    part = files.part_dir(run_dir, team.process, team.processes)
    return checkpoint.load(part, settings.log2_block, task.new_totals(),
                           blocks_of(settings, team).start)


def _draw(task, run_dir, settings, team, on_progress, checkpoint_every, resume_hint, finalize,
          start=None, keep=None, checked=None, carried=None):
    """G&C of this process's draws into ``run_dir`` from the checkpoint ``start`` (None:
    its first draw); writes checkpoints, then (process 0) the statistics of every
    process combined and the summary (with the ``carried`` fields).

    ``keep`` is None for a new run (the accepted arrays are created) and the rows to
    keep of the existing arrays for a resumed one (``checked``: the manifest they were
    checked against, see :func:`accepted.check_part`). A failure to write (full disk,
    read-only location) is a one-line WriteError that says what the last
    checkpoint keeps.
    """
    part = files.part_dir(run_dir, team.process, team.processes)
    block = 2**settings.log2_block
    saver = None

    def draw():
        nonlocal saver
        blocks = blocks_of(settings, team)
        kept_stop = (start.snapshot.block if start else blocks.start) * block
        try:
            with accepted.AcceptedWriter(part, task.row_layout, keep=keep, draws_stop=kept_stop,
                                         checked=checked,
                                         **_accepted_metadata(task, settings, team)) as writer, \
                    checkpoint.stop_on_signal() as stop_requested:

                def write(last):
                    writer.flush()
                    checkpoint.save(part, last, settings.log2_block)

                def on_snapshot(snapshot):  # the rows so far are the draws below its block
                    writer.mark(snapshot.block * block)
                    saver(snapshot)

                saver = checkpoint.Checkpointer(write, checkpoint_every, start, stop_requested)
                result = loop.guess_and_check(
                    task, samples=settings.samples, seed=settings.seed, batch=settings.batch,
                    devices=settings.device_count, log2_block=settings.log2_block,
                    start=start.snapshot if start else None, blocks=blocks,
                    on_rows=writer.append, on_progress=on_progress, on_snapshot=on_snapshot,
                    stop=stop_requested)
                writer.mark(share_of(settings, team).stop)
                writer.flush()
                saver.save()
        except files.WriteError as err:
            raise _kept(err, resume_hint, saver.last if saver else start) from None
        except loop.Stopped:  # at a snapshot the saver wrote
            raise checkpoint.Interrupted(
                f"stopped by a signal after {saver.last.draws:,} draws of "
                f"{len(share_of(settings, team)):,}{_share_text(settings, team)}, with its "
                f"checkpoint saved; continue with {resume_hint}", stop_requested.signal) from None
        return result

    result = distributed.together(team, draw)
    totals, seconds = distributed.combined(team, result.totals,
                                           (start.seconds if start else 0.0) + result.seconds)
    summary = finalize({**task.summarize(totals, seconds), "method": METHOD.name,
                        "compile_seconds": result.compile_seconds,
                        "run_dir": str(run_dir), "processes": team.processes, **(carried or {})})

    def write():
        if team.leader:
            if task.statistics is not None:
                files.save_arrays(run_dir / STATISTICS_FILE, **task.statistics(totals))
            files.write_json(run_dir / record.SUMMARY_FILE, summary)

    try:
        distributed.together(team, write)
    except files.WriteError as err:
        raise _kept(err, resume_hint, saver.last) from None
    return summary


def _accepted_metadata(task, settings, team):
    """The ``attrs`` and ``meanings`` that describe the run in its ``accepted/`` group (of
    this process's part of it)."""
    describe = task.describe or {}
    attrs = {"method": METHOD.name, "task": describe.get("kind", task.name),
             "seed": settings.seed, "samples": settings.samples, "process": team.process,
             "processes": team.processes,
             **{name: describe[name] for name in ("eps", "sampler") if name in describe}}
    meanings = accepted_metadata.MEANINGS if task.name == "factorization" else None
    return {"attrs": attrs, "meanings": meanings}


def _share_text(settings, team):
    """', process 1 of 2 draws 2,048,000 to 4,095,999' in a multi-process run's header."""
    if team.processes == 1:
        return ""
    share = share_of(settings, team)
    return (f"; process {team.process} of {team.processes} draws {share.start:,} to "
            f"{share.stop - 1:,}")


def _setup(task, schedule):
    """'(wishart sampler) on 1 cpu device(s), batch 135,168' for the header lines."""
    return (f"({task.describe['label']}) on {len(schedule.devices)} "
            f"{schedule.devices[0].platform} device(s), batch {schedule.batch:,}")


def _kept(err, resume_hint, last):
    """``err`` (a failed write) with what the last checkpoint keeps and how to go on."""
    kept = (f"the last checkpoint ({last.draws:,} draws) is kept" if last
            else "no checkpoint was written yet")
    return files.WriteError(f"{err}; {kept}: continue with {resume_hint}")


def unfinished_message(run_dir, samples, processes, resume_hint):
    """Why a rejection run has no results: how far its last checkpoints got, and how to
    continue it."""
    saved = [found for p in range(processes)
             if (found := checkpoint.progress(files.part_dir(run_dir, p, processes)))]
    where = ("it has no checkpoint yet" if not saved else
             f"its last checkpoint{'s' if processes > 1 else ''} cover"
             f"{'' if processes > 1 else 's'} {sum(d for d, _ in saved):,} of "
             f"{samples:,} draws ({sum(r for _, r in saved):,} accepted)")
    on = f" on {processes} processes (--num_processes {processes})" if processes > 1 else ""
    return f"{run_dir} did not finish: {where}; continue it with {resume_hint}{on}"


def rethreshold(run_dir, run_eps, processes, eps):
    """G&C statistics of a finished threshold-task run at another threshold ``eps``.

    At or below the run's eps the stored accepted rows give the exact answer;
    above it, the train-loss bins over all draws do, at the largest bin edge <= eps.
    """
    if eps <= run_eps:
        rows = accepted.read_accepted(run_dir, processes, fields=("train_loss", "gen_loss"))
        return {**statistics.rethreshold_rows(rows["train_loss"], rows["gen_loss"], eps),
                "source": "accepted rows"}
    arrays = files.load_arrays(pathlib.Path(run_dir) / STATISTICS_FILE)
    result = statistics.rethreshold(arrays["train_loss_edges"], arrays["bin_count"],
                                    arrays["bin_gen_sum"], arrays["bin_gen_sumsq"], eps)
    if result is not None:
        result["source"] = "train-loss bins"
    return result


# ------------------------------------------------------- the method of factorization runs


def factorization_config(cfg, pieces, task, run_dir):
    """``config.json`` of a factorization rejection run (the schedule is added)."""
    return {"method": METHOD.name, "settings": dataclasses.asdict(cfg),
            "task": task.describe, "pieces": pieces.record(), "resume": resume_command(run_dir)}


def resume_command(run_dir):
    """The command that continues a factorization run, for messages."""
    return f"`gcsampler run --resume {run_dir}`"


def task_of(cfg, pieces, sampler=None):
    """The factorization task of a run's settings and pieces (``sampler``: as resolved)."""
    return factorization_task(pieces.problem, pieces.model, pieces.prior, eps=cfg.eps,
                              sampler=sampler or cfg.sampler)


def _check(cfg, pieces):
    """ValueError for a sampler that is not exact for the pieces, or a step (of --batch
    draws, or of one draw) that this machine's device memory cannot hold."""
    try:
        samplers.resolve(pieces.model, pieces.prior, cfg.sampler)
    except ValueError:
        allowed = samplers.applicable(pieces.model, pieces.prior)
        raise ValueError(f"--sampler={cfg.sampler} is not exact for this network and prior; "
                         f"use one of: auto, {', '.join(allowed)}") from None
    devices_lib.check_batch(cfg.batch, cfg.samples, task_of(cfg, pieces).bytes_per_draw,
                            log2_block=cfg.log2_block, name="--batch")


def _start(cfg, pieces, run_dir, *, stream, checkpoint_every, display_=None):
    task = task_of(cfg, pieces)
    on_progress = display_ or display(cfg, distributed.team(), stream)
    return run_task(task, run_dir, cfg, factorization_config(cfg, pieces, task, run_dir),
                    stream=stream, on_progress=on_progress, checkpoint_every=checkpoint_every,
                    resume_hint=resume_command(run_dir), finalize=schema.complete)


def _resume(resumption, pieces, *, stream, checkpoint_every):
    r = resumption
    task = task_of(r.cfg, pieces, r.record["task"]["sampler"])
    return continue_task(task, r.run_dir, r.cfg,
                         factorization_config(r.cfg, pieces, task, r.run_dir), stream=stream,
                         checkpoint_every=checkpoint_every, resume_hint=r.record["resume"],
                         carried=r.carried, previous=r.record, finalize=schema.complete)


def _display(cfg, sweep, name):
    del cfg
    return sweep.for_cell(name)


def _effort(scale, rows):
    """'1e+06 draws per seed' (and the scaling, when the sweep scaled them)."""
    draws = sorted({row["samples"] for row in rows})
    text = f"{', '.join(f'{d:.3g}' for d in draws)} draws per seed"
    if scale < 1:
        text += f" (scaled x{scale:g} from the setting's {draws[-1] / scale:.3g})"
    return text


METHOD = Method(
    name="rejection", figure="losses",
    validate=lambda cfg, processes=1: None,
    check=_check,
    start=lambda cfg, pieces, run_dir, *, stream, checkpoint_every, display=None: _start(
        cfg, pieces, run_dir, stream=stream, checkpoint_every=checkpoint_every,
        display_=display),
    resume=_resume,
    finished=lambda settings, summary: summary["draws"] == settings["samples"],
    display=_display,
    rethreshold=lambda run_dir, rec, summary, eps: rethreshold(
        run_dir, rec["task"]["eps"], record.processes(rec), eps),
    unfinished=lambda run_dir, rec: unfinished_message(
        run_dir, rec["settings"]["samples"], record.processes(rec), rec["resume"]),
    table=tables.rejection_table, effort=_effort, redraws=True)
