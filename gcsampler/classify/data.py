"""Two-class data sets for classifier Guess & Check, split into a tiny training set and a test set.

Every constructor is ``(n_train, seed) -> Dataset`` and a pure function of its arguments: the
points and the split come from ``numpy.random.default_rng(seed)``. The training set is a
balanced random subset (``n_train / 2`` points of each class, in random order); the test set is
every other point, in a fixed order. Each class keeps at least one test point, so ``n_train``
is an even number from 2 to ``2 * (smallest class size - 1)``.

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
"""

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


TASKS = {"kink": kink, "slabs": slabs, "digits": digits}


def make_dataset(name, n_train, seed):
    """The data set of task ``name`` (a key of ``TASKS``) with its default options."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](n_train, seed)
