"""The ``gcsampler`` command: run, report, regenerate.

Flags are absl flags (so ``--flagfile`` works), parsed per subcommand through
``absl.flags.argparse_flags``. Every bad input ends in one line on stderr and
exit code 2; nothing on disk is touched before the input has been checked.
"""

import collections
import dataclasses
import math
import pathlib
import sys

import numpy as np
from absl import flags
from absl.flags import argparse_flags

from gcsampler import (aggregate, checkpoint, config, gd, models, moves, presets, priors,
                       problems, progress, samplers, store, sweep)

DEFAULTS = config.RunConfig()

# (name, definer, default, help): one row per `gcsampler run` flag.
RUN_FLAGS = (
    ("task", "enum", DEFAULTS.task, "Measurement task.", problems.TASKS),
    ("rows", "integer", DEFAULTS.rows, "Rows of the matrix to recover."),
    ("cols", "integer", DEFAULTS.cols, "Columns of the matrix to recover."),
    ("rank", "integer", DEFAULTS.rank, "Rank of the ground-truth matrix."),
    ("gt_norm", "float", DEFAULTS.gt_norm, "Frobenius norm of the ground truth."),
    ("measurements", "integer", DEFAULTS.measurements,
     "Number of train measurements m (< rows*cols); the rest of the space is the test set."),
    ("problem_seed", "integer", DEFAULTS.problem_seed,
     "Seed of the ground truth and the measurements (a fresh problem per seed)."),
    ("depth", "integer", DEFAULTS.depth, "Number of layers of the factorization."),
    ("width", "integer", DEFAULTS.width, "Inner width k of the factorization."),
    ("activation", "enum", DEFAULTS.activation, "Activation between layers.", models.ACTIVATIONS),
    ("leaky_slope", "float", DEFAULTS.leaky_slope, "Negative slope of leaky_relu."),
    ("prior", "enum", DEFAULTS.prior,
     "G&C prior: gaussian N(0, 1/c) or uniform U(-1,1)/sqrt(c), c = a layer's output columns.",
     priors.PRIORS),
    ("normalize", "boolean", DEFAULTS.normalize,
     "Divide each drawn end-to-end matrix by its Frobenius norm (+1e-6), as in the depth sweeps."),
    ("method", "enum", DEFAULTS.method,
     "'rejection': plain Guess & Check, --samples draws; 'splitting': adaptive multilevel "
     "splitting, exact samples below eps and log p = log P(train loss < eps) with a "
     "confidence interval, at rarities far beyond rejection's reach (p = 1e-15 and below).",
     config.METHODS),
    ("sampler", "enum", DEFAULTS.sampler,
     "How draws are generated, all exactly from the prior: 'auto' picks the fastest exact one; "
     "'direct' draws every weight; 'last_layer' integrates the last layer out (Gaussian prior, "
     "width > rows); 'wishart' draws linear networks at a cost independent of the width "
     "(Gaussian prior, width >= rows).", samplers.SAMPLERS),
    ("eps", "float", DEFAULTS.eps, "Accept a draw when its train loss is strictly below eps."),
    ("samples", "string", str(DEFAULTS.samples),
     "Number of G&C draws; scientific notation is accepted (1e8)."),
    ("seed", "integer", DEFAULTS.seed, "Run seed: draw i is a pure function of (seed, i)."),
    ("batch", "string", "auto",
     "Draws per device step ('auto': sized from device memory); rounded down to whole blocks, "
     "or, below one block, evaluated in chunks of this many draws."),
    ("devices", "string", DEFAULTS.devices, "Local devices to shard draws over: 'all' or a count."),
    ("log2_block", "integer", DEFAULTS.log2_block,
     "Log2 of the block size, the unit of bitwise-reproducible statistics."),
    ("particles", "integer", DEFAULTS.particles,
     "Splitting: particles per replicate (16384 to 65536 on a GPU)."),
    ("replicates", "integer", DEFAULTS.replicates,
     "Splitting: independent particle systems run together (shared out among the "
     "--num_processes processes); their spread gives log p's confidence interval."),
    ("moves", "string", DEFAULTS.moves,
     "Splitting: moves per particle per level: 'auto' (twice the measured decorrelation "
     "time) or a fixed count."),
    ("move", "enum", DEFAULTS.move,
     "Splitting: move kernel, 'ess' (elliptical slice) or 'pcn' (preconditioned "
     "Crank-Nicolson); the Gaussian prior adds moves along the level set after it "
     "('fiber', or 'cone' with --normalize).", moves.MOVES),
    ("gd", "boolean", DEFAULTS.gd, "Also run the gradient-descent baseline (--nogd to skip)."),
    ("gd_optimizer", "enum", DEFAULTS.gd_optimizer, "GD optimizer.", gd.OPTIMIZERS),
    ("gd_lr", "float", DEFAULTS.gd_lr, "GD learning rate."),
    ("gd_momentum", "float", DEFAULTS.gd_momentum,
     "GD momentum in [0, 1) for grouprmsprop and sgd (applied, unlike the paper's code)."),
    ("gd_steps", "integer", DEFAULTS.gd_steps, "GD steps per run."),
    ("gd_init_scale", "float", DEFAULTS.gd_init_scale,
     "GD initialization: PyTorch's default linear-layer init times this factor."),
    ("gd_runs", "integer", DEFAULTS.gd_runs, "Independent GD runs (seeds), vmapped together."),
    ("gd_log_every", "integer", DEFAULTS.gd_log_every, "Steps between logged GD losses."),
    ("out", "string", None, "Run directory to create (default: runs/<time>-<setting>)."),
)


# `gcsampler run` flags that are not settings of a run (so not sweep flags either).
RUN_CONTROL_FLAGS = (
    ("resume", "string", None,
     "Continue the run in this directory from its last checkpoint (after a stop, kill or "
     "crash), with the same results as a run without a stop. Its settings come from its "
     "config.json; flags given with --resume must agree with them, except --samples (larger: "
     "draw more), --batch, --devices and, until GD has run, the GD flags. A finished run says "
     "so."),
    ("checkpoint_every", "float", checkpoint.DEFAULT_EVERY,
     "Seconds between checkpoints of G&C progress (0: after every device call); a killed run "
     "loses at most this much work plus one device call."),
    ("num_processes", "integer", 1,
     "Processes of a multi-process run (jax.distributed), e.g. one per machine: each draws its "
     "own share of the draws (with --method=splitting: of the --replicates) on its local "
     "devices into its own part of --out, which must be on a file system they share; process "
     "0 combines the statistics and runs GD. Start every process with the same flags plus its "
     "--process_id."),
    ("process_id", "integer", 0, "This process's number in a multi-process run, 0 to "
                                 "--num_processes - 1."),
    ("coordinator_address", "string", None,
     "HOST:PORT where process 0 of a multi-process run listens; the same for every process."),
)


class ArgumentParser(argparse_flags.ArgumentParser):
    """argparse_flags parser whose errors are one line and exit with code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _flag_values(rows):
    values = flags.FlagValues()
    for name, kind, default, help_text, *choices in rows:
        define = getattr(flags, f"DEFINE_{kind}")
        if default is not None:
            help_text = f"{help_text} (default: {default})"
        if kind == "enum":
            define(name, default, choices[0], help_text, flag_values=values)
        else:
            define(name, default, help_text, flag_values=values)
        # argparse_flags shows help only for key flags of the main module.
        values.register_key_flag_for_module(sys.argv[0], values[name])
    return values


def _sweep_flag_rows():
    """`gcsampler run`'s flags minus the seeds (the sweep sets them), plus the sweep's own."""
    rows = []
    for row in RUN_FLAGS:
        if row[0] in sweep.NOT_SWEEPABLE:
            continue
        if row[0] == "gd_runs":
            row = (row[0], row[1], 1, "Independent GD runs per seed (the paper: 1).")
        if row[0] == "out":
            row = (row[0], row[1], None, "Sweep directory to create (default: runs/<time>-sweep-<name>).")
        rows.append(row)
    return (
        ("preset", "string", None, "Run one of the paper's experiments (see --list_presets); "
                                   "flags given explicitly override its settings."),
        ("list_presets", "boolean", False, "List the presets and exit."),
        ("vary", "string", None, "The swept setting and its values: AXIS=V1,V2,... "
                                 "(e.g. width=5,10,20 or activation=linear,tanh)."),
        ("seeds", "integer", presets.SEEDS,
         "Seeds per value; seed s is a fresh problem (problem seed s) and G&C/GD seed s."),
        ("scale", "float", 1.0, "Multiply every cell's number of draws by this factor in (0, 1] "
                                "for a quick look; results.csv and the figures say so."),
        *rows,
    )


def _classify_flag_rows():
    """`gcsampler classify` flags: the study's settings, a preset and the output."""
    from gcsampler.classify import data, networks, study

    d = study.StudyConfig()
    bins = ",".join(f"{lo:g}:{hi:g}" for lo, hi in d.bins)
    return (
        ("preset", "string", None, "Run one of the paper-shaped studies (see --list_presets); "
                                   "flags given explicitly override its settings."),
        ("list_presets", "boolean", False, "List the presets and exit."),
        ("task", "enum", d.task, "Data set: the 2-D kink or slabs sets, or digits 0 vs 1 "
                                 "(needs the [digits] extra).", tuple(data.TASKS)),
        ("n_train", "string", ",".join(map(str, d.n_train)),
         "Training-set sizes, comma-separated even numbers (balanced classes)."),
        ("seeds", "integer", d.seeds, "Data seeds per size: seed s is a fresh train/test split "
                                      "and the G&C seed."),
        ("model", "enum", d.model, "Network: an MLP, a linear model or a LeNet-style CNN "
                                   "(images).", study.MODELS),
        ("depth", "integer", d.depth, "Hidden layers of the MLP."),
        ("width", "integer", d.width, "Units per hidden layer of the MLP."),
        ("activation", "enum", d.activation, "MLP activation.", tuple(networks.ACTIVATIONS)),
        ("lenet_width", "float", d.lenet_width, "LeNet width factor (channels and units "
                                                "relative to LeNet-5)."),
        ("prior", "enum", d.prior, "G&C prior: every weight and bias U(-1, 1) (the paper's), or "
                                   "N(0, 1/fan_in).", networks.PRIORS),
        ("bins", "string", bins, "Training cross-entropy bins LO:HI,...; a draw with 100% "
                                 "training accuracy is accepted into each bin holding its loss."),
        ("samples", "string", str(d.samples), "G&C draws per cell (1e7 is fine)."),
        ("batch", "string", "auto", "Draws per device step ('auto': sized from memory)."),
        ("devices", "string", d.devices, "Local devices to shard draws over: 'all' or a count."),
        ("log2_block", "integer", d.log2_block, "Log2 of the block size."),
        ("baseline", "enum", d.baseline, "Baseline on the same network (SGD, Adam, or greedy "
                                         "random search, a zeroth-order method), stopped at 100% "
                                         "training accuracy below each bin's upper edge.",
         study.BASELINES),
        ("baseline_lr", "float", d.baseline_lr, "Baseline learning rate (random_search: the "
                                                "proposal scale sigma)."),
        ("baseline_steps", "integer", d.baseline_steps, "Most baseline steps (full batch)."),
        ("baseline_runs", "integer", d.baseline_runs, "Baseline runs (seeds) per bin, vmapped."),
        ("baseline_init", "enum", d.baseline_init, "Baseline initialization: PyTorch's default, "
                                                   "or the G&C prior.", ("pytorch", "uniform")),
        ("out", "string", None, "Study directory to create (default: runs/<time>-classify-<name>)."),
    )


CURVES = "gen_loss_vs_eps"
REPORT_FLAGS = (
    ("eps", "float", None, "Also report G&C at this threshold: exact from the accepted rows "
                           "at or below the run's eps, from the train-loss bins above it."),
    ("plot", "boolean", False, "(Re)write the run's figures (losses.png, gd_curves.png)."),
)
PLOT_FLAGS = (
    ("eps", "float", None, "Re-threshold every cell at this eps first (exact at or below the "
                           "runs' eps, from the train-loss bins above it)."),
    ("y", "enum", "gen_loss", "What to plot against the swept setting; gen_loss_vs_eps (a "
                              "--method splitting sweep): log p and the G&C gen loss against "
                              "eps, one line per value.",
     (*aggregate.QUANTITY_NAMES, CURVES)),
)
REGENERATE_FLAGS = (
    ("index", "string", None, "Global index of the draw to regenerate."),
    ("out", "string", None, "Output .npz (default: RUN/regenerated/draw_<index>.npz)."),
)


def build_parser():
    parser = ArgumentParser(prog="gcsampler", inherited_absl_flags=None, allow_abbrev=False,
                            description="Guess & Check sampling of deep matrix factorizations.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    _add_command(commands, "run", RUN_FLAGS + RUN_CONTROL_FLAGS, run_command,
                 "run G&C and the GD baseline, write a run directory",
                 description="Draw weight settings from the prior, keep those that fit the "
                             "training measurements (train loss < eps), and compare with "
                             "gradient descent.")
    _add_command(commands, "report", REPORT_FLAGS, report_command,
                 "print a run's results, optionally re-thresholded",
                 positional=("run_dir", "RUN"))
    _add_command(commands, "sweep", _sweep_flag_rows(), sweep_command,
                 "vary one setting over values and seeds: G&C, GD and references per cell",
                 description="Run G&C, GD and the reference solutions for every (value, seed) "
                             "cell of a sweep; write one run directory per cell, results.csv "
                             "and the figures.")
    _add_command(commands, "classify", _classify_flag_rows(), classify_command,
                 "G&C vs gradient training of small classifiers across training-set sizes",
                 description="Guess & Check on small classifiers (Chiang et al. 2023): per "
                             "training-set size and seed, the test accuracy of networks drawn "
                             "from the prior that fit the training set with a cross-entropy in "
                             "each bin, against SGD or Adam on the same network.")
    _add_command(commands, "plot", PLOT_FLAGS, plot_command,
                 "redraw a sweep's figures (another eps or y-axis)",
                 positional=("sweep_dir", "SWEEP"))
    _add_command(commands, "regenerate", REGENERATE_FLAGS, regenerate_command,
                 "write the full weights of one draw to .npz", positional=("run_dir", "RUN"))
    return parser


def _add_command(commands, name, flag_rows, handler, help_text, *, positional=None,
                 description=None):
    """A subcommand with its own absl flags; ``positional`` is its one argument's (dest, metavar)."""
    values = _flag_values(flag_rows)
    command = commands.add_parser(name, help=help_text, description=description,
                                  inherited_absl_flags=values, allow_abbrev=False)
    if positional is not None:
        command.add_argument(positional[0], metavar=positional[1])
    command.set_defaults(handler=handler, flag_values=values)


def main(argv=None):
    """Entry point; returns the exit code."""
    argv = [_underscored(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    command = f"gcsampler {argv[0]}" if argv and not argv[0].startswith("-") else "gcsampler"
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args, args.flag_values)
    except UsageError as err:
        message = str(err)
        if message.startswith("gcsampler: "):  # errors found by the top-level parser
            message = f"{command}: {message[len('gcsampler: '):]}"
        _fail(message, 2)
    except (store.RunDirError, flags.Error) as err:
        _fail(f"{command}: {err}", 2)
    except checkpoint.Interrupted as err:
        _fail(f"{command}: {err}", 128 + err.signal)
    except KeyboardInterrupt:
        _fail(f"{command}: interrupted", 130)


def _underscored(arg):
    """``--list-presets`` -> ``--list_presets``: flags may be written with - or _."""
    if not arg.startswith("--"):
        return arg
    name, equals, value = arg[2:].partition("=")
    return "--" + name.replace("-", "_") + equals + value


def _fail(message, code):
    sys.stderr.write(message.splitlines()[0] if message else "error")
    sys.stderr.write("\n")
    sys.exit(code)


def parse_count(name, text, allow_auto=False, command="run"):
    """An integer flag value that may be written 1e8; 'auto' -> None where allowed."""
    if allow_auto and text == "auto":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        allowed = "a positive integer (1e8 is fine)" + (" or 'auto'" if allow_auto else "")
        raise UsageError(f"gcsampler {command}: --{name} must be {allowed}, got {text!r}")
    return int(value)


def run_config(values):
    """The RunConfig described by parsed `run` flags (validated)."""
    settings = _settings(values, [f.name for f in dataclasses.fields(config.RunConfig)], "run")
    try:
        return config.RunConfig(**settings).validate()
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None


def _join(values):
    """Join a multi-process run if the flags ask for one (before anything uses a device)."""
    if (values.num_processes, values.process_id, values.coordinator_address) == (1, 0, None):
        return
    if values.method == "splitting" and values.replicates < values.num_processes:
        raise UsageError(f"gcsampler run: --replicates must be at least --num_processes "
                         f"({values.num_processes}) with --method=splitting: every process "
                         f"runs whole replicates, got {values.replicates}")
    if values.num_processes > 1 and values.out is None and values.resume is None:
        raise UsageError("gcsampler run: --out is required with --num_processes > 1: every "
                         "process must write the same run directory")
    from gcsampler import distributed

    try:
        distributed.initialize(values.coordinator_address, values.num_processes,
                               values.process_id)
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None
    except RuntimeError as err:  # no coordinator, a timeout
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise store.RunDirError(f"cannot join the run at --coordinator_address "
                                f"{values.coordinator_address}: {reason}") from None


def _check_devices(requested, command="run"):
    import jax  # imported late: JAX_NUM_CPU_DEVICES must be read first

    available = jax.local_devices()
    if requested != "all" and int(requested) > len(available):
        raise UsageError(f"gcsampler {command}: --devices must be 'all' or an integer in "
                         f"[1, {len(available)}] "
                         f"(this machine has {len(available)} {available[0].platform} "
                         f"device(s)), got {requested}")


def run_command(args, values):
    from gcsampler import runner

    every = values.checkpoint_every
    if not (math.isfinite(every) and every >= 0):
        raise UsageError(f"gcsampler run: --checkpoint_every must be a non-negative number of "
                         f"seconds, got {every}")
    if values.resume is not None:
        return _resume_run(values, every)
    cfg = run_config(values)
    _join(values)
    _check_devices(cfg.devices)
    out = _out_dir(values, cfg.tag())
    _print_results(runner.execute(cfg, out, checkpoint_every=every), out)
    return 0


def _out_dir(values, tag):
    """``--out``, or ``runs/<time>-<tag>`` when it is not given."""
    return pathlib.Path(values.out) if values.out else pathlib.Path("runs") / store.default_run_name(
        tag)


def _resume_run(values, every):
    """`gcsampler run --resume RUN`: continue RUN with the flags given explicitly."""
    from gcsampler import runner

    if values.out is not None:
        raise UsageError("gcsampler run: --out cannot be combined with --resume (a resumed run "
                         "stays in its directory)")
    fields = [f.name for f in dataclasses.fields(config.RunConfig)]
    given = _settings(values, [name for name in fields if values[name].present], "run")
    _join(values)
    try:
        resumption = runner.prepare_resume(values.resume, given)
    except ValueError as err:
        raise UsageError(f"gcsampler run: {err}") from None
    _check_devices(resumption.cfg.devices)
    if resumption.done:
        print(f"{values.resume} is complete ({resumption.cfg.samples:,} draws"
              f"{', GD included' if resumption.cfg.gd else ''}): nothing to resume. "
              f"`gcsampler report {values.resume}` shows its results; a larger --samples "
              f"draws more.")
        return 0
    _print_results(runner.resume(resumption, checkpoint_every=every), resumption.run_dir)
    return 0


def _print_results(summary, run_dir):
    from gcsampler import distributed

    team = distributed.team()
    if not team.leader:
        print(f"process {team.process} of {team.processes}: done; process 0 reports the "
              f"results of {run_dir}")
        return
    print(result_table(summary))
    _write_plots(run_dir)
    if summary.get("method") == "splitting":
        print(f"\nNext: `gcsampler report {run_dir} --eps E` gives log p and the G&C gen loss at "
              f"another threshold; curve.csv has them from the prior down to eps.")
        return
    print(f"\nNext: `gcsampler report {run_dir} --eps E` re-thresholds; scale up with --samples "
          f"1e8 (install with the [cuda] extra to use a GPU).")


def report_command(args, values):
    from gcsampler import runner

    cfg, summary = runner.load_run(args.run_dir)
    if summary is None:
        raise store.RunDirError(runner.unfinished_message(args.run_dir, cfg))
    print(result_table(summary))
    if cfg.gd and not runner.gd_ran(summary):
        print(f"GD has not run yet: `gcsampler run --resume {args.run_dir}` runs it")
    if values.eps is not None:
        if not (math.isfinite(values.eps) and values.eps > 0):
            raise UsageError(f"gcsampler report: --eps must be a positive finite number, "
                             f"got {values.eps}")
        result = runner.rethreshold(args.run_dir, values.eps)
        print()
        if result is None:
            print(f"re-threshold at eps={values.eps:g}: below the lowest stored bin edge")
        else:
            print(rethreshold_table(values.eps, result))
    if values.plot:
        _write_plots(args.run_dir)
    return 0


def _write_plots(run_dir):
    from gcsampler import plots

    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_run(run_dir):
        print(f"figure: {path}")


def sweep_spec(values):
    """The SweepSpec described by parsed `sweep` flags (every cell validated)."""
    fields = [f.name for f in dataclasses.fields(config.RunConfig)
              if f.name not in sweep.NOT_SWEEPABLE]
    given = _settings(values, [name for name in fields if values[name].present], "sweep")
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
            settings = _settings(values, fields, "sweep")
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


def _settings(values, names, command):
    """RunConfig settings from the flags ``names``, with draw counts parsed (1e8 -> int)."""
    return _parsed_counts({name: values[name].value for name in names}, command)


def _parsed_counts(settings, command):
    """``settings`` with the draw counts given as text (``samples``, ``batch``) parsed."""
    for name, allow_auto in (("samples", False), ("batch", True)):
        if isinstance(settings.get(name), str):
            settings[name] = parse_count(name, settings[name], allow_auto, command)
    return settings


def sweep_command(args, values):
    if values.list_presets:
        print(presets.listing())
        return 0
    spec = sweep_spec(values)
    _check_devices(values.devices, command="sweep")
    name = spec.preset or f"{spec.axis}"
    out = _out_dir(values, f"sweep-{name}")
    sweep.run(spec, out)
    record, rows = sweep.load(out)
    print(f"\n{spec.title}")
    _report_sweep(out, record, rows, "gen_loss", spec.title, stem="gen_loss")
    _report_sweep(out, record, rows, "acceptance_rate", spec.title, stem="acceptance_rate",
                  table=False)
    _plot_curves(out, record, spec.title)
    print(f"results: {out / sweep.RESULTS_FILE}")
    return 0


def classify_command(args, values):
    from gcsampler.classify import study

    if values.list_presets:
        print(study.preset_listing())
        return 0
    cfg = classify_config(values)
    _check_devices(cfg.devices, command="classify")
    name = values.preset or cfg.task
    out = _out_dir(values, f"classify-{name}")
    try:
        todo = study.make_cells(cfg)
    except (ValueError, ImportError) as err:  # ImportError: digits without scikit-learn
        raise UsageError(f"gcsampler classify: {err}") from None
    rows = study.run(cfg, out, cells=todo)
    print(study.table(rows))
    print(f"results: {out / study.RESULTS_FILE}")
    for path in sorted(out.glob("test_accuracy.*")):
        print(f"figure: {path}")
    return 0


def classify_config(values):
    """The StudyConfig of parsed `classify` flags: preset, then the flags given."""
    from gcsampler.classify import study

    settings = {}
    if values.preset is not None:
        if values.preset not in study.PRESETS:
            raise UsageError(f"gcsampler classify: --preset must be one of "
                             f"{', '.join(study.PRESETS)}, got {values.preset!r}")
        settings.update(study.PRESETS[values.preset][1])
    fields = [f.name for f in dataclasses.fields(study.StudyConfig)]
    for name in fields:
        if values[name].present or name not in settings:
            settings[name] = values[name].value
    _parsed_counts(settings, "classify")
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
    try:
        return study.StudyConfig(**settings).validate()
    except ValueError as err:
        raise UsageError(f"gcsampler classify: {err}") from None


def plot_command(args, values):
    if values.eps is not None and not (math.isfinite(values.eps) and values.eps > 0):
        raise UsageError(f"gcsampler plot: --eps must be a positive finite number, got {values.eps}")
    record, rows = sweep.load(args.sweep_dir, values.eps)
    if not rows:
        raise store.RunDirError(f"{args.sweep_dir} has no finished cell to plot")
    if values.y == CURVES:
        if not _plot_curves(pathlib.Path(args.sweep_dir), record,
                            record.get("title") or f"{record['axis']} sweep"):
            raise UsageError(f"gcsampler plot: --y={CURVES} needs a sweep made with "
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
    from gcsampler import plots

    curves = sweep.curves(sweep_dir, record)
    if not curves:
        return False
    if not plots.available():
        print(plots.INSTALL_HINT)
        return True
    seeds = max(len(c) for c in curves.values())
    note = (f"median over {seeds} seeds, inter-quartile band; multilevel splitting" if seeds > 1
            else "one seed, its 95% intervals; multilevel splitting")
    for path in plots.plot_curves(curves, sweep_dir / CURVES, axis=record["axis"], title=title,
                                  note=note):
        print(f"figure: {path}")
    return True


def _report_sweep(sweep_dir, record, rows, quantity, title, *, stem, table=True):
    """Print the median table of ``quantity`` and write its figures (PNG and PDF)."""
    from gcsampler import plots

    if table:
        print(aggregate.median_table(rows, record["axis"], quantity))
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_sweep(rows, record["axis"], sweep_dir / stem, quantity=quantity,
                                 title=title, note=sweep.figure_note(record, rows)):
        print(f"figure: {path}")


def regenerate_command(args, values):
    from gcsampler import runner

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
    store.save_arrays(out, index=np.uint64(index), matrix=matrix,
                      **{f"W_{i + 1}": w for i, w in enumerate(layers)})
    print(f"draw {index}: {len(layers)} layers and the end-to-end matrix written to {out}")
    return 0


def _fmt(x, spec=".4g"):
    return "missing" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def result_table(s):
    """The short end-of-run table."""
    if s.get("method") == "splitting":
        return splitting_table(s)
    lo, hi = s["acceptance_ci95"]
    rows = [
        ("acceptance", f"{s['accepted']:,} / {s['draws']:,} = {_fmt(s['acceptance_rate'], '.3g')} "
                       f"(95% CI {_fmt(lo, '.3g')} .. {_fmt(hi, '.3g')})"),
        ("G&C gen loss", f"{_fmt(s['gnc_gen_loss_mean'])} ± {_fmt(s['gnc_gen_loss_stderr'], '.2g')}"
         if s["accepted"] else f"missing: {s.get('gnc_message', 'no draw was accepted')}"),
        ("prior gen loss", f"{_fmt(s['prior_gen_loss_mean'])} ± "
                           f"{_fmt(s['prior_gen_loss_stderr'], '.2g')}"),
        *_gd_rows(s),
        ("non-finite draws", f"{s['nonfinite']:,}"),
        ("throughput", f"{progress.format_count(s.get('samples_per_second') or 0)} samples/s "
                       f"({s.get('seconds', 0):.1f} s)"),
        ("run directory", s.get("run_dir", "")),
    ]
    return _table(rows)


def _table(rows):
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _log_p(log_p, lo, hi):
    """'-25.06 (95% CI -25.2 .. -24.9), p = 1.3e-11'."""
    p = "" if log_p is None or not math.isfinite(log_p) else f", p = {math.exp(log_p):.3g}"
    return f"{_fmt(log_p)} (95% CI {_fmt(lo)} .. {_fmt(hi)}){p}"


def _gd_rows(s):
    return [
        ("GD gen loss", f"{_fmt(s.get('gd_gen_loss'))}"
                        + (f" (mean of {len(s['gd_gen_loss_runs'])} runs)"
                           if s.get("gd_gen_loss_runs") else " (GD not run)")),
        ("reference gen loss", f"min nuclear norm {_fmt(s.get('min_nuclear_gen_loss'))}, "
                               f"min Frobenius norm {_fmt(s.get('min_frobenius_gen_loss'))}"),
    ]


def _fiber_moves(names):
    """' + 3 cone moves' for the summary's fibre-move names ('' for none)."""
    if not names:
        return ""
    return "".join(f" + {n} {name} move{'s' if n > 1 else ''}"
                   for name, n in collections.Counter(names).items())


def splitting_table(s):
    """The end-of-run table of a splitting run."""
    lo, hi = s["log_p_ci95"]
    rows = [
        ("log p", f"{_log_p(s['log_p'], lo, hi)}, eps {s['eps']:g}"),
        ("log p spread", f"stderr {_fmt(s['log_p_stderr'], '.2g')} over {s['replicates']} "
                         f"replicates, formula {_fmt(s['log_p_formula_stderr'], '.2g')} "
                         f"(ratio {_fmt(s['spread_ratio'], '.2f')})"),
        ("G&C gen loss", f"{_fmt(s['gnc_gen_loss_mean'])} ± "
                         f"{_fmt(s['gnc_gen_loss_stderr'], '.2g')} ({s['accepted']:,} particles "
                         f"below eps)"),
        ("prior gen loss", _fmt(s["prior_gen_loss_mean"])),
        *_gd_rows(s),
        ("levels", f"{s['levels']}, {s['moves_per_level_mean']:.1f} moves per level (max "
                   f"{s['moves_per_level_max']}), {s['proposals_per_move']:.1f} evaluations "
                   f"per move, {s['move']} moves on {s['latent']} coordinates"
                   f"{_fiber_moves(s.get('fiber_moves', ['fiber'] if s['fiber'] else []))}"),
        ("diagnostics", f"last correlation {_fmt(s['final_correlation_max'], '.2f')}, "
                        f"{s['capped_moves']:,} capped moves, fewest ancestors at eps "
                        f"{s['ancestors_min']:,} of {s['particles']:,}"),
        ("throughput", f"{progress.format_count(s['evaluations'])} loss evaluations, "
                       f"{progress.format_count(s['evaluations_per_second'])}/s "
                       f"({s['seconds']:.1f} s)"),
        ("run directory", s.get("run_dir", "")),
    ]
    if s.get("splitting_message"):
        rows.insert(1, ("warning", s["splitting_message"]))
    return _table(rows)


def rethreshold_table(eps, r):
    if "log_p" in r:
        return (f"re-threshold at eps={eps:g} (effective {r['effective_eps']:.4g}, from "
                f"{r['source']}): log p {_log_p(r['log_p'], *r['log_p_ci95'])}, G&C gen loss "
                f"{_fmt(r['gnc_gen_loss_mean'])} ± {_fmt(r['gnc_gen_loss_stderr'], '.2g')}")
    return (f"re-threshold at eps={eps:g} (effective {r['effective_eps']:.4g}, from "
            f"{r['source']}): accepted {r['accepted']:,}, G&C gen loss "
            f"{_fmt(r['gnc_gen_loss_mean'])} ± {_fmt(r['gnc_gen_loss_stderr'], '.2g')}")
