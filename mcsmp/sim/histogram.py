"""Streaming log-linear histograms, quantiles with distribution-free intervals (docs/model.md §5).

A :class:`Layout` fixes the buckets: relative width ``2^-p``, range 1 ns to 1e12 ns, one
underflow bucket ``[0, 1)`` and one overflow bucket. Counts are int64, so histograms from
chunks, processes or machines merge exactly by integer addition, in any order.

Quantile ``q`` of ``n`` samples: the point estimate interpolates linearly inside the bucket
holding order statistic ``⌈nq⌉``; the interval runs from the lower edge of the bucket holding
order statistic ``⌊nq − z√(nq(1−q))⌋`` to the upper edge of the bucket holding
``⌈nq + z√(nq(1−q))⌉ + 1``, so it covers both the sampling error and the bucket width. A rank
below 1 opens the interval down to 0, a rank above ``n`` opens it upwards (``inf``): the sample
says nothing about values beyond its extremes.

Means are exact; their 95% interval is ``mean ± t·SE``: with per-chunk sums and counts of two or
more chunks, SE is the batch-means (ratio) standard error over the chunks, which are independent
streams (t with chunks − 1 degrees of freedom); otherwise SE is ``s/√n`` with ``s²`` from the
histogram's second moment (bucket midpoints; t with n − 1 degrees of freedom).

Stratified histograms (docs/model.md §5, "Rare events"): :meth:`Histogram.stratified` combines
per-stratum histograms ``h_s`` with weights ``w_s`` (the exact stratum probabilities, Σ w_s = 1)
into ``F(x) = Σ_s w_s F_s(x)``. Its ``counts`` are then the float effective counts
``n Σ_s w_s c_s / n_s`` (``n = Σ n_s``), so every reader of ``counts``/``cdf_at_edges``/``mean``
sees the combined distribution; :meth:`Histogram.parts` gives ``(w_s, h_s)`` for variances
(``Var F̂(x) = Σ_s w_s² F_s(1 − F_s)/n_s``, :meth:`Histogram.cdf_band`). A crude histogram is its
own single part of weight 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats as sps

__all__ = ["RANGE_HIGH_NS", "Z95", "Histogram", "Layout", "Quantile", "wilson_band"]

RANGE_HIGH_NS = 1e12
Z95 = float(sps.norm.ppf(0.975))


@dataclass(frozen=True)
class Layout:
    """Bucket layout for ``precision_bits`` = p (relative bucket width ``2^-p``)."""

    precision_bits: int = 7

    @property
    def shift(self) -> int:
        return 52 - self.precision_bits

    @property
    def base(self) -> int:
        return int(np.float64(1.0).view(np.int64)) >> self.shift

    @property
    def overflow(self) -> int:
        """Index of the overflow bucket (one past the bucket holding 1e12 ns)."""
        return (int(np.float64(RANGE_HIGH_NS).view(np.int64)) >> self.shift) - self.base + 2

    @property
    def n_buckets(self) -> int:
        return self.overflow + 1

    @cached_property
    def edges(self) -> np.ndarray:
        """``n_buckets + 1`` edges: ``[0, 1, …, top, inf]``; bucket ``i`` is ``[edges[i], edges[i+1])``."""
        i = np.arange(1, self.overflow + 1, dtype=np.int64)
        regular = ((i - 1 + self.base) << self.shift).view(np.float64)
        return np.concatenate(([0.0], regular, [np.inf]))

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bucket index of each value (NumPy twin of :func:`mcsmp.kernels.histo.bucket`)."""
        v = np.asarray(values, dtype=np.float64)
        idx = (v.view(np.int64) >> self.shift) - self.base + 1
        idx = np.where((idx < 0) | (idx > self.overflow), self.overflow, idx)  # inf, NaN: overflow
        return np.where(v < 1.0, 0, idx)


@dataclass(frozen=True)
class Quantile:
    q: float
    value: float
    low: float
    high: float


@dataclass
class Histogram:
    """Counts over a :class:`Layout` plus the exact running sum of the recorded values."""

    layout: Layout
    counts: np.ndarray  # int64[n_buckets]
    total: float = 0.0  # sum of recorded values (exact mean = total / n)
    # per-chunk (sums, counts) of the recorded values, in chunk order, when known
    batches: tuple[np.ndarray, np.ndarray] | None = None
    # stratified: every stratum's crude histogram and its weight (the stratum's probability);
    # None when crude
    strata: tuple[Histogram, ...] | None = None
    weights: tuple[float, ...] | None = None

    @classmethod
    def stratified(cls, layout: Layout, parts: list[Histogram], weights: list[float]) -> Histogram:
        """``Σ_s w_s F_s`` over the strata (``parts[s]``, weight ``weights[s]``); weights are
        renormalised over the strata that hold samples (a stratum without samples in this row
        contributes nothing it could estimate)."""
        out = cls(layout, np.zeros(layout.n_buckets, dtype=np.float64), 0.0, None, tuple(parts), tuple(float(w) for w in weights))
        n = out.n
        for w, h in out.parts():
            out.counts += (n * w / h.n) * h.counts
            out.total += w * h.mean * n
        return out

    def parts(self) -> list[tuple[float, Histogram]]:
        """``(w_s, h_s)`` of every stratum with samples, weights summing to 1; ``[(1, self)]`` when crude."""
        if self.strata is None or self.weights is None:
            return [(1.0, self)]
        kept = [(w, h) for w, h in zip(self.weights, self.strata, strict=True) if h.n > 0 and w > 0]
        total = sum(w for w, _ in kept)
        return [(w / total, h) for w, h in kept]

    def cdf_var_at_edges(self) -> np.ndarray:
        """Variance of the (stratified) empirical CDF at every bucket edge: ``Σ w_s² F_s(1 − F_s)/n_s``."""
        var = np.zeros(self.layout.n_buckets + 1)
        for w, h in self.parts():
            f = h.cdf_at_edges()
            var += w * w * f * (1.0 - f) / max(h.n, 1)
        return var

    def open_survival(self, z: float = Z95) -> float:
        """Upper bound on ``1 − F`` above the largest sample: per stratum the Wilson bound for no
        sample above it, ``z²/(n_s + z²)``, weighted (the tail there is unknown, not absent)."""
        return float(sum(w * z * z / (h.n + z * z) for w, h in self.parts()))

    def cdf_band(self, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise band of the CDF at the edges: crude, the Wilson interval of each proportion;
        stratified, ``F ± z √Var F̂`` (Wald on the combination), and above the largest sample the
        lower end drops to ``1 −`` :meth:`open_survival`. Both non-decreasing, containing ``F``."""
        cdf = self.cdf_at_edges()
        if self.strata is None:
            lo, hi = wilson_band(cdf, self.n, z)
        else:
            half = z * np.sqrt(self.cdf_var_at_edges())
            lo = np.clip(cdf - half, 0.0, 1.0)
            hi = np.clip(cdf + half, 0.0, 1.0)
            top = int(np.max(np.nonzero(self.counts)[0], initial=0)) + 1
            lo[top:] = np.minimum(lo[top:], 1.0 - self.open_survival(z))
            lo = np.maximum.accumulate(lo)
            hi = np.maximum.accumulate(hi)
        return np.minimum(lo, cdf), np.maximum(hi, cdf)

    def as_integer(self) -> tuple[Histogram, int]:
        """``(integer histogram, k)``: crude, itself and 0; stratified, the effective counts in
        fixed point, ``rint(counts · 2^k)`` with the smallest ``k`` that keeps every non-empty
        bucket ≥ 1 (at most what keeps the total below 2⁵³), for HdrHistogram's integer formats."""
        if self.strata is None:
            return self, 0
        nz = self.counts[self.counts > 0]
        if not len(nz):
            return Histogram(self.layout, np.zeros(self.layout.n_buckets, dtype=np.int64), 0.0), 0
        k = max(0, math.ceil(-math.log2(float(nz.min()))))
        k = min(k, max(0, 53 - math.ceil(math.log2(float(nz.sum()) + 1.0))))
        scale = float(2**k)
        counts = np.rint(self.counts * scale).astype(np.int64)
        return Histogram(self.layout, counts, self.total * scale), k

    @classmethod
    def empty(cls, layout: Layout) -> Histogram:
        return cls(layout, np.zeros(layout.n_buckets, dtype=np.int64), 0.0)

    @classmethod
    def from_values(cls, layout: Layout, values: np.ndarray) -> Histogram:
        values = np.asarray(values, dtype=np.float64)
        counts = np.bincount(layout.index(values), minlength=layout.n_buckets).astype(np.int64)
        return cls(layout, counts, float(values.sum()))

    def __add__(self, other: Histogram) -> Histogram:
        if other.layout != self.layout:
            raise ValueError(f"cannot merge histograms with layouts {self.layout} and {other.layout}")
        if self.strata is not None or other.strata is not None:
            return self._add_stratified(other)
        batches = None
        if self.batches is not None and other.batches is not None and len(self.batches[0]) == len(other.batches[0]):
            batches = (self.batches[0] + other.batches[0], self.batches[1] + other.batches[1])
        elif not self.n:
            batches = other.batches
        elif not other.n:
            batches = self.batches
        return Histogram(self.layout, self.counts + other.counts, self.total + other.total, batches)

    def _add_stratified(self, other: Histogram) -> Histogram:
        """Pool two stratified histograms of one row family (the same stratum weights), stratum
        by stratum; an empty histogram is the identity."""
        if other.strata is None and not other.n:
            return self
        if self.strata is None and not self.n:
            return other
        if self.strata is None or other.strata is None or self.weights != other.weights:
            raise ValueError("only stratified histograms with the same strata pool")
        parts = [a + b for a, b in zip(self.strata, other.strata, strict=True)]
        return Histogram.stratified(self.layout, parts, list(self.weights or ()))

    @property
    def n(self) -> int:
        if self.strata is not None:
            return sum(h.n for h in self.strata)
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def overflowed(self) -> int:
        return int(self.counts[-1])

    def midpoints(self) -> np.ndarray:
        """A representative value per bucket: its midpoint (the overflow bucket: its lower edge)."""
        e = self.layout.edges
        mid = 0.5 * (e[:-1] + e[1:])
        mid[-1] = e[-2]
        return mid

    def std(self) -> float:
        """Sample standard deviation from the second moment of the buckets about the exact mean."""
        n = self.n
        if n < 2:
            return math.nan
        m = self.midpoints()
        mean = self.mean
        ss = float(np.sum(self.counts * (m - mean) ** 2))
        return math.sqrt(max(ss, 0.0) / (n - 1))

    def _mean_se(self) -> tuple[float, int]:
        """``(SE of the mean, degrees of freedom)`` of a crude histogram (module docstring)."""
        n = self.n
        if self.batches is not None:
            s, c = self.batches
            used = c > 0
            s, c = s[used], c[used].astype(float)
            k = len(c)
            if k >= 2:
                resid = s - self.mean * c
                return math.sqrt(k / (k - 1) * float(np.sum(resid * resid))) / float(np.sum(c)), k - 1
        if n < 2:
            return math.inf, 1
        return self.std() / math.sqrt(n), n - 1

    def mean_interval(self, z: float = Z95) -> tuple[float, float]:
        """A confidence interval for the mean at normal quantile ``z`` (module docstring).
        Stratified: ``SE² = Σ_s w_s² SE_s²``, t with the fewest degrees of freedom of any stratum."""
        n = self.n
        mean = self.mean
        if n == 0:
            return math.nan, math.nan
        level = 2.0 * float(sps.norm.cdf(z)) - 1.0
        if self.strata is not None:
            parts = [(w, h._mean_se()) for w, h in self.parts()]
            se = math.sqrt(sum(w * w * e * e for w, (e, _) in parts))
            t = float(sps.t.ppf(0.5 + level / 2, min(d for _, (_, d) in parts)))
            return max(mean - t * se, 0.0), mean + t * se
        se, dof = self._mean_se()
        if not math.isfinite(se):
            return 0.0, math.inf
        t = float(sps.t.ppf(0.5 + level / 2, dof))
        return max(mean - t * se, 0.0), mean + t * se

    def _value_at_rank(self, rank: float, cum: np.ndarray) -> float:
        """Linear interpolation inside the bucket holding order statistic ``rank`` (1-based)."""
        b = int(np.searchsorted(cum, rank, side="left"))
        b = min(b, len(cum) - 1)
        lo, hi = self.layout.edges[b], self.layout.edges[b + 1]
        if not math.isfinite(hi):
            return lo
        before = cum[b - 1] if b > 0 else 0
        frac = (rank - before) / max(self.counts[b], 1)
        return float(lo + (hi - lo) * min(max(frac, 0.0), 1.0))

    def quantile(self, q: float, z: float = Z95) -> Quantile:
        """Quantile ``q`` with a distribution-free confidence interval at normal quantile ``z``."""
        n = self.n
        if n == 0:
            return Quantile(q, math.nan, math.nan, math.nan)
        if self.strata is not None:
            return self._stratified_quantile(q, z)
        cum = np.cumsum(self.counts)
        rank = max(math.ceil(n * q), 1)
        half = z * math.sqrt(n * q * (1.0 - q))
        r_lo = math.floor(n * q - half)
        r_hi = math.ceil(n * q + half) + 1
        edges = self.layout.edges
        low = float(edges[int(np.searchsorted(cum, r_lo, side="left"))]) if r_lo >= 1 else 0.0
        high = float(edges[int(np.searchsorted(cum, r_hi, side="left")) + 1]) if r_hi <= n else math.inf
        return Quantile(q, self._value_at_rank(rank, cum), low, high)

    def _stratified_quantile(self, q: float, z: float) -> Quantile:
        """Inverse of the combined CDF (linear inside buckets); the interval is where the band of
        :meth:`cdf_band` crosses ``q``, widened to whole buckets: above ``x[i−1]`` if the upper band
        is below ``q`` there, at or below ``x[i]`` if the lower band reaches ``q`` there (``inf``
        when it never does: beyond the data)."""
        x = self.layout.edges
        cdf = self.cdf_at_edges()
        lo, hi = self.cdf_band(z)
        i = int(np.searchsorted(cdf, q, side="left"))
        if i >= len(x):
            value = math.inf
        elif i == 0 or cdf[i] == cdf[i - 1]:
            value = float(x[i])
        elif not math.isfinite(x[i]):
            value = float(x[i - 1])
        else:
            value = float(x[i - 1] + (q - cdf[i - 1]) / (cdf[i] - cdf[i - 1]) * (x[i] - x[i - 1]))
        i_hi = int(np.searchsorted(hi, q, side="left"))
        i_lo = int(np.searchsorted(lo, q, side="left"))
        low = float(x[max(i_hi - 1, 0)]) if i_hi < len(x) else math.inf
        high = float(x[i_lo]) if i_lo < len(x) else math.inf
        return Quantile(q, value, min(low, value), max(high, value))

    def cdf_at_edges(self) -> np.ndarray:
        """Empirical CDF at every bucket edge (``len = n_buckets + 1``)."""
        if self.strata is not None:
            f = np.zeros(self.layout.n_buckets + 1)
            for w, h in self.parts():
                f += w * h.cdf_at_edges()
            return np.minimum(f, 1.0)
        cum = np.concatenate(([0], np.cumsum(self.counts)))
        return cum / max(self.n, 1)


def wilson_band(p: np.ndarray, n: int, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise Wilson score interval for binomial proportions ``p`` from ``n`` trials."""
    p = np.asarray(p, dtype=float)
    if n <= 0:
        return np.zeros_like(p), np.ones_like(p)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval contains p exactly; rounding can put a bound 1 ulp on the wrong side of p
    # (e.g. high = 1 − 2⁻⁵³ at p = 1), so clip each bound to the side of p it belongs to.
    return np.clip(centre - half, 0.0, p), np.clip(centre + half, p, 1.0)

