"""Checkpoints: where a stopped or killed run continues.

:class:`Checkpointer` decides when a run saves (every few seconds, and before it stops
on a signal); what a checkpoint holds is its method's. A rejection run's
``checkpoint.npz`` holds a loop :class:`~gcsampler.core.loop.Snapshot` (``block``, the
next block to draw, and ``totals_<field>``, the exact host totals of all blocks before
it), ``log2_block``, ``seconds`` (G&C sampling time so far) and ``format`` (:func:`save`,
:func:`load`; a splitting run's is :mod:`gcsampler.runs.splitting_run`'s).
Snapshots hold whole blocks only, so a finished run's last checkpoint stops before a
partial last block, and a run extended to more samples draws that block again in full.
Order of durability at a checkpoint:

1. the accepted rows the snapshot counts (its first ``totals.rows`` rows) are
   flushed to ``accepted/`` and fsynced, then the manifest with their checksums is
   written (:meth:`gcsampler.runs.accepted.AcceptedWriter.flush`,
   :mod:`gcsampler.runs.manifest`);
2. only then is ``checkpoint.npz`` written atomically (temp file, fsync, rename,
   fsync of the directory).

So whenever the process dies, the last checkpoint and the first ``totals.rows``
rows agree, and the manifest covers them. A resumed run checks those rows against it,
keeps them, drops any later ones and draws from the snapshot's block on again
(:mod:`gcsampler.runs.rejection_run`).
"""

import contextlib
import pathlib
import signal
import threading
import time
from typing import Any, NamedTuple

import numpy as np

from gcsampler.core import loop, totals as totals_lib
from gcsampler.runs import files

FILE = "checkpoint.npz"
DEFAULT_EVERY = 10.0  # seconds between checkpoints (`gcsampler run --checkpoint_every`)
FORMAT = "gcsampler-checkpoint-3"
_TOTALS = "totals_"


class Checkpoint(NamedTuple):
    """A run's snapshot and its G&C time up to it (the snapshot's: rejection runs count
    sampling only, splitting runs wall time)."""

    snapshot: Any
    seconds: float

    @property
    def draws(self):
        """Draws a rejection snapshot counts."""
        return self.snapshot.totals.drawn

    @property
    def accepted(self):
        """Rows a rejection snapshot counts (the first rows of its accepted arrays)."""
        return self.snapshot.totals.rows


def save(run_dir, checkpoint, log2_block):
    """Write a rejection ``checkpoint`` atomically; the caller has made its rows durable
    first."""
    totals = {_TOTALS + name: value
              for name, value in totals_lib.as_arrays(checkpoint.snapshot.totals).items()}
    files.save_arrays(pathlib.Path(run_dir) / FILE, format=np.asarray(FORMAT),
                      block=np.int64(checkpoint.snapshot.block), log2_block=np.int64(log2_block),
                      seconds=np.float64(checkpoint.seconds),
                      draws=np.int64(checkpoint.draws), rows=np.int64(checkpoint.accepted),
                      **totals)


def progress(run_dir):
    """``(draws, rows)`` the rejection checkpoint in ``run_dir`` counts (None: none yet),
    read without knowing the run's task."""
    path = pathlib.Path(run_dir) / FILE
    if not path.is_file():
        return None
    arrays = files.load_arrays(path)
    try:
        return int(arrays["draws"]), int(arrays["rows"])
    except KeyError as missing:
        raise files.RunDirError(f"{path} is damaged (no {missing.args[0]})") from None


def load(run_dir, log2_block, template, first_block=0):
    """The rejection checkpoint of a run whose fresh totals are ``template``, with this
    ``log2_block``, whose draws start at block ``first_block`` (a process's share of a
    run), or None if it has none yet.

    Raises RunDirError if the file is damaged or belongs to other settings.
    """
    def parse(arrays):
        if int(arrays["log2_block"]) != log2_block:
            raise ValueError(f"log2_block {int(arrays['log2_block'])}, the run's is {log2_block}")
        totals = totals_lib.restore(template, {name[len(_TOTALS):]: value
                                               for name, value in arrays.items()
                                               if name.startswith(_TOTALS)})
        snapshot = loop.Snapshot(int(arrays["block"]), totals, float(arrays["seconds"]))
        if totals.drawn != (snapshot.block - first_block) * 2**log2_block:
            raise ValueError(f"{totals.drawn} draws in blocks {first_block} to {snapshot.block}")
        return Checkpoint(snapshot, float(arrays["seconds"]))

    return read(pathlib.Path(run_dir) / FILE, FORMAT, parse, "draw the run again")


def read(path, format_name, parse, again):
    """``parse(arrays)`` of the checkpoint file ``path`` of format ``format_name``, or None
    if there is none; RunDirError (saying that deleting it lets the run ``again`` from the
    start) if it is damaged or not of this run (``parse`` raises KeyError or ValueError)."""
    if not path.is_file():
        return None
    arrays = files.load_arrays(path)
    try:
        if str(arrays["format"]) != format_name:
            raise ValueError(f"format {arrays['format']}, expected {format_name}")
        return parse(arrays)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise files.RunDirError(f"{path} is damaged or not from this run ({err}); delete it to "
                                f"{again} from the start") from None


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM (``signal``) at a checkpoint; the message says
    how to continue."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal = signal_number


class Checkpointer:
    """A run's ``on_snapshot``: a checkpoint at most every ``every`` seconds (0: after
    every snapshot), and one at each snapshot once ``stop_requested()``: the run's
    driver, asked the same before, stops there (raising
    :class:`~gcsampler.core.loop.Stopped`).

    ``write(checkpoint)`` makes a checkpoint durable (a rejection run flushes its
    accepted rows, then writes ``checkpoint.npz``). The latest snapshot is kept, so
    :meth:`save` can write it when the run ends or is interrupted. ``last`` is the
    checkpoint the run started from (None for a new run) until one is written.
    """

    def __init__(self, write, every, last=None, stop_requested=lambda: False):
        self.write, self.every, self.stop_requested = write, every, stop_requested
        self.last = last
        self._latest = last
        self._saved_at = time.monotonic()

    def __call__(self, snapshot):
        now = time.monotonic()
        self._latest = Checkpoint(snapshot, snapshot.seconds)
        if self.stop_requested() or now - self._saved_at >= self.every:
            self.save()

    def save(self):
        """Write the latest snapshot if it is newer than the last checkpoint."""
        if self._latest is None or self._latest is self.last:
            return
        self.write(self._latest)
        self.last = self._latest
        self._saved_at = time.monotonic()


class StopRequest:
    """Callable flag: whether a stop signal has arrived, and which (``signal``)."""

    def __init__(self):
        self.signal = None

    def __call__(self):
        return self.signal is not None


@contextlib.contextmanager
def stop_on_signal():
    """While a run works, SIGINT and SIGTERM (a scheduler's pre-emption) ask it to stop
    at its next snapshot, once its checkpoint is written (its driver launches no more
    device work meanwhile); a second signal stops at once. Yields the
    :class:`StopRequest`."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be set from the main thread
        return

    def handle(signal_number, frame):
        if request():
            raise KeyboardInterrupt
        request.signal = signal_number

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
