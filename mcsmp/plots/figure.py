"""Figure plumbing shared by every figure of mcsmp: styles, axes in ns, one atomic writer.

Every figure is readable in greyscale: each policy has its own line style and marker as well as
its colour (:data:`POLICY_STYLE`). Figures use matplotlib's object API (no pyplot, no global
backend state) and are written by :func:`save` / :func:`paged` only: PNG for screens, PDF for
papers, atomically, without time stamps (the same figure gives the same bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_open

__all__ = [
    "PANELS_PER_PAGE",
    "PLACEMENT_STYLE",
    "POLICY_STYLE",
    "RC",
    "ROWS_PER_PAGE",
    "WINDOW_PANELS_PER_PAGE",
    "fmt_ns",
    "new_figure",
    "ns_axis",
    "paged",
    "save",
    "style_of",
]

# Page bounds: every page of every figure stays readable (at most ~3000 px a side at savefig.dpi).
PANELS_PER_PAGE = 36  # panels (points) per page of the CCDFs and rows of quantiles_by_point
WINDOW_PANELS_PER_PAGE = 16  # per-CPU window-maximum panels per page (4 x 4)
ROWS_PER_PAGE = 6  # rows of panels (one per group of points) of quantiles_vs_cpus and placement_cost

POLICY_STYLE: dict[str, dict[str, Any]] = {
    "preempt_off": {"color": "#000000", "linestyle": "-", "marker": "o", "label": "preempt_off (mainline)"},
    "preemptible_wait": {"color": "#0072B2", "linestyle": "--", "marker": "s", "label": "preemptible_wait (series)"},
    "atomic_alloc": {"color": "#D55E00", "linestyle": "-.", "marker": "^", "label": "atomic_alloc (v1)"},
    "cpus_read_lock": {"color": "#999999", "linestyle": ":", "marker": "D", "label": "cpus_read_lock"},
}
PLACEMENT_STYLE: dict[str, dict[str, Any]] = {
    "percpu": {"color": "#000000", "linestyle": "-", "marker": "o"},
    "stack": {"color": "#D55E00", "linestyle": "--", "marker": "^"},
    "stack_aligned": {"color": "#0072B2", "linestyle": ":", "marker": "s"},
}
RC = {
    "font.size": 8, "axes.titlesize": 7, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "lines.linewidth": 1.2, "lines.markersize": 4, "axes.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "axes.grid": True, "grid.linewidth": 0.3,
    "grid.color": "#cccccc", "figure.dpi": 100, "savefig.dpi": 200, "pdf.fonttype": 42,
}  # fmt: skip


def style_of(policy: str) -> dict[str, Any]:
    return dict(POLICY_STYLE.get(policy, {"color": "#444444", "linestyle": "-", "marker": "x", "label": policy}))


def fmt_ns(v: float, _pos: Any = None) -> str:
    if v <= 0 or not math.isfinite(v):
        return ""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if v >= scale:
            return f"{v / scale:g} {unit}"
    return f"{v:g} ns"


class _NsFormatter:
    """Tick labels in ns/µs/ms/s; minor ticks are labelled when the axis spans few decades."""

    def __init__(self, minor: bool) -> None:
        self.minor = minor
        self.axis: Any = None

    def set_axis(self, axis: Any) -> None:
        self.axis = axis

    def __call__(self, v: float, _pos: Any = None) -> str:
        if self.minor and self.axis is not None:
            lo, hi = sorted(self.axis.get_view_interval())
            ratio = hi / lo if lo > 0 else math.inf
            mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9)) if v > 0 else 0
            if ratio > 30 or (ratio > 4 and mantissa not in (2, 5)):
                return ""
        return fmt_ns(v)


def ns_axis(axis: Any, minor: bool = True) -> None:
    """Log axis in ns with unit labels; minor ticks (labelled on short ranges) unless ``minor`` is off."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.set_major_locator(LogLocator(base=10, numticks=12))
    major = _NsFormatter(False)
    major.set_axis(axis)
    axis.set_major_formatter(FuncFormatter(major))
    if not minor:  # many panels spanning many decades: minor ticks cost seconds to draw
        axis.set_minor_locator(NullLocator())
        return
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    fmt = _NsFormatter(True)
    fmt.set_axis(axis)
    axis.set_minor_formatter(FuncFormatter(fmt))


def new_figure(width: float, height: float, **kwargs: Any) -> Any:
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches with an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)  # rendered by Agg (PNG); the PDF goes through matplotlib's PDF backend
    return fig


def save(
    fig: Any, folder: Path, stem: str, pdf_pages: Any | None = None, png_suffix: str = "",
    formats: Sequence[str] = ("png", "pdf"), dpi: float | None = None,
) -> list[Path]:  # fmt: skip
    """Save ``fig`` as ``folder/stem.png`` (and into an open multi-page PDF, or as its own PDF),
    atomically; ``formats`` may leave the PDF out, ``dpi`` overrides ``savefig.dpi``."""
    out = []
    kw: dict[str, Any] = {} if dpi is None else {"dpi": dpi}
    if "png" in formats:
        path = folder / f"{stem}{png_suffix}.png"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", metadata={"Software": None}, **kw)
        out.append(path)
    if pdf_pages is not None:
        pdf_pages.savefig(fig)
    elif "pdf" in formats:
        path = folder / f"{stem}.pdf"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="pdf", metadata={"CreationDate": None, "Creator": "mcsmp"}, **kw)
        out.append(path)
    return out


def paged(folder: Path, stem: str, points: Sequence[Any], make: Any, per_page: int = PANELS_PER_PAGE) -> list[Path]:
    """Pages of ``per_page`` items (points or groups); ``make(page)`` returns a figure: one PNG,
    or numbered PNGs ``stem-1.png``, ``stem-2.png``, … and one multi-page PDF."""
    from matplotlib.backends.backend_pdf import PdfPages

    pages = [points[i : i + per_page] for i in range(0, len(points), per_page)]
    out: list[Path] = []
    pdf_path = folder / f"{stem}.pdf"
    with atomic_open(pdf_path, "wb") as f, PdfPages(f, metadata={"CreationDate": None, "Creator": "mcsmp"}) as pdf:
        for number, page in enumerate(pages, 1):
            out += save(make(page), folder, stem, pdf, f"-{number}" if len(pages) > 1 else "")
    out.append(pdf_path)
    return out
