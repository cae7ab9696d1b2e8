"""Compiled log-linear bucket index (HdrHistogram-style, docs/model.md §5).

A float64 ``v >= 1`` has bits ``(exponent << 52) | mantissa``; shifting right by ``52 − p``
keeps the exponent and the top ``p`` mantissa bits, which is exactly a log-linear bucket of
relative width ``2^-p``. No logarithm, no loop: the index is one bit cast and one shift.
Bucket 0 holds ``[0, 1)`` (and every negative value); the last bucket holds everything from the
top edge up (overflow), ``inf`` and ``NaN`` too, so no float indexes outside the histogram.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .._jit import kernel

__all__ = ["bucket", "float_bits"]


@intrinsic
def float_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret a float64 as its int64 bit pattern (LLVM bitcast)."""
    if x != types.float64:
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@kernel
def bucket(v: float, shift: int, base: int, overflow: int) -> int:
    """Bucket of ``v`` for a layout with ``shift = 52 − p``, ``base = bits(1.0) >> shift``."""
    if v < 1.0:
        return 0
    i = (float_bits(v) >> shift) - base + 1
    if i > overflow or i < 0:  # i < 0: a NaN with its sign bit set (v < 1.0 is false for any NaN)
        return overflow
    return i
