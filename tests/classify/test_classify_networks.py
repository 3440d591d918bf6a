"""Classifier networks against NumPy references, their priors' distributions, and their losses."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gcsampler.classify import networks
from gcsampler.classify.networks import CNN, MLP, lenet, losses, sample_params

ALPHA = 0.01   # false-failure rate of each statistical test


def _np_mlp(model, params, x):
    """Without hidden biases the parameters are every weight, then the logits' bias: the
    network is the one with zero hidden biases."""
    act = {"relu": lambda h: np.maximum(h, 0), "tanh": np.tanh, "linear": lambda h: h}
    h = x.reshape(len(x), -1).astype(np.float64)
    params = [np.asarray(p, np.float64) for p in params]
    if model.hidden_biases:
        weights, biases = params[0::2], params[1::2]
    else:
        weights = params[:-1]
        biases = [np.zeros(w.shape[1]) for w in weights[:-1]] + [params[-1]]
    assert len(weights) == len(biases) == model.depth + 1
    for layer in range(model.depth):
        h = act[model.activation](h @ weights[layer] + biases[layer])
    return h @ weights[-1] + biases[-1]


def _np_conv(x, kernel, bias, padding):
    """'SAME' or 'VALID' convolution (cross-correlation, stride 1, odd kernel) by explicit
    loops; 'VALID' keeps only the outputs whose window lies inside the image."""
    n, height, width, _ = x.shape
    k = kernel.shape[0]
    pad = {"SAME": (k - 1) // 2, "VALID": 0}[padding]
    padded = np.zeros((n, height + 2 * pad, width + 2 * pad, x.shape[3]))
    padded[:, pad:pad + height, pad:pad + width] = x
    out_height, out_width = height + 2 * pad - k + 1, width + 2 * pad - k + 1
    out = np.zeros((n, out_height, out_width, kernel.shape[3]))
    for i in range(out_height):
        for j in range(out_width):
            for di in range(k):
                for dj in range(k):
                    out[:, i, j] += padded[:, i + di, j + dj] @ kernel[di, dj]
    return out + bias


def _np_pool(x, kind):
    n, height, width, channels = x.shape
    out = np.zeros((n, height // 2, width // 2, channels))
    for i in range(height // 2):
        for j in range(width // 2):
            window = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            out[:, i, j] = window.max(axis=(1, 2)) if kind == "max" else window.mean(axis=(1, 2))
    return out


def _np_cnn(model, params, x):
    params = [np.asarray(p, np.float64) for p in params]
    h = x.astype(np.float64)
    blocks = len(model.channels)
    for block in range(blocks):
        h = _np_conv(h, params[2 * block], params[2 * block + 1], model.padding)
        h = _np_pool(np.maximum(h, 0), model.pool)
    h = h.reshape(len(h), -1)
    dense = params[2 * blocks:]
    for layer in range(len(model.dense)):
        h = np.maximum(h @ dense[2 * layer] + dense[2 * layer + 1], 0)
    return h @ dense[-2] + dense[-1]


def _close(got, expected, rtol=1e-5):
    """float32 against a float64 reference, relative to the largest logit."""
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, x):
    return model.apply(params, x)


@functools.partial(jax.jit, static_argnames=("model", "size", "prior"))
def _population(model, size, seed, prior="uniform"):
    """``size`` parameter settings drawn with the keys of ``split(key(seed), size)``.

    Jitted with the seed traced, so tests that share a model, size and prior share one
    compiled sampler.
    """
    keys = jax.random.split(jax.random.key(seed), size)
    return jax.vmap(lambda k: sample_params(model, k, prior))(keys)


def _member(population, index):
    return [p[index] for p in population]


@pytest.mark.parametrize("depth,activation,hidden_biases", [
    (0, "relu", True), (1, "relu", True), (3, "tanh", True), (2, "linear", True),
    (0, "relu", False), (1, "relu", False), (3, "tanh", False)])
def test_mlp_matches_numpy(depth, activation, hidden_biases):
    model = MLP(2, depth=depth, width=7, activation=activation, hidden_biases=hidden_biases)
    x = np.random.default_rng(0).uniform(-1, 1, (9, 2)).astype(np.float32)
    params = sample_params(model, jax.random.key(depth))
    assert [p.shape for p in params] == list(model.param_shapes)
    logits = model.apply(params, x)
    assert logits.shape == (9, 2) and logits.dtype == jnp.float32
    _close(logits, _np_mlp(model, params, x))


def test_mlp_without_hidden_biases_is_the_mlp_with_zero_hidden_biases():
    """Chiang et al.'s MLP (2 -> 10 -> 2, a bias on the logits only): its parameters, and its
    logits equal to those of the MLP with biases whose hidden biases are 0."""
    model = MLP(2, depth=1, width=10, hidden_biases=False)
    assert model.param_shapes == ((2, 10), (10, 2), (2,))
    assert model.n_params == 42
    assert model.fan_ins == (2, 10, 10)
    assert model.weight_indices == (0, 1)
    deep = MLP(3, depth=2, width=4, hidden_biases=False)
    assert deep.param_shapes == ((3, 4), (4, 4), (4, 2), (2,))
    assert deep.fan_ins == (3, 4, 4, 4) and deep.weight_indices == (0, 1, 2)
    assert MLP(2, depth=0, hidden_biases=False).param_shapes == MLP(2, depth=0).param_shapes
    w1, w2, b = sample_params(model, jax.random.key(3))
    x = np.random.default_rng(3).uniform(-1, 1, (6, 2)).astype(np.float32)
    with_biases = MLP(2, depth=1, width=10)
    np.testing.assert_array_equal(model.apply((w1, w2, b), x),
                                  with_biases.apply((w1, jnp.zeros(10), w2, b), x))


def test_mlp_flattens_images():
    model = MLP(64, depth=1, width=5)
    x = np.random.default_rng(1).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    params = sample_params(model, jax.random.key(1))
    _close(model.apply(params, x), _np_mlp(model, params, x))


@pytest.mark.parametrize("kernel,pool,prior", [(5, "max", "uniform"), (3, "avg", "gaussian")])
def test_cnn_matches_numpy(kernel, pool, prior):
    model = lenet(kernel=kernel, pool=pool)
    x = np.random.default_rng(2).uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
    params = _member(_population(model, 8, kernel, prior), 0)
    logits = model.apply(params, x)
    assert logits.shape == (3, 2)
    _close(logits, _np_cnn(model, params, x), rtol=1e-4)


@pytest.mark.parametrize("padding,flat_dim", [("SAME", 3 * 4 * 2), ("VALID", 2 * 3 * 2)])
def test_cnn_odd_sizes_and_channels_match_numpy(padding, flat_dim):
    # VALID: the 3x3 conv maps 7x9 to 5x7, the pool to 2x3 (dropping the odd row and column).
    model = CNN(in_shape=(7, 9, 2), channels=(2,), dense=(), kernel=3, pool="max",
                padding=padding)
    x = np.random.default_rng(3).normal(size=(2, 7, 9, 2)).astype(np.float32)
    params = sample_params(model, jax.random.key(3), "gaussian")
    assert model.flat_dim == flat_dim
    assert model.param_shapes[-2] == (flat_dim, 2)
    _close(model.apply(params, x), _np_cnn(model, params, x))


PUBLISHED_LENET_SHAPES = ((5, 5, 1, 3), (3,), (5, 5, 3, 8), (8,), (128, 60), (60,), (60, 42),
                          (42,), (42, 2), (2,))


def test_published_lenet_on_mnist_matches_numpy():
    """LeNet at width 0.5 with VALID 5x5 convs on 28x28 images (Chiang et al.'s network):
    maps 24 -> 12 -> 8 -> 4, 4 * 4 * 8 = 128 features, 11,074 parameters."""
    model = lenet(in_shape=(28, 28, 1), padding="VALID")
    assert (model.channels, model.dense, model.padding) == ((3, 8), (60, 42), "VALID")
    assert model.flat_dim == 128
    assert model.param_shapes == PUBLISHED_LENET_SHAPES
    assert model.n_params == 11074
    assert model.fan_ins == (25, 25, 75, 75, 128, 128, 60, 60, 42, 42)
    params = sample_params(model, jax.random.key(11))
    assert [p.shape for p in params] == list(PUBLISHED_LENET_SHAPES)
    assert sum(p.size for p in params) == 11074
    x = np.random.default_rng(11).uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    logits = model.apply(params, x)
    assert logits.shape == (2, 2)
    _close(logits, _np_cnn(model, params, x), rtol=1e-4)


@pytest.mark.parametrize("model", [MLP(2, depth=2, width=6, activation="tanh"), lenet()],
                         ids=["mlp", "cnn"])
def test_vmap_over_population_equals_loop(model):
    shape = (model.in_dim,) if isinstance(model, MLP) else model.in_shape
    x = np.random.default_rng(4).uniform(0, 1, (5,) + shape).astype(np.float32)
    population = _population(model, 8, 0)
    assert [p.shape for p in population] == [(8,) + s for s in model.param_shapes]
    batched = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))(population, x)
    keys = jax.random.split(jax.random.key(0), 8)
    for member in (0, 5):
        params = _member(population, member)
        # Equal up to float32 rounding: a vmapped conv is a grouped conv, summed in another order.
        _close(batched[member], _apply(model, params, x))
        np.testing.assert_array_equal(params[-1], sample_params(model, keys[member])[-1])


def test_parameter_shapes_and_counts():
    mlp = MLP(2, depth=1, width=10)
    assert mlp.param_shapes == ((2, 10), (10,), (10, 2), (2,))
    assert mlp.fan_ins == (2, 2, 10, 10)
    assert mlp.n_params == 52
    assert MLP(64, depth=0).param_shapes == ((64, 2), (2,))
    assert MLP(64, depth=0).n_params == 130
    assert MLP(2, depth=3, width=4).n_params == (2 * 4 + 4) + 2 * (4 * 4 + 4) + (4 * 2 + 2)
    cnn = lenet()
    assert (cnn.channels, cnn.dense, cnn.flat_dim) == ((3, 8), (60, 42), 32)
    assert cnn.param_shapes == ((5, 5, 1, 3), (3,), (5, 5, 3, 8), (8,), (32, 60), (60,),
                                (60, 42), (42,), (42, 2), (2,))
    assert cnn.fan_ins == (25, 25, 75, 75, 32, 32, 60, 60, 42, 42)
    assert cnn.n_params == 78 + 608 + 1980 + 2562 + 86
    assert lenet(kernel=3).n_params == 30 + 224 + 1980 + 2562 + 86
    full = lenet(width=1)
    assert (full.channels, full.dense) == ((6, 16), (120, 84))


def test_models_are_hashable_values():
    assert hash(MLP(2)) == hash(MLP(2)) and MLP(2) == MLP(2) and MLP(2) != MLP(3)
    assert CNN(channels=[3, 8], dense=[60, 42]) == lenet()
    assert len({lenet(): 0, lenet(): 1, lenet(pool="avg"): 2}) == 2
    apply = jax.jit(lambda model, params, x: model.apply(params, x), static_argnums=0)
    model = MLP(2, depth=1, width=3)
    x = jnp.ones((2, 2))
    apply(model, sample_params(model, jax.random.key(0)), x)
    apply(MLP(2, depth=1, width=3), sample_params(model, jax.random.key(1)), x)
    assert apply._cache_size() == 1


def _ks_pvalue(values, dist):
    """The KS p-value of ``values`` against ``dist``."""
    return stats.kstest(np.ravel(values), dist).pvalue


def test_uniform_prior_is_iid_uniform():
    """Weights and biases each pass a KS test against U(-1, 1) at level ALPHA."""
    model = MLP(2, depth=1, width=250)
    population = _population(model, 40, 1)
    weights = np.concatenate([np.ravel(p) for p in population[0::2]])
    biases = np.concatenate([np.ravel(p) for p in population[1::2]])
    assert weights.size == 40_000 and biases.size == 40 * 252
    uniform = stats.uniform(loc=-1, scale=2).cdf
    assert _ks_pvalue(weights, uniform) > ALPHA
    assert _ks_pvalue(biases, uniform) > ALPHA


@pytest.mark.parametrize("hidden_biases", [True, False])
def test_gaussian_prior_scales_by_fan_in(hidden_biases):
    """Every parameter times sqrt(fan_in) passes a KS test against N(0, 1) at level ALPHA, and
    the same test rejects a 10% scale error (its power on 54,000 draws). Without hidden
    biases the logits' bias is the only one, with the last layer's fan-in."""
    model = MLP(3, depth=2, width=40, hidden_biases=hidden_biases)
    population = _population(model, 30, 2, "gaussian")
    assert [p.shape for p in population] == [(30,) + s for s in model.param_shapes]
    scaled = [np.ravel(p) * np.sqrt(fan) for p, fan in zip(population, model.fan_ins)]
    weights = np.concatenate([scaled[i] for i in model.weight_indices])
    biases = np.concatenate([v for i, v in enumerate(scaled) if i not in model.weight_indices])
    assert weights.size == 30 * (3 * 40 + 40 * 40 + 40 * 2)
    assert biases.size == 30 * ((40 + 40 + 2) if hidden_biases else 2)
    assert _ks_pvalue(weights, "norm") > ALPHA
    assert _ks_pvalue(biases, "norm") > ALPHA
    assert _ks_pvalue(weights * 1.1, "norm") < ALPHA


def test_cnn_gaussian_fan_in_counts_the_kernel_window():
    params = _population(lenet(kernel=3, pool="avg"), 8, 4, "gaussian")
    kernels = np.concatenate([np.ravel(params[0]) * 3, np.ravel(params[2]) * np.sqrt(3 * 3 * 3)])
    assert kernels.size == 8 * (9 * 3 + 27 * 8)
    assert _ks_pvalue(kernels, "norm") > ALPHA


def test_parameters_are_distinct_and_jit_agrees():
    model = MLP(2, depth=2, width=5)
    key = jax.random.key(7)
    params = sample_params(model, key)
    assert not np.array_equal(params[1], params[3])   # the two (5,) biases
    jitted = jax.jit(lambda k: sample_params(model, k, "gaussian"))(key)
    for a, b in zip(jitted, sample_params(model, key, "gaussian")):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_custom_prior_callable():
    seen = []

    def uniform01(key, shape, dtype):
        seen.append((shape, jnp.dtype(dtype)))
        return jax.random.uniform(key, shape, dtype)

    model = CNN(channels=(2,), dense=(3,), kernel=3)
    key = jax.random.key(0)
    params = sample_params(model, key, uniform01)
    assert seen == [(shape, jnp.dtype(jnp.float32)) for shape in model.param_shapes]
    for index, (p, shape) in enumerate(zip(params, model.param_shapes)):
        np.testing.assert_array_equal(p, jax.random.uniform(jax.random.fold_in(key, index), shape))


@pytest.mark.parametrize("prior,error,message", [
    ("laplace", ValueError, "prior must be one of uniform, gaussian or a callable"),
    (3, TypeError, "prior must be one of uniform, gaussian or a callable .* got int"),
])
def test_bad_prior(prior, error, message):
    with pytest.raises(error, match=f"^{message}"):
        sample_params(MLP(2), jax.random.key(0), prior)


@pytest.mark.parametrize("build,message", [
    (lambda: MLP(0), "in_dim must be an integer >= 1, got 0"),
    (lambda: MLP(2, depth=-1), "depth must be an integer >= 0, got -1"),
    (lambda: MLP(2, width=2.5), "width must be an integer >= 1, got 2.5"),
    (lambda: MLP(2, activation="sigmoid"), "activation must be one of relu, tanh, linear"),
    (lambda: MLP(2, n_classes=1), "n_classes must be an integer >= 2"),
    (lambda: CNN(kernel=4), "kernel must be one of 3, 5, got 4"),
    (lambda: CNN(pool="min"), "pool must be one of max, avg, got 'min'"),
    (lambda: CNN(in_shape=(8, 8)), r"in_shape must be \(height, width, channels\)"),
    (lambda: CNN(channels=(3, 0)), "every entry of channels must be an integer >= 1"),
    (lambda: CNN(in_shape=(3, 8, 1)),
     r"in_shape \(3, 8, 1\) is too small for 2 SAME 5x5 convs, each followed by a 2x2 pool$"),
    # VALID 5x5 convs and 2x2 pools: 16 -> 12 -> 6 -> 2 -> 1 fits, 15 -> 11 -> 5 -> 1 -> 0 not.
    (lambda: CNN(in_shape=(16, 15, 1), padding="VALID"),
     r"in_shape \(16, 15, 1\) is too small for 2 VALID 5x5 convs"),
    (lambda: lenet(padding="VALID"), r"in_shape \(8, 8, 1\) is too small for 2 VALID 5x5"),
    (lambda: CNN(padding="same"), "padding must be one of SAME, VALID, got 'same'$"),
    (lambda: lenet(padding="FULL"), "padding must be one of SAME, VALID, got 'FULL'$"),
    (lambda: CNN(padding=None), "padding must be one of SAME, VALID, got None$"),
    (lambda: MLP(2, hidden_biases=1), "hidden_biases must be True or False, got 1$"),
    (lambda: MLP(2, hidden_biases="no"), "hidden_biases must be True or False, got 'no'$"),
    (lambda: lenet(width=0), "width must be a number > 0, got 0"),
])
def test_bad_model_arguments(build, message):
    with pytest.raises(ValueError, match=f"^{message}") as error:
        build()
    assert "\n" not in str(error.value)


def test_smallest_valid_input():
    model = CNN(in_shape=(16, 16, 1), padding="VALID")
    assert model.flat_dim == 8 and model.param_shapes[4] == (8, 60)
    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in model.param_shapes]
    out = jax.eval_shape(model.apply, shapes, jax.ShapeDtypeStruct((3, 16, 16, 1), jnp.float32))
    assert out.shape == (3, 2)


def _np_losses(logits, y):
    logits = np.asarray(logits, np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, np.broadcast_to(y[:, None], log_p.shape[:-1] + (1,)), -1)
    accuracy = (logits.argmax(axis=-1) == y).mean(axis=-1)
    return accuracy, -picked[..., 0].mean(axis=-1)


def test_losses_match_numpy():
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(6, 11, 2)) * 30).astype(np.float32)
    logits[0] *= 1000                  # |logits| ~ 1e4: a naive softmax would overflow
    logits[1, :, :] = 2.0              # ties count as class 0
    y = rng.integers(0, 2, 11).astype(np.int32)
    got = losses(jnp.asarray(logits), jnp.asarray(y))
    accuracy, cross_entropy = _np_losses(logits, y)
    assert got.accuracy.shape == got.cross_entropy.shape == (6,)
    np.testing.assert_allclose(got.accuracy, accuracy, rtol=1e-6)
    np.testing.assert_allclose(got.accuracy[1], np.mean(y == 0), rtol=1e-6)
    np.testing.assert_allclose(got.cross_entropy, cross_entropy, rtol=1e-5)
    assert np.all(np.isfinite(got.cross_entropy))
    single = losses(jnp.asarray(logits[2]), jnp.asarray(y))
    assert single.accuracy.shape == ()
    np.testing.assert_allclose(single.cross_entropy, cross_entropy[2], rtol=1e-5)


def test_population_losses_on_a_separable_problem():
    # A linear model w = (0, +-1), b = 0 on points above/below the x axis: the population's
    # members that point the right way get accuracy 1, the others 0.
    model = MLP(2, depth=0)
    x = jnp.array([[0.3, 1.0], [-0.2, 2.0], [0.5, -1.0], [0.1, -3.0]])
    y = jnp.array([1, 1, 0, 0])
    sign = jnp.array([1.0, -1.0])
    w = sign[:, None, None] * jnp.array([[0.0, 0.0], [-1.0, 1.0]])
    params = (w, jnp.zeros((2, 2)))
    result = losses(jax.vmap(model.apply, in_axes=(0, None))(params, x), y)
    np.testing.assert_array_equal(result.accuracy, [1.0, 0.0])
    assert result.cross_entropy[0] < np.log(2) < result.cross_entropy[1]


def _np_logit_scale(model, params):
    """The product over the weights (every parameter with more than one axis; biases are
    vectors) of ||W||_F / divisor, in float64."""
    divisor = 3.0 if isinstance(model, CNN) else 1.0
    return np.prod([np.linalg.norm(np.asarray(p, np.float64).ravel()) / divisor
                    for p in params if np.ndim(p) > 1])


FIT_MODELS = [MLP(2, depth=2, width=6), MLP(2, depth=1, width=10, hidden_biases=False), lenet()]


@pytest.mark.parametrize("model", FIT_MODELS, ids=["mlp", "mlp-no-hidden-biases", "cnn"])
def test_logit_scale_and_fit_match_numpy(model):
    """The scale is the product of the weights' Frobenius norms over the divisor (biases
    excluded); the normalized fit is the loss of the logits over it, the raw fit that of the
    logits, and both classify the same points."""
    assert model.norm_divisor == (3.0 if isinstance(model, CNN) else 1.0)
    assert len(model.weight_indices) == sum(len(s) > 1 for s in model.param_shapes)
    shape = (model.in_dim,) if isinstance(model, MLP) else model.in_shape
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (5,) + shape).astype(np.float32)
    y = jnp.asarray(rng.integers(0, 2, 5).astype(np.int32))
    params = sample_params(model, jax.random.key(6))
    scale = networks.logit_scale(model, params)
    assert scale.shape == () and scale.dtype == jnp.float32
    np.testing.assert_allclose(scale, _np_logit_scale(model, params), rtol=1e-5)
    logits = model.apply(params, x)
    normalized = networks.fit(model, params, x, y)
    raw = networks.fit(model, params, x, y, logits="raw")
    for got, want in [(normalized, losses(logits / scale, y)), (raw, losses(logits, y)),
                      (networks.fit(model, params, x, y, "normalized"), normalized)]:
        np.testing.assert_array_equal(got.accuracy, want.accuracy)
        np.testing.assert_allclose(got.cross_entropy, want.cross_entropy, rtol=1e-6)
    np.testing.assert_array_equal(normalized.accuracy, raw.accuracy)
    np_logits = (_np_mlp if isinstance(model, MLP) else _np_cnn)(model, params, x)
    accuracy, cross_entropy = _np_losses(np_logits / _np_logit_scale(model, params), y)
    np.testing.assert_allclose(normalized.cross_entropy, cross_entropy, rtol=1e-4)
    assert not np.isclose(normalized.cross_entropy, raw.cross_entropy, rtol=1e-3)
    assert networks.LOGITS == ("normalized", "raw")


def test_normalized_logits_ignore_the_scale_of_each_weight():
    """A ReLU MLP with no hidden biases and a zero logits bias is positively homogeneous in
    each weight matrix: multiplying one by c > 0 multiplies the logits and the scale by c, so
    the normalized logits (and the normalized fit) do not change. The raw logits do."""
    model = MLP(2, depth=2, width=6, hidden_biases=False)
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (7, 2)).astype(np.float32)
    y = jnp.asarray(rng.integers(0, 2, 7).astype(np.int32))

    def normalized(params):
        return model.apply(params, x) / networks.logit_scale(model, params)

    for draw in range(3):
        params = list(sample_params(model, jax.random.key(draw)))
        params[-1] = jnp.zeros_like(params[-1])
        base = normalized(params)
        base_fit = networks.fit(model, params, x, y)
        for index in model.weight_indices:
            for c in np.exp(rng.uniform(np.log(1e-2), np.log(1e2), 2)).astype(np.float32):
                scaled = list(params)
                scaled[index] = params[index] * c
                _close(normalized(scaled), base)
                got = networks.fit(model, scaled, x, y)
                np.testing.assert_array_equal(got.accuracy, base_fit.accuracy)
                np.testing.assert_allclose(got.cross_entropy, base_fit.cross_entropy, rtol=1e-5)
                _close(model.apply(scaled, x), c * model.apply(params, x))


@pytest.mark.parametrize("logits", ["softmax", "Raw", None, 1])
def test_bad_logits(logits):
    model = MLP(2, depth=0)
    params = sample_params(model, jax.random.key(0))
    with pytest.raises(ValueError, match=f"^logits must be one of normalized, raw, got "
                                         f"{re.escape(repr(logits))}$") as error:
        networks.fit(model, params, jnp.ones((3, 2)), jnp.zeros(3, jnp.int32), logits)
    assert "\n" not in str(error.value)
