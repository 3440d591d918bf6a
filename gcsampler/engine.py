"""The G&C device loop: schedule blocks over devices, stream results to the host.

One compiled call runs ``steps`` steps on every device (``lax.scan``); device ``d``
at step ``s`` of a call starting at block ``b0`` evaluates blocks
``b0 + (s * n_devices + d) * blocks + [0, blocks)``, so flattening the outputs
(step-major, then device) lists blocks in global order. The host keeps one call
in flight while it accumulates the previous one.

A run can stop and continue: after each call that ends on a block boundary the
host totals form a :class:`Snapshot`, and a run started from a snapshot adds
the remaining blocks to its totals, which are exact (:mod:`gcsampler.stats`), so
it gives the same bits as an uninterrupted run. A run can also be split: each of
several processes draws its own range of blocks (:func:`process_blocks`), and the
totals of the ranges combined equal those of one process drawing them all.
"""

import copy
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from gcsampler import draws, kernel, priors, problems, samplers, stats

DEFAULT_LOG2_BLOCK = 12
MAX_DRAWS_PER_CALL = 2**26


class Schedule(NamedTuple):
    """How draws are grouped: blocks of ``2**log2_block`` draws, ``blocks`` per
    device step, ``steps`` per compiled call, over ``devices``; ``capacity``
    accepted rows are buffered per device step, and ``chunk`` draws of a block are
    evaluated at once (less than a block only for models too big for memory)."""

    log2_block: int
    blocks: int
    steps: int
    devices: tuple
    capacity: int
    chunk: int

    @property
    def block_size(self):
        return 2**self.log2_block

    @property
    def batch(self):
        """Draws per step on one device."""
        return self.blocks * self.block_size

    @property
    def draws_per_call(self):
        return self.batch * self.steps * len(self.devices)


class Snapshot(NamedTuple):
    """A point a run can continue from: ``totals`` over the blocks before ``block`` (of
    the run's block range: draws ``[first * 2**log2_block, block * 2**log2_block)``).

    Snapshots cover whole blocks only. A partial last block is never part of one,
    so a run continued from a snapshot with a larger ``samples`` equals a run made
    with that count from the start.
    """

    block: int
    totals: stats.Totals


class RunResult(NamedTuple):
    totals: stats.Totals
    seconds: float
    schedule: Schedule
    sampler: str


def resolve_devices(devices):
    """``None``/'all' -> every local device; an int N -> the first N (N must exist)."""
    available = jax.local_devices()
    if devices is None or devices == "all":
        return tuple(available)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be 'all' or an integer in [1, {len(available)}] "
                             f"(this machine has {len(available)} {available[0].platform} "
                             f"device(s)), got {devices}")
        return tuple(available[:devices])
    return tuple(devices)


def process_blocks(samples, log2_block, process, processes):
    """The blocks process ``process`` of ``processes`` draws: contiguous ranges of
    (nearly) equal size, in process order, together every block of the run."""
    total = -(-samples // 2**log2_block)
    return range(total * process // processes, total * (process + 1) // processes)


def draw_indices(blocks, samples, log2_block):
    """The global indices of the draws of a block range (a run's last block may be partial)."""
    return range(blocks.start * 2**log2_block, min(blocks.stop * 2**log2_block, samples))


def bytes_per_draw(problem, model, sampler, n_bins):
    """A generous estimate of the device memory one draw of a step needs."""
    n, k = model.n_rows, model.width
    if sampler == "wishart":
        weights, hidden = 3 * model.depth * n * n + n * model.n_cols, 0
    else:
        # first, last and at most two k x k layers are alive at once (priors.penultimate)
        weights = sum(r * c for r, c in model.layer_shapes[:3]) + n * model.n_cols
        hidden = n * k * 4
    outputs = problem.n_rows * problem.n_cols + len(problem.train_ops) + len(problem.test_ops)
    return 4 * 3 * (2 * weights + hidden + 2 * outputs + 4 * n_bins + 16)


def memory_budget(device):
    """Bytes a step may use: 40% of free accelerator memory, or up to 1 GiB of host RAM."""
    try:
        mem = device.memory_stats() or {}
    except Exception:  # backends without memory statistics
        mem = {}
    if "bytes_limit" in mem:
        return int(0.4 * (mem["bytes_limit"] - mem.get("bytes_in_use", 0)))
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 8 * 2**30
    return min(2**30, ram // 16)


def plan(problem, model, samples, *, sampler="direct", batch=None, devices=None,
         log2_block=DEFAULT_LOG2_BLOCK, capacity=None):
    """The :class:`Schedule` of a factorization run (see :func:`make_schedule`)."""
    n_bins = len(stats.train_loss_edges(1.0)) + 1
    return make_schedule(samples, bytes_per_draw(problem, model, sampler, n_bins), batch=batch,
                         devices=devices, log2_block=log2_block, capacity=capacity)


def make_schedule(samples, per_draw_bytes, *, batch=None, devices=None,
                  log2_block=DEFAULT_LOG2_BLOCK, capacity=None):
    """Choose draws evaluated at once, blocks per step, steps per call and row capacity.

    ``batch`` (draws per device step) defaults to what fits in device memory at
    ``per_draw_bytes`` a draw. It is rounded down to whole blocks; a batch below
    one block evaluates the block in chunks of ``batch`` draws (rounded down to a
    power of two).
    """
    devices = resolve_devices(devices)
    block = 2**log2_block
    if batch is None:
        batch = memory_budget(devices[0]) // per_draw_bytes
        if batch < 1:
            raise ValueError(f"one draw needs about {per_draw_bytes / 2**30:.1f} GiB, more than "
                             f"this device can spare; use a smaller model, or a collapsed "
                             f"sampler where one applies")
    elif not (isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and batch >= 1):
        raise ValueError(f"batch must be a positive integer or None (sized from memory), "
                         f"got {batch!r}")
    chunk = block if batch >= block else 1 << (int(batch).bit_length() - 1)
    total_blocks = -(-samples // block)
    blocks = max(1, min(int(batch) // block, -(-total_blocks // len(devices))))
    per_step = blocks * len(devices)
    steps = max(1, min(MAX_DRAWS_PER_CALL // (per_step * block), -(-total_blocks // per_step), 16))
    if capacity is None:
        capacity = min(blocks * block, max(64, blocks * block // 64))
    return Schedule(log2_block, blocks, steps, devices, capacity, chunk)


_CALL_CACHE = {}


def compiled_call(model, prior, sampler, n_train, schedule):
    """The jitted, device-sharded call of ``schedule.steps`` steps (cached)."""
    cache_key = (model, prior, sampler, n_train, schedule)
    if cache_key not in _CALL_CACHE:
        _CALL_CACHE[cache_key] = _build_call(model, prior, sampler, n_train, schedule)
    return _CALL_CACHE[cache_key]


def _build_call(model, prior, sampler, n_train, schedule):
    return sharded_call(kernel.make_step(model, prior, sampler, n_train, schedule.log2_block,
                                         schedule.blocks, schedule.capacity, schedule.chunk),
                        schedule)


def sharded_call(step, schedule):
    """``schedule.steps`` steps on every device of ``schedule`` as one jitted call.

    The call is ``call(base_key, first_block, *args)``; device ``d`` at step ``s``
    runs ``step(base_key, first_block + (s * n_devices + d) * schedule.blocks, *args)``,
    and every output gets leading (step, device) axes, so flattening them lists
    blocks in global order.
    """
    n_devices = len(schedule.devices)

    def device_call(base_key, first_block, *args):
        device = jax.lax.axis_index("d").astype(jnp.uint32)

        def body(carry, s):
            start = first_block + (s * n_devices + device) * schedule.blocks
            return carry, step(base_key, start, *args)

        _, out = jax.lax.scan(body, None, jnp.arange(schedule.steps, dtype=jnp.uint32))
        return jax.tree.map(lambda x: x[:, None], out)

    mesh = Mesh(np.asarray(schedule.devices), ("d",))
    sharded = jax.shard_map(device_call, mesh=mesh, in_specs=PartitionSpec(),
                            out_specs=PartitionSpec(None, "d"))
    return jax.jit(sharded)


def guess_and_check(problem, model, prior, *, eps, samples, seed=0, sampler="auto", batch=None,
                    devices=None, log2_block=DEFAULT_LOG2_BLOCK, capacity=None,
                    start: Snapshot | None = None, blocks: range | None = None,
                    on_rows: Callable | None = None,
                    on_progress: Callable | None = None, on_snapshot: Callable | None = None):
    """Draw ``samples`` weight settings and keep those with train loss < ``eps``.

    Args:
      problem, model, prior: what to sample (see problems, models, priors).
      eps: acceptance threshold on the train loss (strict).
      samples: number of draws; draw i uses global index i.
      seed: run seed; draws are a pure function of (seed, index).
      sampler: 'auto' (the cheapest exact sampler), or a name from
        :data:`gcsampler.samplers.SAMPLERS` ('direct' draws every weight).
      batch: draws per device step; default from device memory (see :func:`plan`).
      devices: None/'all', a count, or a sequence of devices.
      log2_block: block size exponent; float statistics are bitwise reproducible
        for a fixed block size.
      capacity: accepted rows buffered per device step before falling back to a
        re-evaluation of that step (never dropped).
      start: continue from this :class:`Snapshot` of a run with the same problem,
        model, prior, eps, seed, sampler and log2_block (any batch and devices):
        only the draws from block ``start.block`` on are evaluated (and passed to
        ``on_rows``), and the totals are bit-identical to an uninterrupted run's.
      blocks: draw only the blocks of this range (default: all; see
        :func:`process_blocks`); the totals and rows are those of its draws.
      on_rows: called as ``on_rows(index, train, gen, matrix)`` with NumPy arrays of
        accepted rows, in increasing index order.
      on_progress: called as ``on_progress(totals, seconds)`` after each call.
      on_snapshot: called as ``on_snapshot(snapshot)`` after each call that ends on
        a block boundary (every call except a last one ending in a partial block),
        once ``on_rows`` has had every row the snapshot counts. The snapshot holds
        its own copy of the totals.

    Returns:
      RunResult with the host totals, the wall time of this call (not of the run
      a ``start`` came from), the schedule and the sampler used.
    """
    _check_arguments(eps, samples, seed, log2_block)
    if (model.n_rows, model.n_cols) != (problem.n_rows, problem.n_cols):
        raise ValueError(f"model is {model.n_rows}x{model.n_cols} but the problem's matrix is "
                         f"{problem.n_rows}x{problem.n_cols}")
    priors.check_prior(prior, model)
    sampler = samplers.make_sampler(model, prior, sampler).name
    block = 2**log2_block
    blocks = _check_blocks(blocks, samples, block)
    end = draw_indices(blocks, samples, log2_block).stop
    schedule = plan(problem, model, max(len(draw_indices(blocks, samples, log2_block)), 1),
                    sampler=sampler, batch=batch, devices=devices, log2_block=log2_block,
                    capacity=capacity)
    ops, labels = problems.stacked_operators(problem)
    edges = stats.train_loss_edges(eps)
    if start is None:
        start = Snapshot(blocks.start, stats.Totals(edges=edges))
    _check_start(start, edges, blocks, block, samples)
    totals = copy.deepcopy(start.totals)
    n_train = len(problem.train_ops)
    call = compiled_call(model, prior, sampler, n_train, schedule)
    base_key = draws.seed_key(seed)
    args = (np.uint32(end // block), np.int32(end % block), ops, labels,
            stats.float32_threshold(eps), jnp.asarray(edges))

    def launch(first):
        return call(base_key, np.uint32(first), *args)

    def overflow_rows(first_block, count):
        del count  # room for a whole step
        full = schedule._replace(steps=1, devices=schedule.devices[:1], capacity=schedule.batch)
        out = compiled_call(model, prior, sampler, n_train, full)(
            base_key, np.uint32(first_block), *args)
        return jax.device_get(out)

    began = time.perf_counter()
    blocks_per_call = schedule.draws_per_call // block
    for first, out in pipelined(launch, range(start.block, blocks.stop, blocks_per_call)):
        _accumulate(totals, jax.device_get(out), first, schedule, on_rows, overflow_rows)
        covered = min((first + blocks_per_call) * block, end)
        if on_snapshot is not None and covered % block == 0:
            on_snapshot(Snapshot(covered // block, copy.deepcopy(totals)))
        if on_progress is not None:
            on_progress(totals, time.perf_counter() - began)
    return RunResult(totals, time.perf_counter() - began, schedule, sampler)


def pipelined(launch, firsts):
    """``launch(first)`` for each call, yielding ``(first, output)`` one call behind, so
    the next call is already queued on the devices while the host reads one."""
    previous = None
    for first in firsts:
        current = (first, launch(first))
        if previous is not None:
            yield previous
        previous = current
    if previous is not None:
        yield previous


def _check_blocks(blocks, samples, block_size):
    """The block range to draw: all of the run's by default, else a sub-range of it."""
    total = -(-samples // block_size)
    if blocks is None:
        return range(total)
    if not (isinstance(blocks, range) and blocks.step == 1 and 0 <= blocks.start <= blocks.stop
            <= total):
        raise ValueError(f"blocks must be a range of consecutive blocks within range(0, {total}) "
                         f"(the run's blocks), got {blocks!r}")
    return blocks


def _check_start(start, edges, blocks, block_size, samples):
    """Refuse a snapshot that cannot be the start of this run's block range."""
    if not np.array_equal(start.totals.edges, edges):
        raise ValueError("start snapshot was made with another eps (its train-loss bin edges "
                         "differ)")
    if start.totals.drawn != (start.block - blocks.start) * block_size:
        raise ValueError(f"start snapshot is inconsistent: {start.totals.drawn} draws in "
                         f"blocks {blocks.start} to {start.block} of {block_size}")
    if not blocks.start <= start.block <= blocks.stop:
        raise ValueError(f"start snapshot is at block {start.block}, outside the blocks "
                         f"{blocks.start} to {blocks.stop} this run draws")
    if start.block * block_size > samples:  # snapshots hold whole blocks only
        raise ValueError(f"start snapshot covers {start.block * block_size} draws, more than "
                         f"samples={samples}")


def _accumulate(totals, out, first, schedule, on_rows, overflow_rows):
    """Fold one call's outputs (leading axes: step, device) into the totals."""
    stats.add_counts(totals, out.drawn, out.nonfinite, out.bin_count, out.hist)
    stats.add_block_sums(totals, out.gen_sum, out.gen_sumsq, out.bin_gen_sum, out.bin_gen_sumsq)
    for index, rows in accepted_rows(out, first, schedule, overflow_rows):
        gen = rows.row_gen
        stats.add_accepted(totals, gen)
        if on_rows is not None:
            on_rows(index, rows.row_train, gen, rows.row_matrix)


def accepted_rows(out, first, schedule, overflow_rows):
    """The accepted rows of one call's outputs (leading axes: step, device), step by step
    in global order: ``(global_index, rows)`` with ``rows`` the step's ``row_*`` fields
    cut to its true count. A step that accepted more rows than ``schedule.capacity``
    is evaluated again by ``overflow_rows(first_block, count)``, whose output (one step,
    one device) has room for all of them."""
    n_devices = len(schedule.devices)
    for s in range(schedule.steps):
        for d in range(n_devices):
            count = int(out.accepted[s, d])
            if count == 0:
                continue
            step_first = first + (s * n_devices + d) * schedule.blocks
            rows, at = out, (s, d)
            if count > schedule.capacity:
                rows, at = overflow_rows(step_first, count), (0, 0)
            rows = rows._replace(**{name: getattr(rows, name)[at][:count]
                                    for name in rows._fields if name.startswith("row_")})
            position = rows.row_position.astype(np.uint64)
            yield np.uint64(step_first) * np.uint64(schedule.block_size) + position, rows


def _check_arguments(eps, samples, seed, log2_block):
    if not (isinstance(samples, (int, np.integer)) and samples >= 1):
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= draws.MAX_SEED):
        raise ValueError(f"seed must be an integer in [0, {draws.MAX_SEED}], got {seed!r}")
    if not (isinstance(log2_block, int) and 6 <= log2_block <= 20):
        raise ValueError(f"log2_block must be an integer in [6, 20], got {log2_block!r}")
    if samples > max_samples(log2_block):
        raise ValueError(f"samples must be at most {max_samples(log2_block)} at this block size")


def max_samples(log2_block):
    """Most draws a run may have: block ids (and those of a padded last call) stay
    well inside uint32, where the kernel computes them."""
    return 2**31 * 2**log2_block
