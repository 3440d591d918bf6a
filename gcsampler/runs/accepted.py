"""The accepted rows of a run: zarr (v2) arrays under ``accepted/``, one per column.

Written with tensorstore in whole chunks and growing along axis 0 as draws arrive.
A factorization run's arrays are

  index       uint64   (n,)                 global draw index, increasing
  train_loss  float32  (n,)
  gen_loss    float32  (n,)
  matrix      float32  (n, n_rows, n_cols)  end-to-end matrix

and any task's layout starts with ``index``. tensorstore's file driver replaces
every chunk and every ``.zarray`` atomically (lock file, fsync, rename, fsync of the
directory), so a killed writer leaves each file whole, old or new: rows written
before it are intact, whatever the arrays' recorded shapes say about later ones
(see :mod:`gcsampler.runs.checkpoint`).

``accepted/`` is also a zarr v2 group that describes itself, so zarr-python and xarray
open it as it is: ``.zgroup``, ``.zattrs`` with the run's attributes (eps, seed,
sampler, method, ...), the gcsampler version, the index convention and every column's
dtype, per-row shape and meaning, and per array a ``.zattrs`` with xarray's
``_ARRAY_DIMENSIONS``. gcsampler's own readers need none of these files (runs made
before them have none).
"""

import pathlib

import numpy as np
import tensorstore as ts

from gcsampler._version import __version__
from gcsampler.runs.files import RunDirError, WriteError, part_dir, write_json

ACCEPTED_DIR = "accepted"
ACCEPTED_FIELDS = ("index", "train_loss", "gen_loss", "matrix")
DRAW_INDEX = "the global draw index: draw i of a run is a pure function of (seed, i)"
# What the columns of a factorization run's rows mean. Other tasks' columns get no
# meaning but the index's, which holds for every rejection run.
MEANINGS = {
    "index": DRAW_INDEX,
    "train_loss": "mean squared error on the train measurements (accepted: below eps)",
    "gen_loss": "mean squared error on the test measurements (the generalization loss)",
    "matrix": "the end-to-end matrix: the product of the network's layers (Frobenius-"
              "normalized when the prior normalizes)",
}
# A splitting run's rows are its final particles below eps, not draws.
SPLITTING_MEANINGS = {
    **MEANINGS,
    "index": "replicate * particles + slot: the particle's place among the final particles "
             "of all replicates (not a draw index)",
    "replicate": "the replicate (independent particle system) the particle belongs to",
}
# Names of the per-row axes of columns that have them (others: <name>_0, <name>_1, ...).
ROW_DIMENSIONS = {"matrix": ("row", "col"), "bins": ("bin",)}


def _ts_reason(err: Exception) -> str:
    """tensorstore error text without the multi-kilobyte spec it appends."""
    return str(err).split(" [tensorstore_spec=")[0]


def _opened(futures, code, code_message, failure):
    """Wait for tensorstore opens; errors become one-line RunDirErrors.

    An error with status ``code`` gives ``code_message(name)``; any other gives
    ``failure`` plus tensorstore's reason.
    """
    stores = {}
    for name, fut in futures.items():
        try:
            stores[name] = fut.result()
        except ValueError as e:
            if code in str(e):
                raise RunDirError(code_message(name)) from None
            raise RunDirError(f"{failure}: {_ts_reason(e)}") from None
    return stores


def _spec(run_dir, name: str) -> dict:
    path = pathlib.Path(run_dir) / ACCEPTED_DIR / name
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}


class AcceptedWriter:
    """Appends accepted draws to the zarr arrays under ``run_dir/accepted/``.

    Rows are buffered on the host and written in whole chunks (chunk-aligned
    writes are far faster than small appends). :meth:`flush` also writes the
    partial last chunk and keeps it buffered, so later writes stay chunk-aligned
    and simply rewrite that chunk. Every write waits for completion and the file
    kvstore fsyncs, so after ``flush()`` returns the rows are on disk.

    ``keep=None`` creates the arrays and refuses existing ones. ``keep=n``
    continues a run's arrays after their first ``n`` rows (the count of its
    checkpoint): later rows, left by a killed process, are dropped, and arrays
    that are missing while ``n`` is 0 are created.

    ``attrs`` (JSON-ready: eps, seed, sampler, method, ...) and ``meanings`` (a meaning
    per column; ``index``'s is required, default :data:`DRAW_INDEX`) describe the run in
    the group's metadata, written (again, on a resume) once the arrays are open.
    """

    def __init__(self, run_dir, layout, chunk_rows: int = 4096, *, keep: int | None = None,
                 attrs: dict | None = None, meanings: dict | None = None):
        tails = [tail for _, tail in layout.values()]
        if (next(iter(layout), None) != "index" or layout["index"] != ("<u8", ())
                or chunk_rows < 1 or min((min(t) for t in tails if t), default=1) < 1):
            raise ValueError(f"layout must start with index ('<u8', ()) and have positive "
                             f"sizes, and chunk_rows must be >= 1; got {layout}, {chunk_rows}")
        self.run_dir = pathlib.Path(run_dir)
        self.layout, self.fields, self.chunk_rows = dict(layout), tuple(layout), chunk_rows
        if keep is None:
            futures = {name: self._create(name, *row) for name, row in layout.items()}
            self._stores = _opened(
                futures, "ALREADY_EXISTS",
                lambda name: f"accepted arrays already exist in {run_dir}; choose another --out",
                f"cannot create accepted arrays in {run_dir}")
            keep = 0
        else:
            self._stores = {name: self._reopen(name, *row, keep) for name, row in layout.items()}
        self._describe(attrs or {}, meanings or {"index": DRAW_INDEX})
        self._size = keep  # rows the on-disk arrays currently span
        self._written = keep  # rows durably written
        self._buf_start = keep // chunk_rows * chunk_rows  # chunk-aligned first row of the buffer
        self._buf = {name: [] for name in self.fields}
        self._buf_rows = 0
        self._last_index = None
        if keep:  # buffer the partial last chunk, so later writes rewrite it whole
            self._buf = {k: [v] for k, v in self._read(self._buf_start, keep).items()}
            self._buf_rows = keep - self._buf_start
            self._last_index = int(self._read(keep - 1, keep)["index"][0])

    def _describe(self, attrs, meanings):
        """Write the zarr group's metadata: ``.zgroup``, its ``.zattrs`` (``attrs``, the
        version, the index convention, the columns, and their order as ``fields``, since
        JSON objects have none) and each array's ``.zattrs``.

        tensorstore writes only ``.zarray`` and the chunks, so these files stay as written.
        """
        root = self.run_dir / ACCEPTED_DIR
        columns = {}
        for name, (dtype, tail) in self.layout.items():
            meaning = {"meaning": meanings[name]} if name in meanings else {}
            columns[name] = {"dtype": np.dtype(dtype).name, "shape": list(tail), **meaning}
            axes = ROW_DIMENSIONS.get(name, ())
            if len(axes) != len(tail):  # a task's own column
                axes = [f"{name}_{k}" for k in range(len(tail))]
            write_json(root / name / ".zattrs", {"_ARRAY_DIMENSIONS": ["draw", *axes], **meaning})
        write_json(root / ".zgroup", {"zarr_format": 2})
        write_json(root / ".zattrs", {
            **attrs, "gcsampler_version": __version__, "columns": columns,
            "fields": list(self.fields),
            "index_convention": f"{meanings['index']}; rows are in increasing index order"})

    def _create(self, name, dtype, tail):
        """Future of a new, empty array."""
        spec = _spec(self.run_dir, name)
        spec["metadata"] = {
            "shape": [0, *tail],
            "chunks": [self.chunk_rows, *tail],
            "dtype": dtype,
            "compressor": None,  # random floats do not compress; skip the cost
        }
        return ts.open(spec, create=True)

    def _reopen(self, name, dtype, tail, keep):
        """Open one existing array and cut it to ``keep`` rows (create it if missing and
        ``keep`` is 0)."""
        path = self.run_dir / ACCEPTED_DIR / name
        try:
            array = ts.open(_spec(self.run_dir, name), open=True).result()
        except ValueError as err:
            if "NOT_FOUND" in str(err) and keep == 0:
                return self._wait([self._create(name, dtype, tail)])[0]
            raise RunDirError(f"cannot open {path}: {_ts_reason(err)}") from None
        if (array.dtype.numpy_dtype != np.dtype(dtype) or tuple(array.shape[1:]) != tail
                or tuple(array.chunk_layout.read_chunk.shape) != (self.chunk_rows, *tail)):
            raise RunDirError(f"{path} is not an accepted-draws array of this run (dtype "
                              f"{array.dtype.numpy_dtype}, shape {array.shape}, chunks "
                              f"{array.chunk_layout.read_chunk.shape})")
        if array.shape[0] < keep:
            raise RunDirError(f"{path} holds {array.shape[0]} rows but the checkpoint counts "
                              f"{keep}: the run directory is damaged")
        if array.shape[0] > keep:
            resize = array.resize(exclusive_max=[keep] + [None] * len(tail), shrink_only=True)
            array = self._wait([resize])[0]
        return array

    def _read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start .. stop - 1`` of every array, from disk."""
        futures = [self._stores[k][start:stop].read() for k in self.fields]
        return dict(zip(self.fields, self._wait(futures, reading=True)))

    def _wait(self, futures, reading=False):
        """The futures' results; a tensorstore failure becomes a one-line WriteError
        (full disk, read-only location) or, when ``reading``, RunDirError (damage)."""
        try:
            return [fut.result() for fut in futures]
        except ValueError as err:
            error, verb = (RunDirError, "read") if reading else (WriteError, "write")
            raise error(f"cannot {verb} accepted draws in {self.run_dir}: "
                        f"{_ts_reason(err)}") from None

    @property
    def rows_written(self) -> int:
        """Rows durably on disk (appended rows count once flushed or chunk-complete)."""
        return self._written

    def _validate(self, index, *columns) -> dict[str, np.ndarray]:
        index = np.asarray(index)
        if index.ndim != 1 or index.dtype.kind not in "ui":
            raise ValueError(f"index must be a 1-D integer array, got {index.dtype} {index.shape}")
        if index.dtype.kind == "i" and index.size and index.min() < 0:
            raise ValueError("index must be non-negative")
        if len(columns) != len(self.fields) - 1:
            raise ValueError(f"rows need {', '.join(self.fields)}; got {len(columns) + 1} arrays")
        n = len(index)
        batch = {"index": index.astype(np.uint64)}
        for name, column in zip(self.fields[1:], columns):
            dtype, tail = self.layout[name]
            batch[name] = np.asarray(column, dtype=dtype)
            if batch[name].shape != (n, *tail):
                raise ValueError(f"{name} has shape {batch[name].shape}, expected "
                                 f"{(n, *tail)} to match index")
        idx = batch["index"]
        after_last = self._last_index is not None and n and idx[0] <= self._last_index
        if n and (np.any(idx[1:] <= idx[:-1]) or after_last):
            raise ValueError("index must be strictly increasing across appended rows")
        return batch

    def append(self, index, *columns) -> None:
        """Add one batch of accepted rows (any length, including 0): the index, then one
        array per other field of the layout, in its order.

        Raises ValueError if lengths or shapes disagree, or if indices are not
        strictly increasing. Whole chunks are written immediately.
        """
        batch = self._validate(index, *columns)
        n = len(batch["index"])
        if n == 0:
            return
        for name, arr in batch.items():
            self._buf[name].append(arr)
        self._buf_rows += n
        self._last_index = int(batch["index"][-1])
        full = self._buf_rows // self.chunk_rows * self.chunk_rows
        if full:
            block = self._take_buffer()
            self._write(self._buf_start, {k: v[:full] for k, v in block.items()})
            self._buf_start += full
            self._buf_rows -= full
            self._buf = {k: [v[full:]] if self._buf_rows else [] for k, v in block.items()}

    def _take_buffer(self) -> dict[str, np.ndarray]:
        """Concatenate the buffered pieces (and keep them as one piece)."""
        block = {k: np.concatenate(v) for k, v in self._buf.items()}
        self._buf = {k: [v] for k, v in block.items()}
        return block

    def _write(self, start: int, block: dict[str, np.ndarray]) -> None:
        """Grow the arrays if needed, write ``block`` at row ``start``, wait for it."""
        stop = start + len(block["index"])
        self._grow(stop)
        self._wait([self._stores[k][start:stop].write(block[k]) for k in self.fields])
        self._written = max(self._written, stop)

    def _grow(self, stop: int) -> None:
        """Extend the arrays' shape to ``stop`` rows (their metadata only)."""
        if stop <= self._size:
            return
        resizes = [array.resize(exclusive_max=[stop] + [None] * (array.rank - 1), expand_only=True)
                   for array in self._stores.values()]
        self._stores = dict(zip(self._stores, self._wait(resizes)))
        self._size = stop

    def flush(self) -> None:
        """Write any buffered rows (a partial last chunk) and wait until they are on disk."""
        if self._buf_start + self._buf_rows > self._written:
            self._write(self._buf_start, self._take_buffer())

    def close(self) -> None:
        """Flush; the writer holds no other resources."""
        self.flush()

    def __enter__(self) -> "AcceptedWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Close, unless an exception is on its way: then nothing more is written (the
        run's last checkpoint says which rows count)."""
        if exc_type is None:
            self.close()


def read_accepted(run_dir, processes: int = 1, fields=ACCEPTED_FIELDS) -> dict[str, np.ndarray]:
    """Read all accepted rows of a run made by ``processes`` processes, in index order,
    as numpy arrays keyed by ``fields`` (those of a factorization run by default)."""
    parts = [_read_part(part_dir(run_dir, p, processes), fields) for p in range(processes)]
    # Processes draw consecutive ranges of indices, in process order.
    return {name: np.concatenate([part[name] for part in parts]) for name in fields}


def _read_part(run_dir, fields) -> dict[str, np.ndarray]:
    """The accepted rows of one process's directory."""
    futures = {name: ts.open(_spec(run_dir, name), read=True) for name in fields}
    stores = _opened(
        futures, "NOT_FOUND",
        lambda name: f"no accepted draws in {run_dir} (missing {ACCEPTED_DIR}/{name})",
        f"cannot read accepted draws in {run_dir}")
    try:
        reads = [stores[name].read() for name in fields]
        arrays = dict(zip(fields, (fut.result() for fut in reads)))
    except ValueError as err:
        raise RunDirError(f"cannot read accepted draws in {run_dir}: {_ts_reason(err)}") from None
    if len({len(a) for a in arrays.values()}) > 1:
        lengths = ", ".join(f"{name} {len(a)}" for name, a in arrays.items())
        raise RunDirError(f"accepted draws in {run_dir} are damaged: their arrays have "
                          f"different lengths ({lengths})")
    return arrays
