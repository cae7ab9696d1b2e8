"""Stratified sampling of the rare remote states (docs/model.md §5 "Rare events", issue 9).

- the conditional sampler (kernels.fanout helpers) against the exact law of a stratum's candidate
  categories (chi-square), and the single-component residual sampler against its closed form (KS);
- closed-form deep tails: zero costs except the remote irq-off residuals of a lognormal + Pareto +
  const mixture, k fixed targets, so ``T = max`` of k iid residuals and
  ``P(T ≤ x) = (1 − f S_e(x))^k`` with the residual survival ``S_e`` derived here from each
  family's ``E[(X − x)⁺]``; the stratified estimate at 1e-6..1e-8 per call, the window-maximum
  p99/p99.9 and an exceedance count inside their intervals;
- crude (``report.rare_events: off``) and stratified runs agree within their intervals on
  params/16core.yaml and params/seed-16core.yaml;
- bit-identity across threads, chunk splits (shards) and resume with stratification on.

Interval coverage over 200 replications is in ``test_rare_coverage`` (slow).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from naive import params_from
from scipy import optimize, stats

from mcsmp._jit import kernel
from mcsmp.api import load
from mcsmp.config import Params
from mcsmp.config.rare import PARETO_TAIL_SHARE
from mcsmp.kernels.fanout import _candidate_category, _first_tail_index, _tail_residual
from mcsmp.kernels.rng import seed_state
from mcsmp.kernels.sampling import sample_residual_row
from mcsmp.metrics import compute_metrics
from mcsmp.sim import PointResult, run_point
from mcsmp.sim.engine import CHUNK_FANOUTS
from mcsmp.sim.model import compile_model

F_IRQ = 0.02
BODY = (0.99946, 2250.0, 0.86)  # weight, median, sigma (lognormal)
PARETO = (5.40e-4, 1.0e5, 3.4)  # weight, scale, alpha
STALL = (9.56e-10, 4.0e7)  # weight, value (const)
K_TARGETS = 15
RATE_HZ = 100.0
WINDOW_S = 30.0
DURATION_H = 9.0


def closed_form_params(seed: int = 1, samples: int = 4 * CHUNK_FANOUTS, rare: str = "auto", **over: Any) -> Params:
    zero = 0
    d: dict[str, Any] = {
        "seed": seed,
        "samples": samples,
        "policies": ["preempt_off"],
        "machine": {"cpus": K_TARGETS + 1, "sockets": 1, "cpus_per_llc": K_TARGETS + 1, "smt": 1},
        "workload": {"call": "generic", "mm_cpus": None, "target_prob": 1.0, "run_local": False, "rate_hz": RATE_HZ},
        "costs": {"entry_ns": zero, "queue_ns": zero, "irq_entry_ns": zero, "func_ns": zero},
        "ipi": {"mode": "physical", "send_ns": zero, "delivery_ns": zero, "cross_socket_ns": zero},
        "cache": {"transfer_ns": {"smt": 0, "llc": 0, "socket": 0, "remote": 0}},
        "remote": {
            "irq_off": {"fraction": F_IRQ, "length": {"dist": "mixture", "components": [
                {"weight": BODY[0], "dist": "lognormal", "median": BODY[1], "sigma": BODY[2]},
                {"weight": PARETO[0], "dist": "pareto", "scale": PARETO[1], "alpha": PARETO[2]},
                {"weight": STALL[0], "dist": "const", "value": STALL[1]},
            ]}},
            "idle": {"fraction": 0.0},
            "vcpu_preempted": {"fraction": 0.0},
        },
        "kernel": {"preemption": "none"},
        "report": {"rare_events": rare, "window_s": WINDOW_S, "duration_h": DURATION_H,
                   "exceed_bins_ns": [1.0e6, 1.0e7, 3.0e7]},
    }  # fmt: skip
    d.update(over)
    return params_from(d)


# ---- the exact law, derived here ----------------------------------------------------------------


def _excess(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``Σ w_i E[(X_i − x)⁺]`` and ``Σ w_i E[X_i]`` of the irq-off length mixture."""
    x = np.asarray(x, dtype=float)
    w0, med, sig = BODY
    mu = math.log(med)
    m0 = math.exp(mu + sig * sig / 2)
    lx = np.log(np.maximum(x, 1e-300))
    e0 = m0 * stats.norm.cdf((mu + sig * sig - lx) / sig) - x * stats.norm.cdf((mu - lx) / sig)
    w1, s1, a1 = PARETO
    m1 = s1 * a1 / (a1 - 1)
    e1 = np.where(x >= s1, s1**a1 * np.maximum(x, s1) ** (1 - a1) / (a1 - 1), m1 - x)
    w2, c2 = STALL
    e2 = np.maximum(c2 - x, 0.0)
    return w0 * e0 + w1 * e1 + w2 * e2, w0 * m0 + w1 * m1 + w2 * c2


def exact_survival(x: np.ndarray) -> np.ndarray:
    """``P(T > x)``: T the maximum of K_TARGETS iid waits, each an irq-off residual with prob F_IRQ."""
    ex, mean = _excess(x)
    per_target = F_IRQ * ex / mean
    return -np.expm1(K_TARGETS * np.log1p(-per_target))


def exact_window_quantile(q: float) -> float:
    """Solve ``exp(−W λ S_T(x)) = q``."""
    level = -math.log(q) / (WINDOW_S * RATE_HZ)
    return math.exp(optimize.brentq(lambda lx: math.log(exact_survival(np.array([math.exp(lx)]))[0]) - math.log(level),
                                 math.log(1e3), math.log(3.9999e7), xtol=1e-12))  # fmt: skip


def exact_count(b0: float, b1: float) -> float:
    s = exact_survival(np.array([b0, b1]))
    return DURATION_H * 3600 * RATE_HZ * float(s[0] - s[1])


# ---- the conditional sampler --------------------------------------------------------------------


@kernel
def _categories(st, m, n, cat_cum, first_law, state, out):  # type: ignore[no-untyped-def]
    """``out[i, r]``: the category of candidate r of fan-out i of stratum ``st``, drawn by the
    kernel's own helpers in the kernel's order."""
    rs = (state[0], state[1], state[2], state[3])
    for i in range(n):
        j, rs = _first_tail_index(st, m, first_law, rs)
        for r in range(m):
            out[i, r], rs = _candidate_category(r, j, st, cat_cum, rs)


@kernel
def _residual_rows(table, row, part, split, state, out):  # type: ignore[no-untyped-def]
    rs = (state[0], state[1], state[2], state[3])
    for i in range(out.shape[0]):
        if part < 0:
            out[i], rs = sample_residual_row(table, row, rs)
        else:
            out[i], rs = _tail_residual(table, row, part, split, rs)


def _state(seed: int) -> np.ndarray:
    return seed_state(np.random.SeedSequence(seed)).copy()


def test_plan_picks_the_rare_long_components_and_exact_stratum_probabilities() -> None:
    plan = compile_model(closed_form_params()).rare
    assert plan.stratified and plan.candidates == K_TARGETS
    comps = [(c.name, c.part) for c in plan.components]
    pareto, stall = "remote.irq_off.length.components[1]", "remote.irq_off.length.components[2]"
    assert comps == [(pareto, 1), (pareto, 2), (stall, 0)]
    _, mean = _excess(np.array([0.0]))
    q_pareto = F_IRQ * PARETO[0] * PARETO[1] * PARETO[2] / (PARETO[2] - 1) / mean
    split = plan.components[0].split
    above = (PARETO[1] / split) ** (PARETO[2] - 1) / PARETO[2]  # Pareto residual survival past its scale
    assert above == pytest.approx(PARETO_TAIL_SHARE, rel=1e-12)
    q = [q_pareto * (1 - above), q_pareto * above, F_IRQ * STALL[0] * STALL[1] / mean]
    assert [c.q for c in plan.components] == pytest.approx(q, rel=1e-12)
    upper = [sum(q[c:]) for c in range(3)] + [0.0]  # Q_c, c = 1..3, Q_4 = 0
    none = [(1 - x) ** K_TARGETS for x in upper]
    assert plan.probs == pytest.approx([none[0]] + [none[s + 1] - none[s] for s in range(3)], rel=1e-9)
    assert sum(plan.probs) == pytest.approx(1.0, abs=1e-15)
    off = compile_model(closed_form_params(rare="off")).rare
    assert not off.stratified and off.n_strata == 1


@pytest.mark.parametrize("st", [0, 1, 2, 3])
def test_stratum_conditional_categories_follow_their_exact_law(st: int) -> None:
    """Chi-square of (a) the number of candidates in the stratum's own category (binomial
    conditioned on ≥ 1), (b) the categories of the other candidates (the law restricted to the
    lower categories), (c) the position of the stratum's candidates (exchangeable)."""
    plan = compile_model(closed_form_params()).rare
    cat_cum, first_law = plan.arrays[0], plan.arrays[1]
    m, n = plan.candidates, 40_000
    # Boost the tail categories so the test has power: the sampler is exact for any probabilities.
    p = np.array([0.1, 0.5, 0.2, 0.12, 0.08])  # not a target, non-tail, tail 1, 2, 3
    cat_cum = np.cumsum(p)
    first_law = first_law.copy()
    for s in (1, 2, 3):
        restricted = cat_cum[s + 1]
        pi = p[s + 1] / restricted
        first_law[s] = (math.log1p(-pi), -math.expm1(m * math.log1p(-pi)))
    out = np.zeros((n, m), dtype=np.int64)
    _categories(st, m, n, cat_cum, first_law, _state(100 + st), out)
    top = st + 1
    assert out.max() <= top
    restricted = p[: top + 1] / p[: top + 1].sum()
    alpha = 1e-3
    if st > 0:
        hits = (out == top).sum(axis=1)
        pi = restricted[top]
        ks = np.arange(1, m + 1)
        law = stats.binom.pmf(ks, m, pi) / (1 - (1 - pi) ** m)
        obs = np.bincount(hits, minlength=m + 1)[1:]
        keep = law * n >= 5
        exp_ = np.append(law[keep] * n, (1 - law[keep].sum()) * n)
        obs_ = np.append(obs[keep], obs[~keep].sum())
        assert stats.chisquare(obs_, exp_).pvalue > alpha
        col = (out == top).sum(axis=0)  # exchangeable positions
        assert stats.chisquare(col).pvalue > alpha
    others = out[out != top] if st > 0 else out.ravel()
    lower = p[: top] / p[: top].sum() if st > 0 else restricted
    obs = np.bincount(others, minlength=len(lower))[: len(lower)]
    assert stats.chisquare(obs, lower * obs.sum()).pvalue > alpha


def test_single_component_residual_matches_its_closed_form() -> None:
    model = compile_model(closed_form_params())
    first = int(model.index[7, 0])  # D_IRQ_OFF_LEN
    _, s1, a1 = PARETO
    out = np.zeros(100_000)
    _residual_rows(model.table, first + 1, -1, 0.0, _state(5), out)
    # residual of Pareto(s, α): survival E[(X − x)⁺]/E[X]
    m1 = s1 * a1 / (a1 - 1)

    def cdf(x: np.ndarray) -> np.ndarray:
        e = np.where(x >= s1, s1**a1 * np.maximum(x, s1) ** (1 - a1) / (a1 - 1), m1 - x)
        return 1 - e / m1

    assert stats.kstest(out, cdf).pvalue > 1e-3
    split = 20 * s1
    below, above = cdf(np.array(split)), 1 - cdf(np.array(split))
    _residual_rows(model.table, first + 1, 1, split, _state(7), out)  # conditioned below the split
    assert out.max() <= split
    assert stats.kstest(out, lambda x: np.minimum(cdf(x) / below, 1.0)).pvalue > 1e-3
    _residual_rows(model.table, first + 1, 2, split, _state(8), out)  # conditioned above it
    assert out.min() >= split
    assert stats.kstest(out, lambda x: np.maximum(cdf(x) - below, 0.0) / above).pvalue > 1e-3
    _residual_rows(model.table, first + 2, -1, 0.0, _state(6), out)  # const 40 ms: Uniform(0, 40 ms)
    assert stats.kstest(out, stats.uniform(0, STALL[1]).cdf).pvalue > 1e-3


# ---- closed-form deep tails ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed() -> PointResult:
    return run_point(closed_form_params(samples=8 * CHUNK_FANOUTS), threads=2)


def test_deep_tail_survival_at_1e6_to_1e8_per_call(closed: PointResult) -> None:
    h = closed.histogram("call_ns")
    assert h.strata is not None
    edges = h.layout.edges
    exact = exact_survival(edges[1:-1])
    est = 1.0 - h.cdf_at_edges()[1:-1]
    sd = np.sqrt(h.cdf_var_at_edges()[1:-1])
    checked = 0
    for level in (1e-6, 3e-7, 1e-7, 3e-8, 1e-8):
        i = int(np.argmin(np.abs(np.log(exact / level))))
        assert sd[i] > 0
        z = (est[i] - exact[i]) / sd[i]
        assert abs(z) < 4.0, (level, edges[i + 1], est[i], exact[i], sd[i])
        assert sd[i] < 0.25 * exact[i]  # resolved (crude: sd = exact · √(1/(n · exact)) ≈ 14 exact at 1e-8)
        assert sd[i] ** 2 * 100 < exact[i] / h.n  # variance reduction ≥ 100 against crude sampling
        checked += 1
    assert checked == 5


def test_window_max_and_exceed_count_inside_their_intervals(closed: PointResult) -> None:
    rows = {(r.metric, r.statistic): r for r in compute_metrics(closed) if r.cpu in ("all", "0")}
    for q, label in ((0.99, "p99"), (0.999, "p99.9")):
        r = rows[("window_max_ns", label)]
        exact = exact_window_quantile(q)
        assert r.low <= exact <= r.high, (label, exact, r)
        assert math.isfinite(r.high) and (r.high - r.low) / 2 < 0.2 * r.value
    for b0, b1 in ((1e6, 1e7), (1e7, 3e7)):
        r = rows[("exceed_count", f"count[{b0:.3g},{b1:.3g})")]
        exact = exact_count(b0, b1)
        assert r.low <= exact <= r.high, (b0, exact, r)
        assert (r.high - r.low) / 2 < 0.3 * r.value


def test_single_call_strata_have_one_candidate() -> None:
    """smp_call_function_single() has one candidate and no lazy skip (docs/model.md 9.37): the
    strata apply with m = 1, and the deep per-call tail is that target's ``f S_e(x)``; a target
    that may idle polling draws that first, so such a point stays crude."""
    single = {"call": "single", "mm_cpus": None, "target_prob": 1.0, "run_local": False, "rate_hz": RATE_HZ}
    res = run_point(closed_form_params(samples=8 * CHUNK_FANOUTS, workload=single), threads=2)
    assert res.model.rare.stratified and res.model.rare.candidates == 1
    h = res.histogram("call_ns")
    edges = h.layout.edges
    ex, mean = _excess(edges[1:-1])
    exact = F_IRQ * ex / mean
    est = 1.0 - h.cdf_at_edges()[1:-1]
    sd = np.sqrt(h.cdf_var_at_edges()[1:-1])
    for level in (1e-6, 1e-7, 1e-8):
        i = int(np.argmin(np.abs(np.log(np.maximum(exact, 1e-300) / level))))
        assert sd[i] > 0 and abs(est[i] - exact[i]) < 4.0 * sd[i], (level, edges[i + 1], est[i], exact[i], sd[i])
        assert sd[i] < 0.25 * exact[i]
    polling = closed_form_params(workload=single, remote={**closed_form_params().resolved["remote"],
                                                          "idle": {"fraction": 0.1, "polling_prob": 0.5}})  # fmt: skip
    assert not compile_model(polling).rare.stratified and "rare_events" not in polling.model_dict()


# ---- crude and stratified agree ------------------------------------------------------------------


# Where crude sampling has many values behind a statistic its interval is trustworthy; deeper in
# the tail a crude run sees a handful of rare events or none, and its own intervals are the ones
# that miss (measured: a single 40-ms stall in 2e5 crude fan-outs gives a Wilson interval for the
# 10-50 ms count of [16.5, 143] against the exact 8.7) -- the problem this method solves. Means
# are left out for the same reason: a mean with a heavy-tailed part (preemptible_wait's P on the
# seed box: 1% of callers wait for T) has a crude batch-means interval that misses what the crude
# run did not see (measured 2553 [2528, 2577] ns crude against 2604 [2577, 2631] stratified).
_BODY_QS = (0.5, 0.9, 0.99, 0.999)
_SAMPLED = ("call_ns", "remote_wait_ns", "info_cost_ns", "preempt_off_ns", "hotplug_block_ns")
ALPHA_AGREE = 1e-2  # family-wise: two intervals of level 1 − β miss each other with probability <= β


def _agree(crude: PointResult, strat: PointResult) -> int:
    """Every body quantile of every sampled metric (pooled over CPUs), crude against stratified:
    their intervals at the Bonferroni level ``β = ALPHA_AGREE / N`` must overlap."""
    pairs = []
    for metric in _SAMPLED:
        for policy in (crude.params.policies if metric in ("preempt_off_ns", "hotplug_block_ns") else ("",)):
            ha, hb = crude.histogram(metric, policy), strat.histogram(metric, policy)
            if ha.n and hb.n:
                pairs += [(metric, policy, q, ha, hb) for q in _BODY_QS]
    z = float(stats.norm.isf(ALPHA_AGREE / len(pairs) / 2))
    for metric, policy, q, ha, hb in pairs:
        ra, rb = ha.quantile(q, z), hb.quantile(q, z)
        assert ra.low <= rb.high and rb.low <= ra.high, (metric, policy, q, ra, rb)
    return len(pairs)


@pytest.mark.parametrize("name,samples", [("16core.yaml", 200_000), ("seed-16core.yaml", 200_000)])
def test_crude_and_stratified_agree_within_their_intervals(name: str, samples: int) -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "params" / name
    strat_p = load(path, [f"samples={samples}"])
    crude_p = load(path, [f"samples={samples}", "report.rare_events=off"])
    strat = run_point(strat_p, threads=2)
    assert strat.model.rare.stratified
    crude = run_point(crude_p, threads=2)
    assert not crude.model.rare.stratified
    assert strat_p.model_hash != crude_p.model_hash  # different points, different files
    assert _agree(crude, strat) >= 28  # (3 + 2 x policies) histograms x 4 quantiles: 44 and 28 here


# ---- bit-identity with strata --------------------------------------------------------------------


def _identical(a: PointResult, b: PointResult) -> None:
    assert np.array_equal(a.counts, b.counts)
    assert sorted(a.chunk_sums) == sorted(b.chunk_sums)
    for chunk in a.chunk_sums:
        assert np.array_equal(a.chunk_sums[chunk], b.chunk_sums[chunk])
    assert a.wait_tail_mean == b.wait_tail_mean
    ra, rb = compute_metrics(a), compute_metrics(b)
    assert [(r.value, r.low, r.high) for r in ra] == [(r.value, r.low, r.high) for r in rb]


def test_stratified_results_are_bit_identical_across_threads_and_shards() -> None:
    p = closed_form_params(samples=3 * CHUNK_FANOUTS - 777, kernel={"preemption": "full"},
                           policies=["preempt_off", "preemptible_wait"], policy={"reentry": "bound"},
                           workload={"call": "generic", "mm_cpus": None, "target_prob": 0.9, "run_local": False,
                                     "rate_hz": [100] * 8 + [2000] * 8,
                                     "caller": {"preemptible": 0.7, "spinlock": 0.3, "preempt_disabled": 0.0}})  # fmt: skip
    one = run_point(p, threads=1)
    assert one.model.rare.stratified and one.model.needs_reentry and one.wait_tail_mean > 0
    _identical(one, run_point(p, threads=2))
    _identical(one, run_point(p, threads=2, chunks=[0, 2]).merge(run_point(p, threads=1, chunks=[1])))
