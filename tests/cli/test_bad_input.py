"""Bad input to the Python API, table-driven: every case raises ValueError with one line that
names the argument (the command line's cases are in test_cli.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gcsampler as gcs
from gcsampler.factorization import priors

PROBLEM = gcs.matrix_sensing()
MODEL = gcs.factorization(5, 5, depth=2, width=5)
SGD = gcs.make_optimizer("sgd", 0.1)


def run(**overrides):
    args = dict(problem=PROBLEM, model=MODEL, prior=gcs.gaussian(), eps=0.1, samples=1000, seed=0)
    args.update(overrides)
    return gcs.guess_and_check(args.pop("problem"), args.pop("model"), args.pop("prior"), **args)


def custom(sample_layer):
    return gcs.custom(sample_layer, name="mine")


def ones(*shape):
    return np.ones(shape)


CASES = [
    # the engine
    ("samples zero", lambda: run(samples=0), "samples"),
    ("samples fractional", lambda: run(samples=1.5), "samples"),
    ("eps zero", lambda: run(eps=0), "eps"),
    ("eps negative", lambda: run(eps=-1.0), "eps"),
    ("eps nan", lambda: run(eps=float("nan")), "eps"),
    ("seed negative", lambda: run(seed=-1), "seed"),
    ("seed too large", lambda: run(seed=2**32), "seed"),
    ("block too small", lambda: run(log2_block=5), "log2_block"),
    ("model of another shape", lambda: run(model=gcs.factorization(4, 5, 2, 5)), "model is 4x5"),
    ("unknown sampler", lambda: run(sampler="magic"), "sampler"),
    ("inexact sampler", lambda: run(sampler="wishart",
                                    model=gcs.factorization(5, 5, 2, 5, "tanh")), "sampler"),
    ("batch zero", lambda: run(batch=0), "batch"),
    ("batch fractional", lambda: run(batch=2.5), "batch"),
    ("devices zero", lambda: run(devices=0), "devices"),
    ("devices beyond the machine", lambda: run(devices=99), "devices"),
    # custom priors
    ("prior of the wrong shape",
     lambda: run(prior=custom(lambda k, s, d: jax.random.normal(k, (3,), d))), "shape (3,)"),
    ("prior of the wrong dtype",
     lambda: run(prior=custom(lambda k, s, d: jax.random.normal(k, s, jnp.float16))), "dtype"),
    ("prior that draws NaN",
     lambda: run(prior=custom(lambda k, s, d: jnp.full(s, jnp.nan, d))), "drew NaN or inf"),
    ("prior that draws inf",
     lambda: run(prior=custom(lambda k, s, d: jax.random.normal(k, s, d) / 0.0)), "NaN or inf"),
    ("prior that is not traceable",
     lambda: run(prior=custom(lambda k, s, d: np.asarray(jax.random.normal(k, s, d)))),
     "cannot be traced"),
    ("unknown built-in prior", lambda: priors.make_prior("cauchy", False), "prior"),
    # problems
    ("measurements fill the matrix", lambda: gcs.matrix_sensing(measurements=25), "measurements"),
    ("rank above the matrix", lambda: gcs.matrix_sensing(rank=6), "rank"),
    ("zero rows", lambda: gcs.matrix_completion(n_rows=0), "n_rows"),
    ("zero ground-truth norm", lambda: gcs.matrix_sensing(gt_norm=0.0), "gt_norm"),
    ("labels and operators disagree",
     lambda: gcs.from_arrays(ones(3, 5, 5), ones(4), ones(2, 5, 5), ones(2)), "labels"),
    ("NaN labels",
     lambda: gcs.from_arrays(ones(3, 5, 5), np.array([1.0, np.nan, 1.0]), ones(2, 5, 5), ones(2)),
     "train_labels"),
    # models
    ("depth zero", lambda: gcs.factorization(5, 5, 0, 5), "depth"),
    ("width zero", lambda: gcs.factorization(5, 5, 2, 0), "width"),
    ("unknown activation", lambda: gcs.factorization(5, 5, 2, 5, "swish"), "activation"),
    # gradient descent
    ("unknown optimizer", lambda: gcs.make_optimizer("lbfgs", 1e-3), "optimizer"),
    ("alpha of one", lambda: gcs.group_rmsprop(1e-3, alpha=1.0), "alpha"),
    ("negative momentum", lambda: gcs.group_rmsprop(1e-3, momentum=-1), "momentum"),
    ("steps not a multiple of log_every",
     lambda: gcs.gd_train(PROBLEM, MODEL, SGD, steps=150, log_every=100), "steps"),
    ("zero runs", lambda: gcs.gd_train(PROBLEM, MODEL, SGD, runs=0), "runs"),
    ("zero init scale", lambda: gcs.gd_train(PROBLEM, MODEL, SGD, init_scale=0), "init_scale"),
    ("a seed per problem, wrong count",
     lambda: gcs.gd_train_many([PROBLEM], MODEL, SGD, seed=[1, 2]), "seed"),
    # regeneration, reference solutions, sweeps
    ("negative draw index", lambda: gcs.regenerate(MODEL, gcs.gaussian(), 0, -1), "index"),
    ("infinite labels for a reference solution",
     lambda: gcs.reference_losses(gcs.from_arrays(ones(3, 5, 5), np.array([1.0, np.inf, 1.0]),
                                                  ones(2, 5, 5), ones(2))), "labels"),
    ("sweep with no seeds", lambda: gcs.run_sweep(gcs.SweepSpec("width", (5,), 0, {}), "unused"),
     "seeds"),
    ("sweep of an unknown setting",
     lambda: gcs.run_sweep(gcs.SweepSpec("colour", (1,), 1, {}), "unused"), "colour"),
]


@pytest.mark.parametrize("call, named", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_api_input_is_one_line_naming_the_argument(call, named, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert named in message and "\n" not in message, message
    assert list(tmp_path.iterdir()) == []   # nothing written
