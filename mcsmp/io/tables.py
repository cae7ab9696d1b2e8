"""Tables: CSV cells and files, text tables, readable times, and the per-point CSV layouts.

One of each helper for the whole package: ``summary.csv``, ``per_cpu.csv``, ``mask.csv``, the
text report and ``mcsmp reproduce``'s tables are all written through here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Params
from ..metrics import METRICS, MetricRow, quantile_label

__all__ = [
    "SUMMARY_COLUMNS",
    "PointRows",
    "bin_label",
    "cpu_order",
    "cpu_ranges",
    "csv_cell",
    "csv_text",
    "format_ns",
    "mask_table",
    "ns_label",
    "per_cpu_table",
    "summary_header",
    "summary_rows",
    "text_table",
]


def cpu_order(cpu: str) -> tuple[int, str]:
    """Sort key of a CPU label: ids in numeric order, then labels such as ``all`` or ``max``."""
    return (int(cpu) if cpu.isdigit() else 1 << 62, cpu)


def cpu_ranges(cpus: Sequence[int], limit: int = 0) -> str:
    """``[1, 2, 4, 5, 6, 7, 9]`` -> ``1-2,4-7,9``; past ``limit`` characters (0: no limit) cut
    at a comma and followed by ``… (N CPUs)``."""
    cpus = sorted(cpus)
    runs: list[list[int]] = []
    for c in cpus:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    text = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
    if limit and len(text) > limit:
        text = text[: text.rfind(",", 0, limit)] + f",… ({len(cpus)} CPUs)"
    return text


def format_ns(v: float) -> str:
    """A time in ns with a readable unit (``1.23 ms``)."""
    if not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    a = abs(v)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if a >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def text_table(header: Sequence[str], body: Sequence[Sequence[str]], title: str | None = None) -> str:
    """Left-aligned columns, a rule under the header (and a title line above, when given); no
    trailing blanks."""
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)] if body else [len(h) for h in header]
    lines = [] if title is None else [title]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return "\n".join(lines)


@dataclass
class PointRows:
    """One sweep point's metric rows, with what identifies the point in a table."""

    index: int
    id: str
    overrides: dict[str, Any]
    params: Params
    rows: list[MetricRow]


def csv_cell(v: Any) -> str:
    """One CSV cell: floats in shortest round-trip form, so files are exact and reproducible."""
    t = type(v)  # fast paths for the common exact types (the same text as the general rules below)
    if t is float:
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if t is str:
        return v
    if t is int:
        return str(v)
    if isinstance(v, np.generic):  # NumPy scalars as the Python values they hold
        v = v.item()
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def ns_label(x: float) -> str:
    """``1e6`` → ``1ms`` (for column names)."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}ns"


_MASK_COLUMNS = {
    ("mask_bytes", "cpumask_size"): "cpumask_size_bytes",
    ("mask_bytes", "inlined"): "mask_inlined",
    ("mask_bytes", "bytes_per_task"): "mask_bytes_per_task",
    ("mask_bytes", "bytes_total"): "mask_bytes_total",
    ("mask_bytes", "fallbacks_per_s"): "atomic_alloc_fallbacks_per_s",
}


SUMMARY_COLUMNS = ("metric", "policy", "cpu", "statistic", "value_ns", "ci95_low_ns", "ci95_high_ns", "n_samples")


def summary_header(swept: Sequence[str]) -> list[str]:
    """The columns of ``summary.csv`` (and of ``Result.to_frame()``)."""
    return ["point", "point_id", *swept, *SUMMARY_COLUMNS]


def summary_rows(pt: PointRows, swept: Sequence[str]) -> list[list[Any]]:
    """``summary.csv``'s rows of one point: every metric whose unit is ns (the registry's)."""
    lead = [pt.index, pt.id] + [pt.overrides.get(k) for k in swept]
    return [
        [*lead, r.metric, r.policy, r.cpu, r.statistic, float(r.value), float(r.low), float(r.high), r.n]
        for r in pt.rows
        if METRICS[r.metric].unit == "ns"
    ]


def per_cpu_table(points: Sequence[PointRows], swept: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """The seed's per-CPU table: window-maximum quantiles and section counts per bin."""
    records: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    for pt in points:
        rep = pt.params.report
        ref = rep.reference
        bins = list(zip(rep.exceed_bins_ns[:-1], rep.exceed_bins_ns[1:], strict=True))
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        exceed_seen: dict[tuple[str, str], int] = {}
        for r in pt.rows:
            if r.metric not in ("window_max_ns", "exceed_count"):
                continue
            rec = by_key.setdefault((r.policy, r.cpu), {"window_s": rep.window_s, "duration_h": rep.duration_h})
            if r.metric == "window_max_ns":
                base = f"window_max_{r.statistic}"
                rec[f"{base}_ns"], rec[f"{base}_ci95_low_ns"], rec[f"{base}_ci95_high_ns"] = r.value, r.low, r.high
                rec["calls_sampled"] = r.n
            else:  # exceed_count rows come in bin order for each (policy, cpu)
                k = exceed_seen.get((r.policy, r.cpu), 0)
                exceed_seen[(r.policy, r.cpu)] = k + 1
                b0, b1 = bins[k]
                base = f"sections_{ns_label(b0)}_{ns_label(b1)}"
                rec[base], rec[f"{base}_ci95_low"], rec[f"{base}_ci95_high"] = r.value, r.low, r.high
        def cpu_order(item: tuple[tuple[str, str], dict[str, Any]]) -> tuple[int, int]:
            (policy, cpu), _ = item  # policies in file order, then CPUs by id (the seed's table)
            return pt.params.policies.index(policy), int(cpu) if cpu.isdigit() else -1

        for (policy, cpu), rec in sorted(by_key.items(), key=cpu_order):
            if ref is not None and cpu != "all":
                c = int(cpu)
                for q, values in ref.window_max_ns:
                    rec[f"ref_window_max_{quantile_label(q)}_ns"] = values[c]
                for rc, counts in ref.exceed_count:
                    if rc == c:
                        for (b0, b1), v in zip(bins, counts, strict=True):
                            rec[f"ref_sections_{ns_label(b0)}_{ns_label(b1)}"] = v
            lead = {"point": pt.index, "point_id": pt.id, **{k: pt.overrides.get(k) for k in swept}}
            records.append({**lead, "policy": policy, "cpu": cpu, **rec})
            for key in rec:
                columns.setdefault(key, None)
    fixed = ["window_s", "duration_h", "calls_sampled"]
    measured = [c for c in columns if c not in fixed and not c.startswith("ref_")]
    refs = [c for c in columns if c.startswith("ref_")]
    header = ["point", "point_id", *swept, "policy", "cpu", *fixed, *measured, *refs]
    return header, [[rec.get(c) for c in header] for rec in records]


def mask_table(points: Sequence[PointRows], swept: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    cols: dict[str, None] = {}
    recs = []
    for pt in points:
        rec: dict[str, Any] = {}
        for r in pt.rows:
            if r.metric == "mask_bytes":
                name = _MASK_COLUMNS.get((r.metric, r.statistic), f"{r.metric}_{r.statistic}")
                rec[name] = int(r.value) if float(r.value).is_integer() and "per_s" not in name else float(r.value)
                cols.setdefault(name, None)
        recs.append((pt, rec))
    header = ["point", "point_id", *swept, *cols]
    body = [[pt.index, pt.id, *(pt.overrides.get(k) for k in swept), *(rec.get(c) for c in cols)] for pt, rec in recs]
    return header, body


def bin_label(stat: str) -> str:
    """``count[1e+06,1e+07)`` → ``1-10 ms`` (an exceed_count bin, for labels)."""
    if not stat.startswith("count["):
        return stat
    lo, hi = stat[6:-1].split(",")
    return f"{float(lo) / 1e6:g}-{float(hi) / 1e6:g} ms"
