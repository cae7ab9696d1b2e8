"""Running sweep points: the one scheduler, for a local thread pool, a Dask cluster or a shard.

A *job* is one sweep point and the chunks of it to simulate here (all of them, or a shard's).
Every backend calls ``on_done(job, result)`` as soon as a job's last chunk is in, so the caller can
write it (atomically) at once: a sweep killed at any moment loses only the points in flight.
Results are bit-identical whatever the backend, thread count or sharding: every chunk draws from
its own stream and histograms merge by integer addition (:mod:`mcsmp.sim.engine`).

A point that needs the re-entry pilot (docs/model.md §3) simulates each pilot chunk once: the
first pass of a pilot chunk that belongs to the job keeps its trace and is *replayed* with the
second-pass table (:func:`~mcsmp.sim.engine.replay_chunk`); a pilot chunk of another shard is
simulated for its ``T − S_L`` histogram only.

- **local** (default, and :func:`run_point`): one thread pool runs single chunks of all points,
  handed out in point order a few ahead of the workers, so points finish roughly in order; a
  point's pilot chunks go first, its other chunks once the pilot is merged, while the pool works
  on later points. Each worker thread adds its chunks' counts into an accumulator of its own per
  point (integer sums, so the order does not matter); memory does not grow with ``samples``.
- **dask**: one task per (point, chunk range) of about a second of work; the pilot is a task of
  its own that returns the second-pass table (which feeds the point's other tasks) and its own
  chunks' results. Histograms are merged on the client as tasks complete.
- **shards** (``--shard I/N``): the chunks of all points are cut into *chunk sets* of
  :data:`SHARD_SET_CHUNKS` consecutive chunks of one point, numbered over the points in order;
  shard ``I`` takes every set whose number is ``I`` modulo ``N`` (and runs with either backend).

A :class:`UnitJob` is the other job kind: independent units of work that need no pilot, each run
by a module-level function (so that Dask can ship it), e.g. the (policy, replication) pairs of a
whole-machine simulation point (:mod:`mcsmp.system`). Both backends run one unit per task and
call the job's ``on_unit`` as each one returns, then ``on_done(job, outputs)`` with the outputs in
unit order; shards split units with :func:`shard_chunks` and a set size of 1.
"""

from __future__ import annotations

import collections
import operator
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Params
from ..config.rare import candidates_of, target_prob_of
from ..errors import OverloadError, UserError
from ..kernels import codes as K
from .engine import (
    CHUNK_FANOUTS,
    NO_WAIT_TAIL,
    ChunkOutput,
    PointResult,
    WaitTail,
    chunk_sizes,
    default_threads,
    pilot_chunks,
    replay_chunk,
    simulate_chunk,
    wait_tail_from,
    warm_up,
)
from .histogram import Histogram
from .model import CompiledModel, compile_model

__all__ = [
    "SHARD_SET_CHUNKS",
    "Job",
    "UnitJob",
    "dask_task_chunks",
    "parse_shard",
    "run_jobs",
    "run_point",
    "shard_chunks",
]

SHARD_SET_CHUNKS = 16
TARGET_SAMPLES_PER_TASK = 2**25  # ≈ 1 s of one core at ~3e7 target-samples/s (Dask tasks)
LOOKAHEAD = 2  # queued chunks per worker thread


@dataclass
class Job:
    """One sweep point and the chunks of it to simulate.

    ``stream_key`` pins the random streams (common random numbers across parameter sets); None
    draws from the point's own (:attr:`~mcsmp.config.Params.stream_key`).
    """

    key: str  # the point id (file name of its histograms)
    params: Params
    chunks: list[int]
    model: CompiledModel = None  # type: ignore[assignment]  # compiled from params when not given
    label: str = ""  # for messages: "[3] cache.placement=stack"
    stream_key: int | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = compile_model(self.params)

    @property
    def key_of_streams(self) -> int:
        return self.params.stream_key if self.stream_key is None else self.stream_key

    @property
    def fanouts(self) -> int:
        sizes = chunk_sizes(self.params.samples)
        return sum(sizes[c] for c in self.chunks)

    @property
    def pilot(self) -> list[int]:
        return pilot_chunks(self.params, self.model) if self.chunks else []

    @property
    def foreign_pilot_fanouts(self) -> int:
        """Fan-outs of pilot chunks simulated here that belong to another shard."""
        sizes = chunk_sizes(self.params.samples)
        mine = set(self.chunks)
        return sum(sizes[c] for c in self.pilot if c not in mine)

    def result(self, counts: np.ndarray, sums: dict[int, np.ndarray], fanouts: dict[int, int],
               tail: WaitTail, seconds: float, samples: np.ndarray | None = None,
               ns: dict[int, np.ndarray] | None = None) -> PointResult:  # fmt: skip
        return PointResult(self.params, self.model, counts, sums, fanouts, tail.mean, seconds, samples, self.stream_key,
                           dict(ns or {}))  # fmt: skip


@dataclass
class UnitJob:
    """Independent units of work of one point: ``work(unit)`` computes one (in any thread or Dask
    worker: a module-level function or a :func:`functools.partial` of one); ``warm()`` (in the
    scheduling process, before the workers start) compiles what ``work`` needs. ``on_unit(unit,
    output)`` (optional) is called in the scheduling thread as each unit returns, so a caller can
    save progress inside a point; ``cost`` weighs a unit on the progress bar."""

    key: str
    units: list[Any]
    work: Callable[[Any], Any]
    warm: Callable[[], None] = lambda: None
    label: str = ""
    on_unit: Callable[[Any, Any], None] | None = None
    cost: float = 1.0

    @property
    def chunks(self) -> list[Any]:  # what the backends test for "anything to do"
        return self.units


def _pilot_tail(job: Job, firsts: Iterable[ChunkOutput]) -> WaitTail:
    """The second-pass table from the first passes of all the pilot chunks (own counts each);
    with strata, their combination with the exact stratum probabilities."""
    model = job.model
    n_strata, rows = model.rare.n_strata, model.n_rows
    counts = np.zeros((n_strata, model.layout.n_buckets), dtype=np.int64)
    sums: dict[int, np.ndarray] = {}
    for out in firsts:
        assert out.counts is not None
        for st in range(n_strata):
            counts[st] += out.counts[st * rows + K.H_WAIT_TAIL]
        sums[out.chunk] = np.array([float(out.sums[st * rows + K.H_WAIT_TAIL]) for st in range(n_strata)])
    totals = np.zeros(n_strata)
    for chunk in sorted(sums):  # chunk order, as PointResult.row_histogram adds sums
        totals += sums[chunk]
    parts = [Histogram(model.layout, counts[st], float(totals[st])) for st in range(n_strata)]
    tail = parts[0] if n_strata == 1 else Histogram.stratified(model.layout, parts, list(model.rare.probs))
    try:
        return wait_tail_from(job.model, tail)
    except OverloadError as exc:
        if job.label or job.key:
            raise OverloadError(f"sweep point {job.label or job.key}: {exc}") from None
        raise


# --------------------------------------------------------------------------------------------
# Shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` → ``(3, 8)``; shards are numbered 0..N-1 (like ``$SLURM_ARRAY_TASK_ID``)."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise UserError(f"--shard {text}: expected I/N with integers, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_chunks(
    chunk_counts: Sequence[int], shard: tuple[int, int] | None, set_size: int | None = None
) -> list[list[int]]:
    """For each point (by its number of chunks), the chunks that ``shard`` simulates: sets of
    ``set_size`` (default :data:`SHARD_SET_CHUNKS`, read at call time) consecutive chunks of a
    point, numbered over the points, dealt round-robin."""
    if shard is None:
        return [list(range(n)) for n in chunk_counts]
    index, count = shard
    set_size = SHARD_SET_CHUNKS if set_size is None else set_size
    out: list[list[int]] = []
    number = 0
    for n in chunk_counts:
        mine: list[int] = []
        for start in range(0, n, set_size):
            if number % count == index:
                mine += range(start, min(start + set_size, n))
            number += 1
        out.append(mine)
    return out


# --------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """tqdm bar over fan-outs (pilot passes included) with points done; silent off a terminal."""

    def __init__(self, jobs: Sequence[Job | UnitJob], enabled: bool | None) -> None:
        from tqdm import tqdm

        class _Bar(tqdm):  # type: ignore[misc,type-arg]
            monitor_interval = 0  # no monitor thread: it would outlive the sweep (and forks)

        # fan-outs (pilot passes included), or for unit jobs their weighted units
        total = sum(j.fanouts + j.foreign_pilot_fanouts if isinstance(j, Job) else j.cost * len(j.units) for j in jobs)
        what = "fan-outs" if all(isinstance(j, Job) for j in jobs) else "units"
        self.n_points = len(jobs)
        self.done = 0
        self.bar = _Bar(
            desc=f"points 0/{len(jobs)}", total=total, unit=f" {what}", unit_scale=True, dynamic_ncols=True,
            smoothing=0.1, disable=None if enabled is None else not enabled, file=sys.stderr,
            bar_format=f"{{desc}} {{percentage:3.0f}}%|{{bar}}| {{n_fmt}}/{{total_fmt}} {what} "
            "[{elapsed}<{remaining}, {rate_fmt}]",
        )  # fmt: skip
        self._describe()

    def _describe(self) -> None:
        self.bar.set_description_str(f"points {self.done}/{self.n_points}", refresh=False)

    def advance(self, amount: float) -> None:
        self.bar.update(amount)

    def point_done(self) -> None:
        self.done += 1
        self._describe()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------------------------
# Local thread pool


@dataclass
class _Point:
    """The local scheduler's state of one job."""

    job: Job
    keep_samples: bool
    todo: collections.deque[tuple[str, int]] = field(default_factory=collections.deque)
    traced: set[int] = field(default_factory=set)
    firsts: dict[int, ChunkOutput] = field(default_factory=dict)  # pilot first passes not yet used
    pilot_left: int = 0
    tail: WaitTail | None = None
    left: int = 0  # job chunks not yet merged
    counts: np.ndarray | None = None  # replayed chunks' counts
    accumulators: dict[int, np.ndarray] = field(default_factory=dict)  # worker thread -> its counts
    sums: dict[int, np.ndarray] = field(default_factory=dict)
    fanouts: dict[int, int] = field(default_factory=dict)
    ns: dict[int, np.ndarray] = field(default_factory=dict)
    samples: dict[int, np.ndarray] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        job = self.job
        pilot = job.pilot
        self.left = len(job.chunks)
        self.pilot_left = len(pilot)
        self.traced = set() if self.keep_samples else set(pilot) & set(job.chunks)
        self.counts = np.zeros((job.model.n_hists, job.model.layout.n_buckets), dtype=np.int64)
        self.todo.extend(("first", c) for c in pilot)
        if not pilot:
            self._release(NO_WAIT_TAIL)

    def _release(self, tail: WaitTail) -> None:
        """The second-pass table is known: queue the replays and the other chunks."""
        self.tail = tail
        self.todo.extend(("replay", c) for c in sorted(self.traced))
        self.todo.extend(("main", c) for c in self.job.chunks if c not in self.traced)

    def work(self, kind: str, chunk: int) -> ChunkOutput:
        """Run one task (in a worker thread)."""
        job = self.job
        if kind == "first":
            return simulate_chunk(job.params, job.model, chunk, NO_WAIT_TAIL, job.key_of_streams,
                                  trace=chunk in self.traced)  # fmt: skip
        assert self.tail is not None
        if kind == "replay":
            return replay_chunk(job.params, job.model, self.firsts.pop(chunk), self.tail, job.key_of_streams)
        acc = self.accumulators.get(threading.get_ident())
        if acc is None:  # each thread inserts its own key only: no lock needed
            acc = self.accumulators.setdefault(threading.get_ident(), np.zeros_like(self.counts))
        return simulate_chunk(job.params, job.model, chunk, self.tail, job.key_of_streams, counts=acc,
                              keep_samples=self.keep_samples)  # fmt: skip

    def merge(self, kind: str, out: ChunkOutput) -> bool:
        """Take a finished task's output (in the scheduling thread); True when the job is done."""
        if kind == "first":
            self.pilot_left -= 1
            self.firsts[out.chunk] = out
            if self.pilot_left == 0:
                tail = _pilot_tail(self.job, self.firsts.values())
                self.firsts = {c: o for c, o in self.firsts.items() if c in self.traced}
                self._release(tail)
            return False
        if out.counts is not None:  # a replay: the chunk's own counts
            self.counts += out.counts
        self.sums[out.chunk], self.fanouts[out.chunk] = out.sums, out.fanouts
        if out.ns is not None:
            self.ns[out.chunk] = out.ns
        if out.samples is not None:
            self.samples[out.chunk] = out.samples
        self.left -= 1
        return self.left == 0

    def result(self) -> PointResult:
        assert self.counts is not None and self.tail is not None
        counts = self.counts
        for acc in self.accumulators.values():
            counts += acc
        samples = np.concatenate([self.samples[c] for c in sorted(self.samples)]) if self.keep_samples else None
        return self.job.result(counts, self.sums, self.fanouts, self.tail, time.perf_counter() - self.started, samples,
                               self.ns)  # fmt: skip


    def advance_of(self, kind: str, out: ChunkOutput) -> float:
        return 0 if kind == "replay" else out.fanouts


@dataclass
class _Units:
    """The local scheduler's state of a :class:`UnitJob` (same interface as :class:`_Point`)."""

    job: UnitJob
    todo: collections.deque[tuple[str, int]] = field(default_factory=collections.deque)
    outputs: dict[int, Any] = field(default_factory=dict)
    left: int = 0

    def __post_init__(self) -> None:
        self.left = len(self.job.units)
        self.todo.extend(("unit", i) for i in range(len(self.job.units)))

    def work(self, kind: str, i: int) -> tuple[int, Any]:
        return i, self.job.work(self.job.units[i])

    def merge(self, kind: str, out: tuple[int, Any]) -> bool:
        i, output = out
        self.outputs[i] = output
        if self.job.on_unit is not None:
            self.job.on_unit(self.job.units[i], output)
        self.left -= 1
        return self.left == 0

    def advance_of(self, kind: str, out: Any) -> float:
        return self.job.cost

    def result(self) -> list[Any]:
        return [self.outputs[i] for i in range(len(self.job.units))]


def _run_local(
    jobs: Sequence[Job | UnitJob], threads: int, progress: _Progress, on_done: Callable[[Any, Any], None],
    keep_samples: bool = False,
) -> None:  # fmt: skip
    states = [_Point(job, keep_samples) if isinstance(job, Job) else _Units(job) for job in jobs]
    cursor = 0
    ahead = LOOKAHEAD * threads  # queued tasks: enough to keep workers busy, few enough to keep order

    def next_task() -> tuple[_Point | _Units, str, int] | None:
        nonlocal cursor
        while cursor < len(states) and states[cursor].left == 0:
            cursor += 1
        for st in states[cursor:]:
            if st.todo:
                kind, chunk = st.todo.popleft()
                return st, kind, chunk
        return None

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mcsmp")
    pending: dict[Future[Any], tuple[_Point | _Units, str]] = {}
    try:

        def fill() -> None:
            while len(pending) < ahead:
                task = next_task()
                if task is None:
                    return
                st, kind, chunk = task
                pending[pool.submit(st.work, kind, chunk)] = (st, kind)

        fill()
        while pending:
            done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                st, kind = pending.pop(fut)
                out = fut.result()
                progress.advance(st.advance_of(kind, out))
                if st.merge(kind, out):
                    on_done(st.job, st.result())
                    progress.point_done()
            fill()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# Dask


def dask_task_chunks(params: Params) -> int:
    """Chunks per Dask task: about :data:`TARGET_SAMPLES_PER_TASK` target-samples (≈ 1 s)."""
    per_fanout = 4.0 + candidates_of(params) * target_prob_of(params)  # the kernel's m and tp  # a fan-out costs a few targets' worth even with none
    return int(min(256, max(1, round(TARGET_SAMPLES_PER_TASK / (CHUNK_FANOUTS * per_fanout)))))


def _ranges(chunks: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(chunks), size):
        yield list(chunks[i : i + size])


# a PointResult without params: counts, sums, fan-outs, seconds, per-chunk row counts
_Parts = tuple[np.ndarray, dict[int, np.ndarray], dict[int, int], float, dict[int, np.ndarray]]


def dask_pilot(job: Job) -> tuple[WaitTail, _Parts]:
    """Dask task: the pilot of a point, simulated once: the second-pass table and the finished
    results of the pilot chunks that belong to the job."""
    warm_up(job.model)
    mine = set(job.chunks)
    key = job.key_of_streams
    firsts = [simulate_chunk(job.params, job.model, c, NO_WAIT_TAIL, key, trace=c in mine) for c in job.pilot]
    tail = _pilot_tail(job, firsts)
    counts = np.zeros((job.model.n_hists, job.model.layout.n_buckets), dtype=np.int64)
    sums, fanouts, ns = {}, {}, {}
    start = time.perf_counter()
    for first in firsts:
        if first.chunk in mine:
            out = replay_chunk(job.params, job.model, first, tail, key)
            assert out.counts is not None
            counts += out.counts
            sums[out.chunk], fanouts[out.chunk], ns[out.chunk] = out.sums, out.fanouts, out.ns
    return tail, (counts, sums, fanouts, time.perf_counter() - start, ns)


def dask_chunks(job: Job, chunks: list[int], tail: WaitTail) -> _Parts:
    """Dask task: simulate ``chunks`` of a point."""
    start = time.perf_counter()
    warm_up(job.model)
    counts = np.zeros((job.model.n_hists, job.model.layout.n_buckets), dtype=np.int64)
    sums, fanouts, ns = {}, {}, {}
    for c in chunks:
        out = simulate_chunk(job.params, job.model, c, tail, job.key_of_streams, counts=counts)
        sums[c], fanouts[c], ns[c] = out.sums, out.fanouts, out.ns
    return counts, sums, fanouts, time.perf_counter() - start, ns


# ``--dask slurm``, ``--dask pbs:4`` …: a dask-jobqueue cluster configured by the user's Dask
# config (jobqueue.yaml: queue, cores, memory, walltime), scaled to N jobs (default 1).
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
            "htcondor": "HTCondorCluster"}  # fmt: skip


def _jobqueue(address: str) -> tuple[Any, int] | None:
    kind, _, jobs = address.partition(":")
    if kind not in JOBQUEUE:
        return None
    if jobs and not jobs.isdigit():
        raise UserError(f"--dask {address}: expected {kind} or {kind}:JOBS with a number of jobs")
    try:
        import dask_jobqueue
    except ImportError:
        raise UserError(f"--dask {kind} needs dask-jobqueue: pip install 'mcsmp[cluster]'") from None
    try:
        cluster = getattr(dask_jobqueue, JOBQUEUE[kind])()
    except (ValueError, TypeError, KeyError) as exc:  # jobqueue.yaml incomplete
        raise UserError(f"--dask {kind}: cannot configure the {JOBQUEUE[kind]} (see docs/sweeps.md): {exc}") from None
    return cluster, int(jobs or 1)


def _client(address: str | Any, threads: int) -> tuple[Any, Callable[[], None]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--dask needs the optional extra: pip install 'mcsmp[dask]'") from None
    if not isinstance(address, str):
        return address, lambda: None  # a Client made by the caller (tests, notebooks)
    queue = _jobqueue(address)
    if address == "local" or queue is not None:
        if queue is not None:
            cluster, jobs = queue
            cluster.scale(jobs=jobs)
        else:
            # Threads in this process: the kernels release the GIL and need no recompilation.
            # Port 0: a busy :8787 (another user) makes distributed retry and leak a socket.
            cluster = LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, dashboard_address=":0")
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError, TypeError) as exc:  # ValueError: an unknown scheme
        raise UserError(f"--dask {address}: cannot connect to the scheduler: {exc}") from None
    return client, client.close


def _lost_after_s() -> float:
    """Seconds without a single worker (after one was seen) before a Dask sweep gives up."""
    text = os.environ.get("MCSMP_DASK_LOST_S", "60")
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise UserError(f"MCSMP_DASK_LOST_S={text!r}: expected a number of seconds") from None


def _completed(client: Any, futures: list[Any]) -> Iterator[Any]:
    """The futures as they complete, failing instead of waiting forever when every worker is gone
    (after one was seen: a batch queue may take long to start the first)."""
    pending, lost_after, seen, lost_since = list(futures), _lost_after_s(), False, None
    last_check = 0.0
    while pending:
        done = [f for f in pending if f.done()]  # client-side state: no round trip
        if done:
            pending = [f for f in pending if not f.done() or f not in done]
            yield from done
            continue
        time.sleep(_POLL_S)
        if time.monotonic() - last_check < 1.0:
            continue
        last_check = time.monotonic()
        workers = len(client.scheduler_info().get("workers", {}))
        seen = seen or workers > 0
        if workers or not seen:
            lost_since = None
        elif lost_since is None:
            lost_since = time.monotonic()
        elif time.monotonic() - lost_since > lost_after:
            raise UserError(
                f"dask: every worker is gone ({len(pending)} task(s) left, none running for {lost_after:g} s); "
                "completed points are saved: rerun with --resume once workers are back"
            )


_POLL_S = 0.05


def dask_unit(work: Callable[[Any], Any], warm: Callable[[], None], unit: Any) -> Any:
    """Dask task: one unit of a :class:`UnitJob` (``warm`` first: once per worker process)."""
    warm()
    return work(unit)


def _run_dask(
    jobs: Sequence[Job | UnitJob], address: str | Any, threads: int, progress: _Progress,
    on_done: Callable[[Any, Any], None],
) -> None:  # fmt: skip
    from distributed.scheduler import KilledWorker

    client, close = _client(address, threads)
    futures: list[Any] = []
    try:
        meta: dict[str, tuple[Job, int, WaitTail | Any]] = {}  # future key -> job, chunks, its tail
        unit_of: dict[str, tuple[UnitJob, int]] = {}  # future key -> unit job, unit index
        for order, job in enumerate(jobs):
            priority = len(jobs) - order  # earlier points first: they finish (and are saved) first
            if isinstance(job, UnitJob):
                for i, unit in enumerate(job.units):
                    fut = client.submit(dask_unit, job.work, job.warm, unit, pure=False, priority=priority)
                    unit_of[fut.key] = (job, i)
                    futures.append(fut)
                continue
            tail: Any = NO_WAIT_TAIL
            rest = job.chunks
            if job.pilot:
                pilot = client.submit(dask_pilot, job, pure=False, priority=priority)
                tail = client.submit(operator.itemgetter(0), pilot, pure=False, priority=priority)
                parts = client.submit(operator.itemgetter(1), pilot, pure=False, priority=priority)
                futures += [pilot, tail, parts]
                meta[parts.key] = (job, len(set(job.pilot) & set(job.chunks)), tail)
                rest = [c for c in job.chunks if c not in set(job.pilot)]
            for chunks in _ranges(rest, dask_task_chunks(job.params)):
                fut = client.submit(dask_chunks, job, chunks, tail, pure=False, priority=priority)
                meta[fut.key] = (job, len(chunks), tail)
                futures.append(fut)
        partial: dict[str, PointResult] = {}
        tails: dict[str, WaitTail] = {}
        outputs: dict[str, dict[int, Any]] = {}  # unit jobs: outputs so far
        started = time.perf_counter()
        for fut in _completed(client, [f for f in futures if f.key in meta or f.key in unit_of]):
            if fut.key in unit_of:
                ujob, i = unit_of[fut.key]
                try:
                    output = fut.result()
                except KilledWorker as exc:
                    raise UserError(f"dask: workers died running point {ujob.label or ujob.key} ({exc}); "
                                    "completed work is saved: rerun with --resume") from None  # fmt: skip
                fut.release()
                got = outputs.setdefault(ujob.key, {})
                got[i] = output
                if ujob.on_unit is not None:
                    ujob.on_unit(ujob.units[i], output)
                progress.advance(ujob.cost)
                if len(got) == len(ujob.units):
                    on_done(ujob, [got[k] for k in range(len(ujob.units))])
                    del outputs[ujob.key]
                    progress.point_done()
                continue
            job, _, tail = meta[fut.key]
            try:
                counts, sums, fanouts, seconds, ns = fut.result()  # a pilot's OverloadError is raised here
            except KilledWorker as exc:
                raise UserError(f"dask: workers died running point {job.label or job.key} ({exc}); "
                                "completed points are saved: rerun with --resume") from None
            if job.key not in tails:
                tails[job.key] = tail if isinstance(tail, WaitTail) else tail.result()
            fut.release()
            part = job.result(counts, sums, fanouts, tails[job.key], seconds, ns=ns)
            progress.advance(part.fanouts + (job.foreign_pilot_fanouts if job.key not in partial else 0))
            merged = part if job.key not in partial else partial[job.key].merge(part)
            if len(merged.chunk_fanouts) == len(job.chunks):
                partial.pop(job.key, None)
                merged.seconds = time.perf_counter() - started
                on_done(job, merged)
                progress.point_done()
            else:
                partial[job.key] = merged
    finally:
        with _quiet():
            client.cancel(futures)
        close()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True  # cleanup after an interrupt must not mask it


# --------------------------------------------------------------------------------------------
# Entry points


def run_jobs(
    jobs: Sequence[Job | UnitJob],
    on_done: Callable[[Any, Any], None],
    *,
    threads: int | None = None,
    dask: str | Any | None = None,
    progress: bool | None = None,
    keep_samples: bool = False,
) -> None:
    """Simulate ``jobs``, calling ``on_done(job, result)`` (in this thread) as each one completes.

    ``progress=None`` shows a bar only on a terminal. ``dask`` is a scheduler address, ``"local"``
    or a ``distributed.Client``. ``keep_samples`` (local only, for tests) also returns every
    fan-out's timeline. On KeyboardInterrupt, running chunks finish, queued ones are dropped and
    the interrupt propagates; points already passed to ``on_done`` are kept. A :class:`Job`'s
    result is a :class:`PointResult`; a :class:`UnitJob`'s the list of its units' outputs.
    """
    jobs = [j for j in jobs if j.chunks]
    threads = threads or default_threads()
    for job in jobs:  # compile (or load) once, before any worker thread; cheap once warm
        if isinstance(job, Job):
            warm_up(job.model)
        else:
            job.warm()
    bar = _Progress(jobs, progress)
    try:
        if dask is None:
            _run_local(jobs, threads, bar, on_done, keep_samples)
        elif keep_samples:
            raise ValueError("keep_samples needs the local backend")
        else:
            _run_dask(jobs, dask, threads, bar, on_done)
    finally:
        bar.close()


def run_point(
    params: Params,
    *,
    threads: int | None = None,
    chunks: Iterable[int] | None = None,
    keep_samples: bool = False,
    model: CompiledModel | None = None,
    stream_key: int | None = None,
    progress: bool | None = False,
) -> PointResult:
    """Simulate the chunks ``chunks`` (default: all) of one point on a local thread pool.

    ``stream_key`` pins the random streams (common random numbers); by default the point's own.
    """
    wanted = list(range(len(chunk_sizes(params.samples)))) if chunks is None else sorted(set(chunks))
    job = Job("", params, wanted, model or compile_model(params), stream_key=stream_key)
    out: list[PointResult] = []
    run_jobs([job], lambda _job, result: out.append(result), threads=threads, progress=progress,
             keep_samples=keep_samples)  # fmt: skip
    if not out:  # no chunks asked for: an empty, mergeable result
        return job.result(np.zeros((job.model.n_hists, job.model.layout.n_buckets), dtype=np.int64), {}, {},
                          NO_WAIT_TAIL, 0.0)  # fmt: skip
    return out[0]
