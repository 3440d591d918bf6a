"""Runs over several processes, through JAX's own distributed runtime (``jax.distributed``).

Each process of a run draws its own contiguous range of blocks on its local devices
(:func:`gcsampler.core.devices.process_blocks`) and writes its own part of the run
directory; process 0 writes the shared files and combines the statistics, which
are exact, so a run gives the same bits on any number of processes. Processes
exchange only small messages: errors, so that all stop together, and totals.

When the processes lose each other (they do not all join, one stops responding or ends
alone), every process ends within ``--distributed_timeout`` seconds with one line on
stderr and exit code 2 (:class:`~gcsampler.runs.watch.Watch`), keeping its checkpoints; JAX's runtime would
abort them later, with a C++ stack trace. Process 0 serves the runtime's coordination
service from a child process (:mod:`~gcsampler.runs.coordination`), so that the
others still end that way when process 0 is killed.
"""

import atexit
import io
import itertools
import math
import pathlib
from typing import NamedTuple

import jax
import numpy as np

from gcsampler.core import totals as totals_lib
from gcsampler.runs import coordination, files, watch as watch_lib


class Team(NamedTuple):
    """This process's place in the run: ``process`` of ``processes`` (0-based)."""

    process: int
    processes: int

    @property
    def leader(self):
        """Whether this process writes the run's shared files (process 0)."""
        return self.process == 0


# Seconds within which every process ends once the processes lose each other
# (`--distributed_timeout`).
TIMEOUT = 60.0
# This process's watch while it is in a multi-process run (from initialize to leave).
_watch = None


def initialize(coordinator_address, num_processes, process_id, timeout=TIMEOUT, *,
               command="gcsampler run", run_dir=None):
    """Join a run of ``num_processes`` processes (call before anything uses a device).

    ``coordinator_address`` is ``host:port`` of process 0, where it listens. Until
    :func:`leave`, a process ends within ``timeout`` seconds once the processes lose each
    other, with one line on stderr that starts with ``command`` and says how to continue
    ``run_dir`` (:class:`~gcsampler.runs.watch.Watch`). Raises ValueError for arguments that cannot name a run.
    """
    global _watch
    if not (isinstance(num_processes, int) and num_processes >= 1):
        raise ValueError(f"--num_processes must be a positive integer, got {num_processes!r}")
    if not (isinstance(process_id, int) and 0 <= process_id < num_processes):
        raise ValueError(f"--process_id must be an integer in [0, {num_processes - 1}] "
                         f"(--num_processes {num_processes}), got {process_id!r}")
    host, _, port = str(coordinator_address or "").rpartition(":")
    if not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"--coordinator_address must be HOST:PORT of process 0, got "
                         f"{coordinator_address!r}")
    check_timeout(timeout)
    watch = watch_lib.Watch(Team(process_id, num_processes), coordinator_address, timeout, command,
                   run_dir)
    backstop = math.ceil(2 * timeout)  # JAX's own limits: its failures abort, after the watch's
    try:
        with watch.waiting("join", watch.join_failed), coordination.service_apart(timeout):
            jax.distributed.initialize(coordinator_address=coordinator_address,
                                       num_processes=num_processes, process_id=process_id,
                                       initialization_timeout=backstop,
                                       heartbeat_timeout_seconds=backstop,
                                       shutdown_timeout_seconds=backstop)
    except BaseException:
        watch.close()
        raise
    watch.start(_client())
    _watch = watch
    atexit.register(_disconnect)  # runs before JAX's own exit handler, registered earlier


def check_timeout(timeout):
    """Raise ValueError unless ``timeout`` is a positive number of seconds."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"--distributed_timeout must be a positive number of seconds, got "
                         f"{timeout!r}")


def team():
    """This process's :class:`Team` (a single process unless :func:`initialize` ran)."""
    return Team(jax.process_index(), jax.process_count())


# Exchanges are numbered: every process makes the same ones in the same order.
_EXCHANGES = itertools.count()
# How long a process waits for the others' messages: they may still be drawing, so only
# a process that stopped responding ends the wait (through the watch, within the timeout).
WAIT_MS = 2**31 - 1  # about 24 days (the longest a timeout may be)


def gather_bytes(data):
    """Every process's ``data`` (bytes), in process order, on every process.

    Messages go through the runtime's key-value store rather than a device
    collective, so processes may have different numbers and kinds of devices.
    """
    if jax.process_count() == 1:
        return [data]
    client = _client()
    exchange = next(_EXCHANGES)
    client.key_value_set_bytes(f"gcsampler/{exchange}/{jax.process_index()}", data)
    return [client.blocking_key_value_get_bytes(f"gcsampler/{exchange}/{process}", WAIT_MS)
            for process in range(jax.process_count())]


def _client():
    """The distributed runtime's client. JAX has no public handle on its key-value
    store; this private one is stable across the versions gcsampler supports."""
    from jax._src import distributed as jax_distributed

    return jax_distributed.global_state.client


def agree(error=None):
    """Raise on every process if any process has an error (a one-line message).

    Every process must call this at the same point; the message raised is that
    of the first failing process, prefixed with its number.
    """
    messages = gather_bytes((error or "").encode())
    for process, message in enumerate(messages):
        if message:
            prefix = f"process {process}: " if len(messages) > 1 else ""
            raise RunFailed(prefix + message.decode())


def together(team, action):
    """``action()`` on this process; if it fails on any process of ``team``, every
    process raises (a one-line RunDirError), so none waits for one that stopped."""
    try:
        result = action()
    except files.RunDirError as err:
        if team.processes == 1:
            raise
        agree(str(err))
    agree(None)
    return result


def claim(team, run_dir):
    """This process's part of ``run_dir``, locked (:func:`~gcsampler.runs.files.claim_part`),
    once every process of ``team`` has its own; the lock lasts until the returned file
    closes."""
    return together(team, lambda: files.claim_part(run_dir, team.process, team.processes))


def rewrite_config(team, run_dir, config):
    """A continued run's ``config.json`` (process 0 writes ``config``, after clearing the
    temporary files a killed write left), with every process of ``team``."""
    def write():
        if team.leader:
            files.remove_temporaries(run_dir)
            files.write_json(pathlib.Path(run_dir) / "config.json", config)

    together(team, write)


class RunFailed(files.RunDirError):
    """A process of the run failed; its one-line message."""


def leave():
    """End this process's part in a multi-process run, once every process gets here (however
    long the others work first: process 0 may still run baselines); returns whether it leads
    (process 0), which goes on alone with local work (references, GD). A single process just
    returns True."""
    leader = team().leader
    if _watch is not None:
        agree()  # waits while the others' heartbeats go on, so that leaving takes no time
    _disconnect()
    return leader


def _disconnect():
    """Stop watching and leave the distributed runtime, waiting for every process (at most
    the timeout); nothing if this process is in no multi-process run (or left it)."""
    global _watch
    if _watch is None:
        return
    watch, _watch = _watch, None
    watch.stop_beating()
    with watch.waiting("leave", lambda: watch.stopping(
            f"the processes did not all finish within {watch.timeout:g} s of each other")):
        jax.distributed.shutdown()
    watch.close()


def fail(code):
    """End this process now with exit code ``code`` if it is in a multi-process run, after
    its one-line error: JAX's own exit would wait for every process (and then abort). The
    others are told, and end too; a single process just returns."""
    if _watch is not None:
        _watch.end(code)


def gather_totals(totals, seconds):
    """Every process's ``(totals, seconds)`` (a task's totals and its G&C time), in
    process order."""
    buffer = io.BytesIO()
    np.savez(buffer, seconds=np.float64(seconds), **totals_lib.as_arrays(totals))
    parts = [np.load(io.BytesIO(data)) for data in gather_bytes(buffer.getvalue())]
    return [(totals_lib.restore(totals, part), float(part["seconds"])) for part in parts]


def combined(team, totals, seconds):
    """The totals of every process of ``team`` combined, and the longest process's time."""
    if team.processes == 1:
        return totals, seconds
    parts = gather_totals(totals, seconds)
    return totals_lib.combine(t for t, _ in parts), max(s for _, s in parts)
