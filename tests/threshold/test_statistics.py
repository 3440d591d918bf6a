"""Tests of the threshold statistics (gcsampler.threshold.statistics) and the shared
intervals (gcsampler.core.intervals): intervals, moments, exact totals, bins and summaries."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from gcsampler.core import intervals
from gcsampler.core.totals import combine
from gcsampler.threshold import kernel, statistics


# ------------------------------------------------------------------ wilson


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (50, 1000), (1, 10**6),
                                  (0, 10**7), (499, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = intervals.wilson_interval(k, n)
    # same closed form; only float64 rounding differs
    np.testing.assert_allclose([lo, hi], [ci.low, ci.high], rtol=1e-10, atol=1e-15)
    # contains the point estimate (up to one float64 ulp: at k = n the closed form gives
    # 1 - 1.1e-16 for the upper end)
    assert 0.0 <= lo <= k / n + 1e-15 and k / n - 1e-15 <= hi <= 1.0


def test_wilson_known_values():
    # 0 of 10 at 95%: upper = z^2 / (n + z^2) (from the closed form at p = 0)
    z = intervals.Z95
    assert intervals.wilson_interval(0, 10) == (0.0, pytest.approx(z * z / (10 + z * z), rel=1e-12))
    # a textbook value: 81 of 263 -> (0.2553, 0.3662) (Newcombe 1998, Table I row 1
    # reports 0.2553-0.3662 for 81/263)
    lo, hi = intervals.wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_wilson_other_z():
    lo, hi = intervals.wilson_interval(5, 40, z=sps.norm.ppf(0.995))
    ci = sps.binomtest(5, 40).proportion_ci(confidence_level=0.99, method="wilson")
    np.testing.assert_allclose([lo, hi], [ci.low, ci.high], rtol=1e-10)


def test_wilson_zero_trials():
    lo, hi = intervals.wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


# ----------------------------------------------------------------- moments


def test_moments_match_numpy():
    x = np.random.default_rng(0).normal(1.0, 2.0, size=1000)
    mean, std, stderr = intervals.moments(x.size, x.sum(), np.sum(x**2))
    np.testing.assert_allclose(mean, x.mean(), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(ddof=1), rtol=1e-10)
    np.testing.assert_allclose(stderr, x.std(ddof=1) / np.sqrt(x.size), rtol=1e-10)


def test_moments_small_counts():
    assert all(math.isnan(v) for v in intervals.moments(0, 0.0, 0.0))
    mean, std, stderr = intervals.moments(1, 2.5, 6.25)
    assert mean == 2.5 and math.isnan(std) and math.isnan(stderr)
    mean, std, stderr = intervals.moments(2, 3.0, 5.0)   # values 1 and 2
    assert mean == 1.5 and std == pytest.approx(np.std([1.0, 2.0], ddof=1), rel=1e-14)


def test_moments_constant_values_never_negative_variance():
    # (total_sq - total * mean) may round below zero; the variance is clamped at 0
    x = np.full(7, 0.1)
    mean, std, stderr = intervals.moments(7, float(np.sum(x)), float(np.sum(x**2)))
    assert std >= 0.0 and stderr >= 0.0 and std < 1e-7


# ---------------------------------------------------------- sequential sums


def _wild(rng, shape):
    """float32 values over 60 binary orders of magnitude: rounded float64 sums depend on order."""
    normal = rng.standard_normal(shape)   # drawn first, then the exponents
    return (normal * 2.0 ** rng.integers(-30, 30, size=shape)).astype(np.float32)


def _totals(n_bins_edges=5):
    return statistics.Totals(edges=np.linspace(0.1, 1.0, n_bins_edges).astype(np.float32))


@pytest.mark.parametrize("splits", [[12], [1] * 12, [3, 5, 4], [7, 0, 5]])
def test_add_block_sums_independent_of_split(splits):
    rng = np.random.default_rng(3)
    n_blocks, n_bins = 12, 6
    gen_sum, gen_sumsq = _wild(rng, n_blocks), np.abs(_wild(rng, n_blocks))
    bin_sum, bin_sumsq = _wild(rng, (n_blocks, n_bins)), np.abs(_wild(rng, (n_blocks, n_bins)))
    whole = _totals()
    statistics.add_block_sums(whole, gen_sum, gen_sumsq, bin_sum, bin_sumsq)
    split = _totals()
    start = 0
    for size in splits:
        sl = slice(start, start + size)
        statistics.add_block_sums(split, gen_sum[sl], gen_sumsq[sl], bin_sum[sl], bin_sumsq[sl])
        start += size
    for name in ("gen_sum", "gen_sumsq", "bin_gen_sum", "bin_gen_sumsq"):
        assert np.array_equal(getattr(split, name), getattr(whole, name))
    # and the value is the exact sum, rounded once
    sums = whole.floats()
    assert sums["gen_sum"] == math.fsum(gen_sum.astype(np.float64))
    assert [sums["bin_gen_sum"][j] for j in range(n_bins)] == [
        math.fsum(bin_sum[:, j].astype(np.float64)) for j in range(n_bins)]


def test_combine_is_the_totals_of_all_parts():
    """Totals of disjoint parts (processes) combined equal the totals of everything added
    to one, bit for bit, in any order of the parts."""
    rng = np.random.default_rng(5)
    gen, bins = _wild(rng, 30), _wild(rng, (30, 6))
    accepted = np.abs(_wild(rng, 9))
    bin_counts = rng.integers(0, 100, (3, 6))
    hists = rng.integers(0, 100, (3, kernel.HIST_BINS**2))
    whole, parts = _totals(), [_totals() for _ in range(3)]
    for p, (part, rows, acc) in enumerate(zip(parts, np.array_split(np.arange(30), 3),
                                              np.array_split(accepted, 3))):
        for t in (part, whole):
            statistics.add_counts(t, 10 + p, p, bin_counts[p], hists[p])
            statistics.add_block_sums(t, gen[rows], gen[rows], bins[rows], bins[rows])
            statistics.add_accepted(t, acc)
    for order in (parts, parts[::-1]):
        combined = combine(order)
        for name, value in vars(whole).items():
            assert np.array_equal(getattr(combined, name), value), name
    with pytest.raises(ValueError, match="another eps"):
        combine([_totals(), _totals(6)])


def test_add_block_sums_accepts_step_device_block_axes():
    # the engine passes (steps, devices, blocks) and (steps, devices, blocks, bins) arrays
    rng = np.random.default_rng(4)
    gen = _wild(rng, (2, 3, 4))
    bins = _wild(rng, (2, 3, 4, 6))
    a, b = _totals(), _totals()
    statistics.add_block_sums(a, gen, gen, bins, bins)
    statistics.add_block_sums(b, gen.reshape(-1), gen.reshape(-1), bins.reshape(-1, 6),
                              bins.reshape(-1, 6))
    assert np.array_equal(a.gen_sum, b.gen_sum) and np.array_equal(a.bin_gen_sum, b.bin_gen_sum)


def test_add_counts_and_accepted():
    t = _totals()
    statistics.add_counts(t, np.array([[3, 4]]), np.array([[1, 0]]), np.ones((1, 2, 6), np.int32),
                          np.ones((1, 2, kernel.HIST_BINS**2), np.int32))
    assert (t.drawn, t.nonfinite) == (7, 1)
    assert np.array_equal(t.bin_count, np.full(6, 2)) and t.hist.sum() == 2 * kernel.HIST_BINS**2
    statistics.add_accepted(t, np.array([1.0, 2.0], np.float32))
    statistics.add_accepted(t, np.array([4.0], np.float32))
    sums = t.floats()
    assert (t.accepted, sums["accepted_gen_sum"], sums["accepted_gen_sumsq"]) == (3, 7.0, 21.0)


# ------------------------------------------------------------------- edges


@pytest.mark.parametrize("eps", [1e-9, 1e-3, 0.1, 0.37, 1.0, 1e5])
def test_train_loss_edges(eps):
    edges = statistics.train_loss_edges(eps)
    assert edges.dtype == np.float32
    threshold = statistics.float32_threshold(eps)
    assert threshold in edges
    assert np.all(np.diff(edges) >= 0)
    assert len(edges) == len(statistics.train_loss_edges(0.5))  # a new eps does not recompile
    # the log grid: 5 per decade from 1e-7 to 1e3
    grid = np.delete(edges, np.nonzero(edges == threshold)[0][0])
    np.testing.assert_allclose(grid, 10.0 ** (np.arange(-35, 16) / 5), rtol=1e-7)


# ------------------------------------------------------------- rethreshold


EDGES = np.array([0.1, 1.0, 10.0], np.float32)
COUNT = np.array([2, 3, 4, 5])           # bins: <0.1, [0.1, 1), [1, 10), >=10
GEN = [np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0]), np.array([6.0, 7.0, 8.0, 9.0]),
       np.array([10.0, 11.0, 12.0, 13.0, 14.0])]
SUM = np.array([g.sum() for g in GEN])
SUMSQ = np.array([np.sum(g**2) for g in GEN])


@pytest.mark.parametrize("eps, effective, n_bins", [
    (0.05, None, 0), (0.1, 0.1, 1), (0.5, 0.1, 1), (1.0, 1.0, 2), (9.99, 1.0, 2),
    (10.0, 10.0, 3), (1e9, 10.0, 3)])
def test_rethreshold_hand_made(eps, effective, n_bins):
    out = statistics.rethreshold(EDGES, COUNT, SUM, SUMSQ, eps)
    if effective is None:
        assert out is None
        return
    values = np.concatenate(GEN[:n_bins])
    assert out["effective_eps"] == pytest.approx(effective, rel=1e-7)
    assert out["effective_eps"] == float(EDGES[n_bins - 1])
    assert out["accepted"] == values.size
    assert out["gnc_gen_loss_mean"] == pytest.approx(values.mean(), rel=1e-12)
    if values.size > 1:
        assert out["gnc_gen_loss_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert out["gnc_gen_loss_stderr"] == pytest.approx(
            values.std(ddof=1) / np.sqrt(values.size), rel=1e-12)


def test_rethreshold_at_run_eps_uses_eps_edge():
    edges = statistics.train_loss_edges(0.37)
    n = len(edges) + 1
    out = statistics.rethreshold(edges, np.ones(n, int), np.ones(n), np.ones(n), 0.37)
    assert out["effective_eps"] == float(np.float32(0.37))
    assert out["accepted"] == int(np.searchsorted(edges, np.float32(0.37), side="right"))


# --------------------------------------------------------------- summarize


def test_summarize_zero_accepted():
    t = _totals()
    t.drawn = 4
    statistics.add_block_sums(t, [10.0], [30.0], np.zeros((1, 6)), np.zeros((1, 6)))
    s = statistics.summarize(t)
    assert s["draws"] == 4 and s["accepted"] == 0 and s["acceptance_rate"] == 0.0
    assert math.isnan(s["gnc_gen_loss_mean"]) and math.isnan(s["gnc_gen_loss_std"])
    assert s["gnc_message"] == statistics.NO_ACCEPTED_MESSAGE
    assert s["acceptance_ci95"][0] == 0.0 and s["acceptance_ci95"][1] > 0
    assert s["prior_gen_loss_mean"] == 2.5
    assert "seconds" not in s


def test_summarize_values():
    t = _totals()
    t.drawn, t.nonfinite = 10, 2
    # 8 finite draws
    statistics.add_block_sums(t, [8.0], [10.0], np.zeros((1, 6)), np.zeros((1, 6)))
    statistics.add_accepted(t, np.array([1.0, 3.0]))
    s = statistics.summarize(t, seconds=2.0)
    assert "gnc_message" not in s
    assert (s["draws"], s["accepted"], s["nonfinite"]) == (10, 2, 2)
    assert s["acceptance_rate"] == 0.2
    assert s["acceptance_ci95"] == list(intervals.wilson_interval(2, 10))
    assert s["gnc_gen_loss_mean"] == 2.0 and s["gnc_gen_loss_std"] == pytest.approx(np.sqrt(2))
    assert s["prior_gen_loss_mean"] == 1.0                       # over the 8 finite draws
    assert s["prior_gen_loss_std"] == pytest.approx(np.sqrt((10.0 - 8.0) / 7))
    assert s["seconds"] == 2.0 and s["samples_per_second"] == 5.0


def test_summarize_empty_run():
    s = statistics.summarize(_totals())
    assert s["draws"] == 0 and math.isnan(s["acceptance_rate"])
    assert math.isnan(s["prior_gen_loss_mean"]) and "gnc_message" in s


@pytest.mark.parametrize("eps", [1e-9, 0.02, 0.0035, 0.1, 0.37, 1.0, 0.5, 1e5])
def test_float32_threshold_is_exact_strict_comparison(eps):
    """For every float32 t near eps: t < threshold exactly when t < eps (in float64)."""
    threshold = statistics.float32_threshold(eps)
    assert threshold.dtype == np.float32
    centre = np.float32(eps)
    ts = [centre]
    for _ in range(4):
        ts = [np.nextafter(ts[0], np.float32(0))] + ts + [np.nextafter(ts[-1], np.float32(np.inf))]
    for t in ts:
        assert bool(t < threshold) == bool(float(t) < eps), (t, threshold)


def test_an_eps_beyond_float32_accepts_every_finite_loss_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threshold = statistics.float32_threshold(1e39)
    assert threshold == np.inf and np.finfo(np.float32).max < threshold


def test_host_accumulation_is_exact_at_1e11_draws():
    """1e11 draws are 24.4M blocks of 4096. Their float32 block sums, added on the host a
    few hundred thousand blocks per call as the engine does, give exactly the correctly
    rounded sum (math.fsum) of all of them: nothing is lost to rounding at any count, where
    a float64 running sum could be off by up to (n - 1) 2**-53 sum|x| (Higham 2002, 4.2)
    and a float32 one by orders of magnitude more."""
    block, blocks = 4096, -(-10**11 // 4096)
    rng = np.random.default_rng(0)
    # Per-block sums of gen losses around the prior's 0.23 (std 0.1 per draw).
    gen_sum = (block * 0.23 + rng.normal(0.0, 0.1 * math.sqrt(block), blocks)).astype(np.float32)
    gen_sumsq = (gen_sum.astype(np.float64) ** 2 / block).astype(np.float32)
    totals = statistics.Totals(edges=statistics.train_loss_edges(0.02))
    zeros = np.zeros((0, totals.bin_count.size))
    for start in range(0, blocks, 300_000):
        part = slice(start, start + 300_000)
        statistics.add_block_sums(totals, gen_sum[part], gen_sumsq[part], zeros, zeros)
    sums = totals.floats()
    assert sums["gen_sum"] == math.fsum(gen_sum.astype(np.float64))
    assert sums["gen_sumsq"] == math.fsum(gen_sumsq.astype(np.float64))
