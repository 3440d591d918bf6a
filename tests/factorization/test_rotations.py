"""The layer rotations (gcsampler.factorization.rotations) against exact samples of the
law they must keep: N(0, I) coordinates restricted to a level set {train loss < level}.

Plain rejection from the prior samples that law exactly. Start from exact samples,
make T_SWEEPS sweeps of every rotation move of the model, and compare with fresh
exact samples by two-sample KS tests of the train loss, the gen loss, two random
projections of the normalized end-to-end matrix and the norm of each layer block.
Each particle starts from its own exact sample and moves independently, so the KS
null law holds. The moves must also have moved the particles (or the check has no
power): their acceptance and the correlation of the projections with the start are
checked.

All KS tests share one family-wise false-failure rate ALPHA = 0.001 (Bonferroni). The
negative control, a rotation whose second plane vector is left unnormalized (a
plausible slip: the map is then not orthogonal, so it does not keep the prior), must
fail them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gcsampler.factorization import latent, models, priors, problems, rotations, splitting
from gcsampler.splitting.moves import Move, MoveInfo

ALPHA = 0.001
PROBLEM = problems.matrix_sensing(seed=0)
N_TRAIN = len(PROBLEM.train_ops)
OPS, LABELS = problems.stacked_operators(PROBLEM)
NORMALIZED = priors.gaussian(normalize=True)
# (model, prior, coordinate map): a normalized linear depth-3 network (every layer
# 5 x 5), and a tanh network wider than the matrix in the collapsed coordinates (the
# last block stands for the last layer)
CASES = {"normalized linear depth 3": (models.factorization(5, 5, 3, 5), NORMALIZED, "direct"),
         "tanh collapsed last layer": (models.factorization(5, 5, 2, 7, "tanh"),
                                       priors.gaussian(), "last_layer")}
WRONG = "normalized linear depth 3"     # the case of the negative control
SAMPLES = 1000
POOL = 100_000        # prior draws per case; the level keeps 2% of them
KEEP = 0.02
T_SWEEPS = 8
STEP = 0.5            # the rotation angle's scale
PROJECTIONS = 2


def _statistic_names(case):
    coords = latent.make_latent(CASES[case][0], CASES[case][1], CASES[case][2])
    return (("train", "gen") + tuple(f"projection {i + 1}" for i in range(PROJECTIONS))
            + tuple(f"|block {i + 1}|" for i in range(len(coords.layers))))


ALPHA_KS = ALPHA / sum(len(_statistic_names(case)) for case in CASES)


def _unnormalized_rotation(block, shape, side):
    """The negative control: a 'rotation' of the columns whose second vector c is only
    orthogonalized against a, not normalized."""
    start, stop = block

    def step(key, z, train, gen, level, evaluate, param):
        key_plane, key_angle = jax.random.split(key)
        a, c = jax.random.normal(key_plane, (2, shape[1]), z.dtype)
        a = a / jnp.linalg.norm(a)
        c = c - jnp.dot(a, c) * a
        theta = param * jax.random.normal(key_angle, (), z.dtype)
        b = z[start:stop].reshape(shape)
        ba, bc = b @ a, b @ c
        b = (b + (jnp.cos(theta) - 1) * (jnp.outer(ba, a) + jnp.outer(bc, c))
             + jnp.sin(theta) * (jnp.outer(bc, a) - jnp.outer(ba, c)))
        candidate = z.at[start:stop].set(b.reshape(-1))
        t, g = evaluate(candidate)
        inside = t < level
        return (jnp.where(inside, candidate, z), jnp.where(inside, t, train),
                jnp.where(inside, g, gen), MoveInfo(inside, jnp.int32(1)))  # no cap

    return Move("wrong rotate", step, STEP, None)


@functools.lru_cache(maxsize=None)
def populations():
    """{case: (moved, fresh, moved by the wrong move (WRONG only), start, acceptance)},
    the first four dicts of (SAMPLES,) statistics, from one compiled program."""
    def run(key):
        out = {}
        for index, (case, (model, prior, name)) in enumerate(CASES.items()):
            coords = latent.make_latent(model, prior, name)
            matrix = latent.normalized(coords, prior)
            evaluate_at = splitting.make_evaluate(matrix, N_TRAIN)

            def evaluate(z):
                return evaluate_at(z, OPS, LABELS)

            keys = jax.random.split(jax.random.fold_in(key, index), 4)
            z = jax.random.normal(keys[0], (POOL, coords.dim))
            train, gen = jax.vmap(evaluate)(z)
            level = jnp.sort(train)[int(KEEP * POOL)]
            (rows,) = jnp.nonzero(train < level, size=2 * SAMPLES, fill_value=0)
            start_rows, fresh_rows = rows[:SAMPLES], rows[SAMPLES:]
            projections = jax.random.normal(keys[1], (model.n_rows * model.n_cols,
                                                      PROJECTIONS))

            def summary(z, train, gen):
                flat = jax.vmap(matrix)(z).reshape(z.shape[0], -1)
                values = [train, gen] + [flat @ projections[:, i] for i in range(PROJECTIONS)]
                values += [jnp.linalg.norm(z[:, start:stop], axis=1)
                           for (start, stop), _ in coords.layers]
                return dict(zip(_statistic_names(case), values))

            def moved_by(moves, key):
                def sweep(i, state):
                    z, train, gen, moved = state
                    for j, move in enumerate(moves):
                        keys_ij = jax.random.split(jax.random.fold_in(key, i * len(moves) + j),
                                                   SAMPLES)
                        z, train, gen, info = jax.vmap(
                            move.step, in_axes=(0, 0, 0, 0, None, None, None))(
                                keys_ij, z, train, gen, level, evaluate, STEP)
                        moved = moved + jnp.sum(info.moved)
                    return z, train, gen, moved
                state = (z[start_rows], train[start_rows], gen[start_rows], jnp.int32(0))
                z_m, train_m, gen_m, moved = jax.lax.fori_loop(0, T_SWEEPS, sweep, state)
                return summary(z_m, train_m, gen_m), moved / (T_SWEEPS * len(moves) * SAMPLES)

            moves = rotations.rotation_moves(coords, model, prior)
            moved, acceptance = moved_by(moves, keys[2])
            wrong = None
            if case == WRONG:
                wrong = moved_by(tuple(_unnormalized_rotation(block, shape, "columns")
                                       for block, shape in coords.layers), keys[3])[0]
            out[case] = (moved, summary(z[fresh_rows], train[fresh_rows], gen[fresh_rows]),
                         wrong, summary(z[start_rows], train[start_rows], gen[start_rows]),
                         acceptance)
        return out

    return jax.device_get(jax.jit(run)(jax.random.key(13)))


def _p_values(a, b):
    return {s: stats.ks_2samp(np.asarray(a[s], np.float64), np.asarray(b[s], np.float64)).pvalue
            for s in a}


@pytest.mark.parametrize("case", CASES)
def test_rotations_keep_the_restricted_prior(case):
    moved, fresh, _, start, acceptance = populations()[case]
    # the moves moved: a fair share accepted, and W's projections forgot most of the start
    assert 0.1 < acceptance < 0.95, acceptance
    for i in range(PROJECTIONS):
        name = f"projection {i + 1}"
        assert abs(np.corrcoef(moved[name], start[name])[0, 1]) < 0.7
    p_values = _p_values(moved, fresh)
    assert min(p_values.values()) > ALPHA_KS, p_values


def test_rotations_keep_each_layers_norm():
    """A rotation keeps every layer's singular values, so its norm, exactly (up to
    float32 rounding)."""
    moved, _, _, start, _ = populations()[WRONG]
    for name in moved:
        if name.startswith("|block"):
            np.testing.assert_allclose(moved[name], start[name], rtol=1e-4)


def test_the_check_rejects_a_wrong_rotation():
    _, fresh, wrong, _, _ = populations()[WRONG]
    p_values = _p_values(wrong, fresh)
    assert min(p_values.values()) < ALPHA_KS, p_values


def test_which_layers_get_rotations():
    """Both sides of every layer block for the built-in Gaussian prior at depth >= 2;
    none at depth 1 or for a prior whose layers are not rotation invariant."""
    linear3 = models.factorization(5, 5, 3, 5)
    coords = latent.make_latent(linear3, NORMALIZED, "direct")
    assert coords.layers == (((0, 25), (5, 5)), ((25, 50), (5, 5)), ((50, 75), (5, 5)))
    assert len(rotations.rotation_moves(coords, linear3, NORMALIZED)) == 6
    collapsed = latent.make_latent(CASES["tanh collapsed last layer"][0], priors.gaussian(),
                                   "last_layer")
    assert collapsed.layers == (((0, 35), (5, 7)), ((35, 60), (5, 5)))
    depth1 = models.factorization(5, 5, 1, 5)
    assert rotations.rotation_moves(latent.make_latent(depth1, NORMALIZED), depth1,
                                    NORMALIZED) == ()
    uniform = priors.uniform(normalize=True)
    assert rotations.rotation_moves(latent.make_latent(linear3, uniform, "direct"), linear3,
                                    uniform) == ()
    with pytest.raises(ValueError, match="side must be one of rows, columns"):
        rotations.rotation((0, 25), (5, 5), "diagonal")


def test_the_driver_makes_them_unless_told_not_to():
    model, prior, _ = CASES["normalized linear depth 3"]
    for rotate, expected in ((True, ("rotate",) * 6), (False, ())):
        result = splitting.multilevel_splitting(PROBLEM, model, prior, eps=0.05, particles=16,
                                                replicates=1, moves=1, rotate=rotate,
                                                fiber=False)
        assert result.rotations == expected and result.fibers == ()
        assert result.levels.acceptance.shape[-1] == 1 + len(expected)
