"""Gradient-descent baseline: full-batch optimizers on the train loss of a factorization.

The end-to-end matrix ``W = W_1 W_2 ... W_d`` (see :mod:`gcsampler.factorization.models`) is fit
to the train measurements by minimizing ``mean_i (<A_i, W> - y_i)^2`` from a small
PyTorch-style initialization. Independent runs are ``vmap``-ped and all steps of
all runs are one jitted program, so a sweep costs one compilation per setting.

GroupRMSprop (Razin et al., 2022, appendix D.2) is RMSprop with a single
second-moment estimate shared by every parameter, so it rescales the step size
without changing the gradient's direction.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gcsampler.factorization import models, problems

OPTIMIZERS = ("grouprmsprop", "sgd", "adam")


class ScaleByGroupRmsState(NamedTuple):
    """State of :func:`scale_by_group_rms`: step count and the shared second moment."""

    count: jax.Array  # int32 scalar
    nu: jax.Array  # float32 scalar


def scale_by_group_rms(alpha=0.99, eps=1e-6):
    """Divide all gradients by the root of one bias-corrected EMA of their squared norm.

    ``s <- alpha s + (1 - alpha) sum_params ||g||^2``, ``s_hat = s / (1 - alpha^t)``
    and the update is ``g / (sqrt(s_hat) + eps)`` (not negated: chain a learning rate).

    Args:
      alpha: decay of the moving average, in [0, 1).
      eps: added to the root for numerical stability.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")

    def init_fn(params):
        del params
        return ScaleByGroupRmsState(count=jnp.zeros([], jnp.int32), nu=jnp.zeros([], jnp.float32))

    def update_fn(updates, state, params=None):
        del params
        squared_norm = optax.tree_utils.tree_norm(updates, squared=True).astype(jnp.float32)
        nu = alpha * state.nu + (1.0 - alpha) * squared_norm
        count = optax.safe_increment(state.count)
        nu_hat = nu / (1.0 - alpha ** count.astype(jnp.float32))
        scale = 1.0 / (jnp.sqrt(nu_hat) + eps)
        updates = jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)
        return updates, ScaleByGroupRmsState(count=count, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def group_rmsprop(learning_rate, alpha=0.99, eps=1e-6, momentum=0.0):
    """GroupRMSprop with optional heavy-ball momentum, as an optax optimizer.

    With momentum ``m`` the step is PyTorch RMSprop's:
    ``buf = m buf + g / (sqrt(s_hat) + eps)``, ``p -= lr buf``. The paper's
    published code builds this momentum buffer but never applies it; we apply it,
    so ``momentum=0`` reproduces the paper's runs.
    """
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum!r}")
    parts = [scale_by_group_rms(alpha, eps)]
    if momentum > 0:
        parts.append(optax.trace(decay=momentum))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)


@functools.lru_cache(maxsize=128)
def make_optimizer(name, learning_rate, momentum=0.0):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`).

    Cached, so equal arguments return the same object and therefore share one
    compiled :func:`gd_train` program. Adam takes no ``momentum`` (its ``b1`` plays
    that role); a nonzero value is an error rather than silently ignored.
    """
    if name == "grouprmsprop":
        return group_rmsprop(learning_rate, momentum=momentum)
    if name == "sgd":
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum!r}")
        return optax.sgd(learning_rate, momentum=momentum or None)
    if name == "adam":
        if momentum:
            raise ValueError(f"adam takes no momentum (it uses b1), got momentum={momentum!r}")
        return optax.adam(learning_rate)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def init_layers(model, key, init_scale):
    """PyTorch's default init of bias-free linear layers, scaled by ``init_scale``.

    Layer ``l`` of shape (fan_in, fan_out) maps R^fan_in -> R^fan_out (row
    vectors), and its entries are ``init_scale * U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    drawn with ``fold_in(key, l)``. Returns a tuple of float32 arrays.
    """
    layers = []
    for index, shape in enumerate(model.layer_shapes):
        unit = jax.random.uniform(jax.random.fold_in(key, index), shape, jnp.float32, -1.0, 1.0)
        layers.append(unit * (init_scale / np.sqrt(shape[0])))
    return tuple(layers)


class GDResult(NamedTuple):
    """Loss curves and final matrices of ``runs`` independent gradient-descent runs.

    Attributes:
      steps: (n_logs,) step numbers of the logged losses: 0 (the initialization),
        log_every, 2 log_every, ..., steps.
      train_loss, gen_loss: (runs, n_logs) losses at those steps (NaN/inf if a run diverged).
      final_train_loss, final_gen_loss: (runs,) losses after the last step.
      final_matrix: (runs, n_rows, n_cols) end-to-end matrices after the last step.
    """

    steps: np.ndarray
    train_loss: np.ndarray
    gen_loss: np.ndarray
    final_train_loss: np.ndarray
    final_gen_loss: np.ndarray
    final_matrix: np.ndarray


def gd_train(problem, model, optimizer, *, seed=0, runs=1, steps=1000, init_scale=1e-3,
          log_every=100):
    """Full-batch gradient descent on the train loss, ``runs`` runs at once.

    Run ``r`` is initialized by :func:`init_layers` with key
    ``fold_in(jax.random.key(seed), r)``, so a run does not depend on how many
    runs are batched with it. Losses are logged at step 0 and every ``log_every``
    steps; ``steps`` must be a multiple of ``log_every``.

    The compiled program is cached on (model, optimizer, runs, steps, log_every,
    problem shape); the seed, problem data and ``init_scale`` are runtime inputs,
    so repeated calls with the same settings do not recompile. The learning rate
    lives in the optimizer and therefore is part of the compiled program.

    Args:
      problem: a :class:`gcsampler.factorization.problems.Problem`.
      model: a :class:`gcsampler.factorization.models.Factorization` of the problem's shape.
      optimizer: an ``optax.GradientTransformation``, e.g. from :func:`make_optimizer`.
      seed: seed of the initializations.
      runs: number of independent runs (>= 1).
      steps: number of optimizer steps (>= 1, a multiple of ``log_every``).
      init_scale: scale of the initialization (> 0).
      log_every: steps between logged losses (>= 1).
    """
    return gd_train_many([problem], model, optimizer, seed=seed, runs=runs, steps=steps,
                      init_scale=init_scale, log_every=log_every)[0]


def gd_train_many(problem_list, model, optimizer, *, seed=0, runs=1, steps=1000, init_scale=1e-3,
               log_every=100):
    """:func:`gd_train` on several problems of one shape at once: one compiled program.

    A sweep's seeds are fresh problems of equal shape (Alexander et al. 2025), so all
    of them, times ``runs`` initializations each, are vmapped together. ``seed`` is
    one seed for all problems (run ``r`` of every problem then starts from the same
    initialization) or a sequence of one seed per problem; either way problem ``p``
    gets exactly the runs ``gd_train(problem_list[p], ..., seed=its seed)`` would.
    Returns one :class:`GDResult` per problem, in order.
    """
    for name, value in (("runs", runs), ("steps", steps), ("log_every", log_every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if steps % log_every:
        raise ValueError(f"steps must be a multiple of log_every={log_every}, got steps={steps}")
    if not (isinstance(init_scale, (int, float, np.number)) and np.isfinite(init_scale)
            and init_scale > 0):
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
    if not problem_list:
        raise ValueError("problem_list must hold at least one problem")
    shapes = {(len(p.train_labels), len(p.test_labels), p.n_rows, p.n_cols) for p in problem_list}
    if len(shapes) > 1:
        raise ValueError(f"problems must share their shape to be trained together, got {shapes}")
    seeds = np.asarray(seed)
    if not (np.issubdtype(seeds.dtype, np.integer) and np.all(seeds >= 0)
            and np.all(seeds < 2**32) and seeds.shape in ((), (len(problem_list),))):
        raise ValueError(f"seed must be a non-negative integer below 2**32 or one such per "
                         f"problem, got {seed!r}")
    seeds = np.broadcast_to(seeds, (len(problem_list),))
    first = problem_list[0]
    if (model.n_rows, model.n_cols) != (first.n_rows, first.n_cols):
        raise ValueError(f"model is {model.n_rows}x{model.n_cols} but the problem is "
                         f"{first.n_rows}x{first.n_cols}")

    ops, labels = zip(*(problems.stacked_operators(p) for p in problem_list))
    n_train = len(first.train_labels)
    program = _program(model, optimizer, len(problem_list), int(runs), int(steps),
                       int(log_every), n_train)
    train_loss, gen_loss, matrices = (np.asarray(x) for x in program(
        jnp.asarray(seeds, jnp.uint32), jnp.stack(ops), jnp.stack(labels),
        jnp.asarray(init_scale, jnp.float32)))
    logged = np.arange(0, steps + 1, log_every)
    return [GDResult(steps=logged, train_loss=t, gen_loss=g, final_train_loss=t[:, -1],
                     final_gen_loss=g[:, -1], final_matrix=m)
            for t, g, m in zip(train_loss, gen_loss, matrices)]


@functools.lru_cache(maxsize=64)
def _program(model, optimizer, n_problems, runs, steps, log_every, n_train):
    """The jitted ``(seeds, ops, labels, init_scale) -> (train, gen, matrices)`` of one setting.

    ``seeds``, ``ops`` and ``labels`` carry a leading axis of ``n_problems``;
    outputs carry (problem, run) axes.
    """

    def losses(layers, ops, labels):
        flat = models.end_to_end(model, layers).reshape(-1)
        residuals = jnp.matmul(flat, ops, precision=jax.lax.Precision.HIGHEST) - labels
        return problems.losses_from_residuals(residuals, n_train)

    def one_run(key, ops, labels, init_scale):
        train_ops, train_labels = ops[:, :n_train], labels[:n_train]

        def step(carry, _):
            layers, state = carry
            grads = jax.grad(lambda p: losses(p, train_ops, train_labels)[0])(layers)
            updates, state = optimizer.update(grads, state, layers)
            return (optax.apply_updates(layers, updates), state), None

        def interval(carry, _):
            carry, _ = jax.lax.scan(step, carry, length=log_every)
            return carry, losses(carry[0], ops, labels)

        layers = init_layers(model, key, init_scale)
        initial = losses(layers, ops, labels)
        (layers, _), logged = jax.lax.scan(
            interval, (layers, optimizer.init(layers)), length=steps // log_every)
        train_loss, gen_loss = (jnp.concatenate([first[None], rest])
                                for first, rest in zip(initial, logged))
        return train_loss, gen_loss, models.end_to_end(model, layers)

    def all_runs(seed, ops, labels, init_scale):
        base_key = jax.random.key(seed)
        keys = jax.vmap(lambda run: jax.random.fold_in(base_key, run))(jnp.arange(runs))
        return jax.vmap(one_run, in_axes=(0, None, None, None))(keys, ops, labels, init_scale)

    def program(seeds, ops, labels, init_scale):
        return jax.vmap(all_runs, in_axes=(0, 0, 0, None))(seeds, ops, labels, init_scale)

    return jax.jit(program)
