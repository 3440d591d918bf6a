"""Classifier Guess & Check: two-class data sets, small JAX classifiers, their priors and losses.

The setting of Chiang et al. (ICLR 2023): draw every parameter of a small network from a prior
and keep the draws that classify a tiny training set perfectly. Modules: ``data`` (tasks, the
published kink and slab data and MNIST pairs among them), ``networks`` (models, priors,
normalized and raw losses), ``task`` (classifier G&C, a Task on the one G&C loop),
``baselines`` (full-batch SGD, Adam, random search), ``published_sgd`` (the published SGD
protocol) and ``slab_probes`` (which rule a slab network learned). The study of G&C against a
baseline across training-set sizes (``gcsampler classify``) owns a directory, so it is
:mod:`gcsampler.runs.classify_study`.
"""

from gcsampler.classify.data import (
    TASKS,
    Dataset,
    digits,
    kink,
    make_dataset,
    mnist,
    published_kink,
    published_slab,
    slabs,
)
from gcsampler.classify.networks import (
    ACTIVATIONS,
    CNN,
    LOGITS,
    MLP,
    PRIORS,
    Losses,
    fit,
    lenet,
    logit_scale,
    losses,
    sample_params,
)

__all__ = [
    "ACTIVATIONS", "CNN", "LOGITS", "MLP", "PRIORS", "TASKS", "Dataset", "Losses", "digits",
    "fit", "kink", "lenet", "logit_scale", "losses", "make_dataset", "mnist", "published_kink",
    "published_slab", "sample_params", "slabs",
]
