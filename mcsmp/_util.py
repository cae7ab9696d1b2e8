"""Small helpers shared by several layers (each written once, here)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any

__all__ = ["read_bounded", "sha256_json", "usable_cpus"]


def sha256_json(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``: sorted keys, no spaces, ``str`` for the rest.

    Keys of mixed types (``0`` and ``"a"`` in one mapping) cannot be sorted as they are; only then
    are they sorted by their JSON text, so every hash that could be computed before is unchanged.
    """
    try:
        blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    except TypeError:
        blob = json.dumps(_str_keys(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _str_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else f"<{type(k).__name__}>{k!r}": _str_keys(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_str_keys(v) for v in obj]
    return obj


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    ``ValueError`` (its message says why) for a name with a NUL, a FIFO, device or directory
    (refused before anything is read: the open does not block) or a larger file; ``OSError``
    passes through.
    """
    if "\0" in os.fspath(path):
        raise ValueError("a file name cannot contain a NUL character")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than the limit of {limit:,} bytes")
    return data
