"""scripts/depth_table.py: one depth's entries carry the medians and every warning."""

from script_modules import load_script


def cell(log10_p, gen, gd, fitted, *, moves_max=50, correlation=0.2, spread=False):
    return {"log10_p": log10_p, "gnc_gen_loss_mean": gen, "gd_gen_loss": gd,
            "gd_fitted": fitted, "moves_per_level_max": moves_max,
            "final_correlation_max": correlation, "spread_flag": spread}


def test_a_quiet_depth_has_medians_and_no_warnings():
    table = load_script("depth_table")
    rows = [cell(-6.0, 0.010, 1e-6, True), cell(-7.0, 0.020, 2e-6, True),
            cell(-8.0, 0.030, 3e-6, True), cell(-9.0, 0.040, 4e-6, True)]
    assert table.cell_text(rows, seeds=4) == ["-7.5", "0.0250 (0.0175-0.0325)",
                                              "2.5e-06 (4 of 4)"]


def test_every_warning_is_named_with_its_count():
    table = load_script("depth_table")
    rows = [cell(-6.0, 0.010, 1e-6, True, moves_max=200), cell(-7.0, 0.020, 0.03, False,
                                                               correlation=0.5, spread=True),
            cell(-8.0, 0.030, 0.03, False)]
    log10_p, gnc, gd = table.cell_text(rows, seeds=8)
    assert gnc == "0.0200 (0.0150-0.0250) [3 of 8 seeds, cap 1/3, corr > 0.3 1/3, spread 1/3]"
    assert gd == "3.0e-02 (1 of 3: **not a baseline**)"    # most GD runs did not fit


def test_a_depth_where_most_gd_runs_fit_says_so():
    table = load_script("depth_table")
    rows = [cell(-6.0, 0.01, 1e-6, True), cell(-6.0, 0.01, 1e-6, True),
            cell(-6.0, 0.01, 0.03, False)]
    assert table.cell_text(rows, seeds=3)[2] == "1.0e-06 (2 of 3 fit)"
