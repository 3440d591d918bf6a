"""How draws are laid out over devices, steps and processes.

Draws are evaluated in blocks of ``2**log2_block`` consecutive global indices, the
unit of determinism. A :class:`Schedule` groups ``blocks`` blocks into one device
step and up to ``steps`` steps into one compiled call on every device (how many is a
runtime number of each call): device ``d`` at step ``s`` of a call starting at block
``b0`` evaluates blocks
``b0 + (s * n_devices + d) * blocks + [0, blocks)``, so flattening a call's outputs
(step-major, then device) lists blocks in global order. Several processes each draw
a contiguous range of blocks (:func:`process_blocks`).
"""

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

DEFAULT_LOG2_BLOCK = 12
LOG2_BLOCK_RANGE = (6, 20)
MAX_DRAWS_PER_CALL = 2**26
# Most draws of a host (CPU) step sized from memory (at least a block): a CPU is no faster
# per draw with more, and a call's temporaries are mapped and zeroed afresh each call
# (about 0.15 s per GiB), so small steps keep short calls cheap.
HOST_STEP_DRAWS = 2**14


class Schedule(NamedTuple):
    """How draws are grouped: blocks of ``2**log2_block`` draws, ``blocks`` per
    device step, up to ``steps`` per compiled call, over ``devices``; ``capacity``
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


def max_samples(log2_block):
    """Most draws a run may have: block ids (and those of a padded last call) stay
    well inside uint32, where kernels compute them."""
    return 2**31 * 2**log2_block


def check_run_size(samples, log2_block):
    """Raise ValueError unless ``samples`` and ``log2_block`` can describe a run."""
    lo, hi = LOG2_BLOCK_RANGE
    if not (isinstance(log2_block, int) and not isinstance(log2_block, bool)
            and lo <= log2_block <= hi):
        raise ValueError(f"log2_block must be an integer in [{lo}, {hi}], got {log2_block!r}")
    if not (isinstance(samples, (int, np.integer)) and not isinstance(samples, bool)
            and samples >= 1):
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if samples > max_samples(log2_block):
        raise ValueError(f"samples must be at most {max_samples(log2_block)} at this block size")


def process_blocks(samples, log2_block, process, processes):
    """The blocks process ``process`` of ``processes`` draws: contiguous ranges of
    (nearly) equal size, in process order, together every block of the run."""
    total = -(-samples // 2**log2_block)
    return range(total * process // processes, total * (process + 1) // processes)


def draw_indices(blocks, samples, log2_block):
    """The global indices of the draws of a block range (a run's last block may be partial)."""
    return range(blocks.start * 2**log2_block, min(blocks.stop * 2**log2_block, samples))


def _free_accelerator_memory(device):
    """Bytes of ``device``'s memory not in use; None for devices without memory
    statistics (the host's)."""
    try:
        mem = device.memory_stats() or {}
    except Exception:  # backends without memory statistics
        mem = {}
    return mem["bytes_limit"] - mem.get("bytes_in_use", 0) if "bytes_limit" in mem else None


def _host_ram():
    """Bytes of this machine's RAM (8 GiB where it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 * 2**30


def memory_budget(device):
    """Bytes a step sized from memory may use: 40% of free accelerator memory, or up to
    1 GiB of host RAM."""
    free = _free_accelerator_memory(device)
    return int(0.4 * free) if free is not None else min(2**30, _host_ram() // 16)


def memory_limit(device):
    """Bytes a step of an explicit batch may use: all free accelerator memory, or the
    host's RAM."""
    free = _free_accelerator_memory(device)
    return free if free is not None else _host_ram()


def check_batch(batch, samples, per_draw_bytes, *, device=None, log2_block=DEFAULT_LOG2_BLOCK,
                name="batch"):
    """Raise ValueError unless a device step fits ``device``'s memory (default: the first
    local device) at ``per_draw_bytes`` a draw: one draw for a batch sized from memory
    (``batch`` None), else the draws of ``batch`` per step of a run of ``samples`` draws.

    Checked before a run starts, so that a batch too large is a message rather than a
    failed allocation; ``name`` is how the message calls the batch, e.g. ``--batch``.
    """
    device = device if device is not None else jax.local_devices()[0]
    limit = memory_budget(device) if batch is None else memory_limit(device)
    fits = limit // per_draw_bytes
    if fits < 1:
        raise ValueError(f"one draw needs about {per_draw_bytes / 2**30:.1f} GiB, more than "
                         f"this device can spare; use a smaller model, or a collapsed "
                         f"sampler where one applies")
    at_once = min(batch or 0, -(-samples // 2**log2_block) * 2**log2_block)
    if at_once > fits:
        raise ValueError(f"{name} must be at most {fits:,} for this model on this "
                         f"{device.platform} device ({limit / 2**30:.1f} GiB; a step of "
                         f"{at_once:,} draws needs about {at_once * per_draw_bytes / 2**30:,.0f} "
                         f"GiB), got {batch:,}")


def make_schedule(samples, per_draw_bytes, *, batch=None, devices=None,
                  log2_block=DEFAULT_LOG2_BLOCK, capacity=None):
    """Choose draws evaluated at once, blocks per step, most steps per call and row capacity.

    ``batch`` (draws per device step) defaults to what fits in device memory at
    ``per_draw_bytes`` a draw (on a CPU, at most :data:`HOST_STEP_DRAWS` draws or one
    block, whichever is more). It is rounded down to whole blocks; a batch below
    one block evaluates the block in chunks of ``batch`` draws (rounded down to a
    power of two). ``capacity`` defaults to a 64th of a step's draws (at least 64).
    """
    devices = resolve_devices(devices)
    block = 2**log2_block
    if batch is not None and not (isinstance(batch, (int, np.integer))
                                  and not isinstance(batch, bool) and batch >= 1):
        raise ValueError(f"batch must be a positive integer or None (sized from memory), "
                         f"got {batch!r}")
    check_batch(batch, samples, per_draw_bytes, device=devices[0], log2_block=log2_block)
    if batch is None:
        batch = memory_budget(devices[0]) // per_draw_bytes
        if devices[0].platform == "cpu":
            batch = min(batch, max(HOST_STEP_DRAWS, block))
    chunk = block if batch >= block else 1 << (int(batch).bit_length() - 1)
    total_blocks = -(-samples // block)
    blocks = max(1, min(int(batch) // block, -(-total_blocks // len(devices))))
    per_step = blocks * len(devices)
    steps = max(1, min(MAX_DRAWS_PER_CALL // (per_step * block), -(-total_blocks // per_step), 16))
    if capacity is None:
        capacity = min(blocks * block, max(64, blocks * block // 64))
    return Schedule(log2_block, blocks, steps, devices, capacity, chunk)


def sharded_call(step, schedule):
    """Up to ``schedule.steps`` steps on every device of ``schedule`` as one jitted call.

    The call is ``call(base_key, first_block, steps, *args)``; device ``d`` at step
    ``s < steps`` runs ``step(base_key, first_block + (s * n_devices + d) * schedule.blocks,
    *args)``, and every output gets leading (step, device) axes of ``schedule.steps``
    steps, so flattening the first ``steps`` of them lists blocks in global order (the
    others are zeros). ``steps`` is a runtime number: calls of any size share one
    compiled program.
    """
    n_devices = len(schedule.devices)

    def device_call(base_key, first_block, steps, *args):
        device = jax.lax.axis_index("d").astype(jnp.uint32)

        def run(s, out):
            start = first_block + (s.astype(jnp.uint32) * n_devices + device) * schedule.blocks
            return jax.tree.map(lambda buffer, x: buffer.at[s].set(x), out,
                                step(base_key, start, *args))

        shapes = jax.eval_shape(step, base_key, first_block, *args)
        empty = jax.tree.map(lambda x: jnp.zeros((schedule.steps,) + x.shape, x.dtype), shapes)
        out = jax.lax.fori_loop(0, steps, run, empty)
        return jax.tree.map(lambda x: x[:, None], out)

    mesh = Mesh(np.asarray(schedule.devices), ("d",))
    # Devices share nothing: no collective, so no replication check is needed (it would
    # ask the loop's output buffers to be marked device-varying).
    sharded = jax.shard_map(device_call, mesh=mesh, in_specs=PartitionSpec(),
                            out_specs=PartitionSpec(None, "d"), check_vma=False)
    return jax.jit(sharded)
