"""The typed, immutable configuration: one frozen :class:`Params` per sweep point.

Built and validated by :mod:`mcsmp.config.build`; the kernels' enumerations (policy, call,
placement, preemption-model and context names) come from :mod:`mcsmp.kernels.codes`, the one
list of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._util import sha256_json
from ..dists import Dist
from ..kernels.codes import (
    ASYNC_CSDS,
    CALLER_CONTEXTS,
    CALLS,
    CSD_LOCKS,
    DISTANCE_CLASSES,
    PLACEMENTS,
    POLICIES,
    PREEMPTION_MODELS,
    SMT_NUMBERINGS,
    SYSTEM_WORKLOADS,
    TARGET_ORDERS,
    TLB_MECHANISMS,
)

__all__ = [
    "ASYNC_CSDS",
    "CALLER_CONTEXTS",
    "CALLS",
    "CSD_LOCKS",
    "DISTANCE_CLASSES",
    "PLACEMENTS",
    "POLICIES",
    "PREEMPTION_MODELS",
    "SMT_NUMBERINGS",
    "SYSTEM_WORKLOADS",
    "TARGET_ORDERS",
    "TLB_MECHANISMS",
    "Background",
    "Cache",
    "Caller",
    "Costs",
    "Ipi",
    "Kernel",
    "Machine",
    "Params",
    "Policy",
    "Reference",
    "Remote",
    "RemoteState",
    "Report",
    "System",
    "Tlb",
    "Workload",
    "key_from_hash",
]


@dataclass(frozen=True)
class Machine:
    cpus: int
    sockets: int
    cpus_per_llc: int
    smt: int
    smt_numbering: str = "split"  # "split": CPU t and t + cores are siblings; "adjacent": 2c, 2c + 1


@dataclass(frozen=True)
class Kernel:
    preemption: str
    csdlock_debug: bool
    nr_cpus: int
    tasks: int
    target_order: str  # "cpu0" (for_each_cpu) or "after_sender" (the contract's rule)
    kernel_range_preemptible: bool  # the follow-up: flush_tlb_kernel_range() waits preemptibly


@dataclass(frozen=True)
class Caller:
    preemptible: float
    spinlock: float
    preempt_disabled: float


@dataclass(frozen=True)
class Workload:
    call: str
    mm_cpus: int | None
    target_prob: float
    run_local: bool
    rate_hz: tuple[float, ...]  # one per CPU (a single number is broadcast)
    rate_per_cpu: bool  # the file gave a list: report per-CPU rows
    caller: Caller
    freed_tables_prob: float  # tlb_flush calls that freed page tables: lazy CPUs are IPI'd too


@dataclass(frozen=True)
class Costs:
    entry_ns: Dist
    queue_ns: Dist
    irq_entry_ns: Dist
    func_ns: Dist
    context_switch_ns: float
    cond_ns: Dist  # one should_flush_tlb() check of a CPU in the mask


@dataclass(frozen=True)
class Ipi:
    mode: str
    cluster_size: int
    send_ns: Dist
    delivery_ns: Dist
    cross_socket_ns: Dist
    shorthand: bool  # apic_use_ipi_shorthand: a full mask goes out as one all-but-self write
    delivery_common_ns: Dist  # drawn once per fan-out, added to every target's delivery
    pv_tlb_flush: bool  # KVM guest: kvm_flush_tlb_multi() drops preempted vCPUs, stays preempt-off
    sender_preempt_hz: float = 0.0  # KVM guest: host preemptions of the sender's vCPU per second of its csd wait (9.39)


@dataclass(frozen=True)
class RemoteState:
    fraction: float
    length: Dist  # irq_off / vcpu_preempted: section length; idle: exit time
    polling_prob: float = 0.0  # idle only: share of idle time in a TIF_POLLING_NRFLAG loop (single calls, 9.37)


@dataclass(frozen=True)
class Remote:
    irq_off: RemoteState
    idle: RemoteState
    vcpu_preempted: RemoteState


@dataclass(frozen=True)
class Tlb:
    pages: Dist
    ceiling_pages: int
    invlpg_ns: Dist
    full_flush_ns: Dist
    info_bytes: int
    handler_fixed_ns: Dist  # per call, on top of the pages' INVLPGs or the full flush
    mechanism: str  # "ipi" (flush_tlb_func on every target) or "invlpgb" (AMD broadcast, 9.31)
    invlpgb_ns: Dist  # one INVLPGB instruction on the sender
    invlpgb_count_max: int  # pages one INVLPGB covers (CPUID 0x80000008 EDX[15:0] + 1)
    tlbsync_ns: Dist  # the sender's TLBSYNC wait for every CPU's invalidation


@dataclass(frozen=True)
class Cache:
    placement: str
    transfer_ns: tuple[float, float, float, float]  # smt, llc, socket, remote
    line_serialize_ns: float
    false_sharing_prob: float
    stack_tlb_miss_prob: float
    page_walk_ns: Dist


@dataclass(frozen=True)
class Policy:
    alloc_ns: float
    alloc_fail_prob: float
    cpus_read_lock_ns: float
    reentry: str


@dataclass(frozen=True)
class Background:
    name: str
    rate_hz: float  # sections per second on every CPU (the largest, when given per CPU)
    length: Dist
    rates: tuple[float, ...] = ()  # per CPU (machine.cpus entries) when rate_hz is a list

    def rate_on(self, cpu: int) -> float:
        """Sections per second on ``cpu``."""
        return self.rates[cpu] if self.rates else self.rate_hz


@dataclass(frozen=True)
class Reference:
    window_max_ns: tuple[tuple[float, tuple[float, ...]], ...]  # (quantile, per-CPU values)
    exceed_count: tuple[tuple[int, tuple[float, ...]], ...]  # (cpu, counts per bin)


@dataclass(frozen=True)
class Report:
    quantiles: tuple[float, ...]
    window_s: float
    duration_h: float
    exceed_bins_ns: tuple[float, ...]
    precision_bits: int
    reference: Reference | None
    rare_events: str = "auto"  # "auto": stratified sampling of the rare remote states; "off": crude


@dataclass(frozen=True)
class System:
    """The ``system`` section: only ``mcsmp system`` (the whole-machine simulation) reads it."""

    workload: str
    threads: int  # closed loop: CPUs 0..threads-1 run the benchmark
    work_ns: Dist
    second_task_hz: tuple[float, ...]  # per CPU
    async_csd: str
    csd_lock: str
    lock_window_ns: float
    scf_weights: tuple[float, float, float, float]  # single_sync, single_async, many_sync, many_async
    duration_s: float
    warmup_s: float
    replications: int
    hotplug_interval_s: float = 0.0  # torture_onoff() period (0: no CPU hotplug)


@dataclass(frozen=True)
class Params:
    """One fully resolved, validated sweep point."""

    name: str
    seed: int
    samples: int
    policies: tuple[str, ...]
    machine: Machine
    kernel: Kernel
    workload: Workload
    costs: Costs
    ipi: Ipi
    remote: Remote
    tlb: Tlb
    cache: Cache
    policy: Policy
    background: tuple[Background, ...]
    report: Report
    resolved: dict[str, Any] = field(compare=False, repr=False)  # merged plain data
    system: System | None = None  # mcsmp system only; in `resolved` only when a key differs from the defaults
    # Where this point came from (a mcsmp.config.points.PointSource: the file and its --set
    # overrides), so that the public API can list and run a file's other sweep points.
    origin: Any = field(default=None, compare=False, repr=False)

    def model_dict(self) -> dict[str, Any]:
        """The parameters that change what is sampled (not name, seed, samples, report, sweep).
        The system section (read by ``mcsmp system`` only) is resolved only where it differs from
        the defaults, so files that do not use it keep their point ids and streams (so is
        ``remote.idle.polling_prob``: left out at 0). ``rare_events``
        counts when the point is stratified (docs/model.md §5 "Rare events": it changes the draws,
        so a stratified run and its crude twin are different points; a point with nothing to
        stratify, or with ``report.rare_events: off``, keeps its crude identity)."""
        from .rare import tail_components

        skip = {"name", "seed", "samples", "report", "sweep"}
        out = {k: v for k, v in self.resolved.items() if k not in skip}
        if tail_components(self):
            out["rare_events"] = self.report.rare_events
        return out

    @property
    def model_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`model_dict`: the point's identity."""
        return sha256_json(self.model_dict())

    @property
    def params_hash(self) -> str:
        """SHA-256 of the canonical JSON of all resolved parameters (seed, samples, report too)."""
        return sha256_json(self.resolved)

    @property
    def point_id(self) -> str:
        return self.model_hash[:10]

    @property
    def stream_hash(self) -> str:
        """The model hash with ``cache.placement`` set to ``percpu``: points that differ only in
        the flush-request placement share their random streams (docs/model.md §6, reading 9.22),
        so their differences are paired. A percpu point's stream hash is its model hash."""
        model = self.model_dict()
        model["cache"] = {**model["cache"], "placement": "percpu"}
        return sha256_json(model)

    @property
    def stream_key(self) -> int:
        """The key of this point's random streams (docs/model.md §6): from :attr:`stream_hash`, so
        two points draw alike exactly when they simulate the same model up to the placement."""
        return key_from_hash(self.stream_hash)


def key_from_hash(hex_hash: str) -> int:
    """A stream key from a hex hash (its first 64 bits), as :attr:`Params.stream_key` uses it."""
    return int(hex_hash[:16], 16)
