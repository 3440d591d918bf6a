"""Multilevel splitting of factorizations: the driver that runs replicates level by level.

Particles live in the prior's Gaussian coordinates (:mod:`.latent`); the moves are
the registered ones (:mod:`gcsampler.splitting.moves`) followed, for the built-in
Gaussian prior, by the moves along the level set of :mod:`.fibers` and, at depth >= 2,
the layer rotations of :mod:`.rotations`. R independent
replicates run in one batch, sharded over devices (and split over processes by
:mod:`gcsampler.runs.splitting_run`, :func:`gcsampler.splitting.results.combine`
joining them). A run can stop after any level and continue from its
:class:`~gcsampler.splitting.results.Snapshot` with the same bits.
"""

import functools
import math
import numbers
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from gcsampler.core import keys
from gcsampler.core.compile_clock import compile_clock
from gcsampler.core.devices import resolve_devices
from gcsampler.core.loop import Stopped
from gcsampler.factorization import fibers, latent, problems, rotations
from gcsampler.factorization.task import check_pieces
from gcsampler.splitting.base import (DEFAULT_MAX_LEVELS, DEFAULT_MAX_MOVES, DEFAULT_PARTICLES,
                                      DEFAULT_REPLICATES, DEFAULT_SURVIVAL,
                                      DEFAULT_TARGET_CORRELATION, NOISE_CORRELATION, LevelInfo,
                                      State, auto_moves, build_level, fixed_moves, grid_edges,
                                      init)
from gcsampler.splitting.moves import make_move
from gcsampler.splitting.results import Snapshot, SplittingResult, blank_finished
from gcsampler.threshold.statistics import float32_threshold
from gcsampler.threshold.task import check_eps


def make_evaluate(matrix, n_train):
    """``evaluate(z, ops, labels) -> (train, gen)`` of one particle; NaN train -> +inf."""

    def evaluate(z, ops, labels):
        flat = matrix(z).reshape(-1)
        residuals = jnp.matmul(flat, ops, precision=jax.lax.Precision.HIGHEST) - labels
        train, gen = problems.losses_from_residuals(residuals, n_train)
        finite = jnp.isfinite(train) & jnp.isfinite(gen)
        return jnp.where(finite, train, jnp.inf), gen

    return evaluate


def replicate_devices(replicates, devices):
    """The devices the replicates are sharded over: the most of ``devices`` (all local
    ones for None) that divides ``replicates``."""
    available = resolve_devices(devices)
    count = max(d for d in range(1, len(available) + 1) if replicates % d == 0)
    return available[:count]


def multilevel_splitting(problem, model, prior, *, eps, particles=DEFAULT_PARTICLES,
                         replicates=DEFAULT_REPLICATES, seed=0, move="ess", moves="auto",
                         target_correlation=DEFAULT_TARGET_CORRELATION,
                         max_moves=DEFAULT_MAX_MOVES, survival=DEFAULT_SURVIVAL,
                         latent_map="auto", fiber=True, rotate=True,
                         max_levels=DEFAULT_MAX_LEVELS,
                         devices=None, first_replicate=0, on_level: Callable | None = None,
                         start: Snapshot | None = None, on_snapshot: Callable | None = None,
                         stop: Callable | None = None):
    """Estimate p = P(train loss < eps) and sample the prior restricted to {train loss < eps}.

    Args:
      problem, model, prior: what to sample (see problems, models, priors); the
        prior needs a ``from_normal`` map (the built-in ones have one).
      eps: the G&C threshold (strict; rounded up to float32 like every method's).
      particles: N per replicate.
      replicates: R independent particle systems, run together.
      seed: replicate r is a pure function of (seed, r, N and the settings).
      move: a name in :data:`~gcsampler.splitting.moves.MOVES` ('ess', 'pcn') or a
        :class:`~gcsampler.splitting.moves.Move`.
      moves: 'auto' (until decorrelated, see :mod:`gcsampler.splitting.base`) or a fixed
        count.
      target_correlation, max_moves: the 'auto' criterion and its cap; the target is
        raised to 3 / sqrt(particles) where that is larger (the correlations' noise).
      survival: fraction of particles kept per level (p0), in (0, 1).
      latent_map: 'auto', 'direct' or 'last_layer' (:mod:`.latent`).
      fiber: after each move, also make the moves along the level set of :mod:`.fibers`
        where they apply (the built-in Gaussian prior): ``fiber`` without
        normalization, ``cone`` on every linear block with it.
      rotate: after those, also turn each layer's rows and columns
        (:mod:`.rotations`) where that applies (the built-in Gaussian prior, depth >= 2).
      max_levels: stop (``converged`` False) after this many levels.
      devices: None/'all', a count or devices; replicates are sharded over as many
        as divide R.
      first_replicate: run replicates ``first_replicate`` to ``first_replicate + R - 1``
        (each a pure function of its number), so that runs of consecutive ranges
        combine into the run of them all (one range per process).
      on_level: called as ``on_level(info, seconds)`` after each level, with the
        level's LevelInfo (fields of shape (R,)).
      start: continue a run of the same settings from this snapshot: the result has
        the bits of a run without a stop (on the same number of devices).
      on_snapshot: called as ``on_snapshot(snapshot)`` after each level; its ``state``
        is on the devices until read.
      stop: ``() -> bool``, asked after each level (before ``on_snapshot``): True ends the
        run there, unless it is the last, raising :class:`~gcsampler.core.loop.Stopped`
        with its snapshot once ``on_snapshot`` has had it.
    """
    _check(eps, particles, replicates, seed, moves, target_correlation, max_moves, survival,
           max_levels, first_replicate)
    check_pieces(problem, model, prior)
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
    rotation_names = tuple(m.name for m in rotations.rotation_moves(coords, model, prior)
                           ) if rotate else ()
    with compile_clock() as clock:  # the first level compiles: not sampling time
        began = time.perf_counter()  # (so that every compile the clock counts is after it)
        programs = _programs(model, prior, coords.name, kernel, survival, particles,
                             n_train, tuple(used), bool(fiber_names), bool(rotation_names))
        base = keys.seed_key(seed)
        edges = jnp.asarray(grid_edges(eps))
        eps32 = jnp.float32(float32_threshold(eps))
        if start is None:
            state = programs.init(_keys(base, first_replicate, replicates, 0), ops, labels)
            infos, evaluations, before, first = [], replicates * particles, 0.0, 1
        else:
            _check_start(start, replicates, particles, coords.dim)
            state, infos = State(*start.state), list(start.levels)
            evaluations, before, first = start.evaluations, start.seconds, start.level + 1
        for count in range(first, max_levels + 1):
            if infos and _finished(infos[-1], particles):
                break
            state, info = programs.level(_keys(base, first_replicate, replicates, count), state,
                                         ops, labels, eps32, edges, jnp.int32(schedule.least),
                                         jnp.int32(schedule.most),
                                         jnp.float32(schedule.target_correlation))
            info = jax.device_get(info)
            infos.append(info)
            evaluations += int(np.sum(np.where(info.active, info.proposals, 0), dtype=np.int64))
            seconds = before + time.perf_counter() - began - clock.seconds
            if on_level is not None:
                on_level(info, seconds)
            snapshot = Snapshot(count, state, tuple(infos), evaluations, seconds)
            stopping = (stop is not None and count < max_levels and not _finished(info, particles)
                        and stop())
            if on_snapshot is not None:
                on_snapshot(snapshot)
            if stopping:
                raise Stopped(snapshot)
        done = jax.device_get(state.done)
        matrices = jax.device_get(programs.matrices(state.z))
        final_train, final_gen, log_p = jax.device_get((state.train, state.gen, state.log_p))
        levels = blank_finished(LevelInfo(*(np.stack(field) for field in zip(*infos))))
        return SplittingResult(
            log_p=np.where(done, log_p, np.nan).astype(np.float64), levels=levels,
            final_train=final_train, final_gen=final_gen, final_matrix=matrices,
            accepted=done[:, None] & (final_train < eps32), edges=np.asarray(edges), eps=float(eps),
            particles=particles, replicates=replicates, evaluations=evaluations,
            seconds=before + time.perf_counter() - began - clock.seconds,
            compile_seconds=clock.seconds, latent=coords.name, move=kernel.name,
            fibers=fiber_names, rotations=rotation_names, converged=bool(np.all(done)),
            first_replicate=first_replicate)


def _finished(info, particles):
    """Whether the level of ``info`` was every replicate's last."""
    return bool(np.all(~info.active | info.final | (info.killed == particles)))


def _check_start(start, replicates, particles, dim):
    """Refuse a snapshot of other settings (its state's shape says)."""
    shape = tuple(np.shape(start.state.z))
    if shape != (replicates, particles, dim) or len(start.levels) != start.level:
        raise ValueError(f"start snapshot does not fit this run: particles of shape {shape} "
                         f"after {len(start.levels)} of {start.level} levels, expected "
                         f"{(replicates, particles, dim)}")


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
              use_fiber, use_rotation):
    """The jitted, replicate-sharded init, level and matrix programs (cached).

    A device maps over its replicates one at a time (``lax.map``, not ``vmap``): each
    replicate is then computed with the same shapes however many share a device, so its
    bits do not depend on the device or process count (vmapped, XLA rounded differently
    for different replicate counts, and an elliptical slice could take one more step)."""
    coords = latent.make_latent(model, prior, latent_name)
    matrix = latent.normalized(coords, prior)
    evaluate = make_evaluate(matrix, n_train)
    turns = rotations.rotation_moves(coords, model, prior) if use_rotation else ()

    def kernels(ops, labels):
        along = (fibers.fiber_moves(coords, prior, ops[:, :n_train], labels[:n_train])
                 if use_fiber else ())
        return (move,) + along + turns
    mesh = Mesh(np.asarray(devices), ("d",))
    rep, shared = PartitionSpec("d"), PartitionSpec()

    def init_all(keys_, ops, labels):
        def one(key):
            return init(key, lambda z: evaluate(z, ops, labels), particles, coords.dim,
                        kernels(ops, labels))
        return jax.lax.map(one, keys_)

    def level_all(keys_, state, ops, labels, eps, edges, least, most, target):
        level_fn = build_level(kernels(ops, labels), matrix, survival)

        def one(key_and_state):
            key, state = key_and_state
            return level_fn(key, state, lambda z: evaluate(z, ops, labels), eps, edges,
                            (least, most, target))
        return jax.lax.map(one, (keys_, state))

    def matrices_all(z):
        return jax.lax.map(jax.vmap(matrix), z)

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

    check_eps(eps)
    positive_int("particles", particles, 4)
    positive_int("replicates", replicates)
    positive_int("max_moves", max_moves)
    positive_int("max_levels", max_levels)
    positive_int("first_replicate", first_replicate, 0)
    keys.check_seed(seed)
    if moves_ != "auto":
        positive_int("moves", moves_)
    if not (isinstance(target, numbers.Real) and 0 < target < 1):
        raise ValueError(f"target_correlation must be in (0, 1), got {target!r}")
    if not (isinstance(survival, numbers.Real) and 0 < survival < 1
            and 1 <= math.floor(survival * particles) < particles):
        raise ValueError(f"survival must be in (0, 1) and keep between 1 and particles - 1 "
                         f"particles, got {survival!r}")
