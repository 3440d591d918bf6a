"""Priors over the layers of a factorization.

A prior is a per-layer sampler in the ``jax.random`` shape, ``(key, shape, dtype) ->
array``, plus an optional end-to-end Frobenius normalization. The engine calls the
sampler once per layer with a key derived from the draw's global index, inside a
jitted and vmapped kernel, so a user prior is batched and deterministic exactly
like a built-in one.

Built-in priors use the papers' scaling: entries of a layer with ``c`` output
columns are multiplied by ``1 / sqrt(c)`` (variance ``1/c`` for the Gaussian).

A prior may also say how to make a layer from standard normals (``from_normal``):
the rare-event sampler (:mod:`gcsampler.splitting`) moves particles in those
Gaussian coordinates. The built-in priors have it; a custom prior without it
is refused there, with a message saying so.
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gcsampler.core.registry import Registry
from gcsampler.factorization import models

LayerSampler = Callable[[jax.Array, tuple, jnp.dtype], jax.Array]


class Prior(NamedTuple):
    """A distribution over weight settings.

    Attributes:
      name: label for reports and configs.
      sample_layer: ``(key, shape, dtype) -> array`` drawing one layer matrix.
      normalize: divide the end-to-end matrix by its Frobenius norm (+1e-6).
      from_normal: optional ``z -> layer``: maps an array ``z`` of iid standard
        normals, of the layer's shape, to a layer with exactly the law of
        ``sample_layer``'s (what :mod:`gcsampler.splitting` needs); None if unknown.
    """

    name: str
    sample_layer: LayerSampler
    normalize: bool = False
    from_normal: Callable[[jax.Array], jax.Array] | None = None


def scaled(sampler):
    """Wrap a ``(key, shape, dtype)`` sampler with the papers' ``1/sqrt(output dim)`` scale."""

    def sample_layer(key, shape, dtype=jnp.float32):
        return sampler(key, shape, dtype) * jnp.asarray(shape[-1] ** -0.5, dtype)

    return sample_layer


# Each layer is drawn as one flat vector and reshaped: the same bits as drawing it in its
# shape (JAX's random bits are a function of the key and the flat position), at a
# third to a quarter of the cost for small layers (benchmarks/breakdown.py).


def _standard_normal(key, shape, dtype):
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def _symmetric_uniform(key, shape, dtype):
    return jax.random.uniform(key, (math.prod(shape),), dtype, minval=-1.0,
                              maxval=1.0).reshape(shape)


def _gaussian_from_normal(z):
    return z * jnp.asarray(z.shape[-1] ** -0.5, z.dtype)


def _uniform_from_normal(z):
    """erf(z / sqrt 2) = 2 Phi(z) - 1 is U(-1, 1) for a standard normal z."""
    return jax.scipy.special.erf(z * jnp.asarray(0.5**0.5, z.dtype)) * jnp.asarray(
        z.shape[-1] ** -0.5, z.dtype)


# Module-level samplers: equal priors hash equal, so compiled kernels are shared.
_SCALED_NORMAL = scaled(_standard_normal)
_SCALED_UNIFORM = scaled(_symmetric_uniform)


def gaussian(normalize=False):
    """Entries iid N(0, 1/c) for a layer with c output columns (the papers' G&C prior)."""
    return Prior("gaussian", _SCALED_NORMAL, normalize, _gaussian_from_normal)


def uniform(normalize=False):
    """Entries iid U(-1, 1) / sqrt(c) for a layer with c output columns."""
    return Prior("uniform", _SCALED_UNIFORM, normalize, _uniform_from_normal)


def custom(sample_layer, name="custom", normalize=False, from_normal=None):
    """A user prior from a per-layer sampler ``(key, shape, dtype) -> array``.

    The sampler must be a pure JAX function of its key (it is jitted and
    vmapped); use :func:`scaled` to apply the papers' scaling to a standard one.
    ``from_normal`` (optional) maps a layer-shaped array of standard normals to a
    layer with the same law, e.g. an inverse CDF of the normal CDF; the splitting
    sampler needs it.
    """
    if not callable(sample_layer):
        raise TypeError(f"sample_layer must be callable, got {type(sample_layer).__name__}")
    if from_normal is not None and not callable(from_normal):
        raise TypeError(f"from_normal must be callable or None, got {type(from_normal).__name__}")
    return Prior(name, sample_layer, normalize, from_normal)


def is_builtin_gaussian(prior):
    """Whether ``prior`` draws layers like :func:`gaussian` (what collapsed samplers need)."""
    return prior.sample_layer is _SCALED_NORMAL


# The priors ``--prior`` names: name -> a function of ``normalize`` that makes the Prior.
# ``MODULE:ATTR`` names a user's own: a Prior, or a layer sampler (key, shape, dtype).
PRIORS = Registry("--prior", {"gaussian": gaussian, "uniform": uniform}, importable=True)


def make_prior(name, normalize=False):
    """A prior by name: a registered one, or ``MODULE:ATTR`` naming a :class:`Prior` (its
    normalization set to ``normalize``) or a layer sampler ``(key, shape, dtype)``."""
    if name in PRIORS:
        return PRIORS[name](normalize)
    found = PRIORS.resolve(name)
    if isinstance(found, Prior):
        return found._replace(normalize=normalize)
    if not callable(found):
        raise ValueError(f"--prior {name} is neither a Prior nor a layer sampler "
                         f"(key, shape, dtype) -> array")
    return custom(found, name=name, normalize=normalize)


def sample_layers(prior, model, key, dtype=jnp.float32):
    """One weight setting: layer l is drawn with ``fold_in(key, l)``."""
    return [prior.sample_layer(jax.random.fold_in(key, layer), shape, dtype)
            for layer, shape in enumerate(model.layer_shapes)]


def penultimate(prior, model, key, dtype=jnp.float32):
    """``s(...s(W_1) W_2 ...) W_{d-1}`` of one draw (``W_1`` at depth 1), drawing each layer
    just before it is used.

    The same layers as :func:`sample_layers` (same keys), but the middle layers
    are drawn inside a ``lax.scan``, so a draw holds one k x k layer at a time:
    deep, wide networks fit in memory.
    """
    shapes = model.layer_shapes
    h = prior.sample_layer(jax.random.fold_in(key, 0), shapes[0], dtype)
    if model.depth <= 2:
        return h

    def layer(h, index):
        w = prior.sample_layer(jax.random.fold_in(key, index), shapes[1], dtype)
        return models.layer_product(model.activation(h), w), None

    h, _ = jax.lax.scan(layer, h, jnp.arange(1, model.depth - 1, dtype=jnp.uint32))
    return h


def check_prior(prior, model, dtype=jnp.float32):
    """Raise ValueError if the prior's layers have the wrong shape or dtype, or if a
    custom prior draws NaN or inf.

    Shapes and dtypes come from tracing the sampler abstractly; a custom prior is
    also drawn once per layer shape (a prior that draws non-finite weights only
    rarely is not caught here: those draws are counted as non-finite and never
    accepted).
    """
    key = jax.random.key(0)
    try:
        layers = jax.eval_shape(lambda k: sample_layers(prior, model, k, dtype), key)
    except Exception as err:  # a user function that cannot be traced
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"prior {prior.name!r} cannot be traced by JAX "
                         f"({type(err).__name__}: {reason})") from err
    for layer, (out, shape) in enumerate(zip(layers, model.layer_shapes)):
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"prior {prior.name!r} returned shape {tuple(out.shape)} for layer "
                             f"{layer + 1}, expected {tuple(shape)}")
        if out.dtype != jnp.dtype(dtype):
            raise ValueError(f"prior {prior.name!r} returned dtype {out.dtype} for layer "
                             f"{layer + 1}, expected {jnp.dtype(dtype)}")
    if prior.sample_layer not in (_SCALED_NORMAL, _SCALED_UNIFORM):
        _check_finite(prior, model, dtype)


def _check_finite(prior, model, dtype):
    """Draw each layer shape of a custom prior once; refuse NaN or inf."""
    checked = set()
    for layer, shape in enumerate(model.layer_shapes):
        if shape in checked:
            continue
        checked.add(shape)
        values = prior.sample_layer(jax.random.fold_in(jax.random.key(0), layer), shape, dtype)
        if not bool(jnp.all(jnp.isfinite(values))):
            raise ValueError(f"prior {prior.name!r} drew NaN or inf for layer {layer + 1}; a "
                             f"prior must draw finite weights")
