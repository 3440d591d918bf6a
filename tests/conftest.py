"""Shared fixtures of the sampler tests.

The engine caches one compiled call per (model, prior, n_train, schedule), and a
schedule depends on the block size, the blocks per step, the steps per call (so on
``samples``) and the row capacity. The fixtures here fix one small problem, one
model and one prior object, one block size and one sample count, so the tests of
the different modules share compiled kernels instead of each compiling their own.
"""

import functools
import gc
import hashlib
import os

import jax
import numpy as np
import pytest

from gcsampler.core import compilation_cache, keys, loop
from gcsampler.factorization import models, priors, problems, task

# Tests leave the user's compilation cache alone (tests of the cache name their own).
os.environ[compilation_cache.ENV] = compilation_cache.OFF

# One small G&C run that most engine tests share.
SEED = 11
EPS = 0.1           # about 10% of the draws of the 5x5 problem below are accepted
SAMPLES = 3000      # not a multiple of the block: the last block is partly masked
LOG2_BLOCK = 8      # 256 draws per block, 12 blocks in all
BLOCK = 2**LOG2_BLOCK

# float32 unit roundoff (round to nearest): every float32 operation has relative error <= U32.
U32 = 2.0**-24


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop the compiled programs (JAX's and the engine's) after each test module. Every
    XLA CPU executable keeps memory mappings, and the whole suite in one process compiles
    enough of them to pass Linux's default limit of 65,530 mappings (vm.max_map_count),
    after which a compile segfaults."""
    yield
    loop.release_compiled_calls()
    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="session")
def sensing_problem():
    """5x5 rank-1 Gaussian sensing with 15 measurements (10 test operators)."""
    return problems.matrix_sensing(seed=0, n_rows=5, n_cols=5, rank=1, gt_norm=1.0,
                                   measurements=15)


@pytest.fixture(scope="session")
def linear_model():
    """Depth 2, width 5, linear: W = W_1 W_2."""
    return models.factorization(5, 5, depth=2, width=5)


@pytest.fixture(scope="session")
def gaussian_prior():
    return priors.gaussian()


class Collected:
    """A run's result plus every accepted row passed to ``on_rows``, concatenated."""

    def __init__(self, result, chunks):
        self.result = result
        self.totals = result.totals
        self.schedule = result.schedule
        self.chunks = chunks
        if chunks:
            self.index = np.concatenate([c[0] for c in chunks]).astype(np.int64)
            self.train = np.concatenate([c[1] for c in chunks])
            self.gen = np.concatenate([c[2] for c in chunks])
            self.matrix = np.concatenate([c[3] for c in chunks])
        else:
            self.index = np.zeros(0, np.int64)
            self.train = self.gen = np.zeros(0, np.float32)
            self.matrix = np.zeros((0, 0, 0), np.float32)


def collect(problem, model, prior, **kwargs):
    """Run the factorization ``guess_and_check`` and keep every accepted row."""
    chunks = []

    def on_rows(index, train, gen, matrix):
        chunks.append((np.array(index), np.array(train), np.array(gen), np.array(matrix)))

    kwargs.setdefault("sampler", "direct")
    result = task.guess_and_check(problem, model, prior, on_rows=on_rows, **kwargs)
    return Collected(result, chunks)


@pytest.fixture(scope="session")
def run_collect():
    """``run_collect(problem, model, prior, **kwargs)`` -> :class:`Collected`."""
    return collect


@pytest.fixture(scope="session")
def shared_runs(sensing_problem, linear_model, gaussian_prior):
    """Memoized runs of the shared problem/model/prior: ``shared_runs(**kwargs)``.

    Defaults: seed=SEED, eps=EPS, samples=SAMPLES, log2_block=LOG2_BLOCK, devices=1.
    """
    cache = {}

    def get(**kwargs):
        args = dict(seed=SEED, eps=EPS, samples=SAMPLES, log2_block=LOG2_BLOCK, devices=1)
        args.update(kwargs)
        key = tuple(sorted(args.items()))
        if key not in cache:
            cache[key] = collect(sensing_problem, linear_model, gaussian_prior, **args)
        return cache[key]

    return get


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 8))
def _evaluate(model, prior, sampler, n_train, base, block, ops, labels, log2_block):
    keys_ = keys.block_keys(base, block, log2_block)
    train, gen, extras = task.evaluate_draws(model, prior, sampler, n_train, keys_, None, ops,
                                             labels)
    return train, gen, extras["matrix"]


def direct_evaluation(problem, model, prior, seed, samples, log2_block=LOG2_BLOCK):
    """Train loss, gen loss and matrix of draws 0 .. samples-1, block by block.

    Uses the task's per-block evaluation directly (no loop: no scheduling,
    masking, summing or row buffers), so the loop's statistics can be checked
    against plain NumPy reductions of these per-draw values.
    """
    ops, labels = problems.stacked_operators(problem)
    base = keys.seed_key(seed)
    n_train = len(problem.train_ops)
    out = [jax.device_get(_evaluate(model, prior, "direct", n_train, base, np.uint32(b), ops,
                                    labels, log2_block))
           for b in range(-(-samples // 2**log2_block))]
    train, gen, matrices = (np.concatenate(x)[:samples] for x in zip(*out))
    return train, gen, matrices


@pytest.fixture(scope="session")
def direct():
    """``direct(problem, model, prior, seed, samples, log2_block)`` -> (train, gen, matrices)."""
    cache = {}

    def get(problem, model, prior, seed, samples, log2_block=LOG2_BLOCK):
        data = hashlib.sha256()
        for arr in (problem.train_ops, problem.train_labels, problem.test_ops, problem.test_labels):
            data.update(np.ascontiguousarray(arr, np.float64).tobytes())
        key = (data.hexdigest(), problem.n_rows, problem.n_cols, model, prior, seed, samples,
               log2_block)
        if key not in cache:
            cache[key] = direct_evaluation(problem, model, prior, seed, samples, log2_block)
        return cache[key]

    return get
