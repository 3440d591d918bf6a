"""What each ``gcsampler`` command does with its parsed flags: thin, the work is the library's.

Every bad input ends in one line on stderr and exit code 2 (:class:`~.flags.UsageError`,
or a run directory's :class:`~gcsampler.runs.files.RunDirError`); nothing on disk is
touched before the input has been checked.
"""

import dataclasses
import math
import pathlib

import jax
import numpy as np

from gcsampler import plots
from gcsampler.cli import flags
from gcsampler.cli.flags import UsageError
from gcsampler.runs import (aggregate, api, classify_study, config, distributed, files,
                            presets, runner, sweep, sweep_results)
from gcsampler.runs.methods import METHODS


def run_config(values):
    """The RunConfig described by parsed `run` flags (validated, for its processes too)."""
    given = flags.settings(values, [f.name for f in dataclasses.fields(config.RunConfig)], "run")
    try:
        cfg = config.RunConfig(**given).validate()
        METHODS[cfg.method].validate(cfg, values.num_processes)
        return cfg
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None


def _pieces(cfg, command="run"):
    """The pieces ``cfg`` names (after joining a multi-process run: it uses a device)."""
    try:
        return runner.prepare(cfg)
    except ValueError as err:
        raise UsageError(f"gcsampler {command}: {err}") from None


def _join(values, command="run"):
    """Join a multi-process run if the flags ask for one (before anything uses a device)."""
    if (values.num_processes, values.process_id, values.coordinator_address) == (1, 0, None):
        return
    if values.num_processes > 1 and values.out is None and values.resume is None:
        raise UsageError(f"gcsampler {command}: --out is required with --num_processes > 1: "
                         f"every process must write the same directory")
    try:
        distributed.initialize(values.coordinator_address, values.num_processes,
                               values.process_id)
    except ValueError as err:
        raise UsageError(f"gcsampler {command}: {err}") from None
    except RuntimeError as err:  # no coordinator, a timeout
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise files.RunDirError(f"cannot join the run at --coordinator_address "
                                f"{values.coordinator_address}: {reason}") from None


def _check_devices(requested, command="run"):
    available = jax.local_devices()
    if requested != "all" and int(requested) > len(available):
        raise UsageError(f"gcsampler {command}: --devices must be 'all' or an integer in "
                         f"[1, {len(available)}] "
                         f"(this machine has {len(available)} {available[0].platform} "
                         f"device(s)), got {requested}")


def _checkpoint_every(values, command):
    every = values.checkpoint_every
    if not (math.isfinite(every) and every >= 0):
        raise UsageError(f"gcsampler {command}: --checkpoint_every must be a non-negative "
                         f"number of seconds, got {every}")
    return every


def run_command(args, values):
    every = _checkpoint_every(values, "run")
    if values.resume is not None:
        return _resume_run(values, every)
    cfg = run_config(values)
    _join(values)
    pieces = _pieces(cfg)
    _check_devices(cfg.devices)
    out = _out_dir(values, cfg.tag())
    _print_results(runner.execute(cfg, out, checkpoint_every=every, pieces=pieces), out)
    return 0


def _out_dir(values, tag):
    """``--out``, or ``runs/<time>-<tag>`` when it is not given."""
    if values.out:
        return pathlib.Path(values.out)
    return pathlib.Path("runs") / files.default_run_name(tag)


def _resume_run(values, every):
    """`gcsampler run --resume RUN`: continue RUN with the flags given explicitly."""
    if values.out is not None:
        raise UsageError("gcsampler run: --out cannot be combined with --resume (a resumed run "
                         "stays in its directory)")
    fields = [f.name for f in dataclasses.fields(config.RunConfig)]
    given = flags.settings(values, [name for name in fields if values[name].present], "run")
    _join(values)
    try:
        resumption, pieces = runner.prepare_resume(values.resume, given)
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None
    _check_devices(resumption.cfg.devices)
    if resumption.done:
        print(f"{values.resume} is complete ({resumption.cfg.samples:,} draws"
              f"{', GD included' if resumption.cfg.gd else ''}): nothing to resume. "
              f"`gcsampler report {values.resume}` shows its results; a larger --samples "
              f"draws more.")
        return 0
    _print_results(runner.resume(resumption, pieces, checkpoint_every=every), resumption.run_dir)
    return 0


def _print_results(summary, run_dir):
    team = distributed.team()
    if not team.leader:
        print(f"process {team.process} of {team.processes}: done; process 0 reports the "
              f"results of {run_dir}")
        return
    print(METHODS[summary["method"]].table(summary))
    _write_plots(run_dir)
    print(f"\nNext: `gcsampler report {run_dir} --eps E` gives G&C at another threshold; "
          f"`gcsampler run --help` shows how to scale up (install with the [cuda] extra to use "
          f"a GPU).")


def report_command(args, values):
    try:
        print(api.report(args.run_dir, values.eps))
    except ValueError as err:
        raise UsageError(f"gcsampler report: {err}") from None
    if values.plot:
        _write_plots(args.run_dir)
    return 0


def _write_plots(run_dir):
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_run(run_dir):
        print(f"figure: {path}")


def sweep_spec(values):
    """The SweepSpec described by parsed `sweep` flags (every cell validated)."""
    fields = [f.name for f in dataclasses.fields(config.RunConfig)
              if f.name not in sweep.NOT_SWEEPABLE]
    given = flags.settings(values, [name for name in fields if values[name].present], "sweep")
    try:
        if values.preset is not None:
            preset = presets.get(values.preset)
            axis, axis_values = preset.axis, preset.values
            settings, per_value, overrides = dict(preset.settings), dict(preset.per_value), given
            title = f"{preset.figure}: {preset.description} ({preset.name})"
        elif values.vary is None:
            raise ValueError("give --preset NAME (see --list_presets) or --vary AXIS=V1,V2,...")
        else:
            axis, per_value, overrides, title = None, {}, {}, None
            settings = flags.settings(values, fields, "sweep")
        if values.vary is not None:
            axis, _, text = values.vary.partition("=")
            axis_values = sweep.parse_values(axis.strip(), text)
            axis = axis.strip()
            per_value = per_value if values.preset and axis == preset.axis else {}
            title = title or f"{axis} sweep"
        spec = sweep.SweepSpec(axis=axis, values=axis_values, seeds=values.seeds,
                               settings=settings, per_value=per_value, overrides=overrides,
                               scale=values.scale, preset=values.preset, title=title)
        sweep.expand(spec)
    except ValueError as err:
        raise UsageError(f"gcsampler sweep: {err}") from None
    return spec


def sweep_command(args, values):
    if values.list_presets:
        print(presets.listing())
        return 0
    spec = sweep_spec(values)
    _check_devices(values.devices, command="sweep")
    name = spec.preset or f"{spec.axis}"
    out = _out_dir(values, f"sweep-{name}")
    sweep.run_sweep(spec, out)
    record, rows = sweep_results.load_sweep(out)
    print(f"\n{spec.title}")
    _report_sweep(out, record, rows, "gen_loss", spec.title, stem="gen_loss")
    _report_sweep(out, record, rows, "acceptance_rate", spec.title, stem="acceptance_rate",
                  table=False)
    _plot_curves(out, record, spec.title)
    print(f"results: {out / sweep_results.RESULTS_FILE}")
    return 0


def classify_command(args, values):
    if values.list_presets:
        print(classify_study.preset_listing())
        return 0
    every = _checkpoint_every(values, "classify")
    if values.resume is not None:
        return _resume_study(values, every)
    cfg = classify_config(values)
    _join(values, "classify")
    _check_devices(cfg.devices, command="classify")
    name = values.preset or cfg.task
    out = _out_dir(values, f"classify-{name}")
    _print_study(_run_study(cfg, out, every, resume=False), out, cfg)
    return 0


def _run_study(cfg, out, every, resume):
    try:
        todo = classify_study.make_cells(cfg)
    except (ValueError, ImportError) as err:  # ImportError: digits without scikit-learn
        raise UsageError(f"gcsampler classify: {err}") from None
    return classify_study.run(cfg, out, cells=todo, resume=resume, checkpoint_every=every)


def _resume_study(values, every):
    """`gcsampler classify --resume STUDY`: continue STUDY (--batch and --devices may
    change, other flags must agree with its study.json)."""
    if values.out is not None or values.preset is not None:
        raise UsageError("gcsampler classify: --out and --preset cannot be combined with "
                         "--resume (a resumed study keeps its directory and settings)")
    out = pathlib.Path(values.resume)
    recorded = classify_study.load_config(out)
    fields = [f.name for f in dataclasses.fields(classify_study.StudyConfig)]
    given = _study_settings(values, [name for name in fields if values[name].present])
    changed = [name for name, value in given.items()
               if name not in ("batch", "devices") and value != getattr(recorded, name)]
    if changed:
        raise UsageError(f"gcsampler classify: cannot resume {out} with "
                         f"{' '.join(f'--{n}={values[n].value}' for n in changed)}: it ran with "
                         f"{' '.join(f'--{n}={getattr(recorded, n)}' for n in changed)}; start "
                         f"a new study instead")
    cfg = dataclasses.replace(recorded, **{k: v for k, v in given.items()
                                           if k in ("batch", "devices")})
    _join(values, "classify")
    _check_devices(cfg.devices, command="classify")
    _print_study(_run_study(cfg, out, every, resume=True), out, cfg)
    return 0


def _print_study(rows, out, cfg):
    team = distributed.team()
    if not team.leader:
        print(f"process {team.process} of {team.processes}: done; process 0 reports the "
              f"results of {out}")
        return
    print(classify_study.table(rows))
    print(f"results: {out / classify_study.RESULTS_FILE}")
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_study(rows, out, cfg):
        print(f"figure: {path}")


def classify_config(values):
    """The StudyConfig of parsed `classify` flags: preset, then the flags given."""
    settings = {}
    if values.preset is not None:
        if values.preset not in classify_study.PRESETS:
            raise UsageError(f"gcsampler classify: --preset must be one of "
                             f"{', '.join(classify_study.PRESETS)}, got {values.preset!r}")
        settings.update(classify_study.PRESETS[values.preset][1])
    fields = [f.name for f in dataclasses.fields(classify_study.StudyConfig)]
    settings.update(_study_settings(values, [name for name in fields if values[name].present
                                             or name not in settings]))
    try:
        return classify_study.StudyConfig(**settings).validate()
    except ValueError as err:
        raise UsageError(f"gcsampler classify: {err}") from None


def _study_settings(values, names):
    """StudyConfig settings from the flags ``names``, parsed (counts, sizes, bins)."""
    settings = flags.parsed_counts({name: values[name].value for name in names}, "classify")
    try:
        if isinstance(settings.get("n_train"), str):
            settings["n_train"] = tuple(int(v) for v in settings["n_train"].split(","))
    except ValueError:
        raise UsageError(f"gcsampler classify: --n_train must be comma-separated even integers, "
                         f"got {values.n_train!r}") from None
    try:
        if isinstance(settings.get("bins"), str):
            settings["bins"] = tuple(tuple(float(x) for x in pair.split(":"))
                                     for pair in settings["bins"].split(","))
    except ValueError:
        raise UsageError(f"gcsampler classify: --bins must be LO:HI pairs separated by commas, "
                         f"got {values.bins!r}") from None
    return settings


def plot_command(args, values):
    if values.eps is not None and not (math.isfinite(values.eps) and values.eps > 0):
        raise UsageError(f"gcsampler plot: --eps must be a positive finite number, got "
                         f"{values.eps}")
    record, rows = sweep_results.load_sweep(args.sweep_dir, values.eps)
    if not rows:
        raise files.RunDirError(f"{args.sweep_dir} has no finished cell to plot")
    if values.y == flags.CURVES:
        if not _plot_curves(pathlib.Path(args.sweep_dir), record,
                            record.get("title") or f"{record['axis']} sweep"):
            raise UsageError(f"gcsampler plot: --y={flags.CURVES} needs a sweep made with "
                             f"--method=splitting")
        return 0
    stem = values.y + (f"_eps{values.eps:g}" if values.eps is not None else "")
    title = record.get("title") or f"{record['axis']} sweep"
    if values.eps is not None:
        title += f", re-thresholded at eps={values.eps:g}"
    _report_sweep(pathlib.Path(args.sweep_dir), record, rows, values.y, title, stem=stem)
    return 0


def _plot_curves(sweep_dir, record, title):
    """``gen_loss_vs_eps`` figures of a splitting sweep; False when it has no curves."""
    curves = sweep_results.curves(sweep_dir, record)
    if not curves:
        return False
    if not plots.available():
        print(plots.INSTALL_HINT)
        return True
    seeds = max(len(c) for c in curves.values())
    note = (f"median over {seeds} seeds, inter-quartile band; multilevel splitting" if seeds > 1
            else "one seed, its 95% intervals; multilevel splitting")
    for path in plots.plot_curves(curves, sweep_dir / flags.CURVES, axis=record["axis"],
                                  title=title, note=note):
        print(f"figure: {path}")
    return True


def _report_sweep(sweep_dir, record, rows, quantity, title, *, stem, table=True):
    """Print the median table of ``quantity`` and write its figures (PNG and PDF)."""
    if table:
        print(aggregate.median_table(rows, record["axis"], quantity))
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_sweep(rows, record["axis"], sweep_dir / stem, quantity=quantity,
                                 title=title, note=sweep_results.figure_note(record, rows)):
        print(f"figure: {path}")


def regenerate_command(args, values):
    if values.index is None:
        raise UsageError("gcsampler regenerate: --index is required")
    try:
        index = int(values.index)
    except ValueError:
        raise UsageError(f"gcsampler regenerate: --index must be a non-negative integer, "
                         f"got {values.index!r}") from None
    run_dir = pathlib.Path(args.run_dir)
    out = pathlib.Path(values.out) if values.out else run_dir / "regenerated" / f"draw_{index}.npz"
    if out.exists():
        raise UsageError(f"gcsampler regenerate: {out} already exists; choose another --out")
    try:
        layers, matrix = runner.regenerate(run_dir, index)
    except ValueError as err:
        raise UsageError(f"gcsampler regenerate: {err}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    files.save_arrays(out, index=np.uint64(index), matrix=matrix,
                      **{f"W_{i + 1}": w for i, w in enumerate(layers)})
    print(f"draw {index}: {len(layers)} layers and the end-to-end matrix written to {out}")
    return 0


