"""A sweep's results: one row per cell (``results.csv``), rebuilt from the cells' run
directories, optionally re-thresholded; the figures' small print; the splitting curves.

A row is the cell's summary in :mod:`gcsampler.runs.summary` columns, then
``samples_scale``, ``wall_seconds`` (G&C sampling and compiling, plus GD) and ``run_dir``
(the cell's directory, relative to the sweep's), then every setting of the cell.
Re-thresholded rows add ``effective_eps``.
"""

import csv
import dataclasses
import io
import math
import pathlib

from gcsampler.runs import config, files, runner, splitting_files, summary as schema
from gcsampler.runs.methods import METHODS
from gcsampler.threshold import statistics

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.csv"
EXTRA_COLUMNS = ("samples_scale", "wall_seconds", "run_dir")


def columns():
    """The columns of results.csv: results, then every setting (no name twice)."""
    return [*schema.columns(), *EXTRA_COLUMNS, *(f.name for f in dataclasses.fields(
        config.RunConfig))]


def result_row(cfg, summary, scale, run_dir):
    """The ``results.csv`` row of one cell: every result, then every setting.

    ``run_dir`` is the cell's directory relative to the sweep directory.
    """
    results = schema.csv_row(summary)
    extra = (summary.get("compile_seconds") or 0.0) + (summary.get("gd_seconds") or 0.0)
    return {**results, "samples_scale": scale, "wall_seconds": summary["seconds"] + extra,
            "run_dir": run_dir, **dataclasses.asdict(cfg)}


def write_results(sweep_dir, rows):
    """Write ``results.csv`` (atomically): the result columns first, then the settings."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(), lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(pathlib.Path(sweep_dir) / RESULTS_FILE, buffer.getvalue())


def load_sweep(sweep_dir, eps=None):
    """``(record, rows)`` of a sweep directory, rows rebuilt from the cells' run directories.

    Cells that did not finish G&C, or have not started, are left out. With ``eps``, each
    cell's G&C results are re-thresholded (:func:`gcsampler.runs.runner.rethreshold`):
    exact from the accepted rows at or below the run's eps, from the train-loss bins (or
    the splitting curve) above it (``effective_eps`` then says which threshold was used).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    if not (sweep_dir / SWEEP_FILE).is_file():
        raise files.RunDirError(f"{sweep_dir} is not a gcsampler sweep directory "
                                f"(no {SWEEP_FILE})")
    record = files.read_json(sweep_dir / SWEEP_FILE)
    rows = []
    try:
        cells, scale = record["cells"], record["scale"]
        for cell in cells:
            if not (sweep_dir / cell["run_dir"]).exists():    # a stopped sweep's later cells
                continue
            cfg, summary = runner.load_run(sweep_dir / cell["run_dir"])
            if summary is None:
                continue
            row = result_row(cfg, summary, scale, cell["run_dir"])
            if eps is not None:
                row.update(_rethresholded(sweep_dir / cell["run_dir"], row["draws"], eps))
            rows.append(row)
    except (KeyError, TypeError) as err:
        raise files.RunDirError(f"{sweep_dir}/{SWEEP_FILE} is not a valid sweep record "
                                f"(bad or missing {err})") from None
    return record, rows


def figure_note(record, rows):
    """A figure's small print: each method's work per seed (draws, and their scaling, or
    particles and replicates), the effective eps of re-thresholded cells, and the hardware
    and wall time of a finished sweep."""
    methods = sorted({row["method"] for row in rows})
    text = "; ".join(METHODS[name].effort(record["scale"], [r for r in rows
                                                            if r["method"] == name])
                     for name in methods)
    effective = sorted({row["effective_eps"] for row in rows
                        if math.isfinite(row.get("effective_eps", math.nan))})
    if effective and effective != [rows[0]["eps"]]:
        text += f"; effective eps {', '.join(f'{e:.4g}' for e in effective)} (train-loss bins)"
    if "finished" in record:
        finished = record["finished"]
        text += f"; {finished['hardware']}, {finished['wall_seconds'] / 60:.1f} min"
    return text


def _rethresholded(run_dir, draws, eps):
    """The G&C columns of a cell's row at ``eps`` (NaN where the bins cannot say)."""
    result = runner.rethreshold(run_dir, eps)
    row = {"eps": eps, "effective_eps": math.nan, "accepted": math.nan}
    if result is None:
        return {**row, **{name: math.nan for name in (
            "acceptance_rate", "acceptance_ci95_lo", "acceptance_ci95_hi", "log10_p",
            "log10_p_ci95_lo", "log10_p_ci95_hi", "gnc_gen_loss_mean", "gnc_gen_loss_stderr")}}
    if "log10_p" in result:  # a splitting cell: the estimate of p
        lo, hi = result["log10_p_ci95"]
        estimate = {"acceptance_rate": 10 ** result["log10_p"],
                    "acceptance_ci95": [10 ** lo, 10 ** hi], "log10_p": result["log10_p"],
                    "log10_p_ci95": [lo, hi]}
    else:
        estimate = statistics.acceptance(result["accepted"], draws)
        row["accepted"] = result["accepted"]
    pairs = {f"{name}_{end}": estimate[name][i] for name in ("acceptance_ci95", "log10_p_ci95")
             for i, end in enumerate(("lo", "hi"))}
    return {**row, "effective_eps": result["effective_eps"],
            "acceptance_rate": estimate["acceptance_rate"], "log10_p": estimate["log10_p"],
            **pairs, "gnc_gen_loss_mean": result["gnc_gen_loss_mean"],
            "gnc_gen_loss_stderr": result["gnc_gen_loss_stderr"]}


def curves(sweep_dir, record):
    """Each swept value's ``curve.csv`` dicts (one per finished splitting cell, in seed
    order), for :func:`gcsampler.plots.plot_curves`; empty for a rejection sweep."""
    by_value = {}
    for cell in record["cells"]:
        run_dir = pathlib.Path(sweep_dir) / cell["run_dir"]
        if (run_dir / splitting_files.CURVE_FILE).is_file():
            by_value.setdefault(cell["value"], []).append(splitting_files.read_curve(run_dir))
    return by_value
