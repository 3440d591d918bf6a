"""Exact sums of float32 values on the device, as int32 digits the host adds cheaply.

:mod:`gcsampler.core.exact` keeps sums exactly on the host, but turning every block's
float32 sums into its fixed-point words in NumPy costs the host more per call than a
fast accelerator takes to draw them. Here the device does that work in integers (JAX
runs without 64-bit types, so in int32) and returns, per sum, :data:`SIZE` int32: the
sum of the terms as :data:`DIGITS` uncarried signed digits of :data:`DIGIT_BITS` bits,
then the counts of +inf and -inf terms (a NaN counts as both, as in ``exact``). The
host adds these small arrays in int64 and converts them once to ``exact``'s words
(:func:`to_exact`), so a call costs it microseconds, not a pass over every block.

Exactness. A float32 is read from its bits (never with float arithmetic, so a device
that flushes subnormals to zero still reads them): ``x = (-1)**s * m * 2**(p - 154)``
with ``m < 2**24`` an integer (the significand with its hidden bit, or the raw fraction
of a subnormal) and ``p = max(biased exponent, 1) + 4`` in [5, 258]. With ``k = p // 8``
and ``r = p % 8``, ``v = +-(m << r)`` is an exact int32 (``|v| < 2**31``); its bytes in
two's complement, the top one signed (``v >> 24``, in [-128, 127]) and the three below
it in [0, 255], add up to ``v`` and are the term's contributions to digits ``k .. k + 3``
(digit ``d`` weighs ``2**(8 d - 154)``; ``k + 3 <= 35``, so 36 digits). They are
scatter-added into the digits: each digit of a sum is the sum of its terms' bytes,
integer additions, exact and associative, so every order and grouping of the terms
(and of the scatter's updates) gives the same digits, and the number they stand for
is the exact sum. Zeros add nothing; inf and NaN terms add only to the counts.

The int32 bound. A term adds at most 255 in magnitude to a digit, so a sum of ``n``
terms has digits of magnitude at most ``255 n``: below 2**31 for ``n <=``
:data:`MAX_TERMS` (8,421,504, about 2**23). :func:`sums` refuses more; a threshold step
sums one term per block (a step's blocks are far fewer: a 2**26-draw call has 16,384
blocks of 4,096). The host sums digits in int64 and :func:`to_exact` takes magnitudes
below 2**39 (2**31 terms), far more blocks than a call holds.

The weights line up with ``exact``'s: ``exact``'s least significant bit is 2**-1074, so
digit ``d`` is byte ``115 + d`` of its words (``1074 - 154 = 8 * 115``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.core import exact

DIGIT_BITS = 8
DIGITS = 36
SIZE = DIGITS + 2
LSB_EXPONENT = -154
MAX_TERMS = (2**31 - 1) // 255
_FIRST_BYTE = (LSB_EXPONENT - exact.LSB_EXPONENT) // DIGIT_BITS  # 115
_HOST_LIMIT = 2**39  # |digit| below this: shifted into a word, it stays within int64


def sums(terms):
    """The exact sums of float32 ``terms`` over their leading axis, as digits.

    ``terms`` has shape ``(n,) + batch`` (cast to float32); returns int32 of shape
    ``batch + (SIZE,)``: the :data:`DIGITS` digits, then the +inf and -inf counts. A
    pure ``jnp`` function: call it inside a jitted step.
    """
    terms = jnp.asarray(terms, jnp.float32)
    if terms.shape[0] > MAX_TERMS:
        raise ValueError(f"exact device sums take at most {MAX_TERMS} terms (int32 digits), "
                         f"got {terms.shape[0]}")
    bits = jax.lax.bitcast_convert_type(terms, jnp.int32)
    biased = (bits >> 23) & 0xFF
    fraction = bits & 0x7FFFFF
    finite = biased != 0xFF
    nan = ~finite & (fraction != 0)
    negative = bits < 0
    m = jnp.where(biased > 0, fraction | 0x800000, fraction)  # the hidden bit
    p = jnp.maximum(biased, 1) + 4
    shifted = jnp.where(finite, m << (p & 7), 0)  # below 2**31
    signed = jnp.where(negative, -shifted, shifted)
    # The term's bytes in two's complement, the top one signed: they add up to ``signed``.
    pieces = [(signed >> (DIGIT_BITS * j)) & 0xFF for j in range(3)] + [signed >> 24]
    batch = terms.shape[1:]
    n_sums = math.prod(batch)
    column = jnp.arange(n_sums, dtype=jnp.int32).reshape(batch) * DIGITS
    first = column + (p >> 3)
    digits = jnp.zeros(n_sums * DIGITS, jnp.int32)
    for j, piece in enumerate(pieces):  # a scatter-add: integer, so in any order the same
        digits = digits.at[(first + j).reshape(-1)].add(piece.reshape(-1))
    pos_inf = ~finite & (~negative | nan)
    neg_inf = ~finite & (negative | nan)
    counts = [jnp.sum(c, axis=0, dtype=jnp.int32)[..., None] for c in (pos_inf, neg_inf)]
    return jnp.concatenate([digits.reshape(batch + (DIGITS,))] + counts, axis=-1)


def to_exact(digit_sums):
    """Digits of :func:`sums` (NumPy, shape ``batch + (SIZE,)``, any integer dtype, summed
    over any number of device sums) as ``exact`` sums of shape ``batch + (exact.SIZE,)``."""
    digit_sums = np.asarray(digit_sums, np.int64)
    batch = digit_sums.shape[:-1]
    flat = digit_sums.reshape(-1, SIZE)
    if flat.size and np.max(np.abs(flat[:, :DIGITS])) >= _HOST_LIMIT:
        raise ValueError("digit sums too large to convert (more than 2**31 terms)")
    per_byte = np.zeros((flat.shape[0], exact.WORDS * 4), np.int64)
    per_byte[:, _FIRST_BYTE:_FIRST_BYTE + DIGITS] = flat[:, :DIGITS]
    per_byte = per_byte.reshape(-1, exact.WORDS, 4) << np.arange(0, 32, 8, dtype=np.int64)
    total = np.empty((flat.shape[0], exact.SIZE), np.int64)
    total[:, :exact.WORDS] = per_byte.sum(axis=-1)
    total[:, exact.WORDS:] = flat[:, DIGITS:]
    return exact.carry(total).reshape(batch + (exact.SIZE,))
