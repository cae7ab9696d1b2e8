"""The compiled fan-out kernel against its pure-Python twin (tests/naive.py), in distribution.

Each parameter set below is simulated by the engine (``run_point(..., keep_samples=True)``) and by
the twin, with different random streams, and every compared quantity gets a two-sample
Kolmogorov–Smirnov test.

Significance (fixed before any data is seen): family-wise ``ALPHA_FAMILY = 1e-3`` over every
comparison of this module, Bonferroni-corrected: each test rejects at ``ALPHA = ALPHA_FAMILY / M``
with ``M`` the number of comparisons declared by the sets and sampler checks below (computed at
import from the parameters alone: ``M`` = 117, so ``ALPHA`` = 1e-3 / 117 ≈ 8.5e-6). So a correct
kernel fails this module with probability at most 1e-3 (the seeds are fixed, so the outcome is
reproducible).

Power: the twin runs ``N_TWIN`` fan-outs, the engine ``N_KERNEL``; the effective two-sample size is
``en = N_TWIN·N_KERNEL/(N_TWIN+N_KERNEL)`` = 30,000·200,000/230,000 ≈ 26,100, and the asymptotic
critical distance at ``ALPHA`` is ``D* = sqrt(−ln(ALPHA/2)/2) / sqrt(en)`` ≈ 2.49/161 ≈ 0.015. A 2%
scale shift of a quantity with log-spread ``s`` moves its CDF by about ``0.4 · 0.02 / s`` (0.04 for
``s`` = 0.2, 0.027 for ``s`` = 0.3), above ``D*``; ``test_power_detects_a_2_percent_shift`` checks
this on real output instead of trusting the arithmetic.

Per-target metrics (remote waits, info costs) are histograms pooled over the targets of a
fan-out, which are dependent. The pooled empirical CDF of ``N`` fan-outs has, at every point and
for every increment, a variance at most that of ``N`` independent draws from the pooled law
(Jensen on the per-target indicators), so these tests use the number of fan-outs with a target
as the sample size (conservative) and compare both sides binned on the same bucket edges (the
maximum over the edges is at most the unbinned distance: again conservative).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from naive import HistogramResidual, NaiveResult, draw_many, params_from, residual_many, simulate
from scipy import stats

from mcsmp.config import Params
from mcsmp.dists import parse_dist
from mcsmp.kernels import codes as K
from mcsmp.sim import run_point
from mcsmp.sim.histogram import Layout

N_TWIN = 30_000
N_KERNEL = 200_000  # 4 chunks: also the whole re-entry pilot (≤ 16 chunks), see the re-entry set
ALPHA_FAMILY = 1e-3

FOUR = ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"]


def _base(**sections: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"seed": 7, "samples": N_KERNEL, "policy": {"reentry": "off"}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


LOGN = {"dist": "lognormal", "median": 5000, "sigma": 1.0}
SETS: dict[str, dict[str, Any]] = {
    # 16 CPUs, one LLC, physical IPIs (one write per target: no shorthand), per-CPU request;
    # pages under and over the ceiling
    "base16_percpu_physical_full": _base(
        policies=FOUR,
        machine={"cpus": 16, "sockets": 1, "cpus_per_llc": 16, "smt": 1},
        kernel={"preemption": "full"},
        workload={"call": "tlb_flush", "caller": {"preemptible": 0.6, "spinlock": 0.2, "preempt_disabled": 0.2}},
        ipi={"mode": "physical", "shorthand": False},
        cache={"placement": "percpu"},
        tlb={"pages": {"dist": "choice", "values": [1, 8, 64], "weights": [0.6, 0.3, 0.1]}, "ceiling_pages": 33},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN}},
        policy={"reentry": "off", "alloc_fail_prob": 0.2},
    ),
    # 2 sockets × 2 LLCs × SMT 2 (all four classes), x2APIC clusters of 4, stack placement,
    # mm_cpus subset with lazy skip, PREEMPT_RT with spinlock callers, all three remote states
    "smp32_stack_cluster_rt": _base(
        policies=FOUR,
        machine={"cpus": 32, "sockets": 2, "cpus_per_llc": 8, "smt": 2},
        kernel={"preemption": "rt"},
        workload={"call": "tlb_flush", "mm_cpus": 12, "target_prob": 0.7,
                  "caller": {"preemptible": 0.3, "spinlock": 0.5, "preempt_disabled": 0.2}},
        ipi={"mode": "cluster", "cluster_size": 4, "delivery_ns": {"dist": "gamma", "mean": 1200, "cv": 0.5},
             "cross_socket_ns": {"dist": "lognormal", "median": 300, "sigma": 0.3}},
        cache={"placement": "stack", "false_sharing_prob": 0.5, "stack_tlb_miss_prob": 0.3,
               "page_walk_ns": {"dist": "choice", "values": [25, 125], "weights": [0.8, 0.2]}},
        tlb={"pages": {"dist": "choice", "values": [2, 40], "weights": [0.7, 0.3]}, "ceiling_pages": 33,
             "info_bytes": 40},
        remote={"irq_off": {"fraction": 0.05, "length": {"dist": "gamma", "mean": 4000, "cv": 1.5}},
                "idle": {"fraction": 0.1, "exit_ns": {"dist": "lognormal", "median": 1500, "sigma": 0.5}},
                "vcpu_preempted": {"fraction": 0.02, "length": {"dist": "exponential", "mean": 50000}}},
        policy={"reentry": "off", "alloc_fail_prob": 0.1},
    ),  # fmt: skip
    # generic calls (func_ns, no request), per-CPU rates (two idle CPUs), PREEMPT_LAZY, no local run,
    # adjacent SMT numbering (the other SMT sets use the default split numbering)
    "generic8_rates_lazy": _base(
        policies=["preempt_off", "preemptible_wait", "cpus_read_lock"],
        machine={"cpus": 8, "sockets": 2, "cpus_per_llc": 4, "smt": 2, "smt_numbering": "adjacent"},
        kernel={"preemption": "lazy"},
        workload={"call": "generic", "run_local": False, "target_prob": 0.5,
                  "rate_hz": [10, 0, 200, 50, 50, 0, 100, 1000],
                  "caller": {"preemptible": 0.5, "spinlock": 0.5, "preempt_disabled": 0.0}},
        costs={"func_ns": {"dist": "mixture", "components": [
            {"weight": 0.7, "dist": "weibull", "scale": 800, "shape": 0.8},
            {"weight": 0.3, "dist": "uniform", "low": 100, "high": 3000}]}},
        ipi={"mode": "physical", "delivery_ns": {"dist": "weibull", "scale": 1000, "shape": 2.0}},
        cache={"placement": "stack_aligned"},
        remote={"irq_off": {"fraction": 0.1, "length": {"dist": "pareto", "scale": 1000, "alpha": 2.5}}},
    ),  # fmt: skip
    # CSD-lock debug (wait pinned preempt-off), stack_aligned, continuous page counts around the ceiling
    "csddebug12_aligned_cluster": _base(
        policies=FOUR,
        machine={"cpus": 12, "sockets": 1, "cpus_per_llc": 6, "smt": 2},
        kernel={"preemption": "full", "csdlock_debug": True},
        workload={"call": "tlb_flush", "caller": {"preemptible": 0.8, "spinlock": 0.1, "preempt_disabled": 0.1}},
        ipi={"mode": "cluster", "cluster_size": 4},
        cache={"placement": "stack_aligned", "stack_tlb_miss_prob": 0.5, "line_serialize_ns": 25},
        tlb={"pages": {"dist": "uniform", "low": 1, "high": 60}, "ceiling_pages": 33},
        remote={"irq_off": {"fraction": 0.08, "length": {"dist": "empirical",
                                                          "quantiles": {0.0: 500, 0.5: 3000, 0.9: 9000, 1.0: 40000}}}},
    ),  # fmt: skip
    # flush_tlb_kernel_range (every other CPU, no lazy skip: mm_cpus/target_prob ignored), no
    # preemption, idle targets, a request that always spills into a second line unless at offset 0
    "kernelflush4_none_idle": _base(
        policies=FOUR,
        machine={"cpus": 4, "sockets": 1, "cpus_per_llc": 4, "smt": 1},
        kernel={"preemption": "none"},
        workload={"call": "tlb_flush_kernel", "mm_cpus": 1, "target_prob": 0.5},
        cache={"placement": "stack", "false_sharing_prob": 0.3},
        tlb={"info_bytes": 64},
        remote={"irq_off": {"fraction": 0.02}, "idle": {"fraction": 0.3}},
    ),
    # voluntary preemption, two sockets, mm subset, empirical delivery and uniform irq-off lengths
    "vol16_empirical_2s": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 16, "sockets": 2, "cpus_per_llc": 8, "smt": 1},
        kernel={"preemption": "voluntary"},
        workload={"call": "tlb_flush", "mm_cpus": 5},
        ipi={"mode": "physical", "delivery_ns": {"dist": "empirical",
                                                   "quantiles": {0.0: 300, 0.5: 900, 0.99: 3000, 1.0: 8000}}},
        remote={"irq_off": {"fraction": 0.1, "length": {"dist": "uniform", "low": 1000, "high": 20000}}},
    ),  # fmt: skip
    # issue 10: kernel target order from CPU 0 on 2 sockets of 12 (x2APIC ids padded to 16 per
    # package, clusters of 8: unpadded, ids 8-15 would make one cluster across the sockets), no
    # shorthand, a shared delivery part
    # and a fixed handler part, pages under and over the ceiling
    "apic24_cpu0_common_fixed": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 24, "sockets": 2, "cpus_per_llc": 6, "smt": 2},
        kernel={"preemption": "full", "target_order": "cpu0"},
        workload={"call": "tlb_flush", "caller": {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}},
        ipi={"mode": "cluster", "cluster_size": 8, "shorthand": False,
             "send_ns": {"dist": "lognormal", "median": 400, "sigma": 0.3},
             "delivery_common_ns": {"dist": "gamma", "mean": 2000, "cv": 1.0},
             "cross_socket_ns": {"dist": "lognormal", "median": 300, "sigma": 0.3}},
        tlb={"pages": {"dist": "choice", "values": [1, 8, 64], "weights": [0.5, 0.3, 0.2]},
             "handler_fixed_ns": {"dist": "lognormal", "median": 500, "sigma": 0.4}},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN}},
    ),  # fmt: skip
    # the IPI shorthand on a full mask (one write), the contract's order (after the sender) on 3
    # sockets, kernel-range flushes with a fixed handler part; an mm subset keeps some calls off it
    "shorthand12_after_sender": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 12, "sockets": 3, "cpus_per_llc": 2, "smt": 1},
        kernel={"preemption": "full", "target_order": "after_sender"},
        workload={"call": "tlb_flush", "target_prob": 0.9,
                  "caller": {"preemptible": 0.5, "spinlock": 0.5, "preempt_disabled": 0.0}},
        ipi={"mode": "physical", "shorthand": True, "send_ns": {"dist": "lognormal", "median": 700, "sigma": 0.2},
             "delivery_common_ns": {"dist": "exponential", "mean": 500}},
        cache={"placement": "stack_aligned"},
        tlb={"pages": {"dist": "choice", "values": [2, 40], "weights": [0.7, 0.3]},
             "handler_fixed_ns": {"dist": "uniform", "low": 200, "high": 900}},
    ),  # fmt: skip
    # a KVM guest with PV TLB flush: preempted vCPUs leave the mask (no shorthand then), kept
    # targets are irqs-off or idle with the conditional fractions, and the wait stays pinned
    "kvm16_pv_flush": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 16, "sockets": 1, "cpus_per_llc": 16, "smt": 1},
        kernel={"preemption": "full"},
        workload={"call": "tlb_flush"},
        ipi={"mode": "physical", "pv_tlb_flush": True},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN},
                "idle": {"fraction": 0.1, "exit_ns": {"dist": "lognormal", "median": 1500, "sigma": 0.5}},
                "vcpu_preempted": {"fraction": 0.2, "length": {"dist": "exponential", "mean": 50000}}},
    ),  # fmt: skip
    # AMD INVLPGB: no targets; INVLPGBs per 8 pages (pages uniform 1..60, over the ceiling a
    # single one), then TLBSYNC; every policy pinned (P = T)
    "invlpgb16_broadcast": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 16, "sockets": 1, "cpus_per_llc": 8, "smt": 2},
        kernel={"preemption": "full"},
        workload={"call": "tlb_flush"},
        tlb={"mechanism": "invlpgb", "pages": {"dist": "uniform", "low": 1, "high": 60},
             "invlpgb_ns": {"dist": "lognormal", "median": 80, "sigma": 0.3}, "invlpgb_count_max": 8,
             "tlbsync_ns": {"dist": "gamma", "mean": 600, "cv": 0.5}},
    ),  # fmt: skip
    # lazy TLB: a third of the flushes free page tables and reach the lazy (idle) CPUs, which pay
    # a C-state exit; the others pay a should_flush_tlb() check per candidate and skip them
    "lazy12_freed_tables": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 12, "sockets": 1, "cpus_per_llc": 6, "smt": 2},
        kernel={"preemption": "full"},
        workload={"call": "tlb_flush", "target_prob": 0.6, "freed_tables_prob": 0.3},
        costs={"cond_ns": {"dist": "lognormal", "median": 60, "sigma": 0.5}},
        remote={"idle": {"fraction": 0.0, "exit_ns": {"dist": "uniform", "low": 1000, "high": 20000}},
                "irq_off": {"fraction": 0.05, "length": LOGN}},
    ),  # fmt: skip
    # the follow-up's preemptible flush_tlb_kernel_range(): kernel-range waits no longer pinned
    "krange8_preemptible": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 8, "sockets": 1, "cpus_per_llc": 8, "smt": 1},
        kernel={"preemption": "full", "kernel_range_preemptible": True},
        workload={"call": "tlb_flush_kernel", "caller": {"preemptible": 0.7, "spinlock": 0.3, "preempt_disabled": 0.0}},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN}},
    ),  # fmt: skip
    # smp_call_function_single() (9.37): one target on 2 sockets × 2 LLCs × SMT 2, idle targets
    # polling 40% of their idle time (no IPI), all three remote states, PREEMPT_RT with spinlock
    # callers, every policy (no mask: alloc/cpus_read_lock costs must not appear), a shared delivery
    "single16_polling_rt": _base(
        policies=FOUR,
        machine={"cpus": 16, "sockets": 2, "cpus_per_llc": 4, "smt": 2},
        kernel={"preemption": "rt"},
        workload={"call": "single", "caller": {"preemptible": 0.3, "spinlock": 0.5, "preempt_disabled": 0.2}},
        costs={"func_ns": {"dist": "mixture", "components": [
            {"weight": 0.8, "dist": "lognormal", "median": 300, "sigma": 0.4},
            {"weight": 0.2, "dist": "uniform", "low": 1000, "high": 5000}]}},
        ipi={"mode": "cluster", "cluster_size": 4, "delivery_ns": {"dist": "gamma", "mean": 1200, "cv": 0.5},
             "delivery_common_ns": {"dist": "exponential", "mean": 300},
             "cross_socket_ns": {"dist": "lognormal", "median": 300, "sigma": 0.3}},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN},
                "idle": {"fraction": 0.3, "polling_prob": 0.4,
                         "exit_ns": {"dist": "lognormal", "median": 1500, "sigma": 0.5}},
                "vcpu_preempted": {"fraction": 0.02, "length": {"dist": "exponential", "mean": 50000}}},
        policy={"reentry": "off", "alloc_ns": 700, "alloc_fail_prob": 0.3, "cpus_read_lock_ns": 400},
    ),  # fmt: skip
    # single calls with the re-entry bound on at a rate where many-calls spin (ρ_w ≈ 0.3 for
    # reentry8_bound): none here; per-CPU rates weight the sender, no polling
    "single8_bound_rates": _base(
        policies=["preempt_off", "preemptible_wait"],
        machine={"cpus": 8, "sockets": 1, "cpus_per_llc": 4, "smt": 1},
        kernel={"preemption": "full"},
        workload={"call": "single", "rate_hz": [100000, 0, 50000, 0, 100000, 20000, 0, 100000],
                  "caller": {"preemptible": 0.8, "spinlock": 0.2, "preempt_disabled": 0.0}},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN},
                "idle": {"fraction": 0.2, "exit_ns": {"dist": "uniform", "low": 1000, "high": 20000}}},
        policy={"reentry": "bound"},
    ),  # fmt: skip
    # a KVM sender's vCPU preempted by the host during its wait (9.39): ~0.3 preemptions per wait,
    # exponential slices; preempt_off, a failed allocation and cpus_read_lock's H keep them, a
    # preemptible wait's P does not; targets may be preempted vCPUs too (the same length law)
    "kvm_sender_preempt8": _base(
        policies=FOUR,
        machine={"cpus": 8, "sockets": 1, "cpus_per_llc": 4, "smt": 2},
        kernel={"preemption": "full"},
        workload={"call": "generic", "caller": {"preemptible": 0.6, "spinlock": 0.2, "preempt_disabled": 0.2}},
        ipi={"mode": "physical", "sender_preempt_hz": 50000},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN},
                "vcpu_preempted": {"fraction": 0.02, "length": {"dist": "exponential", "mean": 20000}}},
        policy={"reentry": "off", "alloc_fail_prob": 0.2},
    ),  # fmt: skip
    # the re-entry bound: a high call rate makes ρ_w = λ E[T − S_L] ≈ 0.3
    "reentry8_bound": _base(
        policies=FOUR,
        machine={"cpus": 8, "sockets": 1, "cpus_per_llc": 8, "smt": 1},
        kernel={"preemption": "full"},
        workload={"call": "tlb_flush", "rate_hz": 100000,
                  "caller": {"preemptible": 0.8, "spinlock": 0.2, "preempt_disabled": 0.0}},
        remote={"irq_off": {"fraction": 0.05, "length": LOGN}},
        policy={"reentry": "bound", "alloc_fail_prob": 0.05},
    ),
}


@dataclass
class Plan:
    """What one set compares (decided from its parameters alone, before any simulation)."""

    params: Params
    per_fanout: list[str] = field(default_factory=list)  # raw per-fan-out samples
    pooled: list[str] = field(default_factory=list)  # binned per-target histograms


def plan(params: Params) -> Plan:
    p = Plan(params, ["T", "S_L"])
    kernel_preemptible = params.kernel.preemption in ("full", "lazy", "rt")
    for name in params.policies:
        # preempt_off's P is T (checked exactly in test_policies), and without kernel preemption
        # every P is T; elsewhere P carries the policy's own logic.
        if name != "preempt_off" and kernel_preemptible:
            p.per_fanout.append(f"P[{name}]")
    if "cpus_read_lock" in params.policies and kernel_preemptible:
        p.per_fanout.append("H[cpus_read_lock]")  # the only H that differs from its P
    pv_drops = params.ipi.pv_tlb_flush and params.workload.call == "tlb_flush" and params.remote.vcpu_preempted.fraction > 0
    if params.workload.mm_cpus is not None or params.workload.target_prob < 1 or pv_drops:
        p.per_fanout.append("k")
    if params.workload.rate_per_cpu:
        p.per_fanout.append("sender")
    if params.tlb.mechanism == "invlpgb" and params.workload.call in ("tlb_flush", "tlb_flush_kernel"):
        return p  # a broadcast flush has no targets (every set here has an mm of 4+ CPUs)
    p.pooled.append("remote_wait")
    if params.workload.call in ("tlb_flush", "tlb_flush_kernel"):
        p.pooled.append("info_cost")
    return p


PLANS = {name: plan(params_from(d)) for name, d in SETS.items()}

# Sampler checks: the twin's own draws and residual draws against the exact CDFs of
# mcsmp.distributions (one-sample KS; discrete laws are left out).
SAMPLER_DISTS = {
    "uniform": {"dist": "uniform", "low": 100, "high": 3000},
    "exponential": {"dist": "exponential", "mean": 2000},
    "lognormal": {"dist": "lognormal", "median": 5000, "sigma": 1.5},
    "gamma": {"dist": "gamma", "mean": 4000, "cv": 1.5},
    "weibull": {"dist": "weibull", "scale": 800, "shape": 0.8},
    "pareto": {"dist": "pareto", "scale": 1000, "alpha": 2.5},
    "empirical": {"dist": "empirical", "quantiles": {0.0: 500, 0.5: 3000, 0.9: 9000, 1.0: 40000}},
    "mixture": {"dist": "mixture", "components": [
        {"weight": 0.6, "dist": "lognormal", "median": 1000, "sigma": 0.3},
        {"weight": 0.4, "dist": "uniform", "low": 41000, "high": 170000}]},
}  # fmt: skip
N_SAMPLER = 20_000

M = sum(len(p.per_fanout) + len(p.pooled) for p in PLANS.values()) + 2 * len(SAMPLER_DISTS)
ALPHA = ALPHA_FAMILY / M  # Bonferroni: P(any false rejection) ≤ M · ALPHA = ALPHA_FAMILY


# ---- running both sides ------------------------------------------------------------------------


@dataclass
class Outcome:
    params: Params
    kernel_samples: np.ndarray
    kernel_hists: dict[str, np.ndarray]
    twin: NaiveResult
    wait_tail: HistogramResidual | None


@functools.cache
def outcome(name: str) -> Outcome:
    params = PLANS[name].params
    res = run_point(params, threads=2, keep_samples=True)
    assert res.samples is not None and res.samples.shape[0] == N_KERNEL
    tail = None
    if res.model.needs_reentry:
        # The pilot is the first min(16, chunks) chunks, here all 4; the main stream does not see
        # the re-entry draws, so this run's T − S_L histogram IS the first pass's histogram.
        h = res.histogram("wait_tail_ns")
        assert h.mean == res.wait_tail_mean
        tail = HistogramResidual(h.counts, res.layout.edges, h.mean)
    twin = simulate(params, N_TWIN, seed=hash_seed(name), wait_tail=tail)
    hists = {
        "remote_wait": res.counts[K.H_REMOTE_WAIT].copy(),
        "info_cost": res.counts[K.H_INFO_COST].copy(),
    }
    return Outcome(params, res.samples, hists, twin, tail)


def hash_seed(name: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name))  # stable across runs (no hash())


def kernel_column(o: Outcome, quantity: str) -> np.ndarray:
    s, pols = o.kernel_samples, list(o.params.policies)
    if quantity == "T":
        return s[:, K.S_T]
    if quantity == "S_L":
        return s[:, K.S_SL]
    if quantity == "k":
        return s[:, K.S_TARGETS]
    if quantity == "sender":
        return s[:, K.S_SENDER]
    kind, pol = quantity[0], quantity[2:-1]
    i = pols.index(pol)
    return s[:, K.N_SAMPLE_COLS + i] if kind == "P" else s[:, K.N_SAMPLE_COLS + len(pols) + i]


def twin_column(o: Outcome, quantity: str) -> np.ndarray:
    t, pols = o.twin, list(o.params.policies)
    simple = {"T": t.T, "S_L": t.S_L, "k": t.k.astype(float), "sender": t.sender.astype(float)}
    if quantity in simple:
        return simple[quantity]
    kind, pol = quantity[0], quantity[2:-1]
    return (t.P if kind == "P" else t.H)[:, pols.index(pol)]


def binned_ks(counts_a: np.ndarray, n_a: int, counts_b: np.ndarray, n_b: int) -> tuple[float, float]:
    """Two-sample KS distance of two histograms on the same edges, p-value for sizes n_a, n_b.

    The p-value is the asymptotic one of ``scipy.stats.ks_2samp`` (``kstwo`` at ``en``).
    """
    fa = np.cumsum(counts_a) / counts_a.sum()
    fb = np.cumsum(counts_b) / counts_b.sum()
    d = float(np.max(np.abs(fa - fb)))
    en = n_a * n_b / (n_a + n_b)
    return d, float(stats.kstwo.sf(d, round(en)))


def compare(o: Outcome, quantity: str, scale: float = 1.0) -> tuple[float, float]:
    """(KS distance, p-value) of one quantity; ``scale`` multiplies the twin's values (power check)."""
    if quantity in ("remote_wait", "info_cost"):
        layout = Layout(o.params.report.precision_bits)
        vals = (o.twin.remote_wait if quantity == "remote_wait" else o.twin.info_cost) * scale
        twin_counts = np.bincount(layout.index(vals), minlength=layout.n_buckets)
        n_kernel = int(np.sum(o.kernel_samples[:, K.S_TARGETS] > 0))
        n_twin = int(np.sum(o.twin.k > 0))
        return binned_ks(o.kernel_hists[quantity], n_kernel, twin_counts, n_twin)
    r = stats.ks_2samp(kernel_column(o, quantity), twin_column(o, quantity) * scale, method="asymp")
    return float(r.statistic), float(r.pvalue)


# ---- tests -------------------------------------------------------------------------------------


def test_bonferroni_bookkeeping() -> None:
    assert M == 117  # update the module docstring's arithmetic when the sets change
    assert math.isclose(ALPHA * M, ALPHA_FAMILY)


@pytest.mark.parametrize("name", list(SETS))
def test_kernel_matches_twin(name: str) -> None:
    p = PLANS[name]
    o = outcome(name)
    if p.pooled:
        assert o.twin.k.max() > 0 and int(np.sum(o.kernel_samples[:, K.S_TARGETS] > 0)) > 0
    else:  # a broadcast flush: no targets on either side
        assert o.twin.k.max() == 0 and np.all(o.kernel_samples[:, K.S_TARGETS] == 0)
    results = {q: compare(o, q) for q in p.per_fanout + p.pooled}
    failed = {q: r for q, r in results.items() if r[1] < ALPHA}
    assert not failed, (
        f"{name}: kernel and twin differ (D, p) at alpha {ALPHA:.2g}: {failed}; all: {results}"
    )


def test_power_detects_a_2_percent_shift() -> None:
    """The same comparisons reject a twin whose values are 2% larger: the module can fail."""
    o = outcome("base16_percpu_physical_full")
    for q in ("T", "S_L", "P[preemptible_wait]", "remote_wait"):
        d, pval = compare(o, q, scale=1.02)
        assert pval < ALPHA, f"{q}: a 2% shift was not detected (D={d:.4f}, p={pval:.3g})"


def test_reentry_set_really_spins() -> None:
    """The re-entry set exercises the spin: about ρ_w of the fan-outs spin in both simulations."""
    o = outcome("reentry8_bound")
    assert o.wait_tail is not None
    rho = o.params.workload.rate_hz[0] * o.wait_tail.mean * 1e-9
    assert 0.1 < rho < 0.9
    for spins, n in ((o.kernel_samples[:, K.S_SPIN] > 0, N_KERNEL), (o.twin.spin > 0, N_TWIN)):
        # binomial: |frac − ρ| within 5 standard errors (a 5-sigma bound on two checks)
        assert abs(spins.mean() - rho) < 5 * math.sqrt(rho * (1 - rho) / n)


@pytest.mark.parametrize("family", list(SAMPLER_DISTS))
def test_twin_samplers_match_exact_cdfs(family: str) -> None:
    """The twin's draws follow ``Dist.cdf`` and its residual draws ``Dist.residual_cdf``."""
    dist = parse_dist(SAMPLER_DISTS[family], family)
    rng = np.random.default_rng(1234 + len(family))
    plain = stats.kstest(draw_many(dist, rng, N_SAMPLER), dist.cdf)
    resid = stats.kstest(residual_many(dist, rng, N_SAMPLER), dist.residual_cdf)
    assert plain.pvalue >= ALPHA, f"{family} draws: D={plain.statistic:.4f} p={plain.pvalue:.3g}"
    assert resid.pvalue >= ALPHA, f"{family} residuals: D={resid.statistic:.4f} p={resid.pvalue:.3g}"


def test_single_calls_never_spin() -> None:
    """smp_call_function_single() waits on its stack csd: with the bound on and many-call-sized
    rates there is no second pass and no spin (9.37), while the same rates do spin many-calls."""
    o = outcome("single8_bound_rates")
    assert o.params.policy.reentry == "bound" and o.wait_tail is None
    assert np.all(o.kernel_samples[:, K.S_SPIN] == 0) and np.all(o.twin.spin == 0)
    assert np.all(o.kernel_samples[:, K.S_TARGETS] == 1) and np.all(o.twin.k == 1)
