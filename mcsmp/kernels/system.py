"""The compiled whole-machine discrete-event simulation (docs/system.md).

Every CPU of one machine over simulated time, in one kernel call per replication: an event queue
(a binary heap in arrays), per-CPU ``call_single_queue`` FIFOs with ``llist_add`` semantics (an IPI
only when the queue was empty), interrupt handlers that drain the whole queue (synchronous csds
first, as ``__flush_smp_call_function_queue()``), ``flush_tlb_func``'s TLB-generation checks, csd
ownership and ``csd_lock()`` (plain or ``try_cmpxchg``), per-CPU irq-off sections as an
alternating renewal process, a workload task and an optional second task per CPU.

Costs are drawn exactly as the fan-out kernel (:mod:`.fanout`) draws them, from the same
distribution table (slot ``D_SYS_WORK`` added), so in the low-load limit one call's timeline has the
fan-out engine's distribution (tests/test_system.py). Inputs are trusted (mcsmp.system.model).

Time is a float64 ns. A task's running step is one heap event; an interrupt freezes the step
(its remaining time is kept) and the step resumes when the handler returns.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from .codes import (
    CALL_GENERIC,
    CALL_TLB,
    CALL_TLB_KERNEL,
    CLS_LLC,
    CLS_REMOTE,
    CLS_SMT,
    CLS_SOCKET,
    CSD_DESTINATION,
    CTX_PREEMPTIBLE,
    CTX_SPINLOCK,
    D_CROSS_SOCKET,
    D_DELIVERY,
    D_DELIVERY_COMMON,
    D_ENTRY,
    D_FULL_FLUSH,
    D_FUNC,
    D_HANDLER_FIXED,
    D_INVLPG,
    D_IRQ_ENTRY,
    D_IRQ_OFF_LEN,
    D_PAGE_WALK,
    D_PAGES,
    D_QUEUE,
    D_SEND,
    D_SYS_WORK,
    F_CALLER_PRE,
    F_CALLER_SPIN,
    F_FALSE_SHARING,
    F_IRQ,
    F_SERIALIZE,
    F_T_REMOTE,
    F_T_SMT,
    F_TARGET_PROB,
    F_TLB_MISS,
    I_BASE,
    I_CALL,
    I_CEILING,
    I_CLUSTER_MODE,
    I_CPUS,
    I_CSD_DEBUG,
    I_INFO_BYTES,
    I_MM_CPUS,
    I_ORDER_AFTER_SENDER,
    I_OVERFLOW,
    I_PLACEMENT,
    I_PREEMPTION,
    I_RUN_LOCAL,
    I_SHIFT,
    I_SHORTHAND,
    LOCK_PLAIN,
    OP_MANY_ASYNC,
    OP_MANY_SYNC,
    OP_SINGLE_ASYNC,
    OP_SINGLE_SYNC,
    PLACE_PERCPU,
    PLACE_STACK,
    POL_PREEMPTIBLE_WAIT,
    PREEMPT_FULL,
    PREEMPT_RT,
    SC_B_CALLS,
    SC_B_SPINS,
    SC_CALLS,
    SC_COALESCED,
    SC_EARLY,
    SC_EMPTY_HANDLERS,
    SC_EVENTS,
    SC_FULL,
    SC_HANDLERS,
    SC_HEAP_OVERFLOW,
    SC_IPIS,
    SC_OFFLINE_CALLS,
    SC_OFFLINE_NS,
    SC_OFFLINED,
    SC_ONLINED,
    SC_PARTIAL,
    SC_QUEUED,
    SC_RACES,
    SC_SPINS,
    SC_UPTODATE,
    SC_WRITES,
    SF_CONTEXT_SWITCH,
    SF_DURATION,
    SF_FORCE_AT,
    SF_FORCE_LEN,
    SF_HOTPLUG_INTERVAL,
    SF_IRQ_GAP_MEAN,
    SF_LOCK_WINDOW,
    SF_SCF_CUM,
    SF_WARMUP,
    SH_B_PREEMPT,
    SH_B_SPIN,
    SH_CALL,
    SH_PREEMPT,
    SH_QUEUE_DEPTH,
    SH_REMOTE_WAIT,
    SH_SPIN,
    SH_WAKEUP,
    SI_ASYNC_CSD,
    SI_CSD_LOCK,
    SI_FORCE_CPU,
    SI_POLICY,
    SI_THREADS,
    SI_WORKLOAD,
    SS_CPU,
    SS_OP,
    SS_P,
    SS_SL,
    SS_SLOT,
    SS_SPIN,
    SS_START,
    SS_T,
    WL_CLOSED,
    WL_SCF,
)
from .histo import bucket
from .rng import exponential, uniform
from .sampling import sample, sample_residual
from .topology import topology

__all__ = ["run_system"]

# event kinds
EV_ARRIVE, EV_STEP, EV_IPI, EV_IRQ_START, EV_HSTEP, EV_RELEASE, EV_OBSERVE, EV_HOTPLUG = range(8)
# task phases (what the task's current step is doing)
PH_IDLE, PH_WORK, PH_ENTRY, PH_LOCK, PH_QUEUE, PH_SEND, PH_LOCAL, PH_WAIT, PH_WAITSTART, PH_NEXT = range(10)
# task actions
ACT_NONE, ACT_BEGIN, ACT_DONE, ACT_NEXT, ACT_START_SECOND, ACT_RESUME = range(6)
NX_LOCK, NX_SEND, NX_WAIT, NX_FINISH = range(4)


@kernel
def _push(ht, hk, ha, hb, hq, size, seq, t, kind, a, b):  # type: ignore[no-untyped-def]
    """Insert an event; ties in time are broken by insertion order (``seq``). Returns the new size
    (unchanged when the heap is full, which the caller counts as an overflow)."""
    if size >= ht.shape[0]:
        return size
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if ht[p] < t or (ht[p] == t and hq[p] < seq):
            break
        ht[i], hk[i], ha[i], hb[i], hq[i] = ht[p], hk[p], ha[p], hb[p], hq[p]
        i = p
    ht[i], hk[i], ha[i], hb[i], hq[i] = t, kind, a, b, seq
    return size + 1


@kernel
def _run_step(c, dt, now, in_irq, frozen, step_due, ver, ht, hk, ha, hb, hq, size, seq):  # type: ignore[no-untyped-def]
    """Give CPU ``c``'s running task a step of ``dt`` ns: frozen while a handler runs, else a new
    ``EV_STEP`` (a new version, so an older pending step is stale). Returns ``(size, seq)``."""
    if in_irq[c]:
        frozen[c] = dt
        return size, seq
    step_due[c] = now + dt
    ver[c] += 1
    return _push(ht, hk, ha, hb, hq, size, seq, step_due[c], EV_STEP, c, ver[c]), seq + 1


@kernel
def _pop(ht, hk, ha, hb, hq, size):  # type: ignore[no-untyped-def]
    """Remove the earliest event: ``(t, kind, a, b, new size)``."""
    t, kind, a, b = ht[0], hk[0], ha[0], hb[0]
    size -= 1
    if size > 0:
        lt, lk, la, lb, lq = ht[size], hk[size], ha[size], hb[size], hq[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hq[c + 1] < hq[c])):
                c += 1
            if lt < ht[c] or (lt == ht[c] and lq < hq[c]):
                break
            ht[i], hk[i], ha[i], hb[i], hq[i] = ht[c], hk[c], ha[c], hb[c], hq[c]
            i = c
        ht[i], hk[i], ha[i], hb[i], hq[i] = lt, lk, la, lb, lq
    return t, kind, a, b, size


@kernel
def _record(counts, sums, row, v, shift, base, overflow):  # type: ignore[no-untyped-def]
    counts[row, bucket(v, shift, base, overflow)] += 1
    sums[row] += v


@kernel
def run_system(
    ip: np.ndarray,
    fp: np.ndarray,
    sip: np.ndarray,
    sfp: np.ndarray,
    index: np.ndarray,
    table: np.ndarray,
    rate_a: np.ndarray,
    rate_b: np.ndarray,
    state: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    counters: np.ndarray,
    ops: np.ndarray,
    samples: np.ndarray,
    waits: np.ndarray,
) -> int:
    """Simulate ``sfp[SF_DURATION]`` ns of the whole machine; returns the number of calls written
    to ``samples`` (a ``float64[m, N_SYSTEM_SAMPLE_COLS]`` buffer, or empty) and fills ``waits``
    (per target remote waits, tests only) in order; histograms, counters and per-CPU completed
    workload operations (``ops``) are recorded for events after ``sfp[SF_WARMUP]`` only.
    ``state`` is the ``uint64[4]`` main stream, advanced in place."""
    n = ip[I_CPUS]
    call = ip[I_CALL]
    is_tlb = call != CALL_GENERIC
    shift = ip[I_SHIFT]
    base = ip[I_BASE]
    overflow = ip[I_OVERFLOW]
    transfer = fp[F_T_SMT : F_T_REMOTE + 1]
    workload = sip[SI_WORKLOAD]
    threads = sip[SI_THREADS]
    duration = sfp[SF_DURATION]
    warmup = sfp[SF_WARMUP]
    window = sfp[SF_LOCK_WINDOW]
    plain_lock = sip[SI_CSD_LOCK] == LOCK_PLAIN
    dest_csd = sip[SI_ASYNC_CSD] == CSD_DESTINATION
    preemption = ip[I_PREEMPTION]
    pinned = ip[I_CSD_DEBUG] == 1 or call == CALL_TLB_KERNEL
    pw = sip[SI_POLICY] == POL_PREEMPTIBLE_WAIT and preemption >= PREEMPT_FULL and not pinned
    f_irq = fp[F_IRQ]
    gap_mean = sfp[SF_IRQ_GAP_MEAN]
    cs = sfp[SF_CONTEXT_SWITCH]
    placement = ip[I_PLACEMENT]
    n_keep = samples.shape[0]
    n_waits = waits.shape[0]
    kept = 0
    kept_waits = 0

    rs = (state[0], state[1], state[2], state[3])

    # ---- topology -------------------------------------------------------------------------------
    socket_of, llc_of, core_of, cluster_of = topology(n, ip)
    after_sender = ip[I_ORDER_AFTER_SENDER] == 1  # else for_each_cpu's order, from CPU 0 (9.14)
    shorthand = ip[I_SHORTHAND] == 1  # one all-but-self write for a full mask (9.27)
    cls_of = np.empty((n, n), dtype=np.int64)  # distance class of CPU b seen from CPU a
    for a in range(n):
        for b in range(n):
            if socket_of[a] != socket_of[b]:
                cls_of[a, b] = CLS_REMOTE
            elif llc_of[a] != llc_of[b]:
                cls_of[a, b] = CLS_SOCKET
            elif core_of[a] != core_of[b]:
                cls_of[a, b] = CLS_LLC
            else:
                cls_of[a, b] = CLS_SMT

    # ---- csds: cfd (source, target) at s*n + t; csd_data of CPU c at n*n + c; a task's on-stack
    # csd at n*n + n + task. Tasks: 2c (the workload) and 2c + 1 (the second task).
    n_tasks = 2 * n
    n_csd = n * n + n + n_tasks
    csd_locked = np.zeros(n_csd, dtype=np.bool_)
    csd_holder = np.full(n_csd, -1, dtype=np.int64)  # CPU that holds the lock
    csd_acq = np.full(n_csd, -math.inf)  # when the lock was taken
    csd_task = np.full(n_csd, -1, dtype=np.int64)  # task whose call the csd carries
    csd_sync = np.zeros(n_csd, dtype=np.bool_)
    csd_dep = np.full(n_csd, -1.0)  # departure of the IPI that announced it (-1: coalesced)
    csd_next = np.full(n_csd, -1, dtype=np.int64)  # call_single_queue link
    csd_whead = np.full(n_csd, -1, dtype=np.int64)  # first waiting task
    # per-CPU call_single_queue (FIFO: llist_del_all + llist_reverse_order runs them in add order)
    q_head = np.full(n, -1, dtype=np.int64)
    q_tail = np.full(n, -1, dtype=np.int64)
    q_len = np.zeros(n, dtype=np.int64)

    # ---- tasks ------------------------------------------------------------------------------------
    t_phase = np.zeros(n_tasks, dtype=np.int64)
    t_op = np.zeros(n_tasks, dtype=np.int64)
    t_k = np.zeros(n_tasks, dtype=np.int64)
    t_j = np.zeros(n_tasks, dtype=np.int64)
    t_tgt = np.zeros((n_tasks, max(n - 1, 1)), dtype=np.int64)
    t_csd = np.zeros((n_tasks, max(n - 1, 1)), dtype=np.int64)
    t_need = np.zeros((n_tasks, max(n - 1, 1)), dtype=np.bool_)  # queue was empty: IPI this target
    t_start = np.zeros(n_tasks)
    t_sl = np.zeros(n_tasks)
    t_p = np.zeros(n_tasks)
    t_spin = np.zeros(n_tasks)
    t_spin_from = np.zeros(n_tasks)  # when the current csd_lock() spin began
    t_allow = np.zeros(n_tasks, dtype=np.bool_)  # this call's wait may be preempted
    t_preemptible = np.ones(n_tasks, dtype=np.bool_)  # the task can be preempted now
    t_backlog = np.zeros(n_tasks, dtype=np.int64)
    t_arrived = np.zeros(n_tasks)  # second task: when its pending call was woken
    t_saved = np.full(n_tasks, -1.0)  # remaining step of a task preempted by the second task
    t_ready = np.full(n_tasks, -1.0)  # a preempted waiter saw its csd released: step left
    t_wnext = np.full(n_tasks, -1, dtype=np.int64)  # next task waiting on the same csd
    t_lockwait = np.zeros(n_tasks, dtype=np.bool_)  # waiting to acquire (csd_lock) vs completion
    t_full = np.zeros(n_tasks, dtype=np.bool_)  # flush request: full flush
    t_pages = np.zeros(n_tasks)
    t_common = np.zeros(n_tasks)  # the fan-out's shared delivery delay (9.28)
    t_gen = np.zeros(n_tasks, dtype=np.int64)
    t_two = np.zeros(n_tasks, dtype=np.bool_)  # stack request straddles two lines
    t_last_read = np.full(n_tasks, -math.inf)  # line serialisation of the request reads

    # ---- CPUs -------------------------------------------------------------------------------------
    cur = np.zeros(n, dtype=np.int64)  # running task
    for c in range(n):
        cur[c] = 2 * c
    step_due = np.full(n, -1.0)
    ver = np.zeros(n, dtype=np.int64)
    frozen = np.full(n, -1.0)  # the running task's remaining step while a handler runs
    in_irq = np.zeros(n, dtype=np.bool_)
    irq_waiting = np.zeros(n, dtype=np.bool_)  # an IPI is latched, its handler not yet started
    ipi_pending = np.zeros(n, dtype=np.bool_)  # an IPI came during the handler: run it again
    b_waiting = np.zeros(n, dtype=np.bool_)  # second task woken, waiting for a preemption point
    h_items = np.zeros((n, 4 * n + 2), dtype=np.int64)  # a queue holds at most 4n csds (cfd, csd_data, stacks)
    # each drained csd's type, taken at the drain: a synchronous csd run in the first pass may be
    # re-locked for an asynchronous call before the second pass, and must not run twice
    h_sync = np.zeros((n, 4 * n + 2), dtype=np.bool_)
    h_count = np.zeros(n, dtype=np.int64)
    h_pos = np.zeros(n, dtype=np.int64)
    h_pass = np.zeros(n, dtype=np.int64)  # 0: sync entries, 1: the others
    local_gen = np.zeros(n, dtype=np.int64)
    mm_gen = 0
    sec_start = np.full(n, math.inf)  # current or next irq-off section of each CPU
    sec_end = np.full(n, math.inf)
    slot = np.arange(D_SYS_WORK + 1)
    # CPU hotplug (docs/system.md §1): torture_onoff() toggles a random CPU every interval
    hot_interval = sfp[SF_HOTPLUG_INTERVAL]
    online = np.ones(n, dtype=np.bool_)
    n_offline = 0
    offline_since = 0.0  # last change of n_offline (for the offline CPU-time integral)
    pend_off = -1  # CPU whose cpu_down() waits for stop_machine()
    force_cpu = sip[SI_FORCE_CPU] - 1  # one forced irq-off section (mcsmp.system.stall), -1: none
    t_enxio = np.zeros(n_tasks, dtype=np.bool_)  # an async single call to an offline CPU: lock, unlock, -ENXIO

    # ---- heap ---------------------------------------------------------------------------------------
    cap = 4 * n_csd + 64 * n + 1024  # csds in flight (IPIs, releases), steps, arrivals, and superseded steps not yet popped
    ht = np.empty(cap)
    hk = np.empty(cap, dtype=np.int64)
    ha = np.empty(cap, dtype=np.int64)
    hb = np.empty(cap, dtype=np.int64)
    hq = np.empty(cap, dtype=np.int64)
    size = 0
    seq = 0

    # stationary start of every irq-off process: inside a section with probability f (then its
    # equilibrium residual), else in an exponential gap (memoryless: its residual is itself)
    for c in range(n):
        if f_irq > 0.0:
            u, rs = uniform(rs)
            if u < f_irq:
                r, rs = sample_residual(index, table, slot[D_IRQ_OFF_LEN], rs)
                sec_start[c] = 0.0
                sec_end[c] = r
            else:
                e, rs = exponential(rs)
                sec_start[c] = gap_mean * e
                x, rs = sample(index, table, slot[D_IRQ_OFF_LEN], rs)
                sec_end[c] = sec_start[c] + x
    # first arrivals
    for c in range(n):
        active = workload != WL_CLOSED or c < threads
        if workload == WL_CLOSED and active:
            size = _push(ht, hk, ha, hb, hq, size, seq, 0.0, EV_ARRIVE, 2 * c, 0)
            seq += 1
        elif workload != WL_CLOSED and rate_a[c] > 0.0:
            e, rs = exponential(rs)
            size = _push(ht, hk, ha, hb, hq, size, seq, e * 1e9 / rate_a[c], EV_ARRIVE, 2 * c, 0)
            seq += 1
        if rate_b[c] > 0.0:
            e, rs = exponential(rs)
            size = _push(ht, hk, ha, hb, hq, size, seq, e * 1e9 / rate_b[c], EV_ARRIVE, 2 * c + 1, 0)
            seq += 1

    if hot_interval > 0.0:
        size = _push(ht, hk, ha, hb, hq, size, seq, hot_interval, EV_HOTPLUG, 0, 0)
        seq += 1

    now = 0.0
    while size > 0:
        if pend_off >= 0:
            # take_cpu_down() runs in stop_machine(), which needs every online CPU's stopper: no
            # task may be in the preempt-off part of a call; the dying CPU's own tasks must be out
            # of their calls (the kernel would migrate them) and no handler may be in flight there
            d = pend_off
            ready = not (in_irq[d] or irq_waiting[d] or ipi_pending[d] or b_waiting[d])
            ready = ready and (t_phase[2 * d] == PH_IDLE or t_phase[2 * d] == PH_WORK) and t_phase[2 * d + 1] == PH_IDLE
            if ready:
                for c in range(n):
                    if online[c] and not t_preemptible[cur[c]]:
                        ready = False
                        break
            if ready:
                pend_off = -1
                if now > warmup:
                    counters[SC_OFFLINE_NS] += int(n_offline * (now - max(offline_since, warmup)))
                    counters[SC_OFFLINED] += 1
                offline_since = now
                n_offline += 1
                online[d] = False
                if t_phase[2 * d] == PH_WORK:  # the benchmark thread stops; it starts over when d returns
                    t_phase[2 * d] = PH_IDLE
                    step_due[d] = -1.0
                    ver[d] += 1
                if q_len[d] > 0:  # smpcfd_dying_cpu(): __flush_smp_call_function_queue(false), no IPI needed
                    irq_waiting[d] = True
                    size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_IRQ_START, d, 0)
                    seq += 1
                size = _push(ht, hk, ha, hb, hq, size, seq, now + hot_interval, EV_HOTPLUG, 0, 0)
                seq += 1
        now, kind, ea, eb, size = _pop(ht, hk, ha, hb, hq, size)
        if now > duration:
            break
        rec = now >= warmup
        if rec:
            counters[SC_EVENTS] += 1
        act = ACT_NONE
        tk = 0
        if kind == EV_ARRIVE:
            tk = ea
            c = tk >> 1
            second = (tk & 1) == 1
            if workload != WL_CLOSED or second:  # Poisson: schedule the next arrival
                lam = rate_b[c] if second else rate_a[c]
                e, rs = exponential(rs)
                size = _push(ht, hk, ha, hb, hq, size, seq, now + e * 1e9 / lam, EV_ARRIVE, tk, 0)
                seq += 1
            if not online[c]:
                continue  # an offline CPU runs no tasks (scftorture's invokers pause, the benchmark thread too)
            busy = t_phase[tk] != PH_IDLE or t_backlog[tk] > 0
            if second:
                if busy or b_waiting[c]:
                    t_backlog[tk] += 1  # starts when the current call ends (no wake-up recorded)
                else:
                    t_arrived[tk] = now
                    if cur[c] == 2 * c and not t_preemptible[2 * c]:
                        b_waiting[c] = True  # wakes at the workload task's next preemption point
                    else:
                        act = ACT_START_SECOND
            elif workload == WL_CLOSED:
                act = ACT_NEXT
            elif busy or cur[c] != tk:
                t_backlog[tk] += 1
            else:
                act = ACT_BEGIN
        elif kind == EV_STEP:
            c = ea
            if eb != ver[c] or step_due[c] != now:
                continue  # a frozen or superseded step
            step_due[c] = -1.0
            tk = cur[c]
            act = ACT_DONE
        elif kind == EV_IPI:
            c = ea
            if not online[c]:
                continue  # its queue was flushed when it went down
            if in_irq[c]:
                ipi_pending[c] = True
            elif not irq_waiting[c]:
                # the handler starts when the current irq-off section ends (sections are drawn
                # lazily: gap exponential, length from remote.irq_off.length)
                while sec_end[c] <= now:
                    e, rs = exponential(rs)
                    sec_start[c] = sec_end[c] + gap_mean * e
                    x, rs = sample(index, table, slot[D_IRQ_OFF_LEN], rs)
                    if c == force_cpu and sec_start[c] >= sfp[SF_FORCE_AT]:
                        x = sfp[SF_FORCE_LEN]  # the draws stay as without it: only this length changes
                        force_cpu = -1
                    sec_end[c] = sec_start[c] + x
                start = sec_end[c] if sec_start[c] <= now else now
                irq_waiting[c] = True
                size = _push(ht, hk, ha, hb, hq, size, seq, start, EV_IRQ_START, c, 0)
                seq += 1
            continue
        elif kind == EV_IRQ_START:
            c = ea
            irq_waiting[c] = False
            in_irq[c] = True
            if step_due[c] >= 0.0:  # freeze the running task's step
                frozen[c] = step_due[c] - now
                step_due[c] = -1.0
                ver[c] += 1
            x, rs = sample(index, table, slot[D_IRQ_ENTRY], rs)
            h_pass[c] = -1  # drain at the end of the entry code
            size = _push(ht, hk, ha, hb, hq, size, seq, now + x, EV_HSTEP, c, 0)
            seq += 1
            continue
        elif kind == EV_HSTEP:
            c = ea
            if h_pass[c] == -1:  # llist_del_all(): take every queued csd
                cnt = 0
                x = q_head[c]
                while x >= 0:
                    h_items[c, cnt] = x
                    h_sync[c, cnt] = csd_sync[x]
                    cnt += 1
                    x = csd_next[x]
                q_head[c] = -1
                q_tail[c] = -1
                q_len[c] = 0
                h_count[c] = cnt
                h_pos[c] = 0
                h_pass[c] = 0
                if rec:
                    counters[SC_HANDLERS] += 1
                    if cnt == 0:
                        counters[SC_EMPTY_HANDLERS] += 1
                    _record(counts, sums, SH_QUEUE_DEPTH, float(cnt), shift, base, overflow)
            # next entry: synchronous ones first, then the others (both in queue order)
            x = -1
            while h_pass[c] < 2:
                while h_pos[c] < h_count[c]:
                    y = h_items[c, h_pos[c]]
                    sync_y = h_sync[c, h_pos[c]]
                    h_pos[c] += 1
                    if sync_y == (h_pass[c] == 0):
                        x = y
                        break
                if x >= 0:
                    break
                h_pass[c] += 1
                h_pos[c] = 0
            if x < 0:  # handler returns
                in_irq[c] = False
                if ipi_pending[c]:
                    ipi_pending[c] = False
                    irq_waiting[c] = True
                    size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_IRQ_START, c, 0)
                    seq += 1
                if frozen[c] >= 0.0:
                    step_due[c] = now + frozen[c]
                    frozen[c] = -1.0
                    size = _push(ht, hk, ha, hb, hq, size, seq, step_due[c], EV_STEP, c, ver[c])
                    seq += 1
                continue
            tk = csd_task[x]
            src = tk >> 1
            cl = cls_of[c, src]
            read = transfer[cl]  # the csd line comes from the sender
            work = 0.0
            info = 0.0
            if is_tlb and csd_sync[x] and (t_op[tk] == OP_MANY_SYNC):
                # the request: own read cost (false sharing, stack page walk), serialised at the line
                own = transfer[cl]
                if placement == PLACE_STACK:
                    u, rs = uniform(rs)
                    shared = u < fp[F_FALSE_SHARING]
                    if t_two[tk]:
                        u, rs = uniform(rs)
                        if u < fp[F_FALSE_SHARING]:
                            shared = True
                    if shared:
                        own += transfer[cl]
                if placement != PLACE_PERCPU:
                    u, rs = uniform(rs)
                    if u < fp[F_TLB_MISS]:
                        w, rs = sample(index, table, slot[D_PAGE_WALK], rs)
                        own += w
                done = max(now + own, t_last_read[tk] + fp[F_SERIALIZE])
                t_last_read[tk] = done
                info = done - now
                if call == CALL_TLB:  # flush_tlb_func's generation checks (arch/x86/mm/tlb.c)
                    g = t_gen[tk]
                    if g <= local_gen[c]:
                        if rec:
                            counters[SC_EARLY] += 1
                    elif local_gen[c] == mm_gen:
                        if rec:
                            counters[SC_UPTODATE] += 1
                    else:
                        if not t_full[tk] and g == local_gen[c] + 1 and g == mm_gen:
                            w, rs = sample(index, table, slot[D_INVLPG], rs)
                            work = t_pages[tk] * w
                            if rec:
                                counters[SC_PARTIAL] += 1
                        else:
                            w, rs = sample(index, table, slot[D_FULL_FLUSH], rs)
                            work = w
                            if rec:
                                counters[SC_FULL] += 1
                        local_gen[c] = mm_gen
                else:  # kernel-range flush: no generations
                    if t_full[tk]:
                        work, rs = sample(index, table, slot[D_FULL_FLUSH], rs)
                    else:
                        w, rs = sample(index, table, slot[D_INVLPG], rs)
                        work = t_pages[tk] * w
                w, rs = sample(index, table, slot[D_HANDLER_FIXED], rs)  # flush_tlb_func's own part (9.29)
                work += w
            else:
                work, rs = sample(index, table, slot[D_FUNC], rs)
            if csd_sync[x]:  # unlock after the function
                end = now + work + read + info
                rel = end
            else:  # async: csd_unlock() before func()
                rel = now + read
                end = rel + work
            if rec and csd_dep[x] >= 0.0:
                _record(counts, sums, SH_REMOTE_WAIT, rel - csd_dep[x], shift, base, overflow)
                if kept_waits < n_waits:
                    waits[kept_waits] = rel - csd_dep[x]
                    kept_waits += 1
            size = _push(ht, hk, ha, hb, hq, size, seq, rel, EV_RELEASE, x, c)
            seq += 1
            size = _push(ht, hk, ha, hb, hq, size, seq, end, EV_HSTEP, c, 0)
            seq += 1
            continue
        elif kind == EV_RELEASE:
            x = ea
            releaser = eb
            csd_locked[x] = False
            csd_holder[x] = -1
            # every waiter sees the flag once the line reaches it; the first one to see it takes
            # the lock (a lock waiter) or moves on (a completion waiter)
            best = -1
            best_t = math.inf
            w = csd_whead[x]
            while w >= 0:
                if t_lockwait[w]:
                    o = now + transfer[cls_of[w >> 1, releaser]]
                    if o < best_t:
                        best_t = o
                        best = w
                w = t_wnext[w]
            # completion waiters leave the list; lock waiters other than the winner stay
            w = csd_whead[x]
            csd_whead[x] = -1
            while w >= 0:
                nxt = t_wnext[w]
                if t_lockwait[w] and w != best:
                    o = now + transfer[cls_of[w >> 1, releaser]]
                    if plain_lock and (w >> 1) != (best >> 1) and o - best_t < window:
                        if rec:
                            counters[SC_RACES] += 1  # both saw the lock clear: two owners
                    t_wnext[w] = csd_whead[x]
                    csd_whead[x] = w
                elif not t_lockwait[w]:
                    t_wnext[w] = -1
                    dt = transfer[cls_of[w >> 1, releaser]]
                    if cur[w >> 1] == w:
                        size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_OBSERVE, w, 0)
                        seq += 1
                        t_ready[w] = dt
                    else:
                        t_ready[w] = dt  # preempted in its wait: resumes later
                w = nxt
            if best >= 0:
                t_wnext[best] = -1
                csd_locked[x] = True
                csd_holder[x] = best >> 1
                csd_acq[x] = best_t
                csd_task[x] = best
                t_ready[best] = best_t - now
                size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_OBSERVE, best, 0)
                seq += 1
            continue
        elif kind == EV_HOTPLUG:  # torture_onoff(): a random CPU; offline it if online, else online it
            u, rs = uniform(rs)
            d = min(int(u * n), n - 1)
            if d == 0 or n < 2:  # CPU 0 is not hotpluggable on x86 (cpu_is_hotpluggable()): nothing
                size = _push(ht, hk, ha, hb, hq, size, seq, now + hot_interval, EV_HOTPLUG, 0, 0)
                seq += 1
            elif online[d]:
                pend_off = d  # cpu_down(): waits for stop_machine(); the next tick follows it
            else:
                if now > warmup:
                    counters[SC_OFFLINE_NS] += int(n_offline * (now - max(offline_since, warmup)))
                    counters[SC_ONLINED] += 1
                offline_since = now
                n_offline -= 1
                online[d] = True
                if workload == WL_CLOSED and d < threads:  # the benchmark thread resumes its loop
                    size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_ARRIVE, 2 * d, 0)
                    seq += 1
                size = _push(ht, hk, ha, hb, hq, size, seq, now + hot_interval, EV_HOTPLUG, 0, 0)
                seq += 1
            continue
        elif kind == EV_OBSERVE:  # a spinning or waiting task saw its csd released
            tk = ea
            c = tk >> 1
            if cur[c] != tk or t_ready[tk] < 0.0:
                continue
            dt = t_ready[tk]
            t_ready[tk] = -1.0
            size, seq = _run_step(c, dt, now, in_irq, frozen, step_due, ver, ht, hk, ha, hb, hq, size, seq)
            continue

        # ---- task actions ---------------------------------------------------------------------------
        # act: ACT_BEGIN starts a call of task `tk`, ACT_DONE completes the step of its current
        # phase, ACT_NEXT starts its next iteration, ACT_RESUME gives the CPU back to the workload task
        while act != ACT_NONE:
            c = tk >> 1
            second = (tk & 1) == 1
            dt = -1.0  # >= 0: schedule a step of that length for tk
            if act == ACT_NEXT:
                act = ACT_NONE
                t_phase[tk] = PH_IDLE
                t_preemptible[tk] = True
                if second:
                    if t_backlog[tk] > 0:
                        t_backlog[tk] -= 1
                        act = ACT_BEGIN
                    else:
                        act = ACT_RESUME
                        tk = 2 * c
                    continue
                if b_waiting[c]:  # a woken second task waited for this preemption point
                    b_waiting[c] = False
                    t_phase[tk] = PH_NEXT
                    t_saved[tk] = 0.0
                    tk = tk + 1
                    act = ACT_START_SECOND
                    continue
                if workload == WL_CLOSED:
                    x, rs = sample(index, table, slot[D_SYS_WORK], rs)
                    t_phase[tk] = PH_WORK
                    dt = x
                elif t_backlog[tk] > 0:
                    t_backlog[tk] -= 1
                    act = ACT_BEGIN
                    continue
            elif act == ACT_START_SECOND:  # tk is a second task: it takes the CPU now
                act = ACT_BEGIN
                a_tk = tk - 1
                if cur[c] == a_tk:
                    if step_due[c] >= 0.0:
                        t_saved[a_tk] = step_due[c] - now
                        step_due[c] = -1.0
                        ver[c] += 1
                    elif frozen[c] >= 0.0:
                        t_saved[a_tk] = frozen[c]
                        frozen[c] = -1.0
                    cur[c] = tk
                if rec:
                    _record(counts, sums, SH_WAKEUP, now - t_arrived[tk] + cs, shift, base, overflow)
                continue
            elif act == ACT_RESUME:  # tk is the workload task; the second task is done
                act = ACT_NONE
                cur[c] = tk
                if t_saved[tk] >= 0.0:
                    dt = t_saved[tk]
                    t_saved[tk] = -1.0
                elif t_ready[tk] >= 0.0:
                    dt = t_ready[tk]
                    t_ready[tk] = -1.0
                elif t_phase[tk] == PH_IDLE and t_backlog[tk] > 0:
                    t_backlog[tk] -= 1
                    act = ACT_BEGIN
                    continue
            elif act == ACT_BEGIN:
                act = ACT_NONE
                op = OP_MANY_SYNC
                if workload == WL_SCF:
                    u, rs = uniform(rs)
                    op = OP_MANY_ASYNC
                    for i in range(4):
                        if u < sfp[SF_SCF_CUM + i]:
                            op = i
                            break
                t_op[tk] = op
                k = 0
                if op == OP_SINGLE_SYNC or op == OP_SINGLE_ASYNC:
                    if n > 1:
                        u, rs = uniform(rs)
                        t_tgt[tk, 0] = (c + 1 + min(int(u * (n - 1)), n - 2)) % n
                        k = 1
                elif workload == WL_CLOSED:  # the benchmark's threads share one mm
                    skipped = False
                    for r in range(1, n):
                        t = (c + r) % n if after_sender else (r - 1 if r - 1 < c else r)
                        if t >= threads:
                            continue
                        if not online[t]:  # cpumask_and(..., cpu_online_mask)
                            skipped = True
                            continue
                        if fp[F_TARGET_PROB] < 1.0 and call != CALL_TLB_KERNEL:
                            u, rs = uniform(rs)
                            if u >= fp[F_TARGET_PROB]:
                                continue
                        t_tgt[tk, k] = t
                        k += 1
                    if skipped and rec:
                        counters[SC_OFFLINE_CALLS] += 1
                else:
                    mm = ip[I_MM_CPUS]
                    if call == CALL_TLB_KERNEL or mm < 0 or workload == WL_SCF:
                        m = n - 1
                        for r in range(m):
                            t_csd[tk, r] = r  # scratch: candidate offsets after c
                    else:  # a uniform mm_cpus-subset of the others, kept in CPU order
                        m = mm
                        for r in range(n - 1):
                            t_need[tk, r] = False
                        picked = 0
                        while picked < m:
                            u, rs = uniform(rs)
                            o = min(int(u * (n - 1)), n - 2)
                            if not t_need[tk, o]:
                                t_need[tk, o] = True
                                picked += 1
                        picked = 0
                        for r in range(n - 1):
                            if t_need[tk, r]:
                                t_csd[tk, picked] = r
                                picked += 1
                    skip_lazy = call != CALL_TLB_KERNEL and workload != WL_SCF and fp[F_TARGET_PROB] < 1.0
                    for r in range(m):
                        if skip_lazy:
                            u, rs = uniform(rs)
                            if u >= fp[F_TARGET_PROB]:
                                continue
                        o = t_csd[tk, r]
                        t_tgt[tk, k] = (c + 1 + o) % n if after_sender else (o + 1 if o >= c else o)
                        k += 1
                t_enxio[tk] = False
                if n_offline > 0 and k > 0:
                    if op == OP_SINGLE_SYNC or op == OP_SINGLE_ASYNC:
                        if not online[t_tgt[tk, 0]]:  # generic_exec_single(): csd_unlock(), -ENXIO
                            if rec:
                                counters[SC_OFFLINE_CALLS] += 1
                            if op == OP_SINGLE_SYNC:
                                k = 0  # the on-stack csd: nothing to lock or wait for
                            else:
                                t_enxio[tk] = True  # csd_lock() of csd_data first (spins if held)
                    elif workload != WL_CLOSED:  # smp_call_function_many_cond(): mask & cpu_online_mask
                        kk = 0
                        for j in range(k):
                            if online[t_tgt[tk, j]]:
                                t_tgt[tk, kk] = t_tgt[tk, j]
                                kk += 1
                        if kk < k and rec:
                            counters[SC_OFFLINE_CALLS] += 1
                        k = kk
                t_k[tk] = k
                for j in range(k):
                    t = t_tgt[tk, j]
                    if op == OP_MANY_SYNC or op == OP_MANY_ASYNC:
                        t_csd[tk, j] = c * n + t  # this CPU's cfd csd for t
                    elif op == OP_SINGLE_ASYNC:
                        t_csd[tk, j] = n * n + (t if dest_csd else c)  # csd_data of t or of c
                    else:
                        t_csd[tk, j] = n * n + n + tk  # on-stack csd
                    t_need[tk, j] = False
                u, rs = uniform(rs)
                ctx = CTX_PREEMPTIBLE if u < fp[F_CALLER_PRE] else (
                    CTX_SPINLOCK if u < fp[F_CALLER_PRE] + fp[F_CALLER_SPIN] else 2
                )
                t_allow[tk] = pw and op == OP_MANY_SYNC and (
                    ctx == CTX_PREEMPTIBLE or (ctx == CTX_SPINLOCK and preemption == PREEMPT_RT)
                )
                t_start[tk] = now
                t_sl[tk] = now
                t_spin[tk] = 0.0
                t_preemptible[tk] = False
                t_j[tk] = 0
                if k > 0:  # the delivery delay shared by this fan-out's targets (9.28)
                    t_common[tk], rs = sample(index, table, slot[D_DELIVERY_COMMON], rs)
                e, rs = sample(index, table, slot[D_ENTRY], rs)
                if is_tlb and op == OP_MANY_SYNC:
                    pages, rs = sample(index, table, slot[D_PAGES], rs)
                    t_pages[tk] = pages
                    t_full[tk] = pages > ip[I_CEILING]
                    t_two[tk] = False
                    if placement == PLACE_STACK:
                        u, rs = uniform(rs)
                        t_two[tk] = 8 * min(int(u * 8), 7) + ip[I_INFO_BYTES] > 64
                    t_last_read[tk] = -math.inf
                    if call == CALL_TLB:
                        mm_gen += 1  # inc_mm_tlb_gen() before the IPIs
                        t_gen[tk] = mm_gen
                    if k > 0:
                        mx = 0
                        for j in range(k):
                            mx = max(mx, cls_of[c, t_tgt[tk, j]])
                        e += transfer[mx]  # invalidate the previous readers' copies of the request
                t_phase[tk] = PH_ENTRY
                dt = e
            else:  # ACT_DONE: the step of t_phase[tk] completed at `now`
                act = ACT_NONE
                ph = t_phase[tk]
                nxt = -1  # what comes next: NX_LOCK, NX_SEND, NX_WAIT, NX_FINISH
                took = -1  # the csd csd_lock() just took (after a spin or at once)
                if ph == PH_WORK:
                    act = ACT_BEGIN
                    continue
                if ph == PH_NEXT:
                    act = ACT_NEXT
                    continue
                if ph == PH_ENTRY:
                    t_j[tk] = 0
                    nxt = NX_LOCK
                elif ph == PH_LOCK:  # the spin saw the csd released and took it
                    t_spin[tk] += now - t_spin_from[tk]
                    took = t_csd[tk, t_j[tk]]
                elif ph == PH_QUEUE:  # llist_add() done: an IPI only if the queue was empty
                    j = t_j[tk]
                    x = t_csd[tk, j]
                    t = t_tgt[tk, j]
                    empty = q_len[t] == 0
                    csd_next[x] = -1
                    if q_tail[t] >= 0:
                        csd_next[q_tail[t]] = x
                    else:
                        q_head[t] = x
                    q_tail[t] = x
                    q_len[t] += 1
                    csd_dep[x] = -1.0
                    t_need[tk, j] = empty
                    if rec:
                        counters[SC_QUEUED] += 1
                        if not empty:
                            counters[SC_COALESCED] += 1
                    t_j[tk] = j + 1
                    nxt = NX_LOCK
                elif ph == PH_SEND:  # an ICR write completed: its targets' IPIs leave now
                    j = t_j[tk]
                    single = t_op[tk] == OP_SINGLE_SYNC or t_op[tk] == OP_SINGLE_ASYNC
                    # native_send_call_func_ipi(): the IPI mask (CPUs whose queue was empty) plus
                    # this CPU is every online CPU -> one all-but-self write (9.27)
                    all_but_self = False
                    if shorthand and not single and n > 2 and j == 0:  # only a first write can be
                        needed = 0
                        for i in range(t_k[tk]):
                            needed += t_need[tk, i]
                        # cpumask_or_equal(mask, self, cpu_online_mask); one CPU gets a single IPI
                        all_but_self = needed == n - 1 - n_offline and needed > 1
                    cid = cluster_of[t_tgt[tk, j]]
                    for i in range(j, t_k[tk]):
                        if not t_need[tk, i]:
                            continue
                        if i > j and not all_but_self and (
                            single or ip[I_CLUSTER_MODE] != 1 or cluster_of[t_tgt[tk, i]] != cid
                        ):
                            continue
                        t = t_tgt[tk, i]
                        d, rs = sample(index, table, slot[D_DELIVERY], rs)
                        d += t_common[tk]
                        if cls_of[c, t] == CLS_REMOTE:
                            xx, rs = sample(index, table, slot[D_CROSS_SOCKET], rs)
                            d += xx
                        csd_dep[t_csd[tk, i]] = now
                        size = _push(ht, hk, ha, hb, hq, size, seq, now + d, EV_IPI, t, 0)
                        seq += 1
                        if rec:
                            counters[SC_IPIS] += 1
                        if i > j:
                            t_need[tk, i] = False  # sent with this write
                    t_j[tk] = j + 1
                    nxt = NX_SEND
                elif ph == PH_LOCAL:
                    t_sl[tk] = now
                    if t_allow[tk]:  # the series: preemption back on before the wait
                        t_p[tk] = now - t_start[tk]
                        t_preemptible[tk] = True
                    sync = t_op[tk] == OP_MANY_SYNC or t_op[tk] == OP_SINGLE_SYNC
                    t_j[tk] = 0
                    if not sync:
                        nxt = NX_FINISH
                    elif t_allow[tk] and not second and b_waiting[c]:
                        b_waiting[c] = False  # the second task preempts the wait right away
                        t_phase[tk] = PH_WAITSTART
                        t_saved[tk] = 0.0
                        tk = tk + 1
                        act = ACT_START_SECOND
                        continue
                    else:
                        nxt = NX_WAIT
                elif ph == PH_WAITSTART:
                    t_j[tk] = 0
                    nxt = NX_WAIT
                elif ph == PH_WAIT:  # csd j seen released (plus its line transfer)
                    t_j[tk] += 1
                    nxt = NX_WAIT

                if nxt == NX_LOCK:
                    j = t_j[tk]
                    if j >= t_k[tk]:
                        t_j[tk] = 0
                        nxt = NX_SEND
                    else:
                        x = t_csd[tk, j]
                        if csd_locked[x]:  # spin in csd_lock() until the holder's target releases it
                            # a lock another CPU took less than the window ago still looks clear
                            if plain_lock and csd_holder[x] != c and now - csd_acq[x] < window and rec:
                                counters[SC_RACES] += 1
                            t_lockwait[tk] = True
                            t_wnext[tk] = csd_whead[x]
                            csd_whead[x] = tk
                            t_spin_from[tk] = now
                            t_phase[tk] = PH_LOCK
                        else:
                            csd_locked[x] = True
                            csd_holder[x] = c
                            csd_acq[x] = now
                            took = x
                if took >= 0:  # the csd is this call's: its owner and type, then llist_add() or -ENXIO
                    csd_task[took] = tk
                    csd_sync[took] = t_op[tk] == OP_MANY_SYNC or t_op[tk] == OP_SINGLE_SYNC
                    if t_enxio[tk]:  # the target is offline: csd_unlock() at once
                        size = _push(ht, hk, ha, hb, hq, size, seq, now, EV_RELEASE, took, c)
                        seq += 1
                        t_k[tk] = 0
                        t_j[tk] = 0
                        nxt = NX_SEND
                    else:
                        q, rs = sample(index, table, slot[D_QUEUE], rs)
                        t_phase[tk] = PH_QUEUE
                        dt = q + transfer[cls_of[c, t_tgt[tk, t_j[tk]]]]
                if nxt == NX_SEND:  # the next ICR write: one per target, or per x2APIC cluster
                    j = t_j[tk]
                    while j < t_k[tk] and not t_need[tk, j]:
                        j += 1
                    t_j[tk] = j
                    if j < t_k[tk]:
                        s_ns, rs = sample(index, table, slot[D_SEND], rs)
                        t_phase[tk] = PH_SEND
                        dt = s_ns
                        if rec:
                            counters[SC_WRITES] += 1
                    else:
                        local = 0.0
                        if ip[I_RUN_LOCAL] == 1 and t_op[tk] == OP_MANY_SYNC:
                            if not is_tlb:
                                local, rs = sample(index, table, slot[D_FUNC], rs)
                            elif t_full[tk]:
                                local, rs = sample(index, table, slot[D_FULL_FLUSH], rs)
                            else:
                                w, rs = sample(index, table, slot[D_INVLPG], rs)
                                local = t_pages[tk] * w
                            if is_tlb:
                                w, rs = sample(index, table, slot[D_HANDLER_FIXED], rs)
                                local += w
                            if call == CALL_TLB:
                                local_gen[c] = mm_gen
                        t_phase[tk] = PH_LOCAL
                        dt = local
                if nxt == NX_WAIT:  # poll csd j: wait for its release, then one line transfer
                    j = t_j[tk]
                    if j >= t_k[tk]:
                        nxt = NX_FINISH
                    else:
                        x = t_csd[tk, j]
                        t_phase[tk] = PH_WAIT
                        if csd_locked[x] and csd_task[x] == tk:
                            t_lockwait[tk] = False
                            t_wnext[tk] = csd_whead[x]
                            csd_whead[x] = tk
                            t_ready[tk] = -1.0
                        else:
                            dt = transfer[cls_of[c, t_tgt[tk, j]]]
                if nxt == NX_FINISH:  # the call returns
                    tcall = now - t_start[tk]
                    p_off = t_p[tk] if t_allow[tk] else tcall
                    if rec:
                        if second:
                            counters[SC_B_CALLS] += 1
                            _record(counts, sums, SH_B_PREEMPT, p_off, shift, base, overflow)
                            _record(counts, sums, SH_B_SPIN, t_spin[tk], shift, base, overflow)
                            if t_spin[tk] > 0.0:
                                counters[SC_B_SPINS] += 1
                        else:
                            counters[SC_CALLS] += 1
                            ops[c] += 1
                            _record(counts, sums, SH_CALL, tcall, shift, base, overflow)
                            _record(counts, sums, SH_PREEMPT, p_off, shift, base, overflow)
                            if t_spin[tk] > 0.0:
                                counters[SC_SPINS] += 1
                        _record(counts, sums, SH_SPIN, t_spin[tk], shift, base, overflow)
                        if kept < n_keep:
                            samples[kept, SS_CPU] = c
                            samples[kept, SS_SLOT] = tk & 1
                            samples[kept, SS_START] = t_start[tk]
                            samples[kept, SS_T] = tcall
                            samples[kept, SS_P] = p_off
                            samples[kept, SS_SL] = t_sl[tk] - t_start[tk]
                            samples[kept, SS_SPIN] = t_spin[tk]
                            samples[kept, SS_OP] = t_op[tk]
                            kept += 1
                    act = ACT_NEXT
                    continue
            if dt >= 0.0:  # run the step: on the CPU if tk holds it (frozen under a handler)
                if cur[c] == tk:
                    size, seq = _run_step(c, dt, now, in_irq, frozen, step_due, ver, ht, hk, ha, hb, hq, size, seq)
                else:
                    t_saved[tk] = dt
        if size >= cap - 4:
            counters[SC_HEAP_OVERFLOW] += 1
            break

    if n_offline > 0:
        end = min(now, duration)
        if end > warmup:
            counters[SC_OFFLINE_NS] += int(n_offline * (end - max(offline_since, warmup)))
    state[0], state[1], state[2], state[3] = rs
    return kept

