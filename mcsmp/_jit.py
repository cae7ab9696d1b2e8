"""Every Numba option of the project, in one place.

Kernels are decorated with :func:`kernel` only; a test forbids bare ``numba.njit`` elsewhere.

- ``nogil=True``: chunks run in a thread pool, so kernels must release the GIL.
- ``cache=True``: compiled code is cached on disk, below ``MCSMP_CACHE_DIR`` if set, else
  ``NUMBA_CACHE_DIR``, else ``mcsmp/kernels/__pycache__`` (or the system's temporary folder
  when that is read-only), in a subfolder named after a hash of every kernel source file and
  the numba version (exported as ``NUMBA_CACHE_DIR``, so worker processes inherit it). numba
  checks only a cached function's own file, so a kernel whose helper in another file changed
  (``histo.bucket`` inlined into ``fanout.run_chunk``) would otherwise load stale code: the hashed
  folder makes any kernel change a fresh compile. ``MCSMP_NO_CACHE=1`` turns caching off. Several processes may start at once:
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
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

KERNELS = Path(__file__).resolve().parent / "kernels"


def kernels_key(kernels: Path = KERNELS) -> str:
    """A hash of every kernel source and of numba's version: the cache folder's name."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in sorted(kernels.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        digest.update(version("numba").encode())
    except PackageNotFoundError:  # pragma: no cover - numba is a dependency
        pass
    return digest.hexdigest()[:16]


def _cache_base() -> Path:
    configured = os.environ.get("MCSMP_CACHE_DIR") or os.environ.get("MCSMP_BASE_CACHE_DIR") or os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return Path(configured)
    here = KERNELS / "__pycache__"
    with contextlib.suppress(OSError):
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    return Path(tempfile.gettempdir()) / "mcsmp-numba-cache"


# Before numba reads its configuration. The base is remembered for child processes, which inherit
# the hashed folder in NUMBA_CACHE_DIR and must not nest another one inside it.
os.environ["MCSMP_BASE_CACHE_DIR"] = str(_cache_base())
os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ["MCSMP_BASE_CACHE_DIR"]) / f"mcsmp-{kernels_key()}")

import numba  # noqa: E402
import numba.core.config  # noqa: E402

numba.core.config.reload_config()  # numba may have been imported before us

__all__ = ["JIT_OPTIONS", "cache_dir", "compile_lock", "inline_kernel", "kernel", "kernels_key"]

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
    return Path(numba.core.config.CACHE_DIR)


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
