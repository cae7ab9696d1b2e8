"""Running one sweep point: fixed-size chunks, one random stream per chunk, a thread pool.

Randomness (MODEL.md §6): chunk ``i`` of a point draws from
``PCG64(SeedSequence(seed, spawn_key=(point key, i, stream)))`` where the point key is taken from
the point's model hash. Chunks have a fixed size (:data:`CHUNK_FANOUTS`), so a result depends on
the parameters and the seed only, never on threads, processes, shards or machines. Histograms
merge by integer addition; exact sums are added in chunk order.

Re-entry tail (MODEL.md §3): when some call can be preempted in its wait, a first pass over the
*pilot* chunks (the first :data:`PILOT_CHUNKS` chunks of the point) records ``T − S_L``; the
second pass samples the spin from that histogram. Using a fixed pilot keeps the second pass
computable by every shard or worker on its own, with bit-identical results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .kernels import fanout as K
from .model import CompiledModel, compile_model
from .params import Params
from .stats import Histogram, Layout

__all__ = [
    "CHUNK_FANOUTS",
    "PILOT_CHUNKS",
    "STREAM_SCHEME",
    "PointResult",
    "chunk_sizes",
    "default_threads",
    "run_point",
]

CHUNK_FANOUTS = 1 << 16
PILOT_CHUNKS = 16
STREAM_SCHEME = "PCG64(SeedSequence(seed, spawn_key=(int(model_hash[:16], 16), chunk, stream)))"
_MAIN_STREAM, _AUX_STREAM = 0, 1


def default_threads() -> int:
    env = os.environ.get("MCSMP_THREADS")
    if env:
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def chunk_sizes(samples: int) -> list[int]:
    full, rest = divmod(samples, CHUNK_FANOUTS)
    return [CHUNK_FANOUTS] * full + ([rest] if rest else [])


def _streams(params: Params, chunk: int) -> tuple[np.random.Generator, np.random.Generator]:
    key = int(params.model_hash[:16], 16)
    out = []
    for stream in (_MAIN_STREAM, _AUX_STREAM):
        ss = np.random.SeedSequence(params.seed, spawn_key=(key, chunk, stream))
        out.append(np.random.Generator(np.random.PCG64(ss)))
    return out[0], out[1]


@dataclass
class ChunkOutput:
    chunk: int
    fanouts: int
    counts: np.ndarray
    sums: np.ndarray
    samples: np.ndarray


def _run_one(
    params: Params,
    model: CompiledModel,
    chunk: int,
    fanouts: int,
    wait_tail: tuple[np.ndarray, float],
    keep_samples: bool,
) -> ChunkOutput:
    rng, aux = _streams(params, chunk)
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(model.n_hists, dtype=np.float64)
    n_cols = K.N_SAMPLE_COLS + 2 * len(model.policies)
    samples = np.zeros((fanouts if keep_samples else 0, n_cols), dtype=np.float64)
    cum, scale = wait_tail
    fp = model.fp.copy()
    fp[K.F_REENTRY_SCALE] = scale
    K.run_chunk(
        fanouts, model.ip, fp, model.index, model.table, model.rate_cum, model.rate_hz,
        model.group_of, model.policies, cum, model.layout.edges, rng, aux, counts, sums, samples,
    )  # fmt: skip
    return ChunkOutput(chunk, fanouts, counts, sums, samples)


@dataclass
class PointResult:
    """Mergeable outcome of (part of) one sweep point."""

    params: Params
    model: CompiledModel
    counts: np.ndarray  # int64[n_hists, n_buckets]
    chunk_sums: dict[int, np.ndarray]  # chunk -> float64[n_hists]
    chunk_fanouts: dict[int, int]
    wait_tail_mean: float  # E[T − S_L] of the pilot (0 when no second pass)
    seconds: float = 0.0
    samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def layout(self) -> Layout:
        return self.model.layout

    @property
    def fanouts(self) -> int:
        return sum(self.chunk_fanouts.values())

    @property
    def complete(self) -> bool:
        return len(self.chunk_fanouts) == len(chunk_sizes(self.params.samples))

    def histogram(self, row: int) -> Histogram:
        total = 0.0
        for chunk in sorted(self.chunk_sums):  # chunk order: bit-identical however it was run
            total += float(self.chunk_sums[chunk][row])
        return Histogram(self.layout, self.counts[row].copy(), total)

    def merge(self, other: PointResult) -> PointResult:
        overlap = set(self.chunk_sums) & set(other.chunk_sums)
        if overlap:
            raise ValueError(f"chunks {sorted(overlap)[:5]} are in both results")
        if other.params.model_hash != self.params.model_hash or other.params.seed != self.params.seed:
            raise ValueError("results of different parameters or seeds cannot be merged")
        return PointResult(
            self.params, self.model, self.counts + other.counts,
            {**self.chunk_sums, **other.chunk_sums}, {**self.chunk_fanouts, **other.chunk_fanouts},
            self.wait_tail_mean, self.seconds + other.seconds,
        )  # fmt: skip


def _wait_tail_table(hist: Histogram) -> tuple[np.ndarray, float]:
    """Cumulative length-biased bucket weights of ``T − S_L`` and the re-entry rate scale."""
    if hist.n == 0 or hist.total <= 0:
        return np.zeros(0), 0.0
    edges = hist.layout.edges
    hi = np.where(np.isfinite(edges[1:]), edges[1:], edges[:-1])
    mid = 0.5 * (edges[:-1] + hi)
    w = hist.counts * mid
    cum = np.cumsum(w) / w.sum()
    cum[-1] = 1.0
    return cum, hist.mean * 1e-9  # ρ_w = λ[Hz] · E[T − S_L][ns] · 1e-9


def run_point(
    params: Params,
    *,
    threads: int | None = None,
    chunks: Iterable[int] | None = None,
    progress: Callable[[int], None] | None = None,
    keep_samples: bool = False,
    model: CompiledModel | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> PointResult:
    """Simulate the chunks ``chunks`` (default: all) of one point; see the module docstring."""
    start = time.perf_counter()
    model = model or compile_model(params)
    sizes = chunk_sizes(params.samples)
    wanted = list(range(len(sizes))) if chunks is None else sorted(set(chunks))
    own_pool = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=threads or default_threads())
    try:
        wait_tail: tuple[np.ndarray, float] = (np.zeros(0), 0.0)
        wait_tail_mean = 0.0
        if model.needs_reentry:
            pilot = list(range(min(PILOT_CHUNKS, len(sizes))))
            first = _run_all(params, model, pilot, sizes, wait_tail, False, pool, None)
            merged = first[0].counts[K.H_WAIT_TAIL].copy()
            total = 0.0
            for out in first:
                if out is not first[0]:
                    merged += out.counts[K.H_WAIT_TAIL]
                total += float(out.sums[K.H_WAIT_TAIL])
            tail = Histogram(model.layout, merged, total)
            wait_tail = _wait_tail_table(tail)
            wait_tail_mean = tail.mean
        outs = _run_all(params, model, wanted, sizes, wait_tail, keep_samples, pool, progress)
    finally:
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    for out in outs:
        counts += out.counts
    samples = np.concatenate([o.samples for o in outs]) if keep_samples and outs else None
    return PointResult(
        params, model, counts, {o.chunk: o.sums for o in outs}, {o.chunk: o.fanouts for o in outs},
        wait_tail_mean, time.perf_counter() - start, samples,
    )  # fmt: skip


def _run_all(
    params: Params,
    model: CompiledModel,
    chunks: Sequence[int],
    sizes: Sequence[int],
    wait_tail: tuple[np.ndarray, float],
    keep_samples: bool,
    pool: ThreadPoolExecutor,
    progress: Callable[[int], None] | None,
) -> list[ChunkOutput]:
    futures = [
        pool.submit(_run_one, params, model, c, sizes[c], wait_tail, keep_samples) for c in chunks
    ]
    outs = []
    for fut in futures:  # in chunk order, so samples (tests only) come out in chunk order
        out = fut.result()
        outs.append(out)
        if progress is not None:
            progress(out.fanouts)
    return outs
