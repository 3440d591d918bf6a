"""Tests of gcsampler.factorization.problems: operators, labels, test sets and the two losses."""

import numpy as np
import pytest

from gcsampler.factorization import problems

# Problem data is built in float64; identities such as B B^T = I hold to a few ulps
# of the entries times the dimension D = 25 (QR is backward stable), so 1e-12 is a
# tolerance with orders of magnitude of slack and still catches any real error.
TOL64 = 1e-12
# float32 inner products of length D = 25 have relative error <= 25 * 2^-24 ~ 1.5e-6
# of sum |a_i b_i| (Higham, Thm 3.1), squaring and averaging add a few more units;
# 1e-5 of the loss scale bounds the float32 path with margin.
TOL32 = 1e-5


def sensing(**kw):
    args = dict(seed=0, n_rows=5, n_cols=4, rank=2, gt_norm=1.7, measurements=9)
    args.update(kw)
    return problems.matrix_sensing(**args)


def completion(**kw):
    args = dict(seed=0, n_rows=5, n_cols=4, rank=2, gt_norm=1.7, measurements=9)
    args.update(kw)
    return problems.matrix_completion(**args)


# ------------------------------------------------------------------ sensing


def test_sensing_shapes():
    p = sensing()
    assert p.train_ops.shape == (9, 20) and p.train_labels.shape == (9,)
    assert p.test_ops.shape == (20 - 9, 20) and p.test_labels.shape == (11,)
    assert (p.n_rows, p.n_cols) == (5, 4) and p.ground_truth.shape == (5, 4)


def test_sensing_operators_have_unit_frobenius_norm():
    p = sensing()
    np.testing.assert_allclose(np.linalg.norm(p.train_ops, axis=1), 1.0, rtol=0, atol=TOL64)


def test_sensing_operators_are_not_all_alike():
    # unit norm but iid Gaussian directions: far from one another and from one-hot
    p = sensing()
    gram = p.train_ops @ p.train_ops.T
    off = gram[~np.eye(len(gram), dtype=bool)]
    assert np.max(np.abs(off)) < 0.99
    assert np.all(np.count_nonzero(p.train_ops, axis=1) == 20)


@pytest.mark.parametrize("measurements", [1, 9, 19])
def test_sensing_test_operators_orthonormal_complement(measurements):
    p = sensing(measurements=measurements)
    d = p.n_rows * p.n_cols
    b = p.test_ops
    assert b.shape == (d - measurements, d)
    np.testing.assert_allclose(b @ b.T, np.eye(d - measurements), rtol=0, atol=TOL64)
    np.testing.assert_allclose(b @ p.train_ops.T, 0.0, rtol=0, atol=TOL64)
    # together they span everything: rank of the stacked operators is D
    assert np.linalg.matrix_rank(np.concatenate([p.train_ops, b])) == d


def test_labels_are_inner_products_with_ground_truth():
    for p in (sensing(), completion()):
        w = p.ground_truth
        want_train = [np.sum(a.reshape(p.n_rows, p.n_cols) * w) for a in p.train_ops]
        want_test = [np.sum(b.reshape(p.n_rows, p.n_cols) * w) for b in p.test_ops]
        np.testing.assert_allclose(p.train_labels, want_train, rtol=0, atol=TOL64)
        np.testing.assert_allclose(p.test_labels, want_test, rtol=0, atol=TOL64)


@pytest.mark.parametrize("rank", [1, 2, 4])
@pytest.mark.parametrize("make", [sensing, completion])
def test_ground_truth_norm_and_rank(make, rank):
    p = make(rank=rank, gt_norm=2.5)
    np.testing.assert_allclose(np.linalg.norm(p.ground_truth), 2.5, rtol=TOL64)
    assert np.linalg.matrix_rank(p.ground_truth) == rank


def test_ground_truth_factors_are_gaussian_product():
    # W* = U V / ||U V|| * gt_norm with U, V drawn first from default_rng(seed)
    rng = np.random.default_rng(5)
    u = rng.standard_normal((5, 2))
    v = rng.standard_normal((2, 4))
    want = u @ v * (1.7 / np.linalg.norm(u @ v))
    np.testing.assert_allclose(sensing(seed=5).ground_truth, want, rtol=0, atol=TOL64)


@pytest.mark.parametrize("make", [sensing, completion])
def test_same_seed_same_problem_different_seed_different(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y)
        else:
            assert x == y
    assert not np.array_equal(a.ground_truth, c.ground_truth)
    assert not np.array_equal(a.train_labels, c.train_labels)


def test_sensing_different_seed_different_operators():
    assert not np.allclose(sensing(seed=1).train_ops, sensing(seed=2).train_ops)


# --------------------------------------------------------------- completion


def test_completion_one_hot_distinct_partition():
    p = completion(measurements=12)
    d = p.n_rows * p.n_cols
    ops = np.concatenate([p.train_ops, p.test_ops])
    assert ops.shape == (d, d)
    assert np.all(np.isin(ops, (0.0, 1.0)))
    assert np.all(ops.sum(axis=1) == 1.0)
    train_entries = np.argmax(p.train_ops, axis=1)
    test_entries = np.argmax(p.test_ops, axis=1)
    assert len(set(train_entries)) == 12
    assert len(test_entries) == d - 12
    assert set(train_entries).isdisjoint(test_entries)
    assert sorted(set(train_entries) | set(test_entries)) == list(range(d))
    flat = p.ground_truth.reshape(-1)
    assert np.array_equal(p.train_labels, flat[train_entries])
    assert np.array_equal(p.test_labels, flat[test_entries])


def test_completion_observed_entries_depend_on_seed():
    a = np.argmax(completion(seed=1).train_ops, axis=1)
    b = np.argmax(completion(seed=2).train_ops, axis=1)
    assert set(a) != set(b)


def test_make_problem_dispatch():
    assert np.array_equal(problems.make_problem("sensing", seed=2).train_ops,
                          problems.matrix_sensing(seed=2).train_ops)
    assert np.array_equal(problems.make_problem("completion", seed=2).train_ops,
                          problems.matrix_completion(seed=2).train_ops)
    with pytest.raises(ValueError, match="task"):
        problems.make_problem("denoising")


# ------------------------------------------------------------------- losses


def _hand_losses(p, w):
    train = sum((np.sum(a.reshape(w.shape) * w) - y) ** 2
                for a, y in zip(p.train_ops, p.train_labels)) / len(p.train_ops)
    gen = sum((np.sum(b.reshape(w.shape) * w) - y) ** 2
              for b, y in zip(p.test_ops, p.test_labels)) / len(p.test_ops)
    return train, gen


@pytest.mark.parametrize("make", [sensing, completion])
def test_losses_match_hand_loop(make):
    p = make()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 5, 4))
    train, gen = problems.losses(p, w)
    assert train.shape == gen.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            t, g = _hand_losses(p, w[i, j])
            np.testing.assert_allclose([train[i, j], gen[i, j]], [t, g], rtol=1e-12)


def test_losses_of_ground_truth_are_zero():
    p = sensing()
    train, gen = problems.losses(p, p.ground_truth)
    assert train < 1e-28 and gen < 1e-28


def test_losses_are_means_not_sums():
    # W = W* + delta * E_00 in completion with entry 0 hidden: gen = delta^2 / t, train = 0
    p = completion()
    hidden = np.argmax(p.test_ops, axis=1)
    w = p.ground_truth.copy().reshape(-1)
    w[hidden[0]] += 3.0
    train, gen = problems.losses(p, w.reshape(5, 4))
    assert train == 0.0
    np.testing.assert_allclose(gen, 9.0 / len(hidden), rtol=1e-12)


@pytest.mark.parametrize("make", [sensing, completion])
def test_stacked_operators_and_residual_losses_match(make):
    p = make()
    ops, labels = problems.stacked_operators(p)
    m, t = len(p.train_ops), len(p.test_ops)
    assert ops.shape == (20, m + t) and labels.shape == (m + t,)
    assert str(ops.dtype) == "float32"
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 5, 4))
    residuals = (np.asarray(w.reshape(6, -1).astype(np.float32) @ np.asarray(ops))
                 - np.asarray(labels))
    train32, gen32 = problems.losses_from_residuals(residuals, m)
    train, gen = problems.losses(p, w)
    np.testing.assert_allclose(np.asarray(train32), train, rtol=TOL32)
    np.testing.assert_allclose(np.asarray(gen32), gen, rtol=TOL32)


# -------------------------------------------------------------- from_arrays


def test_from_arrays_round_trip():
    p = sensing()
    q = problems.from_arrays(p.train_ops.reshape(-1, 5, 4), p.train_labels,
                             p.test_ops.reshape(-1, 5, 4), p.test_labels, p.ground_truth)
    assert (q.n_rows, q.n_cols) == (5, 4)
    for name in ("train_ops", "train_labels", "test_ops", "test_labels", "ground_truth"):
        assert np.array_equal(getattr(q, name), getattr(p, name)), name
    # row-major flattening: operator entry (i, j) is column i * n_cols + j
    a = np.zeros((1, 5, 4))
    a[0, 2, 3] = 1.0
    r = problems.from_arrays(a, [0.0], np.ones((1, 5, 4)), [0.0])
    assert np.argmax(r.train_ops[0]) == 2 * 4 + 3
    assert r.ground_truth is None
    w = np.arange(20.0).reshape(5, 4)
    assert problems.losses(r, w)[0] == pytest.approx(w[2, 3] ** 2)


@pytest.mark.parametrize("bad", [
    dict(test_ops=np.ones((2, 4, 5))),             # mismatched matrix shapes
    dict(train_ops=np.ones((3, 20))),              # not (count, n_rows, n_cols)
    dict(train_labels=np.ones(2)),                 # label count
    dict(test_labels=np.ones(3)),
    dict(train_ops=np.full((3, 5, 4), np.nan)),    # NaN / inf
    dict(test_labels=np.array([0.0, np.inf])),
    dict(train_labels=np.array([0.0, np.nan, 1.0])),
    dict(train_ops=np.ones((0, 5, 4)), train_labels=np.ones(0)),  # empty
])
def test_from_arrays_rejects(bad):
    args = dict(train_ops=np.ones((3, 5, 4)), train_labels=np.ones(3),
                test_ops=np.ones((2, 5, 4)), test_labels=np.ones(2))
    problems.from_arrays(**args)  # the valid baseline is accepted
    args.update(bad)
    with pytest.raises(ValueError):
        problems.from_arrays(**args)


# --------------------------------------------------------------- validation


@pytest.mark.parametrize("make", [sensing, completion])
@pytest.mark.parametrize("bad, word", [
    (dict(measurements=20), "measurements"),       # = D: no test set
    (dict(measurements=25), "measurements"),
    (dict(measurements=0), "measurements"),
    (dict(rank=5), "rank"),                        # > min(5, 4)
    (dict(rank=0), "rank"),
    (dict(n_rows=0), "n_rows"),
    (dict(n_cols=0), "n_cols"),
    (dict(n_rows=2.0), "n_rows"),
])
def test_invalid_sizes_raise(make, bad, word):
    with pytest.raises(ValueError, match=word):
        make(**bad)


def test_largest_valid_measurements():
    p = sensing(measurements=19)
    assert len(p.test_ops) == 1 and len(completion(measurements=19).test_ops) == 1
