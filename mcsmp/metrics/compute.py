"""The metrics of docs/model.md §4 (registered in :mod:`.registry`), from a point's histograms.

Sampled metrics (``call_ns``, ``preempt_off_ns``, ``remote_wait_ns``, ``info_cost_ns``) are read
off their histograms: exact means, quantiles with order-statistic intervals.

Derived metrics are computed from the histogram of ``P`` (or ``H``) and the exact CDFs of the
background sources, never by extra sampling. ``window_max_ns`` and ``exceed_count`` propagate a
pointwise 95% Wilson band on the sampled CDF through their (monotone) formulas. The integral
metrics (``wakeup_ns``, ``rendezvous_ns``) depend on the sample only through
``E[(P − x)⁺] = ∫ₓ^∞ S_P``, the mean of ``(P_i − x)⁺`` over the samples: their CDF bands and mean
intervals are delta-method intervals on those sample means (docs/model.md §5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import Params
from ..dists import Dist
from ..errors import OverloadError
from ..sim.engine import PointResult
from ..sim.histogram import Z95, Histogram, wilson_band
from .paired import paired_mean_difference
from .registry import METRICS, quantile_label

__all__ = [
    "MetricRow", "compute_metrics", "diff_statistic", "difference_rows", "paired_histograms", "wakeup_cdf",
    "wilson_band",
]  # fmt: skip

NS_PER_S = 1e9
_SAMPLED = {m.name for m in METRICS.values() if m.kind == "sampled"}


@dataclass(frozen=True)
class MetricRow:
    """One tidy value: a metric's statistic for a policy and CPU, with its 95% interval."""

    metric: str
    policy: str  # "" when the metric does not depend on the policy
    cpu: str  # "all", or a CPU id
    statistic: str  # "mean", "p99", "count[1e+06,1e+07)", "bytes_per_task", …
    value: float
    low: float
    high: float
    n: int  # sampled values behind it (0 for purely analytic values)

    @property
    def beyond_data(self) -> bool:
        """A quantile that sits beyond the data: its 95% interval's upper order statistic
        (``ceil(nq + z sqrt(nq(1-q))) + 1``) exceeds the sample count ``n`` of a sampled metric,
        or (derived metrics) its upper bound is open (``inf``). Its ``high`` is then no bound."""
        if not (self.statistic[:1] == "p" and self.statistic[1:2].isdigit()):
            return False
        if not math.isfinite(self.high):
            return True
        if self.metric not in _SAMPLED or self.n <= 0:
            return False
        q = float(self.statistic[1:]) / 100
        return math.ceil(self.n * q + Z95 * math.sqrt(self.n * q * (1 - q))) + 1 > self.n


@dataclass
class _Curve:
    """A CDF known on an increasing grid, with a lower and an upper band."""

    x: np.ndarray
    cdf: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mean_se: float = 0.0  # standard error of mean() (delta method), 0 when exact

    def quantile(self, q: float) -> tuple[float, float, float]:
        """Point estimate, and an interval that also covers the grid's resolution.

        The band is known at grid points only: if the upper band is below ``q`` at ``x[i−1]`` the
        quantile lies above ``x[i−1]``; if the lower band reaches ``q`` at ``x[i]`` it lies at or
        below ``x[i]`` (``inf`` when the lower band never reaches ``q``).
        """
        i_hi = int(np.searchsorted(self.hi, q, side="left"))
        i_lo = int(np.searchsorted(self.lo, q, side="left"))
        low = float(self.x[max(i_hi - 1, 0)]) if i_hi < len(self.x) else math.inf
        high = float(self.x[i_lo]) if i_lo < len(self.x) else math.inf
        return _inverse(self.x, self.cdf, q), low, high

    def mean(self) -> float:
        """``∫ (1 − F)`` over the grid (CDF linear between grid points), starting at x[0]."""
        s = 1.0 - self.cdf
        finite = np.isfinite(self.x)
        x, s = self.x[finite], s[finite]
        return float(x[0] + np.sum(np.diff(x) * 0.5 * (s[:-1] + s[1:])))


def _inverse(x: np.ndarray, cdf: np.ndarray, q: float) -> float:
    i = int(np.searchsorted(cdf, q, side="left"))
    if i >= len(x):
        return math.inf
    if i == 0 or cdf[i] == cdf[i - 1]:
        return float(x[i])
    x0, x1 = x[i - 1], x[i]
    if not math.isfinite(x1):
        return float(x0)
    return float(x0 + (q - cdf[i - 1]) / (cdf[i] - cdf[i - 1]) * (x1 - x0))


def _interp(x: np.ndarray, cdf: np.ndarray, at: float) -> float:
    finite = np.isfinite(x)
    return float(np.interp(at, x[finite], cdf[finite], right=cdf[finite][-1]))


@dataclass
class _Sampled:
    """CDF of a sampled histogram at its bucket edges, with a pointwise Wilson band."""

    hist: Histogram

    def __post_init__(self) -> None:
        self.edges = self.hist.layout.edges
        self.cdf = self.hist.cdf_at_edges()
        # Wilson (crude) or the stratified band (Histogram.cdf_band). Above the largest sample the
        # lower CDF band stays at the bound for p̂ = 1 (the tail is unknown there, not absent):
        # pointwise metrics get intervals open upwards.
        self.lo, self.hi = self.hist.cdf_band()
        self.lo[0] = self.hi[0] = 0.0
        self.top = int(np.max(np.nonzero(self.hist.counts)[0], initial=0)) + 1

    def survival(self, closed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``1 − F`` and its band; ``closed`` ends the band at the largest sample (for integrals,
        where an open band over the range up to 1e12 ns would be meaningless)."""
        s_lo, s_hi = 1.0 - self.hi, 1.0 - self.lo
        if closed:
            s_lo, s_hi = s_lo.copy(), s_hi.copy()
            s_lo[self.top :] = 0.0
            s_hi[self.top :] = 0.0
        return 1.0 - self.cdf, s_lo, s_hi

    def residual(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equilibrium-residual CDF at the edges (and its band): ``1 − ∫ₓ^∞ S / ∫₀^∞ S``."""
        s, s_lo, s_hi = self.survival(closed=True)
        width = np.diff(self.edges)
        width[~np.isfinite(width)] = 0.0  # the overflow bucket: no mass expected there

        def tail(surv: np.ndarray) -> np.ndarray:
            piece = width * 0.5 * (surv[:-1] + surv[1:])
            return np.concatenate((np.cumsum(piece[::-1])[::-1], [0.0]))

        t, t_lo, t_hi = tail(s), tail(s_lo), tail(s_hi)
        if t[0] <= 0:
            ones = np.ones_like(s)
            return ones, ones, ones
        fe = 1.0 - t / t[0]
        fe_hi = 1.0 - t_lo / max(t_hi[0], 1e-300)
        fe_lo = 1.0 - t_hi / max(t_lo[0], 1e-300)
        return fe, np.clip(fe_lo, 0.0, 1.0), np.clip(fe_hi, 0.0, 1.0)


def _excess_var_of_mean(hist: Histogram, x: np.ndarray) -> np.ndarray:
    """Variance of the (stratified) sample mean of ``(P − x)⁺``: ``Σ_s w_s² Var_s((P − x)⁺)/n_s``
    (crude: ``Var((P − x)⁺)/n``)."""
    if hist.strata is None:
        return _excess_var(hist, x) / max(hist.n, 1)
    return sum((w * w * _excess_var(h, x) / h.n for w, h in hist.parts()), np.zeros_like(x))


def _bin_band(hist: Histogram, sampled: _Sampled, b0: float, b1: float) -> tuple[float, float, float]:
    """``P(b0 ≤ P < b1)`` and its 95% interval: Wilson (crude); stratified, Wald on
    ``Σ_s w_s p_s`` with ``Var = Σ_s w_s² p_s(1 − p_s)/n_s``, and a bin holding no sample at all is
    bounded only by :meth:`Histogram.open_survival` (the tail is unknown there, not absent)."""
    edges = hist.layout.edges
    p_bin = _interp(edges, sampled.cdf, b1) - _interp(edges, sampled.cdf, b0)
    if hist.strata is None:
        lo_bin, hi_bin = wilson_band(np.array([p_bin]), max(hist.n, 1))
        return p_bin, float(lo_bin[0]), float(hi_bin[0])
    var = 0.0
    for w, h in hist.parts():
        f = h.cdf_at_edges()
        p_s = _interp(edges, f, b1) - _interp(edges, f, b0)
        var += w * w * p_s * (1.0 - p_s) / h.n
    if p_bin <= 0.0:
        return 0.0, 0.0, hist.open_survival()
    half = Z95 * math.sqrt(var)
    return p_bin, max(p_bin - half, 0.0), min(p_bin + half, 1.0)


def _influence_se_strat(hist: Histogram, x: np.ndarray, w: np.ndarray) -> float:
    """:func:`_influence_se` of a stratified histogram: ``√(Σ_s w_s² SE_s²)``."""
    if hist.strata is None:
        return _influence_se(hist, x, w)
    return math.sqrt(sum(ws * ws * _influence_se(h, x, w) ** 2 for ws, h in hist.parts()))


def _excess_var(hist: Histogram, x: np.ndarray) -> np.ndarray:
    """``Var((P − x)⁺)`` at each bucket edge ``x`` (the histogram's edges), from bucket midpoints.

    The sample mean of ``(P_i − x)⁺`` is ``∫ₓ^∞ Ŝ``; its variance is this over ``n``.
    """
    n = hist.n
    if n == 0:
        return np.zeros_like(x)
    m = hist.midpoints()
    c = hist.counts.astype(float)

    def tail(v: np.ndarray) -> np.ndarray:
        return np.concatenate((np.cumsum(v[::-1])[::-1], [0.0]))

    a0, a1, a2 = tail(c), tail(c * m), tail(c * m * m)
    xf = np.where(np.isfinite(x), x, 0.0)
    e1 = (a1 - xf * a0) / n
    e2 = (a2 - 2 * xf * a1 + xf * xf * a0) / n
    return np.maximum(e2 - e1 * e1, 0.0)


def _influence_se(hist: Histogram, x: np.ndarray, w: np.ndarray) -> float:
    """Standard error of ``∫ w(x) T̂(x) dx`` with ``T̂(x)`` the sample mean of ``(P_i − x)⁺``: it is
    the sample mean of ``φ(P) = ∫₀^P w(x) (P − x) dx``, so its variance is ``Var φ(P) / n``."""
    n = hist.n
    if n < 2:
        return math.inf if n else 0.0
    finite = np.isfinite(x)
    xf = np.where(finite, x, x[finite][-1])
    wf = np.where(finite, w, 0.0)
    dx = np.diff(xf)
    w0 = np.concatenate(([0.0], np.cumsum(dx * 0.5 * (wf[:-1] + wf[1:]))))  # ∫₀^x w
    xw = xf * wf
    w1 = np.concatenate(([0.0], np.cumsum(dx * 0.5 * (xw[:-1] + xw[1:]))))  # ∫₀^x u w(u) du
    m = hist.midpoints()
    w0m, w1m = 0.5 * (w0[:-1] + w0[1:]), 0.5 * (w1[:-1] + w1[1:])
    phi = m * w0m - w1m
    c = hist.counts.astype(float)
    mean = float(np.sum(c * phi)) / n
    var = float(np.sum(c * (phi - mean) ** 2)) / (n - 1)
    return math.sqrt(var / n)


def _delta_band(cdf: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cdf ± half``, clipped to [0, 1] and made non-decreasing (for quantile inversion)."""
    lo = np.maximum.accumulate(np.clip(cdf - half, 0.0, 1.0))
    hi = np.maximum.accumulate(np.clip(cdf + half, 0.0, 1.0))
    return np.minimum(lo, cdf), np.maximum(hi, cdf)


def _exact_cdf(dist: Dist, x: np.ndarray) -> np.ndarray:
    return dist.cdf(np.where(np.isfinite(x), x, 1e300))


def _exact_residual(dist: Dist, x: np.ndarray) -> np.ndarray:
    if dist.mean <= 0:
        return np.ones_like(x)
    return np.clip(dist.residual_cdf(np.where(np.isfinite(x), x, 1e300)), 0.0, 1.0)


def _rows_from_hist(metric: str, policy: str, cpu: str, hist: Histogram, qs: Sequence[float]) -> list[MetricRow]:
    n = hist.n
    if n == 0:
        return []
    lo, hi = hist.mean_interval()
    rows = [MetricRow(metric, policy, cpu, "mean", hist.mean, lo, hi, n)]
    for q in qs:
        est = hist.quantile(q)
        rows.append(MetricRow(metric, policy, cpu, quantile_label(q), est.value, est.low, est.high, n))
    return rows


def _rows_from_curve(metric: str, policy: str, cpu: str, curve: _Curve, qs: Sequence[float], n: int) -> list[MetricRow]:
    m = curve.mean()
    half = Z95 * curve.mean_se
    rows = [MetricRow(metric, policy, cpu, "mean", m, max(m - half, 0.0), m + half, n)]
    for q in qs:
        v, lo, hi = curve.quantile(q)
        rows.append(MetricRow(metric, policy, cpu, quantile_label(q), v, lo, hi, n))
    return rows


def compute_metrics(result: PointResult) -> list[MetricRow]:
    """Every metric of docs/model.md §4 for one point, as tidy rows."""
    params, model = result.params, result.model
    qs = params.report.quantiles
    rows: list[MetricRow] = []
    for metric in ("call_ns", "remote_wait_ns", "info_cost_ns"):
        rows += _rows_from_hist(metric, "", "all", result.histogram(metric), qs)

    edges = model.layout.edges
    window_s = params.report.window_s
    duration_s = params.report.duration_h * 3600.0
    bg = params.background
    bg_surv = [1.0 - _exact_cdf(b.length, edges) for b in bg]
    bg_res = [_exact_residual(b.length, edges) for b in bg]
    per_cpu = params.workload.rate_per_cpu or any(b.rates for b in bg)
    bins = params.report.exceed_bins_ns
    bg_bin = [[float(_exact_cdf(b.length, np.array([b1]))[0] - _exact_cdf(b.length, np.array([b0]))[0])
               for b0, b1 in zip(bins[:-1], bins[1:], strict=True)] for b in bg]  # fmt: skip

    for policy in params.policies:
        log_rdv = np.zeros_like(edges)
        rdv_groups: list[tuple[Histogram, float, np.ndarray, int]] = []  # H, λ, Σ m_s / G_s(x), members
        for g, rate in enumerate(model.group_rates):
            hp, hh = result.policy_histograms(policy, g)
            if hp.n == 0:  # a CPU group that issues no calls: only background
                sp = _Sampled(Histogram.empty(model.layout))
                rho = rho_h = 0.0
            else:
                sp = _Sampled(hp)
                rho = rate * hp.mean / NS_PER_S
                rho_h = rate * hh.mean / NS_PER_S
            s, s_lo, s_hi = sp.survival()
            fe, _, _ = sp.residual()
            sh = _Sampled(hh) if hh.n else sp
            fh, _, _ = sh.residual()
            wake_half = Z95 * rate / NS_PER_S * np.sqrt(_excess_var_of_mean(hp, edges))
            rdv_coef = np.zeros_like(edges)
            # CPUs of this call-rate group, split by their background rates (per-CPU background)
            subgroups: dict[tuple[float, ...], list[int]] = {}
            for c in np.nonzero(model.group_of == g)[0]:
                subgroups.setdefault(tuple(b.rate_on(int(c)) for b in bg), []).append(int(c))
            for bg_rates, members in subgroups.items():
                cpus = [str(c) for c in members] if per_cpu else ["all"]
                bg_rho = [r * b.length.mean / NS_PER_S for r, b in zip(bg_rates, bg, strict=True)]
                bg_rate_surv = sum((r * sv for r, sv in zip(bg_rates, bg_surv, strict=True)), np.zeros_like(edges))
                _check_load(params, policy, cpus, rate, hp.mean if hp.n else 0.0, rho, bg_rho)

                # window_max_ns: Pr(max ≤ x) = exp(−W (λ S_P(x) + Σ λ_b S_b(x)))
                def window(surv: np.ndarray, rate: float = rate, bgs: np.ndarray = bg_rate_surv) -> np.ndarray:
                    return np.exp(-window_s * (rate * surv + bgs))

                curve = _Curve(edges, window(s), window(s_hi), window(s_lo))
                wq = [(quantile_label(q), *curve.quantile(q)) for q in qs]  # the same for every CPU of the subgroup
                for cpu in cpus:
                    rows += [MetricRow("window_max_ns", policy, cpu, label, v, lo, hi, hp.n) for label, v, lo, hi in wq]

                # exceed_count: expected sections per bin over the report duration
                for j, (b0, b1) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
                    p_bins = _bin_band(sp.hist, sp, b0, b1)
                    bg_part = sum(r * bb[j] for r, bb in zip(bg_rates, bg_bin, strict=True))
                    label = f"count[{b0:.3g},{b1:.3g})"
                    vals = [duration_s * (rate * p + bg_part) for p in p_bins]
                    for cpu in cpus:
                        rows.append(MetricRow("exceed_count", policy, cpu, label, vals[0], vals[1], vals[2], hp.n))

                wake = _wakeup_curve(params, edges, rho, fe, bg_rho, bg_res, wake_half,
                                     _influence_se_strat(hp, edges, np.full_like(edges, rate / NS_PER_S)) if hp.n else 0.0)
                first = _rows_from_curve("wakeup_ns", policy, cpus[0], wake, qs, hp.n)
                for cpu in cpus:
                    rows += [dataclasses.replace(r, cpu=cpu) for r in first] if cpu != cpus[0] else first

                # rendezvous_ns: product over CPUs of the per-CPU residual CDF of H and background
                idle_h = 1.0 - rho_h - sum(bg_rho)
                if idle_h < 0:
                    raise OverloadError(
                        f"{policy}: hotplug-blocking load {rho_h + sum(bg_rho):.3g} >= 1 on CPU(s) {', '.join(cpus)}"
                    )
                base_h = idle_h + sum(r * res for r, res in zip(bg_rho, bg_res, strict=True)) if bg else idle_h
                g_h = np.clip(base_h + rho_h * fh, 1e-300, 1.0)
                log_rdv += len(members) * np.log(g_h)
                rdv_coef += len(members) / g_h
            if hh.n and rate > 0:
                rdv_groups.append((hh, rate / NS_PER_S, rdv_coef, g))
        # rendezvous_ns: δ log R(x) = −Σ_g λ_g c_g(x) δT̂_g(x), T̂_g(x) the sample mean of (H − x)⁺
        rdv_cdf = np.exp(log_rdv)
        var_log = np.zeros_like(edges)
        mean_var = 0.0
        for hh, lam, coef, _ in rdv_groups:
            var_log += (lam * coef) ** 2 * _excess_var_of_mean(hh, edges)
            mean_var += _influence_se_strat(hh, edges, rdv_cdf * lam * coef) ** 2
        sd_log = Z95 * np.sqrt(var_log)
        rdv_lo = np.minimum(np.maximum.accumulate(np.exp(log_rdv - sd_log)), rdv_cdf)
        rdv_hi = np.maximum(np.maximum.accumulate(np.clip(np.exp(log_rdv + sd_log), 0.0, 1.0)), rdv_cdf)
        pooled_p, pooled_h = result.histogram("preempt_off_ns", policy), result.histogram("hotplug_block_ns", policy)
        rows += _rows_from_hist("preempt_off_ns", policy, "all", pooled_p, qs)
        rows += _rows_from_hist("hotplug_block_ns", policy, "all", pooled_h, qs)
        rdv = _Curve(edges, rdv_cdf, rdv_lo, rdv_hi, math.sqrt(mean_var))
        rows += _rows_from_curve("rendezvous_ns", policy, "all", rdv, qs, pooled_h.n)
    rows += policy_difference_rows(result)
    rows += mask_rows(params)
    return rows


# --------------------------------------------------------------------------------------------
# Paired differences on common random numbers (docs/model.md §5)

PAIRED_METRICS = ("call_ns", "info_cost_ns", "remote_wait_ns", "preempt_off_ns", "hotplug_block_ns")


def diff_statistic(baseline: str) -> str:
    """The statistic name of a paired difference of means: ``mean_diff_vs_percpu``."""
    return f"mean_diff_vs_{baseline}"


def paired_histograms(result: PointResult) -> dict[tuple[str, str], Histogram]:
    """The histograms whose means are compared across placements, by (metric, policy)."""
    out = {}
    for metric in PAIRED_METRICS:
        for policy in params_policies(metric, result.params):
            out[(metric, policy)] = result.histogram(metric, policy)
    return out


def params_policies(metric: str, params: Params) -> tuple[str, ...]:
    return params.policies if METRICS[metric].per_policy else ("",)


def difference_rows(
    mine: dict[tuple[str, str], Histogram], base: dict[tuple[str, str], Histogram], baseline: str
) -> list[MetricRow]:
    """``mean(mine) − mean(base)`` per (metric, policy) both have, with paired intervals."""
    rows = []
    for (metric, policy), hist in mine.items():
        other = base.get((metric, policy))
        if other is None or hist.n == 0 or other.n == 0:
            continue
        d = paired_mean_difference(hist, other)
        rows.append(MetricRow(metric, policy, "all", diff_statistic(baseline), d.value, d.low, d.high, hist.n))
    return rows


def policy_difference_rows(result: PointResult) -> list[MetricRow]:
    """P and H of every policy minus those of ``preempt_off`` (else the first policy), paired:
    every policy is evaluated on the same timeline (§3)."""
    pols = result.params.policies
    baseline = "preempt_off" if "preempt_off" in pols else pols[0]
    rows = []
    for metric in ("preempt_off_ns", "hotplug_block_ns"):
        base = {(metric, ""): result.histogram(metric, baseline)}
        for policy in pols:
            if policy != baseline:
                diff = difference_rows({(metric, ""): result.histogram(metric, policy)}, base, baseline)
                rows += [dataclasses.replace(r, policy=policy) for r in diff]
    return rows


def wakeup_cdf(result: PointResult, policy: str, group: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The derived CDF of ``wakeup_ns`` for one policy and CPU group: ``(x, cdf, low, high)``.

    The same curve whose mean and quantiles :func:`compute_metrics` reports (for plots): ``x`` are
    the bucket edges plus ``costs.context_switch_ns``; ``low``/``high`` bound the CDF (95%).
    """
    params, model = result.params, result.model
    hp = result.histogram("preempt_off_ns", policy, group)
    edges = model.layout.edges
    bg = params.background
    first = int(np.nonzero(model.group_of == group)[0][0])
    bg_rho = [b.rate_on(first) * b.length.mean / NS_PER_S for b in bg]
    bg_res = [_exact_residual(b.length, edges) for b in bg]
    rate = model.group_rates[group]
    if hp.n == 0:
        sp, rho = _Sampled(Histogram.empty(model.layout)), 0.0
    else:
        sp, rho = _Sampled(hp), rate * hp.mean / NS_PER_S
    half = Z95 * rate / NS_PER_S * np.sqrt(_excess_var_of_mean(hp, edges))
    wake = _wakeup_curve(params, edges, rho, sp.residual()[0], bg_rho, bg_res, half, 0.0)
    return wake.x, wake.cdf, wake.lo, wake.hi


def _wakeup_curve(
    params: Params,
    edges: np.ndarray,
    rho: float,
    fe: np.ndarray,
    bg_rho: Sequence[float],
    bg_res: Sequence[np.ndarray],
    half: np.ndarray,
    mean_se: float,
) -> _Curve:
    """``wakeup_ns`` (docs/model.md §4): the residual of the section a random instant falls in (a call's,
    with probability ρ, or a background source's), plus a context switch.

    The calls' part of the CDF is ``ρ F_e,P(x) = λ (E[P] − E[(P − x)⁺])``: ``half`` is the 95%
    half-width of ``λ E[(P − x)⁺]`` at each edge, ``mean_se`` the standard error of the mean."""
    base = 1.0 - rho - sum(bg_rho) + sum((r * res for r, res in zip(bg_rho, bg_res, strict=True)), np.zeros_like(edges))
    cdf = base + rho * fe
    lo, hi = _delta_band(cdf, half)
    return _Curve(edges + params.costs.context_switch_ns, cdf, lo, hi, mean_se)


def _check_load(
    params: Params, policy: str, cpus: list[str], rate: float, mean_p: float, rho: float, bg_rho: list[float]
) -> None:
    if rho + sum(bg_rho) < 1.0:
        return
    parts = [f"calls {rate:g} Hz x E[P] {mean_p:.4g} ns = {rho:.3g}"]
    parts += [f"{b.name} {b.rate_hz:g} Hz x {b.length.mean:.4g} ns = {r:.3g}" for b, r in zip(params.background, bg_rho, strict=True)]
    raise OverloadError(
        f"CPU {', '.join(cpus)} is overloaded under {policy}: {' + '.join(parts)} >= 1 "
        "(workload.rate_hz and background rates are too high for these section lengths)"
    )


_KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)


def mask_rows(params: Params) -> list[MetricRow]:
    """``mask_bytes`` (docs/sources.md §6): the task-local cpumask's memory and the GFP_ATOMIC fallback rate."""
    nr_cpus, nr_cpu_ids = params.kernel.nr_cpus, params.machine.cpus
    bits = nr_cpus if nr_cpus <= 256 else nr_cpu_ids  # large_cpumask_bits
    size = math.ceil(bits / 64) * 8  # cpumask_size()
    preemptible = params.kernel.preemption in ("full", "lazy", "rt")
    if not preemptible:
        per_task, inlined = 0, 1  # no task mask without CONFIG_PREEMPTION
    elif size <= 8:
        per_task, inlined = 0, 1  # stashed in the pointer itself
    else:
        per_task, inlined = next((k for k in _KMALLOC_SIZES if k >= size), size), 0
    total = per_task * params.kernel.tasks
    calls_per_s = sum(params.workload.rate_hz)
    fallbacks = calls_per_s * params.policy.alloc_fail_prob
    rows = [
        MetricRow("mask_bytes", "preemptible_wait", "all", "cpumask_size", size, size, size, 0),
        MetricRow("mask_bytes", "preemptible_wait", "all", "inlined", inlined, inlined, inlined, 0),
        MetricRow("mask_bytes", "preemptible_wait", "all", "bytes_per_task", per_task, per_task, per_task, 0),
        MetricRow("mask_bytes", "preemptible_wait", "all", "bytes_total", total, total, total, 0),
        MetricRow("mask_bytes", "atomic_alloc", "all", "fallbacks_per_s", fallbacks, fallbacks, fallbacks, 0),
    ]
    return rows
