"""Bad input is one line on stderr naming file:line:col and the key path, exit status 2.

Each case runs the CLI in-process (``mcsmp.cli.main`` returns 2; ``capsys`` sees exactly one
line on stderr and nothing on stdout) and a few run as a real subprocess (no traceback).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mcsmp.cli import main

LOCATED = re.compile(r"^mcsmp: (?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")

# id: (file text, (line, column), key path or None, substrings of the message)
CASES: dict[str, tuple[str, tuple[int, int], str | None, tuple[str, ...]]] = {
    "wrong_type_int": ("machine:\n  cpus: sixteen\n", (2, 3), "machine.cpus", ("expected an integer", "'sixteen'")),
    "wrong_type_bool": ('kernel: {csdlock_debug: "yes"}\n', (1, 10), "kernel.csdlock_debug", ("expected true or false",)),
    "wrong_type_mapping": ("machine: 16\n", (1, 1), "machine", ("expected a mapping", "cpus")),
    "wrong_type_list": ("policies: preempt_off\n", (1, 1), "policies", ("non-empty list",)),
    "fraction_out_of_range": (
        "remote:\n  irq_off:\n    fraction: 1.5\n", (3, 5), "remote.irq_off.fraction", ("must be in [0, 1]", "1.5"),
    ),
    "negative_fraction": (
        "workload:\n  caller: {preemptible: -0.5, spinlock: 1.5}\n", (2, 12), "workload.caller.preemptible",
        ("must be in [0, 1]", "-0.5"),
    ),
    "negative_time": ("costs:\n  entry_ns: -5\n", (2, 3), "costs.entry_ns", ("must be >= 0", "-5")),
    "negative_dist_parameter": (
        "ipi:\n  delivery_ns: {dist: lognormal, median: -3, sigma: 0.4}\n", (2, 34), "ipi.delivery_ns.median",
        ("must be > 0",),
    ),
    "remote_fractions_past_one": (
        "remote:\n  irq_off: {fraction: 0.6}\n  idle: {fraction: 0.5}\n", (1, 1), "remote",
        ("sum to 1.1", "past 1"),
    ),
    "caller_fractions_not_one": (
        "workload:\n  caller: {preemptible: 0.7, spinlock: 0.7, preempt_disabled: 0.0}\n", (2, 3),
        "workload.caller", ("must sum to 1", "1.4"),
    ),
    "unknown_key": ("remote:\n  irq_of: {fraction: 0.1}\n", (2, 3), "remote.irq_of", ("unknown key", "did you mean 'irq_off'")),
    "unknown_key_flow": (
        "machine: {cpus: 8, cpus_per_llc: 8, sokets: 1}\n", (1, 37), "machine.sokets", ("did you mean 'sockets'",),
    ),
    "unknown_dist_key": (
        "ipi:\n  send_ns: {dist: lognormal, median: 100, sigmaa: 0.2}\n", (2, 43), "ipi.send_ns.sigmaa",
        ("unknown key 'sigmaa'",),
    ),
    "per_cpu_list_length": (
        "machine: {cpus: 4, cpus_per_llc: 4}\nworkload:\n  rate_hz: [1, 2, 3]\n", (3, 3), "workload.rate_hz",
        ("machine.cpus = 4", "got 3"),
    ),
    "per_cpu_pattern_key": (
        "machine: {cpus: 4, cpus_per_llc: 4}\nworkload:\n  rate_hz: {repeats: [1, 2]}\n", (3, 3), "workload.rate_hz",
        ("{repeat: [...]}", "repeats"),
    ),
    "per_cpu_pattern_value": (
        "machine: {cpus: 4, cpus_per_llc: 4}\nbackground:\n  - {name: b, length: 10, rate_hz: {repeat: [1, -2]}}\n",
        (3, 49), "background[0].rate_hz.repeat[1]", ("must be in [0, inf]", "-2"),
    ),
    "reference_cpus_mismatch_in_file": (
        "machine: {cpus: 4, cpus_per_llc: 4}\nreport:\n  reference:\n    window_max_ns: {0.5: [1, 2]}\n", (4, 21),
        "report.reference.window_max_ns.0.5", ("machine.cpus = 4", "got 2"),
    ),
    "unknown_policy": (
        "policies: [preempt_off, preemptible_wiat]\n", (1, 25), "policies[1]",
        ("must be one of", "'preemptible_wiat'", "did you mean 'preemptible_wait'"),
    ),
    "unknown_dist_family": (
        "ipi:\n  delivery_ns: {dist: lognormel, median: 3, sigma: 0.4}\n", (2, 17), "ipi.delivery_ns.dist",
        ("unknown distribution 'lognormel'", "did you mean 'lognormal'"),
    ),
    "zip_unequal_lengths": (
        "sweep:\n  zip:\n    machine.cpus: [4, 8]\n    machine.cpus_per_llc: [4, 8, 16]\n", (2, 3), "sweep.zip",
        ("equal lengths", "[2, 3]"),
    ),
    "yaml_syntax_flow": ("machine:\n  cpus: [1, 2\nkernel: {preemption: full}\n", (3, 7), None, ("YAML syntax error",)),
    "yaml_syntax_indent": ("machine:\n cpus: 4\n  smt: 2\n", (3, 6), None, ("YAML syntax error",)),
    "yaml_custom_tag": ("name: !custom x\n", (1, 7), "name", ("not allowed",)),
    "single_call_without_a_target": (
        "machine: {cpus: 1, cpus_per_llc: 1}\nworkload: {call: single}\n", (2, 12), "workload.call",
        ("needs a target CPU other than the sender", "machine.cpus is 1"),
    ),
    "polling_prob_out_of_range": (
        "remote:\n  idle: {polling_prob: 1.5}\n", (2, 10), "remote.idle.polling_prob", ("must be in [0, 1]", "1.5"),
    ),
    "sender_preempt_hz_negative": (
        "ipi: {sender_preempt_hz: -5}\n", (1, 7), "ipi.sender_preempt_hz", ("-5",),
    ),
}  # fmt: skip


def _one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, f"not exactly one line: {text!r}"
    assert "Traceback" not in text
    return text[:-1]


def _check_located(line: str, path: Path, where: tuple[int, int], key: str | None, parts: tuple[str, ...]) -> None:
    m = LOCATED.match(line)
    assert m, f"no file:line:col in {line!r}"
    assert m["file"] == str(path)
    assert (int(m["line"]), int(m["col"])) == where, line
    if key is not None:
        assert m["rest"].startswith(f"{key}: "), line
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_in_process(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, where, key, parts = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _check_located(_one_line(err), path, where, key, parts)


def test_object_building_yaml_tag_does_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    for i, tag in enumerate(("!!python/object/apply:os.system", "!!python/object/apply:subprocess.call")):
        path = tmp_path / f"evil{i}.yaml"
        arg = f"'touch {marker}'" if i == 0 else f"[['touch', '{marker}']]"
        path.write_text(f"seed: 1\nname: {tag} [{arg}]\n")
        assert main(["check", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        _check_located(_one_line(err), path, (2, 7), "name", ("YAML tag", "not allowed"))
        assert not marker.exists()
    path = tmp_path / "evil_name.yaml"
    path.write_text("name: !!python/name:os.system\n")
    assert main(["check", str(path)]) == 2
    _check_located(_one_line(capsys.readouterr().err), path, (1, 7), "name", ("not allowed",))


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    assert main(["check", str(path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"mcsmp: {path}: ") and "cannot read parameter file" in line


def test_top_level_not_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert main(["check", str(path)]) == 2
    _check_located(_one_line(capsys.readouterr().err), path, (1, 1), None, ("YAML mapping",))


@pytest.fixture
def ok_file(tmp_path: Path) -> Path:
    path = tmp_path / "ok.yaml"
    path.write_text("machine: {cpus: 4, cpus_per_llc: 4}\nsamples: 2000\n")
    return path


@pytest.mark.parametrize(
    ("setting", "parts"),
    [
        ("machine.cpu=4", ("machine.cpu: unknown key", "did you mean 'cpus'")),
        ("machine.cpus=abc", ("machine.cpus: expected an integer", "'abc'")),
        ("remote.irq_off.fraction=2", ("remote.irq_off.fraction: must be in [0, 1]",)),
        ("noequals", ("expected key=value",)),
    ],
)
def test_bad_set(setting: str, parts: tuple[str, ...], ok_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ok_file), "--set", setting]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_line(err)
    assert line.startswith("mcsmp: --set: "), line  # the value came from the command line, not the file
    for part in parts:
        assert part in line


def test_bad_set_unknown_intermediate_key_names_set(ok_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ok_file), "--set", "remote.irq_of.fraction=0.1"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "did you mean 'irq_off'" in line
    assert line.startswith("mcsmp: --set: "), line


def test_overload_names_the_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "busy.yaml"
    path.write_text("machine: {cpus: 4, cpus_per_llc: 4}\nsamples: 2000\nworkload:\n  rate_hz: 1.0e+9\n")
    assert main(["run", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing half-written
    line = _one_line(err)
    assert "overloaded" in line and "workload.rate_hz" in line and "1e+09 Hz" in line, line


# ---- the same through a real process: exit 2, one line, no traceback ---------------------------

SUBPROCESS_CASES = ("fraction_out_of_range", "unknown_key", "yaml_syntax_flow", "wrong_type_int")


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "mcsmp", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_file_subprocess(case: str, tmp_path: Path) -> None:
    text, where, key, parts = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    proc = _run_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _check_located(_one_line(proc.stderr), path, where, key, parts)


def test_object_building_tag_subprocess(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['echo hi > {marker}']\n")
    proc = _run_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "hi" not in proc.stdout and not marker.exists()
    _check_located(_one_line(proc.stderr), path, (1, 7), "name", ("not allowed",))


def test_system_refuses_single_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the whole-machine simulation follows many-call fan-outs; its scftorture mix has its own single calls
    path = tmp_path / "single.yaml"
    path.write_text("name: single\nworkload: {call: single}\nsystem: {}\n")
    assert main(["system", str(path)]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "workload.call" in line and "not modelled by mcsmp system" in line and not captured.out
