"""Figures (a leaf: nothing imports from here but the workflows above it).

- :mod:`.figure`: styles, ns axes and the one atomic figure writer;
- :mod:`.data`: what a figure needs from one point's result;
- :mod:`.study`: the figures of a sweep folder (``plots/``);
- :mod:`.fidelity`: the model-versus-measurement figure of ``mcsmp reproduce``.
"""

from .data import PlotPoint, ccdf, plot_point
from .study import render_plots

__all__ = ["PlotPoint", "ccdf", "plot_point", "render_plots"]
