"""Checkpoints of a G&C run: where a stopped or killed run continues.

``checkpoint.npz`` in the run directory holds an engine :class:`~gcsampler.engine.Snapshot`
(``block``, the next block to draw, and ``totals_<field>``, the exact host totals of all
blocks before it), ``log2_block``, ``seconds`` (G&C wall time so far) and ``format``.
Snapshots hold whole blocks only, so a finished run's last checkpoint stops before a
partial last block, and a run extended to more samples draws that block again in full.
Order of durability at a checkpoint:

1. the accepted rows the snapshot counts (its first ``totals.accepted`` rows) are
   flushed to ``accepted/`` and fsynced (:meth:`gcsampler.store.AcceptedWriter.flush`);
2. only then is ``checkpoint.npz`` written atomically (temp file, fsync, rename,
   fsync of the directory).

So whenever the process dies, the last checkpoint and the first ``totals.accepted``
rows agree. A resumed run keeps those rows, drops any later ones and draws from
the snapshot's block on again (:func:`gcsampler.runner.resume`).
"""

import pathlib
import time
from typing import NamedTuple

import numpy as np

from gcsampler import engine, exact, kernel, stats, store

FILE = "checkpoint.npz"
DEFAULT_EVERY = 10.0  # seconds between checkpoints (`gcsampler run --checkpoint_every`)
FORMAT = "gcsampler-checkpoint-2"
_TOTALS = "totals_"


class Checkpoint(NamedTuple):
    """A snapshot of a run and its G&C wall time up to it, over all its processes."""

    snapshot: engine.Snapshot
    seconds: float

    @property
    def draws(self):
        return self.snapshot.totals.drawn

    @property
    def accepted(self):
        return self.snapshot.totals.accepted


def save(run_dir, checkpoint, log2_block):
    """Write ``checkpoint`` atomically; the caller has made its rows durable first."""
    totals = {_TOTALS + name: value
              for name, value in stats.totals_arrays(checkpoint.snapshot.totals).items()}
    store.save_arrays(pathlib.Path(run_dir) / FILE, format=np.asarray(FORMAT),
                      block=np.int64(checkpoint.snapshot.block), log2_block=np.int64(log2_block),
                      seconds=np.float64(checkpoint.seconds), **totals)


def load(run_dir, log2_block, eps, first_block=0):
    """The checkpoint of a run with these settings whose draws start at block
    ``first_block`` (a process's share of a run), or None if it has none yet.

    Raises RunDirError if the file is damaged or belongs to other settings.
    """
    path = pathlib.Path(run_dir) / FILE
    if not path.is_file():
        return None
    arrays = store.load_arrays(path)
    try:
        if str(arrays["format"]) != FORMAT:
            raise ValueError(f"format {arrays['format']}, expected {FORMAT}")
        if int(arrays["log2_block"]) != log2_block:
            raise ValueError(f"log2_block {int(arrays['log2_block'])}, the run's is {log2_block}")
        totals = stats.totals_from_arrays({name[len(_TOTALS):]: value
                                           for name, value in arrays.items()
                                           if name.startswith(_TOTALS)})
        _check_totals(totals, stats.train_loss_edges(eps))
        snapshot = engine.Snapshot(int(arrays["block"]), totals)
        if totals.drawn != (snapshot.block - first_block) * 2**log2_block:
            raise ValueError(f"{totals.drawn} draws in blocks {first_block} to {snapshot.block}")
        return Checkpoint(snapshot, float(arrays["seconds"]))
    except (KeyError, TypeError, ValueError) as err:
        raise store.RunDirError(f"{path} is damaged or not from this run ({err}); delete it to "
                                f"draw the run again from the start") from None


def _check_totals(totals, edges):
    if not np.array_equal(totals.edges, edges):
        raise ValueError("train-loss bin edges differ from the run's eps")
    n_bins = len(edges) + 1
    shapes = {"bin_count": (n_bins,), "hist": (kernel.HIST_BINS * kernel.HIST_BINS,),
              "bin_gen_sum": (n_bins, exact.SIZE), "bin_gen_sumsq": (n_bins, exact.SIZE),
              **{name: (exact.SIZE,) for name in ("gen_sum", "gen_sumsq", "accepted_gen_sum",
                                                   "accepted_gen_sumsq")}}
    for name, shape in shapes.items():
        if getattr(totals, name).shape != shape:
            raise ValueError(f"{name} has shape {getattr(totals, name).shape}, expected {shape}")


class Stopped(Exception):
    """A run stopped on request, after writing its checkpoint (``checkpoint``)."""

    def __init__(self, checkpoint):
        super().__init__(f"stopped after {checkpoint.draws:,} draws")
        self.checkpoint = checkpoint


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM (``signal``) at a checkpoint; the message says
    how to continue."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal = signal_number


class Checkpointer:
    """The engine's ``on_snapshot`` for a run directory: a checkpoint at most every
    ``every`` seconds (0: after every device call), and one before stopping when
    ``stop_requested()`` says so (raising :class:`Stopped`).

    ``writer`` is the run's :class:`~gcsampler.store.AcceptedWriter`; saving flushes
    it first. The latest snapshot is kept, so :meth:`save` can write it when the
    run ends or is interrupted. ``last`` is the checkpoint the run started from
    (None for a new run) until one is written.
    """

    def __init__(self, run_dir, writer, log2_block, every, last=None,
                 stop_requested=lambda: False):
        self.run_dir, self.writer, self.log2_block, self.every = run_dir, writer, log2_block, every
        self.stop_requested = stop_requested
        self.last = last
        self._latest = last
        self._seconds_before = 0.0 if last is None else last.seconds
        self._began = self._saved_at = time.monotonic()

    def __call__(self, snapshot):
        now = time.monotonic()
        self._latest = Checkpoint(snapshot, self._seconds_before + now - self._began)
        stop = self.stop_requested()
        if stop or now - self._saved_at >= self.every:
            self.save()
        if stop:
            raise Stopped(self.last)

    def save(self):
        """Write the latest snapshot if it is newer than the last checkpoint."""
        if self._latest is None or self._latest is self.last:
            return
        self.writer.flush()
        save(self.run_dir, self._latest, self.log2_block)
        self.last = self._latest
        self._saved_at = time.monotonic()
