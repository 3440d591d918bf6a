"""Host-side statistics of a G&C run, accumulated in float64.

Float sums are added one block at a time in global block order (a sequential
cumulative sum), so the totals do not depend on how blocks were grouped into
device calls: any batch size or device count gives the same bits.
"""

import dataclasses
import math

import numpy as np

from gcsampler import kernel

BINS_PER_DECADE = 5
BIN_LOG10_RANGE = (-7, 3)
Z95 = 1.959963984540054
NO_ACCEPTED_MESSAGE = ("no draw was accepted: the G&C gen loss is undefined; "
                       "draw more samples (--samples) or raise the threshold (--eps)")


def float32_threshold(eps):
    """The float32 ``c`` with ``t < c`` exactly when ``t < eps``, for every float32 ``t``.

    That is ``eps`` rounded up to float32: rounding to nearest could round down
    and reject a loss equal to the rounded value although it is below ``eps``.
    """
    c = np.float32(eps)
    return np.nextafter(c, np.float32(np.inf)) if float(c) < eps else c


def train_loss_edges(eps):
    """Train-loss bin edges: a log grid plus the threshold of ``eps``, sorted (float32).

    Including the threshold makes the bins below it hold exactly the accepted
    draws. The count of edges does not depend on ``eps``, so a new eps does not
    recompile.
    """
    lo, hi = BIN_LOG10_RANGE
    grid = 10.0 ** (np.arange(lo * BINS_PER_DECADE, hi * BINS_PER_DECADE + 1) / BINS_PER_DECADE)
    return np.sort(np.append(grid.astype(np.float32), float32_threshold(eps)))


@dataclasses.dataclass
class Totals:
    """Running totals of a run; bins are indexed as ``searchsorted(edges, t, 'right')``."""

    edges: np.ndarray
    drawn: int = 0
    nonfinite: int = 0
    accepted: int = 0
    gen_sum: float = 0.0
    gen_sumsq: float = 0.0
    accepted_gen_sum: float = 0.0
    accepted_gen_sumsq: float = 0.0
    bin_count: np.ndarray = None
    bin_gen_sum: np.ndarray = None
    bin_gen_sumsq: np.ndarray = None
    hist: np.ndarray = None

    def __post_init__(self):
        n_bins = len(self.edges) + 1
        for name, dtype, shape in (("bin_count", np.int64, n_bins), ("bin_gen_sum", np.float64, n_bins),
                                   ("bin_gen_sumsq", np.float64, n_bins),
                                   ("hist", np.int64, kernel.HIST_BINS * kernel.HIST_BINS)):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(shape, dtype))


def sequential_sum(start, values):
    """``start`` plus ``values`` added one at a time along axis 0, in float64."""
    values = np.asarray(values, np.float64)
    if values.shape[0] == 0:
        return start
    return np.cumsum(np.concatenate([np.asarray(start, np.float64)[None], values]), axis=0)[-1]


def add_counts(totals, drawn, nonfinite, bin_count, hist):
    """Add integer counts of some steps (any order)."""
    totals.drawn += int(np.sum(drawn, dtype=np.int64))
    totals.nonfinite += int(np.sum(nonfinite, dtype=np.int64))
    totals.bin_count += np.sum(np.asarray(bin_count, np.int64).reshape(-1, totals.bin_count.size), 0)
    totals.hist += np.sum(np.asarray(hist, np.int64).reshape(-1, totals.hist.size), 0)


def add_block_sums(totals, gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq):
    """Add per-block float sums, given in global block order."""
    n_bins = totals.bin_gen_sum.size
    totals.gen_sum = float(sequential_sum(totals.gen_sum, np.ravel(gen_sum)))
    totals.gen_sumsq = float(sequential_sum(totals.gen_sumsq, np.ravel(gen_sumsq)))
    totals.bin_gen_sum = sequential_sum(totals.bin_gen_sum, np.reshape(bin_gen_sum, (-1, n_bins)))
    totals.bin_gen_sumsq = sequential_sum(totals.bin_gen_sumsq, np.reshape(bin_gen_sumsq, (-1, n_bins)))


def add_accepted(totals, gen):
    """Add accepted rows' gen losses, given in global index order."""
    gen = np.asarray(gen, np.float64)
    totals.accepted += gen.size
    totals.accepted_gen_sum = float(sequential_sum(totals.accepted_gen_sum, gen))
    totals.accepted_gen_sumsq = float(sequential_sum(totals.accepted_gen_sumsq, gen**2))


def wilson_interval(successes, trials, z=Z95):
    """Wilson score interval for a binomial proportion (good at 0 successes too)."""
    if trials == 0:
        return (math.nan, math.nan)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def moments(count, total, total_sq):
    """Mean, sample standard deviation and standard error; NaN where undefined."""
    if count == 0:
        return math.nan, math.nan, math.nan
    mean = total / count
    if count == 1:
        return mean, math.nan, math.nan
    var = max(0.0, (total_sq - total * mean) / (count - 1))
    return mean, math.sqrt(var), math.sqrt(var / count)


def summarize(totals, seconds=None):
    """The summary of a run as a flat dict (JSON-ready; NaN marks undefined values)."""
    gnc = moments(totals.accepted, totals.accepted_gen_sum, totals.accepted_gen_sumsq)
    finite = totals.drawn - totals.nonfinite
    prior = moments(finite, totals.gen_sum, totals.gen_sumsq)
    summary = {
        "draws": totals.drawn,
        "accepted": totals.accepted,
        "nonfinite": totals.nonfinite,
        "acceptance_rate": totals.accepted / totals.drawn if totals.drawn else math.nan,
        "acceptance_ci95": list(wilson_interval(totals.accepted, totals.drawn)),
        "gnc_gen_loss_mean": gnc[0],
        "gnc_gen_loss_std": gnc[1],
        "gnc_gen_loss_stderr": gnc[2],
        "prior_gen_loss_mean": prior[0],
        "prior_gen_loss_std": prior[1],
        "prior_gen_loss_stderr": prior[2],
    }
    if totals.accepted == 0:
        summary["gnc_message"] = NO_ACCEPTED_MESSAGE
    if seconds is not None:
        summary["seconds"] = seconds
        summary["samples_per_second"] = totals.drawn / seconds if seconds > 0 else math.nan
    return summary


def rethreshold(edges, bin_count, bin_gen_sum, bin_gen_sumsq, eps):
    """G&C statistics at another threshold, from the train-loss bins of all draws.

    Bins are exact only at their edges, so the result is for the largest edge at
    or below ``eps`` (returned as ``effective_eps``); ``None`` if no edge is.
    """
    edges = np.asarray(edges, np.float32)
    below = np.nonzero(edges <= float32_threshold(eps))[0]
    if below.size == 0:
        return None
    last = below[-1]
    count = int(np.sum(bin_count[: last + 1]))
    mean, std, stderr = moments(count, float(np.sum(bin_gen_sum[: last + 1])),
                                float(np.sum(bin_gen_sumsq[: last + 1])))
    return {"effective_eps": float(edges[last]), "accepted": count, "gnc_gen_loss_mean": mean,
            "gnc_gen_loss_std": std, "gnc_gen_loss_stderr": stderr}
