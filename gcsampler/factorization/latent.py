"""Gaussian coordinates of a prior: a weight setting as a function of standard normals.

The rare-event sampler (:mod:`gcsampler.splitting`) moves particles with kernels
that leave a standard normal distribution restricted to a set invariant
(elliptical slice, preconditioned Crank-Nicolson). So it works on a vector ``z``
of iid N(0, 1) numbers and a map ``z -> end-to-end matrix`` whose image law is
the prior's law of W. Two maps exist:

- ``direct``: every layer from its own block of ``z`` through the prior's
  ``from_normal`` (Gaussian: ``z / sqrt(c)``; uniform: ``erf(z / sqrt 2) / sqrt(c)``,
  the probability integral transform); any prior that provides ``from_normal``.
- ``last_layer``: the built-in Gaussian prior, width > n_rows: W_1 .. W_{d-1} as
  in ``direct`` and an (n_rows, n_cols) block Z with W = L Z / sqrt(n_cols), L the
  LQ factor of the last layer's input
  (:func:`gcsampler.factorization.collapsed.collapse_last_layer`);
  the k x n_cols last layer shrinks to n_rows x n_cols numbers.

``auto`` takes the one with fewer coordinates.

For the built-in Gaussian prior, both maps (before any normalization) are linear
in their last block given the rest, and ``direct`` for a linear network in every
layer's block (``Latent.linear_blocks``). Then the train predictions are a
Gaussian linear function of such a block given the rest, which
:mod:`gcsampler.factorization.fibers` uses to move particles along the level set.
"""

from typing import Callable, NamedTuple

import numpy as np

from gcsampler.factorization import collapsed, models, priors

LATENTS = ("auto", "direct", "last_layer")


class Latent(NamedTuple):
    """A map from standard normals to weight settings.

    Attributes:
      name: 'direct' or 'last_layer'.
      dim: length of the coordinate vector ``z``.
      matrix: ``z (dim,) -> (n_rows, n_cols)`` end-to-end matrix, before any
        normalization; its law under z ~ N(0, I) is the prior's.
      linear_blocks: ``(start, stop)`` pairs of the blocks ``z[start:stop]`` in
        which ``matrix`` is linear given the rest of ``z`` (the last block last).
      layers: ``((start, stop), shape)`` of every block, in order: the block read as a
        matrix of ``shape`` is a layer (for ``last_layer``, the last one is the
        (n_rows, n_cols) block that stands for the last layer).
    """

    name: str
    dim: int
    matrix: Callable
    linear_blocks: tuple = ()
    layers: tuple = ()


def applicable(model, prior):
    """Names of the coordinate maps that are exact for this model and prior."""
    if prior.from_normal is None:
        return []
    names = ["direct"]
    if priors.is_builtin_gaussian(prior) and model.depth >= 2 and model.width > model.n_rows:
        names.append("last_layer")
    return names


def make_latent(model, prior, name="auto"):
    """The coordinate map ``name`` ('auto': the smallest exact one) for this model and prior.

    Raises ValueError for a prior without ``from_normal`` or a map that does not apply.
    """
    if name not in LATENTS:
        raise ValueError(f"latent must be one of {', '.join(LATENTS)}, got {name!r}")
    names = applicable(model, prior)
    if not names:
        raise ValueError(f"prior {prior.name!r} has no from_normal map (standard normals -> "
                         f"a layer), which the splitting sampler needs; give one to "
                         f"gcsampler.custom(..., from_normal=...)")
    if name == "auto":
        name = names[-1]
    elif name not in names:
        raise ValueError(f"latent {name!r} is not exact for this model and prior "
                         f"(applicable: {', '.join(names)})")
    shapes = list(model.layer_shapes)
    if name == "last_layer":
        shapes[-1] = (model.n_rows, model.n_cols)
    sizes = [r * c for r, c in shapes]
    offsets = np.cumsum([0] + sizes)

    def layers(z):
        return [prior.from_normal(z[offsets[i]:offsets[i + 1]].reshape(shape))
                for i, shape in enumerate(shapes)]

    blocks = tuple((int(offsets[i]), int(offsets[i + 1])) for i in range(len(shapes)))
    layer_blocks = tuple(zip(blocks, (tuple(shape) for shape in shapes)))
    if not priors.is_builtin_gaussian(prior):
        blocks = ()         # from_normal need not be linear
    elif name == "last_layer" or (model.depth > 1 and not model.is_linear):
        blocks = blocks[-1:]

    def hidden(z):
        """The last layer's input s(...s(W_1)...) (depth >= 2)."""
        return model.activation(models.end_to_end(model, layers(z)[:-1]))

    if name == "direct":
        return Latent("direct", int(offsets[-1]), lambda z: models.end_to_end(model, layers(z)),
                      blocks, layer_blocks)

    def matrix(z):
        return collapsed.collapse_last_layer(model, hidden(z), z[offsets[-2]:].reshape(shapes[-1]))

    return Latent("last_layer", int(offsets[-1]), matrix, blocks, layer_blocks)


def normalized(latent, prior):
    """``z -> matrix`` with the prior's end-to-end normalization applied."""
    if not prior.normalize:
        return latent.matrix
    return lambda z: models.frobenius_normalize(latent.matrix(z))
