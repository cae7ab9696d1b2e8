"""An output folder's derived files, rendered from its histograms: tables, ``.hgrm``, figures.

Layout of an output folder (``results/<name>/``)::

    meta.json              provenance: versions, CPU, seed and stream scheme, every point's
                           resolved parameters and hashes, histogram settings, timings
    hist/<point_id>.npz    the raw, mergeable histograms of one point (the source of truth)
    summary.csv            tidy: one row per (point, metric, policy, cpu, statistic), time metrics
    per_cpu.csv            per (point, policy, cpu): window maximum quantiles, exceedance counts
    mask.csv               per point: the task-local cpumask memory and GFP_ATOMIC fallbacks
    report.txt             per point: the text report of ``mcsmp run`` (policy comparison first,
                           CPUs with identical rows grouped, quantiles beyond the data marked *)
    hgrm/<point_id>/<metric>[.<policy>].hgrm   HdrHistogram percentile distributions (ns)
    hlog/<point_id>/<metric>[.<policy>][.group<g>].hlog   HdrHistogram interval logs (ns), per
                           CPU group for P and H (its CPUs in the file's header): merge them
                           with measured histograms
    plots/*.png, *.pdf     figures (mcsmp.plots)

Everything but ``meta.json`` and ``hist/`` is derived: :func:`render_dir` rebuilds it, so
``mcsmp report`` re-renders a folder with other report settings without simulating.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OverloadError, UserError
from ..io.atomic import fsync_dir, write_atomic
from ..io.hgrm import write_hgrm, write_hlog
from ..io.histfile import hist_path, load_hist
from ..io.meta import load_meta
from ..io.report import text_report
from ..io.tables import (
    PointRows,
    cpu_ranges,
    csv_text,
    mask_table,
    per_cpu_table,
    summary_header,
    summary_rows,
)
from ..metrics import METRICS, compute_metrics, difference_rows, paired_histograms
from ..plots import PlotPoint, plot_point, render_plots
from ..sim import PointResult, chunk_sizes

__all__ = ["HGRM_DIR", "HLOG_DIR", "PLOTS_DIR", "RenderReport", "render_dir"]

HGRM_DIR = "hgrm"
HLOG_DIR = "hlog"
PLOTS_DIR = "plots"


@dataclass
class RenderReport:
    files: list[Path]
    errors: list[str]
    points: int


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
    points: list[PointRows] = []
    twins: dict[tuple[Any, ...], dict[str, tuple[PointRows, Any]]] = {}  # points on the same streams
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
            missing = sorted(set(range(len(chunk_sizes(result.params.samples)))) - set(result.chunk_fanouts))
            raise UserError(
                f"{path}: point [{e['index']}] is incomplete ({len(missing)} chunk(s) missing, e.g. {missing[:3]}); "
                "finish it with `mcsmp sweep --resume` or merge the other shards with `mcsmp merge`"
            )
        pt = PointRows(int(e["index"]), e["id"], dict((k, v) for k, v in e.get("overrides", [])), result.params, [])
        try:
            pt.rows = compute_metrics(result)
        except OverloadError as exc:
            errors.append(f"point [{pt.index}] {pt.id}: {exc}")
        if hgrm:
            files += _write_point_hgrm(outdir, pt.id, result)
        pt = plot_point(pt, result) if plots else pt
        points.append(pt)
        if pt.rows and result.params.workload.call in ("tlb_flush", "tlb_flush_kernel"):  # only they read a request
            twins.setdefault(_twin_key(result), {})[result.params.cache.placement] = (pt, paired_histograms(result))
    for by_placement in twins.values():  # placements on common random numbers: paired with percpu
        if "percpu" in by_placement:
            base = by_placement["percpu"][1]
            for placement, (pt, mine) in by_placement.items():
                if placement != "percpu":
                    pt.rows += difference_rows(mine, base, "percpu")
    good = [pt for pt in points if pt.rows]
    body = [row for pt in good for row in summary_rows(pt, swept_keys)]
    write_atomic(outdir / "summary.csv", csv_text(summary_header(swept_keys), body))
    h, b = per_cpu_table(good, swept_keys)
    write_atomic(outdir / "per_cpu.csv", csv_text(h, b))
    h, b = mask_table(good, swept_keys)
    write_atomic(outdir / "mask.csv", csv_text(h, b))
    reports = [text_report(pt.rows, f"[{pt.index}] {pt.id} " + (", ".join(f"{k}={v}" for k, v in pt.overrides.items())
                                                               or "(base)")) for pt in good]  # fmt: skip
    write_atomic(outdir / "report.txt", "\n\n\n".join(reports) + "\n")
    files += [outdir / "summary.csv", outdir / "per_cpu.csv", outdir / "mask.csv", outdir / "report.txt"]
    if plots:
        files += render_plots(outdir / PLOTS_DIR, [pt for pt in points if isinstance(pt, PlotPoint)], swept_keys)
    _remove_stale(outdir, files, hgrm=hgrm, plots=plots)
    return RenderReport(files, errors, len(points))


def _twin_key(result: PointResult) -> tuple[Any, ...]:
    """Points with equal keys ran on the same random streams and chunks (docs/model.md §6): they
    differ at most in ``cache.placement``."""
    key = result.params.stream_key if result.stream_key is None else result.stream_key
    return key, result.params.seed, result.params.samples, result.params.stream_hash


def _remove_stale(outdir: Path, written: list[Path], *, hgrm: bool, plots: bool) -> None:
    """Delete derived files of an earlier rendering that this one did not write (other points,
    fewer pages), so the folder never mixes renderings. Only our own file types are touched."""
    keep = {p.resolve() for p in written}
    patterns = ([(HGRM_DIR, "*/*.hgrm"), (HLOG_DIR, "*/*.hlog")] if hgrm else [])
    patterns += [(PLOTS_DIR, "*.png"), (PLOTS_DIR, "*.pdf")] if plots else []
    for folder, pattern in patterns:
        for path in (outdir / folder).glob(pattern):
            if path.resolve() not in keep:
                with suppress(OSError):
                    path.unlink()
    if hgrm:
        for sub in [*(outdir / HGRM_DIR).glob("*"), *(outdir / HLOG_DIR).glob("*")]:
            if sub.is_dir() and not any(sub.iterdir()):
                with suppress(OSError):
                    sub.rmdir()


def _write_point_hgrm(outdir: Path, point_id: str, result: PointResult) -> list[Path]:
    folder = outdir / HGRM_DIR / point_id
    wanted = [(m.name, "") for m in METRICS.values() if m.kind == "sampled" and not m.per_policy]
    wanted += [(m.name, pol) for pol in result.params.policies for m in METRICS.values()
               if m.kind == "sampled" and m.per_policy]  # fmt: skip
    out = []
    for metric, pol in wanted:
        hist = result.histogram(metric, pol)
        if hist.n:
            out.append(folder / (f"{metric}.{pol}.hgrm" if pol else f"{metric}.hgrm"))
            write_hgrm(out[-1], hist, sync_dir=False)
    fsync_dir(folder)  # once for the point's files
    return out + _write_point_hlog(outdir, point_id, result, wanted)


def _write_point_hlog(outdir: Path, point_id: str, result: PointResult, wanted: list[tuple[str, str]]) -> list[Path]:
    """HdrHistogram interval logs, per metric and policy and, for P and H, per CPU group (the
    CPUs sharing one call rate), so they merge with measured per-CPU histograms."""
    folder = outdir / HLOG_DIR / point_id
    model = result.model
    groups = [(None, "all")] if model.n_groups == 1 else [
        (g, cpu_ranges(np.nonzero(model.group_of == g)[0])) for g in range(model.n_groups)
    ]  # fmt: skip
    out = []
    for metric, pol in wanted:
        for g, cpus in groups if pol else [(None, "all")]:
            hist = result.histogram(metric, pol, g)
            if not hist.n:
                continue
            name = ".".join([metric] + ([pol] if pol else []) + ([f"group{g}"] if g is not None else []))
            out.append(folder / f"{name}.hlog")
            what = f"metric {metric}" + (f", policy {pol}" if pol else "") + f", CPUs {cpus}"
            notes = [f"mcsmp point {point_id}: {what}; {hist.n} samples in one interval", "values in ns; Interval_Max in ms"]
            if hist.strata is not None:  # float effective counts, written in fixed point
                notes.append(f"stratified (rare events): counts are effective counts x 2^{hist.as_integer()[1]}")
            write_hlog(out[-1], hist, notes, sync_dir=False)
    fsync_dir(folder)
    return out
