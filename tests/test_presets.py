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
