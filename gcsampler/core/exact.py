"""Exact sums of float64 values on the host.

A float sum that rounds at every addition depends on the order of its terms, so
statistics would change with how blocks are grouped into device calls, devices
or processes. Here a sum is kept exactly, as a fixed-point integer whose least
significant bit is 2**-1074 (float64's smallest subnormal): every finite float64
is an integer multiple of it, so adding terms never rounds, in any order or
grouping, and the float64 value of a sum is the exact total rounded once.

A sum is an int64 NumPy array of :data:`SIZE` entries (a batch of sums has shape
``(..., SIZE)``): :data:`WORDS` words of 32 bits, least significant first, every
word but the last in [0, 2**32) and the last one signed, then the counts of +inf
and -inf terms (a NaN term counts as both, as inf - inf is NaN). Functions are
pure: they return new arrays.
"""

import math

import numpy as np

WORD_BITS = 32
LSB_EXPONENT = -1074
# 2**-1074 .. 2**1024 spans 2098 bits; 68 words leave 78 bits of headroom, more
# than the 2**63 terms an int64 count allows.
WORDS = 68
SIZE = WORDS + 2
_POS_INF, _NEG_INF = WORDS, WORDS + 1
_MASK = (1 << WORD_BITS) - 1
_HALF = 26  # a 53-bit significand is added as two pieces of at most 27 bits
_CHUNK = 1 << 20  # terms per bincount: word sums stay below 2**52, exact in float64


def zeros(shape=()):
    """Sums of no terms, of batch shape ``shape``."""
    return np.zeros(tuple(shape) + (SIZE,), np.int64)


def add(total, terms):
    """``total`` plus the sum of ``terms`` over their leading axis.

    ``terms`` has shape ``(n,) + batch`` where ``total`` has ``batch + (SIZE,)``;
    any float dtype (converted to float64, exactly for float32).
    """
    total = np.asarray(total, np.int64)
    batch = total.shape[:-1]
    terms = np.asarray(terms, np.float64).reshape((-1, math.prod(batch)))
    flat = total.reshape(-1, SIZE).copy()
    flat[:, _POS_INF] += np.sum(terms == np.inf, axis=0) + np.sum(np.isnan(terms), axis=0)
    flat[:, _NEG_INF] += np.sum(terms == -np.inf, axis=0) + np.sum(np.isnan(terms), axis=0)
    column = np.nonzero(np.isfinite(terms) & (terms != 0))
    values, column = terms[column], column[1]
    for first in range(0, values.size, _CHUNK):
        part = slice(first, first + _CHUNK)
        flat[:, :WORDS] += _word_sums(values[part], column[part], flat.shape[0])
        flat = carry(flat)
    return flat.reshape(total.shape)


def combine(*totals):
    """The sum of several sums (of one batch shape)."""
    combined = np.sum(np.stack([np.asarray(t, np.int64) for t in totals]), axis=0)
    return carry(combined.reshape(-1, SIZE)).reshape(combined.shape)


def value(total):
    """The float64 value of sums: each exact total rounded to nearest once.

    Returns a float for a single sum, an array for a batch.
    """
    total = np.asarray(total, np.int64)
    values = np.array([_row_value(row) for row in total.reshape(-1, SIZE)], np.float64)
    return float(values[0]) if total.ndim == 1 else values.reshape(total.shape[:-1])


def _row_value(row):
    if row[_POS_INF] and row[_NEG_INF]:
        return math.nan
    if row[_POS_INF] or row[_NEG_INF]:
        return math.inf if row[_POS_INF] else -math.inf
    integer = sum(int(word) << (WORD_BITS * j) for j, word in enumerate(row[:WORDS]))
    try:
        return integer / (1 << -LSB_EXPONENT)  # int / int is correctly rounded
    except OverflowError:  # a finite total beyond float64's range
        return math.inf if integer > 0 else -math.inf


def _word_sums(values, column, n_sums):
    """Per-word sums of finite nonzero ``values`` placed in sums ``column``: (n_sums, WORDS)
    int64, not carried. Each word gets pieces below 2**32, at most 2**21 of them."""
    fraction, exponent = np.frexp(values)
    significand = np.abs(fraction * 2.0**53).astype(np.int64)  # exact: below 2**53
    sign = np.where(fraction < 0, -1, 1)
    low_bit = exponent.astype(np.int64) - 53 - LSB_EXPONENT
    # Subnormals come out with a negative position; their low bits are zero.
    shift = np.maximum(-low_bit, 0)
    significand, low_bit = significand >> shift, low_bit + shift
    sums = np.zeros(n_sums * WORDS, np.float64)
    for piece, at in ((significand & ((1 << _HALF) - 1), low_bit),
                      (significand >> _HALF, low_bit + _HALF)):
        word, offset = at >> 5, at & (WORD_BITS - 1)
        shifted = piece << offset  # below 2**58
        slot = column * WORDS + word
        for part, where in ((shifted & _MASK, slot), (shifted >> WORD_BITS, slot + 1)):
            sums += np.bincount(where, weights=sign * part, minlength=sums.size)
    return sums.reshape(n_sums, WORDS).astype(np.int64)


def carry(flat):
    """Sums of shape ``(n, SIZE)`` with each word's excess carried into the next, so that
    words 0..WORDS-2 are in [0, 2**32) (the one form of each integer; the last word keeps
    the sign). Rounds of carries over all words at once, until none is left: words below
    2**63 need a few rounds (a borrow running through a long stretch of zeros, more)."""
    flat = np.array(flat, np.int64)
    while True:
        excess = flat[:, :WORDS - 1] >> WORD_BITS
        if not excess.any():
            return flat
        flat[:, :WORDS - 1] &= _MASK
        flat[:, 1:WORDS] += excess
