"""The end of a run and what can go wrong after it: stopped after its summary, a damaged
summary, no finite draw, a read-only run or a bad --out, a disk that fills while a figure
is written. Each ends in a complete run, or in one line and exit code 2 with nothing on
disk lost or changed."""

import errno
import os
import shutil

import pytest

from gcsampler import cli
from gcsampler.runs import files, finish, runner

from cli_calls import cli_run
from read_only import read_only

RUN = ["--width", "5", "--depth", "2", "--eps", "0.1", "--samples", "2e4", "--log2_block", "10",
       "--gd_steps", "20", "--gd_log_every", "10", "--gd_runs", "2"]
# What a run writes after its G&C summary, and the summary fields they fill.
DERIVED_FILES = ("gd.npz", "losses.png", "gd_curves.png")
DERIVED_FIELDS = ("min_nuclear_gen_loss", "min_nuclear_train_loss", "min_frobenius_gen_loss",
                  "min_frobenius_train_loss", *finish.GD_FIELDS, "completed")


def gcsampler(capsys, *argv):
    """``gcsampler ARGV`` in this process: (exit code, stdout, stderr)."""
    code, captured = cli_run(argv, capsys)
    return code, captured.out, captured.err


def fails(capsys, *argv):
    """The one line ``gcsampler ARGV`` fails with: exit code 2, no traceback."""
    code, _, err = gcsampler(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def contents(run_dir):
    """Every file under ``run_dir`` with its bytes."""
    return {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def summary_of(run_dir):
    return files.read_json(run_dir / "summary.json")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["run", *RUN, "--out", str(run_dir)]) == 0
    return run_dir


@pytest.fixture
def copy(finished, tmp_path):
    """A copy of the finished run, to damage."""
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


# ----------------------------------------------- stopped after the G&C summary


def test_a_finished_run_records_what_it_completed(finished):
    assert summary_of(finished)["completed"] == ["references", "gd"]
    assert all((finished / name).is_file() for name in DERIVED_FILES)


def test_resume_completes_what_a_stop_after_the_summary_lost(finished, copy, capsys):
    """Killed right after G&C's summary: no references, GD or figures. --resume adds them
    and says so; the draws are not touched; then the run is complete."""
    files.write_json(copy / "summary.json",
                     {**summary_of(copy), **dict.fromkeys(DERIVED_FIELDS)})
    for name in DERIVED_FILES:
        (copy / name).unlink()
    drawn = {p: data for p, data in contents(copy).items() if p.name != "summary.json"}

    code, out, _ = gcsampler(capsys, "report", copy)
    assert code == 0 and ("not computed yet: the reference solutions' losses and GD; "
                          "`gcsampler run --resume") in out
    code, out, err = gcsampler(capsys, "run", "--resume", copy)
    assert code == 0, err
    assert f"{copy} has finished G&C; adding the reference solutions' losses and GD" in err
    assert f"figure: {copy}/losses.png" in out and f"figure: {copy}/gd_curves.png" in out
    summary, reference = summary_of(copy), summary_of(finished)
    for name in DERIVED_FIELDS:
        if name != "gd_seconds":
            assert summary[name] == reference[name], name
    assert all((copy / name).is_file() for name in DERIVED_FILES)
    assert {p: data for p, data in contents(copy).items() if p in drawn} == drawn

    code, out, _ = gcsampler(capsys, "run", "--resume", copy)
    assert code == 0 and "is complete (20,000 draws, GD included): nothing to resume" in out


def test_resume_draws_a_missing_figure(copy, capsys):
    (copy / "losses.png").unlink()
    before = {p: data for p, data in contents(copy).items() if p.suffix != ".png"}
    code, out, err = gcsampler(capsys, "run", "--resume", copy)
    assert code == 0, err
    assert f"{copy} has all its results; drawing its missing figures (losses.png)" in err
    assert (copy / "losses.png").read_bytes().startswith(b"\x89PNG")
    assert {p: data for p, data in contents(copy).items() if p in before} == before


def test_recorded_parts_are_complete_even_when_their_values_are_null(copy, capsys):
    """References that came out non-finite are null, yet recorded as computed: nothing
    to resume (the fields alone could not tell)."""
    files.write_json(copy / "summary.json",
                     {**summary_of(copy), **dict.fromkeys(DERIVED_FIELDS[:4])})
    assert runner.prepare_resume(copy, {})[0].done
    code, out, _ = gcsampler(capsys, "run", "--resume", copy)
    assert code == 0 and "nothing to resume" in out


@pytest.mark.parametrize("summary, gd, missing", [
    (None, True, ("references", "gd")),
    # G&C's own summary: written before anything after it
    ({"completed": None, "min_nuclear_gen_loss": None, "gd_gen_loss_runs": None}, False,
     ("references",)),
    # a run extended to more draws carries its GD, not its references
    ({"completed": ["gd"], "min_nuclear_gen_loss": 0.1, "gd_gen_loss_runs": [0.1]}, True,
     ("references",)),
    # made before summaries recorded `completed`: its fields tell
    ({"min_nuclear_gen_loss": 0.1, "gd_gen_loss_runs": [0.1]}, True, ()),
    ({"min_nuclear_gen_loss": 0.1, "gd_gen_loss_runs": None}, True, ("gd",)),
])
def test_what_a_summary_lacks(summary, gd, missing):
    assert finish.missing(summary, gd) == missing


# ------------------------------------------------------------ a damaged summary


@pytest.mark.parametrize("damage, named", [
    ({"accepted": "many"}, 'field accepted: expected an integer >= 0, got "many"'),
    ({"acceptance_ci95": None}, "field acceptance_ci95: expected [lo, hi] (numbers or nulls), "
                                "got null"),
    ({"eps": -1}, "field eps: expected a positive number, got -1"),
    (None, "field method: missing"),   # only {"draws": N}
])
def test_a_damaged_summary_is_one_line(damage, named, copy, capsys):
    summary = summary_of(copy)
    files.write_json(copy / "summary.json",
                     {**summary, **damage} if damage else {"draws": summary["draws"]})
    before = contents(copy)
    for argv in (["report", copy], ["report", copy, "--plot"], ["run", "--resume", copy],
                 ["regenerate", copy, "--index", "5"], ["table", copy]):
        err = fails(capsys, *argv)
        assert (f"{copy}/summary.json is damaged ({named}); move it away and `gcsampler run "
                f"--resume {copy}` makes it again" in err), (argv, err)
    code, out, _ = gcsampler(capsys, "verify", copy)
    assert code == 1 and f"summary.json is damaged ({named})" in out
    assert "cannot repair" in fails(capsys, "verify", copy, "--repair")
    assert contents(copy) == before


# ------------------------------------------------------------ no finite draw


def test_a_run_without_finite_draws_ends_with_its_figure(tmp_path, capsys):
    run_dir = tmp_path / "nonfinite"
    code, out, err = gcsampler(capsys, "run", *RUN, "--gt_norm", "1e30", "--nogd",
                               "--out", run_dir)
    assert code == 0, err
    summary = summary_of(run_dir)
    assert summary["nonfinite"] == summary["draws"] == 20_000 and summary["accepted"] == 0
    assert f"figure: {run_dir}/losses.png" in out
    code, out, err = gcsampler(capsys, "report", run_dir, "--plot")
    assert code == 0 and f"figure: {run_dir}/losses.png" in out, err


# ------------------------------------------------- where figures and draws cannot go


def test_report_plot_of_a_read_only_run(copy, capsys):
    before = contents(copy)
    with read_only(copy):
        err = fails(capsys, "report", copy, "--plot")
    assert err.startswith(f"gcsampler report: cannot write {copy}/losses.png: ")
    assert err.endswith(f"the run's data and summary are intact: `gcsampler report {copy} "
                        f"--plot` draws its figures once {copy} can be written")
    assert contents(copy) == before


def test_regenerate_into_a_read_only_run(copy, capsys):
    before = contents(copy)
    with read_only(copy):
        err = fails(capsys, "regenerate", copy, "--index", "5")
    assert err.startswith(f"gcsampler regenerate: cannot write {copy}/regenerated/draw_5.npz: ")
    assert err.endswith("; choose another --out")
    assert contents(copy) == before and not (copy / "regenerated").exists()


@pytest.mark.parametrize("out, named", [
    ("afile/draw.npz", "{afile} is a file, not a directory; choose another --out"),
    ("afile/sub/draw.npz", "Not a directory; choose another --out"),
])
def test_regenerate_out_under_a_file(finished, tmp_path, out, named, capsys):
    (tmp_path / "afile").write_text("kept")
    err = fails(capsys, "regenerate", finished, "--index", "5", "--out", tmp_path / out)
    assert err == (f"gcsampler regenerate: cannot write {tmp_path / out}: "
                   f"{named.format(afile=tmp_path / 'afile')}")
    assert (tmp_path / "afile").read_text() == "kept"


@pytest.fixture
def full_disk(monkeypatch):
    """Every figure write fills the disk after writing part of the file."""
    import matplotlib.figure

    def savefig(self, target, **options):
        target.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return monkeypatch


def test_a_full_disk_at_the_final_figure(tmp_path, full_disk, capsys):
    """The run's data and summary are complete; resume draws the figures later."""
    run_dir = tmp_path / "run"
    code, _, err = gcsampler(capsys, "run", *RUN, "--out", run_dir)
    assert code == 2 and "Traceback" not in err   # the error is the line after the progress
    assert err.splitlines()[-1] == (
        f"gcsampler run: cannot write {run_dir}/losses.png: No space left on device; the run's "
        f"data and summary are intact: `gcsampler report {run_dir} --plot` draws its figures "
        f"once {run_dir} can be written")
    assert summary_of(run_dir)["completed"] == ["references", "gd"]
    assert not list(run_dir.glob("*.png")) and not list(run_dir.glob(".*.tmp"))
    full_disk.undo()
    code, _, err = gcsampler(capsys, "run", "--resume", run_dir)
    assert code == 0 and "drawing its missing figures (losses.png, gd_curves.png)" in err


def test_a_full_disk_keeps_the_figure_it_would_replace(copy, full_disk, capsys):
    before = contents(copy)
    err = fails(capsys, "report", copy, "--plot")
    assert f"cannot write {copy}/losses.png: No space left on device" in err
    assert contents(copy) == before
