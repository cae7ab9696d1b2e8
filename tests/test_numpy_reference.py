"""The benchmark's references are faithful: the NumPy reference model agrees with the engine in
distribution, and the draw-floor micro-benchmark draws exactly what the kernel draws.

- ``benchmarks/numpy_reference.py`` (vectorised NumPy, written from MODEL.md) against
  :func:`mcsmp.sim.run_point` with ``keep_samples``: two-sample Kolmogorov–Smirnov tests on
  ``T``, ``S_L`` and, per policy, ``P`` and ``H``, for three configurations that between them cover
  cluster and physical IPIs, one and two sockets with SMT, the three request placements, all
  remote states, per-CPU rates, ``generic`` and kernel-range calls and all preemption models.
  Independent fixed seeds; one family at ``ALPHA_FAMILY``, Bonferroni over every KS test here.
- A power check: a 3 % slower IPI delivery in the reference is detected on ``T``.
- ``benchmarks/draw_floor.py``: after a chunk, the draw-only walk and the kernel leave both
  random streams in the same state (so the floor draws the same variates, no more, no fewer).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from mcsmp.config import Params, build_params, load_raw
from mcsmp.kernels import codes as K
from mcsmp.sim import run_point

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import draw_floor
import numpy_reference

ALPHA_FAMILY = 1e-3
N = 60_000  # fan-outs per side

IRQ_OFF_16CORE = {
    "fraction": 0.020470235,
    "length": {
        "dist": "mixture",
        "components": [
            {"weight": 0.99946, "dist": "lognormal", "median": 2250, "sigma": 0.86},
            {"weight": 5.40e-4, "dist": "pareto", "scale": 100000, "alpha": 3.4},
            {"weight": 9.56e-10, "dist": "const", "value": 4.0e7},
        ],
    },
}

CONFIGS: dict[str, dict[str, Any]] = {
    # params/16core.yaml's first point without the re-entry pass: per-CPU rates, cluster IPIs,
    # full flushes, the calibrated irq-off mixture, all four policies
    "16core": {
        "policies": ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"],
        "workload": {
            "rate_hz": [100, 0.05, 0.05, 100, 0.05, 0.05, 0.05, 0.05, 100, 0.05, 0.05, 100, 0.05, 0.05, 0.05, 0.05],
            "caller": {"preemptible": 0.01, "spinlock": 0.09, "preempt_disabled": 0.9},
        },
        "remote": {"irq_off": IRQ_OFF_16CORE},
        "tlb": {"pages": 1024},
        "policy": {"reentry": "off"},
        # crude: the reference compares raw per-fan-out draws, and a stratified run's are not
        # draws of the crude law (tests/test_rare_events.py checks the stratified sampler)
        "report": {"rare_events": "off"},
    },
    # two sockets with SMT, physical IPIs, unaligned stack request, idle and preempted vCPUs, RT
    "2socket_stack_rt": {
        "policies": ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"],
        "machine": {"cpus": 24, "sockets": 2, "cpus_per_llc": 6, "smt": 2},
        "kernel": {"preemption": "rt"},
        "workload": {"caller": {"preemptible": 0.5, "spinlock": 0.3, "preempt_disabled": 0.2}},
        "ipi": {"mode": "physical"},
        "remote": {"idle": {"fraction": 0.2}, "vcpu_preempted": {"fraction": 0.05}},
        "cache": {"placement": "stack"},
        "policy": {"reentry": "off", "alloc_fail_prob": 0.05},
    },
    # generic calls (no request) and kernel-range flushes with the aligned stack request
    "generic": {
        "machine": {"cpus": 20, "cpus_per_llc": 10},
        "workload": {"call": "generic", "caller": {"preemptible": 0.7, "spinlock": 0.3, "preempt_disabled": 0.0}},
        "ipi": {"cluster_size": 8},
        "policy": {"reentry": "off"},
    },
    "kernel_range": {
        "machine": {"cpus": 12, "cpus_per_llc": 4},
        "kernel": {"preemption": "voluntary"},
        "workload": {"call": "tlb_flush_kernel"},
        "cache": {"placement": "stack_aligned"},
        "tlb": {"pages": {"dist": "choice", "values": [1, 8, 64], "weights": [0.5, 0.3, 0.2]}},
    },
}


# The NumPy reference (and the draw floor) implement the model before issue 10's kernel paths:
# per-target or per-cluster ICR writes in the contract's order. tests/naive.py covers the rest.
PRE_ISSUE_10 = {"ipi": {"shorthand": False}, "kernel": {"target_order": "after_sender"}}


def _params(tmp_path: Path, name: str, data: dict[str, Any]) -> Params:
    path = tmp_path / f"{name}.yaml"
    merged = {**data, **{k: {**v, **data.get(k, {})} for k, v in PRE_ISSUE_10.items()}}
    path.write_text(yaml.safe_dump({"name": name, "seed": 11, "samples": N, **merged}, sort_keys=False))
    return build_params(load_raw(path))


def _columns(params: Params) -> list[str]:
    return ["T", "S_L"] + [f"{w}:{p}" for p in params.policies for w in ("P", "H")]


N_TESTS = sum(2 + 2 * len(c.get("policies", ["preempt_off", "preemptible_wait"])) for c in CONFIGS.values())
ALPHA = ALPHA_FAMILY / N_TESTS


def _engine_column(params: Params, samples: np.ndarray, col: str) -> np.ndarray:
    n_pol = len(params.policies)
    if col == "T":
        return samples[:, K.S_T]
    if col == "S_L":
        return samples[:, K.S_SL]
    which, pol = col.split(":")
    i = params.policies.index(pol)
    return samples[:, K.N_SAMPLE_COLS + i + (n_pol if which == "H" else 0)]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_numpy_reference_agrees_with_engine(tmp_path: Path, name: str) -> None:
    params = _params(tmp_path, name, CONFIGS[name])
    engine = run_point(params, keep_samples=True).samples
    assert engine is not None
    ref = numpy_reference.simulate(params, N, seed=2024, keep=True)
    failures = []
    for col in _columns(params):
        a = _engine_column(params, engine, col)
        b = ref.value(col)
        p = stats.ks_2samp(a, b).pvalue
        if p < ALPHA:
            failures.append(f"{col}: KS p = {p:.3g} < {ALPHA:.2g}")
    assert not failures, f"{name}: " + "; ".join(failures)


def test_numpy_reference_histograms_match_its_values(tmp_path: Path) -> None:
    """The reference's histograms (used by the benchmark) hold what its values say."""
    params = _params(tmp_path, "16core", CONFIGS["16core"])
    ref = numpy_reference.simulate(params, 5000, seed=3, keep=True)
    assert ref.counts["call"].sum() == 5000
    assert np.array_equal(ref.counts["call"], np.bincount(ref.layout.index(ref.value("T")), minlength=ref.layout.n_buckets))
    assert ref.counts["remote_wait"].sum() == ref.target_samples == 5000 * 15


def test_ks_comparison_has_power(tmp_path: Path) -> None:
    params = _params(tmp_path, "16core", CONFIGS["16core"])
    engine = run_point(params, keep_samples=True).samples
    assert engine is not None
    slower = dict(CONFIGS["16core"], ipi={"delivery_ns": {"dist": "lognormal", "median": 433, "sigma": 0.4}})
    ref = numpy_reference.simulate(_params(tmp_path, "slower", slower), N, seed=2024, keep=True)
    assert stats.ks_2samp(engine[:, K.S_T], ref.value("T")).pvalue < ALPHA


def test_reference_refuses_what_it_does_not_model(tmp_path: Path) -> None:
    params = _params(tmp_path, "subset", {"workload": {"mm_cpus": 3}})
    with pytest.raises(NotImplementedError):
        numpy_reference.simulate(params, 10)
    path = tmp_path / "shorthand.yaml"  # the defaults' IPI shorthand (no PRE_ISSUE_10 pinning)
    path.write_text("name: shorthand\npolicy: {reentry: 'off'}\n")
    with pytest.raises(NotImplementedError, match="shorthand"):
        numpy_reference.simulate(build_params(load_raw(path)), 10)
    single = _params(tmp_path, "single", {"workload": {"call": "single"}})  # issue 10's call kind (9.37)
    with pytest.raises(NotImplementedError, match="smp_call_function_single"):
        numpy_reference.simulate(single, 10)
    with pytest.raises(NotImplementedError, match="smp_call_function_single"):
        draw_floor.check_same_draws(single, n=10)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_draw_floor_draws_what_the_kernel_draws(tmp_path: Path, name: str) -> None:
    assert draw_floor.check_same_draws(_params(tmp_path, name, CONFIGS[name]), n=3000)


def test_draw_floor_follows_subsets_and_reentry(tmp_path: Path) -> None:
    data = {
        "machine": {"cpus": 32, "sockets": 2, "cpus_per_llc": 8},
        "workload": {"mm_cpus": 6, "target_prob": 0.6, "caller": {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}},
        "policies": ["preempt_off", "preemptible_wait"],
    }
    params = _params(tmp_path, "subset", data)
    tail = np.linspace(0.0, 1.0, 400)[1:]
    assert draw_floor.check_same_draws(params, n=3000, tail=tail, scale=2e-3)
