"""Placements on common random numbers and paired differences of means (docs/model.md §5, §6).

- Points that differ only in ``cache.placement`` share their stream key, and a percpu point's key
  is its own model hash's (so percpu results are those of before the request stream existed).
- The request stream isolates the placement: a stack point's sender, targets, sender phases,
  caller contexts and ``S_L`` equal its percpu twin's draw for draw; only ``T`` moves.
- The paired estimate is exactly the difference of the two means, and on shared streams its
  interval is much narrower than the unpaired one.
- Coverage (slow): on closed forms (``k = 1``, every cost zero but an exponential delivery and an
  exponential page walk), ``E[T_stack_aligned − T_percpu] = p_miss · E[walk]`` and
  ``E[P_preemptible_wait − P_preempt_off] = −E[T]``; the 95% intervals of both contain the exact
  value in 95% of ``REPS`` replications, within ±3 binomial standard deviations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mcsmp.config.schema import key_from_hash
from mcsmp.kernels import codes as K
from mcsmp.metrics import paired_mean_difference
from mcsmp.sim import run_point

MU = 1000.0  # mean delivery (ns)
WALK = 300.0  # mean page walk (ns)
P_MISS = 0.4
CHUNK = 65_536


def _pair_params(make_params: Any, placement: str, seed: int = 7, samples: int = 4 * CHUNK, **extra: Any) -> Any:
    return make_params(
        **{
            "seed": seed, "samples": samples, "workload.call": "tlb_flush", "workload.mm_cpus": 1,
            "ipi.delivery_ns": {"dist": "exponential", "mean": MU},
            "cache.page_walk_ns": {"dist": "exponential", "mean": WALK},
            "cache.stack_tlb_miss_prob": P_MISS, "cache.placement": placement,
            "policies": ["preempt_off", "preemptible_wait"],
            "workload.caller.preemptible": 1.0, "workload.caller.preempt_disabled": 0.0, **extra,
        }
    )  # fmt: skip


def test_placements_share_streams(make_params: Any) -> None:
    pts = {pl: _pair_params(make_params, pl) for pl in ("percpu", "stack", "stack_aligned")}
    assert len({p.point_id for p in pts.values()}) == 3  # three points, three result files
    assert len({p.stream_key for p in pts.values()}) == 1  # one set of streams
    assert pts["percpu"].stream_key == key_from_hash(pts["percpu"].model_hash)
    other = _pair_params(make_params, "stack", **{"ipi.delivery_ns": {"dist": "exponential", "mean": 2 * MU}})
    assert other.stream_key != pts["stack"].stream_key  # any other model change: new streams


def test_request_stream_isolates_the_placement(make_params: Any) -> None:
    runs = {
        pl: run_point(_pair_params(make_params, pl, samples=20_000, **{"workload.mm_cpus": 5,
                                                                         "cache.false_sharing_prob": 0.3,
                                                                         "cache.line_serialize_ns": 20}),
                      keep_samples=True)
        for pl in ("percpu", "stack", "stack_aligned")
    }  # fmt: skip
    base = runs["percpu"].samples
    assert base is not None
    for pl in ("stack", "stack_aligned"):
        s = runs[pl].samples
        assert s is not None
        for col in (K.S_SENDER, K.S_TARGETS, K.S_S, K.S_SL, K.S_CONTEXT):
            assert np.array_equal(s[:, col], base[:, col]), (pl, col)
        assert not np.array_equal(s[:, K.S_T], base[:, K.S_T])  # the request's cost does move T
        assert np.all(s[:, K.S_T] >= base[:, K.S_T])  # stack placements only add costs here


def test_paired_difference_is_the_difference_and_narrower(make_params: Any) -> None:
    a = run_point(_pair_params(make_params, "stack_aligned"))
    b = run_point(_pair_params(make_params, "percpu"))
    ha, hb = a.histogram("call_ns"), b.histogram("call_ns")
    d = paired_mean_difference(ha, hb)
    assert d.value == ha.mean - hb.mean
    assert d.chunks == 4
    assert d.low < d.value < d.high
    assert d.high - d.value < 0.5 * d.independent_half_width  # shared noise cancels
    # one chunk: no batch means, the conservative sum of both half-widths
    one_a = run_point(_pair_params(make_params, "stack_aligned", samples=5000))
    one_b = run_point(_pair_params(make_params, "percpu", samples=5000))
    ha, hb = one_a.histogram("call_ns"), one_b.histogram("call_ns")
    one = paired_mean_difference(ha, hb)
    half = (ha.mean_interval()[1] - ha.mean) + (hb.mean_interval()[1] - hb.mean)
    assert one.chunks == 0 and one.high - one.value == pytest.approx(half) and one.value - one.low == pytest.approx(half)


REPS = 1000


@pytest.mark.slow
def test_paired_interval_coverage(make_params: Any) -> None:
    exact_place = P_MISS * WALK
    hit_place = hit_policy = 0
    for rep in range(REPS):
        a = run_point(_pair_params(make_params, "stack_aligned", seed=1000 + rep))
        b = run_point(_pair_params(make_params, "percpu", seed=1000 + rep))
        d = paired_mean_difference(a.histogram("call_ns"), b.histogram("call_ns"))
        hit_place += d.low <= exact_place <= d.high
        p = paired_mean_difference(
            b.histogram("preempt_off_ns", "preemptible_wait"), b.histogram("preempt_off_ns", "preempt_off")
        )
        hit_policy += p.low <= -MU <= p.high  # percpu, k = 1: E[T] = MU, S_L = 0
    sd = math.sqrt(0.95 * 0.05 / REPS)
    print(f"paired coverage over {REPS} replications: placement {hit_place / REPS:.3f}, policy {hit_policy / REPS:.3f}")
    for name, hits in (("placement", hit_place), ("policy", hit_policy)):
        assert abs(hits / REPS - 0.95) <= 3 * sd, (name, hits / REPS)


def test_paired_difference_of_stratified_points() -> None:
    """Stratified points (docs/model.md §5 "Rare events") pair stratum by stratum: the interval
    comes from every stratum's chunks, and equals the crude formula's shape per stratum."""
    from pathlib import Path

    from mcsmp import load

    path = Path(__file__).resolve().parents[1] / "params" / "16core.yaml"
    runs = {pl: run_point(load(path, [f"samples={2 * CHUNK}", "policy.reentry=off", f"cache.placement={pl}"]))
            for pl in ("percpu", "stack")}  # fmt: skip
    assert runs["stack"].model.rare.stratified
    a, b = runs["stack"].histogram("call_ns"), runs["percpu"].histogram("call_ns")
    d = paired_mean_difference(a, b)
    assert d.value == a.mean - b.mean and d.chunks == 2
    assert d.low < d.value < d.high and d.high - d.value < 0.2 * d.independent_half_width
