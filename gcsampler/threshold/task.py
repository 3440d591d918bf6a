"""Threshold tasks: G&C that accepts a draw when its train loss is below eps.

:func:`threshold_task` turns a block evaluator (losses of draws from their keys) into
a :class:`~gcsampler.core.loop.Task` with the statistics of :mod:`.statistics` and the
kernel of :mod:`.kernel`. The factorizations of the papers are one
(:mod:`gcsampler.factorization.task`); :func:`model_task` makes one of any JAX model
given as a parameter prior and a loss function, so a user's own model gets the whole
engine: devices, checkpoints, processes, run directories, re-thresholding.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.core import keys, loop
from gcsampler.threshold import kernel, statistics

# Bytes per draw that the statistics take, beside the evaluation's (float32 per-bin sums).
STATISTICS_VALUES = 4 * (len(statistics.train_loss_edges(1.0)) + 1) + 16
PROBE_DRAWS = 4


def check_eps(eps):
    """Raise ValueError unless ``eps`` is a positive finite number."""
    if not (isinstance(eps, (int, float, np.floating)) and not isinstance(eps, bool)
            and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return eps


def threshold_task(*, name, static, evaluate, data, eps, extra_layout, bytes_per_draw,
                   describe, sampler_used):
    """A :class:`~gcsampler.core.loop.Task` that accepts train loss < ``eps``.

    Args:
      name: label of the task.
      static: hashable key of ``evaluate`` (what its compiled code depends on).
      evaluate: ``(keys, chunk, data) -> (train, gen, extras)``, the float32 losses of
        the draws of one block's keys, evaluated ``chunk`` at a time, and a dict of
        per-draw arrays to store with accepted rows.
      data: ``evaluate``'s runtime data (a pytree of arrays).
      eps: the threshold (strict; rounded up to float32, see ``float32_threshold``).
      extra_layout: ``{name: (dtype, shape)}`` of the extras, in order.
      bytes_per_draw: device memory ``evaluate`` needs per draw (the statistics' added).
      sampler_used: how draws are made, for the summary.
      describe: what a run directory records of the task (``eps`` is added): ``kind``,
        a ``label`` for messages, its settings, and a ``probe`` (numbers that identify it
        when a run is resumed) where it has one.
    """
    check_eps(eps)
    edges = statistics.train_loss_edges(eps)
    layout = {"index": ("<u8", ()), "train_loss": ("<f4", ()), "gen_loss": ("<f4", ()),
              **extra_layout}

    def make_step(log2_block, blocks, capacity, chunk):
        return kernel.make_step(evaluate, log2_block, blocks, capacity, chunk)

    def add_counts(totals, out):
        statistics.add_counts(totals, out.drawn, out.nonfinite, out.bin_count, out.hist)
        statistics.add_digit_sums(totals, out.gen_sum, out.gen_sumsq, out.bin_gen_sum,
                                  out.bin_gen_sumsq)

    def add_rows(totals, rows):
        statistics.add_accepted(totals, rows["gen_loss"])
        return tuple(rows[name] for name in layout if name != "index")

    return loop.Task(
        name=name, static=static, make_step=make_step,
        args=(data, statistics.float32_threshold(eps), jnp.asarray(edges)),
        bytes_per_draw=bytes_per_draw + 4 * 3 * STATISTICS_VALUES, row_layout=layout,
        new_totals=lambda: statistics.Totals(edges=edges), add_counts=add_counts,
        add_rows=add_rows, room_for=loop.whole_step,
        summarize=lambda totals, seconds: {**statistics.summarize(totals, seconds), "eps": eps,
                                           "sampler_used": sampler_used},
        statistics=statistics.statistics_arrays, describe={**describe, "eps": eps})


def model_task(prior, loss, *, eps, data=(), name="model", bytes_per_draw=None):
    """G&C of any JAX model: draw parameters from ``prior``, accept train loss < ``eps``.

    Args:
      prior: ``key -> params`` (any pytree), a pure function of the key: draw ``i`` of a
        run with ``seed`` is ``prior(gcsampler.draw_key(seed, i))``.
      loss: ``(params, *data) -> (train_loss, test_loss)``, scalars.
      eps: the acceptance threshold on the train loss (strict).
      data: arrays passed to ``loss`` at run time (new data does not recompile).
      name: the task's name in run directories and reports.
      bytes_per_draw: device memory one draw needs (default: a generous multiple of the
        parameters' size; give it for models whose activations are larger).

    The accepted rows hold ``index``, ``train_loss`` and ``gen_loss`` (the test loss);
    regenerate a draw's parameters from its index with ``prior(draw_key(seed, index))``.
    """
    if not (callable(prior) and callable(loss)):
        raise TypeError("prior and loss must be callables: key -> params and "
                        "(params, *data) -> (train_loss, test_loss)")

    def one(key, data):
        train, test = loss(prior(key), *data)
        return jnp.asarray(train, jnp.float32), jnp.asarray(test, jnp.float32)

    def evaluate(keys_, chunk, data):
        if chunk is None or chunk >= keys_.shape[0]:
            train, gen = jax.vmap(one, in_axes=(0, None))(keys_, data)
        else:
            train, gen = jax.lax.map(lambda k: one(k, data), keys_, batch_size=chunk)
        return train, gen, {}

    try:
        params = jax.eval_shape(prior, jax.random.key(0))
        losses = jax.eval_shape(one, jax.random.key(0), data)
    except Exception as err:  # a user function that cannot be traced
        raise ValueError(f"model task {name!r}: prior or loss cannot be traced by JAX "
                         f"({type(err).__name__}: {str(err).strip().splitlines()[0]})") from err
    if any(out.shape != () for out in losses):
        raise ValueError(f"model task {name!r}: loss must return two scalars (train, test), "
                         f"got shapes {[out.shape for out in losses]}")
    size = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    # The losses of a few draws identify the model when a run is resumed with it.
    probe = jax.jit(jax.vmap(one, in_axes=(0, None)))(
        jax.vmap(lambda i: keys.index_key(keys.seed_key(0), 0, i))(
            jnp.arange(PROBE_DRAWS, dtype=jnp.uint32)), data)
    return threshold_task(
        name=name, static=("model", prior, loss, name), evaluate=evaluate, data=data, eps=eps,
        extra_layout={}, bytes_per_draw=bytes_per_draw or 4 * 3 * (2 * size + 64),
        sampler_used=f"model/{name}",
        describe={"kind": "model", "name": name, "label": f"model {name}",
                  "parameters": size, "probe": np.asarray(probe, np.float64).ravel().tolist()})
