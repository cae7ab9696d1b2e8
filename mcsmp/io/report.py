"""The text report and JSON of one point's metric rows (presentation only, no computation).

The text report leads with the policy comparison, then one table per metric; CPUs whose rows are
identical share one line (``cpu 1-2,4-7``). Quantiles beyond the data (:attr:`MetricRow.beyond_data`)
are marked ``*``. The JSON keeps every row, ungrouped, with a ``beyond_data`` flag.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ..metrics import METRICS, MetricRow, diff_statistic
from .tables import cpu_ranges, format_ns, text_table

__all__ = ["BEYOND_NOTE", "SCHEMA_VERSION", "comparison_table", "row_record", "rows_to_json", "text_report"]

# What the tables show, from the registry: policy-independent time metrics first, then one table
# per policy-dependent time metric; counts and analytic values have their own layouts below.
_SAMPLED = tuple(m.name for m in METRICS.values() if m.unit == "ns" and not m.per_policy)
_PER_POLICY = tuple(m.name for m in METRICS.values() if m.unit == "ns" and m.per_policy)
DIFF_PREFIX = diff_statistic("")
BEYOND_NOTE = ("* beyond the data: the quantile's 95% interval needs an order statistic past the samples "
               "(or its upper bound is open), so its upper bound is no bound; simulate more samples")  # fmt: skip


def _cell(r: MetricRow, with_ci: bool) -> str:
    mark = "*" if r.beyond_data else ""
    if not with_ci or r.statistic == "mean" or (r.low == r.value == r.high):
        return format_ns(r.value) + mark
    return f"{format_ns(r.value)} [{format_ns(r.low)}, {format_ns(r.high)}]{mark}"


def _grouped(rows: Sequence[MetricRow], policy: str, cells: Any) -> list[tuple[str, list[str]]]:
    """(label, cells) per group of CPUs whose cells are identical, in CPU order."""
    by_cpu: dict[str, list[MetricRow]] = {}
    for r in rows:
        if r.policy == policy:
            by_cpu.setdefault(r.cpu, []).append(r)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for cpu, mine in by_cpu.items():  # identical rows (not only identical text): formatted once per group
        groups.setdefault(tuple((r.metric, r.statistic, r.value, r.low, r.high, r.n) for r in mine), []).append(cpu)
    merged: dict[tuple[str, ...], list[str]] = {}
    for cpus in groups.values():
        merged.setdefault(tuple(cells(by_cpu[cpus[0]])), []).extend(cpus)
    out = []
    for key, cpus in merged.items():
        ids = [int(c) for c in cpus if c.isdigit()]
        label = policy if cpus == ["all"] else f"{policy} cpu {cpu_ranges(ids, 72) if len(ids) == len(cpus) else ','.join(cpus)}"
        out.append((label, list(key)))
    return out


def _change(v: float, base: float) -> str:
    return f" ({(v / base - 1) * 100:+.0f} %)" if base > 0 and math.isfinite(v) and math.isfinite(base) else ""


def comparison_table(rows: Sequence[MetricRow]) -> str:
    """Per policy: mean, p99 and p99.9 of ``preempt_off_ns`` (all calls) and the worst CPU's
    window-maximum p99, each with its change vs ``preempt_off``."""
    pooled = [r for r in rows if r.metric == "preempt_off_ns" and r.cpu == "all"]
    policies = list(dict.fromkeys(r.policy for r in pooled))
    if not policies:
        return ""
    stats = [s for s in ("mean", "p99", "p99.9") if any(r.statistic == s for r in pooled)]
    wm = [r for r in rows if r.metric == "window_max_ns" and r.statistic == "p99"]
    values: dict[str, list[float]] = {}
    worst_cpu: dict[str, str] = {}
    for pol in policies:
        values[pol] = [next((r.value for r in pooled if r.policy == pol and r.statistic == s), math.nan) for s in stats]
        mine = [r for r in wm if r.policy == pol]
        if mine:
            top = max(r.value for r in mine)
            values[pol].append(top)
            ids = [r.cpu for r in mine if r.value == top]
            worst_cpu[pol] = "all" if ids == ["all"] else "cpu " + cpu_ranges([int(c) for c in ids if c.isdigit()], 24)
    base = values.get("preempt_off")
    head = ["policy"] + [f"P {s}" for s in stats] + (["worst CPU's window-max p99"] if wm else [])
    body = []
    for pol in policies:
        cells = []
        for i, v in enumerate(values[pol]):
            where = f" {worst_cpu[pol]}" if i == len(stats) else ""
            vs = _change(v, base[i]) if base and pol != "preempt_off" and i < len(base) else ""
            cells.append(format_ns(v) + where + vs)
        body.append([pol] + cells + [""] * (len(head) - 1 - len(cells)))
    title = "Policy comparison: P = preempt_off_ns over all calls" + (", change vs preempt_off in ()" if base else "")
    return text_table(head, body, title)


def _signed_ns(v: float) -> str:
    return ("+" if v > 0 else "−" if v < 0 else "") + format_ns(abs(v)) if math.isfinite(v) else format_ns(v)


def paired_table(rows: Sequence[MetricRow]) -> str:
    """Paired differences of means on common random numbers (``mean_diff_vs_*`` rows): policies
    against ``preempt_off``, placements against ``percpu``, each with its 95% interval."""
    diffs = [r for r in rows if r.statistic.startswith(DIFF_PREFIX)]
    if not diffs:
        return ""
    body = [
        [r.metric, r.policy or "-", r.statistic[len(DIFF_PREFIX):],
         f"{_signed_ns(r.value)} [{_signed_ns(r.low)}, {_signed_ns(r.high)}]"]
        for r in diffs
    ]  # fmt: skip
    return text_table(["metric", "policy", "minus", "difference of means [95% CI]"], body,
                      "Paired differences (common random numbers: same draws, so most noise cancels)")


def text_report(rows: Sequence[MetricRow], header: str = "", with_ci: bool = True) -> str:
    """The policy comparison, then per-policy tables of each metric's mean and quantiles with 95%
    intervals (CPUs with identical rows grouped)."""
    stats = [s for s in dict.fromkeys(r.statistic for r in rows if r.metric == "call_ns")]
    out = [header] if header else []
    comparison = comparison_table(rows)
    if comparison:
        out.append(comparison)
    sampled = [r for r in rows if r.metric in _SAMPLED]
    if sampled:
        body = []
        for metric in _SAMPLED:
            cells = {r.statistic: r for r in sampled if r.metric == metric}
            if cells:
                n = next(iter(cells.values())).n
                body.append([metric, f"{n:,}"] + [_cell(cells[s], with_ci) if s in cells else "" for s in stats])
        out.append(text_table(["metric", "samples"] + stats, body, "Per call and per target (policy-independent)"))

    def cells_of(group: list[MetricRow]) -> list[str]:
        by = {r.statistic: r for r in group}
        return [_cell(by[s], with_ci) if s in by else "" for s in stats]

    policies = list(dict.fromkeys(r.policy for r in rows if r.metric in _PER_POLICY))
    for metric in _PER_POLICY:
        mine = [r for r in rows if r.metric == metric]
        body = [[label, *cells] for pol in policies for label, cells in _grouped(mine, pol, cells_of)]
        if body:
            out.append(text_table(["policy"] + stats, body, metric))
    exceed = [r for r in rows if r.metric == "exceed_count"]
    if exceed:
        bins = list(dict.fromkeys(r.statistic for r in exceed))

        def counts_of(group: list[MetricRow]) -> list[str]:
            by = {r.statistic: r for r in group}
            return [f"{by[b].value:.3g} [{by[b].low:.3g}, {by[b].high:.3g}]" for b in bins]

        body = [[label, *cells] for pol in policies for label, cells in _grouped(exceed, pol, counts_of)]
        out.append(text_table(["policy"] + bins, body, "exceed_count (expected sections per CPU over report.duration_h)"))
    paired = paired_table(rows)
    if paired:
        out.append(paired)
    mask = [r for r in rows if r.metric == "mask_bytes"]
    if mask:
        out.append("mask_bytes: " + ", ".join(f"{r.policy}.{r.statistic}={r.value:g}" for r in mask))
    if any(r.beyond_data for r in rows):
        out.append(BEYOND_NOTE)
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
        "n_samples": r.n, "beyond_data": r.beyond_data,
    }  # fmt: skip


def rows_to_json(rows: Sequence[MetricRow], extra: dict[str, Any] | None = None) -> str:
    """``extra`` (the run's record: parameters, overrides, hashes, timings) and every row."""
    data = {"schema_version": SCHEMA_VERSION, **(extra or {}), "metrics": [row_record(r) for r in rows]}
    return json.dumps(data, indent=2)
