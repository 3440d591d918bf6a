"""Classifier G&C: the engine's counts and rows equal a direct evaluation of every draw (the
cross-entropy of its normalized logits by default, or of its raw ones), do not depend on the
batch or the row capacity, and its statistics are those of its rows. A draw is accepted into
bin (lo, hi] when it fits every training point and lo < cross-entropy <= hi."""

import json
import math
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from gcsampler.classify import data, networks, task
from gcsampler.core import keys

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOG2_BLOCK = 8
SAMPLES = 6 * 2**LOG2_BLOCK + 37      # a partial last block
SEED = 5
# Of normalized logits: overlapping (a draw may be in two bins), and the published "any
# perfect fit" bin, whose lo is negative.
BINS = ((0.55, 0.635), (0.62, 0.65), (0.65, 0.7), (-999.0, 999.0))
RAW_BINS = ((0.0, 0.45), (0.3, 0.5), (0.5, 0.7))   # of raw logits (in the hundreds)
DATASET = data.kink(4, seed=1)
MODEL = networks.MLP(2, depth=1, width=10)


def run(**kwargs):
    rows = []
    args = dict(bins=BINS, samples=SAMPLES, seed=SEED, devices=1, log2_block=LOG2_BLOCK,
                batch=2**LOG2_BLOCK)
    args.update(kwargs)
    result = task.guess_and_check(DATASET, MODEL, "uniform",
                                  on_rows=lambda *r: rows.append(r), **args)
    fields = [np.concatenate(column) for column in zip(*rows)] if rows else [np.zeros(0)] * 4
    return result, dict(zip(task.ROW_FIELDS, fields))


@pytest.fixture(scope="module")
def direct():
    """Every draw evaluated straight from its key with ``networks.fit``: per logits kind,
    (train accuracy, train cross-entropy) per draw, and the test accuracy per draw."""
    base = keys.seed_key(SEED)

    def evaluate(key):
        params = networks.sample_params(MODEL, key, "uniform")
        train = {logits: networks.fit(MODEL, params, DATASET.train_x, DATASET.train_y, logits)
                 for logits in networks.LOGITS}
        test = networks.fit(MODEL, params, DATASET.test_x, DATASET.test_y)
        return train, test.accuracy

    blocks = -(-SAMPLES // 2**LOG2_BLOCK)
    keys_ = jax.vmap(lambda b: keys.block_keys(base, b, LOG2_BLOCK))(
        np.arange(blocks, dtype=np.uint32)).reshape(-1)[:SAMPLES]
    train, test_accuracy = jax.jit(jax.vmap(evaluate))(keys_)
    out = {logits: (np.asarray(fit.accuracy), np.asarray(fit.cross_entropy))
           for logits, fit in train.items()}
    np.testing.assert_array_equal(out["normalized"][0], out["raw"][0])
    out["test_accuracy"] = np.asarray(test_accuracy)
    return out


@pytest.fixture(scope="module")
def reference_run():
    return run()


@pytest.mark.parametrize("logits", networks.LOGITS)
def test_counts_and_rows_equal_direct_evaluation(logits, direct, reference_run):
    accuracy, loss = direct[logits]
    test_accuracy = direct["test_accuracy"]
    if logits == "normalized":   # the default
        bins, (result, rows) = BINS, reference_run
    else:
        bins, (result, rows) = RAW_BINS, run(bins=RAW_BINS, logits="raw")
    t = result.totals
    perfect = accuracy == 1.0
    member = np.stack([perfect & (loss > np.float32(lo)) & (loss <= np.float32(hi))
                       for lo, hi in bins], axis=1)
    assert (t.drawn, t.nonfinite, t.perfect) == (SAMPLES, 0, int(perfect.sum()))
    assert np.array_equal(t.accepted, member.sum(0)) and t.accepted.min() > 1
    if logits == "normalized":
        assert t.accepted[-1] == t.perfect   # (-999, 999]: every perfect fit
    assert np.array_equal(rows["index"], np.nonzero(member.any(1))[0])
    assert np.array_equal(rows["bins"], member[member.any(1)].astype(np.uint8))
    np.testing.assert_allclose(rows["train_loss"], loss[member.any(1)], rtol=1e-6)
    # A test point whose two logits tie to float rounding may flip: at most one point per row.
    n_test = len(DATASET.test_y)
    assert np.max(np.abs(rows["test_accuracy"] - test_accuracy[member.any(1)])) <= 1.5 / n_test


def test_totals_are_the_sums_of_the_rows(reference_run):
    result, rows = reference_run
    t, n_test = result.totals, len(DATASET.test_y)
    correct = np.rint(rows["test_accuracy"].astype(np.float64) * n_test).astype(np.int64)
    for j, cell in enumerate(task.summarize(t, n_test)["cells"]):
        mine = correct[rows["bins"][:, j] == 1]
        assert t.correct_sum[j] == mine.sum() and t.correct_sumsq[j] == (mine**2).sum()
        assert cell["accepted"] == mine.size
        np.testing.assert_allclose(cell["gnc_test_accuracy"], mine.mean() / n_test, rtol=1e-12)
        np.testing.assert_allclose(cell["gnc_test_accuracy_std"], mine.std(ddof=1) / n_test,
                                   rtol=1e-9)
        assert cell["gnc_test_accuracy_stderr"] == pytest.approx(
            cell["gnc_test_accuracy_std"] / math.sqrt(mine.size))
        assert cell["acceptance_rate"] == mine.size / SAMPLES


@pytest.mark.parametrize("kwargs", [dict(batch=3 * 2**LOG2_BLOCK), dict(batch=None),
                                    dict(batch=2**LOG2_BLOCK // 4)])
def test_same_bits_for_any_batch(kwargs, reference_run):
    """Totals are integers and rows are per-draw values: another batch (more blocks per
    step, or a block evaluated in chunks) changes nothing. The row capacity starts at one
    test chunk, so steps overflow into re-evaluations that must not change anything either."""
    result, rows = run(**kwargs)
    want_result, want_rows = reference_run
    for name in ("drawn", "nonfinite", "perfect", "accepted", "correct_sum", "correct_sumsq"):
        assert np.array_equal(getattr(result.totals, name), getattr(want_result.totals, name))
    for name in task.ROW_FIELDS:
        assert rows[name].tobytes() == want_rows[name].tobytes(), name


@pytest.mark.parametrize("bins", [[], [(0.5, 0.4)], [(0.3, 0.3)], [(0.1, math.inf)],
                                  [(-math.inf, 0.1)], [(math.nan, 0.2)], [(0.1, 0.2, 0.3)],
                                  [(0.1,)], [("a", "b")], [(0.1, None)], "bins",
                                  [(0.0, 0.1), (0.2, 0.2)]])
def test_bad_bins(bins):
    with pytest.raises(ValueError, match=r"^bins must be a non-empty list of \(lo, hi\] "
                                         r"cross-entropy pairs of finite numbers with lo < hi, "
                                         r"got ") as error:
        task.check_bins(bins)
    assert "\n" not in str(error.value)


def test_good_bins():
    bins = task.check_bins([(-999, 999), (-0.1, 0.2), (0, 0.5)])
    assert bins.dtype == np.float32 and bins.shape == (3, 2)
    np.testing.assert_array_equal(bins, np.float32([(-999, 999), (-0.1, 0.2), (0, 0.5)]))


def test_logits_setting():
    """The task records its loss kind (normalized by default); another is a one-line error."""
    for logits in networks.LOGITS:
        assert task.check_logits(logits) == logits
        described = task.classify_task(DATASET, MODEL, "uniform", bins=BINS, logits=logits)
        assert described.describe["logits"] == logits
    assert task.classify_task(DATASET, MODEL, "uniform", bins=BINS).describe["logits"] == (
        "normalized")
    for bad in ("softmax", "Raw", None, 0):
        message = f"^logits must be one of normalized, raw, got {re.escape(repr(bad))}$"
        for call in (lambda: task.classify_task(DATASET, MODEL, "uniform", bins=BINS,
                                                logits=bad),
                     lambda: task.guess_and_check(DATASET, MODEL, "uniform", bins=BINS,
                                                  samples=10, logits=bad)):
            with pytest.raises(ValueError, match=message) as error:
                call()
            assert "\n" not in str(error.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        task.guess_and_check(DATASET, MODEL, "uniform", bins=BINS, samples=0)
    with pytest.raises(ValueError, match="does not take the task's inputs"):
        task.guess_and_check(DATASET, networks.MLP(3), "uniform", bins=BINS, samples=10)


@pytest.mark.parametrize("sign,logits", [(1.0, "normalized"), (1.0, "raw"),
                                         (-1.0, "normalized")])
def test_acceptance_of_a_hand_made_population(sign, logits):
    """A prior that draws the same linear classifier every time, raw logits (3y, -3y) (sign
    1), normalized ones those over ||W||_F = sqrt(18): it separates this training set (class
    0 above y = 0, class 1 below), so every draw is a perfect fit with a known cross-entropy,
    and the bins that take all draws and those that take none are known, at their edges too
    ((lo, hi]: lo is out, hi is in). The two kinds' losses are far apart, so a bin ending at
    one does not hold the other. Flipped (sign -1), it misclassifies every point and nothing
    is accepted, not even in the "any perfect fit" bin."""
    weights = {(2, 2): sign * np.array([[0.0, 0.0], [3.0, -3.0]], np.float32),
               (2,): np.zeros(2, np.float32)}

    def fixed(key, shape, dtype):
        return jax.numpy.asarray(weights[shape], dtype)

    model = networks.MLP(2, depth=0)
    params = (weights[(2, 2)], weights[(2,)])
    fits = {kind: networks.fit(model, params, DATASET.train_x, DATASET.train_y, kind)
            for kind in networks.LOGITS}
    loss = float(fits[logits].cross_entropy)
    other = float(fits["raw" if logits == "normalized" else "normalized"].cross_entropy)
    assert abs(loss - other) > 0.2
    assert float(fits[logits].accuracy) == (1.0 if sign > 0 else 0.0)
    bins = [(loss - 0.2, loss), (loss, loss + 1), (loss + 1, 99.0), (-999.0, 999.0)]
    t = task.guess_and_check(DATASET, model, fixed, bins=bins, samples=1000, seed=0, devices=1,
                             log2_block=LOG2_BLOCK, logits=logits).totals
    if sign > 0:
        assert (t.perfect, t.accepted.tolist()) == (1000, [1000, 0, 0, 1000])
    else:
        assert (t.perfect, t.accepted.tolist()) == (0, [0, 0, 0, 0])


DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from gcsampler.classify import data, networks, task

    dataset, model = data.kink(4, seed=1), networks.MLP(2, depth=1, width=10)
    out = {}
    for devices in (1, 2, 4):
        rows = []
        result = task.guess_and_check(dataset, model, "uniform", bins=%r, samples=%d, seed=%d,
                                      devices=devices, log2_block=%d, batch=%d,
                                      on_rows=lambda *r: rows.append(r))
        t = result.totals
        out[devices] = {"totals": [int(t.drawn), int(t.perfect), t.accepted.tolist(),
                                   t.correct_sum.tolist(), t.correct_sumsq.tolist()],
                        "rows": [np.concatenate(c).tobytes().hex() for c in zip(*rows)],
                        "n_devices": len(result.schedule.devices)}
    json.dump(out, open(sys.argv[1], "w"))
""")


def test_same_bits_on_1_2_and_4_devices(tmp_path, reference_run):
    """Draws sharded over 1, 2 or 4 forced CPU devices (a subprocess): the same totals and
    rows, bit for bit, as in this process."""
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="4", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                        + " --xla_force_host_platform_device_count=4").strip()
    script = DEVICE_SCRIPT % (BINS, SAMPLES, SEED, LOG2_BLOCK, 2**LOG2_BLOCK)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.json")], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    result, rows = reference_run
    t = result.totals
    want = [t.drawn, t.perfect, t.accepted.tolist(), t.correct_sum.tolist(),
            t.correct_sumsq.tolist()]
    for devices in ("1", "2", "4"):
        assert out[devices]["n_devices"] == int(devices)
        assert out[devices]["totals"] == want
        assert out[devices]["rows"] == [rows[name].tobytes().hex() for name in task.ROW_FIELDS]


def test_many_training_points_give_the_same_bits_for_any_batch():
    """A draw's loss is a sum over its training points: with 140 of them, XLA's own
    reduction order changed with the draws evaluated at once (the last bits of some
    accepted losses differed between batch 64 and 4096); the fixed-order sum keeps them."""
    dataset = data.published_slab(140, 100)
    model = networks.MLP(2, depth=1, width=40, hidden_biases=False)
    found = {}
    for batch in (64, 4096):
        rows = []
        task.guess_and_check(dataset, model, "uniform", bins=[(-999, 999)], samples=16384,
                             seed=3, batch=batch, devices=1, log2_block=12,
                             on_rows=lambda index, loss, accuracy, bins: rows.append(
                                 (index, loss)))
        found[batch] = [np.concatenate(column) for column in zip(*rows)]
    assert len(found[64][0]) >= 20
    for small, large in zip(found[64], found[4096]):
        np.testing.assert_array_equal(small, large)
