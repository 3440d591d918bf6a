"""The host's statistics work per 2**26-draw call of a threshold run, old path vs new.

A call of 2**26 draws (16,384 blocks of 4,096, 53 train-loss bins) gives per-block
float32 sums of the gen loss and its square, over all draws and per bin. The host
keeps them as exact sums (:mod:`gcsampler.core.exact`):

- old: the kernel returned the per-block floats, and the host converted all of them
  (``statistics.add_block_sums``: ``exact.add`` of 2 x 16,384 + 2 x 16,384 x 53 terms);
- new: the kernel adds them exactly on the device in int32 digits
  (:mod:`gcsampler.core.exact_device`) and returns per step one small array per sum;
  the host adds those (``statistics.add_digit_sums``).

Both are timed on the same per-block sums (synthetic but shaped like a run's: each
block's 4,096 draws spread over the bins by a multinomial, most bins of a block
empty), and checked to give the same bits. The device side is timed too, on this
machine's CPU: the new digit summation of one call's per-block sums, against the old
kernel's output of the per-block floats themselves (compiled once, then timed).

Everything runs single-threaded (NumPy and XLA's CPU backend limited to one thread,
set before they are imported), and each time is the median of ``--repeats`` runs:
on a shared machine, timings are noisy.

    PYTHONPATH=. python benchmarks/host_per_call.py
    PYTHONPATH=. python benchmarks/host_per_call.py --repeats 21 --steps 4
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()

import argparse  # noqa: E402
import statistics as stats  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gcsampler.core import exact_device  # noqa: E402
from gcsampler.threshold import statistics  # noqa: E402

BLOCKS = 16384
BLOCK = 4096
EPS = 0.02


def block_sums(rng, blocks, n_bins):
    """Per-block float32 sums like a run's: (gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq)."""
    weights = np.exp(-0.5 * ((np.arange(n_bins) - 0.7 * n_bins) / 4.0) ** 2)
    counts = rng.multinomial(BLOCK, weights / weights.sum(), size=blocks)
    mean = rng.lognormal(-1.5, 0.3, (blocks, n_bins))
    bin_sum = (counts * mean).astype(np.float32)
    bin_sumsq = (counts * mean**2 * 1.2).astype(np.float32)
    return (bin_sum.astype(np.float64).sum(1).astype(np.float32),
            bin_sumsq.astype(np.float64).sum(1).astype(np.float32), bin_sum, bin_sumsq)


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return stats.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps", type=int, default=1,
                        help="device steps the call's blocks are split into (the new path's "
                             "host adds one digit array per step and device)")
    args = parser.parse_args()
    edges = statistics.train_loss_edges(EPS)
    n_bins = len(edges) + 1
    rng = np.random.default_rng(0)
    sums = block_sums(rng, BLOCKS, n_bins)
    dense = (sums[0], sums[1], sums[2] + np.float32(1e-3), sums[3] + np.float32(1e-3))

    digit_call = jax.jit(lambda *x: [exact_device.sums(v.reshape(args.steps, -1, *v.shape[1:])
                                                       .swapaxes(0, 1)) for v in x])
    float_call = jax.jit(lambda *x: [v + 0 for v in x])  # the old kernel's per-block output

    def digits_of(values):
        out = jax.device_get(digit_call(*values))
        return [d[:, None] for d in out]  # leading (step, device) axes, as the loop has

    rows = []
    for label, values in (("run-like (most bins of a block empty)", sums),
                          ("dense (every bin of every block nonzero)", dense)):
        digits = digits_of(values)
        old, new = statistics.Totals(edges=edges), statistics.Totals(edges=edges)
        statistics.add_block_sums(old, *values)
        statistics.add_digit_sums(new, *digits)
        for name in ("gen_sum", "gen_sumsq", "bin_gen_sum", "bin_gen_sumsq"):
            assert np.array_equal(getattr(old, name), getattr(new, name)), name
        t_old = median_seconds(
            lambda: statistics.add_block_sums(statistics.Totals(edges=edges), *values),
            args.repeats)
        t_new = median_seconds(
            lambda: statistics.add_digit_sums(statistics.Totals(edges=edges), *digits),
            args.repeats)
        rows.append((label, t_old, t_new))

    on_device = [jnp.asarray(v) for v in sums]
    t_floats = median_seconds(lambda: jax.device_get(float_call(*on_device)), args.repeats)
    t_digits = median_seconds(lambda: jax.device_get(digit_call(*on_device)), args.repeats)

    print(f"host statistics work per call of {BLOCKS * BLOCK:,} draws ({BLOCKS:,} blocks of "
          f"{BLOCK:,}, {n_bins} bins, {args.steps} step(s)); single-threaded, median of "
          f"{args.repeats}, ms per call")
    print(f"{'per-block sums':44s} {'old: exact.add':>15s} {'new: digits':>12s} {'speedup':>8s}")
    for label, t_old, t_new in rows:
        print(f"{label:44s} {1e3 * t_old:15.2f} {1e3 * t_new:12.3f} {t_old / t_new:7.0f}x")
    print(f"\ndevice side on this CPU ({jax.devices()[0].device_kind}), one call's per-block sums:")
    print(f"{'old: per-block floats out (and to the host)':44s} {1e3 * t_floats:15.2f} ms")
    print(f"{'new: exact digit sums (and to the host)':44s} {1e3 * t_digits:15.2f} ms")


if __name__ == "__main__":
    main()
