"""Per-CPU lists across CPU counts: ``{repeat: [..]}`` patterns, ``cpus_per_llc: null`` and
references that apply only to the CPU count they were measured on (docs/parameters.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcsmp.config.build import build_params, load_raw
from mcsmp.config.points import expand
from mcsmp.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_repeat_pattern_equals_the_plain_list_and_its_hash(tmp_path: Path) -> None:
    plain = _write(tmp_path, "machine: {cpus: 6, cpus_per_llc: 6}\nworkload: {rate_hz: [100, 0.5, 2, 100, 0.5, 2]}\n")
    a = build_params(load_raw(plain))
    pattern = _write(tmp_path, "machine: {cpus: 6, cpus_per_llc: null}\nworkload: {rate_hz: {repeat: [100, 0.5, 2]}}\n")
    b = build_params(load_raw(pattern))
    assert b.workload.rate_hz == a.workload.rate_hz and b.workload.rate_per_cpu
    assert b.machine.cpus_per_llc == 6
    assert b.resolved == a.resolved and b.model_hash == a.model_hash  # the pattern resolves to the list


def test_repeat_extends_to_any_cpu_count_and_background(tmp_path: Path) -> None:
    path = _write(tmp_path, "machine: {cpus: 4, cpus_per_llc: null, sockets: 2}\nworkload: {rate_hz: {repeat: [10, 1, 1]}}\n"
                  "background:\n  - {name: b, length: 100, rate_hz: {repeat: [5, 0]}}\n")  # fmt: skip
    pts = expand(load_raw(path), ["machine.cpus=4,8"])
    p8 = pts[1].params
    assert p8.workload.rate_hz == (10, 1, 1, 10, 1, 1, 10, 1)  # CPU c takes entry c mod 3
    assert p8.background[0].rates == (5, 0) * 4
    assert p8.machine.cpus_per_llc == 4  # null: one LLC per socket
    assert p8.resolved["background"][0]["rate_hz"] == [5, 0] * 4


def test_reference_is_dropped_at_other_cpu_counts(tmp_path: Path) -> None:
    path = _write(tmp_path, "machine: {cpus: 2, cpus_per_llc: null}\nreport:\n  reference:\n"
                  "    window_max_ns: {0.5: [10, 20]}\n    exceed_count: {1: [1, 0, 0]}\n")  # fmt: skip
    p2, p4 = (p.params for p in expand(load_raw(path), ["machine.cpus=2,4"]))
    assert p2.report.reference is not None and p2.report.reference.window_max_ns == ((0.5, (10.0, 20.0)),)
    assert p4.report.reference is None and p4.resolved["report"]["reference"] is None


def test_reference_without_lists_needs_its_cpu_count_when_swept(tmp_path: Path) -> None:
    path = _write(tmp_path, "machine: {cpus: 2, cpus_per_llc: null}\nreport:\n  reference:\n    exceed_count: {1: [1, 0, 0]}\n")
    with pytest.raises(ParamError, match="report.reference.cpus"):
        expand(load_raw(path), ["machine.cpus=2,4"])
    path.write_text(path.read_text() + "    cpus: 2\n")
    p2, p4 = (p.params for p in expand(load_raw(path), ["machine.cpus=2,4"]))
    assert p2.report.reference is not None and p4.report.reference is None


def test_16core_sweeps_over_cpu_counts_with_its_16cpu_points_unchanged() -> None:
    raw = load_raw(ROOT / "params" / "16core.yaml")
    base = {p.params.model_hash for p in expand(raw)}
    wide = expand(raw, ["machine.cpus=16,64,256"])
    assert len(wide) == 108
    assert {p.params.model_hash for p in wide if p.params.machine.cpus == 16} == base
    for p in wide:
        m = p.params.machine
        assert m.cpus_per_llc == m.cpus and len(p.params.workload.rate_hz) == m.cpus
        assert (p.params.report.reference is not None) == (m.cpus == 16)
    assert sum(r == 100 for r in wide[-1].params.workload.rate_hz) == 64  # a quarter housekeeping CPUs


def test_the_core_count_study_shares_the_16core_points() -> None:
    """params/16core-cores.yaml (run by `make sweep` next to 16core.yaml) restates the model of
    16core.yaml: its 16-CPU points are 16core.yaml points, and it spans 16 to 1024 CPUs."""
    main = {p.params.model_hash for p in expand(load_raw(ROOT / "params" / "16core.yaml"))}
    cores = expand(load_raw(ROOT / "params" / "16core-cores.yaml"))
    assert sorted({p.params.machine.cpus for p in cores}) == [16, 64, 256, 1024]
    at16 = [p for p in cores if p.params.machine.cpus == 16]
    assert len(at16) == 6 and {p.params.model_hash for p in at16} <= main  # policy.reentry off: in its grid
    assert all(p.params.samples == 1_000_000 for p in at16)
    work = {p.params.machine.cpus: p.params.samples * (p.params.machine.cpus - 1) for p in cores}
    assert max(work.values()) / min(work.values()) < 1.2  # samples cut so every point costs about the same


def test_one_rate_is_not_per_cpu(tmp_path: Path) -> None:
    p = build_params(load_raw(_write(tmp_path, "workload: {rate_hz: 100}\n")))
    assert not p.workload.rate_per_cpu and p.workload.rate_hz == (100.0,) * p.machine.cpus
