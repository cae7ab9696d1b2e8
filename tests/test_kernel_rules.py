"""Kernel rules reported as warnings (docs/model.md 9.34): each fires exactly on its condition."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import build_zero_params

from mcsmp.cli import main
from mcsmp.config.rules import kernel_warnings


def _warnings(tmp_path: Path, **dotted: object) -> list[str]:
    return kernel_warnings(build_zero_params(tmp_path, dotted))


def test_gfp_atomic_on_preempt_rt(tmp_path: Path) -> None:
    pol = ["preempt_off", "atomic_alloc"]
    assert any("PREEMPT_RT forbids" in w for w in _warnings(tmp_path, policies=pol, **{"kernel.preemption": "rt"}))
    assert not any("PREEMPT_RT" in w for w in _warnings(tmp_path, policies=pol, **{"kernel.preemption": "full"}))


def test_alloc_cpumask_var_without_offstack(tmp_path: Path) -> None:
    pol = ["preempt_off", "atomic_alloc"]
    small = {"kernel.nr_cpus": 512, "policy.alloc_fail_prob": 0.01}
    assert any("CPUMASK_OFFSTACK" in w for w in _warnings(tmp_path, policies=pol, **small))
    assert not _warnings(tmp_path, policies=pol, **{**small, "policy.alloc_fail_prob": 0.0})  # alloc_ns is 0 here
    assert not _warnings(tmp_path, policies=pol, **{**small, "kernel.nr_cpus": 8192})  # MAXSMP: OFFSTACK


def test_cpus_read_lock_from_an_atomic_caller(tmp_path: Path) -> None:
    pol = ["preempt_off", "cpus_read_lock"]
    atomic = {"workload.caller.preemptible": 0.5, "workload.caller.spinlock": 0.5, "workload.caller.preempt_disabled": 0.0}
    assert any("might_sleep" in w for w in _warnings(tmp_path, policies=pol, **atomic))
    # on rt a spinlock holder can sleep, and preemptible callers always can
    assert not _warnings(tmp_path, policies=pol, **{**atomic, "kernel.preemption": "rt"})
    assert not _warnings(tmp_path, policies=["preempt_off"], **atomic)


def test_check_prints_the_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rt.yaml"
    path.write_text("name: rt\npolicies: [preempt_off, atomic_alloc]\nkernel: {preemption: rt}\n")
    assert main(["check", str(path)]) == 0
    assert "warning: policies: atomic_alloc" in capsys.readouterr().out


def test_single_calls_break_neither_alternatives_rule(tmp_path: Path) -> None:
    # smp_call_function_single() allocates no wait mask and takes no cpus_read_lock() (9.37)
    broken = {"kernel.preemption": "rt", "kernel.nr_cpus": 512, "policy.alloc_fail_prob": 0.01,
              "workload.caller.preemptible": 0.5, "workload.caller.spinlock": 0.0,
              "workload.caller.preempt_disabled": 0.5}  # fmt: skip
    pol = ["preempt_off", "atomic_alloc", "cpus_read_lock"]
    assert len(_warnings(tmp_path, policies=pol, **broken)) == 3
    assert not _warnings(tmp_path, policies=pol, **broken, **{"workload.call": "single"})
