"""Tests of the gradient-descent baseline (gcsampler.factorization.gd)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gcsampler.factorization import gd, models, problems

SEED = 3
RUNS = 3
STEPS = 3000
LOG_EVERY = 100
INIT_SCALE = 1e-2


@pytest.fixture(scope="module")
def result(sensing_problem, linear_model):
    return gd.gd_train(sensing_problem, linear_model, gd.make_optimizer("grouprmsprop", 1e-2),
                       seed=SEED, runs=RUNS, steps=STEPS, init_scale=INIT_SCALE,
                       log_every=LOG_EVERY)


def _tree(rng):
    return {"a": rng.standard_normal((2, 3)).astype(np.float32),
            "b": rng.standard_normal(4).astype(np.float32)}


# --- GroupRMSprop ---------------------------------------------------------------------


def test_scale_by_group_rms_matches_hand_computation():
    alpha, eps = 0.9, 0.5  # a large eps tells g / (sqrt(s) + eps) from g / sqrt(s + eps)
    rng = np.random.default_rng(0)
    grads = [_tree(rng) for _ in range(3)]
    transform = gd.scale_by_group_rms(alpha=alpha, eps=eps)
    state = transform.init(jax.tree.map(jnp.zeros_like, grads[0]))
    s = 0.0
    for t, g in enumerate(grads, start=1):
        updates, state = transform.update(jax.tree.map(jnp.asarray, g), state)
        g64 = {k: v.astype(np.float64) for k, v in g.items()}
        s = alpha * s + (1 - alpha) * sum(np.sum(v ** 2) for v in g64.values())
        s_hat = s / (1 - alpha ** t)
        assert int(state.count) == t
        np.testing.assert_allclose(float(state.nu), s, rtol=1e-6)
        for k in g64:
            np.testing.assert_allclose(np.asarray(updates[k]), g64[k] / (np.sqrt(s_hat) + eps),
                                       rtol=1e-6)
    assert state.count.dtype == jnp.int32 and state.nu.dtype == jnp.float32
    assert state.nu.shape == ()


def _numpy_group_rmsprop(params, curvature, lr, alpha, eps, momentum, steps):
    """Reference trajectory on the loss 0.5 * sum(curvature * p^2), whose gradient is
    curvature * p."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    s, trajectory = 0.0, []
    for t in range(1, steps + 1):
        g = {k: curvature[k] * p[k] for k in p}
        s = alpha * s + (1 - alpha) * sum(np.sum(v ** 2) for v in g.values())
        s_hat = s / (1 - alpha ** t)
        for k in p:
            buf[k] = momentum * buf[k] + g[k] / (np.sqrt(s_hat) + eps)
            p[k] = p[k] - lr * buf[k]
        trajectory.append({k: v.copy() for k, v in p.items()})
    return trajectory


def _optax_trajectory(optimizer, params, curvature, steps):
    p = jax.tree.map(jnp.asarray, params)
    state = optimizer.init(p)
    trajectory = []
    for _ in range(steps):
        grads = jax.tree.map(lambda c, v: c * v, curvature, p)
        updates, state = optimizer.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        trajectory.append({k: np.asarray(v) for k, v in p.items()})
    return trajectory


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_group_rmsprop_trajectory_matches_numpy(momentum):
    rng = np.random.default_rng(1)
    params, curvature = _tree(rng), jax.tree.map(np.abs, _tree(rng))
    lr, alpha, eps = 0.1, 0.99, 1e-3
    got = _optax_trajectory(gd.group_rmsprop(lr, alpha, eps, momentum), params, curvature, 3)
    want = _numpy_group_rmsprop(params, curvature, lr, alpha, eps, momentum, 3)
    for g, w in zip(got, want):
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=1e-5, atol=1e-6)


def test_group_rmsprop_momentum_is_applied():
    rng = np.random.default_rng(2)
    params, curvature = _tree(rng), jax.tree.map(np.abs, _tree(rng))
    plain = _optax_trajectory(gd.group_rmsprop(0.1), params, curvature, 3)
    heavy = _optax_trajectory(gd.group_rmsprop(0.1, momentum=0.9), params, curvature, 3)
    np.testing.assert_allclose(plain[0]["a"], heavy[0]["a"], rtol=1e-6)  # empty buffer at step 1
    assert np.max(np.abs(plain[-1]["a"] - heavy[-1]["a"])) > 1e-3


# --- optimizer factory ----------------------------------------------------------------


@pytest.mark.parametrize("name", gd.OPTIMIZERS)
def test_make_optimizer_names(name):
    optimizer = gd.make_optimizer(name, 1e-2)
    assert isinstance(optimizer, optax.GradientTransformation)
    assert gd.make_optimizer(name, 1e-2) is optimizer  # shares the compiled train program


def test_make_optimizer_errors():
    with pytest.raises(ValueError, match="grouprmsprop, sgd, adam.*'lbfgs'"):
        gd.make_optimizer("lbfgs", 1e-2)
    with pytest.raises(ValueError, match="adam takes no momentum"):
        gd.make_optimizer("adam", 1e-2, momentum=0.9)
    with pytest.raises(ValueError, match="momentum must be >= 0"):
        gd.make_optimizer("sgd", 1e-2, momentum=-0.1)


# --- initialization -------------------------------------------------------------------


def test_init_layers_shapes_bounds_and_variance():
    model = models.factorization(300, 50, depth=3, width=200)
    init_scale = 0.3
    layers = gd.init_layers(model, jax.random.key(0), init_scale)
    assert isinstance(layers, tuple)
    assert tuple(w.shape for w in layers) == ((300, 200), (200, 200), (200, 50))
    for w in layers:
        w = np.asarray(w, dtype=np.float64)
        bound = init_scale / np.sqrt(w.shape[0])  # fan_in = rows (row-vector convention)
        assert np.max(np.abs(w)) <= bound * (1 + 1e-6)
        assert np.max(np.abs(w)) > 0.99 * bound  # fills the interval, not a narrower one
        # For U(-b, b): E x^2 = b^2/3 and Var x^2 = b^4 (1/5 - 1/9); 5 standard errors.
        n = w.size
        second_moment = np.mean(w ** 2)
        assert abs(second_moment - bound ** 2 / 3) < 5 * bound ** 2 * np.sqrt(4 / 45 / n)
        assert abs(np.mean(w)) < 5 * bound * np.sqrt(1 / 3 / n)
    assert not np.allclose(layers[0][:200], layers[1])  # layers use different keys


# --- training -------------------------------------------------------------------------


def test_train_shapes(result):
    n_logs = STEPS // LOG_EVERY + 1
    np.testing.assert_array_equal(result.steps, np.arange(0, STEPS + 1, LOG_EVERY))
    assert result.train_loss.shape == result.gen_loss.shape == (RUNS, n_logs)
    assert result.final_train_loss.shape == result.final_gen_loss.shape == (RUNS,)
    assert result.final_matrix.shape == (RUNS, 5, 5)
    assert all(isinstance(x, np.ndarray) for x in result)
    np.testing.assert_array_equal(result.final_train_loss, result.train_loss[:, -1])
    np.testing.assert_array_equal(result.final_gen_loss, result.gen_loss[:, -1])


def test_train_fits_the_train_set(sensing_problem, result):
    assert np.all(result.final_train_loss < 1e-4)
    assert np.all(result.final_train_loss < 1e-3 * result.train_loss[:, 0])
    train, gen = problems.losses(sensing_problem, result.final_matrix)
    np.testing.assert_allclose(result.final_train_loss, train, rtol=1e-2, atol=1e-7)
    np.testing.assert_allclose(result.final_gen_loss, gen, rtol=1e-2, atol=1e-7)


def test_step_zero_is_the_loss_at_init(sensing_problem, linear_model, result):
    base = jax.random.key(SEED)
    for run in range(RUNS):
        layers = gd.init_layers(linear_model, jax.random.fold_in(base, run), INIT_SCALE)
        matrix = np.asarray(models.end_to_end(linear_model, layers))
        train, gen = problems.losses(sensing_problem, matrix)
        np.testing.assert_allclose(result.train_loss[run, 0], train, rtol=1e-5)
        np.testing.assert_allclose(result.gen_loss[run, 0], gen, rtol=1e-5)


def test_runs_differ(result):
    assert len(np.unique(result.train_loss[:, 0])) == RUNS
    for i in range(RUNS):
        for j in range(i):
            assert np.max(np.abs(result.final_matrix[i] - result.final_matrix[j])) > 1e-4


def test_vmapped_run_equals_single_run(sensing_problem, linear_model):
    # 500 steps: GroupRMSprop's normalized steps make the trajectory chaotic once the loss
    # reaches its floor (~1e-6 here), where float-level vmap differences get amplified.
    optimizer = gd.make_optimizer("grouprmsprop", 1e-2)
    kwargs = dict(seed=SEED, steps=500, init_scale=INIT_SCALE, log_every=100)
    batched = gd.gd_train(sensing_problem, linear_model, optimizer, runs=RUNS, **kwargs)
    single = gd.gd_train(sensing_problem, linear_model, optimizer, runs=1, **kwargs)
    np.testing.assert_allclose(single.train_loss[0], batched.train_loss[0], rtol=1e-4)
    np.testing.assert_allclose(single.gen_loss[0], batched.gen_loss[0], rtol=1e-4)
    np.testing.assert_allclose(single.final_matrix[0], batched.final_matrix[0], atol=1e-5)


def test_train_does_not_recompile(sensing_problem):
    traces = []

    def counting_identity(x):  # runs only while JAX traces the program
        traces.append(1)
        return x

    model = models.factorization(5, 5, depth=2, width=5, activation=counting_identity)
    other = problems.matrix_sensing(seed=1, n_rows=5, n_cols=5, rank=1, measurements=15)
    first = gd.gd_train(sensing_problem, model, gd.make_optimizer("sgd", 0.1), seed=0, runs=2,
                        steps=20, log_every=10)
    count = len(traces)
    assert count > 0
    second = gd.gd_train(other, model, gd.make_optimizer("sgd", 0.1), seed=1, runs=2, steps=20,
                         init_scale=0.05, log_every=10)
    assert len(traces) == count
    assert not np.allclose(first.train_loss, second.train_loss)


@pytest.mark.parametrize("name, lr", [("sgd", 0.5), ("adam", 1e-2)])
def test_sgd_and_adam_reduce_the_train_loss(sensing_problem, linear_model, name, lr):
    result = gd.gd_train(sensing_problem, linear_model, gd.make_optimizer(name, lr), runs=2,
                         steps=1000,
                         init_scale=INIT_SCALE, log_every=500)
    assert np.all(result.final_train_loss < 1e-2 * result.train_loss[:, 0])


def test_divergence_is_reported_not_raised(sensing_problem, linear_model):
    result = gd.gd_train(sensing_problem, linear_model, gd.make_optimizer("sgd", 1e4), runs=2,
                         steps=100,
                         init_scale=1.0, log_every=10)
    assert np.all(np.isfinite(result.train_loss[:, 0]))
    assert not np.all(np.isfinite(result.final_train_loss))


@pytest.mark.parametrize("kwargs, message", [
    (dict(runs=0), "runs must be a positive integer"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(log_every=0), "log_every must be a positive integer"),
    (dict(runs=1.5), "runs must be a positive integer"),
    (dict(steps=150, log_every=100), "steps must be a multiple of log_every"),
    (dict(init_scale=0.0), "init_scale must be a finite number > 0"),
    (dict(init_scale=-1.0), "init_scale must be a finite number > 0"),
])
def test_train_validates_arguments(sensing_problem, linear_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gd.gd_train(sensing_problem, linear_model, gd.make_optimizer("sgd", 0.1), **kwargs)


def test_train_rejects_mismatched_model(sensing_problem):
    with pytest.raises(ValueError, match="model is 4x5 but the problem is 5x5"):
        gd.gd_train(sensing_problem, models.factorization(4, 5, 2, 5),
                    gd.make_optimizer("sgd", 0.1))


def test_train_many_equals_train_per_problem(linear_model):
    """Problems of one shape train together; each result matches training it alone
    (vmapped, so equal within float tolerance, not bitwise)."""
    problem_list = [problems.matrix_sensing(seed=s) for s in range(3)]
    optimizer = gd.make_optimizer("grouprmsprop", 1e-2)
    kwargs = dict(runs=2, steps=300, init_scale=INIT_SCALE, log_every=100)
    seeds = [SEED, SEED + 1, 2**32 - 1]   # one seed per problem, as a sweep gives them
    together = gd.gd_train_many(problem_list, linear_model, optimizer, seed=seeds, **kwargs)
    assert len(together) == 3
    for problem, seed, result in zip(problem_list, seeds, together):
        alone = gd.gd_train(problem, linear_model, optimizer, seed=seed, **kwargs)
        assert result.train_loss.shape == alone.train_loss.shape == (2, 4)
        # 300 steps, before the chaotic regime near the loss floor: agreement to ~1e-5
        np.testing.assert_allclose(result.train_loss, alone.train_loss, rtol=1e-4)
        np.testing.assert_allclose(result.final_matrix, alone.final_matrix, rtol=1e-4, atol=1e-6)
    assert not np.allclose(together[0].final_gen_loss, together[1].final_gen_loss)


def test_train_many_rejects_mixed_shapes(linear_model):
    optimizer = gd.make_optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="must share their shape"):
        gd.gd_train_many([problems.matrix_sensing(measurements=15),
                          problems.matrix_sensing(measurements=14)], linear_model, optimizer)
    with pytest.raises(ValueError, match="at least one problem"):
        gd.gd_train_many([], linear_model, optimizer)
    with pytest.raises(ValueError, match="one such per problem"):
        gd.gd_train_many([problems.matrix_sensing()] * 2, linear_model, optimizer, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative integer"):
        gd.gd_train_many([problems.matrix_sensing()], linear_model, optimizer, seed=-1)
