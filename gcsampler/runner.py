"""A whole run on disk: G&C and the GD baseline from a RunConfig into a run directory,
and the continuation of a stopped or killed run.

Run directory layout::

    config.json        every resolved setting, package and JAX versions, backend
    checkpoint.npz     where G&C continues after a stop (see gcsampler.checkpoint)
    summary.json       the results (written after G&C, updated after GD)
    accepted/          zarr arrays, one row per accepted draw, in index order:
                       index (uint64), train_loss, gen_loss (float32), matrix (float32)
    statistics.npz     train-loss bins over all draws and the 2-D loss histogram
    gd.npz             GD loss curves and final matrices (when GD ran)

A run made by several processes (:mod:`gcsampler.distributed`) has one
``process-<p>/`` directory per process instead of ``checkpoint.npz`` and
``accepted/``: each process draws its own range of draws, writes its rows and
checkpoints there, and process 0 writes the other files, with the statistics of
all of them combined (the same bits as one process drawing everything).

G&C has finished when ``summary.json`` counts as many draws as ``config.json``
asks for, and GD has run when the summary holds its results; ``gcsampler run
--resume`` continues whichever has not (:func:`prepare_resume`, :func:`resume`).
"""

import contextlib
import dataclasses
import math
import pathlib
import signal
import sys
import threading
import time
from typing import NamedTuple

import jax
import numpy as np

from gcsampler import (__version__, checkpoint, config, distributed, draws, engine, gd, kernel,
                       progress, reference, splitting_run, stats, store)

# Settings a resumed run may change: they change neither the draws nor how their
# statistics are summed (a larger --samples draws more).
SCHEDULING_SETTINGS = ("samples", "batch", "devices")
# GD settings may change until GD has run.
GD_SETTINGS = tuple(f.name for f in dataclasses.fields(config.RunConfig)
                    if f.name == "gd" or f.name.startswith("gd_"))
GD_FIELDS = ("gd_gen_loss", "gd_gen_loss_runs", "gd_train_loss", "gd_seconds")  # gd_summary's


def execute(cfg, run_dir, stream=None, checkpoint_every=checkpoint.DEFAULT_EVERY):
    """Run G&C (and GD if ``cfg.gd``) and write everything under ``run_dir``.

    ``run_dir`` must not exist or be empty. G&C progress is checkpointed at most
    every ``checkpoint_every`` seconds. Returns the summary dict.
    """
    stream = stream if stream is not None else sys.stderr
    team = distributed.team()
    if cfg.method == "splitting":
        share = splitting_run.replicate_share(cfg.replicates, team)
        prefix = ("splitting" if team.processes == 1 else
                  f"splitting process {team.process}/{team.processes}")
        display = progress.LevelProgress(cfg.eps, cfg.particles, len(share), stream,
                                         prefix=prefix)
    else:
        display = _progress(cfg, team, stream)
    summary = run_gnc(cfg, run_dir, display, stream, checkpoint_every)
    return _finish(cfg, summary, stream)


def run_gnc(cfg, run_dir, on_progress, stream, checkpoint_every=checkpoint.DEFAULT_EVERY):
    """G&C of ``cfg`` into a new ``run_dir``: config, accepted rows, checkpoints,
    statistics, summary; this process's share of them in a multi-process run.

    Returns the summary dict (written to ``summary.json`` by process 0); its
    ``run_dir`` is the directory as created. A ``--method splitting`` run goes to
    :mod:`gcsampler.splitting_run`, with ``on_progress`` called after each level.
    """
    cfg.validate()
    if cfg.method == "splitting":
        return splitting_run.run(cfg, run_dir, on_progress, stream)
    sampler = cfg.resolved_sampler()
    team = distributed.team()
    schedule = _plan(cfg, sampler, team)
    run_dir = pathlib.Path(run_dir)

    def create():
        if team.leader:
            store.create_run_dir(run_dir)
            store.write_json(run_dir / "config.json", _config_record(cfg, sampler, schedule, team))

    distributed.together(team, create)
    with distributed.together(team, lambda: store.claim_part(run_dir, team.process,
                                                             team.processes)):
        stream.write(f"gcsampler: G&C with {cfg.samples:,} draws{_share(cfg, team)} "
                     f"{_setup(sampler, schedule)}; run directory {run_dir}\n")
        return _gnc(cfg, sampler, run_dir, team, on_progress, checkpoint_every)


def _checkpoint_of(run_dir, cfg, team):
    """The last checkpoint of process ``team.process``'s share of the run (None: none yet)."""
    first = _blocks_of(cfg, team).start
    return checkpoint.load(store.part_dir(run_dir, team.process, team.processes), cfg.log2_block,
                           cfg.eps, first)


def _share_of(cfg, team):
    """The global indices of the draws this process makes."""
    return engine.draw_indices(_blocks_of(cfg, team), cfg.samples, cfg.log2_block)


def _blocks_of(cfg, team):
    """The blocks this process draws."""
    return engine.process_blocks(cfg.samples, cfg.log2_block, team.process, team.processes)


def _progress(cfg, team, stream, done_before=0):
    """The progress display of this process's draws."""
    total = len(_share_of(cfg, team))
    prefix = "G&C" if team.processes == 1 else f"G&C process {team.process}/{team.processes}"
    return progress.Progress(total, stream, done_before=done_before, prefix=prefix)


def _share(cfg, team):
    """', process 1 of 2 draws 2,048,000 to 4,095,999' in a multi-process run's header."""
    if team.processes == 1:
        return ""
    share = _share_of(cfg, team)
    return (f"; process {team.process} of {team.processes} draws {share.start:,} to "
            f"{share.stop - 1:,}")


class Resumption(NamedTuple):
    """A run to continue, as checked by :func:`prepare_resume`."""

    run_dir: pathlib.Path
    cfg: config.RunConfig  # the recorded settings with the given ones
    record: dict  # config.json as found
    checkpoint: checkpoint.Checkpoint | None  # None: no checkpoint yet
    previous: dict | None  # summary.json as found (of fewer draws when extending)

    @property
    def sampler(self):
        """The sampler the run used ('auto' resolved when it started)."""
        return self.record["sampler"]

    @property
    def gnc_done(self):
        return gnc_finished(self.cfg, self.previous)

    @property
    def gd_done(self):
        return not self.cfg.gd or gd_ran(self.previous)

    @property
    def done(self):
        return self.gnc_done and self.gd_done


def prepare_resume(run_dir, given):
    """Check that the run in ``run_dir`` can continue with the settings ``given``
    explicitly (RunConfig field -> value); the others come from its ``config.json``.

    Given settings must equal the recorded ones, except the scheduling settings
    (``samples`` may grow, never shrink) and, until GD has run, the GD settings.
    Raises ValueError naming every setting that would change results the run
    already has, RunDirError if ``run_dir`` is not a readable run directory.
    """
    run_dir = pathlib.Path(run_dir)
    record = _read_record(run_dir)
    recorded = _record_config(record, run_dir)
    previous = _read_summary(run_dir)
    fixed = [f.name for f in dataclasses.fields(config.RunConfig)
             if f.name in given and f.name not in SCHEDULING_SETTINGS
             and (f.name not in GD_SETTINGS or gd_ran(previous))]
    cfg = dataclasses.replace(recorded, **given).validate()
    if cfg.method == "splitting" and not gnc_finished(cfg, previous):
        raise ValueError(f"{run_dir} is a splitting run that did not finish; splitting runs "
                         f"are not checkpointed: start a new run")
    ran = {**dataclasses.asdict(recorded), "sampler": record["sampler"]}  # as the run used them
    now = {**dataclasses.asdict(cfg), "sampler": cfg.resolved_sampler()}
    changed = [name for name in fixed if now[name] != ran[name]]
    if changed:
        ours = " ".join(f"--{name}={given[name]}" for name in changed)
        theirs = " ".join(f"--{name}={ran[name]}" for name in changed)
        raise ValueError(f"cannot resume {run_dir} with {ours}: it ran with {theirs}, and "
                         f"changing that would change results it already has; start a new "
                         f"run instead")
    if cfg.samples < recorded.samples:
        raise ValueError(f"cannot resume {run_dir} with --samples={cfg.samples}: it has "
                         f"--samples={recorded.samples}, and a resumed run can only draw more")
    team, processes = distributed.team(), record_processes(record)
    if team.processes != processes:
        raise ValueError(f"cannot resume {run_dir} with {team.processes} process(es): it was "
                         f"made by {processes}, each drawing its own share; resume it with "
                         f"--num_processes {processes}")
    if processes > 1 and cfg.samples != recorded.samples:
        raise ValueError(f"cannot resume {run_dir} with --samples={cfg.samples}: a run made by "
                         f"several processes keeps its --samples={recorded.samples} (each "
                         f"process's share of the draws would move)")
    if ("devices" not in given and cfg.devices != "all"
            and int(cfg.devices) > len(jax.local_devices())):
        cfg = dataclasses.replace(cfg, devices="all")  # another machine: devices do not matter
    return Resumption(run_dir, cfg, record, _checkpoint_of(run_dir, cfg, team), previous)


def record_processes(record):
    """How many processes made the run of a ``config.json`` record."""
    processes = record.get("processes", 1)
    if not (isinstance(processes, int) and processes >= 1):
        raise store.RunDirError(f"config.json records {processes!r} processes, not a positive "
                                f"integer")
    return processes


def resume(resumption, stream=None, checkpoint_every=checkpoint.DEFAULT_EVERY):
    """Continue a run checked by :func:`prepare_resume`: G&C from its last checkpoint
    unless it has finished, then GD if it has not run. Returns the summary dict.

    Totals and accepted rows are bit-identical to those of a run made without a
    stop, with the same final ``samples``, on any batch and devices.
    """
    stream = stream if stream is not None else sys.stderr
    r = resumption
    team = distributed.team()
    try:
        claim = distributed.together(
            team, lambda: store.claim_part(r.run_dir, team.process, team.processes))
    except store.WriteError as err:
        raise _kept(err, r.run_dir, r.checkpoint) from None
    with claim:
        return _resume_claimed(r, team, stream, checkpoint_every)


def _resume_claimed(r, team, stream, checkpoint_every):
    """:func:`resume` once this process holds its part of the run."""
    splitting = r.cfg.method == "splitting"  # finished (prepare_resume): only GD is left
    schedule = None if splitting else _plan(r.cfg, r.sampler, team)

    def prepare():
        if team.leader:
            store.remove_temporaries(r.run_dir)
            record = (splitting_run.config_record(r.cfg, team.processes) if splitting
                      else _config_record(r.cfg, r.sampler, schedule, team))
            store.write_json(r.run_dir / "config.json", record)

    try:
        distributed.together(team, prepare)
    except store.WriteError as err:
        raise _kept(err, r.run_dir, r.checkpoint) from None
    if r.gnc_done:
        return _finish(r.cfg, {**r.previous, "run_dir": str(r.run_dir)}, stream)
    ran_with = (r.record.get("jax_version"), r.record.get("backend"))
    if ran_with != (jax.__version__, jax.default_backend()):
        stream.write(f"gcsampler: note: {r.run_dir} ran with JAX {ran_with[0]} on {ran_with[1]} "
                     f"so far; statistics are bit-identical only on one backend and JAX "
                     f"version\n")
    done_before = r.checkpoint.draws if r.checkpoint else 0
    share = _share_of(r.cfg, team)
    stream.write(f"gcsampler: resuming {r.run_dir} at draw {share.start + done_before:,} of "
                 f"{r.cfg.samples:,}{_share(r.cfg, team)} {_setup(r.sampler, schedule)}\n")
    carried = ({k: r.previous[k] for k in GD_FIELDS if k in r.previous}
               if gd_ran(r.previous) else {})
    summary = _gnc(r.cfg, r.sampler, r.run_dir, team,
                   _progress(r.cfg, team, stream, done_before=done_before),
                   checkpoint_every, start=r.checkpoint,
                   keep=r.checkpoint.accepted if r.checkpoint else 0, carried=carried)
    return _finish(r.cfg, summary, stream)


def gnc_finished(cfg, summary):
    """Whether G&C of the run described by ``cfg`` has finished, by its summary."""
    if summary is None:
        return False
    if cfg.method == "splitting":
        return summary.get("method") == "splitting"
    return summary["draws"] == cfg.samples


def gd_ran(summary):
    """Whether ``summary`` holds GD results."""
    return summary is not None and "gd_gen_loss_runs" in summary


def _finish(cfg, summary, stream):
    """Add the reference solutions and, unless it ran, GD to a finished G&C summary.

    In a multi-process run the processes part here: process 0 goes on alone.
    """
    if not distributed.leave():
        return summary
    add_references(summary, cfg.problem())
    if cfg.gd and not gd_ran(summary):
        stream.write(f"gcsampler: GD ({cfg.gd_optimizer}, lr {cfg.gd_lr:g}, "
                     f"{cfg.gd_runs} runs x {cfg.gd_steps:,} steps)...\n")
        start = time.perf_counter()
        curves = gd.train(cfg.problem(), cfg.model(), cfg.optimizer(), seed=cfg.seed,
                          runs=cfg.gd_runs, steps=cfg.gd_steps, init_scale=cfg.gd_init_scale,
                          log_every=cfg.gd_log_every)
        add_gd(summary, curves, time.perf_counter() - start)
    store.write_json(pathlib.Path(summary["run_dir"]) / "summary.json", summary)
    return summary


def _gnc(cfg, sampler, run_dir, team, on_progress, checkpoint_every, start=None, keep=None,
         carried=None):
    """G&C of this process's draws into ``run_dir`` from the checkpoint ``start`` (None:
    its first draw); writes checkpoints, then (process 0) the statistics of every
    process combined and the summary (with the ``carried`` fields).

    ``keep`` is None for a new run (the accepted arrays are created) and the rows to
    keep of the existing arrays for a resumed one. A failure to write (full disk,
    read-only location) is a one-line WriteError that says what the last
    checkpoint keeps.
    """
    problem, model, prior = cfg.problem(), cfg.model(), cfg.prior_dist()
    part = store.part_dir(run_dir, team.process, team.processes)
    blocks = _blocks_of(cfg, team)
    saver = None

    def draw():
        nonlocal saver
        try:
            with store.AcceptedWriter(part, store.accepted_layout(cfg.rows, cfg.cols),
                                      keep=keep) as writer, \
                    _stop_on_signal() as stop_requested:
                saver = checkpoint.Checkpointer(part, writer, cfg.log2_block, checkpoint_every,
                                                start, stop_requested)
                result = engine.guess_and_check(
                    problem, model, prior, eps=cfg.eps, samples=cfg.samples, seed=cfg.seed,
                    sampler=sampler, batch=cfg.batch, devices=cfg.device_count,
                    log2_block=cfg.log2_block, start=start.snapshot if start else None,
                    blocks=blocks, on_rows=writer.append, on_progress=on_progress,
                    on_snapshot=saver)
                writer.flush()
                saver.save()
        except store.WriteError as err:
            raise _kept(err, run_dir, saver.last if saver else start) from None
        except checkpoint.Stopped as stop:
            raise checkpoint.Interrupted(f"stopped by a signal after {stop.checkpoint.draws:,} draws of "
                              f"{len(_share_of(cfg, team)):,}{_share(cfg, team)}, with its "
                              f"checkpoint saved; continue with `gcsampler run --resume "
                              f"{run_dir}`", stop_requested.signal) from None
        return result

    result = distributed.together(team, draw)
    totals, seconds = _combined(team, result.totals,
                                (start.seconds if start else 0.0) + result.seconds)
    summary = stats.summarize(totals, seconds)
    summary.update(sampler=result.sampler, eps=cfg.eps, run_dir=str(run_dir),
                   gd_gen_loss=math.nan, processes=team.processes, **(carried or {}))

    def write():
        if team.leader:
            store.save_arrays(run_dir / "statistics.npz", **statistics_arrays(totals))
            store.write_json(run_dir / "summary.json", summary)

    try:
        distributed.together(team, write)
    except store.WriteError as err:
        raise _kept(err, run_dir, saver.last) from None
    return summary


class _StopRequest:
    """Callable flag: whether a stop signal has arrived, and which (``signal``)."""

    def __init__(self):
        self.signal = None

    def __call__(self):
        return self.signal is not None


@contextlib.contextmanager
def _stop_on_signal():
    """While G&C draws, SIGINT and SIGTERM (a scheduler's pre-emption) ask it to stop
    after the device call in flight, once its checkpoint is written; a second signal
    stops at once. Yields the :class:`_StopRequest`."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be set from the main thread
        return

    def handle(signal_number, frame):
        if request():
            raise KeyboardInterrupt
        request.signal = signal_number

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _combined(team, totals, seconds):
    """The totals of every process combined, and the longest process's G&C time."""
    if team.processes == 1:
        return totals, seconds
    parts = distributed.gather_totals(totals, seconds)
    return stats.combine(t for t, _ in parts), max(s for _, s in parts)


def _kept(err, run_dir, last):
    """``err`` (a failed write) with what the last checkpoint keeps and how to go on."""
    kept = (f"the last checkpoint ({last.draws:,} draws) is kept" if last
            else "no checkpoint was written yet")
    return store.WriteError(f"{err}; {kept}: continue with `gcsampler run --resume {run_dir}`")


def _plan(cfg, sampler, team):
    """The schedule of this process's draws."""
    return engine.plan(cfg.problem(), cfg.model(), max(len(_share_of(cfg, team)), 1),
                       sampler=sampler, batch=cfg.batch, devices=cfg.device_count,
                       log2_block=cfg.log2_block)


def _setup(sampler, schedule):
    """'(wishart sampler) on 1 cpu device(s), batch 135,168' for the header lines."""
    return (f"({sampler} sampler) on {len(schedule.devices)} {schedule.devices[0].platform} "
            f"device(s), batch {schedule.batch:,}")


def add_references(summary, problem):
    """Add the minimum nuclear- and Frobenius-norm interpolants' losses to ``summary``."""
    summary.update(reference.reference_losses(problem))


def add_gd(summary, curves, seconds):
    """Save one cell's GD ``curves`` as ``gd.npz`` and add their summary fields."""
    store.save_arrays(pathlib.Path(summary["run_dir"]) / "gd.npz", **curves._asdict())
    summary.update(gd_summary(curves, seconds))


def statistics_arrays(totals):
    """The arrays of ``statistics.npz``."""
    lo, hi = kernel.HIST_LOG10_RANGE
    sums = totals.floats()
    return {
        "train_loss_edges": totals.edges,
        "bin_count": totals.bin_count,
        "bin_gen_sum": sums["bin_gen_sum"],
        "bin_gen_sumsq": sums["bin_gen_sumsq"],
        "hist_log10_train_gen": totals.hist.reshape(kernel.HIST_BINS, kernel.HIST_BINS),
        "hist_log10_edges": np.linspace(lo, hi, kernel.HIST_BINS + 1),
    }


def gd_summary(curves, seconds):
    """Summary fields of a GD result: means over runs and every run's value."""
    finite = np.isfinite(curves.final_gen_loss)
    return {
        "gd_gen_loss": float(np.mean(curves.final_gen_loss)) if finite.all() else math.nan,
        "gd_gen_loss_runs": curves.final_gen_loss.tolist(),
        "gd_train_loss": float(np.mean(curves.final_train_loss)),
        "gd_seconds": seconds,
    }


def _config_record(cfg, sampler, schedule, team):
    return {
        "settings": dataclasses.asdict(cfg),
        "sampler": sampler,
        "processes": team.processes,
        "resolved": {"batch": schedule.batch, "blocks_per_step": schedule.blocks,
                     "draws_at_once": schedule.chunk,
                     "steps_per_call": schedule.steps, "devices": len(schedule.devices),
                     "block_size": schedule.block_size},
        "gcsampler_version": __version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": schedule.devices[0].device_kind,
    }


def load_run(run_dir):
    """(config, summary) of a run directory, with one-line errors for foreign or
    damaged ones.

    The config's sampler is the one the run resolved and used. The summary is None
    until G&C has finished (see :func:`unfinished_message`).
    """
    run_dir = pathlib.Path(run_dir)
    record = _read_record(run_dir)
    cfg = _record_config(record, run_dir)
    cfg = dataclasses.replace(cfg, sampler=record["sampler"])
    summary = _read_summary(run_dir)
    return cfg, summary if gnc_finished(cfg, summary) else None


def unfinished_message(run_dir, cfg):
    """Why a run has no results: how far its last checkpoint got, and how to continue."""
    run_dir = pathlib.Path(run_dir)
    if cfg.method == "splitting":
        return (f"{run_dir} did not finish: splitting runs are not checkpointed; start it "
                f"again with the settings in its config.json")
    processes = record_processes(_read_record(run_dir))
    saved = [last for p in range(processes)
             if (last := _checkpoint_of(run_dir, cfg, distributed.Team(p, processes)))]
    where = ("it has no checkpoint yet" if not saved else
             f"its last checkpoint{'s' if processes > 1 else ''} cover"
             f"{'' if processes > 1 else 's'} {sum(c.draws for c in saved):,} of "
             f"{cfg.samples:,} draws ({sum(c.accepted for c in saved):,} accepted)")
    on = f" on {processes} processes (--num_processes {processes})" if processes > 1 else ""
    return (f"{run_dir} did not finish: {where}; continue it with "
            f"`gcsampler run --resume {run_dir}`{on}")


def _read_record(run_dir):
    """``config.json`` of a run directory as a dict with its settings and sampler."""
    if not (run_dir / "config.json").is_file():
        raise store.RunDirError(f"{run_dir} is not a gcsampler run directory (no config.json)")
    record = store.read_json(run_dir / "config.json")
    if not (isinstance(record, dict) and isinstance(record.get("settings"), dict)
            and isinstance(record.get("sampler"), str)):
        raise store.RunDirError(f"{run_dir}/config.json is not a gcsampler config (no "
                                f"settings or sampler)")
    return record


def _record_config(record, run_dir):
    """The RunConfig of a record's settings as given when the run was made (checked
    with the sampler the run used, too)."""
    try:
        config.from_dict({**record["settings"], "sampler": record["sampler"]})
        return config.from_dict(record["settings"])
    except (TypeError, ValueError) as err:
        raise store.RunDirError(f"{run_dir}/config.json is not a valid gcsampler config: "
                                f"{err}") from None


def _read_summary(run_dir):
    """``summary.json`` of a run directory, or None if it has none yet."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    summary = store.read_json(path)
    if not (isinstance(summary, dict) and isinstance(summary.get("draws"), int)):
        raise store.RunDirError(f"{path} is not a gcsampler summary (no draws)")
    return summary


def regenerate(run_dir, index):
    """Full weights of draw ``index`` of a run: ``(layers, matrix)`` as NumPy arrays."""
    cfg, _ = load_run(run_dir)
    if cfg.method == "splitting":
        raise ValueError("a splitting run keeps the end-to-end matrices of its particles "
                         "(accepted/matrix), not indices that regenerate weights")
    if not 0 <= index < cfg.samples:
        raise ValueError(f"--index must be in [0, {cfg.samples - 1}] for this run, got {index}")
    return draws.regenerate(cfg.model(), cfg.prior_dist(), cfg.seed, index, cfg.sampler)


def rethreshold(run_dir, eps):
    """G&C statistics of a finished run at another threshold ``eps``.

    At or below the run's eps the stored accepted rows give the exact answer;
    above it, the train-loss bins over all draws do, at the largest bin edge <= eps.
    """
    cfg, _ = load_run(run_dir)
    processes = record_processes(_read_record(pathlib.Path(run_dir)))
    if cfg.method == "splitting":
        return splitting_run.rethreshold(run_dir, eps, cfg.eps, processes)
    if eps <= cfg.eps:
        rows = store.read_accepted(run_dir, processes)
        below = rows["train_loss"] < stats.float32_threshold(eps)
        gen = rows["gen_loss"][below].astype(np.float64)
        mean, std, stderr = stats.moments(gen.size, float(np.sum(gen)), float(np.sum(gen**2)))
        return {"effective_eps": eps, "accepted": int(gen.size), "gnc_gen_loss_mean": mean,
                "gnc_gen_loss_std": std, "gnc_gen_loss_stderr": stderr, "source": "accepted rows"}
    arrays = store.load_arrays(pathlib.Path(run_dir) / "statistics.npz")
    result = stats.rethreshold(arrays["train_loss_edges"], arrays["bin_count"],
                               arrays["bin_gen_sum"], arrays["bin_gen_sumsq"], eps)
    if result is not None:
        result["source"] = "train-loss bins"
    return result
