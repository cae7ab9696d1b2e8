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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats as sps

__all__ = ["RANGE_HIGH_NS", "Z95", "Histogram", "Layout", "Quantile"]

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
        batches = None
        if self.batches is not None and other.batches is not None and len(self.batches[0]) == len(other.batches[0]):
            batches = (self.batches[0] + other.batches[0], self.batches[1] + other.batches[1])
        elif not self.n:
            batches = other.batches
        elif not other.n:
            batches = self.batches
        return Histogram(self.layout, self.counts + other.counts, self.total + other.total, batches)

    @property
    def n(self) -> int:
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

    def mean_interval(self, z: float = Z95) -> tuple[float, float]:
        """A confidence interval for the mean at normal quantile ``z`` (module docstring)."""
        n = self.n
        mean = self.mean
        if n == 0:
            return math.nan, math.nan
        level = 2.0 * float(sps.norm.cdf(z)) - 1.0
        se = math.nan
        if self.batches is not None:
            s, c = self.batches
            used = c > 0
            s, c = s[used], c[used].astype(float)
            k = len(c)
            if k >= 2:
                resid = s - mean * c
                se = math.sqrt(k / (k - 1) * float(np.sum(resid * resid))) / float(np.sum(c))
                t = float(sps.t.ppf(0.5 + level / 2, k - 1))
        if not math.isfinite(se):
            if n < 2:
                return 0.0, math.inf
            se = self.std() / math.sqrt(n)
            t = float(sps.t.ppf(0.5 + level / 2, n - 1))
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
        cum = np.cumsum(self.counts)
        rank = max(math.ceil(n * q), 1)
        half = z * math.sqrt(n * q * (1.0 - q))
        r_lo = math.floor(n * q - half)
        r_hi = math.ceil(n * q + half) + 1
        edges = self.layout.edges
        low = float(edges[int(np.searchsorted(cum, r_lo, side="left"))]) if r_lo >= 1 else 0.0
        high = float(edges[int(np.searchsorted(cum, r_hi, side="left")) + 1]) if r_hi <= n else math.inf
        return Quantile(q, self._value_at_rank(rank, cum), low, high)

    def cdf_at_edges(self) -> np.ndarray:
        """Empirical CDF at every bucket edge (``len = n_buckets + 1``)."""
        cum = np.concatenate(([0], np.cumsum(self.counts)))
        return cum / max(self.n, 1)

