"""Host-side statistics of a G&C run.

Counts are integers, and float sums (gen loss and its square, over all draws, per
train-loss bin, and over accepted draws) are kept exactly (:mod:`gcsampler.exact`)
and rounded once when read. So the totals do not depend on how blocks were
grouped into device calls, devices or processes, nor on the order they were
added in: any batch size, device count or process count gives the same bits, and
nothing is lost to rounding however many draws a run has.
"""

import dataclasses
import math

import numpy as np

from gcsampler import exact, kernel

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


SUM_FIELDS = ("gen_sum", "gen_sumsq", "accepted_gen_sum", "accepted_gen_sumsq", "bin_gen_sum",
              "bin_gen_sumsq")


@dataclasses.dataclass
class Totals:
    """Running totals of a run; bins are indexed as ``searchsorted(edges, t, 'right')``.

    The ``SUM_FIELDS`` are exact sums (:mod:`gcsampler.exact`); :meth:`floats` gives
    their values.
    """

    edges: np.ndarray
    drawn: int = 0
    nonfinite: int = 0
    accepted: int = 0
    gen_sum: np.ndarray = None
    gen_sumsq: np.ndarray = None
    accepted_gen_sum: np.ndarray = None
    accepted_gen_sumsq: np.ndarray = None
    bin_count: np.ndarray = None
    bin_gen_sum: np.ndarray = None
    bin_gen_sumsq: np.ndarray = None
    hist: np.ndarray = None

    def __post_init__(self):
        n_bins = len(self.edges) + 1
        empty = {"bin_count": np.zeros(n_bins, np.int64),
                 "hist": np.zeros(kernel.HIST_BINS * kernel.HIST_BINS, np.int64),
                 "bin_gen_sum": exact.zeros((n_bins,)), "bin_gen_sumsq": exact.zeros((n_bins,))}
        for name in SUM_FIELDS + ("bin_count", "hist"):
            if getattr(self, name) is None:
                setattr(self, name, empty[name] if name in empty else exact.zeros())

    def floats(self):
        """The float64 values of the sums, by field name (floats; arrays for the bins)."""
        return {name: exact.value(getattr(self, name)) for name in SUM_FIELDS}


def totals_arrays(totals):
    """``totals`` as a dict of NumPy arrays (exact; for npz files and messages)."""
    return {name: np.asarray(value) for name, value in vars(totals).items()}


def totals_from_arrays(arrays):
    """The :class:`Totals` of :func:`totals_arrays`' output (a dict or an npz file).

    Raises KeyError for a missing field.
    """
    def python(array):  # counts as Python ints, exactly
        return array.item() if array.ndim == 0 else array

    return Totals(**{field.name: python(np.asarray(arrays[field.name]))
                     for field in dataclasses.fields(Totals)})


def add_counts(totals, drawn, nonfinite, bin_count, hist):
    """Add integer counts of some steps."""
    totals.drawn += int(np.sum(drawn, dtype=np.int64))
    totals.nonfinite += int(np.sum(nonfinite, dtype=np.int64))
    totals.bin_count += np.sum(np.asarray(bin_count, np.int64).reshape(-1, totals.bin_count.size), 0)
    totals.hist += np.sum(np.asarray(hist, np.int64).reshape(-1, totals.hist.size), 0)


def add_block_sums(totals, gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq):
    """Add per-block float sums (of any blocks, in any order)."""
    n_bins = totals.bin_count.size
    totals.gen_sum = exact.add(totals.gen_sum, np.ravel(gen_sum))
    totals.gen_sumsq = exact.add(totals.gen_sumsq, np.ravel(gen_sumsq))
    totals.bin_gen_sum = exact.add(totals.bin_gen_sum, np.reshape(bin_gen_sum, (-1, n_bins)))
    totals.bin_gen_sumsq = exact.add(totals.bin_gen_sumsq, np.reshape(bin_gen_sumsq, (-1, n_bins)))


def add_accepted(totals, gen):
    """Add accepted rows' gen losses (float32; their squares are exact in float64)."""
    gen = np.asarray(gen, np.float64)
    totals.accepted += gen.size
    totals.accepted_gen_sum = exact.add(totals.accepted_gen_sum, gen)
    totals.accepted_gen_sumsq = exact.add(totals.accepted_gen_sumsq, gen**2)


def combine(parts):
    """The totals of disjoint sets of draws together (e.g. of several processes)."""
    parts = list(parts)
    edges = parts[0].edges
    if any(not np.array_equal(p.edges, edges) for p in parts):
        raise ValueError("totals with different train-loss bin edges (another eps) cannot be "
                         "combined")
    combined = {name: exact.combine(*(getattr(p, name) for p in parts)) for name in SUM_FIELDS}
    for name in ("drawn", "nonfinite", "accepted", "bin_count", "hist"):
        combined[name] = sum(getattr(p, name) for p in parts)
    return Totals(edges=edges, **combined)


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
    sums = totals.floats()
    gnc = moments(totals.accepted, sums["accepted_gen_sum"], sums["accepted_gen_sumsq"])
    finite = totals.drawn - totals.nonfinite
    prior = moments(finite, sums["gen_sum"], sums["gen_sumsq"])
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
