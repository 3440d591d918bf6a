"""Exact host sums (gcsampler.core.exact): every order and grouping of the terms gives the
same bits, and the value is the exact sum rounded once (checked against rational arithmetic)."""

import math
from fractions import Fraction

import numpy as np
import pytest

from gcsampler.core import exact


def rounded_sum(terms):
    """The reference: the sum in exact rational arithmetic, rounded to float64 once."""
    total = sum((Fraction(float(t)) for t in terms), Fraction(0))
    try:
        return float(total)
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def wild(rng, n):
    """float64 values over the whole exponent range, with subnormals and extremes."""
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    return np.concatenate([values, [5e-324, -5e-324, 2.2e-308, 1.7e308, -1.7e308, 0.0, -0.0]])


@pytest.mark.parametrize("seed", range(5))
def test_value_is_the_exact_sum_rounded_once(seed):
    terms = wild(np.random.default_rng(seed), 400)
    assert exact.value(exact.add(exact.zeros(), terms)) == rounded_sum(terms)


def test_any_order_and_grouping_gives_the_same_bits():
    rng = np.random.default_rng(7)
    terms = wild(rng, 1000)
    whole = exact.add(exact.zeros(), terms)
    for _ in range(5):
        shuffled = terms[rng.permutation(terms.size)]
        parts = np.array_split(shuffled, rng.integers(2, 20))
        grouped = exact.zeros()
        for part in parts:
            grouped = exact.add(grouped, part)
        assert np.array_equal(grouped, whole)
        assert np.array_equal(exact.combine(*(exact.add(exact.zeros(), p) for p in parts)), whole)


def test_batches_of_sums_and_float32_terms():
    rng = np.random.default_rng(8)
    terms = (rng.standard_normal((300, 2, 3)) * 1e3).astype(np.float32)
    total = exact.add(exact.zeros((2, 3)), terms)
    assert total.shape == (2, 3, exact.SIZE)
    values = exact.value(total)
    assert values.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert values[i, j] == rounded_sum(terms[:, i, j])


def test_cancellation_that_float64_gets_wrong():
    terms = [1e16, 1.0, -1e16]   # a float64 running sum gives 0
    assert exact.value(exact.add(exact.zeros(), terms)) == 1.0


def test_infinities_nan_and_overflow():
    def total(*terms):
        return exact.value(exact.add(exact.zeros(), np.array(terms)))

    assert total(np.inf, 1.0) == math.inf and total(-np.inf, 1.0) == -math.inf
    assert math.isnan(total(np.inf, -np.inf)) and math.isnan(total(np.nan, 2.0))
    # finite terms whose exact total is beyond float64: rounds to inf, as float64 would
    assert total(*[1.7e308] * 4) == math.inf and total(*[-1.7e308] * 4) == -math.inf
    assert total(*[1.7e308] * 4, *[-1.7e308] * 4) == 0.0
    assert total() == 0.0


def test_many_large_terms_do_not_overflow_the_words():
    """2**21 terms per word sum is where a float64 bincount would stop being exact: more
    terms than that at the top of the range are split and still exact."""
    terms = np.full(3 * 2**20 + 5, 2.0**1000 * 1.5)
    got = exact.value(exact.add(exact.zeros(), terms))
    assert got == float(Fraction(2**1000 * 3, 2) * terms.size)
