"""Host-side statistics of a threshold task: what a run keeps of all its draws.

Counts are integers, and float sums (gen loss and its square, over all draws, per
train-loss bin, and over accepted draws) are kept exactly (:mod:`gcsampler.core.exact`)
and rounded once when read. So the totals do not depend on how blocks were
grouped into device calls, devices or processes, nor on the order they were
added in: any batch size, device count or process count gives the same bits, and
nothing is lost to rounding however many draws a run has. The kernel adds its
per-block float sums exactly on the device (:mod:`gcsampler.core.exact_device`), so
a call's sums reach the host as a few small integer arrays (:func:`add_digit_sums`).
"""

import dataclasses
import math

import numpy as np

from gcsampler.core import exact, exact_device
from gcsampler.core.intervals import moments, wilson_interval
from gcsampler.threshold import kernel

BINS_PER_DECADE = 5
BIN_LOG10_RANGE = (-7, 3)
NO_ACCEPTED_MESSAGE = ("no draw was accepted: the G&C gen loss is undefined; "
                       "draw more samples (--samples) or raise the threshold (--eps)")


def float32_threshold(eps):
    """The float32 ``c`` with ``t < c`` exactly when ``t < eps``, for every float32 ``t``.

    That is ``eps`` rounded up to float32: rounding to nearest could round down
    and reject a loss equal to the rounded value although it is below ``eps``.
    Losses are float32, so this is the one rule by which every method (rejection,
    splitting, re-thresholding) decides "strictly below eps". An ``eps`` beyond the
    largest float32 gives inf: every finite loss is below it.
    """
    with np.errstate(over="ignore"):
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

    The ``SUM_FIELDS`` are exact sums (:mod:`gcsampler.core.exact`); :meth:`floats`
    gives their values. Every accepted draw is a stored row (``rows``).
    """

    FIXED = {"edges": "another eps (its train-loss bin edges differ)"}
    EXACT = SUM_FIELDS

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

    @property
    def rows(self):
        return self.accepted

    def floats(self):
        """The float64 values of the sums, by field name (floats; arrays for the bins)."""
        return {name: exact.value(getattr(self, name)) for name in SUM_FIELDS}


def add_counts(totals, drawn, nonfinite, bin_count, hist):
    """Add integer counts of some steps."""
    totals.drawn += int(np.sum(drawn, dtype=np.int64))
    totals.nonfinite += int(np.sum(nonfinite, dtype=np.int64))
    totals.bin_count += np.sum(np.asarray(bin_count, np.int64).reshape(-1, totals.bin_count.size),
                               0)
    totals.hist += np.sum(np.asarray(hist, np.int64).reshape(-1, totals.hist.size), 0)


def add_block_sums(totals, gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq):
    """Add per-block float sums (of any blocks, in any order): the totals the kernel's
    device digit sums (:func:`add_digit_sums`) must reproduce to the bit, so the tests and
    ``benchmarks/host_per_call.py`` use it as their reference."""
    n_bins = totals.bin_count.size
    totals.gen_sum = exact.add(totals.gen_sum, np.ravel(gen_sum))
    totals.gen_sumsq = exact.add(totals.gen_sumsq, np.ravel(gen_sumsq))
    totals.bin_gen_sum = exact.add(totals.bin_gen_sum, np.reshape(bin_gen_sum, (-1, n_bins)))
    totals.bin_gen_sumsq = exact.add(totals.bin_gen_sumsq, np.reshape(bin_gen_sumsq, (-1, n_bins)))


def add_digit_sums(totals, gen_sum, gen_sumsq, bin_gen_sum, bin_gen_sumsq):
    """Add the kernel's exact digit sums (:mod:`gcsampler.core.exact_device`) of any
    steps and devices (leading axes): the same totals, to the bit, as
    :func:`add_block_sums` of the per-block float sums they were made of.

    Digits are summed in int64, then all the sums are converted and carried at once:
    a few small integer arrays a call, whatever its number of blocks."""
    n_bins, size = totals.bin_count.size, exact_device.SIZE
    digits = np.concatenate([
        np.sum(np.reshape(gen_sum, (-1, 1, size)), axis=0, dtype=np.int64),
        np.sum(np.reshape(gen_sumsq, (-1, 1, size)), axis=0, dtype=np.int64),
        np.sum(np.reshape(bin_gen_sum, (-1, n_bins, size)), axis=0, dtype=np.int64),
        np.sum(np.reshape(bin_gen_sumsq, (-1, n_bins, size)), axis=0, dtype=np.int64)])
    current = np.concatenate([totals.gen_sum[None], totals.gen_sumsq[None], totals.bin_gen_sum,
                              totals.bin_gen_sumsq])
    added = exact.carry(current + exact_device.to_exact(digits))
    totals.gen_sum, totals.gen_sumsq = added[0], added[1]
    totals.bin_gen_sum, totals.bin_gen_sumsq = added[2:2 + n_bins], added[2 + n_bins:]


def add_accepted(totals, gen):
    """Add accepted rows' gen losses (float32; their squares are exact in float64)."""
    gen = np.asarray(gen, np.float64)
    totals.accepted += gen.size
    totals.accepted_gen_sum = exact.add(totals.accepted_gen_sum, gen)
    totals.accepted_gen_sumsq = exact.add(totals.accepted_gen_sumsq, gen**2)


def summarize(totals, seconds=None):
    """The G&C fields of a run's summary (:mod:`gcsampler.runs.summary` names them; NaN
    marks undefined values)."""
    sums = totals.floats()
    gnc = moments(totals.accepted, sums["accepted_gen_sum"], sums["accepted_gen_sumsq"])
    finite = totals.drawn - totals.nonfinite
    prior = moments(finite, sums["gen_sum"], sums["gen_sumsq"])
    summary = {
        "draws": totals.drawn,
        "accepted": totals.accepted,
        "nonfinite": totals.nonfinite,
        **acceptance(totals.accepted, totals.drawn),
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


def acceptance(accepted, drawn):
    """The estimate of p = P(train loss < eps) from ``accepted`` of ``drawn`` draws: the
    rate with its Wilson 95% interval, and both as log10 (NaN where undefined)."""
    rate = accepted / drawn if drawn else math.nan
    interval = wilson_interval(accepted, drawn)
    return {"acceptance_rate": rate, "acceptance_ci95": list(interval), "log10_p": _log10(rate),
            "log10_p_ci95": [_log10(bound) for bound in interval]}


def _log10(p):
    """log10 of a probability; NaN where undefined (0 or NaN)."""
    return math.log10(p) if p > 0 else math.nan


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


def rethreshold_rows(train_loss, gen_loss, eps):
    """G&C statistics at ``eps`` at or below a run's own, exactly, from its accepted rows."""
    below = np.asarray(train_loss) < float32_threshold(eps)
    gen = np.asarray(gen_loss)[below].astype(np.float64)
    mean, std, stderr = moments(gen.size, float(np.sum(gen)), float(np.sum(gen**2)))
    return {"effective_eps": eps, "accepted": int(gen.size), "gnc_gen_loss_mean": mean,
            "gnc_gen_loss_std": std, "gnc_gen_loss_stderr": stderr}


def statistics_arrays(totals):
    """What a run keeps of all its draws (``statistics.npz``): the train-loss bins with
    their gen-loss sums, and the 2-D histogram of (log10 train, log10 gen)."""
    lo, hi = kernel.HIST_LOG10_RANGE
    sums = totals.floats()
    return {
        "train_loss_edges": totals.edges,
        "bin_count": totals.bin_count,
        "bin_gen_sum": sums["bin_gen_sum"],
        "bin_gen_sumsq": sums["bin_gen_sumsq"],
        "hist_log10_train_gen": totals.hist.reshape(kernel.HIST_BINS, kernel.HIST_BINS),
        "hist_log10_edges": np.linspace(lo, hi, kernel.HIST_BINS + 1),
    }
