"""The text report and JSON of one point's metric rows (presentation only, no computation)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ..metrics import METRICS, MetricRow
from .tables import format_ns, text_table

__all__ = ["SCHEMA_VERSION", "row_record", "rows_to_json", "text_report"]

# What the tables show, from the registry: policy-independent time metrics first, then one table
# per policy-dependent time metric; counts and analytic values have their own layouts below.
_SAMPLED = tuple(m.name for m in METRICS.values() if m.unit == "ns" and not m.per_policy)
_PER_POLICY = tuple(m.name for m in METRICS.values() if m.unit == "ns" and m.per_policy)


def _cell(r: MetricRow, with_ci: bool) -> str:
    if not with_ci or r.statistic == "mean" or (r.low == r.value == r.high):
        return format_ns(r.value)
    return f"{format_ns(r.value)} [{format_ns(r.low)}, {format_ns(r.high)}]"


def text_report(rows: Sequence[MetricRow], header: str = "", with_ci: bool = True) -> str:
    """Per-policy tables of each metric's mean and quantiles with 95% intervals."""
    stats = [s for s in dict.fromkeys(r.statistic for r in rows if r.metric == "call_ns")]
    out = [header] if header else []
    sampled = [r for r in rows if r.metric in _SAMPLED]
    if sampled:
        body = []
        for metric in _SAMPLED:
            cells = {r.statistic: r for r in sampled if r.metric == metric}
            if cells:
                n = next(iter(cells.values())).n
                body.append([metric, f"{n:,}"] + [_cell(cells[s], with_ci) if s in cells else "" for s in stats])
        out.append(text_table(["metric", "samples"] + stats, body, "Per call and per target (policy-independent)"))
    policies = list(dict.fromkeys(r.policy for r in rows if r.metric in _PER_POLICY))
    for metric in _PER_POLICY:
        body = []
        for policy in policies:
            for cpu in dict.fromkeys(r.cpu for r in rows if r.metric == metric and r.policy == policy):
                cells = {r.statistic: r for r in rows if r.metric == metric and r.policy == policy and r.cpu == cpu}
                label = policy if cpu == "all" else f"{policy} cpu{cpu}"
                body.append([label] + [_cell(cells[s], with_ci) if s in cells else "" for s in stats])
        if body:
            out.append(text_table(["policy"] + stats, body, metric))
    exceed = [r for r in rows if r.metric == "exceed_count"]
    if exceed:
        bins = list(dict.fromkeys(r.statistic for r in exceed))
        body = []
        for policy in policies:
            for cpu in dict.fromkeys(r.cpu for r in exceed if r.policy == policy):
                cells = {r.statistic: r for r in exceed if r.policy == policy and r.cpu == cpu}
                label = policy if cpu == "all" else f"{policy} cpu{cpu}"
                body.append([label] + [f"{cells[b].value:.3g} [{cells[b].low:.3g}, {cells[b].high:.3g}]" for b in bins])
        out.append(text_table(["policy"] + bins, body, "exceed_count (expected sections per CPU over report.duration_h)"))
    mask = [r for r in rows if r.metric == "mask_bytes"]
    if mask:
        out.append("mask_bytes: " + ", ".join(f"{r.policy}.{r.statistic}={r.value:g}" for r in mask))
    return "\n\n".join(out)


SCHEMA_VERSION = 1  # of the JSON of `mcsmp run --json` and of meta.json (bump on a breaking change)


def _number(v: float) -> float | str:
    """JSON has no infinity: an open interval bound is the string "inf" (as in meta.json)."""
    return float(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")


def row_record(r: MetricRow) -> dict[str, Any]:
    """One metric row with summary.csv's key names: ``value_ns``, ``ci95_low_ns``,
    ``ci95_high_ns``, ``n_samples`` for times; ``value``, ``ci95_low``, ``ci95_high`` otherwise."""
    unit = METRICS[r.metric].unit
    sfx = "_ns" if unit == "ns" else ""
    return {
        "metric": r.metric, "policy": r.policy, "cpu": r.cpu, "statistic": r.statistic, "unit": unit,
        f"value{sfx}": _number(r.value), f"ci95_low{sfx}": _number(r.low), f"ci95_high{sfx}": _number(r.high),
        "n_samples": r.n,
    }  # fmt: skip


def rows_to_json(rows: Sequence[MetricRow], extra: dict[str, Any] | None = None) -> str:
    """``extra`` (the run's record: parameters, overrides, hashes, timings) and every row."""
    data = {"schema_version": SCHEMA_VERSION, **(extra or {}), "metrics": [row_record(r) for r in rows]}
    return json.dumps(data, indent=2)
