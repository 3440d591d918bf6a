"""The flags of every ``gcsampler`` command, built from the settings they set.

``gcsampler run``'s flags are the fields of :class:`~gcsampler.runs.config.RunConfig`,
with the fields' help; choices come from the registries that define them. Values that
are counts may be written 1e8.
"""

import dataclasses
import math
import sys

from absl import flags

from gcsampler.classify import baselines, data, networks
from gcsampler.factorization import gd
from gcsampler.factorization.samplers import CHOICES as SAMPLER_CHOICES
from gcsampler.runs import aggregate, classify_study, distributed, presets, sweep
from gcsampler.runs.checkpoint import DEFAULT_EVERY
from gcsampler.runs.config import RunConfig
from gcsampler.runs.methods import METHODS
from gcsampler.splitting.moves import MOVES

# RunConfig fields whose flags take one of a fixed list of names.
ENUMS = {"method": METHODS.names, "sampler": SAMPLER_CHOICES, "move": MOVES.names,
         "gd_optimizer": gd.OPTIMIZERS}
# RunConfig fields written as counts ("1e8"; batch also "auto").
COUNTS = ("samples", "batch")


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _run_flag_rows():
    """(name, kind, default, help[, choices]): one row per RunConfig field, and --out."""
    rows = []
    for field in dataclasses.fields(RunConfig):
        name, default, help_text = field.name, field.default, field.metadata["help"]
        if name in COUNTS:
            rows.append((name, "string", "auto" if default is None else str(default), help_text))
        elif name in ENUMS:
            rows.append((name, "enum", default, help_text, ENUMS[name]))
        else:
            kind = {bool: "boolean", int: "integer", float: "float", str: "string"}[type(default)]
            rows.append((name, kind, default, help_text))
    rows.append(("out", "string", None,
                 "Run directory to create (default: runs/<time>-<setting>)."))
    return tuple(rows)


RUN_FLAGS = _run_flag_rows()


LINEAR_FLAG = ("linear", "boolean", False,
               "Linear y axes in the figures instead of the log axes they use by default.")
COMPILATION_CACHE_FLAG = (
    "compilation_cache", "string", None,
    "Directory where JAX keeps compiled programs, so that a later run of the same setting "
    "starts sampling at once (default: $GCSAMPLER_COMPILATION_CACHE if set, else "
    "~/.cache/gcsampler/jax); 'none': no cache.")
# `gcsampler run` flags that are not settings of a run (so not sweep flags either).
RUN_CONTROL_FLAGS = (
    ("resume", "string", None,
     "Continue the run in this directory from its last checkpoint (after a stop, kill or "
     "crash), with the same results as a run without a stop. Its settings come from its "
     "config.json; flags given with --resume must agree with them, except --samples (larger: "
     "draw more), --batch, --devices and, until GD has run, the GD flags. A finished run says "
     "so."),
    ("checkpoint_every", "float", DEFAULT_EVERY,
     "Seconds between checkpoints of G&C progress (0: after every device call, or every "
     "splitting level); a killed run loses at most this much work plus one device call "
     "(or level)."),
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
    ("distributed_timeout", "float", distributed.TIMEOUT,
     "Seconds within which every process of a multi-process run ends, with a one-line error, "
     "once the processes lose each other: they do not all join, or one stops responding "
     "(killed, crashed, cut off) or ends alone. Checkpoints are kept; --resume continues."),
    COMPILATION_CACHE_FLAG,
)


def _study_control_rows():
    """`gcsampler classify`'s resume, checkpoint and process flags (those of `run`)."""
    resume = ("resume", "string", None,
              "Continue the study in this directory: finished cells are kept, the cell in "
              "progress continues from its checkpoint, with the same results as a study "
              "without a stop. Its settings come from its study.json; --batch and "
              "--devices "
              "may differ.")
    return (resume, *(row for row in RUN_CONTROL_FLAGS if row[0] != "resume"))


class _FlagValues(flags.FlagValues):
    """absl FlagValues whose flagfiles must be named, be UTF-8 text and not include
    themselves: absl itself skips an empty ``--flagfile=`` or a circular one with a
    warning (so the command would run with its defaults) and lets a UnicodeDecodeError
    out of a file that is not text."""

    def _get_flag_file_lines(self, filename, parsed_file_stack=None):
        # absl reads every --flagfile, nested ones too, through this method.
        if not filename:
            raise flags.IllegalFlagValueError("--flagfile needs the name of a file")
        if filename in (parsed_file_stack or ()):
            raise flags.IllegalFlagValueError(f"--flagfile={filename} includes itself")
        try:
            return super()._get_flag_file_lines(filename, parsed_file_stack)
        except UnicodeDecodeError as err:
            raise flags.IllegalFlagValueError(
                f"--flagfile={filename} is not UTF-8 text (byte {err.start})") from None


def flag_values(rows):
    """absl FlagValues of flag rows (shown by --help); a string flag may not be given
    empty (``--out=`` would otherwise mean its default)."""
    values = _FlagValues()
    for name, kind, default, help_text, *choices in rows:
        define = getattr(flags, f"DEFINE_{kind}")
        if default is not None:
            help_text = f"{help_text} (default: {default})"
        if kind == "enum":
            define(name, default, choices[0], help_text, flag_values=values)
        else:
            define(name, default, help_text, flag_values=values)
        if kind == "string":
            flags.register_validator(name, lambda value: value != "", "must not be empty",
                                     flag_values=values)
        # argparse_flags shows help only for key flags of the main module.
        values.register_key_flag_for_module(sys.argv[0], values[name])
    return values


def sweep_flag_rows():
    """`gcsampler run`'s flags minus the seeds (the sweep sets them), plus the sweep's own."""
    rows = []
    for row in RUN_FLAGS:
        if row[0] in sweep.NOT_SWEEPABLE:
            continue
        if row[0] == "gd_runs":
            row = (row[0], row[1], 1, "Independent GD runs per seed (the paper: 1).")
        if row[0] == "out":
            row = (row[0], row[1], None,
                   "Sweep directory to create (default: runs/<time>-sweep-<name>).")
        rows.append(row)
    return (
        ("preset", "string", None, "Run one of the paper's experiments (see --list_presets); "
                                   "flags given explicitly override its settings."),
        ("list_presets", "boolean", False, "List the presets and exit."),
        ("vary", "string", None, "The swept setting and its values: AXIS=V1,V2,... "
                                 "(e.g. width=5,10,20 or activation=linear,tanh)."),
        ("seeds", "integer", presets.SEEDS,
         "Seeds per value; seed s is a fresh problem (problem seed s) and G&C/GD seed s."),
        ("resume", "string", None,
         "Continue the sweep in this directory (after a stop, kill or crash): finished cells are "
         "kept, a cell stopped part-way continues from its checkpoint and the others run, with "
         "the G&C results of a sweep made without a stop. Its settings come from its "
         "sweep.json; the only setting it takes is --seeds, larger than the sweep's to add "
         "seeds."),
        ("scale", "float", 1.0, "Multiply every cell's number of draws by this factor in (0, 1] "
                                "for a quick look; results.csv and the figures say so."),
        *rows,
        LINEAR_FLAG,
        COMPILATION_CACHE_FLAG,
    )


def classify_flag_rows():
    """`gcsampler classify` flags: the study's settings, a preset, the output and control."""
    d = classify_study.StudyConfig()
    bins = ",".join(f"{lo:g}:{hi:g}" for lo, hi in d.bins)
    return (
        ("preset", "string", None, "Run one of the paper-shaped studies (see --list_presets); "
                                   "flags given explicitly override its settings."),
        ("list_presets", "boolean", False, "List the presets and exit."),
        ("task", "enum", d.task, "Data set: the balanced 2-D kink or slabs generators, the "
                                 "published kink or slab data (a 70/30 split of a shuffled "
                                 "set), MNIST pairs (the [mnist] extra) or digits 0 vs 1 (the "
                                 "[digits] extra).", tuple(data.TASKS)),
        ("n_train", "string", ",".join(map(str, d.n_train)),
         "Training-set sizes, comma-separated: even numbers (balanced classes), any number for "
         "the published kink and slab data."),
        ("seeds", "integer", d.seeds, "Data seeds per size: seed s is a fresh train/test split "
                                      "(MNIST: a fresh class pair) and the G&C seed."),
        ("first_seed", "integer", d.first_seed, "The first data seed (the published runs "
                                                "start at 100)."),
        ("model", "enum", d.model, "Network: an MLP, a linear model or a LeNet-style CNN "
                                   "(images).", classify_study.MODELS),
        ("depth", "integer", d.depth, "Hidden layers of the MLP."),
        ("width", "integer", d.width, "Units per hidden layer of the MLP."),
        ("activation", "enum", d.activation, "MLP activation.", tuple(networks.ACTIVATIONS)),
        ("hidden_biases", "boolean", d.hidden_biases, "Give the MLP's hidden layers biases "
                                                      "(the published MLP has none: "
                                                      "--nohidden_biases)."),
        ("lenet_width", "float", d.lenet_width, "LeNet width factor (channels and units "
                                                "relative to LeNet-5)."),
        ("padding", "enum", d.padding, "LeNet conv padding (VALID: the published 28x28 LeNet).",
         networks.PADDINGS),
        ("prior", "enum", d.prior, "G&C prior: every weight and bias U(-1, 1) (the paper's), or "
                                   "N(0, 1/fan_in).", networks.PRIORS),
        ("logits", "enum", d.logits, "Whose cross-entropy the bins hold: the normalized logits "
                                     "(divided by the product of the weights' norms, as "
                                     "published) or the raw ones.", networks.LOGITS),
        ("bins", "string", bins, "Training cross-entropy bins LO:HI,...; a draw with 100% "
                                 "training accuracy and LO < loss <= HI is accepted into the "
                                 "bin (-999:999: any perfect fit)."),
        ("samples", "string", str(d.samples), "G&C draws per cell (1e7 is fine), or one count "
                                              "per --n_train value, comma-separated."),
        ("batch", "string", "auto", "Draws per device step ('auto': sized from memory)."),
        ("devices", "string", d.devices, "Local devices to shard draws over: 'all' or a count."),
        ("log2_block", "integer", d.log2_block, "Log2 of the block size."),
        ("baseline", "enum", d.baseline, "Baseline on the same network: SGD, or (full_batch "
                                         "protocol) Adam or greedy random search, a zeroth-order "
                                         "method.", classify_study.BASELINES),
        ("baseline_protocol", "enum", d.baseline_protocol,
         "published: minibatch SGD from --baseline_init that freezes at 100% training accuracy "
         "and loss <= HI, runs at or below LO discarded, batches until --baseline_models land "
         "in each bin; full_batch: --baseline_runs full-batch runs per bin stopped below HI, no "
         "lower edge.", classify_study.PROTOCOLS),
        ("baseline_lr", "float", d.baseline_lr, "Baseline learning rate (random_search: the "
                                                "proposal scale sigma)."),
        ("baseline_epochs", "integer", d.baseline_epochs, "Epochs per run (published protocol)."),
        ("baseline_batch_size", "integer", d.baseline_batch_size,
         "Most points per SGD step (published protocol: min(n_train // 2, this))."),
        ("baseline_steps", "integer", d.baseline_steps, "Most steps per run (full_batch)."),
        ("baseline_runs", "integer", d.baseline_runs, "Runs vmapped at once: per batch "
                                                      "(published) or per bin (full_batch)."),
        ("baseline_models", "integer", d.baseline_models, "Runs to land in each bin per cell "
                                                          "(published protocol; published: 20)."),
        ("baseline_max_runs", "integer", d.baseline_max_runs,
         "Most runs tried per bin and cell (published protocol); a bin left short says so."),
        ("baseline_init", "enum", d.baseline_init, "Baseline initialization: the G&C prior "
                                                   "U(-1, 1), PyTorch's default, or the "
                                                   "published MLP's fan_out init.",
         baselines.INITS),
        ("out", "string", None,
         "Study directory to create (default: runs/<time>-classify-<name>)."),
        *_study_control_rows(),
    )


CURVES = "gen_loss_vs_eps"
REPORT_FLAGS = (
    ("eps", "float", None, "Also report G&C at this threshold: exact from the accepted rows "
                           "at or below the run's eps, from the train-loss bins (splitting: "
                           "curve.csv) above it."),
    ("plot", "boolean", False, "(Re)write the run's figures (losses.png or curve.png, "
                               "gd_curves.png)."),
    LINEAR_FLAG,
)
PLOT_FLAGS = (
    ("eps", "float", None, "Re-threshold every cell at this eps first (exact at or below the "
                           "runs' eps, from the train-loss bins above it)."),
    ("y", "enum", "gen_loss", "What to plot against the swept setting; gen_loss_vs_eps (a "
                              "--method splitting sweep): log10 p and the G&C gen loss against "
                              "eps, one line per value.",
     (*aggregate.QUANTITY_NAMES, CURVES)),
    LINEAR_FLAG,
)
TABLE_FLAGS = (
    ("csv", "string", None, "Also write every column (every setting and summary field) of "
                            "every run to this new CSV file."),
)
VERIFY_FLAGS = (
    ("repair", "boolean", False,
     "Redraw the rows of damaged or missing chunks (and a damaged statistics.npz) from "
     "their draws and write them back, only where they match the checksums the run "
     "recorded, so the run ends bit-identical to one never damaged."),
)
REGENERATE_FLAGS = (
    ("index", "string", None, "Global index of the draw to regenerate."),
    ("out", "string", None, "Output .npz (default: RUN/regenerated/draw_<index>.npz)."),
)


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


def settings(values, names, command):
    """RunConfig settings from the flags ``names``, with draw counts parsed (1e8 -> int)."""
    return parsed_counts({name: values[name].value for name in names}, command)


def parsed_counts(given, command):
    """``given`` settings with the draw counts given as text (``samples``, ``batch``) parsed."""
    for name, allow_auto in (("samples", False), ("batch", True)):
        if isinstance(given.get(name), str):
            given[name] = parse_count(name, given[name], allow_auto, command)
    return given


