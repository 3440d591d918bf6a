"""How fast splitting's moves decorrelate a population, per sweep and per second.

A splitting run (1024 particles, 32 moves per level) brings a population down to about
eps; its population at the last level before eps, all inside that level's set, is then
moved by each named combination of kernels alone (a sweep applies each in turn; step
sizes are retuned after every sweep), and the correlation of each statistic with its
starting value is printed after 4, 16 and 64 sweeps (and after ``--seconds``, for
comparisons at equal time), with the seconds they took. The statistics: the log train
loss, the gen loss, four random projections of the normalized end-to-end matrix W (those
six are what ``--moves auto`` watches), and the log norms of W before normalization and
of the first layer (slow directions that the auto rule does not watch).

    PYTHONPATH=. python benchmarks/mixing.py --depth 6 --eps 1e-3 --seconds 60 \
        --kernels ess ess,cone ess,rotate ess,cone,rotate
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.factorization import (fibers, latent, models, priors, problems, rotations,
                                     splitting)
from gcsampler.splitting.base import PROJECTIONS, _correlations
from gcsampler.splitting.moves import elliptical_slice, make_move

SWEEPS = 64
REPORTED = (4, 16, 64)
NAMES = ("log train", "gen") + tuple(f"W proj {i + 1}" for i in range(PROJECTIONS)) + (
    "log |W| raw", "log |W_1|")


def population(problem, model, prior, eps, particles):
    """(z, train, gen, level) of the population at the last level before eps."""
    snapshots = []
    splitting.multilevel_splitting(problem, model, prior, eps=eps, particles=particles,
                                   replicates=1, seed=1, moves=32,
                                   on_snapshot=snapshots.append)
    state = jax.device_get(snapshots[-2].state)
    return state.z[0], state.train[0], state.gen[0], state.level[0]


def kernels_named(names, coords, model, prior, train_ops, train_labels):
    """The kernels of one combination: registered moves by name, 'cone'/'fiber' for the
    moves along the level set, 'rotate' for the layer rotations, 'essK' for steps of K
    elliptical slices (``elliptical_slice(chain=K)``)."""
    out = []
    for name in names.split(","):
        if name in ("cone", "fiber"):
            out += fibers.fiber_moves(coords, prior, train_ops, train_labels)
        elif name == "rotate":
            out += rotations.rotation_moves(coords, model, prior)
        elif name.startswith("ess") and name[3:].isdigit():  # essK: chains of K slices
            out.append(elliptical_slice(chain=int(name[3:])))
        else:
            out.append(make_move(name))
    return tuple(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--activation", default="linear")
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--particles", type=int, default=1024)
    parser.add_argument("--kernels", nargs="+", default=["ess", "ess,cone", "ess,cone,rotate"],
                        help="combinations to compare, e.g. ess ess,cone ess,rotate")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="after the 64 sweeps, keep sweeping until this many seconds "
                             "have passed and report the correlations then (for "
                             "comparisons per second)")
    args = parser.parse_args()
    problem = problems.matrix_sensing(seed=0)
    model = models.factorization(5, 5, args.depth, 5, args.activation)
    prior = priors.gaussian(normalize=True)
    coords = latent.make_latent(model, prior)
    matrix = latent.normalized(coords, prior)
    ops, labels = problems.stacked_operators(problem)
    n_train = len(problem.train_ops)
    evaluate_at = splitting.make_evaluate(matrix, n_train)

    def evaluate(z):
        return evaluate_at(z, ops, labels)

    z0, train0, gen0, level = population(problem, model, prior, args.eps, args.particles)
    size = model.n_rows * model.n_cols
    projections = jax.random.normal(jax.random.key(5), (size, PROJECTIONS))
    first = model.layer_shapes[0][0] * model.layer_shapes[0][1]

    def statistics(z, train, gen):
        w = jax.vmap(matrix)(z).reshape(z.shape[0], size)
        raw = jax.vmap(coords.matrix)(z).reshape(z.shape[0], size)
        return jnp.concatenate([jnp.log(train)[:, None], gen[:, None], w @ projections,
                                jnp.log(jnp.linalg.norm(raw, axis=1))[:, None],
                                jnp.log(jnp.linalg.norm(z[:, :first], axis=1))[:, None]], axis=1)

    print(f"depth {args.depth} {args.activation}, normalized Gaussian prior, level {level:.3g} "
          f"(eps {args.eps:g}), {args.particles} particles; JAX {jax.__version__} on "
          f"{jax.devices()[0].platform}")
    start = statistics(z0, train0, gen0)
    for names in args.kernels:
        kernels = kernels_named(names, coords, model, prior, ops[:, :n_train], labels[:n_train])

        @jax.jit
        def sweep(key, z, train, gen, params):
            keys = jax.random.split(key, (len(kernels), z.shape[0]))
            moved = []
            for i, kernel in enumerate(kernels):
                z, train, gen, info = jax.vmap(kernel.step, in_axes=(0, 0, 0, 0, None, None, None))(
                    keys[i], z, train, gen, level, evaluate, params[i])
                moved.append(jnp.mean(info.moved))
            return z, train, gen, jnp.stack(moved)

        params = jnp.asarray([k.initial_param for k in kernels], jnp.float32)
        z, train, gen = z0, train0, gen0
        jax.block_until_ready(sweep(jax.random.key(0), z, train, gen, params))  # compile
        began, rows, count = time.perf_counter(), [], 0
        while count < SWEEPS or time.perf_counter() - began < args.seconds:
            count += 1
            z, train, gen, moved = sweep(jax.random.key(count), z, train, gen, params)
            params = jnp.stack([k.adapt(p, a) for k, p, a in zip(kernels, params, moved)])
            if count in REPORTED:
                rows.append((count, time.perf_counter() - began,
                             np.asarray(_correlations(start, statistics(z, train, gen)))))
        seconds = time.perf_counter() - began
        if count not in REPORTED:
            rows.append((count, seconds, np.asarray(_correlations(start, statistics(z, train,
                                                                                    gen)))))
        print(f"\n{names}: {count} sweeps in {seconds:.1f} s ({seconds / count * 1e3:.0f} ms "
              f"per sweep)")
        print(" sweeps seconds " + " ".join(f"{n:>11}" for n in NAMES))
        for count, elapsed, corr in rows:
            print(f" {count:>6} {elapsed:>7.1f} " + " ".join(f"{c:>11.2f}" for c in corr))


if __name__ == "__main__":
    main()
