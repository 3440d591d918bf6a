"""The classifier data sets: shapes, balance, determinism, disjoint splits, geometry, errors."""

import sys

import numpy as np
import pytest

from gcsampler.classify import data

SYNTHETIC = {"kink": 4000, "slabs": 1600}   # task -> number of points


def _rows(x):
    """The rows of ``x`` as a sorted array of byte strings (a multiset of points)."""
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return np.sort(flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))[:, 0])


@pytest.mark.parametrize("task", sorted(SYNTHETIC))
@pytest.mark.parametrize("n_train", [2, 16])
def test_synthetic_shapes_and_balance(task, n_train):
    d = data.TASKS[task](n_train, seed=3)
    total = SYNTHETIC[task]
    assert d.name == task
    assert d.train_x.shape == (n_train, 2) and d.test_x.shape == (total - n_train, 2)
    assert d.train_x.dtype == d.test_x.dtype == np.float32
    assert d.train_y.dtype == d.test_y.dtype == np.int32
    assert np.bincount(d.train_y).tolist() == [n_train // 2] * 2
    assert np.bincount(d.test_y).tolist() == [(total - n_train) // 2] * 2


@pytest.mark.parametrize("task", sorted(SYNTHETIC))
def test_synthetic_split_is_a_partition(task):
    d = data.TASKS[task](20, seed=1)
    everything = np.concatenate([d.train_x, d.test_x])
    assert len(np.unique(everything, axis=0)) == SYNTHETIC[task]   # no point in both parts
    # The full point set does not depend on the split: the same multiset for another n_train.
    other = data.TASKS[task](4, seed=1)
    assert np.array_equal(_rows(everything), _rows(np.concatenate([other.train_x, other.test_x])))


@pytest.mark.parametrize("task", sorted(SYNTHETIC))
def test_synthetic_deterministic_in_seed(task):
    a, b, c = (data.TASKS[task](10, seed) for seed in (5, 5, 6))
    for left, right in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a.train_x, c.train_x)


def test_kink_geometry():
    d = data.kink(10, seed=0)
    x = np.concatenate([d.train_x, d.test_x]).astype(np.float64)
    y = np.concatenate([d.train_y, d.test_y])
    curve = -np.abs(x[:, 0])
    np.testing.assert_allclose(x[y == 1, 1], curve[y == 1], atol=1e-7)
    np.testing.assert_allclose(x[y == 0, 1], curve[y == 0] + 0.25, atol=1e-7)
    assert x[:, 0].min() == -1 and x[:, 0].max() == 1


def test_slabs_geometry():
    d = data.slabs(10, seed=0)
    x = np.concatenate([d.train_x, d.test_x])
    y = np.concatenate([d.train_y, d.test_y])
    # Slab j (from the top) spans y in [0.65 - 0.55 j, 1 - 0.55 j]; classes alternate, 1 first.
    slab = np.floor((1 - x[:, 1]) / 0.55).astype(int)
    assert np.all((1 - x[:, 1]) - 0.55 * slab <= 0.35 + 1e-6)      # inside a slab, not a gap
    np.testing.assert_array_equal(y, 1 - slab % 2)
    np.testing.assert_array_equal(np.bincount(slab), [400] * 4)
    assert np.all(x[y == 1, 0] <= -0.1) and np.all(x[y == 0, 0] >= 0.1)
    assert np.all(np.abs(x) <= 1)


@pytest.mark.parametrize("n_train", [0, 3, -2, 2.0, True, "4", 4000])
def test_bad_n_train(n_train):
    with pytest.raises(ValueError, match=r"^n_train must be an even integer from 2 to 3998 for "
                                         r"kink, got"):
        data.kink(n_train, seed=0)


def test_largest_n_train_leaves_a_test_point_per_class():
    d = data.slabs(1598, seed=0)
    assert np.bincount(d.test_y).tolist() == [1, 1]
    with pytest.raises(ValueError, match="from 2 to 1598 for slabs"):
        data.slabs(1600, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="^seed must be a non-negative integer"):
        data.slabs(4, seed)


def test_make_dataset():
    np.testing.assert_array_equal(data.make_dataset("kink", 6, 2).train_x,
                                  data.kink(6, 2).train_x)
    with pytest.raises(ValueError, match="^task must be one of kink, slabs, digits, got 'moons'"):
        data.make_dataset("moons", 6, 2)


def test_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'gcsampler\[digits\]'") as info:
        data.digits(4, seed=0)
    assert "\n" not in str(info.value)


def test_digits_shapes_balance_and_partition():
    datasets = pytest.importorskip("sklearn.datasets")
    images, targets = datasets.load_digits(return_X_y=True)
    d = data.digits(12, seed=4, classes=(3, 8))
    assert d.name == "digits-3-8"
    assert d.train_x.shape == (12, 8, 8, 1) and d.train_x.dtype == np.float32
    assert d.train_y.dtype == np.int32
    assert np.bincount(d.train_y).tolist() == [6, 6]
    for x in (d.train_x, d.test_x):
        assert x.min() >= 0 and x.max() <= 1
    # Together the parts are exactly the images of the two classes, labels mapped 3 -> 0, 8 -> 1.
    for label, digit in enumerate((3, 8)):
        parts = np.concatenate([d.train_x[d.train_y == label], d.test_x[d.test_y == label]])
        expected = (images[targets == digit] / 16).reshape(-1, 8, 8, 1).astype(np.float32)
        assert np.array_equal(_rows(parts), _rows(expected))
    again = data.digits(12, seed=4, classes=(3, 8))
    np.testing.assert_array_equal(again.train_x, d.train_x)
    assert not np.array_equal(data.digits(12, seed=5, classes=(3, 8)).train_x, d.train_x)


@pytest.mark.parametrize("classes", [(0, 0), (0, 10), (1,), (0, 1, 2), ("a", 1), 5, (-1, 2)])
def test_digits_bad_classes(classes):
    with pytest.raises(ValueError, match="^classes must be two different digits from 0 to 9"):
        data.digits(4, seed=0, classes=classes)


def test_digits_bad_n_train():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"^n_train must be an even integer from 2 to 354 for "
                                         r"digits-0-1, got 355"):
        data.digits(355, seed=0)
