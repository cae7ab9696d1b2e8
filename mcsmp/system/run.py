"""Run the whole-machine simulation: replications × policies, merged into one result.

Replication ``r`` of policy ``p`` draws from stream ``SFC64(SeedSequence(seed, spawn_key=(system
key, r, 0)))`` (:func:`mcsmp.sim.engine.stream_states`, row 0): the policies of one point share
their random numbers replication by replication, and a result depends on the parameters and the
seed only. Each (policy, replication) is a unit of work of the one scheduler
(:class:`mcsmp.sim.scheduler.UnitJob`: a thread pool, as the kernel releases the GIL, or Dask
workers, or a shard's share) and units merge in replication order, so any number of threads,
workers or shards gives bit-identical results.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from .._jit import compile_lock
from ..config import Params
from ..kernels import codes as K
from ..kernels.system import run_system
from ..sim.engine import default_threads, stream_states
from ..sim.histogram import Histogram, Layout
from ..sim.scheduler import UnitJob, run_jobs
from .model import SystemModel, compile_system, system_key

__all__ = [
    "PolicyRun", "Replication", "SystemResult", "SystemUnit", "garwood", "rate_interval", "run_replication", "run_unit",
    "simulate_system", "system_job", "system_result", "system_units", "t_interval", "warm_system",
]  # fmt: skip


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
        return t_interval(np.array([r.ops for r in self.reps], dtype=float) / self.seconds_per_rep)

    def total_throughput(self) -> tuple[float, float, float]:
        mean, lo, hi = t_interval(np.array([r.ops.sum() for r in self.reps], dtype=float) / self.seconds_per_rep)
        return float(mean), float(lo), float(hi)

    def race_counts(self) -> np.ndarray:
        i = K.SYSTEM_COUNTERS.index("races")
        return np.array([int(r.counters[i]) for r in self.reps])

    def race_rate(self) -> tuple[int, float, float, float]:
        """``(races, rate/s, low, high)``, the interval of :func:`rate_interval`."""
        counts = self.race_counts()
        return int(counts.sum()), *rate_interval(counts, self.seconds_per_rep)

    def time_to_corruption(self) -> tuple[float, float, float]:
        """Mean time to the first corruption (s) = 1 / race rate, with the rate's interval inverted."""
        n, rate, lo, hi = self.race_rate()
        return (math.inf if n == 0 else 1.0 / rate), 1.0 / hi, (math.inf if lo == 0 else 1.0 / lo)


def t_interval(per_rep: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over replications (axis 0) with its t-interval, clipped at 0; open with one replication."""
    mean = per_rep.mean(axis=0)
    n = per_rep.shape[0]
    if n < 2:
        return mean, np.zeros_like(mean), np.full_like(mean, np.inf)
    half = sps.t.ppf(0.5 + level / 2, n - 1) * per_rep.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, np.maximum(mean - half, 0.0), mean + half


def rate_interval(counts: np.ndarray, seconds_each: float, level: float = 0.95) -> tuple[float, float, float]:
    """Rate of events counted in independent replications of ``seconds_each``: the union of the
    exact Poisson (Garwood) interval of the total and the t-interval over replications.

    Garwood alone is exact only if events are independent, as the low-load two-sender
    coincidences are; at high load races come in bursts (the waiters on one csd see its release
    together) and the counts are overdispersed (variance / mean 11 at 32k and 25 at 64k calls per
    CPU per second on params/csd-race.yaml), which only the spread over replications shows. The
    union covers at least as often as the better of the two (tests/test_system.py)."""
    exposure = seconds_each * len(counts)
    total = int(np.sum(counts))
    lo, hi = garwood(total, exposure, level)
    if len(counts) >= 2:
        _, t_lo, t_hi = t_interval(np.asarray(counts, dtype=float) / seconds_each, level)
        lo, hi = min(lo, float(t_lo)), max(hi, float(t_hi))
    return total / exposure, lo, hi


@dataclass
class SystemResult:
    params: Params
    runs: dict[str, PolicyRun]
    seconds: float = 0.0
    threads: int = 1
    extra: dict[str, object] = field(default_factory=dict)


SystemUnit = tuple[str, int]  # (policy, replication): one kernel call, the unit of work of a point


def system_units(params: Params) -> list[SystemUnit]:
    """The units of a point in merge order: every replication of each policy in turn."""
    assert params.system is not None
    return [(p, r) for p in params.policies for r in range(params.system.replications)]


_WARM: set[str] = set()
_WARM_LOCK = threading.Lock()


def warm_system(params: Params) -> None:
    """Compile (or load) the system kernel once per process, under the inter-process compile lock,
    before any worker thread calls it (a replication too short to record anything)."""
    if "run_system" in _WARM:
        return
    with _WARM_LOCK, compile_lock():
        if "run_system" not in _WARM:
            assert params.system is not None
            warm = dataclasses.replace(params.system, duration_s=1e-9, warmup_s=0.0)
            tiny = dataclasses.replace(params, system=warm)
            run_replication(tiny, compile_system(tiny), params.policies[0], 0)
            _WARM.add("run_system")


def run_unit(params: Params, model: SystemModel, unit: SystemUnit, keep: int = 0) -> Replication:
    """One unit of work (a module-level function, so that a Dask worker can be sent it)."""
    return run_replication(params, model, unit[0], unit[1], keep=keep)


def system_job(
    key: str, params: Params, units: Sequence[SystemUnit] | None = None, *, model: SystemModel | None = None,
    label: str = "", on_unit: Callable[[SystemUnit, Replication], None] | None = None, keep: int = 0,
) -> UnitJob:  # fmt: skip
    """The scheduler's job for ``units`` (default: all) of one system point."""
    model = model or compile_system(params)
    todo = system_units(params) if units is None else list(units)
    return UnitJob(key, todo, functools.partial(run_unit, params, model, keep=keep),
                   functools.partial(warm_system, params), label, on_unit)  # fmt: skip


def system_result(params: Params, reps: Mapping[SystemUnit, Replication], seconds: float = 0.0,
                  threads: int = 1) -> SystemResult:  # fmt: skip
    """Merge every unit of a point (whatever ran them, in whatever order) in replication order."""
    sys_ = params.system
    assert sys_ is not None
    missing = [u for u in system_units(params) if u not in reps]
    if missing:
        raise ValueError(f"{len(missing)} unit(s) missing, e.g. {missing[0]}")
    layout = Layout(params.report.precision_bits)
    runs = {p: PolicyRun(p, layout, [reps[(p, r)] for r in range(sys_.replications)], sys_.duration_s - sys_.warmup_s)
            for p in params.policies}  # fmt: skip
    return SystemResult(params, runs, seconds, threads)


def simulate_system(params: Params, threads: int | None = None, keep: int = 0, *, dask: Any = None) -> SystemResult:
    """Every replication of every policy of ``params`` (``threads`` default: every core), through
    the one scheduler (:func:`mcsmp.sim.scheduler.run_jobs`): bit-identical for any backend."""
    threads = threads or default_threads()
    job = system_job("", params, keep=keep)
    out: list[list[Replication]] = []
    started = time.perf_counter()
    run_jobs([job], lambda _job, reps: out.append(reps), threads=threads, dask=dask, progress=False)
    return system_result(params, dict(zip(job.units, out[0], strict=True)), time.perf_counter() - started, threads)
