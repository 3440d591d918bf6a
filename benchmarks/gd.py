"""Gradient-descent baseline throughput: one figure's GD runs, timed.

Fig. 1 of Alexander et al. (2025) trains depth-2 linear factorizations of widths
5..160, 8 seeds each (a seed is a fresh problem), 1e5 GroupRMSprop steps (lr 1e-4,
init scale 1e-3). The 8 problems of a width are one compiled program
(``gd_train_many``, vmapped); the table gives compile and run time per width and the
total, and the JSON the same.

    PYTHONPATH=. python benchmarks/gd.py
    PYTHONPATH=. python benchmarks/gd.py --steps 2e4 --widths 5,40
"""

import json
import time

import jax
import numpy as np
from absl import app, flags

import gcsampler as gcs

FLAGS = flags.FLAGS
flags.DEFINE_string("widths", "5,10,20,40,80,160", "Comma-separated widths (depth 2, linear).")
flags.DEFINE_integer("seeds", 8, "Problems (seeds) per width, vmapped in one program.")
flags.DEFINE_float("steps", 1e5, "GroupRMSprop steps per run.")
flags.DEFINE_string("json", "benchmarks/gd.json", "Where to write the results.")


def main(_):
    problems = [gcs.matrix_sensing(seed) for seed in range(FLAGS.seeds)]
    optimizer = gcs.make_optimizer("grouprmsprop", 1e-4)
    steps = int(FLAGS.steps)
    rows = []
    for width in map(int, FLAGS.widths.split(",")):
        model = gcs.factorization(5, 5, 2, width)
        kwargs = dict(runs=1, steps=steps, init_scale=1e-3, log_every=steps // 100)
        start = time.perf_counter()
        gcs.gd_train_many(problems, model, optimizer, seed=0, **kwargs)
        first = time.perf_counter() - start
        start = time.perf_counter()
        results = gcs.gd_train_many(problems, model, optimizer, seed=1, **kwargs)
        run = time.perf_counter() - start
        gen = [r.final_gen_loss[0] for r in results]
        rows.append({"width": width, "runs": FLAGS.seeds, "steps": steps,
                     "compile_and_run_s": first, "run_s": run,
                     "median_final_gen_loss": float(np.median(gen))})
    device = jax.devices()[0]
    total_first = sum(r["compile_and_run_s"] for r in rows)
    total_run = sum(r["run_s"] for r in rows)
    print(f"device: {device.device_kind} ({device.platform}), JAX {jax.__version__}")
    print(f"{'width':>6} {'runs':>5} {'steps':>8} {'first call s':>13} {'warm call s':>12} "
          f"{'median gen':>11}")
    for r in rows:
        print(f"{r['width']:>6} {r['runs']:>5} {r['steps']:>8} {r['compile_and_run_s']:>13.2f} "
              f"{r['run_s']:>12.2f} {r['median_final_gen_loss']:>11.3g}")
    print(f"total for {FLAGS.seeds * len(rows)} runs: {total_first:.1f} s including compilation, "
          f"{total_run:.1f} s warm")
    with open(FLAGS.json, "w") as f:
        json.dump({"device": device.device_kind, "platform": device.platform,
                   "jax_version": jax.__version__, "rows": rows,
                   "total_compile_and_run_s": total_first, "total_run_s": total_run}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
