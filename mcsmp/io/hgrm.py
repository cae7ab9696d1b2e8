"""HdrHistogram formats of our log-linear histograms: percentile distributions (``.hgrm``) and
interval logs (``.hlog``).

Quantisation: our buckets (relative width ``2^-p``, ``p`` = ``report.precision_bits``) are copied
into an HdrHistogram with the smallest number of significant digits whose sub-buckets are at least
as fine (``p = 7`` → 2 digits, which is exactly our layout above 128 ns). Each bucket's count is
recorded at ``floor`` of its midpoint, so above ``2^p`` ns every one of our buckets lands in exactly
one HdrHistogram bucket and the ``.hgrm`` percentiles are HdrHistogram's "highest equivalent
value" of the bucket holding the order statistic: within one of our buckets (relative ``2^-p``) of
the value. Below ``2^p`` ns values are rounded down to whole nanoseconds; the underflow bucket
``[0, 1)`` is recorded as 0 and the overflow bucket as 1e12 ns. The footer's mean and standard
deviation are HdrHistogram's estimates from those recorded values, not our exact means (which
are in ``summary.csv``).

Stratified histograms (docs/model.md §5, "Rare events") have float effective counts; both formats
get them in fixed point, ``rint(count · 2^k)`` (:meth:`~mcsmp.sim.histogram.Histogram.as_integer`:
the smallest ``k`` that keeps every non-empty bucket ≥ 1), so percentiles are the combined
distribution's and ``TotalCount`` is ``2^k`` times the samples (the ``.hlog`` comment gives ``k``).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sim.histogram import RANGE_HIGH_NS, Histogram
from .atomic import write_atomic

__all__ = [
    "hdr_histogram",
    "hdr_significant_figures",
    "hgrm_bytes",
    "hlog_text",
    "recorded_values",
    "write_hgrm",
    "write_hlog",
]


def hdr_significant_figures(precision_bits: int) -> int:
    """Fewest significant digits whose HdrHistogram sub-buckets are as fine as ``2^-precision_bits``."""
    for digits in range(1, 6):
        if math.ceil(math.log2(2 * 10**digits)) - 1 >= precision_bits:
            return digits
    return 5


def recorded_values(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
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

    hist, _ = hist.as_integer()
    hdr = HdrHistogram(1, int(RANGE_HIGH_NS), hdr_significant_figures(hist.layout.precision_bits))
    for i, value in zip(*recorded_values(hist), strict=True):
        if not hdr.record_value(int(value), int(hist.counts[i])):
            raise ValueError(f"HdrHistogram refused value {value}")
    return hdr


def hlog_text(hdr: Any, comments: Sequence[str] = ()) -> str:
    """An HdrHistogram interval log (``.hlog``, format 1.2) holding ``hdr`` as one interval,
    written by hdrh's ``HistogramLogWriter``: readable by HdrHistogram's ``HistogramLogReader``
    (Java, C, Go, Python), so model histograms merge with measured ones (cyclictest, bpftrace).
    Values are ns; the interval's max column is in ms (``max_value_unit_ratio`` 1e6)."""
    from hdrh.log import HistogramLogWriter

    buf = io.StringIO()
    log = HistogramLogWriter(buf)
    log.output_comment("[Histogram log format version 1.2]")
    for line in comments:
        log.output_comment(f" {line}")
    log.output_comment('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"')
    log.output_interval_histogram(hdr, 0.0, 1.0, max_value_unit_ratio=1e6)
    return buf.getvalue()


def write_hlog(path: str | Path, hist: Histogram, comments: Sequence[str] = (), *, sync_dir: bool = True) -> None:
    """Write ``hist`` (values in ns) as a one-interval ``.hlog`` file to ``path``, atomically."""
    write_atomic(path, hlog_text(hdr_histogram(hist), comments), sync_dir=sync_dir)


@functools.lru_cache(maxsize=8)
def _hdr_template(digits: int) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, int(RANGE_HIGH_NS), digits)


@functools.lru_cache(maxsize=1 << 16)
def _hdr_bucket(digits: int, value: int) -> tuple[int, int, int]:
    """HdrHistogram counts index, highest equivalent value and median equivalent value of ``value``
    (hdrh's public API only: the median of an equivalence range is its lowest value plus half
    its size, as HdrHistogram defines it)."""
    hdr = _hdr_template(digits)
    index = hdr.get_counts_array_index(value)
    lowest = hdr.get_lowest_equivalent_value(value)
    highest = hdr.get_highest_equivalent_value(value)
    return index, highest, lowest + ((highest - lowest + 1) >> 1)


def hgrm_bytes(hist: Histogram, ticks_per_half_distance: int = 5) -> bytes:
    """The ``.hgrm`` percentile distribution of ``hist`` (values in ns).

    Byte-for-byte what ``hdrh``'s ``output_percentile_distribution(f, 1, ticks_per_half_distance)``
    writes for :func:`hdr_histogram` (a test checks it), computed over the non-empty buckets only
    with hdrh's bucket functions (cached): hdrh's pure-Python iterators walk every one of its
    counters and take ~0.1 s per file.
    """
    hist, _ = hist.as_integer()
    digits = hdr_significant_figures(hist.layout.precision_bits)
    template = _hdr_template(digits)
    merged: dict[int, list[int]] = {}  # HdrHistogram index -> [count, highest, median]
    for i, value in zip(*recorded_values(hist), strict=True):
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
