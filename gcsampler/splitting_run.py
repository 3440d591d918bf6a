"""A splitting run on disk (``gcsampler run --method splitting``): the same run directory
as a rejection run, with the log-volume estimate in the summary.

Files written here (``gcsampler.runner`` adds GD and the reference solutions)::

    config.json    every setting (``method: splitting``), versions, backend
    summary.json   log p with its 95% interval and the formula's standard error, the
                   G&C gen loss at eps, diagnostics (gcsampler.estimates.summarize)
    accepted/      the final particles below eps, the G&C sample: index (replicate *
                   particles + slot), replicate, train_loss, gen_loss, matrix
    levels.npz     every level of every replicate: level, log_p, killed, moves,
                   acceptance, proposals, correlation, ancestors, gen_mean (levels x R)
                   and the per-level counts on the threshold grid; rows after a
                   replicate finished are blank (NaN or 0)
    curve.csv      log p (with its interval) and the G&C gen loss at every grid
                   threshold from the prior down to eps

A run made by P processes (``--num_processes``) keeps accepted rows in
``process-<k>/accepted/`` instead, beside ``process-<k>/replicates.npz``, the results of
process k's replicates that process 0 combined into the files above.

Splitting runs take seconds to minutes and are not checkpointed: a stopped one is
started again.
"""

import csv
import dataclasses
import io
import math
import pathlib

import numpy as np

from gcsampler import __version__, distributed, estimates, splitting, store

CURVE_FILE = "curve.csv"
LEVELS_FILE = "levels.npz"
PART_FILE = "replicates.npz"


def accepted_layout(n_rows, n_cols):
    """The accepted arrays of a splitting run: a factorization run's plus the replicate."""
    layout = store.accepted_layout(n_rows, n_cols)
    return {"index": layout.pop("index"), "replicate": ("<u4", ()), **layout}


def replicate_share(replicates, team):
    """The replicates process ``team.process`` runs: a contiguous range, the ranges of
    consecutive processes consecutive, their sizes differing by at most one."""
    if replicates < team.processes:
        raise ValueError(f"--replicates must be at least --num_processes "
                         f"({team.processes}): every process runs whole replicates, got "
                         f"{replicates}")
    size, extra = divmod(replicates, team.processes)
    start = team.process * size + min(team.process, extra)
    return range(start, start + size + (team.process < extra))


def run(cfg, run_dir, on_level=None, stream=None):
    """Splitting of ``cfg`` into a new ``run_dir``; returns the summary dict (written to
    ``summary.json``, with ``run_dir``).

    In a multi-process run (:mod:`gcsampler.distributed`) each process runs its
    :func:`replicate_share` on its own devices, with no exchange between levels, and
    writes its accepted rows and its replicates' results to its part of the run
    directory; process 0 then combines them (:func:`gcsampler.splitting.combine`).
    """
    cfg.validate()
    run_dir, team = pathlib.Path(run_dir), distributed.team()
    share = replicate_share(cfg.replicates, team)
    part = store.part_dir(run_dir, team.process, team.processes)

    def create():
        if team.leader:
            store.write_json(store.create_run_dir(run_dir) / "config.json",
                             config_record(cfg, team.processes))

    distributed.together(team, create)
    with distributed.together(team, lambda: store.claim_part(run_dir, team.process,
                                                             team.processes)):
        if stream is not None:
            stream.write(f"gcsampler: splitting with {cfg.replicates} x {cfg.particles:,} "
                         f"particles down to eps {cfg.eps:g} ({cfg.move} moves, "
                         f"{cfg.moves} per level){_share_text(share, team)}; run directory "
                         f"{run_dir}\n")
        result = splitting.splitting(
            cfg.problem(), cfg.model(), cfg.prior_dist(), eps=cfg.eps, particles=cfg.particles,
            replicates=len(share), first_replicate=share.start, seed=cfg.seed, move=cfg.move,
            moves=cfg.move_count, devices=cfg.device_count, on_level=on_level)

        def write_part():
            write_rows(result, part, cfg.rows, cfg.cols)
            if team.processes > 1:
                save_part(result, part)

        distributed.together(team, write_part)

        def write_whole():
            if not team.leader:
                return None
            whole = result if team.processes == 1 else splitting.combine(
                [load_part(store.part_dir(run_dir, p, team.processes))
                 for p in range(team.processes)])
            return write_statistics(whole, run_dir)

        summary = distributed.together(team, write_whole)
    return summary


def _share_text(share, team):
    """What the progress header says of this process's replicates ('' for one process)."""
    if team.processes == 1:
        return ""
    which = (f"replicate {share.start}" if len(share) == 1 else
             f"replicates {share.start} to {share.stop - 1}")
    return f"; process {team.process} of {team.processes} runs {which}"


def write_rows(result, run_dir, n_rows, n_cols):
    """The accepted rows of a SplittingResult (its final particles below eps)."""
    with store.AcceptedWriter(run_dir, accepted_layout(n_rows, n_cols)) as writer:
        for r in range(result.replicates):
            replicate = result.first_replicate + r
            slots = np.flatnonzero(result.accepted[r])
            writer.append(np.uint64(replicate * result.particles) + slots.astype(np.uint64),
                          np.full(slots.size, replicate, np.uint32), result.final_train[r][slots],
                          result.final_gen[r][slots], result.final_matrix[r][slots])


def write_statistics(result, run_dir):
    """levels.npz, curve.csv and summary.json of a SplittingResult; returns the summary."""
    run_dir = pathlib.Path(run_dir)
    store.save_arrays(run_dir / LEVELS_FILE, edges=result.edges,
                      **{name: np.asarray(value) for name, value in result.levels._asdict().items()})
    write_curve(run_dir, estimates.curve(result))
    summary = estimates.summarize(result)
    summary.update(compatible_fields(summary), run_dir=str(run_dir), gd_gen_loss=math.nan)
    store.write_json(run_dir / "summary.json", summary)
    return summary


def save_part(result, part):
    """A process's SplittingResult, but its matrices (its accepted rows hold those), in
    its part of the run directory, for process 0 to combine."""
    fields = result._asdict()
    levels = fields.pop("levels")
    fields.pop("final_matrix")
    store.save_arrays(pathlib.Path(part) / PART_FILE,
                      **{f"levels_{name}": value for name, value in levels._asdict().items()},
                      **{name: np.asarray(value) for name, value in fields.items()})


def load_part(part):
    """The SplittingResult :func:`save_part` saved (``final_matrix`` None)."""
    path = pathlib.Path(part) / PART_FILE
    arrays = store.load_arrays(path)
    scalars = {"eps": float, "particles": int, "replicates": int, "evaluations": int,
               "seconds": float, "latent": str, "move": str, "converged": bool,
               "first_replicate": int}
    try:
        levels = splitting.LevelInfo(*(arrays[f"levels_{name}"]
                                       for name in splitting.LevelInfo._fields))
        return splitting.SplittingResult(
            levels=levels, final_matrix=None, fibers=tuple(str(f) for f in arrays["fibers"]),
            **{name: arrays[name] for name in ("log_p", "final_train", "final_gen", "accepted",
                                               "edges")},
            **{name: kind(arrays[name]) for name, kind in scalars.items()})
    except KeyError as missing:
        raise store.RunDirError(f"{path} is damaged (no {missing.args[0]})") from None


def compatible_fields(summary):
    """The fields a rejection summary has, as a splitting run defines them, so that
    sweeps and tables treat both alike: the acceptance rate is the estimate of p."""
    lo, hi = summary["log_p_ci95"]
    return {"draws": summary["evaluations"], "acceptance_rate": math.exp(summary["log_p"]),
            "acceptance_ci95": [math.exp(lo), math.exp(hi)], "nonfinite": 0,
            "sampler": f"splitting/{summary['latent']}",
            "samples_per_second": summary["evaluations_per_second"]}


def write_curve(run_dir, curve):
    """``curve.csv``: one row per threshold, largest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(curve)
    writer.writerow(names)
    for row in zip(*(curve[name][::-1] for name in names)):
        writer.writerow([f"{v:.9g}" if isinstance(v, (float, np.floating)) else v for v in row])
    store.write_text(pathlib.Path(run_dir) / CURVE_FILE, buffer.getvalue())


def read_curve(run_dir):
    """``curve.csv`` of a splitting run as a dict of float arrays."""
    path = pathlib.Path(run_dir) / CURVE_FILE
    if not path.is_file():
        raise store.RunDirError(f"{run_dir} has no {CURVE_FILE} (not a finished splitting run)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    try:
        return {name: np.asarray([float(row[i]) for row in rows[1:]])
                for i, name in enumerate(rows[0])}
    except (ValueError, IndexError):
        raise store.RunDirError(f"{path} is damaged") from None


def rethreshold(run_dir, eps, run_eps, processes=1):
    """log p and the G&C gen loss of a finished splitting run at another threshold.

    Below the run's eps, its accepted particles (the prior restricted to {L < run eps})
    give it exactly: p(E) = p(run eps) times each replicate's fraction of its accepted
    particles below E. Above, ``curve.csv`` does, at its largest threshold at or below E.
    """
    if eps <= run_eps:
        rows = store.read_accepted(run_dir, processes,
                                   fields=("replicate", "train_loss", "gen_loss"))
        summary = store.read_json(pathlib.Path(run_dir) / "summary.json")
        log_p, gen = [], []
        for r, log_p_r in enumerate(summary["log_p_replicates"]):
            mine = rows["replicate"] == r
            below = mine & (rows["train_loss"] < np.float32(eps))
            count = int(np.sum(below))
            if log_p_r is None:  # NaN in the summary: the replicate did not finish
                log_p.append(math.nan)
            else:
                log_p.append(log_p_r + math.log(count / np.sum(mine)) if count else -math.inf)
            gen.append(float(np.mean(rows["gen_loss"][below])) if count else math.nan)
        mean, _, lo, hi = estimates.interval(log_p)
        gen_mean, gen_se, _, _ = estimates.interval(gen)
        return {"effective_eps": eps, "log_p": mean, "log_p_ci95": [lo, hi],
                "gnc_gen_loss_mean": gen_mean, "gnc_gen_loss_stderr": gen_se,
                "source": "final particles"}
    curve = read_curve(run_dir)
    at = np.flatnonzero(curve["eps"] <= np.float32(eps) * (1 + 1e-6))
    i = at[np.argmax(curve["eps"][at])]
    return {"effective_eps": float(curve["eps"][i]), "log_p": float(curve["log_p"][i]),
            "log_p_ci95": [float(curve["log_p_lo"][i]), float(curve["log_p_hi"][i])],
            "gnc_gen_loss_mean": float(curve["gen_loss"][i]),
            "gnc_gen_loss_stderr": float(curve["gen_loss_stderr"][i]), "source": "curve.csv"}


def config_record(cfg, processes=1):
    """``config.json`` of a splitting run (made by ``processes`` processes; the devices
    are process 0's)."""
    import jax

    share = replicate_share(cfg.replicates, distributed.Team(0, processes))
    devices = splitting.replicate_devices(len(share), cfg.device_count)
    return {"settings": dataclasses.asdict(cfg), "sampler": cfg.sampler, "method": "splitting",
            "processes": processes, "resolved": {"devices": len(devices)},
            "gcsampler_version": __version__, "jax_version": jax.__version__,
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind}
