"""Log-linear histograms and quantile intervals (MODEL.md §5) against naive twins and closed forms.

- :class:`~mcsmp.stats.Layout`: bucket edges (relative width ≤ 2^-p, powers of two are edges),
  the NumPy index equals the compiled :func:`~mcsmp.kernels.histo.bucket` and a ``searchsorted``
  twin on random values and on every edge case;
- :class:`~mcsmp.stats.Histogram`: ``from_values`` equals ``np.histogram`` over the layout's edges,
  merging is addition, quantile point estimates sit in the bucket of the order statistic, the
  intervals contain the order-statistic interval they promise and cover the true quantile at
  least at the nominal 95% rate (simulated, fixed seed);
- :func:`~mcsmp.stats.wilson_band` against the roots of the Wilson quadratic, solved here.

Significance: one family at ``ALPHA_FAMILY = 1e-3`` over the coverage checks (Bonferroni).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mcsmp._jit import kernel
from mcsmp.kernels.histo import bucket
from mcsmp.metrics import wilson_band
from mcsmp.sim.histogram import RANGE_HIGH_NS, Histogram, Layout

PRECISIONS = (1, 3, 7, 10, 12)


@kernel
def _bucket_all(values, shift, base, overflow, out):  # type: ignore[no-untyped-def]
    for i in range(values.shape[0]):
        out[i] = bucket(values[i], shift, base, overflow)


def compiled_index(layout: Layout, values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    _bucket_all(np.asarray(values, np.float64), layout.shift, layout.base, layout.overflow, out)
    return out


def naive_index(layout: Layout, values: np.ndarray) -> np.ndarray:
    """Bucket ``i`` is ``[edges[i], edges[i+1])``; the overflow bucket also holds ``inf``."""
    i = np.searchsorted(layout.edges, values, side="right") - 1
    return np.minimum(i, layout.n_buckets - 1)


def edge_values(layout: Layout) -> np.ndarray:
    e = layout.edges[1:-1]
    special = [0.0, 5e-324, 0.5, 0.999, np.nextafter(1.0, 0.0), 1.0, 1.5, 1e12, np.nextafter(1e12, np.inf),
               1e13, 1e300, np.finfo(float).max, np.inf]  # fmt: skip
    powers = 2.0 ** np.arange(0, 45)
    return np.concatenate((special, powers, e, np.nextafter(e, 0.0), np.nextafter(e, np.inf)))


def random_values(seed: int, n: int = 200_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate((10.0 ** rng.uniform(-3, 14, n), rng.uniform(0, 4, n // 10)))


# ---------------------------------------------------------------------------------------------
# Layout


@pytest.mark.parametrize("p", PRECISIONS)
def test_layout_edges(p: int) -> None:
    layout = Layout(p)
    e = layout.edges
    assert len(e) == layout.n_buckets + 1
    assert e[0] == 0.0 and e[1] == 1.0 and e[-1] == math.inf
    regular = e[1:-1]
    assert np.all(np.diff(regular) > 0)
    rel = np.diff(regular) / regular[:-1]
    assert np.all(rel <= 2.0**-p)
    # Exactly 2^p buckets per octave: every power of two in range is an edge, with width 2^-p.
    powers = 2.0 ** np.arange(0, int(math.log2(regular[-1])) + 1)
    assert np.all(np.isin(powers, regular))
    at_power = np.isin(regular[:-1], powers)
    np.testing.assert_array_equal(rel[at_power], 2.0**-p)
    # Range 1 ns to 1e12 ns: 1e12 is in the last regular bucket, the overflow starts just above.
    assert regular[-2] <= RANGE_HIGH_NS < regular[-1]
    assert layout.index(np.array([RANGE_HIGH_NS]))[0] == layout.overflow - 1


@pytest.mark.parametrize("p", PRECISIONS)
def test_index_matches_compiled_bucket_and_naive_twin(p: int) -> None:
    layout = Layout(p)
    values = np.concatenate((edge_values(layout), random_values(p)))
    idx = layout.index(values)
    np.testing.assert_array_equal(idx, compiled_index(layout, values))
    np.testing.assert_array_equal(idx, naive_index(layout, values))
    assert idx.min() == 0 and idx.max() == layout.overflow
    # Spot values whose bucket is known by hand.
    spot = layout.index(np.array([0.0, 0.999, 1.0, 2.0, 1e13, np.inf]))
    assert list(spot) == [0, 0, 1, 1 + 2**p, layout.overflow, layout.overflow]


# ---------------------------------------------------------------------------------------------
# Histogram


def test_from_values_equals_np_histogram() -> None:
    layout = Layout(7)
    values = np.concatenate((random_values(11), edge_values(layout)))
    values = values[values < 1e200]  # keep the exact sum finite
    h = Histogram.from_values(layout, values)
    ref, _ = np.histogram(values, bins=layout.edges)
    np.testing.assert_array_equal(h.counts, ref)
    assert h.n == len(values)
    assert h.total == pytest.approx(float(np.sum(values)), rel=1e-12)
    assert h.overflowed == int(np.sum(values >= layout.edges[-2]))
    np.testing.assert_array_equal(h.cdf_at_edges()[:-1], [np.mean(values < e) for e in layout.edges[:-1]])
    assert h.cdf_at_edges()[-1] == 1.0


def test_merge_is_histogram_of_concatenation() -> None:
    layout = Layout(7)
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(8, 2, size) for size in (1, 1000, 54321)]
    merged = Histogram.empty(layout)
    for part in parts:
        merged = merged + Histogram.from_values(layout, part)
    whole = Histogram.from_values(layout, np.concatenate(parts))
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.total == pytest.approx(whole.total, rel=1e-12)
    assert merged.mean == pytest.approx(float(np.mean(np.concatenate(parts))), rel=1e-12)
    # Integer addition: order does not matter, bit for bit.
    a, b = (Histogram.from_values(layout, p) for p in parts[1:])
    np.testing.assert_array_equal((a + b).counts, (b + a).counts)
    with pytest.raises(ValueError, match="layouts"):
        _ = a + Histogram.from_values(Layout(6), parts[0])


def test_empty_histogram() -> None:
    h = Histogram.empty(Layout(7))
    assert h.n == 0 and math.isnan(h.mean)
    qt = h.quantile(0.5)
    assert math.isnan(qt.value) and math.isnan(qt.low) and math.isnan(qt.high)


QS = (0.001, 0.01, 0.07, 0.1, 0.29, 0.5, 0.9, 0.99, 0.999)


@pytest.mark.parametrize(
    ("n", "seed"), [(1, 1), (7, 2), (100, 3), (1000, 4), (100_000, 5)]
)
def test_quantile_estimate_in_bucket_of_order_statistic(n: int, seed: int) -> None:
    layout = Layout(7)
    values = np.random.default_rng(seed).lognormal(7, 1.5, n)
    h = Histogram.from_values(layout, values)
    for q in QS:
        est = h.quantile(q)
        order_stat = float(np.quantile(values, q, method="inverted_cdf"))  # X_(⌈nq⌉)
        b = int(layout.index(np.array([order_stat]))[0])
        # Interpolated inside the order statistic's bucket (the upper edge belongs to the next).
        assert layout.edges[b] <= est.value <= layout.edges[b + 1]
        assert abs(int(layout.index(np.array([est.value]))[0]) - b) <= 1
        assert est.low <= est.value <= est.high
        if n >= 100_000 and 0.01 <= q <= 0.99:
            # In the bulk of a large sample neighbouring order statistics are ≪ a bucket apart,
            # so the usual (linear) estimator is within a bucket too.
            bq = int(layout.index(np.array([np.quantile(values, q)]))[0])
            assert abs(int(layout.index(np.array([est.value]))[0]) - bq) <= 1


@pytest.mark.parametrize("n", [50, 1000, 100_000])
def test_quantile_interval_contains_order_statistic_interval(n: int) -> None:
    """[low, high] are bucket edges enclosing X_(r_lo) … X_(r_hi), r = nq ∓ z√(nq(1−q)) (MODEL.md §5);
    a rank below 1 opens the interval down to 0, a rank above n opens it upwards (inf)."""
    layout = Layout(7)
    values = np.sort(np.random.default_rng(n).exponential(1000, n))
    h = Histogram.from_values(layout, values)
    for q in QS:
        for z in (1.0, 1.959963984540054, 3.0):
            est = h.quantile(q, z)
            half = z * math.sqrt(n * q * (1 - q))
            r_lo = math.floor(n * q - half)
            r_hi = math.ceil(n * q + half) + 1
            assert est.low in layout.edges and est.high in layout.edges
            if r_lo < 1:
                assert est.low == 0.0
            else:  # enclosing X_(r_lo), and no wider than its bucket
                assert est.low <= values[r_lo - 1]
                assert est.low == layout.edges[layout.index(values[r_lo - 1 : r_lo])[0]]
            if r_hi > n:
                assert est.high == math.inf
            else:
                assert values[r_hi - 1] < est.high
                assert est.high == layout.edges[layout.index(values[r_hi - 1 : r_hi])[0] + 1]


# Coverage: for each (q, n) in COVERAGE, TRIALS independent samples; the CI for the true quantile
# must cover it at least at 95%. If the true coverage is ≥ 0.95, the number of covering intervals C
# is stochastically ≥ Binomial(TRIALS, 0.95), so Pr(C < c_min) ≤ α for
# c_min = binom.ppf(α, TRIALS, 0.95) (the smallest c with Pr(Binomial ≤ c) ≥ α).
# The setting keeps n q (1 − q) ≥ 19, where the normal rank approximation holds.
TRIALS = 400
COVERAGE = [(0.1, 400), (0.5, 400), (0.9, 400), (0.99, 2000)]
ALPHA_FAMILY = 1e-3
ALPHA = ALPHA_FAMILY / len(COVERAGE)
C_MIN = int(stats.binom.ppf(ALPHA, TRIALS, 0.95))


def test_coverage_bound_is_derived_right() -> None:
    assert stats.binom.cdf(C_MIN - 1, TRIALS, 0.95) <= ALPHA < stats.binom.cdf(C_MIN, TRIALS, 0.95)
    assert 360 <= C_MIN <= 370  # ≈ 380 − 3.2·√19: the check has teeth


@pytest.mark.parametrize(("q", "n"), COVERAGE)
def test_quantile_interval_coverage(q: float, n: int) -> None:
    layout = Layout(7)
    dist = stats.lognorm(1.0, scale=1000.0)
    truth = float(dist.ppf(q))
    rng = np.random.default_rng(int(q * 1000) + n)
    covered = 0
    for _ in range(TRIALS):
        est = Histogram.from_values(layout, dist.rvs(size=n, random_state=rng)).quantile(q)
        covered += est.low <= truth <= est.high
    assert covered >= C_MIN, f"{covered}/{TRIALS} intervals cover the true p{q * 100:g}; need >= {C_MIN}"


# ---------------------------------------------------------------------------------------------
# Wilson band


def wilson_by_hand(p: float, n: int, z: float) -> tuple[float, float]:
    """The Wilson interval is the set of π with (p − π)² ≤ z² π (1 − π)/n: the roots of
    a π² + b π + c = 0 with a = 1 + z²/n, b = −(2p + z²/n), c = p², whose discriminant
    simplifies to b² − 4ac = (z²/n)(4p(1 − p) + z²/n). Solved without cancellation."""
    t = z * z / n
    a, b, c = 1 + t, -(2 * p + t), p * p
    disc = math.sqrt(t * (4 * p * (1 - p) + t))
    big = (-b + disc) / 2  # -b > 0: no cancellation
    return c / big, big / a


@pytest.mark.parametrize("n", [1, 10, 1000, 10**7])
@pytest.mark.parametrize("z", [1.0, 1.959963984540054, 3.5])
def test_wilson_band_matches_closed_form(n: int, z: float) -> None:
    ps = np.array([0.0, 1e-6, 0.01, 0.3, 0.5, 0.99, 1.0])
    lo, hi = wilson_band(ps, n, z)
    for p, got_lo, got_hi in zip(ps, lo, hi, strict=True):
        want_lo, want_hi = wilson_by_hand(float(p), n, z)
        assert got_lo == pytest.approx(max(want_lo, 0.0), abs=1e-12)
        assert got_hi == pytest.approx(min(want_hi, 1.0), abs=1e-12)
        assert got_lo <= p <= got_hi


def test_wilson_band_without_trials_is_uninformative() -> None:
    lo, hi = wilson_band(np.array([0.2, 0.7]), 0)
    np.testing.assert_array_equal(lo, 0.0)
    np.testing.assert_array_equal(hi, 1.0)


def test_canonical_hash_of_mixed_key_types() -> None:
    """Mappings whose keys cannot be ordered (found by make fuzz: {None: .., "a": ..}) still hash,
    deterministically, and hashes of sortable data are what they always were."""
    from mcsmp._util import sha256_json

    assert sha256_json({"b": 1, "a": [1, 2]}) == sha256_json({"a": [1, 2], "b": 1})
    assert sha256_json({None: 1, "a": 2}) == sha256_json({"a": 2, None: 1})
    assert sha256_json({None: 1, "a": 2}) != sha256_json({"null": 1, "a": 2})
