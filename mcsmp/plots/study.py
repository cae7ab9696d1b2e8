"""Figures of a sweep folder, written by :func:`render_plots` into ``plots/`` (PNG and PDF):

- ``ccdf_preempt_off_ns`` / ``ccdf_wakeup_ns``: ``Pr(X > x)`` on log-log axes, one panel per
  point, one line per policy. ``preempt_off_ns`` is the sampled histogram (calls of all CPUs);
  ``wakeup_ns`` is the derived curve (docs/model.md §4) on the CPUs with the highest call rate.
- ``quantiles_vs_cpus`` (when ``machine.cpus`` is swept) or ``quantiles_by_point`` (otherwise):
  quantiles of ``preempt_off_ns`` per policy with their 95% intervals.
- ``placement_cost``: ``info_cost_ns`` (mean and p99) per ``cache.placement`` versus CPU count
  (or per placement when the CPU count is not swept).
- ``placement_difference``: paired differences of mean ``call_ns``, ``info_cost_ns`` and
  ``preempt_off_ns`` of each stack placement minus its percpu twin (the point on the same random
  streams), with their 95% intervals; only when a sweep has such twins.
- ``window_max_per_cpu``: the per-CPU table of window-maximum quantiles (p50 and p99) per policy
  with their 95% intervals, beside the values of ``report.reference`` when the point has them;
  without a reference, CPUs with identical rows share one tick (``0,3,8,…``).

Every figure is paginated so that each page stays readable: at most
:data:`~.figure.PANELS_PER_PAGE` CCDF panels or ``quantiles_by_point`` rows,
:data:`~.figure.WINDOW_PANELS_PER_PAGE` window-maximum panels and :data:`~.figure.ROWS_PER_PAGE`
rows of ``quantiles_vs_cpus`` / ``placement_cost`` panels per page; several pages give numbered
PNGs (``stem-1.png`` …) and one multi-page PDF. Every model point carries its 95% interval bar; an
interval open above (``inf``) is an arrow to the axis end, named in the legend.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from .._util import usable_cpus
from ..io.tables import cpu_order, cpu_ranges
from ..metrics import diff_statistic, quantile_label
from .data import PlotPoint
from .figure import PLACEMENT_STYLE, RC, ROWS_PER_PAGE, WINDOW_PANELS_PER_PAGE, ns_axis, paged, style_of

__all__ = ["point_title", "render_plots"]

def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def point_title(pt: PlotPoint, swept: Sequence[str], width: int = 44) -> str:
    text = "  ".join(f"{_short(k)}={_value(pt.overrides[k])}" for k in swept if k in pt.overrides)
    text = f"[{pt.index}] {text}" if text else f"[{pt.index}] {pt.id}"
    return "\n".join(textwrap.wrap(text, width)[:4])


# --------------------------------------------------------------------------------------------
# Figure plumbing: fixed layouts in inches (constrained layout costs several extra draws)


def _legend_layout(labels: Sequence[str], width: float) -> tuple[int, int]:
    """Columns and rows of a figure legend that fits ``width`` inches."""
    if not labels:
        return 1, 0
    item = max(len(t) for t in labels) * 0.055 + 0.45
    ncol = max(1, min(len(labels), int(width // item)))
    return ncol, math.ceil(len(labels) / ncol)


class _Grid:
    """A figure of ``n`` equal panels in a grid, with room for titles, ticks and a legend.

    ``sharex``/``sharey`` give all panels the same limits and label only the outer ones; they are
    applied by :meth:`finish`, not with matplotlib's shared axes, whose sibling bookkeeping makes
    drawing quadratic in the number of panels (seconds for 36 panels).
    """

    def __init__(
        self, n: int, ncols: int, *, panel: tuple[float, float] = (2.2, 1.6), title_lines: int = 1,
        sharex: bool = False, sharey: bool = False, left: float = 0.72, legend: Sequence[str] = (),
    ) -> None:  # fmt: skip
        from matplotlib.figure import Figure

        pw, ph = panel
        self.n, self.ncols = n, ncols
        self.nrows = max(1, math.ceil(n / ncols))
        right, tick_h = 0.18, 0.46
        title_h = 0.125 * title_lines + 0.08
        wgap = 0.14 if sharey else left
        hgap = title_h + (0.1 if sharex else tick_h)
        width = left + ncols * pw + (ncols - 1) * wgap + right
        self.legend_ncol, rows = _legend_layout(legend, width)
        legend_h = 0.19 * rows + 0.08 if rows else 0.0
        height = legend_h + title_h + self.nrows * ph + (self.nrows - 1) * hgap + tick_h
        self.fig = Figure(figsize=(width, height))
        gs = self.fig.add_gridspec(
            self.nrows, ncols, left=left / width, right=1 - right / width, bottom=tick_h / height,
            top=1 - (legend_h + title_h) / height, wspace=wgap / pw, hspace=hgap / ph,
        )  # fmt: skip
        self.axes = [self.fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(n)]
        self.sharex, self.sharey = sharex, sharey

    def is_bottom(self, i: int) -> bool:
        return i + self.ncols >= self.n

    def is_left(self, i: int) -> bool:
        return i % self.ncols == 0

    @staticmethod
    def _union(lims: list[tuple[float, float]], log: bool) -> tuple[float, float]:
        lims = [(a, b) for a, b in lims if math.isfinite(a) and math.isfinite(b) and (not log or a > 0)]
        if not lims:
            return (1.0, 10.0) if log else (0.0, 1.0)
        lo, hi = min(a for a, _ in lims), max(b for _, b in lims)
        if log:
            pad = 0.04 * max(math.log10(hi / lo), 0.3)
            return lo / 10**pad, hi * 10**pad
        pad = 0.05 * ((hi - lo) or 1.0)
        return lo - pad, hi + pad

    def finish(
        self, *, xlog: bool = False, ylog: bool = False, xns: bool = False, yns: bool = False,
        xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
        xlabel: str = "", ylabel: str = "", minor: bool = True,
    ) -> None:  # fmt: skip
        """Scales, ns tick labels, common limits of shared axes, outer tick and axis labels."""
        from matplotlib.ticker import NullLocator

        for ax in self.axes:
            if xlog:
                ax.set_xscale("log")
            if ylog:
                ax.set_yscale("log")
            if xns:
                ns_axis(ax.xaxis, minor)
            if yns:
                ns_axis(ax.yaxis, minor)
            if not minor:
                ax.xaxis.set_minor_locator(NullLocator())
                ax.yaxis.set_minor_locator(NullLocator())
        if self.sharex:
            xlim = xlim or self._union([tuple(ax.dataLim.intervalx) for ax in self.axes], xlog)
        if self.sharey:
            ylim = ylim or self._union([tuple(ax.dataLim.intervaly) for ax in self.axes], ylog)
        for i, ax in enumerate(self.axes):
            if xlim is not None:
                ax.set_xlim(xlim)
            if ylim is not None:
                ax.set_ylim(ylim)
            if self.sharex and not self.is_bottom(i):
                ax.tick_params(axis="x", which="both", labelbottom=False)
            elif xlabel:
                ax.set_xlabel(xlabel)
            if self.sharey and not self.is_left(i):
                ax.tick_params(axis="y", which="both", labelleft=False)
            elif ylabel:
                ax.set_ylabel(ylabel)

    def legend(self, handles: list[Any]) -> None:
        if handles:
            self.fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=self.legend_ncol,
                            frameon=False, handlelength=2.6, columnspacing=1.4)  # fmt: skip


def _ncols(n: int, most: int = 6) -> int:
    return n if n <= 3 else min(most, math.ceil(math.sqrt(n)))


def _policy_handles(policies: Sequence[str], markers: bool = True) -> list[Any]:
    from matplotlib.lines import Line2D

    out = []
    for pol in policies:
        st = style_of(pol)
        out.append(Line2D([], [], color=st["color"], linestyle=st["linestyle"], markerfacecolor="white",
                          marker=st["marker"] if markers else None, label=st["label"]))  # fmt: skip
    return out


def _all_policies(points: Sequence[PlotPoint]) -> list[str]:
    seen: dict[str, None] = {}
    for pt in points:
        for pol in pt.params.policies:
            seen.setdefault(pol, None)
    return list(seen)


def _titles(points: Sequence[PlotPoint], swept: Sequence[str], panel_w: float) -> tuple[list[str], int]:
    titles = [point_title(p, swept, max(16, int(panel_w / 0.056))) for p in points]
    return titles, max((t.count("\n") + 1 for t in titles), default=1)


# --------------------------------------------------------------------------------------------
# CCDFs


def _thin(x: np.ndarray, y: np.ndarray, floor: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Keep points above ``floor`` where ``y`` changes, at most about ``n`` (log-spaced)."""
    keep = (y > floor) & (x > 0)
    if not np.any(keep):
        return x[:0], y[:0]
    last = int(np.nonzero(keep)[0][-1])
    x, y = x[: last + 1], y[: last + 1]
    pos = x > 0
    x, y = x[pos], y[pos]
    change = np.concatenate(([True], np.diff(y) != 0))
    change[-1] = True
    x, y = x[change], y[change]
    if len(x) > n:
        grid = np.geomspace(x[0], x[-1], n)
        idx = np.unique(np.concatenate((np.searchsorted(x, grid).clip(0, len(x) - 1), [len(x) - 1])))
        x, y = x[idx], y[idx]
    return x, y


def _ccdf_page(folder: Path, stem: str, points: Sequence[PlotPoint], swept: Sequence[str], which: str) -> list[Path]:
    policies = _all_policies(points)
    xlabel = {"preempt": "preempt-off length P", "wakeup": "wake-up latency"}[which]

    def curves_of(pt: PlotPoint) -> list[tuple[str, np.ndarray, np.ndarray]]:
        curves = pt.preempt_ccdf if which == "preempt" else pt.wakeup_ccdf
        n_calls = max((r.n for r in pt.rows if r.metric == "preempt_off_ns"), default=0)
        # Sampled: down to one call in n. Derived: as far as the sampled P supports it (1/n of
        # the calls' share of time), and not below 1e-12.
        floor = 0.5 / n_calls if n_calls else 1e-12
        out = []
        for pol in pt.params.policies:
            if pol in curves:
                x, y = _thin(*curves[pol], floor=floor if which == "preempt" else max(floor * 1e-3, 1e-12))
                if len(x):
                    out.append((pol, x, y))
        return out

    def make(page: Sequence[PlotPoint]) -> Any:
        titles, lines = _titles(page, swept, 2.2)
        if which == "wakeup":
            titles = [t + (f"\nCPUs {p.wakeup_cpus}" if p.wakeup_cpus != "all" else "") for t, p in zip(titles, page, strict=True)]
            lines = max(t.count("\n") + 1 for t in titles)
        labels = [style_of(p)["label"] for p in policies]
        g = _Grid(len(page), _ncols(len(page)), panel=(2.2, 1.6), title_lines=lines, sharex=True, sharey=True, legend=labels)
        lo = 1.0
        for ax, pt, title in zip(g.axes, page, titles, strict=True):
            for pol, x, y in curves_of(pt):
                st = style_of(pol)
                stagger = 0.025 * policies.index(pol)  # markers of overlapping curves side by side
                ax.plot(x, y, color=st["color"], linestyle=st["linestyle"], marker=st["marker"], markevery=(stagger, 0.1),
                        markersize=3.2, markerfacecolor="white", drawstyle="steps-post" if which == "preempt" else "default")  # fmt: skip
                lo = min(lo, float(y[-1]))
            ax.set_title(title, loc="left")
        g.finish(xlog=True, ylog=True, xns=True, ylim=(max(lo * 0.5, 1e-12), 1.6), xlabel=xlabel, ylabel="Pr(> x)",
                 minor=False)  # fmt: skip
        g.legend(_policy_handles(policies))
        return g.fig

    return paged(folder, stem, points, make)


# --------------------------------------------------------------------------------------------
# Quantiles


def _pick_quantiles(qs: Sequence[float]) -> list[float]:
    wanted = [q for q in (0.5, 0.99, 0.999) if q in qs]
    if len(wanted) >= 2:
        return wanted
    qs = sorted(qs)
    return sorted({qs[0], qs[len(qs) // 2], qs[-1]})


def _rows(pt: PlotPoint, metric: str, policy: str, statistic: str) -> tuple[float, float, float] | None:
    for r in pt.rows:
        if r.metric == metric and r.policy == policy and r.statistic == statistic and r.cpu == "all":
            return r.value, r.low, r.high
    return None


def _determined_by(points: Sequence[PlotPoint], key: str, by: str) -> bool:
    seen: dict[Any, Any] = {}
    for pt in points:
        x, v = repr(pt.overrides.get(by)), repr(pt.overrides.get(key))
        if seen.setdefault(x, v) != v:
            return False
    return True


def _groups(points: Sequence[PlotPoint], keys: Sequence[str], width: int = 40) -> list[tuple[str, list[PlotPoint]]]:
    groups: dict[tuple[str, ...], list[PlotPoint]] = {}
    for pt in points:
        groups.setdefault(tuple(_value(pt.overrides.get(k)) for k in keys), []).append(pt)
    out = []
    for values, members in groups.items():
        title = "  ".join(f"{_short(k)}={v}" for k, v in zip(keys, values, strict=True))
        out.append(("\n".join(textwrap.wrap(title, width)[:3]), members))
    return out


def _errorbars(ax: Any, xs: np.ndarray, v: np.ndarray, style: dict[str, Any], *, horizontal: bool = False,
               line: bool = True, markersize: float | None = None, filled: bool = False) -> int:  # fmt: skip
    """Points ``v[:, 0]`` with their 95% intervals ``v[:, 1]..v[:, 2]``; an interval open above
    (``inf``) is drawn as an arrow from the point to the axis end. Returns the number of arrows."""
    v = np.asarray(v, float)
    open_hi = ~np.isfinite(v[:, 2])
    hi = np.where(open_hi, v[:, 0], v[:, 2])
    err = np.vstack((np.clip(v[:, 0] - v[:, 1], 0, None), np.clip(hi - v[:, 0], 0, None)))
    kw = {"color": style["color"], "marker": style["marker"], "markerfacecolor": style["color"] if filled else "white", "capsize": 2,
          "elinewidth": 0.7, "linestyle": style["linestyle"] if line else "none"}  # fmt: skip
    if markersize is not None:
        kw["markersize"] = markersize
    if horizontal:
        ax.errorbar(v[:, 0], xs, xerr=err, **kw)
    else:
        ax.errorbar(xs, v[:, 0], yerr=err, **kw)
    arrow = {"arrowstyle": "-|>", "color": style["color"], "lw": 0.7, "mutation_scale": 6, "shrinkA": 0, "shrinkB": 0}
    for x, y in zip(np.asarray(xs, float)[open_hi], v[open_hi, 0], strict=True):
        if horizontal:
            ax.annotate("", xy=(1.0, x), xycoords=("axes fraction", "data"), xytext=(y, x), textcoords="data",
                        arrowprops=arrow, annotation_clip=False)  # fmt: skip
        else:
            ax.annotate("", xy=(x, 1.0), xycoords=("data", "axes fraction"), xytext=(x, y), textcoords="data",
                        arrowprops=arrow, annotation_clip=False)  # fmt: skip
    return int(open_hi.sum())


OPEN_LABEL = "95% interval open above (inf): arrow to the axis end"


def _open_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="#555555", marker=r"$\rightarrow$", markersize=7, linestyle="none", label=OPEN_LABEL)


def _any_open(points: Sequence[PlotPoint], metric: str, stats: Sequence[str], cpu: str | None = "all") -> bool:
    return any(r.metric == metric and r.statistic in stats and (cpu is None or r.cpu == cpu) and math.isfinite(r.value)
               and not math.isfinite(r.high) for pt in points for r in pt.rows)  # fmt: skip


def _cpu_ticks(ax: Any, cpus: Sequence[int]) -> tuple[float, float]:
    """A log2 CPU-count axis with a tick per swept value; returns its limits."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(cpus), [str(x) for x in cpus])
    ax.minorticks_off()
    return min(cpus) / 2**0.3, max(cpus) * 2**0.3


def _quantiles_vs_cpus(folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    key = "machine.cpus"
    others = [k for k in swept if k != key and not _determined_by(points, k, key)]
    groups = _groups(points, others)
    qs = _pick_quantiles(points[0].params.report.quantiles)
    policies = _all_policies(points)
    lines = max(t.count("\n") + 2 for t, _ in groups) if others else 1
    cpus_all = sorted({pt.params.machine.cpus for pt in points})
    opened = _any_open(points, "preempt_off_ns", [quantile_label(q) for q in qs])
    labels = [style_of(p)["label"] for p in policies] + ([OPEN_LABEL] if opened else [])

    def make(page: Sequence[tuple[str, list[PlotPoint]]]) -> Any:
        g = _Grid(len(page) * len(qs), len(qs), panel=(2.3, 1.7), title_lines=lines, sharex=True, legend=labels)
        for r, (title, members) in enumerate(page):
            members = sorted(members, key=lambda p: p.params.machine.cpus)
            for c, q in enumerate(qs):
                ax = g.axes[r * len(qs) + c]
                for pol in policies:
                    got = [(p.params.machine.cpus, _rows(p, "preempt_off_ns", pol, quantile_label(q))) for p in members]
                    got = [(x, v) for x, v in got if v is not None and math.isfinite(v[0])]
                    if got:
                        _errorbars(ax, np.array([x for x, _ in got], float), np.array([v for _, v in got], float), style_of(pol))
                _cpu_ticks(ax, cpus_all)
                head = f"{quantile_label(q)} of preempt-off length"
                ax.set_title(f"{head}\n{title}" if title else head, loc="left")
        g.finish(ylog=True, yns=True, xlim=_cpu_ticks(g.axes[0], cpus_all), xlabel="CPUs (machine.cpus)",
                 ylabel="P (bars: 95% interval)")  # fmt: skip
        g.legend(_policy_handles(policies) + ([_open_handle()] if opened else []))
        return g.fig

    return paged(folder, "quantiles_vs_cpus", groups, make, ROWS_PER_PAGE)


def _quantiles_by_point(folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    qs = _pick_quantiles(points[0].params.report.quantiles)
    policies = _all_policies(points)
    # rows labelled by their swept values; the keys name the axis
    keys = [k for k in swept if any(k in p.overrides for p in points)]
    opened = _any_open(points, "preempt_off_ns", [quantile_label(q) for q in qs])

    def make(page: Sequence[PlotPoint]) -> Any:
        n = len(page)
        labels = [f"[{p.index}] " + " · ".join(_value(p.overrides.get(k, "")) for k in keys) for p in page]
        left = min(6.0, 0.046 * max(len(t) for t in labels) + 0.45)
        row_h = 0.075 * max(3, len(policies) + 1)
        g = _Grid(len(qs), len(qs), panel=(2.6, row_h * n + 0.1), sharey=True, left=left,
                  legend=[style_of(p)["label"] for p in policies] + ([OPEN_LABEL] if opened else []))  # fmt: skip
        dodge = np.linspace(-0.27, 0.27, len(policies)) if len(policies) > 1 else np.zeros(1)
        for c, q in enumerate(qs):
            ax = g.axes[c]
            for j, pol in enumerate(policies):
                ys, vals = [], []
                for i, p in enumerate(page):
                    v = _rows(p, "preempt_off_ns", pol, quantile_label(q))
                    if v is not None and math.isfinite(v[0]):
                        ys.append(i + dodge[j])
                        vals.append(v)
                if vals:
                    _errorbars(ax, np.array(ys), np.array(vals, float), style_of(pol), horizontal=True, line=False)
            ax.set_title(f"{quantile_label(q)} of preempt-off length", loc="left")
            ax.grid(axis="y", visible=False)
            for i in range(1, n):
                ax.axhline(i - 0.5, color="#e0e0e0", linewidth=0.4, zorder=0)
            ax.set_yticks(range(n), labels if c == 0 else [], fontsize=6)
        g.finish(xlog=True, xns=True, ylim=(n - 0.5, -0.5), xlabel="preempt-off length (bars: 95% interval)",
                 ylabel="[point] " + " · ".join(_short(k) for k in keys))  # fmt: skip
        g.legend(_policy_handles(policies) + ([_open_handle()] if opened else []))
        return g.fig

    return paged(folder, "quantiles_by_point", points, make)


# --------------------------------------------------------------------------------------------
# Flush-request placement cost


_PLACEMENT_RELEVANT = ("machine.", "cache.", "tlb.", "ipi.", "workload.mm_cpus", "workload.target_prob",
                       "workload.call", "costs.", "remote.")  # fmt: skip


def _placement_cost(folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    from matplotlib.lines import Line2D

    # info_cost_ns does not depend on callers, policies or preemption: one point per setting of
    # the keys that can change it (the first in sweep order), so panels are not repeated.
    relevant = [k for k in swept if any(k == r or k.startswith(r if r.endswith(".") else r + ".")
                                        for r in _PLACEMENT_RELEVANT)]  # fmt: skip
    chosen: dict[tuple[str, ...], PlotPoint] = {}
    for pt in points:
        chosen.setdefault(tuple(_value(pt.overrides.get(k)) for k in relevant), pt)
    pts = list(chosen.values())
    cpus_swept = len({p.params.machine.cpus for p in pts}) > 1
    others = [k for k in relevant if k not in ("machine.cpus", "cache.placement")]
    if cpus_swept:
        others = [k for k in others if not _determined_by(pts, k, "machine.cpus")]
    groups = _groups(pts, others)
    placements = list(dict.fromkeys(p.params.cache.placement for p in pts))
    stats = [("mean", "mean"), ("p99", quantile_label(0.99))]
    lines = max(t.count("\n") + 2 for t, _ in groups) if others else 1
    cpus = sorted({p.params.machine.cpus for p in pts})

    def make(page: Sequence[tuple[str, list[PlotPoint]]]) -> Any:
        g = _Grid(len(page) * len(stats), len(stats), panel=(2.3, 1.7), title_lines=lines, sharex=True, legend=placements)
        for r, (title, members) in enumerate(page):
            for c, (name, stat) in enumerate(stats):
                ax = g.axes[r * len(stats) + c]
                for k, place in enumerate(placements):
                    mem = sorted((p for p in members if p.params.cache.placement == place), key=lambda p: p.params.machine.cpus)
                    got = [(p.params.machine.cpus, _rows(p, "info_cost_ns", "", stat)) for p in mem]
                    got = [(x, v) for x, v in got if v is not None]
                    if not got:
                        continue
                    st = PLACEMENT_STYLE.get(place, {"color": "#444444", "linestyle": "-", "marker": "x"})
                    xs = np.array([x for x, _ in got], float) if cpus_swept else np.full(len(got), float(k))
                    _errorbars(ax, xs, np.array([v for _, v in got], float), st, line=cpus_swept)
                if cpus_swept:
                    _cpu_ticks(ax, cpus)
                else:
                    ax.set_xticks(range(len(placements)), placements)
                    ax.set_xlim(-0.6, len(placements) - 0.4)
                head = f"flush-request cost per target, {name}"
                ax.set_title(f"{head}\n{title}" if title else head, loc="left")
        if cpus_swept:
            xlabel, xlim = "CPUs (machine.cpus)", _cpu_ticks(g.axes[0], cpus)
        else:
            xlabel, xlim = f"cache.placement ({cpus[0]} CPUs)", (-0.6, len(placements) - 0.4)
        g.finish(ylog=True, yns=True, xlim=xlim, xlabel=xlabel, ylabel="info_cost_ns (bars: 95% interval)")
        g.legend([Line2D([], [], label=pl, markerfacecolor="white", **PLACEMENT_STYLE.get(pl, {})) for pl in placements])
        return g.fig

    return paged(folder, "placement_cost", groups, make, ROWS_PER_PAGE)


def _placement_difference(folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    """Paired differences of means against the percpu twin (``mean_diff_vs_percpu`` rows), one row
    per group of points on common random numbers, one panel per compared quantity."""
    from matplotlib.lines import Line2D

    stat = diff_statistic("percpu")
    panels = [("call_ns", "", "call_ns"), ("info_cost_ns", "", "info_cost_ns")]
    pols = _all_policies(points)
    if pols:
        panels.append(("preempt_off_ns", pols[0], f"preempt_off_ns ({pols[0]})"))
    groups: dict[str, dict[str, PlotPoint]] = {}
    for pt in points:
        if any(r.statistic == stat for r in pt.rows) or pt.params.cache.placement == "percpu":
            groups.setdefault(pt.params.stream_hash, {})[pt.params.cache.placement] = pt
    rows = [(g["percpu"], g) for g in groups.values() if "percpu" in g and len(g) > 1]
    if not rows:
        return []
    placements = [p for p in dict.fromkeys(pl for _, g in rows for pl in g) if p != "percpu"]
    keys = [k for k in swept if k != "cache.placement"]

    def make(page: Sequence[tuple[PlotPoint, dict[str, PlotPoint]]]) -> Any:
        g = _Grid(len(panels), len(panels), panel=(2.6, 0.5 * len(page) + 0.4), sharey=True, legend=placements, left=2.4)
        labels = [point_title(base, keys, 36) for base, _ in page]
        for ax, (metric, policy, title) in zip(g.axes, panels, strict=True):
            for k, place in enumerate(placements):
                got = [(i + 0.15 * (k - (len(placements) - 1) / 2), _rows(mem[place], metric, policy, stat))
                       for i, (_, mem) in enumerate(page) if place in mem]  # fmt: skip
                got = [(y, (v[0], v[1] if math.isfinite(v[1]) else v[0], v[2])) for y, v in got if v is not None]
                if got:
                    st = PLACEMENT_STYLE.get(place, {"color": "#444444", "linestyle": "-", "marker": "x"})
                    _errorbars(ax, np.array([y for y, _ in got]), np.array([v for _, v in got], float), st,
                               horizontal=True, line=False)  # fmt: skip
            ax.axvline(0.0, color="#888888", lw=0.6)
            ax.set_title(f"{title}\nminus percpu (paired)", loc="left")
            ax.set_yticks(range(len(page)), labels, fontsize="x-small")
        g.finish(xlabel="difference of means, ns (bars: 95%)", ylim=(len(page) - 0.5, -0.5))  # first point on top
        g.legend([Line2D([], [], label=f"{pl} − percpu", markerfacecolor="white", **PLACEMENT_STYLE.get(pl, {}))
                  for pl in placements])  # fmt: skip
        return g.fig

    return paged(folder, "placement_difference", rows, make, ROWS_PER_PAGE * 4)


# --------------------------------------------------------------------------------------------
# Per-CPU window maximum


def _window_rows(pt: PlotPoint) -> dict[str, list[Any]]:
    """A point's ``window_max_ns`` rows by CPU label, in CPU order (``all`` alone otherwise)."""
    by: dict[str, list[Any]] = {}
    for r in pt.rows:
        if r.metric == "window_max_ns":
            by.setdefault(r.cpu, []).append(r)
    return dict(sorted(by.items(), key=lambda kv: cpu_order(kv[0])))


def cpu_groups(pt: PlotPoint) -> list[tuple[str, list[str]]]:
    """(tick label, CPUs) of the window-maximum panel: one tick per CPU when the point has a
    reference (measured per CPU) or all CPUs differ, else one per set of CPUs with identical rows."""
    by = _window_rows(pt)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for cpu, rows in by.items():
        groups.setdefault(tuple((r.policy, r.statistic, r.value, r.low, r.high) for r in rows), []).append(cpu)
    if pt.params.report.reference is not None or len(groups) == len(by) or not all(c.isdigit() for c in by):
        return [(c, [c]) for c in by]
    return [(cpu_ranges([int(c) for c in m], 12).replace(",… ", ",…\n"), m) for m in groups.values()]


def _window_max(folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    from matplotlib.lines import Line2D

    policies = _all_policies(points)
    shown = [q for q in (0.5, 0.99) if q in points[0].params.report.quantiles] or [points[0].params.report.quantiles[-1]]
    # model markers right of the CPU's tick, the reference (if any) left of them
    dodge = np.linspace(-0.1, 0.36, len(policies)) if len(policies) > 1 else np.zeros(1)
    ref_dx = -0.34
    any_ref = any(pt.params.report.reference is not None for pt in points)
    ref_marker = {q: ("_" if (q == shown[0] and len(shown) > 1) else "x") for q in shown}
    ref_size = {q: (8.0 if ref_marker[q] == "_" else 4.5) for q in shown}
    opened = _any_open(points, "window_max_ns", [quantile_label(q) for q in shown], cpu=None)

    def handles() -> list[Any]:
        out = [Line2D([], [], linestyle="none", marker=style_of(p)["marker"], color=style_of(p)["color"],
                      label=style_of(p)["label"]) for p in policies]  # fmt: skip
        for q in shown:
            filled = q == shown[-1]
            out.append(Line2D([], [], linestyle="none", marker="o", color="#555555",
                              markerfacecolor="#555555" if filled else "white", label=f"model {quantile_label(q)}"))  # fmt: skip
        out.append(Line2D([], [], color="#555555", marker="|", markersize=6, linestyle="none",
                          label="bars: 95% interval"))  # fmt: skip
        if opened:
            out.append(_open_handle())
        if any_ref:
            out += [Line2D([], [], linestyle="none", color="black", marker=ref_marker[q], markersize=ref_size[q],
                           markeredgewidth=1.3, label=f"reference {quantile_label(q)}") for q in shown]  # fmt: skip
        return out

    def make(page: Sequence[PlotPoint]) -> Any:
        hs = handles()
        ticks = [cpu_groups(p) for p in page]
        same = len({tuple(label for label, _ in t) for t in ticks}) == 1
        ncpu = max(len(t) for t in ticks)
        long = max(len(label) for t in ticks for label, _ in t) > 3
        pw = max(2.0, (0.6 if long else 0.17) * ncpu + 0.3)
        titles, lines = _titles(page, swept, pw)
        g = _Grid(len(page), _ncols(len(page), 4), panel=(pw, 1.7), title_lines=lines + (1 if long else 0),
                  sharex=same, sharey=True, legend=[h.get_label() for h in hs])  # fmt: skip
        for ax, pt, title, tick in zip(g.axes, page, titles, ticks, strict=True):
            by = _window_rows(pt)
            for pol in pt.params.policies:
                st, jj = style_of(pol), policies.index(pol)
                for q in shown:
                    got = [(i + dodge[jj], r) for i, (_, members) in enumerate(tick) for r in by[members[0]]
                           if r.policy == pol and r.statistic == quantile_label(q) and math.isfinite(r.value)]  # fmt: skip
                    if not got:
                        continue
                    _errorbars(ax, np.array([x for x, _ in got]), np.array([(r.value, r.low, r.high) for _, r in got]),
                               st, line=False, markersize=3.0, filled=q == shown[-1])  # the upper quantile filled
            ref = pt.params.report.reference
            if ref is not None:
                pos = {members[0]: i for i, (_, members) in enumerate(tick)}
                for q, values in ref.window_max_ns:
                    if q in shown:
                        got = [(pos[str(c)] + ref_dx, v) for c, v in enumerate(values) if str(c) in pos]
                        ax.plot([a for a, _ in got], [b for _, b in got], linestyle="none", color="black", zorder=5,
                                marker=ref_marker[q], markersize=ref_size[q], markeredgewidth=1.3)  # fmt: skip
            ax.set_xticks(range(len(tick)), [label for label, _ in tick], fontsize=5.5 if len(tick) > 12 or long else 7)
            ax.grid(axis="x", visible=False)
            ax.set_title(title, loc="left")
        g.finish(ylog=True, yns=True, xlim=(-0.6, ncpu - 0.4), xlabel="CPU", minor=len(page) <= 4,
                 ylabel=f"max section in {page[0].params.report.window_s:g} s")  # fmt: skip
        g.legend(hs)
        return g.fig

    return paged(folder, "window_max_per_cpu", points, make, WINDOW_PANELS_PER_PAGE)


# --------------------------------------------------------------------------------------------


def _figure_task(name: str, folder: Path, points: Sequence[PlotPoint], swept: Sequence[str]) -> list[Path]:
    """Draw one figure (a process-pool task: the figures are independent)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        if name in ("ccdf_preempt_off_ns", "ccdf_wakeup_ns"):
            return _ccdf_page(folder, name, points, swept, "preempt" if name == "ccdf_preempt_off_ns" else "wakeup")
        return {
            "quantiles_vs_cpus": _quantiles_vs_cpus, "quantiles_by_point": _quantiles_by_point,
            "placement_cost": _placement_cost, "window_max_per_cpu": _window_max,
            "placement_difference": _placement_difference,
        }[name](folder, points, swept)  # fmt: skip


def _die_with_parent(parent: int) -> None:
    """Plot workers end with the process that forked them, even when it is SIGKILLed: an orphan
    would hold the output folder's lock (and the caller's stderr) for ever (Linux: PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    with suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def render_plots(
    folder: str | Path, points: Sequence[PlotPoint], swept: Sequence[str], processes: int | None = None
) -> list[Path]:
    """Write every figure for ``points`` into ``folder``; returns the files written.

    Drawing is single-threaded Python, so with several usable cores the figures are drawn in
    ``processes`` forked worker processes (default: up to the usable cores; 1 draws here).
    """
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    points = [p for p in points if p.rows]
    if not points:
        return []
    quantiles = "quantiles_vs_cpus" if len({p.params.machine.cpus for p in points}) > 1 else "quantiles_by_point"
    names = ["ccdf_preempt_off_ns", "window_max_per_cpu", "ccdf_wakeup_ns", quantiles, "placement_cost",
             "placement_difference"]
    if processes is None:
        usable = usable_cpus()
        # fork only a single-threaded process (forking live threads can deadlock; Python warns)
        can_fork = "fork" in mp.get_all_start_methods() and threading.active_count() == 1
        processes = min(usable, len(names)) if can_fork else 1
    if processes <= 1:
        return [f for name in names for f in _figure_task(name, folder, points, swept)]
    with ProcessPoolExecutor(processes, mp_context=mp.get_context("fork"), initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:  # fmt: skip
        futures = [pool.submit(_figure_task, name, folder, points, swept) for name in names]
        return [f for fut in futures for f in fut.result()]
