"""Effective sample size and variance-reduction factor of the rare-event estimators (docs/model.md §5).

For an estimated probability ``F̂`` (a CDF at the point a quantile sits at, or a bin of an
exceedance count), the stratified variance is ``V = Σ_s w_s² F_s(1 − F_s)/n_s``
(:meth:`~mcsmp.sim.histogram.Histogram.cdf_var_at_edges`); crude sampling with the same total
``n`` would have ``V_crude = F(1 − F)/n``. The variance-reduction factor is ``V_crude / V`` (for a
quantile it is the same ratio: both variances share the density at the quantile), and the
effective sample size ``F(1 − F)/V`` is the crude sample size that would give the same precision.
A crude run reports factor 1 and ESS ``n``; an estimate without variance (nothing sampled on one
side) reports ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..sim.engine import PointResult
from ..sim.histogram import Histogram
from .registry import quantile_label

__all__ = ["precision_summary", "probability_precision"]


def probability_precision(hist: Histogram, edge: int) -> tuple[float, float | None, float | None]:
    """``(F, ESS, variance-reduction factor)`` of ``F̂`` at bucket edge ``edge``."""
    f = float(hist.cdf_at_edges()[edge])
    var = float(hist.cdf_var_at_edges()[edge])
    return _summary(f, var, hist.n)


def _summary(p: float, var: float, n: int) -> tuple[float, float | None, float | None]:
    binom = p * (1.0 - p)
    if var <= 0 or binom <= 0 or n <= 0:
        return p, None, None
    return p, binom / var, binom / n / var


def _bin_precision(hist: Histogram, b0: float, b1: float) -> tuple[float, float | None, float | None]:
    edges = hist.layout.edges
    var = 0.0
    p = 0.0
    for w, h in hist.parts():
        f = h.cdf_at_edges()
        p_s = float(np.interp(b1, edges[:-1], f[:-1]) - np.interp(b0, edges[:-1], f[:-1]))
        p += w * p_s
        var += w * w * p_s * (1 - p_s) / h.n
    return _summary(p, var, hist.n)


def _record(metric: str, statistic: str, cpu: str, policy: str, x: float, prec: tuple[float, float | None, float | None]) -> dict[str, Any]:
    p, ess, vrf = prec
    return {"metric": metric, "policy": policy, "cpu": cpu, "statistic": statistic, "at_ns": x, "probability": p,
            "ess": None if ess is None else round(ess, 1), "variance_reduction": None if vrf is None else round(vrf, 2)}  # fmt: skip


def precision_summary(result: PointResult, policy: str | None = None) -> dict[str, Any]:
    """The plan of the strata and, per tail metric, its ESS and variance-reduction factor:
    ``call_ns`` at its report quantiles, and per CPU group the ``P`` histogram of ``policy``
    (default: the first) at the per-call level of the window maximum's quantiles and over the
    exceedance bins."""
    params, model = result.params, result.model
    policy = policy or params.policies[0]
    out: dict[str, Any] = {**model.rare.describe(), "metrics": []}
    if result.fanouts == 0:
        return out
    edges = model.layout.edges
    call = result.histogram("call_ns")
    cdf = call.cdf_at_edges()
    for q in params.report.quantiles:
        i = min(int(np.searchsorted(cdf, q, side="left")), len(edges) - 2)
        out["metrics"].append(_record("call_ns", quantile_label(q), "all", "", float(edges[i]), probability_precision(call, i)))
    window = params.report.window_s
    bins = params.report.exceed_bins_ns
    for g, rate in enumerate(model.group_rates):
        hp, _ = result.policy_histograms(policy, g)
        if hp.n == 0 or rate <= 0:
            continue
        cpus = ",".join(str(c) for c in np.nonzero(model.group_of == g)[0])
        f = hp.cdf_at_edges()
        for q in params.report.quantiles:
            level = 1.0 + math.log(q) / (window * rate)  # Pr(max ≤ x) = exp(−W λ S(x)), background aside
            i = min(int(np.searchsorted(f, level, side="left")), len(edges) - 2)
            out["metrics"].append(_record("window_max_ns", quantile_label(q), cpus, policy, float(edges[i]),
                                          probability_precision(hp, i)))  # fmt: skip
        for b0, b1 in zip(bins[:-1], bins[1:], strict=True):
            out["metrics"].append(_record("exceed_count", f"count[{b0:.3g},{b1:.3g})", cpus, policy, b0,
                                          _bin_precision(hp, b0, b1)))  # fmt: skip
    return out
