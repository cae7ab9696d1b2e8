"""Distributions: parsing, exact means/CDFs, compiled samplers and residual samplers vs independent references.

Every family and form of MODEL.md §8 is drawn through the compiled samplers
(:func:`mcsmp.kernels.sampling.draw` / :func:`~mcsmp.kernels.sampling.draw_residual`) by a test-only
kernel, and compared with a reference built here from SciPy and closed forms, never from
:mod:`mcsmp.distributions` itself:

- continuous parts: Kolmogorov–Smirnov against the reference CDF;
- atoms (``const``, ``choice``, flat empirical segments): chi-square on exact frequencies;
- sample means within ``z·SE`` of the exact mean (SE from the exact variance when finite);
- equilibrium residuals (MODEL.md §1 step 7): closed forms for lognormal (MODEL.md §7),
  exponential and Pareto (derived below), otherwise ``(1/m) ∫₀ˣ (1 − F)`` integrated numerically
  (Gauss–Legendre on a fine grid split at every kink, itself checked against ``scipy.integrate.quad``);
- extreme tails: exceedance counts above the exact ``1 − 1e-5``, ``1 − 1e-6`` and ``1 − 1e-7``
  quantiles against exact binomial intervals.

Significance: the whole module is one family at ``ALPHA_FAMILY = 1e-3``; every statistical check
uses the Bonferroni level ``ALPHA_FAMILY / N_CHECKS``, where ``N_CHECKS`` is an upper bound on the
number of statistical checks in this module (counted from the case tables below). Seeds are fixed,
so results are deterministic; the level says how surprising a failure would be for a correct sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import encoded_between_neighbours as _encoded
from generator_twins import draw, draw_residual
from scipy import integrate, optimize, special, stats

from mcsmp._jit import kernel
from mcsmp.dists import Dist, parse_dist
from mcsmp.errors import ParamError

# ---------------------------------------------------------------------------------------------
# Test-only kernels


@kernel
def _fill(index, table, dist, rng, out, residual):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        if residual:
            out[i] = draw_residual(index, table, dist, rng)
        else:
            out[i] = draw(index, table, dist, rng)


@kernel
def _count_above(index, table, dist, rng, n, thresholds, residual, counts):  # type: ignore[no-untyped-def]
    for _ in range(n):
        v = draw_residual(index, table, dist, rng) if residual else draw(index, table, dist, rng)
        for j in range(thresholds.shape[0]):
            if v > thresholds[j]:
                counts[j] += 1




def sample(d: Dist, n: int, seed: int, residual: bool = False) -> np.ndarray:
    """``n`` compiled draws (or residual draws) of ``d`` from a fixed-seed PCG64 stream."""
    index, table, i = _encoded(d)
    out = np.empty(n, dtype=np.float64)
    _fill(index, table, i, np.random.Generator(np.random.PCG64(seed)), out, residual)
    return out


# ---------------------------------------------------------------------------------------------
# Independent references


def _mix(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    return np.sum([w * v for w, v in parts], axis=0)


@dataclass(frozen=True)
class Ref:
    """A distribution known independently: atoms ``(value, prob)`` plus a continuous part.

    ``ccdf``/``csf`` are the continuous part's conditional CDF and survival; ``moments`` the raw
    moments ``E[X], E[X²], E[X³]`` (``inf`` when infinite); ``breaks`` the kinks and jumps of
    ``F`` (for the quadrature); ``residual_cdf`` a closed-form equilibrium CDF when one is known.
    """

    atoms: tuple[tuple[float, float], ...] = ()
    cw: float = 0.0
    ccdf: Callable[[np.ndarray], np.ndarray] | None = None
    csf: Callable[[np.ndarray], np.ndarray] | None = None
    moments: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    breaks: tuple[float, ...] = ()
    residual_cdf: Callable[[np.ndarray], np.ndarray] | None = None
    residual_sf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def cdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.zeros_like(x)
        for v, p in self.atoms:
            out = out + p * (x >= v)
        if self.cw > 0:
            assert self.ccdf is not None
            out = out + self.cw * self.ccdf(x)
        return out

    def sf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.zeros_like(x)
        for v, p in self.atoms:
            out = out + p * (x < v)
        if self.cw > 0:
            assert self.csf is not None
            out = out + self.cw * self.csf(x)
        return out

    @property
    def mean(self) -> float:
        return self.moments[0]

    @property
    def var(self) -> float:
        return self.moments[1] - self.moments[0] ** 2

    @property
    def residual_moments(self) -> tuple[float, float]:
        """``E[R] = E[X²]/(2m)`` and ``E[R²] = E[X³]/(3m)`` of the equilibrium residual."""
        m1, m2, m3 = self.moments
        return m2 / (2 * m1), m3 / (3 * m1)


def continuous(cdf: Callable, sf: Callable, moments: tuple[float, float, float], breaks=(), **kw: Any) -> Ref:
    return Ref((), 1.0, cdf, sf, tuple(float(m) for m in moments), tuple(breaks), **kw)  # type: ignore[arg-type]


def atoms(values: list[float], probs: list[float]) -> Ref:
    merged: dict[float, float] = {}
    for v, p in zip(values, probs, strict=True):
        merged[float(v)] = merged.get(float(v), 0.0) + p / sum(probs)
    at = tuple(sorted(merged.items()))
    mom = tuple(sum(p * v**k for v, p in at) for k in (1, 2, 3))
    return Ref(at, 0.0, None, None, mom, tuple(v for v, _ in at))  # type: ignore[arg-type]


def mixture(parts: list[tuple[float, Ref]]) -> Ref:
    total = sum(w for w, _ in parts)
    parts = [(w / total, r) for w, r in parts]
    merged: dict[float, float] = {}
    for w, r in parts:
        for v, p in r.atoms:
            merged[v] = merged.get(v, 0.0) + w * p
    cont = [(w * r.cw, r) for w, r in parts if r.cw > 0]
    cw = sum(w for w, _ in cont)

    def ccdf(x: np.ndarray) -> np.ndarray:
        return _mix([(w / cw, r.ccdf(x)) for w, r in cont])  # type: ignore[misc]

    def csf(x: np.ndarray) -> np.ndarray:
        return _mix([(w / cw, r.csf(x)) for w, r in cont])  # type: ignore[misc]

    mom = tuple(sum(w * r.moments[k] for w, r in parts) for k in range(3))
    breaks = tuple(sorted({b for _, r in parts for b in r.breaks}))
    return Ref(tuple(sorted(merged.items())), cw, ccdf if cw else None, csf if cw else None, mom, breaks)  # type: ignore[arg-type]


def piecewise_linear_quantiles(qs: list[float], xs: list[float]) -> Ref:
    """Empirical {q: x} with strictly increasing x: F is the linear interpolation of (x, q)."""
    q, x = np.asarray(qs, float), np.asarray(xs, float)
    assert np.all(np.diff(x) > 0)
    dq, x0, x1 = np.diff(q), x[:-1], x[1:]
    # E[X^k] = ∫₀¹ Q(u)^k du with Q linear on each segment.
    mom = tuple(float(np.sum(dq * (x1 ** (k + 1) - x0 ** (k + 1)) / ((k + 1) * (x1 - x0)))) for k in (1, 2, 3))
    return continuous(
        lambda t: np.interp(t, x, q, left=0.0, right=1.0),
        lambda t: 1.0 - np.interp(t, x, q, left=0.0, right=1.0),
        mom,  # type: ignore[arg-type]
        breaks=tuple(x),
    )


# -- the seven basic families, with raw moments in closed form ---------------------------------


def ref_uniform(a: float, b: float) -> Ref:
    fr = stats.uniform(a, b - a)
    return continuous(fr.cdf, fr.sf, [(b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a)) for k in (1, 2, 3)], (a, b))


def ref_exponential(mu: float) -> Ref:
    fr = stats.expon(scale=mu)
    # Memorylessness: the equilibrium residual of an exponential is the same exponential.
    return continuous(fr.cdf, fr.sf, [math.factorial(k) * mu**k for k in (1, 2, 3)],
                      residual_cdf=fr.cdf, residual_sf=fr.sf)  # fmt: skip


def ref_lognormal(mu: float, sigma: float) -> Ref:
    fr = stats.lognorm(sigma, scale=math.exp(mu))
    m = math.exp(mu + sigma**2 / 2)

    def fe(x: np.ndarray) -> np.ndarray:
        # MODEL.md §7: F_e(x) = x (1 − F(x)) / m + Φ((ln x − μ − σ²)/σ)
        x = np.asarray(x, float)
        with np.errstate(divide="ignore"):
            return x * fr.sf(x) / m + stats.norm.cdf((np.log(x) - mu - sigma**2) / sigma)

    def fe_sf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        with np.errstate(divide="ignore"):
            return stats.norm.sf((np.log(x) - mu - sigma**2) / sigma) - x * fr.sf(x) / m

    return continuous(fr.cdf, fr.sf, [math.exp(k * mu + k * k * sigma**2 / 2) for k in (1, 2, 3)],
                      residual_cdf=fe, residual_sf=fe_sf)  # fmt: skip


def ref_gamma(shape: float, scale: float) -> Ref:
    mom = [scale**k * math.exp(special.gammaln(shape + k) - special.gammaln(shape)) for k in (1, 2, 3)]

    def cdf(x: np.ndarray) -> np.ndarray:
        return special.gammainc(shape, np.maximum(x, 0.0) / scale)

    def sf(x: np.ndarray) -> np.ndarray:
        # gammaincc is slow below x = 1 for shape < 1, where 1 − gammainc loses nothing.
        z = np.maximum(np.asarray(x, float), 0.0) / scale
        out = np.empty_like(z)
        low = z < 1.0
        out[low] = 1.0 - special.gammainc(shape, z[low])
        out[~low] = special.gammaincc(shape, z[~low])
        return out

    return continuous(cdf, sf, mom)  # type: ignore[arg-type]


def ref_weibull(scale: float, shape: float) -> Ref:
    fr = stats.weibull_min(shape, scale=scale)
    return continuous(fr.cdf, fr.sf, [scale**k * math.gamma(1 + k / shape) for k in (1, 2, 3)])


def ref_pareto(s: float, alpha: float) -> Ref:
    fr = stats.pareto(alpha, scale=s)

    # Derivation: ∫₀ˣ (1 − F) = x for x ≤ s, and s + s/(α−1)·(1 − (s/x)^(α−1)) for x > s; with
    # m = α s/(α−1):  F_e(x) = (α−1) x/(α s) for x ≤ s,  1 − (s/x)^(α−1)/α for x > s.
    def fe(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return np.where(x <= s, (alpha - 1) * x / (alpha * s), 1.0 - fe_sf(x))

    def fe_sf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return np.where(x <= s, 1.0 - (alpha - 1) * x / (alpha * s), (s / np.maximum(x, s)) ** (alpha - 1) / alpha)

    mom = [alpha * s**k / (alpha - k) if alpha > k else math.inf for k in (1, 2, 3)]
    return continuous(fr.cdf, fr.sf, mom, (s,), residual_cdf=fe, residual_sf=fe_sf)  # type: ignore[arg-type]


# -- the empirical {file, column} data ----------------------------------------------------------

CSV_VALUES = np.round(np.random.default_rng(20240611).lognormal(7.0, 0.6, size=40), 3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("empirical")
    lines = ["# a comment line is skipped", "name,lat_ns"]
    lines += [f"r{i},{float(v)!r}" for i, v in enumerate(CSV_VALUES)]
    (d / "lat.csv").write_text("\n".join(lines) + "\n")
    (d / "bare.csv").write_text("\n".join(f"{float(v)!r}" for v in CSV_VALUES[::-1]) + "\n")
    return d


_CSV_REF = piecewise_linear_quantiles(list(np.linspace(0, 1, len(CSV_VALUES))), list(np.sort(CSV_VALUES)))


# -- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: cached draws per case
class Case:
    name: str
    spec: Any
    ref: Ref
    seed: int


_LN_CV_SIGMA = math.sqrt(math.log(1 + 0.5**2))  # lognormal {mean 1500, cv 0.5}: σ² = ln(1 + cv²)
_NESTED = mixture([
    (2.0, mixture([(1.0, ref_uniform(0, 100)), (3.0, ref_gamma(4.0, 125.0))])),
    (1.0, ref_weibull(300, 2.0)),
    (1.0, ref_pareto(50, 3.5)),
])  # fmt: skip

CASES = [
    Case("number", 42, atoms([42.0], [1.0]), 1),
    Case("const", {"dist": "const", "value": 750}, atoms([750.0], [1.0]), 2),
    Case("uniform", {"dist": "uniform", "low": 100, "high": 300}, ref_uniform(100, 300), 3),
    Case("exponential", {"dist": "exponential", "mean": 1000}, ref_exponential(1000), 4),
    Case("lognormal_median", {"dist": "lognormal", "median": 2000, "sigma": 0.8}, ref_lognormal(math.log(2000), 0.8), 5),
    Case("lognormal_mean_cv", {"dist": "lognormal", "mean": 1500, "cv": 0.5},
         ref_lognormal(math.log(1500 / math.sqrt(1 + 0.5**2)), _LN_CV_SIGMA), 6),
    Case("gamma", {"dist": "gamma", "mean": 1000, "cv": 0.7}, ref_gamma(1 / 0.49, 490.0), 7),
    Case("gamma_shape_below_1", {"dist": "gamma", "mean": 1000, "cv": 2.0}, ref_gamma(0.25, 4000.0), 8),
    Case("weibull", {"dist": "weibull", "scale": 1000, "shape": 1.5}, ref_weibull(1000, 1.5), 9),
    Case("weibull_heavy", {"dist": "weibull", "scale": 1000, "shape": 0.5}, ref_weibull(1000, 0.5), 10),
    Case("pareto", {"dist": "pareto", "scale": 100, "alpha": 2.5}, ref_pareto(100, 2.5), 11),
    Case("pareto_infinite_variance", {"dist": "pareto", "scale": 100, "alpha": 1.5}, ref_pareto(100, 1.5), 12),
    Case("choice", {"dist": "choice", "values": [1, 8, 64], "weights": [0.6, 0.3, 0.1]},
         atoms([1, 8, 64], [0.6, 0.3, 0.1]), 13),
    Case("choice_unweighted_repeat", {"dist": "choice", "values": [10, 20, 30, 20]},
         atoms([10, 20, 30, 20], [1, 1, 1, 1]), 14),
    Case("empirical_quantiles", {"dist": "empirical", "quantiles": {0: 100, 0.5: 200, 0.9: 1000, 1.0: 5000}},
         piecewise_linear_quantiles([0, 0.5, 0.9, 1.0], [100, 200, 1000, 5000]), 15),
    Case("empirical_flat_segment", {"dist": "empirical", "quantiles": {0.0: 0, 0.3: 0, 1.0: 10}},
         mixture([(0.3, atoms([0.0], [1.0])), (0.7, ref_uniform(0, 10))]), 16),
    Case("empirical_file", {"dist": "empirical", "file": "lat.csv", "column": "lat_ns"}, _CSV_REF, 17),
    Case("empirical_file_index", {"dist": "empirical", "file": "bare.csv", "column": 0}, _CSV_REF, 18),
    Case("mixture", {"dist": "mixture", "components": [
            {"weight": 0.7, "dist": "exponential", "mean": 100},
            {"weight": 0.3, "dist": "lognormal", "median": 1000, "sigma": 0.5}]},
         mixture([(0.7, ref_exponential(100)), (0.3, ref_lognormal(math.log(1000), 0.5))]), 19),
    Case("mixture_with_atom", {"dist": "mixture", "components": [
            {"weight": 1, "dist": "const", "value": 200},
            {"weight": 1, "dist": "exponential", "mean": 100}]},
         mixture([(1, atoms([200.0], [1.0])), (1, ref_exponential(100))]), 20),
    Case("nested_mixture", {"dist": "mixture", "components": [
            {"weight": 2, "dist": "mixture", "components": [
                {"weight": 1, "dist": "uniform", "low": 0, "high": 100},
                {"weight": 3, "dist": "gamma", "mean": 500, "cv": 0.5}]},
            {"weight": 1, "dist": "weibull", "scale": 300, "shape": 2.0},
            {"weight": 1, "dist": "pareto", "scale": 50, "alpha": 3.5}]}, _NESTED, 21),
]  # fmt: skip

N_DRAWS = 200_000
TAIL_LEVELS = (1e-5, 1e-6, 1e-7)  # exceedance probabilities; at 1e7 draws: 100, 10 and 1 expected
N_TAIL = 10_000_000

# Per case at most: KS + chi-square (draw), mean (draw), KS (residual), mean (residual) = 5.
TAIL_CASES_COUNT = 6
N_CHECKS = 5 * len(CASES) + TAIL_CASES_COUNT * len(TAIL_LEVELS)
ALPHA_FAMILY = 1e-3
ALPHA = ALPHA_FAMILY / N_CHECKS
Z = float(stats.norm.isf(ALPHA / 2))

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def parsed(data_dir: Path) -> Callable[[Case], Dist]:
    return lambda case: parse_dist(case.spec, "x", data_dir)


@pytest.fixture(scope="module")
def draws(parsed: Callable[[Case], Dist]) -> Callable[[Case, bool], np.ndarray]:
    @cache
    def get(case: Case, residual: bool) -> np.ndarray:
        return sample(parsed(case), N_DRAWS, case.seed * 2 + residual, residual)

    return get


# ---------------------------------------------------------------------------------------------
# Exact means and CDFs (no sampling)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exact_mean_and_cdf_match_reference(case: Case, parsed: Callable[[Case], Dist]) -> None:
    d = parsed(case)
    assert d.mean == pytest.approx(case.ref.mean, rel=1e-12)
    hi = max(case.ref.breaks + (case.ref.mean,)) * 50
    x = np.concatenate((np.linspace(0, hi, 3001), np.array(case.ref.breaks), np.array(case.ref.breaks) - 1e-9))
    np.testing.assert_allclose(d.cdf(x), case.ref.cdf(x), rtol=0, atol=1e-12)


def test_parameterisations_match_their_definitions() -> None:
    """The {mean, cv} forms really have that mean and coefficient of variation (SciPy's moments)."""
    ln = stats.lognorm(_LN_CV_SIGMA, scale=1500 / math.sqrt(1 + 0.25))
    assert ln.mean() == pytest.approx(1500, rel=1e-12)
    assert ln.std() / ln.mean() == pytest.approx(0.5, rel=1e-12)
    for cv in (0.7, 2.0):
        g = stats.gamma(1 / cv**2, scale=1000 * cv**2)
        assert g.mean() == pytest.approx(1000, rel=1e-12)
        assert g.std() / g.mean() == pytest.approx(cv, rel=1e-12)
    # The closed-form moments of the references agree with SciPy where those exist.
    for ref, fr in [
        (ref_weibull(1000, 0.5), stats.weibull_min(0.5, scale=1000)),
        (ref_gamma(0.25, 4000.0), stats.gamma(0.25, scale=4000.0)),
        (ref_pareto(100, 3.5), stats.pareto(3.5, scale=100)),
        (ref_lognormal(1.0, 0.8), stats.lognorm(0.8, scale=math.e)),
        (ref_uniform(100, 300), stats.uniform(100, 200)),
    ]:
        assert ref.moments[0] == pytest.approx(fr.mean(), rel=1e-9)
        assert ref.moments[1] == pytest.approx(fr.moment(2), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Compiled draws


def _check_sample(values: np.ndarray, ref: Ref) -> None:
    """Atoms by chi-square on exact frequencies, the continuous part by KS on the other values."""
    at = np.array([v for v, _ in ref.atoms])
    on_atom = np.isin(values, at)
    if len(at):
        counts = [int(np.sum(values == v)) for v, _ in ref.atoms]
        probs = [p for _, p in ref.atoms]
        if ref.cw > 0:
            counts.append(int(np.sum(~on_atom)))
            probs.append(ref.cw)
        assert sum(counts) == len(values), "values off the atoms of a discrete distribution"
        if len(counts) > 1:
            res = stats.chisquare(counts, np.array(probs) * len(values))
            assert res.pvalue > ALPHA, f"atom frequencies {counts} vs {probs}: p = {res.pvalue:.3g}"
    if ref.cw > 0:
        res = stats.kstest(values[~on_atom], ref.ccdf)
        assert res.pvalue > ALPHA, f"KS D = {res.statistic:.4g}, p = {res.pvalue:.3g}"


def _check_mean(values: np.ndarray, mean: float, second: float) -> None:
    """Sample mean within z·SE of the exact mean; SE from the exact variance when it is finite."""
    var = second - mean * mean if math.isfinite(second) else float(np.var(values, ddof=1))
    se = math.sqrt(max(var, 0.0) / len(values))
    if se == 0.0:
        assert np.all(values == mean)
        return
    assert abs(values.mean() - mean) <= Z * se, f"mean {values.mean():.6g} vs exact {mean:.6g} (SE {se:.3g}, z {Z:.2f})"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draw_matches_reference_distribution(case: Case, draws: Callable) -> None:
    _check_sample(draws(case, False), case.ref)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draw_mean(case: Case, draws: Callable, parsed: Callable) -> None:
    values = draws(case, False)
    # Dist.mean is checked against the closed form above; here the sampler against Dist.mean.
    _check_mean(values, parsed(case).mean, case.ref.moments[1])


# ---------------------------------------------------------------------------------------------
# Equilibrium residuals


@dataclass
class ResidualRef:
    """``F_e`` of a :class:`Ref`: its closed form, or ``(1/m) ∫₀ˣ (1 − F)`` integrated numerically."""

    ref: Ref
    grid: np.ndarray | None = None
    integral: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.ref.residual_cdf is None:
            self.grid, self.integral = _integrated_survival(self.ref)
            # The integral over everything is the mean: a check of the grid and of the moments.
            assert self.integral[-1] == pytest.approx(self.ref.mean, rel=1e-9)

    def cdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, float)
        if self.ref.residual_cdf is not None:
            return self.ref.residual_cdf(x)
        assert self.grid is not None and self.integral is not None
        # Integral up to the grid point below x, plus Gauss–Legendre over the rest of its cell
        # (no kink inside: every kink is a grid point).
        flat = np.clip(x.ravel(), 0.0, self.grid[-1])
        i = np.clip(np.searchsorted(self.grid, flat, side="right") - 1, 0, len(self.grid) - 2)
        part = _gauss_legendre(self.ref, self.grid[i], flat, order=4)  # a part of one small cell
        return ((self.integral[i] + part) / self.ref.mean).reshape(x.shape)


def _gauss_legendre(ref: Ref, a: np.ndarray, b: np.ndarray, order: int = 10) -> np.ndarray:
    """``∫ₐᵇ (1 − F)`` for each cell by Gauss–Legendre: exact to rounding on small smooth cells."""
    gl_nodes, gl_weights = np.polynomial.legendre.leggauss(order)
    mid, half = 0.5 * (a + b), 0.5 * (b - a)
    nodes = mid[:, None] + half[:, None] * gl_nodes[None, :]
    return half * (ref.sf(nodes) @ gl_weights)


def _integrated_survival(ref: Ref) -> tuple[np.ndarray, np.ndarray]:
    """Grid ``x`` (every kink of ``F`` is a grid point) and ``∫₀ˣ (1 − F)`` at each grid point."""
    hi = max((ref.mean, *ref.breaks)) * 4
    while ref.sf(np.array(hi)) * hi > 1e-13 * ref.mean:  # tail beyond hi: < sf(hi)·hi/(α−1) for Pareto
        hi *= 2
    lo = ref.mean * 1e-7
    pos = [b for b in ref.breaks if 0 < b < hi]
    x = np.unique(np.concatenate(([0.0], np.geomspace(lo, hi, 6000), pos)))
    return x, np.concatenate(([0.0], np.cumsum(_gauss_legendre(ref, x[:-1], x[1:]))))


@pytest.fixture(scope="module")
def residual_refs() -> Callable[[Case], ResidualRef]:
    return cache(lambda case: ResidualRef(case.ref))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_residual_cdf_matches_reference(case: Case, parsed: Callable, residual_refs: Callable) -> None:
    d, rr = parsed(case), residual_refs(case)
    ref = case.ref
    hi = max(ref.breaks + (ref.mean,)) * 20
    x = np.concatenate((np.linspace(0, hi, 2001), np.array(ref.breaks)))
    np.testing.assert_allclose(d.residual_cdf(x), rr.cdf(x), rtol=0, atol=1e-9)
    # Spot checks by adaptive quadrature, independent of the grid and of the closed forms.
    for xi in np.quantile(x, [0.001, 0.01, 0.05, 0.2, 0.5, 0.9]):
        pts = [b for b in ref.breaks if 0 < b < xi] or None
        val, _ = integrate.quad(lambda t: float(ref.sf(np.array(t))), 0.0, float(xi), points=pts, limit=200,
                                epsabs=1e-12 * ref.mean, epsrel=1e-11)  # fmt: skip
        assert d.residual_cdf(xi) == pytest.approx(val / ref.mean, abs=1e-9)
        assert rr.cdf(xi) == pytest.approx(val / ref.mean, abs=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draw_residual_matches_equilibrium_cdf(case: Case, draws: Callable, residual_refs: Callable) -> None:
    values = draws(case, True)
    assert np.all(values >= 0)
    res = stats.kstest(values, residual_refs(case).cdf)
    assert res.pvalue > ALPHA, f"KS D = {res.statistic:.4g}, p = {res.pvalue:.3g}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draw_residual_mean(case: Case, draws: Callable) -> None:
    mean, second = case.ref.residual_moments
    if not math.isfinite(mean):
        pytest.skip("E[X²] is infinite: the residual has no mean")
    _check_mean(draws(case, True), mean, second)


# ---------------------------------------------------------------------------------------------
# Extreme tails (issue 4)


def _tail_cases() -> list[tuple[str, dict[str, Any], bool, Callable[[float], float]]]:
    ln = stats.lognorm(1.5, scale=1000.0)
    ln_res = ref_lognormal(math.log(1000.0), 1.5)
    ln_res_sf = ln_res.residual_sf
    assert ln_res_sf is not None
    alpha, s = 2.5, 100.0

    def ln_res_isf(p: float) -> float:
        f = lambda lx: math.log(float(ln_res_sf(np.array(math.exp(lx))))) - math.log(p)  # noqa: E731
        return math.exp(optimize.brentq(f, math.log(1.0), math.log(1e15), xtol=1e-14, rtol=1e-14))

    return [
        ("lognormal", {"dist": "lognormal", "median": 1000, "sigma": 1.5}, False, ln.isf),
        ("exponential", {"dist": "exponential", "mean": 1000}, False, stats.expon(scale=1000).isf),
        ("pareto", {"dist": "pareto", "scale": s, "alpha": alpha}, False, stats.pareto(alpha, scale=s).isf),
        ("weibull", {"dist": "weibull", "scale": 1000, "shape": 0.5}, False, stats.weibull_min(0.5, scale=1000).isf),
        ("lognormal_residual", {"dist": "lognormal", "median": 1000, "sigma": 1.5}, True, ln_res_isf),
        # Pareto residual survival (derived above): (s/x)^(α−1)/α  ⇒  x = s (α p)^(−1/(α−1)).
        ("pareto_residual", {"dist": "pareto", "scale": s, "alpha": alpha}, True,
         lambda p: s * (alpha * p) ** (-1 / (alpha - 1))),
    ]  # fmt: skip


TAIL_CASES = _tail_cases()
TAIL_NAMES = [t[0] for t in TAIL_CASES]
assert len(TAIL_CASES) == TAIL_CASES_COUNT


def _check_tail(spec: dict[str, Any], residual: bool, isf: Callable, n: int, levels: tuple[float, ...], seed: int) -> None:
    d = parse_dist(spec, "x")
    index, table, i = _encoded(d)
    thresholds = np.array([isf(p) for p in levels])
    counts = np.zeros(len(levels), dtype=np.int64)
    _count_above(index, table, i, np.random.Generator(np.random.PCG64(seed)), n, thresholds, residual, counts)
    for p, x, c in zip(levels, thresholds, counts, strict=True):
        # Exact two-sided binomial acceptance region at level ALPHA.
        lo, hi = stats.binom.ppf(ALPHA / 2, n, p), stats.binom.isf(ALPHA / 2, n, p)
        assert lo <= c <= hi, f"{c} draws above the 1 − {p:g} quantile {x:.6g}; expected {n * p:g}, accept [{lo:g}, {hi:g}]"


@pytest.mark.parametrize(("name", "spec", "residual", "isf"), TAIL_CASES, ids=TAIL_NAMES)
def test_extreme_tail_exceedances(name: str, spec: dict, residual: bool, isf: Callable) -> None:
    _check_tail(spec, residual, isf, N_TAIL, TAIL_LEVELS, seed=700 + TAIL_NAMES.index(name))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "spec", "residual", "isf"), TAIL_CASES, ids=TAIL_NAMES)
def test_extreme_tail_exceedances_deep(name: str, spec: dict, residual: bool, isf: Callable) -> None:
    """1e8 draws: 100 expected above the 1 − 1e-6 quantile, 10 above 1 − 1e-7 (not in N_CHECKS' family)."""
    _check_tail(spec, residual, isf, 100_000_000, (1e-6, 1e-7, 1e-8), seed=800 + TAIL_NAMES.index(name))


# ---------------------------------------------------------------------------------------------
# Validation of distribution specs


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        ({"dist": "lognormall", "median": 1, "sigma": 1}, "x.dist", ["did you mean 'lognormal'"]),
        ({"dist": "exponentail", "mean": 1}, "x.dist", ["did you mean 'exponential'"]),
        ({"dist": "expo", "mean": 1}, "x.dist", ["known: const, uniform, exponential"]),
        ({"mean": 5}, "x", ["'dist'"]),
        ({"dist": "lognormal", "median": 1, "sgima": 1}, "x.sgima", ["unknown key 'sgima'", "{median, sigma}"]),
        ({"dist": "lognormal", "median": 1}, "x", ["{median, sigma} or {mean, cv}"]),
        ({"dist": "lognormal", "median": 1, "sigma": 1, "cv": 1}, "x", ["{mean, cv}"]),
        ({"dist": "exponential", "mean": 1, "median": 2}, "x.median", ["unknown key"]),
        ({"dist": "pareto", "scale": 1, "alpha": 1}, "x.alpha", ["> 1"]),
        ({"dist": "pareto", "scale": 1, "alpha": 0.5}, "x.alpha", ["> 1"]),
        ({"dist": "pareto", "scale": 1, "alpha": -2}, "x.alpha", ["> 0"]),
        ({"dist": "pareto", "scale": 0, "alpha": 2}, "x.scale", ["> 0"]),
        ({"dist": "exponential", "mean": -1}, "x.mean", ["> 0"]),
        ({"dist": "const", "value": -5}, "x.value", [">= 0"]),
        ({"dist": "uniform", "low": -1, "high": 2}, "x.low", [">= 0"]),
        ({"dist": "uniform", "low": 5, "high": 2}, "x.high", [">= low"]),
        ({"dist": "lognormal", "median": 1, "sigma": -0.1}, "x.sigma", [">= 0"]),
        ({"dist": "gamma", "mean": 1, "cv": 0}, "x.cv", ["> 0"]),
        ({"dist": "weibull", "scale": 1, "shape": 0}, "x.shape", ["> 0"]),
        ({"dist": "exponential", "mean": "fast"}, "x.mean", ["expected a number"]),
        ({"dist": "exponential", "mean": True}, "x.mean", ["expected a number"]),
        ({"dist": "exponential", "mean": math.inf}, "x.mean", ["finite"]),
        ({"dist": "choice", "values": []}, "x.values", ["non-empty"]),
        ({"dist": "choice", "values": [1, -2]}, "x.values[1]", [">= 0"]),
        ({"dist": "choice", "values": [1, 2], "weights": [1]}, "x.weights", ["2 weights"]),
        ({"dist": "choice", "values": [1, 2], "weights": [1, -1]}, "x.weights[1]", [">= 0"]),
        ({"dist": "choice", "values": [1, 2], "weights": [0, 0]}, "x.weights", ["zero"]),
        ({"dist": "empirical", "quantiles": {0.1: 1, 1.0: 2}}, "x.quantiles", ["include 0"]),
        ({"dist": "empirical", "quantiles": {0: 1, 0.9: 2}}, "x.quantiles", ["1.0"]),
        ({"dist": "empirical", "quantiles": {0: 5, 0.5: 3, 1.0: 10}}, "x.quantiles", ["decrease"]),
        ({"dist": "empirical", "quantiles": {0: 1, 0.5: -3, 1.0: 10}}, "x.quantiles.0.5", [">= 0"]),
        ({"dist": "empirical", "quantiles": {0: 1}}, "x.quantiles", ["two points"]),
        ({"dist": "empirical", "file": "does-not-exist.csv"}, "x.file", ["cannot read"]),
        ({"dist": "mixture", "components": []}, "x.components", ["non-empty"]),
        ({"dist": "mixture", "components": [{"dist": "const", "value": 1}]}, "x.components[0]", ["weight"]),
        ({"dist": "mixture", "components": [{"weight": 1, "dist": "const", "value": 1},
                                            {"weight": 1, "dist": "exponential", "mean": -3}]},
         "x.components[1].mean", ["> 0"]),
        ({"dist": "mixture", "components": [{"weight": 1, "dist": "mixture", "components": [
            {"weight": 1, "dist": "pareto", "scale": 1, "alpha": 0.9}]}]},
         "x.components[0].components[0].alpha", ["> 1"]),
        ({"dist": "mixture", "components": [{"weight": 1, "dist": "paretto", "scale": 1, "alpha": 2}]},
         "x.components[0].dist", ["did you mean 'pareto'"]),
        ({"dist": "mixture", "components": [{"weight": 0, "dist": "const", "value": 1}]}, "x.components", ["zero"]),
        (-3, "x", [">= 0"]),
        ("3 us", "x", ["expected a number"]),
    ],
)  # fmt: skip
def test_invalid_spec_names_key_path(spec: Any, path: str, words: list[str]) -> None:
    with pytest.raises(ParamError) as info:
        parse_dist(spec, "x")
    assert info.value.path == path, str(info.value)
    for w in words:
        assert w in info.value.message, info.value.message


def test_empirical_file_errors_name_the_key(data_dir: Path) -> None:
    with pytest.raises(ParamError) as info:
        parse_dist({"dist": "empirical", "file": "lat.csv", "column": "latency"}, "x", data_dir)
    assert info.value.path == "x.column"
    assert "lat_ns" in info.value.message  # lists the columns that exist
    bad = data_dir / "bad.csv"
    bad.write_text("v\n1\n-2\n")
    with pytest.raises(ParamError) as info:
        parse_dist({"dist": "empirical", "file": "bad.csv", "column": "v"}, "x", data_dir)
    assert info.value.path == "x.file"


def test_invalid_spec_in_parameter_file_has_location(tmp_path: Path) -> None:
    """Through a parameter file the error carries the file, line, column and dotted key path."""
    from mcsmp.config import build_params, load_raw

    f = tmp_path / "bad.yaml"
    f.write_text("ipi:\n  delivery_ns: {dist: lognormal, median: 400, sgima: 0.4}\n")
    with pytest.raises(ParamError) as info:
        build_params(load_raw(f))
    err = info.value
    assert (err.path, err.source, err.line) == ("ipi.delivery_ns.sgima", str(f), 2)
    assert err.column == 47
    assert str(err).startswith(f"{f}:2:47: ipi.delivery_ns.sgima: unknown key 'sgima'")
