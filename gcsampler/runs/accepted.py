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

``accepted/`` is also a zarr v2 group that describes itself
(:mod:`gcsampler.runs.accepted_metadata`), and the manifest beside it has a checksum of
every chunk, against which every reader checks the rows (:mod:`gcsampler.runs.manifest`).
"""

import pathlib

import numpy as np
import tensorstore as ts

from gcsampler.runs import accepted_metadata, manifest as manifest_lib
from gcsampler.runs.files import RunDirError, WriteError, part_dir

ACCEPTED_DIR = "accepted"
ACCEPTED_FIELDS = ("index", "train_loss", "gen_loss", "matrix")


def ts_reason(err: Exception) -> str:
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
            raise RunDirError(f"{failure}: {ts_reason(e)}") from None
    return stores


def spec(run_dir, name: str, new=None) -> dict:
    """The tensorstore spec of array ``name``; ``new``: ``(dtype, row shape, rows, chunk
    rows)`` of one to create."""
    path = pathlib.Path(run_dir) / ACCEPTED_DIR / name
    where = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}
    if new is not None:
        dtype, tail, rows, chunk_rows = new
        where["metadata"] = {"shape": [rows, *tail], "chunks": [chunk_rows, *tail],
                             "dtype": dtype,
                             "compressor": None}  # random floats do not compress; skip the cost
    return where


class AcceptedWriter:
    """Appends accepted draws to the zarr arrays under ``run_dir/accepted/``.

    Rows are buffered on the host and written in whole chunks (chunk-aligned
    writes are far faster than small appends). :meth:`flush` also writes the
    partial last chunk and keeps it buffered, so later writes stay chunk-aligned
    and simply rewrite that chunk. Every write waits for completion and the file
    kvstore fsyncs, so after ``flush()`` returns the rows are on disk.

    ``keep=None`` creates the arrays and refuses existing ones. ``keep=n``
    continues a run's arrays after their first ``n`` rows (the count of its
    checkpoint, of the draws below ``draws_stop``): every row the manifest covers is
    checked first (RunDirError names a damaged chunk), later rows, left by a killed
    process, are dropped, and arrays that are missing while ``n`` is 0 are created.
    ``checked`` is the manifest :func:`check_part` has just checked those rows against
    (they are not read again).
    Each :meth:`flush` writes the manifest (:mod:`gcsampler.runs.manifest`) of the rows
    on disk; :meth:`mark` says which draws they are.

    ``attrs`` (JSON-ready: eps, seed, sampler, method, ...) and ``meanings`` (a meaning
    per column; ``index``'s is required, default :data:`DRAW_INDEX`) describe the run in
    the group's metadata, written (again, on a resume) once the arrays are open.
    """

    def __init__(self, run_dir, layout, chunk_rows: int = 4096, *, keep: int | None = None,
                 draws_stop: int | None = None, attrs: dict | None = None,
                 meanings: dict | None = None, checked=None):
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
            keep, digests = 0, {name: [] for name in self.fields}
        else:
            self._stores = {name: self._reopen(name, *row, keep) for name, row in layout.items()}
            digests = self._checked_digests(keep, checked)
        accepted_metadata.describe(self.run_dir / ACCEPTED_DIR, self.layout, attrs or {},
                                   meanings or {"index": accepted_metadata.DRAW_INDEX})
        self._written = keep  # rows durably written
        self._buf_start = keep // chunk_rows * chunk_rows  # chunk-aligned first row of the buffer
        self._buf = {name: [] for name in self.fields}
        self._buf_rows = 0
        self._last_index = None
        self._digests = {name: list(d[:keep // chunk_rows]) for name, d in digests.items()}
        self._draws_stop = draws_stop
        self._manifest = None  # the manifest last written
        if keep:  # buffer the partial last chunk, so later writes rewrite it whole
            self._buf = {k: [v] for k, v in self._read(self._buf_start, keep).items()}
            self._buf_rows = keep - self._buf_start
            self._last_index = int(self._read(keep - 1, keep)["index"][0])
        self._write_manifest()  # before the arrays lose rows it covered
        self._size = self._cut(keep)  # rows the on-disk arrays currently span

    def _create(self, name, dtype, tail):
        """Future of a new, empty array."""
        return ts.open(spec(self.run_dir, name, (dtype, tail, 0, self.chunk_rows)), create=True)

    def _reopen(self, name, dtype, tail, keep):
        """Open one existing array and cut it to ``keep`` rows (create it if missing and
        ``keep`` is 0)."""
        path = self.run_dir / ACCEPTED_DIR / name
        try:
            array = ts.open(spec(self.run_dir, name), open=True).result()
        except ValueError as err:
            if "NOT_FOUND" in str(err) and keep == 0:
                return self._wait([self._create(name, dtype, tail)])[0]
            raise RunDirError(f"cannot open {path}: {ts_reason(err)}") from None
        if (array.dtype.numpy_dtype != np.dtype(dtype) or tuple(array.shape[1:]) != tail
                or tuple(array.chunk_layout.read_chunk.shape) != (self.chunk_rows, *tail)):
            raise RunDirError(f"{path} is not an accepted-draws array of this run (dtype "
                              f"{array.dtype.numpy_dtype}, shape {array.shape}, chunks "
                              f"{array.chunk_layout.read_chunk.shape})")
        if array.shape[0] < keep:
            raise RunDirError(f"{path} holds {array.shape[0]} rows but the checkpoint counts "
                              f"{keep}: the run directory is damaged; "
                              f"{manifest_lib.repair_hint(self.run_dir)}")
        return array

    def _checked_digests(self, keep, checked):
        """The chunk checksums of the first ``keep`` rows: the manifest's, once every row
        it covers is checked against it (already, if it is ``checked``), or (a run made
        before manifests) computed from the rows. RunDirError names a damaged chunk."""
        group = self.run_dir / ACCEPTED_DIR
        found = (checked or manifest_lib.read(self.run_dir, self.fields)) if keep else None
        if found is None:
            full = keep // self.chunk_rows * self.chunk_rows
            return {name: manifest_lib.digests(column, self.chunk_rows)
                    for name, column in self._read(0, full).items()}
        if found.rows < keep or found.chunk_rows != self.chunk_rows:
            raise RunDirError(f"{self.run_dir / manifest_lib.FILE} covers {found.rows} rows in "
                              f"chunks of {found.chunk_rows}, but the checkpoint counts {keep} "
                              f"rows in chunks of {self.chunk_rows}: the run directory is damaged; "
                              f"{manifest_lib.repair_hint(self.run_dir)}")
        if checked is None:
            manifest_lib.refuse_damage(group, found,
                                       manifest_lib.read_checked(self._stores, found))
        return found.digests

    def _cut(self, keep):
        """Cut the arrays to their first ``keep`` rows (rows after them, left by a killed
        process, are dropped); returns ``keep``."""
        resizes = [array.resize(exclusive_max=[keep] + [None] * (array.rank - 1),
                                shrink_only=True)
                   for array in self._stores.values() if array.shape[0] > keep]
        if resizes:
            self._stores.update(zip((n for n, a in self._stores.items() if a.shape[0] > keep),
                                    self._wait(resizes)))
        return keep

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
                        f"{ts_reason(err)}") from None

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
        """Grow the arrays if needed, write ``block`` at (chunk-aligned) row ``start``, wait
        for it; keep the checksums of its whole chunks."""
        stop = start + len(block["index"])
        self._grow(stop)
        self._wait([self._stores[k][start:stop].write(block[k]) for k in self.fields])
        self._written = max(self._written, stop)
        first = start // self.chunk_rows
        for name, digests in self._digests.items():
            del digests[first:]
            digests += manifest_lib.digests(block[name][:len(block[name]) // self.chunk_rows
                                            * self.chunk_rows], self.chunk_rows)

    def _grow(self, stop: int) -> None:
        """Extend the arrays' shape to ``stop`` rows (their metadata only)."""
        if stop <= self._size:
            return
        resizes = [array.resize(exclusive_max=[stop] + [None] * (array.rank - 1), expand_only=True)
                   for array in self._stores.values()]
        self._stores = dict(zip(self._stores, self._wait(resizes)))
        self._size = stop

    def mark(self, draws_stop: int) -> None:
        """Record that the rows appended so far are every accepted draw below
        ``draws_stop`` (a rejection run's snapshot), for the next manifest."""
        self._draws_stop = int(draws_stop)

    def flush(self) -> None:
        """Write any buffered rows (a partial last chunk), wait until they are on disk,
        then write the manifest that covers them."""
        if self._buf_start + self._buf_rows > self._written:
            self._write(self._buf_start, self._take_buffer())
        self._write_manifest()

    def _write_manifest(self) -> None:
        """Write the manifest of the rows durably written, unless it is unchanged."""
        digests = {name: list(d) for name, d in self._digests.items()}
        if self._written % self.chunk_rows:  # the partial last chunk, from the buffer
            tail = self._take_buffer()
            for name in self.fields:
                digests[name].append(manifest_lib.chunk_digest(
                    tail[name][:self._written - self._buf_start]))
        manifest = manifest_lib.Manifest(self._written, self.chunk_rows, digests,
                                         self._draws_stop)
        if manifest != self._manifest:
            manifest_lib.write(self.run_dir, manifest)
            self._manifest = manifest

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
    parts = [_read_part(part_dir(run_dir, p, processes), fields)[0] for p in range(processes)]
    # Processes draw consecutive ranges of indices, in process order.
    return {name: np.concatenate([part[name] for part in parts]) for name in fields}


def check_part(part, fields):
    """Check the rows of the part ``part`` (a run directory or a process's part) that its
    manifest covers: RunDirError names the first damaged chunk. Rows after them (an
    unfinished run's, to be dropped) are not checked. Returns the manifest checked against
    (None: a run made before manifests), for :class:`AcceptedWriter` to reopen with."""
    return _read_part(part, fields, exact=False)[1]


def _read_part(run_dir, fields, exact=True):
    """The accepted rows of one process's directory, checked against its manifest (which,
    if ``exact``, must cover all of them), and that manifest (None: none)."""
    group = pathlib.Path(run_dir) / ACCEPTED_DIR
    manifest = manifest_lib.read(run_dir, fields)
    futures = {name: ts.open(spec(run_dir, name), read=True) for name in fields}
    stores = _opened(
        futures, "NOT_FOUND",
        lambda name: f"no accepted draws in {run_dir} (missing {ACCEPTED_DIR}/{name}); "
                     f"{manifest_lib.repair_hint(run_dir)}",
        f"cannot read accepted draws in {run_dir}")
    if manifest is None:  # a run made before manifests: read as it is
        return _read_unchecked(run_dir, stores), None
    for name, store in stores.items():
        if store.shape[0] < manifest.rows or (exact and store.shape[0] > manifest.rows):
            raise RunDirError(f"{group}/{name} holds {store.shape[0]:,} rows, its manifest "
                              f"{manifest.rows:,}: the run is damaged; "
                              f"{manifest_lib.repair_hint(run_dir)}")
    arrays, damage = manifest_lib.read_checked(stores, manifest)
    if damage:
        index, damage = _index_of(run_dir, manifest, arrays, damage)
        raise RunDirError(manifest_lib.describe_damage(group, manifest, damage, index))
    return arrays, manifest


def _index_of(run_dir, manifest, arrays, damage):
    """The index rows (None: unreadable) and the damage with the index's, to name the
    draws of damaged rows."""
    if "index" in arrays:
        return arrays["index"], damage
    try:
        store = ts.open(spec(run_dir, "index"), read=True).result()
        index, index_damage = manifest_lib.read_checked({"index": store}, manifest)
    except ValueError:
        return None, damage
    return index["index"], damage + index_damage


def _read_unchecked(run_dir, stores) -> dict[str, np.ndarray]:
    """Every row of ``stores``, of equal lengths."""
    try:
        reads = [store.read() for store in stores.values()]
        arrays = dict(zip(stores, (fut.result() for fut in reads)))
    except ValueError as err:
        raise RunDirError(f"cannot read accepted draws in {run_dir}: {ts_reason(err)}") from None
    if len({len(a) for a in arrays.values()}) > 1:
        lengths = ", ".join(f"{name} {len(a)}" for name, a in arrays.items())
        raise RunDirError(f"accepted draws in {run_dir} are damaged: their arrays have "
                          f"different lengths ({lengths})")
    return arrays
