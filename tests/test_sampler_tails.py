"""The kernel's random numbers (mcsmp.kernels.rng) and register-state samplers (sampling.sample*).

Two kinds of evidence that the speed work changed no distribution:

- **Bit identity.** The inline SFC64 and its transforms must reproduce
  ``numpy.random.Generator(numpy.random.SFC64(seed_seq))`` draw for draw (uniform, normal,
  exponential, gamma on both sides of shape 1), and the register-state samplers
  (:func:`~mcsmp.kernels.sampling.sample`, :func:`~mcsmp.kernels.sampling.sample_residual`,
  :func:`~mcsmp.kernels.sampling.fast_draw`) must return exactly what the Generator samplers
  :func:`~mcsmp.kernels.sampling.draw` / :func:`~mcsmp.kernels.sampling.draw_residual` (tested in
  tests/test_distributions.py) return on that Generator, for every family and for mixtures.
- **Extreme tails against closed forms**, beyond what bit identity with NumPy can vouch for:
  exceedance counts above the exact ``1 − 1e-5``, ``1 − 1e-6`` and ``1 − 1e-7`` quantiles of the
  kernel's lognormal, gamma and equilibrium-residual draws (including the 16-CPU study's
  lognormal + Pareto + constant irq-off mixture), and the ziggurats' own tail samplers driven
  directly, whose conditional survival is checked down to unconditional probabilities of ~1e-10.

Significance: the module is one family at ``ALPHA_FAMILY = 1e-3``; each statistical check uses
``ALPHA_FAMILY / N_CHECKS`` (Bonferroni) with exact binomial acceptance regions, so tolerances come
from the sample sizes. Seeds are fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from conftest import encoded_between_neighbours as _encoded
from generator_twins import draw, draw_residual
from numba.np.random._constants import ziggurat_exp_r, ziggurat_nor_r
from scipy import optimize, stats

from mcsmp._jit import kernel
from mcsmp.dists import Dist, parse_dist
from mcsmp.kernels import rng as R
from mcsmp.kernels.sampling import fast_draw, fast_params, sample, sample_residual

ALPHA_FAMILY = 1e-3

# ---------------------------------------------------------------------------------------------
# Test-only kernels


@kernel
def _fill_rng(which, shape, state, out):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    for i in range(out.shape[0]):
        if which == 0:
            out[i], s = R.uniform(s)
        elif which == 1:
            out[i], s = R.normal(s)
        elif which == 2:
            out[i], s = R.exponential(s)
        else:
            out[i], s = R.gamma(s, shape)
    state[0], state[1], state[2], state[3] = s


@kernel
def _fill_sample(index, table, dist, residual, state, out):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    for i in range(out.shape[0]):
        if residual:
            out[i], s = sample_residual(index, table, dist, s)
        else:
            out[i], s = sample(index, table, dist, s)
    state[0], state[1], state[2], state[3] = s


@kernel
def _fill_fast(index, table, dist, state, out):  # type: ignore[no-untyped-def]
    kind, a, b = fast_params(index, table, dist)
    s = (state[0], state[1], state[2], state[3])
    for i in range(out.shape[0]):
        x, s, ok = fast_draw(kind, a, b, s)
        if not ok:
            x, s = sample(index, table, dist, s)
        out[i] = x
    state[0], state[1], state[2], state[3] = s


@kernel
def _fill_draw(index, table, dist, residual, rng, out):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        out[i] = draw_residual(index, table, dist, rng) if residual else draw(index, table, dist, rng)


@kernel
def _count_sample(index, table, dist, residual, state, n, thresholds, counts):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    for _ in range(n):
        if residual:
            v, s = sample_residual(index, table, dist, s)
        else:
            v, s = sample(index, table, dist, s)
        for j in range(thresholds.shape[0]):
            if v > thresholds[j]:
                counts[j] += 1


@kernel
def _count_gamma(shape, state, n, thresholds, counts):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    for _ in range(n):
        v, s = R.gamma(s, shape)
        for j in range(thresholds.shape[0]):
            if v > thresholds[j]:
                counts[j] += 1


@kernel
def _count_normal_base_tail(state, n, thresholds, counts):  # type: ignore[no-untyped-def]
    """The normal ziggurat's base-strip tail sampler alone (|x| > r), as the ziggurat calls it."""
    s = (state[0], state[1], state[2], state[3])
    for _ in range(n):
        r, s = R.next_u64(s)
        v, s, _ok = R._normal_slow(s, 0, r >> 9, 0.0)
        v = abs(v)
        for j in range(thresholds.shape[0]):
            if v > thresholds[j]:
                counts[j] += 1


@kernel
def _count_exponential_tail(state, n, thresholds, counts):  # type: ignore[no-untyped-def]
    """The exponential ziggurat's tail sampler alone (x > r)."""
    s = (state[0], state[1], state[2], state[3])
    for _ in range(n):
        v, s, _ok = R._exponential_slow(s, 0, 0.0)
        for j in range(thresholds.shape[0]):
            if v > thresholds[j]:
                counts[j] += 1


@kernel
def _raw(state, out):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    for i in range(out.shape[0]):
        out[i], s = R.next_u64(s)


def _state(seed: int) -> np.ndarray:
    return R.seed_state(np.random.SeedSequence(seed))




# ---------------------------------------------------------------------------------------------
# Bit identity with NumPy's Generator(SFC64) and with the Generator samplers

N_IDENTITY = 200_000


@pytest.mark.parametrize(
    ("which", "shape"),
    [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.3), (3, 1.0), (3, 2.5), (3, 40.0)],
    ids=["uniform", "normal", "exponential", "gamma0.3", "gamma1", "gamma2.5", "gamma40"],
)
def test_generator_is_numpy_sfc64_bit_for_bit(which: int, shape: float) -> None:
    ss = np.random.SeedSequence(1234, spawn_key=(which, int(shape * 10)))
    state = R.seed_state(ss)
    out = np.empty(N_IDENTITY)
    _fill_rng(which, shape, state, out)
    g = np.random.Generator(np.random.SFC64(ss))
    ref = [g.random, g.standard_normal, g.standard_exponential, lambda n: g.standard_gamma(shape, n)][which](N_IDENTITY)
    assert np.array_equal(out, ref)
    assert np.array_equal(state, np.array(g.bit_generator.state["state"]["state"], dtype=np.uint64))


def test_identity_covers_the_rare_branches() -> None:
    """The identity runs above reach the ziggurat tails (|x| > r) and wedges, not only the fast path."""
    g = np.random.Generator(np.random.SFC64(np.random.SeedSequence(1234, spawn_key=(1, 0))))
    x = g.standard_normal(N_IDENTITY)
    assert (np.abs(x) > ziggurat_nor_r).sum() >= 5  # ~26 expected
    e = np.random.Generator(np.random.SFC64(np.random.SeedSequence(1234, spawn_key=(2, 0)))).standard_exponential(N_IDENTITY)
    assert (e > ziggurat_exp_r).sum() >= 30  # ~90 expected


SPECS = {
    "const": 150.0,
    "uniform": {"dist": "uniform", "low": 10, "high": 300},
    "exponential": {"dist": "exponential", "mean": 1000},
    "lognormal": {"dist": "lognormal", "median": 420, "sigma": 0.4},
    "gamma_small": {"dist": "gamma", "mean": 500, "cv": 2.0},
    "gamma": {"dist": "gamma", "mean": 500, "cv": 0.5},
    "weibull": {"dist": "weibull", "scale": 1000, "shape": 0.7},
    "pareto": {"dist": "pareto", "scale": 100, "alpha": 2.5},
    "choice": {"dist": "choice", "values": [1, 8, 32, 1024], "weights": [0.55, 0.3, 0.1, 0.05]},
    "empirical": {"dist": "empirical", "quantiles": {0.0: 10, 0.5: 100, 0.99: 1000, 1.0: 5000}},
    "mixture_16core_irq_off": {
        "dist": "mixture",
        "components": [
            {"weight": 0.99946, "dist": "lognormal", "median": 2250, "sigma": 0.86},
            {"weight": 5.40e-4, "dist": "pareto", "scale": 100000, "alpha": 3.4},
            {"weight": 9.56e-10, "dist": "const", "value": 4.0e7},
        ],
    },
}


@pytest.mark.parametrize("residual", [False, True], ids=["draw", "residual"])
@pytest.mark.parametrize("name", list(SPECS))
def test_register_samplers_equal_generator_samplers(name: str, residual: bool) -> None:
    index, table, i = _encoded(parse_dist(SPECS[name], name))
    ss = np.random.SeedSequence(99, spawn_key=(list(SPECS).index(name), int(residual)))
    got = np.empty(50_000)
    _fill_sample(index, table, i, residual, R.seed_state(ss), got)
    ref = np.empty(50_000)
    _fill_draw(index, table, i, residual, np.random.Generator(np.random.SFC64(ss)), ref)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("name", list(SPECS))
def test_fast_draw_equals_sample(name: str) -> None:
    index, table, i = _encoded(parse_dist(SPECS[name], name))
    a, b = np.empty(20_000), np.empty(20_000)
    _fill_fast(index, table, i, _state(5), a)
    _fill_sample(index, table, i, False, _state(5), b)
    assert np.array_equal(a, b)


def test_fast_params_take_the_fast_path_where_expected() -> None:
    kinds = {}
    for name in ("const", "lognormal", "gamma", "choice"):
        index, table, i = _encoded(parse_dist(SPECS[name], name))
        kinds[name] = fast_params(index, table, i)[0]
    assert kinds == {"const": 0, "lognormal": 1, "gamma": 2, "choice": 2}


def test_seed_state_is_numpy_sfc64_state() -> None:
    ss = np.random.SeedSequence(7, spawn_key=(1, 2, 3))
    raw = np.random.SFC64(ss).random_raw(5)
    out = np.empty(5, dtype=np.uint64)
    _raw(R.seed_state(ss), out)
    assert np.array_equal(out, raw)


# ---------------------------------------------------------------------------------------------
# Extreme tails against closed forms

LEVELS = (1e-5, 1e-6, 1e-7)  # exceedance probabilities
N_TAIL = 50_000_000  # 500, 50 and 5 expected exceedances
TAIL_FRACTIONS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)  # conditional, for the ziggurat tail samplers
N_ZIG_TAIL = 10_000_000


def _residual_isf(d: Dist) -> Callable[[float], float]:
    """Exact inverse survival of the equilibrium residual, from ``Dist.residual_cdf``."""

    def isf(p: float) -> float:
        f = lambda lx: math.log(max(1.0 - float(d.residual_cdf(math.exp(lx))), 1e-300)) - math.log(p)  # noqa: E731
        return math.exp(optimize.brentq(f, math.log(1e-3), math.log(1e16), xtol=1e-13, rtol=1e-13))

    return isf


def _tail_cases() -> list[tuple[str, object, bool, Callable[[float], float]]]:
    ln = parse_dist(SPECS["lognormal"], "x").components[0]
    heavy = {"dist": "lognormal", "median": 2250, "sigma": 1.5}
    mix = parse_dist(SPECS["mixture_16core_irq_off"], "x")
    s, alpha = 100.0, 2.5
    return [
        ("lognormal", SPECS["lognormal"], False, stats.lognorm(ln.b, scale=math.exp(ln.a)).isf),
        ("lognormal_heavy", heavy, False, stats.lognorm(1.5, scale=2250.0).isf),
        ("gamma_cv0.5", SPECS["gamma"], False, stats.gamma(4.0, scale=125.0).isf),
        ("weibull", SPECS["weibull"], False, stats.weibull_min(0.7, scale=1000.0).isf),
        ("lognormal_heavy_residual", heavy, True, _residual_isf(parse_dist(heavy, "x"))),
        # Pareto residual survival (s/x)^(α−1)/α (tests/test_distributions.py derives it)
        ("pareto_residual", SPECS["pareto"], True, lambda p: s * (alpha * p) ** (-1 / (alpha - 1))),
        ("mixture_16core_irq_off_residual", SPECS["mixture_16core_irq_off"], True, _residual_isf(mix)),
    ]


TAIL_CASES = _tail_cases()
N_CHECKS = len(TAIL_CASES) * len(LEVELS) + 2 * len(TAIL_FRACTIONS) + 2 * len(LEVELS)
ALPHA = ALPHA_FAMILY / N_CHECKS


def _binomial_ok(c: int, n: int, p: float) -> tuple[bool, str]:
    lo, hi = stats.binom.ppf(ALPHA / 2, n, p), stats.binom.isf(ALPHA / 2, n, p)
    return bool(lo <= c <= hi), f"{c} above; expected {n * p:g}, accept [{lo:g}, {hi:g}]"


@pytest.mark.parametrize(("name", "spec", "residual", "isf"), TAIL_CASES, ids=[c[0] for c in TAIL_CASES])
def test_sampler_extreme_tail(name: str, spec: object, residual: bool, isf: Callable[[float], float]) -> None:
    index, table, i = _encoded(parse_dist(spec, name))
    thresholds = np.array([isf(p) for p in LEVELS])
    counts = np.zeros(len(LEVELS), dtype=np.int64)
    _count_sample(index, table, i, residual, _state(300 + [c[0] for c in TAIL_CASES].index(name)), N_TAIL, thresholds, counts)
    for p, x, c in zip(LEVELS, thresholds, counts, strict=True):
        ok, msg = _binomial_ok(int(c), N_TAIL, p)
        assert ok, f"{name}: 1 − {p:g} quantile {x:.6g}: {msg}"


@pytest.mark.parametrize("shape", [0.5, 3.0])
def test_gamma_extreme_tail(shape: float) -> None:
    """Both branches of the gamma sampler (shape < 1: Johnk-style; ≥ 1: Marsaglia–Tsang)."""
    thresholds = np.array([stats.gamma(shape).isf(p) for p in LEVELS])
    counts = np.zeros(len(LEVELS), dtype=np.int64)
    _count_gamma(shape, _state(400 + int(shape * 10)), N_TAIL // 2, thresholds, counts)
    for p, c in zip(LEVELS, counts, strict=True):
        ok, msg = _binomial_ok(int(c), N_TAIL // 2, p)
        assert ok, f"gamma({shape}) 1 − {p:g}: {msg}"


def test_normal_ziggurat_tail_sampler() -> None:
    """Beyond r = 3.654 the ziggurat samples |X| | |X| > r exactly (Marsaglia's tail method):
    P(|X| > x | |X| > r) = Φc(x)/Φc(r). Checked down to 1e-5 conditional, i.e. ~1.3e-9 unconditional."""
    tail = stats.norm.sf(ziggurat_nor_r)
    thresholds = np.array([stats.norm.isf(f * tail) for f in TAIL_FRACTIONS])
    counts = np.zeros(len(TAIL_FRACTIONS), dtype=np.int64)
    _count_normal_base_tail(_state(501), N_ZIG_TAIL, thresholds, counts)
    for f, x, c in zip(TAIL_FRACTIONS, thresholds, counts, strict=True):
        ok, msg = _binomial_ok(int(c), N_ZIG_TAIL, f)
        assert ok, f"|x| > {x:.4f} (unconditional {2 * f * tail:.2g}): {msg}"


def test_exponential_ziggurat_tail_sampler() -> None:
    """Beyond r = 7.697 the exponential ziggurat returns r + Exp(1) (memorylessness)."""
    thresholds = np.array([ziggurat_exp_r - math.log(f) for f in TAIL_FRACTIONS])
    counts = np.zeros(len(TAIL_FRACTIONS), dtype=np.int64)
    _count_exponential_tail(_state(502), N_ZIG_TAIL, thresholds, counts)
    for f, c in zip(TAIL_FRACTIONS, counts, strict=True):
        ok, msg = _binomial_ok(int(c), N_ZIG_TAIL, f)
        assert ok, f"conditional {f:g}: {msg}"


def test_tail_checks_can_fail() -> None:
    """Power: a lognormal with sigma 5 % too large (3x the exceedances) is rejected at 1 − 1e-6."""
    index, table, i = _encoded(parse_dist({"dist": "lognormal", "median": 420, "sigma": 0.42}, "wrong"))
    ln = parse_dist(SPECS["lognormal"], "x").components[0]
    thresholds = np.array([stats.lognorm(ln.b, scale=math.exp(ln.a)).isf(1e-6)])
    counts = np.zeros(1, dtype=np.int64)
    _count_sample(index, table, i, False, _state(600), N_TAIL, thresholds, counts)
    assert not _binomial_ok(int(counts[0]), N_TAIL, 1e-6)[0], counts
