"""Every metric mcsmp reports, in one table (docs/model.md §4): name, unit, kind, shape.

The report, the CSV writers, the JSON and the public API read this table instead of keeping
their own lists, so a metric is printed and exported as soon as it is registered here and
computed in :mod:`mcsmp.metrics.compute`. A test checks that every computed row names a
registered metric and every registered metric is computed.

- ``sampled``: read off a histogram the kernel recorded (exact mean, quantiles with
  order-statistic intervals);
- ``derived``: computed from the sampled ``P``/``H`` histograms and exact background CDFs, never by
  extra sampling (intervals from a Wilson band on the sampled CDF);
- ``analytic``: a closed form of the parameters (no samples).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["METRICS", "Metric", "quantile_label"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # of its values: "ns" (times; summary.csv), "sections" (expected counts), "mixed"
    kind: str  # "sampled", "derived" or "analytic"
    per_policy: bool  # one set of rows per wait policy
    per_cpu: bool  # one set of rows per CPU when rates differ between CPUs
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("call_ns", "ns", "sampled", False, False, "T, the caller's own cost of one fan-out"),
        Metric("remote_wait_ns", "ns", "sampled", False, False, "per target, IPI departure to completion"),
        Metric("info_cost_ns", "ns", "sampled", False, False,
               "per target, the cache cost of reading struct flush_tlb_info"),
        Metric("preempt_off_ns", "ns", "sampled", True, False,
               "P: how long this call keeps the sender CPU non-preemptible"),
        Metric("hotplug_block_ns", "ns", "sampled", True, False,
               "H: how long the call blocks CPU hotplug (stop_machine())"),
        Metric("wakeup_ns", "ns", "derived", True, True,
               "latency of a highest-priority task woken at a random instant on the sender CPU"),
        Metric("rendezvous_ns", "ns", "derived", True, False,
               "how long stop_machine() waits for every CPU to leave its non-preemptible section"),
        Metric("window_max_ns", "ns", "derived", True, True,
               "longest preempt-off section in a report.window_s window, per CPU"),
        Metric("exceed_count", "sections", "derived", True, True,
               "expected preempt-off sections per CPU in each report.exceed_bins_ns bin over report.duration_h"),
        Metric("mask_bytes", "mixed", "analytic", True, False,
               "memory of the task-local cpumask; the GFP_ATOMIC alternative's fallback rate"),
    )
}  # fmt: skip


def quantile_label(q: float) -> str:
    """The statistic name of quantile ``q``: ``p99``, ``p99.9``, ``p50``."""
    return f"p{q * 100:.10g}"
