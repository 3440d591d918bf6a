"""Numerics: the order-fixed pairwise sums (gcsampler.core.pairwise), and deep unnormalized
networks whose losses overflow float32 (counted as non-finite, reported, never accepted)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gcsampler as gcs
from gcsampler.core import pairwise

U32 = 2.0**-24


def tree_sum(values):
    """The reference: the same binary tree written out in NumPy float32."""
    values = np.asarray(values, np.float32)
    size = 1 << max(len(values) - 1, 0).bit_length()
    values = np.concatenate([values, np.zeros(size - len(values), np.float32)])
    while len(values) > 1:
        values = values[: len(values) // 2] + values[len(values) // 2:]
    return values[0]


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 4096, 5000])
def test_pairwise_sum_is_the_fixed_tree_and_accurate(size):
    values = np.random.default_rng(size).random(size).astype(np.float32)
    total = pairwise.pairwise_sum(jnp.asarray(values))
    assert np.float32(total) == tree_sum(values)   # bit for bit: the same tree
    # pairwise summation error bound: ceil(log2 n) u sum|x| (Higham 2002, 4.2)
    exact = math.fsum(values.astype(np.float64))
    assert abs(float(total) - exact) <= max(1, math.ceil(math.log2(size))) * U32 * exact


def test_pairwise_sum_does_not_depend_on_the_batch_around_it():
    values = np.random.default_rng(0).random((7, 4096)).astype(np.float32)
    batched = jax.jit(lambda x: pairwise.pairwise_sum(x, axis=1))(values)
    alone = [jax.jit(pairwise.pairwise_sum)(row) for row in values]
    assert np.array_equal(np.asarray(batched), np.asarray(alone))


def test_deep_unnormalized_networks_overflow_into_nonfinite_draws():
    """With N(0, 1) weights and no 1/width scaling, each of 40 layers of width 16 multiplies the
    scale by about sqrt(16) = 4: W's entries reach ~4^39 = 3e23 and the squared residuals ~1e47,
    beyond float32's 3.4e38, so (almost) every draw's losses are inf. Those draws are counted
    as non-finite, excluded from every mean and never accepted, even at a huge eps."""
    problem = gcs.matrix_sensing()
    model = gcs.factorization(5, 5, depth=40, width=16)
    unscaled = gcs.custom(jax.random.normal, name="unscaled normal")
    result = gcs.guess_and_check(problem, model, unscaled, eps=1e30, samples=512, seed=0,
                                 log2_block=8, devices=1)
    totals = result.totals
    assert totals.drawn == 512 and totals.nonfinite >= 500 and totals.accepted == 0
    summary = gcs.summarize(totals)
    assert summary["nonfinite"] == totals.nonfinite and summary["accepted"] == 0
    finite = totals.drawn - totals.nonfinite
    assert totals.bin_count.sum() == finite and totals.hist.sum() == finite
    assert math.isnan(summary["gnc_gen_loss_mean"]) and "no draw was accepted" in summary[
        "gnc_message"]
    # Normalized, the same draws are finite and of unit norm: the norm of a matrix whose
    # squared entries overflow is computed after dividing by its largest entry.
    normalized = gcs.custom(jax.random.normal, name="unscaled normal", normalize=True)
    rows = []
    result = gcs.guess_and_check(problem, model, normalized, eps=1e30, samples=512, seed=0,
                                 log2_block=8, devices=1, on_rows=lambda *r: rows.append(r[3]))
    assert result.totals.nonfinite == 0 and result.totals.accepted == 512
    norms = np.linalg.norm(np.concatenate(rows).astype(np.float64), axis=(1, 2))
    # float32 rescaling and norm: a few ulps of 1 (and the +1e-6 of the papers' formula)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
