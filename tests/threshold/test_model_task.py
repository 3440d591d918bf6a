"""Any JAX model as a G&C task: its draws against a direct evaluation, its run directory,
re-thresholding, and a stopped run continued to the bits of a run without a stop."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gcsampler as gcs
from gcsampler.core import keys, loop
from gcsampler.runs import accepted, files, rejection_run
from gcsampler.threshold.statistics import float32_threshold

from same_results import NOT_RESULTS

X = np.linspace(-1, 1, 6, dtype=np.float32)
X_TEST = np.linspace(-1, 1, 20, dtype=np.float32)
DATA = (X, 0.5 * X + 0.1, X_TEST, 0.5 * X_TEST + 0.1)
EPS, SAMPLES, SEED, LOG2_BLOCK = 0.05, 3000, 7, 8   # about 3% accepted; a partial last block


def prior(key):
    return {"w": jax.random.normal(key, ()), "b": jax.random.normal(jax.random.fold_in(key, 1), ())}


def loss(params, x, y, x_test, y_test):
    return (jnp.mean((params["w"] * x + params["b"] - y) ** 2),
            jnp.mean((params["w"] * x_test + params["b"] - y_test) ** 2))


TASK = gcs.model_task(prior, loss, eps=EPS, data=DATA, name="line")
SETTINGS = dict(log2_block=LOG2_BLOCK, stream=io.StringIO(), checkpoint_every=0)


def direct_losses(samples, seed):
    """Train and test loss of draws 0 .. samples-1, one draw at a time in NumPy (float64)."""
    out = []
    for i in range(samples):
        params = jax.device_get(prior(keys.draw_key(seed, i)))
        out.append([np.mean((params["w"] * x + params["b"] - y) ** 2)
                    for x, y in ((DATA[0], DATA[1]), (DATA[2], DATA[3]))])
    return np.asarray(out).T


@pytest.fixture(scope="module")
def direct():
    return direct_losses(SAMPLES, SEED)


def test_the_accepted_draws_are_those_below_eps(direct):
    rows = []
    result = loop.guess_and_check(TASK, samples=SAMPLES, seed=SEED, log2_block=LOG2_BLOCK,
                                  devices=1, on_rows=lambda *row: rows.append(row))
    index, train, gen = (np.concatenate(column) for column in zip(*rows))
    train_direct, gen_direct = direct
    # float32 against float64: a draw within float32 rounding of eps may go either way
    margin = np.abs(train_direct - EPS) > 1e-5 * EPS
    accept = train_direct < EPS
    assert np.array_equal(np.isin(np.arange(SAMPLES), index)[margin], accept[margin])
    assert 30 < index.size < SAMPLES / 5 and np.all(np.diff(index.astype(np.int64)) > 0)
    np.testing.assert_allclose(train, train_direct[index.astype(np.int64)], rtol=1e-5)
    np.testing.assert_allclose(gen, gen_direct[index.astype(np.int64)], rtol=1e-5)
    totals = result.totals
    assert totals.drawn == SAMPLES and totals.rows == index.size == totals.accepted
    summary = TASK.summarize(totals, result.seconds)
    assert summary["gnc_gen_loss_mean"] == pytest.approx(np.mean(gen), rel=1e-12)
    assert summary["prior_gen_loss_mean"] == pytest.approx(np.mean(gen_direct), rel=1e-5)
    assert summary["eps"] == EPS and summary["sampler_used"] == "model/line"


def test_a_run_directory_reports_and_rethresholds(tmp_path, direct):
    run_dir = tmp_path / "run"
    summary = gcs.run_task(TASK, samples=SAMPLES, seed=SEED, out=run_dir, **SETTINGS)
    assert summary["method"] == "rejection" and summary["draws"] == SAMPLES
    assert files.read_json(run_dir / "config.json")["task"]["kind"] == "model"
    text = gcs.report(run_dir, eps=0.01)
    assert "acceptance" in text and "re-threshold at eps=0.01" in text
    assert "GD gen loss" not in text   # no baseline for a model of one's own
    stored = accepted.read_accepted(run_dir, fields=("index", "train_loss", "gen_loss"))
    below = gcs.rethreshold(run_dir, 0.01)
    assert below["accepted"] == int(np.sum(stored["train_loss"] < float32_threshold(0.01)))
    assert 0 < below["accepted"] < summary["accepted"]
    above = gcs.rethreshold(run_dir, 0.5)      # from the train-loss bins of all draws
    assert above["source"] == "train-loss bins" and above["effective_eps"] <= 0.5
    assert above["accepted"] == int(np.sum(direct[0] < above["effective_eps"]))


def _stopping_display(calls):
    """A progress display that stops the run (like Ctrl-C) at its ``calls``-th update."""
    seen = []

    def make(*args, **kwargs):
        def show(totals, seconds):
            seen.append(totals.drawn)
            if len(seen) == calls:
                raise KeyboardInterrupt
        return show

    return make


def test_a_stopped_run_continues_to_the_bits_of_one_run(tmp_path, monkeypatch):
    samples = 4 * 16 * 256 + 100   # 5 calls of 16 steps of one block at --batch 256
    whole = tmp_path / "whole"
    gcs.run_task(TASK, samples=2 * samples, seed=SEED, out=whole, batch=256, **SETTINGS)
    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(rejection_run, "display", _stopping_display(2))
        with pytest.raises(KeyboardInterrupt):
            gcs.run_task(TASK, samples=samples, seed=SEED, out=stopped, batch=256, **SETTINGS)
    assert not (stopped / "summary.json").exists() and (stopped / "checkpoint.npz").exists()
    first = gcs.resume_task(stopped, TASK, stream=io.StringIO(), checkpoint_every=0)
    assert first["draws"] == samples
    # and continued to more draws (another batch): the run of 2 * samples draws, bit for bit
    resumed = gcs.resume_task(stopped, TASK, samples=2 * samples, batch=512,
                              stream=io.StringIO(), checkpoint_every=0)
    want = files.read_json(whole / "summary.json")
    assert {k: v for k, v in resumed.items() if k not in NOT_RESULTS} == {
        k: v for k, v in want.items() if k not in NOT_RESULTS}
    got, want = (files.load_arrays(d / "statistics.npz") for d in (stopped, whole))
    assert all(got[name].tobytes() == want[name].tobytes() for name in want)
    got, want = (accepted.read_accepted(d, fields=("index", "train_loss", "gen_loss"))
                 for d in (stopped, whole))
    assert all(got[name].tobytes() == want[name].tobytes() for name in want)


def test_another_task_or_fewer_draws_cannot_continue_a_run(tmp_path):
    run_dir = tmp_path / "run"
    gcs.run_task(TASK, samples=SAMPLES, seed=SEED, out=run_dir, **SETTINGS)
    other_eps = gcs.model_task(prior, loss, eps=0.1, data=DATA, name="line")
    shifted = (DATA[0], DATA[1] + 1.0, DATA[2], DATA[3])
    other_data = gcs.model_task(prior, loss, eps=EPS, data=shifted, name="line")
    for task in (other_eps, other_data):
        with pytest.raises(ValueError, match="made with another task"):
            gcs.resume_task(run_dir, task, samples=2 * SAMPLES)
    with pytest.raises(ValueError, match="can only draw more"):
        gcs.resume_task(run_dir, TASK, samples=SAMPLES - 1)
    assert gcs.resume_task(run_dir, TASK)["draws"] == SAMPLES   # finished: nothing to draw


def test_bad_models_are_refused_with_one_line():
    with pytest.raises(TypeError, match="prior and loss must be callables"):
        gcs.model_task(3, loss, eps=EPS)
    with pytest.raises(ValueError, match="loss must return two scalars"):
        gcs.model_task(prior, lambda p, *d: (jnp.zeros(2), jnp.zeros(())), eps=EPS, data=DATA)
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        gcs.model_task(prior, loss, eps=0.0, data=DATA)
