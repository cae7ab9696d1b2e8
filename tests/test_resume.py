"""Killed sweeps keep their finished points; --resume completes them to an identical result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.cli import main
from mcsmp.io.histfile import hist_info, hist_path, load_hist

PARAMS = {
    "name": "resume",
    "seed": 3,
    "samples": 150_000,
    "policies": ["preempt_off", "preemptible_wait"],
    "machine": {"cpus": 6, "sockets": 1, "cpus_per_llc": 6, "smt": 1},
    "kernel": {"preemption": "full"},
    "workload": {"caller": {"preemptible": 0.5, "spinlock": 0.0, "preempt_disabled": 0.5}},
    # a rare long irq-off component: the points are stratified (docs/model.md §5 "Rare events"),
    # so resuming must reproduce the per-stratum rows bit for bit too
    "remote": {"irq_off": {"fraction": 0.02, "length": {"dist": "mixture", "components": [
        {"weight": 0.999999, "dist": "lognormal", "median": 2250, "sigma": 0.86},
        {"weight": 1.0e-6, "dist": "const", "value": 1.0e7}]}}},
    "sweep": {"grid": {"cache.placement": ["percpu", "stack", "stack_aligned"], "ipi.send_ns": [100, 200, 300]}},
}
N_POINTS = 9


def _write(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, **changes}, sort_keys=False))
    return path


def _ids(out: Path) -> list[str]:
    return [e["id"] for e in json.loads((out / "meta.json").read_text())["points"]]


def _same(a: Path, b: Path) -> None:
    assert _ids(a) == _ids(b)
    for pid in _ids(a):
        ra, rb = load_hist(hist_path(a, pid)), load_hist(hist_path(b, pid))
        assert np.array_equal(ra.counts, rb.counts)
        assert ra.chunk_fanouts == rb.chunk_fanouts and ra.wait_tail_mean == rb.wait_tail_mean
        assert all(np.array_equal(ra.chunk_sums[c], rb.chunk_sums[c]) for c in ra.chunk_sums)
    for name in ("summary.csv", "per_cpu.csv", "mask.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _start(params: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MCSMP_THREADS": "1"}  # slow enough to stop part-way
    return subprocess.Popen(
        [sys.executable, "-m", "mcsmp", "sweep", str(params), "-o", str(out), "--no-plots"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for_first_point(proc: subprocess.Popen[bytes], out: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not any((out / "hist").glob("*.npz")):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "no point finished in time"
        time.sleep(0.005)


def test_the_points_are_stratified(tmp_path: Path) -> None:
    from mcsmp.api import load
    from mcsmp.sim.model import compile_model

    assert compile_model(load(_write(tmp_path))).rare.stratified


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    out = root / "out"
    assert main(["sweep", str(_write(root)), "-o", str(out), "--no-plots", "--threads", "2"]) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_sweep_resumes_to_the_same_result(tmp_path: Path, reference: Path, sig: signal.Signals,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    params, out = _write(tmp_path), tmp_path / "out"
    proc = _start(params, out)
    try:
        _wait_for_first_point(proc, out)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = sorted((out / "hist").glob("*.npz"))
    assert 1 <= len(done) < N_POINTS, "the sweep must be stopped part-way"
    for path in done:  # every file there is whole and a complete point
        info = hist_info(path)
        assert info is not None and len(info.chunks) == 3
    meta = json.loads((out / "meta.json").read_text())
    if sig == signal.SIGINT:  # Ctrl-C: a clean stop, with a note on how to continue
        assert proc.returncode == 130
        assert b"--resume" in err and meta["status"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL and meta["status"] == "running"
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}
    capsys.readouterr()
    assert main(["sweep", str(params), "-o", str(out), "--resume", "--no-plots", "--threads", "2"]) == 0
    assert f"{N_POINTS - len(done)} simulated, {len(done)} already complete" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in done} == mtimes  # finished points were not redone
    assert not list((out / "hist").glob(".*.tmp"))
    _same(reference, out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and [r["status"] for r in meta["runs"]][-1] == "complete"


def test_resume_of_a_complete_sweep_simulates_nothing(tmp_path: Path, reference: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "out"
    params = _write(tmp_path)
    shutil.copytree(reference, out)  # a finished sweep of the same parameters
    capsys.readouterr()
    assert main(["sweep", str(params), "-o", str(out), "--resume", "--no-plots"]) == 0
    assert f"0 simulated, {N_POINTS} already complete" in capsys.readouterr().out
    _same(reference, out)
    # a damaged histogram file is not complete: it is simulated again
    victim = hist_path(out, _ids(out)[4])
    victim.write_bytes(victim.read_bytes()[:100])
    assert main(["sweep", str(params), "-o", str(out), "--resume", "--no-plots"]) == 0
    assert f"1 simulated, {N_POINTS - 1} already complete" in capsys.readouterr().out
    _same(reference, out)


def test_different_parameters_are_refused_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    small = dict(PARAMS, samples=20000, sweep={"grid": {"cache.placement": ["percpu", "stack"]}})
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    assert main(["sweep", str(path), "-o", str(out), "--no-plots"]) == 0
    before = (out / "summary.csv").read_bytes()
    capsys.readouterr()
    for extra in (["--seed", "4"], ["--samples", "30000"], ["--set", "ipi.send_ns=50"], ["--resume", "--seed", "4"]):
        assert main(["sweep", str(path), "-o", str(out), "--no-plots", *extra]) == 2
        err = capsys.readouterr().err
        assert "different parameters" in err and "--force" in err and err.count("\n") == 1
        assert (out / "summary.csv").read_bytes() == before  # nothing touched
    assert main(["sweep", str(path), "-o", str(out), "--no-plots", "--seed", "4", "--force"]) == 0
    assert (out / "summary.csv").read_bytes() != before
    assert json.loads((out / "meta.json").read_text())["seed"] == 4
    # overwriting with fewer points leaves no file of the others behind
    assert main(["sweep", str(path), "-o", str(out), "--set", "cache.placement=percpu", "--force"]) == 0
    (only,) = _ids(out)
    assert [p.stem for p in (out / "hist").glob("*.npz")] == [only]
    assert [p.name for p in (out / "hgrm").iterdir()] == [only]
