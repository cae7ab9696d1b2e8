"""Test-only HdrHistogram helpers: hdrh's own writer and a reader of ``.hgrm`` files.

:func:`mcsmp.io.hgrm.hgrm_bytes` writes ``.hgrm`` files over our non-empty buckets only; these
are the independent references it is checked against (hdrh's pure-Python percentile iterator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcsmp.io.hgrm import hdr_significant_figures, recorded_values
from mcsmp.sim.histogram import RANGE_HIGH_NS, Histogram

__all__ = ["hdr_histogram", "read_hgrm"]


def hdr_histogram(hist: Histogram) -> Any:
    """``hist`` as an ``hdrh`` HdrHistogram over 1 ns .. 1e12 ns (see mcsmp.io.hgrm)."""
    from hdrh.histogram import HdrHistogram

    hdr = HdrHistogram(1, int(RANGE_HIGH_NS), hdr_significant_figures(hist.layout.precision_bits))
    for i, value in zip(*recorded_values(hist), strict=True):
        if not hdr.record_value(int(value), int(hist.counts[i])):
            raise ValueError(f"HdrHistogram refused value {value}")
    return hdr


def read_hgrm(path: str | Path) -> list[tuple[float, float, int]]:
    """The ``(value, percentile, total count)`` rows of an ``.hgrm`` file (percentile in [0, 1])."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.lstrip().startswith("#") and parts[0] != "Value":
            rows.append((float(parts[0]), float(parts[1]), int(parts[2])))
    return rows
