"""Running one sweep point: fixed-size chunks, one random stream per chunk, a thread pool.

Randomness (MODEL.md §6): chunk ``i`` of a point draws from
``SFC64(SeedSequence(seed, spawn_key=(point key, i, stream)))`` where the point key is taken from
the point's model hash; the kernel runs NumPy's SFC64 and NumPy's transforms inline
(:mod:`mcsmp.kernels.rng`), so its draws equal ``numpy.random.Generator(SFC64(...))``'s. Chunks
have a fixed size (:data:`CHUNK_FANOUTS`), so a result depends on the parameters and the seed
only, never on threads, processes, shards or machines. Histograms merge by integer addition;
exact sums are added in chunk order.

Scheduling and memory: at most :data:`LOOKAHEAD` chunks per worker thread are queued at a time,
each worker thread adds its chunks' counts into one accumulator of its own (integer sums, so the
order does not matter), and only the per-chunk float sums (one small vector per chunk) are kept.
Memory is therefore independent of ``samples``. The kernels are compiled (or loaded from the
on-disk cache) once per process, before any worker starts, under :func:`mcsmp._jit.compile_lock`.

Re-entry tail (MODEL.md §3): when some call can be preempted in its wait, a first pass over the
*pilot* chunks (the first :data:`PILOT_CHUNKS` chunks of the point) records ``T − S_L``; the
second pass samples the spin from that histogram. Using a fixed pilot keeps the second pass
computable by every shard or worker on its own, with bit-identical results. The spin is drawn
from a chunk's auxiliary stream only, so in :func:`run_point` the second pass of a pilot chunk
does not rerun it: the first pass keeps a small per-fan-out trace (``S_L``, ``T``, sender,
context, allocation failure) and :func:`mcsmp.kernels.fanout.replay_policies` redoes just the
policy rows from it (same counts and sums, bit for bit; ~25 MB for 16 chunks).
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._jit import compile_lock
from .errors import OverloadError
from .kernels import fanout as K
from .kernels.rng import seed_state
from .model import CompiledModel, compile_model
from .params import Params
from .stats import Histogram, Layout

__all__ = [
    "CHUNK_FANOUTS",
    "NO_WAIT_TAIL",
    "PILOT_CHUNKS",
    "STREAM_SCHEME",
    "PointResult",
    "WaitTail",
    "chunk_sizes",
    "default_threads",
    "pilot_chunks",
    "run_chunks",
    "run_point",
    "wait_tail_of",
    "warm_up",
]

CHUNK_FANOUTS = 1 << 16  # ~30-60 ms of work at 16 CPUs: fine-grained enough to balance threads
LOOKAHEAD = 2  # queued chunks per worker thread
PILOT_CHUNKS = 16
# SFC64 rather than PCG64: a 4-word state with add/xor/shift/rotate only, cheap enough to run
# inline in registers (PCG64 needs a 128-bit multiply); see BENCHMARKS.md for the measurements.
STREAM_SCHEME = (
    "SFC64(SeedSequence(seed, spawn_key=(int(model_hash[:16], 16), chunk, stream))), stream 0 the "
    "timeline, 1 the re-entry spin; draws = numpy.random.Generator(SFC64) transforms, bit for bit"
)
_MAIN_STREAM, _AUX_STREAM = 0, 1


def default_threads() -> int:
    env = os.environ.get("MCSMP_THREADS")
    if env:
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def chunk_sizes(samples: int) -> list[int]:
    full, rest = divmod(samples, CHUNK_FANOUTS)
    return [CHUNK_FANOUTS] * full + ([rest] if rest else [])


def _seed_seqs(params: Params, chunk: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The seed sequences of chunk ``chunk``'s main and auxiliary streams (STREAM_SCHEME)."""
    key = int(params.model_hash[:16], 16)
    main, aux = (np.random.SeedSequence(params.seed, spawn_key=(key, chunk, st)) for st in (_MAIN_STREAM, _AUX_STREAM))
    return main, aux


def _streams(params: Params, chunk: int) -> np.ndarray:
    """``uint64[2, 4]``: the SFC64 states of chunk ``chunk``'s main and auxiliary streams."""
    return np.stack([seed_state(ss) for ss in _seed_seqs(params, chunk)])


@dataclass
class ChunkOutput:
    chunk: int
    fanouts: int
    counts: np.ndarray
    sums: np.ndarray
    samples: np.ndarray
    trace: np.ndarray | None = None  # first pass of a pilot chunk, for replay_policies


def _run_one(
    params: Params,
    model: CompiledModel,
    chunk: int,
    fanouts: int,
    wait_tail: tuple[np.ndarray, float],
    keep_samples: bool,
    counts: np.ndarray | None = None,
    trace: bool = False,
) -> ChunkOutput:
    """Run one chunk; its counts are *added* to ``counts`` when given (else to fresh zeros)."""
    state = _streams(params, chunk)
    tr = np.zeros((fanouts if trace else 0, K.N_TRACE_COLS), dtype=np.float64)
    if counts is None:
        counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(model.n_hists, dtype=np.float64)
    n_cols = K.N_SAMPLE_COLS + 2 * len(model.policies)
    samples = np.zeros((fanouts if keep_samples else 0, n_cols), dtype=np.float64)
    cum, scale = wait_tail
    fp = model.fp.copy()
    fp[K.F_REENTRY_SCALE] = scale
    K.run_chunk(
        fanouts, model.ip, fp, model.index, model.table, model.rate_cum, model.rate_hz,
        model.group_of, model.policies, cum, model.layout.edges, state, counts, sums, samples, tr,
    )  # fmt: skip
    return ChunkOutput(chunk, fanouts, counts, sums, samples, tr if trace else None)


def _replay_one(
    params: Params, model: CompiledModel, chunk: int, trace: np.ndarray, wait_tail: tuple[np.ndarray, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Second pass of a pilot chunk from its first-pass trace: (counts, sums) of the policy rows."""
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(model.n_hists, dtype=np.float64)
    cum, scale = wait_tail
    fp = model.fp.copy()
    fp[K.F_REENTRY_SCALE] = scale
    aux = _streams(params, chunk)[_AUX_STREAM].copy()
    K.replay_policies(
        trace.shape[0], model.ip, fp, model.group_of, model.rate_hz, model.policies, cum,
        model.layout.edges, aux, trace, counts, sums,
    )  # fmt: skip
    return counts, sums


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
    w[-1] = 0.0  # the overflow bucket has no upper edge; > 1e12 ns waits are not a section length
    cum = np.cumsum(w) / w.sum()
    cum[-1] = 1.0
    return cum, hist.mean * 1e-9  # ρ_w = λ[Hz] · E[T − S_L][ns] · 1e-9


def _wait_tail(model: CompiledModel, tail: Histogram) -> WaitTail:
    """The second-pass table from the first pass's ``T − S_L`` histogram, checked: ρ_w = λ · E[T − S_L]
    is a probability, and at ≥ 1 every call would overlap an outstanding wait."""
    cum, scale = _wait_tail_table(tail)
    rate = float(model.rate_hz.max())
    if rate * scale >= 1.0:
        raise OverloadError(
            f"a CPU is overloaded by re-entry: workload.rate_hz {rate:g} Hz x E[T - S_L] {scale * 1e9:.4g} ns "
            f"= {rate * scale:.3g} >= 1, calls overlap each other's waits (lower the rate or set policy.reentry: off)"
        )
    return WaitTail(cum, scale, tail.mean)


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
        wait_tail = NO_WAIT_TAIL
        warm_up(model)
        replay: list[int] = []
        main = wanted
        first = None
        if model.needs_reentry:
            pilot = pilot_chunks(params, model)
            # A pilot chunk's second pass differs from its first only in the policy rows (the
            # spin comes from the auxiliary stream): keep a trace of the first pass and redo just
            # those rows (replay_policies), bit-identical to running the chunk again.
            if not keep_samples:
                replay = [c for c in pilot if c in set(wanted)]
                main = [c for c in wanted if c not in set(replay)]
            first = _run_all(params, model, pilot, sizes, (wait_tail.cum, wait_tail.scale), False, pool, None,
                             threads, set(replay))  # fmt: skip
            total = 0.0
            for chunk in sorted(first.sums):
                total += float(first.sums[chunk][K.H_WAIT_TAIL])
            wait_tail = _wait_tail(model, Histogram(model.layout, first.counts[K.H_WAIT_TAIL].copy(), total))
        traces = first.traces if first is not None else {}
        table = (wait_tail.cum, wait_tail.scale)
        replays = [pool.submit(_replay_one, params, model, c, traces[c], table) for c in replay]
        outs = _run_all(params, model, main, sizes, table, keep_samples, pool, progress, threads)
        for c, fut in zip(replay, replays, strict=True):
            assert first is not None
            counts, sums = fut.result()
            counts[: K.N_FIXED_HISTS] = first.fixed[c]
            sums[: K.N_FIXED_HISTS] = first.sums[c][: K.N_FIXED_HISTS]
            outs.counts += counts
            outs.sums[c], outs.fanouts[c] = sums, first.fanouts[c]
            if progress is not None:
                progress(first.fanouts[c])
        first = None  # the traces (about 25 MB at 16 pilot chunks) can go
    finally:
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
    samples = np.concatenate(outs.samples) if keep_samples and outs.samples else None
    return PointResult(
        params, model, outs.counts, outs.sums, outs.fanouts,
        wait_tail.mean, time.perf_counter() - start, samples,
    )  # fmt: skip


@dataclass
class _Reduced:
    counts: np.ndarray  # int64[n_hists, n_buckets], summed over the chunks
    sums: dict[int, np.ndarray]  # chunk -> float64[n_hists]
    fanouts: dict[int, int]
    samples: list[np.ndarray]  # in chunk order (only with keep_samples)
    traces: dict[int, np.ndarray] = field(default_factory=dict)  # traced chunk -> trace
    fixed: dict[int, np.ndarray] = field(default_factory=dict)  # traced chunk -> its rows < N_FIXED_HISTS


def _run_all(
    params: Params,
    model: CompiledModel,
    chunks: Sequence[int],
    sizes: Sequence[int],
    wait_tail: tuple[np.ndarray, float],
    keep_samples: bool,
    pool: ThreadPoolExecutor,
    progress: Callable[[int], None] | None,
    threads: int | None = None,
    traced: set[int] | frozenset[int] = frozenset(),
) -> _Reduced:
    """Run ``chunks`` on ``pool`` with bounded look-ahead; counts accumulate per worker thread.

    Chunks in ``traced`` also keep their first-pass trace and their own rows below
    ``N_FIXED_HISTS`` (for :func:`_replay_one`).
    """
    shape = (model.n_hists, model.layout.n_buckets)
    accumulators: dict[int, np.ndarray] = {}  # worker thread id -> its counts (this call only)

    def work(c: int) -> ChunkOutput:
        acc = accumulators.get(threading.get_ident())
        if acc is None:  # each thread inserts its own key only: no lock needed
            acc = accumulators.setdefault(threading.get_ident(), np.zeros(shape, dtype=np.int64))
        if c in traced:
            out = _run_one(params, model, c, sizes[c], wait_tail, keep_samples, None, trace=True)
            acc += out.counts
            return out
        return _run_one(params, model, c, sizes[c], wait_tail, keep_samples, acc)

    workers = threads or getattr(pool, "_max_workers", None) or default_threads()
    ahead = max(1, LOOKAHEAD * workers)
    todo = iter(chunks)
    pending = collections.deque(pool.submit(work, c) for c in itertools.islice(todo, ahead))
    out = _Reduced(np.zeros(shape, dtype=np.int64), {}, {}, [])
    while pending:  # in chunk order, so samples (tests only) come out in chunk order
        done = pending.popleft().result()
        for c in itertools.islice(todo, 1):
            pending.append(pool.submit(work, c))
        out.sums[done.chunk] = done.sums
        out.fanouts[done.chunk] = done.fanouts
        if done.trace is not None:
            out.traces[done.chunk] = done.trace
            out.fixed[done.chunk] = done.counts[: K.N_FIXED_HISTS].copy()
        if keep_samples:
            out.samples.append(done.samples)
        if progress is not None:
            progress(done.fanouts)
    for acc in accumulators.values():
        out.counts += acc
    return out


def warm_up(model: CompiledModel) -> None:
    """Compile (or load from the disk cache) the kernels once per process, under the
    inter-process compile lock, before any worker thread calls them."""
    need = {"run_chunk"} | ({"replay_policies"} if model.needs_reentry else set())
    if need <= _WARM:
        return
    with _WARM_LOCK, compile_lock():
        if "run_chunk" not in _WARM:
            counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
            samples = np.zeros((0, K.N_SAMPLE_COLS + 2 * len(model.policies)), dtype=np.float64)
            K.run_chunk(
                0, model.ip, model.fp.copy(), model.index, model.table, model.rate_cum, model.rate_hz,
                model.group_of, model.policies, np.zeros(0), model.layout.edges,
                np.zeros((2, 4), dtype=np.uint64), counts, np.zeros(model.n_hists), samples,
                np.zeros((0, K.N_TRACE_COLS)),
            )  # fmt: skip
            _WARM.add("run_chunk")
        if "replay_policies" in need and "replay_policies" not in _WARM:
            _replay_one_empty(model)
            _WARM.add("replay_policies")


def _replay_one_empty(model: CompiledModel) -> None:
    K.replay_policies(
        0, model.ip, model.fp.copy(), model.group_of, model.rate_hz, model.policies, np.zeros(0),
        model.layout.edges, np.zeros(4, dtype=np.uint64), np.zeros((0, K.N_TRACE_COLS)),
        np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64), np.zeros(model.n_hists),
    )  # fmt: skip


_WARM: set[str] = set()  # kernels already compiled or loaded in this process
_WARM_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Lower-level API for schedulers that interleave many points (mcsmp.runner): the same chunks,
# streams and second-pass table as run_point, one step at a time, so results stay bit-identical.


@dataclass(frozen=True)
class WaitTail:
    """Input of the second pass: length-biased cumulative weights of ``T − S_L``, the re-entry
    rate scale, and the pilot's ``E[T − S_L]`` (stored as ``PointResult.wait_tail_mean``)."""

    cum: np.ndarray
    scale: float
    mean: float


NO_WAIT_TAIL = WaitTail(np.zeros(0), 0.0, 0.0)


def pilot_chunks(params: Params, model: CompiledModel) -> list[int]:
    """The chunks of the first pass (empty when the point needs no re-entry tail)."""
    if not model.needs_reentry:
        return []
    return list(range(min(PILOT_CHUNKS, len(chunk_sizes(params.samples)))))


def wait_tail_of(pilot: PointResult) -> WaitTail:
    """The second-pass table from a first-pass result over :func:`pilot_chunks` (as run_point)."""
    return _wait_tail(pilot.model, pilot.histogram(K.H_WAIT_TAIL))


def run_chunks(
    params: Params,
    model: CompiledModel,
    chunks: Iterable[int],
    wait_tail: WaitTail = NO_WAIT_TAIL,
) -> PointResult:
    """Simulate ``chunks`` of one point in the calling thread: a partial, mergeable result.

    With ``wait_tail=NO_WAIT_TAIL`` this is the first pass; pass :func:`wait_tail_of` of the
    pilot's result for the second pass of a point with ``model.needs_reentry``.
    """
    start = time.perf_counter()
    warm_up(model)
    sizes = chunk_sizes(params.samples)
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums: dict[int, np.ndarray] = {}
    fanouts: dict[int, int] = {}
    for c in sorted(set(chunks)):
        out = _run_one(params, model, c, sizes[c], (wait_tail.cum, wait_tail.scale), False, counts)
        sums[c], fanouts[c] = out.sums, out.fanouts
    return PointResult(params, model, counts, sums, fanouts, wait_tail.mean, time.perf_counter() - start)
