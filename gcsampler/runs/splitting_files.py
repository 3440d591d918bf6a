"""The files of a splitting run directory: rows, levels, the curve, process parts,
checkpoints.

    accepted/         the final particles below eps, the G&C sample: index (replicate *
                      particles + slot), replicate, train_loss, gen_loss, matrix
    levels.npz        every level of every replicate (the LevelInfo fields, levels x R;
                      ``log_p``, ``support_log_p`` natural logs) and the per-level counts
                      on the threshold grid; rows after a replicate finished are blank
                      (NaN or 0)
    curve.csv         log10 p (with its 95% interval) and the G&C gen loss at every grid
                      threshold from the prior down to eps
    checkpoint.npz    where an unfinished run continues: every replicate's particles
                      after its last level, the levels so far (removed once the run's
                      results are written)
    process-<k>/replicates.npz   (several processes) process k's replicates' results
"""

import csv
import io
import math
import pathlib

import numpy as np

from gcsampler.core.intervals import t_interval
from gcsampler.runs import accepted, accepted_metadata, checkpoint, files
from gcsampler.splitting.base import LevelInfo, State
from gcsampler.splitting.results import Snapshot, SplittingResult
from gcsampler.threshold.statistics import float32_threshold

CURVE_FILE = "curve.csv"
LEVELS_FILE = "levels.npz"
PART_FILE = "replicates.npz"
CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_FORMAT = "gcsampler-splitting-checkpoint-2"
LN10 = math.log(10)


def accepted_layout(n_rows, n_cols):
    """The accepted arrays of a splitting run: a factorization run's plus the replicate."""
    return {"index": ("<u8", ()), "replicate": ("<u4", ()), "train_loss": ("<f4", ()),
            "gen_loss": ("<f4", ()), "matrix": ("<f4", (n_rows, n_cols))}


def write_rows(result, run_dir, cfg, processes):
    """The accepted rows of a SplittingResult (its final particles below eps), in the
    ``accepted/`` group of ``run_dir`` (a process's part), described by the run's ``cfg``
    and its number of ``processes``."""
    attrs = {"method": cfg.method, "task": "factorization", "eps": result.eps,
             "seed": cfg.seed, "sampler": f"splitting/{result.latent}", "move": result.move,
             "particles": result.particles, "replicates": cfg.replicates,
             "processes": processes}
    with accepted.AcceptedWriter(run_dir, accepted_layout(cfg.rows, cfg.cols), attrs=attrs,
                                 meanings=accepted_metadata.SPLITTING_MEANINGS) as writer:
        for r in range(result.replicates):
            replicate = result.first_replicate + r
            slots = np.flatnonzero(result.accepted[r])
            writer.append(np.uint64(replicate * result.particles) + slots.astype(np.uint64),
                          np.full(slots.size, replicate, np.uint32), result.final_train[r][slots],
                          result.final_gen[r][slots], result.final_matrix[r][slots])


def save_levels(run_dir, result):
    """``levels.npz``: every level of every replicate, and the grid's thresholds."""
    levels = result.levels._asdict()
    files.save_arrays(pathlib.Path(run_dir) / LEVELS_FILE, edges=result.edges,
                      **{name: np.asarray(value) for name, value in levels.items()})


def save_part(result, part):
    """A process's SplittingResult, but its matrices (its accepted rows hold those), in
    its part of the run directory, for process 0 to combine."""
    fields = result._asdict()
    levels = fields.pop("levels")
    fields.pop("final_matrix")
    files.save_arrays(pathlib.Path(part) / PART_FILE,
                      **{f"levels_{name}": value for name, value in levels._asdict().items()},
                      **{name: np.asarray(value) for name, value in fields.items()})


def load_part(part):
    """The SplittingResult :func:`save_part` saved (``final_matrix`` None)."""
    path = pathlib.Path(part) / PART_FILE
    arrays = files.load_arrays(path)
    scalars = {"eps": float, "particles": int, "replicates": int, "evaluations": int,
               "seconds": float, "latent": str, "move": str, "converged": bool,
               "first_replicate": int}
    try:
        levels = LevelInfo(*(arrays[f"levels_{name}"] for name in LevelInfo._fields))
        return SplittingResult(
            levels=levels, final_matrix=None, fibers=tuple(str(f) for f in arrays["fibers"]),
            rotations=tuple(str(f) for f in arrays.get("rotations", ())),
            compile_seconds=float(arrays.get("compile_seconds", 0.0)),
            **{name: arrays[name] for name in ("log_p", "final_train", "final_gen", "accepted",
                                               "edges")},
            **{name: kind(arrays[name]) for name, kind in scalars.items()})
    except KeyError as missing:
        raise files.RunDirError(f"{path} is damaged (no {missing.args[0]})") from None


def save_checkpoint(part, snapshot, state):
    """``checkpoint.npz`` of a splitting run after ``snapshot.level`` levels, with the
    particles ``state`` (host arrays)."""
    levels = LevelInfo(*(np.stack(field) for field in zip(*snapshot.levels)))
    files.save_arrays(pathlib.Path(part) / CHECKPOINT_FILE, format=np.asarray(CHECKPOINT_FORMAT),
                      level=np.int64(snapshot.level), evaluations=np.int64(snapshot.evaluations),
                      seconds=np.float64(snapshot.seconds),
                      **{f"state_{name}": np.asarray(v) for name, v in state._asdict().items()},
                      **{f"levels_{name}": v for name, v in levels._asdict().items()})


def load_checkpoint(part):
    """The :class:`~gcsampler.splitting.results.Snapshot` of ``part``'s checkpoint (None:
    none yet); RunDirError if it is damaged."""
    def parse(arrays):
        level = int(arrays["level"])
        stacked = [arrays[f"levels_{name}"] for name in LevelInfo._fields]
        levels = tuple(LevelInfo(*(field[i] for field in stacked)) for i in range(level))
        state = State(*(arrays[f"state_{name}"] for name in State._fields))
        return Snapshot(level, state, levels, int(arrays["evaluations"]),
                        float(arrays["seconds"]))

    return checkpoint.read(pathlib.Path(part) / CHECKPOINT_FILE, CHECKPOINT_FORMAT, parse,
                           "run the splitting again")


def write_curve(run_dir, curve):
    """``curve.csv``: one row per threshold, largest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(curve)
    writer.writerow(names)
    for row in zip(*(curve[name][::-1] for name in names)):
        writer.writerow([f"{v:.9g}" if isinstance(v, (float, np.floating)) else v for v in row])
    files.write_text(pathlib.Path(run_dir) / CURVE_FILE, buffer.getvalue())


def read_curve(run_dir):
    """``curve.csv`` of a splitting run as a dict of float arrays."""
    path = pathlib.Path(run_dir) / CURVE_FILE
    if not path.is_file():
        raise files.RunDirError(f"{run_dir} has no {CURVE_FILE} (not a finished splitting run)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    try:
        return {name: np.asarray([float(row[i]) for row in rows[1:]])
                for i, name in enumerate(rows[0])}
    except (ValueError, IndexError):
        raise files.RunDirError(f"{path} is damaged") from None


def rethreshold(run_dir, summary, processes, eps):
    """log10 p and the G&C gen loss of a finished splitting run at another threshold.

    Below the run's eps, its accepted particles (the prior restricted to {L < run eps})
    give it exactly: p(E) = p(run eps) times each replicate's fraction of its accepted
    particles below E. Above, ``curve.csv`` does, at its largest threshold at or below E.
    """
    threshold = float32_threshold(eps)
    if eps <= summary["eps"]:
        rows = accepted.read_accepted(run_dir, processes,
                                      fields=("replicate", "train_loss", "gen_loss"))
        log10_p, gen = [], []
        for r, log10_p_r in enumerate(summary["log10_p_replicates"]):
            mine = rows["replicate"] == r
            below = mine & (rows["train_loss"] < threshold)
            count = int(np.sum(below))
            if log10_p_r is None:  # NaN in the summary: the replicate did not finish
                log10_p.append(math.nan)
            else:
                log10_p.append(log10_p_r + math.log10(count / np.sum(mine)) if count
                               else -math.inf)
            gen.append(float(np.mean(rows["gen_loss"][below])) if count else math.nan)
        mean, _, lo, hi = t_interval(log10_p)
        gen_mean, gen_se, _, _ = t_interval(gen)
        return {"effective_eps": eps, "log10_p": mean, "log10_p_ci95": [lo, hi],
                "gnc_gen_loss_mean": gen_mean, "gnc_gen_loss_stderr": gen_se,
                "source": "final particles"}
    curve = read_curve(run_dir)
    at = np.flatnonzero(curve["eps"].astype(np.float32) <= threshold)
    i = at[np.argmax(curve["eps"][at])]
    return {"effective_eps": float(curve["eps"][i]), "log10_p": float(curve["log10_p"][i]),
            "log10_p_ci95": [float(curve["log10_p_lo"][i]), float(curve["log10_p_hi"][i])],
            "gnc_gen_loss_mean": float(curve["gen_loss"][i]),
            "gnc_gen_loss_stderr": float(curve["gen_loss_stderr"][i]), "source": "curve.csv"}
