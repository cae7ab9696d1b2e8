"""Engine speed paths must not change a single bit, and the compile cache is configurable and safe.

- The re-entry second pass of the pilot chunks is *replayed* from a trace of their first pass
  (:func:`mcsmp.kernels.fanout.replay_policies`): counts and per-chunk sums must equal running
  those chunks again (the path taken with ``keep_samples``) and the low-level
  ``run_chunks``/``wait_tail_of`` API, bit for bit, with spins actually drawn.
- Bounded look-ahead and per-thread accumulation: results equal for 1, 2 and 3 threads and for a
  run split into shards.
- ``MCSMP_CACHE_DIR`` selects where compiled kernels go (a child process), and
  :func:`mcsmp._jit.compile_lock` excludes a second holder until the first releases it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mcsmp._jit import cache_dir, compile_lock
from mcsmp.engine import CHUNK_FANOUTS, PILOT_CHUNKS, PointResult, pilot_chunks, run_chunks, run_point, wait_tail_of
from mcsmp.kernels import fanout as K
from mcsmp.params import Params, build_params, load_raw

# Two CPUs (one target per fan-out) keep a > PILOT_CHUNKS-chunk run cheap; a high call rate and
# preemptible callers make re-entry spins frequent enough to matter.
SPIN_HEAVY: dict[str, Any] = {
    "name": "replay",
    "seed": 3,
    "samples": (PILOT_CHUNKS + 3) * CHUNK_FANOUTS - 1000,
    "policies": ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"],
    "machine": {"cpus": 2, "cpus_per_llc": 2},
    "workload": {"rate_hz": [20000, 5], "caller": {"preemptible": 0.8, "spinlock": 0.2, "preempt_disabled": 0.0}},
    "policy": {"reentry": "bound", "alloc_fail_prob": 0.2},
}


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> Params:
    path = tmp_path_factory.mktemp("replay") / "replay.yaml"
    path.write_text(yaml.safe_dump(SPIN_HEAVY, sort_keys=False))
    return build_params(load_raw(path))


@pytest.fixture(scope="module")
def replayed(params: Params) -> PointResult:
    return run_point(params, threads=2)


def _same(a: PointResult, b: PointResult) -> bool:
    return (
        np.array_equal(a.counts, b.counts)
        and set(a.chunk_sums) == set(b.chunk_sums)
        and all(np.array_equal(a.chunk_sums[c], b.chunk_sums[c]) for c in a.chunk_sums)
        and a.chunk_fanouts == b.chunk_fanouts
    )


def test_replayed_pilot_equals_rerun(params: Params, replayed: PointResult) -> None:
    assert replayed.model.needs_reentry
    rerun = run_point(params, threads=2, keep_samples=True)  # keep_samples reruns the pilot chunks
    assert rerun.samples is not None
    pilot_spins = int((rerun.samples[: PILOT_CHUNKS * CHUNK_FANOUTS, K.S_SPIN] > 0).sum())
    assert pilot_spins > 1000  # the replay really has spins to reproduce
    assert _same(replayed, rerun)


def test_replayed_pilot_equals_low_level_api(params: Params, replayed: PointResult) -> None:
    model = replayed.model
    first = run_chunks(params, model, pilot_chunks(params, model))
    second = run_chunks(params, model, range(len(replayed.chunk_fanouts)), wait_tail_of(first))
    assert _same(replayed, second)


def test_threads_and_shards_do_not_matter(params: Params, replayed: PointResult) -> None:
    assert _same(replayed, run_point(params, threads=1))
    assert _same(replayed, run_point(params, threads=3))
    n = len(replayed.chunk_fanouts)
    odd = [c for c in range(n) if c % 2]
    shards = run_point(params, threads=2, chunks=odd).merge(run_point(params, threads=1, chunks=[c for c in range(n) if c not in odd]))
    assert _same(replayed, shards)


def test_compile_lock_excludes_a_second_holder() -> None:
    held = threading.Event()
    waited: list[float] = []

    def first() -> None:
        with compile_lock():
            held.set()
            time.sleep(0.6)

    def second() -> None:
        held.wait()
        t0 = time.perf_counter()
        with compile_lock():
            waited.append(time.perf_counter() - t0)

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start()
    b.start()
    a.join()
    b.join()
    assert waited and waited[0] >= 0.4
    assert (cache_dir() / "mcsmp-compile.lock").exists()


def test_mcsmp_cache_dir_is_where_kernels_go(tmp_path: Path) -> None:
    code = (
        "import numba, mcsmp._jit as j; from mcsmp.kernels.histo import bucket; "
        "bucket(1.5, 45, 1023 << 7, 5000); print(numba.config.CACHE_DIR); print(j.cache_dir())"
    )
    env = {**os.environ, "MCSMP_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MCSMP_NO_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    lines = out.stdout.split()
    assert lines == [str(tmp_path / "cache")] * 2
    assert list((tmp_path / "cache").rglob("*.nbi")), "no numba index file in MCSMP_CACHE_DIR"
