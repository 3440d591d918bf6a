"""Fixtures of the figure tests."""

import pytest


@pytest.fixture
def plots():
    """gcsampler.plots (skipped without matplotlib); closes the figures a test made."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from gcsampler import plots

    yield plots
    plt.close("all")
