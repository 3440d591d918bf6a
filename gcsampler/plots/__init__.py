"""Figures of runs, sweeps and classifier studies (needs the ``plots`` extra: matplotlib).

- ``common``: loading matplotlib (``available``, ``pyplot``, ``INSTALL_HINT``),
  ``save_figure``, and the axes, titles, legends and median-with-quartiles series the
  figures share;
- ``run_figures``: a run's figures, ``plot_run`` (``losses_figure``, ``gd_figure``), and
  ``missing_figures``, those a finished run lacks;
- ``curve_figures``: multilevel splitting's curves of a run or a sweep (``curves_figure``);
- ``sweep_figures``: a sweep's figure (``sweep_figure``);
- ``study_figures``: a classifier study's figure (``study_figure``).

Each ``*_figure`` function returns its figure; ``plot_*`` save them. Legends lie outside the
data; tick labels never use an offset ("1e-5" above the axis).
"""

from gcsampler.plots.common import INSTALL_HINT, available, pyplot, save_figure
from gcsampler.plots.curve_figures import curves_figure, plot_curves
from gcsampler.plots.run_figures import gd_figure, losses_figure, missing_figures, plot_run
from gcsampler.plots.study_figures import plot_study, plot_study_figure, study_figure
from gcsampler.plots.sweep_figures import plot_sweep, sweep_figure

__all__ = [
    "INSTALL_HINT", "available", "curves_figure", "gd_figure", "losses_figure",
    "missing_figures", "plot_curves", "plot_run", "plot_study", "plot_study_figure",
    "plot_sweep", "pyplot", "save_figure", "study_figure", "sweep_figure",
]
