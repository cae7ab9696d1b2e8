"""Engine speed paths must not change a single bit, and the compile cache is configurable and safe.

- The re-entry second pass of the pilot chunks is *replayed* from a trace of their first pass
  (:func:`mcsmp.kernels.fanout.replay_policies`): counts and per-chunk sums must equal running
  those chunks again (the path taken with ``keep_samples``) and the per-chunk engine API
  (``simulate_chunk`` with the pilot's table), bit for bit, with spins actually drawn.
- Bounded look-ahead and per-thread accumulation: results equal for 1, 2 and 3 threads and for a
  run split into shards.
- ``MCSMP_CACHE_DIR`` selects where compiled kernels go (a child process, in a folder named after
  the kernels' sources, so that a changed helper can never leave a stale compiled caller), and
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
from mcsmp.config import Params, build_params, load_raw
from mcsmp.kernels import codes as K
from mcsmp.sim import run_point
from mcsmp.sim.engine import (
    CHUNK_FANOUTS,
    NO_WAIT_TAIL,
    PILOT_CHUNKS,
    PointResult,
    pilot_chunks,
    simulate_chunk,
)
from mcsmp.sim.histogram import Histogram
from mcsmp.sim.scheduler import Job

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
    """Every chunk simulated twice, by hand: a first pass over the pilot, then all chunks again."""
    model, key = replayed.model, params.stream_key
    firsts = [simulate_chunk(params, model, c, NO_WAIT_TAIL, key) for c in pilot_chunks(params, model)]
    tail_hist = Histogram(model.layout, sum(f.counts[K.H_WAIT_TAIL] for f in firsts),
                          sum(float(f.sums[K.H_WAIT_TAIL]) for f in sorted(firsts, key=lambda f: f.chunk)))  # fmt: skip
    from mcsmp.sim.engine import wait_tail_from

    tail = wait_tail_from(model, tail_hist)
    assert tail.scale > 0
    counts = np.zeros_like(replayed.counts)
    sums, fanouts = {}, {}
    for c in range(len(replayed.chunk_fanouts)):
        out = simulate_chunk(params, model, c, tail, key, counts=counts)
        sums[c], fanouts[c] = out.sums, out.fanouts
    assert _same(replayed, Job("", params, list(sums), model).result(counts, sums, fanouts, tail, 0.0))


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
    assert lines[0] == lines[1] and Path(lines[0]).parent == tmp_path / "cache"
    assert Path(lines[0]).name.startswith("mcsmp-")  # named after the kernels' sources
    assert list((tmp_path / "cache").rglob("*.nbi")), "no numba index file in MCSMP_CACHE_DIR"


def test_the_cache_folder_changes_with_any_kernel_source(tmp_path: Path) -> None:
    """numba re-validates a cached function against its own file only; a changed helper in another
    kernel file must still give a fresh compile, so the cache folder is keyed by all of them."""
    import shutil

    from mcsmp._jit import KERNELS, kernels_key

    assert cache_dir().name == f"mcsmp-{kernels_key()}"
    copy = tmp_path / "kernels"
    shutil.copytree(KERNELS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert kernels_key(copy) == kernels_key()
    histo = copy / "histo.py"
    histo.write_text(histo.read_text() + "\n# a change in a helper file\n")
    assert kernels_key(copy) != kernels_key()
