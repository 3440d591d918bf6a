"""Deep matrix factorizations: layer shapes and the end-to-end matrix.

``W = s(...s(s(W_1) W_2)...) W_d`` with ``W_1`` of shape (n_rows, k), ``W_j`` (k, k)
and ``W_d`` (k, n_cols); the activation ``s`` acts elementwise after each of the
first d - 1 layers. Depth 1 is the matrix itself.
"""

import functools
import operator
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gcsampler.core.registry import Registry


def _identity(x):
    return x


@functools.lru_cache(maxsize=None)
def _leaky_relu(slope):
    """One function object per slope, so equal models share compiled kernels."""
    return functools.partial(jax.nn.leaky_relu, negative_slope=slope)


# The activations ``--activation`` names: name -> a function of the leaky slope that
# gives the elementwise function. ``MODULE:ATTR`` names a user's own elementwise function.
ACTIVATIONS = Registry("--activation", {
    "linear": lambda slope: _identity,
    "tanh": lambda slope: jnp.tanh,
    "relu": lambda slope: jax.nn.relu,
    "leaky_relu": lambda slope: _leaky_relu(float(slope)),
}, importable=True)


def activation_fn(name, leaky_slope=0.2):
    """The elementwise function of an activation: a registered name or ``MODULE:ATTR``."""
    if name in ACTIVATIONS:
        return ACTIVATIONS[name](leaky_slope)
    fn = ACTIVATIONS.resolve(name)
    if not callable(fn):
        raise ValueError(f"--activation {name} is not a function")
    return fn


class Factorization(NamedTuple):
    """A depth-``depth``, width-``width`` factorization of an n_rows x n_cols matrix.

    Attributes:
      n_rows, n_cols: shape of the end-to-end matrix.
      depth: number of layers (>= 1).
      width: inner dimension k (>= 1; unused at depth 1).
      activation: an elementwise JAX function applied between layers.
      activation_name: label for reports and configs ('custom' for user functions).
    """

    n_rows: int
    n_cols: int
    depth: int
    width: int
    activation: Callable = _identity
    activation_name: str = "linear"

    @property
    def layer_shapes(self):
        """Shapes of W_1 .. W_d."""
        if self.depth == 1:
            return ((self.n_rows, self.n_cols),)
        inner = ((self.width, self.width),) * (self.depth - 2)
        return ((self.n_rows, self.width),) + inner + ((self.width, self.n_cols),)

    @property
    def is_linear(self):
        return self.activation is _identity


def factorization(n_rows, n_cols, depth, width, activation="linear", leaky_slope=0.2):
    """Build a :class:`Factorization`; ``activation`` is a name or an elementwise function."""
    sizes = {"n_rows": n_rows, "n_cols": n_cols, "depth": depth, "width": width}
    for name, value in sizes.items():
        try:
            sizes[name] = operator.index(value)
        except TypeError:
            sizes[name] = 0
        if isinstance(value, bool) or sizes[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if callable(activation):
        fn, label = activation, getattr(activation, "__name__", "custom")
    else:
        fn, label = activation_fn(activation, leaky_slope), activation
    return Factorization(**sizes, activation=fn, activation_name=label)


def check_activation(model):
    """Raise ValueError unless the model's activation maps a float32 array to one of the
    same shape and dtype (traced abstractly, so any JAX function is tried, not run)."""
    hidden = jax.ShapeDtypeStruct((model.n_rows, model.width), jnp.float32)
    try:
        out = jax.eval_shape(model.activation, hidden)
    except Exception as err:  # a user function that cannot be traced
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"activation {model.activation_name!r} cannot be applied to a "
                         f"float32 array ({reason})") from None
    if getattr(out, "shape", None) != hidden.shape or getattr(out, "dtype", None) != hidden.dtype:
        raise ValueError(f"activation {model.activation_name!r} must be elementwise: it maps a "
                         f"float32 {hidden.shape} array to {out}")


# Products with at most this many multiplications are written as a broadcast multiply
# and a sum over the shared axis: batched over draws, XLA's CPU backend runs a 5x5 by 5x5
# product 14 times faster than as a dot (38 against 541 ns; about even from 10x10).
SMALL_PRODUCT = 256


def layer_product(a, b):
    """``a @ b`` of two float32 matrices (full float32 precision), small ones as an
    elementwise product summed over the shared axis (see :data:`SMALL_PRODUCT`)."""
    if a.shape[-2] * a.shape[-1] * b.shape[-1] <= SMALL_PRODUCT:
        return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def end_to_end(model, layers):
    """The end-to-end matrix of one weight setting (a sequence of layer matrices)."""
    h = layers[0]
    for w in layers[1:]:
        h = layer_product(model.activation(h), w)
    return h


def frobenius_normalize(matrix):
    """Divide by the Frobenius norm plus 1e-6, the papers' normalization.

    The sum of squares overflows float32 once entries pass ~1e19 (deep unnormalized
    products do); the norm is then computed from the matrix divided by its largest
    entry, so such a draw is still normalized instead of becoming W / inf = 0.
    """
    axes = (-2, -1)
    norm = jnp.sqrt(jnp.sum(jnp.square(matrix), axis=axes, keepdims=True))
    peak = jnp.max(jnp.abs(matrix), axis=axes, keepdims=True)
    rescaled = peak * jnp.sqrt(jnp.sum(jnp.square(matrix / peak), axis=axes, keepdims=True))
    norm = jnp.where(jnp.isinf(norm) & jnp.isfinite(peak), rescaled, norm)
    return matrix / (norm + 1e-6)
