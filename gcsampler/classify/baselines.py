"""Baselines for classifier Guess & Check: gradient training and greedy random search.

Chiang et al. (ICLR 2023) compare the test accuracy of networks accepted by G&C with that of
networks of the same architecture trained by SGD on the same tiny training set, and with
zeroth-order optimizers such as greedy random search. This module is the project's own
implementation of both baselines:

- :func:`train`: full-batch SGD or Adam (optax) on the training cross-entropy of the raw
  logits.
- :func:`random_search`: propose ``params + sigma * N(0, 1)`` and keep the proposal when it
  lowers the training cross-entropy (of ``logits``).

A run stops, and its parameters freeze, at the first step where it classifies every training
point correctly and (when ``target_loss`` is given) its training cross-entropy of ``logits``
('raw' or 'normalized', see :func:`gcsampler.classify.networks.fit`) is below
``target_loss``. G&C accepts draws whose cross-entropy lies in a bin ``(lo, hi]``, so passing
``target_loss=hi`` compares a baseline with G&C near a matched loss level, with no lower
edge. The published protocol (minibatch SGD from the prior, runs below the bin discarded) is
:mod:`gcsampler.classify.published_sgd`.

All runs (one per seed) are vmapped in one jitted ``while_loop`` with no host work per step.
The compiled program is cached per (model, method, init, data and run shapes); learning rate,
momentum, sigma, target and step count are runtime inputs, so changing them does not recompile.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from gcsampler.classify import networks

OPTIMIZERS = ("sgd", "adam")
INITS = ("uniform", "pytorch", "fan_out")


class BaselineResult(NamedTuple):
    """Per-run outcomes of a baseline, one entry per seed (arrays of shape ``(runs,)``).

    Attributes:
      fitted: whether the run met the stopping criterion.
      steps: updates applied when it stopped (the step limit if it never did).
      train_accuracy, train_loss, test_accuracy: of the final parameters (loss in nats).
      seeds: the run seeds.
      method: ``'sgd'``, ``'adam'`` or ``'random_search'``.
    """

    fitted: np.ndarray
    steps: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray
    test_accuracy: np.ndarray
    seeds: np.ndarray
    method: str


def initial_params(model, seed, init="uniform"):
    """The starting parameters of run ``seed`` in :func:`train` and :func:`random_search`.

    ``'uniform'`` is the G&C prior U(-1, 1); ``'pytorch'`` is PyTorch's default layer init,
    every weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); ``'fan_out'`` is the published
    MLP's own init (Chiang et al.'s kink runs), every weight U(-1/sqrt(fan_out),
    1/sqrt(fan_out)) and every bias U(-1, 1). ``seed`` may be traced.
    """
    check_init(init)
    params = networks.sample_params(model, jax.random.fold_in(jax.random.key(seed), 0),
                                    "uniform")
    if init == "pytorch":
        params = tuple(p * fan_in ** -0.5 for p, fan_in in zip(params, model.fan_ins))
    elif init == "fan_out":
        weights = set(model.weight_indices)
        params = tuple(p * p.shape[-1] ** -0.5 if i in weights else p
                       for i, p in enumerate(params))
    return params


def train(model, dataset, *, optimizer="sgd", lr, steps, seeds, init="uniform",
          target_loss=None, momentum=0.0, logits="raw"):
    """Full-batch ``optimizer`` on the training cross-entropy, one run per seed.

    Args:
      model: a :class:`~gcsampler.classify.networks.MLP` or ``CNN``.
      dataset: a :class:`~gcsampler.classify.data.Dataset` whose inputs fit ``model``.
      optimizer: ``'sgd'`` (heavy-ball ``momentum`` in [0, 1)) or ``'adam'`` (no momentum).
      lr: learning rate, > 0.
      steps: most updates per run, >= 0.
      seeds: a number of runs (seeds 0 .. n-1) or a list of non-negative integer seeds.
      init: starting point, see :func:`initial_params`.
      logits: whose cross-entropy ``target_loss`` bounds: 'raw' or 'normalized'.
      target_loss: stop only once the training cross-entropy is below it (None: at 100%
        training accuracy alone).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    lr = positive("lr", lr)
    if not (_is_number(momentum) and 0 <= momentum < 1):
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
    if optimizer == "adam" and momentum:
        raise ValueError(f"momentum must be 0 for adam (it uses b1), got {momentum!r}")
    return _run(model, dataset, optimizer, init, steps, seeds, target_loss, (lr, momentum),
                logits)


def random_search(model, dataset, *, steps, seeds, sigma=0.1, init="uniform", target_loss=None,
                  logits="raw"):
    """Greedy random search on the training cross-entropy, one run per seed.

    Each step proposes ``params + sigma * N(0, 1)`` (every parameter perturbed) and keeps the
    proposal when its training cross-entropy is lower, so a run's loss never increases.
    Arguments are those of :func:`train`; ``sigma`` (> 0) is the proposal scale.
    """
    sigma = positive("sigma", sigma)
    return _run(model, dataset, "random_search", init, steps, seeds, target_loss, (sigma,),
                logits)


def _is_number(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and math.isfinite(value))


def positive(name, value):
    """``value`` as a float if it is a finite number > 0; else a ValueError naming ``name``."""
    if not (_is_number(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_init(init):
    """Raise ValueError unless ``init`` is one of :data:`INITS`."""
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")


def check_seeds(seeds):
    """``seeds`` as a uint32 array: a count n gives 0 .. n-1, a list is taken as is."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds >= 1:
            return np.arange(seeds, dtype=np.uint32)
    elif isinstance(seeds, (list, tuple, np.ndarray)) and len(seeds):
        try:
            values = np.asarray(seeds)
        except ValueError:   # ragged nesting
            values = np.zeros((0, 0))
        if (values.ndim == 1 and values.dtype.kind in "iu" and values.min() >= 0
                and values.max() < 2**32):
            return values.astype(np.uint32)
    raise ValueError(f"seeds must be a positive run count or a non-empty list of integers "
                     f"in [0, 2**32), got {seeds!r}")


def check_fits(model, dataset):
    """Raise ValueError unless ``model`` takes ``dataset``'s inputs."""
    shapes = tuple(jax.ShapeDtypeStruct(s, jnp.float32) for s in model.param_shapes)
    try:
        jax.eval_shape(model.apply, shapes, jax.ShapeDtypeStruct(dataset.train_x.shape,
                                                                 jnp.float32))
    except (TypeError, ValueError):
        raise ValueError(f"dataset inputs of shape {dataset.train_x.shape[1:]} do not fit "
                         f"the model {model!r}") from None


def _run(model, dataset, method, init, steps, seeds, target_loss, hyper, logits):
    """Check the arguments shared by both baselines, run the compiled program, collect."""
    check_init(init)
    if logits not in networks.LOGITS:
        raise ValueError(f"logits must be one of {', '.join(networks.LOGITS)}, got {logits!r}")
    if (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
            or not 0 <= steps < 2**31):
        raise ValueError(f"steps must be an integer from 0 to 2**31 - 1, got {steps!r}")
    if target_loss is not None:
        positive("target_loss", target_loss)
    seeds = check_seeds(seeds)
    check_fits(model, dataset)
    data = tuple(jnp.asarray(a) for a in (dataset.train_x, dataset.train_y, dataset.test_x,
                                           dataset.test_y))
    target = np.inf if target_loss is None else target_loss
    out = _program(model, method, init, logits, jnp.asarray(seeds), jnp.int32(steps),
                   jnp.float32(target), tuple(jnp.float32(h) for h in hyper), data)
    fitted, stopped, accuracy, loss, test_accuracy = jax.device_get(out)
    return BaselineResult(fitted, stopped, accuracy, loss, test_accuracy, seeds, method)


def _gradient_step(model, method, hyper, x, y, logits):
    """``(start, step)`` of full-batch SGD or Adam on the raw logits' cross-entropy; the state
    is (params, optimizer state); a step returns the fit (of ``logits``) before it."""
    lr, momentum = hyper
    opt = optax.sgd(lr, momentum) if method == "sgd" else optax.adam(lr)

    def objective(params):
        fit = networks.fit(model, params, x, y, "raw")
        return fit.cross_entropy, fit

    def step(state, key):
        del key
        params, opt_state = state
        (_, fit), grads = jax.value_and_grad(objective, has_aux=True)(params)
        if logits != "raw":
            fit = networks.fit(model, params, x, y, logits)
        updates, opt_state = opt.update(grads, opt_state, params)
        return fit, (optax.apply_updates(params, updates), opt_state)

    return lambda params: (params, opt.init(params)), step


def _search_step(model, hyper, x, y, logits):
    """``(start, step)`` of greedy random search on the cross-entropy of ``logits``; the state
    is (params, their losses)."""
    (sigma,) = hyper

    def evaluate(params):
        return networks.fit(model, params, x, y, logits)

    def step(state, key):
        params, fit = state
        flat, unravel = ravel_pytree(params)
        proposal = unravel(flat + sigma * jax.random.normal(key, flat.shape, flat.dtype))
        proposed = evaluate(proposal)
        better = proposed.cross_entropy < fit.cross_entropy
        return fit, jax.tree.map(lambda new, old: jnp.where(better, new, old),
                                 (proposal, proposed), state)

    return lambda params: (params, evaluate(params)), step


@functools.partial(jax.jit, static_argnames=("model", "method", "init", "logits"))
def _program(model, method, init, logits, seeds, steps, target, hyper, data):
    """All runs of one baseline: ``(fitted, steps, train acc, train loss, test acc)``."""
    train_x, train_y, test_x, test_y = data
    if method == "random_search":
        start, step = _search_step(model, hyper, train_x, train_y, logits)
    else:
        start, step = _gradient_step(model, method, hyper, train_x, train_y, logits)

    def one_run(seed):
        noise = jax.random.fold_in(jax.random.key(seed), 1)

        def body(carry):
            count, state, _, _ = carry
            fit, new = step(state, jax.random.fold_in(noise, count))
            fitted = (fit.accuracy == 1) & (fit.cross_entropy < target)
            stop = fitted | (count >= steps)
            state = jax.tree.map(lambda old, upd: jnp.where(stop, old, upd), state, new)
            return count + jnp.where(stop, 0, 1), state, stop, fitted

        initial = (jnp.int32(0), start(initial_params(model, seed, init)), False, False)
        count, state, _, fitted = jax.lax.while_loop(lambda carry: ~carry[2], body, initial)
        params = state[0]
        final = networks.fit(model, params, train_x, train_y, logits)
        test = networks.fit(model, params, test_x, test_y, logits)
        return fitted, count, final.accuracy, final.cross_entropy, test.accuracy

    return jax.vmap(one_run)(seeds)
