"""Tests of the G&C engine (gcsampler.core.loop, keys, threshold.kernel and
factorization.task) against direct evaluation.

Most tests share one problem, model, prior, sample count and block size (see
conftest.py) so they share compiled kernels. Floating-point tolerances are error
bounds derived in the helpers below, never tuned to pass.
"""

import collections
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from gcsampler.core import keys, loop
from gcsampler.factorization import models, priors, problems, task
from gcsampler.threshold import kernel, statistics

from conftest import BLOCK, EPS, LOG2_BLOCK, SAMPLES, SEED, U32

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gamma(n):
    """Higham's gamma_n = n u / (1 - n u): relative error bound of an n-term float32 sum."""
    return n * U32 / (1 - n * U32)


# ------------------------------------------------------------- NumPy reference


_SAMPLE_LAYERS = jax.jit(
    lambda keys_, model, prior: jax.vmap(lambda k: priors.sample_layers(prior, model, k))(keys_),
    static_argnums=(1, 2))


def regenerated_layers(model, prior, seed, indices):
    """float32 layers of the given global draw indices, from their counter-based keys."""
    indices = np.asarray(indices, np.uint64)
    hi = (indices >> np.uint64(32)).astype(np.uint32)
    lo = (indices & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    keys_ = jax.vmap(keys.index_key, in_axes=(None, 0, 0))(keys.seed_key(seed), hi, lo)
    return [np.asarray(x) for x in _SAMPLE_LAYERS(keys_, model, prior)]


def linear_reference(problem, layers):
    """float64 matrices and losses of a linear chain of float32 layers, with error bounds.

    Returns (matrix, matrix_bound, train, train_bound, gen, gen_bound): the float32
    kernel's values lie within ``bound`` of the float64 ones. Derivation (Higham,
    Accuracy and Stability of Numerical Algorithms, Thm 3.1 and Sec. 3.5):
      * each float32 matrix product of inner size k adds an error <= gamma_k times the
        product of absolute values, so |W32 - W| <= gamma_{(d-1)k} E, E = |W_1|...|W_d|;
      * a residual <A_i, W32> - y_i with float32-rounded A, y (length D) has error
        <= |A_i| . dW + gamma_{D+2} (|A_i| . (|W| + dW) + |y_i| + |r_i|), doubled here
        for the rounding of A and y themselves (relative u each);
      * the mean of m squares changes by <= mean(2 |r| dr + dr^2) from the residual
        errors plus gamma_{m+2} of the loss from the float32 squaring and summing.
    """
    w = np.asarray(layers[0], np.float64)
    envelope = np.abs(w)
    inner = 0
    for x in layers[1:]:
        x = np.asarray(x, np.float64)
        inner += x.shape[-2]
        w = w @ x
        envelope = envelope @ np.abs(x)
    dw = gamma(inner) * envelope
    flat, dflat = w.reshape(len(w), -1), dw.reshape(len(w), -1)

    def loss(ops, labels):
        r = flat @ ops.T - labels
        dr = dflat @ np.abs(ops).T + 2 * gamma(ops.shape[1] + 2) * (
            (np.abs(flat) + dflat) @ np.abs(ops).T + np.abs(labels) + np.abs(r))
        value = np.mean(r**2, axis=-1)
        extra = np.mean(2 * np.abs(r) * dr + dr**2, axis=-1)
        return value, extra + gamma(ops.shape[0] + 2) * (value + extra)

    train, dtrain = loss(problem.train_ops, problem.train_labels)
    gen, dgen = loss(problem.test_ops, problem.test_labels)
    # the bound's own float64 evaluation is exact to ~1e-16 relative, far below these
    check_train, check_gen = problems.losses(problem, w)
    np.testing.assert_allclose(train, check_train, rtol=1e-12)
    np.testing.assert_allclose(gen, check_gen, rtol=1e-12)
    return w, dw, train, dtrain, gen, dgen


# ------------------------------------------------ a. acceptance and recomputation


@pytest.fixture(scope="module")
def reference(sensing_problem, linear_model, gaussian_prior):
    """float64 recomputation of every draw 0 .. SAMPLES-1 of the shared run."""
    layers = regenerated_layers(linear_model, gaussian_prior, SEED, np.arange(SAMPLES))
    return layers, linear_reference(sensing_problem, layers)


def test_accepted_rows_match_numpy_recomputation(shared_runs, reference):
    run = shared_runs(batch=BLOCK)
    n = run.totals.accepted
    assert 0.02 * SAMPLES < n < 0.5 * SAMPLES          # a moderate acceptance rate
    assert len(run.index) == n
    assert np.all(np.diff(run.index) > 0) and run.index[0] >= 0 and run.index[-1] < SAMPLES
    _, (w, dw, train, dtrain, gen, dgen) = reference
    i = run.index
    assert np.all(run.train < np.float32(EPS))
    assert np.all(np.abs(run.matrix - w[i]) <= dw[i])
    assert np.all(np.abs(run.train - train[i]) <= dtrain[i])
    assert np.all(np.abs(run.gen - gen[i]) <= dgen[i])
    # the bounds are tight enough to matter: below 0.01% of the loss
    assert np.max(dtrain[i] / train[i]) < 1e-4


def test_rejected_draws_have_train_loss_at_least_eps(shared_runs, reference):
    run = shared_runs(batch=BLOCK)
    _, (_, _, train, dtrain, _, _) = reference
    rejected = np.setdiff1d(np.arange(SAMPLES), run.index)
    assert len(rejected) == SAMPLES - run.totals.accepted
    # the kernel decides with its float32 loss, which lies within dtrain of the
    # float64 one; the draw was rightly rejected iff float32 loss >= eps, so the
    # float64 loss must reach eps up to that bound (and likewise for accepted ones)
    assert np.all(train[rejected] + dtrain[rejected] >= EPS)
    assert np.all(train[run.index] - dtrain[run.index] < np.float32(EPS))


def test_regenerate_gives_the_stored_draws(shared_runs, reference, linear_model, gaussian_prior):
    run = shared_runs(batch=BLOCK)
    layers_all, (w, dw, *_) = reference
    rng = np.random.default_rng(0)
    accepted = rng.choice(run.index, size=3, replace=False)
    rejected = rng.choice(np.setdiff1d(np.arange(SAMPLES), run.index), size=1)
    for index in list(accepted) + list(rejected):
        layers, matrix = task.regenerate(linear_model, gaussian_prior, SEED, int(index), "direct")
        assert [x.shape for x in layers] == [(5, 5), (5, 5)]
        for got, want in zip(layers, layers_all):   # the same bits as the bulk regeneration
            assert np.array_equal(got, want[index])
        assert np.all(np.abs(matrix - w[index]) <= dw[index])
        if index in accepted:   # both float32 products lie within dw of the exact one
            row = int(np.searchsorted(run.index, index))
            assert run.index[row] == index
            assert np.all(np.abs(matrix - run.matrix[row]) <= 2 * dw[index])
    with pytest.raises(ValueError, match="index"):
        task.regenerate(linear_model, gaussian_prior, SEED, -1)


def test_acceptance_is_strict(shared_runs, direct, sensing_problem, linear_model, gaussian_prior):
    train, _, _ = direct(sensing_problem, linear_model, gaussian_prior, SEED, SAMPLES)
    j = int(np.argsort(train)[len(train) // 20])        # some draw's exact float32 loss
    at = float(train[j])
    above = float(np.nextafter(train[j], np.float32(np.inf)))
    run_at = shared_runs(batch=BLOCK, eps=at)
    run_above = shared_runs(batch=BLOCK, eps=above)
    assert j not in run_at.index and j in run_above.index
    assert run_at.totals.accepted == int(np.sum(train < train[j]))
    assert run_above.totals.accepted == int(np.sum(train <= train[j]))
    # a loss equal to a bin edge falls in the bin above it, like a rejected draw, so the
    # bins at the run's eps hold exactly the accepted draws
    for run, eps in ((run_at, at), (run_above, above)):
        t = run.totals
        bins = np.searchsorted(t.edges, train, side="right")
        assert np.array_equal(t.bin_count, np.bincount(bins, minlength=len(t.edges) + 1))
        again = statistics.rethreshold(t.edges, t.bin_count, *_bin_sums(t), eps)
        assert again["effective_eps"] == eps and again["accepted"] == t.accepted


def _bin_sums(totals):
    sums = totals.floats()
    return sums["bin_gen_sum"], sums["bin_gen_sumsq"]


# --------------------------------------------- b. statistics equal direct evaluation


def _near_cell_boundary(x):
    lo, hi = kernel.HIST_LOG10_RANGE
    pos = (np.log10(np.maximum(x.astype(np.float64), 1e-30)) - lo) * kernel.HIST_BINS / (hi - lo)
    return np.abs(pos - np.round(pos)) < 1e-4


def std_rtol(x, e_sum, e_sumsq):
    """Relative error bound of the sample std from sums S1, S2 with relative errors e_sum,
    e_sumsq: var = (S2 - S1^2 / n) / (n - 1) moves by <= (e_sumsq + 2 e_sum) (S2 / n) / var
    relative (the cancellation factor (mean^2 + var) / var), and the std by half that."""
    amplification = np.mean(x**2) / np.var(x)
    return 0.5 * (e_sumsq + 2 * e_sum) * amplification * (1 + 1e-9)


@pytest.mark.parametrize("batch", [BLOCK, 3 * BLOCK, None])
def test_statistics_equal_direct_evaluation(batch, shared_runs, direct, reference,
                                            sensing_problem, linear_model, gaussian_prior):
    run = shared_runs(batch=batch)
    train, gen, matrices = direct(sensing_problem, linear_model, gaussian_prior, SEED, SAMPLES)
    t = run.totals
    finite = np.isfinite(train) & np.isfinite(gen)
    accept = finite & (train < np.float32(EPS))
    assert (t.drawn, t.nonfinite, t.accepted) == (SAMPLES, int(np.sum(~finite)),
                                                  int(np.sum(accept)))
    # rows: the accepted indices in order, with the values of the per-draw evaluation.
    # Two float32 means of the same m float32 squares, summed in any order, are each
    # within (gamma_m + u) L of the exact mean L, so they differ by <= 2 gamma_{m+1} L
    # (m <= 15). Bitwise equality is the stronger claim tested across batch sizes below.
    assert np.array_equal(run.index, np.nonzero(accept)[0])
    np.testing.assert_allclose(run.train, train[accept], rtol=2 * gamma(16), atol=0)
    np.testing.assert_allclose(run.gen, gen[accept], rtol=2 * gamma(16), atol=0)
    _, (_, dw, *_) = reference
    assert np.all(np.abs(run.matrix - matrices[accept]) <= 2 * dw[accept])

    # Float sums. Kernel: float32 pairwise sums of each block's 256 values, relative
    # error <= gamma_8 for these non-negative terms, of values that may themselves differ
    # from the direct ones by 2 gamma_16 (squares: 4 gamma_16 + u). Host: exact.
    s = statistics.summarize(t)
    g = gen[finite].astype(np.float64)
    e_sum = gamma(8) + 2 * gamma(16)
    e_sumsq = gamma(8) + 4 * gamma(16) + U32
    np.testing.assert_allclose(s["prior_gen_loss_mean"], g.mean(), rtol=e_sum)
    np.testing.assert_allclose(s["prior_gen_loss_std"], g.std(ddof=1),
                               rtol=std_rtol(g, e_sum, e_sumsq))
    a = gen[accept].astype(np.float64)
    # accepted rows are summed exactly on the host (then divided: 1e-12), of float32 gen losses that
    # may differ from the direct ones by 2 gamma_16 (squares 4 gamma_16 + u)
    e_rows, e_rows_sq = 2 * gamma(16) + 1e-12, 4 * gamma(16) + U32 + 1e-12
    np.testing.assert_allclose(s["gnc_gen_loss_mean"], a.mean(), rtol=e_rows)
    np.testing.assert_allclose(s["gnc_gen_loss_std"], a.std(ddof=1),
                               rtol=std_rtol(a, e_rows, e_rows_sq))
    assert s["acceptance_rate"] == accept.sum() / SAMPLES

    # train-loss bins: exact counts, sums as above
    edges = statistics.train_loss_edges(EPS)
    assert np.array_equal(t.edges, edges)
    bins = np.searchsorted(edges, train[finite], side="right")
    assert np.array_equal(t.bin_count, np.bincount(bins, minlength=len(edges) + 1))
    bin_gen_sum, bin_gen_sumsq = _bin_sums(t)
    np.testing.assert_allclose(bin_gen_sum, np.bincount(bins, g, len(edges) + 1), rtol=e_sum)
    np.testing.assert_allclose(bin_gen_sumsq, np.bincount(bins, g**2, len(edges) + 1),
                               rtol=e_sumsq)

    # (log train, log gen) histogram: every finite draw once, in its cell (a draw whose
    # position is within float32 rounding of a cell edge may land on either side)
    assert t.hist.sum() == finite.sum()
    lo, hi = kernel.HIST_LOG10_RANGE

    def cell(x):
        pos = ((np.log10(np.maximum(x.astype(np.float64), 1e-30)) - lo)
               * kernel.HIST_BINS / (hi - lo))
        return np.clip(np.floor(pos), 0, kernel.HIST_BINS - 1).astype(int)

    want = np.bincount(cell(train[finite]) * kernel.HIST_BINS + cell(gen[finite]),
                       minlength=kernel.HIST_BINS**2)
    near = np.sum(_near_cell_boundary(train[finite]) | _near_cell_boundary(gen[finite]))
    assert np.abs(t.hist - want).sum() <= 2 * near

    # rethreshold from the bins reproduces the run at eps, and a lower edge exactly
    at_eps = statistics.rethreshold(t.edges, t.bin_count, *_bin_sums(t), EPS)
    assert at_eps["effective_eps"] == float(np.float32(EPS)) and at_eps["accepted"] == t.accepted
    np.testing.assert_allclose(at_eps["gnc_gen_loss_mean"], a.mean(), rtol=e_sum)
    lower = statistics.rethreshold(t.edges, t.bin_count, *_bin_sums(t), 0.05)
    edge = np.float32(10 ** (-7 / 5))        # largest grid edge below 0.05
    assert lower["effective_eps"] == float(edge)
    assert lower["accepted"] == int(np.sum(finite & (train < edge)))


def test_direct_evaluation_matches_numpy(direct, reference, sensing_problem, linear_model,
                                         gaussian_prior):
    # the per-draw values used as "direct" above are themselves checked against float64
    train, gen, matrices = direct(sensing_problem, linear_model, gaussian_prior, SEED, SAMPLES)
    _, (w, dw, t64, dt, g64, dg) = reference
    assert np.all(np.abs(matrices - w) <= dw)
    assert np.all(np.abs(train - t64) <= dt) and np.all(np.abs(gen - g64) <= dg)


def test_zero_accepted_run(shared_runs):
    run = shared_runs(batch=BLOCK, eps=1e-12)
    s = statistics.summarize(run.totals)
    assert s["accepted"] == 0 and run.chunks == [] and s["draws"] == SAMPLES
    assert np.isnan(s["gnc_gen_loss_mean"]) and s["gnc_message"] == statistics.NO_ACCEPTED_MESSAGE
    assert np.isfinite(s["prior_gen_loss_mean"])


# ------------------------------------------------- c. batch size does not matter


def _same(a, b):
    """Bitwise equality of summaries: equal keys, floats equal or both NaN."""
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and np.isnan(x):
            assert isinstance(y, float) and np.isnan(y), key
        else:
            assert x == y and type(x) == type(y), key


def assert_identical(a, b):
    _same(statistics.summarize(a.totals), statistics.summarize(b.totals))
    for name, value in vars(a.totals).items():
        assert np.array_equal(getattr(b.totals, name), value), name
    for name in ("index", "train", "gen", "matrix"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_same_decisions_across_batch_sizes(shared_runs):
    """Integer results and the accepted set do not depend on the batch size."""
    runs = [shared_runs(batch=batch) for batch in (BLOCK, 3 * BLOCK, None)]
    assert [r.schedule.blocks for r in runs] == [1, 3, 12]
    assert [r.schedule.steps for r in runs] == [12, 4, 1]
    for r in runs[1:]:
        assert np.array_equal(r.index, runs[0].index)
        assert np.array_equal(r.matrix, runs[0].matrix)
        for name in ("drawn", "nonfinite", "accepted"):
            assert getattr(r.totals, name) == getattr(runs[0].totals, name)
        for name in ("bin_count", "hist"):
            assert np.array_equal(getattr(r.totals, name), getattr(runs[0].totals, name))


def test_identical_across_batch_sizes(shared_runs):
    """Statistics and stored losses are the same bits for 1, 3 and 12 blocks per step.

    A plain jnp.mean over the measurements changes its summation order with the batch
    shape on CPU (last-bit differences in the losses); this pins the fixed-order sums."""
    runs = [shared_runs(batch=batch) for batch in (BLOCK, 3 * BLOCK, None)]
    assert [r.schedule.blocks for r in runs] == [1, 3, 12]
    for r in runs[1:]:
        assert_identical(runs[0], r)


def test_row_overflow_loses_nothing(shared_runs, direct, sensing_problem, linear_model,
                                    gaussian_prior):
    train, gen, matrices = direct(sensing_problem, linear_model, gaussian_prior, SEED, SAMPLES)
    capacity = 30
    mixed = shared_runs(batch=BLOCK, capacity=capacity)
    per_step = np.bincount(mixed.index // BLOCK, minlength=SAMPLES // BLOCK + 1)
    # the fixed seed gives steps both within and beyond the buffer: both paths run
    assert np.any(per_step > capacity) and np.any((per_step > 0) & (per_step <= capacity))
    assert_identical(mixed, shared_runs(batch=BLOCK))
    # every step overflows at a high acceptance rate: still every accepted draw, once,
    # in order, with its own values (same block shapes as the direct evaluation)
    small = shared_runs(batch=BLOCK, capacity=capacity, eps=1.0)
    accept = np.isfinite(train) & (train < np.float32(1.0))
    assert 0.5 * SAMPLES < small.totals.accepted == accept.sum()
    assert np.all(np.bincount(small.index // BLOCK) > capacity)
    assert np.array_equal(small.index, np.nonzero(accept)[0])
    assert np.array_equal(small.train, train[accept]) and np.array_equal(small.gen, gen[accept])
    assert np.array_equal(small.matrix, matrices[accept])
    # and the same set as a run whose buffer holds every row; (12 blocks, one step,
    # capacity 12 * BLOCK) is also the overflow schedule of the default run: no compile
    large = shared_runs(batch=None, capacity=12 * BLOCK, eps=1.0)
    assert large.chunks and np.array_equal(large.index, small.index)
    assert large.totals.accepted == small.totals.accepted


# ----------------------------------------------------- d. device count does not matter


_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    import numpy as np
    from gcsampler.factorization import models, priors, problems, task
    from gcsampler.threshold import statistics
    assert len(jax.devices()) == 8 and jax.default_backend() == "cpu", jax.devices()
    problem = problems.matrix_sensing(seed=0, n_rows=5, n_cols=5, rank=1, gt_norm=1.0,
                                      measurements=15)
    model = models.factorization(5, 5, depth=2, width=5)
    prior = priors.gaussian()
    out = {}
    for name, devices, batch, capacity in (("four", 4, %(block)d, None),
                                           ("one", 1, %(block)d, None),
                                           ("two", 2, %(block)d, None),
                                           ("eight", 8, %(block)d, None),
                                           ("four_overflow", 4, %(block)d, 8),
                                           ("four_default", 4, None, None),
                                           ("one_default", 1, None, None)):
        # default batch: %(small)d samples = 4 blocks, one per device on 4 devices,
        # all 4 in one step on 1 device
        samples = %(small)d if batch is None else %(samples)d
        rows = []
        result = task.guess_and_check(
            problem, model, prior, eps=%(eps)r, samples=samples, seed=%(seed)d, sampler="direct",
            log2_block=%(log2_block)d, batch=batch, devices=devices, capacity=capacity,
            on_rows=lambda i, t, g, m: rows.append((i, t, g, m)))
        out[name] = {"n_devices": len(result.schedule.devices), "blocks": result.schedule.blocks,
                     "summary": statistics.summarize(result.totals),
                     "totals": {k: np.asarray(v).tolist() for k, v in
                                vars(result.totals).items()}}
        for j, field in enumerate(("index", "train", "gen", "matrix")):
            out[name][field] = np.concatenate([r[j] for r in rows]).astype(np.float64).tolist()
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
""") % dict(block=BLOCK, eps=EPS, samples=SAMPLES, seed=SEED, log2_block=LOG2_BLOCK,
             small=4 * BLOCK - 24)


def _as_record(run):
    """The parent-process run in the subprocess's JSON form (floats survive exactly)."""
    return {"summary": json.loads(json.dumps(statistics.summarize(run.totals))),
            "totals": {k: np.asarray(v).tolist() for k, v in vars(run.totals).items()},
            **{f: getattr(run, f).astype(np.float64).tolist()
               for f in ("index", "train", "gen", "matrix")}}


def _same_record(a, b):
    _same(a["summary"], b["summary"])
    for k in ("totals", "index", "train", "gen", "matrix"):
        assert json.dumps(a[k]) == json.dumps(b[k]), k


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    """Runs in a subprocess with 8 forced CPU devices, using 1, 2, 4 or 8 of them."""
    env = dict(os.environ)
    env["JAX_NUM_CPU_DEVICES"] = "8"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                        + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path_factory.mktemp("devices") / "runs.json"
    proc = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_identical_across_device_counts(four_devices, shared_runs):
    """1, 2, 4 and 8 forced CPU devices: the same accepted rows and statistics, bit for bit."""
    four, one = four_devices["four"], four_devices["one"]
    assert (four["n_devices"], one["n_devices"]) == (4, 1)
    assert (four_devices["two"]["n_devices"], four_devices["eight"]["n_devices"]) == (2, 8)
    assert one["summary"]["accepted"] > 0
    _same_record(four, one)
    _same_record(four_devices["two"], one)
    _same_record(four_devices["eight"], one)
    _same_record(four_devices["four_overflow"], one)
    if jax.default_backend() == "cpu":      # bits are per backend; compare with this process
        _same_record(one, _as_record(shared_runs(batch=BLOCK)))


def test_same_decisions_across_device_counts_default_batch(four_devices):
    four, one = four_devices["four_default"], four_devices["one_default"]
    assert (four["n_devices"], four["blocks"], one["blocks"]) == (4, 1, 4)
    assert one["totals"]["accepted"] > 0
    assert four["index"] == one["index"] and four["matrix"] == one["matrix"]
    for k in ("drawn", "nonfinite", "accepted", "bin_count", "hist"):
        assert four["totals"][k] == one["totals"][k], k


def test_identical_across_device_counts_default_batch(four_devices):
    """With the default batch, 4 devices run 1 block per step each and 1 device runs all
    4 blocks in one step: the float statistics must still be the same bits."""
    _same_record(four_devices["four_default"], four_devices["one_default"])


# ----------------------------------------------------------- e. nonfinite draws


def _overflowing_layer(key, shape, dtype=jnp.float32):
    """Finite weights, but with probability 0.35 a layer is scaled by 1e30, so the
    draw's squared residuals (1e60 and beyond) overflow float32: inf or NaN losses."""
    k_value, k_flag = jax.random.split(key)
    x = jax.random.normal(k_value, shape, dtype) * jnp.asarray(shape[-1] ** -0.5, dtype)
    u = jax.random.uniform(k_flag)
    return jnp.where(u < 0.35, x * 1e30, x).astype(dtype)


NAN_PRIOR = priors.custom(_overflowing_layer, name="overflowing")


def test_nonfinite_draws(run_collect, direct, sensing_problem, linear_model):
    run = run_collect(sensing_problem, linear_model, NAN_PRIOR, eps=EPS, samples=SAMPLES,
                      seed=SEED, log2_block=LOG2_BLOCK, devices=1, capacity=SAMPLES)
    train, gen, _ = direct(sensing_problem, linear_model, NAN_PRIOR, SEED, SAMPLES)
    finite = np.isfinite(train) & np.isfinite(gen)
    # each layer overflows with probability 0.35, so a draw is finite w.p. 0.65^2:
    # well inside (0.3, 0.55) at 3000 draws (binomial sd 0.009)
    assert 0.3 < finite.mean() < 0.55
    t = run.totals
    assert t.drawn == SAMPLES and t.nonfinite == int(np.sum(~finite))
    accept = finite & (train < np.float32(EPS))
    assert t.accepted == int(accept.sum()) > 0
    assert np.array_equal(run.index, np.nonzero(accept)[0])
    assert np.all(np.isfinite(run.train)) and np.all(np.isfinite(run.gen))
    assert np.all(np.isfinite(run.matrix))
    s = statistics.summarize(t)
    # float32 pairwise block sums of values within 2 gamma_16 of the direct ones (see above)
    np.testing.assert_allclose(s["prior_gen_loss_mean"], gen[finite].astype(np.float64).mean(),
                               rtol=gamma(8) + 2 * gamma(16))
    assert t.bin_count.sum() == finite.sum() and t.hist.sum() == finite.sum()
    assert np.all(np.isfinite(t.floats()["bin_gen_sum"]))


def test_nonfinite_gen_loss_alone(run_collect, direct, sensing_problem, linear_model,
                                  gaussian_prior):
    # test operators scaled by 1e19: sum of squared gen residuals ~ 1e38 * 2.4 is near the
    # float32 maximum 3.4e38, so some draws have a finite train loss but gen = inf.
    # (Same n_train and D as the shared problem: the compiled kernel is reused.)
    p = sensing_problem
    huge = problems.from_arrays(p.train_ops.reshape(-1, 5, 5), p.train_labels,
                                1e19 * p.test_ops.reshape(-1, 5, 5), 1e19 * p.test_labels)
    run = run_collect(huge, linear_model, gaussian_prior, eps=EPS, samples=SAMPLES, seed=SEED,
                      log2_block=LOG2_BLOCK, devices=1, batch=BLOCK)
    train, gen, _ = direct(huge, linear_model, gaussian_prior, SEED, SAMPLES)
    assert np.all(np.isfinite(train))
    finite = np.isfinite(gen)
    assert 0 < finite.sum() < SAMPLES
    accept = finite & (train < np.float32(EPS))
    assert np.sum(~finite & (train < np.float32(EPS))) > 0   # would be accepted if gen were ignored
    t = run.totals
    assert t.nonfinite == int(np.sum(~finite)) and t.accepted == int(accept.sum())
    assert np.array_equal(run.index, np.nonzero(accept)[0])
    assert t.bin_count.sum() == finite.sum() and t.hist.sum() == finite.sum()


# ------------------------------------------------------------------ f. seeds


def test_seed_matters(shared_runs, run_collect, sensing_problem, linear_model, gaussian_prior):
    a = shared_runs(batch=BLOCK)
    b = shared_runs(batch=BLOCK, seed=SEED + 1)
    assert not np.array_equal(a.index, b.index) and len(set(a.index) ^ set(b.index)) > 10
    again = run_collect(sensing_problem, linear_model, gaussian_prior, seed=SEED, eps=EPS,
                        samples=SAMPLES, log2_block=LOG2_BLOCK, devices=1, batch=BLOCK)
    assert_identical(a, again)


def test_draw_keys_of_high_indices():
    # block keys fold the high and low 32-bit words: indices 2^32 apart differ, and the
    # block layout agrees with index_key for blocks beyond 2^32 draws
    base = keys.seed_key(SEED)
    block_id = (2**32 >> LOG2_BLOCK) + 3
    keys_ = jax.random.key_data(keys.block_keys(base, np.uint32(block_id), LOG2_BLOCK))
    for j in (0, 1, BLOCK - 1):
        index = block_id * BLOCK + j
        want = keys.index_key(base, np.uint32(index >> 32), np.uint32(index & 0xFFFFFFFF))
        assert np.array_equal(keys_[j], jax.random.key_data(want))
        low = keys.index_key(base, np.uint32(0), np.uint32(index & 0xFFFFFFFF))
        assert not np.array_equal(keys_[j], jax.random.key_data(low))


# --------------------------------------------------- g. the sampled distribution


N_DIST = 20_000
DIST_PROBLEM = problems.matrix_sensing(seed=1, n_rows=4, n_cols=3, rank=1, measurements=6)
# rows (4) != width != cols (3): a scale taken from the wrong dimension changes the law
DIST_CASES = {
    "linear2": (models.factorization(4, 3, depth=2, width=7), lambda x: x),
    "tanh3": (models.factorization(4, 3, depth=3, width=6, activation="tanh"), np.tanh),
}
# three KS statistics per case, Bonferroni: false-failure rate <= 0.01 per case
KS_ALPHA = 0.01 / 3


def numpy_draws(model, fn, n, seed, scales=None):
    """End-to-end matrices from a NumPy Generator; ``scales`` overrides 1/sqrt(c) per layer."""
    rng = np.random.default_rng(seed)
    scales = scales or [c**-0.5 for _, c in model.layer_shapes]
    layers = [rng.standard_normal((n,) + s) * a for s, a in zip(model.layer_shapes, scales)]
    h = layers[0]
    for w in layers[1:]:
        h = fn(h) @ w
    return h


def ks_pvalues(a, b):
    def statistics(m):
        return m[:, 0, 0], m[:, -1, -1], np.linalg.svd(m, compute_uv=False)[:, 0]
    return [sps.ks_2samp(x, y).pvalue for x, y in zip(statistics(a), statistics(b))]


@pytest.fixture(scope="module", params=sorted(DIST_CASES))
def engine_matrices(request, run_collect, gaussian_prior):
    model, fn = DIST_CASES[request.param]
    run = run_collect(DIST_PROBLEM, model, gaussian_prior, eps=1e30, samples=N_DIST, seed=5,
                      log2_block=10, batch=4096, capacity=4096, devices=1)
    assert run.totals.accepted == N_DIST and np.array_equal(run.index, np.arange(N_DIST))
    return model, fn, run.matrix.astype(np.float64)


def test_distribution_matches_numpy_reference(engine_matrices):
    model, fn, got = engine_matrices
    want = numpy_draws(model, fn, N_DIST, seed=123)
    p = ks_pvalues(got, want)
    assert min(p) > KS_ALPHA, p


def test_distribution_test_rejects_wrong_scaling(engine_matrices):
    model, fn, got = engine_matrices
    rows, k = model.layer_shapes[0]
    right = [c**-0.5 for _, c in model.layer_shapes]
    wrong = {
        "first layer by rows": [rows**-0.5] + right[1:],
        "last layer by width": right[:-1] + [k**-0.5],
        "variance doubled": [a * np.sqrt(2) for a in right[:1]] + right[1:],
    }
    for name, scales in wrong.items():
        p = ks_pvalues(got, numpy_draws(model, fn, N_DIST, seed=124, scales=scales))
        assert max(p) < KS_ALPHA, (name, p)   # each of the three statistics rejects


# ------------------------------------------------------------ h. no recompiling


TRACES = []


def counted_identity(x):
    """A linear activation that records each time JAX traces it."""
    TRACES.append(1)
    return x


def test_new_seed_and_eps_do_not_recompile(sensing_problem, gaussian_prior):
    model = models.factorization(5, 5, depth=2, width=5, activation=counted_identity)
    kwargs = dict(samples=SAMPLES, log2_block=LOG2_BLOCK, batch=3 * BLOCK, capacity=3 * BLOCK,
                  devices=1)
    first = task.guess_and_check(sensing_problem, model, gaussian_prior, eps=EPS, seed=1, **kwargs)
    traces, cached = len(TRACES), len(loop._CALL_CACHE)
    assert traces > 0
    second = task.guess_and_check(sensing_problem, model, gaussian_prior, eps=0.3, seed=2,
                                  **kwargs)
    assert len(TRACES) == traces and len(loop._CALL_CACHE) == cached
    assert second.totals.accepted > first.totals.accepted   # it did run with the new eps
    # a genuinely new setting (another sample count changes steps per call) does compile
    task.guess_and_check(sensing_problem, model, gaussian_prior, eps=EPS, seed=1,
                         **{**kwargs, "samples": SAMPLES // 2})
    assert len(TRACES) > traces and len(loop._CALL_CACHE) == cached + 1


def test_the_compiled_calls_kept_are_bounded(sensing_problem, gaussian_prior, monkeypatch):
    """Past MAX_COMPILED_CALLS the least recently used call is dropped (and compiled again
    when it is needed again), so a long sweep in one process keeps few executables."""
    model = models.factorization(5, 5, depth=2, width=5, activation=counted_identity)
    monkeypatch.setattr(loop, "MAX_COMPILED_CALLS", 1)
    monkeypatch.setattr(loop, "_CALL_CACHE", collections.OrderedDict())

    def run(samples):
        traces = len(TRACES)
        task.guess_and_check(sensing_problem, model, gaussian_prior, eps=EPS, seed=1,
                             samples=samples, log2_block=LOG2_BLOCK, batch=3 * BLOCK,
                             capacity=3 * BLOCK, devices=1)
        assert len(loop._CALL_CACHE) == 1
        return len(TRACES) > traces

    assert run(SAMPLES)
    assert not run(SAMPLES)          # kept
    assert run(SAMPLES // 2)         # a new setting evicts the first ...
    assert run(SAMPLES)              # ... which compiles again


# ---------------------------------------------------------- i. argument errors


@pytest.mark.parametrize("bad, word", [
    (dict(samples=0), "samples"), (dict(samples=-3), "samples"), (dict(samples=10.0), "samples"),
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(eps=float("nan")), "eps"),
    (dict(eps=float("inf")), "eps"),
    (dict(seed=-1), "seed"), (dict(seed=2**32), "seed"), (dict(seed=1.5), "seed"),
    (dict(devices=0), "devices"), (dict(devices=len(jax.local_devices()) + 1), "devices"),
    (dict(log2_block=5), "log2_block"), (dict(log2_block=21), "log2_block"),
])
def test_argument_errors(bad, word, sensing_problem, linear_model, gaussian_prior):
    kwargs = dict(eps=EPS, samples=100, seed=0, log2_block=LOG2_BLOCK)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=word):
        task.guess_and_check(sensing_problem, linear_model, gaussian_prior, **kwargs)


def test_model_shape_must_match_problem(gaussian_prior):
    """A model whose matrix shape differs from the problem's is refused up front: a 3x4
    model on a 4x3 problem has the same number of entries and would otherwise run with
    the entries matched to the wrong operators."""
    transposed = models.factorization(3, 4, depth=2, width=5)
    with pytest.raises(ValueError, match="model is 3x4 but the problem's matrix is 4x3"):
        task.guess_and_check(DIST_PROBLEM, transposed, gaussian_prior, eps=EPS, samples=100,
                             log2_block=LOG2_BLOCK)
    with pytest.raises(ValueError, match="model is 5x5"):
        task.guess_and_check(DIST_PROBLEM, models.factorization(5, 5, 2, 5), gaussian_prior,
                             eps=EPS, samples=100, log2_block=LOG2_BLOCK)


# -------------------------------------------------- j. snapshots: stopping and continuing


SNAPSHOT_SAMPLES = 50 * BLOCK + 100     # 51 blocks; at one block per step, calls of 1 to 16
EXTENDED_SAMPLES = 62 * BLOCK + 50


def assert_same_totals(a, b):
    for field in dataclasses.fields(statistics.Totals):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert type(x) == type(y) and np.asarray(x).tobytes() == np.asarray(y).tobytes(), field.name


@pytest.fixture(scope="module")
def snapshotted(run_collect, sensing_problem, linear_model, gaussian_prior):
    """A run of SNAPSHOT_SAMPLES draws and the snapshots it offered."""
    snapshots = []
    run = run_collect(sensing_problem, linear_model, gaussian_prior, eps=EPS,
                      samples=SNAPSHOT_SAMPLES, seed=SEED, log2_block=LOG2_BLOCK, batch=BLOCK,
                      devices=1, on_snapshot=snapshots.append)
    return run, snapshots


def test_snapshots_cover_whole_blocks(snapshotted):
    run, snapshots = snapshotted
    # one after every call (the first has one step) but the last: it ends in the partial
    # block 50
    blocks = [s.block for s in snapshots]
    assert blocks[0] == 1 and blocks == sorted(set(blocks)) and blocks[-1] <= 50
    assert all(b - a <= 16 for a, b in zip([0] + blocks, blocks))
    for snapshot in snapshots:        # each holds its own totals, of exactly its blocks
        assert snapshot.totals.drawn == snapshot.block * BLOCK
        assert snapshot.totals.accepted == int(np.sum(run.index < snapshot.block * BLOCK))


def test_resume_from_a_snapshot_is_bit_identical(snapshotted, run_collect, sensing_problem,
                                                 linear_model, gaussian_prior):
    """Continuing from any snapshot, with another batch, gives the same bits and the rows
    after the snapshot; a larger sample count gives the run made with it from the start."""
    run, snapshots = snapshotted
    kwargs = dict(eps=EPS, seed=SEED, log2_block=LOG2_BLOCK, devices=1)
    for snapshot in snapshots:
        rest = run_collect(sensing_problem, linear_model, gaussian_prior, samples=SNAPSHOT_SAMPLES,
                           batch=3 * BLOCK, start=snapshot, **kwargs)
        assert_same_totals(rest.totals, run.totals)
        after = run.index >= snapshot.block * BLOCK
        for name in ("index", "train", "gen", "matrix"):
            assert np.array_equal(getattr(rest, name), getattr(run, name)[after]), name
    longer = run_collect(sensing_problem, linear_model, gaussian_prior, samples=EXTENDED_SAMPLES,
                         batch=BLOCK, **kwargs)
    extended = run_collect(sensing_problem, linear_model, gaussian_prior,
                           samples=EXTENDED_SAMPLES, batch=BLOCK, start=snapshots[-1], **kwargs)
    assert_same_totals(extended.totals, longer.totals)
    assert np.array_equal(extended.index,
                          longer.index[longer.index >= snapshots[-1].block * BLOCK])


def test_resume_from_the_end_draws_nothing(snapshotted, sensing_problem, linear_model,
                                           gaussian_prior):
    _, snapshots = snapshotted
    result = task.guess_and_check(
        sensing_problem, linear_model, gaussian_prior, eps=EPS,
        samples=snapshots[-1].block * BLOCK, seed=SEED,
        sampler="direct", log2_block=LOG2_BLOCK, batch=BLOCK, devices=1, start=snapshots[-1],
        on_rows=lambda *row: pytest.fail("no draw is left"))
    assert_same_totals(result.totals, snapshots[-1].totals)


@pytest.mark.parametrize("change, message", [
    (dict(eps=0.2), "made with another eps"),
    (dict(samples=2 * BLOCK - 1), "covers 512 draws, more than samples=511"),
    (dict(block=1), "inconsistent: 512 draws in blocks 0 to 1"),
])
def test_start_must_fit_the_run(change, message, snapshotted, sensing_problem, linear_model,
                                gaussian_prior):
    snapshot = snapshotted[1][1]  # after the first two calls, of one step each: 2 blocks
    kwargs = dict(eps=EPS, samples=SNAPSHOT_SAMPLES, seed=SEED, sampler="direct",
                  log2_block=LOG2_BLOCK, batch=BLOCK, devices=1, start=snapshot)
    kwargs.update(change)
    if "block" in change:
        kwargs["start"] = snapshot._replace(block=kwargs.pop("block"))
    with pytest.raises(ValueError, match=message):
        task.guess_and_check(sensing_problem, linear_model, gaussian_prior, **kwargs)


# ---------------------------------------------- k. calls of bounded length, prompt stops


def test_calls_are_sized_to_about_a_second():
    assert loop.CALL_SECONDS == 1.0
    assert loop.next_steps(4, 2.0, 16) == 2           # calls of 2 s: half as many steps
    assert loop.next_steps(1, 3.0, 16) == 1           # never fewer than one
    assert loop.next_steps(1, 0.01, 16) == 2          # at most twice the last call's
    assert loop.next_steps(8, 0.01, 16) == 16         # and at most the schedule's
    assert loop.next_steps(3, 0.0, 16) == 6


def test_a_stop_launches_no_further_call(snapshotted, sensing_problem, linear_model,
                                         gaussian_prior, monkeypatch):
    """Asked to stop while the first call is read, the loop launches no call after the
    one already in flight and ends at its snapshot."""
    fact = task.factorization_task(sensing_problem, linear_model, gaussian_prior, eps=EPS,
                                   sampler="direct")
    launched, compiled_call, requested = [], loop.compiled_call, []

    def counting(task_, schedule, call_args):
        compiled, seconds = compiled_call(task_, schedule, call_args)

        def launch(*args):
            launched.append(int(args[1]))
            return compiled(*args)
        return launch, seconds

    monkeypatch.setattr(loop, "compiled_call", counting)
    with pytest.raises(loop.Stopped) as stopped:
        loop.guess_and_check(fact, samples=SNAPSHOT_SAMPLES, seed=SEED, log2_block=LOG2_BLOCK,
                             batch=BLOCK, devices=1, stop=lambda: bool(requested),
                             on_snapshot=lambda snapshot: requested.append(snapshot))
    assert launched == [0, 1]                          # the first two calls, of one block
    assert [s.block for s in requested] == [1, 2] and stopped.value.snapshot is requested[-1]
    assert_same_totals(stopped.value.snapshot.totals, snapshotted[1][1].totals)
