"""The manifest of a run's accepted rows: how many rows the arrays hold and a checksum of
every chunk of every array, so that a missing or altered chunk is found, and named, before
its rows are used.

``manifest.json`` (beside ``accepted/``, in each process's part of a run; outside the zarr
group, which zarr-python would otherwise warn of) covers the first ``rows`` rows of every
array. It is written once they are on disk and before the checkpoint that counts them
(:mod:`gcsampler.runs.checkpoint`), so it covers at least the rows a checkpoint counts,
and the arrays hold at least the rows it covers. ``draws_stop`` (rejection
runs) says which draws the rows are: every accepted draw of the part with an index below
it, and no other. A chunk's checksum is BLAKE2b (16 bytes) of its covered rows' bytes as
stored (C order, little-endian): a chunk tensorstore cannot find reads as zeros, and so
fails its checksum like an altered one.
"""

import hashlib
import math
import pathlib
from typing import NamedTuple

import numpy as np

from gcsampler.runs import files

FILE = "manifest.json"
FORMAT = "gcsampler-manifest-1"
ALGORITHM = "blake2b-128 of each chunk's rows as stored (C order, little-endian)"


def chunk_digest(rows) -> str:
    """The checksum of one chunk's rows (hex)."""
    rows = np.asarray(rows)
    stored = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    return hashlib.blake2b(stored.tobytes(), digest_size=16).hexdigest()


class Manifest(NamedTuple):
    """The rows covered, the chunk length, per array the checksums of its chunks (the
    last one of a partial chunk's covered rows) and, for rejection runs, the draw index
    below which the rows are all the part's accepted draws (None: not recorded)."""

    rows: int
    chunk_rows: int
    digests: dict
    draws_stop: int | None = None

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.chunk_rows)

    def span(self, chunk: int) -> range:
        """The rows of ``chunk`` that the manifest covers."""
        return range(chunk * self.chunk_rows, min((chunk + 1) * self.chunk_rows, self.rows))

    def damaged(self, name: str, array) -> list[int]:
        """The chunks of ``name`` whose covered rows in ``array`` (all rows of the array,
        at least ``rows``) fail their checksum."""
        return [c for c, digest in enumerate(self.digests[name])
                if chunk_digest(array[self.span(c).start:self.span(c).stop]) != digest]


def write(part_dir, manifest: Manifest) -> None:
    """Write the manifest of the rows in ``part_dir``'s ``accepted/`` atomically (after the
    rows it covers are on disk)."""
    files.write_json(pathlib.Path(part_dir) / FILE, {
        "format": FORMAT, "algorithm": ALGORITHM, "rows": manifest.rows,
        "chunk_rows": manifest.chunk_rows, "draws_stop": manifest.draws_stop,
        "chunks": manifest.digests})


def read(part_dir, fields) -> Manifest | None:
    """The manifest of the rows in ``part_dir``'s ``accepted/``, which must cover the arrays
    ``fields`` (None: the run was made before manifests); RunDirError if it is damaged."""
    where = pathlib.Path(part_dir) / FILE
    if not where.is_file():
        return None
    raw = files.read_json(where)
    try:
        if raw["format"] != FORMAT:
            raise ValueError(f"format {raw['format']!r}, expected {FORMAT}")
        missing = [name for name in fields if name not in raw["chunks"]]
        if missing:
            raise ValueError(f"no checksums of {', '.join(missing)}")
        manifest = Manifest(int(raw["rows"]), int(raw["chunk_rows"]),
                            {name: list(digests) for name, digests in raw["chunks"].items()},
                            None if raw["draws_stop"] is None else int(raw["draws_stop"]))
        if manifest.rows < 0 or manifest.chunk_rows < 1 or any(
                len(d) != manifest.chunks or not all(isinstance(x, str) for x in d)
                for d in manifest.digests.values()):
            raise ValueError("its chunk checksums do not match its row count")
    except (KeyError, TypeError, ValueError) as err:
        raise files.RunDirError(f"{where} is damaged ({err}), so the rows can no longer be "
                                f"checked; draw the run again with the same flags for the "
                                f"same results") from None
    return manifest


def repair_hint(part) -> str:
    """How to repair the run that ``part`` (a run directory or a process's part) is of."""
    part = pathlib.Path(part)
    run_dir = part.parent if part.name.startswith(files.PART_PREFIX) else part
    return f"`gcsampler verify {run_dir} --repair` redraws damaged rows exactly"


def digests(column, chunk_rows) -> list[str]:
    """The checksums of the chunks of ``column`` (a partial last chunk too)."""
    return [chunk_digest(column[start:start + chunk_rows])
            for start in range(0, len(column), chunk_rows)]


class Damage(NamedTuple):
    """The chunks of one array whose covered rows are missing or altered."""

    name: str
    chunks: tuple


def read_checked(stores, manifest) -> tuple[dict, list[Damage]]:
    """The covered rows of each array of ``stores`` (name -> open tensorstore; at least
    ``manifest.rows`` rows) and the damage the manifest finds in them: a chunk that
    cannot be read (zeros in its place) or fails its checksum."""
    arrays, damage = {}, []
    for name, store in stores.items():
        unreadable = []
        try:
            arrays[name] = store[:manifest.rows].read().result()
        except ValueError:  # find the chunks that cannot be read
            arrays[name] = np.zeros((manifest.rows, *store.shape[1:]), store.dtype.numpy_dtype)
            for c in range(manifest.chunks):
                span = manifest.span(c)
                try:
                    arrays[name][span.start:span.stop] = store[span.start:span.stop].read().result()
                except ValueError:
                    unreadable.append(c)
        bad = sorted(set(unreadable) | set(manifest.damaged(name, arrays[name])))
        if bad:
            damage.append(Damage(name, tuple(bad)))
    return arrays, damage


def draws_of(manifest, index, chunk, damaged_index=(), first_draw=0):
    """``(first, last)``: the draws the rows of ``chunk`` can be, from the index where it
    is intact (its own chunk, else the neighbours' last and first rows)."""
    span = manifest.span(chunk)
    if chunk not in damaged_index:
        return int(index[span.start]), int(index[span.stop - 1])
    before = int(index[span.start - 1]) + 1 if chunk and chunk - 1 not in damaged_index \
        else first_draw
    after = (int(index[span.stop]) - 1 if chunk + 1 < manifest.chunks
             and chunk + 1 not in damaged_index else None)
    return before, after


def describe_damage(group_dir, manifest, damage, index) -> str:
    """One line: the first damaged array, its rows and their draws."""
    first = damage[0]
    chunk = first.chunks[0]
    span = manifest.span(chunk)
    draws = ""
    if index is not None:
        index_damage = next((d.chunks for d in damage if d.name == "index"), ())
        lo, hi = draws_of(manifest, index, chunk, index_damage)
        draws = f" (draws {lo:,} to {hi:,})" if hi is not None else f" (draws from {lo:,})"
    more = sum(len(d.chunks) for d in damage) - 1
    also = f" and {more} more chunk{'s' if more > 1 else ''}" if more else ""
    return (f"{group_dir}/{first.name} rows {span.start:,} to {span.stop - 1:,}{draws}{also} "
            f"are missing or altered; {repair_hint(group_dir.parent)}")


def refuse_damage(group_dir, manifest, checked):
    """RunDirError describing the damage :func:`read_checked` found, if any; else the
    arrays."""
    arrays, damage = checked
    if damage:
        raise files.RunDirError(describe_damage(group_dir, manifest, damage, arrays.get("index")))
    return arrays
