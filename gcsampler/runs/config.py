"""The settings of a factorization run: one dataclass, its flags' help, its validation.

Field names are the ``gcsampler run`` flag names, each field's ``help`` (its
metadata) is the flag's help text, and validation messages name the flag, so the
same definitions serve the command line, ``config.json`` and the Python API. What a
setting names (a measurement task, an activation, a prior) is built from it by
:mod:`gcsampler.runs.pieces`; checks that need those pieces are there.
"""

import dataclasses
import math

from gcsampler.core.devices import LOG2_BLOCK_RANGE, max_samples
from gcsampler.core.keys import check_seed
from gcsampler.factorization import gd
from gcsampler.factorization.models import ACTIVATIONS
from gcsampler.factorization.priors import PRIORS
from gcsampler.factorization.problems import TASKS
from gcsampler.factorization.samplers import CHOICES as SAMPLER_CHOICES, SAMPLERS
from gcsampler.runs.methods import METHODS
from gcsampler.splitting.moves import MOVES

def _setting(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a factorization G&C run and its gradient-descent baseline."""

    # problem
    task: str = _setting("sensing", f"Measurement task: {TASKS.allowed()} (a function taking "
                                    "matrix_sensing's arguments, or a Problem).")
    rows: int = _setting(5, "Rows of the matrix to recover.")
    cols: int = _setting(5, "Columns of the matrix to recover.")
    rank: int = _setting(1, "Rank of the ground-truth matrix.")
    gt_norm: float = _setting(1.0, "Frobenius norm of the ground truth.")
    measurements: int = _setting(15, "Number of train measurements m (< rows*cols); the rest "
                                     "of the space is the test set.")
    problem_seed: int = _setting(0, "Seed of the ground truth and the measurements (a fresh "
                                    "problem per seed).")
    # architecture and prior
    depth: int = _setting(2, "Number of layers of the factorization.")
    width: int = _setting(5, "Inner width k of the factorization.")
    activation: str = _setting("linear", f"Activation between layers: {ACTIVATIONS.allowed()} "
                                         "(an elementwise JAX function).")
    leaky_slope: float = _setting(0.2, "Negative slope of leaky_relu.")
    prior: str = _setting("gaussian", "G&C prior: gaussian N(0, 1/c) or uniform U(-1,1)/sqrt(c), "
                                      "c = a layer's output columns, or MODULE:ATTR (a Prior, "
                                      "or a layer sampler (key, shape, dtype) -> array).")
    normalize: bool = _setting(False, "Divide each drawn end-to-end matrix by its Frobenius "
                                      "norm (+1e-6), as in the depth sweeps.")
    # Guess & Check: plain rejection, or multilevel splitting (gcsampler.splitting)
    method: str = _setting("rejection", "'rejection': plain Guess & Check, --samples draws; "
                                        "'splitting': adaptive multilevel splitting, exact "
                                        "samples below eps and log10 p = log10 P(train loss < "
                                        "eps) with a confidence interval, at rarities far "
                                        "beyond rejection's reach (p = 1e-15 and below).")
    sampler: str = _setting("auto", "How draws are generated, all exactly from the prior: "
                                    "'auto' picks the fastest exact one; " + "; ".join(
                                        f"'{name}' {spec.description}"
                                        for name, spec in SAMPLERS.items()) + ".")
    eps: float = _setting(0.02, "Accept a draw when its train loss is strictly below eps.")
    samples: int = _setting(20_000_000, "Number of G&C draws; scientific notation is accepted "
                                        "(1e8).")
    seed: int = _setting(0, "Run seed: draw i is a pure function of (seed, i).")
    batch: int | None = _setting(None, "Draws per device step ('auto': sized from device "
                                       "memory, on a CPU at most 16,384 or one block); rounded "
                                       "down to whole blocks, or, below one "
                                       "block, evaluated in chunks of this many draws. A "
                                       "batch whose step would not fit in the device's memory "
                                       "is refused.")
    devices: str = _setting("all", "Local devices to shard draws over: 'all' or a count.")
    log2_block: int = _setting(12, "Log2 of the block size, the unit of bitwise-reproducible "
                                   "statistics.")
    particles: int = _setting(4096, "Splitting: particles per replicate (16384 to 65536 on a "
                                    "GPU).")
    replicates: int = _setting(8, "Splitting: independent particle systems run together "
                                  "(shared out among the --num_processes processes); their "
                                  "spread gives log p's confidence interval.")
    moves: str = _setting("auto", "Splitting: moves per particle per level: 'auto' (twice the "
                                  "measured decorrelation time) or a fixed count.")
    move: str = _setting("ess", f"Splitting: the move kernel, one of {MOVES.allowed()} "
                                "(docs/splitting.md describes them); the Gaussian prior adds "
                                "moves along the level set after it ('fiber', or 'cone' with "
                                "--normalize) and, at depth >= 2, rotations of every layer.")
    # gradient-descent baseline (the paper's width-sweep settings)
    gd: bool = _setting(True, "Also run the gradient-descent baseline (--nogd to skip).")
    gd_optimizer: str = _setting("grouprmsprop", "GD optimizer.")
    gd_lr: float = _setting(1e-4, "GD learning rate.")
    gd_momentum: float = _setting(0.0, "GD momentum in [0, 1) for grouprmsprop and sgd "
                                       "(applied, unlike the paper's code).")
    gd_steps: int = _setting(100_000, "GD steps per run.")
    gd_init_scale: float = _setting(1e-3, "GD initialization: PyTorch's default linear-layer "
                                          "init times this factor.")
    gd_runs: int = _setting(4, "Independent GD runs (seeds), vmapped together.")
    gd_log_every: int = _setting(1000, "Steps between logged GD losses.")

    def validate(self, python_pieces=()):
        """Raise ValueError naming the first bad flag and what it allows; returns self.

        ``python_pieces`` are the settings among task, activation and prior that label
        objects given from Python rather than name a piece.
        """
        for name, registry in (("task", TASKS), ("activation", ACTIVATIONS), ("prior", PRIORS)):
            if name not in python_pieces:
                registry.check(getattr(self, name))
        for name in ("rows", "cols", "rank", "measurements", "depth", "width", "gd_runs",
                     "gd_steps", "gd_log_every"):
            _positive_int(name, getattr(self, name))
        for name in ("gt_norm", "eps", "gd_lr", "gd_init_scale"):
            _positive_float(name, getattr(self, name))
        _int_range("problem_seed", self.problem_seed, 0, 2**32 - 1)
        check_seed(self.seed, "--seed")
        check_loop_settings(self.log2_block, self.devices)
        _int_range("samples", self.samples, 1, max_samples(self.log2_block))
        if self.batch is not None:
            _positive_int("batch", self.batch)
        if self.rank > min(self.rows, self.cols):
            raise ValueError(f"--rank must be at most min(--rows, --cols) = "
                             f"{min(self.rows, self.cols)}, got {self.rank}")
        if self.measurements >= self.rows * self.cols:
            raise ValueError(f"--measurements must be below --rows * --cols = "
                             f"{self.rows * self.cols} so that test entries remain, "
                             f"got {self.measurements}")
        if not math.isfinite(self.leaky_slope):
            raise ValueError(f"--leaky_slope must be a finite number, got {self.leaky_slope}")
        _choice("sampler", self.sampler, SAMPLER_CHOICES)
        _choice("gd_optimizer", self.gd_optimizer, gd.OPTIMIZERS)
        if not (math.isfinite(self.gd_momentum) and 0 <= self.gd_momentum < 1):
            raise ValueError(f"--gd_momentum must be in [0, 1), got {self.gd_momentum}")
        if self.gd_optimizer == "adam" and self.gd_momentum:
            raise ValueError("--gd_momentum is not used by --gd_optimizer=adam; leave it at 0")
        if self.gd_steps % self.gd_log_every:
            raise ValueError(f"--gd_steps must be a multiple of --gd_log_every="
                             f"{self.gd_log_every}, got {self.gd_steps}")
        self._validate_splitting()
        METHODS.check(self.method)
        METHODS[self.method].validate(self)
        return self

    def _validate_splitting(self):
        """The splitting settings (checked whatever the method, like every setting)."""
        _int_range("particles", self.particles, 4, 2**24)
        _positive_int("replicates", self.replicates)
        MOVES.check(self.move)
        if self.moves != "auto":
            try:
                count = int(self.moves)
            except (TypeError, ValueError):
                count = 0
            if count < 1 or str(count) != str(self.moves).strip():
                raise ValueError(f"--moves must be 'auto' or a positive integer, "
                                 f"got {self.moves!r}")

    @property
    def move_count(self):
        """'auto' or the fixed number of moves per level, as splitting takes it."""
        return "auto" if self.moves == "auto" else int(self.moves)

    @property
    def device_count(self):
        """'all' or the requested number of devices, as the loop takes it."""
        return "all" if self.devices == "all" else int(self.devices)

    def optimizer(self):
        return gd.make_optimizer(self.gd_optimizer, self.gd_lr, self.gd_momentum)

    def describe(self):
        """The setting in words, for table headers and figure titles."""
        norm = ", normalized" if self.normalize else ""
        return (f"{_label(self.task)} {self.rows}x{self.cols} rank {self.rank}, "
                f"{self.measurements} measurements (problem seed {self.problem_seed}); "
                f"depth {self.depth}, width {self.width}, {_label(self.activation)}, "
                f"{_label(self.prior)} prior{norm}; seed {self.seed}")

    def tag(self):
        """A short name for default run directories: the setting, and the method unless
        it is the default one."""
        norm = "-norm" if self.normalize else ""
        method = "" if self.method == _default("method") else f"-{self.method}"
        labels = [_label(getattr(self, name)) for name in ("task", "activation", "prior")]
        return f"{labels[0]}-d{self.depth}-w{self.width}-{labels[1]}-{labels[2]}{norm}{method}"


def _default(name):
    return next(f.default for f in dataclasses.fields(RunConfig) if f.name == name)


def _label(name):
    """A piece's name as a path component: 'my_module:prior' -> 'prior'."""
    return name.rpartition(":")[2].replace("/", "_")


def help_text(name):
    """The help of the setting ``name`` (its flag's)."""
    return next(f.metadata["help"] for f in dataclasses.fields(RunConfig) if f.name == name)


def from_dict(values, python_pieces=()):
    """A validated config from a dict such as a run's ``config.json`` settings."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in values.items() if k in names}).validate(python_pieces)


def check_loop_settings(log2_block, devices):
    """Raise ValueError naming --log2_block or --devices unless they are a block size the
    draw loop takes and 'all' or a positive count (settings of classifier studies too)."""
    _int_range("log2_block", log2_block, *LOG2_BLOCK_RANGE)
    if devices != "all" and not (str(devices).isdigit() and int(devices) >= 1):
        raise ValueError(f"--devices must be 'all' or a positive integer, got {devices!r}")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"--{name} must be a positive integer, got {value!r}")


def _int_range(name, value, lo, hi):
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"--{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _positive_float(name, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"--{name} must be a positive finite number, got {value!r}")
