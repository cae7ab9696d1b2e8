"""Validated :class:`~mcsmp.config.Params` → the flat arrays the compiled kernel trusts.

The packing uses the codes of :mod:`mcsmp.kernels.codes` (the only module that knows the kernels'
array layout besides the kernels themselves); :func:`hist_row` names the histogram rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Params
from ..dists import Dist, encode
from ..kernels import codes as K
from .histogram import Layout
from .rare import RarePlan, plan_rare_events

__all__ = ["CompiledModel", "compile_model", "dist_slots", "hist_row", "hist_rows", "policy_rows", "uses_invlpgb"]

# Each enumeration's code is its position in the name tuple of mcsmp.kernels.codes.
_CALL = {name: code for code, name in enumerate(K.CALLS)}
_PLACEMENT = {name: code for code, name in enumerate(K.PLACEMENTS)}
_PREEMPTION = {name: code for code, name in enumerate(K.PREEMPTION_MODELS)}
_POLICY = {name: code for code, name in enumerate(K.POLICIES)}


@dataclass(frozen=True)
class CompiledModel:
    ip: np.ndarray
    fp: np.ndarray
    index: np.ndarray
    table: np.ndarray
    rate_cum: np.ndarray
    rate_hz: np.ndarray
    group_of: np.ndarray  # CPU -> group of CPUs with the same call rate
    group_rates: tuple[float, ...]
    policies: np.ndarray
    layout: Layout
    n_hists: int  # rows of the counts: n_rows per stratum, strata one after another
    needs_reentry: bool  # the second pass (re-entry tail) can change some P
    rare: RarePlan  # the strata of the rare remote states (one stratum: crude sampling)
    n_rows: int  # histogram rows of one stratum (hist_rows)

    @property
    def n_groups(self) -> int:
        return len(self.group_rates)


def hist_rows(n_groups: int, n_policies: int) -> int:
    return K.N_FIXED_HISTS + 2 * n_groups * n_policies


def policy_rows(group: int, policy_index: int, n_policies: int) -> tuple[int, int]:
    """Histogram rows of ``P`` and ``H`` for one CPU group and policy."""
    row = K.N_FIXED_HISTS + 2 * (group * n_policies + policy_index)
    return row, row + 1


def hist_row(metric: str, policies: tuple[str, ...] = (), policy: str = "", group: int = 0) -> int:
    """The histogram row of a sampled metric: a fixed one (``call_ns`` …), or ``preempt_off_ns`` /
    ``hotplug_block_ns`` of ``policy`` and CPU group ``group``."""
    if metric in K.FIXED_HISTS:
        return K.FIXED_HISTS.index(metric)
    if metric not in K.POLICY_HISTS:
        raise KeyError(f"{metric!r} is not a sampled metric (histograms: {', '.join(K.FIXED_HISTS + K.POLICY_HISTS)})")
    return policy_rows(group, policies.index(policy), len(policies))[K.POLICY_HISTS.index(metric)]


def dist_slots(params: Params) -> list[Dist]:
    """The distribution of every kernel slot (``D_*`` of :mod:`mcsmp.kernels.codes`), in slot order."""
    c = params.cache
    slots = [None] * K.N_DISTS
    slots[K.D_ENTRY] = params.costs.entry_ns
    slots[K.D_QUEUE] = params.costs.queue_ns
    slots[K.D_IRQ_ENTRY] = params.costs.irq_entry_ns
    slots[K.D_FUNC] = params.costs.func_ns
    slots[K.D_SEND] = params.ipi.send_ns
    slots[K.D_DELIVERY] = params.ipi.delivery_ns
    slots[K.D_CROSS_SOCKET] = params.ipi.cross_socket_ns
    slots[K.D_IRQ_OFF_LEN] = params.remote.irq_off.length
    slots[K.D_IDLE_EXIT] = params.remote.idle.length
    slots[K.D_VCPU_LEN] = params.remote.vcpu_preempted.length
    slots[K.D_PAGES] = params.tlb.pages
    slots[K.D_INVLPG] = params.tlb.invlpg_ns
    slots[K.D_FULL_FLUSH] = params.tlb.full_flush_ns
    slots[K.D_PAGE_WALK] = c.page_walk_ns
    slots[K.D_HANDLER_FIXED] = params.tlb.handler_fixed_ns
    slots[K.D_DELIVERY_COMMON] = params.ipi.delivery_common_ns
    slots[K.D_INVLPGB] = params.tlb.invlpgb_ns
    slots[K.D_TLBSYNC] = params.tlb.tlbsync_ns
    slots[K.D_COND] = params.costs.cond_ns
    return slots  # type: ignore[return-value]


def uses_invlpgb(params: Params) -> bool:
    """docs/model.md 9.31: the TLB calls of ``tlb.mechanism: invlpgb`` flush by broadcast; a user
    mm only once it has a global ASID, i.e. is active on 4 or more CPUs (consider_global_asid())."""
    w = params.workload
    if params.tlb.mechanism != "invlpgb" or w.call in ("generic", "single"):
        return False
    mm_size = params.machine.cpus if w.mm_cpus is None else w.mm_cpus + 1
    return w.call == "tlb_flush_kernel" or mm_size >= 4


def compile_model(params: Params) -> CompiledModel:
    m, w, c = params.machine, params.workload, params.cache
    layout = Layout(params.report.precision_bits)

    rates = np.array(w.rate_hz, dtype=np.float64)
    group_rates: list[float] = []
    group_of = np.empty(m.cpus, dtype=np.int64)
    for cpu, r in enumerate(rates):
        if r not in group_rates:
            group_rates.append(float(r))
        group_of[cpu] = group_rates.index(r)
    rate_cum = np.cumsum(rates) / rates.sum()
    rate_cum[-1] = 1.0

    ip = np.zeros(K.N_IP, dtype=np.int64)
    ip[K.I_CPUS] = m.cpus
    ip[K.I_PER_SOCKET] = m.cpus // m.sockets
    ip[K.I_PER_LLC] = m.cpus_per_llc
    ip[K.I_SMT] = m.smt
    ip[K.I_SMT_SPLIT] = int(m.smt_numbering == "split")
    ip[K.I_MM_CPUS] = -1 if w.mm_cpus is None else w.mm_cpus
    ip[K.I_CALL] = _CALL[w.call]
    ip[K.I_RUN_LOCAL] = int(w.run_local)
    ip[K.I_CLUSTER_MODE] = int(params.ipi.mode == "cluster")
    ip[K.I_CLUSTER_SIZE] = params.ipi.cluster_size
    ip[K.I_PLACEMENT] = _PLACEMENT[c.placement]
    ip[K.I_CEILING] = params.tlb.ceiling_pages
    ip[K.I_INFO_BYTES] = params.tlb.info_bytes
    ip[K.I_PREEMPTION] = _PREEMPTION[params.kernel.preemption]
    ip[K.I_CSD_DEBUG] = int(params.kernel.csdlock_debug)
    ip[K.I_REENTRY] = int(params.policy.reentry == "bound")
    ip[K.I_UNIFORM_RATE] = int(len(group_rates) == 1)
    ip[K.I_SHIFT] = layout.shift
    ip[K.I_BASE] = layout.base
    ip[K.I_OVERFLOW] = layout.overflow
    ip[K.I_SHORTHAND] = int(params.ipi.shorthand)
    ip[K.I_ORDER_AFTER_SENDER] = int(params.kernel.target_order == "after_sender")
    per_socket = m.cpus // m.sockets
    ip[K.I_APIC_PER_SOCKET] = 1 << (per_socket - 1).bit_length()  # package id field: next power of two

    fp = np.zeros(K.N_FP, dtype=np.float64)
    fp[K.F_TARGET_PROB] = w.target_prob
    fp[K.F_IRQ] = params.remote.irq_off.fraction
    fp[K.F_IDLE] = params.remote.idle.fraction
    fp[K.F_VCPU] = params.remote.vcpu_preempted.fraction
    fp[K.F_CALLER_PRE] = w.caller.preemptible
    fp[K.F_CALLER_SPIN] = w.caller.spinlock
    fp[K.F_T_SMT : K.F_T_REMOTE + 1] = c.transfer_ns
    fp[K.F_SERIALIZE] = c.line_serialize_ns
    fp[K.F_FALSE_SHARING] = c.false_sharing_prob
    fp[K.F_TLB_MISS] = c.stack_tlb_miss_prob
    fp[K.F_ALLOC_NS] = params.policy.alloc_ns
    fp[K.F_ALLOC_FAIL] = params.policy.alloc_fail_prob
    fp[K.F_RLOCK_NS] = params.policy.cpus_read_lock_ns
    pv = params.ipi.pv_tlb_flush and w.call == "tlb_flush"
    broadcast = uses_invlpgb(params)
    ip[K.I_BROADCAST] = int(broadcast)
    ip[K.I_INVLPGB_COUNT_MAX] = params.tlb.invlpgb_count_max
    ip[K.I_KRANGE_PREEMPTIBLE] = int(params.kernel.kernel_range_preemptible)
    fp[K.F_FREED_TABLES] = w.freed_tables_prob
    ip[K.I_PV_TLB] = int(params.ipi.pv_tlb_flush)
    if pv:  # docs/model.md 9.30: preempted targets leave the mask; the others' states are conditional
        f_vcpu = params.remote.vcpu_preempted.fraction
        kept = 1.0 - f_vcpu
        fp[K.F_PV_DROP] = f_vcpu
        fp[K.F_IRQ] = params.remote.irq_off.fraction / kept if kept > 0 else 0.0
        fp[K.F_IDLE] = params.remote.idle.fraction / kept if kept > 0 else 0.0
        fp[K.F_VCPU] = 0.0
    fp[K.F_SENDER_PREEMPT] = params.ipi.sender_preempt_hz * 1e-9  # per ns of wait running time (9.39)
    single = w.call == "single"
    if single:  # docs/model.md 9.37: one target, uniform among the others; no lazy skip, no local run
        ip[K.I_MM_CPUS] = 1
        fp[K.F_TARGET_PROB] = 1.0
        ip[K.I_RUN_LOCAL] = 0
        ip[K.I_REENTRY] = 0  # its csd is on the caller's stack: nothing for a later call to spin on
        polling = params.remote.idle.fraction * params.remote.idle.polling_prob
        if polling > 0:  # a polling idle target is decided at the send; the other states are conditional
            kept = 1.0 - polling
            fp[K.F_POLLING] = polling
            fp[K.F_IRQ] = params.remote.irq_off.fraction / kept if kept > 0 else 0.0
            fp[K.F_IDLE] = params.remote.idle.fraction * (1.0 - params.remote.idle.polling_prob) / kept if kept > 0 else 0.0
            fp[K.F_VCPU] = params.remote.vcpu_preempted.fraction / kept if kept > 0 else 0.0

    index, table = encode(dist_slots(params))
    rare = plan_rare_events(params, index, table, fp)

    policies = np.array([_POLICY[p] for p in params.policies], dtype=np.int64)
    kernel_preemptible = params.kernel.preemption in ("full", "lazy", "rt")
    kernel_range_pinned = w.call == "tlb_flush_kernel" and not params.kernel.kernel_range_preemptible
    pinned = params.kernel.csdlock_debug or kernel_range_pinned or pv or broadcast
    some_call_may_allow = w.caller.preemptible > 0 or (w.caller.spinlock > 0 and params.kernel.preemption == "rt")
    needs_reentry = (
        params.policy.reentry == "bound"
        and not single
        and kernel_preemptible
        and not pinned
        and some_call_may_allow
        and any(p != "preempt_off" for p in params.policies)
    )
    return CompiledModel(
        ip=ip, fp=fp, index=index, table=table, rate_cum=rate_cum, rate_hz=rates,
        group_of=group_of, group_rates=tuple(group_rates), policies=policies, layout=layout,
        n_hists=rare.n_strata * hist_rows(len(group_rates), len(params.policies)), needs_reentry=needs_reentry,
        rare=rare, n_rows=hist_rows(len(group_rates), len(params.policies)),
    )  # fmt: skip
