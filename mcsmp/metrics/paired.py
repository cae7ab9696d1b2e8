"""Paired differences of means on common random numbers (docs/model.md §5, "Paired differences").

Two histograms recorded on the same random streams, chunk for chunk, share most of their noise:
the policies of one point (every policy is evaluated on the same timeline, §3) and two points
that differ only in ``cache.placement`` (their streams are shared, §6). Their difference of means
is then known far better than two independent runs would give. The interval comes from batch
means over the chunks of the per-chunk difference of the linearised ratio estimators:
``mean_a − mean_b − δ ≈ Σ_c e_c`` with
``e_c = (S_a,c − mean_a N_a,c) / N_a − (S_b,c − mean_b N_b,c) / N_b`` (``S`` the chunk's sum,
``N`` its count of recorded values, ``N_a = Σ_c N_a,c``), so
``SE² = k/(k − 1) Σ_c e_c²`` over ``k`` chunks and the 95% interval is ``± t_{k−1} SE``.
The chunks are independent (own streams), which is what batch means needs. With fewer than two
common chunks the histograms cannot tell how strongly the two are correlated, and the interval
falls back to the conservative ``± (h_a + h_b)``, the sum of the two means' own half-widths
(``sd(A − B) ≤ sd(A) + sd(B)`` whatever the correlation); it is open only when one of those is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats as sps

from ..sim.histogram import Histogram

__all__ = ["PairedDifference", "paired_mean_difference"]


@dataclass(frozen=True)
class PairedDifference:
    value: float  # mean(a) − mean(b)
    low: float  # its 95% interval (conservative with fewer than two chunks)
    high: float
    chunks: int  # common chunks behind the paired interval (0: the conservative one)
    independent_half_width: float  # what unpaired runs of the same sizes would give (both SEs)


def _level(z: float) -> float:
    return 2.0 * float(sps.norm.cdf(z)) - 1.0


def _batch_se(a: Histogram, b: Histogram) -> tuple[float, int] | None:
    """``(SE, k)`` of the paired crude estimator from ``k`` common chunks (module doc), or None
    when the histograms do not carry batches of the same two or more chunks."""
    if a.batches is None or b.batches is None or len(a.batches[1]) != len(b.batches[1]):
        return None
    sa, ca = a.batches[0], a.batches[1].astype(float)
    sb, cb = b.batches[0], b.batches[1].astype(float)
    used = (ca > 0) & (cb > 0)
    k = int(used.sum())
    if k < 2:
        return None
    e = (sa[used] - a.mean * ca[used]) / ca.sum() - (sb[used] - b.mean * cb[used]) / cb.sum()
    return math.sqrt(k / (k - 1) * float(np.sum(e * e))), k


def _paired_se(a: Histogram, b: Histogram) -> tuple[float, int] | None:
    """Crude: :func:`_batch_se`. Stratified (docs/model.md §5 "Rare events"): both on the same
    strata and draws, ``D = Σ_s w_s D_s`` and ``SE² = Σ_s w_s² SE_s²``, with the fewest chunks of any
    stratum for the degrees of freedom; None if a stratum cannot be paired."""
    if a.strata is None and b.strata is None:
        return _batch_se(a, b)
    pa, pb = a.parts(), b.parts()
    if a.strata is None or b.strata is None or len(pa) != len(pb):
        return None
    var, k_min = 0.0, None
    for (wa, ha), (wb, hb) in zip(pa, pb, strict=True):
        got = _batch_se(ha, hb) if math.isclose(wa, wb, rel_tol=1e-12) else None
        if got is None:
            return None
        var += wa * wa * got[0] ** 2
        k_min = got[1] if k_min is None else min(k_min, got[1])
    return math.sqrt(var), int(k_min or 0)


def paired_mean_difference(a: Histogram, b: Histogram, z: float = 1.959963984540054) -> PairedDifference:
    """``mean(a) − mean(b)`` with the batch-means interval of its paired estimator (module doc).

    Both histograms must carry per-chunk ``batches`` of the same chunks (those of one point, or
    of two points on the same streams and samples), stratum by stratum when stratified;
    otherwise the interval is the conservative one.
    """
    if a.n == 0 or b.n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0, math.nan)
    value = a.mean - b.mean
    half_a = a.mean_interval(z)
    half_b = b.mean_interval(z)
    unpaired = math.hypot(half_a[1] - a.mean, half_b[1] - b.mean)
    got = _paired_se(a, b)
    if got is None:
        conservative = (half_a[1] - a.mean) + (half_b[1] - b.mean)  # any correlation (module doc)
        return PairedDifference(value, value - conservative, value + conservative, 0, unpaired)
    se, k = got
    t = float(sps.t.ppf(0.5 + _level(z) / 2, k - 1))
    return PairedDifference(value, value - t * se, value + t * se, k, unpaired)
