"""What the figures need from one point, read off its result once (the histograms are not kept)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OverloadError
from ..io.tables import PointRows, cpu_ranges
from ..metrics import wakeup_cdf
from ..sim.engine import PointResult
from ..sim.histogram import Histogram

__all__ = ["PlotPoint", "ccdf", "plot_point"]


@dataclass
class PlotPoint(PointRows):
    """A point's rows plus its curves: CCDFs of ``preempt_off_ns`` (sampled, all CPUs) and of
    ``wakeup_ns`` (derived, on the CPUs with the highest call rate), per policy."""

    preempt_ccdf: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    wakeup_ccdf: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    wakeup_cpus: str = "all"


def ccdf(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """``(x, Pr(X > x))`` from the lower edge of the first non-empty bucket on (finite edges)."""
    nz = np.nonzero(hist.counts)[0]
    first = int(nz[0]) if len(nz) else 0
    cdf = hist.cdf_at_edges()[first:]
    x = hist.layout.edges[first:]
    keep = np.isfinite(x)
    return x[keep], 1.0 - cdf[keep]


def plot_point(rows: PointRows, result: PointResult) -> PlotPoint:
    """``rows`` with the curves of ``result``."""
    pt = PlotPoint(rows.index, rows.id, rows.overrides, rows.params, rows.rows)
    params, model = result.params, result.model
    busiest = int(np.argmax(model.group_rates))
    cpus = np.nonzero(model.group_of == busiest)[0]
    pt.wakeup_cpus = "all" if model.n_groups == 1 else cpu_ranges([int(c) for c in cpus], 30)
    for pol in params.policies:
        pooled = result.histogram("preempt_off_ns", pol)
        if pooled.n:
            pt.preempt_ccdf[pol] = ccdf(pooled)
        try:
            x, cdf, _, _ = wakeup_cdf(result, pol, busiest)
        except OverloadError:
            continue
        keep = np.isfinite(x)
        pt.wakeup_ccdf[pol] = (x[keep], np.clip(1.0 - cdf[keep], 0.0, 1.0))
    return pt
