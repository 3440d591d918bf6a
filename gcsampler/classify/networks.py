"""Small two-class classifiers in pure JAX, their parameter priors and their losses.

A model is a frozen dataclass of structural choices only (hashable, so a compiled kernel can
be cached per model). Its parameters are a tuple of arrays in the order of
``model.param_shapes``; ``model.apply(params, x)`` maps inputs ``(n, ...)`` to logits
``(n, n_classes)`` and is written for one parameter setting, so a population is evaluated
with ``jax.vmap(model.apply, in_axes=(0, None))``. Matrix products and convolutions run at
``Precision.HIGHEST`` so that which training points a draw classifies correctly does not
depend on the backend's default float32 precision (TF32 on recent GPUs).

Chiang et al. (ICLR 2023) measure a network's fit by the cross-entropy of its NORMALIZED
logits: the logits divided by the product over layers of each weight's Frobenius norm over
``model.norm_divisor`` (3 for their LeNet, 1 for their MLP; biases are not in the product).
Raw logits of a draw from U(-1, 1) are in the hundreds, so its raw cross-entropy says almost
nothing beyond which points it classifies; the normalized one measures its margin. :func:`fit`
computes either (``LOGITS``).
"""

import dataclasses
import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "linear": lambda h: h}
POOLS = ("max", "avg")
KERNELS = (3, 5)
PRIORS = ("uniform", "gaussian")
PADDINGS = ("SAME", "VALID")
LOGITS = ("normalized", "raw")
LENET_SIZES = (6, 16, 120, 84)   # LeNet-5's conv channels and dense widths

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_count(name, value, smallest):
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        raise ValueError(f"{name} must be an integer >= {smallest}, got {value!r}")


def _dense(h, w, b):
    return jnp.matmul(h, w, precision=_HIGHEST) + b


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fully connected network: ``depth`` hidden layers of ``width`` units, then the logits.

    Every layer has weights ``(fan_in, fan_out)`` and, with ``hidden_biases`` (the default),
    a bias ``(fan_out,)``; without them only the logits have a bias, as in the published MLPs
    of Chiang et al. ``depth=0`` is a linear (logistic-regression) model. Inputs of any shape
    are flattened, so ``in_dim`` is the product of the input's trailing dimensions.
    """

    in_dim: int
    depth: int = 1
    width: int = 10
    activation: str = "relu"
    n_classes: int = 2
    hidden_biases: bool = True

    norm_divisor = 1.0   # normalized logits: f / prod ||W||_F (Chiang et al.'s MLP)

    def __post_init__(self):
        _check_count("in_dim", self.in_dim, 1)
        _check_count("depth", self.depth, 0)
        _check_count("width", self.width, 1)
        _check_count("n_classes", self.n_classes, 2)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        if not isinstance(self.hidden_biases, bool):
            raise ValueError(f"hidden_biases must be True or False, got {self.hidden_biases!r}")

    @property
    def _dims(self):
        return (self.in_dim,) + (self.width,) * self.depth + (self.n_classes,)

    @property
    def _layers(self):
        """Per layer, input layer first: its (weight shape, bias shape or None)."""
        pairs = list(itertools.pairwise(self._dims))
        return [((a, b), (b,) if self.hidden_biases or layer == len(pairs) - 1 else None)
                for layer, (a, b) in enumerate(pairs)]

    @property
    def param_shapes(self):
        """Weights and bias of each layer, input layer first (no hidden biases: every weight,
        then the logits' bias)."""
        if self.hidden_biases:
            return tuple(shape for pair in self._layers for shape in pair)
        return tuple(weight for weight, _ in self._layers) + (self._layers[-1][1],)

    @property
    def weight_indices(self):
        """Positions in ``param_shapes`` of the weights (the factors of the logit scale)."""
        return tuple(i for i, shape in enumerate(self.param_shapes) if len(shape) == 2)

    @property
    def fan_ins(self):
        """The number of inputs of the layer each parameter belongs to."""
        if self.hidden_biases:
            return tuple(fan for fan in self._dims[:-1] for _ in range(2))
        return self._dims[:-1] + (self._dims[-2],)

    @property
    def n_params(self):
        return sum(math.prod(shape) for shape in self.param_shapes)

    def apply(self, params, x):
        """Logits ``(n, n_classes)`` of one parameter setting on inputs ``(n, ...)``."""
        h = jnp.reshape(x, (x.shape[0], -1))
        act = ACTIVATIONS[self.activation]
        if self.hidden_biases:
            weights, biases = params[0::2], params[1::2]
        else:
            weights, biases = params[:-1], (0.0,) * self.depth + (params[-1],)
        for layer in range(self.depth):
            h = act(_dense(h, weights[layer], biases[layer]))
        return _dense(h, weights[-1], biases[-1])


@dataclasses.dataclass(frozen=True)
class CNN:
    """A LeNet-style network for images ``(n, height, width, channels)``.

    Each entry of ``channels`` is a block conv(kernel x kernel, ``padding``, stride 1) -> relu
    -> 2x2 pool (stride 2, dropping an odd last row or column); the feature map is flattened
    and passes through relu dense layers of widths ``dense``, then a dense layer to the logits.
    Conv kernels are ``(kernel, kernel, in, out)`` (HWIO) with a bias per output channel.
    'VALID' convs (LeNet's own, and the published code's) shrink each side by ``kernel - 1``.
    """

    in_shape: tuple = (8, 8, 1)
    channels: tuple = (3, 8)
    dense: tuple = (60, 42)
    kernel: int = 5
    pool: str = "max"
    n_classes: int = 2
    padding: str = "SAME"

    norm_divisor = 3.0   # normalized logits: f / prod (||W||_F / 3) (Chiang et al.'s LeNet)

    def __post_init__(self):
        for name in ("in_shape", "channels", "dense"):   # lists would make the model unhashable
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if (len(self.in_shape) != 3 or
                any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                    for d in self.in_shape)):
            raise ValueError(f"in_shape must be (height, width, channels) of positive integers, "
                             f"got {self.in_shape!r}")
        for name in ("channels", "dense"):
            for size in getattr(self, name):
                _check_count(f"every entry of {name}", size, 1)
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(map(str, KERNELS))}, "
                             f"got {self.kernel!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        _check_count("n_classes", self.n_classes, 2)
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, "
                             f"got {self.padding!r}")
        if min(self._feature_map()[:2]) < 1:
            raise ValueError(f"in_shape {self.in_shape!r} is too small for {len(self.channels)} "
                             f"{self.padding} {self.kernel}x{self.kernel} convs, each followed "
                             f"by a 2x2 pool")

    def _feature_map(self):
        """(height, width, channels) after the last pool (a side may reach 0 if too small)."""
        height, width, channels = self.in_shape
        shrink = self.kernel - 1 if self.padding == "VALID" else 0
        for out in self.channels:
            height, width = max(height - shrink, 0) // 2, max(width - shrink, 0) // 2
            channels = out
        return height, width, channels

    @property
    def flat_dim(self):
        """The size of the flattened feature map after the last pool."""
        return math.prod(self._feature_map())

    @property
    def _dense_dims(self):
        return (self.flat_dim,) + tuple(self.dense) + (self.n_classes,)

    @property
    def param_shapes(self):
        """Kernel and bias of each conv, then weights and bias of each dense layer."""
        ins = (self.in_shape[2],) + tuple(self.channels)
        conv = tuple(shape for a, b in itertools.pairwise(ins)
                     for shape in ((self.kernel, self.kernel, a, b), (b,)))
        dims = self._dense_dims
        dense = tuple(shape for a, b in itertools.pairwise(dims) for shape in ((a, b), (b,)))
        return conv + dense

    @property
    def weight_indices(self):
        """Positions in ``param_shapes`` of the conv kernels and dense weights."""
        return tuple(range(0, len(self.param_shapes), 2))

    @property
    def fan_ins(self):
        """The number of inputs of the layer each parameter belongs to."""
        ins = (self.in_shape[2],) + tuple(self.channels[:-1])
        conv = tuple(self.kernel * self.kernel * c for c in ins for _ in range(2))
        return conv + tuple(fan for fan in self._dense_dims[:-1] for _ in range(2))

    @property
    def n_params(self):
        return sum(math.prod(shape) for shape in self.param_shapes)

    def _pool(self, h):
        window = (1, 2, 2, 1)
        if self.pool == "max":
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, window, window, "VALID")
        return jax.lax.reduce_window(h, 0.0, jax.lax.add, window, window, "VALID") / 4

    def apply(self, params, x):
        """Logits ``(n, n_classes)`` of one parameter setting on images ``(n, H, W, C)``."""
        h = x
        blocks = len(self.channels)
        for block in range(blocks):
            kernel, bias = params[2 * block], params[2 * block + 1]
            h = jax.lax.conv_general_dilated(h, kernel, (1, 1), self.padding,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                             precision=_HIGHEST)
            h = self._pool(jax.nn.relu(h + bias))
        h = jnp.reshape(h, (h.shape[0], -1))
        dense = params[2 * blocks:]
        for layer in range(len(self.dense)):
            h = jax.nn.relu(_dense(h, dense[2 * layer], dense[2 * layer + 1]))
        return _dense(h, dense[-2], dense[-1])


def lenet(width=0.5, kernel=5, pool="max", in_shape=(8, 8, 1), n_classes=2, padding="SAME"):
    """LeNet-5's layout with its 6/16 channels and 120/84 dense units scaled by ``width``.

    Sizes are rounded and at least 1: ``width=0.5`` (the paper's) gives channels (3, 8) and
    dense layers (60, 42). On 28x28 MNIST with 'VALID' convs (the published network) the maps
    are 24, 12, 8 and 4 pixels wide, 128 features reach the dense layers and the network has
    11,074 parameters. On 8x8 inputs 'SAME' convs keep 8x8, the pools give 4x4 and 2x2, so 32
    features reach the dense layers (5x5 'VALID' convs do not fit 8x8).
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a number > 0, got {width!r}")
    c1, c2, d1, d2 = (max(1, round(size * width)) for size in LENET_SIZES)
    return CNN(in_shape, (c1, c2), (d1, d2), kernel, pool, n_classes, padding)


def sample_params(model, key, prior="uniform", dtype=jnp.float32):
    """One parameter setting of ``model`` (a tuple in ``param_shapes`` order) drawn from ``prior``.

    ``prior`` is one of:

    - ``'uniform'``: every weight and bias iid U(-1, 1), the G&C prior of Chiang et al.
    - ``'gaussian'``: every weight and bias of a layer with ``fan_in`` inputs iid
      N(0, 1/fan_in) (fan_in = kernel area x input channels for a conv). Biases share the
      weights' scale so that a bias adds about as much to a unit as one input does, instead of
      drowning a sum of ``fan_in`` small terms.
    - a callable ``(key, shape, dtype) -> array`` in the ``jax.random`` shape, called for
      parameter i with ``fold_in(key, i)`` and applied as is (no scaling is added).

    A built-in prior draws all ``n_params`` numbers with one call on ``key`` and cuts them into
    the parameters in order: one random call per draw compiles several times faster than one
    per parameter. Pure in ``key``: vmap it over keys to draw a population.
    """
    shapes = model.param_shapes
    if callable(prior) and not isinstance(prior, str):
        return tuple(prior(jax.random.fold_in(key, index), shape, dtype)
                     for index, shape in enumerate(shapes))
    if prior not in PRIORS:
        message = (f"prior must be one of {', '.join(PRIORS)} or a callable "
                   f"(key, shape, dtype) -> array, got ")
        if isinstance(prior, str):
            raise ValueError(message + repr(prior))
        raise TypeError(message + type(prior).__name__)
    sizes = [math.prod(shape) for shape in shapes]
    if prior == "uniform":
        flat = jax.random.uniform(key, (sum(sizes),), dtype, minval=-1.0, maxval=1.0)
    else:
        flat = jax.random.normal(key, (sum(sizes),), dtype)
    pieces = jnp.split(flat, list(itertools.accumulate(sizes))[:-1])
    params = tuple(jnp.reshape(piece, shape) for piece, shape in zip(pieces, shapes))
    if prior == "gaussian":
        params = tuple(p * jnp.asarray(fan_in ** -0.5, dtype)
                       for p, fan_in in zip(params, model.fan_ins))
    return params


def logit_scale(model, params):
    """The normalizer of ``params``' logits: the product over ``model.weight_indices`` of
    ``||W||_F / model.norm_divisor`` (Chiang et al.'s normalized network)."""
    divisor = jnp.asarray(model.norm_divisor, params[0].dtype)
    return math.prod(jnp.sqrt(_pairwise_sum(jnp.ravel(jnp.square(params[i])))) / divisor
                     for i in model.weight_indices)


def _pairwise_sum(values):
    """The sum over the last axis of ``values`` by a fixed tree of elementwise adds
    (zero-padded to a power of two). ``jnp.sum``'s order of additions may change with how
    many draws are evaluated at once, and a draw's loss must be the same bits for any batch
    size."""
    size = values.shape[-1]
    pad = [(0, 0)] * (values.ndim - 1) + [(0, (1 << (size - 1).bit_length()) - size)]
    values = jnp.pad(values, pad)
    while values.shape[-1] > 1:
        values = values[..., 0::2] + values[..., 1::2]
    return values[..., 0]


def fit(model, params, x, y, logits="normalized"):
    """:class:`Losses` of one parameter setting on ``(x, y)``: the cross-entropy of its
    normalized logits (``logits='normalized'``, see :func:`logit_scale`) or of its raw ones
    (``'raw'``). Accuracy is the same for both (the scale is positive)."""
    out = model.apply(params, x)
    if logits == "normalized":
        out = out / logit_scale(model, params)
    elif logits != "raw":
        raise ValueError(f"logits must be one of {', '.join(LOGITS)}, got {logits!r}")
    return losses(out, y)


class Losses(NamedTuple):
    """Per-model accuracy (fraction correct) and mean cross-entropy (nats)."""

    accuracy: jax.Array
    cross_entropy: jax.Array


def losses(logits, y):
    """Accuracy and mean cross-entropy of logits ``(..., n, classes)`` against labels ``(n,)``.

    Leading axes (a population) are kept. A point counts as correct when its label has the
    largest logit, ties going to the lower class (``argmax``). The cross-entropy uses a stable
    log-softmax, so it stays finite for logits of any size, and sums the points in a fixed
    order (the same bits however many draws are evaluated at once). The accuracy is a count
    of correct points over their number, exact in float32 below 2**24 points.
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_p, jnp.broadcast_to(y[:, None], log_p.shape[:-1] + (1,)),
                                 axis=-1)[..., 0]
    correct = jnp.argmax(logits, axis=-1) == y
    n = jnp.asarray(picked.shape[-1], logits.dtype)
    return Losses(jnp.mean(correct, axis=-1, dtype=logits.dtype), -_pairwise_sum(picked) / n)
