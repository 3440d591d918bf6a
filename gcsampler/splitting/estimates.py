"""What a splitting run estimates: log p with confidence intervals, the G&C gen loss at
eps, and both along the whole curve of thresholds, from :class:`SplittingResult`s.

A result's ``log_p`` is a natural log; the summary and the curve give log10 p
(``log10_p``, the base in the name, as every file of a run directory does).

Replicates are independent, so their spread gives an honest confidence interval
(mean of the R log p estimates plus or minus the t quantile times their standard
error). Beside it stands the formula: a level that keeps a fraction q of N
particles adds (1 - q) / (q N) to the variance of log p (binomial, as if the
particles were independent draws of the level's law; Cerou & Guyader 2007 give
this as the variance of ideal splitting). A spread above 1.5 times the formula's
says the moves did not decorrelate the particles enough (more moves per level, a
higher ``moves``, or more particles), and the summary says so. Particles within
a replicate are correlated, so gen-loss uncertainties also come from the spread
of the replicates' means.
"""

import math

import numpy as np

from gcsampler.core.intervals import t_interval
from gcsampler.threshold.statistics import float32_threshold

SPREAD_FLAG = 1.5
LN10 = math.log(10)


def formula_variance(result):
    """(R,) each replicate's variance of log p by the formula: sum over its levels of
    (1 - q) / (q N), q the fraction kept."""
    levels, n = result.levels, result.particles
    kept = (n - levels.killed) / n
    terms = np.where(levels.active & (kept > 0), (1 - kept) / np.maximum(kept, 1e-300) / n, 0.0)
    return np.sum(terms, axis=0)


def summarize_splitting(result):
    """The summary fields of a splitting run (a dict of :mod:`gcsampler.runs.summary`
    names; undefined values are NaN)."""
    log_p = result.log_p
    mean, se, lo, hi = t_interval(log_p)
    variance = formula_variance(result)
    formula_sd = float(math.sqrt(np.mean(variance))) if variance.size else math.nan
    spread = float(np.std(log_p[np.isfinite(log_p)], ddof=1)) if np.sum(np.isfinite(log_p)) > 1 \
        else math.nan
    ratio = spread / formula_sd if formula_sd > 0 else math.nan
    gen_means = [float(np.mean(result.final_gen[r][result.accepted[r]]))
                 if result.accepted[r].any() else math.nan for r in range(result.replicates)]
    gen_mean, gen_se, _, _ = t_interval(gen_means)
    levels = result.levels
    active = levels.active & ~levels.final
    moves = levels.moves[active]
    correlations = levels.correlation[active & ~np.isnan(levels.correlation)]
    proposals = np.sum(levels.proposals[active], dtype=np.int64)
    evaluations_per_second = result.evaluations / result.seconds if result.seconds else 0.0
    summary = {
        "method": "splitting",
        "eps": result.eps,
        "draws": result.evaluations,
        "accepted": int(np.sum(result.accepted)),
        "nonfinite": int(np.sum(levels.nonfinite, dtype=np.int64)),
        "acceptance_rate": math.exp(mean),
        "acceptance_ci95": [math.exp(lo), math.exp(hi)],
        "log10_p": mean / LN10,
        "log10_p_ci95": [lo / LN10, hi / LN10],
        "log10_p_stderr": se / LN10,
        "log10_p_formula_stderr": formula_sd / math.sqrt(result.replicates) / LN10,
        "log10_p_replicates": (log_p / LN10).tolist(),
        "spread_ratio": ratio,
        "spread_flag": bool(ratio > SPREAD_FLAG),
        "accepted_per_replicate": np.sum(result.accepted, axis=1).tolist(),
        "gnc_gen_loss_mean": gen_mean,
        "gnc_gen_loss_stderr": gen_se,
        "gnc_gen_loss_replicates": gen_means,
        "prior_gen_loss_mean": _prior_gen(result),
        "sampler_used": f"splitting/{result.latent}",
        "particles": result.particles,
        "replicates": result.replicates,
        "levels": int(np.max(np.sum(levels.active, axis=0))),
        "moves_per_level_mean": float(np.mean(moves)) if moves.size else 0.0,
        "moves_per_level_max": int(np.max(moves)) if moves.size else 0,
        "proposals_per_move": float(proposals / max(np.sum(moves) * result.particles, 1)),
        "proposals_per_move_max": int(np.max(levels.proposals_max[active])) if moves.size else 0,
        "capped_moves": int(np.sum(levels.capped[active], dtype=np.int64)),
        "final_correlation_max": float(np.max(correlations)) if correlations.size else math.nan,
        "ancestors_min": int(np.min(levels.ancestors[levels.active & levels.final]))
        if np.any(levels.active & levels.final) else 0,
        "seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "samples_per_second": evaluations_per_second,
        "latent": result.latent,
        "move": result.move,
        "fiber_moves": list(result.fibers),
        "rotation_moves": len(result.rotations),
        "converged": result.converged,
    }
    # a replicate whose prior draws all have a non-finite loss dies out at its first level
    summary["splitting_message"] = message(
        summary, int(np.sum(levels.nonfinite[0] == result.particles)))
    return summary


def _prior_gen(result):
    """Mean gen loss of the first population, draws of the prior itself: those below the
    grid's top threshold (1e3), which is every draw of a problem with labels of order one."""
    first = result.levels
    count = first.grid_count[0][:, -1]
    total = first.grid_gen_sum[0][:, -1]
    return float(np.sum(total) / np.sum(count)) if np.sum(count) else math.nan


def message(summary, all_nonfinite):
    """A warning for the summary, or '' when nothing looks wrong; ``all_nonfinite``
    replicates had a non-finite loss at every prior draw."""
    notes = []
    if not summary["converged"]:
        notes.append("some replicates did not reach eps within the level cap")
    if all_nonfinite:
        notes.append(f"every loss is NaN or inf in {all_nonfinite} of {summary['replicates']} "
                     f"replicates (the problem's or the prior's scale overflows float32: "
                     f"lower --gt_norm or the prior's scale)")
    died = sum(v == -math.inf for v in summary["log10_p_replicates"])
    if died > all_nonfinite:
        notes.append("a replicate died out (all particles tied at a level)")
    if summary["spread_flag"]:
        notes.append(f"the replicates' spread of log p is {summary['spread_ratio']:.2f}x the "
                     f"formula's: moves may not decorrelate the particles (raise --moves or "
                     f"--particles)")
    if summary["accepted"] == 0:
        notes.append("no particle is below eps")
    return "; ".join(notes)


def splitting_curve(result):
    """log10 p and the G&C gen loss at every grid threshold from the prior down to eps.

    A population at level l (the prior restricted to {L < l}, with estimate p(l))
    gives, for a threshold e below l, p(e) = p(l) * (its fraction below e) and the
    mean gen loss of its particles below e; each threshold takes the last
    population whose level is at or above it (its fraction is then at least about
    the survival fraction). Returns a dict of arrays over the thresholds (``eps``,
    ``log10_p`` with ``log10_p_lo``/``_hi`` (95% t interval over replicates),
    ``gen_loss`` with ``gen_loss_stderr``, ``replicates`` defined there).
    """
    levels, n = result.levels, result.particles
    edges = result.edges[result.edges >= float32_threshold(result.eps)]
    columns = np.searchsorted(result.edges, edges)
    rows = {name: [] for name in ("eps", "log10_p", "log10_p_lo", "log10_p_hi", "gen_loss",
                                  "gen_loss_stderr", "replicates")}
    for edge, column in zip(edges, columns):
        log_p, gen = [], []
        for r in range(result.replicates):
            use = np.flatnonzero(levels.active[:, r] & (levels.support_level[:, r] >= edge))
            if use.size == 0:
                continue
            j = use[-1]
            count = levels.grid_count[j, r, column]
            log_p.append(levels.support_log_p[j, r] + math.log(count / n) if count else -math.inf)
            gen.append(levels.grid_gen_sum[j, r, column] / count if count else math.nan)
        mean, _, lo, hi = t_interval(log_p)
        gen_mean, gen_se, _, _ = t_interval(gen)
        for name, value in (("eps", float(edge)), ("log10_p", mean / LN10),
                            ("log10_p_lo", lo / LN10), ("log10_p_hi", hi / LN10),
                            ("gen_loss", gen_mean), ("gen_loss_stderr", gen_se),
                            ("replicates", len(log_p))):
            rows[name].append(value)
    return {name: np.asarray(values) for name, values in rows.items()}
