"""The device step of a threshold task: evaluate blocks of draws, accept train loss < eps.

A block is ``2**log2_block`` consecutive global indices, the unit of determinism:
every per-draw value and every per-block float sum is computed with shapes that
do not depend on how many blocks a step holds, and float sums use a fixed
pairwise tree, so statistics are bitwise identical for any batch size or device
count. The per-block float32 sums are then added exactly over the step's blocks
in integer digits (:mod:`gcsampler.core.exact_device`), and integer counts are
exact in any order: both are summed per step, and the host adds a few small
integer arrays per call rather than converting every block's floats.

Per step the kernel returns small things only: exact digit sums, integer counts
and a 2-D histogram, and a fixed-capacity buffer of accepted rows (with their
true count, so overflow is detected, never silent).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gcsampler.core import exact_device, keys, pairwise

HIST_BINS = 96
HIST_LOG10_RANGE = (-8.0, 4.0)


class StepOutput(NamedTuple):
    """What one step of ``blocks`` blocks returns (leading axes added by the loop)."""

    drawn: jax.Array           # () int32, draws with index below the run's total
    nonfinite: jax.Array       # () int32, draws whose train or gen loss is NaN/inf
    accepted: jax.Array        # () int32, true number of accepted draws
    bin_count: jax.Array       # (n_bins,) int32, finite draws per train-loss bin
    hist: jax.Array            # (HIST_BINS * HIST_BINS,) int32, (log train, log gen)
    # exact sums over the step's blocks of per-block float32 sums (exact_device digits)
    gen_sum: jax.Array         # (exact_device.SIZE,) int32, gen loss over finite draws
    gen_sumsq: jax.Array       # (exact_device.SIZE,) int32
    bin_gen_sum: jax.Array     # (n_bins, exact_device.SIZE) int32
    bin_gen_sumsq: jax.Array   # (n_bins, exact_device.SIZE) int32
    rows: dict                 # (capacity, ...) position, train_loss, gen_loss, extras


def histogram_index(train, gen):
    """Flat index of each draw's cell in the (log10 train, log10 gen) histogram."""
    lo, hi = HIST_LOG10_RANGE
    scale = HIST_BINS / (hi - lo)

    def cell(x):
        pos = jnp.floor((jnp.log10(jnp.maximum(x, 1e-30)) - lo) * scale)
        return jnp.clip(pos, 0, HIST_BINS - 1).astype(jnp.int32)

    return cell(train) * HIST_BINS + cell(gen)


def make_step(evaluate, log2_block, blocks, capacity, chunk=None):
    """Build ``step(base_key, first_block, full_blocks, tail, data, eps, edges)``.

    ``evaluate(keys, chunk, data) -> (train, gen, extras)`` gives the train and gen
    losses of the draws of one block's keys, ``chunk`` draws at a time, and ``extras``
    (a dict of per-draw arrays) to store with each accepted row. The step evaluates
    blocks ``first_block .. first_block + blocks - 1``; draws with global index >=
    ``full_blocks * 2**log2_block + tail`` are masked out. A draw is accepted when its
    losses are finite and its train loss < ``eps``. ``edges`` (sorted train-loss bin
    edges) and ``eps`` are runtime values: a new threshold does not recompile.
    """
    block_size = 2**log2_block
    if blocks + 1 > exact_device.MAX_TERMS:
        raise ValueError(f"a step holds at most {exact_device.MAX_TERMS - 1} blocks (exact int32 "
                         f"sums), got {blocks}")

    def step(base_key, first_block, full_blocks, tail, data, eps, edges):
        block_ids = first_block + jnp.arange(blocks, dtype=jnp.uint32)
        train, gen, extras = jax.vmap(
            lambda b: evaluate(keys.block_keys(base_key, b, log2_block), chunk, data)
        )(block_ids)
        offsets = jnp.arange(block_size, dtype=jnp.int32)
        valid = (block_ids[:, None] < full_blocks) | (
            (block_ids[:, None] == full_blocks) & (offsets[None, :] < tail))
        finite = jnp.isfinite(train) & jnp.isfinite(gen)
        counted = valid & finite
        accept = counted & (train < eps)

        gen0 = jnp.where(counted, gen, 0.0)
        bins = jnp.searchsorted(edges, jnp.where(counted, train, 0.0), side="right")
        onehot = (bins[..., None] == jnp.arange(edges.shape[0] + 1)) & counted[..., None]
        bin_gen = jnp.where(onehot, gen0[..., None], 0.0)

        # Each block's float sums, then their exact sum over the step's blocks. The float
        # sums are materialized (with a zero row, which adds nothing) before they are
        # summed: the per-draw losses' last bits can depend on how XLA fuses the code that
        # computes them (FMA contraction), and this keeps that code fused as it was when
        # the kernel returned these sums, so they are the same bits as before and for any
        # number of blocks per step (a one-block step would otherwise fuse differently).
        per_block = jax.vmap(pairwise.pairwise_sum)
        block_sums = jax.lax.optimization_barrier(
            (per_block(gen0), per_block(jnp.square(gen0)), per_block(bin_gen),
             per_block(jnp.square(bin_gen))))
        gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq = (
            exact_device.sums(jnp.concatenate([x, jnp.zeros_like(x[:1])])) for x in block_sums)

        hist = jnp.zeros(HIST_BINS * HIST_BINS, jnp.int32).at[
            histogram_index(train, gen).reshape(-1)].add(counted.reshape(-1).astype(jnp.int32))

        flat_accept = accept.reshape(-1)
        (position,) = jnp.nonzero(flat_accept, size=capacity, fill_value=0)
        per_draw = {"train_loss": train, "gen_loss": gen, **extras}
        rows = {"position": position.astype(jnp.int32),
                **{name: value.reshape(-1, *value.shape[2:])[position]
                   for name, value in per_draw.items()}}
        return StepOutput(
            drawn=jnp.sum(valid, dtype=jnp.int32),
            nonfinite=jnp.sum(valid & ~finite, dtype=jnp.int32),
            accepted=jnp.sum(flat_accept, dtype=jnp.int32),
            bin_count=jnp.sum(onehot, axis=(0, 1), dtype=jnp.int32),
            hist=hist,
            gen_sum=gen_sum,
            gen_sumsq=gen_sumsq,
            bin_gen_sum=bin_gen_sum,
            bin_gen_sumsq=bin_gen_sumsq,
            rows=rows,
        )

    return step
