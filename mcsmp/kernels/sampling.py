"""Compiled samplers for the encoded distributions of :mod:`mcsmp.dists`.

Inputs are trusted: the validation layer guarantees the table's invariants.

Exact length-biased draws used by :func:`sample_residual` (density ``x f(x) / m``):

- const c: c;  uniform(a, b): ``sqrt(a² + u (b² − a²))``;
- exponential: its residual is the same exponential (memorylessness), drawn directly;
- lognormal(μ, σ): lognormal(μ + σ², σ);  gamma(k, θ): gamma(k + 1, θ);
- weibull(λ, k): ``λ G^{1/k}`` with ``G ~ Gamma(1 + 1/k)``;  pareto(s, α): pareto(s, α − 1).

:func:`sample` / :func:`sample_residual` take and return the register state of
:mod:`mcsmp.kernels.rng`. Their NumPy-``Generator`` twins live with the tests
(``tests/generator_twins.py``): the same transforms on the same calls in the same order, so with
``Generator(SFC64(ss))`` and ``rng.seed_state(ss)`` both return the same values bit for bit
(tests/test_sampler_tails.py). A new family adds one branch to each of the two samplers here.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import inline_kernel, kernel
from .codes import (
    COL_A,
    COL_B,
    COL_C,
    COL_CUM_RESIDUAL_WEIGHT,
    COL_CUM_WEIGHT,
    COL_FAMILY,
    FAM_CONST,
    FAM_EXPONENTIAL,
    FAM_GAMMA,
    FAM_LOGNORMAL,
    FAM_PARETO,
    FAM_UNIFORM,
    FAM_WEIBULL,
)
from .rng import exponential, gamma, normal, uniform

__all__ = [
    "FAST_CONST",
    "FAST_LOGNORMAL",
    "FAST_OTHER",
    "fast_draw",
    "fast_params",
    "pick_row",
    "sample",
    "sample_residual",
    "sample_residual_row",
]

# The table's family codes and columns (mcsmp.kernels.codes), under short local names.
_CONST, _UNIFORM, _EXPONENTIAL, _LOGNORMAL = FAM_CONST, FAM_UNIFORM, FAM_EXPONENTIAL, FAM_LOGNORMAL
_GAMMA, _WEIBULL, _PARETO = FAM_GAMMA, FAM_WEIBULL, FAM_PARETO
_FAMILY, _CUM, _CUM_RES, _A, _B, _C = COL_FAMILY, COL_CUM_WEIGHT, COL_CUM_RESIDUAL_WEIGHT, COL_A, COL_B, COL_C


@kernel
def pick_row(table: np.ndarray, first: int, count: int, column: int, u: float) -> int:
    """First row in ``[first, first+count)`` whose cumulative weight in ``column`` exceeds ``u``."""
    lo = first
    hi = first + count - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if table[mid, column] > u:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ---- register-state twins (the fan-out kernel's samplers) -----------------------------------


@kernel
def _sample_row_other(table: np.ndarray, row: int, fam: int, s):  # type: ignore[no-untyped-def]
    """One draw of a row of the families other than const and lognormal."""
    a = table[row, _A]
    b = table[row, _B]
    if fam == _UNIFORM:
        u, s = uniform(s)
        return a + (b - a) * u, s
    if fam == _EXPONENTIAL:
        e, s = exponential(s)
        return a * e, s
    if fam == _GAMMA:
        g, s = gamma(s, a)
        return b * g, s
    if fam == _WEIBULL:
        e, s = exponential(s)
        return a * e ** table[row, _C], s
    e, s = exponential(s)  # pareto(scale a, 1/alpha in b): scale · exp(E / alpha)
    return a * math.exp(e * b), s


@kernel
def _pick(table: np.ndarray, first: int, count: int, column: int, s):  # type: ignore[no-untyped-def]
    u, s = uniform(s)
    return pick_row(table, first, count, column, u), s


@kernel  # a call, not inlined: the kernel's hot draws go through fast_draw (compile time)
def sample(index: np.ndarray, table: np.ndarray, dist: int, s):  # type: ignore[no-untyped-def]
    """One draw of distribution ``dist``: ``(value, state)``."""
    row = index[dist, 0]
    if index[dist, 1] > 1:
        row, s = _pick(table, row, index[dist, 1], _CUM, s)
    fam = int(table[row, _FAMILY])
    if fam == _CONST:
        return table[row, _A], s
    if fam == _LOGNORMAL:
        z, s = normal(s)
        return math.exp(table[row, _A] + table[row, _B] * z), s
    return _sample_row_other(table, row, fam, s)


@kernel
def sample_residual(index: np.ndarray, table: np.ndarray, dist: int, s):  # type: ignore[no-untyped-def]
    """One draw of the equilibrium residual of ``dist`` (a length-biased length times a uniform):
    ``(value, state)``."""
    first = index[dist, 0]
    count = index[dist, 1]
    row = first
    if count > 1:
        row, s = _pick(table, first, count, _CUM_RES, s)
    return sample_residual_row(table, row, s)


@kernel
def sample_residual_row(table: np.ndarray, row: int, s):  # type: ignore[no-untyped-def]
    """One draw of the equilibrium residual of the single component in table row ``row``
    (:func:`sample_residual` after its component pick; the stratified sampler of the rare remote
    states, docs/model.md §5, calls it with a chosen component): ``(value, state)``."""
    fam = int(table[row, _FAMILY])
    a = table[row, _A]
    b = table[row, _B]
    if fam == _EXPONENTIAL:
        e, s = exponential(s)
        return a * e, s
    if fam == _CONST:
        biased = a
    elif fam == _UNIFORM:
        u, s = uniform(s)
        biased = math.sqrt(a * a + u * (b * b - a * a))
    elif fam == _LOGNORMAL:
        z, s = normal(s)
        biased = math.exp(table[row, _C] + b * z)
    elif fam == _GAMMA:
        g, s = gamma(s, a + 1.0)
        biased = b * g
    elif fam == _WEIBULL:
        inv_k = table[row, _C]
        g, s = gamma(s, 1.0 + inv_k)
        biased = a * g**inv_k
    else:  # pareto with alpha − 1
        e, s = exponential(s)
        biased = a * math.exp(e * table[row, _C])
    u, s = uniform(s)
    return biased * u, s


# Fast paths: the kernel reads each slot's (kind, a, b) once per chunk into locals, so the hot
# loops draw constants and plain lognormals without touching the table (loads from the table
# cannot be hoisted past the kernel's stores; measured +10 ns per target). fast_draw takes no
# array on purpose: Numba-IR inlining a function with array arguments leaves a reference-count
# increment and decrement (two atomic operations) around every call (measured: 45 % of the draw
# floor), so the rare fallback to sample() is written at the call site:
#     x, s, ok = fast_draw(kind, a, b, s)
#     if not ok:
#         x, s = sample(index, table, dist, s)
FAST_CONST, FAST_LOGNORMAL, FAST_OTHER = 0, 1, 2


@kernel
def fast_params(index: np.ndarray, table: np.ndarray, dist: int) -> tuple[int, float, float]:
    """``(kind, a, b)`` of distribution ``dist`` for :func:`fast_draw`."""
    row = index[dist, 0]
    if index[dist, 1] == 1:
        fam = int(table[row, _FAMILY])
        if fam == _CONST:
            return FAST_CONST, table[row, _A], 0.0
        if fam == _LOGNORMAL:
            return FAST_LOGNORMAL, table[row, _A], table[row, _B]
    return FAST_OTHER, 0.0, 0.0


@inline_kernel
def fast_draw(kind: int, a: float, b: float, s):  # type: ignore[no-untyped-def]
    """``(value, state, True)`` as :func:`sample` would draw it, for the fast kinds; else
    ``(0.0, state, False)`` with the state untouched (the caller then calls :func:`sample`)."""
    if kind == FAST_CONST:
        return a, s, True
    if kind == FAST_LOGNORMAL:
        z, s = normal(s)
        return math.exp(a + b * z), s, True
    return 0.0, s, False
