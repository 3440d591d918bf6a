"""Damaged runs are found, named and repaired exactly: the manifest of the accepted rows,
`gcsampler verify`, `--repair`, and the readers that refuse damaged rows.

One finished run (three chunks of rows per array; blocks of 256 draws) is copied and
damaged by each test; a repair must make it bit-identical to the undamaged run.
"""

import io
import json
import pathlib
import shutil

import numpy as np
import pytest

from gcsampler.runs import accepted, config, files, integrity, manifest, runner

from cli_calls import cli_run

CFG = config.RunConfig(eps=0.1, samples=100_000, log2_block=8, batch=256, devices="1",
                       gd=False, seed=3)
FIELDS = accepted.ACCEPTED_FIELDS


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("integrity") / "run"
    runner.execute(CFG, run_dir, stream=io.StringIO(), checkpoint_every=0)
    return run_dir


@pytest.fixture
def copy(original, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    return run_dir


def stored_bytes(run_dir):
    """Every file of the accepted group, by path (the manifest too)."""
    group = pathlib.Path(run_dir) / "accepted"
    return {str(p.relative_to(group)): p.read_bytes() for p in sorted(group.rglob("*"))
            if p.is_file()}


def test_the_manifest_covers_every_row_and_a_finished_run_is_intact(original, capsys):
    found = manifest.read(original, FIELDS)
    summary = json.loads((original / "summary.json").read_text())
    assert found.rows == summary["accepted"] and found.chunks == 3
    assert found.draws_stop == CFG.samples
    rows = accepted.read_accepted(original)
    for name in FIELDS:
        assert found.damaged(name, rows[name]) == []
    code, out = cli_run(["verify", str(original)], capsys)
    assert code == 0 and out.out.strip().endswith(f"{original}: intact")


def damage(run_dir, name, chunk, how):
    """Delete or alter chunk ``chunk`` of array ``name`` (-1: the last), or the array."""
    array = pathlib.Path(run_dir) / "accepted" / name
    if how == "array":
        shutil.rmtree(array)
        return
    last = max(int(p.name.split(".")[0]) for p in array.iterdir() if p.name[0].isdigit())
    path = array / (f"{last if chunk == -1 else chunk}" + ".0.0" * (name == "matrix"))
    if how == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[10] ^= 0xFF  # in the first row: a partial last chunk pads its end
        path.write_bytes(bytes(data))


CASES = [("index", 0, "delete"), ("train_loss", 1, "alter"), ("gen_loss", -1, "delete"),
         ("matrix", -1, "alter"), ("gen_loss", None, "array")]


@pytest.mark.parametrize("name, chunk, how", CASES)
def test_damage_is_refused_by_readers_and_repaired_exactly(original, copy, capsys, name, chunk,
                                                          how):
    damage(copy, name, chunk, how)
    with pytest.raises(files.RunDirError) as err:
        accepted.read_accepted(copy)
    assert f"accepted/{name}" in str(err.value) and "--repair" in str(err.value)
    assert "\n" not in str(err.value)
    code, out = cli_run(["report", str(copy), "--eps", "0.05"], capsys)  # reads the rows
    if name in ("train_loss", "gen_loss"):
        assert code == 2 and f"accepted/{name}" in out.err and out.err.count("\n") == 1
    code, out = cli_run(["verify", str(copy)], capsys)
    assert code == 1 and "DAMAGED" in out.out and f"accepted/{name}" in out.out
    code, out = cli_run(["verify", str(copy), "--repair"], capsys)
    assert code == 0, out
    assert out.out.strip().endswith(f"{copy}: intact") and "redrawing draws" in out.err
    repaired, clean = stored_bytes(copy), stored_bytes(original)
    assert {k: v for k, v in repaired.items() if not k.endswith(".zattrs")} == {
        k: v for k, v in clean.items() if not k.endswith(".zattrs")}


def test_resume_refuses_damaged_rows_before_it_writes(original, copy, capsys):
    """The reliability review's silent case: a deleted chunk was read as zeros."""
    damage(copy, "index", 0, "delete")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    code, out = cli_run(["run", "--resume", str(copy), "--samples", "120000"], capsys)
    assert code == 2 and "accepted/index rows 0 to 4,095" in out.err
    assert out.err.count("\n") == 1 and "resuming" not in out.err
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_damaged_statistics_are_summed_again(original, copy, capsys):
    path = copy / "statistics.npz"
    path.write_bytes(path.read_bytes()[:-100])
    code, out = cli_run(["verify", str(copy)], capsys)
    assert code == 1 and "statistics.npz" in out.out
    code, out = cli_run(["verify", str(copy), "--repair"], capsys)
    assert code == 0, out
    again, clean = files.load_arrays(path), files.load_arrays(original / "statistics.npz")
    assert again.keys() == clean.keys()
    for key in clean:
        np.testing.assert_array_equal(again[key], clean[key])


def test_a_damaged_checkpoint_is_refused_with_what_to_do(original, copy, capsys):
    path = copy / "checkpoint.npz"
    path.write_bytes(b"not a checkpoint")
    code, out = cli_run(["verify", str(copy)], capsys)
    assert code == 1 and "checkpoint.npz" in out.out and "delete it" in out.out
    code, out = cli_run(["verify", str(copy), "--repair"], capsys)
    assert code == 2 and "cannot repair" in out.err and out.err.count("\n") == 1
    assert path.read_bytes() == b"not a checkpoint"


def test_a_damaged_manifest_is_one_line(copy, capsys):
    (copy / manifest.FILE).write_text("{}")
    with pytest.raises(files.RunDirError, match="manifest.json is damaged"):
        accepted.read_accepted(copy)
    code, out = cli_run(["verify", str(copy)], capsys)
    assert code == 1 and "manifest.json is damaged" in out.out


def test_runs_made_before_manifests_read_as_before(original, copy, capsys):
    (copy / manifest.FILE).unlink()
    rows, clean = accepted.read_accepted(copy), accepted.read_accepted(original)
    for name in FIELDS:
        np.testing.assert_array_equal(rows[name], clean[name])
    report = integrity.verify(copy)
    assert report.intact and "rows not checked" in report.lines()[0]
