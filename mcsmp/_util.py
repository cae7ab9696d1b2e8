"""Small helpers shared by several layers (each written once, here)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["sha256_json", "usable_cpus"]


def sha256_json(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``: sorted keys, no spaces, ``str`` for the rest."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
