"""One summary schema: summary.json, the tables and results.csv use its names and no others."""

import dataclasses
import json
import math
import pathlib

import numpy as np
import pytest

from gcsampler.runs import config, summary as schema, sweep_results, tables
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


# ------------------------------------------------- a summary read back from disk


def rejection_summary(**changes):
    """A rejection run's summary as summary.json holds it, with ``changes``."""
    totals = statistics.Totals(edges=statistics.train_loss_edges(0.1))
    statistics.add_accepted(totals, np.array([0.5, 0.25], np.float32))
    totals.drawn = 40
    made = schema.complete({**statistics.summarize(totals, 2.0), "method": "rejection",
                            "eps": 0.1, "sampler_used": "direct", "run_dir": "x",
                            "processes": 1, "compile_seconds": 1.0})
    return {**json.loads(json.dumps(made)), **changes}


SPLITTING = {
    "method": "splitting", "eps": 1e-3, "draws": 45_890_154, "accepted": 688, "nonfinite": 0,
    "acceptance_rate": 1e-5, "acceptance_ci95": [1e-6, 1e-4], "log10_p": -5.0,
    "log10_p_ci95": [-6.0, -4.0], "gnc_gen_loss_mean": 0.1, "gnc_gen_loss_stderr": 0.01,
    "prior_gen_loss_mean": 0.24, "sampler_used": "splitting/weights", "seconds": 12.5,
    "samples_per_second": 3.7e6, "processes": 1, "run_dir": "x", "log10_p_stderr": 0.1,
    "log10_p_formula_stderr": 0.09, "log10_p_replicates": [-5.1, None], "spread_ratio": 1.1,
    "spread_flag": False, "accepted_per_replicate": [344, 344],
    "gnc_gen_loss_replicates": [0.1, None], "particles": 512, "replicates": 2, "levels": 30,
    "moves_per_level_mean": 5.0, "moves_per_level_max": 9, "proposals_per_move": 1.5,
    "proposals_per_move_max": 4, "capped_moves": 0, "final_correlation_max": 0.1,
    "ancestors_min": 100, "latent": "weights", "move": "pcn", "fiber_moves": ["cone"],
    "rotation_moves": 2, "converged": True, "splitting_message": "",
}


def splitting_summary(**changes):
    return schema.complete({**SPLITTING, **changes})


def without(summary, name):
    return {k: v for k, v in summary.items() if k != name}


# (damaged summary, the field and what check says of it); one case at least per kind.
DAMAGED = [
    ({"draws": 40}, "field method: missing"),
    (rejection_summary(method="bogus"), 'field method: expected rejection or splitting, got '
                                        '"bogus"'),
    (rejection_summary(eps=0), "field eps: expected a positive number, got 0"),
    (rejection_summary(eps="0.1"), 'field eps: expected a positive number, got "0.1"'),
    (rejection_summary(accepted="many"), 'field accepted: expected an integer >= 0, got "many"'),
    (rejection_summary(accepted=-1), "field accepted: expected an integer >= 0, got -1"),
    (rejection_summary(accepted=True), "field accepted: expected an integer >= 0, got true"),
    (rejection_summary(nonfinite=1.5), "field nonfinite: expected an integer >= 0, got 1.5"),
    (without(rejection_summary(), "nonfinite"), "field nonfinite: missing"),
    (rejection_summary(acceptance_ci95=None),
     "field acceptance_ci95: expected [lo, hi] (numbers or nulls), got null"),
    (rejection_summary(acceptance_ci95=[0.1]),
     "field acceptance_ci95: expected [lo, hi] (numbers or nulls), got [0.1]"),
    (without(rejection_summary(), "gnc_gen_loss_mean"), "field gnc_gen_loss_mean: missing"),
    (rejection_summary(prior_gen_loss_mean="0.2"),
     'field prior_gen_loss_mean: expected a number or null, got "0.2"'),
    (rejection_summary(log10_p=3.0), "field log10_p: expected a number <= 0 or null, got 3.0"),
    (rejection_summary(seconds=None), "field seconds: expected a number >= 0, got null"),
    (rejection_summary(gnc_message=5), "field gnc_message: expected a string or null, got 5"),
    (rejection_summary(gd_gen_loss_runs="x"),
     'field gd_gen_loss_runs: expected null or a list of numbers or nulls, got "x"'),
    (rejection_summary(gd_fitted="yes"), 'field gd_fitted: expected true, false or null, got '
                                         '"yes"'),
    (rejection_summary(gd_fitted=False), "field gd_fitted: false needs gd_gen_loss_runs"),
    (rejection_summary(completed=["all"]),
     'field completed: expected null or a list of references, gd, got ["all"]'),
    (rejection_summary(log_p=0.0), "field log_p: not a field of the summary schema"),
    (splitting_summary(levels=2.5), "field levels: expected an integer >= 0, got 2.5"),
    (splitting_summary(accepted_per_replicate=[1, -1]),
     "field accepted_per_replicate: expected a list of integers >= 0, got [1, -1]"),
    (splitting_summary(log10_p_replicates=None),
     "field log10_p_replicates: expected a list of numbers or nulls, got null"),
    (splitting_summary(latent=None), "field latent: expected a string, got null"),
    (splitting_summary(fiber_moves="cone"),
     'field fiber_moves: expected a list of strings, got "cone"'),
    (without(splitting_summary(), "particles"), "field particles: missing"),
]


@pytest.mark.parametrize("summary, named", DAMAGED)
def test_a_damaged_summary_names_its_field(summary, named):
    with pytest.raises(ValueError) as error:
        schema.check(summary)
    assert str(error.value).startswith(named)


def test_every_kind_of_field_has_a_damaged_case():
    checked = {named.split(":")[0].removeprefix("field ") for _, named in DAMAGED}
    kinds = {schema.BY_NAME[name].kind for name in checked if name in schema.BY_NAME}
    assert {field.kind for field in schema.FIELDS} <= kinds


def nulled(summary):
    """``summary`` with every field that may be null set to null."""
    return {name: None if schema.BY_NAME[name].kind.test(None) else value
            for name, value in summary.items()}


@pytest.mark.parametrize("summary, table", [
    (rejection_summary(), tables.rejection_table),
    (splitting_summary(), tables.splitting_table),
])
def test_what_check_accepts_the_report_can_print(summary, table):
    for variant in (summary, nulled(summary),
                    {k: v for k, v in summary.items() if schema.BY_NAME[k].required}):
        schema.check(variant)
        assert tables.header("setting", variant) and table(variant)
