"""Measurement problems: operators, labels and the two losses of a matrix estimate.

A problem is fixed data (no randomness at sampling time): stacked train and test
operators, each flattened to a row of length ``n_rows * n_cols``, and their labels.
Problems are generated on the host in float64 NumPy from a problem seed, so the
same seed gives the same problem on every machine, then cast to float32 for the
device. Conventions follow Alexander et al. (NeurIPS 2025), see docs/conventions.md.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gcsampler.core import pairwise
from gcsampler.core.registry import Registry

class Problem(NamedTuple):
    """Train and test measurements of an unknown ``n_rows x n_cols`` matrix.

    Attributes:
      train_ops: (m, n_rows * n_cols) flattened train operators A_i.
      train_labels: (m,) labels y_i = <A_i, W*>.
      test_ops: (t, n_rows * n_cols) flattened test operators B_j.
      test_labels: (t,) labels <B_j, W*>.
      n_rows, n_cols: shape of the matrix being estimated.
      ground_truth: (n_rows, n_cols) W* when known, else None.
    """

    train_ops: np.ndarray
    train_labels: np.ndarray
    test_ops: np.ndarray
    test_labels: np.ndarray
    n_rows: int
    n_cols: int
    ground_truth: np.ndarray | None = None


def ground_truth(rng, n_rows, n_cols, rank, gt_norm):
    """W* = U V with iid N(0,1) factors, scaled to Frobenius norm ``gt_norm``."""
    u = rng.standard_normal((n_rows, rank))
    v = rng.standard_normal((rank, n_cols))
    w = u @ v
    return w * (gt_norm / np.linalg.norm(w))


def orthogonal_complement(ops):
    """Orthonormal rows spanning the complement of the row span of ``ops`` (m, D).

    Uses a complete QR of ``ops.T``; the last ``D - rank`` columns of Q are an
    orthonormal basis of the complement in the Frobenius inner product.
    """
    q, r = np.linalg.qr(ops.T, mode="complete")
    diag = np.abs(np.diag(r)) if r.size else np.zeros(0)
    rank = int(np.sum(diag > 1e-10 * max(1.0, diag.max(initial=0.0))))
    return q[:, rank:].T


def matrix_sensing(seed=0, n_rows=5, n_cols=5, rank=1, gt_norm=1.0, measurements=15):
    """Gaussian matrix sensing: unit-norm N(0,1) operators, test basis = complement.

    Args:
      seed: problem seed; the same seed gives the same problem everywhere.
      n_rows, n_cols: matrix shape.
      rank: rank of the ground truth.
      gt_norm: Frobenius norm of the ground truth.
      measurements: number of train operators m (at most n_rows * n_cols - 1,
        so that a test set remains).
    """
    _check_sizes(n_rows, n_cols, rank, measurements, gt_norm)
    rng = np.random.default_rng(seed)
    w_star = ground_truth(rng, n_rows, n_cols, rank, gt_norm)
    ops = rng.standard_normal((measurements, n_rows * n_cols))
    ops /= np.linalg.norm(ops, axis=1, keepdims=True)
    test_ops = orthogonal_complement(ops)
    return _labelled(ops, test_ops, w_star)


def matrix_completion(seed=0, n_rows=5, n_cols=5, rank=1, gt_norm=1.0, measurements=15):
    """Matrix completion: ``measurements`` distinct entries observed, the rest tested."""
    _check_sizes(n_rows, n_cols, rank, measurements, gt_norm)
    rng = np.random.default_rng(seed)
    w_star = ground_truth(rng, n_rows, n_cols, rank, gt_norm)
    size = n_rows * n_cols
    observed = rng.choice(size, size=measurements, replace=False)
    hidden = np.setdiff1d(np.arange(size), observed)
    eye = np.eye(size)
    return _labelled(eye[observed], eye[hidden], w_star)


# The measurement tasks ``--task`` names: name -> a function of (seed, n_rows, n_cols,
# rank, gt_norm, measurements) that makes the Problem. ``MODULE:ATTR`` names a user's own
# such function, or a fixed Problem.
TASKS = Registry("--task", {"sensing": matrix_sensing, "completion": matrix_completion},
                 importable=True)


def make_problem(task, **kwargs):
    """The problem of a measurement task: a registered name or ``MODULE:ATTR`` (a
    function taking ``matrix_sensing``'s keyword arguments, or a :class:`Problem`)."""
    made = TASKS.resolve(task)
    if isinstance(made, Problem):
        return made
    if not callable(made):
        raise ValueError(f"--task {task} is neither a Problem nor a function that makes one")
    try:
        problem = made(**kwargs)
    except TypeError as err:
        raise ValueError(f"--task {task} cannot make a problem from matrix_sensing's "
                         f"arguments ({err})") from None
    if not isinstance(problem, Problem):
        raise ValueError(f"--task {task} returned {type(problem).__name__}, not a Problem")
    return problem


def from_arrays(train_ops, train_labels, test_ops, test_labels, ground_truth=None):
    """A problem from user arrays.

    Operators may be given as (m, n_rows, n_cols) matrices; labels as (m,) vectors.
    """
    train_ops = np.asarray(train_ops, dtype=np.float64)
    test_ops = np.asarray(test_ops, dtype=np.float64)
    if train_ops.ndim != 3 or test_ops.ndim != 3:
        raise ValueError("train_ops and test_ops must have shape (count, n_rows, n_cols)")
    if train_ops.shape[1:] != test_ops.shape[1:]:
        raise ValueError(
            f"train_ops matrices are {train_ops.shape[1:]} but test_ops are {test_ops.shape[1:]}")
    n_rows, n_cols = train_ops.shape[1:]
    train_labels = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    test_labels = np.asarray(test_labels, dtype=np.float64).reshape(-1)
    if train_labels.shape[0] != train_ops.shape[0]:
        raise ValueError(f"{train_ops.shape[0]} train operators but {train_labels.shape[0]} labels")
    if test_labels.shape[0] != test_ops.shape[0]:
        raise ValueError(f"{test_ops.shape[0]} test operators but {test_labels.shape[0]} labels")
    if train_ops.shape[0] == 0 or test_ops.shape[0] == 0:
        raise ValueError("a problem needs at least one train and one test operator")
    for name, arr in (("train_ops", train_ops), ("test_ops", test_ops),
                      ("train_labels", train_labels), ("test_labels", test_labels)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
    gt = None if ground_truth is None else np.asarray(ground_truth, dtype=np.float64)
    return Problem(train_ops.reshape(len(train_ops), -1), train_labels,
                   test_ops.reshape(len(test_ops), -1), test_labels, int(n_rows), int(n_cols), gt)


def stacked_operators(problem, dtype=jnp.float32):
    """(D, m + t) operator matrix and (m + t,) labels, train first: one product gives all
    residuals."""
    ops = np.concatenate([problem.train_ops, problem.test_ops], axis=0)
    labels = np.concatenate([problem.train_labels, problem.test_labels])
    return jnp.asarray(ops.T, dtype=dtype), jnp.asarray(labels, dtype=dtype)


def losses_from_residuals(residuals, n_train):
    """Mean squared train and gen residuals from (..., m + t) residuals.

    Summed in a fixed order, so a draw's losses are the same bits in any batch.
    """
    sq = jnp.square(residuals)
    return pairwise.pairwise_mean(sq[..., :n_train]), pairwise.pairwise_mean(sq[..., n_train:])


def losses(problem, matrices):
    """Train and gen loss of (..., n_rows, n_cols) matrices, computed in float64 NumPy.

    The reference implementation for checks and reports; the sampler uses the
    device kernel in :mod:`gcsampler.factorization.task`.
    """
    w = np.asarray(matrices, dtype=np.float64)
    flat = w.reshape(*w.shape[:-2], problem.n_rows * problem.n_cols)
    train = np.mean((flat @ problem.train_ops.T - problem.train_labels) ** 2, axis=-1)
    gen = np.mean((flat @ problem.test_ops.T - problem.test_labels) ** 2, axis=-1)
    return train, gen


def _check_sizes(n_rows, n_cols, rank, measurements, gt_norm):
    if not (isinstance(gt_norm, (int, float, np.number)) and np.isfinite(gt_norm) and gt_norm > 0):
        raise ValueError(f"gt_norm must be a positive finite number, got {gt_norm!r}")
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols), ("rank", rank),
                        ("measurements", measurements)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if rank > min(n_rows, n_cols):
        raise ValueError(f"rank must be at most min(n_rows, n_cols) = {min(n_rows, n_cols)}, "
                         f"got {rank}")
    if measurements >= n_rows * n_cols:
        raise ValueError(
            f"measurements must be below n_rows * n_cols = {n_rows * n_cols} so that a test set "
            f"remains, got {measurements}")


def _labelled(train_ops, test_ops, w_star):
    flat = w_star.reshape(-1)
    return Problem(train_ops, train_ops @ flat, test_ops, test_ops @ flat,
                   w_star.shape[0], w_star.shape[1], w_star)
