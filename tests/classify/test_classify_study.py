"""The classifier study and `gcsampler classify`: cells, results.csv, stored rows, the
published and the full-batch baselines, the table, figures and bad input, on a tiny setting."""

import csv
import dataclasses
import io
import math
import re

import numpy as np
import pytest
from scipy import stats

from gcsampler import cli
from gcsampler import plots
from gcsampler.classify import published_sgd, task
from gcsampler.runs import classify_presets
from gcsampler.runs import classify_study as study
from gcsampler.cli import classify_commands
from gcsampler.runs import accepted, files

# The default baseline is the published protocol (minibatch SGD that freezes in the bin),
# here with few, short runs: batches of 8 runs, 2 kept per bin, at most 20 tried (so the
# last batch of a bin left short is cut to 4), 5 epochs.
TINY = study.StudyConfig(task="kink", n_train=(2, 4), seeds=2, bins=((0.3, 0.5), (0.5, 0.7)),
                         samples=3000, log2_block=8, batch=256, devices="1", baseline_runs=8,
                         baseline_models=2, baseline_max_runs=20, baseline_epochs=5)
FLAGS = ["--task", "kink", "--n_train", "2,4", "--seeds", "2", "--bins", "0.3:0.5,0.5:0.7",
         "--samples", "3000", "--log2_block", "8", "--batch", "256", "--devices", "1",
         "--baseline_runs", "8", "--baseline_models", "2", "--baseline_max_runs", "20",
         "--baseline_epochs", "5"]
# The full-batch protocol: every run trained until it fits below the bin's upper edge.
FULL_BATCH = dict(baseline_protocol="full_batch", baseline_steps=100, baseline_runs=2)
# `mean [95% CI] median` of a table cell over two or more seeds.
MEAN_CI_MEDIAN = re.compile(r"\d\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\] \d\.\d{3}")
NEW_COLUMNS = ("baseline_protocol", "baseline_models", "baseline_tried", "baseline_landed",
               "logits")


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
    assert set(NEW_COLUMNS) <= set(table[0])
    for row, line in zip(rows, table):
        assert int(line["accepted"]) == row["accepted"] and line["baseline"] == "sgd"
        assert line["baseline_protocol"] == "published" and line["logits"] == "normalized"
        assert int(line["baseline_tried"]) == row["baseline_tried"]
    for n_train in (2, 4):
        for seed in (0, 1):
            cell = out / "cells" / f"n_train={n_train}" / f"seed={seed}"
            stored = accepted.read_accepted(cell, fields=task.ROW_FIELDS)
            mine = [r for r in rows if (r["n_train"], r["seed"]) == (n_train, seed)]
            assert stored["bins"].sum(0).tolist() == [r["accepted"] for r in mine]
            for j, r in enumerate(mine):
                in_bin = stored["bins"][:, j] == 1
                accuracy = stored["test_accuracy"][in_bin].astype(np.float64)
                if accuracy.size:
                    assert r["gnc_test_accuracy"] == pytest.approx(accuracy.mean(), abs=1e-6)
                    # (lo, hi] of the normalized logits' cross-entropy
                    loss = stored["train_loss"][in_bin]
                    assert np.all(loss > np.float32(r["bin_lo"]))
                    assert np.all(loss <= np.float32(r["bin_hi"]))
                assert r["draws"] == 3000 and 0 <= r["baseline_fitted"] <= 1
    assert sum(r["accepted"] for r in rows) > 0
    assert (out / "test_accuracy.png").stat().st_size > 0 and (out / "test_accuracy.pdf").exists()
    recorded = files.read_json(out / study.STUDY_FILE)
    assert recorded["n_train"] == [2, 4] and recorded["logits"] == "normalized"
    assert study.load_config(out) == TINY


def test_published_baseline_fills_each_bin_up_to_the_models_asked(tiny):
    _, rows = tiny
    for r in rows:
        models, tried, landed = r["baseline_models"], r["baseline_tried"], r["baseline_landed"]
        assert r["baseline_protocol"] == "published" and r["logits"] == "normalized"
        assert 0 <= models <= TINY.baseline_models and models <= landed <= tried
        # whole batches of baseline_runs, the last one cut at baseline_max_runs
        assert tried % TINY.baseline_runs == 0 or tried == TINY.baseline_max_runs
        assert tried <= TINY.baseline_max_runs
        assert r["baseline_fitted"] == models / TINY.baseline_models
        if models < TINY.baseline_models:   # a bin is left short only once the cap is reached
            assert tried == TINY.baseline_max_runs
        if models:   # the kept runs landed in (lo, hi]
            assert r["bin_lo"] < r["baseline_train_loss"] <= r["bin_hi"] + 1e-6
            assert 0 <= r["baseline_test_accuracy"] <= 1
        else:
            assert math.isnan(r["baseline_test_accuracy"])
            assert math.isnan(r["baseline_train_loss"])
    assert any(r["baseline_models"] == TINY.baseline_models for r in rows)   # a bin filled
    assert any(r["baseline_tried"] == 20 for r in rows)   # and one hit the cap (16 + 4)


def test_published_baseline_is_fill_bin_with_the_study_settings(tiny):
    # cell n_train=4, seed=1, bin (0.5, 0.7]: the published minibatch is min(4 // 2, 3) = 2
    # points; the bin's runs are seeds ((seed * bins) + bin) * max_runs on: (1 * 2 + 1) * 20.
    _, rows = tiny
    (cell,) = [c for c in study.make_cells(TINY) if (c.n_train, c.seed) == (4, 1)]
    assert study.published_batch_size(TINY, 4) == 2
    assert study.published_batch_size(TINY, 2) == 1
    filled = published_sgd.fill_bin(
        cell.model, cell.dataset, models=2, runs_per_batch=8, max_runs=20, first_seed=60,
        lr=0.1, epochs=5, bin=(np.float32(0.5), np.float32(0.7)), init="uniform",
        logits="normalized", batch_size=2)
    (row,) = [r for r in rows if (r["n_train"], r["seed"], r["bin_lo"]) == (4, 1, 0.5)]
    assert (row["baseline_tried"], row["baseline_landed"]) == (filled.tried, filled.landed)
    assert row["baseline_models"] == len(filled.test_accuracy)
    if len(filled.test_accuracy):
        assert row["baseline_test_accuracy"] == pytest.approx(
            np.mean(filled.test_accuracy.astype(np.float64)), abs=1e-12)


def _expected_cell(values):
    """`mean [95% CI] median` over seeds (Student t), as the table writes it, or 'none'."""
    values = np.array([v for v in values if not math.isnan(v)])
    if not values.size:
        return "none"
    mean = values.mean()
    if values.size == 1:
        return f"{mean:.3f} [n=1] {mean:.3f}"
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}] {np.median(values):.3f}"


def _check_table(text, rows):
    lines = text.splitlines()
    seeds = len({r["seed"] for r in rows})
    assert f"over {seeds} data seed(s)" in lines[0] and "normalized logits" in lines[0]
    assert "mean of the per-seed means [95% CI]" in lines[0] and "median" in lines[0]
    assert "G&C test acc" in lines[1] and "baseline kept/tried" in lines[1]
    keys = list(dict.fromkeys((r["n_train"], r["bin_lo"], r["bin_hi"]) for r in rows))
    assert len(lines) == 2 + len(keys)
    for line, (n_train, lo, hi) in zip(lines[2:], keys):
        cell = [r for r in rows if (r["n_train"], r["bin_lo"], r["bin_hi"]) == (n_train, lo, hi)]
        assert line.split()[:4] == [str(n_train), f"({lo:g},", f"{hi:g}]",
                                    str(sum(r["accepted"] for r in cell))]
        for column in ("gnc_test_accuracy", "baseline_test_accuracy"):
            expected = _expected_cell([r[column] for r in cell])
            assert expected in line, (expected, line)
            assert expected == "none" or MEAN_CI_MEDIAN.fullmatch(expected)
        kept = sum(r["baseline_models"] for r in cell)
        tried = sum(r["baseline_tried"] for r in cell)
        assert line.split()[-1] == f"{kept}/{tried}"


def test_table_has_a_line_per_size_and_bin(tiny):
    _, rows = tiny
    text = study.table(rows)
    _check_table(text, rows)
    # the tiny study has cells with a mean, an interval and a median, for G&C and the baseline
    assert len(MEAN_CI_MEDIAN.findall(text)) >= 2
    assert text.splitlines()[2].split()[:3] == ["2", "(0.3,", "0.5]"]


def test_cli_runs_the_published_baseline_and_prints_the_table(tiny, tmp_path, capsys):
    _, rows = tiny
    out = tmp_path / "out"
    assert cli.main(["classify", *FLAGS, "--n_train", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    mine = [r for r in rows if r["n_train"] == 2]   # the same cells: the same results
    assert study.table(mine) in printed
    _check_table(printed.split("\nresults:")[0], mine)
    assert f"results: {out / study.RESULTS_FILE}" in printed
    with open(out / study.RESULTS_FILE) as f:
        table = list(csv.DictReader(f))
    assert [line["baseline_protocol"] for line in table] == ["published"] * 4
    assert [int(line["baseline_tried"]) for line in table] == [r["baseline_tried"] for r in mine]


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["classify", *FLAGS, "--n_train", "2", "--seeds", "1", "--baseline", "none",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "G&C test acc" in printed and f"results: {out / study.RESULTS_FILE}" in printed
    with open(out / study.RESULTS_FILE) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and math.isnan(float(table[0]["baseline_test_accuracy"]))
    assert [int(line["baseline_tried"]) for line in table] == [0, 0]


@pytest.mark.parametrize("baseline, lr", [("sgd", 0.1), ("random_search", 0.3)])
def test_full_batch_baseline(baseline, lr, tmp_path):
    cfg = dataclasses.replace(TINY, n_train=(2,), seeds=1, baseline=baseline, baseline_lr=lr,
                              **FULL_BATCH)
    rows = study.run(cfg, tmp_path / "out", stream=io.StringIO())
    assert [row["baseline"] for row in rows] == [baseline] * 2
    for row in rows:   # every one of baseline_runs runs per bin is tried; those that fit count
        assert row["baseline_protocol"] == "full_batch" and row["baseline_tried"] == 2
        assert row["baseline_models"] == row["baseline_landed"] <= 2
        assert row["baseline_fitted"] == row["baseline_landed"] / 2
        if row["baseline_models"]:
            assert row["baseline_train_loss"] <= row["bin_hi"] + 1e-6
    assert "baseline fit/runs" in study.table(rows).splitlines()[1]


@pytest.mark.parametrize("baseline", ["adam", "random_search"])
def test_the_published_protocol_is_sgd_only(baseline):
    with pytest.raises(ValueError, match=f"--baseline {baseline} needs --baseline_protocol "
                                         f"full_batch"):
        dataclasses.replace(TINY, baseline=baseline).validate()
    dataclasses.replace(TINY, baseline=baseline, **FULL_BATCH).validate()


def test_presets_resolve(capsys):
    assert cli.main(["classify", "--list_presets"]) == 0
    listed = capsys.readouterr().out
    for name in classify_presets.PRESETS:
        assert name in listed
        values = cli.build_parser().parse_args(["classify", "--preset", name]).flag_values
        cfg = classify_commands.classify_config(values)
        assert cfg == study.StudyConfig(**classify_presets.PRESETS[name][1]).validate()
    values = cli.build_parser().parse_args(["classify", "--preset", "kink-mlp", "--width",
                                            "20"]).flag_values
    assert classify_commands.classify_config(values).width == 20   # a flag given explicitly wins


@pytest.mark.parametrize("argv, named", [
    (["--n_train", "3"], "--n_train must be a list of even integers"),
    (["--n_train", "2,x"], "--n_train must be comma-separated"),
    (["--n_train", "5000"], "n_train must be an even integer from 2 to 3998"),
    (["--task", "mnist", "--n_train", "3"], "--n_train must be a list of even integers"),
    (["--task", "published_kink", "--n_train", "2"], "--n_train must be a list of integers >= 3 for published_kink"),
    (["--bins", "0.5:0.3"], "--bins must be"),
    (["--bins", "0.3:0.3"], "--bins must be"),
    (["--bins", "abc"], "--bins must be LO:HI"),
    (["--preset", "mnist"], "--preset must be one of"),
    (["--samples", "0"], "--samples"),
    (["--seeds", "0"], "--seeds"),
    (["--first_seed", "-1"], "--first_seed"),
    (["--model", "lenet"], "--model lenet needs image inputs"),
    (["--baseline_lr", "-1"], "--baseline_lr"),
    (["--baseline", "adam"], "--baseline adam needs --baseline_protocol full_batch"),
    (["--baseline_models", "0"], "--baseline_models"),
    (["--logits", "nope"], "--logits"),
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
