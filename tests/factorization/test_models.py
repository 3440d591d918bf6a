"""Tests of gcsampler.factorization.models: layer shapes and the end-to-end matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcsampler.factorization import models

# Error bound for the float32 forward pass against a float64 reference of the same
# float32 layers. Each product of length <= 5 has error <= 5u of the product of
# absolute values (Higham, Thm 3.1), each activation is 1-Lipschitz (|s'| <= 1) with
# an error of a few ulps, and at depth <= 4 the errors add up to well under 100u
# ~ 6e-6 of the envelope |W_1| |W_2| ... |W_d| (computed with |s(x)| <= |x|).
# 1e-5 of the envelope is a bound, not a tuned constant; any misplaced or missing
# activation moves entries by O(1) of the envelope.
REL_ENVELOPE = 1e-5

NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


def numpy_forward(layers, fn):
    h = np.asarray(layers[0], np.float64)
    envelope = np.abs(h)
    for w in layers[1:]:
        w = np.asarray(w, np.float64)
        h = fn(h) @ w
        envelope = envelope @ np.abs(w)
    return h, envelope


def _layers(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in model.layer_shapes]


def test_layer_shapes():
    assert models.factorization(3, 4, 1, 7).layer_shapes == ((3, 4),)
    assert models.factorization(3, 4, 2, 7).layer_shapes == ((3, 7), (7, 4))
    assert models.factorization(3, 4, 4, 7).layer_shapes == ((3, 7), (7, 7), (7, 7), (7, 4))


def _check(model, fn, seed):
    layers = _layers(model, seed)
    got = np.asarray(models.end_to_end(model, [jnp.asarray(w) for w in layers]))
    want, envelope = numpy_forward(layers, fn)
    assert got.shape == (model.n_rows, model.n_cols) and got.dtype == np.float32
    assert np.all(np.abs(got - want) <= REL_ENVELOPE * envelope), \
        np.max(np.abs(got - want) / envelope)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("name", ["linear", "tanh", "relu"])
def test_end_to_end_builtin(name, depth):
    model = models.factorization(3, 4, depth, 5, activation=name)
    assert model.activation_name == name
    _check(model, NUMPY_ACTIVATIONS[name], seed=depth)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("slope", [0.2, 0.5])
def test_end_to_end_leaky_relu(slope, depth):
    model = models.factorization(3, 4, depth, 5, activation="leaky_relu", leaky_slope=slope)
    _check(model, lambda x: np.where(x >= 0, x, slope * x), seed=10 + depth)


def test_leaky_relu_slope_matters_and_models_with_equal_slope_are_equal():
    a = models.factorization(3, 4, 2, 5, activation="leaky_relu", leaky_slope=0.2)
    b = models.factorization(3, 4, 2, 5, activation="leaky_relu", leaky_slope=0.2)
    c = models.factorization(3, 4, 2, 5, activation="leaky_relu", leaky_slope=0.5)
    assert a == b and hash(a) == hash(b)   # equal models share compiled kernels
    assert a != c
    layers = [jnp.asarray(w) for w in _layers(a, 0)]
    assert not np.allclose(models.end_to_end(a, layers), models.end_to_end(c, layers))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_end_to_end_custom_callable(depth):
    model = models.factorization(3, 4, depth, 5, activation=jnp.sin)
    assert model.activation_name == "sin" and not model.is_linear
    _check(model, np.sin, seed=20 + depth)


def test_activation_not_applied_after_last_layer_or_at_depth_one():
    # with relu, an activation after the last layer would make every entry >= 0
    model = models.factorization(3, 4, 2, 5, activation="relu")
    layers = [jnp.asarray(w) for w in _layers(model, 3)]
    assert np.any(np.asarray(models.end_to_end(model, layers)) < 0)
    one = models.factorization(3, 4, 1, 5, activation="relu")
    w = jnp.asarray(_layers(one, 4)[0])
    assert np.array_equal(models.end_to_end(one, [w]), w)


def test_end_to_end_traces_under_jit_and_vmap():
    model = models.factorization(3, 4, 3, 5, activation="tanh")
    rng = np.random.default_rng(7)
    batch = [rng.standard_normal((6,) + s).astype(np.float32) for s in model.layer_shapes]
    got = np.asarray(jax.jit(jax.vmap(lambda *ls: models.end_to_end(model, ls)))(*batch))
    for i in range(6):
        want, envelope = numpy_forward([b[i] for b in batch], np.tanh)
        assert np.all(np.abs(got[i] - want) <= REL_ENVELOPE * envelope)


def test_is_linear():
    assert models.factorization(3, 4, 2, 5).is_linear
    assert not models.factorization(3, 4, 2, 5, activation="tanh").is_linear


def test_frobenius_normalize():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 5)).astype(np.float32) * np.array([1e-3, 1.0, 10.0, 1e3],
                                                                       np.float32)[:, None, None]
    got = np.asarray(models.frobenius_normalize(jnp.asarray(w)))
    w64 = w.astype(np.float64)
    norms = np.sqrt(np.sum(w64**2, axis=(1, 2)))
    want = w64 / (norms + 1e-6)[:, None, None]
    # a float32 norm of 15 entries and one division: <= ~20u relative per entry
    np.testing.assert_allclose(got, want, rtol=20 * 2.0**-24, atol=0)
    # the 1e-6 is visible for a small matrix: its norm is 1e-6 below 1 relative to ||W||
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=(1, 2)),
                               norms / (norms + 1e-6), rtol=20 * 2.0**-24)
    assert np.array_equal(models.frobenius_normalize(jnp.zeros((2, 2))), np.zeros((2, 2)))


@pytest.mark.parametrize("bad", [
    dict(width=0), dict(depth=0), dict(depth=-1), dict(n_rows=0), dict(n_cols=-2),
    dict(width=2.5), dict(depth=True),
])
def test_factorization_rejects_bad_sizes(bad):
    args = dict(n_rows=3, n_cols=4, depth=2, width=5)
    args.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        models.factorization(**args)


def test_factorization_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        models.factorization(3, 4, 2, 5, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        models.activation_fn("softplus")


def test_frobenius_normalize_survives_overflowing_squares():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 5, 5)).astype(np.float32)
    plain = w / (np.sqrt(np.sum(w.astype(np.float32) ** 2, axis=(1, 2), keepdims=True)) + 1e-6)
    # in the normal range it is the papers' formula (to float32 rounding of the norm)
    np.testing.assert_allclose(models.frobenius_normalize(jnp.asarray(w)), plain, rtol=4e-7)
    huge = models.frobenius_normalize(jnp.asarray(w * np.float32(1e30)))  # squares overflow
    np.testing.assert_allclose(np.linalg.norm(np.asarray(huge, np.float64), axis=(1, 2)), 1.0,
                               rtol=1e-6)
    np.testing.assert_allclose(huge, plain, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(5, 5, 5), (3, 7, 2), (5, 40, 40)])
def test_layer_product_is_the_product_within_its_rounding_bound(shape):
    """Both ways of ``layer_product`` (multiply-and-sum for small products, a dot for large
    ones) are a @ b up to float32 rounding of a length-k sum: |error| <= gamma_k |a| |b|,
    gamma_k = k u / (1 - k u) (Higham, Thm 3.1), under vmap as the samplers call it."""
    m, k, n = shape
    assert (m * k * n <= models.SMALL_PRODUCT) == (shape != (5, 40, 40))
    rng = np.random.default_rng(k)
    a = rng.standard_normal((8, m, k)).astype(np.float32)
    b = rng.standard_normal((8, k, n)).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(models.layer_product))(a, b), np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    u = 2.0**-24
    gamma = k * u / (1 - k * u)
    assert np.all(np.abs(got - a64 @ b64) <= gamma * (np.abs(a64) @ np.abs(b64)))
