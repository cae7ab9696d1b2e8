"""The compiled fan-out kernel: one chunk of fan-outs, MODEL.md §1–§3, recorded into histograms.

Inputs are trusted (built by :mod:`mcsmp.model` from validated parameters). Names follow
MODEL.md: ``E`` entry, ``Q`` queue phase, ``d`` departure, ``S`` end of sends, ``L`` local call,
``a`` arrival, ``h`` handler start, ``c`` completion, ``T`` end of the call, ``P``/``H`` the
preempt-off and hotplug-blocking lengths of each policy.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from .histo import bucket
from .sampling import draw, draw_residual, pick_row

__all__ = ["run_chunk"]

# ---- integer parameters (ip[...]) ------------------------------------------------------------
I_CPUS, I_PER_SOCKET, I_PER_LLC, I_SMT, I_MM_CPUS, I_CALL, I_RUN_LOCAL, I_CLUSTER_MODE = range(8)
I_CLUSTER_SIZE, I_PLACEMENT, I_CEILING, I_INFO_BYTES, I_PREEMPTION, I_CSD_DEBUG = range(8, 14)
I_REENTRY, I_UNIFORM_RATE, I_SHIFT, I_BASE, I_OVERFLOW = range(14, 19)
N_IP = 19

# ---- float parameters (fp[...]) --------------------------------------------------------------
F_TARGET_PROB, F_IRQ, F_IDLE, F_VCPU, F_CALLER_PRE, F_CALLER_SPIN = range(6)
F_T_SMT, F_T_LLC, F_T_SOCKET, F_T_REMOTE, F_SERIALIZE, F_FALSE_SHARING, F_TLB_MISS = range(6, 13)
F_ALLOC_NS, F_ALLOC_FAIL, F_RLOCK_NS, F_REENTRY_SCALE = range(13, 17)
N_FP = 17

# ---- distribution slots (index rows) ---------------------------------------------------------
D_ENTRY, D_QUEUE, D_IRQ_ENTRY, D_FUNC, D_SEND, D_DELIVERY, D_CROSS_SOCKET = range(7)
D_IRQ_OFF_LEN, D_IDLE_EXIT, D_VCPU_LEN, D_PAGES, D_INVLPG, D_FULL_FLUSH, D_PAGE_WALK = range(7, 14)
N_DISTS = 14

# ---- enumerations -----------------------------------------------------------------------------
CALL_TLB, CALL_TLB_KERNEL, CALL_GENERIC = range(3)
PLACE_PERCPU, PLACE_STACK, PLACE_STACK_ALIGNED = range(3)
PREEMPT_NONE, PREEMPT_VOLUNTARY, PREEMPT_FULL, PREEMPT_LAZY, PREEMPT_RT = range(5)
POL_PREEMPT_OFF, POL_PREEMPTIBLE_WAIT, POL_ATOMIC_ALLOC, POL_CPUS_READ_LOCK = range(4)
CTX_PREEMPTIBLE, CTX_SPINLOCK, CTX_PREEMPT_DISABLED = range(3)
CLS_SMT, CLS_LLC, CLS_SOCKET, CLS_REMOTE = range(4)

# ---- histogram rows ---------------------------------------------------------------------------
H_CALL, H_WAIT_TAIL, H_REMOTE_WAIT, H_INFO_COST = range(4)
N_FIXED_HISTS = 4  # then, per CPU group g and policy i: P at 4 + 2(g·npol + i), H one after

# ---- per-fan-out sample columns (only when keep_samples) ---------------------------------------
S_SENDER, S_TARGETS, S_S, S_SL, S_T, S_SPIN, S_CONTEXT = range(7)
N_SAMPLE_COLS = 7  # then P of each policy, then H of each policy


@kernel
def _distance_class(s: int, t: int, per_socket: int, per_llc: int, smt: int) -> int:
    if s // per_socket != t // per_socket:
        return CLS_REMOTE
    if s // per_llc != t // per_llc:
        return CLS_SOCKET
    if s // smt != t // smt:
        return CLS_LLC
    return CLS_SMT


@kernel
def _handler_work(
    index: np.ndarray, table: np.ndarray, is_tlb: bool, pages: float, full: bool, rng: np.random.Generator
) -> float:
    """Step 8's work: ``p`` INVLPGs, a full flush above the ceiling, or ``func`` for generic."""
    if not is_tlb:
        return draw(index, table, D_FUNC, rng)
    if full:
        return draw(index, table, D_FULL_FLUSH, rng)
    return pages * draw(index, table, D_INVLPG, rng)


@kernel
def _record(counts: np.ndarray, sums: np.ndarray, row: int, v: float, ip: np.ndarray) -> None:
    counts[row, bucket(v, ip[I_SHIFT], ip[I_BASE], ip[I_OVERFLOW])] += 1
    sums[row] += v


@kernel
def run_chunk(
    n_fanouts: int,
    ip: np.ndarray,
    fp: np.ndarray,
    index: np.ndarray,
    table: np.ndarray,
    rate_cum: np.ndarray,
    rate_hz: np.ndarray,
    group_of: np.ndarray,
    policies: np.ndarray,
    wait_tail_cum: np.ndarray,
    edges: np.ndarray,
    rng: np.random.Generator,
    aux: np.random.Generator,
    counts: np.ndarray,
    sums: np.ndarray,
    samples: np.ndarray,
) -> None:
    """Simulate ``n_fanouts`` fan-outs, adding to ``counts``/``sums`` (and ``samples`` if sized).

    ``rng`` drives the timeline; ``aux`` drives only the re-entry spin, so enabling the second
    pass leaves every other draw unchanged. ``wait_tail_cum`` is the cumulative length-biased
    weight of each bucket of the first pass's ``T − S_L`` histogram (empty when re-entry is off).
    """
    n = ip[I_CPUS]
    per_socket = ip[I_PER_SOCKET]
    per_llc = ip[I_PER_LLC]
    smt = ip[I_SMT]
    mm_cpus = ip[I_MM_CPUS]
    call = ip[I_CALL]
    is_tlb = call != CALL_GENERIC  # both TLB calls carry a flush_tlb_info
    cluster_mode = ip[I_CLUSTER_MODE] == 1
    cluster_size = ip[I_CLUSTER_SIZE]
    placement = ip[I_PLACEMENT]
    preemption = ip[I_PREEMPTION]
    kernel_preemptible = preemption >= PREEMPT_FULL
    waits_pinned = ip[I_CSD_DEBUG] == 1 or call == CALL_TLB_KERNEL
    reentry = ip[I_REENTRY] == 1 and wait_tail_cum.shape[0] > 0
    target_prob = fp[F_TARGET_PROB]
    f_irq = fp[F_IRQ]
    f_idle = f_irq + fp[F_IDLE]
    f_vcpu = f_idle + fp[F_VCPU]
    transfer = fp[F_T_SMT : F_T_REMOTE + 1]
    n_pol = policies.shape[0]
    keep = samples.shape[0] > 0

    tgt = np.empty(n, dtype=np.int64)
    cls = np.empty(n, dtype=np.int64)
    d = np.empty(n, dtype=np.float64)
    h = np.empty(n, dtype=np.float64)
    c = np.empty(n, dtype=np.float64)
    own = np.empty(n, dtype=np.float64)
    order = np.empty(n, dtype=np.int64)
    offsets = np.arange(max(n - 1, 1), dtype=np.int64)  # candidate offsets for mm_cpus subsets
    chosen = np.empty(max(n - 1, 1), dtype=np.int64)
    cluster_time = np.full(n // cluster_size + 1, -1.0)

    for it in range(n_fanouts):
        # ---- 1. sender and targets ------------------------------------------------------------
        if ip[I_UNIFORM_RATE] == 1:
            s = min(int(rng.random() * n), n - 1)
        else:
            s = pick_row(rate_cum.reshape(n, 1), 0, n, 0, rng.random())
        lam = rate_hz[s]
        k = 0
        if call == CALL_TLB_KERNEL or mm_cpus < 0:
            m = n - 1
            for r in range(m):
                chosen[r] = r
        else:
            m = mm_cpus
            for r in range(m):  # partial Fisher–Yates: a uniform m-subset of the n − 1 others
                j = r + min(int(rng.random() * (n - 1 - r)), n - 2 - r)
                offsets[r], offsets[j] = offsets[j], offsets[r]
                v = offsets[r]
                p = r
                while p > 0 and chosen[p - 1] > v:  # kept sorted: targets go in CPU order
                    chosen[p] = chosen[p - 1]
                    p -= 1
                chosen[p] = v
        skip_lazy = call != CALL_TLB_KERNEL and target_prob < 1.0
        max_cls = -1
        for r in range(m):
            if skip_lazy and rng.random() >= target_prob:
                continue
            t = (s + 1 + chosen[r]) % n
            tgt[k] = t
            cls[k] = _distance_class(s, t, per_socket, per_llc, smt)
            max_cls = max(max_cls, cls[k])
            k += 1

        # ---- 3.–6. sender phases ------------------------------------------------------------------
        pages = 0.0
        full = False
        if is_tlb:
            pages = draw(index, table, D_PAGES, rng)
            full = pages > ip[I_CEILING]
        e = draw(index, table, D_ENTRY, rng)
        if is_tlb and k > 0:
            e += transfer[max_cls]  # invalidate the previous readers' copies of the request
        t_now = e
        for j in range(k):
            t_now += draw(index, table, D_QUEUE, rng) + transfer[cls[j]]
        if cluster_mode:
            for j in range(k):
                cid = tgt[j] // cluster_size
                if cluster_time[cid] < 0.0:
                    t_now += draw(index, table, D_SEND, rng)
                    cluster_time[cid] = t_now
                d[j] = cluster_time[cid]
            for j in range(k):
                cluster_time[tgt[j] // cluster_size] = -1.0
        else:
            for j in range(k):
                t_now += draw(index, table, D_SEND, rng)
                d[j] = t_now
        s_end = t_now
        local = 0.0
        if ip[I_RUN_LOCAL] == 1:
            local = _handler_work(index, table, is_tlb, pages, full, rng)
        s_l = s_end + local

        # ---- 7.–8. remote side --------------------------------------------------------------------
        for j in range(k):
            a = d[j] + draw(index, table, D_DELIVERY, rng)
            if cls[j] == CLS_REMOTE:
                a += draw(index, table, D_CROSS_SOCKET, rng)
            u = rng.random()
            wait = 0.0
            if u < f_irq:
                wait = draw_residual(index, table, D_IRQ_OFF_LEN, rng)
            elif u < f_idle:
                wait = draw(index, table, D_IDLE_EXIT, rng)
            elif u < f_vcpu:
                wait = draw_residual(index, table, D_VCPU_LEN, rng)
            h[j] = a + wait + draw(index, table, D_IRQ_ENTRY, rng)
            c[j] = h[j] + _handler_work(index, table, is_tlb, pages, full, rng) + transfer[cls[j]]

        # ---- §2 flush-request cost: own read cost, then serialised by arrival at the line -------
        if is_tlb and k > 0:
            two_lines = False
            if placement == PLACE_STACK:
                offset = 8 * min(int(rng.random() * 8), 7)
                two_lines = offset + ip[I_INFO_BYTES] > 64
            for j in range(k):
                cost = transfer[cls[j]]
                if placement == PLACE_STACK:
                    shared = rng.random() < fp[F_FALSE_SHARING]
                    if two_lines and rng.random() < fp[F_FALSE_SHARING]:
                        shared = True
                    if shared:
                        cost += transfer[cls[j]]
                if placement != PLACE_PERCPU and rng.random() < fp[F_TLB_MISS]:
                    cost += draw(index, table, D_PAGE_WALK, rng)
                own[j] = cost
                p = j  # insertion sort by h: nearly sorted already (d increases along the order)
                while p > 0 and h[order[p - 1]] > h[j]:
                    order[p] = order[p - 1]
                    p -= 1
                order[p] = j
            prev = -math.inf
            for r in range(k):
                j = order[r]
                done = max(h[j] + own[j], prev + fp[F_SERIALIZE])
                prev = done
                info = done - h[j]
                c[j] += info
                _record(counts, sums, H_INFO_COST, info, ip)

        # ---- 9. wait loop -------------------------------------------------------------------------
        o = s_l
        for j in range(k):
            o = max(o, c[j]) + transfer[cls[j]]
            _record(counts, sums, H_REMOTE_WAIT, c[j] - d[j], ip)
        t_end = o
        _record(counts, sums, H_CALL, t_end, ip)
        _record(counts, sums, H_WAIT_TAIL, t_end - s_l, ip)

        # ---- §3 policies on the same timeline ---------------------------------------------------
        u = rng.random()
        ctx = CTX_PREEMPTIBLE if u < fp[F_CALLER_PRE] else (
            CTX_SPINLOCK if u < fp[F_CALLER_PRE] + fp[F_CALLER_SPIN] else CTX_PREEMPT_DISABLED
        )
        allow = kernel_preemptible and not waits_pinned and (
            ctx == CTX_PREEMPTIBLE or (ctx == CTX_SPINLOCK and preemption == PREEMPT_RT)
        )
        sleepable = kernel_preemptible and not waits_pinned and ctx == CTX_PREEMPTIBLE
        alloc_failed = rng.random() < fp[F_ALLOC_FAIL]
        spin = 0.0
        if reentry:
            if aux.random() < lam * fp[F_REENTRY_SCALE]:
                b = pick_row(wait_tail_cum.reshape(-1, 1), 0, wait_tail_cum.shape[0], 0, aux.random())
                lo = edges[b]
                hi = edges[b + 1]
                biased = math.sqrt(lo * lo + aux.random() * (hi * hi - lo * lo))
                spin = biased * aux.random()
        g = group_of[s]
        for i in range(n_pol):
            pol = policies[i]
            if not kernel_preemptible or pol == POL_PREEMPT_OFF:
                p_off = t_end
                hp = t_end
            elif pol == POL_PREEMPTIBLE_WAIT:
                p_off = s_l + spin if allow else t_end
                hp = p_off
            elif pol == POL_ATOMIC_ALLOC:
                p_off = (s_l + spin if allow and not alloc_failed else t_end + (spin if allow else 0.0)) + fp[F_ALLOC_NS]
                hp = p_off
            else:
                if sleepable:
                    p_off = s_l + fp[F_RLOCK_NS] + spin
                    hp = t_end + fp[F_RLOCK_NS] + spin
                else:
                    p_off = t_end + fp[F_RLOCK_NS]
                    hp = p_off
            row = N_FIXED_HISTS + 2 * (g * n_pol + i)
            _record(counts, sums, row, p_off, ip)
            _record(counts, sums, row + 1, hp, ip)
            if keep:
                samples[it, N_SAMPLE_COLS + i] = p_off
                samples[it, N_SAMPLE_COLS + n_pol + i] = hp
        if keep:
            samples[it, S_SENDER] = s
            samples[it, S_TARGETS] = k
            samples[it, S_S] = s_end
            samples[it, S_SL] = s_l
            samples[it, S_T] = t_end
            samples[it, S_SPIN] = spin
            samples[it, S_CONTEXT] = ctx
