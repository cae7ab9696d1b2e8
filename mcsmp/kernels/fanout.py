"""The compiled fan-out kernel: one chunk of fan-outs, docs/model.md §1–§3, recorded into histograms.

Inputs are trusted (built by :mod:`mcsmp.model` from validated parameters). Names follow
docs/model.md: ``E`` entry, ``Q`` queue phase, ``d`` departure, ``S`` end of sends, ``L`` local call,
``a`` arrival, ``h`` handler start, ``c`` completion, ``T`` end of the call, ``P``/``H`` the
preempt-off and hotplug-blocking lengths of each policy.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import inline_kernel, kernel
from .codes import (
    CALL_SINGLE,
    CALL_TLB,
    CALL_TLB_KERNEL,
    CLS_LLC,
    CLS_REMOTE,
    CLS_SMT,
    CLS_SOCKET,
    COL_C,
    CTX_PREEMPT_DISABLED,
    CTX_PREEMPTIBLE,
    CTX_SPINLOCK,
    D_COND,
    D_CROSS_SOCKET,
    D_DELIVERY,
    D_DELIVERY_COMMON,
    D_ENTRY,
    D_FULL_FLUSH,
    D_FUNC,
    D_HANDLER_FIXED,
    D_IDLE_EXIT,
    D_INVLPG,
    D_INVLPGB,
    D_IRQ_ENTRY,
    D_IRQ_OFF_LEN,
    D_PAGE_WALK,
    D_PAGES,
    D_QUEUE,
    D_SEND,
    D_TLBSYNC,
    D_VCPU_LEN,
    F_ALLOC_FAIL,
    F_ALLOC_NS,
    F_CALLER_PRE,
    F_CALLER_SPIN,
    F_FALSE_SHARING,
    F_FREED_TABLES,
    F_IDLE,
    F_IRQ,
    F_POLLING,
    F_PV_DROP,
    F_REENTRY_SCALE,
    F_RLOCK_NS,
    F_SENDER_PREEMPT,
    F_SERIALIZE,
    F_T_REMOTE,
    F_T_SMT,
    F_TARGET_PROB,
    F_TLB_MISS,
    F_VCPU,
    H_CALL,
    H_INFO_COST,
    H_REMOTE_WAIT,
    H_WAIT_TAIL,
    I_BASE,
    I_BROADCAST,
    I_CALL,
    I_CEILING,
    I_CLUSTER_MODE,
    I_CPUS,
    I_CSD_DEBUG,
    I_INFO_BYTES,
    I_INVLPGB_COUNT_MAX,
    I_KRANGE_PREEMPTIBLE,
    I_MM_CPUS,
    I_ORDER_AFTER_SENDER,
    I_OVERFLOW,
    I_PLACEMENT,
    I_PREEMPTION,
    I_PV_TLB,
    I_REENTRY,
    I_RUN_LOCAL,
    I_SHIFT,
    I_SHORTHAND,
    I_UNIFORM_RATE,
    N_DISTS,
    N_FIXED_HISTS,
    N_SAMPLE_COLS,
    PLACE_PERCPU,
    PLACE_STACK,
    POL_ATOMIC_ALLOC,
    POL_PREEMPT_OFF,
    POL_PREEMPTIBLE_WAIT,
    PREEMPT_FULL,
    PREEMPT_RT,
    S_CONTEXT,
    S_S,
    S_SENDER,
    S_SL,
    S_SPIN,
    S_T,
    S_TARGETS,
    TR_CODE,
    TR_SL,
    TR_T,
)
from .histo import bucket
from .rng import exponential, uniform
from .sampling import fast_draw, fast_params, pick_row, sample, sample_residual, sample_residual_row
from .topology import topology

__all__ = ["replay_policies", "run_chunk"]

# Largest fan-out whose read order comes from pairwise ranks (k(k−1)/2 branch-free compares,
# no mispredictions); above it, insertion sort, which is close to linear there because h is nearly
# sorted (departures are spread over the send phase). Measured crossover ~200 targets
# (BENCHMARKS.md): pairwise 6-9 ns per target up to 63 targets, 13 at 127, 21 at 255.
_RANK_SORT_MAX = 160


@kernel
def _record(counts: np.ndarray, sums: np.ndarray, row: int, v: float, ip: np.ndarray) -> None:
    counts[row, bucket(v, ip[I_SHIFT], ip[I_BASE], ip[I_OVERFLOW])] += 1
    sums[row] += v


@kernel
def _spin(xs, rate, tail_rows, edges):  # type: ignore[no-untyped-def]
    """Re-entry spin of one fan-out (docs/model.md §3) from the auxiliary stream: ``(spin, xs)``.

    With probability ``rate`` (= λ · E[T − S_L]) an equilibrium residual of the first pass's
    ``T − S_L`` histogram, read as piecewise uniform inside its buckets; else 0.
    """
    u, xs = uniform(xs)
    if u < rate:
        u, xs = uniform(xs)
        b = pick_row(tail_rows, 0, tail_rows.shape[0], 0, u)
        lo = edges[b]
        hi = edges[b + 1]
        u, xs = uniform(xs)
        biased = math.sqrt(lo * lo + u * (hi * hi - lo * lo))
        u, xs = uniform(xs)
        return biased * u, xs
    return 0.0, xs


@kernel
def _policies(counts, sums, samples, it, ip, fp, policies, g, ctx, alloc_failed, s_l, t_end, spin):  # type: ignore[no-untyped-def]
    """P and H of every policy for one fan-out of CPU group ``g`` (docs/model.md §3), recorded."""
    preemption = ip[I_PREEMPTION]
    kernel_preemptible = preemption >= PREEMPT_FULL
    kernel_range_pinned = ip[I_CALL] == CALL_TLB_KERNEL and ip[I_KRANGE_PREEMPTIBLE] == 0
    waits_pinned = ip[I_CSD_DEBUG] == 1 or kernel_range_pinned or (
        ip[I_PV_TLB] == 1 and ip[I_CALL] == CALL_TLB  # kvm_flush_tlb_multi() stays preempt-off (9.30)
    ) or ip[I_BROADCAST] == 1  # INVLPGB + TLBSYNC under get_cpu(): no csd wait to make preemptible (9.31)
    allow = kernel_preemptible and not waits_pinned and (
        ctx == CTX_PREEMPTIBLE or (ctx == CTX_SPINLOCK and preemption == PREEMPT_RT)
    )
    sleepable = kernel_preemptible and not waits_pinned and ctx == CTX_PREEMPTIBLE
    # smp_call_function_single(): put_cpu() before csd_lock_wait() on its stack csd (series patch 2),
    # no wait mask to allocate or protect, so every non-mainline policy is that early put_cpu() (9.37)
    single = ip[I_CALL] == CALL_SINGLE
    n_pol = policies.shape[0]
    keep = samples.shape[0] > 0
    for i in range(n_pol):
        pol = policies[i]
        if not kernel_preemptible or pol == POL_PREEMPT_OFF:
            p_off = t_end
            hp = t_end
        elif pol == POL_PREEMPTIBLE_WAIT or single:
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


# ---- stratified sampling of the rare remote states (docs/model.md §5, "Rare events") ----------
# ``rare`` = (bounds, cat_cum, first_law, tail_cat, tail_split, state_cum, nontail_res), built by
# mcsmp.sim.rare. Fan-outs bounds[s] .. bounds[s+1] − 1 of a chunk belong to stratum s; with one
# stratum (bounds = [0, n]) the kernel runs its crude draws, unchanged. A candidate target falls in
# category 0 (not a target), 1 (target in a non-tail remote state) or 1 + c (tail category c:
# the residual of one mixture component, or of a Pareto component the part below or above a split
# point: tail_cat[c − 1] = (slot, row, part), part 0 whole, 1 below, 2 above tail_split[c − 1]),
# with cumulative per-candidate probabilities cat_cum.
# Stratum s ≥ 1 holds the fan-outs with no candidate in a category above 1 + s and at least one in
# 1 + s; stratum 0 those with none in any tail category.


@kernel
def _first_tail_index(st, m, first_law, rs):  # type: ignore[no-untyped-def]
    """Index J of the first candidate in tail category ``st`` given at least one among ``m``:
    truncated geometric, ``P(J = j) ∝ (1 − π)^j π`` for j < m, by inversion; −1 in stratum 0."""
    if st == 0:
        return -1, rs
    u, rs = uniform(rs)
    log_miss = first_law[st, 0]  # log(1 − π)
    hit_any = first_law[st, 1]  # 1 − (1 − π)^m
    j = m - 1
    if log_miss < 0.0:
        x = math.log1p(-u * hit_any) / log_miss
        if x < m - 1:
            j = int(x)
    else:  # π = 0 cannot reach here (such strata are not built); guard anyway
        j = 0
    return j, rs


@inline_kernel  # inlined: a call per candidate doubled the cost of a fan-out (measured)
def _candidate_category(r, j_first, st, cat_cum, rs):  # type: ignore[no-untyped-def]
    """Category of candidate ``r`` of a fan-out of stratum ``st`` whose first tail-``st`` candidate
    is ``j_first``: before it, the law restricted to categories ≤ st; at it, 1 + st; after it
    (and everywhere in stratum 0), the law restricted to categories ≤ 1 + st."""
    if r == j_first:
        return st + 1, rs
    top = st if r < j_first else st + 1
    u, rs = uniform(rs)
    v = u * cat_cum[top]
    cat = 0
    while cat < top and cat_cum[cat] <= v:
        cat += 1
    return cat, rs


@kernel
def _tail_residual(table, row, part, split, rs):  # type: ignore[no-untyped-def]
    """Residual of table row ``row`` (part 0), or conditioned below ``split`` (part 1, by rejection:
    accepted with probability 1 − mcsmp.config.rare.PARETO_TAIL_SHARE), or above it (part 2, a Pareto row only:
    past its scale a Pareto(s, α) residual has an exact Pareto(α − 1) tail, ``split · e^{E/(α−1)}``)."""
    if part == 2:
        e, rs = exponential(rs)
        return split * math.exp(e * table[row, COL_C]), rs
    x, rs = sample_residual_row(table, row, rs)
    while part == 1 and x > split:
        x, rs = sample_residual_row(table, row, rs)
    return x, rs


@kernel
def _nontail_wait(u, index, table, slot, f_cum, nontail_res, rs):  # type: ignore[no-untyped-def]
    """The remote wait of a non-tail target (category 1) whose state uniform ``u`` < ``f_cum[2]``
    (not running): irq-off, idle or vCPU-preempted with the tail components removed (``f_cum``
    cumulative over those states, ``nontail_res`` the residual weights of the kept rows)."""
    if u < f_cum[0]:
        dist = slot[D_IRQ_OFF_LEN]
    elif u < f_cum[1]:
        return sample(index, table, slot[D_IDLE_EXIT], rs)
    elif u < f_cum[2]:
        dist = slot[D_VCPU_LEN]
    else:
        return 0.0, rs
    row = index[dist, 0]
    if index[dist, 1] > 1:
        u, rs = uniform(rs)
        row = pick_row(nontail_res, row, index[dist, 1], 0, u)
    return sample_residual_row(table, row, rs)


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
    state: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    samples: np.ndarray,
    trace: np.ndarray,
    rare,  # type: ignore[no-untyped-def]
) -> None:
    """Simulate ``n_fanouts`` fan-outs, adding to ``counts``/``sums`` (and ``samples`` if sized).

    ``trace`` (``float64[n_fanouts, N_TRACE_COLS]`` or empty) receives what
    :func:`replay_policies` needs to redo the policy rows with a re-entry spin.

    ``state`` is ``uint64[3, 4]``: the :mod:`~mcsmp.kernels.rng` states of the main stream (row 0,
    drives the timeline), the auxiliary stream (row 1, drives only the re-entry spin, so
    enabling the second pass leaves every other draw unchanged) and the request stream (row 2,
    the flush-request placement's draws of §2, so placements share the timeline); all are
    advanced in place.
    ``wait_tail_cum`` is the cumulative length-biased weight of each bucket of the first pass's
    ``T − S_L`` histogram (empty when re-entry is off).

    Speed (BENCHMARKS.md): random state and per-slot distribution parameters live in locals
    (registers), the distance class comes from per-CPU topology arrays (no divisions), and the
    arrival order of the request reads is a branch-free stable rank for small fan-outs.

    ``rare`` is the stratification of the rare remote states (the block above :func:`run_chunk`):
    stratum ``s``'s rows are ``s · n_rows`` onwards, ``n_rows = counts.shape[0] / strata``.
    """
    n = ip[I_CPUS]
    mm_cpus = ip[I_MM_CPUS]
    call = ip[I_CALL]
    is_tlb = call == CALL_TLB or call == CALL_TLB_KERNEL  # both TLB calls carry a flush_tlb_info
    polling_prob = fp[F_POLLING]  # > 0 only for single calls (mcsmp.sim.model)
    sender_preempt = fp[F_SENDER_PREEMPT]  # host preemptions per ns of the csd wait (9.39)
    shorthand = ip[I_SHORTHAND] == 1
    broadcast = ip[I_BROADCAST] == 1  # AMD INVLPGB: no targets, no IPIs (9.31)
    count_max = ip[I_INVLPGB_COUNT_MAX]
    after_sender = ip[I_ORDER_AFTER_SENDER] == 1
    cluster_mode = ip[I_CLUSTER_MODE] == 1
    placement = ip[I_PLACEMENT]
    reentry = ip[I_REENTRY] == 1 and wait_tail_cum.shape[0] > 0
    uniform_rate = ip[I_UNIFORM_RATE] == 1
    run_local = ip[I_RUN_LOCAL] == 1
    ceiling = ip[I_CEILING]
    info_bytes = ip[I_INFO_BYTES]
    shift = ip[I_SHIFT]
    base = ip[I_BASE]
    overflow = ip[I_OVERFLOW]
    target_prob = fp[F_TARGET_PROB]
    pv_drop = fp[F_PV_DROP]
    freed_prob = fp[F_FREED_TABLES] if call == CALL_TLB else 0.0
    f_irq = fp[F_IRQ]
    f_idle = f_irq + fp[F_IDLE]
    f_vcpu = f_idle + fp[F_VCPU]
    serialize = fp[F_SERIALIZE]
    false_sharing = fp[F_FALSE_SHARING]
    tlb_miss = fp[F_TLB_MISS]
    transfer = fp[F_T_SMT : F_T_REMOTE + 1]
    keep = samples.shape[0] > 0
    tracing = trace.shape[0] > 0
    rate_rows = rate_cum.reshape(n, 1)
    tail_rows = wait_tail_cum.reshape(-1, 1)

    rs = (state[0, 0], state[0, 1], state[0, 2], state[0, 3])  # main stream
    xs = (state[1, 0], state[1, 1], state[1, 2], state[1, 3])  # auxiliary stream
    ps = (state[2, 0], state[2, 1], state[2, 2], state[2, 3])  # request stream (§2 draws)
    # Slot ids as run-time values: a literal argument would compile a specialisation per slot.
    slot = np.arange(N_DISTS)
    pk, pa, pb = fast_params(index, table, slot[D_PAGES])
    ek, ea, eb = fast_params(index, table, slot[D_ENTRY])
    qk, qa, qb = fast_params(index, table, slot[D_QUEUE])
    sk, sa, sb = fast_params(index, table, slot[D_SEND])
    dk, da, db = fast_params(index, table, slot[D_DELIVERY])
    xk, xa, xb = fast_params(index, table, slot[D_CROSS_SOCKET])
    ik, ia, ib = fast_params(index, table, slot[D_IRQ_ENTRY])
    fk, fa, fb = fast_params(index, table, slot[D_FUNC])
    ffk, ffa, ffb = fast_params(index, table, slot[D_FULL_FLUSH])
    ilk, ila, ilb = fast_params(index, table, slot[D_INVLPG])
    hfk, hfa, hfb = fast_params(index, table, slot[D_HANDLER_FIXED])
    cok, coa, cob = fast_params(index, table, slot[D_COND])

    # Topology of each CPU, so a target's distance class (docs/model.md §1 step 2) is three compares:
    # other socket -> remote, else other LLC -> socket, else other core -> llc, else smt.
    socket_of, llc_of, core_of, cluster_of = topology(n, ip)
    lazy_idle = np.zeros(n, dtype=np.bool_)  # a lazy CPU reached because tables were freed (9.33)
    tcluster = np.empty(n, dtype=np.int64)  # x2APIC cluster of each target
    cls = np.empty(n, dtype=np.int64)
    d = np.empty(n, dtype=np.float64)
    h = np.empty(n, dtype=np.float64)
    c = np.empty(n, dtype=np.float64)
    own = np.empty(n, dtype=np.float64)
    order = np.empty(n, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    h_sorted = np.empty(n, dtype=np.float64)  # h in read order (insertion sort)
    offsets = np.arange(max(n - 1, 1), dtype=np.int64)  # candidate offsets for mm_cpus subsets
    chosen = np.empty(max(n - 1, 1), dtype=np.int64)
    cluster_time = np.full(cluster_of[n - 1] + 1, -1.0)
    # the per-target rows: row views and running sums in registers (same additions, same order)
    strata_bounds, cat_cum, first_law, tail_cat, tail_split, state_cum, nontail_res = rare
    n_strata = strata_bounds.shape[0] - 1
    stratified = n_strata > 1
    n_rows = counts.shape[0] // n_strata
    tcat = np.zeros(n, dtype=np.int64)  # category of each target (stratified only)
    st = 0
    next_bound = strata_bounds[1]
    all_counts = counts
    all_sums = sums
    counts = all_counts[0:n_rows]
    sums = all_sums[0:n_rows]
    wait_counts = counts[H_REMOTE_WAIT]
    info_counts = counts[H_INFO_COST]
    wait_sum = sums[H_REMOTE_WAIT]
    info_sum = sums[H_INFO_COST]

    for it in range(n_fanouts):
        while stratified and it == next_bound:  # next stratum: its own rows
            sums[H_REMOTE_WAIT] = wait_sum
            sums[H_INFO_COST] = info_sum
            st += 1
            next_bound = strata_bounds[st + 1]
            counts = all_counts[st * n_rows : (st + 1) * n_rows]
            sums = all_sums[st * n_rows : (st + 1) * n_rows]
            wait_counts = counts[H_REMOTE_WAIT]
            info_counts = counts[H_INFO_COST]
            wait_sum = sums[H_REMOTE_WAIT]
            info_sum = sums[H_INFO_COST]
        # ---- 1. sender and targets ------------------------------------------------------------
        u, rs = uniform(rs)
        if uniform_rate:
            s = min(int(u * n), n - 1)
        else:
            s = pick_row(rate_rows, 0, n, 0, u)
        lam = rate_hz[s]
        k = 0
        if call == CALL_TLB_KERNEL or mm_cpus < 0:
            m = n - 1
            for r in range(m):
                chosen[r] = r
        else:
            m = mm_cpus
            for r in range(m):  # partial Fisher–Yates: a uniform m-subset of the n − 1 others
                u, rs = uniform(rs)
                j = r + min(int(u * (n - 1 - r)), n - 2 - r)
                offsets[r], offsets[j] = offsets[j], offsets[r]
                v = offsets[r]
                p = r
                while p > 0 and chosen[p - 1] > v:  # kept sorted: targets go in CPU order
                    chosen[p] = chosen[p - 1]
                    p -= 1
                chosen[p] = v
        skip_lazy = call != CALL_TLB_KERNEL and target_prob < 1.0
        freed = False  # freed_tables: on_each_cpu_mask(), no should_flush_tlb() skip (9.33)
        if freed_prob > 0.0:
            u, rs = uniform(rs)
            freed = u < freed_prob
        cond_cost = 0.0  # should_flush_tlb() over the mask, on the sender before the queue phase
        max_cls = -1
        s_socket = socket_of[s]
        s_llc = llc_of[s]
        s_core = core_of[s]
        if broadcast:
            m = 0  # the hardware reaches every CPU: no mask, no csds
        j_first = -1
        if stratified:  # never with pv_drop or freed tables (mcsmp.config.rare): their draws are crude only
            j_first, rs = _first_tail_index(st, m, first_law, rs)
        for r in range(m):
            if pv_drop > 0.0:  # kvm_flush_tlb_multi(): a preempted vCPU flushes at its next entry
                u, rs = uniform(rs)
                if u < pv_drop:
                    continue
            is_lazy = False
            if call == CALL_TLB and not freed:  # should_flush_tlb() on each CPU left in the mask
                x, rs, ok = fast_draw(cok, coa, cob, rs)
                if not ok:
                    x, rs = sample(index, table, slot[D_COND], rs)
                cond_cost += x
            if stratified:
                cat, rs = _candidate_category(r, j_first, st, cat_cum, rs)
                if cat == 0:
                    continue
                tcat[k] = cat
            elif skip_lazy:
                u, rs = uniform(rs)
                if u >= target_prob:
                    if not freed:
                        continue
                    is_lazy = True
            if after_sender:
                t = s + 1 + chosen[r]  # (s + 1 + offset) mod n
                if t >= n:
                    t -= n
            else:  # for_each_cpu: ascending from CPU 0, the sender left out (9.14)
                t = chosen[r] + 1 if chosen[r] >= s else chosen[r]
            tcluster[k] = cluster_of[t]
            if socket_of[t] != s_socket:
                cl = CLS_REMOTE
            elif llc_of[t] != s_llc:
                cl = CLS_SOCKET
            elif core_of[t] != s_core:
                cl = CLS_LLC
            else:
                cl = CLS_SMT
            cls[k] = cl
            lazy_idle[k] = is_lazy
            max_cls = max(max_cls, cl)
            k += 1

        # ---- 3.–6. sender phases ------------------------------------------------------------------
        pages = 0.0
        full = False
        if is_tlb:
            pages, rs, ok = fast_draw(pk, pa, pb, rs)
            if not ok:
                pages, rs = sample(index, table, slot[D_PAGES], rs)
            full = pages > ceiling
        # step 8's work: func (generic), a full flush above the ceiling, else pages × INVLPG
        wmul = 1.0  # exact: 1.0 · x == x
        if not is_tlb:
            wk, wa, wb, wd = fk, fa, fb, slot[D_FUNC]
        elif full:
            wk, wa, wb, wd = ffk, ffa, ffb, slot[D_FULL_FLUSH]
        else:
            wk, wa, wb, wd = ilk, ila, ilb, slot[D_INVLPG]
            wmul = pages
        e, rs, ok = fast_draw(ek, ea, eb, rs)
        if not ok:
            e, rs = sample(index, table, slot[D_ENTRY], rs)
        if is_tlb and k > 0:
            e += transfer[max_cls]  # invalidate the previous readers' copies of the request
        t_now = e + cond_cost
        for j in range(k):
            x, rs, ok = fast_draw(qk, qa, qb, rs)
            if not ok:
                x, rs = sample(index, table, slot[D_QUEUE], rs)
            t_now += x + transfer[cls[j]]
        polling = False  # the single target idles with TIF_POLLING_NRFLAG: no IPI (9.37)
        if polling_prob > 0.0:
            u, rs = uniform(rs)
            polling = u < polling_prob
        if polling:
            # set_nr_if_polling(): a cmpxchg of TIF_NEED_RESCHED into the idle task's flags, one
            # line from the target instead of the ICR write
            t_now += transfer[cls[0]]
            d[0] = t_now
        elif shorthand and k == n - 1 and k > 1:
            # native_send_call_func_ipi(): mask + self == online -> one all-but-self write (9.27)
            x, rs, ok = fast_draw(sk, sa, sb, rs)
            if not ok:
                x, rs = sample(index, table, slot[D_SEND], rs)
            t_now += x
            for j in range(k):
                d[j] = t_now
        elif cluster_mode:
            for j in range(k):
                cid = tcluster[j]
                if cluster_time[cid] < 0.0:
                    x, rs, ok = fast_draw(sk, sa, sb, rs)
                    if not ok:
                        x, rs = sample(index, table, slot[D_SEND], rs)
                    t_now += x
                    cluster_time[cid] = t_now
                d[j] = cluster_time[cid]
            for j in range(k):
                cluster_time[tcluster[j]] = -1.0
        else:
            for j in range(k):
                x, rs, ok = fast_draw(sk, sa, sb, rs)
                if not ok:
                    x, rs = sample(index, table, slot[D_SEND], rs)
                t_now += x
                d[j] = t_now
        s_end = t_now
        local = 0.0
        if broadcast:  # broadcast_tlb_flush(): one INVLPGB per count_max pages (one if full), then TLBSYNC
            for _ in range(1 if full else max(1, int(math.ceil(pages / count_max)))):
                x, rs = sample(index, table, slot[D_INVLPGB], rs)
                local += x
            x, rs = sample(index, table, slot[D_TLBSYNC], rs)
            local += x
        elif run_local:
            local, rs, ok = fast_draw(wk, wa, wb, rs)
            if not ok:
                local, rs = sample(index, table, wd, rs)
            local = wmul * local
            if is_tlb:
                x, rs, ok = fast_draw(hfk, hfa, hfb, rs)
                if not ok:
                    x, rs = sample(index, table, slot[D_HANDLER_FIXED], rs)
                local += x
        s_l = s_end + local

        # ---- 7.–8. remote side --------------------------------------------------------------------
        common = 0.0  # the delivery delay all targets of this fan-out share (9.28)
        if k > 0:
            common, rs = sample(index, table, slot[D_DELIVERY_COMMON], rs)
        for j in range(k):
            if polling:
                # the polling idle loop sees NEED_RESCHED (its flags line comes back) and runs
                # flush_smp_call_function_queue() from task context: no delivery, exit or entry
                h[j] = d[j] + transfer[cls[j]]
                x, rs, ok = fast_draw(wk, wa, wb, rs)
                if not ok:
                    x, rs = sample(index, table, wd, rs)
                c[j] = h[j] + wmul * x + transfer[cls[j]]
                continue
            x, rs, ok = fast_draw(dk, da, db, rs)
            if not ok:
                x, rs = sample(index, table, slot[D_DELIVERY], rs)
            a = d[j] + common + x
            if cls[j] == CLS_REMOTE:
                x, rs, ok = fast_draw(xk, xa, xb, rs)
                if not ok:
                    x, rs = sample(index, table, slot[D_CROSS_SOCKET], rs)
                a += x
            wait = 0.0
            if stratified:
                cat = tcat[j]
                if cat >= 2:
                    wait, rs = _tail_residual(table, tail_cat[cat - 2, 1], tail_cat[cat - 2, 2], tail_split[cat - 2], rs)
                else:
                    u, rs = uniform(rs)
                    if u < state_cum[2]:
                        wait, rs = _nontail_wait(u, index, table, slot, state_cum, nontail_res, rs)
            else:
                u, rs = uniform(rs)
                if lazy_idle[j]:  # a lazy CPU is an idle one: it pays a C-state exit
                    wait, rs = sample(index, table, slot[D_IDLE_EXIT], rs)
                elif u < f_irq:
                    wait, rs = sample_residual(index, table, slot[D_IRQ_OFF_LEN], rs)
                elif u < f_idle:
                    wait, rs = sample(index, table, slot[D_IDLE_EXIT], rs)
                elif u < f_vcpu:
                    wait, rs = sample_residual(index, table, slot[D_VCPU_LEN], rs)
            x, rs, ok = fast_draw(ik, ia, ib, rs)
            if not ok:
                x, rs = sample(index, table, slot[D_IRQ_ENTRY], rs)
            h[j] = a + wait + x
            x, rs, ok = fast_draw(wk, wa, wb, rs)
            if not ok:
                x, rs = sample(index, table, wd, rs)
            work = wmul * x
            if is_tlb:  # flush_tlb_func's fixed part, paid once per call whatever the pages (9.29)
                x, rs, ok = fast_draw(hfk, hfa, hfb, rs)
                if not ok:
                    x, rs = sample(index, table, slot[D_HANDLER_FIXED], rs)
                work += x
            c[j] = h[j] + work + transfer[cls[j]]

        # ---- §2 flush-request cost: own read cost, then serialised by arrival at the line -------
        # Its draws come from the request stream alone, the same ones for both stack placements,
        # and percpu draws none: points that differ only in placement share every other draw
        # (common random numbers, docs/model.md §6).
        if is_tlb and k > 0:
            two_lines = False
            on_stack = placement != PLACE_PERCPU
            if on_stack:
                u, ps = uniform(ps)
                offset = 8 * min(int(u * 8), 7)
                two_lines = placement == PLACE_STACK and offset + info_bytes > 64
            for j in range(k):
                cost = transfer[cls[j]]
                if on_stack:
                    u_line1, ps = uniform(ps)
                    u_line2, ps = uniform(ps)
                    u_miss, ps = uniform(ps)
                    if placement == PLACE_STACK and (
                        u_line1 < false_sharing or (two_lines and u_line2 < false_sharing)
                    ):
                        cost += transfer[cls[j]]
                    if u_miss < tlb_miss:
                        x, ps = sample(index, table, slot[D_PAGE_WALK], ps)
                        cost += x
                own[j] = cost
            # order[r] = index of the r-th read by arrival h (stable: ties keep target order)
            if k <= _RANK_SORT_MAX:
                for j in range(k):  # stable ranks from the k(k−1)/2 pairs, branch-free
                    hj = h[j]
                    r = 0
                    for i in range(j):
                        before = np.int64(h[i] <= hj)  # i reads before j
                        r += before
                        rank[i] += 1 - before
                    rank[j] = r
                for j in range(k):
                    order[rank[j]] = j
            else:
                for j in range(k):  # insertion sort: h is nearly sorted (d grows along the order)
                    hj = h[j]
                    p = j
                    while p > 0 and h_sorted[p - 1] > hj:  # keys kept in order: no indirect loads
                        h_sorted[p] = h_sorted[p - 1]
                        order[p] = order[p - 1]
                        p -= 1
                    h_sorted[p] = hj
                    order[p] = j
            prev = -math.inf
            for r in range(k):
                j = order[r]
                done = max(h[j] + own[j], prev + serialize)
                prev = done
                info = done - h[j]
                c[j] += info
                info_counts[bucket(info, shift, base, overflow)] += 1
                info_sum += info

        # ---- 9. wait loop -------------------------------------------------------------------------
        o = s_l
        for j in range(k):
            o = max(o, c[j]) + transfer[cls[j]]
            v = c[j] - d[j]
            wait_counts[bucket(v, shift, base, overflow)] += 1
            wait_sum += v
        t_end = o
        csd_locked = t_end - s_l  # what a re-entering call can spin on: the slices below do not hold the csds
        if sender_preempt > 0.0:  # 9.39: host preemptions of the sender's vCPU, Poisson in the wait's running time
            run_left = t_end - s_l
            while True:
                u, rs = uniform(rs)
                run_left += math.log1p(-u) / sender_preempt  # the next exponential gap of running time
                if run_left <= 0.0:
                    break
                x, rs = sample(index, table, slot[D_VCPU_LEN], rs)
                t_end += x
        _record(counts, sums, H_CALL, t_end, ip)
        _record(counts, sums, H_WAIT_TAIL, csd_locked, ip)

        # ---- §3 policies on the same timeline ---------------------------------------------------
        u, rs = uniform(rs)
        ctx = CTX_PREEMPTIBLE if u < fp[F_CALLER_PRE] else (
            CTX_SPINLOCK if u < fp[F_CALLER_PRE] + fp[F_CALLER_SPIN] else CTX_PREEMPT_DISABLED
        )
        u, rs = uniform(rs)
        alloc_failed = u < fp[F_ALLOC_FAIL]
        spin = 0.0
        if reentry:
            spin, xs = _spin(xs, lam * fp[F_REENTRY_SCALE], tail_rows, edges)
        _policies(counts, sums, samples, it, ip, fp, policies, group_of[s], ctx, alloc_failed, s_l, t_end, spin)
        if tracing:
            trace[it, TR_SL] = s_l
            trace[it, TR_T] = t_end
            trace[it, TR_CODE] = s * 8 + ctx * 2 + alloc_failed
        if keep:
            samples[it, S_SENDER] = s
            samples[it, S_TARGETS] = k
            samples[it, S_S] = s_end
            samples[it, S_SL] = s_l
            samples[it, S_T] = t_end
            samples[it, S_SPIN] = spin
            samples[it, S_CONTEXT] = ctx
    sums[H_REMOTE_WAIT] = wait_sum
    sums[H_INFO_COST] = info_sum
    state[0, 0], state[0, 1], state[0, 2], state[0, 3] = rs
    state[1, 0], state[1, 1], state[1, 2], state[1, 3] = xs
    state[2, 0], state[2, 1], state[2, 2], state[2, 3] = ps


@kernel
def replay_policies(
    n_fanouts: int,
    ip: np.ndarray,
    fp: np.ndarray,
    group_of: np.ndarray,
    rate_hz: np.ndarray,
    policies: np.ndarray,
    wait_tail_cum: np.ndarray,
    edges: np.ndarray,
    aux_state: np.ndarray,
    trace: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    strata_bounds: np.ndarray,
) -> None:
    """The second pass of a pilot chunk, from its first pass's ``trace``: the policy rows only.

    The re-entry spin is drawn from the auxiliary stream alone, so a pilot chunk's second pass
    repeats its first pass except in the policy rows. This redoes exactly those rows, drawing the
    spins from ``aux_state`` (``uint64[4]``, the chunk's auxiliary stream) as :func:`run_chunk`
    does, in fan-out order, so counts and sums equal a full second :func:`run_chunk` bit for bit.
    Rows below ``N_FIXED_HISTS`` are left alone (take them from the first pass). Fan-outs
    ``strata_bounds[s]`` .. ``strata_bounds[s+1] − 1`` go to stratum ``s``'s rows, as in :func:`run_chunk`.
    """
    n_strata = strata_bounds.shape[0] - 1
    n_rows = counts.shape[0] // n_strata
    st = 0
    tail_rows = wait_tail_cum.reshape(-1, 1)
    reentry = ip[I_REENTRY] == 1 and wait_tail_cum.shape[0] > 0
    no_samples = np.zeros((0, 1))
    xs = (aux_state[0], aux_state[1], aux_state[2], aux_state[3])
    for it in range(n_fanouts):
        while it == strata_bounds[st + 1]:
            st += 1
        code = int(trace[it, TR_CODE])
        s = code >> 3
        spin = 0.0
        if reentry:
            spin, xs = _spin(xs, rate_hz[s] * fp[F_REENTRY_SCALE], tail_rows, edges)
        lo = st * n_rows
        _policies(
            counts[lo : lo + n_rows], sums[lo : lo + n_rows], no_samples, it, ip, fp, policies, group_of[s], (code >> 1) & 3,
            (code & 1) == 1, trace[it, TR_SL], trace[it, TR_T], spin,
        )  # fmt: skip
    aux_state[0], aux_state[1], aux_state[2], aux_state[3] = xs
