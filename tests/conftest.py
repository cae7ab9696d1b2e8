"""Shared fixtures: analytic parameter sets built on an all-zero baseline, version header.

``make_params`` builds :class:`mcsmp.config.Params` the way a user file would be (YAML file →
:func:`~mcsmp.config.load_raw` → :func:`~mcsmp.config.apply_override` → :func:`~mcsmp.config.build_params`),
starting from :data:`ZERO_BASE`: every cost, transfer, remote state, policy extra and background
source is zero, so a test names exactly the terms that its closed form contains (MODEL.md §7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mcsmp.config import Params, apply_override, build_params, load_raw
from mcsmp.dists import Dist, encode, parse_dist

__all__ = ["ZERO_BASE", "build_zero_params"]

# Every key that adds time to a fan-out is zero; k is fixed (mm_cpus targets, all targeted).
ZERO_BASE: dict[str, Any] = {
    "name": "analytic",
    "seed": 12345,
    "samples": 200_000,
    "policies": ["preempt_off"],
    "machine": {"cpus": 8, "sockets": 1, "cpus_per_llc": 8, "smt": 1},
    "kernel": {"preemption": "full", "csdlock_debug": False, "nr_cpus": 8192, "tasks": 1000},
    "workload": {
        "call": "generic",
        "mm_cpus": 4,
        "target_prob": 1.0,
        "run_local": False,
        "rate_hz": 100,
        "caller": {"preemptible": 0.0, "spinlock": 0.0, "preempt_disabled": 1.0},
    },
    "costs": {"entry_ns": 0, "queue_ns": 0, "irq_entry_ns": 0, "func_ns": 0, "context_switch_ns": 0},
    "ipi": {"mode": "physical", "cluster_size": 16, "send_ns": 0, "delivery_ns": 0, "cross_socket_ns": 0},
    "remote": {
        "irq_off": {"fraction": 0.0, "length": 1000},
        "idle": {"fraction": 0.0, "exit_ns": 0},
        "vcpu_preempted": {"fraction": 0.0, "length": 1000},
    },
    "tlb": {"pages": 1, "ceiling_pages": 33, "invlpg_ns": 0, "full_flush_ns": 0, "info_bytes": 40},
    "cache": {
        "placement": "percpu",
        "transfer_ns": {"smt": 0, "llc": 0, "socket": 0, "remote": 0},
        "line_serialize_ns": 0,
        "false_sharing_prob": 0.0,
        "stack_tlb_miss_prob": 0.0,
        "page_walk_ns": 0,
    },
    "policy": {"alloc_ns": 0, "alloc_fail_prob": 0.0, "cpus_read_lock_ns": 0, "reentry": "off"},
    "background": [],
    "report": {"quantiles": [0.5, 0.9, 0.99], "window_s": 30, "duration_h": 1, "reference": None},
    "sweep": {"grid": {}, "zip": {}},
}


def build_zero_params(directory: Path, overrides: Mapping[str, Any] | None = None, **dotted: Any) -> Params:
    """Params from :data:`ZERO_BASE` written to ``directory``, with dotted-key ``overrides`` applied.

    Keys are dotted paths as on the command line (``"ipi.delivery_ns"``); pass them in a mapping
    or as ``**{"ipi.send_ns": 100}``. Relative ``empirical {file}`` names resolve in ``directory``.
    """
    path = Path(directory) / "analytic.yaml"
    path.write_text(yaml.safe_dump(ZERO_BASE, sort_keys=False))
    raw = load_raw(path)
    for key, value in {**(overrides or {}), **dotted}.items():
        raw = apply_override(raw, key, value, origin="test")
    return build_params(raw)


@pytest.fixture
def make_params(tmp_path: Path) -> Callable[..., Params]:
    """``make_params({"ipi.delivery_ns": {...}}, **more)`` → Params on the all-zero baseline."""

    def make(overrides: Mapping[str, Any] | None = None, **dotted: Any) -> Params:
        return build_zero_params(tmp_path, overrides, **dotted)

    return make


def pytest_report_header(config: pytest.Config) -> list[str]:
    import llvmlite
    import numba
    import numpy
    import scipy

    return [
        f"numba {numba.__version__}, llvmlite {llvmlite.__version__}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}"
    ]


# Neighbours encoded around a distribution under test, so a sampler that reads the wrong rows of
# the table (index offsets, cumulative-weight ranges) draws the wrong distribution.
_NEIGHBOURS = (
    parse_dist({"dist": "choice", "values": [1e9, 2e9], "weights": [0.5, 0.5]}, "left"),
    parse_dist({"dist": "lognormal", "median": 1e9, "sigma": 0.1}, "right"),
)


def encoded_between_neighbours(d: Dist) -> tuple[np.ndarray, np.ndarray, int]:
    """``(index, table, slot)`` of ``d`` encoded between two unrelated distributions."""
    index, table = encode([_NEIGHBOURS[0], d, _NEIGHBOURS[1]])
    return index, table, 1
