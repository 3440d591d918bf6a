"""Collapsed samplers (gcsampler.factorization.collapsed) against direct drawing from the
Gaussian prior.

Statistics. Every null test below is a Kolmogorov-Smirnov test (two-sample against
direct draws, or one-sample against N(0, 1)) on iid samples: collapsed, regenerated
and direct draws use disjoint key sets, so the samples are independent. The file's
family-wise level is ALPHA = 0.01, split by Bonferroni over the N_TESTS null tests:
each rejects at ALPHA / N_TESTS. Power: the same tests must reject deliberately wrong
variants with p < 1e-6.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gcsampler.factorization import collapsed, models, priors

N = 20_000                 # draws per sample in the distribution tests
N_REGEN = 5_000            # regenerated draws per case (300 when wide)
SEED_COLLAPSED, SEED_DIRECT, SEED_REGEN, SEED_WRONG = 1, 2, 3, 4
REPRO_RTOL = 1e-4          # ||end_to_end(layers) - matrix||_F <= REPRO_RTOL ||matrix||_F
                           # (float32 rounding, k <= 1000; observed <= 1e-5)
POWER_P = 1e-6

SAMPLERS = {"last_layer": (collapsed.last_layer_matrix, collapsed.last_layer_layers),
            "wishart": (collapsed.wishart_matrix, collapsed.wishart_layers)}

# (sampler, n_rows, n_cols, depth, width, activation)
MATRIX_CASES = [
    ("last_layer", 4, 6, 2, 8, "linear"),
    ("last_layer", 5, 3, 2, 8, "tanh"),
    ("last_layer", 4, 5, 3, 6, "relu"),        # H has zero rows in ~10% of the draws
    ("last_layer", 3, 4, 2, 7, "leaky_relu"),
    ("wishart", 5, 3, 2, 5, "linear"),         # width == n_rows: chi^2 with 1 degree of freedom
    ("wishart", 4, 6, 3, 7, "linear"),
    ("wishart", 4, 3, 5, 5, "linear"),
    ("wishart", 3, 4, 2, 1000, "linear"),
]
REGEN_CASES = [
    ("last_layer", 4, 5, 3, 6, "relu"),
    ("last_layer", 5, 3, 2, 8, "tanh"),
    ("wishart", 4, 6, 3, 7, "linear"),
    ("wishart", 4, 3, 5, 5, "linear"),
    ("wishart", 3, 4, 2, 1000, "linear"),
]

ALPHA = 0.01
# 3 per matrix case (entry, largest and smallest singular value); per regeneration case:
# d layers' entries, d - 1 layers' entries along their input's row space, 2 end-to-end.
N_TESTS = 3 * len(MATRIX_CASES) + sum(2 * case[3] + 1 for case in REGEN_CASES)
ALPHA_EACH = ALPHA / N_TESTS


def _model(case):
    _, n_rows, n_cols, depth, width, activation = case
    return models.factorization(n_rows, n_cols, depth, width, activation)


def _keys(seed, n):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))


@functools.lru_cache(maxsize=None)
def _batched(fn, model):
    """jit(vmap(fn(model, .))), cached so that tests share compiled kernels."""
    return jax.jit(jax.vmap(functools.partial(fn, model)))


def _sample(batched, inputs, chunk=5_000):
    """Stacked NumPy outputs of a jit(vmap(...)) function over the leading axis of
    ``inputs`` (keys or a pytree of arrays), in chunks."""
    size = len(jax.tree.leaves(inputs)[0])
    parts = [jax.device_get(batched(jax.tree.map(lambda x: x[i:i + chunk], inputs)))
             for i in range(0, size, chunk)]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _direct_matrix(model, key):
    return models.end_to_end(model, priors.sample_layers(priors.gaussian(), model, key))


@functools.lru_cache(maxsize=None)
def _direct(model):
    return _sample(_batched(_direct_matrix, model), _keys(SEED_DIRECT, N))


def _statistics(matrices):
    """Entry W[0, 0], largest and smallest singular value of each matrix.

    A float32 matrix resolves no singular value below max(shape) * eps32 * sigma_max
    (NumPy's matrix_rank threshold): such a sigma_min is counted as 0. Exactly
    singular W (relu zeroes rows of H) otherwise gives rounding noise, whose law
    differs between two ways of computing the same W.
    """
    singular = np.linalg.svd(matrices.astype(np.float64), compute_uv=False)
    floor = max(matrices.shape[1:]) * np.finfo(np.float32).eps * singular[:, 0]
    sigma_min = np.where(singular[:, -1] <= floor, 0.0, singular[:, -1])
    return {"entry": matrices[:, 0, 0], "sigma_max": singular[:, 0], "sigma_min": sigma_min}


def _ks_pvalues(sample, reference):
    a, b = _statistics(sample), _statistics(reference)
    return {name: stats.ks_2samp(a[name], b[name]).pvalue for name in a}


@pytest.mark.parametrize("case", MATRIX_CASES, ids=lambda c: "-".join(map(str, c)))
def test_matrix_matches_direct(case):
    model = _model(case)
    sample = _sample(_batched(SAMPLERS[case[0]][0], model), _keys(SEED_COLLAPSED, N))
    assert sample.shape == (N, model.n_rows, model.n_cols)
    assert np.all(np.isfinite(sample))
    pvalues = _ks_pvalues(sample, _direct(model))
    assert min(pvalues.values()) > ALPHA_EACH, pvalues


def test_relu_case_has_singular_hidden_layers():
    """The relu case does exercise singular H H^T (a zero row of H gives a zero row of W)."""
    model = _model(MATRIX_CASES[2])
    sample = _sample(_batched(collapsed.last_layer_matrix, model), _keys(SEED_COLLAPSED, N))
    assert np.mean(np.any(np.all(sample == 0, axis=2), axis=1)) > 0.01


# Deliberately wrong variants: the matrix test above (three KS tests against direct
# draws) must reject each with p < POWER_P.
WRONG_VARIANTS = {
    # last_layer scaled by 1/sqrt(n_rows) instead of 1/sqrt(n_cols) (n_rows != n_cols).
    "last_layer_wrong_dimension": (MATRIX_CASES[0], lambda model, key: collapsed.last_layer_matrix(
        model, key) * np.sqrt(model.n_cols / model.n_rows)),
    # Bartlett degrees of freedom k - i + 2 instead of k - i + 1: a width-(k+1) draw
    # rescaled to width k (depth 2, so exactly one Bartlett factor).
    "wishart_wrong_dof": (MATRIX_CASES[4], lambda model, key: collapsed.wishart_matrix(
        model._replace(width=model.width + 1), key) * np.sqrt((model.width + 1) / model.width)),
    # One 1/sqrt(k) factor replaced by 1/k.
    "wishart_dropped_sqrt_k": (MATRIX_CASES[5], lambda model, key: collapsed.wishart_matrix(
        model, key) / np.sqrt(model.width)),
}


@pytest.mark.parametrize("name", WRONG_VARIANTS)
def test_tests_reject_wrong_variants(name):
    case, wrong = WRONG_VARIANTS[name]
    model = _model(case)
    sample = _sample(_batched(wrong, model), _keys(SEED_WRONG, N))
    pvalues = _ks_pvalues(sample, _direct(model))
    assert min(pvalues.values()) < POWER_P, pvalues


@functools.lru_cache(maxsize=None)
def _regenerated(case):
    """Layers and matrices of the same keys, compiled separately (as the engine and
    draws.regenerate do), so agreement does not come from shared computation."""
    model = _model(case)
    matrix_fn, layers_fn = SAMPLERS[case[0]]
    wide = model.width >= 1000
    keys = _keys(SEED_REGEN, 300 if wide else N_REGEN)
    chunk = 100 if wide else 5_000
    matrices = _sample(_batched(matrix_fn, model), keys, chunk)
    layers = _sample(_batched(layers_fn, model), keys, chunk)
    return model, keys, layers, matrices


@pytest.mark.parametrize("case", REGEN_CASES, ids=lambda c: "-".join(map(str, c)))
def test_regenerated_layers(case):
    model, _, layers, matrices = _regenerated(case)
    assert tuple(w.shape[1:] for w in layers) == model.layer_shapes
    assert all(np.all(np.isfinite(w)) for w in layers)

    # The layers multiply to the sampled matrix (float32 rounding only).
    product = _sample(_batched(models.end_to_end, model), layers)
    error = np.linalg.norm(product - matrices, axis=(1, 2))
    assert np.all(error <= REPRO_RTOL * np.linalg.norm(matrices, axis=(1, 2))), error.max()

    pvalues = {}
    hidden = layers[0]
    for index, w in enumerate(layers):
        scale = np.sqrt(w.shape[-1])  # prior: entries N(0, 1/c), c = the layer's columns
        pvalues[f"W{index + 1}"] = stats.kstest((w * scale).ravel(), "norm").pvalue
        if index:
            # Given the earlier layers, W_l is still N(0, I/c): in particular its
            # component along the row space of its input (where the draw conditions it).
            basis = _row_space(np.asarray(model.activation(hidden)))
            along = np.concatenate([b.T @ x for b, x in zip(basis, w.astype(np.float64))])
            pvalues[f"W{index + 1}_row_space"] = stats.kstest((along * scale).ravel(),
                                                              "norm").pvalue
            hidden = np.asarray(models.end_to_end(model, (hidden, w)))  # next pre-activation
    direct = _statistics(_direct(model))
    ours = _statistics(product)
    for name in ("entry", "sigma_max"):
        pvalues[f"end_to_end_{name}"] = stats.ks_2samp(ours[name], direct[name]).pvalue
    assert len(pvalues) == 2 * model.depth + 1
    assert min(pvalues.values()) > ALPHA_EACH, pvalues


def _row_space(inputs):
    """Per draw, an orthonormal (k, rank) basis of the row space of a (rows, k) input."""
    inputs = inputs.astype(np.float64)
    _, s, vt = np.linalg.svd(inputs, full_matrices=False)
    return [v[sv > 1e-6 * max(sv[0], 1e-300)].T for sv, v in zip(s, vt)]


def test_regeneration_with_singular_hidden_layer_reproduces_matrix():
    """relu draws whose H has a zero row: the layers still reproduce W, one key at a
    time under jit as draws.regenerate does, and W's matching rows are exactly zero."""
    model, keys, layers, matrices = _regenerated(REGEN_CASES[0])
    hidden = jax.nn.relu(_sample(_batched(models.end_to_end, model), layers[:2]))
    singular = np.flatnonzero(np.any(np.all(hidden == 0, axis=2), axis=1))
    assert len(singular) >= 100
    assert np.all(matrices[singular][np.all(hidden[singular] == 0, axis=2)] == 0)
    one = jax.jit(lambda key: models.end_to_end(model, collapsed.last_layer_layers(model, key)))
    for i in singular[:20]:
        error = np.linalg.norm(np.asarray(one(keys[i])) - matrices[i])
        assert error <= REPRO_RTOL * np.linalg.norm(matrices[i]), (i, error)


def test_last_layer_prefix_is_the_direct_draw():
    """With the same key, W_1 .. W_{d-1} are bitwise the prior's (documented key derivation)."""
    model = _model(REGEN_CASES[0])
    keys = _keys(SEED_REGEN, 16)
    ours = _sample(_batched(collapsed.last_layer_layers, model), keys)
    direct = _sample(jax.jit(jax.vmap(
        lambda key: tuple(priors.sample_layers(priors.gaussian(), model, key)))), keys)
    for a, b in zip(ours[:-1], direct[:-1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", [REGEN_CASES[0], REGEN_CASES[2]], ids=lambda c: c[0])
def test_draws_do_not_depend_on_batching(case):
    """A draw is a function of its key alone: one key under jit = that key in a batch."""
    model, keys, layers, matrices = _regenerated(case)
    matrix_fn, layers_fn = (jax.jit(functools.partial(fn, model)) for fn in SAMPLERS[case[0]])
    for i in (0, 3):
        np.testing.assert_allclose(matrix_fn(keys[i]), matrices[i], rtol=1e-5, atol=1e-6)
        for single, batch in zip(layers_fn(keys[i]), layers):
            np.testing.assert_allclose(single, batch[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn,model", [
    (collapsed.wishart_matrix, models.factorization(4, 4, 2, 8, "tanh")),
    (collapsed.wishart_matrix, models.factorization(4, 4, 2, 3)),
    (collapsed.wishart_layers, models.factorization(4, 4, 1, 8)),
    (collapsed.last_layer_matrix, models.factorization(4, 4, 1, 8)),
])
def test_invalid_models_raise(fn, model):
    with pytest.raises(ValueError):
        fn(model, jax.random.key(0))
