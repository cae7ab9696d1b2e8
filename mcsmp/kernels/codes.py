"""Every integer code shared by the compiled kernels and the Python layers above them.

The kernels take flat arrays (``ip`` integers, ``fp`` floats, a distribution table) and write
histogram rows; this module is the one place that says what each index and each enumeration value
means. :mod:`mcsmp.sim.model` packs validated parameters with these codes, the kernels read them,
and :mod:`mcsmp.sim.engine` reads the histogram rows back by metric name. Nothing here imports
numba, so the layers above can use the codes without compiling anything.
"""

from __future__ import annotations

# ---- integer parameters (ip[...]) ------------------------------------------------------------
I_CPUS, I_PER_SOCKET, I_PER_LLC, I_SMT, I_MM_CPUS, I_CALL, I_RUN_LOCAL, I_CLUSTER_MODE = range(8)
I_CLUSTER_SIZE, I_PLACEMENT, I_CEILING, I_INFO_BYTES, I_PREEMPTION, I_CSD_DEBUG = range(8, 14)
I_REENTRY, I_UNIFORM_RATE, I_SHIFT, I_BASE, I_OVERFLOW = range(14, 19)
# issue 10: IPI shorthand, target order, x2APIC ids padded per package (docs/model.md 9.14, 9.15, 9.27)
I_SHORTHAND, I_ORDER_AFTER_SENDER, I_APIC_PER_SOCKET = range(19, 22)
I_PV_TLB = 22  # issue 10: KVM PV TLB flush (docs/model.md 9.30)
I_BROADCAST, I_INVLPGB_COUNT_MAX = range(23, 25)  # issue 10: AMD INVLPGB flushes (9.31)
I_KRANGE_PREEMPTIBLE = 25  # issue 10: the follow-up that makes flush_tlb_kernel_range() preemptible (9.32)
I_SMT_SPLIT = 26  # machine.smt_numbering: split (sibling of CPU t is t + cores) vs adjacent
N_IP = 27

# ---- float parameters (fp[...]) --------------------------------------------------------------
F_TARGET_PROB, F_IRQ, F_IDLE, F_VCPU, F_CALLER_PRE, F_CALLER_SPIN = range(6)
F_T_SMT, F_T_LLC, F_T_SOCKET, F_T_REMOTE, F_SERIALIZE, F_FALSE_SHARING, F_TLB_MISS = range(6, 13)
F_ALLOC_NS, F_ALLOC_FAIL, F_RLOCK_NS, F_REENTRY_SCALE = range(13, 17)
F_PV_DROP = 17  # issue 10: probability that kvm_flush_tlb_multi() drops a target (9.30)
F_FREED_TABLES = 18  # issue 10: probability that a user-mm flush freed page tables (9.33)
F_POLLING = 19  # issue 10: probability that a single call's target idles polling, so gets no IPI (9.37)
F_SENDER_PREEMPT = 20  # issue 10: host preemptions of the sender's vCPU per ns of its csd wait (9.39)
N_FP = 21

# ---- distribution slots (rows of the distribution index) --------------------------------------
D_ENTRY, D_QUEUE, D_IRQ_ENTRY, D_FUNC, D_SEND, D_DELIVERY, D_CROSS_SOCKET = range(7)
D_IRQ_OFF_LEN, D_IDLE_EXIT, D_VCPU_LEN, D_PAGES, D_INVLPG, D_FULL_FLUSH, D_PAGE_WALK = range(7, 14)
# issue 10: fixed per-call part of a TLB handler, delivery delay shared by a fan-out's targets
D_HANDLER_FIXED, D_DELIVERY_COMMON = range(14, 16)
D_INVLPGB, D_TLBSYNC = range(16, 18)  # issue 10: one INVLPGB instruction, the TLBSYNC wait (9.31)
D_COND = 18  # issue 10: one should_flush_tlb() check per CPU of the mask (9.33)
N_DISTS = 19

# ---- distribution table: basic families and columns -------------------------------------------
# A family's code is its row kind in the table; mcsmp.dists.families gives each code its maths
# (mean, CDF, residual) and mcsmp.kernels.sampling its draws.
FAM_CONST, FAM_UNIFORM, FAM_EXPONENTIAL, FAM_LOGNORMAL, FAM_GAMMA, FAM_WEIBULL, FAM_PARETO = range(7)
COL_FAMILY, COL_CUM_WEIGHT, COL_CUM_RESIDUAL_WEIGHT, COL_A, COL_B, COL_C = range(6)
N_COLS = 6

# ---- enumerations (names in the order of their codes) -----------------------------------------
CALLS = ("tlb_flush", "tlb_flush_kernel", "generic", "single")  # single: smp_call_function_single(), 9.37
CALL_TLB, CALL_TLB_KERNEL, CALL_GENERIC, CALL_SINGLE = range(4)
PLACEMENTS = ("percpu", "stack", "stack_aligned")
PLACE_PERCPU, PLACE_STACK, PLACE_STACK_ALIGNED = range(3)
PREEMPTION_MODELS = ("none", "voluntary", "full", "lazy", "rt")
PREEMPT_NONE, PREEMPT_VOLUNTARY, PREEMPT_FULL, PREEMPT_LAZY, PREEMPT_RT = range(5)
POLICIES = ("preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock")
POL_PREEMPT_OFF, POL_PREEMPTIBLE_WAIT, POL_ATOMIC_ALLOC, POL_CPUS_READ_LOCK = range(4)
CALLER_CONTEXTS = ("preemptible", "spinlock", "preempt_disabled")
CTX_PREEMPTIBLE, CTX_SPINLOCK, CTX_PREEMPT_DISABLED = range(3)
DISTANCE_CLASSES = ("smt", "llc", "socket", "remote")
CLS_SMT, CLS_LLC, CLS_SOCKET, CLS_REMOTE = range(4)
TARGET_ORDERS = ("cpu0", "after_sender")
TLB_MECHANISMS = ("ipi", "invlpgb")  # tlb.mechanism: flush_tlb_func by IPI, or AMD broadcast  # kernel.target_order: for_each_cpu's order, or the contract's

# ---- histogram rows ---------------------------------------------------------------------------
# The fixed rows, by metric name; then, per CPU group g and policy i: P at
# N_FIXED_HISTS + 2 (g · n_policies + i) and H one after (mcsmp.sim.model.policy_rows).
H_CALL, H_WAIT_TAIL, H_REMOTE_WAIT, H_INFO_COST = range(4)
FIXED_HISTS = ("call_ns", "wait_tail_ns", "remote_wait_ns", "info_cost_ns")
N_FIXED_HISTS = 4
POLICY_HISTS = ("preempt_off_ns", "hotplug_block_ns")  # the two rows of each (group, policy)

# ---- per-fan-out sample columns (only when samples are kept, for tests) ------------------------
S_SENDER, S_TARGETS, S_S, S_SL, S_T, S_SPIN, S_CONTEXT = range(7)
N_SAMPLE_COLS = 7  # then P of each policy, then H of each policy

# ---- per-fan-out trace of a pilot chunk (run_chunk -> replay_policies) --------------------------
TR_SL, TR_T, TR_CODE = range(3)  # S_L, T, sender · 8 + context · 2 + allocation failed
N_TRACE_COLS = 3

# ---- the whole-machine system simulation (mcsmp.kernels.system, docs/system.md) -----------------
# It reads the fan-out ip/fp/table above for every cost it shares with the fan-out engine, plus:
D_SYS_WORK = N_DISTS  # closed-loop local work between two flushes (system.work_ns), after the fan-out slots
N_SYS_DISTS = N_DISTS + 1
SI_WORKLOAD, SI_THREADS, SI_POLICY, SI_ASYNC_CSD, SI_CSD_LOCK = range(5)
SI_FORCE_CPU = 5  # mcsmp.system.stall: 1 + the CPU whose first irq-off section after SF_FORCE_AT is forced (0: none)
N_SI = 6
SF_DURATION, SF_WARMUP, SF_LOCK_WINDOW, SF_IRQ_GAP_MEAN, SF_CONTEXT_SWITCH = range(5)
SF_SCF_CUM = 5  # four cumulative weights of the scftorture operations (SCF_OPS order)
SF_HOTPLUG_INTERVAL = 9  # ns between torture_onoff() operations (0: no CPU hotplug)
SF_FORCE_AT, SF_FORCE_LEN = 10, 11  # mcsmp.system.stall: that section starts at or after this time and lasts this long
N_SF = 12
SYSTEM_WORKLOADS = ("open", "closed", "scftorture")
SMT_NUMBERINGS = ("split", "adjacent")  # machine.smt_numbering (I_SMT_SPLIT)
WL_OPEN, WL_CLOSED, WL_SCF = range(3)
ASYNC_CSDS = ("source", "destination")  # async smp_call_function_single's csd: this CPU's or the target's
CSD_SOURCE, CSD_DESTINATION = range(2)
CSD_LOCKS = ("plain", "cmpxchg")  # csd_lock(): csd_lock_wait(); flags |= LOCK, or the try_cmpxchg loop
LOCK_PLAIN, LOCK_CMPXCHG = range(2)
SCF_OPS = ("single_sync", "single_async", "many_sync", "many_async")
OP_SINGLE_SYNC, OP_SINGLE_ASYNC, OP_MANY_SYNC, OP_MANY_ASYNC = range(4)
SYSTEM_HISTS = ("call_ns", "preempt_off_ns", "remote_wait_ns", "spin_ns", "wakeup_ns", "second_preempt_off_ns",
                "queue_depth", "second_spin_ns")  # fmt: skip
SH_CALL, SH_PREEMPT, SH_REMOTE_WAIT, SH_SPIN, SH_WAKEUP, SH_B_PREEMPT, SH_QUEUE_DEPTH, SH_B_SPIN = range(8)
N_SYSTEM_HISTS = 8
SYSTEM_COUNTERS = (
    "events", "calls", "second_calls", "csds_queued", "ipis_sent", "coalesced", "icr_writes", "handlers",
    "empty_handlers", "early_returns", "up_to_date", "full_flushes", "partial_flushes", "races", "spins",
    "second_spins", "heap_overflow", "cpus_offlined", "cpus_onlined", "offline_calls", "offline_cpu_ns",
)  # fmt: skip
(SC_EVENTS, SC_CALLS, SC_B_CALLS, SC_QUEUED, SC_IPIS, SC_COALESCED, SC_WRITES, SC_HANDLERS, SC_EMPTY_HANDLERS,
 SC_EARLY, SC_UPTODATE, SC_FULL, SC_PARTIAL, SC_RACES, SC_SPINS, SC_B_SPINS, SC_HEAP_OVERFLOW) = range(17)  # fmt: skip
# CPU hotplug (system.hotplug_interval_s): offline/online transitions, calls that met an offline
# target (-ENXIO or a skipped mask bit), and the integral of the number of offline CPUs over time
SC_OFFLINED, SC_ONLINED, SC_OFFLINE_CALLS, SC_OFFLINE_NS = range(17, 21)
N_SYSTEM_COUNTERS = 21
# per-call sample columns (tests only): cpu, task slot (0 workload, 1 second task), start, T, P, S_L, spin, op
SS_CPU, SS_SLOT, SS_START, SS_T, SS_P, SS_SL, SS_SPIN, SS_OP = range(8)
N_SYSTEM_SAMPLE_COLS = 8
