"""The short text tables ``gcsampler run`` and ``report`` print, from summary fields
(:mod:`gcsampler.runs.summary`)."""

import collections
import math

from gcsampler.core.progress import format_count


def fmt(x, spec=".4g"):
    """``x`` formatted, or 'missing' for None or NaN."""
    return "missing" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _finite(x):
    return x is not None and math.isfinite(x)


def _table(rows):
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _log10_p(log10_p, lo, hi):
    """'-10.88 (95% CI -10.9 .. -10.8), p = 1.3e-11'."""
    p = "" if log10_p is None or not math.isfinite(log10_p) else f", p = {10 ** log10_p:.3g}"
    return f"{fmt(log10_p)} (95% CI {fmt(lo)} .. {fmt(hi)}){p}"


def _gd_rows(s):
    """GD, its fit verdict and the reference solutions (factorization runs; none for
    other tasks)."""
    if s.get("min_nuclear_gen_loss") is None and s.get("gd_gen_loss_runs") is None:
        return []
    runs = s.get("gd_gen_loss_runs")
    gd = (f"{fmt(s.get('gd_gen_loss'))} (mean of {len(runs)} runs; train loss "
          f"{fmt(s.get('gd_train_loss'), '.2g')}{_gd_fit(s)})" if runs else "GD not run")
    return [("GD gen loss", gd),
            ("reference gen loss", f"min nuclear norm {fmt(s.get('min_nuclear_gen_loss'))}, "
                                   f"min Frobenius norm {fmt(s.get('min_frobenius_gen_loss'))}")]


def _gd_fit(s):
    """', fit: below eps' or ', DID NOT FIT in 3 of 4 runs (DIVERGED in 2)' ('' if
    unknown)."""
    if s.get("gd_fitted") is None:
        return ""
    if s["gd_fitted"]:
        return ", fit: below eps"
    runs = len(s["gd_gen_loss_runs"])
    unfit = runs - round(s["gd_fitted_fraction"] * runs)
    diverged = _diverged(s)
    return f", DID NOT FIT in {unfit} of {runs} runs" + (f" (DIVERGED in {diverged})"
                                                         if diverged else "")


def _diverged(s):
    """GD runs whose final train loss is NaN or inf (null in the summary)."""
    return sum(not _finite(loss) for loss in s.get("gd_train_loss_runs") or ())


def gd_warning(s, flags="--gd_steps, --gd_lr or --gd_init_scale"):
    """A one-line warning when GD did not fit the train data, else None."""
    if s.get("gd_fitted") is not False:
        return None
    if _diverged(s):
        return (f"warning: GD diverged (its loss became NaN or inf in {_diverged(s)} of "
                f"{len(s['gd_train_loss_runs'])} runs), so it gives no baseline: lower --gd_lr "
                f"or --gd_init_scale")
    return (f"warning: GD did not fit (final train loss at or above eps {s['eps']:g} in some "
            f"runs), so its gen loss is not GD's solution but an unfinished run's: change "
            f"{flags}")


def header(setting, s):
    """What a table shows: the setting, the method and eps, and what ± means."""
    return (f"{setting}\n{s['method']} G&C at eps {s['eps']:g}; ± is one standard error, "
            f"CI a 95% confidence interval")


def rejection_table(s):
    """The end-of-run table of a rejection run."""
    lo, hi = s["acceptance_ci95"]
    rows = [
        ("acceptance", f"{s['accepted']:,} / {s['draws']:,} = {fmt(s['acceptance_rate'], '.3g')} "
                       f"(95% CI {fmt(lo, '.3g')} .. {fmt(hi, '.3g')})"),
        ("G&C gen loss", f"{fmt(s['gnc_gen_loss_mean'])} ± {fmt(s['gnc_gen_loss_stderr'], '.2g')}"
         if s["accepted"] else f"none accepted: {s.get('gnc_message') or 'undefined'}"),
        ("prior gen loss", f"{fmt(s['prior_gen_loss_mean'])} ± "
                           f"{fmt(s['prior_gen_loss_stderr'], '.2g')}"),
        *_gd_rows(s),
        ("non-finite draws", f"{s['nonfinite']:,}"),
        ("throughput", f"{format_count(s.get('samples_per_second') or 0)} samples/s "
                       f"({s.get('seconds') or 0:.1f} s sampling{_compiling(s)})"),
        ("run directory", s.get("run_dir") or ""),
    ]
    return _table(rows)


def _compiling(s):
    """', 2.3 s compiling' ('' for runs that did not record it)."""
    seconds = s.get("compile_seconds")
    return "" if seconds is None else f", {seconds:.1f} s compiling"


def _fiber_moves(names):
    """' + 3 cone moves' for the summary's fibre-move names ('' for none)."""
    return "".join(f" + {n} {name} move{'s' if n > 1 else ''}"
                   for name, n in collections.Counter(names or ()).items())


def _rotations(count):
    """' + 12 layer rotations' for the summary's rotation count ('' for none)."""
    return f" + {count} layer rotation{'s' if count > 1 else ''}" if count else ""


def splitting_table(s):
    """The end-of-run table of a splitting run."""
    lo, hi = s["log10_p_ci95"]
    rows = [
        ("log10 p", f"{_log10_p(s['log10_p'], lo, hi)}, eps {s['eps']:g}"),
        ("log10 p spread", f"stderr {fmt(s['log10_p_stderr'], '.2g')} over {s['replicates']} "
                           f"replicates, formula {fmt(s['log10_p_formula_stderr'], '.2g')} "
                           f"(ratio {fmt(s['spread_ratio'], '.2f')})"),
        ("G&C gen loss", f"{fmt(s['gnc_gen_loss_mean'])} ± "
                         f"{fmt(s['gnc_gen_loss_stderr'], '.2g')} ({s['accepted']:,} particles "
                         f"below eps)"),
        ("prior gen loss", fmt(s["prior_gen_loss_mean"])),
        *_gd_rows(s),
        ("levels", f"{s['levels']}, {s['moves_per_level_mean']:.1f} moves per level (max "
                   f"{s['moves_per_level_max']}), {s['proposals_per_move']:.1f} evaluations "
                   f"per move, {s['move']} moves on {s['latent']} coordinates"
                   f"{_fiber_moves(s['fiber_moves'])}{_rotations(s.get('rotation_moves'))}"),
        ("diagnostics", f"last correlation {fmt(s['final_correlation_max'], '.2f')}, "
                        f"{s['capped_moves']:,} capped moves, fewest ancestors at eps "
                        f"{s['ancestors_min']:,} of {s['particles']:,}, {s['nonfinite']:,} "
                        f"non-finite prior draws"),
        ("throughput", f"{format_count(s['draws'])} loss evaluations, "
                       f"{format_count(s.get('samples_per_second') or 0)}/s "
                       f"({s['seconds']:.1f} s{_compiling(s)})"),
        ("run directory", s.get("run_dir") or ""),
    ]
    if s.get("splitting_message"):
        rows.insert(1, ("warning", s["splitting_message"]))
    return _table(rows)


def rethreshold_table(eps, r):
    """One line: G&C at another threshold (a rejection or a splitting run's)."""
    where = f"re-threshold at eps={eps:g} (effective {r['effective_eps']:.4g}, from {r['source']})"
    gen = (f"G&C gen loss {fmt(r['gnc_gen_loss_mean'])} ± {fmt(r['gnc_gen_loss_stderr'], '.2g')}"
           if _finite(r["gnc_gen_loss_mean"]) else "G&C gen loss: none accepted")
    if "log10_p" in r:
        return f"{where}: log10 p {_log10_p(r['log10_p'], *r['log10_p_ci95'])}, {gen}"
    return f"{where}: accepted {r['accepted']:,}, {gen}"
