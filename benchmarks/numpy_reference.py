"""A straightforward vectorised NumPy implementation of the fan-out model (MODEL.md §1–§3).

The benchmark's yardstick for "how fast would plain NumPy be": a block of fan-outs is simulated
at once, every per-target quantity a 2-D array ``(fan-outs, targets)``, every per-fan-out one a
1-D array; the only Python loops run over the targets of a fan-out (the sequential recurrences
of the request-read queue and of the wait loop) and over the components of a mixture. Draws come
from ``numpy.random.Generator(SFC64)`` (the engine's bit generator; NumPy's own fastest) with
NumPy's vectorised samplers. Histograms are recorded with :meth:`mcsmp.stats.Layout.index` and
``np.bincount``.

It reads only :class:`mcsmp.config.Params` (distributions through ``Dist.components``) and
MODEL.md, not the kernel, so it doubles as an independent check:
tests/test_numpy_reference.py compares it with the engine in distribution.

Scope (raises ``NotImplementedError`` otherwise): every CPU of the mm is a target
(``workload.mm_cpus: null``, ``target_prob: 1``, or ``call: tlb_flush_kernel``), and no re-entry
second pass (``policy.reentry: off`` or no caller whose wait can be preempted). Everything else
of the model is covered: topology classes, physical and cluster IPIs, the local call, the three
remote states with equilibrium residuals, the three request placements with read serialisation,
``generic`` calls, per-CPU rates and all four policies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mcsmp.config import POLICIES, Params
from mcsmp.dists import Dist
from mcsmp.sim.histogram import Layout

__all__ = ["ReferenceResult", "draw", "residual", "simulate"]

CONST, UNIFORM, EXPONENTIAL, LOGNORMAL, GAMMA, WEIBULL, PARETO = range(7)  # Component.family
SMT, LLC, SOCKET, REMOTE = range(4)
PREEMPTIBLE, SPINLOCK, DISABLED = range(3)


# ---- samplers (vectorised, from Dist.components) ------------------------------------------------


def _family(fam: int, a: float, b: float, rng: np.random.Generator, n: int) -> np.ndarray:
    if fam == CONST:
        return np.full(n, a)
    if fam == UNIFORM:
        return rng.uniform(a, b, n)
    if fam == EXPONENTIAL:
        return rng.exponential(a, n)
    if fam == LOGNORMAL:
        return rng.lognormal(a, b, n)
    if fam == GAMMA:
        return rng.gamma(a, b, n)
    if fam == WEIBULL:
        return a * rng.weibull(b, n)
    return a * (1.0 + rng.pareto(b, n))  # NumPy's pareto is Lomax: 1 + Lomax(α) is Pareto(1, α)


def _biased(fam: int, a: float, b: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Length-biased draws (density x f(x) / m) of one component."""
    if fam == CONST:
        return np.full(n, a)
    if fam == UNIFORM:
        return np.sqrt(a * a + rng.random(n) * (b * b - a * a))
    if fam == EXPONENTIAL:
        return rng.gamma(2.0, a, n)
    if fam == LOGNORMAL:
        return rng.lognormal(a + b * b, b, n)
    if fam == GAMMA:
        return rng.gamma(a + 1.0, b, n)
    if fam == WEIBULL:
        return a * rng.gamma(1.0 + 1.0 / b, 1.0, n) ** (1.0 / b)
    return a * (1.0 + rng.pareto(b - 1.0, n))


def _mixture(dist: Dist, rng: np.random.Generator, shape: tuple[int, ...], biased: bool) -> np.ndarray:
    n = int(np.prod(shape))
    comps = dist.components
    sample = _biased if biased else _family
    if len(comps) == 1:
        c = comps[0]
        return sample(c.family, c.a, c.b, rng, n).reshape(shape)
    w = np.array([c.weight * (c.mean if biased else 1.0) for c in comps])
    cum = np.cumsum(w) / w.sum()
    cum[-1] = 1.0
    which = np.searchsorted(cum, rng.random(n), side="right")  # component by (biased) weight
    out = np.empty(n)
    for i, c in enumerate(comps):
        sel = np.flatnonzero(which == i)
        if sel.size:
            out[sel] = sample(c.family, c.a, c.b, rng, sel.size)
    return out.reshape(shape)


def draw(dist: Dist, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Independent draws of ``dist``."""
    if dist.is_const:
        return np.full(shape, dist.components[0].a)
    return _mixture(dist, rng, shape, biased=False)


def residual(dist: Dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """Equilibrium residual (MODEL §1 step 7): a length-biased length times a uniform."""
    return _mixture(dist, rng, (n,), biased=True) * rng.random(n)


# ---- the model ------------------------------------------------------------------------------------


@dataclass
class ReferenceResult:
    """Histograms (``Layout`` counts) and, with ``keep``, per-fan-out values."""

    layout: Layout
    counts: dict[str, np.ndarray]  # 'call', 'wait_tail', 'remote_wait', 'info', ('P'|'H', group, policy)
    fanouts: int = 0
    target_samples: int = 0
    seconds: float = 0.0
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def value(self, name: str) -> np.ndarray:
        return np.concatenate(self.values[name])


def _check_scope(p: Params) -> None:
    w = p.workload
    # the model before issue 10's kernel paths (docs/model.md 9.27-9.33): tests/naive.py covers those
    if p.ipi.shorthand or p.kernel.target_order != "after_sender":
        raise NotImplementedError("numpy_reference: per-target/cluster writes in the contract's order only "
                                  "(set ipi.shorthand: false, kernel.target_order: after_sender)")
    if (p.ipi.pv_tlb_flush or p.tlb.mechanism != "ipi" or w.freed_tables_prob > 0 or p.kernel.kernel_range_preemptible
            or not (p.ipi.delivery_common_ns.is_const and p.ipi.delivery_common_ns.mean == 0)
            or not (p.tlb.handler_fixed_ns.is_const and p.tlb.handler_fixed_ns.mean == 0)
            or not (p.costs.cond_ns.is_const and p.costs.cond_ns.mean == 0)):
        raise NotImplementedError("numpy_reference: issue 10's PV flush, INVLPGB, lazy-TLB, kernel-range and "
                                  "shared-delivery / fixed-handler / cond-cost terms are not modelled here")
    if w.call == "single":
        raise NotImplementedError("numpy_reference: smp_call_function_single() (issue 10, docs/model.md 9.37) "
                                  "is not modelled here; tests/naive.py covers it")
    if p.ipi.sender_preempt_hz > 0:
        raise NotImplementedError("numpy_reference: host preemption of the sender's vCPU (issue 10, docs/model.md 9.39) "
                                  "is not modelled here; tests/naive.py covers it")
    if w.call != "tlb_flush_kernel" and (w.mm_cpus is not None or w.target_prob < 1.0):
        raise NotImplementedError("numpy_reference: every other CPU must be a target")
    kernel_preemptible = p.kernel.preemption in ("full", "lazy", "rt")
    pinned = p.kernel.csdlock_debug or w.call == "tlb_flush_kernel"
    may_allow = w.caller.preemptible > 0 or (w.caller.spinlock > 0 and p.kernel.preemption == "rt")
    if p.policy.reentry == "bound" and kernel_preemptible and not pinned and may_allow and any(
        x != "preempt_off" for x in p.policies
    ):
        raise NotImplementedError("numpy_reference: no re-entry second pass (set policy.reentry: off)")


def _block(p: Params, rng: np.random.Generator, b: int, res: ReferenceResult, keep: bool) -> None:
    m, w, c = p.machine, p.workload, p.cache
    n = m.cpus
    k = n - 1
    transfer = np.array(c.transfer_ns, dtype=float)
    rates = np.array(w.rate_hz, dtype=float)
    groups = {r: g for g, r in enumerate(dict.fromkeys(rates.tolist()))}
    is_tlb = w.call != "generic"
    layout = res.layout

    # 1. sender, targets, classes
    cum = np.cumsum(rates) / rates.sum()
    cum[-1] = 1.0
    s = np.searchsorted(cum, rng.random(b), side="right")
    t = (s[:, None] + 1 + np.arange(k)[None, :]) % n
    per_socket = n // m.sockets
    cores = n // m.smt
    split = m.smt > 1 and m.smt_numbering == "split"  # CPU t is thread t // cores of core t % cores (9.36)
    a_s = (s % cores) * m.smt + s // cores if split else s  # places in core order
    a_t = (t % cores) * m.smt + t // cores if split else t
    cls = np.where(
        a_t // per_socket != (a_s // per_socket)[:, None], REMOTE,
        np.where(a_t // m.cpus_per_llc != (a_s // m.cpus_per_llc)[:, None], SOCKET,
                 np.where(a_t // m.smt != (a_s // m.smt)[:, None], LLC, SMT)),
    )  # fmt: skip
    tr = transfer[cls]

    # 3.–6. sender: entry, queue, IPIs, local call
    pages = draw(p.tlb.pages, rng, (b,)) if is_tlb else np.zeros(b)
    full = pages > p.tlb.ceiling_pages
    e = draw(p.costs.entry_ns, rng, (b,))
    if is_tlb and k > 0:
        e = e + transfer[cls.max(axis=1)]
    queued = e + (draw(p.costs.queue_ns, rng, (b, k)) + tr).sum(axis=1)
    sends = draw(p.ipi.send_ns, rng, (b, k))
    if p.ipi.mode == "cluster":
        cid = a_t // p.ipi.cluster_size
        # one ICR write per cluster, at its first target in target order (the sender's own
        # cluster can come back at the end, after the wrap-around: it reuses the first write)
        first = np.ones((b, k), dtype=bool)
        first[:, 1:] = cid[:, 1:] != cid[:, :-1]
        first &= ~((cid == cid[:, :1]) & (np.arange(k)[None, :] > 0))
        start = np.maximum.accumulate(np.where(first, np.arange(k)[None, :], 0), axis=1)
        start = np.where(cid == cid[:, :1], 0, start)
        at = queued[:, None] + np.cumsum(np.where(first, sends, 0.0), axis=1)
        d = np.take_along_axis(at, start, axis=1)
        s_end = at[:, -1] if k else queued
    else:
        at = queued[:, None] + np.cumsum(sends, axis=1)
        d = at
        s_end = at[:, -1] if k else queued

    def work(shape: tuple[int, ...], full_mask: np.ndarray) -> np.ndarray:
        if not is_tlb:
            return draw(p.costs.func_ns, rng, shape)
        flush = draw(p.tlb.full_flush_ns, rng, shape)
        inv = draw(p.tlb.invlpg_ns, rng, shape)
        pg = pages.reshape((b,) + (1,) * (len(shape) - 1))
        fm = full_mask.reshape((b,) + (1,) * (len(shape) - 1))
        return np.where(fm, flush, pg * inv)

    local = work((b,), full) if w.run_local else np.zeros(b)
    s_l = s_end + local

    # 7.–8. remote side
    a = d + draw(p.ipi.delivery_ns, rng, (b, k)) + np.where(cls == REMOTE, draw(p.ipi.cross_socket_ns, rng, (b, k)), 0.0)
    u = rng.random((b, k))
    f_irq = p.remote.irq_off.fraction
    f_idle = f_irq + p.remote.idle.fraction
    f_vcpu = f_idle + p.remote.vcpu_preempted.fraction
    wait = np.zeros((b, k))
    for lo, hi, make in (
        (0.0, f_irq, lambda q: residual(p.remote.irq_off.length, rng, q)),
        (f_irq, f_idle, lambda q: draw(p.remote.idle.length, rng, (q,))),
        (f_idle, f_vcpu, lambda q: residual(p.remote.vcpu_preempted.length, rng, q)),
    ):
        sel = (u >= lo) & (u < hi)
        q = int(sel.sum())
        if q:
            wait[sel] = make(q)
    h = a + wait + draw(p.costs.irq_entry_ns, rng, (b, k))
    comp = h + work((b, k), full) + tr

    # §2 request reads: own cost, then served one at a time in order of arrival h
    if is_tlb and k > 0:
        own = tr.copy()
        if c.placement == "stack":
            two = 8 * np.minimum((rng.random(b) * 8).astype(int), 7) + p.tlb.info_bytes > 64
            shared = (rng.random((b, k)) < c.false_sharing_prob) | (two[:, None] & (rng.random((b, k)) < c.false_sharing_prob))
            own += np.where(shared, tr, 0.0)
        if c.placement != "percpu":
            miss = rng.random((b, k)) < c.stack_tlb_miss_prob
            own += np.where(miss, draw(c.page_walk_ns, rng, (b, k)), 0.0)
        order = np.argsort(h, axis=1, kind="stable")
        hs = np.take_along_axis(h, order, axis=1)
        ready = hs + np.take_along_axis(own, order, axis=1)
        done = np.empty_like(ready)
        prev = np.full(b, -np.inf)
        for r in range(k):
            prev = np.maximum(ready[:, r], prev + c.line_serialize_ns)
            done[:, r] = prev
        info = np.empty_like(done)
        np.put_along_axis(info, order, done - hs, axis=1)
        comp = comp + info
        res.counts["info"] += np.bincount(layout.index(info.ravel()), minlength=layout.n_buckets)

    # 9. wait loop
    o = s_l.copy()
    for j in range(k):
        o = np.maximum(o, comp[:, j]) + tr[:, j]
    t_end = o
    res.counts["remote_wait"] += np.bincount(layout.index((comp - d).ravel()), minlength=layout.n_buckets)
    res.counts["call"] += np.bincount(layout.index(t_end), minlength=layout.n_buckets)
    res.counts["wait_tail"] += np.bincount(layout.index(t_end - s_l), minlength=layout.n_buckets)

    # §3 policies
    uc = rng.random(b)
    pre, spin_share = w.caller.preemptible, w.caller.spinlock
    ctx = np.where(uc < pre, PREEMPTIBLE, np.where(uc < pre + spin_share, SPINLOCK, DISABLED))
    alloc_failed = rng.random(b) < p.policy.alloc_fail_prob
    kp = p.kernel.preemption in ("full", "lazy", "rt")
    pinned = p.kernel.csdlock_debug or w.call == "tlb_flush_kernel"
    free = kp and not pinned
    allow = free & ((ctx == PREEMPTIBLE) | ((ctx == SPINLOCK) & (p.kernel.preemption == "rt")))
    sleepable = free & (ctx == PREEMPTIBLE)
    g = np.array([groups[r] for r in rates.tolist()])[s]
    for i, pol in enumerate(p.policies):
        if not kp or pol == "preempt_off":
            p_off = hp = t_end
        elif pol == "preemptible_wait":
            p_off = hp = np.where(allow, s_l, t_end)
        elif pol == "atomic_alloc":
            p_off = hp = np.where(allow & ~alloc_failed, s_l, t_end) + p.policy.alloc_ns
        else:
            r_ns = p.policy.cpus_read_lock_ns
            p_off = np.where(sleepable, s_l + r_ns, t_end + r_ns)
            hp = t_end + r_ns
        for grp in range(len(groups)):
            sel = g == grp
            res.counts[("P", grp, i)] += np.bincount(layout.index(p_off[sel]), minlength=layout.n_buckets)
            res.counts[("H", grp, i)] += np.bincount(layout.index(hp[sel]), minlength=layout.n_buckets)
        if keep:
            res.values.setdefault(f"P:{pol}", []).append(p_off)
            res.values.setdefault(f"H:{pol}", []).append(hp)
    if keep:
        res.values.setdefault("T", []).append(t_end)
        res.values.setdefault("S_L", []).append(s_l)
    res.fanouts += b
    res.target_samples += b * k


def simulate(params: Params, fanouts: int, seed: int = 0, block: int = 8192, keep: bool = False) -> ReferenceResult:
    """``fanouts`` fan-outs of ``params`` in blocks of ``block``; ``keep`` also returns T, S_L, P, H."""
    _check_scope(params)
    if any(pol not in POLICIES for pol in params.policies):
        raise ValueError(f"unknown policy in {params.policies}")
    layout = Layout(params.report.precision_bits)
    n_groups = len(dict.fromkeys(np.array(params.workload.rate_hz, dtype=float).tolist()))
    counts: dict = {name: np.zeros(layout.n_buckets, dtype=np.int64) for name in ("call", "wait_tail", "remote_wait", "info")}
    for grp in range(n_groups):
        for i in range(len(params.policies)):
            counts[("P", grp, i)] = np.zeros(layout.n_buckets, dtype=np.int64)
            counts[("H", grp, i)] = np.zeros(layout.n_buckets, dtype=np.int64)
    res = ReferenceResult(layout, counts)
    rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed)))
    start = time.perf_counter()
    done = 0
    while done < fanouts:
        b = min(block, fanouts - done)
        _block(params, rng, b, res, keep)
        done += b
    res.seconds = time.perf_counter() - start
    return res


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    from mcsmp.config import expand, load_raw

    pts = expand(load_raw(sys.argv[1] if len(sys.argv) > 1 else "params/16core.yaml"), ["policy.reentry=off"])
    out = simulate(pts[0].params, 200_000)
    print(f"{out.target_samples / out.seconds / 1e6:.2f} M target-samples/s ({out.seconds / out.target_samples * 1e9:.1f} ns/target)")
