"""Analytic cases of MODEL.md §7 (and more derived here) through the whole engine.

Each test builds Params on the all-zero baseline of ``conftest.ZERO_BASE`` (every cost, transfer,
remote state and policy extra zero; ``k`` fixed through ``workload.mm_cpus`` with
``target_prob: 1``), names only the terms of its closed form, runs :func:`mcsmp.sim.run_point`
and compares the recorded histograms (or, with ``keep_samples``, the per-fan-out samples) with the
exact answer:

- delivery exponential(μ), ``k`` targets: ``T`` has CDF ``(1 − e^{−x/μ})^k``, mean ``μ H_k``,
  variance ``μ² Σ_{j≤k} 1/j²`` (Rényi); the pooled remote wait is exponential(μ);
- plus a send stagger δ: CDF ``Π_j (1 − e^{−(x − jδ)/μ})₊`` (quantiles by ``brentq``);
- irq-off with probability f and lognormal length: remote wait CDF ``(1 − f) + f F_e(x)``
  (``F_e`` of MODEL.md §7, the zero mass in the underflow bucket ``[0, 1)``) and ``T`` its k-th power;
- window maximum of exponential sections (``P = T`` exactly for k = 1 under ``preempt_off``):
  ``exp(−W (λ e^{−x/μ} + Σ λ_b e^{−x/μ_b}))``, through :func:`mcsmp.metrics.compute_metrics`;
- k = 0: ``T = S_L``; cluster mode: ``T = (number of clusters hit)·send``; lazy skipping:
  ``k ~ Binomial``; per-CPU rates: sender frequencies; the policy table of MODEL.md §3 row by row
  on the same draws; the re-entry spin of ``policy.reentry: bound``.

Significance: one family at ``ALPHA_FAMILY = 1e-3`` over the ``N_CHECKS`` statistical checks of
this module (Bonferroni): quantile intervals are requested at ``z = Φ⁻¹(1 − α/2)``, means must
lie within ``z·SE`` (SE from the exact variance), frequency tests use ``p > α``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from mcsmp.config import Params
from mcsmp.kernels import codes as K
from mcsmp.metrics import compute as metrics
from mcsmp.metrics import compute_metrics, quantile_label
from mcsmp.sim import PointResult, run_point
from mcsmp.sim.histogram import Histogram
from mcsmp.sim.model import policy_rows

SAMPLES = 200_000
MU = 1000.0  # mean delivery (ns)

Q_EXP = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
Q_STAGGER = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999)
Q_IRQ_WAIT = (0.75, 0.8, 0.9, 0.99, 0.999, 0.9999)  # above the zero mass 1 − f = 0.7
Q_IRQ_T = (0.5, 0.9, 0.99, 0.999)  # above (1 − f)^k = 0.2401
Q_WINDOW = (0.1, 0.5, 0.9, 0.99)
Q_K0 = (0.1, 0.5, 0.9, 0.99)

N_CHECKS = (
    2 * len(Q_EXP) + 2  # T and pooled remote wait quantiles, two means
    + len(Q_STAGGER) + 1  # stagger quantiles, mean
    + len(Q_IRQ_WAIT) + 2 + len(Q_IRQ_T)  # wait quantiles, underflow count, mean; T quantiles
    + len(Q_WINDOW) + 2  # window maximum: all without background, two inside the sample with it
    + len(Q_K0) + 1  # k = 0
    + 1 + 1 + 1  # cluster writes, lazy-skip k, per-CPU sender
    + 1  # atomic_alloc failures
    + 3  # re-entry: pilot mean, spin probability, spin distribution
)  # fmt: skip
ALPHA_FAMILY = 1e-3
ALPHA = ALPHA_FAMILY / N_CHECKS
Z = float(stats.norm.isf(ALPHA / 2))

MakeParams = Callable[..., Params]


def run(params: Params, keep_samples: bool = False) -> PointResult:
    result = run_point(params, keep_samples=keep_samples)
    assert result.complete and result.fanouts == params.samples
    return result


def check_quantiles(hist: Histogram, exact: Callable[[float], float], qs: tuple[float, ...]) -> None:
    for q in qs:
        est = hist.quantile(q, Z)
        x = exact(q)
        assert est.low <= x <= est.high, f"p{q * 100:g}: exact {x:.6g} outside [{est.low:.6g}, {est.high:.6g}] (n={hist.n})"


def check_mean(hist: Histogram, mean: float, var: float) -> None:
    se = math.sqrt(var / hist.n)
    assert abs(hist.mean - mean) <= Z * se, f"mean {hist.mean:.6g} vs exact {mean:.6g} (SE {se:.3g}, z {Z:.2f})"


def check_frequencies(counts: np.ndarray, probs: np.ndarray) -> None:
    assert counts.sum() > 0
    res = stats.chisquare(counts, probs / probs.sum() * counts.sum())
    assert res.pvalue > ALPHA, f"counts {counts.tolist()} vs probabilities {np.round(probs, 5).tolist()}: p = {res.pvalue:.3g}"


def check_binomial(count: int, n: int, p: float) -> None:
    lo, hi = stats.binom.ppf(ALPHA / 2, n, p), stats.binom.isf(ALPHA / 2, n, p)
    assert lo <= count <= hi, f"{count} of {n}, expected {n * p:.1f}, accept [{lo:g}, {hi:g}]"


def exponential(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


# ---------------------------------------------------------------------------------------------
# MODEL.md §7: T of k exponential deliveries


def test_exponential_delivery_max_of_k(make_params: MakeParams) -> None:
    k = 4
    params = make_params({"samples": SAMPLES, "workload.mm_cpus": k, "ipi.delivery_ns": exponential(MU)})
    result = run(params)
    t = result.histogram("call_ns")
    assert t.n == SAMPLES
    check_quantiles(t, lambda q: -MU * math.log1p(-(q ** (1 / k))), Q_EXP)
    harmonic = sum(1 / j for j in range(1, k + 1))
    check_mean(t, MU * harmonic, MU**2 * sum(1 / j**2 for j in range(1, k + 1)))
    # S_L = 0, so T − S_L is T itself, recorded identically.
    np.testing.assert_array_equal(result.counts[K.H_WAIT_TAIL], result.counts[K.H_CALL])
    wait = result.histogram("remote_wait_ns")  # delivery to completion = the delivery itself
    assert wait.n == k * SAMPLES
    check_quantiles(wait, lambda q: -MU * math.log1p(-q), Q_EXP)
    check_mean(wait, MU, MU**2)


def test_send_stagger(make_params: MakeParams) -> None:
    k, delta = 4, 300.0
    params = make_params({
        "samples": SAMPLES, "workload.mm_cpus": k, "ipi.delivery_ns": exponential(MU), "ipi.send_ns": delta,
    })  # fmt: skip

    def cdf(x: float) -> float:
        return math.prod(max(0.0, -math.expm1(-(x - j * delta) / MU)) for j in range(1, k + 1))

    def quantile(q: float) -> float:
        return optimize.brentq(lambda x: cdf(x) - q, k * delta, k * delta + 60 * MU, xtol=1e-9, rtol=1e-14)

    top = k * delta + 60 * MU
    pts = [j * delta for j in range(1, k + 1)]
    m1 = integrate.quad(lambda x: 1 - cdf(x), 0, top, points=pts, limit=200)[0]
    m2 = integrate.quad(lambda x: 2 * x * (1 - cdf(x)), 0, top, points=pts, limit=200)[0]
    t = run(params).histogram("call_ns")
    check_quantiles(t, quantile, Q_STAGGER)
    check_mean(t, m1, m2 - m1 * m1)


# ---------------------------------------------------------------------------------------------
# MODEL.md §7: the remote wait behind irq-off sections


def test_irq_off_residual_wait(make_params: MakeParams) -> None:
    k, f, median, sigma = 4, 0.3, 2000.0, 1.0
    mu = math.log(median)
    m = math.exp(mu + sigma**2 / 2)
    params = make_params({
        "samples": SAMPLES, "workload.mm_cpus": k,
        "remote.irq_off": {"fraction": f, "length": {"dist": "lognormal", "median": median, "sigma": sigma}},
    })  # fmt: skip

    def f_e(x: float) -> float:  # MODEL.md §7
        return x * stats.lognorm.sf(x, sigma, scale=median) / m + stats.norm.cdf((math.log(x) - mu - sigma**2) / sigma)

    def wait_cdf(x: float) -> float:
        return (1 - f) + f * f_e(x)

    def solve(cdf: Callable[[float], float], q: float) -> float:
        lx = optimize.brentq(lambda v: cdf(math.exp(v)) - q, math.log(1e-3), math.log(1e12), xtol=1e-12)
        return math.exp(lx)

    result = run(params)
    wait = result.histogram("remote_wait_ns")
    assert wait.n == k * SAMPLES
    check_quantiles(wait, lambda q: solve(wait_cdf, q), Q_IRQ_WAIT)
    # The zero mass and the residuals below 1 ns: the underflow bucket [0, 1).
    check_binomial(int(wait.counts[0]), wait.n, wait_cdf(1.0))
    # E[R] = E[L²]/(2m), E[R²] = E[L³]/(3m) with E[L^j] = e^{jμ + j²σ²/2}.
    r1 = math.exp(2 * mu + 2 * sigma**2) / (2 * m)
    r2 = math.exp(3 * mu + 4.5 * sigma**2) / (3 * m)
    check_mean(wait, f * r1, f * r2 - (f * r1) ** 2)
    # T is the largest of the k independent waits.
    check_quantiles(result.histogram("call_ns"), lambda q: solve(lambda x: wait_cdf(x) ** k, q), Q_IRQ_T)


# ---------------------------------------------------------------------------------------------
# MODEL.md §7: window maximum (Gumbel)


def _window_setup(make_params: MakeParams, rate: float, background: bool, qs: tuple[float, ...]) -> tuple[Params, Callable[[float], float]]:
    window, bg_rate, bg_mean = 30.0, 2.0, 2000.0
    over: dict[str, Any] = {
        "samples": SAMPLES, "workload.mm_cpus": 1, "workload.rate_hz": rate, "ipi.delivery_ns": exponential(MU),
        "report.window_s": window, "report.quantiles": list(qs),
    }  # fmt: skip
    if background:
        over["background"] = [{"name": "b", "rate_hz": bg_rate, "length": exponential(bg_mean)}]

    def quantile(q: float) -> float:  # P = T = one exponential delivery
        def log_cdf(x: float) -> float:
            return -window * (rate * math.exp(-x / MU) + (bg_rate * math.exp(-x / bg_mean) if background else 0.0))

        return optimize.brentq(lambda v: log_cdf(v) - math.log(q), 0.0, 100 * max(MU, bg_mean), xtol=1e-9)

    return make_params(over), quantile


def _window_rows(params: Params, monkeypatch: pytest.MonkeyPatch) -> dict[str, metrics.MetricRow]:
    # compute_metrics reports pointwise 95% Wilson bands; widen them to this module's level.
    band = metrics.wilson_band
    monkeypatch.setattr(metrics, "wilson_band", lambda p, n, z=Z: band(p, n, z))
    rows = compute_metrics(run(params))
    return {r.statistic: r for r in rows if r.metric == "window_max_ns" and r.policy == "preempt_off"}


@pytest.mark.parametrize("background", [False, True], ids=["calls_only", "with_background"])
def test_window_max_gumbel(make_params: MakeParams, monkeypatch: pytest.MonkeyPatch, background: bool) -> None:
    """Inside the sampled range (≥ 10 calls expected above the exact quantile) the exact value is
    in the reported interval. With the background source, p90/p99 fall where the calls' survival
    is ~1e-6 (outside the sample, see test_window_max_beyond_sample_max): there the curve is the
    background's exact CDF and the value must match to the layout's resolution (one bucket)."""
    rate = 1.0
    qs = Q_WINDOW
    params, quantile = _window_setup(make_params, rate, background, qs)
    got = _window_rows(params, monkeypatch)
    assert set(got) == {quantile_label(q) for q in qs}
    width = 2.0 ** -params.report.precision_bits
    for q in qs:
        row, x = got[quantile_label(q)], quantile(q)
        if not background:
            assert x == pytest.approx(MU * math.log(rate * 30.0 / -math.log(q)), rel=1e-9)
        assert row.low <= row.value <= row.high
        inside = SAMPLES * math.exp(-x / MU) >= 10
        assert inside == (not background or q < 0.9)  # the split the docstring describes
        if inside:
            assert row.low <= x <= row.high, f"p{q * 100:g}: exact {x:.6g} outside [{row.low:.6g}, {row.high:.6g}]"
        else:
            assert row.low * (1 - width) <= x <= row.high * (1 + width), f"p{q * 100:g}: exact {x:.6g} vs {row}"


def test_window_max_beyond_sample_max(make_params: MakeParams, monkeypatch: pytest.MonkeyPatch) -> None:
    """λW = 3000: p99.99 of the window maximum is the calls' 1 − 3.3e-8 quantile, 17.2 µs, while
    200,000 samples reach ~13 µs. The interval must then be open upwards, not [max, max]."""
    params, quantile = _window_setup(make_params, 100.0, False, (0.9999,))
    row = _window_rows(params, monkeypatch)["p99.99"]
    assert row.low <= quantile(0.9999) <= row.high, f"exact {quantile(0.9999):.6g} outside [{row.low:.6g}, {row.high:.6g}]"


# ---------------------------------------------------------------------------------------------
# Derived cases: no targets, IPI writes, target selection, sender selection


def test_no_targets_call_is_sender_work(make_params: MakeParams) -> None:
    """k = 0 (mm_cpus 0): T = S_L = E + L; here E ~ exponential(500) and L = func 200."""
    params = make_params({
        "samples": SAMPLES, "workload.mm_cpus": 0, "workload.run_local": True,
        "costs.entry_ns": exponential(500.0), "costs.func_ns": 200, "ipi.delivery_ns": exponential(MU),
    })  # fmt: skip
    result = run(params, keep_samples=True)
    s = result.samples
    assert s is not None
    assert np.all(s[:, K.S_TARGETS] == 0)
    np.testing.assert_array_equal(s[:, K.S_T], s[:, K.S_SL])
    assert result.histogram("remote_wait_ns").n == 0
    t = result.histogram("call_ns")
    check_quantiles(t, lambda q: 200.0 - 500.0 * math.log1p(-q), Q_K0)
    check_mean(t, 700.0, 500.0**2)


def _cluster_write_probs(n: int, size: int, m: int) -> dict[int, float]:
    """Exact law of the number of cluster writes: uniform sender, uniform m-subset of the others."""
    tally: dict[int, int] = {}
    for s in range(n):
        others = [c for c in range(n) if c != s]
        for sub in itertools.combinations(others, m):
            w = len({c // size for c in sub})
            tally[w] = tally.get(w, 0) + 1
    total = sum(tally.values())
    return {w: c / total for w, c in sorted(tally.items())}


def test_cluster_mode_number_of_writes(make_params: MakeParams) -> None:
    n, size, m, send = 16, 4, 3, 100.0
    base = {"samples": SAMPLES, "machine": {"cpus": n, "sockets": 1, "cpus_per_llc": n, "smt": 1},
            "workload.mm_cpus": m, "ipi.send_ns": send, "ipi.cluster_size": size}  # fmt: skip
    probs = _cluster_write_probs(n, size, m)
    assert set(probs) == {1, 2, 3}
    t = run(make_params({**base, "ipi.mode": "cluster"})).histogram("call_ns")
    layout = t.layout
    buckets = layout.index(np.array([w * send for w in probs]))
    assert len(set(buckets.tolist())) == len(probs)
    counts = t.counts[buckets]
    assert counts.sum() == SAMPLES  # T takes no other value
    check_frequencies(counts, np.array(list(probs.values())))
    # Physical mode, and clusters of one CPU: one write per target, T = m·send always.
    for over in ({"ipi.mode": "physical"}, {"ipi.mode": "cluster", "ipi.cluster_size": 1}):
        t = run(make_params({**base, **over, "samples": 20_000})).histogram("call_ns")
        assert t.counts[layout.index(np.array([m * send]))[0]] == t.n == 20_000
        assert t.total == pytest.approx(m * send * t.n, rel=1e-12)


def test_lazy_skip_makes_k_binomial(make_params: MakeParams) -> None:
    m, p = 6, 0.3
    params = make_params({"samples": 100_000, "workload.mm_cpus": m, "workload.target_prob": p})
    s = run(params, keep_samples=True).samples
    assert s is not None
    counts = np.bincount(s[:, K.S_TARGETS].astype(np.int64), minlength=m + 1)
    assert len(counts) == m + 1
    check_frequencies(counts, stats.binom.pmf(np.arange(m + 1), m, p))


def test_sender_weighted_by_per_cpu_rate(make_params: MakeParams) -> None:
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    params = make_params({"samples": 100_000, "workload.rate_hz": rates})
    result = run(params, keep_samples=True)
    assert result.samples is not None
    counts = np.bincount(result.samples[:, K.S_SENDER].astype(np.int64), minlength=len(rates))
    check_frequencies(counts, np.array(rates))
    # One P histogram per CPU group (here every CPU its own group), adding up to all calls.
    n_pol = len(params.policies)
    for cpu in range(len(rates)):
        g = result.model.group_of[cpu]
        assert result.row_histogram(policy_rows(g, 0, n_pol)[0]).n == counts[cpu]


# ---------------------------------------------------------------------------------------------
# MODEL.md §3: the policy table, row by row, on the same draws

ALL_POLICIES = ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"]
A_NS, R_NS = 50.0, 20.0
CTX_NAMES = {K.CTX_PREEMPTIBLE: "preemptible", K.CTX_SPINLOCK: "spinlock", K.CTX_PREEMPT_DISABLED: "preempt_disabled"}


def expected_policy(policy: str, ctx: str, preemption: str, pinned: bool, t: float, s_l: float,
                    failed: bool = False) -> tuple[float, float]:  # fmt: skip
    """(P, H) of MODEL.md §3's table, re-entry off."""
    if preemption in ("none", "voluntary"):
        return t, t  # nothing is preemptible in the kernel
    allows = not pinned and (ctx == "preemptible" or (ctx == "spinlock" and preemption == "rt"))
    if policy == "preempt_off":
        return t, t
    if policy == "preemptible_wait":
        p = s_l if allows else t
        return p, p
    if policy == "atomic_alloc":
        p = (s_l if allows and not failed else t) + A_NS
        return p, p
    sleepable = not pinned and ctx == "preemptible"
    return (s_l + R_NS if sleepable else t + R_NS), t + R_NS


POLICY_VARIANTS = [
    ("full", {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}, {}),
    ("full", {"preemptible": 0.0, "spinlock": 1.0, "preempt_disabled": 0.0}, {}),
    ("full", {"preemptible": 0.0, "spinlock": 0.0, "preempt_disabled": 1.0}, {}),
    ("lazy", {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}, {}),
    ("rt", {"preemptible": 0.0, "spinlock": 1.0, "preempt_disabled": 0.0}, {}),
    ("rt", {"preemptible": 0.5, "spinlock": 0.3, "preempt_disabled": 0.2}, {}),
    ("none", {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}, {}),
    ("voluntary", {"preemptible": 0.6, "spinlock": 0.4, "preempt_disabled": 0.0}, {}),
    ("full", {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}, {"kernel.csdlock_debug": True}),
    ("rt", {"preemptible": 0.5, "spinlock": 0.5, "preempt_disabled": 0.0}, {"workload.call": "tlb_flush_kernel"}),
]
VARIANT_IDS = ["full-pre", "full-spin", "full-disabled", "lazy-pre", "rt-spin", "rt-mixed", "none", "voluntary",
               "csdlock_debug", "tlb_flush_kernel"]  # fmt: skip


def _policy_params(make_params: MakeParams, preemption: str, caller: dict, extra: dict, **more: Any) -> Params:
    return make_params({
        "samples": 20_000, "policies": ALL_POLICIES, "kernel.preemption": preemption, "workload.caller": caller,
        "workload.mm_cpus": 3, "workload.run_local": True, "costs.entry_ns": 100, "costs.func_ns": 300,
        "ipi.delivery_ns": exponential(MU), "policy.alloc_ns": A_NS, "policy.cpus_read_lock_ns": R_NS,
        **extra, **more,
    })  # fmt: skip


@pytest.mark.parametrize(("preemption", "caller", "extra"), POLICY_VARIANTS, ids=VARIANT_IDS)
def test_policy_table(make_params: MakeParams, preemption: str, caller: dict, extra: dict) -> None:
    params = _policy_params(make_params, preemption, caller, extra)
    pinned = bool(extra.get("kernel.csdlock_debug")) or extra.get("workload.call") == "tlb_flush_kernel"
    result = run(params, keep_samples=True)
    s = result.samples
    assert s is not None
    n_pol = len(ALL_POLICIES)
    t, s_l = s[:, K.S_T], s[:, K.S_SL]
    assert np.all(t >= s_l) and np.any(t > s_l) and np.all(s[:, K.S_SPIN] == 0)
    contexts = {CTX_NAMES[int(c)] for c in np.unique(s[:, K.S_CONTEXT])}
    assert contexts == {c for c, w in caller.items() if w > 0}
    for i, policy in enumerate(ALL_POLICIES):
        want = np.array([
            expected_policy(policy, CTX_NAMES[int(c)], preemption, pinned, ti, si)
            for c, ti, si in zip(s[:, K.S_CONTEXT], t, s_l, strict=True)
        ])  # fmt: skip
        np.testing.assert_array_equal(s[:, K.N_SAMPLE_COLS + i], want[:, 0], err_msg=f"P of {policy}")
        np.testing.assert_array_equal(s[:, K.N_SAMPLE_COLS + n_pol + i], want[:, 1], err_msg=f"H of {policy}")
        # The histograms record exactly these samples.
        p_row, h_row = policy_rows(0, i, n_pol)
        layout = result.layout
        np.testing.assert_array_equal(result.counts[p_row], Histogram.from_values(layout, want[:, 0]).counts)
        np.testing.assert_array_equal(result.counts[h_row], Histogram.from_values(layout, want[:, 1]).counts)


def test_atomic_alloc_failure_rate(make_params: MakeParams) -> None:
    fail = 0.25
    params = _policy_params(make_params, "full", {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0},
                            {"policy.alloc_fail_prob": fail, "samples": 100_000})  # fmt: skip
    s = run(params, keep_samples=True).samples
    assert s is not None
    t, s_l = s[:, K.S_T], s[:, K.S_SL]
    p_atomic = s[:, K.N_SAMPLE_COLS + ALL_POLICIES.index("atomic_alloc")]
    failed = p_atomic == t + A_NS
    np.testing.assert_array_equal(p_atomic[~failed], s_l[~failed] + A_NS)
    distinct = t > s_l  # where T = S_L a failure cannot be told apart
    check_binomial(int(np.sum(failed & distinct)), int(np.sum(distinct)), fail)


def test_reentry_spin(make_params: MakeParams) -> None:
    """reentry bound: with probability λ·E[T − S_L] the wait first spins for a residual of T − S_L.

    k = 1 and S_L = 0, so T − S_L = T ~ exponential(μ), whose equilibrium residual is the same
    exponential; the engine samples it from the pilot's histogram, exact up to the bucket width
    (< 1%, far below what a KS test on ~20,000 spins resolves)."""
    rate = 1e5  # Hz: ρ_w = 1e5 · 1000 ns · 1e-9 = 0.1
    params = make_params({
        "samples": SAMPLES, "policies": ["preempt_off", "preemptible_wait"], "workload.mm_cpus": 1,
        "workload.rate_hz": rate, "ipi.delivery_ns": exponential(MU), "policy.reentry": "bound",
        "workload.caller": {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0},
    })  # fmt: skip
    result = run(params, keep_samples=True)
    s = result.samples
    assert s is not None
    spin, t, s_l = s[:, K.S_SPIN], s[:, K.S_T], s[:, K.S_SL]
    np.testing.assert_array_equal(s[:, K.N_SAMPLE_COLS + 0], t)
    np.testing.assert_array_equal(s[:, K.N_SAMPLE_COLS + 1], s_l + spin)
    # The pilot is every chunk here (fewer than PILOT_CHUNKS): its mean is the mean of T.
    assert abs(result.wait_tail_mean - MU) <= Z * MU / math.sqrt(SAMPLES)
    spins = spin[spin > 0]
    check_binomial(len(spins), SAMPLES, rate * result.wait_tail_mean * 1e-9)
    res = stats.kstest(spins, stats.expon(scale=MU).cdf)
    assert res.pvalue > ALPHA, f"spin vs exponential({MU:g}): KS D = {res.statistic:.4g}, p = {res.pvalue:.3g}"
