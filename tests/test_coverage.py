"""Coverage of the reported 95% intervals on a closed-form case (docs/model.md §5).

The case: ``k = 4`` targets, exponential(μ) delivery, every other cost zero, policy
``preempt_off``: ``P = H = T`` with CDF ``(1 − e^{−x/μ})^k`` (tests/test_analytic.py). Every CPU
calls at ``λ`` Hz, so a CPU is inside a call's section with probability ``ρ = λ E[T]``:

- ``wakeup_ns``: CDF ``1 − ρ + ρ F_e(x)``, ``F_e(x) = ∫₀ˣ S / E[T]``; mean ``λ E[T²]/2``;
- ``rendezvous_ns``: the 8 CPUs' residuals: CDF ``(1 − ρ + ρ F_e(x))^8``;
- ``window_max_ns``: ``exp(−W λ S(x))``; ``exceed_count``: ``3600 h λ Pr(b₀ ≤ T < b₁)``.

Each replication draws fresh streams (``stream_key``), computes the metrics and checks whether
each interval holds the exact value. With ``R`` replications and a true coverage of 95% the count
of covering intervals is Binomial(R, 0.95); the acceptance band is that binomial's central
``1 − α`` range with ``α`` Bonferroni-split over the checks, and ``R`` is chosen so the band lies
inside 93–97% (R = 1000: ±1.8% at α = 0.05/10). The fast versions (``make test``) run fewer
replications against a correspondingly wider band; the slow ones (``make test-all``) print the
measured coverages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from mcsmp.config import Params
from mcsmp.metrics import compute_metrics, quantile_label, wakeup_cdf
from mcsmp.sim import run_point

K_TARGETS = 4
MU = 1000.0
CPUS = 8
RATE = 150_000.0  # Hz per CPU: ρ = λ E[T] ≈ 0.31
WINDOW_S = 1e-3  # λ W = 150: window-maximum quantiles inside the sample
BINS = (1000.0, 2000.0, 4000.0, 8000.0)
DURATION_H = 1e-3

MEAN_T = MU * sum(1 / j for j in range(1, K_TARGETS + 1))
VAR_T = MU**2 * sum(1 / j**2 for j in range(1, K_TARGETS + 1))
E_T2 = VAR_T + MEAN_T**2
RHO = RATE * MEAN_T * 1e-9


def cdf_t(x: float) -> float:
    return (1 - math.exp(-x / MU)) ** K_TARGETS if x > 0 else 0.0


def surv_t(x: float) -> float:
    return 1 - cdf_t(x)


def quantile_t(q: float) -> float:
    return -MU * math.log1p(-(q ** (1 / K_TARGETS)))


@cache
def int_surv(x: float) -> float:
    return integrate.quad(surv_t, 0, x, limit=200)[0]


def wake_cdf(x: float) -> float:
    return 1 - RHO + RATE * 1e-9 * int_surv(x)


def invert(f: Callable[[float], float], q: float) -> float:
    return optimize.brentq(lambda x: f(x) - q, 1e-9, 200 * MU, xtol=1e-9, rtol=1e-12)


def rdv_cdf(x: float) -> float:
    return wake_cdf(x) ** CPUS


def truths(qs: tuple[float, ...]) -> dict[tuple[str, str], float]:
    t: dict[tuple[str, str], float] = {
        ("call_ns", "mean"): MEAN_T,
        ("remote_wait_ns", "mean"): MU,
        ("preempt_off_ns", "mean"): MEAN_T,
        ("wakeup_ns", "mean"): RATE * 1e-9 * E_T2 / 2,
        ("rendezvous_ns", "mean"): integrate.quad(lambda x: 1 - rdv_cdf(x), 0, 60 * MU, limit=400)[0],
    }
    for q in qs:
        label = quantile_label(q)
        t["call_ns", label] = quantile_t(q)
        t["remote_wait_ns", label] = -MU * math.log1p(-q)
        if q > 1 - RHO:
            t["wakeup_ns", label] = invert(wake_cdf, q)
        if q > (1 - RHO) ** CPUS:
            t["rendezvous_ns", label] = invert(rdv_cdf, q)
        lam_w = RATE * WINDOW_S
        # exp(−λW S(x)) = q  →  S(x) = −ln q / (λW)
        t["window_max_ns", label] = quantile_t(1 + math.log(q) / lam_w)
    for b0, b1 in zip(BINS[:-1], BINS[1:], strict=True):
        t["exceed_count", f"count[{b0:.3g},{b1:.3g})"] = 3600 * DURATION_H * RATE * (cdf_t(b1) - cdf_t(b0))
    t["wakeup_ns", "cdf@4000"] = wake_cdf(CDF_AT)
    return t


CDF_AT = 4000.0  # a bucket edge (2^12 ns); the wake-up CDF band is checked there, pointwise


def case(make_params: Callable[..., Params], samples: int, qs: tuple[float, ...]) -> Params:
    return make_params({
        "samples": samples,
        "machine.cpus": CPUS, "machine.cpus_per_llc": CPUS,
        "workload.mm_cpus": K_TARGETS,
        "workload.rate_hz": RATE,
        "ipi.delivery_ns": {"dist": "exponential", "mean": MU},
        "report.quantiles": list(qs),
        "report.window_s": WINDOW_S,
        "report.duration_h": DURATION_H,
        "report.exceed_bins_ns": list(BINS),
    })  # fmt: skip


def coverage(params: Params, reps: int, keys: list[tuple[str, str]], first_key: int = 1000) -> dict[tuple[str, str], int]:
    """Replications with independent streams: how many intervals cover the exact value, per key."""
    truth = truths(params.report.quantiles)
    hits = dict.fromkeys(keys, 0)
    for r in range(reps):
        result = run_point(params, stream_key=first_key + r, threads=1)
        rows = compute_metrics(result)
        got = {(row.metric, row.statistic): row for row in rows if row.cpu in ("all", "0")
               and row.policy in ("", "preempt_off")}  # fmt: skip
        for key in keys:
            if key[1].startswith("cdf@"):
                x, cdf, lo, hi = wakeup_cdf(result, "preempt_off")
                i = int(np.searchsorted(x, CDF_AT))
                assert x[i] == CDF_AT and lo[i] <= cdf[i] <= hi[i]
                hits[key] += lo[i] <= truth[key] <= hi[i]
                continue
            row = got[key]
            assert row.low <= row.value <= row.high, (key, row)
            hits[key] += row.low <= truth[key] <= row.high
    return hits


def band(reps: int, checks: int, alpha: float = 0.05) -> tuple[float, float]:
    """Central 1 − α/checks range of Binomial(reps, 0.95)/reps: where a true 95% coverage lands."""
    a = alpha / checks
    return float(stats.binom.ppf(a / 2, reps, 0.95)) / reps, float(stats.binom.isf(a / 2, reps, 0.95)) / reps


LARGE_QS = (0.5, 0.9, 0.99)
# Intervals limited by sampling error only: their coverage must be 95% within the binomial band.
BAND_KEYS = [
    ("call_ns", "mean"), ("remote_wait_ns", "mean"), ("preempt_off_ns", "mean"),
    ("wakeup_ns", "mean"), ("wakeup_ns", "cdf@4000"), ("rendezvous_ns", "mean"),
    ("exceed_count", "count[2e+03,4e+03)"), ("exceed_count", "count[4e+03,8e+03)"),
]  # fmt: skip
# Quantile intervals end on bucket edges (relative width 2^-7): at 262,144 samples a bucket is wider
# than the sampling error, so these cover more than 95% (measured 97.8-99.5%; docs/model.md §5).
# They must cover at least the band's lower end; the slow run prints the measured values.
RESOLUTION_KEYS = [
    ("call_ns", "p50"), ("call_ns", "p99"), ("wakeup_ns", "p90"), ("wakeup_ns", "p99"),
    ("rendezvous_ns", "p50"), ("rendezvous_ns", "p90"), ("window_max_ns", "p50"), ("window_max_ns", "p90"),
]  # fmt: skip
LARGE_KEYS = BAND_KEYS + RESOLUTION_KEYS
LARGE_SAMPLES = 4 * 65536  # four chunks: means get batch-means intervals (3 degrees of freedom)
SMALL_QS = (0.5, 0.9)
SMALL_KEYS = [("call_ns", "mean"), ("preempt_off_ns", "mean"), ("call_ns", "p50")]
SMALL_SAMPLES = 200  # one chunk: means from the histogram's second moment


def test_truths_are_consistent() -> None:
    """The closed forms agree with each other (wake-up mean = ∫ (1 − CDF))."""
    m = integrate.quad(lambda x: 1 - wake_cdf(x), 0, 60 * MU, limit=400)[0]
    assert m == pytest.approx(RATE * 1e-9 * E_T2 / 2, rel=1e-6)
    assert int_surv(80 * MU) == pytest.approx(MEAN_T, rel=1e-9)


def _check(hits: dict[tuple[str, str], int], reps: int, lo: float, hi: float, report: bool,
           at_least: frozenset[tuple[str, str]] = frozenset()) -> None:  # fmt: skip
    cov = {k: v / reps for k, v in hits.items()}
    if report:
        print(f"\ncoverage over {reps} replications (acceptance band [{lo:.3f}, {hi:.3f}]):")
        for k, c in cov.items():
            print(f"  {k[0]:>15} {k[1]:<20} {c:.3f}")
    bad = {k: c for k, c in cov.items() if not lo <= c <= (1.0 if k in at_least else hi)}
    assert not bad, f"coverage outside [{lo:.3f}, {hi:.3f}] over {reps} replications: {bad}"


def test_coverage_fast(make_params: Callable[..., Params]) -> None:
    """The key properties in `make test`: 120 replications at n = 200 (one chunk), and 40 at four
    chunks, against the (wide) binomial band of those counts."""
    params = case(make_params, SMALL_SAMPLES, SMALL_QS)
    reps = 120
    lo, hi = band(reps, len(SMALL_KEYS))
    _check(coverage(params, reps, SMALL_KEYS), reps, lo, hi, report=False)
    params = case(make_params, LARGE_SAMPLES, LARGE_QS)
    reps = 40
    lo, hi = band(reps, len(LARGE_KEYS))
    _check(coverage(params, reps, LARGE_KEYS), reps, lo, hi, report=False, at_least=frozenset(RESOLUTION_KEYS))


@pytest.mark.slow
def test_coverage_large_n(make_params: Callable[..., Params]) -> None:
    reps = 1200
    lo, hi = band(reps, len(LARGE_KEYS))
    assert 0.93 <= lo and hi <= 0.97  # the band is honest: a 95% interval passes, a 92% or 98% one fails
    _check(coverage(case(make_params, LARGE_SAMPLES, LARGE_QS), reps, LARGE_KEYS), reps, lo, hi, report=True,
           at_least=frozenset(RESOLUTION_KEYS))  # fmt: skip


@pytest.mark.slow
def test_coverage_small_n(make_params: Callable[..., Params]) -> None:
    reps = 1000
    lo, hi = band(reps, len(SMALL_KEYS))
    assert 0.93 <= lo and hi <= 0.97
    _check(coverage(case(make_params, SMALL_SAMPLES, SMALL_QS), reps, SMALL_KEYS), reps, lo, hi, report=True)


def order_statistic_coverage(n: int, q: float) -> float:
    """Coverage of [X_(r_lo), X_(r_hi)] with the ranks of docs/model.md §5, before bucket edges:
    Pr(r_lo ≤ B < r_hi) with B ~ Binomial(n, q) the number of samples below the true quantile."""
    half = 1.959963984540054 * math.sqrt(n * q * (1 - q))
    r_lo, r_hi = math.floor(n * q - half), math.ceil(n * q + half) + 1
    below = float(stats.binom.sf(r_lo - 1, n, q)) if r_lo >= 1 else 1.0
    above = float(stats.binom.sf(r_hi - 1, n, q)) if r_hi <= n else 0.0
    return below - above


@pytest.mark.slow
@pytest.mark.parametrize(("n", "q"), [(200, 0.9), (100, 0.99), (100, 0.999)])
def test_coverage_tail_quantiles_at_small_n(make_params: Callable[..., Params], n: int, q: float) -> None:
    """Tail quantiles at small n(1 − q). The ranks nq ± z√(nq(1−q)) (+1 above) are whole numbers,
    so the coverage is a step function of n and q, above 95% here (p90 at n = 200: 97.6% before
    bucket edges); at p99 and p99.9 of 100 samples the upper rank exceeds n and the interval opens
    upwards (inf), so its coverage is Pr(X_(r_lo) ≤ ξ) (98.2% and 99.5%). A distribution-free
    interval cannot be nearer 95% there without randomisation: the check is that the coverage is at
    least 95% and at least the order-statistic value (bucket edges only widen), within sampling
    error; the slow run prints the measured value."""
    reps = 1000
    key = ("call_ns", quantile_label(q))
    hits = coverage(case(make_params, n, (q,)), reps, [key])
    c, bound = hits[key] / reps, order_statistic_coverage(n, q)
    print(f"\n{key[0]} {key[1]} at n = {n} over {reps} replications: coverage {c:.3f} (order statistics {bound:.3f})")
    assert c >= 0.95
    assert c >= bound - 3 * math.sqrt(bound * (1 - bound) / reps)


def test_small_samples_intervals_are_open(make_params: Callable[..., Params]) -> None:
    """With one sample no quantile interval is [x, x], and a mean interval is not degenerate."""
    rows = compute_metrics(run_point(case(make_params, 1, (0.5, 0.99)), threads=1))
    got = {(r.metric, r.statistic): r for r in rows if r.policy in ("", "preempt_off") and r.cpu in ("all", "0")}
    for stat in ("p50", "p99"):
        row = got["call_ns", stat]
        assert row.low == 0.0 and row.high == math.inf, row
    assert got["call_ns", "mean"].high == math.inf
    rows = compute_metrics(run_point(case(make_params, 100, (0.999,)), threads=1))
    row = next(r for r in rows if r.metric == "call_ns" and r.statistic == "p99.9")
    assert row.high == math.inf and row.low < row.value


def test_mean_interval_uses_batch_means(make_params: Callable[..., Params]) -> None:
    """With several chunks the mean's interval is mean ± t₃·SE from the per-chunk sums and counts."""
    result = run_point(case(make_params, LARGE_SAMPLES, (0.5,)), threads=1)
    h = result.histogram("call_ns")
    assert h.batches is not None and len(h.batches[0]) == 4
    s, c = h.batches
    assert int(c.sum()) == h.n and float(s.sum()) == pytest.approx(h.total, rel=1e-12)
    chunk_means = s / c
    se = float(np.std(chunk_means, ddof=1)) / 2  # equal chunk sizes: the plain batch-means SE
    lo, hi = h.mean_interval()
    t = float(stats.t.ppf(0.975, 3))
    assert hi - h.mean == pytest.approx(t * se, rel=1e-9)
    assert h.mean - lo == pytest.approx(t * se, rel=1e-9)
