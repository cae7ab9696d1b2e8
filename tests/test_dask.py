"""Dask: chunks as tasks on a LocalCluster give bit-identical histograms to a local run."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.cli import main
from mcsmp.config import expand, load_raw
from mcsmp.sim import run_point
from mcsmp.sim import scheduler as runner
from mcsmp.sim.engine import NO_WAIT_TAIL
from mcsmp.sim.model import compile_model
from mcsmp.sim.scheduler import Job, run_jobs

distributed = pytest.importorskip("distributed")

PARAMS = {
    "name": "dask",
    "seed": 9,
    "samples": 200_000,  # 4 chunks; the re-entry pilot is on
    "policies": ["preempt_off", "preemptible_wait", "atomic_alloc"],
    "machine": {"cpus": 4, "sockets": 1, "cpus_per_llc": 4, "smt": 1},
    "kernel": {"preemption": "full"},
    "workload": {"rate_hz": [100, 10, 10, 100], "caller": {"preemptible": 0.5, "spinlock": 0.0, "preempt_disabled": 0.5}},
    "sweep": {"grid": {"cache.placement": ["percpu", "stack"], "policy.reentry": ["bound", "off"]}},
}


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    path = tmp_path_factory.mktemp("dask") / "p.yaml"
    path.write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    return expand(load_raw(path))


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _run(points: list, **kw: object) -> dict:  # type: ignore[type-arg]
    got: dict = {}  # type: ignore[type-arg]
    jobs = [Job(p.id, p.params, list(range(4))) for p in points]
    run_jobs(jobs, lambda j, r: got.__setitem__(j.key, r), progress=False, **kw)  # type: ignore[arg-type]
    return got


@pytest.mark.parametrize("chunks_per_task", [None, 1])
def test_dask_equals_local(points: list, client, monkeypatch: pytest.MonkeyPatch, chunks_per_task: int | None) -> None:  # type: ignore[no-untyped-def]
    if chunks_per_task is not None:  # several tasks per point, merged as they return
        monkeypatch.setattr(runner, "dask_task_chunks", lambda params: chunks_per_task)
    assert any(compile_model(p.params).needs_reentry for p in points)
    local = _run(points, threads=2)
    remote = _run(points, dask=client)
    assert sorted(local) == sorted(remote) == sorted(p.id for p in points)
    for pid, a in local.items():
        b = remote[pid]
        assert np.array_equal(a.counts, b.counts)
        assert a.chunk_fanouts == b.chunk_fanouts and a.wait_tail_mean == b.wait_tail_mean
        assert all(np.array_equal(a.chunk_sums[c], b.chunk_sums[c]) for c in a.chunk_sums)


def test_task_arguments_survive_pickling(points: list) -> None:  # type: ignore[type-arg]
    # what a process-based worker receives: the parameters travel pickled
    p = points[0].params
    q = pickle.loads(pickle.dumps(p))
    assert q.model_hash == p.model_hash
    plain = next(pt.params for pt in points if not compile_model(pt.params).needs_reentry)
    a = run_point(plain, chunks=[1], threads=1)
    job = pickle.loads(pickle.dumps(Job("plain", pickle.loads(pickle.dumps(plain)), [0, 1, 2])))
    counts, sums, fanouts, _, ns = pickle.loads(pickle.dumps(runner.dask_chunks(job, [1], NO_WAIT_TAIL)))
    assert np.array_equal(a.counts, counts) and np.array_equal(a.chunk_sums[1], sums[1]) and fanouts == a.chunk_fanouts
    assert np.array_equal(a.chunk_counts[1], ns[1])
    reentry = next(pt.params for pt in points if compile_model(pt.params).needs_reentry)
    tail, (counts, sums, fanouts, _, _) = pickle.loads(pickle.dumps(runner.dask_pilot(Job("r", reentry, [0]))))
    assert tail.mean > 0 and tail.cum[-1] == 1.0
    assert list(sums) == list(fanouts) == [0]  # the job's own pilot chunk comes back finished
    assert np.array_equal(counts, run_point(reentry, chunks=[0], threads=1).counts)


def test_task_size_is_about_a_second(points: list) -> None:  # type: ignore[type-arg]
    # 3 targets per fan-out (+4 for the fixed cost): 2^25 / (65536 · 7) ≈ 73 chunks
    assert runner.dask_task_chunks(points[0].params) == 73


def test_cli_dask_local_equals_local_run(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    small = {**PARAMS, "samples": 30000, "sweep": {"grid": {"cache.placement": ["percpu", "stack"]}}}
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    assert main(["sweep", str(path), "-o", str(tmp_path / "local"), "--no-plots"]) == 0
    assert main(["sweep", str(path), "-o", str(tmp_path / "dask"), "--dask", "local", "--no-plots"]) == 0
    for name in ("summary.csv", "per_cpu.csv", "mask.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()


def _small_sweep(tmp_path: Path, samples: int = 30000) -> Path:
    path = tmp_path / "p.yaml"
    small = {**PARAMS, "samples": samples, "sweep": {"grid": {"cache.placement": ["percpu", "stack"]}}}
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    return path


def test_a_job_queue_cluster_comes_from_dask_jobqueue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--dask slurm:2` builds dask_jobqueue.SLURMCluster (configured by the user's jobqueue.yaml)
    and scales it to 2 jobs; here a local cluster stands in for the batch queue."""
    import dask_jobqueue
    from distributed import LocalCluster

    made: list[int] = []

    class FakeSlurm(LocalCluster):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(n_workers=0, threads_per_worker=1, processes=False, dashboard_address=":0")

        def scale(self, n: int | None = None, jobs: int = 0, **kw: object) -> None:
            made.append(jobs)
            super().scale(jobs)

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", FakeSlurm)
    path = _small_sweep(tmp_path)
    assert main(["sweep", str(path), "-o", str(tmp_path / "local"), "--no-plots"]) == 0
    assert main(["sweep", str(path), "-o", str(tmp_path / "slurm"), "--dask", "slurm:2", "--no-plots"]) == 0
    assert made[0] == 2  # (closing the cluster scales it to 0 afterwards)
    for name in ("summary.csv", "per_cpu.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "slurm" / name).read_bytes()


def test_bad_dask_addresses_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _small_sweep(tmp_path)
    for address in ("nonsense://", "slurm:x"):
        assert main(["sweep", str(path), "-o", str(tmp_path / "x"), "--dask", address, "--no-plots"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"mcsmp: --dask {address}"), err


def test_a_sweep_whose_workers_all_die_stops_with_resume_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only worker (a separate process, as on a cluster) is killed mid-sweep: the sweep fails
    after the grace period (MCSMP_DASK_LOST_S) with a one-line --resume advice instead of
    waiting forever."""
    import subprocess
    import sys

    from distributed import Client, LocalCluster

    from mcsmp.errors import UserError

    monkeypatch.setenv("MCSMP_DASK_LOST_S", "1")
    raw = load_raw(_small_sweep(tmp_path, samples=60 * 65536))
    jobs = [Job(p.id, p.params, list(range(60))) for p in expand(raw)]
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # fmt: skip
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--no-nanny", "--nthreads", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client.wait_for_workers(1, timeout=60)
            timer = threading.Timer(2.0, worker.kill)
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(UserError, match="every worker is gone.*--resume"):
                run_jobs(jobs, lambda j, r: None, dask=client, progress=False)
            timer.join()
            assert time.monotonic() - t0 < 60
        finally:
            worker.kill()
            worker.wait()
