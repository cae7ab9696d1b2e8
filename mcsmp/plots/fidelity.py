"""The figure of ``mcsmp reproduce``: the model beside a measured table (seed 004's)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..io.tables import bin_label, cpu_order
from .figure import new_figure, save

__all__ = ["render_figure"]


def _cpu_key(c: Any) -> tuple[int, str]:
    return cpu_order(c.target.cpu)



def render_figure(rep: Any, folder: Path, *, before: str, after: str) -> list[Path]:
    """Write ``figure.png`` and ``figure.pdf`` of a :class:`~mcsmp.fidelity.reproduce.Reproduction`
    into ``folder``: the four-panel comparison (greyscale: markers and hatching only)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = new_figure(12, 8.5, layout="constrained")
    axes = fig.subplots(2, 2)
    by = {(c.target.metric, c.target.policy, c.target.cpu, c.target.statistic): c for c in rep.comparisons}
    cpus = sorted({c.target.cpu for c in rep.comparisons if c.target.metric == "window_max_ns"
                   and c.target.policy == before and c.target.cpu.isdigit()}, key=int)  # fmt: skip
    for ax, stat in zip(axes[0], ("p50", "p99"), strict=True):
        xs, seed, model, lo, hi, tol = [], [], [], [], [], []
        for cpu in cpus:
            c = by.get(("window_max_ns", before, cpu, stat))
            if c is None:
                continue
            xs.append(int(cpu))
            seed.append(c.target.value / 1e3)
            model.append(c.row.value / 1e3)
            lo.append(c.row.low / 1e3)
            hi.append(c.row.high / 1e3)
            tol.append(c.target.tolerance)
        xs_a = np.array(xs, dtype=float)
        seed_a, model_a = np.array(seed), np.array(model)
        if len(xs):
            ax.errorbar(xs_a - 0.15, seed_a, yerr=[seed_a - seed_a / (1 + np.array(tol)), seed_a / (1 - np.array(tol)) - seed_a],
                        fmt="o", mfc="white", mec="black", ecolor="0.6", capsize=2, label="seed 004 (bar: accepted ±tol)")  # fmt: skip
            lo_a = np.where(np.isfinite(lo), lo, model_a)
            hi_a = np.where(np.isfinite(hi), hi, model_a)
            ax.errorbar(xs_a + 0.15, model_a, yerr=[np.maximum(model_a - lo_a, 0), np.maximum(hi_a - model_a, 0)],
                        fmt="s", color="black", capsize=2, label="model (bar: 95% CI)")  # fmt: skip
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks([int(c) for c in cpus])
        ax.set_xlabel("CPU")
        ax.set_ylabel(f"{stat} of the 30-s maximum (µs)")
        ax.set_title(f"{stat} of the longest preempt-off section per 30 s, before")
        ax.grid(True, which="both", color="0.9")
        ax.legend(fontsize=8, loc="upper right")

    ax = axes[1][0]
    counts = sorted((c for c in rep.comparisons if (c.target.is_count and c.target.value > 0)
                     or (c.target.is_count and c.row.value >= 0.5)), key=_cpu_key)  # fmt: skip
    counts = [c for c in counts if c.target.policy == before] or counts
    labels = []
    for i, c in enumerate(counts):
        labels.append(f"cpu{c.target.cpu}\n{bin_label(c.target.statistic)}")
        ax.plot([i, i], [c.band_low, c.band_high], color="0.55", lw=6, solid_capstyle="butt",
                label="Poisson 95% band of the model" if i == 0 else None)  # fmt: skip
        ax.plot(i, c.row.value, "s", color="black", label="model E[count]" if i == 0 else None)
        ax.plot(i, c.target.value, "o", mfc="white", mec="black", ms=8, label="seed 004 count" if i == 0 else None)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel(f"sections over {rep.duration_h:.3g} h")
    ax.set_title("Preempt-off sections > 1 ms per CPU (before)")
    ax.grid(True, axis="y", color="0.9")
    if counts:
        ax.legend(fontsize=8)

    ax = axes[1][1]
    names = [s.scenario.name for s in rep.scenarios]
    x = np.arange(len(names))
    for shift, pol, style in ((-0.2, before, {"color": "white", "hatch": "///"}), (0.2, after, {"color": "0.6"})):
        rows = [s.worst(pol) for s in rep.scenarios]
        val = np.array([r.value / 1e6 if r else math.nan for r in rows])
        lo = np.array([r.low / 1e6 if r and math.isfinite(r.low) else math.nan for r in rows])
        hi = np.array([r.high / 1e6 if r and math.isfinite(r.high) else math.nan for r in rows])
        label = "before (preempt_off)" if pol == before else "after (preemptible_wait)"
        ax.bar(x + shift, val, 0.4, edgecolor="black", label=f"{label}, bar: 95% CI", **style)
        ax.errorbar(x + shift, val, yerr=[np.nan_to_num(val - lo), np.nan_to_num(hi - val)], fmt="none",
                    ecolor="black", capsize=3)  # fmt: skip
    sb = by.get(("window_max_ns", before, "max", "p99"))
    sa = next((c for c in rep.comparisons if c.target.metric == "window_max_ns" and c.target.policy == after), None)
    if sb:
        ax.axhline(sb.target.value / 1e6, color="black", ls="--", lw=1, label="seed before p99")
    if sa:
        ax.axhline(sa.target.value / 1e6, color="black", ls=":", lw=1, label="seed after p99")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the legend above the bars
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("worst CPU's p99 of the 30-s maximum (ms)")
    ax.set_title("Before/after the series, per scenario")
    ax.grid(True, axis="y", which="both", color="0.9")
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    fig.suptitle(f"{rep.name}: model vs seed 004 ({rep.scenarios[0].samples:,} fan-outs; counts over {rep.duration_h:.3g} h)")
    return save(fig, folder, "figure", dpi=130)
