"""NumPy-``Generator`` twins of the kernel's samplers (test-only reference).

:func:`draw` / :func:`draw_residual` take a ``numpy.random.Generator`` and apply the same
transforms to the same calls, in the same order, as :func:`mcsmp.kernels.sampling.sample` /
:func:`~mcsmp.kernels.sampling.sample_residual` on register state. With ``Generator(SFC64(ss))``
and ``rng.seed_state(ss)`` they return the same values bit for bit (test_sampler_tails.py), and
the Generator side is what the KS and closed-form tests of the distributions draw from.
"""

from __future__ import annotations

import math

import numpy as np

from mcsmp._jit import kernel
from mcsmp.kernels.codes import COL_A as _A
from mcsmp.kernels.codes import COL_B as _B
from mcsmp.kernels.codes import COL_C as _C
from mcsmp.kernels.codes import COL_CUM_RESIDUAL_WEIGHT as _CUM_RES
from mcsmp.kernels.codes import COL_CUM_WEIGHT as _CUM
from mcsmp.kernels.codes import COL_FAMILY as _FAMILY
from mcsmp.kernels.codes import FAM_CONST as _CONST
from mcsmp.kernels.codes import FAM_EXPONENTIAL as _EXPONENTIAL
from mcsmp.kernels.codes import FAM_GAMMA as _GAMMA
from mcsmp.kernels.codes import FAM_LOGNORMAL as _LOGNORMAL
from mcsmp.kernels.codes import FAM_UNIFORM as _UNIFORM
from mcsmp.kernels.codes import FAM_WEIBULL as _WEIBULL
from mcsmp.kernels.sampling import pick_row

__all__ = ["draw", "draw_residual"]


@kernel
def _draw_row(table: np.ndarray, row: int, rng: np.random.Generator) -> float:
    fam = int(table[row, _FAMILY])
    a = table[row, _A]
    b = table[row, _B]
    if fam == _CONST:
        return a
    if fam == _UNIFORM:
        return a + (b - a) * rng.random()
    if fam == _EXPONENTIAL:
        return a * rng.standard_exponential()
    if fam == _LOGNORMAL:
        return math.exp(a + b * rng.standard_normal())
    if fam == _GAMMA:
        return b * rng.standard_gamma(a)
    if fam == _WEIBULL:
        return a * rng.standard_exponential() ** table[row, _C]
    # pareto(scale a, 1/alpha in b): scale · exp(E / alpha)
    return a * math.exp(rng.standard_exponential() * b)


@kernel
def draw(index: np.ndarray, table: np.ndarray, dist: int, rng: np.random.Generator) -> float:
    """One draw of distribution ``dist``."""
    first = index[dist, 0]
    count = index[dist, 1]
    row = first
    if count > 1:
        row = pick_row(table, first, count, _CUM, rng.random())
    return _draw_row(table, row, rng)


@kernel
def draw_residual(index: np.ndarray, table: np.ndarray, dist: int, rng: np.random.Generator) -> float:
    """One draw of the equilibrium residual of ``dist``: a length-biased length times a uniform."""
    first = index[dist, 0]
    count = index[dist, 1]
    row = first
    if count > 1:
        row = pick_row(table, first, count, _CUM_RES, rng.random())
    fam = int(table[row, _FAMILY])
    a = table[row, _A]
    b = table[row, _B]
    if fam == _EXPONENTIAL:
        return a * rng.standard_exponential()
    if fam == _CONST:
        biased = a
    elif fam == _UNIFORM:
        biased = math.sqrt(a * a + rng.random() * (b * b - a * a))
    elif fam == _LOGNORMAL:
        biased = math.exp(table[row, _C] + b * rng.standard_normal())
    elif fam == _GAMMA:
        biased = b * rng.standard_gamma(a + 1.0)
    elif fam == _WEIBULL:
        inv_k = table[row, _C]
        biased = a * rng.standard_gamma(1.0 + inv_k) ** inv_k
    else:  # pareto with alpha − 1: scale · exp(E / (alpha − 1))
        biased = a * math.exp(rng.standard_exponential() * table[row, _C])
    return biased * rng.random()
