"""Tests of gcsampler.factorization.priors: the papers' scaling, custom priors and validation.

Statistical tests use fixed seeds and state their false-failure rate. Moment
checks are z-tests of the mean of squares (the mean is known to be 0) against its
exact standard error sqrt((mu4 - sigma^4) / n) under the hypothesised law; with
hundreds of thousands of entries the standard error is ~0.3% of the variance, so
the wrong scaling dimension (1/3 or 1/4 instead of 1/7 here) is off by hundreds of
standard errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from gcsampler.factorization import models, priors, samplers, task

from conftest import BLOCK, LOG2_BLOCK, SAMPLES, SEED

N_KEYS = 10_000
# Six moment z-tests (3 layers x 2 priors) at alpha = 0.001 each (|z| < 3.29):
# family-wise false-failure rate <= 0.6%. Six KS tests likewise at alpha = 0.001.
ALPHA = 1e-3
Z_CRIT = sps.norm.ppf(1 - ALPHA / 2)

# rows != width != cols, so scaling by the wrong dimension changes the variance
MODEL = models.factorization(3, 4, depth=3, width=7)


def _many_layers(prior, model, seed, n=N_KEYS):
    keys = jax.random.split(jax.random.key(seed), n)
    fn = jax.jit(jax.vmap(lambda k: priors.sample_layers(prior, model, k)))
    return [np.asarray(x, np.float64) for x in fn(keys)]


def _z_mean_square(x, var, mu4):
    """z statistic of mean(x^2) against variance ``var`` for a zero-mean law with 4th moment mu4."""
    n = x.size
    return (np.mean(x**2) - var) / np.sqrt((mu4 - var**2) / n)


LAWS = {
    # name: (variance of a unit-scale entry, its 4th moment,
    #        scipy reference of a standardized entry)
    "gaussian": (1.0, 3.0, sps.norm.cdf),
    "uniform": (1.0 / 3.0, 1.0 / 5.0, sps.uniform(loc=-np.sqrt(3), scale=2 * np.sqrt(3)).cdf),
}


@pytest.fixture(scope="module", params=sorted(LAWS))
def drawn(request):
    name = request.param
    return name, _many_layers(priors.make_prior(name), MODEL, seed=1)


def test_layer_shapes_and_dtype(drawn):
    name, layers = drawn
    assert [x.shape[1:] for x in layers] == [(3, 7), (7, 7), (7, 4)]
    out = jax.eval_shape(lambda k: priors.sample_layers(priors.make_prior(name), MODEL, k),
                         jax.random.key(0))
    assert all(x.dtype == jnp.float32 for x in out)


def test_layer_variance_is_base_variance_over_output_columns(drawn):
    name, layers = drawn
    base_var, base_mu4, _ = LAWS[name]
    for x, (_, c) in zip(layers, MODEL.layer_shapes):
        var, mu4 = base_var / c, base_mu4 / c**2
        z = _z_mean_square(x, var, mu4)
        assert abs(z) < Z_CRIT, (name, c, np.mean(x**2), var, z)
        # power: scaling by the number of rows (3 for layer 1) or by width*... fails clearly
        for wrong_c in {3, 4, 7} - {c}:
            assert abs(_z_mean_square(x, base_var / wrong_c, base_mu4 / wrong_c**2)) > 10 * Z_CRIT


def test_layer_entries_follow_the_base_law(drawn):
    name, layers = drawn
    base_var, _, cdf = LAWS[name]
    for x, (_, c) in zip(layers, MODEL.layer_shapes):
        # unit variance under the hypothesis: N(0, 1) or U(-sqrt3, sqrt3)
        standardized = (x * np.sqrt(c / base_var)).ravel()
        if name == "uniform":  # the support is [-1, 1] / sqrt(c)
            assert np.max(np.abs(x)) * np.sqrt(c) <= 1.0 + 1e-6
        assert sps.kstest(standardized, cdf).pvalue > ALPHA, (name, c)
        # power: the same test rejects a scale of sqrt(c / rows) = sqrt(7/3) off for layer 1
        if c != 3:
            assert sps.kstest(standardized * np.sqrt(c / 3), cdf).pvalue < ALPHA


def test_entries_uncorrelated_within_and_across_layers(drawn):
    _, layers = drawn
    a, b, c = layers[0][:, 0, 0], layers[0][:, 0, 1], layers[1][:, 0, 0]
    # the sample correlation of independent pairs has sd ~ 1/sqrt(n); alpha = 0.001 each
    for u, v in ((a, b), (a, c)):
        assert abs(np.corrcoef(u, v)[0, 1]) * np.sqrt(N_KEYS) < Z_CRIT


def test_layers_use_distinct_keys():
    # a square model: identical keys per layer would give identical layers
    model = models.factorization(4, 4, depth=3, width=4)
    out = priors.sample_layers(priors.gaussian(), model, jax.random.key(3))
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[1], out[2])


@pytest.mark.parametrize("partitionable", [True, False])
def test_flat_drawn_layers_have_the_bits_of_shaped_draws(partitionable):
    """Layers are drawn flat and reshaped (cheaper): the bits must be jax.random's for the
    layer's shape, alone and batched, under either of JAX's threefry layouts."""
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    shaped = {priors._standard_normal: lambda k, s: jax.random.normal(k, s),
              priors._symmetric_uniform: lambda k, s: jax.random.uniform(k, s, minval=-1.0,
                                                                         maxval=1.0)}
    with jax.threefry_partitionable(partitionable):
        for flat, reference in shaped.items():
            for shape in [(5, 5), (5, 7), (7, 5), (1, 3), (40, 40)]:
                got = jax.vmap(lambda k: flat(k, shape, jnp.float32))(keys)
                want = jax.vmap(lambda k: reference(k, shape))(keys)
                assert np.array_equal(got, want), (flat.__name__, shape)


def test_scaled_uses_the_last_dimension():
    key = jax.random.key(4)
    base = np.asarray(jax.random.normal(key, (3, 7), jnp.float32), np.float64)
    got = np.asarray(priors.scaled(lambda k, s, d: jax.random.normal(k, s, d))(key, (3, 7),
                                                                              jnp.float32))
    # one rounding of the constant and one of the product: <= 2u relative (+ margin: 3u)
    np.testing.assert_allclose(got, base / np.sqrt(7.0), rtol=3 * 2.0**-24, atol=0)
    assert got.dtype == np.float32


def test_builtin_priors_are_equal_objects():
    # equal priors hash equal, so the engine's compiled-call cache is shared
    assert priors.gaussian() == priors.gaussian()
    assert hash(priors.gaussian()) == hash(priors.gaussian())
    assert priors.make_prior("uniform", normalize=True) == priors.uniform(True)
    assert priors.gaussian().name == "gaussian" and not priors.gaussian().normalize
    assert priors.gaussian(normalize=True).normalize


def test_make_prior_unknown():
    with pytest.raises(ValueError, match="prior"):
        priors.make_prior("cauchy")


def test_custom_requires_callable():
    with pytest.raises(TypeError):
        priors.custom(3.0)


# ------------------------------------------------------------- custom priors


LAPLACE = priors.custom(priors.scaled(jax.random.laplace), name="laplace")


def test_custom_laplace_variance():
    # Laplace(0, 1): variance 2, 4th moment 24; scaled: variance 2/c
    layers = _many_layers(LAPLACE, MODEL, seed=3, n=10_000)
    for x, (_, c) in zip(layers, MODEL.layer_shapes):
        assert abs(_z_mean_square(x, 2.0 / c, 24.0 / c**2)) < Z_CRIT
        assert sps.kstest((x * np.sqrt(c)).ravel(), sps.laplace.cdf).pvalue > ALPHA


def _sampler(fn):
    def sample_layer(key, shape, dtype=jnp.float32):
        return fn(key, shape, dtype)
    return sample_layer


@pytest.mark.parametrize("fn, word", [
    (lambda k, s, d: jax.random.normal(k, s[::-1], d), "shape"),
    (lambda k, s, d: jax.random.normal(k, s + (1,), d), "shape"),
    (lambda k, s, d: jax.random.normal(k, s, jnp.float16), "dtype"),
    (lambda k, s, d: jax.random.randint(k, s, 0, 3), "dtype"),
    # not traceable: converting a traced key to NumPy
    (lambda k, s, d: jnp.asarray(np.random.default_rng(int(jax.random.key_data(k)[0])).normal(
        size=s), d), "traced"),
    (lambda k, s, d: jnp.full(s, float(jax.random.normal(k)), d), "traced"),
])
def test_check_prior_rejects(fn, word):
    prior = priors.custom(_sampler(fn), name="bad")
    with pytest.raises(ValueError, match="bad") as info:
        priors.check_prior(prior, MODEL)
    assert word in str(info.value)


def test_check_prior_accepts_builtins_and_custom():
    for prior in (priors.gaussian(), priors.uniform(True), LAPLACE):
        priors.check_prior(prior, MODEL)


def test_engine_rejects_bad_prior_before_running(sensing_problem, linear_model):
    bad = priors.custom(_sampler(lambda k, s, d: jax.random.normal(k, s + (1,), d)), name="bad")
    with pytest.raises(ValueError, match="bad"):
        task.guess_and_check(sensing_problem, linear_model, bad, eps=0.1, samples=10)


# ---------------------------------------------------------- normalized prior


def test_normalized_prior_gives_unit_norm():
    model = models.factorization(3, 4, depth=3, width=7, activation="tanh")
    keys = jax.random.split(jax.random.key(5), 2000)
    pairs = [(priors.make_prior(name), priors.make_prior(name, normalize=True))
             for name in ("gaussian", "uniform")]

    def one(prior, k):
        sampler = samplers.make_sampler(model, prior, "direct")
        return sampler.layers(k), task.draw(sampler, prior, k)

    def both(k):
        return [(one(plain, k), one(normed, k)) for plain, normed in pairs]

    for (layers_a, m_plain), (layers_b, m_normed) in jax.jit(jax.vmap(both))(keys):
        for a, b in zip(layers_a, layers_b):  # normalization does not change the weights
            assert np.array_equal(a, b)
        m_plain = np.asarray(m_plain, np.float64)
        norms = np.linalg.norm(m_plain, axis=(1, 2))
        got = np.linalg.norm(np.asarray(m_normed, np.float64), axis=(1, 2))
        # ||W|| / (||W|| + 1e-6), up to float32 rounding of the norm and the division (~20u)
        np.testing.assert_allclose(got, norms / (norms + 1e-6), rtol=20 * 2.0**-24)
        assert np.all(np.abs(got - 1.0) < 1e-6 / norms + 20 * 2.0**-24)
        # the direction is unchanged: W / (||W|| + 1e-6) entrywise
        np.testing.assert_allclose(np.asarray(m_normed), m_plain / (norms + 1e-6)[:, None, None],
                                   rtol=20 * 2.0**-24, atol=1e-7)


def test_custom_prior_runs_through_the_engine(run_collect, direct, sensing_problem, linear_model):
    """A user prior is batched, deterministic and regenerable exactly like a built-in."""
    prior = priors.custom(priors.scaled(jax.random.laplace), name="laplace", normalize=True)
    eps = 0.06
    run = run_collect(sensing_problem, linear_model, prior, eps=eps, samples=SAMPLES, seed=SEED,
                      log2_block=LOG2_BLOCK, batch=BLOCK, devices=1)
    train, gen, matrices = direct(sensing_problem, linear_model, prior, SEED, SAMPLES)
    accept = np.isfinite(train) & np.isfinite(gen) & (train < np.float32(eps))
    assert 0 < run.totals.accepted == accept.sum() < SAMPLES
    assert np.array_equal(run.index, np.nonzero(accept)[0])
    assert np.array_equal(run.matrix, matrices[accept])
    # normalized: every stored matrix has norm ||W|| / (||W|| + 1e-6) (+- ~20u of float32
    # rounding), which is within 1e-4 of 1 for any ||W|| > 0.01; the exact value is
    # checked for one regenerated row below and for many draws in the test above
    norms = np.linalg.norm(run.matrix.astype(np.float64), axis=(1, 2))
    assert np.all(norms <= 1.0 + 20 * 2.0**-24) and np.all(norms > 1.0 - 1e-4)
    # regeneration from (seed, index) gives the layers; their product, normalized, the row
    layers, matrix = task.regenerate(linear_model, prior, SEED, int(run.index[0]), "direct")
    w = layers[0].astype(np.float64) @ layers[1].astype(np.float64)
    w /= np.linalg.norm(w) + 1e-6
    # float32 product (error <= gamma_5 |W1||W2|) and normalization (~20u): 1e-5 absolute on
    # entries of a unit-norm 5x5 matrix whose envelope |W1||W2| / ||W|| is O(1)
    np.testing.assert_allclose(matrix, w, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run.matrix[0], w, rtol=0, atol=1e-5)
    # the draws are not the Gaussian prior's
    assert not np.array_equal(np.asarray(layers[0]),
                              task.regenerate(linear_model, priors.gaussian(), SEED,
                                              int(run.index[0]), "direct")[0][0])


@pytest.mark.parametrize("depth, activation", [(1, "linear"), (2, "tanh"), (5, "tanh"),
                                               (4, "leaky_relu")])
def test_penultimate_streams_the_same_layers(depth, activation):
    """The layer-at-a-time product uses the very layers of sample_layers (same keys)."""
    model = models.factorization(4, 3, depth=depth, width=6, activation=activation)
    prior = priors.gaussian()
    keys = jax.random.split(jax.random.key(8), 64)
    streamed = jax.jit(jax.vmap(lambda k: priors.penultimate(prior, model, k)))(keys)
    layers = jax.jit(jax.vmap(lambda k: priors.sample_layers(prior, model, k)))(keys)
    h = np.asarray(layers[0], np.float64)
    act = {"linear": lambda x: x, "tanh": np.tanh,
           "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x)}[activation]
    for w in layers[1:-1] if depth > 1 else []:
        h = act(h) @ np.asarray(w, np.float64)
    # float32 products of inner size 6 over at most 3 layers: relative error ~1e-6
    np.testing.assert_allclose(np.asarray(streamed), h, rtol=1e-5, atol=1e-6)
