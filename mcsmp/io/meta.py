"""Provenance of an output folder (``meta.json``): versions, CPU, numerical and stream settings."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

from .._jit import JIT_OPTIONS
from .._util import usable_cpus
from .._version import __version__
from ..errors import UserError
from ..sim.engine import CHUNK_FANOUTS, PILOT_CHUNKS, STREAM_SCHEME
from ..sim.histogram import RANGE_HIGH_NS, Layout
from .atomic import overwrite_in_place, write_atomic
from .hgrm import hdr_significant_figures

__all__ = ["META_FILE", "cpu_model", "environment", "histogram_settings", "load_meta", "meta_bytes", "write_meta"]

META_FILE = "meta.json"
META_SCHEMA_VERSION = 1  # bump on a breaking change of meta.json


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git_describe() -> str | None:
    root = Path(__file__).resolve().parents[2]  # the checkout holding mcsmp/
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Tool and library versions, the CPU and the numerical settings, for ``meta.json``."""
    libs = ["numpy", "numba", "llvmlite", "scipy", "pyyaml", "matplotlib", "tqdm", "hdrhistogram"]
    libs += ["dask", "distributed"] if "distributed" in sys.modules else []
    return {
        "tool": "mcsmp",
        "version": __version__,
        "schema_version": META_SCHEMA_VERSION,
        "git": _git_describe(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in libs},
        "platform": platform.platform(),
        "cpu": {
            "model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": usable_cpus(),
        },
        "numba": {k: JIT_OPTIONS[k] for k in ("fastmath", "error_model", "nogil", "cache")},
        "randomness": {
            "stream_scheme": STREAM_SCHEME,
            "chunk_fanouts": CHUNK_FANOUTS,
            "pilot_chunks": PILOT_CHUNKS,
            "note": "chunk i of a point draws from its own stream; results do not depend on threads, "
            "workers or shards (docs/model.md §6)",
        },
    }


def histogram_settings(precision_bits: int) -> dict[str, Any]:
    layout = Layout(precision_bits)
    return {
        "kind": "log-linear (HdrHistogram-style), int64 counts, exact per-chunk sums",
        "unit": "ns",
        "precision_bits": precision_bits,
        "relative_bucket_width": 2.0**-precision_bits,
        "lowest_ns": 1.0,
        "highest_ns": RANGE_HIGH_NS,
        "n_buckets": layout.n_buckets,
        "underflow_bucket": "[0, 1) ns",
        "overflow_bucket": f"[{RANGE_HIGH_NS:g}, inf) ns",
        "hgrm_significant_figures": hdr_significant_figures(precision_bits),
    }


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def meta_bytes(meta: Mapping[str, Any]) -> bytes:
    return (json.dumps(_json_safe(dict(meta)), indent=2) + "\n").encode()


def write_meta(outdir: str | Path, meta: Mapping[str, Any], *, in_place: bool = False) -> None:
    """Write ``meta.json`` atomically (``in_place``: into its own blocks, the full-disk last resort)."""
    path = Path(outdir) / META_FILE
    if in_place and path.exists():
        overwrite_in_place(path, meta_bytes(meta))
    else:
        write_atomic(path, meta_bytes(meta))


def load_meta(outdir: str | Path) -> dict[str, Any]:
    path = Path(outdir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found (not an mcsmp output folder?)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("points"), list):
        raise UserError(f"{path}: not an mcsmp meta.json (no points)")
    return meta
