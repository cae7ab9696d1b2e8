"""Metrics (docs/model.md §4): the registry of every reported metric and their computation."""

from .compute import MetricRow, compute_metrics, wakeup_cdf, wilson_band
from .registry import METRICS, Metric, quantile_label

__all__ = ["METRICS", "Metric", "MetricRow", "compute_metrics", "quantile_label", "wakeup_cdf", "wilson_band"]
