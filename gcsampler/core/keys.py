"""Counter-based keys: the random numbers of draw ``i`` are a pure function of (seed, i).

The key of draw ``i`` is ``fold_in(fold_in(key(seed), hi32(i)), lo32(i))``: folding
the high and low 32-bit words separately keeps indices of 2**32 and beyond distinct
(``fold_in`` alone would wrap them). Nothing depends on how draws are batched, so
the accepted set is the same for any batch size or device count, and any draw can
be regenerated from its index alone.
"""

import jax
import jax.numpy as jnp
import numpy as np

MAX_SEED = 2**32 - 1


def check_seed(seed, name="seed"):
    """Raise ValueError unless ``seed`` is an integer in [0, MAX_SEED] (``name`` is how
    the message calls it, e.g. ``--seed``)."""
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
            and 0 <= seed <= MAX_SEED):
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def seed_key(seed):
    """The run's base key."""
    return jax.random.key(np.uint32(seed))


def index_key(base_key, hi, lo):
    """Key of the draw whose global index is ``hi * 2**32 + lo`` (uint32 words)."""
    return jax.random.fold_in(jax.random.fold_in(base_key, hi), lo)


def draw_key(seed, index):
    """Key of draw ``index`` (a Python int in [0, 2**64)) of a run with ``seed``."""
    index = int(index)
    if not 0 <= index < 2**64:
        raise ValueError(f"index must be in [0, 2**64), got {index}")
    return index_key(seed_key(seed), np.uint32(index >> 32), np.uint32(index & 0xFFFFFFFF))


def block_keys(base_key, block_id, log2_block):
    """Keys of the ``2**log2_block`` draws of block ``block_id`` (a uint32 scalar).

    Draw ``j`` of the block has global index ``block_id * 2**log2_block + j``.
    """
    block_id = jnp.asarray(block_id, jnp.uint32)
    offsets = jnp.arange(2**log2_block, dtype=jnp.uint32)
    lo = (block_id << log2_block) | offsets
    hi = block_id >> (32 - log2_block)
    return jax.vmap(index_key, in_axes=(None, None, 0))(base_key, hi, lo)
