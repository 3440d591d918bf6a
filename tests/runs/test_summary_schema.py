"""One summary schema: summary.json, the tables and results.csv use its names and no others."""

import dataclasses
import math
import pathlib

import numpy as np
import pytest

from gcsampler.runs import config, summary as schema, sweep_results
from gcsampler.threshold import statistics

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def test_field_names_are_unique_and_documented():
    names = [field.name for field in schema.FIELDS]
    assert len(names) == len(set(names))
    text = (DOCS / "run-directory.md").read_text()
    assert [name for name in names if f"`{name}`" not in text] == []
    assert all(set(field.methods) <= set(schema.BOTH) for field in schema.FIELDS)


def test_results_csv_columns_are_unique_and_settings_are_not_results():
    columns = sweep_results.columns()
    assert len(columns) == len(set(columns))
    settings = {field.name for field in dataclasses.fields(config.RunConfig)}
    assert not settings & set(schema.columns())
    assert "sampler_used" in columns and "log10_p" in columns and "log_p" not in columns


def test_a_rejection_summary_is_in_the_schema():
    totals = statistics.Totals(edges=statistics.train_loss_edges(0.1))
    statistics.add_accepted(totals, np.array([0.5, 0.25], np.float32))
    totals.drawn = 40
    made = {**statistics.summarize(totals, 2.0), "method": "rejection", "eps": 0.1,
            "sampler_used": "direct", "run_dir": "x", "processes": 1}
    done = schema.complete(made)
    assert set(made) <= set(done) and done["gd_gen_loss"] is None   # missing: explicit
    assert done["log10_p"] == pytest.approx(math.log10(2 / 40))
    lo, hi = done["log10_p_ci95"]
    assert lo < done["log10_p"] < hi
    assert [f for f in done if f not in {x.name for x in schema.FIELDS
                                         if "rejection" in x.methods}] == []
    row = schema.csv_row(done)
    assert row["acceptance_ci95_lo"] == done["acceptance_ci95"][0] and math.isnan(
        row["gd_gen_loss"])
    with pytest.raises(ValueError, match="not in the schema: log_p"):
        schema.complete({**made, "log_p": 0.0})
