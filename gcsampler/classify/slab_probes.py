"""Simple or complex? The slab probes of Chiang et al. (ICLR 2023, Fig. 3), applied to the
networks Guess & Check accepted.

On the four-slab data (:func:`gcsampler.classify.data.published_slab`) the label is both a
linear function of x (class 1 left of x = -0.1, class 0 right of x = 0.1) and an alternating
function of y, so a network that fits the training set may have learned either rule. Fig. 3
of the paper asks which one G&C's networks learn, and answers with two probe sets built by
the published code (Ping-C/optimizer, ``datasets.py``, re-implemented here):

- the LINEAR probe (``get_linear_data(samples=30)``): 30 points on each of the lines
  x = 0.1 (class 0) and x = -0.1 (class 1), y from 1 down to -1; a network that classifies
  all 60 separates the classes by x;
- the NONLINEAR probe (``get_nonlinear_data(samples, num_slabs=4)``): the zigzag through the
  gaps between the slabs, three segments of slope +-1 with 10 points each, shifted by
  0.1 * sqrt(2) to the right (class 0) and to the left (class 1); a network that classifies
  all 60 follows the slabs' alternating boundary.

``evaluate_slab_model_bins.py`` counts the accepted networks that classify each probe
perfectly. Here the accepted networks are not stored, only their draw indices: each is
regenerated from (run seed, index) exactly as the G&C step drew it (:func:`draw_params`;
:mod:`gcsampler.core.keys`), and :func:`solution_counts` evaluates both probes on all of
them at once (jitted and vmapped over the indices, a fixed chunk at a time).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.classify import networks
from gcsampler.core import keys
from gcsampler.core.devices import LOG2_BLOCK_RANGE

# The published probe construction (Ping-C/optimizer, datasets.py).
LINEAR_X = 0.1            # the linear probe's lines: x = +-0.1
LINEAR_SAMPLES = 30       # points per line
NONLINEAR_SLABS = 4
NONLINEAR_MARGIN = 0.1    # complex_margin
NONLINEAR_SEGMENT = 10    # points per zigzag segment
NONLINEAR_SHIFT = 0.1 * math.sqrt(2)   # horizontal shift of the zigzag: 0.1 normal to it
SLAB_THICKNESS = (2 - 3 * NONLINEAR_MARGIN * 2) / NONLINEAR_SLABS   # 0.35
SEGMENT_RISE = 2 * NONLINEAR_MARGIN + SLAB_THICKNESS   # y span of one segment: 0.55

COUNTS = ("accepted", "linear", "nonlinear", "both", "neither")
CHUNK = 1024              # draws evaluated per compiled call


def linear_probe():
    """The linear probe: ``(x float32 (60, 2), y int32 (60,))``, the 30 points
    ``(0.1, y)`` of class 0 first, then the 30 points ``(-0.1, y)`` of class 1, ``y`` from
    1 down to -1."""
    y_grid = np.linspace(1, -1, LINEAR_SAMPLES)
    right = np.stack([np.full_like(y_grid, LINEAR_X), y_grid], axis=1)
    left = np.stack([np.full_like(y_grid, -LINEAR_X), y_grid], axis=1)
    x = np.concatenate([right, left]).astype(np.float32)
    y = np.repeat(np.array([0, 1], np.int32), LINEAR_SAMPLES)
    return x, y


def zigzag():
    """The published zigzag, float64 ``(30, 2)``: three segments of 10 points, bottom to
    top, ``x = (y - y_cross) * sign`` with ``y_cross`` the centre of a gap between slabs and
    ``sign`` alternating from +1."""
    y_cross = -1 + SLAB_THICKNESS + NONLINEAR_MARGIN
    y_start = -1 + SLAB_THICKNESS / 2
    sign = (-1) ** NONLINEAR_SLABS
    segments = []
    for _ in range(NONLINEAR_SLABS - 1):
        y_end = y_start + SEGMENT_RISE
        y_cur = np.linspace(y_start, y_end, NONLINEAR_SEGMENT)
        segments.append(np.stack([(y_cur - y_cross) * sign, y_cur], axis=1))
        y_cross += SEGMENT_RISE
        y_start = y_end
        sign *= -1
    return np.concatenate(segments)


def nonlinear_probe():
    """The nonlinear probe: ``(x float32 (60, 2), y int32 (60,))``, the zigzag shifted
    right by 0.1 * sqrt(2) (class 0) first, then shifted left (class 1)."""
    line = zigzag()
    shift = np.array([NONLINEAR_SHIFT, 0.0])
    x = np.concatenate([line + shift, line - shift]).astype(np.float32)
    y = np.repeat(np.array([0, 1], np.int32), len(line))
    return x, y


def _check_log2_block(log2_block):
    low, high = LOG2_BLOCK_RANGE
    if isinstance(log2_block, bool) or not isinstance(log2_block, (int, np.integer)) or not (
            low <= log2_block <= high):
        raise ValueError(f"log2_block must be an integer in [{low}, {high}], got {log2_block!r}")
    return int(log2_block)


def index_words(index, log2_block=None):
    """``(hi, lo)``: the uint32 words of draw indices ``hi * 2**32 + lo``.

    ``index`` is a pair of words already, a JAX array (traced or not, below 2**32: ``hi`` is
    0), or host integers (Python or NumPy, any shape, below 2**64; with ``log2_block``, below
    ``2**(32 + log2_block)``, the most a run can draw, so that block ids fit in uint32).
    """
    if isinstance(index, tuple) and len(index) == 2:
        return tuple(jnp.asarray(word).astype(jnp.uint32) for word in index)
    if isinstance(index, jax.Array):
        lo = index.astype(jnp.uint32)
        return jnp.zeros_like(lo), lo
    try:
        array = np.asarray(index)
    except OverflowError:
        array = np.asarray(index, object)
    if array.size == 0:
        array = array.astype(np.uint64)
    if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"draw indices must be integers, got {index!r}")
    limit = 2**64 if log2_block is None else 2**(32 + _check_log2_block(log2_block))
    if array.size and (int(array.min()) < 0 or int(array.max()) >= limit):
        raise ValueError(f"draw indices must be in [0, {limit}), got {index!r}")
    array = array.astype(np.uint64)
    return (jnp.asarray((array >> np.uint64(32)).astype(np.uint32)),
            jnp.asarray((array & np.uint64(0xFFFFFFFF)).astype(np.uint32)))


def _params_from_words(model, prior, base_key, hi, lo, log2_block):
    """Draw ``hi * 2**32 + lo``'s parameters, its key made as ``keys.block_keys`` makes the
    key of offset ``index % 2**L`` of block ``index // 2**L`` (``L = log2_block``)."""
    block = (hi << (32 - log2_block)) | (lo >> log2_block)   # fits: index < 2**(32 + L)
    offset = lo & jnp.uint32(2**log2_block - 1)
    key = keys.index_key(base_key, block >> (32 - log2_block), (block << log2_block) | offset)
    return networks.sample_params(model, key, prior)


def draw_params(model, prior, seed, index, log2_block):
    """The parameters of draw ``index`` of a classifier G&C run with ``seed`` and block size
    ``2**log2_block``: those :func:`gcsampler.classify.task.make_step` drew and checked.

    Pure in ``index``, so vmappable over it (a uint32 JAX array, or ``(hi, lo)`` words for
    indices of 2**32 and beyond; see :func:`index_words`). ``seed`` is a host integer.
    """
    log2_block = _check_log2_block(log2_block)
    hi, lo = index_words(index, log2_block)
    return _params_from_words(model, prior, keys.seed_key(keys.check_seed(seed)), hi, lo,
                              log2_block)


def classifies(model, params, x, y):
    """Whether ``params`` classify every point of ``(x, y)`` (argmax, ties to the lower
    class, as :func:`gcsampler.classify.networks.losses` counts them)."""
    return networks.fit(model, params, x, y, "raw").accuracy == 1.0


@functools.lru_cache(maxsize=None)
def _compiled(model, prior, log2_block, evaluate):
    """A jitted function ``(base_key, hi, lo, data) -> evaluate(model, params, *data)``,
    vmapped over the words ``hi``, ``lo`` of a chunk of indices (``evaluate`` hashable)."""

    def one(base_key, hi, lo, data):
        params = _params_from_words(model, prior, base_key, hi, lo, log2_block)
        return evaluate(model, params, *data)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, None)))


def _over_draws(evaluate, model, prior, seed, indices, log2_block, data, chunk=CHUNK):
    """``evaluate(model, params, *data)`` for every draw of ``indices`` (host integers),
    ``chunk`` draws per call (the last padded), as NumPy arrays with a leading draw axis."""
    log2_block = _check_log2_block(log2_block)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    indices = np.asarray(indices).reshape(-1)
    hi, lo = (np.asarray(word) for word in index_words(indices, log2_block))
    base_key = keys.seed_key(keys.check_seed(seed))
    call = _compiled(model, prior, log2_block, evaluate)
    data = tuple(jnp.asarray(a) for a in data)
    parts = []
    for start in range(0, len(indices), chunk):
        pad = chunk - len(hi[start:start + chunk])
        words = [np.pad(word[start:start + chunk], (0, pad)) for word in (hi, lo)]
        out = call(base_key, *words, data)
        parts.append(jax.tree.map(lambda a, keep=chunk - pad: np.asarray(a)[:keep], out))
    if not parts:
        parts = [jax.tree.map(lambda s: np.zeros((0, *s.shape), s.dtype), jax.eval_shape(
            call, base_key, np.zeros(1, np.uint32), np.zeros(1, np.uint32), data))]
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _probe_fits(model, params, linear_x, linear_y, nonlinear_x, nonlinear_y):
    return (classifies(model, params, linear_x, linear_y),
            classifies(model, params, nonlinear_x, nonlinear_y))


def probe_fits(model, prior, seed, indices, log2_block, *, chunk=CHUNK):
    """Per draw of ``indices`` (of a run with ``seed`` and block size ``2**log2_block``):
    whether it classifies the linear probe perfectly, and the nonlinear one (two bool
    arrays); ``chunk`` draws are evaluated per compiled call."""
    linear, nonlinear = _over_draws(_probe_fits, model, prior, seed, indices, log2_block,
                                    (*linear_probe(), *nonlinear_probe()), chunk)
    return linear.astype(bool), nonlinear.astype(bool)


def solution_counts(model, prior, seed, indices, log2_block):
    """Of the draws ``indices`` (the accepted ones of a run with ``seed`` and block size
    ``2**log2_block``): how many there are (``accepted``) and how many classify perfectly
    the ``linear`` probe, the ``nonlinear`` probe, ``both`` and ``neither`` (Python ints)."""
    linear, nonlinear = probe_fits(model, prior, seed, indices, log2_block)
    return {"accepted": int(linear.size), "linear": int(linear.sum()),
            "nonlinear": int(nonlinear.sum()), "both": int((linear & nonlinear).sum()),
            "neither": int((~linear & ~nonlinear).sum())}


def _train_fit(model, params, x, y, logits):
    result = networks.fit(model, params, x, y, logits)
    return result.accuracy, result.cross_entropy


# One evaluation function per kind of logits, so that each compiles once.
_TRAIN_FITS = {logits: functools.partial(_train_fit, logits=logits) for logits in networks.LOGITS}


def training_fits(model, prior, seed, indices, log2_block, x, y, logits="normalized", *,
                  chunk=CHUNK):
    """Per regenerated draw of ``indices``: its accuracy and mean cross-entropy on ``(x,
    y)`` (of its ``logits``, 'normalized' or 'raw'), as G&C computed them: a check that the
    draws regenerated are the ones it accepted. Two float32 arrays.

    The cross-entropy's last bits can depend on how many draws are evaluated at once: with
    ``chunk`` the run's (``schedule.chunk``, ``draws_at_once`` in its ``config.json``), on
    the run's backend, they are G&C's bits.
    """
    if logits not in _TRAIN_FITS:
        raise ValueError(f"logits must be one of {', '.join(networks.LOGITS)}, got {logits!r}")
    return _over_draws(_TRAIN_FITS[logits], model, prior, seed, indices, log2_block, (x, y),
                       chunk)
