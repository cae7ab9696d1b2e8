"""Presets: the parameter files load by name, also from a plain (non-editable) install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mcsmp
from mcsmp.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_presets_are_the_params_files() -> None:
    names = set(mcsmp.presets())
    assert {"16core", "scaling", "seed-16core", "smoke"} <= names
    assert not any(n.endswith("-targets") for n in names)  # measurements, not parameters
    assert mcsmp.load("smoke").name == "smoke"
    with pytest.raises(mcsmp.UserError, match="no such parameter file or preset"):
        mcsmp.load("no-such-preset")


def test_presets_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "16core" in out and "smoke" in out and "seed-targets" not in out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a wheel installs it (no checkout on the path, no ./params)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp), str(REPO)],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp.glob("mcsmp-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp / "site")
    return tmp / "site"


def test_presets_load_by_name_after_a_plain_install(installed: Path, tmp_path: Path) -> None:
    assert (installed / "mcsmp" / "presets" / "16core.yaml").is_file()  # real files in the wheel
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = "import mcsmp; print(mcsmp.presets()['smoke'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert str(installed) in out.stdout  # found inside the installed package, not the checkout
    # `mcsmp check 16core`: found, parsed and validated by name (simulating it is `mcsmp run 16core`,
    # the same loading; it is left out here because a fresh install compiles the kernels first)
    run = subprocess.run([sys.executable, "-m", "mcsmp", "check", "16core"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "16core: valid, 36 sweep point(s)" in run.stdout


MACHINES = ("haswell-4c", "icelake-2s-128", "kvm-2vcpu", "milan-72", "milan-72-invlpgb", "spr-2s")  # params/machines/ (issue 10)


def test_machine_presets_load_by_name() -> None:
    names = mcsmp.presets()
    for name in MACHINES:
        assert names[name].parent.name == "machines"
        assert mcsmp.load(name).name == name  # each file names its own results folder


def test_machine_presets_after_a_plain_install(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    for name in MACHINES:
        assert (installed / "mcsmp" / "presets" / "machines" / f"{name}.yaml").is_file()
        run = subprocess.run([sys.executable, "-m", "mcsmp", "check", name], cwd=tmp_path, env=env,
                             capture_output=True, text=True)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert f"{name}: valid, 1 sweep point(s)" in run.stdout


@pytest.mark.slow
def test_mcsmp_run_haswell_4c_after_a_plain_install(installed: Path, tmp_path: Path) -> None:
    """`mcsmp run haswell-4c` itself from the wheel (compiles the kernels in a fresh cache: slow)."""
    env = {**os.environ, "PYTHONPATH": str(installed), "MCSMP_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "mcsmp", "run", "haswell-4c", "--samples", "2000", "--threads", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "call_ns" in run.stdout
