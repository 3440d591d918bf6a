"""G&C of deep matrix factorizations: the threshold task of the papers.

A draw is a weight setting from the prior, made by a sampler
(:mod:`gcsampler.factorization.samplers`) from its key; its end-to-end matrix gives
the train and gen losses on the problem's measurements; it is accepted when the
train loss is below eps, and its matrix is stored with it. :func:`factorization_task`
builds the :class:`~gcsampler.core.loop.Task`, :func:`guess_and_check` runs it.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.core import keys, loop
from gcsampler.core.devices import DEFAULT_LOG2_BLOCK, Schedule
from gcsampler.factorization import models, priors, problems, samplers
from gcsampler.threshold import statistics
from gcsampler.threshold.task import check_eps, threshold_task


class Result(NamedTuple):
    """What :func:`guess_and_check` returns: the host totals, the sampling time, the
    schedule, the sampler the draws were made with ('auto' resolved) and the seconds
    spent compiling."""

    totals: statistics.Totals
    seconds: float
    schedule: Schedule
    sampler: str
    compile_seconds: float = 0.0


def draw(sampler, prior, key):
    """End-to-end matrix of one draw, normalized if the prior says so."""
    matrix = sampler.matrix(key)
    return models.frobenius_normalize(matrix) if prior.normalize else matrix


def evaluate_draws(model, prior, sampler, n_train, keys_, chunk, ops, labels):
    """Train loss, gen loss and end-to-end matrix of the draws of ``keys_`` (one block).

    ``sampler`` is a sampler name; ``ops`` and ``labels`` are the problem's
    :func:`~gcsampler.factorization.problems.stacked_operators`, the first ``n_train``
    the train ones. Draws are generated ``chunk`` at a time (None: all at once).
    """
    one = functools.partial(draw, samplers.make_sampler(model, prior, sampler), prior)
    if chunk is None or chunk >= keys_.shape[0]:
        matrices = jax.vmap(one)(keys_)
    else:
        matrices = jax.lax.map(one, keys_, batch_size=chunk)
    flat = matrices.reshape(matrices.shape[0], -1)
    residuals = jnp.matmul(flat, ops, precision=jax.lax.Precision.HIGHEST) - labels
    train, gen = problems.losses_from_residuals(residuals, n_train)
    return train, gen, {"matrix": matrices}


def check_pieces(problem, model, prior):
    """Raise ValueError unless the model is the problem's shape, its activation is
    elementwise and the prior draws its layers (right shapes and dtypes, finite values)."""
    if (model.n_rows, model.n_cols) != (problem.n_rows, problem.n_cols):
        raise ValueError(f"model is {model.n_rows}x{model.n_cols} but the problem's matrix is "
                         f"{problem.n_rows}x{problem.n_cols}")
    models.check_activation(model)
    priors.check_prior(prior, model)


def factorization_task(problem, model, prior, *, eps, sampler="auto"):
    """The :class:`~gcsampler.core.loop.Task` of G&C on ``problem`` with ``model`` and
    ``prior``: accept train loss < ``eps``; ``sampler`` as in :func:`guess_and_check`."""
    check_eps(eps)
    check_pieces(problem, model, prior)
    name = samplers.resolve(model, prior, sampler)
    n_train = len(problem.train_ops)
    ops, labels = problems.stacked_operators(problem)

    def evaluate(keys_, chunk, data):
        return evaluate_draws(model, prior, name, n_train, keys_, chunk, *data)

    return threshold_task(
        name="factorization", static=("factorization", model, prior, name, n_train),
        evaluate=evaluate, data=(ops, labels), eps=eps,
        extra_layout={"matrix": ("<f4", (model.n_rows, model.n_cols))},
        bytes_per_draw=samplers.bytes_per_draw(problem, model, name), sampler_used=name,
        describe={"kind": "factorization", "sampler": name, "label": f"{name} sampler"})


def guess_and_check(problem, model, prior, *, eps, samples, seed=0, sampler="auto", batch=None,
                    devices=None, log2_block=DEFAULT_LOG2_BLOCK, capacity=None, start=None,
                    blocks=None, on_rows=None, on_progress=None, on_snapshot=None,
                    progress=None):
    """Draw ``samples`` weight settings and keep those with train loss < ``eps``.

    Args:
      problem, model, prior: what to sample (see problems, models, priors).
      eps: acceptance threshold on the train loss (strict).
      samples: number of draws; draw i uses global index i.
      seed: run seed; draws are a pure function of (seed, index).
      sampler: 'auto' (the cheapest exact sampler), or a name from
        :data:`~gcsampler.factorization.samplers.SAMPLERS` ('direct' draws every weight).
      batch, devices, log2_block, capacity, start, blocks, on_progress, on_snapshot, progress:
        as for :func:`gcsampler.core.loop.guess_and_check` (a ``start`` snapshot must be
        of a run with the same problem, model, prior, eps, seed, sampler and log2_block).
      on_rows: called as ``on_rows(index, train, gen, matrix)`` with NumPy arrays of
        accepted rows, in increasing index order.

    Returns:
      :class:`Result` with the host totals (:class:`~gcsampler.threshold.statistics.Totals`),
      the sampling time of this call, the schedule, the sampler used and the compile time.
    """
    task = factorization_task(problem, model, prior, eps=eps, sampler=sampler)
    result = loop.guess_and_check(
        task, samples=samples, seed=seed, batch=batch, devices=devices, log2_block=log2_block,
        capacity=capacity, start=start, blocks=blocks, on_rows=on_rows,
        on_progress=on_progress, on_snapshot=on_snapshot, progress=progress)
    return Result(result.totals, result.seconds, result.schedule, task.describe["sampler"],
                  result.compile_seconds)


def regenerate(model, prior, seed, index, sampler="auto"):
    """Layers and end-to-end matrix of draw ``index`` of a run with ``seed``.

    ``sampler`` must be the one the run used (a run directory records it).
    Returns ``(layers, matrix)`` as float32 NumPy arrays. The matrix is the one the
    sampler drew (up to float32 rounding of batched products); the layers are the
    draw's full weights, exactly prior-distributed, with that matrix as product.
    """
    layers, matrix = _jitted_regenerate(model, prior, sampler)(keys.draw_key(seed, index))
    return [np.asarray(w) for w in layers], np.asarray(matrix)


@functools.lru_cache(maxsize=32)
def _jitted_regenerate(model, prior, sampler_name):
    sampler = samplers.make_sampler(model, prior, sampler_name)
    return jax.jit(lambda key: (sampler.layers(key), draw(sampler, prior, key)))
