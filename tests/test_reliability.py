"""Output folders and writers under hostile conditions (issue 13 §3; docs/sweeps.md "Guarantees").

Unusable ``-o`` paths and names, read-only folders, a full disk (a real small tmpfs when we may
mount one, else fault injection), EACCES, missing parents, a second writer, SIGTERM, SIGKILL, a
broken pipe: each gives one line on stderr and no traceback, leaves no temporary file and no
half-written file, and ``meta.json`` says what happened.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ZERO_BASE

import mcsmp
from mcsmp.cli import main
from mcsmp.errors import UserError
from mcsmp.io import atomic
from mcsmp.io.atomic import FolderLock

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"
MCSMP = [sys.executable, "-m", "mcsmp"]


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")] if folder.exists() else []


def small_params(tmp_path: Path, samples: int = 3000, name: str = "rel", points: int = 2) -> Path:
    data = yaml.safe_load(yaml.safe_dump(ZERO_BASE))
    data.update(name=name, samples=samples, policies=["preempt_off", "preemptible_wait"])
    data["ipi"]["delivery_ns"] = {"dist": "exponential", "mean": 1000.0}
    data["sweep"] = {"grid": {"workload.mm_cpus": [2, 3, 4, 5, 6, 7][:points]}, "zip": {}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def meta_of(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


# ------------------------------------------------------------------------------------------------
# output folders that cannot be used


@pytest.mark.parametrize("kind", ["file", "under_file", "proc"])
def test_unusable_output_folder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    params = small_params(tmp_path)
    (tmp_path / "afile").write_text("x")
    out = {"file": tmp_path / "afile", "under_file": tmp_path / "afile" / "sub", "proc": Path("/proc/mcsmp-x")}[kind]
    assert main(["sweep", str(params), "-o", str(out), "--no-plots"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("mcsmp: ") and str(out) in line
    assert (tmp_path / "afile").read_text() == "x"


def test_nul_in_output_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="NUL"):
        mcsmp.sweep(mcsmp.load(str(small_params(tmp_path))), out=str(tmp_path / "a\0b"), plots=False)


def test_name_cannot_leave_results(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    params = small_params(tmp_path)
    text = params.read_text().replace("name: rel", "name: ..")
    params.write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["sweep", str(params), "--no-plots"]) == 2
    assert "name" in one_line(capsys.readouterr().err)
    assert sorted(work.iterdir()) == [] and not (tmp_path / "summary.csv").exists()


@contextmanager
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A read-only filesystem (a tmpfs mounted ro, as root), else a chmod 555 folder (as a user)."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True).returncode:
            pytest.skip("running as root without permission to mount a tmpfs")
        try:
            yield d
        finally:
            subprocess.run(["umount", "-l", str(d)], check=False)
        return
    d.chmod(0o555)
    try:
        yield d
    finally:
        d.chmod(0o755)


def test_read_only_folder_and_resume_into_complete_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = small_params(tmp_path)
    with read_only_folder(tmp_path) as d:
        out = d / "res"
        assert main(["sweep", str(params), "-o", str(out), "--no-plots"]) == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        if os.geteuid() == 0:
            subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
        else:
            out.chmod(0o555)
            (out / "hist").chmod(0o555)
        capsys.readouterr()
        for extra in ([], ["--resume"]):
            assert main(["sweep", str(params), "-o", str(out), "--no-plots", *extra]) == 2
            assert "cannot" in one_line(capsys.readouterr().err)
        assert main(["report", str(out), "--no-plots"]) == 2
        one_line(capsys.readouterr().err)
        assert main(["sweep", str(params), "-o", str(d / "new"), "--no-plots"]) == 2
        one_line(capsys.readouterr().err)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
        if os.geteuid() != 0:
            out.chmod(0o755)
            (out / "hist").chmod(0o755)


# ------------------------------------------------------------------------------------------------
# full disk: a real small tmpfs


@pytest.mark.parametrize("size", ["16k", "96k", "400k"])
def test_full_disk_tmpfs(tmp_path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (fault injection covers it below)")
    d = tmp_path / "disk"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs")
    try:
        params, out = small_params(tmp_path, samples=20000), d / "res"
        r = subprocess.run([*MCSMP, "sweep", str(params), "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2
        assert "No space left" in one_line(r.stderr)
        assert temporaries(d) == []
        if (out / "meta.json").exists():
            m = meta_of(out)
            assert m["status"] == "failed" and m["runs"][-1]["status"] == "failed"
        subprocess.run(["mount", "-o", "remount,size=50m", str(d)], check=True)
        r = subprocess.run([*MCSMP, "sweep", str(params), "-o", str(out), "--resume"], capture_output=True, text=True,
                           cwd=ROOT)  # fmt: skip
        assert r.returncode == 0, r.stderr
        m = meta_of(out)
        assert m["status"] == "complete" and (out / "summary.csv").exists() and any((out / "plots").glob("*.png"))
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


# ------------------------------------------------------------------------------------------------
# fault injection on every writer


class Fault:
    """Make the ``after``-th and later atomic renames (or temporary files) fail with ``err``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, err: int, after: int = 0, where: str = "replace") -> None:
        self.calls, self.after, self.err = 0, after, err
        real = {"replace": os.replace, "mkstemp": atomic.tempfile.mkstemp}[where]

        def fake(*a: object, **k: object) -> object:
            self.calls += 1
            if self.calls > self.after:
                raise OSError(self.err, os.strerror(self.err))
            return real(*a, **k)

        if where == "replace":
            monkeypatch.setattr(atomic.os, "replace", fake)
        else:
            monkeypatch.setattr(atomic.tempfile, "mkstemp", fake)


@pytest.mark.parametrize(("err", "after"), [(errno.ENOSPC, 0), (errno.ENOSPC, 4), (errno.EACCES, 1), (errno.EROFS, 9)])
def test_sweep_fault_injection(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                               err: int, after: int) -> None:  # fmt: skip
    params, out = small_params(tmp_path), tmp_path / "res"
    with monkeypatch.context() as m:
        Fault(m, err, after)
        assert main(["sweep", str(params), "-o", str(out), "--no-plots"]) == 2
    assert os.strerror(err) in one_line(capsys.readouterr().err)
    assert temporaries(tmp_path) == []
    if (out / "meta.json").exists():
        meta = meta_of(out)
        assert meta["status"] == "failed", meta["status"]
        assert meta["runs"][-1]["status"] == "failed"
    assert main(["sweep", str(params), "-o", str(out), "--no-plots", "--resume"]) == 0
    assert meta_of(out)["status"] == "complete"


def test_merge_report_fault_injection(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    params = small_params(tmp_path)
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, s in enumerate(shards):
        assert main(["sweep", str(params), "--shard", f"{i}/2", "-o", str(s), "--no-plots"]) == 0
    merged = tmp_path / "merged"
    for after in (0, 2, 5):
        with monkeypatch.context() as m:
            Fault(m, errno.ENOSPC, after)
            capsys.readouterr()
            assert main(["merge", *map(str, shards), "-o", str(merged), "--no-plots", "--force"]) == 2
        one_line(capsys.readouterr().err)
        assert temporaries(tmp_path) == []
        if (merged / "meta.json").exists():
            assert meta_of(merged)["status"] == "failed"
    assert main(["merge", *map(str, shards), "-o", str(merged), "--no-plots", "--force"]) == 0
    summary = (merged / "summary.csv").read_bytes()
    for where in ("replace", "mkstemp"):
        with monkeypatch.context() as m:
            Fault(m, errno.EACCES, 1, where)
            capsys.readouterr()
            assert main(["report", str(merged), "--no-plots", "--quantiles", "0.5"]) == 2
        one_line(capsys.readouterr().err)
        assert temporaries(tmp_path) == []
        meta = meta_of(merged)
        assert meta["status"] == "failed" and meta["rendered"]["status"] == "failed"
    assert (merged / "summary.csv").read_bytes() == summary  # the failed rendering replaced nothing
    assert main(["report", str(merged), "--no-plots"]) == 0
    assert meta_of(merged)["status"] == "complete"
    assert (merged / "summary.csv").read_bytes() == summary


def test_reproduce_fault_injection(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_reproduce import toy_files

    params, targets = toy_files(tmp_path, samples=2000)
    out = tmp_path / "o"
    with monkeypatch.context() as m:
        Fault(m, errno.ENOSPC, 1)
        status = main(["reproduce", str(params), "--targets", str(targets), "--scenarios", "rt", "-o", str(out),
                       "--no-figure", "-q", "--threads", "1"])  # fmt: skip
    assert status == 2
    assert "No space left" in one_line(capsys.readouterr().err)
    assert temporaries(tmp_path) == []


def test_calibrate_and_trace_import_fault_injection(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from test_calibrate import toy_params_file, toy_targets_file

    params, targets = toy_params_file(tmp_path, samples=2000), toy_targets_file(tmp_path, fit_entry=False)
    trace = ROOT / "tests" / "data" / "munmap_a.trace.gz"
    commands = {
        "calibrate": ["calibrate", str(params), str(targets), "--max-evals", "2", "--threads", "1", "-q", "-o"],
        "trace import": ["trace", "import", str(trace), "-o"],
    }
    for name, cmd in commands.items():
        for err, where in ((errno.ENOSPC, "replace"), (errno.EACCES, "mkstemp")):
            target = tmp_path / f"{name.replace(' ', '_')}.yaml"
            target.write_text("old\n")
            with monkeypatch.context() as m:
                Fault(m, err, 0, where)
                capsys.readouterr()
                assert main([*cmd, str(target)]) == 2, name
            assert os.strerror(err) in one_line(capsys.readouterr().err), name
            assert target.read_text() == "old\n"  # untouched
            assert temporaries(tmp_path) == []
        # a missing parent is made; a parent that is a file is one line
        assert main([*cmd, str(tmp_path / "new" / "deeper" / "out.yaml")]) == 0, name
        capsys.readouterr()
        (tmp_path / "plain").write_text("x")
        assert main([*cmd, str(tmp_path / "plain" / "out.yaml")]) == 2, name
        one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------
# the folder lock, killed and interrupted runs, temporaries, broken pipes


def test_second_writer_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, out = small_params(tmp_path), tmp_path / "res"
    assert main(["sweep", str(params), "-o", str(out), "--no-plots"]) == 0
    capsys.readouterr()
    with FolderLock(out):
        for cmd in (["sweep", str(params), "-o", str(out), "--no-plots", "--resume"], ["report", str(out), "--no-plots"]):
            assert main(cmd) == 2
            assert "another mcsmp process" in one_line(capsys.readouterr().err)
    assert main(["sweep", str(params), "-o", str(out), "--no-plots", "--resume"]) == 0


def test_killed_run_is_recorded_and_temporaries_are_cleaned(tmp_path: Path) -> None:
    params, out = small_params(tmp_path), tmp_path / "res"
    assert main(["sweep", str(params), "-o", str(out)]) == 0
    meta = meta_of(out)
    meta["status"] = "rendering"
    meta["runs"][-1].update(status="rendering", finished=None)  # what SIGKILL while rendering leaves
    (out / "meta.json").write_text(json.dumps(meta))
    stale = [out / "plots" / ".ccdf_preempt_off_ns.png.abc.tmp", out / "hist" / ".x.npz.def.tmp", out / ".meta.json.g.tmp",
             out / "hgrm" / meta["points"][0]["id"] / ".call_ns.hgrm.h.tmp"]  # fmt: skip
    for p in stale:
        p.write_bytes(b"")
    assert main(["sweep", str(params), "-o", str(out), "--resume"]) == 0
    runs = meta_of(out)["runs"]
    assert [r["status"] for r in runs] == ["killed", "complete"]
    assert runs[0]["killed_while"] == "rendering"
    assert temporaries(out) == []


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    params, out = small_params(tmp_path, samples=4_000_000, points=4), tmp_path / "res"
    proc = subprocess.Popen([*MCSMP, "sweep", str(params), "-o", str(out), "--no-plots", "--threads", "1"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (out / "meta.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    meta = meta_of(out)
    assert meta["status"] == "interrupted" and meta["runs"][-1]["status"] == "interrupted"
    assert temporaries(out) == []


def test_broken_pipe_exits_0_silently() -> None:
    r = subprocess.run(f"{sys.executable} -m mcsmp run {SMOKE} --samples 20000 | head -1", shell=True,
                       capture_output=True, text=True, cwd=ROOT, executable="/bin/bash")  # fmt: skip
    assert r.stdout.count("\n") == 1
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m mcsmp run {SMOKE} --samples 20000 | head -1"],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ------------------------------------------------------------------------------------------------
# SIGKILL at random moments, each followed by --resume


def outputs(folder: Path) -> dict[str, bytes]:
    """Every output but the timings: tables and .hgrm byte for byte, histogram arrays exactly."""
    files: dict[str, bytes] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not p.is_file() or rel in ("meta.json", ".mcsmp.lock") or p.suffix == ".npz":
            continue
        files[rel] = p.read_bytes()
    for p in sorted((folder / "hist").glob("*.npz")):
        with np.load(p) as z:
            for key in ("counts", "chunks", "chunk_sums", "chunk_counts", "chunk_fanouts", "params_hash"):
                files[f"{p.name}:{key}"] = np.asarray(z[key]).tobytes()
    return files


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    params = small_params(tmp_path, samples=600_000, points=4)
    ref = tmp_path / "ref"
    subprocess.run([*MCSMP, "sweep", str(params), "-o", str(ref), "--threads", "2"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    out = tmp_path / "killed"
    rng = random.Random(13)
    kills, started = 0, time.time()
    first = True
    while True:
        cmd = [*MCSMP, "sweep", str(params), "-o", str(out), "--threads", "2"] + ([] if first else ["--resume"])
        meta_path = out / "meta.json"
        stamp = meta_path.stat().st_mtime_ns if meta_path.exists() else 0
        # stderr to a file, not a pipe: waiting for a pipe's end would also wait for any grandchild
        # (git, uname) that inherited it
        errf = tmp_path / f"stderr-{kills}.txt"
        with open(errf, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # fmt: skip
        if kills < 24:
            if rng.random() < 0.8:  # most kills after the run has recorded itself: while simulating or rendering
                deadline = time.time() + 30
                while proc.poll() is None and time.time() < deadline and (
                    (meta_path.stat().st_mtime_ns if meta_path.exists() else 0) == stamp
                ):
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 4.0))
            else:  # during start-up
                time.sleep(rng.uniform(0.0, 2.0))
            if proc.poll() is None:
                proc.kill()
                kills += 1
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            proc.wait(timeout=30)
            pytest.fail(f"run {kills} hung:\n{errf.read_text()}")
        err = errf.read_text()
        first = False
        assert "Traceback" not in err, err
        if proc.returncode == 0:
            if kills >= 24:
                break
            # finished before its kill: start over into a fresh folder state by forcing a re-run
            for p in (out / "hist").glob("*.npz"):
                if rng.random() < 0.5:
                    p.unlink()
            continue
        assert proc.returncode == -signal.SIGKILL, err
        if (out / "meta.json").exists():
            assert meta_of(out)["status"] != "complete" or (out / "summary.csv").exists()
    meta = meta_of(out)
    statuses = [r["status"] for r in meta["runs"]]
    print(f"\n{kills} SIGKILLs in {time.time() - started:.0f} s; runs recorded: {len(statuses)}, "
          f"killed {statuses.count('killed')}")
    assert meta["status"] == "complete" and statuses[-1] == "complete"
    assert statuses.count("killed") >= kills // 2
    assert temporaries(out) == []
    assert outputs(out) == outputs(ref)
