"""The draw floor: the time just to draw the random variates the model needs, nothing else.

``draw_only`` walks one chunk of fan-outs exactly as :func:`mcsmp.kernels.fanout.run_chunk`
does, but only draws: the same generator (SFC64 in registers), the same samplers
(:mod:`mcsmp.kernels.sampling`, including the ``exp`` of every lognormal and the inverse-CDF
search of every mixture), the same number of draws in the same order, and it keeps each
variate alive by summing it. Everything the model does *with* the variates is left out: the
timeline, the distance classes beyond what decides whether a draw happens, the arrival order of
the request reads, the wait loop, the policies and the histograms.

That it draws exactly the same variates is checked, not assumed: after a chunk both functions
must leave all three random streams in the same state (:func:`check_same_draws`, also run by
``benchmarks/bench.py`` and tests/test_numpy_reference.py). The ratio kernel time / floor time is
then the cost of the model itself on top of its random numbers.

Run alone: ``.venv/bin/python benchmarks/draw_floor.py [params.yaml [point]]``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from mcsmp._jit import kernel
from mcsmp.config import Params
from mcsmp.kernels import codes as K
from mcsmp.kernels.fanout import _spin as reentry_spin  # the kernel's own spin draw, measured as is
from mcsmp.kernels.fanout import run_chunk
from mcsmp.kernels.histo import float_bits
from mcsmp.kernels.rng import exponential, normal, uniform
from mcsmp.kernels.sampling import fast_draw, fast_params, pick_row, sample, sample_residual
from mcsmp.sim.engine import chunk_sizes, stream_states, warm_up
from mcsmp.sim.model import CompiledModel, compile_model

__all__ = ["check_same_draws", "draw_only", "floor_seconds", "primitive_costs"]


@kernel
def draw_only(  # type: ignore[no-untyped-def]
    n_fanouts, ip, fp, index, table, rate_cum, rate_hz, wait_tail_cum, edges, state
):
    """Draw what ``run_chunk`` draws for ``n_fanouts`` fan-outs; return the xor of their bits."""
    n = ip[K.I_CPUS]
    mm_cpus = ip[K.I_MM_CPUS]
    call = ip[K.I_CALL]
    is_tlb = call != K.CALL_GENERIC
    cluster_mode = ip[K.I_CLUSTER_MODE] == 1
    cluster_size = ip[K.I_CLUSTER_SIZE]
    placement = ip[K.I_PLACEMENT]
    reentry = ip[K.I_REENTRY] == 1 and wait_tail_cum.shape[0] > 0
    uniform_rate = ip[K.I_UNIFORM_RATE] == 1
    target_prob = fp[K.F_TARGET_PROB]
    f_irq = fp[K.F_IRQ]
    f_idle = f_irq + fp[K.F_IDLE]
    f_vcpu = f_idle + fp[K.F_VCPU]
    rate_rows = rate_cum.reshape(n, 1)
    tail_rows = wait_tail_cum.reshape(-1, 1)
    rs = (state[0, 0], state[0, 1], state[0, 2], state[0, 3])
    xs = (state[1, 0], state[1, 1], state[1, 2], state[1, 3])
    ps = (state[2, 0], state[2, 1], state[2, 2], state[2, 3])
    slot = np.arange(K.N_DISTS)  # run-time slot ids: one compiled specialisation, not one per slot
    pk, pa, pb = fast_params(index, table, slot[K.D_PAGES])
    ek, ea, eb = fast_params(index, table, slot[K.D_ENTRY])
    qk, qa, qb = fast_params(index, table, slot[K.D_QUEUE])
    sk, sa, sb = fast_params(index, table, slot[K.D_SEND])
    dk, da, db = fast_params(index, table, slot[K.D_DELIVERY])
    xk, xa, xb = fast_params(index, table, slot[K.D_CROSS_SOCKET])
    ik, ia, ib = fast_params(index, table, slot[K.D_IRQ_ENTRY])
    fk, fa, fb = fast_params(index, table, slot[K.D_FUNC])
    ffk, ffa, ffb = fast_params(index, table, slot[K.D_FULL_FLUSH])
    ilk, ila, ilb = fast_params(index, table, slot[K.D_INVLPG])
    # which targets are remote, and their clusters: decides whether a draw happens at all
    socket_of = np.empty(n, dtype=np.int64)
    cluster_of = np.empty(n, dtype=np.int64)
    for t in range(n):
        socket_of[t] = t // ip[K.I_PER_SOCKET]
        cluster_of[t] = t // cluster_size
    remote = np.empty(n, dtype=np.bool_)  # per target: draws a cross-socket delay
    clusters = np.empty(n, dtype=np.int64)  # per target: its x2APIC cluster
    seen = np.zeros(n // cluster_size + 1, dtype=np.bool_)
    offsets = np.arange(max(n - 1, 1), dtype=np.int64)
    chosen = np.empty(max(n - 1, 1), dtype=np.int64)
    acc = 0  # xor of the variates' bits: keeps every draw alive at 1 cycle per variate
    for _ in range(n_fanouts):
        u, rs = uniform(rs)
        if uniform_rate:
            s = min(int(u * n), n - 1)
        else:
            s = pick_row(rate_rows, 0, n, 0, u)
        acc ^= s
        lam = rate_hz[s]
        if call == K.CALL_TLB_KERNEL or mm_cpus < 0:
            m = n - 1
            for r in range(m):
                chosen[r] = r
        else:
            m = mm_cpus
            for r in range(m):
                u, rs = uniform(rs)
                j = r + min(int(u * (n - 1 - r)), n - 2 - r)
                offsets[r], offsets[j] = offsets[j], offsets[r]
                v = offsets[r]
                p = r
                while p > 0 and chosen[p - 1] > v:  # target order decides the draw order
                    chosen[p] = chosen[p - 1]
                    p -= 1
                chosen[p] = v
        skip_lazy = call != K.CALL_TLB_KERNEL and target_prob < 1.0
        k = 0
        for r in range(m):
            if skip_lazy:
                u, rs = uniform(rs)
                if u >= target_prob:
                    continue
            t = s + 1 + chosen[r]
            if t >= n:
                t -= n
            remote[k] = socket_of[t] != socket_of[s]
            clusters[k] = cluster_of[t]
            k += 1
        pages = 0.0
        full = False
        if is_tlb:
            pages, rs, ok = fast_draw(pk, pa, pb, rs)
            if not ok:
                pages, rs = sample(index, table, slot[K.D_PAGES], rs)
            full = pages > ip[K.I_CEILING]
            acc ^= float_bits(pages)
        if not is_tlb:
            wk, wa, wb, wd = fk, fa, fb, slot[K.D_FUNC]
        elif full:
            wk, wa, wb, wd = ffk, ffa, ffb, slot[K.D_FULL_FLUSH]
        else:
            wk, wa, wb, wd = ilk, ila, ilb, slot[K.D_INVLPG]
        x, rs, ok = fast_draw(ek, ea, eb, rs)
        if not ok:
            x, rs = sample(index, table, slot[K.D_ENTRY], rs)
        acc ^= float_bits(x)
        for _j in range(k):
            x, rs, ok = fast_draw(qk, qa, qb, rs)
            if not ok:
                x, rs = sample(index, table, slot[K.D_QUEUE], rs)
            acc ^= float_bits(x)
        for j in range(k):
            if cluster_mode:
                if seen[clusters[j]]:
                    continue
                seen[clusters[j]] = True
            x, rs, ok = fast_draw(sk, sa, sb, rs)
            if not ok:
                x, rs = sample(index, table, slot[K.D_SEND], rs)
            acc ^= float_bits(x)
        if cluster_mode:
            for j in range(k):
                seen[clusters[j]] = False
        if ip[K.I_RUN_LOCAL] == 1:
            x, rs, ok = fast_draw(wk, wa, wb, rs)
            if not ok:
                x, rs = sample(index, table, wd, rs)
            acc ^= float_bits(x)
        for j in range(k):
            x, rs, ok = fast_draw(dk, da, db, rs)
            if not ok:
                x, rs = sample(index, table, slot[K.D_DELIVERY], rs)
            acc ^= float_bits(x)
            if remote[j]:
                x, rs, ok = fast_draw(xk, xa, xb, rs)
                if not ok:
                    x, rs = sample(index, table, slot[K.D_CROSS_SOCKET], rs)
                acc ^= float_bits(x)
            u, rs = uniform(rs)
            if u < f_irq:
                x, rs = sample_residual(index, table, slot[K.D_IRQ_OFF_LEN], rs)
                acc ^= float_bits(x)
            elif u < f_idle:
                x, rs = sample(index, table, slot[K.D_IDLE_EXIT], rs)
                acc ^= float_bits(x)
            elif u < f_vcpu:
                x, rs = sample_residual(index, table, slot[K.D_VCPU_LEN], rs)
                acc ^= float_bits(x)
            x, rs, ok = fast_draw(ik, ia, ib, rs)
            if not ok:
                x, rs = sample(index, table, slot[K.D_IRQ_ENTRY], rs)
            acc ^= float_bits(x)
            x, rs, ok = fast_draw(wk, wa, wb, rs)
            if not ok:
                x, rs = sample(index, table, wd, rs)
            acc ^= float_bits(x)
        if is_tlb and k > 0 and placement != K.PLACE_PERCPU:  # the request stream's draws (§2)
            u, ps = uniform(ps)
            acc ^= float_bits(u)
            for _j in range(k):
                for _line in range(3):  # two false-sharing uniforms and the TLB-miss one
                    u, ps = uniform(ps)
                    acc ^= float_bits(u)
                if u < fp[K.F_TLB_MISS]:
                    x, ps = sample(index, table, slot[K.D_PAGE_WALK], ps)
                    acc ^= float_bits(x)
        u, rs = uniform(rs)
        acc ^= float_bits(u)
        u, rs = uniform(rs)
        acc ^= float_bits(u)
        if reentry:  # the spin is nothing but draws: the kernel's own function
            spin, xs = reentry_spin(xs, lam * fp[K.F_REENTRY_SCALE], tail_rows, edges)
            acc ^= float_bits(spin)
    state[0, 0], state[0, 1], state[0, 2], state[0, 3] = rs
    state[1, 0], state[1, 1], state[1, 2], state[1, 3] = xs
    state[2, 0], state[2, 1], state[2, 2], state[2, 3] = ps
    return acc


def _fp(model: CompiledModel, scale: float) -> np.ndarray:
    fp = model.fp.copy()
    fp[K.F_REENTRY_SCALE] = scale
    return fp


def _kernel_chunk(model: CompiledModel, n: int, state: np.ndarray, tail: np.ndarray, scale: float) -> None:
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    samples = np.zeros((0, K.N_SAMPLE_COLS + 2 * len(model.policies)))
    run_chunk(
        n, model.ip, _fp(model, scale), model.index, model.table, model.rate_cum, model.rate_hz,
        model.group_of, model.policies, tail, model.layout.edges, state, counts,
        np.zeros(model.n_hists), samples, np.zeros((0, K.N_TRACE_COLS)), model.rare.kernel_arrays(n),
    )  # fmt: skip


def _floor_chunk(model: CompiledModel, n: int, state: np.ndarray, tail: np.ndarray, scale: float) -> int:
    return int(
        draw_only(
            n, model.ip, _fp(model, scale), model.index, model.table, model.rate_cum, model.rate_hz,
            tail, model.layout.edges, state,
        )  # fmt: skip
    )


def _check_scope(params: Params) -> None:
    if params.workload.call == "single":  # its polling draw and one-target path are not mirrored here
        raise NotImplementedError("draw_floor: smp_call_function_single() (docs/model.md 9.37) is not modelled here")
    if params.ipi.sender_preempt_hz > 0:  # its Poisson draws are not mirrored here
        raise NotImplementedError("draw_floor: host preemption of the sender's vCPU (docs/model.md 9.39) is not modelled here")


def check_same_draws(params: Params, n: int = 4096, tail: np.ndarray | None = None, scale: float = 0.0) -> bool:
    """True when ``draw_only`` and ``run_chunk`` leave all three streams in the same state."""
    _check_scope(params)
    model = compile_model(params)
    tail = np.zeros(0) if tail is None else tail
    a, b = stream_states(params.seed, params.stream_key, 0), stream_states(params.seed, params.stream_key, 0)
    _kernel_chunk(model, n, a, tail, scale)
    _floor_chunk(model, n, b, tail, scale)
    return bool(np.array_equal(a, b))


def floor_seconds(params: Params, chunks: int = 4, repeats: int = 5) -> tuple[float, float, int]:
    """Median single-thread seconds of (floor, kernel) per chunk of ``CHUNK_FANOUTS``, interleaved.

    Also returns the target-samples per chunk. CPU time of the calling thread, so another
    process on the machine disturbs the figures less than wall time would.
    """
    _check_scope(params)
    model = compile_model(params)
    warm_up(model)
    n = chunk_sizes(max(params.samples, 1))[0]
    tail = np.zeros(0)
    _floor_chunk(model, 16, stream_states(params.seed, params.stream_key, 0), tail, 0.0)
    targets = 0
    floors, kernels = [], []
    for _ in range(repeats):
        for which in ("floor", "kernel"):
            t0 = time.thread_time()
            for c in range(chunks):
                st = stream_states(params.seed, params.stream_key, c)
                if which == "floor":
                    _floor_chunk(model, n, st, tail, 0.0)
                else:
                    _kernel_chunk(model, n, st, tail, 0.0)
            dt = (time.thread_time() - t0) / chunks
            (floors if which == "floor" else kernels).append(dt)
    targets = _targets_per_chunk(params, model, n)
    return float(np.median(floors)), float(np.median(kernels)), targets


def _targets_per_chunk(params: Params, model: CompiledModel, n: int) -> int:
    counts = np.zeros((model.n_hists, model.layout.n_buckets), dtype=np.int64)
    samples = np.zeros((0, K.N_SAMPLE_COLS + 2 * len(model.policies)))
    run_chunk(
        n, model.ip, model.fp.copy(), model.index, model.table, model.rate_cum, model.rate_hz,
        model.group_of, model.policies, np.zeros(0), model.layout.edges, stream_states(params.seed, params.stream_key, 0),
        counts, np.zeros(model.n_hists), samples, np.zeros((0, K.N_TRACE_COLS)), model.rare.kernel_arrays(n),
    )  # fmt: skip
    return int(counts[K.H_REMOTE_WAIT].sum())


@kernel
def _prim(which, n, state):  # type: ignore[no-untyped-def]
    s = (state[0], state[1], state[2], state[3])
    acc = 0
    for _ in range(n):
        if which == 0:
            x, s = uniform(s)
        elif which == 1:
            x, s = normal(s)
        elif which == 2:
            x, s = exponential(s)
        else:
            z, s = normal(s)
            x = math.exp(6.0 + 0.4 * z)
        acc ^= float_bits(x)
    state[0], state[1], state[2], state[3] = s
    return acc


def primitive_costs(n: int = 5_000_000, repeats: int = 5) -> dict[str, float]:
    """Median ns per draw of the kernels' uniform, normal, exponential and lognormal."""
    from mcsmp.kernels.rng import seed_state

    state = seed_state(np.random.SeedSequence(0))
    out = {}
    for which, name in enumerate(("uniform", "normal", "exponential", "lognormal")):
        _prim(which, 10, state)
        ts = []
        for _ in range(repeats):
            t0 = time.thread_time()
            _prim(which, n, state)
            ts.append(time.thread_time() - t0)
        out[name] = float(np.median(ts)) / n * 1e9
    return out


def main(argv: list[str]) -> int:
    from mcsmp.config import expand, load_raw

    path = argv[0] if argv else str(Path(__file__).resolve().parents[1] / "params" / "16core.yaml")
    point = int(argv[1]) if len(argv) > 1 else 0
    params = expand(load_raw(path), [])[point].params
    print("same draws as the kernel:", check_same_draws(params))
    floor, kern, targets = floor_seconds(params)
    print(f"per target: floor {floor / targets * 1e9:.1f} ns, kernel {kern / targets * 1e9:.1f} ns, ratio {kern / floor:.2f}")
    for name, ns in primitive_costs().items():
        print(f"  {name:12s} {ns:5.2f} ns/draw")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
