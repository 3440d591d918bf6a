"""The one Guess & Check host loop, over any :class:`Task`.

A task says how to evaluate a block of draws on a device and what to keep of them;
this loop runs it over devices (:mod:`gcsampler.core.devices`), keeps one compiled
call in flight while it folds the previous one into the host totals, and streams
accepted rows, in index order, to a callback. Calls are sized from the pace of the
calls before them to take about :data:`CALL_SECONDS` (the first takes one step), so a
run asked to stop ends within about that; the size is a runtime number of the one
compiled call, and changes no bit. Factorizations
(:mod:`gcsampler.factorization.task`), classifiers (:mod:`gcsampler.classify.task`)
and users' own models (:func:`gcsampler.threshold.task.model_task`) all run here.

A run can stop and continue: after each call that ends on a block boundary the
totals form a :class:`Snapshot`, and a run started from a snapshot adds the
remaining blocks to its totals, which are exact (:mod:`gcsampler.core.totals`), so
it gives the same bits as an uninterrupted run. A run can also be split: each of
several processes draws its own range of blocks (:func:`~gcsampler.core.devices.process_blocks`),
and the totals of the ranges combined equal those of one process drawing them all.
"""

import collections
import copy
import time
from typing import Any, Callable, Hashable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.core import keys, totals as totals_lib
from gcsampler.core.progress import Progress, shows_progress
from gcsampler.core.devices import (DEFAULT_LOG2_BLOCK, Schedule, check_run_size, draw_indices,
                                    make_schedule, sharded_call)


class Task(NamedTuple):
    """What G&C draws and checks: everything the loop (and a run directory) needs.

    Attributes:
      name: a label ('factorization', 'classify', a user model's name).
      static: hashable; with the schedule, all the compiled step depends on, so tasks
        with equal ``static`` share compiled calls.
      make_step: ``(log2_block, blocks, capacity, chunk) -> step``, where ``step(base_key,
        first_block, full_blocks, tail, *args)`` evaluates ``blocks`` blocks from
        ``first_block`` on (draws at or past ``full_blocks * 2**log2_block + tail``
        masked out) and returns a NamedTuple with ``drawn`` and ``accepted`` (int32
        counts), ``rows`` (a dict of ``capacity``-row buffers: ``position``, the row's
        place in the step, then the task's columns) and the task's own counts and sums.
      args: the step's runtime arguments (data, thresholds): new values do not recompile.
      bytes_per_draw: a generous estimate of the device memory one draw of a step needs.
      row_layout: ``{name: (dtype, shape)}`` of a stored row: ``index`` first, then the
        columns ``add_rows`` returns, in that order.
      new_totals: ``() -> totals`` before any draw (see :mod:`gcsampler.core.totals`).
      add_counts: ``(totals, out)``: fold one call's outputs (leading axes: step, device),
        all but the rows, into ``totals``.
      add_rows: ``(totals, rows) -> columns``: fold one step's accepted rows (the ``rows``
        dict cut to the step's count, ``position`` removed) into ``totals`` and return the
        stored columns.
      room_for: ``(schedule, count) -> capacity``: a row buffer with room for ``count``.
      summarize: ``(totals, seconds) -> dict``: the run's summary (``summary.json``).
      statistics: ``totals -> {name: array}`` kept in ``statistics.npz`` (None: nothing).
      describe: JSON-ready dict a run directory records (``kind``, settings, fingerprint).
      first_capacity: ``schedule -> capacity`` of the first call (None: the schedule's).
    """

    name: str
    static: Hashable
    make_step: Callable
    args: tuple
    bytes_per_draw: int
    row_layout: dict
    new_totals: Callable
    add_counts: Callable
    add_rows: Callable
    room_for: Callable
    summarize: Callable
    statistics: Callable | None = None
    describe: dict | None = None
    first_capacity: Callable | None = None


CALL_SECONDS = 1.0  # seconds of device work a call aims at: about what a stop waits for


class Stopped(Exception):
    """A run that was asked to stop (``stop``) ended early, at ``snapshot``."""

    def __init__(self, snapshot):
        super().__init__("stopped on request, at a snapshot")
        self.snapshot = snapshot


class Snapshot(NamedTuple):
    """A point a run can continue from: ``totals`` over the blocks before ``block`` (of
    the run's block range: draws ``[first * 2**log2_block, block * 2**log2_block)``).

    Snapshots cover whole blocks only. A partial last block is never part of one,
    so a run continued from a snapshot with a larger ``samples`` equals a run made
    with that count from the start. ``seconds``: the run's sampling time up to it
    (compilation excluded), counted on from the start snapshot's.
    """

    block: int
    totals: Any
    seconds: float = 0.0


class RunResult(NamedTuple):
    """A :func:`guess_and_check` call's totals, its sampling seconds (compilation
    excluded), the seconds it spent compiling, and its schedule."""

    totals: Any
    seconds: float
    schedule: Schedule
    compile_seconds: float = 0.0


def whole_step(schedule, count):
    """``room_for`` of a task whose rows are small: room for every draw of a step."""
    del count
    return schedule.batch


def plan(task, samples, *, batch=None, devices=None, log2_block=DEFAULT_LOG2_BLOCK,
         capacity=None):
    """The :class:`Schedule` of ``samples`` draws of ``task`` (see ``make_schedule``)."""
    schedule = make_schedule(samples, task.bytes_per_draw, batch=batch, devices=devices,
                             log2_block=log2_block, capacity=capacity)
    if capacity is None and task.first_capacity is not None:
        schedule = schedule._replace(capacity=task.first_capacity(schedule))
    return schedule


# Compiled calls this process keeps, most recently used last. Bounded: every XLA
# executable holds memory mappings, and a long sweep of many settings in one process
# would otherwise approach Linux's default limit (vm.max_map_count, 65,530) and crash.
# A sweep runs its seeds innermost, so its reuse is immediate and a small bound suffices.
MAX_COMPILED_CALLS = 16
_CALL_CACHE = collections.OrderedDict()


def compiled_call(task, schedule, call_args):
    """The compiled, device-sharded call of up to ``schedule.steps`` steps of ``task``
    (:func:`~gcsampler.core.devices.sharded_call`) for arguments shaped like
    ``call_args``, and the seconds spent compiling it now (0 when this process compiled
    it recently; little when JAX's persistent compilation cache has it)."""
    leaves, tree = jax.tree.flatten(call_args)
    cache_key = (task.static, schedule, tree,
                 tuple((jnp.shape(leaf), jax.dtypes.result_type(leaf)) for leaf in leaves))
    if cache_key in _CALL_CACHE:
        _CALL_CACHE.move_to_end(cache_key)
        return _CALL_CACHE[cache_key], 0.0
    began = time.perf_counter()
    step = task.make_step(schedule.log2_block, schedule.blocks, schedule.capacity,
                          schedule.chunk)
    _CALL_CACHE[cache_key] = sharded_call(step, schedule).lower(*call_args).compile()
    while len(_CALL_CACHE) > MAX_COMPILED_CALLS:
        _CALL_CACHE.popitem(last=False)
    return _CALL_CACHE[cache_key], time.perf_counter() - began


def release_compiled_calls():
    """Drop every compiled call this process keeps (the next run compiles again)."""
    _CALL_CACHE.clear()


def guess_and_check(task, *, samples, seed=0, batch=None, devices=None,
                    log2_block=DEFAULT_LOG2_BLOCK, capacity=None,
                    start: Snapshot | None = None, blocks: range | None = None,
                    on_rows: Callable | None = None, on_progress: Callable | None = None,
                    on_snapshot: Callable | None = None, progress: bool | None = None,
                    stop: Callable | None = None):
    """Draw ``samples`` draws of ``task`` and keep what it accepts.

    Args:
      task: a :class:`Task`.
      samples: number of draws; draw i uses global index i.
      seed: run seed; draws are a pure function of (seed, index).
      batch: draws per device step; default from device memory.
      devices: None/'all', a count, or a sequence of devices.
      log2_block: block size exponent; float statistics are bitwise reproducible
        for a fixed block size.
      capacity: accepted rows buffered per device step (default: the task's). A step
        that accepts more is evaluated again with room for all of them (never
        dropped), and later calls get that room (``task.room_for``).
      start: continue from this :class:`Snapshot` of a run of the same task, seed and
        log2_block (any batch and devices): only the draws from block ``start.block``
        on are evaluated (and passed to ``on_rows``), and the totals are bit-identical
        to an uninterrupted run's.
      blocks: draw only the blocks of this range (default: all; see ``process_blocks``);
        the totals and rows are those of its draws.
      on_rows: called as ``on_rows(index, *columns)`` with NumPy arrays of accepted rows
        (the columns of ``task.row_layout``), in increasing index order.
      on_progress: called as ``on_progress(totals, seconds)`` after each call.
      progress: without ``on_progress``, show the progress line (draws, accepted,
        samples/s, ETA) on stderr; None: when stderr is a terminal.
      on_snapshot: called as ``on_snapshot(snapshot)`` after each call that ends on a
        block boundary (every call except a last one ending in a partial block), once
        ``on_rows`` has had every row the snapshot counts. The snapshot holds its own
        copy of the totals.
      stop: ``() -> bool``, asked before each call but the first is launched and at each
        snapshot (before ``on_snapshot``): once it returns True, no further call is
        launched and the run ends at its next snapshot short of its end, raising
        :class:`Stopped` with it once ``on_snapshot`` has had it; the call in flight
        then is abandoned.

    Returns:
      RunResult with the host totals, the sampling time of this call (not of the run a
      ``start`` came from; compilation excluded, and timed apart) and the schedule.
      ``on_progress`` and the snapshots count sampling time too.
    """
    check_run_size(samples, log2_block)
    keys.check_seed(seed)
    block = 2**log2_block
    blocks = _check_blocks(blocks, samples, block)
    end = draw_indices(blocks, samples, log2_block).stop
    schedule = plan(task, max(len(draw_indices(blocks, samples, log2_block)), 1), batch=batch,
                    devices=devices, log2_block=log2_block, capacity=capacity)
    if start is None:
        start = Snapshot(blocks.start, task.new_totals())
    _check_start(start, task.new_totals(), blocks, block, samples)
    if on_progress is None and shows_progress(progress):
        on_progress = Progress(len(draw_indices(blocks, samples, log2_block)),
                               done_before=start.totals.drawn)
    totals = copy.deepcopy(start.totals)
    base_key = keys.seed_key(seed)
    args = (np.uint32(end // block), np.int32(end % block), *task.args)

    compile_seconds = 0.0

    def call(on_schedule, first, steps):
        nonlocal compile_seconds
        call_args = (base_key, np.uint32(first), np.int32(steps), *args)
        compiled, seconds = compiled_call(task, on_schedule, call_args)
        compile_seconds += seconds
        return compiled(*call_args)

    def overflow_rows(first_block, count):
        alone = schedule._replace(steps=1, devices=schedule.devices[:1],
                                  capacity=task.room_for(schedule, count))
        return jax.device_get(call(alone, first_block, 1))

    def sampling_seconds():  # compiles during the loop (more row room) do not count
        return time.perf_counter() - began - (compile_seconds - before_loop)

    blocks_per_step = schedule.blocks * len(schedule.devices)
    steps = 1  # of the calls launched from now on: one until a call has been timed

    def calls():
        """``(first block, steps)`` of each call, launched while ``stop`` allows."""
        first = start.block
        while first < blocks.stop and not (first > start.block and stop is not None and stop()):
            count = min(steps, -(-(blocks.stop - first) // blocks_per_step))
            yield first, count
            first += count * blocks_per_step

    _, compile_seconds = compiled_call(task, schedule,
                                       (base_key, np.uint32(0), np.int32(1), *args))
    before_loop = compile_seconds
    began = read_at = time.perf_counter()
    for (first, count), out in pipelined(lambda c: call(schedule, *c), calls()):
        out = jax.device_get(out)
        # the call was queued before the last one was read: it ran since then
        now = time.perf_counter()
        steps, read_at = next_steps(count, now - read_at, schedule.steps), now
        out = jax.tree.map(lambda x: x[:count], out)
        task.add_counts(totals, out)
        for index, rows in accepted_rows(out, first, schedule, overflow_rows):
            columns = task.add_rows(totals, rows)
            if on_rows is not None:
                on_rows(index, *columns)
        most = int(np.max(out.accepted))
        if most > schedule.capacity:  # calls already queued keep theirs
            schedule = schedule._replace(capacity=task.room_for(schedule, most))
        covered = min((first + count * blocks_per_step) * block, end)
        if covered % block == 0 and (on_snapshot is not None or stop is not None):
            snapshot = Snapshot(covered // block, copy.deepcopy(totals),
                                start.seconds + sampling_seconds())
            stopping = covered < end and stop is not None and stop()  # before on_snapshot
            if on_snapshot is not None:
                on_snapshot(snapshot)
            if stopping:
                raise Stopped(snapshot)
        if on_progress is not None:
            on_progress(totals, sampling_seconds())
    return RunResult(totals, sampling_seconds(), schedule, compile_seconds)


def next_steps(steps, seconds, most):
    """Steps of the next calls, given that a call of ``steps`` steps took ``seconds``: as
    many as take about :data:`CALL_SECONDS`, at least one and at most ``most`` and twice
    ``steps`` (so that one fast call cannot make the next ones long)."""
    fit = int(steps * CALL_SECONDS / seconds) if seconds > 0 else most
    return max(1, min(fit, 2 * steps, most))


def pipelined(launch, calls):
    """``launch(call)`` for each of ``calls``, yielding ``(call, output)`` one call behind,
    so the next call is already queued on the devices while the host reads one (the next
    of ``calls`` is taken before the last output is yielded)."""
    previous = None
    for each in calls:
        current = (each, launch(each))
        if previous is not None:
            yield previous
        previous = current
    if previous is not None:
        yield previous


def accepted_rows(out, first, schedule, overflow_rows):
    """The accepted rows of one call's outputs (leading axes: step, device; its steps
    only), step by step in global order: ``(global_index, rows)`` with ``rows`` the
    step's row buffers cut to its true count. A step that accepted more rows than its
    buffers hold (the capacity the call was compiled with, which may be older than
    ``schedule``'s) is evaluated again by ``overflow_rows(first_block, count)``, whose
    output (one step, one device) has room for all of them."""
    n_devices = len(schedule.devices)
    capacity = out.rows["position"].shape[2]
    for s in range(len(out.accepted)):
        for d in range(n_devices):
            count = int(out.accepted[s, d])
            if count == 0:
                continue
            step_first = first + (s * n_devices + d) * schedule.blocks
            rows, at = out.rows, (s, d)
            if count > capacity:
                rows, at = overflow_rows(step_first, count).rows, (0, 0)
            rows = {name: value[at][:count] for name, value in rows.items()}
            position = rows.pop("position").astype(np.uint64)
            yield np.uint64(step_first) * np.uint64(schedule.block_size) + position, rows


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


def _check_start(start, template, blocks, block_size, samples):
    """Refuse a snapshot that cannot be the start of this run's block range."""
    try:
        totals_lib.check_fixed(start.totals, template)
    except ValueError as err:
        raise ValueError(f"start snapshot was {err}") from None
    if start.totals.drawn != (start.block - blocks.start) * block_size:
        raise ValueError(f"start snapshot is inconsistent: {start.totals.drawn} draws in "
                         f"blocks {blocks.start} to {start.block} of {block_size}")
    if not blocks.start <= start.block <= blocks.stop:
        raise ValueError(f"start snapshot is at block {start.block}, outside the blocks "
                         f"{blocks.start} to {blocks.stop} this run draws")
    if start.block * block_size > samples:  # snapshots hold whole blocks only
        raise ValueError(f"start snapshot covers {start.block * block_size} draws, more than "
                         f"samples={samples}")
