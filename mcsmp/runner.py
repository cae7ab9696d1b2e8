"""Executing many sweep points: a local thread pool, a Dask cluster, or one shard of a batch job.

A *job* is one sweep point and the chunks of it to simulate here (all of them, or a shard's).
Each backend yields the job's :class:`~mcsmp.engine.PointResult` as soon as its last chunk is in,
so the caller can write it (atomically) at once: a sweep killed at any moment loses only the
points in flight. Results are bit-identical whatever the backend, thread count or sharding, since
every chunk draws from its own stream and histograms merge by integer addition
(:mod:`mcsmp.engine`).

- **local** (default): one :class:`~concurrent.futures.ThreadPoolExecutor` runs single chunks of
  all points. Tasks are handed out in point order, a few ahead of the workers, so points finish
  roughly in order; a point that needs the re-entry pilot (MODEL.md §3) runs its pilot chunks
  first and its other chunks once the pilot is merged, while the pool works on later points.
- **dask**: one task per (point, chunk range) of about a second of work; the pilot is a task of its
  own whose result (a small table) feeds the point's other tasks. Histograms are merged on the
  client as tasks complete (:func:`distributed.as_completed`).
- **shards** (``--shard I/N``): the chunks of all points are cut into *chunk sets* of
  :data:`SHARD_SET_CHUNKS` consecutive chunks of one point, numbered over the points in order;
  shard ``I`` takes every set whose number is ``I`` modulo ``N`` (and runs it with either backend).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import (
    CHUNK_FANOUTS,
    NO_WAIT_TAIL,
    PointResult,
    WaitTail,
    chunk_sizes,
    default_threads,
    pilot_chunks,
    run_chunks,
    wait_tail_of,
)
from .errors import OverloadError, UserError
from .model import CompiledModel, compile_model
from .params import Params

__all__ = [
    "SHARD_SET_CHUNKS",
    "Job",
    "dask_task_chunks",
    "parse_shard",
    "run_jobs",
    "shard_chunks",
]

SHARD_SET_CHUNKS = 16
TARGET_SAMPLES_PER_TASK = 2**25  # ≈ 1 s of one core at ~3e7 target-samples/s (Dask tasks)


@dataclass
class Job:
    """One sweep point and the chunks of it to simulate."""

    key: str  # the point id (file name of its histograms)
    params: Params
    chunks: list[int]
    model: CompiledModel | None = None
    label: str = ""  # for messages: "[3] cache.placement=stack"

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = compile_model(self.params)

    @property
    def fanouts(self) -> int:
        sizes = chunk_sizes(self.params.samples)
        return sum(sizes[c] for c in self.chunks)

    @property
    def pilot(self) -> list[int]:
        assert self.model is not None
        return pilot_chunks(self.params, self.model) if self.chunks else []

    @property
    def pilot_fanouts(self) -> int:
        sizes = chunk_sizes(self.params.samples)
        return sum(sizes[c] for c in self.pilot)


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


def shard_chunks(chunk_counts: Sequence[int], shard: tuple[int, int] | None) -> list[list[int]]:
    """For each point (by its number of chunks), the chunks that ``shard`` simulates."""
    if shard is None:
        return [list(range(n)) for n in chunk_counts]
    index, count = shard
    out: list[list[int]] = []
    number = 0
    for n in chunk_counts:
        mine: list[int] = []
        for start in range(0, n, SHARD_SET_CHUNKS):
            if number % count == index:
                mine += range(start, min(start + SHARD_SET_CHUNKS, n))
            number += 1
        out.append(mine)
    return out


# --------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """tqdm bar over fan-outs (pilot passes included) with points done; silent off a terminal."""

    def __init__(self, jobs: Sequence[Job], enabled: bool | None) -> None:
        from tqdm import tqdm

        class _Bar(tqdm):  # type: ignore[misc,type-arg]
            monitor_interval = 0  # no monitor thread: it would outlive the sweep (and forks)

        total = sum(j.fanouts + j.pilot_fanouts for j in jobs)
        self.n_points = len(jobs)
        self.done = 0
        self.bar = _Bar(
            desc=f"points 0/{len(jobs)}", total=total, unit=" fan-outs", unit_scale=True, dynamic_ncols=True,
            smoothing=0.1, disable=None if enabled is None else not enabled, file=sys.stderr,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} fan-outs "
            "[{elapsed}<{remaining}, {rate_fmt}]",
        )  # fmt: skip
        self._describe()

    def _describe(self) -> None:
        self.bar.set_description_str(f"points {self.done}/{self.n_points}", refresh=False)

    def advance(self, fanouts: int) -> None:
        self.bar.update(fanouts)

    def point_done(self) -> None:
        self.done += 1
        self._describe()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------------------------
# Local thread pool


@dataclass
class _State:
    job: Job
    pilot_todo: list[int]
    main_todo: list[int]
    pilot_out: int = 0  # pilot chunks submitted and not yet merged
    pilot_result: PointResult | None = None
    tail: WaitTail | None = None
    result: PointResult | None = None
    left: int = 0  # main chunks not yet merged
    started: float = field(default_factory=time.perf_counter)


def _merge(a: PointResult | None, b: PointResult) -> PointResult:
    return b if a is None else a.merge(b)


def _overloaded(job: Job, exc: OverloadError) -> OverloadError:
    """The same error, naming the sweep point."""
    return OverloadError(f"sweep point {job.label or job.key}: {exc}")


def _run_local(
    jobs: Sequence[Job], threads: int, progress: _Progress, on_done: Callable[[Job, PointResult], None]
) -> None:
    states = []
    for job in jobs:
        pilot = job.pilot
        st = _State(job, list(pilot), list(job.chunks), left=len(job.chunks))
        if not pilot:
            st.tail = NO_WAIT_TAIL
        states.append(st)
    cursor = 0
    ahead = 2 * threads  # queued tasks: enough to keep workers busy, few enough to keep order

    def next_task() -> tuple[str, _State, int] | None:
        nonlocal cursor
        while cursor < len(states) and not (states[cursor].pilot_todo or states[cursor].main_todo):
            cursor += 1
        for st in states[cursor:]:
            if st.pilot_todo:
                st.pilot_out += 1
                return "pilot", st, st.pilot_todo.pop(0)
            if st.tail is not None and st.main_todo:
                return "main", st, st.main_todo.pop(0)
        return None

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mcsmp")
    pending: dict[Future[PointResult], tuple[str, _State, int]] = {}
    try:

        def fill() -> None:
            while len(pending) < ahead:
                task = next_task()
                if task is None:
                    return
                kind, st, chunk = task
                assert st.job.model is not None
                tail = NO_WAIT_TAIL if kind == "pilot" else st.tail
                assert tail is not None
                fut = pool.submit(run_chunks, st.job.params, st.job.model, [chunk], tail)
                pending[fut] = task

        fill()
        while pending:
            done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                kind, st, _chunk = pending.pop(fut)
                part = fut.result()
                progress.advance(part.fanouts)
                if kind == "pilot":
                    st.pilot_result = _merge(st.pilot_result, part)
                    st.pilot_out -= 1
                    if not st.pilot_todo and st.pilot_out == 0:
                        try:
                            st.tail = wait_tail_of(st.pilot_result)
                        except OverloadError as exc:
                            raise _overloaded(st.job, exc) from None
                        st.pilot_result = None
                else:
                    st.result = _merge(st.result, part)
                    st.left -= 1
                    if st.left == 0:
                        result, st.result = st.result, None
                        result.seconds = time.perf_counter() - st.started
                        on_done(st.job, result)
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
    m, w = params.machine, params.workload
    others = m.cpus - 1 if (w.mm_cpus is None or w.call == "tlb_flush_kernel") else w.mm_cpus
    prob = 1.0 if w.call == "tlb_flush_kernel" else w.target_prob
    per_fanout = 4.0 + others * prob  # a fan-out costs a few targets' worth even with none
    return int(min(256, max(1, round(TARGET_SAMPLES_PER_TASK / (CHUNK_FANOUTS * per_fanout)))))


def _ranges(chunks: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(chunks), size):
        yield list(chunks[i : i + size])


def dask_pilot(params: Params) -> WaitTail:
    """Dask task: the first pass of a point, reduced to its second-pass table."""
    model = compile_model(params)
    return wait_tail_of(run_chunks(params, model, pilot_chunks(params, model)))


def dask_chunks(
    params: Params, chunks: list[int], tail: WaitTail
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, int], float, float]:
    """Dask task: simulate ``chunks`` of a point; the parts of a PointResult (not params, model)."""
    r = run_chunks(params, compile_model(params), chunks, tail)
    return r.counts, r.chunk_sums, r.chunk_fanouts, r.wait_tail_mean, r.seconds


def _client(address: str | Any, threads: int) -> tuple[Any, Callable[[], None]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--dask needs the optional extra: pip install 'mcsmp[dask]'") from None
    if not isinstance(address, str):
        return address, lambda: None  # a Client made by the caller (tests, notebooks)
    if address == "local":
        # Threads in this process: the kernels release the GIL and need no recompilation. Port 0:
        # a busy :8787 (another user) makes distributed retry and leak a socket.
        cluster = LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, dashboard_address=":0")
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--dask {address}: cannot connect to the scheduler: {exc}") from None
    return client, client.close


def _run_dask(
    jobs: Sequence[Job], address: str | Any, threads: int, progress: _Progress,
    on_done: Callable[[Job, PointResult], None],
) -> None:  # fmt: skip
    from distributed import as_completed

    client, close = _client(address, threads)
    futures: list[Any] = []
    try:
        meta: dict[str, tuple[Job, int]] = {}
        for order, job in enumerate(jobs):
            priority = len(jobs) - order  # earlier points first: they finish (and are saved) first
            if job.pilot:
                tail: Any = client.submit(dask_pilot, job.params, pure=False, priority=priority)
                futures.append(tail)
                pilot_size = job.pilot_fanouts
            else:
                tail, pilot_size = NO_WAIT_TAIL, 0
            ranges = list(_ranges(job.chunks, dask_task_chunks(job.params)))
            for i, chunks in enumerate(ranges):
                fut = client.submit(dask_chunks, job.params, chunks, tail, pure=False, priority=priority)
                meta[fut.key] = (job, pilot_size if i == 0 else 0)
                futures.append(fut)
        partial: dict[str, PointResult] = {}
        started = time.perf_counter()
        for fut in as_completed([f for f in futures if f.key in meta]):
            job, pilot_size = meta[fut.key]
            try:
                counts, sums, fanouts, tail_mean, seconds = fut.result()
            except OverloadError as exc:  # raised by the point's pilot task
                raise _overloaded(job, exc) from None
            fut.release()
            assert job.model is not None
            part = PointResult(job.params, job.model, counts, sums, fanouts, tail_mean, seconds)
            progress.advance(part.fanouts + pilot_size)
            merged = _merge(partial.get(job.key), part)
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
# Entry point


def run_jobs(
    jobs: Sequence[Job],
    on_done: Callable[[Job, PointResult], None],
    *,
    threads: int | None = None,
    dask: str | Any | None = None,
    progress: bool | None = None,
) -> None:
    """Simulate ``jobs``, calling ``on_done(job, result)`` (in this thread) as each one completes.

    ``progress=None`` shows a bar only on a terminal. ``dask`` is a scheduler address, ``"local"``
    or a ``distributed.Client``. On KeyboardInterrupt, running chunks finish, queued ones are
    dropped and the interrupt propagates; points already passed to ``on_done`` are kept.
    """
    jobs = [j for j in jobs if j.chunks]
    threads = threads or default_threads()
    bar = _Progress(jobs, progress)
    try:
        if dask is None:
            _run_local(jobs, threads, bar, on_done)
        else:
            _run_dask(jobs, dask, threads, bar, on_done)
    finally:
        bar.close()

