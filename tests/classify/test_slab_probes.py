"""The slab probes of Chiang et al.'s Fig. 3 (gcsampler.classify.slab_probes): their exact
geometry, draws regenerated exactly as G&C drew and accepted them, counts equal to a direct
NumPy evaluation, and scripts/slab_solutions.py end to end with its one-line errors."""

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli_calls import cli_run
from script_modules import load_script
from gcsampler.classify import data, networks, slab_probes, task
from gcsampler.core import keys
from gcsampler.runs import accepted

LOG2_BLOCK = 8
SEED = 7
SAMPLES = 12 * 2**LOG2_BLOCK + 37     # a partial last block
BATCH = 2**LOG2_BLOCK                  # one block a step, evaluated at once (chunk)
DATASET = data.published_slab(20, seed=100)
MODEL = networks.MLP(2, depth=1, width=16, hidden_biases=False)
SHIFT = 0.1 * math.sqrt(2)


def test_linear_probe_geometry():
    x, y = slab_probes.linear_probe()
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.shape == (60, 2) and y.shape == (60,)
    np.testing.assert_array_equal(y, [0] * 30 + [1] * 30)
    np.testing.assert_array_equal(x[:30, 0], np.float32(0.1))     # class 0 at x = 0.1
    np.testing.assert_array_equal(x[30:, 0], np.float32(-0.1))    # class 1 at x = -0.1
    for half in (x[:30, 1], x[30:, 1]):
        np.testing.assert_array_equal(half, np.linspace(1, -1, 30).astype(np.float32))


def test_nonlinear_probe_geometry():
    x, y = slab_probes.nonlinear_probe()
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.shape == (60, 2) and y.shape == (60,)
    np.testing.assert_array_equal(y, [0] * 30 + [1] * 30)
    x = x.astype(np.float64)
    np.testing.assert_array_equal(x[:30, 1], x[30:, 1])
    # The zigzag: three segments of 10 points, slopes +1, -1, +1 from the bottom, turning at
    # the slabs' centres and crossing x = 0 at the centres of the gaps between them.
    height, gap = data.SLAB_HEIGHT, data.SLAB_GAP
    centres = [-1 + height / 2 + k * (height + gap) for k in range(4)]       # bottom to top
    crossings = [-1 + height + gap / 2 + k * (height + gap) for k in range(3)]
    np.testing.assert_allclose(centres, [-0.825, -0.275, 0.275, 0.825])
    for segment, (sign, cross) in enumerate(zip((1, -1, 1), crossings)):
        rows = slice(10 * segment, 10 * segment + 10)
        ys = x[rows, 1]
        np.testing.assert_allclose(ys, np.linspace(centres[segment], centres[segment + 1], 10),
                                   atol=1e-7)
        line = sign * (ys - cross)
        # class 0 lies 0.1 * sqrt(2) right of the line, class 1 as far left: 0.1 from it
        # along the normal of a line of slope +-1
        np.testing.assert_allclose(x[:30][rows, 0] - line, SHIFT, atol=1e-7)
        np.testing.assert_allclose(x[30:][rows, 0] - line, -SHIFT, atol=1e-7)
        distance = np.abs(x[:30][rows, 0] - line) / math.sqrt(2)
        np.testing.assert_allclose(distance, 0.1, atol=1e-7)
    np.testing.assert_allclose(slab_probes.zigzag(), (x[:30] + x[30:]) / 2, atol=1e-7)


def test_draw_params_is_the_block_key_draw():
    """Every index, 2**32 and beyond included, as keys.block_keys keys it in G&C's step: one
    index given as a host integer, or vmapped over uint32 indices or over (hi, lo) words."""
    base = keys.seed_key(SEED)
    block = 2**12
    indices = [0, block + 3, 2**32 + 5, (2**31 + 12345) * block + block // 3]

    @jax.jit
    def regenerate(words, small):
        blocks = np.array([index // block for index in indices], np.uint32)
        offsets = np.array([index % block for index in indices])
        block_keys = jax.vmap(lambda b: keys.block_keys(base, b, 12))(blocks)[
            np.arange(len(indices)), offsets]
        expected = jax.vmap(lambda key: networks.sample_params(MODEL, key, "uniform"))(
            block_keys)
        by_words = jax.vmap(lambda hi, lo: slab_probes.draw_params(
            MODEL, "uniform", SEED, (hi, lo), 12))(*words)
        by_index = jax.vmap(lambda i: slab_probes.draw_params(
            MODEL, "uniform", SEED, i, 12))(small)
        alone = slab_probes.draw_params(MODEL, "uniform", SEED, indices[-1], 12)
        return expected, by_words, by_index, alone

    expected, by_words, by_index, alone = regenerate(
        slab_probes.index_words(np.array(indices, np.uint64)),
        jnp.asarray(indices[:2], jnp.uint32))
    for param, words, index, one in zip(expected, by_words, by_index, alone):
        np.testing.assert_array_equal(words, param)
        np.testing.assert_array_equal(index, param[:2])
        np.testing.assert_array_equal(one, param[-1])


def test_draw_params_refuses_bad_input():
    with pytest.raises(ValueError, match="log2_block"):
        slab_probes.draw_params(MODEL, "uniform", SEED, 0, 5)
    with pytest.raises(ValueError, match="draw indices must be in"):
        slab_probes.draw_params(MODEL, "uniform", SEED, 2**40, 8)
    with pytest.raises(ValueError, match="integers"):
        slab_probes.draw_params(MODEL, "uniform", SEED, 1.5, 8)
    with pytest.raises(ValueError, match="seed"):
        slab_probes.draw_params(MODEL, "uniform", -1, 0, 8)


@pytest.fixture(scope="module")
def gnc():
    """A small G&C run on slab data: its result and its accepted (index, train_loss)."""
    rows = []
    result = task.guess_and_check(DATASET, MODEL, "uniform", bins=[(-999, 999)],
                                  samples=SAMPLES, seed=SEED, devices=1, log2_block=LOG2_BLOCK,
                                  batch=BATCH, on_rows=lambda i, loss, *_: rows.append((i, loss)))
    index = np.concatenate([r[0] for r in rows])
    loss = np.concatenate([r[1] for r in rows])
    assert result.totals.rows == len(index) >= 20
    return result, index, loss


def test_draw_params_regenerates_the_accepted_draws(gnc):
    result, index, loss = gnc
    chunk = result.schedule.chunk
    assert chunk == BATCH

    @jax.jit
    @jax.vmap
    def fit(i):
        params = slab_probes.draw_params(MODEL, "uniform", SEED, i, LOG2_BLOCK)
        return networks.fit(MODEL, params, DATASET.train_x, DATASET.train_y)

    # every draw of the run, as many at once as G&C evaluated: the accepted ones are exactly
    # those that fit, and their losses are G&C's bits
    every = np.arange(-(-SAMPLES // chunk) * chunk, dtype=np.uint32)
    fits = [fit(jnp.asarray(part)) for part in np.split(every, len(every) // chunk)]
    accuracy = np.concatenate([f.accuracy for f in fits])[:SAMPLES]
    entropy = np.concatenate([f.cross_entropy for f in fits])[:SAMPLES]
    np.testing.assert_array_equal(np.flatnonzero(accuracy == 1.0), index)
    np.testing.assert_array_equal(entropy[index], loss)
    # training_fits with the run's chunk: the same
    acc, ce = slab_probes.training_fits(MODEL, "uniform", SEED, index, LOG2_BLOCK,
                                        DATASET.train_x, DATASET.train_y, chunk=chunk)
    assert np.all(acc == 1.0)
    np.testing.assert_array_equal(ce, loss)


def numpy_classifies(params, x, y):
    """Per network of a population of MLPs without hidden biases (``params`` with a leading
    axis): whether it classifies every point, in float64 NumPy."""
    w1, w2, b = (np.asarray(p, np.float64) for p in params)
    hidden = np.maximum(np.einsum("nd,kdh->knh", np.asarray(x, np.float64), w1), 0)
    logits = np.einsum("knh,khc->knc", hidden, w2) + b[:, None, :]
    return np.all(np.argmax(logits, axis=-1) == y, axis=-1)


def mostly_x(key, shape, dtype):
    """U(-1, 1), with the first layer's weights on y and the logits' bias shrunk: networks
    close to functions of x through 0, many of which classify the linear probe."""
    values = jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    if shape == (2, MODEL.width):
        return values.at[1].multiply(0.05)
    return values * 0.01 if shape == (2,) else values


@pytest.mark.parametrize("prior", ["uniform", mostly_x], ids=["gnc-accepted", "mostly-x"])
def test_solution_counts_match_numpy(request, prior):
    index = request.getfixturevalue("gnc")[1] if prior == "uniform" else np.arange(2048)
    params = jax.jit(jax.vmap(lambda i: slab_probes.draw_params(MODEL, prior, SEED, i,
                                                                LOG2_BLOCK)))(
        jnp.asarray(index, jnp.uint32))
    linear = numpy_classifies(params, *slab_probes.linear_probe())
    nonlinear = numpy_classifies(params, *slab_probes.nonlinear_probe())
    if prior is mostly_x:
        assert 100 < linear.sum() < len(index)   # the comparison means something
    got = slab_probes.probe_fits(MODEL, prior, SEED, index, LOG2_BLOCK)
    np.testing.assert_array_equal(got[0], linear)
    np.testing.assert_array_equal(got[1], nonlinear)
    counts = slab_probes.solution_counts(MODEL, prior, SEED, index, LOG2_BLOCK)
    assert counts == {"accepted": len(index), "linear": int(linear.sum()),
                      "nonlinear": int(nonlinear.sum()),
                      "both": int((linear & nonlinear).sum()),
                      "neither": int((~linear & ~nonlinear).sum())}


def test_solution_counts_of_no_draw():
    empty = slab_probes.solution_counts(MODEL, "uniform", SEED, [], LOG2_BLOCK)
    assert empty == dict.fromkeys(slab_probes.COUNTS, 0)


def test_a_network_that_separates_by_x_classifies_the_linear_probe_only():
    """relu(x) votes class 0, relu(-x) class 1: the linear rule, not the zigzag."""
    model = networks.MLP(2, depth=1, width=2, hidden_biases=False)
    params = (jnp.array([[1.0, -1.0], [0.0, 0.0]]), jnp.eye(2), jnp.zeros(2))
    classifies = jax.jit(slab_probes.classifies, static_argnums=0)
    assert bool(classifies(model, params, *slab_probes.linear_probe()))
    assert not bool(classifies(model, params, *slab_probes.nonlinear_probe()))
    population = tuple(p[None] for p in params)
    assert numpy_classifies(population, *slab_probes.linear_probe()).tolist() == [True]
    assert numpy_classifies(population, *slab_probes.nonlinear_probe()).tolist() == [False]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("slab") / "study"
    argv = ["classify", "--task", "published_slab", "--n_train", "140", "--seeds", "1",
            "--first_seed", "100", "--model", "mlp", "--width", "40", "--nohidden_biases",
            "--bins=-999:999", "--samples", "6000", "--baseline", "none", "--log2_block", "8",
            "--devices", "1", "--out", out, "--compilation_cache", "none"]
    code, _ = cli_run(argv, _Capture())
    assert code == 0
    return out


class _Capture:
    """capsys for a module fixture: cli_run reads its output once, which is dropped."""

    def readouterr(self):
        return None


def one_line_error(script, argv, capsys):
    assert script.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    return captured.err


def test_script_end_to_end(study, capsys):
    script = load_script("slab_solutions")
    assert script.main([str(study)]) == 0
    printed = capsys.readouterr().out
    assert "linear fraction [95% CI]" in printed and "bit for bit" in printed
    with open(study / "slab_solutions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["100", "all"] and list(rows[0]) == list(script.COLUMNS)
    cell = study / "cells" / "n_train=140" / "seed=100"
    index = accepted.read_accepted(cell, fields=task.ROW_FIELDS)["index"]
    model = networks.MLP(2, depth=1, width=40, hidden_biases=False)
    counts = slab_probes.solution_counts(model, "uniform", 100, index, 8)
    assert counts["accepted"] > 0
    for row in rows:
        assert {name: int(row[name]) for name in slab_probes.COUNTS} == counts
        assert float(row["linear_fraction"]) == pytest.approx(counts["linear"] / len(index))
        assert float(row["linear_ci95_lo"]) <= float(row["linear_fraction"]) <= float(
            row["linear_ci95_hi"])
    assert (study / "slab_solutions.png").stat().st_size > 0
    assert (study / "slab_solutions.pdf").exists()
    # run again: refuses to replace its outputs, in one line
    assert "slab_solutions.csv exists" in one_line_error(script, [study], capsys)


def test_script_one_line_errors(tmp_path, capsys):
    script = load_script("slab_solutions")
    assert "no such directory" in one_line_error(script, [tmp_path / "missing"], capsys)
    assert "not a gcsampler classify study" in one_line_error(script, [tmp_path], capsys)
    assert "required" in one_line_error(script, [], capsys)
