"""The ``mcsmp`` command line: ``run`` (tables and JSON), ``check`` and ``--version``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mcsmp
from mcsmp.cli import main

FOUR = ("preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock")
TEXT = """\
machine: {cpus: 4, cpus_per_llc: 4}
samples: 20000
policies: [preempt_off, preemptible_wait, atomic_alloc, cpus_read_lock]
sweep:
  grid: {cache.placement: [percpu, stack]}
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(TEXT)
    return path


def test_run_prints_per_policy_tables(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(small), "--threads", "2"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    head = out.splitlines()[:2]
    assert head[0].startswith(f"mcsmp {mcsmp.__version__}: {small} point [0]") and "cache.placement=percpu" in head[0]
    # 4 CPUs, every other CPU a target: 3 target-samples per fan-out
    m = re.match(r"20,000 fan-outs, 60,000 target-samples in [\d.]+ s \(([\d.]+) M fan-outs/s, ([\d.]+) M target-samples/s\)", head[1])
    assert m, head[1]
    assert float(m[1]) > 0 and float(m[2]) > 0
    for title in ("Per call and per target", "preempt_off_ns", "hotplug_block_ns", "wakeup_ns", "rendezvous_ns",
                  "window_max_ns", "exceed_count", "mask_bytes"):  # fmt: skip
        assert title in out, title
    section = out.split("\npreempt_off_ns\n")[1].split("\n\n")[0].splitlines()
    assert section[0].split() == ["policy", "mean", "p50", "p90", "p99", "p99.9", "p99.99"]
    assert [line.split()[0] for line in section[2:]] == list(FOUR)
    sampled = out.split("Per call and per target (policy-independent)\n")[1].split("\n\n")[0].splitlines()
    rows = {line.split()[0]: line.split()[1] for line in sampled[2:]}
    assert rows == {"call_ns": "20,000", "remote_wait_ns": "60,000", "info_cost_ns": "60,000"}


def test_run_selects_a_point(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(small), "--point", "1", "--samples", "5000"]) == 0
    out = capsys.readouterr().out
    assert "point [1]" in out.splitlines()[0] and "cache.placement=stack" in out.splitlines()[0]
    assert out.splitlines()[1].startswith("5,000 fan-outs")
    assert main(["run", str(small), "--point", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--point 7" in err


def test_run_json(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(small), "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 20000 and data["target_samples"] == 60000 and data["seed"] == 5
    assert data["fanouts_per_s"] > 0 and data["point_overrides"] == {"cache.placement": "percpu"}
    # the record: every override, the resolved parameters and their hash, versions
    assert data["sets"] == ["seed=5"] and data["schema_version"] == 1 and data["version"] == mcsmp.__version__
    assert data["resolved"]["seed"] == 5 and len(data["params_hash"]) == 64
    assert data["params_hash"] == mcsmp.load(small, ["seed=5"]).params_hash
    rows = data["metrics"]
    assert rows and all(
        set(r) == {"metric", "policy", "cpu", "statistic", "unit", "n_samples", "beyond_data"}
        | ({"value_ns", "ci95_low_ns", "ci95_high_ns"} if r["unit"] == "ns" else {"value", "ci95_low", "ci95_high"})
        for r in rows
    )
    metrics = {r["metric"] for r in rows}
    assert {"call_ns", "remote_wait_ns", "info_cost_ns", "preempt_off_ns", "hotplug_block_ns", "wakeup_ns",
            "rendezvous_ns", "window_max_ns", "exceed_count", "mask_bytes"} <= metrics  # fmt: skip
    assert {r["policy"] for r in rows if r["metric"] == "preempt_off_ns"} == set(FOUR)

    def one(metric: str, policy: str, stat: str) -> dict:
        (row,) = [r for r in rows if (r["metric"], r["policy"], r["statistic"]) == (metric, policy, stat)]
        return row

    call = one("call_ns", "", "mean")
    assert call["n_samples"] == 20000
    # P of the mainline policy is the call itself (model §3)
    assert one("preempt_off_ns", "preempt_off", "mean")["value_ns"] == call["value_ns"]
    p99 = one("call_ns", "", "p99")
    assert p99["ci95_low_ns"] <= p99["value_ns"] <= p99["ci95_high_ns"]


def test_run_text_header_records_the_overrides(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(small), "--set", "machine.cpus=4", "--samples", "3000"]) == 0
    third = capsys.readouterr().out.splitlines()[2]
    assert "overrides: machine.cpus=4 samples=3000" in third
    assert mcsmp.load(small, ["machine.cpus=4", "samples=3000"]).params_hash[:16] in third


def test_check_lists_points(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(small)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{small}: valid, 2 sweep point(s)"
    ids = []
    for i, placement in enumerate(("percpu", "stack")):
        m = re.fullmatch(rf"  \[{i}\] ([0-9a-f]{{10}})  cache\.placement={placement}", lines[1 + i])
        assert m, lines[1 + i]
        ids.append(m[1])
    assert ids[0] != ids[1]
    assert "Resolved parameters of the first point:" in out and "placement: percpu" in out
    # --set with several values adds a grid axis
    assert main(["check", str(small), "--set", "machine.smt=1,2"]) == 0
    assert "valid, 4 sweep point(s)" in capsys.readouterr().out


def test_version_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "mcsmp", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"mcsmp {mcsmp.__version__}"
