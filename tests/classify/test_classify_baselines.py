"""Gradient and random-search baselines: fitting, the stopping rule, batching, init and inputs."""

import jax
import numpy as np
import optax
import pytest
from scipy import stats

from gcsampler.classify import baselines
from gcsampler.classify.data import kink
from gcsampler.classify.networks import MLP, lenet, losses

ALPHA = 0.01        # false-failure rate of the statistical test
TARGET = 0.3        # stop once the training cross-entropy is below this
STEPS = 400
MODEL = MLP(2, width=10)
DATA = kink(8, seed=0)
SETTINGS = {"sgd": 0.5, "adam": 0.05}   # optimizer -> learning rate


@pytest.fixture(scope="module")
def runs():
    """16 runs of each optimizer on the 8-point kink training set."""
    return {name: baselines.train(MODEL, DATA, optimizer=name, lr=lr, steps=STEPS, seeds=16,
                                  target_loss=TARGET)
            for name, lr in SETTINGS.items()}


@pytest.mark.parametrize("optimizer", SETTINGS)
def test_gradient_training_fits_and_generalizes(runs, optimizer):
    result = runs[optimizer]
    assert result.method == optimizer
    assert result.fitted.mean() >= 0.6
    assert result.test_accuracy[result.fitted].mean() > 0.6   # chance is 0.5


@pytest.mark.parametrize("optimizer", SETTINGS)
def test_stopped_runs_meet_the_criterion(runs, optimizer):
    result = runs[optimizer]
    fitted = result.fitted
    assert np.all(result.train_accuracy[fitted] == 1)
    assert np.all(result.train_loss[fitted] < TARGET)
    assert np.all(result.steps[fitted] <= STEPS)
    assert np.all(result.steps[~fitted] == STEPS)


def _reference_stop(optimizer, lr, seed):
    """The first step meeting the criterion, by a plain Python loop over optax updates."""
    opt = optax.sgd(lr) if optimizer == "sgd" else optax.adam(lr)
    params = baselines.initial_params(MODEL, seed)
    state = opt.init(params)

    def objective(params):
        fit = losses(MODEL.apply(params, DATA.train_x), DATA.train_y)
        return fit.cross_entropy, fit

    for step in range(STEPS + 1):
        (_, fit), grads = jax.value_and_grad(objective, has_aux=True)(params)
        if fit.accuracy == 1 and fit.cross_entropy < TARGET:
            return step, float(fit.cross_entropy)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return STEPS, None


@pytest.mark.parametrize("optimizer", SETTINGS)
def test_stop_step_matches_a_python_loop(runs, optimizer):
    result = runs[optimizer]
    seed = int(np.flatnonzero(result.fitted)[0])
    step, loss = _reference_stop(optimizer, SETTINGS[optimizer], seed)
    assert result.steps[seed] == step
    np.testing.assert_allclose(result.train_loss[seed], loss, rtol=1e-4)


@pytest.mark.parametrize("optimizer", SETTINGS)
def test_batched_runs_equal_single_runs(runs, optimizer):
    batched = runs[optimizer]
    for seed in (3, 11):
        single = baselines.train(MODEL, DATA, optimizer=optimizer, lr=SETTINGS[optimizer],
                                 steps=STEPS, seeds=[seed], target_loss=TARGET)
        assert single.seeds.tolist() == [seed]
        assert single.fitted[0] == batched.fitted[seed]
        assert single.steps[0] == batched.steps[seed]
        for field in ("train_accuracy", "train_loss", "test_accuracy"):
            np.testing.assert_allclose(getattr(single, field)[0], getattr(batched, field)[seed],
                                       rtol=1e-4, atol=1e-6)


def test_pytorch_init_is_uniform_within_fan_in_bound():
    scaled = []
    for model in (MLP(16, depth=2, width=64), lenet()):
        for seed in range(2):
            params = baselines.initial_params(model, seed, "pytorch")
            for p, fan_in in zip(params, model.fan_ins):
                unit = np.asarray(p, np.float64).ravel() * np.sqrt(fan_in)
                assert np.all(np.abs(unit) <= 1 + 1e-6)
                scaled.append(unit)
    unit = np.concatenate(scaled)
    assert unit.size > 10_000
    assert stats.kstest(unit, stats.uniform(-1, 2).cdf).pvalue > ALPHA


def test_random_search_never_increases_the_loss():
    seeds = [0, 1, 2, 3]
    path = np.stack([baselines.random_search(MODEL, DATA, steps=steps, seeds=seeds,
                                             sigma=0.2, target_loss=1e-6).train_loss
                     for steps in range(0, 60, 3)])
    assert np.all(np.diff(path, axis=0) <= 0)
    assert np.all(path[-1] < path[0])


def test_random_search_fits_two_points():
    two_points = kink(2, seed=1)
    result = baselines.random_search(MODEL, two_points, steps=300, seeds=8)
    assert result.method == "random_search"
    assert np.all(result.fitted)
    assert np.all(result.train_accuracy == 1)
    single = baselines.random_search(MODEL, two_points, steps=300, seeds=[5])
    assert single.steps[0] == result.steps[5]
    np.testing.assert_allclose(single.train_loss[0], result.train_loss[5], rtol=1e-4)


def test_hyperparameters_do_not_recompile(runs):
    baselines.train(MODEL, DATA, optimizer="sgd", lr=0.5, steps=STEPS, seeds=16)
    size = baselines._program._cache_size()
    baselines.train(MODEL, DATA, optimizer="sgd", lr=0.1, momentum=0.9, steps=50, seeds=16,
                    target_loss=0.5)
    assert baselines._program._cache_size() == size


@pytest.mark.parametrize("kwargs, name", [
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"lr": 0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"steps": -1}, "steps"),
    ({"steps": 1.5}, "steps"),
    ({"seeds": 0}, "seeds"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, -2]}, "seeds"),
    ({"seeds": [True]}, "seeds"),
    ({"seeds": [1.0]}, "seeds"),
    ({"seeds": "01"}, "seeds"),
    ({"seeds": [[1], [2, 3]]}, "seeds"),
    ({"init": "gaussian"}, "init"),
    ({"target_loss": -0.1}, "target_loss"),
    ({"momentum": 1.0}, "momentum"),
    ({"optimizer": "adam", "momentum": 0.9}, "momentum"),
    ({"dataset": kink(2, seed=0)._replace(train_x=np.zeros((2, 3), np.float32))}, "dataset"),
])
def test_bad_arguments_are_one_line_errors(kwargs, name):
    args = {"dataset": DATA, "lr": 0.1, "steps": 10, "seeds": 2} | kwargs
    with pytest.raises(ValueError, match=f"^{name} ") as error:
        baselines.train(MODEL, **args)
    assert "\n" not in str(error.value)


def test_bad_sigma_is_a_one_line_error():
    with pytest.raises(ValueError, match="^sigma must be a finite number > 0, got -1$"):
        baselines.random_search(MODEL, DATA, steps=10, seeds=2, sigma=-1)
