"""One sweep point's work, chunk by chunk: random streams, the compiled kernel calls, results.

Randomness (docs/model.md §6): chunk ``i`` of a point draws from
``SFC64(SeedSequence(seed, spawn_key=(stream key, i, stream)))``. The stream key is explicit: by
default the point's own (:attr:`~mcsmp.config.Params.stream_key`, from its model hash), or one a
caller pins so that several parameter sets share their draws (common random numbers in
``mcsmp calibrate``). The kernel runs NumPy's SFC64 and NumPy's transforms inline
(:mod:`mcsmp.kernels.rng`), so its draws equal ``numpy.random.Generator(SFC64(...))``'s. Chunks
have a fixed size (:data:`CHUNK_FANOUTS`), so a result depends on the parameters, the seed and the
stream key only, never on threads, processes, shards or machines. Histograms merge by integer
addition; exact sums are kept per chunk and added in chunk order.

Re-entry tail (docs/model.md §3): when some call can be preempted in its wait, a first pass over
the *pilot* chunks (the first :data:`PILOT_CHUNKS` chunks of the point) records ``T − S_L``; the
second pass samples the spin from that histogram. A fixed pilot keeps the second pass computable
by every shard or worker on its own, bit-identically. The spin is drawn from a chunk's auxiliary
stream only, so a pilot chunk is simulated once: its first pass keeps a small per-fan-out trace
(``S_L``, ``T``, sender, context, allocation failure) and :func:`replay_chunk` redoes just the
policy rows from it (the same counts and sums, bit for bit, as running the chunk again).

Scheduling (threads, Dask, shards) is :mod:`mcsmp.sim.scheduler`'s job; nothing here owns a pool.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .._jit import compile_lock
from .._util import usable_cpus
from ..config import Params
from ..errors import OverloadError, UserError
from ..kernels import codes as K
from ..kernels.fanout import replay_policies, run_chunk
from ..kernels.rng import seed_state
from .histogram import Histogram, Layout
from .model import CompiledModel, hist_row, policy_rows

__all__ = [
    "CHUNK_FANOUTS",
    "NO_WAIT_TAIL",
    "PILOT_CHUNKS",
    "STREAM_SCHEME",
    "ChunkOutput",
    "PointResult",
    "WaitTail",
    "chunk_sizes",
    "default_threads",
    "pilot_chunks",
    "replay_chunk",
    "simulate_chunk",
    "stream_states",
    "wait_tail_from",
    "warm_up",
]

CHUNK_FANOUTS = 1 << 16  # ~30-60 ms of work at 16 CPUs: fine-grained enough to balance threads
PILOT_CHUNKS = 16
# SFC64 rather than PCG64: a 4-word state with add/xor/shift/rotate only, cheap enough to run
# inline in registers (PCG64 needs a 128-bit multiply); see BENCHMARKS.md for the measurements.
STREAM_SCHEME = (
    "SFC64(SeedSequence(seed, spawn_key=(int(stream_hash[:16], 16), chunk, stream))), stream_hash the "
    "model hash with cache.placement set to percpu (placements share draws), stream 0 the timeline, "
    "1 the re-entry spin, 2 the flush-request placement's draws; draws = numpy.random.Generator(SFC64) "
    "transforms, bit for bit"
)
MAIN_STREAM, AUX_STREAM, REQUEST_STREAM = 0, 1, 2


MAX_THREADS = 1024  # worker threads (--threads, MCSMP_THREADS)


def default_threads() -> int:
    """Worker threads: ``MCSMP_THREADS`` if set, else every usable core."""
    env = os.environ.get("MCSMP_THREADS", "").strip()
    if not env:
        return usable_cpus()
    if not env.isdigit() or not 1 <= int(env) <= MAX_THREADS:
        raise UserError(f"MCSMP_THREADS: expected a whole number of threads in [1, {MAX_THREADS}], got {env[:40]!r}")
    return int(env)


def chunk_sizes(samples: int) -> list[int]:
    full, rest = divmod(samples, CHUNK_FANOUTS)
    return [CHUNK_FANOUTS] * full + ([rest] if rest else [])


def stream_states(seed: int, stream_key: int, chunk: int) -> np.ndarray:
    """``uint64[3, 4]``: the SFC64 states of chunk ``chunk``'s main, auxiliary and request streams."""
    seqs = (
        np.random.SeedSequence(seed, spawn_key=(stream_key, chunk, st))
        for st in (MAIN_STREAM, AUX_STREAM, REQUEST_STREAM)
    )
    return np.stack([seed_state(ss) for ss in seqs])


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class PointResult:
    """Mergeable outcome of (part of) one sweep point: histogram counts and per-chunk sums."""

    params: Params
    model: CompiledModel
    counts: np.ndarray  # int64[n_hists, n_buckets]
    chunk_sums: dict[int, np.ndarray]  # chunk -> float64[n_hists]
    chunk_fanouts: dict[int, int]
    wait_tail_mean: float  # E[T − S_L] of the pilot (0 when no second pass)
    seconds: float = 0.0
    samples: np.ndarray | None = field(default=None, repr=False)  # per fan-out (tests only)
    stream_key: int | None = None  # None: the point's own (params.stream_key)
    # chunk -> int64[n_hists]: values recorded per row in that chunk (for batch-means intervals;
    # empty for files written before it existed)
    chunk_counts: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return self.model.layout

    @property
    def fanouts(self) -> int:
        return sum(self.chunk_fanouts.values())

    @property
    def target_samples(self) -> int:
        """Simulated targets (one ``remote_wait_ns`` value each)."""
        rows = self.model.n_rows
        return int(sum(self.counts[s * rows + K.H_REMOTE_WAIT].sum() for s in range(self.model.rare.n_strata)))

    @property
    def complete(self) -> bool:
        return len(self.chunk_fanouts) == len(chunk_sizes(self.params.samples))

    def row_histogram(self, row: int) -> Histogram:
        """The histogram of one row of the kernel's layout (:mod:`mcsmp.kernels.codes`): with
        strata, their combination (:meth:`Histogram.stratified`) with the exact stratum
        probabilities; per-target rows (``remote_wait_ns``, ``info_cost_ns``) pool targets, so
        stratum ``s`` weighs ``P(s) · n_s / f_s`` (``n_s`` values from ``f_s`` fan-outs)."""
        plan = self.model.rare
        if not plan.stratified:
            return self._raw_histogram(row)
        rows = self.model.n_rows
        parts = [self._raw_histogram(s * rows + row) for s in range(plan.n_strata)]
        weights = list(plan.probs)
        if row in (K.H_REMOTE_WAIT, K.H_INFO_COST):
            fanouts = [int(self.counts[s * rows + K.H_CALL].sum()) for s in range(plan.n_strata)]
            weights = [p * h.n / f if f else 0.0 for p, h, f in zip(plan.probs, parts, fanouts, strict=True)]
        return Histogram.stratified(self.layout, parts, weights)

    def _raw_histogram(self, row: int) -> Histogram:
        total = 0.0
        for chunk in sorted(self.chunk_sums):  # chunk order: bit-identical however it was run
            total += float(self.chunk_sums[chunk][row])
        batches = None
        chunks = sorted(self.chunk_sums)
        if chunks and all(c in self.chunk_counts for c in chunks):
            batches = (
                np.array([float(self.chunk_sums[c][row]) for c in chunks]),
                np.array([int(self.chunk_counts[c][row]) for c in chunks], dtype=np.int64),
            )
        return Histogram(self.layout, self.counts[row].copy(), total, batches)

    def histogram(self, metric: str, policy: str = "", group: int | None = None) -> Histogram:
        """A sampled metric's histogram by name: ``call_ns``, ``remote_wait_ns``, ``info_cost_ns``,
        ``wait_tail_ns``, or ``preempt_off_ns`` / ``hotplug_block_ns`` of ``policy`` for CPU group
        ``group`` (CPUs with one call rate), pooled over every group when ``group`` is None."""
        pols = self.params.policies
        if metric in K.FIXED_HISTS:
            return self.row_histogram(hist_row(metric))
        if policy not in pols:
            raise KeyError(f"{metric}: policy {policy!r} is not simulated (policies: {', '.join(pols)})")
        groups = range(self.model.n_groups) if group is None else [group]
        pooled = Histogram.empty(self.layout)
        for g in groups:
            pooled = pooled + self.row_histogram(hist_row(metric, pols, policy, g))
        return pooled

    def policy_histograms(self, policy: str, group: int) -> tuple[Histogram, Histogram]:
        """``(P, H)`` of ``policy`` for one CPU group."""
        p_row, h_row = policy_rows(group, self.params.policies.index(policy), len(self.params.policies))
        return self.row_histogram(p_row), self.row_histogram(h_row)

    def merge(self, other: PointResult) -> PointResult:
        overlap = set(self.chunk_sums) & set(other.chunk_sums)
        if overlap:
            raise ValueError(f"chunks {sorted(overlap)[:5]} are in both results")
        if (
            other.params.model_hash != self.params.model_hash
            or other.params.seed != self.params.seed
            or other.stream_key != self.stream_key
        ):
            raise ValueError("results of different parameters, seeds or streams cannot be merged")
        return PointResult(
            self.params, self.model, self.counts + other.counts,
            {**self.chunk_sums, **other.chunk_sums}, {**self.chunk_fanouts, **other.chunk_fanouts},
            self.wait_tail_mean, self.seconds + other.seconds, None, self.stream_key,
            {**self.chunk_counts, **other.chunk_counts} if self.chunk_counts and other.chunk_counts else {},
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The re-entry second pass


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


def wait_tail_from(model: CompiledModel, tail: Histogram) -> WaitTail:
    """The second-pass table from the first pass's ``T − S_L`` histogram, checked: ρ_w = λ · E[T − S_L]
    is a probability, and at ≥ 1 every call would overlap an outstanding wait."""
    if tail.n == 0 or tail.total <= 0:
        cum, scale = np.zeros(0), 0.0
    else:
        edges = tail.layout.edges
        hi = np.where(np.isfinite(edges[1:]), edges[1:], edges[:-1])
        mid = 0.5 * (edges[:-1] + hi)
        w = tail.counts * mid
        w[-1] = 0.0  # the overflow bucket has no upper edge; > 1e12 ns waits are not a section length
        cum = np.cumsum(w) / w.sum()
        cum[-1] = 1.0
        scale = tail.mean * 1e-9  # ρ_w = λ[Hz] · E[T − S_L][ns] · 1e-9
    rate = float(model.rate_hz.max())
    if rate * scale >= 1.0:
        raise OverloadError(
            f"a CPU is overloaded by re-entry: workload.rate_hz {rate:g} Hz x E[T - S_L] {scale * 1e9:.4g} ns "
            f"= {rate * scale:.3g} >= 1, calls overlap each other's waits (lower the rate or set policy.reentry: off)"
        )
    return WaitTail(cum, scale, tail.mean)


# --------------------------------------------------------------------------------------------
# Chunks


@dataclass
class ChunkOutput:
    chunk: int
    fanouts: int
    sums: np.ndarray  # float64[n_hists]
    counts: np.ndarray | None = None  # the chunk's own counts (None: added to the caller's)
    samples: np.ndarray | None = None  # per fan-out, when kept
    trace: np.ndarray | None = None  # first pass of a pilot chunk, for replay_chunk
    ns: np.ndarray | None = None  # int64[n_hists]: values recorded per row in this chunk


def _fp(model: CompiledModel, tail: WaitTail) -> np.ndarray:
    fp = model.fp.copy()
    fp[K.F_REENTRY_SCALE] = tail.scale
    return fp


def simulate_chunk(
    params: Params,
    model: CompiledModel,
    chunk: int,
    tail: WaitTail,
    stream_key: int,
    *,
    counts: np.ndarray | None = None,
    keep_samples: bool = False,
    trace: bool = False,
) -> ChunkOutput:
    """Simulate chunk ``chunk``; its counts are *added* to ``counts`` when given (else returned)."""
    fanouts = chunk_sizes(params.samples)[chunk]
    own = counts is None
    if counts is None:
        counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(model.n_hists, dtype=np.float64)
    n_cols = K.N_SAMPLE_COLS + 2 * len(model.policies)
    samples = np.zeros((fanouts if keep_samples else 0, n_cols), dtype=np.float64)
    tr = np.zeros((fanouts if trace else 0, K.N_TRACE_COLS), dtype=np.float64)
    before = None if own else counts.sum(axis=1)
    run_chunk(
        fanouts, model.ip, _fp(model, tail), model.index, model.table, model.rate_cum, model.rate_hz,
        model.group_of, model.policies, tail.cum, model.layout.edges, stream_states(params.seed, stream_key, chunk),
        counts, sums, samples, tr, model.rare.kernel_arrays(fanouts),
    )  # fmt: skip
    ns = counts.sum(axis=1) if before is None else counts.sum(axis=1) - before
    return ChunkOutput(
        chunk, fanouts, sums, counts if own else None, samples if keep_samples else None, tr if trace else None, ns
    )


def replay_chunk(
    params: Params, model: CompiledModel, first: ChunkOutput, tail: WaitTail, stream_key: int
) -> ChunkOutput:
    """The second pass of a traced pilot chunk from its first pass: the same counts and sums as
    :func:`simulate_chunk` with ``tail``, bit for bit, with only the policy rows recomputed."""
    assert first.trace is not None and first.counts is not None
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(model.n_hists, dtype=np.float64)
    aux = stream_states(params.seed, stream_key, first.chunk)[AUX_STREAM].copy()
    replay_policies(
        first.trace.shape[0], model.ip, _fp(model, tail), model.group_of, model.rate_hz, model.policies,
        tail.cum, model.layout.edges, aux, first.trace, counts, sums, model.rare.bounds(first.fanouts),
    )  # fmt: skip
    for s in range(model.rare.n_strata):
        fixed = slice(s * model.n_rows, s * model.n_rows + K.N_FIXED_HISTS)
        counts[fixed] = first.counts[fixed]
        sums[fixed] = first.sums[fixed]
    return ChunkOutput(first.chunk, first.fanouts, sums, counts, ns=counts.sum(axis=1))


def warm_up(model: CompiledModel) -> None:
    """Compile (or load from the disk cache) the kernels once per process, under the
    inter-process compile lock, before any worker thread calls them."""
    need = {"run_chunk"} | ({"replay_policies"} if model.needs_reentry else set())
    if need <= _WARM:
        return
    with _WARM_LOCK, compile_lock():
        counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
        if "run_chunk" not in _WARM:
            samples = np.zeros((0, K.N_SAMPLE_COLS + 2 * len(model.policies)), dtype=np.float64)
            run_chunk(
                0, model.ip, model.fp.copy(), model.index, model.table, model.rate_cum, model.rate_hz,
                model.group_of, model.policies, np.zeros(0), model.layout.edges,
                np.zeros((3, 4), dtype=np.uint64), counts, np.zeros(model.n_hists), samples,
                np.zeros((0, K.N_TRACE_COLS)), model.rare.kernel_arrays(0),
            )  # fmt: skip
            _WARM.add("run_chunk")
        if "replay_policies" in need and "replay_policies" not in _WARM:
            replay_policies(
                0, model.ip, model.fp.copy(), model.group_of, model.rate_hz, model.policies, np.zeros(0),
                model.layout.edges, np.zeros(4, dtype=np.uint64), np.zeros((0, K.N_TRACE_COLS)),
                counts, np.zeros(model.n_hists), model.rare.bounds(0),
            )  # fmt: skip
            _WARM.add("replay_policies")


_WARM: set[str] = set()  # kernels already compiled or loaded in this process
_WARM_LOCK = threading.Lock()
