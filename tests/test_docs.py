"""The Python examples of docs/ run as shown (in a scratch folder, from the repository root's
parameter files), so the documentation cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_example_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(REPO / "docs" / "example.md")
    assert len(blocks) >= 3
    (tmp_path / "params").symlink_to(REPO / "params")  # presets are found in ./params
    monkeypatch.chdir(tmp_path)
    env: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/example.md", "exec"), env)
    assert (tmp_path / "ccdf.png").stat().st_size > 1000
    frame = env["frame"]
    assert list(frame.columns[:2]) == ["point", "point_id"] and (frame["n_samples"] > 0).all()
    assert env["p99"].value >= env["p99"].low


def test_readme_api_line_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-liner the README shows."""
    line = next(l for l in (REPO / "README.md").read_text().splitlines() if "mcsmp.run(mcsmp.load(" in l)
    code = re.search(r'"(import mcsmp;.*)"', line).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(REPO)
    exec(code, {})
