"""Samplers: how a draw's key becomes its end-to-end matrix, and its full weights.

Every sampler draws the end-to-end matrix with exactly the prior's distribution;
they differ in how many random numbers that takes. ``direct`` draws every weight
and works for any prior. The collapsed samplers (:mod:`gcsampler.collapsed`)
integrate weights out analytically and apply to the built-in Gaussian prior:

- ``last_layer``: any activation, depth >= 2, width > n_rows;
- ``wishart``: linear networks, depth >= 2, width >= n_rows; cost independent of width.

``auto`` takes the sampler that applies with the lowest :func:`draw_cost`. Each
sampler also regenerates a draw's full weights, exactly distributed as the prior
given the drawn matrix.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gcsampler import collapsed, priors

SAMPLERS = ("auto", "direct", "last_layer", "wishart")
# A chi-square variate costs about 10 normals (rejection sampling; measured on CPU:
# at width 5 drawing every weight beats the Bartlett factors, at width 40 it loses).
CHI_SQUARE_COST = 10


class Sampler(NamedTuple):
    """A way to draw.

    Attributes:
      name: one of SAMPLERS except 'auto'.
      matrix: ``key -> (n_rows, n_cols)`` end-to-end matrix of the draw, before
        any normalization.
      layers: ``key -> tuple of layer matrices`` of the same draw; their product
        is ``matrix(key)`` up to float rounding.
    """

    name: str
    matrix: Callable
    layers: Callable


def draw_cost(name, model):
    """Random numbers one draw costs, in units of one standard normal."""
    n, m = model.n_rows, model.n_cols
    sizes = [r * c for r, c in model.layer_shapes]
    if name == "wishart":
        return (model.depth - 1) * (n * (n - 1) // 2 + CHI_SQUARE_COST * n) + n * m
    if name == "last_layer":
        return sum(sizes[:-1]) + n * m
    return sum(sizes)


def applicable(model, prior):
    """Names of the samplers that are exact for this model and prior."""
    names = []
    gaussian = priors.is_builtin_gaussian(prior) and model.depth >= 2
    if gaussian and model.is_linear and model.width >= model.n_rows:
        names.append("wishart")
    if gaussian and model.width > model.n_rows:
        names.append("last_layer")
    return names + ["direct"]


def make_sampler(model, prior, name="auto"):
    """The sampler called ``name`` ('auto': the cheapest exact one) for this model and prior."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    names = applicable(model, prior)
    if name == "auto":
        name = min(names, key=lambda n: draw_cost(n, model))
    elif name not in names:
        raise ValueError(f"sampler {name!r} is not exact for this model and prior "
                         f"(applicable: {', '.join(names)}); see gcsampler.samplers")
    if name == "direct":
        return Sampler("direct", lambda key: _direct_matrix(model, prior, key),
                       lambda key: tuple(priors.sample_layers(prior, model, key)))
    if name == "wishart":
        return Sampler("wishart", lambda key: collapsed.wishart_matrix(model, key),
                       lambda key: collapsed.wishart_layers(model, key))
    return Sampler("last_layer", lambda key: collapsed.last_layer_matrix(model, key),
                   lambda key: collapsed.last_layer_layers(model, key))


def _direct_matrix(model, prior, key):
    h = priors.penultimate(prior, model, key)
    if model.depth == 1:
        return h
    last = prior.sample_layer(jax.random.fold_in(key, model.depth - 1), model.layer_shapes[-1],
                              jnp.float32)
    return jnp.matmul(model.activation(h), last, precision=jax.lax.Precision.HIGHEST)
