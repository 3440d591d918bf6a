"""Guess & Check for classifiers: draw networks from a prior, keep those that fit the
training set perfectly with a training cross-entropy inside a bin.

A draw is accepted into bin ``(lo, hi]`` when it classifies every training point
correctly and its mean training cross-entropy ``c`` has ``lo < c <= hi``, the rule of
the published code of Chiang et al. (ICLR 2023); ``c`` is that of the normalized logits
by default, as published, or of the raw ones (:func:`gcsampler.classify.networks.fit`).
Every bin of a list is filled in one pass over the draws. Each accepted draw's test accuracy is computed on the device, from its
index alone, for the accepted draws only (a test set is hundreds of times the
training set), so the cost per draw is that of the training set.

The draws run on the one G&C loop (:mod:`gcsampler.core.loop`): draw ``i``'s
parameters are a pure function of (seed, i), blocks of ``2**log2_block`` draws are
sharded over devices, steps and processes, and the host keeps only integer totals
(draws, perfect fits, accepted per bin, correct test predictions and their squares
per bin), so results are the same bits for any batch size, device or process count,
and a stopped run continues from a snapshot with the same bits.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.core import keys, loop
from gcsampler.core.devices import DEFAULT_LOG2_BLOCK
from gcsampler.core.intervals import wilson_interval
from gcsampler.classify import networks

# Fields of the accepted rows a classifier run stores.
ROW_FIELDS = ("index", "train_loss", "test_accuracy", "bins")


def row_layout(n_bins):
    """dtype and shape of one accepted row of each field (see :data:`ROW_FIELDS`)."""
    return {"index": ("<u8", ()), "train_loss": ("<f4", ()), "test_accuracy": ("<f4", ()),
            "bins": ("|u1", (n_bins,))}


def check_bins(bins):
    """``bins`` as a float32 array ``(n_bins, 2)`` of ``(lo, hi]`` pairs of finite numbers,
    lo < hi (the published "any perfect fit" bin is (-999, 999])."""
    try:
        with np.errstate(over="ignore"):   # beyond float32: inf, refused below
            array = np.asarray(bins, np.float64).astype(np.float32)
    except (TypeError, ValueError):
        array = np.zeros((0, 0))
    if (array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1
            or not np.all(np.isfinite(array)) or np.any(array[:, 0] >= array[:, 1])):
        raise ValueError(f"bins must be a non-empty list of (lo, hi] cross-entropy pairs of "
                         f"finite numbers with lo < hi, got {bins!r}")
    return array


def check_logits(logits):
    """``logits`` if it is one of :data:`~gcsampler.classify.networks.LOGITS`."""
    if not isinstance(logits, str) or logits not in networks.LOGITS:
        raise ValueError(f"logits must be one of {', '.join(networks.LOGITS)}, got {logits!r}")
    return logits


class StepOutput(NamedTuple):
    """What one step of ``blocks`` blocks returns (leading axes added by the loop)."""

    drawn: jax.Array          # () int32, draws with index below the end
    nonfinite: jax.Array      # () int32, draws whose training cross-entropy is NaN/inf
    perfect: jax.Array        # () int32, finite draws with 100% training accuracy
    bin_count: jax.Array      # (n_bins,) int32, draws accepted into each bin
    accepted: jax.Array       # () int32, draws accepted into any bin (the true row count)
    rows: dict                # (capacity, ...) position, train_loss, correct (test points
    #                           classified correctly, int32), bins (n_bins bool)


def make_step(model, prior, log2_block, blocks, capacity, chunk, n_test, logits="normalized"):
    """Build ``step(base_key, first_block, full_blocks, tail, train_x, train_y, test_x,
    test_y, lo, hi)`` evaluating blocks ``first_block ..`` (draws at or past
    ``full_blocks * 2**log2_block + tail`` masked out).

    Each block is evaluated on its own, ``chunk`` draws at a time, and the
    ``capacity`` rows' test accuracies :func:`test_chunk` at a time (``capacity`` is
    a multiple of it), only in steps that accept a draw: shapes, so bits, do not
    depend on the blocks per step or the capacity, and memory stays bounded.
    """
    block_size = 2**log2_block
    rows_at_once = test_chunk(model, n_test)
    if capacity % rows_at_once:
        raise ValueError(f"capacity {capacity} is not a multiple of {rows_at_once}")

    def fit(key, x, y):
        return networks.fit(model, networks.sample_params(model, key, prior), x, y, logits)

    def step(base_key, first_block, full_blocks, tail, train_x, train_y, test_x, test_y, lo, hi):
        block_ids = first_block + jnp.arange(blocks, dtype=jnp.uint32)
        block_keys = jax.vmap(lambda b: keys.block_keys(base_key, b, log2_block))(block_ids)
        train = jax.lax.map(
            lambda block: jax.lax.map(lambda k: fit(k, train_x, train_y), block, batch_size=chunk),
            block_keys)
        offsets = jnp.arange(block_size, dtype=jnp.int32)
        valid = (block_ids[:, None] < full_blocks) | (
            (block_ids[:, None] == full_blocks) & (offsets[None, :] < tail))
        finite = jnp.isfinite(train.cross_entropy)
        perfect = (valid & finite & (train.accuracy == 1.0)).reshape(-1)
        loss = train.cross_entropy.reshape(-1)
        in_bin = perfect[:, None] & (loss[:, None] > lo) & (loss[:, None] <= hi)
        accept = jnp.any(in_bin, axis=1)
        (position,) = jnp.nonzero(accept, size=capacity, fill_value=0)

        row_loss = loss[position]
        # Both branches return a value of row_loss's type: under shard_map it varies over
        # devices, and a prior that ignores its key would otherwise give one that does not.
        no_rows = jnp.zeros_like(row_loss)

        def test_accuracy(row_keys):
            return no_rows + jax.lax.map(lambda k: fit(k, test_x, test_y).accuracy, row_keys,
                                         batch_size=rows_at_once)

        accuracy = jax.lax.cond(jnp.any(accept), test_accuracy, lambda row_keys: no_rows,
                                block_keys.reshape(-1)[position])
        return StepOutput(
            drawn=jnp.sum(valid, dtype=jnp.int32),
            nonfinite=jnp.sum(valid & ~finite, dtype=jnp.int32),
            perfect=jnp.sum(perfect, dtype=jnp.int32),
            bin_count=jnp.sum(in_bin, axis=0, dtype=jnp.int32),
            accepted=jnp.sum(accept, dtype=jnp.int32),
            rows={"position": position.astype(jnp.int32), "train_loss": row_loss,
                  "correct": jnp.round(accuracy * n_test).astype(jnp.int32),
                  "bins": in_bin[position]},
        )

    return step


@dataclasses.dataclass
class Totals:
    """Integer totals of a classifier run; per-bin arrays follow the run's bins."""

    FIXED = {"bins": "other bins"}
    EXACT = ()

    bins: np.ndarray
    drawn: int = 0
    nonfinite: int = 0
    perfect: int = 0
    rows: int = 0                     # draws accepted into any bin (stored rows)
    accepted: np.ndarray = None       # draws accepted into each bin
    correct_sum: np.ndarray = None    # their test points classified correctly, summed
    correct_sumsq: np.ndarray = None  # and the squares of those counts, summed

    def __post_init__(self):
        for name in ("accepted", "correct_sum", "correct_sumsq"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(len(self.bins), np.int64))


def bytes_per_draw(model, dataset):
    """A generous estimate of the device memory one draw of a step needs: its
    parameters, and activations no larger than the parameters per training point."""
    n_train = len(dataset.train_y)
    return 4 * 3 * (model.n_params * (2 + n_train) + 64)


# Test-set evaluations of accepted rows are batched so that about this many
# parameter-sized values are alive at once.
TEST_VALUES_AT_ONCE = 2**27
TEST_ROWS_AT_ONCE = 64  # at most: a step with few accepted draws stays cheap


def test_chunk(model, n_test):
    """Accepted rows whose test accuracy is evaluated at once (a power of two)."""
    rows = min(TEST_ROWS_AT_ONCE, TEST_VALUES_AT_ONCE // (n_test * max(model.n_params, 64)))
    return 1 << max(rows.bit_length() - 1, 0)


def _room_for(count, model, n_test):
    """A row capacity for ``count`` rows: a power of two with room to spare, at least
    one test chunk (so a multiple of it)."""
    return max(test_chunk(model, n_test), 1 << (2 * count - 1).bit_length())


def classify_task(dataset, model, prior, *, bins, logits="normalized"):
    """The :class:`~gcsampler.core.loop.Task` of classifier G&C on ``dataset``: accept a
    draw of ``model`` from ``prior`` into each of ``bins`` that holds its training
    cross-entropy (of its ``logits``: 'normalized' or 'raw'), when it classifies every
    training point correctly.

    Test accuracies are evaluated for a fixed number of rows per device step (the
    capacity), which starts at one test chunk; a step that accepts more is evaluated
    again with room for all, and later calls get twice the most seen. Results do not
    depend on it.
    """
    bins = check_bins(bins)
    logits = check_logits(logits)
    _check_inputs(model, dataset)
    n_test = len(dataset.test_y)

    def make(log2_block, blocks, capacity, chunk):
        return make_step(model, prior, log2_block, blocks, capacity, chunk, n_test, logits)

    def add_counts(totals, out):
        totals.drawn += int(np.sum(out.drawn, dtype=np.int64))
        totals.nonfinite += int(np.sum(out.nonfinite, dtype=np.int64))
        totals.perfect += int(np.sum(out.perfect, dtype=np.int64))
        totals.accepted += np.sum(out.bin_count.reshape(-1, len(totals.bins)), 0, dtype=np.int64)

    def add_rows(totals, rows):
        correct = rows["correct"].astype(np.int64)
        totals.rows += correct.size
        totals.correct_sum += rows["bins"].T @ correct
        totals.correct_sumsq += rows["bins"].T @ correct**2
        return (rows["train_loss"], (correct / n_test).astype(np.float32),
                rows["bins"].astype(np.uint8))

    return loop.Task(
        name="classify", static=("classify", model, prior, n_test, logits), make_step=make,
        args=(*(jnp.asarray(a) for a in dataset[:4]), jnp.asarray(bins[:, 0]),
              jnp.asarray(bins[:, 1])),
        bytes_per_draw=bytes_per_draw(model, dataset), row_layout=row_layout(len(bins)),
        new_totals=lambda: Totals(bins=bins), add_counts=add_counts, add_rows=add_rows,
        room_for=lambda schedule, count: _room_for(count, model, n_test),
        summarize=lambda totals, seconds: summarize(totals, n_test, seconds),
        describe={"kind": "classify", "label": "classifier", "bins": bins.tolist(),
                  "logits": logits,
                  "n_train": len(dataset.train_y), "n_test": n_test},
        first_capacity=lambda schedule: test_chunk(model, n_test))


def guess_and_check(dataset, model, prior, *, bins, samples, seed=0, logits="normalized",
                    batch=None, devices=None, log2_block=DEFAULT_LOG2_BLOCK, start=None,
                    blocks=None, on_rows=None, on_progress=None, on_snapshot=None):
    """Draw ``samples`` networks and keep those that fit ``dataset``'s training set
    perfectly with a training cross-entropy inside one of ``bins``.

    Args:
      dataset: a :class:`gcsampler.classify.Dataset`.
      model, prior: the network (``networks.MLP``/``CNN``) and its prior ('uniform',
        'gaussian' or a ``(key, shape, dtype)`` sampler; see ``networks.sample_params``).
      bins: ``(lo, hi]`` pairs of training cross-entropy (nats).
      logits: 'normalized' (the published loss) or 'raw' (see ``networks.fit``).
      samples, seed, batch, devices, log2_block, start, blocks, on_progress,
        on_snapshot: as for :func:`gcsampler.core.loop.guess_and_check`.
      on_rows: called as ``on_rows(index, train_loss, test_accuracy, bins)`` with NumPy
        arrays of accepted rows (``bins``: uint8 membership per bin), in index order.

    Returns:
      :class:`~gcsampler.core.loop.RunResult` with the integer :class:`Totals`, the wall
      time and the schedule.
    """
    task = classify_task(dataset, model, prior, bins=bins, logits=logits)
    return loop.guess_and_check(task, samples=samples, seed=seed, batch=batch, devices=devices,
                                log2_block=log2_block, start=start, blocks=blocks,
                                on_rows=on_rows, on_progress=on_progress,
                                on_snapshot=on_snapshot)


def _check_inputs(model, dataset):
    try:
        jax.eval_shape(model.apply, tuple(jax.ShapeDtypeStruct(s, jnp.float32)
                                          for s in model.param_shapes),
                       jax.ShapeDtypeStruct(dataset.train_x.shape, jnp.float32))
    except (TypeError, ValueError) as err:
        raise ValueError(f"the model does not take the task's inputs of shape "
                         f"{dataset.train_x.shape[1:]} ({str(err).splitlines()[0]})") from None


def summarize(totals, n_test, seconds=None):
    """The summary of a classifier run: its counts and, per bin (``cells``), acceptance
    (with Wilson CI) and the accepted draws' test accuracy (mean and standard error over
    accepted networks; NaN where undefined)."""
    cells = []
    for j, (lo, hi) in enumerate(totals.bins):
        k = int(totals.accepted[j])
        mean, std, stderr = _accuracy_moments(k, int(totals.correct_sum[j]),
                                              int(totals.correct_sumsq[j]), n_test)
        ci = wilson_interval(k, totals.drawn)
        cells.append({"bin_lo": _decimal(lo), "bin_hi": _decimal(hi), "draws": totals.drawn,
                      "perfect": totals.perfect, "accepted": k,
                      "acceptance_rate": k / totals.drawn if totals.drawn else math.nan,
                      "acceptance_ci95_lo": ci[0], "acceptance_ci95_hi": ci[1],
                      "gnc_test_accuracy": mean, "gnc_test_accuracy_std": std,
                      "gnc_test_accuracy_stderr": stderr})
    return {"draws": totals.drawn, "perfect": totals.perfect, "nonfinite": totals.nonfinite,
            "accepted": totals.rows, "seconds": seconds, "n_test": n_test, "cells": cells}


def _accuracy_moments(k, total, total_sq, n_test):
    """Mean, sample std and standard error of ``k`` accuracies from the integer sums of
    their correct counts and squares (exact until the last division)."""
    if k == 0:
        return math.nan, math.nan, math.nan
    mean = total / (k * n_test)
    if k == 1:
        return mean, math.nan, math.nan
    std = math.sqrt((k * total_sq - total * total) / (k * (k - 1))) / n_test
    return mean, std, std / math.sqrt(k)


def _decimal(edge):
    """A float32 bin edge as the shortest decimal that rounds to it (0.3, not 0.30000001)."""
    return float(np.format_float_positional(np.float32(edge)))
