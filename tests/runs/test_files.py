"""Tests for gcsampler.runs.files (run directories, atomic small files) and
gcsampler.runs.accepted (accepted arrays)."""

import errno
import json
import os
import re
import shutil
import stat

import numpy as np
import pytest
import tensorstore as ts

from gcsampler.runs import accepted, files

N_ROWS, N_COLS, CHUNK = 3, 2, 8


def _layout(n_rows, n_cols):
    """The accepted arrays of a factorization run: dtype and shape of one row of each."""
    return {"index": ("<u8", ()), "train_loss": ("<f4", ()), "gen_loss": ("<f4", ()),
            "matrix": ("<f4", (n_rows, n_cols))}


# ------------------------------------------------------------------ run dirs


def test_create_run_dir_creates_parents(tmp_path):
    path = files.create_run_dir(tmp_path / "a" / "b" / "run")
    assert path.is_dir() and path == tmp_path / "a" / "b" / "run"


def test_create_run_dir_accepts_empty_existing(tmp_path):
    (tmp_path / "run").mkdir()
    assert files.create_run_dir(str(tmp_path / "run")).is_dir()


def test_create_run_dir_refuses_non_empty_without_touching(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    with pytest.raises(files.RunDirError,
                       match="already exists and is not empty; choose another --out"):
        files.create_run_dir(run)
    assert os.listdir(run) == ["keep.txt"]
    assert (run / "keep.txt").read_text() == "precious"


def test_create_run_dir_refuses_existing_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(files.RunDirError, match="already exists"):
        files.create_run_dir(f)
    assert f.read_text() == "x"


def test_create_run_dir_unwritable_location(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(files.RunDirError, match="cannot create run directory"):
        files.create_run_dir(f / "run")


def test_default_run_dirs_are_new_and_sort_by_time(tmp_path, monkeypatch):
    # Runs started in the same second get their own directories, in the order they started.
    monkeypatch.setattr(files.time, "strftime", lambda fmt: "20261123-071502")
    made = [files.new_default_run_dir("gauss", tmp_path / "runs") for _ in range(3)]
    assert [path.name for path in made] == ["20261123-071502-gauss", "20261123-071502-gauss-2",
                                            "20261123-071502-gauss-3"]
    assert all(path.is_dir() and not any(path.iterdir()) for path in made)
    monkeypatch.undo()
    assert re.fullmatch(r"\d{8}-\d{6}-gauss", files.new_default_run_dir("gauss", tmp_path).name)


# ---------------------------------------------------------------- small files


def test_json_round_trip_numpy_and_nan(tmp_path):
    path = tmp_path / "config.json"
    obj = {
        "b": np.float32(0.5),
        "a": np.int64(7),
        "arr": np.arange(3, dtype=np.uint64),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "nested": {"vals": np.array([1.0, np.nan]), "t": (1, np.bool_(True))},
        "path": tmp_path,
    }
    files.write_json(path, obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert text.index('"a"') < text.index('"b"')  # sort_keys
    assert json.loads(text) == files.read_json(path)
    assert files.read_json(path) == {
        "a": 7,
        "arr": [0, 1, 2],
        "b": 0.5,
        "inf": None,
        "nan": None,
        "nested": {"t": [1, True], "vals": [1.0, None]},
        "path": str(tmp_path),
    }
    assert os.listdir(tmp_path) == ["config.json"]


def test_json_overwrite_is_atomic_and_failed_write_leaves_old(tmp_path):
    path = tmp_path / "s.json"
    files.write_json(path, {"x": 1})
    files.write_json(path, {"x": 2})
    with pytest.raises(TypeError):
        files.write_json(path, {"x": object()})
    assert files.read_json(path) == {"x": 2}
    assert os.listdir(tmp_path) == ["s.json"]


def test_arrays_round_trip(tmp_path):
    path = tmp_path / "state.npz"
    arrays = {"a": np.arange(5, dtype=np.uint64) + 2**40, "b": np.ones((2, 3), np.float32),
              "path": np.array([1])}
    files.save_arrays(path, **arrays)
    out = files.load_arrays(path)
    assert set(out) == set(arrays)
    for k, v in arrays.items():
        assert out[k].dtype == v.dtype
        np.testing.assert_array_equal(out[k], v)
    assert os.listdir(tmp_path) == ["state.npz"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    """Atomic writes give the mode a plain open() gives (not a temp file's 0600), and so
    do tensorstore's files of the accepted arrays and their metadata."""
    old = os.umask(umask)
    try:
        files.write_json(tmp_path / "a.json", {"x": 1})
        files.save_arrays(tmp_path / "b.npz", x=np.zeros(2))
        files.write_text(tmp_path / "c.csv", "x\n1\n")
        with accepted.AcceptedWriter(tmp_path, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK) as w:
            w.append(*_batch(np.random.default_rng(7), 0, CHUNK + 1))
    finally:
        os.umask(old)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 3 + 2 * 4
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# ------------------------------------------------------------ accepted arrays


def _batch(rng, start, n):
    index = np.uint64(2**33) + np.uint64(start) + np.arange(n, dtype=np.uint64) * np.uint64(3)
    return (
        index,
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal(n).astype(np.float64),  # cast to float32 on append
        rng.standard_normal((n, N_ROWS, N_COLS)).astype(np.float32),
    )


def _concat(batches):
    index, tr, ge, mat = (np.concatenate(p) for p in zip(*batches))
    return {
        "index": index.astype(np.uint64),
        "train_loss": tr.astype(np.float32),
        "gen_loss": ge.astype(np.float32),
        "matrix": mat.astype(np.float32),
    }


def _assert_matches(got, want):
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
        assert got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def _read_direct(run_dir):
    """Open the arrays with tensorstore directly, independent of read_accepted."""
    out = {}
    for name in ("index", "train_loss", "gen_loss", "matrix"):
        spec = {"driver": "zarr",
                "kvstore": {"driver": "file", "path": str(run_dir / "accepted" / name)}}
        out[name] = ts.open(spec).result().read().result()
    return out


def _append_all(writer, rng, sizes, start=0):
    batches = []
    for n in sizes:
        b = _batch(rng, start, n)
        start += 3 * n + 1
        writer.append(*b)
        batches.append(b)
    return batches, start


def test_writer_mixed_batches_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    run = files.create_run_dir(tmp_path / "run")
    sizes = [0, 1, 3, CHUNK + 5, 0, 2 * CHUNK, 7, 1]
    with accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK) as w:
        batches, _ = _append_all(w, rng, sizes)
        assert w.rows_written % CHUNK == 0 and w.rows_written <= sum(sizes)
    assert w.rows_written == sum(sizes)
    want = _concat(batches)
    assert want["index"].max() > 2**32
    _assert_matches(accepted.read_accepted(run), want)
    _assert_matches(_read_direct(run), want)
    meta = json.loads((run / "accepted" / "matrix" / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["chunks"] == [CHUNK, N_ROWS, N_COLS]


def test_writer_append_after_flush_continues(tmp_path):
    rng = np.random.default_rng(1)
    run = files.create_run_dir(tmp_path / "run")
    w = accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK)
    batches, start = _append_all(w, rng, [3, CHUNK + 2])  # 13 rows: one chunk + 5
    w.flush()
    assert w.rows_written == 13
    _assert_matches(_read_direct(run), _concat(batches))
    w.flush()  # nothing new: no-op
    more, start = _append_all(w, rng, [2, 4], start)  # completes chunk 2, partial chunk 3
    w.flush()
    more2, _ = _append_all(w, rng, [CHUNK * 2 + 3], start)
    w.close()
    want = _concat(batches + more + more2)
    assert w.rows_written == len(want["index"])
    _assert_matches(accepted.read_accepted(run), want)
    _assert_matches(_read_direct(run), want)


def test_writer_empty_run_reads_empty(tmp_path):
    run = files.create_run_dir(tmp_path / "run")
    with accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK) as w:
        w.append(np.zeros(0, np.uint64), np.zeros(0), np.zeros(0), np.zeros((0, N_ROWS, N_COLS)))
    got = accepted.read_accepted(run)
    assert got["index"].dtype == np.uint64 and got["index"].shape == (0,)
    assert got["matrix"].shape == (0, N_ROWS, N_COLS)


@pytest.mark.parametrize(
    "bad",
    [
        dict(train_loss=np.zeros(3)),  # length differs
        dict(gen_loss=np.zeros(5)),
        dict(matrix=np.zeros((4, N_COLS, N_ROWS))),  # wrong matrix shape
        dict(matrix=np.zeros((3, N_ROWS, N_COLS))),  # wrong matrix length
        dict(index=np.array([1.0, 2.0, 3.0, 4.0])),  # non-integer index
        dict(index=np.array([-1, 2, 3, 4])),
        dict(index=np.array([1, 3, 2, 4])),  # not increasing
    ],
)
def test_writer_rejects_bad_batch(tmp_path, bad):
    run = files.create_run_dir(tmp_path / "run")
    w = accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK)
    good = dict(
        index=np.arange(4, dtype=np.uint64),
        train_loss=np.zeros(4),
        gen_loss=np.zeros(4),
        matrix=np.zeros((4, N_ROWS, N_COLS)),
    )
    with pytest.raises(ValueError):
        w.append(*{**good, **bad}.values())
    w.append(*good.values())  # a rejected batch leaves the writer usable
    with pytest.raises(ValueError, match="increasing"):
        w.append(*good.values())  # indices must keep increasing across batches
    w.close()
    np.testing.assert_array_equal(accepted.read_accepted(run)["index"], good["index"])


def test_writer_refuses_existing_arrays(tmp_path):
    run = files.create_run_dir(tmp_path / "run")
    accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS)).close()
    with pytest.raises(files.RunDirError, match="already exist"):
        accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS))


def test_read_accepted_missing(tmp_path):
    run = files.create_run_dir(tmp_path / "run")
    with pytest.raises(files.RunDirError, match="no accepted draws"):
        accepted.read_accepted(run)



# ------------------------------------------------------- reopening after a stop


def _killed_writer(run, rng):
    """A writer that flushed 13 rows (its checkpoint), then wrote past them and was killed
    half-way through a write: only ``index`` got its last rows. Returns the 13 rows'
    batches and the next index offset."""
    w = accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK)
    kept, start = _append_all(w, rng, [3, CHUNK + 2])
    w.flush()
    _, start = _append_all(w, rng, [2 * CHUNK + 1], start)    # rewrites chunk 1, writes chunk 2
    w._grow(4 * CHUNK)
    w._stores["index"][3 * CHUNK:4 * CHUNK].write(np.arange(CHUNK, dtype=np.uint64)).result()
    return kept, start


def test_writer_reopened_at_a_checkpoint_keeps_exactly_its_rows(tmp_path):
    rng = np.random.default_rng(2)
    run = files.create_run_dir(tmp_path / "run")
    kept, start = _killed_writer(run, rng)
    assert len(_read_direct(run)["index"]) == 4 * CHUNK
    with accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK, keep=13) as w:
        assert w.rows_written == 13
        _assert_matches(_read_direct(run), _concat(kept))      # later rows are gone
        with pytest.raises(ValueError, match="increasing"):    # continues after row 13's index
            w.append(*_batch(rng, 0, 1))
        more, _ = _append_all(w, rng, [1, CHUNK + 3], start)
    _assert_matches(accepted.read_accepted(run), _concat(kept + more))


def test_writer_reopened_at_zero_creates_what_is_missing(tmp_path):
    rng = np.random.default_rng(3)
    run = files.create_run_dir(tmp_path / "run")
    _killed_writer(run, rng)
    shutil.rmtree(run / "accepted" / "matrix")
    with accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK, keep=0) as w:
        batches, _ = _append_all(w, rng, [5])
    _assert_matches(accepted.read_accepted(run), _concat(batches))


@pytest.mark.parametrize("keep, chunk_rows, n_cols, message", [
    (4 * CHUNK + 1, CHUNK, N_COLS, "holds 32 rows but the checkpoint counts 33: the run "
                                   "directory is damaged"),
    (13, CHUNK + 1, N_COLS, "is not an accepted-draws array of this run"),
    (13, CHUNK, N_COLS + 1, "is not an accepted-draws array of this run"),
])
def test_writer_reopen_refuses_arrays_that_do_not_fit(tmp_path, keep, chunk_rows, n_cols,
                                                       message):
    run = files.create_run_dir(tmp_path / "run")
    _killed_writer(run, np.random.default_rng(4))
    with pytest.raises(files.RunDirError, match=message):
        accepted.AcceptedWriter(run, _layout(N_ROWS, n_cols), chunk_rows=chunk_rows, keep=keep)


def test_writer_failure_is_a_write_error(tmp_path):
    run = files.create_run_dir(tmp_path / "run")
    w = accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK)
    shutil.rmtree(run / "accepted" / "gen_loss")
    (run / "accepted" / "gen_loss").write_text("not a directory")
    with pytest.raises(files.WriteError, match=r"^cannot write accepted draws in .*run: "):
        w.append(*_batch(np.random.default_rng(5), 0, CHUNK))


def test_read_accepted_refuses_arrays_of_different_lengths(tmp_path):
    run = files.create_run_dir(tmp_path / "run")
    _killed_writer(run, np.random.default_rng(6))
    accepted.AcceptedWriter(run, _layout(N_ROWS, N_COLS), chunk_rows=CHUNK, keep=13).close()
    index = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(run / "accepted/index")}}
    ts.open(index).result().resize(exclusive_max=[12], shrink_only=True).result()
    with pytest.raises(files.RunDirError, match=r"index holds 12 rows, its manifest 13"):
        accepted.read_accepted(run)
    (run / "manifest.json").unlink()  # as a run made before manifests
    with pytest.raises(files.RunDirError, match=r"different lengths \(index 12, train_loss 13"):
        accepted.read_accepted(run)


# ------------------------------------------------------- failed and damaged files


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    files.write_json(path, {"x": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(files.WriteError, match=f"^cannot write {path}: No space left on device$"):
        files.write_json(path, {"x": 2})
    monkeypatch.undo()
    assert files.read_json(path) == {"x": 1} and os.listdir(tmp_path) == ["s.json"]
    with pytest.raises(files.WriteError, match="cannot write .*s.json/a.npz: Not a directory"):
        files.save_arrays(path / "a.npz", a=np.zeros(2))


def test_damaged_small_files_are_run_dir_errors(tmp_path):
    (tmp_path / "bad.json").write_text('{"draws": 1')
    with pytest.raises(files.RunDirError, match="bad.json is damaged \\(not valid JSON"):
        files.read_json(tmp_path / "bad.json")
    files.save_arrays(tmp_path / "a.npz", a=np.arange(1000))
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(files.RunDirError, match="a.npz is damaged"):
        files.load_arrays(tmp_path / "a.npz")
    with pytest.raises(files.RunDirError, match="b.npz is missing"):
        files.load_arrays(tmp_path / "b.npz")


def test_remove_temporaries(tmp_path):
    (tmp_path / ".summary.json.x1y2.tmp").write_text("{")
    (tmp_path / "summary.json").write_text("{}")
    files.remove_temporaries(tmp_path)
    assert os.listdir(tmp_path) == ["summary.json"]


def test_writer_of_another_layout(tmp_path):
    """Runs of other kinds (classifiers) keep their own fields: written in chunks, read
    back by name, shapes and dtypes checked."""
    run = files.create_run_dir(tmp_path / "run")
    layout = {"index": ("<u8", ()), "train_loss": ("<f4", ()), "bins": ("|u1", (3,))}
    rng = np.random.default_rng(6)
    index = np.sort(rng.choice(10**6, 2 * CHUNK + 3, replace=False)).astype(np.uint64)
    loss = rng.random(index.size).astype(np.float32)
    bins = rng.integers(0, 2, (index.size, 3)).astype(np.uint8)
    with accepted.AcceptedWriter(run, layout, chunk_rows=CHUNK) as w:
        w.append(index[:5], loss[:5], bins[:5])
        w.append(index[5:], loss[5:], bins[5:])
        with pytest.raises(ValueError, match=r"bins has shape \(1, 2\)"):
            w.append(index[-1:] + 1, loss[:1], bins[:1, :2])
    got = accepted.read_accepted(run, fields=tuple(layout))
    assert got["index"].tobytes() == index.tobytes()
    assert got["train_loss"].tobytes() == loss.tobytes()
    assert got["bins"].dtype == np.uint8 and np.array_equal(got["bins"], bins)
    with pytest.raises(ValueError, match="layout must start with index"):
        accepted.AcceptedWriter(tmp_path, {"loss": ("<f4", ())})
