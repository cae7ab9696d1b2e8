"""Metrics (docs/model.md §4): the registry of every reported metric and their computation."""

from .compute import (
    MetricRow,
    compute_metrics,
    diff_statistic,
    difference_rows,
    paired_histograms,
    wakeup_cdf,
    wilson_band,
)
from .paired import PairedDifference, paired_mean_difference
from .registry import METRICS, Metric, quantile_label

__all__ = [
    "METRICS", "Metric", "MetricRow", "PairedDifference", "compute_metrics", "diff_statistic", "difference_rows",
    "paired_histograms", "paired_mean_difference", "quantile_label", "wakeup_cdf", "wilson_band",
]  # fmt: skip
