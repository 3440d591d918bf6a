"""Counter-based draws: the weights of draw ``i`` are a pure function of (seed, i).

The key of draw ``i`` is ``fold_in(fold_in(key(seed), hi32(i)), lo32(i))``: folding
the high and low 32-bit words separately keeps indices of 2**32 and beyond distinct
(``fold_in`` alone would wrap them). Nothing depends on how draws are batched, so
the accepted set is the same for any batch size or device count, and any draw can
be regenerated from its index alone.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler import models, samplers

MAX_SEED = 2**32 - 1


def seed_key(seed):
    """The run's base key."""
    return jax.random.key(np.uint32(seed))


def index_key(base_key, hi, lo):
    """Key of the draw whose global index is ``hi * 2**32 + lo`` (uint32 words)."""
    return jax.random.fold_in(jax.random.fold_in(base_key, hi), lo)


def block_keys(base_key, block_id, log2_block):
    """Keys of the ``2**log2_block`` draws of block ``block_id`` (a uint32 scalar).

    Draw ``j`` of the block has global index ``block_id * 2**log2_block + j``.
    """
    block_id = jnp.asarray(block_id, jnp.uint32)
    offsets = jnp.arange(2**log2_block, dtype=jnp.uint32)
    lo = (block_id << log2_block) | offsets
    hi = block_id >> (32 - log2_block)
    return jax.vmap(index_key, in_axes=(None, None, 0))(base_key, hi, lo)


def draw(sampler, prior, key):
    """End-to-end matrix of one draw, normalized if the prior says so."""
    matrix = sampler.matrix(key)
    return models.frobenius_normalize(matrix) if prior.normalize else matrix


def regenerate(model, prior, seed, index, sampler="auto"):
    """Layers and end-to-end matrix of draw ``index`` of a run with ``seed``.

    ``sampler`` must be the one the run used (a run directory records it).
    Returns ``(layers, matrix)`` as float32 NumPy arrays. The matrix is the one the
    sampler drew (up to float32 rounding of batched products); the layers are the
    draw's full weights, exactly prior-distributed, with that matrix as product.
    """
    index = int(index)
    if not 0 <= index < 2**64:
        raise ValueError(f"index must be in [0, 2**64), got {index}")
    key = index_key(seed_key(seed), np.uint32(index >> 32), np.uint32(index & 0xFFFFFFFF))
    layers, matrix = _jitted_regenerate(model, prior, sampler)(key)
    return [np.asarray(w) for w in layers], np.asarray(matrix)


@functools.lru_cache(maxsize=32)
def _jitted_regenerate(model, prior, sampler_name):
    sampler = samplers.make_sampler(model, prior, sampler_name)
    return jax.jit(lambda key: (sampler.layers(key), draw(sampler, prior, key)))
