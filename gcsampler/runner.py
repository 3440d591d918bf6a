"""A whole run on disk: G&C and the GD baseline from a RunConfig into a run directory.

Run directory layout::

    config.json        every resolved setting, package and JAX versions, backend
    summary.json       the results (written after G&C, updated after GD)
    accepted/          zarr arrays, one row per accepted draw, in index order:
                       index (uint64), train_loss, gen_loss (float32), matrix (float32)
    statistics.npz     train-loss bins over all draws and the 2-D loss histogram
    gd.npz             GD loss curves and final matrices (when GD ran)
"""

import dataclasses
import math
import pathlib
import sys
import time

import jax
import numpy as np

from gcsampler import (__version__, config, draws, engine, gd, kernel, progress, reference, stats,
                       store)


def execute(cfg, run_dir, stream=None):
    """Run G&C (and GD if ``cfg.gd``) and write everything under ``run_dir``.

    ``run_dir`` must not exist or be empty. Returns the summary dict.
    """
    stream = stream if stream is not None else sys.stderr
    summary = run_gnc(cfg, run_dir, progress.Progress(cfg.samples, stream), stream)
    add_references(summary, cfg.problem())
    if cfg.gd:
        stream.write(f"gcsampler: GD ({cfg.gd_optimizer}, lr {cfg.gd_lr:g}, "
                     f"{cfg.gd_runs} runs x {cfg.gd_steps:,} steps)...\n")
        start = time.perf_counter()
        curves = gd.train(cfg.problem(), cfg.model(), cfg.optimizer(), seed=cfg.seed,
                          runs=cfg.gd_runs, steps=cfg.gd_steps, init_scale=cfg.gd_init_scale,
                          log_every=cfg.gd_log_every)
        add_gd(summary, curves, time.perf_counter() - start)
    store.write_json(pathlib.Path(summary["run_dir"]) / "summary.json", summary)
    return summary


def run_gnc(cfg, run_dir, on_progress, stream):
    """G&C of ``cfg`` into a new ``run_dir``: config, accepted rows, statistics, summary.

    Returns the summary dict (also written to ``summary.json``); its ``run_dir`` is
    the directory as created.
    """
    cfg.validate()
    problem, model, prior = cfg.problem(), cfg.model(), cfg.prior_dist()
    sampler = cfg.resolved_sampler()
    schedule = engine.plan(problem, model, cfg.samples, sampler=sampler, batch=cfg.batch,
                           devices=cfg.device_count, log2_block=cfg.log2_block)
    run_dir = store.create_run_dir(run_dir)
    store.write_json(run_dir / "config.json", _config_record(cfg, sampler, schedule))
    stream.write(f"gcsampler: G&C with {cfg.samples:,} draws ({sampler} sampler) on "
                 f"{len(schedule.devices)} {schedule.devices[0].platform} device(s), batch "
                 f"{schedule.batch:,}; run directory {run_dir}\n")

    with store.AcceptedWriter(run_dir, cfg.rows, cfg.cols) as writer:
        result = engine.guess_and_check(
            problem, model, prior, eps=cfg.eps, samples=cfg.samples, seed=cfg.seed,
            sampler=sampler, batch=cfg.batch, devices=cfg.device_count, log2_block=cfg.log2_block,
            on_rows=writer.append, on_progress=on_progress)
    store.save_arrays(run_dir / "statistics.npz", **statistics_arrays(result.totals))
    summary = stats.summarize(result.totals, result.seconds)
    summary.update(sampler=result.sampler, eps=cfg.eps, run_dir=str(run_dir), gd_gen_loss=math.nan)
    store.write_json(run_dir / "summary.json", summary)
    return summary


def add_references(summary, problem):
    """Add the minimum nuclear- and Frobenius-norm interpolants' losses to ``summary``."""
    summary.update(reference.reference_losses(problem))


def add_gd(summary, curves, seconds):
    """Save one cell's GD ``curves`` as ``gd.npz`` and add their summary fields."""
    store.save_arrays(pathlib.Path(summary["run_dir"]) / "gd.npz", **curves._asdict())
    summary.update(gd_summary(curves, seconds))


def statistics_arrays(totals):
    """The arrays of ``statistics.npz``."""
    lo, hi = kernel.HIST_LOG10_RANGE
    return {
        "train_loss_edges": totals.edges,
        "bin_count": totals.bin_count,
        "bin_gen_sum": totals.bin_gen_sum,
        "bin_gen_sumsq": totals.bin_gen_sumsq,
        "hist_log10_train_gen": totals.hist.reshape(kernel.HIST_BINS, kernel.HIST_BINS),
        "hist_log10_edges": np.linspace(lo, hi, kernel.HIST_BINS + 1),
    }


def gd_summary(curves, seconds):
    """Summary fields of a GD result: means over runs and every run's value."""
    finite = np.isfinite(curves.final_gen_loss)
    return {
        "gd_gen_loss": float(np.mean(curves.final_gen_loss)) if finite.all() else math.nan,
        "gd_gen_loss_runs": curves.final_gen_loss.tolist(),
        "gd_train_loss": float(np.mean(curves.final_train_loss)),
        "gd_seconds": seconds,
    }


def _config_record(cfg, sampler, schedule):
    return {
        "settings": dataclasses.asdict(cfg),
        "sampler": sampler,
        "resolved": {"batch": schedule.batch, "blocks_per_step": schedule.blocks,
                     "draws_at_once": schedule.chunk,
                     "steps_per_call": schedule.steps, "devices": len(schedule.devices),
                     "block_size": schedule.block_size},
        "gcsampler_version": __version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": schedule.devices[0].device_kind,
    }


def load_run(run_dir):
    """(config, summary) of a run directory, with clear errors for foreign directories.

    The config's sampler is the one the run resolved and used.
    """
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise store.RunDirError(f"{run_dir} is not a gcsampler run directory (no config.json)")
    record = store.read_json(run_dir / "config.json")
    try:
        cfg = config.from_dict({**record["settings"], "sampler": record["sampler"]})
    except (KeyError, TypeError, ValueError) as err:
        raise store.RunDirError(f"{run_dir}/config.json is not a valid gcsampler config: "
                                f"{err}") from None
    summary_path = run_dir / "summary.json"
    summary = store.read_json(summary_path) if summary_path.is_file() else None
    return cfg, summary


def regenerate(run_dir, index):
    """Full weights of draw ``index`` of a run: ``(layers, matrix)`` as NumPy arrays."""
    cfg, _ = load_run(run_dir)
    if not 0 <= index < cfg.samples:
        raise ValueError(f"--index must be in [0, {cfg.samples - 1}] for this run, got {index}")
    return draws.regenerate(cfg.model(), cfg.prior_dist(), cfg.seed, index, cfg.sampler)


def rethreshold(run_dir, eps):
    """G&C statistics of a finished run at another threshold ``eps``.

    At or below the run's eps the stored accepted rows give the exact answer;
    above it, the train-loss bins over all draws do, at the largest bin edge <= eps.
    """
    cfg, _ = load_run(run_dir)
    if eps <= cfg.eps:
        rows = store.read_accepted(run_dir)
        below = rows["train_loss"] < stats.float32_threshold(eps)
        gen = rows["gen_loss"][below].astype(np.float64)
        mean, std, stderr = stats.moments(gen.size, float(np.sum(gen)), float(np.sum(gen**2)))
        return {"effective_eps": eps, "accepted": int(gen.size), "gnc_gen_loss_mean": mean,
                "gnc_gen_loss_std": std, "gnc_gen_loss_stderr": stderr, "source": "accepted rows"}
    arrays = store.load_arrays(pathlib.Path(run_dir) / "statistics.npz")
    result = stats.rethreshold(arrays["train_loss_edges"], arrays["bin_count"],
                               arrays["bin_gen_sum"], arrays["bin_gen_sumsq"], eps)
    if result is not None:
        result["source"] = "train-loss bins"
    return result
