"""Rescaling moves: splitting moves along the network's own symmetry, for activations
that commute with positive scaling (linear, relu, leaky relu).

For such an activation s(a x) = a s(x) for a > 0, so scaling hidden unit i by a (its
column of W_l times a, its row of W_{l+1} divided by a) leaves the end-to-end matrix,
and with it both losses, unchanged. The move does not change what the network
computes; it changes the weights that represent it, so that the other moves (the
layer-wise elliptical slices, the cone move on the last layer, the rotations) act
from a new representation. For a nonlinear network the cone move reaches the
end-to-end matrix only through the last layer, W = H W_d with H the last hidden
layer; rescaling H's units turns the law the cone move explores.

Under the built-in Gaussian prior a layer's block of ``z`` is the layer times a
constant, so the move scales the blocks of ``z`` the same way. For unit i at a
junction, with A = |column|^2 (r entries) and B = |row|^2 (c entries), the log scale
t = log a is a Metropolis chain with proposals t' = t + s N(0, 1): scaling by e^u
multiplies the N(0, I) density by exp(-(e^{2u} - 1) A / 2 - (e^{-2u} - 1) B / 2) and
the volume by e^{u (r - c)}, whose product is the acceptance ratio. The units of one
junction own disjoint coordinates, so each runs its own chain (``STEPS`` proposals);
every junction that shares no layer with another moves at once (the odd junctions,
then the even ones: two moves). The losses are then computed again and the result is
accepted iff inside the level set, which rounding could otherwise leave: a
Metropolis step whose proposal (the product of the units' reversible chains) is
reversible for N(0, I), so the move is exact. ``s`` is retuned between levels
towards an acceptance of ``RESCALE_TARGET`` per proposal.
"""

import functools

import jax
import jax.numpy as jnp

from gcsampler.factorization import models, priors
from gcsampler.splitting.moves import Move, MoveInfo, towards

RESCALE_INITIAL = 0.3
RESCALE_TARGET = 0.5
STEPS = 4


def positively_homogeneous(model):
    """Whether the model's activation commutes with positive scaling (the built-in
    linear, relu and leaky relu; a user's own function is not trusted to)."""
    fn = model.activation
    return (model.is_linear or fn is jax.nn.relu
            or (isinstance(fn, functools.partial) and fn.func is jax.nn.leaky_relu))


def rescale_moves(latent, model, prior):
    """The rescaling moves for this coordinate map: the odd junctions, then the even
    ones, between consecutive layer blocks that are layers (for the ``last_layer`` map
    the last block is not); none unless the prior is the built-in Gaussian and the
    activation is positively homogeneous."""
    if not (priors.is_builtin_gaussian(prior) and positively_homogeneous(model)):
        return ()
    layers = latent.layers if latent.name == "direct" else latent.layers[:-1]
    junctions = tuple((layers[j], layers[j + 1]) for j in range(len(layers) - 1))
    groups = (junctions[0::2], junctions[1::2])
    return tuple(rescale(group, f"rescale{parity}") for parity, group in zip(("odd", "even"),
                                                                                 groups) if group)


def rescale(junctions, name="rescale", initial_step=RESCALE_INITIAL, target=RESCALE_TARGET):
    """The move that rescales every hidden unit of ``junctions``, pairs of consecutive
    ``((start, stop), shape)`` layer blocks that share no block with another pair."""
    def step(key, z, train, gen, level, evaluate, param):
        keys = jax.random.split(key, len(junctions))
        candidate, accepted, proposed = z, jnp.int32(0), 0
        for key_j, (into, out_of) in zip(keys, junctions):
            (a0, a1), (rows, units) = into
            (b0, b1), (_, cols) = out_of
            column = z[a0:a1].reshape(rows, units)
            row = z[b0:b1].reshape(units, cols)
            t, moved = _unit_scales(key_j, jnp.sum(column * column, axis=0),
                                    jnp.sum(row * row, axis=1), rows, cols, param)
            scale = jnp.exp(t)
            candidate = (candidate.at[a0:a1].set((column * scale).reshape(-1))
                         .at[b0:b1].set((row / scale[:, None]).reshape(-1)))
            accepted, proposed = accepted + moved, proposed + STEPS * units
        t_new, g_new = evaluate(candidate)
        inside = t_new < level
        return (jnp.where(inside, candidate, z), jnp.where(inside, t_new, train),
                jnp.where(inside, g_new, gen),
                MoveInfo(jnp.where(inside, accepted, 0), jnp.int32(1)))

    return Move(name, step, float(initial_step), towards(target), chain=_proposals(junctions))


def _proposals(junctions):
    """Scale proposals one step makes (what its acceptance is counted over)."""
    return sum(STEPS * shape[1] for (_, shape), _ in junctions)


def _unit_scales(key, col_sq, row_sq, rows, cols, step):
    """Per-unit log scales after ``STEPS`` Metropolis proposals each, from 0, and the
    number of accepted proposals: the target is N(0, I) of the unit's column (squared
    norm ``col_sq``, ``rows`` entries) times e^t and row (``row_sq``, ``cols``) over e^t."""
    def log_target(t):
        return -0.5 * (jnp.exp(2 * t) * col_sq + jnp.exp(-2 * t) * row_sq) + (rows - cols) * t

    def propose(carry, key_i):
        t, count = carry
        key_move, key_accept = jax.random.split(key_i)
        proposal = t + jnp.asarray(step, t.dtype) * jax.random.normal(key_move, t.shape, t.dtype)
        log_u = jnp.log(jax.random.uniform(key_accept, t.shape, t.dtype))
        take = log_u < log_target(proposal) - log_target(t)
        return (jnp.where(take, proposal, t), count + jnp.sum(take, dtype=jnp.int32)), None

    start = (jnp.zeros_like(col_sq), jnp.int32(0))
    (t, count), _ = jax.lax.scan(propose, start, jax.random.split(key, STEPS))
    return t, count
