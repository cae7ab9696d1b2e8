"""Every command the README and docs/ show runs, so an example cannot rot (issue: two README
examples had failed). Commands are taken from the ```sh blocks, run in a scratch folder with a
copy of params/ and small sample counts; the few that cannot run here are listed with the reason
and the test that covers them instead, and the list must match exactly (a new command is either
run or consciously listed)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]

# command prefix -> why it is not run here (and what tests it instead)
NOT_RUN = {
    "mcsmp sweep params/scaling.yaml --dask tcp://scheduler:8786": "a placeholder scheduler address",
    "mcsmp sweep params/scaling.yaml --dask slurm:8": "needs a batch queue (test_dask.py runs it on a stand-in)",
    "mcsmp sweep params/16core.yaml --dask slurm:8": "needs a batch queue (test_dask.py runs it on a stand-in)",
    "sudo mcsmp trace record": "needs tracefs and the compiled workload (test_trace_record.py)",
    "mcsmp merge results/16core/shard-*": "needs all 16 shards (test_sweep.py and test_resume.py merge shards)",
    "mcsmp merge results/race/shard-*": "needs all 16 shards (test_system_sweep.py merges system shards)",
    "mcsmp calibrate params/seed-16core.yaml params/seed-targets.yaml -o /tmp/refit.yaml && cmp":
        "the byte-identical re-fit needs the full samples (test_calibrate.py checks it on a small box)",
}  # fmt: skip


def _commands() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = (REPO / page).read_text()
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                cmd = re.sub(r"\s+#.*$", "", line).strip()
                cmd = cmd.removeprefix("$ ")
                if re.match(r"^(sudo )?(\.venv/bin/)?mcsmp\b", cmd) and not re.search(r"\b[A-Z]{3,}\b|\[--", cmd):
                    out.append((page, cmd.replace(".venv/bin/mcsmp", "mcsmp")))
    return out


def _small(cmd: str) -> str:
    """The same command with small sample counts, few optimiser steps and no figures."""
    if re.search(r"^mcsmp (run|sweep|reproduce|calibrate) ", cmd) and "--samples" not in cmd:
        head, sep, rest = cmd.partition(" > ")
        cmd = head + " --samples 3000" + (sep + rest if sep else "")
    cmd = re.sub(r"--samples \d+", "--samples 3000", cmd)
    if re.match(r"^mcsmp (sweep|merge|report) ", cmd) and "--no-plots" not in cmd:
        cmd += " --no-plots"  # figures are tested on their own (test_outputs.py); here, that the command runs
    if cmd.startswith("mcsmp calibrate"):
        cmd += " --max-evals 3 -q"
    if cmd.startswith("mcsmp reproduce"):
        cmd += " -q --no-figure"
    if cmd.startswith("mcsmp system"):  # a few simulated milliseconds
        cmd += " --set system.duration_s=0.002 --set system.warmup_s=0.0005 --set system.replications=2"
    return cmd


def test_the_documented_commands_are_found() -> None:
    cmds = [c for _, c in _commands()]
    assert len(cmds) >= 25
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in cmds), f"NOT_RUN lists a command no page shows: {prefix}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "params", root / "params")  # calibrate -o params/... must not touch the repo
    shutil.copytree(REPO / "tests" / "data" / "machines", root / "tests" / "data" / "machines")  # mcsmp system --machine
    with gzip.open(REPO / "tests" / "data" / "munmap_a.trace.gz") as f:
        (root / "munmap.trace").write_bytes(f.read())
    return root


def test_every_documented_command_runs(scratch: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SLURM_ARRAY_TASK_ID": "3", "N": "16", "MCSMP_THREADS": "2"}  # fmt: skip
    failures = []
    ran = 0
    for page, cmd in _commands():
        if any(cmd.startswith(p) for p in NOT_RUN):
            continue
        small = _small(cmd)
        done = subprocess.run(small, shell=True, cwd=scratch, env=env, capture_output=True, text=True, timeout=600)
        ran += 1
        if done.returncode != 0:
            failures.append(f"{page}: {small}\n    exit {done.returncode}: {done.stderr.strip()[-400:]}")
    assert not failures, "\n".join(failures)
    assert ran >= 20
