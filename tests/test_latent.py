"""Gaussian coordinates of priors (gcsampler.latent): the law of matrix(z), z ~ N(0, I),
is the prior's law of the end-to-end matrix; the linear last block; refusals.

Statistical checks use fixed seeds. Every law check is a two-sample KS test of
10,000 draws of ``matrix(z)`` against 10,000 independent draws of the 'direct'
sampler (the prior's own layer draws), on three entries, the Frobenius norm and
the determinant. All KS tests of this file share one family-wise false-failure rate of
ALPHA = 0.001, Bonferroni-corrected over every test of the family.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gcsampler import latent, models, priors, samplers

DRAWS = 10_000
ALPHA = 0.001
U32 = 2.0**-24
# 3x3 matrices, width 5 > 3 rows (so 'last_layer' applies).
ROWS = COLS = 3
WIDTH = 5
ENTRIES = ((0, 0), (1, 2), (2, 1))

GAUSSIAN = priors.gaussian()
UNIFORM = priors.uniform()
GAUSSIAN_NORMALIZED = priors.gaussian(normalize=True)


def model(depth, activation):
    return models.factorization(ROWS, COLS, depth, WIDTH, activation)


LAW_CASES = [
    (GAUSSIAN, name, depth, activation)
    for name in ("direct", "last_layer") for depth in (2, 3) for activation in ("linear", "tanh")
] + [(UNIFORM, "direct", depth, activation) for depth, activation in ((2, "tanh"), (3, "linear"))]
# KS tests per case: one per entry, the Frobenius norm and the determinant (joint law of
# the entries: rows of W are dependent through the shared hidden layer). The two maps
# of a model are compared with the same prior draws: dependent tests, which Bonferroni
# allows.
STATISTICS_PER_CASE = len(ENTRIES) + 2
ALPHA_PER_KS = ALPHA / (len(LAW_CASES) * STATISTICS_PER_CASE)
WRONG = ("wrong", "", 0, "")  # the negative control's key in all_draws()


REFERENCE_MODELS = sorted({(prior, depth, activation) for prior, _, depth, activation in LAW_CASES},
                          key=lambda case: (case[0].name, case[1], case[2]))


@functools.lru_cache(maxsize=None)
def all_draws():
    """Every case's draws, from one compiled program (one compile instead of one per model
    and map: compiling dominates the cost of 10,000 small draws on a CPU).

    ``("prior", prior name, depth, activation)``: DRAWS end-to-end matrices of the prior by
    its 'direct' sampler (the prior's own per-layer draws, independent keys);
    ``(prior name, map, depth, activation)``: ``matrix(z)`` of DRAWS z ~ N(0, I), z
    independent of the sampler's draws.
    """

    def draw(key):
        keys = jax.random.split(jax.random.fold_in(key, 0), DRAWS)
        out = {}
        for prior, depth, activation in REFERENCE_MODELS:
            sampler = samplers.make_sampler(model(depth, activation), prior, "direct")
            out[("prior", prior.name, depth, activation)] = jax.vmap(sampler.matrix)(keys)
        for index, (prior, name, depth, activation) in enumerate(LAW_CASES):
            coords = latent.make_latent(model(depth, activation), prior, name)
            z = jax.random.normal(jax.random.fold_in(key, index + 1), (DRAWS, coords.dim),
                                  jnp.float32)
            out[(prior.name, name, depth, activation)] = jax.vmap(coords.matrix)(z)
            if (prior.name, name, depth, activation) == ("gaussian", "direct", 2, "tanh"):
                # negative control: the last layer's scale off by 20%
                out[WRONG] = jax.vmap(coords.matrix)(z) * 1.2
        return out

    return {k: np.asarray(v, np.float64) for k, v in jax.jit(draw)(jax.random.key(2024)).items()}


@pytest.mark.parametrize("prior, name, depth, activation", LAW_CASES,
                         ids=[f"{p.name}-{n}-depth{d}-{a}" for p, n, d, a in LAW_CASES])
def test_matrix_of_standard_normals_has_the_priors_law(prior, name, depth, activation):
    ours = all_draws()[(prior.name, name, depth, activation)]
    reference = all_draws()[("prior", prior.name, depth, activation)]
    assert ours.shape == reference.shape == (DRAWS, ROWS, COLS)
    assert np.all(np.isfinite(ours))
    samples = {f"W[{i},{j}]": (ours[:, i, j], reference[:, i, j]) for i, j in ENTRIES}
    samples["frobenius"] = (np.linalg.norm(ours, axis=(1, 2)),
                            np.linalg.norm(reference, axis=(1, 2)))
    samples["determinant"] = (np.linalg.det(ours), np.linalg.det(reference))
    assert len(samples) == STATISTICS_PER_CASE
    p_values = {label: stats.ks_2samp(a, b).pvalue for label, (a, b) in samples.items()}
    assert min(p_values.values()) > ALPHA_PER_KS, p_values


def test_the_law_check_has_power():
    """Negative control: the same KS test tells apart a map whose last layer is
    N(0, 1.2^2 / c) instead of N(0, 1 / c) (every entry's scale off by 20%)."""
    wrong = all_draws()[WRONG]
    reference = all_draws()[("prior", "gaussian", 2, "tanh")]
    p = stats.ks_2samp(np.linalg.norm(wrong, axis=(1, 2)),
                       np.linalg.norm(reference, axis=(1, 2))).pvalue
    assert p < ALPHA_PER_KS, p


TAIL_CASES = [("direct", 1, "linear"), ("direct", 2, "linear"), ("direct", 3, "tanh"),
              ("last_layer", 2, "tanh"), ("last_layer", 3, "linear")]


TAIL_DRAWS = 64


@functools.lru_cache(maxsize=None)
def all_tails():
    """For every tail case: (matrix(z), gain(z), gain of z with another tail, the tail
    reshaped to (q, n_cols)) of TAIL_DRAWS z ~ N(0, I), from one compiled program."""

    def compute(key):
        out = {}
        for index, (name, depth, activation) in enumerate(TAIL_CASES):
            coords = latent.make_latent(model(depth, activation), GAUSSIAN, name)
            offset, gain = coords.linear_tail
            q = (coords.dim - offset) // COLS
            z = jax.random.normal(jax.random.fold_in(key, index), (TAIL_DRAWS, coords.dim),
                                  jnp.float32)
            other = z.at[:, offset:].set(-z[:, offset:] + 1.0)
            out[(name, depth, activation)] = (
                jax.vmap(coords.matrix)(z), jax.vmap(gain)(z), jax.vmap(gain)(other),
                z[:, offset:].reshape(TAIL_DRAWS, q, COLS))
        return out

    return {case: tuple(np.asarray(a, np.float64) for a in arrays)
            for case, arrays in jax.jit(compute)(jax.random.key(3)).items()}


@pytest.mark.parametrize("name, depth, activation", TAIL_CASES,
                         ids=[f"{n}-depth{d}-{a}" for n, d, a in TAIL_CASES])
def test_linear_tail_reproduces_the_matrix(name, depth, activation):
    """matrix(z) == gain(z) @ z[offset:].reshape(q, n_cols), gain a function of z[:offset]."""
    coords = latent.make_latent(model(depth, activation), GAUSSIAN, name)
    assert coords.linear_tail is not None
    offset, _ = coords.linear_tail
    q = (coords.dim - offset) // COLS
    assert q * COLS == coords.dim - offset
    assert q == (ROWS if name == "last_layer" or depth == 1 else WIDTH)
    matrix, g, g_other, tail = all_tails()[(name, depth, activation)]
    assert g.shape == (TAIL_DRAWS, ROWS, q)
    # gain must not look at the tail: another tail leaves it unchanged (up to float32
    # rounding: the two are compiled in different fusions, whose bits may differ)
    np.testing.assert_allclose(g, g_other, rtol=0, atol=64 * U32 * np.max(np.abs(g)))
    product = g @ tail
    # float32 rounding of a q-term product (and of the 1/sqrt(c) scale, applied on either
    # side): at most a few (q + 2) unit roundoffs of the sum of absolute terms
    bound = 4 * (q + 2) * U32 * (np.abs(g) @ np.abs(tail)) + 1e-30
    assert np.all(np.abs(matrix - product) <= bound), np.max(np.abs(matrix - product) / bound)


@pytest.mark.parametrize("prior, name", [(UNIFORM, "direct"), (GAUSSIAN_NORMALIZED, "direct"),
                                         (GAUSSIAN_NORMALIZED, "last_layer")],
                         ids=["uniform-direct", "normalized-direct", "normalized-last_layer"])
def test_no_linear_tail_for_uniform_or_normalized_priors(prior, name):
    assert latent.make_latent(model(2, "tanh"), prior, name).linear_tail is None


def test_auto_takes_the_smaller_map():
    wide = model(2, "tanh")
    assert latent.make_latent(wide, GAUSSIAN, "auto").name == "last_layer"
    assert latent.make_latent(wide, UNIFORM, "auto").name == "direct"
    assert latent.make_latent(models.factorization(5, 5, 2, 5), GAUSSIAN).name == "direct"
    coords = latent.make_latent(wide, GAUSSIAN, "last_layer")
    assert coords.dim == ROWS * WIDTH + ROWS * COLS
    assert latent.make_latent(wide, GAUSSIAN, "direct").dim == ROWS * WIDTH + WIDTH * COLS


def test_a_custom_prior_without_from_normal_is_refused():
    mine = priors.custom(priors.scaled(lambda key, shape, dtype: jax.random.normal(key, shape,
                                                                                    dtype)))
    assert latent.applicable(model(2, "tanh"), mine) == []
    for name in ("auto", "direct"):
        with pytest.raises(ValueError, match="from_normal") as info:
            latent.make_latent(model(2, "tanh"), mine, name)
        assert "\n" not in str(info.value)


def test_a_custom_prior_with_from_normal_gets_direct_only():
    mine = priors.custom(priors.scaled(lambda key, shape, dtype: jax.random.normal(key, shape,
                                                                                    dtype)),
                         from_normal=lambda z: z * z.shape[-1] ** -0.5)
    assert latent.applicable(model(2, "tanh"), mine) == ["direct"]
    coords = latent.make_latent(model(2, "tanh"), mine, "auto")
    assert coords.name == "direct" and coords.linear_tail is None
    with pytest.raises(ValueError, match="last_layer"):
        latent.make_latent(model(2, "tanh"), mine, "last_layer")


@pytest.mark.parametrize("factorization, prior, name", [
    (model(2, "tanh"), UNIFORM, "last_layer"),              # not the built-in Gaussian
    (models.factorization(5, 5, 2, 5), GAUSSIAN, "last_layer"),  # width not above rows
    (models.factorization(3, 3, 1, 5), GAUSSIAN, "last_layer"),  # depth 1
    (model(2, "tanh"), GAUSSIAN, "magic"),                  # unknown name
], ids=["uniform", "narrow", "depth1", "unknown"])
def test_an_inapplicable_map_is_refused(factorization, prior, name):
    with pytest.raises(ValueError, match="latent") as info:
        latent.make_latent(factorization, prior, name)
    assert name in str(info.value) and "\n" not in str(info.value)
