"""The text tables say what they show: the setting, eps, what ± means, whether GD fit, and
'none accepted' rather than blanks."""

import math

import numpy as np

from gcsampler.runs import files, finish, tables

FITTED = {"eps": 0.02, "gd_gen_loss": 1e-5, "gd_gen_loss_runs": [1e-5, 1e-5],
          "gd_train_loss": 1e-7, **finish.gd_verdict([1e-7, 2e-7], 0.02),
          "min_nuclear_gen_loss": 1e-21, "min_frobenius_gen_loss": 0.04}


def test_gd_verdict_counts_runs_below_eps():
    assert finish.gd_verdict([1e-7, 0.03, math.nan, 0.019], 0.02) == {
        "gd_fitted": False, "gd_fitted_fraction": 0.5}
    assert finish.gd_verdict([0.0], 0.02) == {"gd_fitted": True, "gd_fitted_fraction": 1.0}
    assert finish.gd_verdict([0.02], 0.02)["gd_fitted"] is False   # strictly below, as G&C


def test_a_gd_that_fit_is_shown_as_a_baseline():
    text = dict(tables._gd_rows(FITTED))["GD gen loss"]
    assert "mean of 2 runs" in text and "train loss 1e-07" in text and "fit: below eps" in text
    assert tables.gd_warning(FITTED) is None


def test_a_gd_that_did_not_fit_is_flagged_with_the_flags_to_change():
    unfit = {**FITTED, "gd_train_loss": 0.03, **finish.gd_verdict([0.03, 1e-7], 0.02)}
    assert "DID NOT FIT in 1 of 2 runs" in dict(tables._gd_rows(unfit))["GD gen loss"]
    warning = tables.gd_warning(unfit)
    assert warning.startswith("warning: GD did not fit") and "\n" not in warning
    assert all(flag in warning for flag in ("--gd_steps", "--gd_lr", "--gd_init_scale"))


def test_a_gd_that_diverged_says_so_and_what_to_lower():
    diverged = {**FITTED, "gd_gen_loss": None, "gd_gen_loss_runs": [None, 1e-3],
                "gd_train_loss": None, "gd_train_loss_runs": [None, 1e-7],
                **finish.gd_verdict([math.nan, 1e-7], 0.02)}
    assert ("DID NOT FIT in 1 of 2 runs (DIVERGED in 1)"
            in dict(tables._gd_rows(diverged))["GD gen loss"])
    warning = tables.gd_warning(diverged)
    assert warning.startswith("warning: GD diverged") and "1 of 2 runs" in warning
    assert "--gd_lr" in warning and "\n" not in warning


def test_header_names_the_setting_method_eps_and_the_error_bars():
    text = tables.header("depth 2, width 5", {"method": "rejection", "eps": 0.02})
    assert text.splitlines()[0] == "depth 2, width 5"
    assert "rejection G&C at eps 0.02" in text and "± is one standard error" in text


def test_nothing_accepted_reads_none_accepted():
    result = {"effective_eps": 0.01, "source": "accepted rows", "accepted": 0,
              "gnc_gen_loss_mean": math.nan, "gnc_gen_loss_stderr": math.nan}
    line = tables.rethreshold_table(0.01, result)
    assert "none accepted" in line and "missing" not in line


def test_runs_made_before_the_verdict_get_it_from_gd_npz(tmp_path):
    files.save_arrays(tmp_path / finish.GD_FILE, final_train_loss=np.array([1e-7, 0.5]))
    old = {"eps": 0.02, "gd_gen_loss_runs": [1e-5, 0.04]}
    done = finish.with_verdict(old, tmp_path)
    assert done["gd_fitted"] is False and done["gd_fitted_fraction"] == 0.5
    assert finish.with_verdict({"eps": 0.02}, tmp_path) == {"eps": 0.02}   # GD not run
