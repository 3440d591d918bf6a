"""Runs from Python: the same run directories as the command line, for any pieces or task.

- :func:`run` and :func:`resume`: a factorization run from a problem, a model and a
  prior, custom ones included (a user's prior, activation or data);
- :func:`run_task` and :func:`resume_task`: a run of any
  :class:`~gcsampler.core.loop.Task`, e.g. a user's own JAX model
  (:func:`gcsampler.threshold.task.model_task`);
- :func:`report` and :func:`rethreshold`: a finished run's results, at its eps or another.

Every run is checkpointed and can be continued after a stop with the same bits; a
continued run must be given the same pieces or task (checked by their probes).
"""

import math
import sys

from gcsampler.core import progress as progress_lib
from gcsampler.runs import (config, distributed, files, finish, pieces as pieces_lib, record,
                            rejection_run, runner, summary as schema, tables)
from gcsampler.runs.checkpoint import DEFAULT_EVERY
from gcsampler.runs.methods import METHODS


def run(problem, model, prior, *, out, progress=None, stream=None,
        checkpoint_every=DEFAULT_EVERY, **settings):
    """G&C (and GD unless ``gd=False``) of ``problem``, ``model`` and ``prior`` into the new
    run directory ``out``, as ``gcsampler run`` makes it; returns the summary.

    ``settings`` are :class:`~gcsampler.runs.config.RunConfig` fields (``eps``,
    ``samples``, ``seed``, ``method``, ``particles``, the GD settings, ...); the shape,
    depth, width, activation and prior come from the objects. Pieces gcsampler cannot
    rebuild by name are recorded as given from Python: :func:`resume` takes them again.
    The progress line (draws, accepted, samples/s, ETA) goes to ``stream`` (default
    stderr) if ``progress`` is true; by default when a stream is given or stderr is a
    terminal (in a notebook, pass ``progress=True``). The same holds for every function
    here that runs.
    """
    cfg, objects = pieces_lib.with_objects(config.RunConfig(**settings), problem, model, prior)
    clash = [name for name in settings if settings[name] != getattr(cfg, name)]
    if clash:
        raise ValueError(f"{', '.join(clash)} come(s) from the problem, model and prior; do "
                         f"not give {'it' if len(clash) == 1 else 'them'} as settings")
    pieces = runner.prepare(cfg, objects, tuple(objects))
    return runner.execute(cfg, out, _stream(stream, progress), checkpoint_every, pieces=pieces)


def resume(run_dir, *, problem=None, model=None, prior=None, progress=None, stream=None,
           checkpoint_every=DEFAULT_EVERY, **settings):
    """Continue a factorization run from its last checkpoint (or run GD if only that is
    left, or draw more with a larger ``samples``); returns its summary.

    Give again, as objects, the pieces that were given from Python (``problem``;
    ``model`` for its activation; ``prior``); ``settings`` as ``gcsampler run --resume``
    takes flags.
    """
    objects = {}
    if problem is not None:
        objects["task"] = problem
    if model is not None:
        objects["activation"] = model.activation
    if prior is not None:
        objects["prior"] = prior
    resumption, pieces = runner.prepare_resume(run_dir, settings, objects)
    if resumption.done:
        return resumption.previous
    return runner.resume(resumption, pieces, _stream(stream, progress), checkpoint_every)


def run_task(task, *, samples, out, seed=0, batch=None, devices="all", log2_block=12,
             progress=None, stream=None, checkpoint_every=DEFAULT_EVERY):
    """G&C of any :class:`~gcsampler.core.loop.Task` into the new run directory ``out``:
    config, checkpoints, accepted rows, statistics and summary; returns the summary."""
    settings = runner.loop_settings(dict(samples=samples, seed=seed, batch=batch,
                                         devices=devices, log2_block=log2_block))
    stream = _stream(stream, progress)
    team = distributed.team()
    return rejection_run.run_task(
        task, out, settings, _task_config(task, settings, out), stream=stream,
        on_progress=rejection_run.display(settings, team, stream),
        checkpoint_every=checkpoint_every, resume_hint=_task_hint(out),
        finalize=_finalize(task))


def resume_task(run_dir, task, *, samples=None, batch=None, devices=None, progress=None,
                stream=None, checkpoint_every=DEFAULT_EVERY):
    """Continue a :func:`run_task` run with the same ``task`` from its last checkpoint (a
    larger ``samples`` draws more); returns its summary."""
    rec, summary = runner.read_run(run_dir)
    _check_same_task(rec, task, run_dir)
    recorded = rejection_run.loop_settings(rec["settings"])
    settings = recorded._replace(**{k: v for k, v in (("samples", samples), ("batch", batch),
                                                      ("devices", devices)) if v is not None})
    if settings.samples < recorded.samples:
        raise ValueError(f"cannot resume {run_dir} with samples={settings.samples}: it has "
                         f"samples={recorded.samples}, and a resumed run can only draw more")
    settings = runner.loop_settings(settings._asdict())
    if summary is not None and summary["draws"] == settings.samples:
        return summary
    return rejection_run.continue_task(
        task, run_dir, settings, _task_config(task, settings, run_dir),
        stream=_stream(stream, progress),
        checkpoint_every=checkpoint_every, resume_hint=rec["resume"], previous=rec,
        finalize=_finalize(task))


def _task_config(task, settings, run_dir):
    return {"method": rejection_run.METHOD.name, "settings": settings._asdict(),
            "task": task.describe or {"kind": task.name, "label": task.name},
            "resume": _task_hint(run_dir)}


def _task_hint(run_dir):
    return f"gcsampler.resume_task({str(run_dir)!r}, task)"


def _finalize(task):
    """Threshold tasks' summaries follow the schema; other tasks' are their own."""
    return schema.complete if "eps" in (task.describe or {}) else dict


def _check_same_task(rec, task, run_dir):
    describe = task.describe or {}
    recorded = rec["task"]
    same = (recorded.get("kind"), recorded.get("eps")) == (describe.get("kind"),
                                                           describe.get("eps"))
    if not same or record.probes_differ({"probe": recorded.get("probe", [])},
                                        {"probe": describe.get("probe", [])}):
        raise ValueError(f"{run_dir} was made with another task (its kind, eps or probe "
                         f"differ); resume it with the task it was made with")


def report(run_dir, eps=None):
    """The text ``gcsampler report`` prints: the run's table, and with ``eps`` its G&C at
    that threshold (exact at or below the run's eps, from its bins or curve above)."""
    rec, summary = runner.read_run(run_dir)
    if summary is None:
        raise files.RunDirError(runner.unfinished_message(run_dir))
    if "eps" not in rec["task"]:
        raise files.RunDirError(f"{run_dir} is a run of a {rec['task'].get('kind')} task, "
                                f"which has no table of its own; its summary.json holds "
                                f"its results")
    lines = [tables.header(runner.setting_title(rec, run_dir), summary),
             METHODS[rec["method"]].table(summary)]
    if rec["task"].get("kind") == "factorization":
        lacks = finish.missing(summary, rec["settings"].get("gd"))
        if lacks:
            lines.append(f"not computed yet: {finish.in_words(lacks)}; {rec['resume']} adds "
                         f"what is missing")
    lines += filter(None, [tables.gd_warning(summary)])
    if eps is not None:
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"--eps must be a positive finite number, got {eps}")
        result = runner.rethreshold(run_dir, eps)
        lines.append("")
        lines.append(f"re-threshold at eps={eps:g}: below the lowest stored bin edge"
                     if result is None else tables.rethreshold_table(eps, result))
    return "\n".join(lines)


class _Quiet:
    """A stream that shows nothing (``progress=False``)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _stream(stream, progress):
    """Where a run's progress line and notes go: ``stream`` (default stderr) when
    ``progress`` is true, or None and a stream was given or stderr is a terminal; else
    nowhere."""
    if progress is None:
        progress = stream is not None or progress_lib.shows_progress(None)
    return (stream if stream is not None else sys.stderr) if progress else _Quiet()
