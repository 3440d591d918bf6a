"""What a splitting run produces, where it can continue from, and how runs of
different replicates combine.
"""

from typing import Any, NamedTuple

import numpy as np

from gcsampler.splitting.base import LevelInfo, State


class Snapshot(NamedTuple):
    """Where a splitting run continues from, after ``level`` levels (NumPy arrays).

    Attributes:
      level: levels made so far (the next one's keys are derived from ``level + 1``).
      state: every replicate's :class:`~gcsampler.splitting.base.State` (leading axis R).
      levels: LevelInfo of the levels made, fields of leading axes (levels, R).
      evaluations: loss evaluations so far.
      seconds: wall time so far, compilation excluded.
    """

    level: int
    state: State
    levels: Any
    evaluations: int
    seconds: float


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
      seconds: wall time, compilation excluded.
      latent, move: the coordinate map's and the move's names.
      fibers: the names of the moves along the level set (:mod:`gcsampler.factorization.fibers`)
        made after each move, in order (empty: none applied or ``fiber`` was False).
      rotations: the names of the layer rotations
        (:mod:`gcsampler.factorization.rotations`) made after those, in order.
      converged: whether every replicate reached eps within the level cap.
      first_replicate: the number of the first replicate (the others follow it).
      compile_seconds: time spent making the programs (tracing, compiling or reading
        them from JAX's compilation cache) in this process.
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
    rotations: tuple = ()
    first_replicate: int = 0
    compile_seconds: float = 0.0


def blank(dtype, shape):
    """The value of a level row where a replicate had finished: NaN, or 0 (False)."""
    return np.full(shape, np.nan if np.issubdtype(dtype, np.floating) else 0, dtype)


def blank_finished(levels):
    """``levels`` with the rows of replicates that had finished blanked (:func:`blank`):
    they did nothing, and a replicate's rows must not depend on the others' levels."""
    active = levels.active
    return LevelInfo(*(np.where(active.reshape(active.shape + (1,) * (field.ndim - 2)), field,
                                blank(field.dtype, ())).astype(field.dtype)
                       for field in levels))


def combine(results):
    """The :class:`SplittingResult` of runs of consecutive replicate ranges of one
    setting (``first_replicate``): what one run of all of them gives. Level rows are
    padded with blank rows to the longest run's; ``final_matrix`` is None unless
    every run has it; ``seconds`` and ``compile_seconds`` are the longest run's.
    """
    results = sorted(results, key=lambda r: r.first_replicate)
    for before, after in zip(results, results[1:]):
        if after.first_replicate != before.first_replicate + before.replicates:
            raise ValueError(f"replicates {before.first_replicate + before.replicates} to "
                             f"{after.first_replicate - 1} are missing or run twice")
    rows = max(r.levels.active.shape[0] for r in results)

    def padded(field):
        extra = blank(field.dtype, (rows - field.shape[0],) + field.shape[1:])
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
        compile_seconds=max(r.compile_seconds for r in results),
        converged=all(r.converged for r in results))
