"""Every Numba option of the project, in one place.

Kernels are decorated with :func:`kernel` only; a test forbids bare ``numba.njit`` elsewhere.

- ``nogil=True``: chunks run in a thread pool, so kernels must release the GIL.
- ``cache=True``: compiled code is cached on disk, in ``MCSMP_CACHE_DIR`` if set (exported to
  numba as ``NUMBA_CACHE_DIR``, so worker processes inherit it), else ``NUMBA_CACHE_DIR``, else
  numba's default (``__pycache__`` beside the sources, or the user cache when that is
  read-only). ``MCSMP_NO_CACHE=1`` turns caching off. Several processes may start at once:
  :func:`compile_lock` serialises the first compilation across processes (``flock`` on a file
  in the cache directory), so one compiles and writes while the others wait and then load.
- ``fastmath=False``: the tails are the product, and exact IEEE arithmetic keeps results
  bit-identical across machines with the same CPU features.
- ``error_model="numpy"``: no Python exception checks on division in the hot loops.
- ``boundscheck``: off; the test suite can turn it on with ``NUMBA_BOUNDSCHECK=1``.

:func:`inline_kernel` adds ``inline="always"`` (Numba-IR inlining) for the few tiny hot helpers
(the random-number generator) whose values must stay in registers across the call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

if os.environ.get("MCSMP_CACHE_DIR"):  # before numba reads its configuration
    os.environ["NUMBA_CACHE_DIR"] = os.environ["MCSMP_CACHE_DIR"]

import numba  # noqa: E402
import numba.core.config  # noqa: E402

numba.core.config.reload_config()  # numba may have been imported before us

__all__ = ["JIT_OPTIONS", "cache_dir", "compile_lock", "inline_kernel", "kernel"]

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


def inline_kernel(func: F) -> F:
    """Like :func:`kernel`, inlined into its callers at the Numba-IR level."""
    return numba.njit(inline="always", **JIT_OPTIONS)(func)  # type: ignore[no-any-return]


def cache_dir() -> Path:
    """The directory that holds the compiled kernels (for the lock file and for reports)."""
    configured = numba.core.config.CACHE_DIR
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent / "kernels" / "__pycache__"  # numba's in-tree default
    with contextlib.suppress(OSError):
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    return Path(tempfile.gettempdir())


@contextlib.contextmanager
def compile_lock() -> Iterator[None]:
    """Hold an exclusive inter-process lock while compiling (or loading) the kernels.

    numba writes each cache entry atomically, but two processes that compile the same function at
    once race on its index (an entry can point at the other's data file). Under this lock the
    first process compiles and saves; the others block, then load. Without ``fcntl`` (or when the
    file system refuses the lock) it degrades to no lock.
    """
    if not JIT_OPTIONS["cache"]:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    try:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "mcsmp-compile.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # e.g. NFS without lock support: proceed unlocked
        yield
    finally:
        os.close(fd)  # closing releases the lock
