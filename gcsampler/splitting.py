"""Adaptive multilevel splitting: exact rare-event G&C and its log-volume estimate.

Plain G&C needs about 1/p draws to accept one, p = P(train loss < eps) under the
prior. Splitting reaches p = 1e-15 and far below with a few thousand particles:

1. draw N particles from the prior (in Gaussian coordinates, :mod:`gcsampler.latent`);
2. at each level, the level is the ``survival`` quantile of their train losses
   (the median by default); the particles at or above it (ties counted) are
   killed and replaced by clones of uniformly chosen survivors, and p's estimate
   is multiplied by the surviving fraction;
3. every particle then makes moves that leave the prior restricted to {L < level}
   invariant (:mod:`gcsampler.moves`, followed by :mod:`gcsampler.fibers`' moves
   along the level set where they apply): "auto" measures, over the particles, the
   correlation of their log train loss, gen loss and four random projections of
   their end-to-end matrices W with where the level started, and makes twice as many moves
   as it took every |correlation| to fall to ``target_correlation`` (a
   decorrelation time, doubled: the first crossing alone stopped too early in
   tests against rejection); or a fixed number of moves;
4. when the next level would pass eps, the last factor is the fraction below eps,
   and those particles are the G&C posterior sample.

This is adaptive multilevel splitting (Cerou & Guyader 2007), also known as
subset simulation with adaptive quantile levels (Au & Beck 2001) or nested
sampling deleting a fraction at a time (Skilling 2006); its p estimate is
unbiased (Brehier, Lelievre & Rousset 2015). R independent replicates (particle
systems) run in one batch, sharded over devices (and split over processes by
:mod:`gcsampler.splitting_run`, :func:`combine` joining them); their spread gives a
confidence interval for log p beside the formula's standard error
(:mod:`gcsampler.estimates`).

The API follows BlackJAX: :func:`init` and :func:`build_level` (a per-replicate
``level(key, state, ...) -> (state, LevelInfo)``) are pure, the move kernel is
pluggable, and :func:`splitting` is the host loop that runs replicates level by level.

Each level also counts, over a fixed grid of train-loss thresholds (``edges``),
how many of the particles it starts from lie below each (and their gen-loss sums):
a population at level l is the prior restricted to {L < l}, so that gives p and
the G&C gen loss at every threshold between l and the next level, i.e. the whole
curve from the prior down to eps from one run.
"""

import functools
import numbers
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from gcsampler import draws, fibers, latent, problems
from gcsampler.moves import make_move

DEFAULT_PARTICLES = 4096
DEFAULT_REPLICATES = 8
DEFAULT_SURVIVAL = 0.5
DEFAULT_TARGET_CORRELATION = 0.1
DEFAULT_MAX_MOVES = 200
DEFAULT_MAX_LEVELS = 5000
MIN_AUTO_MOVES = 2
PROJECTIONS = 4
# A correlation over N particles has noise of about 1/sqrt(N): "auto" asks for at most
# this many of those (the largest of six statistics), or it would never stop at small N.
NOISE_CORRELATION = 3.0
# Thresholds at which every level reports counts: 5 per decade, 1e-20 .. 1e3, plus eps.
GRID_LOG10_RANGE = (-20, 3)
GRID_PER_DECADE = 5


class State(NamedTuple):
    """One replicate's particle system.

    Attributes:
      z: (N, dim) Gaussian coordinates of the particles.
      train, gen: (N,) their losses (non-finite train losses are +inf).
      ancestor: (N,) int32, the initial particle each descends from.
      log_p: () log of the estimate of P(train loss < level).
      level: () the current level (+inf before the first).
      done: () whether the final level (eps) has been reached.
      param: (K,) the move kernels' runtime parameters (step sizes).
    """

    z: jax.Array
    train: jax.Array
    gen: jax.Array
    ancestor: jax.Array
    log_p: jax.Array
    level: jax.Array
    done: jax.Array
    param: jax.Array


class LevelInfo(NamedTuple):
    """What one level of one replicate did (all fields are from that level)."""

    active: jax.Array          # () bool, the replicate had not finished before
    final: jax.Array           # () bool, this level is eps (the last)
    level: jax.Array           # () the level's threshold
    log_p: jax.Array           # () log p estimate at the level
    killed: jax.Array          # () int32, particles at or above the level
    support_level: jax.Array   # () the level the population started from
    support_log_p: jax.Array   # () its log p estimate
    grid_count: jax.Array      # (E,) int32, starting particles with train < edge
    grid_gen_sum: jax.Array    # (E,) their gen-loss sum
    grid_gen_sumsq: jax.Array  # (E,)
    moves: jax.Array           # () int32, sweeps of moves made at this level
    acceptance: jax.Array      # (K,) per move kernel, the fraction of its moves that moved
    proposals: jax.Array       # () int32, loss evaluations of all moves
    proposals_max: jax.Array   # () int32, most evaluations of one move
    capped: jax.Array          # () int32, moves that stayed put at the proposal cap
    correlation: jax.Array     # () largest |correlation| with the level's start
    ancestors: jax.Array       # () int32, distinct ancestors among the particles
    gen_mean: jax.Array        # () mean gen loss of the particles after the level


class MoveSchedule(NamedTuple):
    """How many moves per level: between ``least`` and ``most``; within those, twice as
    many as it took every decorrelation statistic to fall to ``target_correlation``
    or below (``least == most``: a fixed number)."""

    least: int
    most: int
    target_correlation: float = DEFAULT_TARGET_CORRELATION


def fixed_moves(count):
    return MoveSchedule(count, count, 0.0)


def auto_moves(target_correlation=DEFAULT_TARGET_CORRELATION, most=DEFAULT_MAX_MOVES):
    return MoveSchedule(MIN_AUTO_MOVES, most, target_correlation)


def grid_edges(eps):
    """The thresholds of the per-level counts: the fixed log grid plus eps (float32)."""
    lo, hi = GRID_LOG10_RANGE
    grid = 10.0 ** (np.arange(lo * GRID_PER_DECADE, hi * GRID_PER_DECADE + 1) / GRID_PER_DECADE)
    return np.sort(np.append(grid, eps).astype(np.float32))


def make_evaluate(matrix, n_train):
    """``evaluate(z, ops, labels) -> (train, gen)`` of one particle; NaN train -> +inf."""

    def evaluate(z, ops, labels):
        flat = matrix(z).reshape(-1)
        residuals = jnp.matmul(flat, ops, precision=jax.lax.Precision.HIGHEST) - labels
        train, gen = problems.losses_from_residuals(residuals, n_train)
        finite = jnp.isfinite(train) & jnp.isfinite(gen)
        return jnp.where(finite, train, jnp.inf), gen

    return evaluate


def init(key, evaluate, particles, dim, kernels):
    """A replicate's particles drawn from the prior (z ~ N(0, I)) and evaluated;
    ``kernels`` are the moves it will make (their initial parameters)."""
    z = jax.random.normal(key, (particles, dim), jnp.float32)
    train, gen = jax.vmap(evaluate)(z)
    params = jnp.asarray([k.initial_param for k in kernels], jnp.float32)
    return State(z, train, gen, jnp.arange(particles, dtype=jnp.int32), jnp.float32(0.0),
                 jnp.float32(jnp.inf), jnp.bool_(False), params)


def build_level(kernels, matrix, survival=DEFAULT_SURVIVAL):
    """``level(key, state, evaluate, eps, edges, schedule) -> (state, LevelInfo)``: one
    level of one replicate (a finished replicate is returned unchanged).

    ``kernels``: the moves (:class:`gcsampler.moves.Move`) one sweep makes, in turn;
    each leaves the level set's law invariant, so their composition does.
    ``matrix`` maps a particle's coordinates to its end-to-end matrix (for the
    decorrelation statistics).
    ``schedule`` is a tuple ``(least, most, target_correlation)`` of runtime numbers.
    """

    def level_fn(key, state, evaluate, eps, edges, schedule):
        n = state.train.shape[0]
        key_pick, key_moves, key_proj = jax.random.split(key, 3)
        below = state.train[None, :] < edges[:, None]
        gen0 = jnp.where(jnp.isfinite(state.gen), state.gen, 0.0)
        grid = (jnp.sum(below, axis=1, dtype=jnp.int32), jnp.sum(below * gen0, axis=1),
                jnp.sum(below * gen0**2, axis=1))

        candidate = jnp.sort(state.train)[int(math.floor(survival * n))]
        final = candidate <= eps
        level = jnp.where(final, eps, candidate)
        alive = state.train < level
        survivors = jnp.sum(alive, dtype=jnp.int32)
        log_p = state.log_p + jnp.log(survivors.astype(jnp.float32) / n)

        (kept,) = jnp.nonzero(alive, size=n, fill_value=0)
        pick = jax.random.randint(key_pick, (n,), 0, jnp.maximum(survivors, 1))
        source = jnp.where(alive | final, jnp.arange(n), kept[pick])
        z, train, gen = state.z[source], state.train[source], state.gen[source]
        ancestor = state.ancestor[source]

        moved = move_particles(kernels, matrix, key_moves, key_proj, z, train, gen, level,
                               state.param, evaluate, schedule, skip=final | (survivors == 0))
        z, train, gen, sweeps, accepted, proposals, proposals_max, capped, corr = moved
        acceptance = accepted / jnp.maximum(sweeps * n, 1).astype(jnp.float32)
        param = jnp.stack([k.adapt(state.param[i], acceptance[i]) for i, k in enumerate(kernels)])
        param = jnp.where(sweeps > 0, param, state.param)
        after = ~final | alive
        info = LevelInfo(
            active=~state.done, final=final, level=level, log_p=log_p, killed=n - survivors,
            support_level=state.level, support_log_p=state.log_p,
            grid_count=grid[0], grid_gen_sum=grid[1], grid_gen_sumsq=grid[2],
            moves=sweeps, acceptance=acceptance, proposals=proposals,
            proposals_max=proposals_max, capped=capped, correlation=corr,
            ancestors=_distinct(jnp.where(after, ancestor, -1)),
            gen_mean=jnp.sum(jnp.where(after, gen, 0.0)) / jnp.maximum(jnp.sum(after), 1))
        new = State(z, train, gen, ancestor, log_p, level, final | (survivors == 0),
                    param.astype(jnp.float32))
        new = jax.tree.map(lambda a, b: jnp.where(state.done, a, b), state, new)
        return new, info

    return level_fn


def _distinct(values):
    """Distinct non-negative values of an int array."""
    s = jnp.sort(values)
    return jnp.sum((s >= 0) & jnp.concatenate([jnp.array([True]), s[1:] != s[:-1]]),
                   dtype=jnp.int32)


def _correlations(a, b):
    """|Pearson correlation| of each column of ``a`` with the same column of ``b``."""
    a = a - jnp.mean(a, axis=0)
    b = b - jnp.mean(b, axis=0)
    denom = jnp.sqrt(jnp.sum(a * a, axis=0) * jnp.sum(b * b, axis=0))
    return jnp.where(denom > 0, jnp.abs(jnp.sum(a * b, axis=0)) / jnp.where(denom > 0, denom, 1),
                     0.0)


def move_particles(kernels, matrix, key, key_proj, z, train, gen, level, params, evaluate,
                   schedule, skip):
    """Move every particle of a population at ``level`` until ``schedule`` says stop;
    a sweep applies each of ``kernels`` (with its parameter from ``params``) in turn.

    ``schedule`` is ``(least, most, target_correlation)``; ``skip`` (a bool) makes
    no move. Returns ``(z, train, gen, sweeps, moved, proposals, proposals_max,
    capped, correlation)``: the moved population, then the counts of LevelInfo
    (``moved`` per kernel).
    """
    least, most, target = schedule
    n = z.shape[0]
    size = math.prod(jax.eval_shape(matrix, z[0]).shape)
    projections = jax.random.normal(key_proj, (size, PROJECTIONS), z.dtype)

    def statistics(z, train, gen):
        logged = jnp.log(jnp.maximum(train, 1e-30))
        flat = jax.vmap(matrix)(z).reshape(n, size)
        return jnp.concatenate([logged[:, None], gen[:, None],
                                jnp.matmul(flat, projections, precision=jax.lax.Precision.HIGHEST)],
                               axis=1)

    start = statistics(z, train, gen)

    def sweep(carry):
        count, z, train, gen, accepted, proposals, most_props, capped, _, reached = carry
        keys = jax.random.split(jax.random.fold_in(key, count), (len(kernels), n))
        moved = []
        for i, kernel in enumerate(kernels):
            z, train, gen, info = jax.vmap(kernel.step, in_axes=(0, 0, 0, 0, None, None, None))(
                keys[i], z, train, gen, level, evaluate, params[i])
            moved.append(jnp.sum(info.moved, dtype=jnp.int32))
            proposals = proposals + jnp.sum(info.proposals, dtype=jnp.int32)
            most_props = jnp.maximum(most_props, jnp.max(info.proposals))
            capped = capped + jnp.sum(~info.moved & (info.proposals > 1), dtype=jnp.int32)
        corr = jnp.max(_correlations(start, statistics(z, train, gen)))
        return (count + 1, z, train, gen, accepted + jnp.stack(moved), proposals, most_props,
                capped, corr, jnp.where((reached < 0) & (corr <= target), count + 1, reached))

    def going(carry):
        count, reached = carry[0], carry[-1]
        return ~skip & (count < most) & ((count < least) | (reached < 0) | (count < 2 * reached))

    carry = (jnp.int32(0), z, train, gen, jnp.zeros(len(kernels), jnp.int32), jnp.int32(0),
             jnp.int32(0), jnp.int32(0), jnp.float32(1.0), jnp.int32(-1))
    count, z, train, gen, accepted, proposals, most_props, capped, corr, _ = jax.lax.while_loop(
        going, sweep, carry)
    return z, train, gen, count, accepted, proposals, most_props, capped, jnp.where(
        count > 0, corr, jnp.nan)


class SplittingResult(NamedTuple):
    """A splitting run's outputs (NumPy arrays).

    Attributes:
      log_p: (R,) each replicate's log p estimate at eps (-inf: it died out).
      levels: LevelInfo whose fields have leading axes (levels, R); rows where a
        replicate had already finished have ``active`` False.
      final_train, final_gen: (R, N) losses of the last particles.
      final_matrix: (R, N, n_rows, n_cols) their end-to-end matrices.
      accepted: (R, N) bool, particles with train loss < eps: the G&C sample.
      edges: the grid thresholds of ``levels.grid_*``.
      eps, particles, replicates: the run's settings.
      evaluations: loss evaluations of the whole run.
      seconds: wall time.
      latent, move: the coordinate map's and the move's names.
      fibers: the names of the moves along the level set (:mod:`gcsampler.fibers`)
        made after each move, in order (empty: none applied or ``fiber`` was False).
      converged: whether every replicate reached eps within the level cap.
      first_replicate: the number of the first replicate (the others follow it).
    """

    log_p: np.ndarray
    levels: LevelInfo
    final_train: np.ndarray
    final_gen: np.ndarray
    final_matrix: np.ndarray
    accepted: np.ndarray
    edges: np.ndarray
    eps: float
    particles: int
    replicates: int
    evaluations: int
    seconds: float
    latent: str
    move: str
    fibers: tuple
    converged: bool
    first_replicate: int = 0


def replicate_devices(replicates, devices):
    """The devices the replicates are sharded over: the most of ``devices`` (all local
    ones for None) that divides ``replicates``."""
    from gcsampler import engine

    available = engine.resolve_devices(devices)
    count = max(d for d in range(1, len(available) + 1) if replicates % d == 0)
    return available[:count]


def splitting(problem, model, prior, *, eps, particles=DEFAULT_PARTICLES,
              replicates=DEFAULT_REPLICATES, seed=0, move="ess", moves="auto",
              target_correlation=DEFAULT_TARGET_CORRELATION, max_moves=DEFAULT_MAX_MOVES,
              survival=DEFAULT_SURVIVAL, latent_map="auto", fiber=True,
              max_levels=DEFAULT_MAX_LEVELS, devices=None, first_replicate=0,
              on_level: Callable | None = None):
    """Estimate p = P(train loss < eps) and sample the prior restricted to {train loss < eps}.

    Args:
      problem, model, prior: what to sample (see problems, models, priors); the
        prior needs a ``from_normal`` map (the built-in ones have one).
      eps: the G&C threshold (strict).
      particles: N per replicate.
      replicates: R independent particle systems, run together.
      seed: replicate r is a pure function of (seed, r, N and the settings).
      move: 'ess', 'pcn', or a :class:`gcsampler.moves.Move`.
      moves: 'auto' (until decorrelated, see the module docstring) or a fixed count.
      target_correlation, max_moves: the 'auto' criterion and its cap; the target is
        raised to 3 / sqrt(particles) where that is larger (the correlations' noise).
      survival: fraction of particles kept per level (p0), in (0, 1).
      latent_map: 'auto', 'direct' or 'last_layer' (:mod:`gcsampler.latent`).
      fiber: after each move, also make the moves along the level set of
        :mod:`gcsampler.fibers` where they apply (the built-in Gaussian prior):
        ``fiber`` without normalization, ``cone`` on every linear block with it.
      max_levels: stop (``converged`` False) after this many levels.
      devices: None/'all', a count or devices; replicates are sharded over as many
        as divide R.
      first_replicate: run replicates ``first_replicate`` to ``first_replicate + R - 1``
        (each a pure function of its number), so that runs of consecutive ranges
        :func:`combine` into the run of them all (one range per process).
      on_level: called as ``on_level(info, seconds)`` after each level, with the
        level's LevelInfo (fields of shape (R,)).
    """
    _check(eps, particles, replicates, seed, moves, target_correlation, max_moves, survival,
           max_levels, first_replicate)
    if (model.n_rows, model.n_cols) != (problem.n_rows, problem.n_cols):
        raise ValueError(f"model is {model.n_rows}x{model.n_cols} but the problem's matrix is "
                         f"{problem.n_rows}x{problem.n_cols}")
    coords = latent.make_latent(model, prior, latent_map)
    kernel = make_move(move) if isinstance(move, str) else move
    schedule = (fixed_moves(moves) if moves != "auto" else
                auto_moves(max(target_correlation, NOISE_CORRELATION / math.sqrt(particles)),
                           max_moves))
    used = replicate_devices(replicates, devices)
    ops, labels = problems.stacked_operators(problem)
    n_train = len(problem.train_ops)
    fiber_names = tuple(m.name for m in fibers.fiber_moves(
        coords, prior, ops[:, :n_train], labels[:n_train])) if fiber else ()
    programs = _programs(model, prior, coords.name, kernel, survival, particles,
                         n_train, tuple(used), bool(fiber_names))
    base = draws.seed_key(seed)
    edges = jnp.asarray(grid_edges(eps))
    eps32 = jnp.float32(eps)
    began = time.perf_counter()
    state = programs.init(_keys(base, first_replicate, replicates, 0), ops, labels)
    infos, evaluations = [], replicates * particles
    for count in range(1, max_levels + 1):
        keys = _keys(base, first_replicate, replicates, count)
        state, info = programs.level(keys, state, ops, labels, eps32, edges,
                                     jnp.int32(schedule.least), jnp.int32(schedule.most),
                                     jnp.float32(schedule.target_correlation))
        info = jax.device_get(info)
        infos.append(info)
        evaluations += int(np.sum(np.where(info.active, info.proposals, 0), dtype=np.int64))
        if on_level is not None:
            on_level(info, time.perf_counter() - began)
        if bool(np.all(~info.active | info.final | (info.killed == particles))):
            break
    done = jax.device_get(state.done)
    matrices = jax.device_get(programs.matrices(state.z))
    final_train, final_gen, log_p = jax.device_get((state.train, state.gen, state.log_p))
    levels = _blank_finished(LevelInfo(*(np.stack(field) for field in zip(*infos))))
    return SplittingResult(
        log_p=np.where(done, log_p, np.nan).astype(np.float64), levels=levels,
        final_train=final_train, final_gen=final_gen, final_matrix=matrices,
        accepted=done[:, None] & (final_train < eps32), edges=np.asarray(edges), eps=float(eps),
        particles=particles, replicates=replicates, evaluations=evaluations,
        seconds=time.perf_counter() - began, latent=coords.name, move=kernel.name,
        fibers=fiber_names, converged=bool(np.all(done)), first_replicate=first_replicate)


def _blank(dtype, shape):
    """The value of a level row where a replicate had finished: NaN, or 0 (False)."""
    return np.full(shape, np.nan if np.issubdtype(dtype, np.floating) else 0, dtype)


def _blank_finished(levels):
    """``levels`` with the rows of replicates that had finished blanked (:func:`_blank`):
    they did nothing, and a replicate's rows must not depend on the others' levels."""
    active = levels.active
    return LevelInfo(*(np.where(active.reshape(active.shape + (1,) * (field.ndim - 2)), field,
                                _blank(field.dtype, ())).astype(field.dtype)
                       for field in levels))


def combine(results):
    """The :class:`SplittingResult` of runs of consecutive replicate ranges of one
    setting (``first_replicate``): what one run of all of them gives. Level rows are
    padded with blank rows to the longest run's; ``final_matrix`` is None unless
    every run has it; ``seconds`` is the longest run's.
    """
    results = sorted(results, key=lambda r: r.first_replicate)
    for before, after in zip(results, results[1:]):
        if after.first_replicate != before.first_replicate + before.replicates:
            raise ValueError(f"replicates {before.first_replicate + before.replicates} to "
                             f"{after.first_replicate - 1} are missing or run twice")
    rows = max(r.levels.active.shape[0] for r in results)

    def padded(field):
        extra = _blank(field.dtype, (rows - field.shape[0],) + field.shape[1:])
        return np.concatenate([field, extra])

    levels = LevelInfo(*(np.concatenate([padded(f) for f in fields], axis=1)
                         for fields in zip(*(r.levels for r in results))))
    matrices = [r.final_matrix for r in results]
    return results[0]._replace(
        log_p=np.concatenate([r.log_p for r in results]), levels=levels,
        final_train=np.concatenate([r.final_train for r in results]),
        final_gen=np.concatenate([r.final_gen for r in results]),
        final_matrix=None if any(m is None for m in matrices) else np.concatenate(matrices),
        accepted=np.concatenate([r.accepted for r in results]),
        replicates=sum(r.replicates for r in results),
        evaluations=sum(r.evaluations for r in results),
        seconds=max(r.seconds for r in results),
        converged=all(r.converged for r in results))


def _keys(base, first, replicates, level):
    """Keys of replicates ``first`` .. ``first + replicates - 1`` at one level (level 0:
    the initial draw)."""
    return jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(base, r), level))(
        jnp.arange(first, first + replicates, dtype=jnp.uint32))


class _Programs(NamedTuple):
    init: Callable
    level: Callable
    matrices: Callable


@functools.lru_cache(maxsize=16)
def _programs(model, prior, latent_name, move, survival, particles, n_train, devices,
              use_fiber):
    """The jitted, replicate-sharded init, level and matrix programs (cached)."""
    coords = latent.make_latent(model, prior, latent_name)
    matrix = latent.normalized(coords, prior)
    evaluate = make_evaluate(matrix, n_train)

    def kernels(ops, labels):
        if not use_fiber:
            return (move,)
        return (move,) + fibers.fiber_moves(coords, prior, ops[:, :n_train], labels[:n_train])
    mesh = Mesh(np.asarray(devices), ("d",))
    rep, shared = PartitionSpec("d"), PartitionSpec()

    def init_all(keys, ops, labels):
        def one(key):
            return init(key, lambda z: evaluate(z, ops, labels), particles, coords.dim,
                        kernels(ops, labels))
        return jax.vmap(one)(keys)

    def level_all(keys, state, ops, labels, eps, edges, least, most, target):
        level_fn = build_level(kernels(ops, labels), matrix, survival)

        def one(key, state):
            return level_fn(key, state, lambda z: evaluate(z, ops, labels), eps, edges,
                            (least, most, target))
        return jax.vmap(one)(keys, state)

    def matrices_all(z):
        return jax.vmap(jax.vmap(matrix))(z)

    def sharded(fn, in_specs, out_specs):
        # Replicates are independent: no collective, so no replication check is needed
        # (it would ask every loop carry to be marked device-varying).
        return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                     check_vma=False))

    return _Programs(
        sharded(init_all, (rep, shared, shared), rep),
        sharded(level_all, (rep, rep) + (shared,) * 7, (rep, rep)),
        sharded(matrices_all, (rep,), rep))


def _check(eps, particles, replicates, seed, moves_, target, max_moves, survival, max_levels,
           first_replicate):
    def positive_int(name, value, least=1):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                and value >= least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")

    if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    positive_int("particles", particles, 4)
    positive_int("replicates", replicates)
    positive_int("max_moves", max_moves)
    positive_int("max_levels", max_levels)
    positive_int("first_replicate", first_replicate, 0)
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= draws.MAX_SEED):
        raise ValueError(f"seed must be an integer in [0, {draws.MAX_SEED}], got {seed!r}")
    if moves_ != "auto":
        positive_int("moves", moves_)
    if not (isinstance(target, numbers.Real) and 0 < target < 1):
        raise ValueError(f"target_correlation must be in (0, 1), got {target!r}")
    if not (isinstance(survival, numbers.Real) and 0 < survival < 1
            and 1 <= math.floor(survival * particles) < particles):
        raise ValueError(f"survival must be in (0, 1) and keep between 1 and particles - 1 "
                         f"particles, got {survival!r}")
