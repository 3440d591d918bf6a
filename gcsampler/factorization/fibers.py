"""Moves along the fibres of the train predictions: splitting moves that stay free at
any rarity.

At small eps the level set {train loss < level} is a thin tube around the weights
that interpolate the train labels. Elliptical slice and pCN (:mod:`gcsampler.splitting.moves`)
can only take steps as small as the tube is wide. The train loss depends on the
weights only through the m train predictions, so the moves here change the weights
while keeping the predictions (or, for a normalized prior, their direction) fixed,
and travel along the tube instead of across it.

Both work on a coordinate block ``b = z[start:stop]`` in which the end-to-end matrix
W (before normalization) is linear given the other coordinates
(``Latent.linear_blocks``, :mod:`gcsampler.factorization.latent`). Then the train predictions are
``c = M b`` with ``M`` (m, n) a function of the other coordinates; under z ~ N(0, I),
``b`` is its row-space part ``M^+ c`` plus an independent standard normal ``v`` in
the null space of ``M``.

- :func:`fiber` (prior without normalization): the loss depends on c alone. The
  move keeps c fixed: Metropolis-Hastings on the other coordinates given c, then an
  exact redraw of ``v``.
- :func:`cone` (normalized prior): the loss sees ``e = c / (||W|| + 1e-6)``. The
  move keeps the direction of c fixed, moves ``v`` and re-solves the length of c
  so that e lands anywhere inside the level set.

Both are Metropolis-Hastings kernels for N(0, I) restricted to the level set. In
float32 the predictions move by rounding; a result that rounding pushes out of the
level set is rejected (the particle stays put), as is one with a singular ``M M^T``
(relu can zero a hidden row), whose losses come out non-finite.

Linear algebra inside the vmapped level loops uses a Householder LQ
(:func:`gcsampler.factorization.collapsed.last_layer_root`) and hand-written substitution: LAPACK
calls there (Cholesky, triangular solve) deadlocked on the CPU (jaxlib 0.10).
"""

import jax
import jax.numpy as jnp

from gcsampler.factorization import collapsed
from gcsampler.splitting.moves import Move, MoveInfo, towards

FIBER_INITIAL = 0.3
FIBER_TARGET = 0.3
NORM_OFFSET = 1e-6          # the papers' normalization: W / (||W||_F + 1e-6)
_HI = jax.lax.Precision.HIGHEST


def fiber_blocks(latent, prior, n_train):
    """The blocks the moves here use for this coordinate map and prior: the linear
    blocks with at least ``n_train`` coordinates (so that ``M M^T`` can be
    invertible); all of them for :func:`cone` with normalization, the last one for
    :func:`fiber` without (it moves the other coordinates as well)."""
    usable = tuple(b for b in latent.linear_blocks if b[1] - b[0] >= n_train)
    return usable if prior.normalize else usable[-1:]


def fiber_moves(latent, prior, train_ops, train_labels):
    """The moves of this module for :func:`fiber_blocks` (train_ops (D, m), labels (m,))."""
    blocks = fiber_blocks(latent, prior, train_ops.shape[1])
    if prior.normalize:
        return tuple(cone(b, latent.matrix, train_ops, train_labels) for b in blocks)
    return tuple(fiber(b, latent.matrix, train_ops) for b in blocks)


def _block_maps(matrix, block, train_ops):
    """``(with_block, operator)`` for ``block = (start, stop)``: ``with_block(z, b)`` puts
    ``b`` into ``z``; ``operator(z)`` is M (m, stop - start), the train predictions'
    linear map from the block, given the rest of ``z``."""
    start, stop = block

    def with_block(z, b):
        return z.at[start:stop].set(b)

    def operator(z):
        # The predictions are linear in the block, so M's columns are the predictions
        # of the unit blocks: computed together, the rest of z's part once. (The same
        # M as jax.jacfwd, to rounding, in a third of its time: jacfwd carries the
        # primal and a tangent through every layer.)
        def predictions(b):
            return jnp.matmul(matrix(with_block(z, b)).reshape(-1), train_ops, precision=_HI)
        return jax.vmap(predictions, out_axes=1)(jnp.eye(stop - start, dtype=z.dtype))

    return with_block, operator


def _lift(op, root, x):
    """The minimum-norm block with predictions ``x``: M^T (M M^T)^-1 x (root: L L^T = M M^T)."""
    return jnp.matmul(op.T, _solve_upper(root.T, _solve_lower(root, x)), precision=_HI)


def _null_normal(key, op, root, shape, dtype):
    """A standard normal in the null space of M."""
    xi = jax.random.normal(key, shape, dtype)
    return xi - _lift(op, root, jnp.matmul(op, xi, precision=_HI))


def _settle(candidate, accept, z, train, gen, evaluate, level, reported=None):
    """The particle after Metropolis-Hastings decisions ``accept`` (it stays put if
    rounding took the candidate out of the level set); ``MoveInfo.moved`` reports
    ``reported`` (default: ``accept``) where the candidate is inside."""
    t, g = evaluate(candidate)
    inside = t < level
    moved = accept & inside
    reported = accept if reported is None else reported
    return (jnp.where(moved, candidate, z), jnp.where(moved, t, train),
            jnp.where(moved, g, gen), MoveInfo(reported & inside, jnp.int32(1)))


def fiber(block, matrix, train_ops, initial_step=FIBER_INITIAL, target=FIBER_TARGET):
    """The move that keeps the train predictions c fixed, for a prior without
    normalization. ``matrix`` is ``Latent.matrix``, linear in ``z[block[0]:block[1]]``;
    ``train_ops`` (D, m) are the flattened train operators.

    Under z ~ N(0, I), (rest, c) has density N(rest) N(c; 0, M M^T), and the train
    loss depends on c alone. The move:

    1. proposes rest' = sqrt(1 - s^2) rest + s nu (pCN, reversible for N(rest)) and
       accepts it with probability min(1, N(c; 0, M' M'^T) / N(c; 0, M M^T)):
       Metropolis-Hastings for the other coordinates given c;
    2. draws the block from its exact conditional given (rest, c): M^+ c plus a
       fresh standard normal in the null space of M.

    ``s`` is retuned between levels towards an acceptance of ``target``.
    """
    with_block, operator = _block_maps(matrix, block, train_ops)
    start, stop = block

    def log_density(root, c):
        """log N(c; 0, root root^T) up to a constant."""
        white = _solve_lower(root, c)
        return -0.5 * jnp.sum(white * white) - jnp.sum(jnp.log(jnp.diagonal(root)))

    def step(key, z, train, gen, level, evaluate, param):
        key_nu, key_accept, key_xi = jax.random.split(key, 3)
        op = operator(z)
        c = jnp.matmul(op, z[start:stop], precision=_HI)
        s = jnp.asarray(param, z.dtype)
        rest_moved = jnp.sqrt(1 - s * s) * z + s * jax.random.normal(key_nu, z.shape, z.dtype)
        proposal = with_block(rest_moved, z[start:stop])
        op_new = operator(proposal)
        root, root_new = collapsed.last_layer_root(op), collapsed.last_layer_root(op_new)
        log_ratio = log_density(root_new, c) - log_density(root, c)
        accept = jnp.log(jax.random.uniform(key_accept, (), z.dtype)) < log_ratio
        rest = jnp.where(accept, proposal, z)
        op, root = jnp.where(accept, op_new, op), jnp.where(accept, root_new, root)
        free = _null_normal(key_xi, op, root, (stop - start,), z.dtype)
        candidate = with_block(rest, _lift(op, root, c) + free)
        return _settle(candidate, accept, z, train, gen, evaluate, level)

    return Move("fiber", step, float(initial_step), towards(target))


def cone(block, matrix, train_ops, train_labels, initial_step=FIBER_INITIAL,
         target=FIBER_TARGET):
    """The move for a normalized prior: keeps the direction u of the train
    predictions c fixed and moves the block along the level set. ``matrix`` is
    ``Latent.matrix`` (before normalization), linear in the block; ``train_ops`` (D, m)
    and ``train_labels`` (m,) define the train loss ``|e - y|^2 / m`` of the
    normalized predictions ``e = c / (|W| + 1e-6)``.

    Write the block as ``t a + v``: t = |c|, a = M^+ u, v in the null space of M.
    Given u and the other coordinates, (t, v) has density rho(t) N(v), rho(t) ~
    t^(m-1) exp(-kappa t^2 / 2) with kappa = u^T (M M^T)^-1 u (c ~ N(0, M M^T) in
    polar coordinates), and the loss depends on g = t / (|W(t, v)| + 1e-6) alone
    (e = g u): the level set is an interval I of g, computed exactly. In
    coordinates (v, g, which solution t of g_v(t) = g), the density is N(v)
    rho(t) / |dg_v/dt|; summed over the (at most two) solutions it is N(v) S_v(g).
    The move makes two Metropolis-Hastings steps:

    1. v' by pCN in the null space at fixed g (so at a fixed train loss), the
       solution t' drawn with probability proportional to rho(t') / |dg_v'/dt'|;
       accepted with probability min(1, S_v'(g) / S_v(g)), near 1 for small steps.
       Its step size is retuned between levels towards an acceptance of
       ``target``; this step's acceptance is what ``MoveInfo.moved`` reports.
    2. g' uniform on I at fixed v, t' drawn as above; accepted with probability
       min(1, S_v(g') / S_v(g)): a density ratio along I, near 1 when I is thin.
    """
    with_block, operator = _block_maps(matrix, block, train_ops)
    start, stop = block
    m = train_ops.shape[1]

    def flat(z, b):
        return matrix(with_block(z, b)).reshape(-1)

    def norm_terms(w_a, w_v):
        """(|W_a|^2, <W_a, W_v>, |W_v|^2): |W(t a + v)|^2 = |t W_a + W_v|^2 is the
        quadratic in t they make (W is linear in the block)."""
        return jnp.stack([jnp.sum(w_a * w_a), jnp.sum(w_a * w_v), jnp.sum(w_v * w_v)])

    def log_weight(t, quad, kappa, valid):
        """log rho(t) / |dg/dt| where valid, -inf elsewhere."""
        alpha, beta, gamma = quad
        t = jnp.where(valid, t, 1.0)
        norm = jnp.sqrt(jnp.maximum(alpha * t * t + 2 * beta * t + gamma, 0.0))
        slope = ((beta * t + gamma) / norm + NORM_OFFSET) / (norm + NORM_OFFSET) ** 2
        log_w = (m - 1) * jnp.log(t) - 0.5 * kappa * t * t - jnp.log(jnp.abs(slope))
        return jnp.where(valid, log_w, -jnp.inf)

    def coefficients(g, quad):
        """(a2, a1, a0): g_v(t) = g iff a2 t^2 + a1 t + a0 = 0 and t / g - 1e-6 = |W| >= 0."""
        alpha, beta, gamma = quad
        return 1 / (g * g) - alpha, -2 * (NORM_OFFSET / g + beta), NORM_OFFSET**2 - gamma

    def admissible(roots, g):
        return jnp.isfinite(roots) & (roots > 0) & (roots / g - NORM_OFFSET >= 0)

    def solutions(g, quad, kappa):
        """The two roots t for g and their log weights (-inf: not a solution)."""
        a2, a1, a0 = coefficients(g, quad)
        disc = a1 * a1 - 4 * a2 * a0
        q = -0.5 * (a1 + jnp.where(a1 >= 0, 1.0, -1.0) * jnp.sqrt(jnp.maximum(disc, 0.0)))
        roots = jnp.stack([q / a2, a0 / q])
        return roots, log_weight(roots, quad, kappa, (disc >= 0) & admissible(roots, g))

    def current(t, g, quad, kappa):
        """log S_v(g) at the particle's own t: t and, by Vieta, the other root."""
        a2, _, a0 = coefficients(g, quad)
        other = a0 / (a2 * t)
        return jnp.logaddexp(log_weight(t, quad, kappa, True),
                             log_weight(other, quad, kappa, admissible(other, g)))

    def metropolis(key, roots, log_w, log_s):
        """(accepted, the picked root, log S at the proposal) of one step."""
        key_pick, key_accept = jax.random.split(key)
        log_s_new = jax.nn.logsumexp(log_w)
        accept = jnp.isfinite(log_s_new) & (
            jnp.log(jax.random.uniform(key_accept, (), log_w.dtype)) < log_s_new - log_s)
        return accept, roots[jax.random.categorical(key_pick, log_w)], log_s_new

    def step(key, z, train, gen, level, evaluate, param):
        key_v, key_g, key_step1, key_step2 = jax.random.split(key, 4)
        op = operator(z)
        root = collapsed.last_layer_root(op)
        c = jnp.matmul(op, z[start:stop], precision=_HI)
        t = jnp.sqrt(jnp.sum(c * c))
        u = c / t
        a = _lift(op, root, u)
        v = z[start:stop] - t * a
        white = _solve_lower(root, u)
        kappa = jnp.sum(white * white)
        w_a = flat(z, a)
        quad = norm_terms(w_a, flat(z, v))
        g = t / (jnp.sqrt(quad[0] * t * t + 2 * quad[1] * t + quad[2]) + NORM_OFFSET)
        log_s = current(t, g, quad, kappa)

        # 1. v at fixed g
        s = jnp.asarray(param, z.dtype)
        v_new = jnp.sqrt(1 - s * s) * v + s * _null_normal(key_v, op, root, v.shape, z.dtype)
        quad_new = norm_terms(w_a, flat(z, v_new))
        accept, t_new, log_s_new = metropolis(key_step1, *solutions(g, quad_new, kappa), log_s)
        v, t = jnp.where(accept, v_new, v), jnp.where(accept, t_new, t)
        quad, log_s = jnp.where(accept, quad_new, quad), jnp.where(accept, log_s_new, log_s)

        # 2. g uniform on the level set's interval at fixed v
        along = jnp.dot(u, train_labels, precision=_HI)
        across = train_labels - along * u
        half = jnp.sqrt(jnp.maximum(m * level - jnp.sum(across * across), 0.0))
        g_new = jax.random.uniform(key_g, (), z.dtype, jnp.maximum(along - half, 0.0),
                                   along + half)
        accept_g, t_new, _ = metropolis(key_step2, *solutions(g_new, quad, kappa), log_s)
        t = jnp.where(accept_g, t_new, t)

        candidate = with_block(z, t * a + v)
        return _settle(candidate, accept | accept_g, z, train, gen, evaluate, level, accept)

    return Move("cone", step, float(initial_step), towards(target))


def _solve_lower(l, b):
    """x with l x = b, l lower triangular, by forward substitution (no LAPACK call)."""
    def row(i, x):
        return x.at[i].set((b[i] - jnp.dot(l[i], x)) / l[i, i])

    return jax.lax.fori_loop(0, b.shape[0], row, jnp.zeros_like(b))


def _solve_upper(u, b):
    """x with u x = b, u upper triangular, by back substitution."""
    return _solve_lower(u[::-1, ::-1], b[::-1])[::-1]
