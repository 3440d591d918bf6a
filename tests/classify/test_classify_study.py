"""The classifier study and `gcsampler classify`: cells, results.csv, stored rows, figures
and bad input, on a tiny setting."""

import csv
import io
import math

import numpy as np
import pytest

from gcsampler import cli
from gcsampler import plots
from gcsampler.classify import task
from gcsampler.runs import classify_study as study
from gcsampler.cli import classify_commands
from gcsampler.runs import accepted, files

TINY = study.StudyConfig(task="kink", n_train=(2, 4), seeds=2, bins=((0.3, 0.5), (0.5, 0.7)),
                         samples=3000, log2_block=8, batch=256, devices="1", baseline_steps=100,
                         baseline_runs=2)
FLAGS = ["--task", "kink", "--n_train", "2,4", "--seeds", "2", "--bins", "0.3:0.5,0.5:0.7",
         "--samples", "3000", "--log2_block", "8", "--batch", "256", "--devices", "1",
         "--baseline_steps", "100", "--baseline_runs", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "out"
    rows = study.run(TINY, out, stream=io.StringIO())
    plots.plot_study(rows, out, TINY)   # the figure `gcsampler classify` draws
    return out, rows


def test_rows_csv_and_cells_agree(tiny):
    out, rows = tiny
    assert len(rows) == 2 * 2 * 2
    assert [(r["n_train"], r["seed"], r["bin_lo"]) for r in rows[:3]] == [
        (2, 0, 0.3), (2, 0, 0.5), (2, 1, 0.3)]
    with open(out / study.RESULTS_FILE) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and list(table[0]) == list(study.RESULT_COLUMNS)
    for row, line in zip(rows, table):
        assert int(line["accepted"]) == row["accepted"] and line["baseline"] == "sgd"
    for n_train in (2, 4):
        for seed in (0, 1):
            cell = out / "cells" / f"n_train={n_train}" / f"seed={seed}"
            stored = accepted.read_accepted(cell, fields=task.ROW_FIELDS)
            mine = [r for r in rows if (r["n_train"], r["seed"]) == (n_train, seed)]
            assert stored["bins"].sum(0).tolist() == [r["accepted"] for r in mine]
            for j, r in enumerate(mine):
                accuracy = stored["test_accuracy"][stored["bins"][:, j] == 1].astype(np.float64)
                if accuracy.size:
                    assert r["gnc_test_accuracy"] == pytest.approx(accuracy.mean(), abs=1e-6)
                assert r["draws"] == 3000 and 0 <= r["baseline_fitted"] <= 1
    assert (out / "test_accuracy.png").stat().st_size > 0 and (out / "test_accuracy.pdf").exists()
    assert files.read_json(out / study.STUDY_FILE)["n_train"] == [2, 4]


def test_table_has_a_line_per_size_and_bin(tiny):
    _, rows = tiny
    lines = study.table(rows).splitlines()
    assert lines[0] == "median over 2 seed(s) of each cell's value"   # names its aggregate
    assert "baseline fitted" in lines[1]
    assert len(lines) == 2 + 2 * 2 and lines[2].split()[:3] == ["2", "[0.30,", "0.50)"]


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["classify", *FLAGS, "--n_train", "2", "--seeds", "1", "--baseline", "none",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "G&C test acc" in printed and f"results: {out / study.RESULTS_FILE}" in printed
    with open(out / study.RESULTS_FILE) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and math.isnan(float(table[0]["baseline_test_accuracy"]))


def test_random_search_baseline(tmp_path):
    cfg = study.StudyConfig(**{**vars(TINY), "n_train": (2,), "seeds": 1,
                               "baseline": "random_search", "baseline_lr": 0.3})
    rows = study.run(cfg, tmp_path / "out", stream=io.StringIO())
    assert [row["baseline"] for row in rows] == ["random_search"] * 2
    assert all(0 <= row["baseline_fitted"] <= 1 for row in rows)


def test_presets_resolve(capsys):
    assert cli.main(["classify", "--list_presets"]) == 0
    assert "kink-mlp" in capsys.readouterr().out
    for name in study.PRESETS:
        values = cli.build_parser().parse_args(["classify", "--preset", name]).flag_values
        cfg = classify_commands.classify_config(values)
        assert cfg == study.StudyConfig(**study.PRESETS[name][1]).validate()
    values = cli.build_parser().parse_args(["classify", "--preset", "kink-mlp", "--width",
                                            "20"]).flag_values
    assert classify_commands.classify_config(values).width == 20   # a flag given explicitly wins


@pytest.mark.parametrize("argv, named", [
    (["--n_train", "3"], "--n_train must be a list of even integers"),
    (["--n_train", "2,x"], "--n_train must be comma-separated"),
    (["--n_train", "5000"], "n_train must be an even integer from 2 to 3998"),
    (["--bins", "0.5:0.3"], "--bins must be"),
    (["--bins", "abc"], "--bins must be LO:HI"),
    (["--preset", "mnist"], "--preset must be one of"),
    (["--samples", "0"], "--samples"),
    (["--seeds", "0"], "--seeds"),
    (["--model", "lenet"], "--model lenet needs image inputs"),
    (["--baseline_lr", "-1"], "--baseline_lr"),
    (["--devices", "99"], "--devices"),
    (["--model", "resnet"], "--model"),
])
def test_bad_input_gives_one_line_and_exit_2(argv, named, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err, err
    assert list(tmp_path.iterdir()) == []
