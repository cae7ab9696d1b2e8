"""The kernels' random-number generator: SFC64 with NumPy's transforms, state in registers.

Why not a ``numpy.random.Generator`` passed in: every call into a Generator goes through a
function pointer and reference-counts the Generator, and in the fan-out kernel that overhead was
most of the time (profile in BENCHMARKS.md). Here the state is a plain 4-tuple of ``uint64``
that each function takes and returns (``x, s = normal(s)``), so it lives in registers.

Exactness: the bit generator is NumPy's ``SFC64`` and the transforms are line-by-line ports of
NumPy's ``random/src/distributions/distributions.c`` (the same ones Numba compiles for a
Generator: 53-bit doubles, the 256-layer ziggurats for the normal and the exponential with their
exact tails, Marsaglia–Tsang / Johnk-style gamma), using NumPy's own ziggurat tables (as shipped
with Numba). So a stream seeded from a ``SeedSequence`` is *bit-identical* to
``numpy.random.Generator(numpy.random.SFC64(seed_seq))`` calling ``random()``,
``standard_normal()``, ``standard_exponential()`` and ``standard_gamma(shape)`` in the same order
(tests/test_sampler_tails.py checks this draw by draw, and the tails against closed forms).
"""

from __future__ import annotations

import math

import numpy as np
from numba import uint64
from numba.np.random._constants import (
    fe_double,
    fi_double,
    ke_double,
    ki_double,
    we_double,
    wi_double,
    ziggurat_exp_r,
    ziggurat_nor_inv_r,
    ziggurat_nor_r,
)

from .._jit import inline_kernel, kernel

__all__ = ["EXPONENTIAL_MAX", "NORMAL_MAX", "exponential", "gamma", "next_u64", "normal", "seed_state", "uniform"]

_1 = uint64(1)
_3 = uint64(3)
_8 = uint64(8)
_11 = uint64(11)
_24 = uint64(24)
_40 = uint64(40)
_MANT = uint64(0x000FFFFFFFFFFFFF)
_BYTE = uint64(0xFF)
_TO_DOUBLE = 1.0 / 9007199254740992.0  # 2^-53
# The largest draws: a uniform is at most 1 − 2^-53, so −log1p(−u) <= 53 ln 2; the exponential's
# tail returns r − log1p(−u) and the normal's ±(r + xx) with xx = −log1p(−u) / r (below).
EXPONENTIAL_MAX = ziggurat_exp_r + 53 * math.log(2.0)
NORMAL_MAX = ziggurat_nor_r + ziggurat_nor_inv_r * 53 * math.log(2.0)


def seed_state(seed_seq: np.random.SeedSequence) -> np.ndarray:
    """``uint64[4]`` state ``(a, b, c, counter)`` of NumPy's ``SFC64(seed_seq)``."""
    return np.array(np.random.SFC64(seed_seq).state["state"]["state"], dtype=np.uint64)


@inline_kernel
def next_u64(s):  # type: ignore[no-untyped-def]
    """One SFC64 step (Chris Doty-Humphrey's small fast chaotic generator, as in NumPy)."""
    a, b, c, w = s
    tmp = a + b + w
    return tmp, (b ^ (b >> _11), c + (c << _3), ((c << _24) | (c >> _40)) + tmp, w + _1)


@inline_kernel
def uniform(s):  # type: ignore[no-untyped-def]
    """A double in ``[0, 1)`` with 53 random bits (NumPy's ``next_double``)."""
    r, s = next_u64(s)
    return (r >> _11) * _TO_DOUBLE, s


@kernel
def _normal_slow(s, idx, rabs, x):  # type: ignore[no-untyped-def]
    """The ziggurat's rare branches (about 1.2 % of draws): base-strip tail or wedge test."""
    if idx == 0:
        while True:
            u1, s = uniform(s)
            u2, s = uniform(s)
            xx = -ziggurat_nor_inv_r * math.log1p(-u1)
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                if (rabs >> _8) & _1:
                    return -(ziggurat_nor_r + xx), s, True
                return ziggurat_nor_r + xx, s, True
    u, s = uniform(s)
    if (fi_double[idx - 1] - fi_double[idx]) * u + fi_double[idx] < math.exp(-0.5 * x * x):
        return x, s, True
    return x, s, False


@inline_kernel
def normal(s):  # type: ignore[no-untyped-def]
    """Standard normal: NumPy's ``random_standard_normal`` (256-layer ziggurat)."""
    while True:
        r, s = next_u64(s)
        idx = r & _BYTE
        r >>= _8
        rabs = (r >> _1) & _MANT
        x = rabs * wi_double[idx]
        if r & _1:
            x = -x
        if rabs < ki_double[idx]:
            return x, s
        x, s, ok = _normal_slow(s, idx, rabs, x)
        if ok:
            return x, s


@kernel
def _exponential_slow(s, idx, x):  # type: ignore[no-untyped-def]
    """The exponential ziggurat's rare branches: exact tail beyond r, or wedge test."""
    u, s = uniform(s)
    if idx == 0:
        return ziggurat_exp_r - math.log1p(-u), s, True
    if (fe_double[idx - 1] - fe_double[idx]) * u + fe_double[idx] < math.exp(-x):
        return x, s, True
    return x, s, False


@inline_kernel
def exponential(s):  # type: ignore[no-untyped-def]
    """Standard exponential: NumPy's ``random_standard_exponential`` (256-layer ziggurat)."""
    while True:
        ri, s = next_u64(s)
        ri >>= _3
        idx = ri & _BYTE
        ri >>= _8
        x = ri * we_double[idx]
        if ri < ke_double[idx]:
            return x, s
        x, s, ok = _exponential_slow(s, idx, x)
        if ok:
            return x, s


@kernel
def gamma(s, shape):  # type: ignore[no-untyped-def]
    """Standard gamma(shape): NumPy's ``random_standard_gamma``."""
    if shape == 1.0:
        return exponential(s)
    if shape == 0.0:
        return 0.0, s
    if shape < 1.0:
        while True:
            u, s = uniform(s)
            v, s = exponential(s)
            if u <= 1.0 - shape:
                x = math.pow(u, 1.0 / shape)
                if x <= v:
                    return x, s
            else:
                y = -math.log((1 - u) / shape)
                x = math.pow(1.0 - shape + shape * y, 1.0 / shape)
                if x <= v + y:
                    return x, s
    b = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9 * b)
    while True:
        while True:
            x, s = normal(s)
            v = 1.0 + c * x
            if v > 0.0:
                break
        v = v * v * v
        u, s = uniform(s)
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return b * v, s
        if math.log(u) < 0.5 * x * x + b * (1.0 - v + math.log(v)):
            return b * v, s
