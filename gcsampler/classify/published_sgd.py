"""The baseline as Chiang et al. (ICLR 2023) ran it: minibatch SGD that freezes in a loss bin.

Each run starts from its own draw of ``init`` (the G&C prior U(-1, 1) for their image
networks) and makes ``epochs`` passes over the training set, each in a fresh random order,
``batch_size`` points per step (the last step of a pass takes what is left), with plain SGD
on the mean cross-entropy of the step's points' RAW logits. Before every step the run looks
at the whole training set: once it classifies every point and its training cross-entropy
(of its ``logits``: the normalized ones, as published) is at most the bin's upper edge
``hi``, it freezes. A run LANDS in the bin ``(lo, hi]`` when its final parameters classify
every training point and ``lo < loss <= hi``; runs that froze at or below ``lo``, or never fit,
are discarded, and :func:`fill_bin` runs batches until the requested number have landed.

One deliberate difference: the published loop also ends a whole batch of runs at the end of
the first epoch at which every run in it classifies the training set (runs that fit but are
still above ``hi`` then stop unfrozen). Here runs are independent, so a run's outcome does not
depend on the batch it ran in; with the published batches of 1500 to 3000 runs that early
end is rare.

All runs of a batch are vmapped in one jitted ``while_loop``; the compiled program is cached
per (model, init, logits, minibatch size, data and batch shapes), and the learning rate,
epochs and bin are runtime inputs.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.classify import baselines, networks
from gcsampler.classify.task import check_bins


class Batch(NamedTuple):
    """Per-run outcomes of one batch (arrays of shape ``(runs,)``).

    Attributes:
      landed: the run ended in the bin (100% train accuracy and lo < loss <= hi).
      frozen: it ended at 100% train accuracy with a loss at most ``hi``: it froze there (or
        reached it with its last step), in the bin or at or below ``lo``.
      steps: SGD steps it took.
      train_accuracy, train_loss, test_accuracy: of its final parameters (the loss of its
        ``logits``, in nats).
      seeds: the run seeds.
    """

    landed: np.ndarray
    frozen: np.ndarray
    steps: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray
    test_accuracy: np.ndarray
    seeds: np.ndarray


class Filled(NamedTuple):
    """The runs :func:`fill_bin` kept: the first ``models`` that landed, in seed order.

    Attributes:
      test_accuracy, train_loss: of the kept runs (fewer than asked if too few landed).
      tried: runs made (whole batches); landed: how many of them landed.
    """

    test_accuracy: np.ndarray
    train_loss: np.ndarray
    tried: int
    landed: int


def run_batch(model, dataset, *, lr, epochs, batch_size, seeds, bin, init="uniform",
              logits="normalized"):
    """One batch of the published protocol on ``dataset``, one run per seed (see the module
    docstring): ``lr`` > 0, ``epochs`` >= 1, ``batch_size`` >= 1 points per step, ``bin`` a
    ``(lo, hi)`` pair, ``init`` one of ``baselines.INITS``."""
    lr = baselines.positive("lr", lr)
    epochs = _count("epochs", epochs)
    batch_size = _count("batch_size", batch_size)
    steps = epochs * -(-len(dataset.train_y) // batch_size)
    if steps >= 2**31:
        raise ValueError(f"epochs must give fewer than 2**31 steps per run, got {epochs!r} "
                         f"epochs of {steps // epochs} steps")
    seeds = baselines.check_seeds(seeds)
    try:
        ((lo, hi),) = check_bins([bin]).tolist()
    except (TypeError, ValueError):
        raise ValueError(f"bin must be a (lo, hi) pair of finite numbers with lo < hi, "
                         f"got {bin!r}") from None
    baselines.check_init(init)
    if logits not in networks.LOGITS:
        raise ValueError(f"logits must be one of {', '.join(networks.LOGITS)}, got {logits!r}")
    baselines.check_fits(model, dataset)
    data = tuple(jnp.asarray(a) for a in dataset[:4])
    out = _program(model, init, logits, batch_size, jnp.asarray(seeds), jnp.int32(epochs),
                   jnp.float32(lr), jnp.float32(lo), jnp.float32(hi), data)
    return Batch(*jax.device_get(out), seeds)


def fill_bin(model, dataset, *, models, runs_per_batch, max_runs, first_seed=0, **settings):
    """Batches of ``runs_per_batch`` runs (seeds ``first_seed``, ``first_seed + 1``, ...) of
    :func:`run_batch` with ``settings`` until ``models`` runs have landed in the bin or
    ``max_runs`` were made; keeps the first ``models`` that landed, in seed order."""
    for name, value in (("models", models), ("runs_per_batch", runs_per_batch),
                        ("max_runs", max_runs)):
        _count(name, value)
    if (isinstance(first_seed, bool) or not isinstance(first_seed, (int, np.integer))
            or not 0 <= first_seed <= 2**32 - max_runs - runs_per_batch):
        raise ValueError(f"first_seed must be an integer from 0 to 2**32 - max_runs - "
                         f"runs_per_batch, got {first_seed!r}")
    accuracy, loss, tried = [], [], 0
    while sum(map(len, accuracy)) < models and tried < max_runs:
        size = min(runs_per_batch, max_runs - tried)
        batch = run_batch(model, dataset, seeds=np.arange(first_seed + tried,
                                                          first_seed + tried + runs_per_batch),
                          **settings)
        landed = batch.landed[:size]
        accuracy.append(batch.test_accuracy[:size][landed])
        loss.append(batch.train_loss[:size][landed])
        tried += size
    accuracy, loss = np.concatenate(accuracy), np.concatenate(loss)
    return Filled(accuracy[:models], loss[:models], tried, len(accuracy))


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


@functools.partial(jax.jit, static_argnames=("model", "init", "logits", "batch_size"))
def _program(model, init, logits, batch_size, seeds, epochs, lr, lo, hi, data):
    """Every run of a batch: (landed, frozen, steps, train acc, train loss, test acc)."""
    train_x, train_y, test_x, test_y = data
    n = train_y.shape[0]
    per_epoch = -(-n // batch_size)

    def minibatch_loss(params, index, weight):
        log_p = jax.nn.log_softmax(model.apply(params, train_x[index]), axis=-1)
        picked = jnp.take_along_axis(log_p, train_y[index][:, None], axis=-1)[:, 0]
        return -jnp.sum(weight * picked) / jnp.sum(weight)

    def one_run(seed):
        order_key = jax.random.fold_in(jax.random.key(seed), 2)

        def frozen(params):
            fit = networks.fit(model, params, train_x, train_y, logits)
            return (fit.accuracy == 1) & (fit.cross_entropy <= hi)

        def body(carry):
            step, params, _ = carry
            stop = frozen(params)
            epoch = step // per_epoch
            order = jax.random.permutation(jax.random.fold_in(order_key, epoch), n)
            position = (step % per_epoch) * batch_size + jnp.arange(batch_size)
            inside = position < n
            index = order[jnp.minimum(position, n - 1)]
            grads = jax.grad(minibatch_loss)(params, index, inside.astype(jnp.float32))
            params = jax.tree.map(lambda p, g: jnp.where(stop, p, p - lr * g), params, grads)
            return step + jnp.where(stop, 0, 1), params, stop

        start = (jnp.int32(0), baselines.initial_params(model, seed, init), False)
        steps, params, stop = jax.lax.while_loop(
            lambda carry: ~carry[2] & (carry[0] < epochs * per_epoch), body, start)
        final = networks.fit(model, params, train_x, train_y, logits)
        test = networks.fit(model, params, test_x, test_y, logits)
        fits = final.accuracy == 1
        landed = fits & (final.cross_entropy > lo) & (final.cross_entropy <= hi)
        return (landed, fits & (final.cross_entropy <= hi), steps, final.accuracy,
                final.cross_entropy, test.accuracy)

    return jax.vmap(one_run)(seeds)
