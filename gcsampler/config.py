"""The resolved settings of a run, their validation, and what they build.

Field names are the ``gcsampler run`` flag names, and validation messages name
the flag, so the same checks serve the command line and ``config.json``.
"""

import dataclasses
import math

from gcsampler import draws, engine, gd, models, moves, priors, problems, samplers

METHODS = ("rejection", "splitting")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a G&C run and its gradient-descent baseline."""

    # problem
    task: str = "sensing"
    rows: int = 5
    cols: int = 5
    rank: int = 1
    gt_norm: float = 1.0
    measurements: int = 15
    problem_seed: int = 0
    # architecture and prior
    depth: int = 2
    width: int = 5
    activation: str = "linear"
    leaky_slope: float = 0.2
    prior: str = "gaussian"
    normalize: bool = False
    # Guess & Check: plain rejection, or multilevel splitting (gcsampler.splitting)
    method: str = "rejection"
    sampler: str = "auto"
    eps: float = 0.02
    samples: int = 20_000_000
    seed: int = 0
    batch: int | None = None
    devices: str = "all"
    log2_block: int = 12
    particles: int = 4096
    replicates: int = 8
    moves: str = "auto"
    move: str = "ess"
    # gradient-descent baseline (the paper's width-sweep settings)
    gd: bool = True
    gd_optimizer: str = "grouprmsprop"
    gd_lr: float = 1e-4
    gd_momentum: float = 0.0
    gd_steps: int = 100_000
    gd_init_scale: float = 1e-3
    gd_runs: int = 4
    gd_log_every: int = 1000

    def validate(self):
        """Raise ValueError naming the first bad flag and what it allows."""
        _choice("task", self.task, problems.TASKS)
        for name in ("rows", "cols", "rank", "measurements", "depth", "width", "gd_runs",
                     "gd_steps", "gd_log_every"):
            _positive_int(name, getattr(self, name))
        for name in ("gt_norm", "eps", "gd_lr", "gd_init_scale"):
            _positive_float(name, getattr(self, name))
        _int_range("problem_seed", self.problem_seed, 0, 2**32 - 1)
        _int_range("seed", self.seed, 0, draws.MAX_SEED)
        _int_range("log2_block", self.log2_block, 6, 20)
        _int_range("samples", self.samples, 1, engine.max_samples(self.log2_block))
        if self.batch is not None:
            _positive_int("batch", self.batch)
        if self.rank > min(self.rows, self.cols):
            raise ValueError(f"--rank must be at most min(--rows, --cols) = "
                             f"{min(self.rows, self.cols)}, got {self.rank}")
        if self.measurements >= self.rows * self.cols:
            raise ValueError(f"--measurements must be below --rows * --cols = "
                             f"{self.rows * self.cols} so that test entries remain, "
                             f"got {self.measurements}")
        _choice("activation", self.activation, models.ACTIVATIONS)
        if not math.isfinite(self.leaky_slope):
            raise ValueError(f"--leaky_slope must be a finite number, got {self.leaky_slope}")
        _choice("prior", self.prior, priors.PRIORS)
        _choice("sampler", self.sampler, samplers.SAMPLERS)
        if self.sampler not in ("auto", *samplers.applicable(self.model(), self.prior_dist())):
            raise ValueError(f"--sampler={self.sampler} is not exact for this network and prior; "
                             f"use one of: auto, "
                             f"{', '.join(samplers.applicable(self.model(), self.prior_dist()))}")
        self._validate_splitting()
        _choice("gd_optimizer", self.gd_optimizer, gd.OPTIMIZERS)
        if not (math.isfinite(self.gd_momentum) and 0 <= self.gd_momentum < 1):
            raise ValueError(f"--gd_momentum must be in [0, 1), got {self.gd_momentum}")
        if self.gd_optimizer == "adam" and self.gd_momentum:
            raise ValueError("--gd_momentum is not used by --gd_optimizer=adam; leave it at 0")
        if self.gd_steps % self.gd_log_every:
            raise ValueError(f"--gd_steps must be a multiple of --gd_log_every="
                             f"{self.gd_log_every}, got {self.gd_steps}")
        if self.devices != "all":
            try:
                count = int(self.devices)
            except ValueError:
                count = 0
            if count < 1:
                raise ValueError(f"--devices must be 'all' or a positive integer, got {self.devices!r}")
        return self

    def _validate_splitting(self):
        _choice("method", self.method, METHODS)
        _int_range("particles", self.particles, 4, 2**24)
        _positive_int("replicates", self.replicates)
        _choice("move", self.move, moves.MOVES)
        if self.moves != "auto":
            try:
                count = int(self.moves)
            except (TypeError, ValueError):
                count = 0
            if count < 1 or str(count) != str(self.moves).strip():
                raise ValueError(f"--moves must be 'auto' or a positive integer, "
                                 f"got {self.moves!r}")
        if self.method == "splitting":
            if self.sampler != "auto":
                raise ValueError("--sampler applies to --method=rejection; splitting moves in "
                                 "the prior's Gaussian coordinates (leave --sampler=auto)")
            if self.prior_dist().from_normal is None:
                raise ValueError(f"--prior={self.prior} cannot be used with --method=splitting")

    @property
    def move_count(self):
        """'auto' or the fixed number of moves per level, as the splitting sampler takes it."""
        return "auto" if self.moves == "auto" else int(self.moves)

    @property
    def device_count(self):
        """'all' or the requested number of devices, as the engine takes it."""
        return "all" if self.devices == "all" else int(self.devices)

    def problem(self):
        return problems.make_problem(self.task, seed=self.problem_seed, n_rows=self.rows,
                                     n_cols=self.cols, rank=self.rank, gt_norm=self.gt_norm,
                                     measurements=self.measurements)

    def model(self):
        return models.factorization(self.rows, self.cols, self.depth, self.width,
                                    self.activation, self.leaky_slope)

    def prior_dist(self):
        return priors.make_prior(self.prior, self.normalize)

    def resolved_sampler(self):
        """The sampler the engine uses: ``sampler``, with 'auto' resolved."""
        return samplers.make_sampler(self.model(), self.prior_dist(), self.sampler).name

    def optimizer(self):
        return gd.make_optimizer(self.gd_optimizer, self.gd_lr, self.gd_momentum)

    def tag(self):
        """A short name for default run directories."""
        norm = "-norm" if self.normalize else ""
        method = "-splitting" if self.method == "splitting" else ""
        return (f"{self.task}-d{self.depth}-w{self.width}-{self.activation}-{self.prior}{norm}"
                f"{method}")


def from_dict(values):
    """A validated config from a dict such as a run's ``config.json`` settings."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in values.items() if k in names}).validate()


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
