"""Samplers: how a draw's key becomes its end-to-end matrix, and its full weights.

Every sampler draws the end-to-end matrix with exactly the prior's distribution;
they differ in how many random numbers that takes. ``direct`` draws every weight
and works for any prior. The collapsed samplers (:mod:`gcsampler.factorization.collapsed`)
integrate weights out analytically and apply to the built-in Gaussian prior:

- ``last_layer``: any activation, depth >= 2, width > n_rows;
- ``wishart``: linear networks, depth >= 2, width >= n_rows; cost independent of width.

``auto`` takes the sampler that applies with the lowest cost. Each sampler also
regenerates a draw's full weights, exactly distributed as the prior given the drawn
matrix. A new sampler goes here: a :class:`SamplerSpec` registered in :data:`SAMPLERS`.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gcsampler.core.registry import Registry
from gcsampler.factorization import collapsed, models, priors

# A chi-square variate costs about 10 normals (rejection sampling; measured on CPU:
# at width 5 drawing every weight beats the Bartlett factors, at width 40 it loses).
CHI_SQUARE_COST = 10


class Sampler(NamedTuple):
    """A way to draw, for one model and prior.

    Attributes:
      name: its name in :data:`SAMPLERS`.
      matrix: ``key -> (n_rows, n_cols)`` end-to-end matrix of the draw, before
        any normalization.
      layers: ``key -> tuple of layer matrices`` of the same draw; their product
        is ``matrix(key)`` up to float rounding.
    """

    name: str
    matrix: Callable
    layers: Callable


class SamplerSpec(NamedTuple):
    """A registered sampler.

    Attributes:
      applies: ``(model, prior) -> bool``: whether it draws this model and prior exactly.
      cost: ``model -> int``: random numbers one draw costs, in standard normals.
      memory: ``model -> (weights, hidden)``: weight and hidden-activation values alive
        at once while a draw is made.
      make: ``(model, prior) -> Sampler``.
      description: what it does and where it applies, for ``--help``.
    """

    applies: Callable
    cost: Callable
    memory: Callable
    make: Callable
    description: str


def _direct_matrix(model, prior, key):
    h = priors.penultimate(prior, model, key)
    if model.depth == 1:
        return h
    last = prior.sample_layer(jax.random.fold_in(key, model.depth - 1), model.layer_shapes[-1],
                              jnp.float32)
    return models.layer_product(model.activation(h), last)


def _gaussian(model, prior):
    return priors.is_builtin_gaussian(prior) and model.depth >= 2


def _layer_sizes(model):
    return [r * c for r, c in model.layer_shapes]


def _layer_by_layer(model):
    """First, last and at most two k x k layers are alive at once (priors.penultimate),
    with the hidden activations."""
    weights = sum(r * c for r, c in model.layer_shapes[:3]) + model.n_rows * model.n_cols
    return weights, model.n_rows * model.width * 4


# name -> SamplerSpec; 'auto' (the cheapest that applies) is not a sampler of its own.
SAMPLERS = Registry("--sampler", {
    "direct": SamplerSpec(
        applies=lambda model, prior: True,
        cost=lambda model: sum(_layer_sizes(model)),
        memory=_layer_by_layer,
        make=lambda model, prior: Sampler(
            "direct", lambda key: _direct_matrix(model, prior, key),
            lambda key: tuple(priors.sample_layers(prior, model, key))),
        description="draws every weight (any prior)"),
    "last_layer": SamplerSpec(
        applies=lambda model, prior: _gaussian(model, prior) and model.width > model.n_rows,
        cost=lambda model: sum(_layer_sizes(model)[:-1]) + model.n_rows * model.n_cols,
        memory=_layer_by_layer,
        make=lambda model, prior: Sampler(
            "last_layer", lambda key: collapsed.last_layer_matrix(model, key),
            lambda key: collapsed.last_layer_layers(model, key)),
        description="integrates the last layer out (Gaussian prior, width > rows)"),
    "wishart": SamplerSpec(
        applies=lambda model, prior: (_gaussian(model, prior) and model.is_linear
                                      and model.width >= model.n_rows),
        cost=lambda model: ((model.depth - 1) * (model.n_rows * (model.n_rows - 1) // 2
                                                 + CHI_SQUARE_COST * model.n_rows)
                            + model.n_rows * model.n_cols),
        memory=lambda model: (3 * model.depth * model.n_rows * model.n_rows
                              + model.n_rows * model.n_cols, 0),
        make=lambda model, prior: Sampler(
            "wishart", lambda key: collapsed.wishart_matrix(model, key),
            lambda key: collapsed.wishart_layers(model, key)),
        description="draws linear networks at a cost independent of the width (Gaussian "
                    "prior, width >= rows)"),
})
CHOICES = ("auto", *SAMPLERS.names)  # what --sampler takes


def draw_cost(name, model):
    """Random numbers one draw costs, in units of one standard normal."""
    return SAMPLERS[name].cost(model)


def applicable(model, prior):
    """Names of the samplers that are exact for this model and prior, the collapsed ones
    first ('direct', which always applies, last: 'auto' prefers them at equal cost)."""
    return [name for name in reversed(SAMPLERS.names) if SAMPLERS[name].applies(model, prior)]


def resolve(model, prior, name="auto"):
    """The sampler name ``name`` stands for ('auto': the cheapest exact one); ValueError if
    it is unknown or not exact for this model and prior."""
    if name not in CHOICES:
        raise ValueError(f"sampler must be one of {', '.join(CHOICES)}, got {name!r}")
    names = applicable(model, prior)
    if name == "auto":
        return min(names, key=lambda n: draw_cost(n, model))
    if name not in names:
        raise ValueError(f"sampler {name!r} is not exact for this model and prior "
                         f"(applicable: {', '.join(names)}); see gcsampler.factorization.samplers")
    return name


def make_sampler(model, prior, name="auto"):
    """The sampler called ``name`` ('auto': the cheapest exact one) for this model and prior."""
    name = resolve(model, prior, name)
    return SAMPLERS[name].make(model, prior)


def bytes_per_draw(problem, model, name):
    """A generous estimate of the device memory one draw needs to be drawn and evaluated
    (every value counted three times over, in float32)."""
    weights, hidden = SAMPLERS[name].memory(model)
    outputs = problem.n_rows * problem.n_cols + len(problem.train_ops) + len(problem.test_ops)
    return 4 * 3 * (2 * weights + hidden + 2 * outputs)
