"""gcsampler: Guess & Check sampling on accelerators, and what it says about generalization.

The public API, one flat namespace (every name is its function's own):

- problems: ``matrix_sensing``, ``matrix_completion``, ``from_arrays``, ``Problem``
- models: ``factorization``, ``Factorization``
- priors: ``gaussian``, ``uniform``, ``custom``, ``scaled``, ``Prior``
- G&C in memory: ``guess_and_check`` (a factorization), ``make_sampler``, ``regenerate``,
  ``summarize``, ``draw_key``
- tasks: ``Task`` (the protocol of the one G&C loop), ``factorization_task``,
  ``model_task`` (any JAX model: a parameter prior and a loss), ``threshold_task``
- run directories: ``run`` and ``resume`` (factorizations, custom pieces included),
  ``run_task`` and ``resume_task`` (any task), ``report``, ``rethreshold``, ``read_run``,
  ``plot_run``, ``RunConfig``
- rare events: ``multilevel_splitting``, ``summarize_splitting``, ``splitting_curve``,
  ``linear_log_volume`` (the exact answer for depth-1 linear problems)
- baseline: ``gd_train``, ``gd_train_many``, ``make_optimizer``, ``group_rmsprop``,
  ``scale_by_group_rms``
- reference solutions: ``min_nuclear_interpolant``, ``min_frobenius_interpolant``,
  ``reference_losses``
- sweeps: ``SweepSpec``, ``run_sweep``, ``load_sweep``, ``PRESETS``
- tables across runs: ``load_runs`` (a pandas DataFrame of any run and sweep directories)
- compiled programs kept on disk: ``use_compilation_cache``

Where each piece lives, and where a new one goes, is docs/architecture.md.
"""

from gcsampler._version import __version__
from gcsampler.core.compilation_cache import use as use_compilation_cache
from gcsampler.core.keys import draw_key
from gcsampler.core.loop import Task
from gcsampler.factorization.gd import gd_train, gd_train_many, group_rmsprop, make_optimizer, \
    scale_by_group_rms
from gcsampler.factorization.interpolants import (min_frobenius_interpolant,
                                                  min_nuclear_interpolant, reference_losses)
from gcsampler.factorization.models import Factorization, factorization
from gcsampler.factorization.priors import Prior, custom, gaussian, scaled, uniform
from gcsampler.factorization.problems import Problem, from_arrays, matrix_completion, \
    matrix_sensing
from gcsampler.factorization.samplers import make_sampler
from gcsampler.factorization.splitting import multilevel_splitting
from gcsampler.factorization.task import factorization_task, guess_and_check, regenerate
from gcsampler.factorization.volume import linear_log_volume
from gcsampler.plots import plot_run
from gcsampler.runs.api import report, resume, resume_task, run, run_task
from gcsampler.runs.collection import load_runs
from gcsampler.runs.config import RunConfig
from gcsampler.runs.presets import PRESETS
from gcsampler.runs.runner import read_run, rethreshold
from gcsampler.runs.sweep import SweepSpec, run_sweep
from gcsampler.runs.sweep_results import load_sweep
from gcsampler.splitting.estimates import splitting_curve, summarize_splitting
from gcsampler.threshold.statistics import summarize
from gcsampler.threshold.task import model_task, threshold_task

__all__ = [
    "PRESETS", "Factorization", "Prior", "Problem", "RunConfig", "SweepSpec", "Task",
    "__version__", "custom", "draw_key", "factorization", "factorization_task", "from_arrays",
    "gaussian", "gd_train", "gd_train_many", "group_rmsprop", "guess_and_check",
    "linear_log_volume", "load_runs", "load_sweep", "make_optimizer", "make_sampler", "matrix_completion",
    "matrix_sensing", "min_frobenius_interpolant", "min_nuclear_interpolant", "model_task",
    "multilevel_splitting", "plot_run", "read_run", "reference_losses", "regenerate", "report",
    "resume", "resume_task", "rethreshold", "run", "run_sweep", "run_task",
    "scale_by_group_rms", "scaled", "splitting_curve", "summarize", "summarize_splitting",
    "threshold_task", "uniform", "use_compilation_cache",
]
