"""The cone move (gcsampler.factorization.fibers.cone) against exact samples of the law
it must keep.

Given the other layers and the direction u of the train predictions, a normalized
prior's block is ``t a + v`` with t^2 kappa ~ chi^2_m and v a standard normal in
the null space of M, independent (see the move's docstring). That conditional law,
restricted to a level set, can be sampled exactly by rejection, and the cone move
alone mixes it quickly, so the check has power: start from exact samples, make
T_MOVES moves, and compare with fresh exact samples by two-sample KS tests of the
train loss, gen loss, t and two projections of the block. The moved particles are
independent (each starts from its own exact sample), so the KS null law holds.

All KS tests here share one family-wise false-failure rate ALPHA = 0.001
(Bonferroni). The negative control, the same move for N(0, 4 I) coordinates (the
wrong prior scale), must fail them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gcsampler.factorization import collapsed, fibers, latent, models, priors, problems, splitting

ALPHA = 0.001
PROBLEM = problems.matrix_sensing(seed=0)
N_TRAIN = len(PROBLEM.train_ops)
OPS, LABELS = problems.stacked_operators(PROBLEM)
TRAIN_OPS, TRAIN_LABELS = OPS[:, :N_TRAIN], LABELS[:N_TRAIN]
PRIOR = priors.gaussian(normalize=True)
# (model, coordinate map, which linear block): the middle layer of a linear depth-3
# network, and the collapsed last layer of a tanh network wider than the matrix
CASES = {"linear middle layer": (models.factorization(5, 5, 3, 5), "direct", 1),
         "tanh collapsed last layer": (models.factorization(5, 5, 2, 7, "tanh"), "last_layer",
                                       0)}

SAMPLES = 1000
POOL = 120_000        # conditional draws per case; the level keeps 2% of them
KEEP = 0.02
T_MOVES = 10
STEP = 0.5            # pCN step of the null-space part
WRONG = "linear middle layer"    # the case of the negative control
STATISTICS = ("train", "gen", "t", "projection 1", "projection 2")
ALPHA_KS = ALPHA / (len(CASES) * len(STATISTICS))


def _coordinates(case):
    """(latent, the block, evaluate) of a case."""
    model, name, index = CASES[case]
    coords = latent.make_latent(model, PRIOR, name)
    evaluate = splitting.make_evaluate(latent.normalized(coords, PRIOR), N_TRAIN)
    return coords, coords.linear_blocks[index], lambda z: evaluate(z, OPS, LABELS)


def _wrong_cone(coords, block):
    """The cone move for z ~ N(0, 4 I): the move in u = z / 2 with matrix(2 u)."""
    cone = fibers.cone(block, lambda u: coords.matrix(2 * u), TRAIN_OPS, TRAIN_LABELS)

    def step(key, z, train, gen, level, evaluate, param):
        u, train, gen, info = cone.step(key, z / 2, train, gen, level,
                                        lambda w: evaluate(2 * w), param)
        return 2 * u, train, gen, info

    return step


@functools.lru_cache(maxsize=None)
def populations():
    """{case: (moved, fresh, moved by the wrong move (WRONG only), accepted count)}, each
    a dict of (SAMPLES,) statistics, from one compiled program."""
    def run(key):
        out = {}
        for index, case in enumerate(CASES):
            coords, block, evaluate = _coordinates(case)
            start, stop = block
            keys = jax.random.split(jax.random.fold_in(key, index), 6)
            with_block, operator = fibers._block_maps(coords.matrix, block, TRAIN_OPS)
            z0 = jax.random.normal(keys[0], (coords.dim,), jnp.float32)
            op = operator(z0)
            root = collapsed.last_layer_root(op)
            c = jnp.matmul(op, z0[start:stop])
            u = c / jnp.linalg.norm(c)
            a = fibers._lift(op, root, u)
            kappa = jnp.sum(fibers._solve_lower(root, u) ** 2)
            # the exact conditional law: t^2 kappa ~ chi^2_m, v null-space standard normal
            t = jnp.sqrt(jax.random.chisquare(keys[1], N_TRAIN, (POOL,)) / kappa)
            v = jax.vmap(lambda k: fibers._null_normal(k, op, root, (stop - start,),
                                                       jnp.float32))(
                jax.random.split(keys[2], POOL))
            z = jax.vmap(lambda ti, vi: with_block(z0, ti * a + vi))(t, v)
            train, gen = jax.vmap(evaluate)(z)
            level = jnp.sort(train)[int(KEEP * POOL)]
            (rows,) = jnp.nonzero(train < level, size=2 * SAMPLES, fill_value=0)
            start_rows, fresh_rows = rows[:SAMPLES], rows[SAMPLES:]
            projections = jax.random.normal(keys[3], (stop - start, 2))

            def summary(z, train, gen):
                block_values = z[:, start:stop]
                c = jnp.matmul(block_values, op.T)
                return {"train": train, "gen": gen, "t": jnp.linalg.norm(c, axis=1),
                        "projection 1": block_values @ projections[:, 0],
                        "projection 2": block_values @ projections[:, 1],
                        "direction": jnp.max(jnp.abs(c / jnp.linalg.norm(c, axis=1)[:, None]
                                                     - u), axis=1)}

            def moved_by(step, key):
                def sweep(i, state):
                    keys_i = jax.random.split(jax.random.fold_in(key, i), SAMPLES)
                    z, train, gen, count = state
                    z, train, gen, info = jax.vmap(step, in_axes=(0, 0, 0, 0, None, None, None))(
                        keys_i, z, train, gen, level, evaluate, STEP)
                    return z, train, gen, count + jnp.sum(info.moved)
                state = (z[start_rows], train[start_rows], gen[start_rows], jnp.int32(0))
                z_m, train_m, gen_m, count = jax.lax.fori_loop(0, T_MOVES, sweep, state)
                return summary(z_m, train_m, gen_m), count

            moved, count = moved_by(fibers.cone(block, coords.matrix, TRAIN_OPS,
                                                TRAIN_LABELS).step, keys[4])
            wrong = moved_by(_wrong_cone(coords, block), keys[5])[0] if case == WRONG else None
            out[case] = (moved, summary(z[fresh_rows], train[fresh_rows],
                                                gen[fresh_rows]), wrong, count)
        return out

    return jax.device_get(jax.jit(run)(jax.random.key(11)))


def _p_values(a, b):
    return {s: stats.ks_2samp(np.asarray(a[s], np.float64), np.asarray(b[s], np.float64)).pvalue
            for s in STATISTICS}


def test_the_cases_blocks():
    assert _coordinates("linear middle layer")[1] == (25, 50)
    assert _coordinates("tanh collapsed last layer")[0].linear_blocks == ((35, 60),)


@pytest.mark.parametrize("case", CASES)
def test_cone_keeps_the_conditional_law(case):
    moved, fresh, _, count = populations()[case]
    # the null-space step moved a fair share of the particles (pCN step 0.5)
    assert 0.2 * T_MOVES * SAMPLES < count <= T_MOVES * SAMPLES
    # the direction of the train predictions is kept (up to float32 rounding)
    assert np.max(moved["direction"]) < 1e-4
    p_values = _p_values(moved, fresh)
    assert min(p_values.values()) > ALPHA_KS, p_values


def test_the_check_rejects_a_wrong_cone():
    _, fresh, wrong, _ = populations()[WRONG]
    p_values = _p_values(wrong, fresh)
    assert min(p_values.values()) < ALPHA_KS, p_values


def test_which_blocks_get_which_move():
    """cone on every linear block with normalization, fiber on the last without; blocks
    with fewer coordinates than train predictions are skipped (M M^T is singular)."""
    linear3 = models.factorization(5, 5, 3, 5)
    plain = priors.gaussian()
    for prior, blocks, name in ((PRIOR, ((0, 25), (25, 50), (50, 75)), "cone"),
                                (plain, ((50, 75),), "fiber")):
        coords = latent.make_latent(linear3, prior, "direct")
        assert fibers.fiber_blocks(coords, prior, N_TRAIN) == blocks
        made = fibers.fiber_moves(coords, prior, TRAIN_OPS, TRAIN_LABELS)
        assert [move.name for move in made] == [name] * len(blocks)
    narrow = latent.make_latent(models.factorization(5, 5, 2, 2), PRIOR, "direct")
    assert narrow.linear_blocks == ((0, 10), (10, 20)) and N_TRAIN == 15
    assert fibers.fiber_blocks(narrow, PRIOR, N_TRAIN) == ()
    uniform = priors.uniform(normalize=True)
    assert fibers.fiber_blocks(latent.make_latent(linear3, uniform, "direct"), uniform,
                               N_TRAIN) == ()
