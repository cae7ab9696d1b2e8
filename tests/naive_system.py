"""A slow pure-Python, event-by-event twin of the system simulation, written from docs/system.md.

Restricted to what the comparison in tests/test_system.py exercises: one workload task per CPU
(open loop or closed loop), synchronous ``smp_call_function_many`` calls (``tlb_flush`` with TLB
generations, or ``generic``), physical-mode IPIs, the per-CPU request placement, remote irq-off
sections as an alternating renewal process, coalescing in ``call_single_queue`` and handlers that
drain the whole queue, and CPU hotplug (a torture_onoff()-like toggle of a random CPU, offlining
deferred to a moment when no CPU is inside a call, the dying CPU's queue flushed). No second task,
no async calls, no cluster mode, no csd-lock debug.

Structure on purpose unlike the compiled kernel: each CPU is an object, a call is a Python
generator that yields the length of its next step (or a csd to wait for), and an interrupt
postpones the CPU's pending step by the handler's length.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from naive import draw_many, residual_many

from mcsmp.config import Params


def _draw(dist: Any, rng: np.random.Generator) -> float:
    return float(draw_many(dist, rng, 1)[0])


@dataclass
class Csd:
    src: int
    dst: int
    locked: bool = False
    call: Any = None  # the Call it carries
    dep: float = -1.0  # departure of its IPI (-1: coalesced)
    waiter: Any = None  # the CPU polling it in its wait loop


@dataclass
class Call:
    start: float
    gen: int = 0
    pages: float = 0.0
    full: bool = False
    last_read: float = -math.inf


@dataclass
class Cpu:
    id: int
    queue: list[Csd] = field(default_factory=list)
    in_irq: bool = False
    latched: bool = False  # an IPI waits for its handler
    pending: bool = False  # an IPI came in during the handler
    step_at: float = -1.0  # when the running step ends (-1: none)
    step_token: int = 0
    frozen: float = -1.0
    proc: Any = None  # the running call's generator
    local_gen: int = 0
    sec_start: float = math.inf
    sec_end: float = math.inf
    backlog: int = 0
    online: bool = True
    in_call: bool = False


class NaiveSystem:
    def __init__(self, params: Params, seed: int) -> None:
        self.p = params
        self.rng = np.random.default_rng(seed)
        m = params.machine
        self.n = m.cpus
        self.cpus = [Cpu(c) for c in range(self.n)]
        self.csd = {(s, t): Csd(s, t) for s in range(self.n) for t in range(self.n) if s != t}
        self.events: list[tuple[float, int, Any]] = []
        self.seq = itertools.count()
        self.mm_gen = 0
        self.now = 0.0
        self.calls: list[tuple[int, float, float]] = []  # (cpu, start, T)
        self.waits: list[float] = []
        self.depths: list[int] = []
        self.queued = 0
        self.coalesced = 0
        sys_ = params.system
        assert sys_ is not None
        self.closed = sys_.workload == "closed"
        self.threads = sys_.threads
        self.warmup = sys_.warmup_s * 1e9
        self.duration = sys_.duration_s * 1e9
        f = params.remote.irq_off.fraction
        self.f = f
        self.gap = params.remote.irq_off.length.mean * (1 - f) / f if f > 0 else math.inf
        self.hotplug_interval = sys_.hotplug_interval_s * 1e9
        self.dying: Cpu | None = None
        self.offline_ns = 0.0  # integral of the number of offline CPUs after the warm-up
        self.offlined = 0
        self.offline_since = 0.0

    # ---- helpers ---------------------------------------------------------------------------------
    def at(self, t: float, fn: Any) -> None:
        heapq.heappush(self.events, (t, next(self.seq), fn))

    def cls(self, a: int, b: int) -> int:
        m = self.p.machine
        per_socket = m.cpus // m.sockets
        if m.smt_numbering == "split":  # CPU t is thread t // cores of core t % cores
            cores = m.cpus // m.smt
            a, b = (a % cores) * m.smt + a // cores, (b % cores) * m.smt + b // cores
        if a // per_socket != b // per_socket:
            return 3
        if a // m.cpus_per_llc != b // m.cpus_per_llc:
            return 2
        if a // m.smt != b // m.smt:
            return 1
        return 0

    def xfer(self, a: int, b: int) -> float:
        return self.p.cache.transfer_ns[self.cls(a, b)]

    # ---- the task side: a call is a generator of steps ------------------------------------------------
    def run_step(self, cpu: Cpu, length: float) -> None:
        if cpu.in_irq:
            cpu.frozen = length
            return
        cpu.step_at = self.now + length
        cpu.step_token += 1
        token = cpu.step_token
        self.at(cpu.step_at, lambda: self.step_done(cpu, token))

    def step_done(self, cpu: Cpu, token: int) -> None:
        if token != cpu.step_token or cpu.step_at < 0:
            return
        cpu.step_at = -1.0
        self.advance(cpu)

    def advance(self, cpu: Cpu) -> None:
        try:
            what = next(cpu.proc)
        except StopIteration:
            cpu.proc = None
            self.next_call(cpu)
            return
        if isinstance(what, Csd):  # block until it is released
            what.waiter = cpu
        else:
            self.run_step(cpu, what)

    def next_call(self, cpu: Cpu) -> None:
        if self.closed:
            cpu.proc = self.closed_loop(cpu)
            self.advance(cpu)
        elif cpu.backlog > 0:
            cpu.backlog -= 1
            cpu.proc = self.call(cpu)
            self.advance(cpu)

    def closed_loop(self, cpu: Cpu) -> Any:
        yield _draw(self.p.system.work_ns, self.rng)
        yield from self.call(cpu)

    def call(self, cpu: Cpu) -> Any:
        p, rng, s = self.p, self.rng, cpu.id
        start = self.now
        cpu.in_call = True
        after_sender = p.kernel.target_order == "after_sender"  # else for_each_cpu from CPU 0 (9.14)
        others = [t for t in range(self.n) if t != s and (not self.closed or t < self.threads) and self.cpus[t].online]
        if after_sender:
            others = sorted(others, key=lambda t: (t - s) % self.n)
        tlb = p.workload.call != "generic"
        targets = [t for t in others if p.workload.target_prob >= 1.0 or rng.random() < p.workload.target_prob]
        entry = _draw(p.costs.entry_ns, rng)
        req = Call(start)
        if tlb:
            req.pages = _draw(p.tlb.pages, rng)
            req.full = req.pages > p.tlb.ceiling_pages
            self.mm_gen += 1
            req.gen = self.mm_gen
            if targets:
                entry += max(self.xfer(s, t) for t in targets)
        yield entry
        need = []
        for t in targets:  # csd_lock (always free: one task per CPU, sync calls), fill, llist_add
            yield _draw(p.costs.queue_ns, rng) + self.xfer(s, t)
            c = self.csd[(s, t)]
            c.locked, c.call, c.dep = True, req, -1.0
            q = self.cpus[t].queue
            need.append(not q)
            self.queued += self.now >= self.warmup
            self.coalesced += bool(q) and self.now >= self.warmup
            q.append(c)
        common = _draw(p.ipi.delivery_common_ns, rng) if targets else 0.0  # shared by the fan-out (9.28)
        # native_send_call_func_ipi(): every other CPU needs the IPI -> one all-but-self write (9.27)
        n_online = sum(c.online for c in self.cpus)
        all_but_self = p.ipi.shorthand and self.n > 2 and sum(need) == n_online - 1 and sum(need) > 1
        for i, (t, needed) in enumerate(zip(targets, need, strict=True)):
            if needed:
                if not all_but_self or i == 0:
                    yield _draw(p.ipi.send_ns, rng)
                d = _draw(p.ipi.delivery_ns, rng) + common
                if self.cls(s, t) == 3:
                    d += _draw(p.ipi.cross_socket_ns, rng)
                self.csd[(s, t)].dep = self.now
                tgt = self.cpus[t]
                self.at(self.now + d, lambda tgt=tgt: self.ipi(tgt))
        local = 0.0
        if p.workload.run_local:
            if not tlb:
                local = _draw(p.costs.func_ns, rng)
            elif req.full:
                local = _draw(p.tlb.full_flush_ns, rng)
            else:
                local = req.pages * _draw(p.tlb.invlpg_ns, rng)
            if tlb:
                local += _draw(p.tlb.handler_fixed_ns, rng)
            if p.workload.call == "tlb_flush":
                cpu.local_gen = self.mm_gen
        yield local
        for t in targets:  # the wait loop
            c = self.csd[(s, t)]
            if c.locked:
                yield c
            yield self.xfer(s, t)
        cpu.in_call = False
        if self.now >= self.warmup:  # recorded when it returns after the warm-up
            self.calls.append((s, start, self.now - start))

    # ---- the interrupt side -----------------------------------------------------------------------
    def ipi(self, cpu: Cpu) -> None:
        if not cpu.online:
            return
        if cpu.in_irq:
            cpu.pending = True
            return
        if cpu.latched:
            return
        while cpu.sec_end <= self.now:
            cpu.sec_start = cpu.sec_end + self.gap * float(self.rng.exponential())
            cpu.sec_end = cpu.sec_start + _draw(self.p.remote.irq_off.length, self.rng)
        begin = cpu.sec_end if cpu.sec_start <= self.now else self.now
        cpu.latched = True
        self.at(begin, lambda: self.handler(cpu))

    def handler(self, cpu: Cpu) -> None:
        cpu.latched = False
        cpu.in_irq = True
        if cpu.step_at >= 0:
            cpu.frozen = cpu.step_at - self.now
            cpu.step_at = -1.0
            cpu.step_token += 1
        self.at(self.now + _draw(self.p.costs.irq_entry_ns, self.rng), lambda: self.drain(cpu))

    def drain(self, cpu: Cpu) -> None:
        items, cpu.queue = cpu.queue, []
        if self.now >= self.warmup:
            self.depths.append(len(items))
        self.entry(cpu, items, 0)

    def entry(self, cpu: Cpu, items: list[Csd], i: int) -> None:
        if i == len(items):
            cpu.in_irq = False
            if cpu.pending:
                cpu.pending = False
                cpu.latched = True
                self.at(self.now, lambda: self.handler(cpu))
            if cpu.frozen >= 0:
                length, cpu.frozen = cpu.frozen, -1.0
                self.run_step(cpu, length)
            return
        p, rng, c = self.p, self.rng, items[i]
        req = c.call
        read = self.xfer(cpu.id, c.src)
        work, info = 0.0, 0.0
        if p.workload.call == "generic":
            work = _draw(p.costs.func_ns, rng)
        else:
            done = max(self.now + read, req.last_read + p.cache.line_serialize_ns)  # percpu: own = transfer
            req.last_read = done
            info = done - self.now
            if p.workload.call == "tlb_flush_kernel":
                work = _draw(p.tlb.full_flush_ns, rng) if req.full else req.pages * _draw(p.tlb.invlpg_ns, rng)
            elif req.gen > cpu.local_gen and cpu.local_gen != self.mm_gen:
                if not req.full and req.gen == cpu.local_gen + 1 and req.gen == self.mm_gen:
                    work = req.pages * _draw(p.tlb.invlpg_ns, rng)
                else:
                    work = _draw(p.tlb.full_flush_ns, rng)
                cpu.local_gen = self.mm_gen
            work += _draw(p.tlb.handler_fixed_ns, rng)  # flush_tlb_func's own part (9.29)
        end = self.now + work + read + info
        start_entry = self.now

        def finish() -> None:
            c.locked = False
            if c.dep >= 0 and start_entry >= self.warmup:  # recorded when its handler entry starts
                self.waits.append(self.now - c.dep)
            w, c.waiter = c.waiter, None
            if w is not None:
                self.at(self.now, lambda: self.advance(w))  # the waiter's next step: the line transfer
            self.entry(cpu, items, i + 1)

        self.at(end, finish)

    # ---- the run ------------------------------------------------------------------------------------
    def arrival(self, cpu: Cpu) -> None:
        lam = self.p.workload.rate_hz[cpu.id]
        self.at(self.now + float(self.rng.exponential()) * 1e9 / lam, lambda: self.arrival(cpu))
        if not cpu.online:
            return
        if cpu.proc is None:
            cpu.proc = self.call(cpu)
            self.advance(cpu)
        else:
            cpu.backlog += 1

    # ---- CPU hotplug ----------------------------------------------------------------------------------
    def count_offline(self) -> None:
        down = sum(not c.online for c in self.cpus)
        self.offline_ns += down * max(0.0, self.now - max(self.offline_since, self.warmup))
        self.offline_since = self.now

    def hotplug(self) -> None:
        cpu = self.cpus[int(self.rng.integers(self.n))]
        if cpu.id == 0:  # not hotpluggable
            self.at(self.now + self.hotplug_interval, self.hotplug)
        elif cpu.online:
            self.dying = cpu  # goes down once stop_machine() can run (try_offline)
        else:
            self.count_offline()
            cpu.online = True
            if self.closed and cpu.id < self.threads:
                self.next_call(cpu)
            self.at(self.now + self.hotplug_interval, self.hotplug)

    def try_offline(self) -> None:
        cpu = self.dying
        assert cpu is not None
        if cpu.in_call or cpu.in_irq or cpu.latched or cpu.pending or any(c.in_call for c in self.cpus):
            return
        self.dying = None
        self.count_offline()
        self.offlined += self.now >= self.warmup
        cpu.online = False
        if cpu.proc is not None:  # the benchmark thread in its user work: it stops
            cpu.proc = None
            cpu.step_at = -1.0
            cpu.step_token += 1
        if cpu.queue:  # flushed at dying
            cpu.latched = True
            self.at(self.now, lambda: self.handler(cpu))
        self.at(self.now + self.hotplug_interval, self.hotplug)

    def run(self) -> NaiveSystem:
        for cpu in self.cpus:
            if self.f > 0:
                if self.rng.random() < self.f:
                    cpu.sec_start, cpu.sec_end = 0.0, float(residual_many(self.p.remote.irq_off.length, self.rng, 1)[0])
                else:
                    cpu.sec_start = self.gap * float(self.rng.exponential())
                    cpu.sec_end = cpu.sec_start + _draw(self.p.remote.irq_off.length, self.rng)
            if self.closed:
                if cpu.id < self.threads:
                    self.at(0.0, lambda cpu=cpu: self.next_call(cpu))
            elif self.p.workload.rate_hz[cpu.id] > 0:
                lam = self.p.workload.rate_hz[cpu.id]
                self.at(float(self.rng.exponential()) * 1e9 / lam, lambda cpu=cpu: self.arrival(cpu))
        if self.hotplug_interval > 0:
            self.at(self.hotplug_interval, self.hotplug)
        while self.events:
            t, _, fn = heapq.heappop(self.events)
            if t > self.duration:
                break
            self.now = t
            fn()
            if self.dying is not None:
                self.try_offline()
        self.now = self.duration
        self.count_offline()
        return self
