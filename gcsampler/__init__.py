"""gcsampler: Guess & Check sampling of deep matrix factorizations on accelerators.

The public API, one flat namespace:

- problems: ``matrix_sensing``, ``matrix_completion``, ``from_arrays``, ``Problem``
- models: ``factorization``, ``Factorization``
- priors: ``gaussian``, ``uniform``, ``custom``, ``scaled``, ``Prior``
- sampling: ``guess_and_check`` (the engine), ``make_sampler``, ``summarize``, ``regenerate``
- rare events: ``multilevel_splitting``, ``summarize_splitting``, ``splitting_curve``,
  ``linear_log_volume`` (the exact answer for depth-1 linear problems); the modules
  ``splitting`` (init / level kernels), ``moves`` (move kernels) and ``latent``
- baseline: ``gd_train``, ``gd_train_many``, ``make_optimizer``, ``group_rmsprop``
- reference solutions: ``min_nuclear_interpolant``, ``min_frobenius_interpolant``,
  ``reference_losses``
- sweeps: ``SweepSpec``, ``run_sweep``, ``load_sweep``, ``PRESETS``
"""

__version__ = "0.1.0"

from gcsampler.draws import regenerate
from gcsampler.engine import guess_and_check
from gcsampler.estimates import curve as splitting_curve
from gcsampler.estimates import summarize as summarize_splitting
from gcsampler.gd import group_rmsprop, make_optimizer, scale_by_group_rms
from gcsampler.gd import train as gd_train
from gcsampler.gd import train_many as gd_train_many
from gcsampler.models import Factorization, factorization
from gcsampler.presets import PRESETS
from gcsampler.priors import Prior, custom, gaussian, scaled, uniform
from gcsampler.problems import Problem, from_arrays, matrix_completion, matrix_sensing
from gcsampler.reference import min_frobenius_interpolant, min_nuclear_interpolant, reference_losses
from gcsampler.samplers import make_sampler
from gcsampler.splitting import splitting as multilevel_splitting
from gcsampler.stats import summarize
from gcsampler.sweep import SweepSpec
from gcsampler.sweep import load as load_sweep
from gcsampler.sweep import run as run_sweep
from gcsampler.volume import linear_log_volume

__all__ = [
    "PRESETS", "Factorization", "Prior", "Problem", "SweepSpec", "custom", "factorization",
    "from_arrays", "gaussian", "gd_train", "gd_train_many", "group_rmsprop", "guess_and_check",
    "linear_log_volume", "load_sweep", "make_optimizer", "make_sampler", "matrix_completion",
    "matrix_sensing", "min_frobenius_interpolant", "min_nuclear_interpolant",
    "multilevel_splitting", "reference_losses", "regenerate", "run_sweep", "scale_by_group_rms",
    "scaled", "splitting_curve", "summarize", "summarize_splitting", "uniform",
]
