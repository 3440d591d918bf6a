"""The short text tables ``gcsampler run`` and ``report`` print, from summary fields
(:mod:`gcsampler.runs.summary`)."""

import collections
import math

from gcsampler.runs.progress import format_count


def fmt(x, spec=".4g"):
    """``x`` formatted, or 'missing' for None or NaN."""
    return "missing" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _table(rows):
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _log10_p(log10_p, lo, hi):
    """'-10.88 (95% CI -10.9 .. -10.8), p = 1.3e-11'."""
    p = "" if log10_p is None or not math.isfinite(log10_p) else f", p = {10 ** log10_p:.3g}"
    return f"{fmt(log10_p)} (95% CI {fmt(lo)} .. {fmt(hi)}){p}"


def _gd_rows(s):
    """GD and the reference solutions (factorization runs; none for other tasks)."""
    if s.get("min_nuclear_gen_loss") is None and s.get("gd_gen_loss_runs") is None:
        return []
    return [
        ("GD gen loss", f"{fmt(s.get('gd_gen_loss'))}"
                        + (f" (mean of {len(s['gd_gen_loss_runs'])} runs)"
                           if s.get("gd_gen_loss_runs") else " (GD not run)")),
        ("reference gen loss", f"min nuclear norm {fmt(s.get('min_nuclear_gen_loss'))}, "
                               f"min Frobenius norm {fmt(s.get('min_frobenius_gen_loss'))}"),
    ]


def rejection_table(s):
    """The end-of-run table of a rejection run."""
    lo, hi = s["acceptance_ci95"]
    rows = [
        ("acceptance", f"{s['accepted']:,} / {s['draws']:,} = {fmt(s['acceptance_rate'], '.3g')} "
                       f"(95% CI {fmt(lo, '.3g')} .. {fmt(hi, '.3g')})"),
        ("G&C gen loss", f"{fmt(s['gnc_gen_loss_mean'])} ± {fmt(s['gnc_gen_loss_stderr'], '.2g')}"
         if s["accepted"] else f"missing: {s.get('gnc_message') or 'no draw was accepted'}"),
        ("prior gen loss", f"{fmt(s['prior_gen_loss_mean'])} ± "
                           f"{fmt(s['prior_gen_loss_stderr'], '.2g')}"),
        *_gd_rows(s),
        ("non-finite draws", f"{s['nonfinite']:,}"),
        ("throughput", f"{format_count(s.get('samples_per_second') or 0)} samples/s "
                       f"({s.get('seconds') or 0:.1f} s)"),
        ("run directory", s.get("run_dir") or ""),
    ]
    return _table(rows)


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
                        f"{s['ancestors_min']:,} of {s['particles']:,}"),
        ("throughput", f"{format_count(s['draws'])} loss evaluations, "
                       f"{format_count(s['samples_per_second'])}/s ({s['seconds']:.1f} s)"),
        ("run directory", s.get("run_dir") or ""),
    ]
    if s.get("splitting_message"):
        rows.insert(1, ("warning", s["splitting_message"]))
    return _table(rows)


def rethreshold_table(eps, r):
    """One line: G&C at another threshold (a rejection or a splitting run's)."""
    where = f"re-threshold at eps={eps:g} (effective {r['effective_eps']:.4g}, from {r['source']})"
    gen = f"G&C gen loss {fmt(r['gnc_gen_loss_mean'])} ± {fmt(r['gnc_gen_loss_stderr'], '.2g')}"
    if "log10_p" in r:
        return f"{where}: log10 p {_log10_p(r['log10_p'], *r['log10_p_ci95'])}, {gen}"
    return f"{where}: accepted {r['accepted']:,}, {gen}"
