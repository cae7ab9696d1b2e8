"""A slow, obviously correct pure-Python twin of the fan-out kernel, written from MODEL.md §1–§3.

Independence is the point: this module reads only the spec and :class:`mcsmp.config.Params`
(``Dist.components`` as the source of distribution parameters). It does not import the kernel,
the encoder or the compiled samplers; it draws from its own NumPy ``Generator`` in its own order,
samples every family with NumPy's own methods and derives the equilibrium residual (a
length-biased length times an independent uniform) per family below. One fan-out is simulated at
a time, in the words of the spec; only the random numbers are drawn in vectorised blocks (for
speed, without changing their law).

Interpretive choices, shared with the kernel (see the module report for where MODEL.md reads
otherwise):

- every time cost named as a distribution (entry, queue, irq_entry, func, send, delivery,
  cross_socket, page_walk, invlpg, full_flush) is drawn afresh at each use;
- CPUs are numbered socket by socket, LLC by LLC, core by core (SMT siblings adjacent); CPU ``t``'s
  x2APIC id is its package times the per-package count rounded up to a power of two plus its
  place in the package, its cluster that id ``// ipi.cluster_size``; cluster mode sends one write
  per cluster, at the first target of that cluster in target order;
- targets go in ascending CPU id from CPU 0 (``kernel.target_order: cpu0``) or from the CPU after
  the sender, wrapping (``after_sender``);
- with ``ipi.shorthand`` a fan-out whose targets are all ``n − 1`` other CPUs (``n − 1 ≥ 2``) sends
  one write, and every target departs with it;
- one ``ipi.delivery_common_ns`` draw per fan-out (with a target) is added to every target's
  delivery; TLB work (remote and local) is one ``tlb.handler_fixed_ns`` draw plus the pages or the
  full flush;
- ``ipi.pv_tlb_flush`` with ``tlb_flush``: each remaining candidate is, with probability
  ``remote.vcpu_preempted.fraction``, a preempted vCPU that ``kvm_flush_tlb_multi()`` drops from
  the mask; a kept target is not preempted, so its state is irqs-off or idle with the fractions
  divided by ``1 − vcpu fraction``; the wait is pinned preempt-off like the debug wait;
- ``tlb.mechanism: invlpgb``: a ``tlb_flush_kernel`` call, or a ``tlb_flush`` of an mm on 4 or more
  CPUs (``mm_cpus + 1``, or all), has no targets: after ``E`` the sender issues one ``invlpgb_ns``
  per ``invlpgb_count_max`` pages (rounded up, at least one; one for a full flush) and waits one
  ``tlbsync_ns``; that is ``L`` (no local ``flush_tlb_func``), ``T = S_L``, and ``P = H = T``;
- ``tlb_flush`` with ``workload.freed_tables_prob``: per fan-out, tables were freed with that
  probability; then no ``should_flush_tlb()`` runs and a candidate skipped as lazy is a target
  that pays one ``remote.idle.exit_ns`` instead of the state mixture; otherwise each candidate
  left after the PV drop costs the sender one ``costs.cond_ns`` before the queue phase;
- ``kernel.kernel_range_preemptible``: ``tlb_flush_kernel`` waits are not pinned;
- ``single`` (``smp_call_function_single()``, docs/model.md 9.37): one target, uniform among the
  other CPUs (``mm_cpus``, ``target_prob`` and ``run_local`` do not apply: ``L = 0``), ``func_ns``
  work, no request; its remote state is drawn at the send from the full mixture, and an idle one
  polls with probability ``remote.idle.polling_prob``: then the send is one line transfer of its
  class instead of ``send_ns``, and the handler starts one more transfer after it (no delivery,
  no exit, no interrupt entry); no re-entry spin; every policy but ``preempt_off`` gives
  ``P = H = S_L`` when the context allows preemption, else ``T`` (no ``alloc_ns``, no allocation
  failure, no ``cpus_read_lock_ns``);
- ``generic`` calls have no ``flush_tlb_info``: no request read (no info cost) and no sender
  invalidation; the lazy-TLB skip (``target_prob``) applies to ``tlb_flush`` and ``generic``;
- the sender's invalidation costs the transfer of the farthest class among the targets, added to
  ``E`` when ``k > 0``;
- ``stack``: one 8-byte-aligned offset per fan-out; each line the request spans false-shares
  independently with ``false_sharing_prob``, and any false sharing costs one extra transfer; the
  data-TLB miss applies to both stack placements;
- the request read of target ``j`` starts at ``h_j``; reads complete in order of ``h_j`` with
  ``done_j = max(h_j + own_j, done_prev + line_serialize_ns)``, ``info_j = done_j − h_j`` and
  ``c_j = h_j + work_j + transfer(class_j) + info_j``;
- ``H`` of ``preemptible_wait`` equals its ``P`` (``T`` when the context does not allow
  preemption); the table in §3 literally says ``S_L``;
- ``ipi.sender_preempt_hz`` (docs/model.md 9.39): ``Poisson(hz · 1e-9 · (T₀ − S_L))`` host
  preemptions of the sender's vCPU during its wait ``T₀ − S_L``, each one full
  ``remote.vcpu_preempted.length`` draw, are added to ``T`` (so to every ``P``/``H`` that is ``T``-based);
- the re-entry spin is one draw per fan-out, with probability ``λ_sender · E[T − S_L] · 1e-9``,
  of the equilibrium residual of the first pass's ``T − S_L`` (``T₀ − S_L``, without the host slices above; given here as a histogram, read as
  piecewise uniform inside its buckets), added to ``P`` (and ``H``) of the non-mainline policies
  when the context allows preemption (``cpus_read_lock``: only ``preemptible`` callers).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mcsmp.config import Params, build_params, load_raw
from mcsmp.dists import Dist

__all__ = [
    "BLOCK",
    "HistogramResidual",
    "NaiveResult",
    "Sampler",
    "draw_many",
    "length_biased_many",
    "params_from",
    "residual_many",
    "simulate",
]

BLOCK = 4096  # random numbers are drawn this many at a time and handed out one by one
CLASSES = ("smt", "llc", "socket", "remote")
SMT, LLC, SOCKET, REMOTE = range(4)
# Family codes of mcsmp.distributions.Component (documented there): the only thing taken over.
CONST, UNIFORM, EXPONENTIAL, LOGNORMAL, GAMMA, WEIBULL, PARETO = range(7)


def params_from(data: dict[str, Any]) -> Params:
    """Validated :class:`Params` from a nested dict, through the public file loader."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return build_params(load_raw(path))


# ---- distributions ------------------------------------------------------------------------------


def _family_draws(fam: int, a: float, b: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of one component (``a``, ``b`` as documented on ``Component``)."""
    if fam == CONST:
        return np.full(size, a)
    if fam == UNIFORM:
        return rng.uniform(a, b, size)
    if fam == EXPONENTIAL:
        return rng.exponential(a, size)
    if fam == LOGNORMAL:
        return rng.lognormal(a, b, size)
    if fam == GAMMA:
        return rng.gamma(a, b, size)
    if fam == WEIBULL:
        return a * rng.weibull(b, size)
    if fam == PARETO:  # numpy's pareto is Lomax (Pareto II): 1 + Lomax(α) is Pareto I with minimum 1
        return a * (1.0 + rng.pareto(b, size))
    raise ValueError(f"unknown family {fam}")


def _length_biased(fam: int, a: float, b: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws with density ``x f(x) / m`` (the length-biased law) of one component.

    Derivations (``f`` the family density):
    const: the constant itself; uniform(a, b): density ``2x / (b² − a²)``, inverse CDF
    ``sqrt(a² + u (b² − a²))``; exponential(θ): ``x e^{−x/θ}`` is gamma(2, θ);
    lognormal(μ, σ): ``x f(x) ∝ exp(−(ln x − μ − σ²)² / 2σ²) / x`` is lognormal(μ + σ², σ);
    gamma(k, θ): gamma(k + 1, θ); weibull(λ, k): with ``y = (x/λ)^k``, ``x f(x) dx ∝ y^{1/k} e^{−y} dy``,
    so ``λ G^{1/k}`` with ``G`` gamma(1 + 1/k); pareto(s, α): ``x · α s^α x^{−α−1} ∝ x^{−α}``
    is pareto(s, α − 1).
    """
    if fam == CONST:
        return np.full(size, a)
    if fam == UNIFORM:
        return np.sqrt(a * a + rng.random(size) * (b * b - a * a))
    if fam == EXPONENTIAL:
        return rng.gamma(2.0, a, size)
    if fam == LOGNORMAL:
        return rng.lognormal(a + b * b, b, size)
    if fam == GAMMA:
        return rng.gamma(a + 1.0, b, size)
    if fam == WEIBULL:
        return a * rng.gamma(1.0 + 1.0 / b, 1.0, size) ** (1.0 / b)
    if fam == PARETO:
        return a * (1.0 + rng.pareto(b - 1.0, size))
    raise ValueError(f"unknown family {fam}")


def _component_mean(fam: int, a: float, b: float) -> float:
    if fam == CONST:
        return a
    if fam == UNIFORM:
        return 0.5 * (a + b)
    if fam == EXPONENTIAL:
        return a
    if fam == LOGNORMAL:
        return math.exp(a + 0.5 * b * b)
    if fam == GAMMA:
        return a * b
    if fam == WEIBULL:
        return a * math.gamma(1.0 + 1.0 / b)
    return a * b / (b - 1.0)


def _mixture(dist: Dist, rng: np.random.Generator, size: int, weights: np.ndarray, biased: bool) -> np.ndarray:
    comps = dist.components
    which = rng.choice(len(comps), size=size, p=weights / weights.sum()) if len(comps) > 1 else np.zeros(size, int)
    out = np.empty(size)
    for i, c in enumerate(comps):
        sel = which == i
        m = int(sel.sum())
        if m:
            f = _length_biased if biased else _family_draws
            out[sel] = f(c.family, c.a, c.b, rng, m)
    return out


def draw_many(dist: Dist, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` independent draws of ``dist`` (a finite mixture of its components)."""
    return _mixture(dist, rng, size, np.array([c.weight for c in dist.components]), biased=False)


def length_biased_many(dist: Dist, rng: np.random.Generator, size: int) -> np.ndarray:
    """Length-biased draws of a mixture: component ``i`` with probability ``w_i m_i / m``."""
    w = np.array([c.weight * _component_mean(c.family, c.a, c.b) for c in dist.components])
    return _mixture(dist, rng, size, w, biased=True)


def residual_many(dist: Dist, rng: np.random.Generator, size: int) -> np.ndarray:
    """Equilibrium residual (MODEL §1 step 7): a length-biased length times an independent uniform."""
    return length_biased_many(dist, rng, size) * rng.random(size)


class Sampler:
    """One distribution's draws (or residual draws), handed out one at a time."""

    def __init__(self, make: Any, rng: np.random.Generator) -> None:
        self._make = make  # (rng, size) -> ndarray
        self._rng = rng
        self._buf: list[float] = []

    def __call__(self) -> float:
        if not self._buf:
            self._buf = self._make(self._rng, BLOCK).tolist()
            self._buf.reverse()
        return self._buf.pop()

    @classmethod
    def of(cls, dist: Dist, rng: np.random.Generator) -> Sampler:
        return cls(lambda r, n: draw_many(dist, r, n), rng)

    @classmethod
    def residual_of(cls, dist: Dist, rng: np.random.Generator) -> Sampler:
        return cls(lambda r, n: residual_many(dist, r, n), rng)


class HistogramResidual:
    """Equilibrium residual of a histogram read as piecewise uniform inside its buckets.

    ``F`` is piecewise linear, so ``G(x) = ∫₀ˣ (1 − F)`` is piecewise quadratic and the residual CDF
    ``F_e = G / G(∞)`` is inverted exactly, bucket by bucket (a quadratic per draw). ``mean`` is the
    exact ``E[T − S_L]`` that sets the re-entry probability (MODEL §3).
    """

    def __init__(self, counts: np.ndarray, edges: np.ndarray, mean: float) -> None:
        counts = np.asarray(counts, dtype=float)
        if counts[-1] != 0:
            raise ValueError("overflowed histogram: no finite piecewise-uniform reading")
        self.mean = float(mean)
        self.lo = edges[:-2]
        self.width = edges[1:-1] - edges[:-2]
        cdf = np.concatenate(([0.0], np.cumsum(counts[:-1]) / counts.sum()))
        self.f0, self.f1 = cdf[:-1], cdf[1:]
        self.g = np.concatenate(([0.0], np.cumsum(self.width * (1.0 - 0.5 * (self.f0 + self.f1)))))

    def many(self, rng: np.random.Generator, size: int) -> np.ndarray:
        v = rng.random(size) * self.g[-1]
        i = np.clip(np.searchsorted(self.g, v, side="right") - 1, 0, len(self.width) - 1)
        c = v - self.g[i]
        b = 1.0 - self.f0[i]
        a = (self.f1[i] - self.f0[i]) / (2.0 * self.width[i])
        # a y² − b y + c = 0, smaller root, in the cancellation-free form 2c / (b + √(b² − 4ac))
        y = 2.0 * c / (b + np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)))
        return self.lo[i] + np.minimum(y, self.width[i])


# ---- the fan-out --------------------------------------------------------------------------------


@dataclass
class NaiveResult:
    """Per fan-out values (``P``/``H`` columns in ``params.policies`` order) and pooled per-target ones."""

    sender: np.ndarray
    k: np.ndarray
    S: np.ndarray
    S_L: np.ndarray
    T: np.ndarray
    context: np.ndarray  # 0 preemptible, 1 spinlock, 2 preempt_disabled
    spin: np.ndarray
    P: np.ndarray
    H: np.ndarray
    remote_wait: np.ndarray  # c_j − d_j, pooled over targets
    info_cost: np.ndarray  # pooled over targets (TLB calls only)


def simulate(params: Params, n: int, seed: int, wait_tail: HistogramResidual | None = None) -> NaiveResult:
    """Simulate ``n`` fan-outs of ``params`` (MODEL.md §1–§3), one at a time."""
    rng = np.random.default_rng(seed)
    m, w, c, tlb, pol = params.machine, params.workload, params.cache, params.tlb, params.policy
    ncpu = m.cpus
    per_socket = ncpu // m.sockets
    U = Sampler(lambda r, size: r.random(size), rng)
    entry, queue = Sampler.of(params.costs.entry_ns, rng), Sampler.of(params.costs.queue_ns, rng)
    irq_entry, func = Sampler.of(params.costs.irq_entry_ns, rng), Sampler.of(params.costs.func_ns, rng)
    send, delivery = Sampler.of(params.ipi.send_ns, rng), Sampler.of(params.ipi.delivery_ns, rng)
    cross = Sampler.of(params.ipi.cross_socket_ns, rng)
    host_slice = Sampler.of(params.remote.vcpu_preempted.length, rng)
    delivery_common, handler_fixed = Sampler.of(params.ipi.delivery_common_ns, rng), Sampler.of(tlb.handler_fixed_ns, rng)
    apic_span = 1
    while apic_span < per_socket:
        apic_span *= 2
    cores = ncpu // m.smt

    def place(t: int) -> int:
        """CPU t's index in core order: with split numbering CPU t is thread t // cores of core t % cores."""
        return (t % cores) * m.smt + t // cores if m.smt_numbering == "split" else t

    irq_res = Sampler.residual_of(params.remote.irq_off.length, rng)
    idle_exit = Sampler.of(params.remote.idle.length, rng)
    vcpu_res = Sampler.residual_of(params.remote.vcpu_preempted.length, rng)
    pages_d, invlpg = Sampler.of(tlb.pages, rng), Sampler.of(tlb.invlpg_ns, rng)
    full_flush, page_walk = Sampler.of(tlb.full_flush_ns, rng), Sampler.of(c.page_walk_ns, rng)
    spin_d = Sampler(wait_tail.many, rng) if wait_tail is not None else None
    transfer = dict(zip(range(4), c.transfer_ns, strict=True))
    rates = np.array(w.rate_hz, dtype=float)
    sender_p = rates / rates.sum()
    senders = rng.choice(ncpu, size=n, p=sender_p)  # MODEL §1.1: weighted by the per-CPU call rate
    is_tlb = w.call in ("tlb_flush", "tlb_flush_kernel")
    single = w.call == "single"
    kernel_preemptible = params.kernel.preemption in ("full", "lazy", "rt")
    pv = params.ipi.pv_tlb_flush and w.call == "tlb_flush"
    mm_size = ncpu if w.mm_cpus is None else w.mm_cpus + 1
    broadcast = tlb.mechanism == "invlpgb" and (w.call == "tlb_flush_kernel" or (w.call == "tlb_flush" and mm_size >= 4))
    invlpgb, tlbsync = Sampler.of(tlb.invlpgb_ns, rng), Sampler.of(tlb.tlbsync_ns, rng)
    cond_d = Sampler.of(params.costs.cond_ns, rng)
    kernel_range_pinned = w.call == "tlb_flush_kernel" and not params.kernel.kernel_range_preemptible
    pinned = params.kernel.csdlock_debug or kernel_range_pinned or pv or broadcast
    f_irq, f_idle, f_vcpu = (params.remote.irq_off.fraction, params.remote.idle.fraction,
                             params.remote.vcpu_preempted.fraction)  # fmt: skip
    if pv:  # a kept target is known not to be preempted
        kept = 1.0 - f_vcpu
        f_irq, f_idle = (f_irq / kept, f_idle / kept) if kept > 0 else (0.0, 0.0)
        drop_p, f_vcpu = params.remote.vcpu_preempted.fraction, 0.0
    npol = len(params.policies)

    def distance(s: int, t: int) -> int:
        s, t = place(s), place(t)
        if s // per_socket != t // per_socket:
            return REMOTE
        if s // m.cpus_per_llc != t // m.cpus_per_llc:
            return SOCKET
        if s // m.smt != t // m.smt:
            return LLC
        return SMT

    out_k = np.zeros(n, dtype=np.int64)
    out_S, out_SL, out_T = np.zeros(n), np.zeros(n), np.zeros(n)
    out_ctx, out_spin = np.zeros(n, dtype=np.int64), np.zeros(n)
    out_P, out_H = np.zeros((n, npol)), np.zeros((n, npol))
    remote_wait: list[float] = []
    info_cost: list[float] = []

    for i in range(n):
        s = int(senders[i])
        # 1. targets: the mm's other CPUs (all, or mm_cpus of them uniformly), each with target_prob
        others = [t for t in range(ncpu) if t != s]
        lazy: set[int] = set()
        cond = 0.0
        if single:  # smp_call_function_single(): one target, any other CPU alike
            candidates = [others[min(int(U() * len(others)), len(others) - 1)]]
        elif w.call == "tlb_flush_kernel":
            candidates = others  # every other online CPU, no lazy skip
        else:
            if w.mm_cpus is not None:
                keys = {t: U() for t in others}  # a uniform random subset: the mm_cpus smallest keys
                candidates = sorted(others, key=keys.__getitem__)[: w.mm_cpus]
            else:
                candidates = others
            if pv:  # kvm_flush_tlb_multi() drops preempted vCPUs first
                candidates = [t for t in candidates if not U() < drop_p]
            freed = w.call == "tlb_flush" and U() < w.freed_tables_prob
            if w.call == "tlb_flush" and not freed and not broadcast:  # should_flush_tlb() per CPU in the mask
                cond = sum(cond_d() for _ in candidates)
            kept = []
            for t in candidates:
                if U() < w.target_prob:
                    kept.append(t)
                elif freed:  # tables freed: the lazy (idle) CPU is IPI'd and pays a C-state exit
                    kept.append(t)
                    lazy.add(t)
            candidates = kept
        if broadcast:
            candidates = []
        if params.kernel.target_order == "after_sender":
            targets = sorted(candidates, key=lambda t: (t - s - 1) % ncpu)  # ascending after s, wrapping
        else:
            targets = sorted(candidates)  # for_each_cpu: from CPU 0 up
        k = len(targets)
        cls = [distance(s, t) for t in targets]

        # 3. entry (+ the sender's invalidation of the previous readers' request copies)
        pages = pages_d() if is_tlb else 0.0
        full = pages > tlb.ceiling_pages

        def work() -> float:
            if not is_tlb:
                return func()
            return handler_fixed() + (full_flush() if full else pages * invlpg())

        E = entry()
        if is_tlb and k > 0:
            E += transfer[max(cls)]
        # 4. queue phase
        Q = sum(queue() + transfer[cl] for cl in cls)
        # 5. IPI writes
        now = E + cond + Q
        depart = []
        state_u, polling = 0.0, False
        if single:  # the target's state at the send; an idle one may be polling (no IPI then)
            state_u = U()
            polling = f_irq <= state_u < f_irq + f_idle and U() < params.remote.idle.polling_prob
        if polling:  # set_nr_if_polling(): one line transfer to the target's idle-task flags
            now += transfer[cls[0]]
            depart = [now]
        elif params.ipi.shorthand and k == ncpu - 1 and k >= 2:
            now += send()  # one all-but-self write
            depart = [now] * k
        elif params.ipi.mode == "cluster":
            written: dict[int, float] = {}
            for t in targets:
                apic_id = (place(t) // per_socket) * apic_span + place(t) % per_socket
                cluster = apic_id // params.ipi.cluster_size
                if cluster not in written:
                    now += send()
                    written[cluster] = now
                depart.append(written[cluster])
        else:
            for _ in targets:
                now += send()
                depart.append(now)
        S = now
        # 6. local call
        if broadcast:  # INVLPGBs, then TLBSYNC
            n_instr = 1 if full else max(1, math.ceil(pages / tlb.invlpgb_count_max))
            L = sum(invlpgb() for _ in range(n_instr)) + tlbsync()
        else:
            L = work() if w.run_local and not single else 0.0
        S_L = S + L
        # 7.-8. remote start and handler
        start, done_work = [], []
        shared = delivery_common() if k > 0 else 0.0
        for j in range(k):
            if polling:  # its idle loop sees the flag (the line comes back) and runs the queue
                h = depart[j] + transfer[cls[j]]
                start.append(h)
                done_work.append(h + work() + transfer[cls[j]])
                continue
            a = depart[j] + shared + delivery()
            if cls[j] == REMOTE:
                a += cross()
            u = state_u if single else U()
            if targets[j] in lazy:
                wait = idle_exit()
            elif u < f_irq:
                wait = irq_res()
            elif u < f_irq + f_idle:
                wait = idle_exit()
            elif u < f_irq + f_idle + f_vcpu:
                wait = vcpu_res()
            else:
                wait = 0.0
            h = a + wait + irq_entry()
            start.append(h)
            done_work.append(h + work() + transfer[cls[j]])
        # §2 the flush request: own read cost, then serialised at the line's home by arrival
        info = [0.0] * k
        if is_tlb and k > 0:
            two_lines = False
            if c.placement == "stack":
                offset = 8 * int(U() * 8)  # 8-byte aligned within the 64-byte line
                two_lines = offset % 64 + tlb.info_bytes > 64
            own = []
            for j in range(k):
                cost = transfer[cls[j]]
                if c.placement == "stack":
                    lines = 2 if two_lines else 1
                    if any(U() < c.false_sharing_prob for _ in range(lines)):
                        cost += transfer[cls[j]]
                if c.placement in ("stack", "stack_aligned") and U() < c.stack_tlb_miss_prob:
                    cost += page_walk()
                own.append(cost)
            prev = -math.inf
            for j in sorted(range(k), key=lambda j: start[j]):
                done = max(start[j] + own[j], prev + c.line_serialize_ns)
                info[j] = done - start[j]
                prev = done
            info_cost.extend(info)
        comp = [done_work[j] + info[j] for j in range(k)]
        remote_wait.extend(comp[j] - depart[j] for j in range(k))
        # 9. wait loop
        o = S_L
        for j in range(k):
            o = max(o, comp[j]) + transfer[cls[j]]
        T = o
        if params.ipi.sender_preempt_hz > 0:  # the host preempts the sender's vCPU during its wait
            T += sum(host_slice() for _ in range(rng.poisson(params.ipi.sender_preempt_hz * 1e-9 * (T - S_L))))

        # §3 policies on this timeline
        u = U()
        cp = w.caller.preemptible
        ctx = 0 if u < cp else (1 if u < cp + w.caller.spinlock else 2)
        allows = kernel_preemptible and not pinned and (ctx == 0 or (ctx == 1 and params.kernel.preemption == "rt"))
        sleepable = kernel_preemptible and not pinned and ctx == 0
        failed = U() < pol.alloc_fail_prob
        spin = 0.0
        if spin_d is not None and not single and U() < rates[s] * wait_tail.mean * 1e-9:  # type: ignore[union-attr]
            spin = spin_d()
        for p, name in enumerate(params.policies):
            if not kernel_preemptible or name == "preempt_off":
                P = H = T
            elif name == "preemptible_wait" or single:
                P = H = S_L + spin if allows else T
            elif name == "atomic_alloc":
                P = H = ((T if failed else S_L) + spin if allows else T) + pol.alloc_ns
            else:  # cpus_read_lock
                if sleepable:
                    P, H = S_L + pol.cpus_read_lock_ns + spin, T + pol.cpus_read_lock_ns + spin
                else:
                    P = H = T + pol.cpus_read_lock_ns
            out_P[i, p], out_H[i, p] = P, H
        out_k[i], out_S[i], out_SL[i], out_T[i] = k, S, S_L, T
        out_ctx[i], out_spin[i] = ctx, spin

    return NaiveResult(
        senders, out_k, out_S, out_SL, out_T, out_ctx, out_spin, out_P, out_H,
        np.array(remote_wait), np.array(info_cost),
    )  # fmt: skip
