"""Reference solutions of a problem: the minimum Frobenius- and nuclear-norm interpolants.

G&C and gradient descent (GD) both return matrices that fit the train measurements; these two
convex interpolants are the reference points beside them. The minimum Frobenius-norm
interpolant is what GD on the matrix itself (no factorization) converges to from zero, and its
test predictions carry no information beyond the train span. The minimum nuclear-norm
interpolant is the convex surrogate of the lowest-rank fit: GD on a factorization from small
initialization is known to approach it in matrix sensing (Gunasekar et al., NeurIPS 2017;
Arora et al., NeurIPS 2019), and with enough generic measurements it recovers a low-rank
ground truth exactly (Candes & Recht 2009; Recht, Fazel & Parrilo 2010).

Both are computed in float64. When the train system is inconsistent, "interpolant" means the
minimizer over the least-squares solutions (the affine set x0 + null(A), x0 = A^+ y).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.factorization import problems

# Douglas-Rachford step t = STEP * ||x0||_F (so iterates scale with the labels) and
# over-relaxation ALPHA. Any t > 0 and ALPHA in (0, 2) converge (Eckstein & Bertsekas 1992);
# these had the fewest iterations in the worst case among those tried (STEP 0.03 .. 1,
# ALPHA 1 .. 1.9) on 24 seeds each of 5x5 and 10x10 sensing and completion problems.
STEP = 0.1
ALPHA = 1.5
# Iterations between duality-gap checks (a check costs about one iteration).
CHECK_EVERY = 10


def min_frobenius_interpolant(problem):
    """The minimum Frobenius-norm W with <A_i, W> = y_i: A^+ y, as an (n_rows, n_cols) array."""
    x0, _ = _affine_solution_set(problem)
    return x0.reshape(problem.n_rows, problem.n_cols)


def min_nuclear_interpolant(problem, *, tol=1e-10, max_iter=100_000):
    """The minimum nuclear-norm W with <A_i, W> = y_i, as an (n_rows, n_cols) float64 array.

    Douglas-Rachford splitting between the nuclear norm (prox: singular-value soft-thresholding)
    and the affine solution set (projection x -> x0 + N x, N the projector onto null(A)), jitted
    once per matrix shape and run in float64 under a scoped ``jax.enable_x64`` (the global
    setting is untouched). Every CHECK_EVERY iterations it bounds the optimality gap by weak
    duality: Y, the iterate's subgradient restricted to range(A^T) and scaled to operator norm
    <= 1, gives <x0, Y> <= ||X||_* for every feasible X. It stops once ||W||_* - <x0, Y> <=
    tol * ||W||_*, so the returned W (the last prox, projected onto the constraint set, hence
    interpolating to float64 rounding) has a nuclear norm certified within a relative ``tol`` of
    the minimum. Warns (RuntimeWarning) if ``max_iter`` is reached first, which happens on
    degenerate problems (near-zero singular values at the solution), where DR is slow.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    x0, null_proj = _affine_solution_set(problem)
    shape = (problem.n_rows, problem.n_cols)
    scale = float(np.linalg.norm(x0))
    if scale == 0.0:  # y projects to 0: W = 0 is feasible and has the least possible norm
        return np.zeros(shape)
    with jax.enable_x64(True):
        w, iters, gap = _douglas_rachford(jnp.asarray(x0), jnp.asarray(null_proj),
                                          STEP * scale, tol, int(max_iter), shape=shape)
        w, iters, gap = np.asarray(w, np.float64), int(iters), float(gap)
    if not gap <= tol:
        warnings.warn(
            f"min_nuclear_interpolant stopped after {iters} iterations with relative duality "
            f"gap {gap:.1e} > tol = {tol:.1e}: the nuclear norm is within that gap of the "
            f"minimum; raise max_iter for more", RuntimeWarning, stacklevel=2)
    return w.reshape(shape)


def reference_losses(problem):
    """Train and gen losses of both interpolants, as Python floats, keyed by
    ``min_{frobenius,nuclear}_{train,gen}_loss``."""
    _check_finite(problem, ("test_ops", "test_labels"))
    out = {}
    for name, solve in (("frobenius", min_frobenius_interpolant),
                        ("nuclear", min_nuclear_interpolant)):
        train, gen = problems.losses(problem, solve(problem))
        out[f"min_{name}_train_loss"] = float(train)
        out[f"min_{name}_gen_loss"] = float(gen)
    return out


def _check_finite(problem, names):
    for name in names:
        if not np.all(np.isfinite(getattr(problem, name))):
            raise ValueError(f"problem.{name} contains NaN or inf")


def _affine_solution_set(problem):
    """(x0, N): the least-squares solutions of A x = y are x0 + null(A), N projects onto null(A).

    x0 = A^+ y is the minimum-norm one. Both come from one SVD of A in float64, with the
    numerical rank cut at eps * max(m, D) * sigma_max (as numpy.linalg.matrix_rank).
    """
    _check_finite(problem, ("train_ops", "train_labels"))
    ops = np.asarray(problem.train_ops, np.float64)
    labels = np.asarray(problem.train_labels, np.float64)
    size = problem.n_rows * problem.n_cols
    if ops.ndim != 2 or ops.shape[1] != size or labels.shape != (ops.shape[0],):
        raise ValueError(
            f"train_ops must have shape (m, {size}) and train_labels (m,), got {ops.shape} "
            f"and {labels.shape}")
    u, s, vt = np.linalg.svd(ops, full_matrices=False)
    rank = int(np.sum(s > s.max(initial=0.0) * np.finfo(np.float64).eps * max(ops.shape)))
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    x0 = vt.T @ ((u.T @ labels) / s)
    return x0, np.eye(size) - vt.T @ vt


def _svt(z, threshold, shape):
    """Prox of threshold * ||.||_*: soft-threshold the singular values of z (flattened)."""
    u, s, vt = jnp.linalg.svd(z.reshape(shape), full_matrices=False)
    return ((u * jnp.maximum(s - threshold, 0.0)) @ vt).reshape(-1)


def _douglas_rachford_impl(x0, null_proj, step, tol, max_iter, shape):
    """Relaxed DR for min ||X||_* over x0 + null(A); returns (W, iterations, relative gap)."""

    def project(x):
        return x0 + null_proj @ x

    def dr_step(_, z):
        x = _svt(z, step, shape)
        return z + ALPHA * (project(2.0 * x - z) - x)

    def relative_gap(z):
        x = _svt(z, step, shape)
        w = project(x)
        # z - x = step * G with G a subgradient of ||.||_* at x; keep its range(A^T) part.
        g = (z - x) - null_proj @ (z - x)
        nuclear = jnp.sum(jnp.linalg.svd(w.reshape(shape), compute_uv=False))
        op_norm = jnp.linalg.svd(g.reshape(shape), compute_uv=False)[0]
        lower = x0 @ g / jnp.maximum(step, op_norm)
        return w, (nuclear - lower) / nuclear

    def not_done(state):
        k, _, gap = state
        return (k < max_iter) & (gap > tol)

    def check_every(state):
        k, z, _ = state
        z = jax.lax.fori_loop(0, CHECK_EVERY, dr_step, z)
        return k + CHECK_EVERY, z, relative_gap(z)[1]

    init = (jnp.zeros((), jnp.int32), x0, jnp.asarray(jnp.inf, x0.dtype))
    iters, z, gap = jax.lax.while_loop(not_done, check_every, init)
    return relative_gap(z)[0], iters, gap


_douglas_rachford = jax.jit(_douglas_rachford_impl, static_argnames="shape")
