"""Every Numba option of the project, in one place.

Kernels are decorated with :func:`kernel` only; a test forbids bare ``numba.njit`` elsewhere.

- ``nogil=True``: chunks run in a thread pool, so kernels must release the GIL.
- ``cache=True``: compiled code is cached on disk (``NUMBA_CACHE_DIR``, default: beside the
  sources); ``MCSMP_NO_CACHE=1`` turns it off, e.g. on shared file systems.
- ``fastmath=False``: the tails are the product, and exact IEEE arithmetic keeps results
  bit-identical across machines with the same CPU features.
- ``error_model="numpy"``: no Python exception checks on division in the hot loops.
- ``boundscheck``: off; the test suite can turn it on with ``NUMBA_BOUNDSCHECK=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numba

__all__ = ["JIT_OPTIONS", "kernel"]

F = TypeVar("F", bound=Callable[..., Any])

JIT_OPTIONS: dict[str, Any] = {
    "nogil": True,
    "cache": os.environ.get("MCSMP_NO_CACHE", "") not in ("1", "true", "yes"),
    "fastmath": False,
    "error_model": "numpy",
}


def kernel(func: F) -> F:
    """Compile ``func`` in nopython mode with the project's options."""
    return numba.njit(**JIT_OPTIONS)(func)  # type: ignore[no-any-return]
