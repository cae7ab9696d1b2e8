"""Same seed → bit-identical results for any thread count or chunk split (MODEL.md §6)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from naive import params_from

from mcsmp.config import Params
from mcsmp.sim import PointResult, run_point
from mcsmp.sim.engine import CHUNK_FANOUTS

N_CHUNKS = 4


def _params(seed: int = 11, **over: Any) -> Params:
    d: dict[str, Any] = {
        "seed": seed,
        "samples": N_CHUNKS * CHUNK_FANOUTS - 1000,  # a short last chunk too
        "policies": ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"],
        "machine": {"cpus": 8, "sockets": 2, "cpus_per_llc": 4, "smt": 2},
        "workload": {"mm_cpus": 5, "target_prob": 0.8, "rate_hz": [100, 100, 5000, 100, 100, 3000, 100, 20000],
                     "caller": {"preemptible": 0.7, "spinlock": 0.3, "preempt_disabled": 0.0}},
        "ipi": {"mode": "cluster", "cluster_size": 4},
        "cache": {"placement": "stack"},
        "policy": {"reentry": "bound"},  # the second pass (pilot histogram) must be deterministic too
    }  # fmt: skip
    d.update(over)
    return params_from(d)


def _assert_identical(a: PointResult, b: PointResult) -> None:
    assert a.counts.dtype == np.int64 and np.array_equal(a.counts, b.counts)
    assert sorted(a.chunk_sums) == sorted(b.chunk_sums)
    for chunk in a.chunk_sums:
        assert np.array_equal(a.chunk_sums[chunk], b.chunk_sums[chunk]), chunk
    assert a.chunk_fanouts == b.chunk_fanouts
    assert a.wait_tail_mean == b.wait_tail_mean
    for row in range(a.counts.shape[0]):
        ha, hb = a.row_histogram(row), b.row_histogram(row)
        assert ha.total == hb.total, row  # exact float equality, not isclose
        assert np.array_equal(ha.counts, hb.counts), row


@pytest.fixture(scope="module")
def params() -> Params:
    p = _params()
    assert len(set(p.workload.rate_hz)) > 1  # several CPU groups: several P/H rows per policy
    return p


@pytest.fixture(scope="module")
def full(params: Params) -> PointResult:
    res = run_point(params, threads=1)
    assert res.complete and res.fanouts == params.samples
    assert res.model.needs_reentry and res.wait_tail_mean > 0
    return res


def test_threads_do_not_change_results(params: Params, full: PointResult) -> None:
    _assert_identical(full, run_point(params, threads=2))


def test_split_chunks_merge_to_the_full_run(params: Params, full: PointResult) -> None:
    even = run_point(params, threads=2, chunks=[0, 2])
    odd = run_point(params, threads=1, chunks=[3, 1])
    assert not even.complete and not odd.complete
    merged = even.merge(odd)
    assert merged.complete
    _assert_identical(full, merged)
    _assert_identical(full, odd.merge(even))  # merge order does not matter either
    with pytest.raises(ValueError):
        even.merge(even)


def test_same_seed_twice_is_identical(params: Params, full: PointResult) -> None:
    again = run_point(_params(), threads=2)
    assert again.params.model_hash == params.model_hash
    _assert_identical(full, again)


def test_samples_are_deterministic_too(params: Params) -> None:
    a = run_point(params, threads=1, chunks=[1], keep_samples=True)
    b = run_point(params, threads=2, chunks=[1], keep_samples=True)
    assert a.samples is not None and b.samples is not None
    assert np.array_equal(a.samples, b.samples)


def test_different_seeds_differ(full: PointResult) -> None:
    other = run_point(_params(seed=12), threads=2)
    assert other.params.model_hash == full.params.model_hash  # the seed is not part of the model
    assert not np.array_equal(other.counts, full.counts)
    for row in range(full.counts.shape[0]):
        if full.row_histogram(row).n:
            assert other.row_histogram(row).total != full.row_histogram(row).total, row
