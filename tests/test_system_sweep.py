"""Sweep folders of the whole-machine simulation (``mcsmp system -o DIR``, docs/system.md §7).

The same parameters give byte-identical tables and identical unit arrays whether run on 1 or 2
threads, as 2 or 3 shards merged, on a Dask LocalCluster of worker processes, or killed with
SIGKILL part-way and resumed; bad input is one line and exit status 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mcsmp
from mcsmp.cli import main
from mcsmp.sim.scheduler import shard_chunks
from mcsmp.sweeps.system import REPS_DIR, load_reps, save_reps
from mcsmp.system import simulate_system

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "tests" / "data" / "system-base.yaml"
MCSMP = [sys.executable, "-m", "mcsmp"]
# two points x two policies x three replications; the destination csds race at 50 kHz
SETS = ["system.workload=scftorture", "workload.call=generic", "workload.rate_hz=20000,50000", "system.duration_s=0.003",
        "system.replications=3", "system.async_csd=destination", "system.second_task_hz=2000"]  # fmt: skip


def _args(sets: list[str] = SETS) -> list[str]:
    return [str(BASE), *(a for s in sets for a in ("--set", s))]


def _outputs(folder: Path) -> dict[str, bytes]:
    """Tables and .hgrm byte for byte, unit arrays exactly (not meta.json, timings, figures)."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p.suffix in (".csv", ".txt", ".hgrm")}  # fmt: skip
    for p in sorted((folder / REPS_DIR).glob("*.npz")):
        _, units, _ = load_reps(p)
        for u in sorted(units):
            r = units[u]
            files[f"{p.name}:{u}"] = b"".join(np.ascontiguousarray(a).tobytes() for a in (r.counts, r.sums, r.counters, r.ops))
    return files


def _meta(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "meta.json").read_text())


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sys") / "ref"
    assert main(["system", *_args(), "-o", str(out), "--threads", "1"]) == 0
    return out


def test_folder_holds_what_the_command_prints(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["system", *_args(), "--threads", "1"]) == 0  # no folder: simulated and printed only
    printed = capsys.readouterr().out.split("\n", 1)[1]
    assert printed == (reference / "report.txt").read_text()
    meta = _meta(reference)
    assert meta["kind"] == "system" and meta["status"] == "complete" and len(meta["points"]) == 2
    assert meta["runs"][-1]["units_simulated"] == 12 and meta["runs"][-1]["units_resumed"] == 0
    lines = (reference / "summary.csv").read_text().splitlines()
    head = lines[0].split(",")
    assert len(lines) == 1 + 2 * 2 and {"workload.rate_hz", "ops_per_s_low", "races", "race_rate_per_s_high"} <= set(head)
    rows = [dict(zip(head, ln.split(","), strict=True)) for ln in lines[1:]]
    assert int(rows[-1]["races"]) > 0  # the plain lock on destination csds races at 50 kHz
    assert len((reference / "per_cpu.csv").read_text().splitlines()) == 1 + 2 * 2 * 16
    assert (reference / "plots" / "system.png").exists()
    assert len(list((reference / "hgrm").glob("*/call_ns.preempt_off.hgrm"))) == 2
    # the units in the folder are those of the in-process simulation
    pts = mcsmp.points(mcsmp.load(BASE, SETS))
    direct = simulate_system(pts[1].params, threads=1)
    _, units, _ = load_reps(reference / REPS_DIR / f"{pts[1].id}.npz")
    for pol, run in direct.runs.items():
        for r, rep in enumerate(run.reps):
            assert np.array_equal(units[(pol, r)].counts, rep.counts) and np.array_equal(units[(pol, r)].counters, rep.counters)


def test_threads_and_shards_merged_are_bit_identical(reference: Path, tmp_path: Path) -> None:
    want = _outputs(reference)
    assert main(["system", *_args(), "-o", str(tmp_path / "t2"), "--threads", "2"]) == 0
    assert _outputs(tmp_path / "t2") == want
    for n in (2, 3):
        shards = [tmp_path / f"n{n}-s{i}" for i in range(n)]
        for i, d in enumerate(shards):
            assert main(["system", *_args(), "--shard", f"{i}/{n}", "-o", str(d), "--threads", "1"]) == 0
            assert _meta(d)["shard"] == {"index": i, "count": n, "set_units": 1} and not (d / "summary.csv").exists()
        counts = [sum(len(load_reps(p)[1]) for p in (d / REPS_DIR).glob("*.npz")) for d in shards]
        assert sum(counts) == 12 and min(counts) >= 12 // n  # every unit once, dealt evenly
        merged = tmp_path / f"merged{n}"
        assert main(["merge", *map(str, shards), "-o", str(merged)]) == 0
        assert _outputs(merged) == want and _meta(merged)["status"] == "complete"


def test_shards_deal_units_round_robin() -> None:
    got = [shard_chunks([6, 4, 3], (i, 4), 1) for i in range(4)]
    for p, n in enumerate([6, 4, 3]):
        mine = sorted(u for g in got for u in g[p])
        assert mine == list(range(n))  # disjoint and complete
    assert [sum(len(x) for x in g) for g in got] == [4, 3, 3, 3]


def test_dask_worker_processes_are_bit_identical(reference: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
         distributed.Client(cluster) as client:  # fmt: skip
        run = mcsmp.system_sweep(mcsmp.load(BASE, SETS), tmp_path / "dask", dask=client, progress=False)
        workers = {w["id"] for w in client.scheduler_info()["workers"].values()}
    assert run.simulated == 12 and run.run["backend"] == "dask" and len(workers) == 2
    assert _outputs(tmp_path / "dask") == _outputs(reference)


def test_resume_keeps_saved_units_and_is_identical(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "half"
    assert main(["system", *_args(), "-o", str(out), "--threads", "1"]) == 0
    for p in (out / REPS_DIR).glob("*.npz"):  # keep the first half of each point's units, as after a kill
        params, units, base = load_reps(p)
        save_reps(p, params, {u: r for u, r in units.items() if (u[1] < 2 and u[0] == "preempt_off") or u[1] == 0}, base)
    run = mcsmp.system_sweep(mcsmp.load(BASE, SETS), out, resume=True, threads=1, progress=False)
    assert (run.resumed, run.simulated) == (6, 6)
    assert _outputs(out) == _outputs(reference)
    again = mcsmp.system_sweep(mcsmp.load(BASE, SETS), out, resume=True, threads=1, progress=False)
    assert (again.resumed, again.simulated) == (12, 0) and _outputs(out) == _outputs(reference)
    stray = tmp_path / "stray"  # unit files without meta.json are nobody's: refused
    (stray / REPS_DIR).mkdir(parents=True)
    for p in (out / REPS_DIR).glob("*.npz"):
        (stray / REPS_DIR / p.name).write_bytes(p.read_bytes())
    with pytest.raises(mcsmp.UserError, match="no meta.json"):
        mcsmp.system_sweep(mcsmp.load(BASE, SETS), stray, resume=True, threads=1, progress=False)


def test_sigkill_then_resume(tmp_path: Path) -> None:
    sets = [s.replace("0.003", "0.06") if s.startswith("system.duration_s") else s for s in SETS]
    sets = [s.replace("=3", "=4") if s.startswith("system.replications") else s for s in sets]  # 16 units of ~0.2 s
    ref, out = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([*MCSMP, "system", *_args(sets), "-o", str(ref), "--threads", "1", "--no-plots"], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    errf = tmp_path / "stderr.txt"
    with open(errf, "w") as fh:
        proc = subprocess.Popen([*MCSMP, "system", *_args(sets), "-o", str(out), "--threads", "1", "--no-plots"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh, stdin=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not any((out / REPS_DIR).glob("*.npz")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, errf.read_text()
    assert _meta(out)["status"] == "running"
    done = subprocess.run([*MCSMP, "system", *_args(sets), "-o", str(out), "--threads", "2", "--no-plots", "--resume"],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = _meta(out)
    assert [r["status"] for r in meta["runs"]] == ["killed", "complete"]
    assert 0 < meta["runs"][-1]["units_resumed"] < 16  # saved as each unit returned, not per point
    assert _outputs(out) == _outputs(ref)
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.parametrize("extra, needle", [
    (["--shard", "2/x"], "--shard 2/x: expected I/N"),
    (["--shard", "2/2"], "--shard 2/2: need N >= 1 and 0 <= I < N"),
    (["--set", "system.replications=0"], "system.replications"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2(tmp_path: Path, extra: list[str], needle: str) -> None:
    proc = subprocess.run([*MCSMP, "system", *_args(), "-o", str(tmp_path / "o"), *extra], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and needle in _one_line(proc.stderr)


def test_folders_of_other_sweeps_are_refused(reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fan = tmp_path / "fan"
    assert main(["sweep", "params/smoke.yaml", "--samples", "2000", "-o", str(fan), "--no-plots"]) == 0
    other = [s.replace("20000,50000", "20000,40000") for s in SETS]
    cases = [
        (["system", *_args(), "-o", str(fan)], "holds results of different parameters"),
        (["system", *_args(other), "-o", str(reference)], "holds results of different parameters"),
        (["sweep", "params/smoke.yaml", "-o", str(reference)], "holds results of different parameters"),
        (["merge", str(reference), str(fan), "-o", str(tmp_path / "m")], "not a folder of `mcsmp system`"),
        (["merge", str(reference), str(reference), "-o", str(tmp_path / "m")], "the same shard given twice"),
        (["report", str(reference), "--quantiles", "0.5"], "fan-out sweeps only"),
    ]
    for argv, needle in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert needle in _one_line(capsys.readouterr().err), argv
    s0 = tmp_path / "s0"
    assert main(["system", *_args(), "--shard", "0/2", "-o", str(s0), "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["merge", str(s0), "-o", str(tmp_path / "m")]) == 2
    assert "are all shards finished and given?" in _one_line(capsys.readouterr().err)
    assert main(["report", str(s0)]) == 2 and "merge` the shards first" in _one_line(capsys.readouterr().err)
    before = _outputs(reference)
    assert main(["report", str(reference)]) == 0 and _outputs(reference) == before  # re-rendered identically


def test_json_of_a_folder_run_is_one_document(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["system", *_args(), "-o", str(reference), "--resume", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["workload.rate_hz"], r["policy"]) for r in rows] == [
        (rate, pol) for rate in (20000, 50000) for pol in ("preempt_off", "preemptible_wait")]
    assert _meta(reference)["runs"][-1]["units_resumed"] == 12
