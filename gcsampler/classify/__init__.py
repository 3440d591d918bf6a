"""Classifier Guess & Check: two-class data sets, small JAX classifiers, their priors and losses.

The setting of Chiang et al. (ICLR 2023): draw every parameter of a small network from a prior
and keep the draws that classify a tiny training set perfectly. Modules: ``data`` (tasks),
``networks`` (models, priors, losses), ``task`` (classifier G&C, a Task on the one G&C loop)
and ``baselines`` (SGD, Adam, random search). The study of G&C against a baseline across
training-set sizes (``gcsampler classify``) owns a directory, so it is
:mod:`gcsampler.runs.classify_study`.
"""

from gcsampler.classify.data import TASKS, Dataset, digits, kink, make_dataset, slabs
from gcsampler.classify.networks import (
    ACTIVATIONS,
    CNN,
    MLP,
    PRIORS,
    Losses,
    lenet,
    losses,
    sample_params,
)

__all__ = [
    "ACTIVATIONS", "CNN", "MLP", "PRIORS", "TASKS", "Dataset", "Losses", "digits", "kink",
    "lenet", "losses", "make_dataset", "sample_params", "slabs",
]
