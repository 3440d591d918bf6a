"""Check a run directory against what it recorded, and repair it exactly.

:func:`verify` reads every part of a run (each process's accepted rows against their
manifest, its checkpoint, the statistics and the summary) and says what it found.
:func:`repair` redraws what was lost: a draw is a pure function of (seed, index), so
the rows of damaged chunks are drawn again from their blocks and written back only
when their checksums equal the manifest's (so the run ends bit-identical to one never
damaged), and a damaged ``statistics.npz`` is summed again from the last checkpoint.
What cannot be redrawn (a splitting run's particles, a damaged manifest or checkpoint)
is refused with what to do.
"""

import pathlib
from typing import NamedTuple

import numpy as np
import tensorstore as ts

from gcsampler.core import devices, loop, totals as totals_lib
from gcsampler.runs import (accepted, checkpoint, files, manifest as manifest_lib, record,
                            rejection_run)
from gcsampler.runs.methods import METHODS


class Part(NamedTuple):
    """What :func:`verify` found in one process's part of a run: its manifest (None:
    none), its arrays' covered rows, their damage (chunks that are missing, short or
    altered), notes on arrays that are missing or short, and problems that redrawing
    rows cannot fix (one line each)."""

    path: pathlib.Path
    manifest: object
    arrays: dict
    damage: list
    notes: list
    problems: list

    @property
    def intact(self) -> bool:
        return not self.damage and not self.problems


class Report(NamedTuple):
    """The state of a run: its parts, whether its statistics are damaged (a line, or
    None) and the problems of its other files."""

    run_dir: pathlib.Path
    parts: list
    statistics: str | None
    problems: list

    @property
    def intact(self) -> bool:
        return (not self.problems and self.statistics is None
                and all(part.intact for part in self.parts))

    def lines(self) -> list[str]:
        """What was checked and what is damaged, for people."""
        out = []
        for part in self.parts:
            name = part.path.name if part.path != self.run_dir else "accepted rows"
            if part.manifest is None:
                out.append(f"{name}: no manifest (made before gcsampler kept one): "
                           f"rows not checked")
            else:
                state = "intact" if part.intact else "DAMAGED"
                out.append(f"{name}: {part.manifest.rows:,} rows in {part.manifest.chunks} "
                           f"chunk(s) per array, {state}")
            for damage in part.damage:
                spans = ", ".join(_rows_text(part.manifest, c) for c in damage.chunks)
                out.append(f"  accepted/{damage.name}: rows {spans} missing or altered")
            out += [f"  {line}" for line in part.notes + part.problems]
        out += [line for line in [self.statistics] if line] + self.problems
        out.append(f"{self.run_dir}: " + ("intact" if self.intact else "DAMAGED"))
        return out


def _rows_text(manifest, chunk):
    span = manifest.span(chunk)
    return f"{span.start:,} to {span.stop - 1:,}"


def verify(run_dir) -> Report:
    """The state of the run in ``run_dir`` (RunDirError if it is not one)."""
    run_dir = pathlib.Path(run_dir)
    rec = record.read_config(run_dir)
    processes = record.processes(rec)
    parts = [_verify_part(files.part_dir(run_dir, p, processes)) for p in range(processes)]
    problems, statistics = [], []
    summary = _try(problems, lambda: record.read_summary(run_dir, checked="eps" in rec["task"]))
    path = run_dir / rejection_run.STATISTICS_FILE
    redraws = _method(rec).redraws
    if summary is not None and redraws and path.is_file():
        _try(statistics, lambda: files.load_arrays(path))
    if redraws:
        for p in range(processes):
            path = files.part_dir(run_dir, p, processes) / checkpoint.FILE
            if path.is_file():
                _try(problems, lambda: _check_checkpoint(path, summary is not None))
    return Report(run_dir, parts, (statistics or [None])[0], problems)


def _method(rec):
    """The Method of a run's record (RunDirError if it names none)."""
    try:
        return METHODS[rec["method"]]
    except (KeyError, ValueError) as err:
        raise files.RunDirError(f"config.json names an unknown method ({err})") from None


def _check_checkpoint(path, finished):
    """RunDirError saying what to do if the checkpoint ``path`` cannot be read."""
    try:
        arrays = files.load_arrays(path)
        if str(arrays.get("format")) != checkpoint.FORMAT:
            raise files.RunDirError(f"{path} is not a checkpoint of this gcsampler")
    except files.RunDirError as err:
        todo = ("the results are intact and need it only to draw more: delete it, and a "
                "larger --samples draws again from the start" if finished else
                "delete it to draw the run again from the start")
        raise files.RunDirError(f"{err}; it cannot be redrawn piece by piece: {todo}") from None


def _try(problems, read):
    """``read()``, or None with its one-line error added to ``problems``."""
    try:
        return read()
    except files.RunDirError as err:
        problems.append(str(err))
        return None


def _verify_part(part) -> Part:
    problems = []
    found = _try(problems, lambda: manifest_lib.read(part, ()))
    if found is None:
        return Part(part, None, {}, [], [], problems)
    stores, short, notes = {}, [], []
    for name in found.digests:
        try:
            store = ts.open(accepted.spec(part, name), open=True, read=True).result()
        except ValueError as err:
            notes.append(f"accepted/{name} cannot be opened ({accepted.ts_reason(err)})")
            short.append(manifest_lib.Damage(name, tuple(range(found.chunks))))
            continue
        if store.shape[0] < found.rows:
            first = store.shape[0] // found.chunk_rows
            short.append(manifest_lib.Damage(name, tuple(range(first, found.chunks))))
            notes.append(f"accepted/{name} holds {store.shape[0]:,} rows, its manifest "
                         f"{found.rows:,}")
            continue
        stores[name] = store
    arrays, damage = manifest_lib.read_checked(stores, found)
    return Part(part, found, arrays, _merge(damage + short), notes, problems)


def _merge(damage):
    """One Damage per array, its chunks sorted."""
    chunks = {}
    for d in damage:
        chunks.setdefault(d.name, set()).update(d.chunks)
    return [manifest_lib.Damage(name, tuple(sorted(c))) for name, c in chunks.items()]


# ------------------------------------------------------------------------------ repair


def repair(run_dir, task_of, stream) -> Report:
    """Redraw the damaged rows and statistics of the run in ``run_dir`` (of a method that
    :attr:`~gcsampler.runs.method.Method.redraws`; ``task_of(run_dir)``: its task and loop
    settings, see :func:`gcsampler.runs.runner.rejection_task`) and write them back;
    returns the state after. RunDirError, with nothing written, for what cannot be
    repaired."""
    run_dir = pathlib.Path(run_dir)
    report = verify(run_dir)
    if report.intact:
        return report
    rec = record.read_config(run_dir)
    if not _method(rec).redraws:
        raise files.RunDirError(f"{run_dir} is a {rec['method']} run: its rows are not draws "
                                f"and cannot be drawn again piece by piece; run it again with "
                                f"the same flags for the same results")
    unfixable = [line for part in report.parts for line in part.problems] + report.problems
    if unfixable:
        raise files.RunDirError(f"cannot repair {run_dir}: {unfixable[0]}")
    task, settings = task_of(run_dir)
    processes = record.processes(rec)
    for p, part in enumerate(report.parts):
        if part.damage:
            _repair_part(part, task, settings, p, processes, stream)
    if report.statistics is not None:
        _repair_statistics(run_dir, task, settings, processes, stream)
    return verify(run_dir)


def _repair_part(part, task, settings, process, processes, stream):
    """Redraw and write back the damaged chunks of one part."""
    found = part.manifest
    block = 2**settings.log2_block
    blocks = devices.process_blocks(settings.samples, settings.log2_block, process, processes)
    bad = sorted({c for d in part.damage for c in d.chunks})
    index_bad = {c for d in part.damage if d.name == "index" for c in d.chunks}
    fixed = {name: {} for name in found.digests}
    for first, last in _runs(bad):
        rows = range(found.span(first).start, found.span(last).stop)
        lo = (int(part.arrays["index"][rows.start - 1]) + 1 if first and first - 1 not in index_bad
              else blocks.start * block)
        hi = (int(part.arrays["index"][rows.stop]) if last + 1 < found.chunks
              else found.draws_stop)
        if hi is None:
            raise files.RunDirError(f"{part.path}'s manifest does not say which draws its last "
                                    f"rows are; run it again with the same flags")
        stream.write(f"gcsampler: redrawing draws {lo:,} to {hi - 1:,} of {part.path} "
                     f"(rows {rows.start:,} to {rows.stop - 1:,})\n")
        redrawn = _redraw(task, settings, range(lo // block, -(-hi // block)), lo, hi)
        if len(redrawn["index"]) != len(rows):
            raise files.RunDirError(
                f"cannot repair {part.path}: draws {lo:,} to {hi - 1:,} give "
                f"{len(redrawn['index']):,} accepted rows, the run recorded {len(rows):,} (was "
                f"it made with another JAX version or backend? see its config.json)")
        for c in range(first, last + 1):
            span = found.span(c)
            for name in found.digests:
                chunk = redrawn[name][span.start - rows.start:span.stop - rows.start]
                if manifest_lib.chunk_digest(chunk) != found.digests[name][c]:
                    raise files.RunDirError(
                        f"cannot repair {part.path}: the redrawn accepted/{name} rows "
                        f"{_rows_text(found, c)} differ from those the run recorded (was it "
                        f"made with another JAX version or backend? see its config.json); "
                        f"nothing was written")
                fixed[name][c] = chunk
    _write_chunks(part.path, task.row_layout, found, fixed)


def _write_chunks(part, layout, manifest, chunks) -> None:
    """Write rows back into the arrays of ``part``: ``chunks[name][c]``, the covered rows
    of chunk ``c`` of array ``name``. An array that cannot be opened is created again
    (all its chunks must be given), a short one grown to the manifest's rows."""
    for name, by_chunk in chunks.items():
        if not by_chunk:
            continue
        dtype, tail = layout[name]
        try:
            store = ts.open(accepted.spec(part, name), open=True).result()
        except ValueError:
            store = _wait_write(part, [ts.open(
                accepted.spec(part, name, (dtype, tail, manifest.rows, manifest.chunk_rows)),
                create=True, delete_existing=True)])[0]
        if store.shape[0] < manifest.rows:
            store = _wait_write(part, [store.resize(
                exclusive_max=[manifest.rows] + [None] * len(tail), expand_only=True)])[0]
        _wait_write(part, [store[manifest.span(c).start:manifest.span(c).stop].write(rows)
                           for c, rows in by_chunk.items()])


def _wait_write(part, futures):
    """The futures' results; a failed write is a one-line WriteError."""
    try:
        return [fut.result() for fut in futures]
    except ValueError as err:
        raise files.WriteError(f"cannot write accepted draws in {part}: "
                               f"{accepted.ts_reason(err)}") from None


def _runs(chunks):
    """Consecutive runs ``(first, last)`` of sorted chunk numbers."""
    runs = []
    for c in chunks:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return [tuple(r) for r in runs]


def _redraw(task, settings, blocks, lo, hi):
    """The accepted rows of draws ``lo`` to ``hi - 1`` (in ``blocks``), drawn again."""
    pieces = {name: [] for name in task.row_layout}

    def keep(index, *columns):
        for name, column in zip(task.row_layout, (index, *columns)):
            pieces[name].append(np.asarray(column))

    loop.guess_and_check(task, samples=settings.samples, seed=settings.seed,
                         batch=settings.batch, devices=settings.device_count,
                         log2_block=settings.log2_block, blocks=blocks, on_rows=keep,
                         progress=False)
    rows = {name: (np.concatenate(p) if p else np.zeros((0, *tail), dtype))
            for (name, p), (dtype, tail) in zip(pieces.items(), task.row_layout.values())}
    inside = (rows["index"] >= lo) & (rows["index"] < hi)
    return {name: column[inside] for name, column in rows.items()}


def _repair_statistics(run_dir, task, settings, processes, stream):
    """Sum the statistics again: from each part's last checkpoint to its last draw."""
    parts = []
    for p in range(processes):
        part = files.part_dir(run_dir, p, processes)
        blocks = devices.process_blocks(settings.samples, settings.log2_block, p, processes)
        start = checkpoint.load(part, settings.log2_block, task.new_totals(), blocks.start)
        first = (start.snapshot.block if start else blocks.start) * 2**settings.log2_block
        stream.write(f"gcsampler: summing the statistics of {part} again from draw {first:,}\n")
        result = loop.guess_and_check(
            task, samples=settings.samples, seed=settings.seed, batch=settings.batch,
            devices=settings.device_count, log2_block=settings.log2_block, blocks=blocks,
            start=start.snapshot if start else None, progress=False)
        parts.append(result.totals)
    totals = totals_lib.combine(parts) if processes > 1 else parts[0]
    summary = record.read_summary(run_dir)
    if summary is not None and summary.get("draws") != totals.drawn:
        raise files.RunDirError(f"cannot repair {run_dir}/statistics.npz: the draws summed "
                                f"again ({totals.drawn:,}) are not the summary's")
    files.save_arrays(run_dir / rejection_run.STATISTICS_FILE, **task.statistics(totals))
