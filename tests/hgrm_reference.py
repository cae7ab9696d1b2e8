"""Test-only reader of ``.hgrm`` files (the writer is checked against hdrh's own, in
test_outputs.py)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_hgrm"]


def read_hgrm(path: str | Path) -> list[tuple[float, float, int]]:
    """The ``(value, percentile, total count)`` rows of an ``.hgrm`` file (percentile in [0, 1])."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.lstrip().startswith("#") and parts[0] != "Value":
            rows.append((float(parts[0]), float(parts[1]), int(parts[2])))
    return rows
