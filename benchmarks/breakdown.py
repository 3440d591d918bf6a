"""Where a small draw's time goes: gcsampler's step built up one stage at a time.

For three workloads of ``throughput.py`` (width 5 depth 2 linear and tanh, width 5
depth 10 normalized linear; its problem and eps, the ``direct`` sampler, which
``auto`` picks for all three) every stage below is one jitted function of one device
step as the engine schedules it on this platform (``loop.plan``: 16,384 draws, 4
blocks of 4,096, on a CPU), evaluated over the same draws (same seed and blocks).
Each adds one piece to the one before:

1. keys: each draw's key, ``keys.block_keys`` (two ``fold_in`` per draw, the first
   shared by a block's draws, so computed once per block under ``vmap``);
2. + normals: its weights, ``priors.sample_layers`` (one ``fold_in`` and one
   ``normal`` call per layer; at depth 10 unrolled, where the sampler scans);
3. + matrices: the end-to-end matrix, the ``direct`` sampler's ``matrix`` (which
   draws the same weights itself, drawing each layer just before its product);
4. + normalization (normalized workload only): ``factorization.task.draw``;
5. + losses: ``factorization.task.evaluate_draws``, as the kernel calls it;
6. + counts and gen sums: the kernel's step keeping only ``drawn``, ``nonfinite``,
   ``accepted``, ``gen_sum`` and ``gen_sumsq`` (masks, counts, per-block pairwise sums);
7. + train-loss bins: also ``bin_count``, ``bin_gen_sum``, ``bin_gen_sumsq``;
8. + histogram: also ``hist``;
9. + row buffer: every output (``nonzero`` and the row gather): the kernel's step alone;
10. full step: the engine's compiled call (``loop.compiled_call``: shard_map and a
    ``fori_loop`` over up to 16 steps into output buffers), which the host loop runs.

Stages 1-5 return the sums of their per-draw outputs. Stages 6-9 are the task's own
kernel step (``task.make_step``) with some outputs dropped: XLA leaves out what only
those needed. Stages are timed in interleaved rounds (one run of each per round, the
median kept) after a warm-up that compiles them, and so are three reference rows: the
whole run (``gcsampler.guess_and_check``, host loop included); flat normals (stage 2
with each layer's normals drawn as one flat vector and reshaped: the same bits, checked
on a few draws); and bulk normals (a step's normals drawn as plain JAX draws them, one
key and array per layer). Timed apart by ``throughput.py``'s helpers: the plain-JAX
baseline, and the RNG bound (XLA's normal rate divided by normals per draw). Increments
are over the stage before, in ns per draw and in % of the full step.

    PYTHONPATH=. python benchmarks/breakdown.py
    PYTHONPATH=. python benchmarks/breakdown.py --samples 262144 --repeats 9
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import gcsampler as gcs
from gcsampler.core import keys, loop
from gcsampler.factorization import priors, samplers
from gcsampler.factorization import task as factorization
from gcsampler.threshold import kernel

import throughput  # benchmarks/throughput.py, beside this file

LABELS = ("d2 w5 linear", "d2 w5 tanh", "w5 d10 normalized")
SAMPLER = "direct"
FULL_STEP = "full step (engine's compiled call)"
# Kernel outputs each of stages 6-8 adds (stage 9 keeps them all).
KERNEL_STAGES = (
    ("+ counts and gen sums", ("drawn", "nonfinite", "accepted", "gen_sum", "gen_sumsq")),
    ("+ train-loss bins", ("bin_count", "bin_gen_sum", "bin_gen_sumsq")),
    ("+ histogram", ("hist",)),
    ("+ row buffer (kernel step)", kernel.StepOutput._fields),
)


def summed_stage(schedule, draws):
    """A step-shaped jitted function: ``draws(block_keys, data)`` over the step's blocks,
    its outputs summed."""

    def step(base_key, first_block, full_blocks, tail, data, eps, edges):
        block_ids = first_block + jnp.arange(schedule.blocks, dtype=jnp.uint32)
        out = jax.vmap(lambda b: draws(keys.block_keys(base_key, b, schedule.log2_block),
                                       data))(block_ids)
        return jax.tree.map(jnp.sum, out)

    return jax.jit(step)


def kernel_stage(task, schedule, fields):
    """The task's kernel step, jitted, returning only ``fields`` of its outputs."""
    step = task.make_step(schedule.log2_block, schedule.blocks, schedule.capacity,
                          schedule.chunk)
    return jax.jit(lambda *args: {name: getattr(step(*args), name) for name in fields})


def stages(problem, model, prior, task, schedule):
    """``{name: step function}`` of stages 1-9, in order."""
    sampler = samplers.make_sampler(model, prior, SAMPLER)
    n_train = len(problem.train_ops)
    draw = functools.partial(factorization.draw, sampler, prior)
    per_draw = {
        "keys": lambda k, data: jax.random.key_data(k),
        "+ normals": lambda k, data: jax.vmap(
            lambda key: priors.sample_layers(prior, model, key))(k),
        "+ matrices": lambda k, data: jax.vmap(sampler.matrix)(k),
    }
    if prior.normalize:
        per_draw["+ normalization"] = lambda k, data: jax.vmap(draw)(k)
    per_draw["+ losses"] = lambda k, data: factorization.evaluate_draws(
        model, prior, SAMPLER, n_train, k, schedule.chunk, *data)[:2]
    built = {name: summed_stage(schedule, fn) for name, fn in per_draw.items()}
    fields = ()
    for name, added in KERNEL_STAGES:
        fields += tuple(f for f in added if f not in fields)
        built[name] = kernel_stage(task, schedule, fields)
    return built


def flat_layers(model, key):
    """The layers of ``priors.sample_layers`` (built-in Gaussian prior), each layer's
    normals drawn as one flat vector and reshaped: the same bits."""
    return [jax.random.normal(jax.random.fold_in(key, layer), (r * c,)).reshape(r, c)
            * jnp.float32(c**-0.5) for layer, (r, c) in enumerate(model.layer_shapes)]


def check_flat_layers(model, prior):
    """Raise unless :func:`flat_layers` draws the bits of ``priors.sample_layers``."""
    for index in range(4):
        key = keys.draw_key(0, index)
        for flat, layer in zip(flat_layers(model, key), priors.sample_layers(prior, model, key)):
            np.testing.assert_array_equal(flat, layer)


def bulk_normals(model, schedule):
    """A step-shaped jitted function drawing a step's normals in bulk: one key and one
    array per layer, summed."""

    def step(base_key, first_block, full_blocks, tail, data, eps, edges):
        layer_keys = jax.random.split(jax.random.fold_in(base_key, first_block), model.depth)
        return [jnp.sum(jax.random.normal(k, (schedule.batch, *shape)))
                for k, shape in zip(layer_keys, model.layer_shapes)]

    return jax.jit(step)


def step_runs(fn, task, schedule, samples):
    """``run(seed)``: ``fn`` over the ``samples`` draws of a run, one step per call."""
    block = schedule.block_size
    args = (np.uint32(samples // block), np.int32(samples % block), *task.args)

    def run(seed):
        base = keys.seed_key(seed)
        jax.block_until_ready([fn(base, np.uint32(first), *args)
                               for first in range(0, samples // block, schedule.blocks)])

    return run


def call_runs(task, schedule, samples):
    """``run(seed)``: the engine's compiled calls over the ``samples`` draws of a run."""
    block = schedule.block_size
    args = (np.uint32(samples // block), np.int32(samples % block), *task.args)
    compiled, _ = loop.compiled_call(task, schedule,
                                     (keys.seed_key(0), np.uint32(0), np.int32(1), *args))
    per_call = schedule.steps * schedule.blocks

    def run(seed):
        base = keys.seed_key(seed)
        jax.block_until_ready([
            compiled(base, np.uint32(first),
                     np.int32(min(schedule.steps, (samples // block - first) // schedule.blocks)),
                     *args)
            for first in range(0, samples // block, per_call)])

    return run


def interleaved_rates(runs, samples, repeats):
    """Draws/s of each ``run(seed)``: a warm-up each, then ``repeats`` rounds of one run
    of each; the median per run."""
    for run in runs.values():
        run(0)
    times = {name: [] for name in runs}
    for i in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(i + 1)
            times[name].append(time.perf_counter() - start)
    return {name: samples / statistics.median(t) for name, t in times.items()}


def measure(model, normalize, samples, repeats):
    """Rows ``(stage, draws/s, in_chain)`` of one workload, its schedule, the draws per
    timing (``samples`` rounded down to whole steps) and XLA's normal rate."""
    problem = gcs.matrix_sensing(0)
    prior = gcs.gaussian(normalize)
    task = gcs.factorization_task(problem, model, prior, eps=throughput.EPS, sampler=SAMPLER)
    schedule = loop.plan(task, samples)
    samples = max(1, samples // schedule.batch) * schedule.batch
    runs = {name: step_runs(fn, task, schedule, samples)
            for name, fn in stages(problem, model, prior, task, schedule).items()}
    runs[FULL_STEP] = call_runs(task, schedule, samples)
    references = {
        "whole run (gcsampler.guess_and_check)": lambda seed: gcs.guess_and_check(
            problem, model, prior, eps=throughput.EPS, samples=samples, seed=seed,
            sampler=SAMPLER, progress=False),
        "flat normals (stage 2, same bits)": step_runs(
            summed_stage(schedule, lambda k, data: jax.vmap(
                functools.partial(flat_layers, model))(k)), task, schedule, samples),
        "bulk normals (one key per layer and step)": step_runs(
            bulk_normals(model, schedule), task, schedule, samples),
    }
    check_flat_layers(model, prior)
    rates = interleaved_rates({**runs, **references}, samples, repeats)
    rows = [(name, rates[name], name in runs) for name in rates]
    per_draw = sum(r * c for r, c in model.layer_shapes)
    normals = throughput.normal_rate(repeats)
    rows += [
        ("plain JAX (throughput.py)",
         throughput.plain_jax_rate(problem, model, normalize, samples, repeats), False),
        (f"RNG bound ({per_draw} normals at XLA's rate)", normals / per_draw, False),
    ]
    return rows, schedule, samples, normals


def table(rows):
    """Markdown table of one workload's rows."""
    full = 1e9 / [rate for name, rate, _ in rows if name == FULL_STEP][0]
    lines = ["| stage | draws/s | ns/draw | + ns/draw | + % of full step |",
             "|---|---|---|---|---|"]
    previous = 0.0
    for name, rate, in_chain in rows:
        ns = 1e9 / rate
        increment = " | "
        if in_chain:
            increment = f"{ns - previous:+.0f} | {100 * (ns - previous) / full:+.0f}%"
            previous = ns
        lines.append(f"| {name} | {rate:.3g} | {ns:.0f} | {increment} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2**17,
                        help="draws per timed run (rounded down to whole steps)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per stage")
    args = parser.parse_args()
    models = {label: (model, normalize) for label, model, normalize in throughput.workloads("cpu")}
    tables = []
    for label in LABELS:
        model, normalize = models[label]
        rows, schedule, samples, normals = measure(model, normalize, args.samples, args.repeats)
        auto = samplers.resolve(model, gcs.gaussian(normalize))
        tables.append(f"{label} (auto picks {auto}; {schedule.batch:,} draws per step, "
                      f"{samples:,} per timing, median of {args.repeats}; XLA normals/s "
                      f"{normals:.3g})\n\n{table(rows)}")
        print(f"measured {label}", flush=True)
    device = jax.devices()[0]
    print(f"\ndevice: {device.device_kind} ({device.platform}), JAX {jax.__version__}\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
