"""Gaussian coordinates of priors (gcsampler.factorization.latent): the law of matrix(z),
z ~ N(0, I), is the prior's law of the end-to-end matrix; the blocks the matrix is linear
in; refusals.

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

from gcsampler.factorization import latent, models, priors, samplers

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


BLOCK_CASES = [("direct", 1, "linear"), ("direct", 2, "linear"), ("direct", 3, "linear"),
               ("direct", 3, "tanh"), ("last_layer", 2, "tanh"), ("last_layer", 3, "linear")]
BLOCK_DRAWS = 64


def _expected_blocks(name, depth, activation):
    """Every layer's block for a linear network in 'direct' coordinates, else the last."""
    shapes = list(model(depth, activation).layer_shapes)
    if name == "last_layer":
        shapes[-1] = (ROWS, COLS)
    edges = np.cumsum([0] + [r * c for r, c in shapes])
    blocks = [(int(edges[i]), int(edges[i + 1])) for i in range(len(shapes))]
    return tuple(blocks if name == "direct" and activation == "linear" else blocks[-1:])


@functools.lru_cache(maxsize=None)
def all_blocks():
    """For every case and linear block: (matrix(z1 + (a b1 + b2) in the block),
    matrix(z1 + b1), matrix(z1 + b2), a) for BLOCK_DRAWS draws, from one program."""

    def compute(key):
        out = {}
        for index, case in enumerate(BLOCK_CASES):
            coords = latent.make_latent(model(case[1], case[2]), GAUSSIAN, case[0])
            for start, stop in coords.linear_blocks:
                keys = jax.random.split(jax.random.fold_in(key, 10 * index + start), 4)
                z = jax.random.normal(keys[0], (BLOCK_DRAWS, coords.dim), jnp.float32)
                b1, b2 = (jax.random.normal(k, (BLOCK_DRAWS, stop - start)) for k in keys[1:3])
                a = jax.random.normal(keys[3], (BLOCK_DRAWS, 1, 1))
                combined = z.at[:, start:stop].set(a[:, :, 0] * b1 + b2)
                out[case + (start,)] = (jax.vmap(coords.matrix)(combined),
                                        jax.vmap(coords.matrix)(z.at[:, start:stop].set(b1)),
                                        jax.vmap(coords.matrix)(z.at[:, start:stop].set(b2)), a)
        return out

    return {case: tuple(np.asarray(x, np.float64) for x in arrays)
            for case, arrays in jax.jit(compute)(jax.random.key(3)).items()}


@pytest.mark.parametrize("name, depth, activation", BLOCK_CASES,
                         ids=[f"{n}-depth{d}-{a}" for n, d, a in BLOCK_CASES])
def test_the_matrix_is_linear_in_its_linear_blocks(name, depth, activation):
    """matrix(a b1 + b2 in a listed block) == a matrix(b1) + matrix(b2), the rest fixed."""
    coords = latent.make_latent(model(depth, activation), GAUSSIAN, name)
    assert coords.linear_blocks == _expected_blocks(name, depth, activation)
    for start, _ in coords.linear_blocks:
        combined, first, second, a = all_blocks()[(name, depth, activation, start)]
        # float32 rounding in products of at most 3 layers of <= 5-term sums: well
        # within 2^8 unit roundoffs of the terms' size; a nonlinear map is off by O(1)
        size = np.abs(a) * np.abs(first) + np.abs(second) + np.max(np.abs(combined))
        assert np.all(np.abs(combined - (a * first + second)) <= 2**8 * U32 * size)


@pytest.mark.parametrize("prior, name", [(UNIFORM, "direct"), (GAUSSIAN_NORMALIZED, "direct"),
                                         (GAUSSIAN_NORMALIZED, "last_layer")],
                         ids=["uniform-direct", "normalized-direct", "normalized-last_layer"])
def test_linear_blocks_are_the_gaussian_priors_only(prior, name):
    """The map (before normalization) is the same for a normalized prior; the uniform
    prior's erf map is not linear."""
    coords = latent.make_latent(model(2, "tanh"), prior, name)
    expected = () if prior is UNIFORM else _expected_blocks(name, 2, "tanh")
    assert coords.linear_blocks == expected


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
    assert coords.name == "direct" and coords.linear_blocks == ()
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
