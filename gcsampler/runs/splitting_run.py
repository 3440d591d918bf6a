"""The ``splitting`` method: multilevel splitting of a factorization into a run directory.

The same run directory as a rejection run (``config.json``, ``summary.json`` with the
log-volume estimate, ``accepted/``), plus the files of :mod:`.splitting_files`. A run
checkpoints at level boundaries every ``--checkpoint_every`` seconds (and before it
stops on SIGINT or SIGTERM); ``gcsampler run --resume`` continues it from there with
the same bits as a run without a stop, on the same number of devices per process.

A run made by P processes (``--num_processes``) runs the p-th contiguous share of the
replicates on process p, with no exchange between levels; each keeps its accepted rows
and checkpoints in ``process-<p>/``, and process 0 combines their results
(:func:`gcsampler.splitting.results.combine`).
"""

import contextlib
import dataclasses
import pathlib

import jax

from gcsampler.factorization.splitting import multilevel_splitting, replicate_devices
from gcsampler.core import progress
from gcsampler.core.loop import Stopped
from gcsampler.runs import (checkpoint, distributed, files, record, splitting_files,
                            summary as schema, tables)
from gcsampler.runs.method import Method
from gcsampler.runs.rejection_run import resume_command
from gcsampler.splitting import estimates
from gcsampler.splitting.results import combine


def replicate_share(replicates, team):
    """The replicates process ``team.process`` runs: a contiguous range, the ranges of
    consecutive processes consecutive, their sizes differing by at most one."""
    if replicates < team.processes:
        raise ValueError(f"--replicates must be at least --num_processes "
                         f"({team.processes}): every process runs whole replicates, got "
                         f"{replicates}")
    size, extra = divmod(replicates, team.processes)
    start = team.process * size + min(team.process, extra)
    return range(start, start + size + (team.process < extra))


def config_record(cfg, pieces, run_dir, processes=1):
    """``config.json`` of a splitting run (made by ``processes`` processes; the devices
    are process 0's)."""
    share = replicate_share(cfg.replicates, distributed.Team(0, processes))
    devices = replicate_devices(len(share), cfg.device_count)
    return {"method": METHOD.name, "settings": dataclasses.asdict(cfg),
            "task": {"kind": "factorization", "label": "multilevel splitting", "eps": cfg.eps},
            "pieces": pieces.record(), "resume": resume_command(run_dir),
            "processes": processes, "resolved": {"devices": len(devices)},
            **record.versions(devices)}


def _share_text(share, team):
    """What the header says of this process's replicates ('' for one process)."""
    if team.processes == 1:
        return ""
    which = (f"replicate {share.start}" if len(share) == 1 else
             f"replicates {share.start} to {share.stop - 1}")
    return f"; process {team.process} of {team.processes} runs {which}"


def _display(cfg, stream, share, team, start=None):
    prefix = ("splitting" if team.processes == 1 else
              f"splitting process {team.process}/{team.processes}")
    return progress.LevelProgress(cfg.eps, cfg.particles, len(share), stream, prefix=prefix,
                                  levels_before=start.level if start else 0,
                                  evaluations=start.evaluations if start else None)


def _start(cfg, pieces, run_dir, *, stream, checkpoint_every, display=None):
    run_dir, team = pathlib.Path(run_dir), distributed.team()
    share = replicate_share(cfg.replicates, team)

    def create():
        if team.leader:
            files.create_run_dir(run_dir)
            files.write_json(run_dir / record.CONFIG_FILE,
                             config_record(cfg, pieces, run_dir, team.processes))

    distributed.together(team, create)
    with distributed.claim(team, run_dir):
        stream.write(f"gcsampler: splitting with {cfg.replicates} x {cfg.particles:,} "
                     f"particles down to eps {cfg.eps:g} ({cfg.move} moves, {cfg.moves} per "
                     f"level){_share_text(share, team)}; run directory {run_dir}\n")
        on_level = display or _display(cfg, stream, share, team)
        return _run(cfg, pieces, run_dir, team, share, on_level, checkpoint_every)


def _resume(resumption, pieces, *, stream, checkpoint_every):
    r, team = resumption, distributed.team()
    share = replicate_share(r.cfg.replicates, team)
    part = files.part_dir(r.run_dir, team.process, team.processes)
    with distributed.claim(team, r.run_dir):
        start = splitting_files.load_checkpoint(part)
        distributed.rewrite_config(team, r.run_dir,
                                   config_record(r.cfg, pieces, r.run_dir, team.processes))
        at = f"after level {start.level}" if start else "from its start (no checkpoint yet)"
        stream.write(f"gcsampler: resuming {r.run_dir} {at}{_share_text(share, team)}\n")
        on_level = _display(r.cfg, stream, share, team, start)
        return _run(r.cfg, pieces, r.run_dir, team, share, on_level, checkpoint_every, start,
                    r.carried)


def _run(cfg, pieces, run_dir, team, share, on_level, checkpoint_every, start=None,
         carried=None):
    """Splitting of this process's replicates from ``start`` (None: the beginning), with
    checkpoints; then its rows and part, and (process 0) the run's results."""
    part = files.part_dir(run_dir, team.process, team.processes)

    def write(last):
        splitting_files.save_checkpoint(part, last.snapshot, jax.device_get(last.snapshot.state))

    def split():
        last = None if start is None else checkpoint.Checkpoint(start, start.seconds)
        try:
            with checkpoint.stop_on_signal() as stop_requested:
                saver = checkpoint.Checkpointer(write, checkpoint_every, last, stop_requested)
                result = multilevel_splitting(
                    pieces.problem, pieces.model, pieces.prior, eps=cfg.eps,
                    particles=cfg.particles, replicates=len(share), first_replicate=share.start,
                    seed=cfg.seed, move=cfg.move,
                    moves=cfg.move_count,
                    devices=cfg.device_count, on_level=on_level, start=start, on_snapshot=saver,
                    stop=stop_requested)
        except files.WriteError as err:
            raise files.WriteError(f"{err}; continue with {resume_command(run_dir)}") from None
        except Stopped:  # at a snapshot the saver wrote
            raise checkpoint.Interrupted(
                f"stopped by a signal after level {saver.last.snapshot.level}, with its "
                f"checkpoint saved; continue with {resume_command(run_dir)}",
                stop_requested.signal) from None
        splitting_files.write_rows(result, part, cfg, team.processes)
        if team.processes > 1:
            splitting_files.save_part(result, part)
        return result

    result = distributed.together(team, split)

    def write_whole():
        if not team.leader:
            return None
        whole = result if team.processes == 1 else combine(
            [splitting_files.load_part(files.part_dir(run_dir, p, team.processes))
             for p in range(team.processes)])
        splitting_files.save_levels(run_dir, whole)
        splitting_files.write_curve(run_dir, estimates.splitting_curve(whole))
        summary = schema.complete({**estimates.summarize_splitting(whole), "run_dir": str(run_dir),
                                   "processes": team.processes, **(carried or {})})
        files.write_json(run_dir / record.SUMMARY_FILE, summary)
        return summary

    summary = distributed.together(team, write_whole)
    with contextlib.suppress(OSError):  # the results hold all it had
        (part / splitting_files.CHECKPOINT_FILE).unlink(missing_ok=True)
    return summary


def _validate(cfg, processes=1):
    if cfg.sampler != "auto":
        raise ValueError("--sampler applies to --method=rejection; splitting moves in "
                         "the prior's Gaussian coordinates (leave --sampler=auto)")
    replicate_share(cfg.replicates, distributed.Team(processes - 1, processes))


def _check(cfg, pieces):
    if pieces.prior.from_normal is None:
        raise ValueError(f"--prior={cfg.prior} cannot be used with --method=splitting (it has "
                         f"no from_normal map from standard normals)")


def _unfinished(run_dir, rec):
    saved = [found.level for p in range(record.processes(rec))
             if (found := splitting_files.load_checkpoint(
                 files.part_dir(run_dir, p, record.processes(rec))))]
    where = (f"its last checkpoint is after level {min(saved)}" if saved
             else "it has no checkpoint yet")
    return f"{run_dir} did not finish: {where}; continue it with {rec['resume']}"


def _effort(scale, rows):
    """'splitting, 256 particles x 2 replicates per seed' (a sweep's --scale scales draws,
    which splitting does not make)."""
    del scale
    systems = sorted({(row["particles"], row["replicates"]) for row in rows})
    return "splitting, " + ", ".join(f"{n} particles x {r} replicates"
                                     for n, r in systems) + " per seed"


METHOD = Method(
    name="splitting", figure="curve", validate=_validate, check=_check, start=_start,
    resume=_resume,
    finished=lambda settings, summary: summary.get("method") == METHOD.name,
    display=lambda cfg, sweep, name: progress.LevelProgress(
        cfg.eps, cfg.particles, cfg.replicates, sweep.stream, sweep.log_interval,
        f"{sweep.cell_prefix(name)}  splitting"),
    rethreshold=lambda run_dir, rec, summary, eps: splitting_files.rethreshold(
        run_dir, summary, record.processes(rec), eps),
    unfinished=_unfinished, table=tables.splitting_table, effort=_effort)
