"""The threshold kernel's exact digit sums (gcsampler.core.exact_device) give the host the
same totals, to the bit, as the per-block float32 sums they are made of, added by
``statistics.add_block_sums``: for any split into steps, devices and calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcsampler.core import exact_device, keys
from gcsampler.threshold import kernel, statistics

SUMS = jax.jit(exact_device.sums)
FIELDS = ("gen_sum", "gen_sumsq", "bin_gen_sum", "bin_gen_sumsq")


def _wild(rng, shape):
    """float32 over the whole exponent range, subnormals and zeros included."""
    values = (rng.standard_normal(shape) * 2.0 ** rng.integers(-160, 128, shape))
    values = values.astype(np.float32)
    values[rng.random(shape) < 0.3] = 0.0
    return values


def _totals():
    return statistics.Totals(edges=np.linspace(0.1, 1.0, 5).astype(np.float32))


@pytest.mark.parametrize("steps, devices", [(1, 1), (3, 2), (12, 1), (2, 6)])
def test_digit_sums_equal_block_sums(steps, devices):
    """Blocks split as the engine splits them (leading step and device axes, a call at a
    time): the totals from digit sums equal those from the per-block floats."""
    rng = np.random.default_rng(steps * 10 + devices)
    n_blocks, n_bins = 48, 6
    gen, gensq = _wild(rng, n_blocks), np.abs(_wild(rng, n_blocks))
    bins, binsq = _wild(rng, (n_blocks, n_bins)), np.abs(_wild(rng, (n_blocks, n_bins)))
    gen[3], bins[5, 2], binsq[7, 1] = np.inf, np.nan, -np.inf
    old, new = _totals(), _totals()
    statistics.add_block_sums(old, gen, gensq, bins, binsq)
    per_call = n_blocks // 2
    for call in range(2):
        blocks = slice(call * per_call, (call + 1) * per_call)

        def digits(x):  # (steps, devices) leading axes, as the loop passes them
            parts = x[blocks].reshape(steps, devices, -1, *x.shape[1:])
            return np.stack([[np.asarray(SUMS(jnp.asarray(p))) for p in row] for row in parts])

        statistics.add_digit_sums(new, digits(gen), digits(gensq), digits(bins), digits(binsq))
    for name in FIELDS:
        assert np.array_equal(getattr(new, name), getattr(old, name)), name
    for name, value in old.floats().items():
        np.testing.assert_array_equal(new.floats()[name], value)


def test_kernel_step_gives_the_totals_of_its_block_sums(monkeypatch):
    """The kernel's step, run as is and with the digit summation removed (so returning the
    per-block floats, as the kernel did before): the same totals, to the bit."""
    log2_block, blocks, edges = 6, 5, statistics.train_loss_edges(0.3)

    def evaluate(keys_, chunk, data):
        u = jax.vmap(lambda k: jax.random.uniform(k, (2,)))(keys_)
        train, gen = u[:, 0] ** 3, jnp.exp(20 * u[:, 1] - 18)  # gen over many binades
        return train, gen, {}

    args = (keys.seed_key(4), jnp.uint32(2), jnp.uint32(6), jnp.int32(17), (),
            statistics.float32_threshold(0.3), jnp.asarray(edges))
    out = jax.device_get(jax.jit(kernel.make_step(evaluate, log2_block, blocks, 8))(*args))
    monkeypatch.setattr(exact_device, "sums", lambda x: x)
    floats = jax.device_get(jax.jit(kernel.make_step(evaluate, log2_block, blocks, 8))(*args))
    assert floats.bin_gen_sum.shape[1:] == (len(edges) + 1,)  # a row per block (and zeros)
    assert out.bin_gen_sum.shape == (len(edges) + 1, exact_device.SIZE)
    new, old = statistics.Totals(edges=edges), statistics.Totals(edges=edges)
    statistics.add_digit_sums(new, *(getattr(out, name) for name in FIELDS))
    statistics.add_block_sums(old, *(getattr(floats, name) for name in FIELDS))
    for name in FIELDS:
        assert np.array_equal(getattr(new, name), getattr(old, name)), name
    assert new.floats()["gen_sum"] > 0
