"""The text report of one point: the policy comparison first, CPUs with identical rows grouped,
quantiles beyond the data marked (and flagged in the JSON, which stays ungrouped)."""

from __future__ import annotations

import json
import math

from mcsmp.io.report import BEYOND_NOTE, comparison_table, rows_to_json, text_report
from mcsmp.io.tables import cpu_ranges
from mcsmp.metrics import MetricRow


def _rows() -> list[MetricRow]:
    rows = []
    for pol, scale in (("preempt_off", 1.0), ("preemptible_wait", 0.25)):
        for stat, v in (("mean", 1000.0), ("p99", 8000.0), ("p99.9", 20000.0)):
            rows.append(MetricRow("preempt_off_ns", pol, "all", stat, v * scale, v * scale * 0.9, v * scale * 1.1, 10**6))
        for cpu in range(16):
            heavy = cpu in (0, 3, 8, 11)
            v = (5e6 if heavy else 9e4) * scale
            rows.append(MetricRow("window_max_ns", pol, str(cpu), "p99", v, v * 0.8, v * 1.2, 10**6))
    rows.append(MetricRow("call_ns", "", "all", "p99.9999", 5e5, 4e5, 6e5, 10**6))  # upper rank 1e6 + 2 > n
    rows.append(MetricRow("call_ns", "", "all", "p99", 5e3, 4e3, 6e3, 10**6))
    return rows


def test_cpu_ranges() -> None:
    assert cpu_ranges([1, 2, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15]) == "1-2,4-7,9-10,12-15"
    assert cpu_ranges([0, 3, 8, 11]) == "0,3,8,11"
    assert cpu_ranges(list(range(0, 1024, 4)), 20) == "0,4,8,12,16,20,24,… (256 CPUs)"


def test_comparison_leads_and_cpus_are_grouped() -> None:
    text = text_report(_rows(), "HEADER")
    blocks = text.split("\n\n")
    assert blocks[0] == "HEADER" and blocks[1].startswith("Policy comparison")
    comp = comparison_table(_rows()).splitlines()
    assert comp[1].split()[:5] == ["policy", "P", "mean", "P", "p99"]
    pw = next(line for line in comp if line.startswith("preemptible_wait"))
    assert pw.count("(-75 %)") == 4  # mean, p99, p99.9 and the worst CPU's window-max p99
    assert "cpu 0,3,8,11" in next(line for line in comp if line.startswith("preempt_off "))
    lines = text.splitlines()
    assert sum("preempt_off cpu 0,3,8,11" in line for line in lines) == 1
    assert sum("preempt_off cpu 1-2,4-7,9-10,12-15" in line for line in lines) == 1
    assert not any("cpu5 " in line or " cpu 5 " in line for line in lines)


def test_quantiles_beyond_the_data_are_marked() -> None:
    rows = _rows()
    far, near = rows[-2], rows[-1]
    assert far.beyond_data and not near.beyond_data
    assert MetricRow("call_ns", "", "all", "p99.9999", 1, 1, 1, 10**7).beyond_data is False  # 1e7 samples suffice
    assert MetricRow("window_max_ns", "x", "0", "p99", 1, 1, math.inf, 5).beyond_data  # derived: open interval
    text = text_report(rows)
    assert BEYOND_NOTE in text
    line = next(line for line in text.splitlines() if line.startswith("call_ns"))
    assert line.count("*") == 1 and "600 us]*" in line
    data = json.loads(rows_to_json(rows))["metrics"]
    assert len(data) == len(rows)  # complete, ungrouped
    assert [m["beyond_data"] for m in data if m["metric"] == "call_ns"] == [True, False]
    assert BEYOND_NOTE not in text_report(rows[:-2])
