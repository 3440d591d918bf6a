"""Adaptive multilevel splitting, the algorithm: particle systems, levels and moves.

Plain G&C needs about 1/p draws to accept one, p = P(train loss < eps) under the
prior. Splitting reaches p = 1e-15 and far below with a few thousand particles:

1. draw N particles from the prior (in Gaussian coordinates z ~ N(0, I));
2. at each level, the level is the ``survival`` quantile of their train losses
   (the median by default); the particles at or above it (ties counted) are
   killed and replaced by clones of uniformly chosen survivors, and p's estimate
   is multiplied by the surviving fraction;
3. every particle then makes moves that leave the prior restricted to {L < level}
   invariant (:mod:`gcsampler.splitting.moves`, and a task's own moves along the
   level set); "auto" measures, over the particles, the correlation of their log
   train loss, gen loss and four random projections of their observable (a
   factorization's end-to-end matrix W) with where the level started, and makes
   twice as many moves as it took every |correlation| to fall to
   ``target_correlation`` (a decorrelation time, doubled: the first crossing alone
   stopped too early in tests against rejection); or a fixed number of moves;
4. when the next level would pass eps, the last factor is the fraction below eps,
   and those particles are the G&C posterior sample.

This is adaptive multilevel splitting (Cerou & Guyader 2007), also known as
subset simulation with adaptive quantile levels (Au & Beck 2001) or nested
sampling deleting a fraction at a time (Skilling 2006); its p estimate is
unbiased (Brehier, Lelievre & Rousset 2015).

The API follows BlackJAX: :func:`init` and :func:`build_level` (a per-replicate
``level(key, state, ...) -> (state, LevelInfo)``) are pure, and the move kernels
are pluggable. A task's driver runs replicates level by level
(:func:`gcsampler.factorization.splitting.multilevel_splitting`).

Each level also counts, over a fixed grid of train-loss thresholds (``edges``),
how many of the particles it starts from lie below each (and their gen-loss sums):
a population at level l is the prior restricted to {L < l}, so that gives p and
the G&C gen loss at every threshold between l and the next level, i.e. the whole
curve from the prior down to eps from one run.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.threshold.statistics import float32_threshold

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
    nonfinite: jax.Array       # () int32, starting particles whose train loss is not finite
    moves: jax.Array           # () int32, sweeps of moves made at this level
    acceptance: jax.Array      # (K,) per move kernel, the fraction of its moves that moved
    proposals: jax.Array       # () int32, loss evaluations of all moves
    proposals_max: jax.Array   # () int32, most evaluations of one step of one kernel
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
    """The thresholds of the per-level counts: the fixed log grid plus eps as float32
    (rounded up, :func:`~gcsampler.threshold.statistics.float32_threshold`)."""
    lo, hi = GRID_LOG10_RANGE
    grid = 10.0 ** (np.arange(lo * GRID_PER_DECADE, hi * GRID_PER_DECADE + 1) / GRID_PER_DECADE)
    return np.sort(np.append(grid.astype(np.float32), float32_threshold(eps)))


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

    ``kernels``: the moves (:class:`gcsampler.splitting.moves.Move`) one sweep makes, in turn;
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
        if any(k.chain > 1 for k in kernels):  # only then: dividing every kernel's count by
            # its chain gave other last bits with one device than with two (then other steps)
            acceptance = acceptance / jnp.asarray([k.chain for k in kernels], jnp.float32)
        param = jnp.stack([k.adapt(state.param[i], acceptance[i]) for i, k in enumerate(kernels)])
        param = jnp.where(sweeps > 0, param, state.param)
        after = ~final | alive
        info = LevelInfo(
            active=~state.done, final=final, level=level, log_p=log_p, killed=n - survivors,
            support_level=state.level, support_log_p=state.log_p,
            grid_count=grid[0], grid_gen_sum=grid[1], grid_gen_sumsq=grid[2],
            nonfinite=jnp.sum(~jnp.isfinite(state.train), dtype=jnp.int32), moves=sweeps, acceptance=acceptance, proposals=proposals,
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
            capped = capped + jnp.sum(info.capped, dtype=jnp.int32)
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
