"""Rotation moves: splitting moves that turn a layer's rows or columns, for the deep
products whose end-to-end matrix the layer-wise moves barely change.

Under the built-in Gaussian prior every layer's entries are iid normal, so a layer's
law is unchanged when its rows or its columns are rotated: B -> R B or B -> B R, R
orthogonal. So is the law of the Gaussian coordinates ``z`` (a layer's block of ``z``
is the layer times a constant, :mod:`gcsampler.factorization.latent`). A move here:

1. draws a random plane (two standard normal vectors, orthonormalized) and an angle
   theta ~ N(0, s^2);
2. proposes the layer turned by theta in that plane (on one side);
3. accepts iff the proposal lies inside the level set.

Turning back by -theta in the same plane is the reverse proposal, and equally likely,
so the proposal is symmetric and preserves N(0, I): step 3 is the whole
Metropolis-Hastings rule, exact for any activation and normalization. ``s`` is
retuned between levels towards an acceptance of ``ROTATION_TARGET``.

Why they help at depth: the layer-wise moves (elliptical slice, cone) change the
end-to-end matrix W = ... W_l ... only through one factor, scaled by the singular
values of the others, which a deep product makes tiny in all but a few directions;
the directions of W that the train operators do not see then move slowly. A rotation
changes W by a rotation, whatever the other layers: turning the first layer's rows
of a linear network, or the last layer's columns of any network, gives R W or W R
exactly; in between it turns the bases that adjacent layers share. Rotations keep
each layer's singular values, which the other moves change. ``benchmarks/mixing.py``
measures what they add (``benchmarks/RESULTS.md``).
"""

import jax
import jax.numpy as jnp

from gcsampler.factorization import priors
from gcsampler.splitting.moves import Move, accept_inside, towards

ROTATION_INITIAL = 0.3
ROTATION_TARGET = 0.25
SIDES = ("rows", "columns")


def rotation(block, shape, side, initial_step=ROTATION_INITIAL, target=ROTATION_TARGET):
    """The move that turns ``z[block[0]:block[1]]``, read as a matrix of ``shape``, by a
    random plane rotation of its ``side`` ('rows': R B, 'columns': B R)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    start, stop = block
    size = shape[0] if side == "rows" else shape[1]
    if size < 2:
        raise ValueError(f"a {side} rotation needs at least 2 {side}, got shape {shape}")

    def turned(b, a, c, theta):
        """b turned by theta in the plane of orthonormal a, c: R b, or b R^T for the
        columns (R^T turns by -theta, which is as likely)."""
        if side == "columns":
            return _turn_rows(b.T, a, c, theta).T
        return _turn_rows(b, a, c, theta)

    def step(key, z, train, gen, level, evaluate, param):
        key_plane, key_angle = jax.random.split(key)
        a, c = jax.random.normal(key_plane, (2, size), z.dtype)
        a = a / jnp.linalg.norm(a)
        c = c - jnp.dot(a, c) * a
        c = c / jnp.linalg.norm(c)
        theta = jnp.asarray(param, z.dtype) * jax.random.normal(key_angle, (), z.dtype)
        b = turned(z[start:stop].reshape(shape), a, c, theta)
        return accept_inside(z.at[start:stop].set(b.reshape(-1)), z, train, gen, level,
                             evaluate)

    return Move("rotate", step, float(initial_step), towards(target))


def _turn_rows(b, a, c, theta):
    """R b for R the rotation by theta in the plane of orthonormal a, c, without forming
    R: b plus a rank-2 change."""
    along_a, along_c = a @ b, c @ b
    cos, sin = jnp.cos(theta) - 1, jnp.sin(theta)
    return (b + cos * (jnp.outer(a, along_a) + jnp.outer(c, along_c))
            + sin * (jnp.outer(c, along_a) - jnp.outer(a, along_c)))


def rotation_moves(latent, model, prior):
    """The rotation moves for this coordinate map: both sides of every layer block,
    for the built-in Gaussian prior at depth >= 2 (none otherwise: other priors'
    layers are not rotation invariant, and at depth 1 the layer-wise moves move W
    itself)."""
    if model.depth < 2 or not priors.is_builtin_gaussian(prior):
        return ()
    return tuple(rotation(block, shape, side) for block, shape in latent.layers
                 for side, size in zip(SIDES, shape) if size >= 2)
