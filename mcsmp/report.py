"""Text tables and JSON for metric rows (no computation here, only presentation)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .metrics import MetricRow

__all__ = ["format_ns", "rows_to_json", "text_report"]

_SAMPLED = ("call_ns", "remote_wait_ns", "info_cost_ns")
_PER_POLICY = ("preempt_off_ns", "hotplug_block_ns", "wakeup_ns", "rendezvous_ns", "window_max_ns")


def format_ns(v: float) -> str:
    """A time in ns with a readable unit (``1.23 ms``)."""
    if not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    a = abs(v)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if a >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def _cell(r: MetricRow, with_ci: bool) -> str:
    if not with_ci or r.statistic == "mean" or (r.low == r.value == r.high):
        return format_ns(r.value)
    return f"{format_ns(r.value)} [{format_ns(r.low)}, {format_ns(r.high)}]"


def _table(title: str, header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)] if body else []
    lines = [title]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


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
        out.append(_table("Per call and per target (policy-independent)", ["metric", "samples"] + stats, body))
    policies = list(dict.fromkeys(r.policy for r in rows if r.metric in _PER_POLICY))
    for metric in _PER_POLICY:
        body = []
        for policy in policies:
            for cpu in dict.fromkeys(r.cpu for r in rows if r.metric == metric and r.policy == policy):
                cells = {r.statistic: r for r in rows if r.metric == metric and r.policy == policy and r.cpu == cpu}
                label = policy if cpu == "all" else f"{policy} cpu{cpu}"
                body.append([label] + [_cell(cells[s], with_ci) if s in cells else "" for s in stats])
        if body:
            out.append(_table(metric, ["policy"] + stats, body))
    exceed = [r for r in rows if r.metric == "exceed_count"]
    if exceed:
        bins = list(dict.fromkeys(r.statistic for r in exceed))
        body = []
        for policy in policies:
            for cpu in dict.fromkeys(r.cpu for r in exceed if r.policy == policy):
                cells = {r.statistic: r for r in exceed if r.policy == policy and r.cpu == cpu}
                label = policy if cpu == "all" else f"{policy} cpu{cpu}"
                body.append([label] + [f"{cells[b].value:.3g} [{cells[b].low:.3g}, {cells[b].high:.3g}]" for b in bins])
        out.append(_table("exceed_count (expected sections per CPU over report.duration_h)", ["policy"] + bins, body))
    mask = [r for r in rows if r.metric == "mask_bytes"]
    if mask:
        out.append("mask_bytes: " + ", ".join(f"{r.policy}.{r.statistic}={r.value:g}" for r in mask))
    return "\n\n".join(out)


def rows_to_json(rows: Sequence[MetricRow], extra: dict[str, Any] | None = None) -> str:
    def clean(v: float) -> float | None:
        return v if math.isfinite(v) else None

    data = {
        **(extra or {}),
        "metrics": [
            {
                "metric": r.metric, "policy": r.policy, "cpu": r.cpu, "statistic": r.statistic,
                "value": clean(r.value), "ci_low": clean(r.low), "ci_high": clean(r.high), "n": r.n,
            }  # fmt: skip
            for r in rows
        ],
    }
    return json.dumps(data, indent=2)
