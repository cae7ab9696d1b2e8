"""Sweep folders: simulate many points into one (:func:`sweep`), merge shards (:func:`merge`),
re-render tables and figures from the histograms (:func:`report`, :func:`render_dir`)."""

from .folder import SweepRun, merge, report, sweep
from .render import RenderReport, render_dir

__all__ = ["RenderReport", "SweepRun", "merge", "render_dir", "report", "sweep"]
