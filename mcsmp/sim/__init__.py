"""Simulation: packed models, chunks and streams, and the one scheduler.

- :mod:`.histogram`: the log-linear histogram layout and histograms (docs/model.md §5);
- :mod:`.model`: validated parameters → the flat arrays the kernels trust;
- :mod:`.engine`: one chunk at a time, with explicit stream keys; mergeable results;
- :mod:`.scheduler`: local thread pool, Dask or shards (pilot chunks simulated once).
"""

from .engine import CHUNK_FANOUTS, PILOT_CHUNKS, STREAM_SCHEME, PointResult, chunk_sizes, default_threads
from .histogram import Histogram, Layout
from .model import CompiledModel, compile_model, hist_row, policy_rows
from .scheduler import Job, run_jobs, run_point

__all__ = [
    "CHUNK_FANOUTS",
    "PILOT_CHUNKS",
    "STREAM_SCHEME",
    "CompiledModel",
    "Histogram",
    "Job",
    "Layout",
    "PointResult",
    "chunk_sizes",
    "compile_model",
    "default_threads",
    "hist_row",
    "policy_rows",
    "run_jobs",
    "run_point",
]
