"""Exact device sums (gcsampler.core.exact_device): int32 digits that the host turns into the
very words ``exact.add`` makes of the same float32 terms, for any order and grouping."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from gcsampler.core import exact, exact_device

SUMS = jax.jit(exact_device.sums)
F32 = np.finfo(np.float32)
EDGES = np.array([0.0, -0.0, F32.smallest_subnormal, -F32.smallest_subnormal,
                  F32.smallest_normal, -F32.smallest_normal, F32.smallest_normal * (1 - 2**-23),
                  F32.max, -F32.max, 1.0, -1.0, 2.0**-126 * 1.5, 3.0e38, -3.0e38], np.float32)


def wild32(rng, shape, special=True):
    """float32 terms from random bit patterns (every exponent, subnormals, inf, NaN)
    mixed with zeros, extremes and ordinary values."""
    bits = rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32).copy()
    pick = rng.random(shape)
    values[pick < 0.2] = rng.choice(EDGES, np.count_nonzero(pick < 0.2))
    values[(pick >= 0.2) & (pick < 0.3)] = 0.0
    ordinary = (pick >= 0.3) & (pick < 0.5)
    values[ordinary] = rng.lognormal(0, 3, np.count_nonzero(ordinary)).astype(np.float32)
    if not special:
        values[~np.isfinite(values)] = 1.5
    return values


def host_exact(terms):
    with np.errstate(invalid="ignore"):  # signalling NaN payloads warn when widened
        return exact.add(exact.zeros(terms.shape[1:]), terms)


def device_exact(terms):
    return exact_device.to_exact(np.asarray(SUMS(jnp.asarray(terms))))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("special", [True, False])
def test_same_words_and_bits_as_exact_add(seed, special):
    terms = wild32(np.random.default_rng(seed), (500, 3, 4), special)
    got, want = device_exact(terms), host_exact(terms)
    assert got.shape == want.shape == (3, 4, exact.SIZE)
    assert np.array_equal(got, want)
    np.testing.assert_array_equal(exact.value(got), exact.value(want))  # NaN == NaN here


def test_edge_values_one_at_a_time_and_together():
    for value in EDGES:
        terms = np.array([[value]], np.float32)
        assert np.array_equal(device_exact(terms), host_exact(terms)), value
    terms = EDGES[:, None]
    assert np.array_equal(device_exact(terms), host_exact(terms))
    for special in ([np.inf], [-np.inf], [np.nan], [np.inf, -np.inf], [-np.nan, 1.0]):
        terms = np.array(special, np.float32)[:, None]
        got = device_exact(terms)
        assert np.array_equal(got, host_exact(terms))
        np.testing.assert_array_equal(exact.value(got), exact.value(host_exact(terms)))


def test_cancellation_and_negative_totals():
    terms = np.array([3.0e38, 1.0, -3.0e38, -2.5, F32.smallest_subnormal], np.float32)[:, None]
    got = device_exact(terms)
    assert np.array_equal(got, host_exact(terms))
    assert exact.value(got)[0] == -1.5  # the exact -1.5 + 2**-149, rounded once


def test_any_grouping_and_order_gives_the_same_words():
    """Digit sums of parts, added in int64 in any order (as the host adds steps, devices
    and calls), or converted apart and combined, equal the sum of all the terms."""
    rng = np.random.default_rng(7)
    terms = wild32(rng, (900, 5))
    whole = host_exact(terms)
    for _ in range(4):
        shuffled = terms[rng.permutation(len(terms))]
        cuts = np.sort(rng.choice(np.arange(1, len(terms)), rng.integers(1, 12), replace=False))
        parts = [np.asarray(SUMS(jnp.asarray(p))) for p in np.split(shuffled, cuts)]
        order = rng.permutation(len(parts))
        added = np.sum(np.stack([parts[i] for i in order]).astype(np.int64), axis=0)
        assert np.array_equal(exact_device.to_exact(added), whole)
        assert np.array_equal(exact.combine(*(exact_device.to_exact(p) for p in parts)), whole)


def test_digits_near_the_int32_bound_stay_exact():
    """2**20 terms of the largest float32 (every byte 255 or the top one signed), with
    either sign: the digits are within 255 n of zero and the words are exact."""
    n = 2**20
    for value in (F32.max, -F32.max, np.float32(2.0**-126 * (2 - 2**-23))):
        terms = np.full((n, 1), value, np.float32)
        digits = np.asarray(SUMS(jnp.asarray(terms)))
        assert np.max(np.abs(digits[..., :exact_device.DIGITS])) <= 255 * n
        assert np.array_equal(exact_device.to_exact(digits), host_exact(terms))


def test_too_many_terms_are_refused():
    too_many = jax.ShapeDtypeStruct((exact_device.MAX_TERMS + 1, 2), jnp.float32)
    with pytest.raises(ValueError, match="at most"):
        jax.eval_shape(exact_device.sums, too_many)
    jax.eval_shape(exact_device.sums, jax.ShapeDtypeStruct((exact_device.MAX_TERMS, 2),
                                                           jnp.float32))
    digits = np.zeros((1, exact_device.SIZE), np.int64)
    digits[0, 3] = 2**40
    with pytest.raises(ValueError, match="too large"):
        exact_device.to_exact(digits)


def test_carry_is_the_one_normal_form():
    """``exact.carry`` of unnormalized words (either sign, long borrow chains) keeps the
    integer and leaves every word but the top one in [0, 2**32)."""
    rng = np.random.default_rng(3)
    words = rng.integers(-2**40, 2**40, (50, exact.SIZE))
    words[:10, 1:exact.WORDS] = 0  # a borrow through every word
    words[:10, 0] = -1
    carried = exact.carry(words)
    for row, out in zip(words, carried):
        number = sum(int(w) << (32 * j) for j, w in enumerate(row[:exact.WORDS]))
        assert number == sum(int(w) << (32 * j) for j, w in enumerate(out[:exact.WORDS]))
        assert np.all((0 <= out[:exact.WORDS - 1]) & (out[:exact.WORDS - 1] < 2**32))
        assert np.array_equal(out[exact.WORDS:], row[exact.WORDS:])
