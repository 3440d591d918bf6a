"""Order-fixed float sums on the device, so results do not depend on batch shapes.

XLA may sum an axis in an order that depends on the shape around it (how many
rows a batch has), which changes the last bits. Adding halves elementwise in a
fixed binary tree gives the same bits for every batch.
"""

import jax.numpy as jnp


def pairwise_sum(x, axis=0):
    """Sum over ``axis`` by a fixed binary tree (zero-padded to a power of two)."""
    x = jnp.moveaxis(x, axis, 0)
    size = x.shape[0]
    padded = 1 << max(size - 1, 0).bit_length()
    if padded != size:
        x = jnp.concatenate([x, jnp.zeros((padded - size,) + x.shape[1:], x.dtype)])
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        x = x[:half] + x[half:]
    return x[0]


def pairwise_mean(x, axis=-1):
    """Mean over ``axis`` with :func:`pairwise_sum`."""
    return pairwise_sum(x, axis) / x.shape[axis]
