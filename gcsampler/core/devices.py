"""How draws are laid out over devices, steps and processes.

Draws are evaluated in blocks of ``2**log2_block`` consecutive global indices, the
unit of determinism. A :class:`Schedule` groups ``blocks`` blocks into one device
step and ``steps`` steps into one compiled call on every device: device ``d`` at
step ``s`` of a call starting at block ``b0`` evaluates blocks
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


def make_schedule(samples, per_draw_bytes, *, batch=None, devices=None,
                  log2_block=DEFAULT_LOG2_BLOCK, capacity=None):
    """Choose draws evaluated at once, blocks per step, steps per call and row capacity.

    ``batch`` (draws per device step) defaults to what fits in device memory at
    ``per_draw_bytes`` a draw. It is rounded down to whole blocks; a batch below
    one block evaluates the block in chunks of ``batch`` draws (rounded down to a
    power of two). ``capacity`` defaults to a 64th of a step's draws (at least 64).
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
