"""`include:` — a parameter file built on others (a trace fragment, a box's parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mcsmp
from mcsmp.cli import main
from mcsmp.config import build_params, load_raw
from mcsmp.errors import ParamError

DATA = Path(__file__).parent / "data"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_included_values_under_the_files_own(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "ipi: {send_ns: 5, delivery_ns: {dist: exponential, mean: 900}}\nmachine: {cpus: 8, cpus_per_llc: 8}\n")
    _write(tmp_path, "b.yaml", "machine: {cpus: 4, cpus_per_llc: 4}\nkernel: {preemption: rt}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    main_file = _write(sub, "main.yaml", "include: [../a.yaml, ../b.yaml]\nipi: {delivery_ns: 700}\n")
    p = build_params(load_raw(main_file))
    assert p.ipi.send_ns.mean == 5  # from a.yaml
    assert p.ipi.delivery_ns.is_const and p.ipi.delivery_ns.mean == 700  # a distribution is replaced whole
    assert p.machine.cpus == 4 and p.kernel.preemption == "rt"  # later includes win over earlier ones
    assert "include" not in p.resolved  # the resolved parameters (and their hash) hold the content


def test_errors_point_into_the_file_that_holds_the_key(tmp_path: Path) -> None:
    _write(tmp_path, "frag.yaml", "ipi:\n  send_ns: 0\nremote:\n  irq_off: {fraction: 2.0}\n")
    main_file = _write(tmp_path, "main.yaml", "name: x\ninclude: frag.yaml\n")
    with pytest.raises(ParamError, match=r"frag.yaml:4:\d+: remote.irq_off.fraction: must be in \[0, 1\]"):
        build_params(load_raw(main_file))
    missing = _write(tmp_path, "m2.yaml", "name: x\ninclude: [frag.yaml, nope.yaml]\n")
    with pytest.raises(ParamError, match=r"m2.yaml:2:\d+: include\[1\]: nope.yaml: cannot read"):
        load_raw(missing)
    cycle = _write(tmp_path, "c1.yaml", "include: c2.yaml\n")
    _write(tmp_path, "c2.yaml", "include: c1.yaml\n")
    with pytest.raises(ParamError, match="include cycle"):
        load_raw(cycle)
    bad = _write(tmp_path, "bad.yaml", "include: {a: 1}\n")
    with pytest.raises(ParamError, match="bad.yaml:1:\\d+: include: expected a file name"):
        load_raw(bad)


def test_a_trace_fragment_is_included(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The loop of docs/traces.md: trace import writes a fragment, a parameter file includes it."""
    from mcsmp.cli.trace import add_parser  # noqa: F401 (the trace commands are part of mcsmp)

    frag = tmp_path / "fragment.yaml"
    assert main(["trace", "import", str(DATA / "munmap_a.trace.gz"), "-o", str(frag)]) == 0
    box = _write(tmp_path, "box.yaml", "name: traced\ninclude: fragment.yaml\nsamples: 2000\n")
    p = mcsmp.load(box)
    assert p.workload.call == "tlb_flush" and p.machine.cpus == 2  # the fragment's keys (a flush_tlb_func capture)
    assert p.tlb.pages.mean == 4 and p.tlb.invlpg_ns.mean == 100  # its page count; the component INVLPG
    assert main(["check", str(box)]) == 0
    assert "valid, 1 sweep point(s)" in capsys.readouterr().out
