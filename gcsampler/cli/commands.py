"""What each ``gcsampler`` command does with its parsed flags: thin, the work is the library's.

Every bad input ends in one line on stderr and exit code 2 (:class:`~.flags.UsageError`,
or a run directory's :class:`~gcsampler.runs.files.RunDirError`); nothing on disk is
touched before the input has been checked.
"""

import dataclasses
import math
import pathlib
import sys

import numpy as np

from gcsampler import plots
from gcsampler.cli import flags, setup
from gcsampler.cli.flags import UsageError
from gcsampler.runs import (aggregate, api, collection, config, files, integrity, presets,
                            runner, sweep, sweep_results)
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


def run_command(args, values):
    every = setup.checkpoint_every(values, "run")
    if values.resume is not None:
        return _resume_run(values, every)
    cfg = run_config(values)
    setup.start_process(values)
    pieces = _pieces(cfg)
    setup.check_devices(cfg.devices)
    out = setup.out_dir(values, cfg.tag())
    runner.execute(cfg, out, checkpoint_every=every, pieces=pieces)
    _print_results(out)
    return 0


def _resume_run(values, every):
    """`gcsampler run --resume RUN`: continue RUN with the flags given explicitly."""
    if values.out is not None:
        raise UsageError("gcsampler run: --out cannot be combined with --resume (a resumed run "
                         "stays in its directory)")
    fields = [f.name for f in dataclasses.fields(config.RunConfig)]
    given = flags.settings(values, [name for name in fields if values[name].present], "run")
    setup.start_process(values)
    try:
        resumption, pieces = runner.prepare_resume(values.resume, given)
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None
    setup.check_devices(resumption.cfg.devices)
    if not resumption.done:
        runner.resume(resumption, pieces, checkpoint_every=every)
    elif figures := _missing_figures(resumption.run_dir):
        sys.stderr.write(f"gcsampler: {values.resume} has all its results; drawing its "
                         f"missing figures ({', '.join(figures)})\n")
    else:
        print(f"{values.resume} is complete ({resumption.cfg.samples:,} draws"
              f"{', GD included' if resumption.cfg.gd else ''}): nothing to resume. "
              f"`gcsampler report {values.resume}` shows its results; a larger --samples "
              f"draws more.")
        return 0
    _print_results(resumption.run_dir)
    return 0


def _missing_figures(run_dir):
    """The figures a finished run lacks that can be drawn here (none without matplotlib)."""
    return plots.missing_figures(run_dir) if plots.available() else []


def _print_results(run_dir):
    if not setup.leader(run_dir):
        return
    print(api.report(run_dir))
    _write_plots(run_dir)
    print(f"\nNext: `gcsampler report {run_dir} --eps E` gives G&C at another threshold; "
          f"`gcsampler run --help` shows how to scale up (install with the [cuda] extra to use "
          f"a GPU).")


def report_command(args, values):
    if (pathlib.Path(args.run_dir) / sweep_results.SWEEP_FILE).is_file():
        raise UsageError(f"gcsampler report: {args.run_dir} is a sweep directory: `gcsampler "
                         f"plot {args.run_dir}` redraws its figures and `gcsampler table "
                         f"{args.run_dir}` lists its runs")
    try:
        print(api.report(args.run_dir, values.eps))
    except ValueError as err:
        raise UsageError(f"gcsampler report: {err}") from None
    if values.plot:
        _write_plots(args.run_dir, log_y=not values.linear)
    return 0


def _write_plots(run_dir, log_y=True):
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_run(run_dir, log_y=log_y):
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
    resume = values.resume is not None
    out, spec = _resumed_sweep(values) if resume else (None, sweep_spec(values))
    setup.use_compilation_cache(values, "sweep")
    if not resume:
        setup.check_devices(values.devices, command="sweep")
        out = setup.out_dir(values, f"sweep-{spec.preset or spec.axis}")
    sweep.run_sweep(spec, out, resume=resume)
    record, rows = sweep_results.load_sweep(out)
    print(f"\n{spec.title}")
    _report_sweep(out, record, rows, "gen_loss", spec.title, stem="gen_loss",
                  linear=values.linear)
    _report_sweep(out, record, rows, "acceptance_rate", spec.title, stem="acceptance_rate",
                  table=False, linear=values.linear)
    _plot_curves(out, record, spec.title, linear=values.linear)
    print(f"results: {out / sweep_results.RESULTS_FILE}")
    return 0


def _resumed_sweep(values):
    """``(directory, spec)`` of `gcsampler sweep --resume SWEEP`: the spec its sweep.json
    describes, with --seeds if given (every cell validated)."""
    kept = ("resume", "seeds", "compilation_cache", "linear", "list_presets")
    given = [f"--{row[0]}" for row in flags.sweep_flag_rows()
             if row[0] not in kept and values[row[0]].present]
    if given:
        raise UsageError(f"gcsampler sweep: --resume takes its settings from the sweep's "
                         f"{sweep.SWEEP_FILE}; of the others only --seeds (to add seeds) may be "
                         f"given with it, got {', '.join(given)}")
    out = pathlib.Path(values.resume)
    if not (out / sweep.SWEEP_FILE).is_file():
        raise files.RunDirError(f"{out} is not a gcsampler sweep directory (no "
                                f"{sweep.SWEEP_FILE})")
    try:
        spec = sweep.spec_from_record(files.read_json(out / sweep.SWEEP_FILE),
                                      values.seeds if values["seeds"].present else None)
        cells = sweep.expand(spec)
    except ValueError as err:
        raise UsageError(f"gcsampler sweep: {err}") from None
    except (KeyError, TypeError) as err:
        raise files.RunDirError(f"{out}/{sweep.SWEEP_FILE} is not a valid sweep record "
                                f"(bad or missing {err})") from None
    setup.check_devices(cells[0].cfg.devices, command="sweep")
    return out, spec


def plot_command(args, values):
    if values.eps is not None and not (math.isfinite(values.eps) and values.eps > 0):
        raise UsageError(f"gcsampler plot: --eps must be a positive finite number, got "
                         f"{values.eps}")
    record, rows = sweep_results.load_sweep(args.sweep_dir, values.eps)
    if not rows:
        raise files.RunDirError(f"{args.sweep_dir} has no finished cell to plot")
    if values.y == flags.CURVES:
        if not _plot_curves(pathlib.Path(args.sweep_dir), record,
                            record.get("title") or f"{record['axis']} sweep", values.linear):
            raise UsageError(f"gcsampler plot: --y={flags.CURVES} needs a sweep made with "
                             f"--method=splitting")
        return 0
    stem = values.y + (f"_eps{values.eps:g}" if values.eps is not None else "")
    title = record.get("title") or f"{record['axis']} sweep"
    if values.eps is not None:
        title += f", re-thresholded at eps={values.eps:g}"
    _report_sweep(pathlib.Path(args.sweep_dir), record, rows, values.y, title, stem=stem,
                  linear=values.linear)
    return 0


def _plot_curves(sweep_dir, record, title, linear=False):
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
                                  title=title, note=note, log_y=not linear):
        print(f"figure: {path}")
    return True


def _report_sweep(sweep_dir, record, rows, quantity, title, *, stem, table=True,
                  linear=False):
    """Print the median table of ``quantity`` and write its figures (PNG and PDF)."""
    if table:
        print(aggregate.median_table(rows, record["axis"], quantity))
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_sweep(rows, record["axis"], sweep_dir / stem, quantity=quantity,
                                 title=title, note=sweep_results.figure_note(record, rows),
                                 log_y=False if linear else None):
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
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        files.save_arrays(out, index=np.uint64(index), matrix=matrix,
                          **{f"W_{i + 1}": w for i, w in enumerate(layers)})
    except FileExistsError as err:  # a file where a directory of the path should be
        raise files.WriteError(f"cannot write {out}: {err.filename} is a file, not a "
                               f"directory; choose another --out") from None
    except OSError as err:
        raise files.WriteError(f"cannot write {out}: {err.strerror or err}; choose another "
                               f"--out") from None
    except files.WriteError as err:
        raise files.WriteError(f"{err}; choose another --out") from None
    print(f"draw {index}: {len(layers)} layers and the end-to-end matrix written to {out}")
    return 0


def verify_command(args, values):
    """`gcsampler verify RUN [--repair]`: check (and repair) a run; exit 1 if damaged."""
    run_dir = pathlib.Path(args.run_dir)
    report = integrity.verify(run_dir)
    if values.repair and not report.intact:
        print("\n".join(report.lines()))
        report = integrity.repair(run_dir, runner.rejection_task, sys.stderr)
        print("after repair:")
    print("\n".join(report.lines()))
    return 0 if report.intact else 1


def table_command(args, values):
    """`gcsampler table PATH...`: the runs under PATHs in one table (and CSV)."""
    csv_path = values.csv and pathlib.Path(values.csv)
    if csv_path and (csv_path.exists() or not csv_path.parent.is_dir()):
        raise UsageError(f"gcsampler table: --csv must name a new file in an existing "
                         f"directory, got {values.csv}")
    rows = collection.run_rows(args.paths)
    print(collection.text_table(rows))
    if csv_path:
        collection.write_csv(rows, csv_path)
        print(f"wrote {csv_path}: {len(rows)} runs x {len(collection.columns(rows))} columns")
    return 0
