"""One factorization run: G&C by its method, then the references and GD; continue a
stopped run; read a finished one.

:func:`execute` starts a run, :func:`prepare_resume` and :func:`resume` continue one,
:func:`load_run`, :func:`rethreshold` and :func:`regenerate` read one. G&C has finished
when ``summary.json`` says so (:attr:`~gcsampler.runs.method.Method.finished`), and the
reference losses and GD are there when its ``completed`` field says so; ``--resume``
continues whichever is missing.
What a method does is its own (:data:`~gcsampler.runs.methods.METHODS`).
"""

import dataclasses
import pathlib
import sys
from typing import NamedTuple

import jax

from gcsampler.core.registry import is_reference
from gcsampler.factorization import samplers, task as factorization_task
from gcsampler.runs import (config, distributed, files, finish, pieces as pieces_lib, record,
                            rejection_run)
from gcsampler.runs.checkpoint import DEFAULT_EVERY
from gcsampler.runs.methods import METHODS

# Settings a resumed run may change: they change neither the draws nor how their
# statistics are summed (a larger --samples draws more).
SCHEDULING_SETTINGS = ("samples", "batch", "devices")


def prepare(cfg, objects=None, python=()):
    """The pieces of a validated ``cfg``, checked against its method (ValueError naming
    the flag otherwise); ``objects``/``python`` as for :func:`gcsampler.runs.pieces.build`."""
    cfg.validate(tuple(python) + tuple(objects or {}))
    built = pieces_lib.build(cfg, python, objects)
    factorization_task.check_pieces(built.problem, built.model, built.prior)
    METHODS[cfg.method].check(cfg, built)
    return built


def execute(cfg, run_dir, stream=None, checkpoint_every=DEFAULT_EVERY, pieces=None):
    """Run G&C (and GD if ``cfg.gd``) and write everything under ``run_dir``.

    ``run_dir`` must not exist or be empty; ``pieces`` (default: those ``cfg`` names,
    :func:`prepare`) are what is drawn. G&C progress is checkpointed at most every
    ``checkpoint_every`` seconds. Returns the summary dict.
    """
    stream = stream if stream is not None else sys.stderr
    pieces = pieces if pieces is not None else prepare(cfg)
    summary = METHODS[cfg.method].start(cfg, pieces, run_dir, stream=stream,
                                        checkpoint_every=checkpoint_every)
    return _finish(cfg, pieces, summary, stream)


def _finish(cfg, pieces, summary, stream):
    """References and GD after G&C; in a multi-process run process 0 goes on alone."""
    if distributed.leave():
        finish.finish([finish.Finished(cfg, pieces, summary)],
                      note=lambda text: stream.write(text + "\n"))
    return summary


class Resumption(NamedTuple):
    """A run to continue, as checked by :func:`prepare_resume`."""

    run_dir: pathlib.Path
    cfg: config.RunConfig   # the recorded settings with the given ones
    record: dict            # config.json as found
    previous: dict | None   # summary.json as found (of fewer draws when extending)

    @property
    def method(self):
        return METHODS[self.cfg.method]

    @property
    def sampler(self):
        """The sampler the run used ('auto' resolved when it started)."""
        return self.record["task"].get("sampler", self.cfg.sampler)

    @property
    def gnc_done(self):
        return self.previous is not None and self.method.finished(
            dataclasses.asdict(self.cfg), self.previous)

    @property
    def missing(self):
        """What the run asks for after G&C and its summary lacks (of
        :data:`gcsampler.runs.summary.PARTS`)."""
        return finish.missing(self.previous, self.cfg.gd)

    @property
    def done(self):
        return self.gnc_done and not self.missing

    @property
    def carried(self):
        """Summary fields the continued G&C keeps (GD's, when it ran)."""
        return finish.carried(self.previous)


def prepare_resume(run_dir, given, objects=None):
    """Check that the run in ``run_dir`` can continue with the settings ``given``
    explicitly (RunConfig field -> value); the others come from its ``config.json``.

    Given settings must equal the recorded ones, except the scheduling settings
    (``samples`` may grow, never shrink), until GD has run the GD settings, and the
    pieces (``task``, ``activation``, ``prior``, or ``objects`` from Python), which must
    be the same pieces by their probes however they are named. Returns the Resumption
    and its pieces. Raises ValueError naming every setting that would change results
    the run already has, RunDirError if ``run_dir`` is not a readable run directory.
    """
    run_dir = pathlib.Path(run_dir)
    rec = record.read_config(run_dir)
    python = _python_pieces(rec)
    recorded = _record_config(rec, run_dir)
    previous = record.read_summary(run_dir, checked=True)
    # A piece named again by a reference (or given as an object) is checked by its probes;
    # one named by another registered name is a changed setting like any other.
    by_probes = {n for n in pieces_lib.NAMED
                 if n in python or is_reference(given.get(n)) or n in (objects or {})}
    fixed = [f.name for f in dataclasses.fields(config.RunConfig)
             if f.name in given and f.name not in SCHEDULING_SETTINGS + ("sampler",)
             and f.name not in by_probes
             and (f.name not in finish.GD_FLAGS or finish.gd_ran(previous))]
    cfg = dataclasses.replace(recorded, **given)
    _refuse_changes(run_dir, given, [n for n in fixed if getattr(cfg, n) != getattr(recorded, n)],
                    dataclasses.asdict(recorded))
    renamed = {n for n in pieces_lib.NAMED if n in given}  # now named MODULE:ATTR
    pieces = prepare(cfg, objects, tuple(n for n in python if n not in renamed))
    pieces_lib.check_same(rec.get("pieces", {}), pieces)
    if "sampler" in given and "sampler" in rec["task"]:  # compared as resolved ('auto' is one)
        now = samplers.resolve(pieces.model, pieces.prior, cfg.sampler)
        if now != rec["task"]["sampler"]:
            _refuse_changes(run_dir, given, ["sampler"], {"sampler": rec["task"]["sampler"]})
    if cfg.samples < recorded.samples:
        raise ValueError(f"cannot resume {run_dir} with --samples={cfg.samples}: it has "
                         f"--samples={recorded.samples}, and a resumed run can only draw more")
    team, processes = distributed.team(), record.processes(rec)
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
    return Resumption(run_dir, cfg, rec, previous), pieces


def _refuse_changes(run_dir, given, changed, ran):
    """ValueError naming the given settings that would change results the run has."""
    if changed:
        ours = " ".join(f"--{name}={given[name]}" for name in changed)
        theirs = " ".join(f"--{name}={ran[name]}" for name in changed)
        raise ValueError(f"cannot resume {run_dir} with {ours}: it ran with {theirs}, and "
                         f"changing that would change results it already has; start a new "
                         f"run instead")


def resume(resumption, pieces, stream=None, checkpoint_every=DEFAULT_EVERY):
    """Continue a run checked by :func:`prepare_resume`: G&C from its last checkpoint
    unless it has finished, then the reference losses and GD where missing. Returns the
    summary dict.

    Totals and accepted rows are bit-identical to those of a run made without a
    stop, with the same final ``samples``, on any batch and devices (splitting: on the
    same devices).
    """
    stream = stream if stream is not None else sys.stderr
    r = resumption
    if r.gnc_done:
        stream.write(f"gcsampler: {r.run_dir} has finished G&C; adding "
                     f"{finish.in_words(r.missing)}\n")
        _record_settings(r)
        summary = {**r.previous, "run_dir": str(r.run_dir)}
    else:
        summary = r.method.resume(r, pieces, stream=stream, checkpoint_every=checkpoint_every)
    return _finish(r.cfg, pieces, summary, stream)


def _record_settings(r):
    """Record the settings a finished G&C goes on with (GD's may have changed), holding
    the run's lock, as a continued G&C does."""
    team = distributed.team()
    with distributed.claim(team, r.run_dir):
        distributed.rewrite_config(team, r.run_dir,
                                   {**r.record, "settings": dataclasses.asdict(r.cfg)})


def read_run(run_dir):
    """``(record, summary)`` of any run directory (a factorization's, a model task's, a
    classifier cell's), with one-line errors for foreign or damaged ones; the summary is
    None until G&C has finished (see :func:`unfinished_message`)."""
    run_dir = pathlib.Path(run_dir)
    rec = record.read_config(run_dir)
    try:
        METHODS.check(rec["method"])
    except ValueError as err:
        raise files.RunDirError(f"{run_dir}/config.json: {err}") from None
    _check_settings(rec, run_dir)
    summary = record.read_summary(run_dir, checked="eps" in rec["task"])
    finished = summary is not None and METHODS[rec["method"]].finished(rec["settings"], summary)
    return rec, finish.with_verdict(summary, run_dir) if finished else None


def _check_settings(rec, run_dir):
    """RunDirError unless the record's settings are valid (a factorization's, or a task's
    loop settings)."""
    if rec["task"].get("kind") == "factorization":
        _record_config(rec, run_dir)
        return
    try:
        loop_settings(rec["settings"])
    except (KeyError, TypeError, ValueError) as err:
        raise files.RunDirError(f"{run_dir}/config.json has invalid settings ({err})") from None


def loop_settings(values):
    """The :class:`~gcsampler.runs.rejection_run.LoopSettings` of ``values`` (a dict),
    checked as a RunConfig checks them; ValueError naming the bad one."""
    settings = rejection_run.loop_settings(values)
    config.RunConfig(**{**settings._asdict(), "devices": str(settings.devices)}).validate()
    return settings


def load_run(run_dir):
    """``(config, summary)`` of a factorization run directory (:func:`read_run`), the
    config as it was given (``sampler`` may be 'auto': the summary's ``sampler_used``
    and the record's ``task`` say which one drew)."""
    rec, summary = read_run(run_dir)
    return _record_config(rec, pathlib.Path(run_dir)), summary


def setting_title(rec, run_dir):
    """A run's setting in words (a task run: its task's label)."""
    if rec["task"].get("kind") == "factorization":
        return _record_config(rec, pathlib.Path(run_dir)).describe()
    return rec["task"].get("label") or rec["task"].get("kind", "task")


def unfinished_message(run_dir):
    """Why a run has no results: how far it got, and how to continue it."""
    rec = record.read_config(run_dir)
    return METHODS[rec["method"]].unfinished(pathlib.Path(run_dir), rec)


def _python_pieces(rec):
    python = rec.get("pieces", {}).get("python", [])
    if not (isinstance(python, list) and set(python) <= set(pieces_lib.NAMED)):
        raise files.RunDirError(f"config.json records unknown pieces {python!r}")
    return tuple(python)


def _record_config(rec, run_dir):
    """The RunConfig of a record's settings as given when the run was made."""
    if rec["task"].get("kind") != "factorization":
        raise files.RunDirError(f"{run_dir} is a run of a {rec['task'].get('kind')} task, not "
                                f"of a factorization")
    try:
        return config.from_dict(rec["settings"], _python_pieces(rec))
    except (TypeError, ValueError) as err:
        raise files.RunDirError(f"{run_dir}/config.json is not a valid gcsampler config: "
                                f"{err}") from None


def rethreshold(run_dir, eps):
    """G&C statistics of a finished run (of any threshold task) at another threshold
    ``eps``, by its method."""
    rec, summary = read_run(run_dir)
    if summary is None:
        raise files.RunDirError(unfinished_message(run_dir))
    return METHODS[rec["method"]].rethreshold(pathlib.Path(run_dir), rec, summary, eps)


def rejection_task(run_dir):
    """The task and loop settings of the factorization rejection run in ``run_dir``,
    rebuilt from its ``config.json``: drawing them again gives its draws again (on any
    batch and devices: all of this machine's where it has fewer than the run's)."""
    rec = record.read_config(run_dir)
    cfg = _record_config(rec, pathlib.Path(run_dir))
    pieces = pieces_lib.build(cfg, _python_pieces(rec))
    task = rejection_run.task_of(cfg, pieces, rec["task"]["sampler"])
    settings = rejection_run.loop_settings(cfg)
    if settings.devices != "all" and int(settings.devices) > len(jax.local_devices()):
        settings = settings._replace(devices="all")  # another machine: devices do not matter
    return task, settings


def regenerate(run_dir, index, objects=None):
    """Full weights of draw ``index`` of a rejection run: ``(layers, matrix)`` as arrays."""
    cfg, _ = load_run(run_dir)
    rec = record.read_config(run_dir)
    if "sampler" not in rec["task"]:
        raise ValueError("a splitting run keeps the end-to-end matrices of its particles "
                         "(accepted/matrix), not indices that regenerate weights")
    if not 0 <= index < cfg.samples:
        raise ValueError(f"--index must be in [0, {cfg.samples - 1}] for this run, got {index}")
    pieces = pieces_lib.build(cfg, _python_pieces(rec), objects)
    return factorization_task.regenerate(pieces.model, pieces.prior, cfg.seed, index,
                                         rec["task"]["sampler"])
