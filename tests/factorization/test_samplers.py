"""Sampler selection (gcsampler.factorization.samplers), and G&C's results under every
sampler.

The distributions of the collapsed samplers' matrices are tested in
test_collapsed.py; here the whole G&C pipeline runs with each sampler on a small
problem with a high acceptance rate, and its acceptance rate and accepted gen-loss
mean must agree with direct drawing within their sampling error.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from gcsampler.core import devices, loop
from gcsampler.factorization import models, priors, problems, samplers, task

PROBLEM = problems.matrix_sensing(seed=3)
EPS = 0.2           # a high acceptance rate (about half of the draws)
SAMPLES = 2**15
LOG2_BLOCK = 10
# Two-sided tests at alpha = 0.01 in all, split (Bonferroni) over the 2 comparisons of each
# of the 3 sampler cases below.
ALPHA = 0.01 / 6


@pytest.mark.parametrize("model, prior, expected, auto", [
    (models.factorization(5, 5, 2, 400), priors.gaussian(), ["wishart", "last_layer", "direct"],
     "wishart"),
    # width 5: the Bartlett factors' chi-squares cost more than the 50 weights themselves
    (models.factorization(5, 5, 3, 5), priors.gaussian(True), ["wishart", "direct"], "direct"),
    (models.factorization(5, 5, 10, 40), priors.gaussian(True), ["wishart", "last_layer", "direct"],
     "wishart"),
    (models.factorization(5, 5, 2, 4), priors.gaussian(), ["direct"], "direct"),
    (models.factorization(5, 5, 2, 40, "tanh"), priors.gaussian(), ["last_layer", "direct"],
     "last_layer"),
    (models.factorization(5, 5, 1, 40), priors.gaussian(), ["direct"], "direct"),
    (models.factorization(5, 5, 2, 40), priors.uniform(), ["direct"], "direct"),
    (models.factorization(5, 5, 2, 40), priors.custom(priors.scaled(
        lambda k, s, d: jnp.sqrt(2.0) * jnp.tanh(jnp.ones(s, d)))), ["direct"], "direct"),
])
def test_applicable_samplers(model, prior, expected, auto):
    assert samplers.applicable(model, prior) == expected
    assert samplers.make_sampler(model, prior).name == auto
    assert samplers.make_sampler(model, prior, "direct").name == "direct"


def test_draw_cost():
    model = models.factorization(5, 5, 3, 400)
    assert samplers.draw_cost("direct", model) == 5 * 400 + 400 * 400 + 400 * 5
    assert samplers.draw_cost("last_layer", model) == 5 * 400 + 400 * 400 + 25
    assert samplers.draw_cost("wishart", model) == 2 * (10 + samplers.CHI_SQUARE_COST * 5) + 25


def test_forcing_an_inexact_sampler_is_refused():
    tanh = models.factorization(5, 5, 2, 40, "tanh")
    with pytest.raises(ValueError, match="'wishart' is not exact"):
        samplers.make_sampler(tanh, priors.gaussian(), "wishart")
    with pytest.raises(ValueError, match="sampler must be one of"):
        samplers.make_sampler(tanh, priors.gaussian(), "fast")


def run(model, prior, sampler, seed):
    gen = []
    result = task.guess_and_check(PROBLEM, model, prior, eps=EPS, samples=SAMPLES, seed=seed,
                                  sampler=sampler, log2_block=LOG2_BLOCK,
                                  on_rows=lambda i, t, g, m: gen.append(g))
    assert result.sampler == sampler
    return result.totals, np.concatenate(gen).astype(np.float64)


@pytest.mark.parametrize("model, sampler", [
    (models.factorization(5, 5, 2, 12), "wishart"),
    (models.factorization(5, 5, 3, 6), "wishart"),
    (models.factorization(5, 5, 2, 12, "tanh"), "last_layer"),
])
def test_engine_results_agree_with_direct(model, sampler):
    """Acceptance rate: two-proportion z-test; accepted gen-loss mean: Welch's z-test.

    The runs use different seeds, so the two samples are independent; with 2**15 draws
    each and about half accepted, a relative error of a few percent in either quantity
    (e.g. a wrong variance) is many standard errors away.
    """
    prior = priors.gaussian()
    collapsed, gen_c = run(model, prior, sampler, seed=1)
    direct, gen_d = run(model, prior, "direct", seed=2)
    n = SAMPLES
    p_c, p_d = collapsed.accepted / n, direct.accepted / n
    assert 0.1 < p_c < 0.9  # a high acceptance rate, as the test intends
    pooled = (collapsed.accepted + direct.accepted) / (2 * n)
    z_rate = (p_c - p_d) / math.sqrt(pooled * (1 - pooled) * 2 / n)
    z_gen = (gen_c.mean() - gen_d.mean()) / math.sqrt(gen_c.var(ddof=1) / gen_c.size
                                                       + gen_d.var(ddof=1) / gen_d.size)
    for z in (z_rate, z_gen):
        assert 2 * sps.norm.sf(abs(z)) > ALPHA, (z_rate, z_gen)


def test_regenerated_weights_reproduce_the_engine_rows():
    """Every sampler's regenerated layers multiply to the matrix the engine stored."""
    for model, sampler in ((models.factorization(5, 5, 3, 6), "wishart"),
                           (models.factorization(5, 5, 2, 12, "tanh"), "last_layer")):
        rows = []
        task.guess_and_check(PROBLEM, model, priors.gaussian(), eps=EPS, samples=2**11, seed=4,
                             sampler=sampler, log2_block=LOG2_BLOCK,
                             on_rows=lambda i, t, g, m: rows.append((i, m)))
        index, matrix = rows[0][0][:5], rows[0][1][:5]
        for i, stored in zip(index, matrix):
            layers, regenerated = task.regenerate(model, priors.gaussian(), 4, int(i), sampler)
            product = layers[0].astype(np.float64)
            for w in layers[1:]:
                product = np.tanh(product) @ w if model.activation_name == "tanh" else product @ w
            # float32 products over inner sizes <= 12: relative error far below 1e-4
            np.testing.assert_allclose(product, stored, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(regenerated, stored, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width, depth, activation", [
    (5, 1, "linear"), (400, 2, "tanh"), (10_000, 2, "tanh"), (10_000, 20, "tanh"),
    (10_000, 20, "linear"), (1000, 5, "leaky_relu"),
])
def test_automatic_batch_fits_the_memory_budget(width, depth, activation):
    """Draws evaluated at once times the per-draw estimate stay within the budget; a model
    whose single draw exceeds it is refused with a clear message instead of running out."""
    model = models.factorization(5, 5, depth, width, activation)
    prior = priors.gaussian()
    sampler = samplers.make_sampler(model, prior).name
    # the task's estimate: the sampler's evaluation plus the statistics (eps=1.0's bins)
    factorization = task.factorization_task(PROBLEM, model, prior, eps=1.0, sampler=sampler)
    per_draw = factorization.bytes_per_draw
    budget = devices.memory_budget(devices.resolve_devices(1)[0])
    if per_draw > budget:
        with pytest.raises(ValueError, match="one draw needs about"):
            loop.plan(factorization, 10**9, devices=1)
        return
    schedule = loop.plan(factorization, 10**9, devices=1)
    at_once = schedule.chunk if schedule.chunk < schedule.block_size else schedule.batch
    assert at_once * per_draw <= budget
    assert schedule.chunk <= schedule.block_size and schedule.blocks >= 1
