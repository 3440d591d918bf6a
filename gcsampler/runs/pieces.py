"""The pieces a factorization run is made of: its problem, model and prior.

A :class:`~gcsampler.runs.config.RunConfig` names them (``--task``, ``--activation``,
``--prior``: registered names or ``MODULE:ATTR``), and :func:`build` makes them. The
Python API may give any of them as objects instead (:func:`with_objects`). Either way a run
records their *probes*, a few numbers that identify each (labels of the problem, a
prior's first draws, the activation on a grid), so that a run is only continued with
the same pieces, however they are given the second time.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gcsampler.factorization import models, priors, problems
from gcsampler.runs import record

NAMED = ("task", "activation", "prior")  # the settings that name a piece
PROBE_SIZE = 8


class Pieces(NamedTuple):
    """What a factorization run draws: ``problem``, ``model``, ``prior``; ``python``: the
    settings among :data:`NAMED` whose pieces were given as Python objects."""

    problem: problems.Problem
    model: models.Factorization
    prior: priors.Prior
    python: tuple = ()

    def record(self):
        """What ``config.json`` keeps of the pieces: which were Python objects, and probes."""
        return {"python": list(self.python), "probes": probes(self)}


def build(cfg, python=(), objects=None):
    """The pieces ``cfg`` names; ``objects`` (setting -> object) replaces the named ones,
    and the settings in ``python`` must be among them (their names label objects given
    from Python). Raises ValueError naming the flag of a piece that cannot be built."""
    objects = dict(objects or {})
    missing = [name for name in python if name not in objects]
    if missing:
        raise ValueError(
            f"this run's {', '.join(missing)} {'was' if len(missing) == 1 else 'were'} given "
            f"as Python object(s) ({', '.join(f'{n}={getattr(cfg, n)!r}' for n in missing)}), "
            f"which gcsampler cannot rebuild: pass {'it' if len(missing) == 1 else 'them'} to "
            f"gcsampler.resume(RUN, ...) or give "
            f"{' '.join(f'--{n} MODULE:ATTR' for n in missing)}")
    problem = objects["task"] if "task" in objects else problems.make_problem(
        cfg.task, seed=cfg.problem_seed, n_rows=cfg.rows, n_cols=cfg.cols, rank=cfg.rank,
        gt_norm=cfg.gt_norm, measurements=cfg.measurements)
    if (problem.n_rows, problem.n_cols) != (cfg.rows, cfg.cols):
        raise ValueError(f"--task {cfg.task} makes a {problem.n_rows}x{problem.n_cols} problem "
                         f"but --rows {cfg.rows} --cols {cfg.cols} were given")
    activation = objects["activation"] if "activation" in objects else cfg.activation
    model = models.factorization(cfg.rows, cfg.cols, cfg.depth, cfg.width, activation,
                                 cfg.leaky_slope)
    if "activation" not in objects:
        model = model._replace(activation_name=cfg.activation)
    prior = (objects["prior"]._replace(normalize=cfg.normalize) if "prior" in objects
             else priors.make_prior(cfg.prior, cfg.normalize))
    return Pieces(problem, model, prior, tuple(name for name in NAMED if name in objects))


def with_objects(cfg, problem=None, model=None, prior=None):
    """``cfg`` with the settings that describe the pieces given as objects (shape, depth,
    width, labels), and those of the objects gcsampler cannot rebuild from the settings
    (setting -> object): a problem always; an activation or a prior unless it is a
    registered one."""
    settings, objects = {}, {}
    if problem is not None:
        settings.update(rows=problem.n_rows, cols=problem.n_cols,
                        measurements=len(problem.train_ops), task="python")
        objects["task"] = problem
    if model is not None:
        settings.update(rows=model.n_rows, cols=model.n_cols, depth=model.depth,
                        width=model.width, activation=model.activation_name)
        slope = getattr(model.activation, "keywords", {}).get("negative_slope")
        if slope is not None:
            settings["leaky_slope"] = float(slope)
        if not _rebuilt(lambda: models.activation_fn(model.activation_name,
                                                     settings.get("leaky_slope", 0.2)),
                        model.activation):
            objects["activation"] = model.activation
    if prior is not None:
        settings.update(prior=prior.name, normalize=bool(prior.normalize))
        if not _rebuilt(lambda: priors.make_prior(prior.name, prior.normalize).sample_layer,
                        prior.sample_layer):
            objects["prior"] = prior
    return dataclasses.replace(cfg, **settings), objects


def _rebuilt(make, obj):
    """Whether ``make()`` (the piece a name gives) is ``obj`` itself."""
    try:
        return make() is obj
    except ValueError:
        return False


def probes(pieces):
    """A few numbers that identify each piece (setting -> list of floats)."""
    problem, model, prior = pieces.problem, pieces.model, pieces.prior
    grid = jnp.linspace(-3.0, 3.0, PROBE_SIZE, dtype=jnp.float32)
    first = prior.sample_layer(jax.random.key(0), model.layer_shapes[0], jnp.float32)
    return {
        "task": [*problem.train_labels[:PROBE_SIZE], float(np.sum(problem.test_labels ** 2)),
                 len(problem.train_ops), len(problem.test_ops)],
        "activation": np.asarray(model.activation(grid), float).tolist(),
        "prior": np.asarray(first, float).ravel()[:PROBE_SIZE].tolist(),
    }


def check_same(recorded, pieces):
    """Raise ValueError naming the pieces that differ from a run's recorded probes."""
    differ = record.probes_differ(recorded.get("probes", {}), probes(pieces))
    if differ:
        raise ValueError(f"the {', '.join(differ)} given {'is' if len(differ) == 1 else 'are'} "
                         f"not the one{'s' if len(differ) > 1 else ''} this run was made "
                         f"with (their probes differ); give the same pieces")
