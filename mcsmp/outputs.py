"""Sweep outputs: atomic files, mergeable histogram files, tidy CSVs, ``.hgrm`` and ``meta.json``.

Layout of an output folder (``results/<name>/``)::

    meta.json              provenance: versions, CPU, seed and stream scheme, every point's
                           resolved parameters and hashes, histogram settings, timings
    hist/<point_id>.npz    the raw, mergeable histograms of one point (the source of truth)
    summary.csv            tidy: one row per (point, metric, policy, cpu, statistic), time metrics
    per_cpu.csv            per (point, policy, cpu): window maximum quantiles, exceedance counts
    mask.csv               per point: the task-local cpumask memory and GFP_ATOMIC fallbacks
    hgrm/<point_id>/<metric>[.<policy>].hgrm   HdrHistogram percentile distributions (ns)
    plots/*.png, *.pdf     figures (mcsmp.plots)

Every file is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``),
so a reader, or a sweep killed with ``kill -9``, never leaves half a file behind. Everything but
``meta.json`` and ``hist/`` is derived: :func:`render_dir` rebuilds it from the histograms.

``.hgrm`` quantisation: our log-linear buckets (relative width ``2^-p``, ``p`` =
``report.precision_bits``) are copied into an HdrHistogram with the smallest number of significant
digits whose sub-buckets are at least as fine (``p = 7`` → 2 digits, which is exactly our layout
above 128 ns). Each bucket's count is recorded at ``floor`` of its midpoint, so above ``2^p`` ns
every one of our buckets lands in exactly one HdrHistogram bucket and the ``.hgrm`` percentiles
are HdrHistogram's "highest equivalent value" of the bucket holding the order statistic: within
one of our buckets (relative ``2^-p``) of the value. Below ``2^p`` ns values are rounded down to
whole nanoseconds; the underflow bucket ``[0, 1)`` is recorded as 0 and the overflow bucket as
1e12 ns. The footer's mean and standard deviation are HdrHistogram's estimates from those
recorded values, not our exact means (which are in ``summary.csv``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import __version__
from .atomic import atomic_open, fsync_dir, write_atomic
from .engine import CHUNK_FANOUTS, PILOT_CHUNKS, STREAM_SCHEME, PointResult
from .errors import UserError
from .kernels import fanout as K
from .metrics import MetricRow, OverloadError, compute_metrics, quantile_label, wakeup_cdf
from .model import compile_model, policy_rows
from .params import Params, apply_override, build_params, raw_from_dict
from .stats import RANGE_HIGH_NS, Histogram, Layout

__all__ = [
    "HGRM_DIR",
    "HIST_DIR",
    "HIST_FORMAT",
    "META_FILE",
    "PLOTS_DIR",
    "HistInfo",
    "PlotPoint",
    "atomic_open",
        "environment",
    "hdr_histogram",
    "hdr_significant_figures",
    "hgrm_bytes",
    "hist_info",
    "load_hist",
    "load_meta",
    "params_hash",
    "read_hgrm",
    "render_dir",
    "save_hist",
    "write_hgrm",
    "write_meta",
]

HIST_FORMAT = 1
META_FILE = "meta.json"
HIST_DIR = "hist"
HGRM_DIR = "hgrm"
PLOTS_DIR = "plots"


# --------------------------------------------------------------------------------------------
# Atomic files


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (``.<name>.<random>.tmp``)."""
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            with suppress(OSError):
                p.unlink()


# --------------------------------------------------------------------------------------------
# Histogram files (hist/<point_id>.npz)


def params_hash(params: Params) -> str:
    """SHA-256 of the canonical JSON of all resolved parameters (seed, samples and report too)."""
    blob = json.dumps(params.resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def row_names(params: Params, n_groups: int) -> list[str]:
    """A name for every histogram row (for readers of the ``.npz`` without mcsmp)."""
    names = ["call_ns", "wait_tail_ns", "remote_wait_ns", "info_cost_ns"]
    assert len(names) == K.N_FIXED_HISTS
    n_pol = len(params.policies)
    for g in range(n_groups):
        for i, pol in enumerate(params.policies):
            p_row, h_row = policy_rows(g, i, n_pol)
            assert p_row == len(names) and h_row == p_row + 1
            names += [f"preempt_off_ns/{pol}/group{g}", f"hotplug_block_ns/{pol}/group{g}"]
    return names


def save_hist(path: str | Path, result: PointResult, base_dir: str | Path | None = None) -> None:
    """Write ``result`` (all or some chunks of a point) to ``path`` atomically (``.npz``).

    Arrays: ``counts[row, bucket]`` (int64), ``chunks`` with their ``chunk_sums[chunk, row]`` (exact
    per-chunk sums, added in chunk order for means) and ``chunk_fanouts``, ``wait_tail_mean``,
    ``edges`` (bucket edges in ns), ``row_names``, ``params_yaml`` (the resolved parameters, exact),
    their ``params_hash`` and ``model_hash``, ``precision_bits``.
    """
    params, model = result.params, result.model
    chunks = sorted(result.chunk_sums)
    sums = (
        np.stack([np.asarray(result.chunk_sums[c], dtype=np.float64) for c in chunks])
        if chunks
        else np.zeros((0, model.n_hists))
    )
    arrays = {
        "format": np.int64(HIST_FORMAT),
        "counts": np.asarray(result.counts, dtype=np.int64),
        "chunks": np.asarray(chunks, dtype=np.int64),
        "chunk_sums": sums,
        "chunk_fanouts": np.asarray([result.chunk_fanouts[c] for c in chunks], dtype=np.int64),
        "wait_tail_mean": np.float64(result.wait_tail_mean),
        "seconds": np.float64(result.seconds),
        "precision_bits": np.int64(model.layout.precision_bits),
        "edges": model.layout.edges,
        "row_names": np.asarray(row_names(params, model.n_groups)),
        "params_yaml": np.str_(yaml.safe_dump(params.resolved, sort_keys=False, allow_unicode=True)),
        "params_hash": np.str_(params_hash(params)),
        "model_hash": np.str_(params.model_hash),
        "base_dir": np.str_(str(base_dir) if base_dir else ""),
        "chunk_fanouts_max": np.int64(CHUNK_FANOUTS),
    }
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


@dataclass(frozen=True)
class HistInfo:
    """The identity of a histogram file, read without loading its counts."""

    params_hash: str
    model_hash: str
    chunks: frozenset[int]


def hist_info(path: str | Path) -> HistInfo | None:
    """Identity of ``path``, or None when it is missing, unreadable or of another format."""
    try:
        # Our own file object: np.load leaks its handle when the zip is damaged.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            if int(z["format"]) != HIST_FORMAT:
                return None
            return HistInfo(str(z["params_hash"]), str(z["model_hash"]), frozenset(int(c) for c in z["chunks"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def load_hist(path: str | Path, overrides: Sequence[tuple[str, Any, str]] = ()) -> PointResult:
    """Read a histogram file back into a :class:`PointResult`.

    ``overrides`` are ``(dotted key, value, origin)`` applied to the stored parameters before
    validation (``mcsmp report --quantiles``); they must not change the model.
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; np.load leaks it on a damaged zip)
    except OSError as exc:
        raise UserError(f"{path}: cannot read histogram file: {exc.strerror}") from None
    with f:
        try:
            z = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: cannot read histogram file: {exc}") from None
        try:
            if int(z["format"]) != HIST_FORMAT:
                raise UserError(f"{path}: histogram file format {int(z['format'])}, this mcsmp reads {HIST_FORMAT}")
            # Written by yaml.safe_dump: its own (C) safe loader reads it back exactly.
            data = yaml.load(str(z["params_yaml"]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            base_dir = str(z["base_dir"]) or None
            stored_model_hash = str(z["model_hash"])
            counts = np.array(z["counts"], dtype=np.int64)
            chunks = [int(c) for c in z["chunks"]]
            sums = np.array(z["chunk_sums"], dtype=np.float64)
            fanouts = [int(x) for x in z["chunk_fanouts"]]
            wait_tail_mean = float(z["wait_tail_mean"])
            seconds = float(z["seconds"])
        except KeyError as exc:
            raise UserError(f"{path}: not an mcsmp histogram file (no {exc.args[0]!r})") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, yaml.YAMLError) as exc:
            raise UserError(f"{path}: damaged histogram file: {exc}") from None
        finally:
            z.close()
    raw = raw_from_dict(data, f"{path}:params_yaml", base_dir)
    for key, value, origin in overrides:
        raw = apply_override(raw, key, value, origin=origin)
    params = build_params(raw)
    if params.model_hash != stored_model_hash:
        raise UserError(
            f"{path}: its parameters no longer give the model hash it was simulated with "
            f"({stored_model_hash[:10]} -> {params.model_hash[:10]}): the defaults changed since; "
            "use the mcsmp version named in meta.json, or simulate again"
        )
    model = compile_model(params)
    if counts.shape != (model.n_hists, model.layout.n_buckets):
        raise UserError(f"{path}: counts of shape {counts.shape}, expected {(model.n_hists, model.layout.n_buckets)}")
    return PointResult(
        params, model, counts, {c: sums[i] for i, c in enumerate(chunks)},
        {c: fanouts[i] for i, c in enumerate(chunks)}, wait_tail_mean, seconds,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# HdrHistogram percentile distributions (.hgrm)


def hdr_significant_figures(precision_bits: int) -> int:
    """Fewest significant digits whose HdrHistogram sub-buckets are as fine as ``2^-precision_bits``."""
    for digits in range(1, 6):
        if math.ceil(math.log2(2 * 10**digits)) - 1 >= precision_bits:
            return digits
    return 5


def _recorded_values(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Our non-empty buckets and the integer value each is recorded at in the HdrHistogram."""
    top = int(RANGE_HIGH_NS)
    edges = hist.layout.edges
    last = len(hist.counts) - 1
    nz = np.nonzero(hist.counts)[0]
    values = np.empty(len(nz), dtype=np.int64)
    for k, i in enumerate(nz):
        if i == 0:
            values[k] = 0
        elif i == last:
            values[k] = top
        else:
            values[k] = min(int(math.floor(0.5 * (edges[i] + edges[i + 1]))), top)
    return nz, values


def hdr_histogram(hist: Histogram) -> Any:
    """``hist`` as an ``hdrh`` HdrHistogram over 1 ns .. 1e12 ns (see the module docstring)."""
    from hdrh.histogram import HdrHistogram

    hdr = HdrHistogram(1, int(RANGE_HIGH_NS), hdr_significant_figures(hist.layout.precision_bits))
    for i, value in zip(*_recorded_values(hist), strict=True):
        if not hdr.record_value(int(value), int(hist.counts[i])):
            raise ValueError(f"HdrHistogram refused value {value}")
    return hdr


@functools.lru_cache(maxsize=8)
def _hdr_template(digits: int) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, int(RANGE_HIGH_NS), digits)


@functools.lru_cache(maxsize=1 << 16)
def _hdr_bucket(digits: int, value: int) -> tuple[int, int, int]:
    """HdrHistogram counts index, highest equivalent value and median equivalent value of ``value``."""
    hdr = _hdr_template(digits)
    index = hdr._counts_index_for(value)
    highest = hdr.get_highest_equivalent_value(hdr.get_value_from_index(index))
    return index, highest, hdr._hdr_median_equiv_value(highest)


def hgrm_bytes(hist: Histogram, ticks_per_half_distance: int = 5) -> bytes:
    """The ``.hgrm`` percentile distribution of ``hist`` (values in ns).

    Byte-for-byte what ``hdrh``'s ``output_percentile_distribution(f, 1, ticks_per_half_distance)``
    writes for :func:`hdr_histogram` (a test checks it), computed over the non-empty buckets only
    with hdrh's bucket functions (cached): hdrh's pure-Python iterators walk every one of its
    counters and take ~0.1 s per file.
    """
    digits = hdr_significant_figures(hist.layout.precision_bits)
    template = _hdr_template(digits)
    merged: dict[int, list[int]] = {}  # HdrHistogram index -> [count, highest, median]
    for i, value in zip(*_recorded_values(hist), strict=True):
        index, highest, median = _hdr_bucket(digits, int(value))
        slot = merged.setdefault(index, [0, highest, median])
        slot[0] += int(hist.counts[i])
    nz = sorted(merged)
    counts = {i: merged[i][0] for i in nz}
    highest = [merged[i][1] for i in nz]
    medians = [merged[i][2] for i in nz]
    n = sum(counts.values())
    out = [b"%12s %14s %10s %14s\n\n" % (b"Value", b"Percentile", b"TotalCount", b"1/(1-Percentile)")]
    row = f"%12.{digits}f %2.12f %10d %14.2f\n".encode()
    last_row = f"%12.{digits}f %2.12f %10d\n".encode()

    def step(p: float) -> float:  # PercentileIterator.increment_iteration_level
        gap = 100.0 - p
        if gap:
            half_distance = math.pow(2, (math.log(100 / gap) / math.log(2)) + 1)
            p += 100.0 / (ticks_per_half_distance * half_distance)
        return p

    p, reached_last, cum, done = 0.0, False, 0, False
    for i, value in zip(nz, highest, strict=True):
        cum += int(counts[i])
        first = True
        while not done:
            if not first and cum >= n:  # has_next() after the last recorded value: one step to 100 %
                if reached_last:
                    done = True
                    break
                p, reached_last = 100.0, True
            first = False
            if (100.0 * cum) / n < p:
                break
            if p != 100:
                out.append(row % (value / 1, p / 100, cum, 1 / (1 - p / 100)))
            else:
                out.append(last_row % (value / 1, p / 100, cum))
            p = step(p)
        if done:
            break
    # Footer as HdrHistogram.get_mean_value / get_stddev: bucket medians, in index order.
    total = 0
    for i, med in zip(nz, medians, strict=True):
        total += int(counts[i]) * med
    mean = float(total) / n if n else 0.0
    dev_total = 0.0
    for i, med in zip(nz, medians, strict=True):
        dev = (med * 1.0) - mean
        dev_total += (dev * dev) * int(counts[i])
    stddev = math.sqrt(dev_total / n) if n else 0.0
    out.append(f"#[Mean    = %12.{digits}f, StdDeviation   = %12.{digits}f]\n".encode() % (mean / 1, stddev))
    max_value = highest[-1] if nz else 0  # get_max_value(): highest equivalent of the largest value
    out.append(f"#[Max     = %12.{digits}f, TotalCount     = %12.{digits}f]\n".encode() % (max_value / 1, n))
    out.append(b"#[Buckets = %12d, SubBuckets     = %12d]\n" % (template.bucket_count, template.sub_bucket_count))
    return b"".join(out)


def write_hgrm(path: str | Path, hist: Histogram, *, sync_dir: bool = True) -> None:
    """Write the HdrHistogram percentile distribution of ``hist`` (values in ns) to ``path``."""
    write_atomic(path, hgrm_bytes(hist), sync_dir=sync_dir)


def read_hgrm(path: str | Path) -> list[tuple[float, float, int]]:
    """The ``(value, percentile, total count)`` rows of an ``.hgrm`` file (percentile in [0, 1])."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.lstrip().startswith("#") and parts[0] != "Value":
            rows.append((float(parts[0]), float(parts[1]), int(parts[2])))
    return rows


# --------------------------------------------------------------------------------------------
# Provenance (meta.json)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git_describe() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Tool and library versions, the CPU and the numerical settings, for ``meta.json``."""
    from ._jit import JIT_OPTIONS

    libs = ["numpy", "numba", "llvmlite", "scipy", "pyyaml", "matplotlib", "tqdm", "hdrhistogram"]
    libs += ["dask", "distributed"] if "distributed" in sys.modules else []
    return {
        "tool": "mcsmp",
        "version": __version__,
        "git": _git_describe(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in libs},
        "platform": platform.platform(),
        "cpu": {
            "model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        },
        "numba": {k: JIT_OPTIONS[k] for k in ("fastmath", "error_model", "nogil", "cache")},
        "randomness": {
            "stream_scheme": STREAM_SCHEME,
            "chunk_fanouts": CHUNK_FANOUTS,
            "pilot_chunks": PILOT_CHUNKS,
            "note": "chunk i of a point draws from its own stream; results do not depend on threads, "
            "workers or shards (MODEL.md §6)",
        },
    }


def histogram_settings(precision_bits: int) -> dict[str, Any]:
    layout = Layout(precision_bits)
    return {
        "kind": "log-linear (HdrHistogram-style), int64 counts, exact per-chunk sums",
        "unit": "ns",
        "precision_bits": precision_bits,
        "relative_bucket_width": 2.0**-precision_bits,
        "lowest_ns": 1.0,
        "highest_ns": RANGE_HIGH_NS,
        "n_buckets": layout.n_buckets,
        "underflow_bucket": "[0, 1) ns",
        "overflow_bucket": f"[{RANGE_HIGH_NS:g}, inf) ns",
        "hgrm_significant_figures": hdr_significant_figures(precision_bits),
    }


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_meta(outdir: str | Path, meta: Mapping[str, Any]) -> None:
    write_atomic(Path(outdir) / META_FILE, json.dumps(_json_safe(dict(meta)), indent=2) + "\n")


def load_meta(outdir: str | Path) -> dict[str, Any]:
    path = Path(outdir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found (not an mcsmp output folder?)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("points"), list):
        raise UserError(f"{path}: not an mcsmp meta.json (no points)")
    return meta


# --------------------------------------------------------------------------------------------
# Tables


def _cell(v: Any) -> str:
    """One CSV cell: floats in shortest round-trip form, so files are exact and reproducible."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()


def ns_label(x: float) -> str:
    """``1e6`` → ``1ms`` (for column names)."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}ns"


@dataclass
class PlotPoint:
    """What the figures need from one point (the histograms themselves are not kept)."""

    index: int
    id: str
    overrides: dict[str, Any]
    params: Params
    rows: list[MetricRow]
    preempt_ccdf: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    wakeup_ccdf: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    wakeup_cpus: str = "all"


def _ccdf_of(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """``(x, Pr(X > x))`` from the lower edge of the first non-empty bucket on (finite edges)."""
    nz = np.nonzero(hist.counts)[0]
    first = int(nz[0]) if len(nz) else 0
    cdf = hist.cdf_at_edges()[first:]
    x = hist.layout.edges[first:]
    keep = np.isfinite(x)
    return x[keep], 1.0 - cdf[keep]


def _plot_data(pt: PlotPoint, result: PointResult) -> None:
    params, model = result.params, result.model
    n_pol = len(params.policies)
    busiest = int(np.argmax(model.group_rates))
    cpus = np.nonzero(model.group_of == busiest)[0]
    pt.wakeup_cpus = "all" if model.n_groups == 1 else ",".join(str(c) for c in cpus)
    for i, pol in enumerate(params.policies):
        pooled = Histogram.empty(model.layout)
        for g in range(model.n_groups):
            pooled = pooled + result.histogram(policy_rows(g, i, n_pol)[0])
        if pooled.n:
            pt.preempt_ccdf[pol] = _ccdf_of(pooled)
        try:
            x, cdf, _, _ = wakeup_cdf(result, pol, busiest)
        except OverloadError:
            continue
        keep = np.isfinite(x)
        pt.wakeup_ccdf[pol] = (x[keep], np.clip(1.0 - cdf[keep], 0.0, 1.0))


_TIME_METRICS_LAST = ("window_max_ns",)
_MASK_COLUMNS = {
    ("mask_bytes", "cpumask_size"): "cpumask_size_bytes",
    ("mask_bytes", "inlined"): "mask_inlined",
    ("mask_bytes", "bytes_per_task"): "mask_bytes_per_task",
    ("mask_bytes", "bytes_total"): "mask_bytes_total",
    ("mask_bytes", "fallbacks_per_s"): "atomic_alloc_fallbacks_per_s",
}


def _summary_rows(pt: PlotPoint, swept: list[str]) -> list[list[Any]]:
    lead = [pt.index, pt.id] + [pt.overrides.get(k) for k in swept]
    return [
        [*lead, r.metric, r.policy, r.cpu, r.statistic, float(r.value), float(r.low), float(r.high), r.n]
        for r in pt.rows
        if r.metric.endswith("_ns")
    ]


def _per_cpu_tables(points: list[PlotPoint], swept: list[str]) -> tuple[list[str], list[list[Any]]]:
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


def _mask_table(points: list[PlotPoint], swept: list[str]) -> tuple[list[str], list[list[Any]]]:
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


# --------------------------------------------------------------------------------------------
# Rendering an output folder from its histograms


@dataclass
class RenderReport:
    files: list[Path]
    errors: list[str]
    points: int


def hist_path(outdir: str | Path, point_id: str) -> Path:
    return Path(outdir) / HIST_DIR / f"{point_id}.npz"


def render_dir(
    outdir: str | Path,
    overrides: Sequence[tuple[str, Any, str]] = (),
    *,
    plots: bool = True,
    hgrm: bool = True,
) -> RenderReport:
    """Re-create every table, ``.hgrm`` file and figure of ``outdir`` from ``hist/*.npz``.

    ``overrides`` change report settings (``report.quantiles``, ``report.window_s``, …) for this
    rendering only. Points whose metrics cannot be computed (an overloaded CPU) are left out of
    the tables and listed in the returned errors.
    """
    outdir = Path(outdir)
    meta = load_meta(outdir)
    entries = sorted(meta["points"], key=lambda p: int(p["index"]))
    swept: dict[str, None] = {}
    for e in entries:
        for key, _ in e.get("overrides", []):
            swept.setdefault(key, None)
    swept_keys = list(swept)
    points: list[PlotPoint] = []
    errors: list[str] = []
    files: list[Path] = []
    for e in entries:
        path = hist_path(outdir, e["id"])
        if not path.exists():
            raise UserError(
                f"{path}: point [{e['index']}] has not been simulated (status {meta.get('status')!r}); "
                "finish the sweep with `mcsmp sweep ... --resume`"
            )
        result = load_hist(path, overrides)
        if not result.complete:
            missing = sorted(set(range(len(_sizes(result)))) - set(result.chunk_fanouts))
            raise UserError(
                f"{path}: point [{e['index']}] is incomplete ({len(missing)} chunk(s) missing, e.g. {missing[:3]}); "
                "finish it with `mcsmp sweep --resume` or merge the other shards with `mcsmp merge`"
            )
        pt = PlotPoint(int(e["index"]), e["id"], dict((k, v) for k, v in e.get("overrides", [])), result.params, [])
        try:
            pt.rows = compute_metrics(result)
        except OverloadError as exc:
            errors.append(f"point [{pt.index}] {pt.id}: {exc}")
        if hgrm:
            files += _write_point_hgrm(outdir, pt.id, result)
        if plots:
            _plot_data(pt, result)
        points.append(pt)
    good = [pt for pt in points if pt.rows]
    header = ["point", "point_id", *swept_keys, "metric", "policy", "cpu", "statistic",
              "value_ns", "ci95_low_ns", "ci95_high_ns", "n_samples"]  # fmt: skip
    body = [row for pt in good for row in _summary_rows(pt, swept_keys)]
    write_atomic(outdir / "summary.csv", _csv_text(header, body))
    h, b = _per_cpu_tables(good, swept_keys)
    write_atomic(outdir / "per_cpu.csv", _csv_text(h, b))
    h, b = _mask_table(good, swept_keys)
    write_atomic(outdir / "mask.csv", _csv_text(h, b))
    files += [outdir / "summary.csv", outdir / "per_cpu.csv", outdir / "mask.csv"]
    if plots:
        from .plots import render_plots

        files += render_plots(outdir / PLOTS_DIR, points, swept_keys)
    _remove_stale(outdir, files, hgrm=hgrm, plots=plots)
    return RenderReport(files, errors, len(points))


def _remove_stale(outdir: Path, written: list[Path], *, hgrm: bool, plots: bool) -> None:
    """Delete derived files of an earlier rendering that this one did not write (other points,
    fewer pages), so the folder never mixes renderings. Only our own file types are touched."""
    keep = {p.resolve() for p in written}
    patterns = ([(HGRM_DIR, "*/*.hgrm")] if hgrm else []) + ([(PLOTS_DIR, "*.png"), (PLOTS_DIR, "*.pdf")] if plots else [])
    for folder, pattern in patterns:
        for path in (outdir / folder).glob(pattern):
            if path.resolve() not in keep:
                with suppress(OSError):
                    path.unlink()
    if hgrm:
        for sub in (outdir / HGRM_DIR).glob("*"):
            if sub.is_dir() and not any(sub.iterdir()):
                with suppress(OSError):
                    sub.rmdir()


def _sizes(result: PointResult) -> list[int]:
    from .engine import chunk_sizes

    return chunk_sizes(result.params.samples)


def _write_point_hgrm(outdir: Path, point_id: str, result: PointResult) -> list[Path]:
    folder = outdir / HGRM_DIR / point_id
    params, model = result.params, result.model
    out = []
    for metric, row in (("call_ns", K.H_CALL), ("remote_wait_ns", K.H_REMOTE_WAIT), ("info_cost_ns", K.H_INFO_COST)):
        hist = result.histogram(row)
        if hist.n:
            out.append(folder / f"{metric}.hgrm")
            write_hgrm(out[-1], hist, sync_dir=False)
    n_pol = len(params.policies)
    for i, pol in enumerate(params.policies):
        for metric, which in (("preempt_off_ns", 0), ("hotplug_block_ns", 1)):
            hist = Histogram.empty(model.layout)
            for g in range(model.n_groups):
                hist = hist + result.histogram(policy_rows(g, i, n_pol)[which])
            if hist.n:
                out.append(folder / f"{metric}.{pol}.hgrm")
                write_hgrm(out[-1], hist, sync_dir=False)
    fsync_dir(folder)  # once for the point's files
    return out
