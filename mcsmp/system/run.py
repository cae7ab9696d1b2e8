"""Run the whole-machine simulation: replications × policies, merged into one result.

Replication ``r`` of policy ``p`` draws from stream ``SFC64(SeedSequence(seed, spawn_key=(system
key, r, 0)))`` (:func:`mcsmp.sim.engine.stream_states`, row 0): the policies of one point share
their random numbers replication by replication, and a result depends on the parameters and the
seed only. Replications run in a thread pool (the kernel releases the GIL) and are merged in
replication order, so any number of threads gives bit-identical results.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from .._jit import compile_lock
from ..config import Params
from ..kernels import codes as K
from ..kernels.system import run_system
from ..sim.engine import default_threads, stream_states
from ..sim.histogram import Histogram, Layout
from .model import SystemModel, compile_system, system_key

__all__ = ["PolicyRun", "SystemResult", "garwood", "run_replication", "simulate_system"]


def garwood(events: int, exposure: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate: ``events`` seen over ``exposure``."""
    a = 1.0 - level
    lo = 0.0 if events == 0 else float(sps.chi2.ppf(a / 2, 2 * events)) / 2 / exposure
    hi = float(sps.chi2.ppf(1 - a / 2, 2 * events + 2)) / 2 / exposure
    return lo, hi


@dataclass
class Replication:
    counts: np.ndarray
    sums: np.ndarray
    counters: np.ndarray
    ops: np.ndarray
    samples: np.ndarray
    waits: np.ndarray
    seconds: float


def run_replication(
    params: Params, model: SystemModel, policy: str, rep: int, *, keep: int = 0, keep_waits: int = 0
) -> Replication:
    """One replication of one policy (``keep``: per-call samples kept for tests)."""
    layout = model.base.layout
    counts = np.zeros((K.N_SYSTEM_HISTS, layout.n_buckets), dtype=np.int64)
    sums = np.zeros(K.N_SYSTEM_HISTS)
    counters = np.zeros(K.N_SYSTEM_COUNTERS, dtype=np.int64)
    ops = np.zeros(params.machine.cpus, dtype=np.int64)
    samples = np.zeros((keep, K.N_SYSTEM_SAMPLE_COLS))
    waits = np.zeros(keep_waits)
    sip = model.sip.copy()
    sip[K.SI_POLICY] = K.POLICIES.index(policy)
    state = stream_states(params.seed, system_key(params), rep)[0].copy()
    started = time.perf_counter()
    kept = run_system(
        model.base.ip, model.base.fp, sip, model.sfp, model.index, model.table, model.rate_a, model.rate_b,
        state, counts, sums, counters, ops, samples, waits,
    )  # fmt: skip
    n_waits = int(np.count_nonzero(waits)) if keep_waits else 0
    return Replication(counts, sums, counters, ops, samples[:kept], waits[:n_waits], time.perf_counter() - started)


@dataclass
class PolicyRun:
    """Every replication of one policy, merged."""

    policy: str
    layout: Layout
    reps: list[Replication]
    seconds_per_rep: float  # simulated seconds recorded per replication (after warm-up)

    @property
    def exposure_s(self) -> float:
        return self.seconds_per_rep * len(self.reps)

    def counter(self, name: str) -> int:
        i = K.SYSTEM_COUNTERS.index(name)
        return int(sum(int(r.counters[i]) for r in self.reps))

    def histogram(self, metric: str) -> Histogram:
        row = K.SYSTEM_HISTS.index(metric)
        counts = sum((r.counts[row] for r in self.reps), np.zeros(self.layout.n_buckets, dtype=np.int64))
        total = 0.0
        for r in self.reps:  # replication order: bit-identical however it was run
            total += float(r.sums[row])
        batches = (np.array([r.sums[row] for r in self.reps]), np.array([r.counts[row].sum() for r in self.reps]))
        return Histogram(self.layout, counts, total, batches if len(self.reps) > 1 else None)

    def throughput(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per CPU completed workload operations per second: mean and 95% t-interval over replications."""
        per = np.array([r.ops for r in self.reps], dtype=float) / self.seconds_per_rep
        mean = per.mean(axis=0)
        if len(self.reps) < 2:
            return mean, np.zeros_like(mean), np.full_like(mean, np.inf)
        half = sps.t.ppf(0.975, len(self.reps) - 1) * per.std(axis=0, ddof=1) / math.sqrt(len(self.reps))
        return mean, np.maximum(mean - half, 0.0), mean + half

    def total_throughput(self) -> tuple[float, float, float]:
        per = np.array([r.ops.sum() for r in self.reps], dtype=float) / self.seconds_per_rep
        mean = float(per.mean())
        if len(self.reps) < 2:
            return mean, 0.0, math.inf
        half = float(sps.t.ppf(0.975, len(self.reps) - 1) * per.std(ddof=1) / math.sqrt(len(self.reps)))
        return mean, max(mean - half, 0.0), mean + half

    def race_rate(self) -> tuple[int, float, float, float]:
        """``(races, rate/s, low, high)``: the exact Poisson (Garwood) interval of the race rate."""
        n = self.counter("races")
        lo, hi = garwood(n, self.exposure_s)
        return n, n / self.exposure_s, lo, hi

    def time_to_corruption(self) -> tuple[float, float, float]:
        """Mean time to the first corruption (s) = 1 / race rate, with the Garwood interval inverted."""
        n, rate, lo, hi = self.race_rate()
        return (math.inf if n == 0 else 1.0 / rate), 1.0 / hi, (math.inf if lo == 0 else 1.0 / lo)


@dataclass
class SystemResult:
    params: Params
    runs: dict[str, PolicyRun]
    seconds: float = 0.0
    threads: int = 1
    extra: dict[str, object] = field(default_factory=dict)


def simulate_system(params: Params, threads: int | None = None, keep: int = 0) -> SystemResult:
    """Every replication of every policy of ``params`` (``threads`` default: every core)."""
    model = compile_system(params)
    sys_ = params.system
    assert sys_ is not None
    threads = threads or default_threads()
    jobs = [(p, r) for p in params.policies for r in range(sys_.replications)]
    with compile_lock():  # compile (or load) once, before the threads call it
        warm = params.system.__class__(**{**sys_.__dict__, "duration_s": 1e-9, "warmup_s": 0.0})
        run_replication(_with_system(params, warm), compile_system(_with_system(params, warm)), params.policies[0], 0)
    started = time.perf_counter()
    if threads == 1:
        outs = [run_replication(params, model, p, r, keep=keep) for p, r in jobs]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            outs = list(pool.map(lambda job: run_replication(params, model, job[0], job[1], keep=keep), jobs))
    runs: dict[str, PolicyRun] = {}
    for (p, _), out in zip(jobs, outs, strict=True):
        runs.setdefault(p, PolicyRun(p, model.base.layout, [], sys_.duration_s - sys_.warmup_s)).reps.append(out)
    return SystemResult(params, runs, time.perf_counter() - started, threads)


def _with_system(params: Params, system: object) -> Params:
    import dataclasses

    return dataclasses.replace(params, system=system)
