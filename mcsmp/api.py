"""The public Python API (re-exported by :mod:`mcsmp`); the command line is built on it.

>>> import mcsmp
>>> params = mcsmp.load("params/smoke.yaml")            # a path, or a preset name ("16core")
>>> r = mcsmp.run(params, samples=20000)
>>> r.to_frame().head()                                  # the tidy layout of summary.csv
>>> x, ccdf = r.ccdf("preempt_off_ns", "preempt_off")   # Pr(P > x)

A file with a sweep loads as its first point; :func:`points` lists every point and
``run(params, point=i)`` runs point ``i``. :func:`sweep` writes a whole sweep folder, as
``mcsmp sweep`` does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Params, Point, expand, load_raw, raw_from_dict
from .errors import UserError
from .metrics import MetricRow, compute_metrics
from .sim import Histogram, PointResult, run_point

__all__ = ["PRESET_DIRS", "Result", "SystemPoint", "load", "load_on_machine", "path_of", "points", "presets", "run", "run_system", "sweep", "system_sweep"]

# Where parameter files are found by name: ./params/ first (a checkout or a user's own folder),
# then the presets shipped inside the package (mcsmp/presets/, the repository's params/).
PRESET_DIRS = (Path("params"), Path(__file__).resolve().parent / "presets")


def presets() -> dict[str, Path]:
    """Parameter files that :func:`load` finds by name, name -> path (``*-targets.yaml`` files
    hold measurements for ``mcsmp reproduce``/``calibrate``, not parameters, and are left out).
    The machine presets of ``machines/`` load by their own name too (``mcsmp run haswell-4c``)."""
    found: dict[str, Path] = {}
    for folder in PRESET_DIRS:
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("machines/*.yaml")):
                if not path.stem.endswith("-targets"):
                    found.setdefault(path.stem, path)
    return found


def path_of(path_or_name: str | Path) -> Path:
    """A parameter file's path: ``path_or_name`` itself, or the preset of that name."""
    path = Path(path_or_name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path  # a path (load_raw reports a missing one)
    named = presets().get(str(path_or_name))
    if named is None:
        known = ", ".join(presets()) or "none"
        raise UserError(f"{path_or_name}: no such parameter file or preset (presets: {known})")
    return named


def _set_texts(overrides: Mapping[str, Any] | Iterable[str]) -> tuple[str, ...]:
    """``--set`` texts: ``"key=v"`` / ``"key=v1,v2"`` strings, or a mapping of single values."""
    if isinstance(overrides, Mapping):
        return tuple(f"{k}={json.dumps(v)}" for k, v in overrides.items())  # JSON is YAML: one value each
    return tuple(overrides)


def load(path_or_name: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> Params:
    """Load, override and validate a parameter file (a path, or a preset name such as ``16core``).

    ``overrides`` are ``--set`` texts (``"machine.cpus=64"``, ``"machine.cpus=16,64"`` for a sweep
    axis) or a mapping ``{"machine.cpus": 64}``. Every sweep point is validated; the first one is
    returned, and it remembers the others (:func:`points`, ``run(..., point=i)``).
    """
    return expand(load_raw(path_of(path_or_name)), _set_texts(overrides))[0].params


def points(params: Params) -> list[Point]:
    """Every sweep point of the file ``params`` was loaded from (just ``params`` otherwise)."""
    if params.origin is None:
        return expand(raw_from_dict(params.resolved, "parameters"))
    return list(params.origin.points())


def _point(params: Params, point: int | str, samples: int | None, seed: int | None) -> Point:
    extra = tuple(f"{k}={v}" for k, v in (("samples", samples), ("seed", seed)) if v is not None)
    if params.origin is None:
        pts = expand(raw_from_dict(params.resolved, "parameters"), extra)
    else:
        pts = expand(params.origin.raw, params.origin.sets + extra)
    for pt in pts:
        if point in (pt.index, str(pt.index), pt.id):
            return pt
    raise UserError(f"point {point}: no such sweep point (indices 0..{len(pts) - 1} or ids; see `mcsmp check`)")


@dataclass
class Result:
    """One simulated point: its parameters, histograms and metric rows."""

    point: Point
    result: PointResult
    rows: list[MetricRow]
    seconds: float

    @property
    def params(self) -> Params:
        return self.point.params

    def histogram(self, metric: str, policy: str = "") -> Histogram:
        """A sampled metric's histogram (``preempt_off_ns`` and ``hotplug_block_ns`` per policy)."""
        return self.result.histogram(metric, policy)

    def ccdf(self, metric: str, policy: str = "") -> tuple[Any, Any]:
        """``(x, Pr(X > x))`` of a sampled metric at the histogram's bucket edges (ns)."""
        from .plots.data import ccdf

        return ccdf(self.histogram(metric, policy))

    def row(self, metric: str, statistic: str, policy: str = "", cpu: str = "all") -> MetricRow:
        """One metric row, e.g. ``row("preempt_off_ns", "p99", "preempt_off")``."""
        for r in self.rows:
            if (r.metric, r.statistic, r.policy, r.cpu) == (metric, statistic, policy, cpu):
                return r
        raise KeyError(f"no row {metric} {statistic} policy={policy!r} cpu={cpu!r}")

    def records(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows in the tidy layout of ``summary.csv`` (the same writer's rows)."""
        from .io.tables import PointRows, summary_header, summary_rows

        swept = [k for k, _ in self.point.overrides]
        pt = PointRows(self.point.index, self.point.id, dict(self.point.overrides), self.params, self.rows)
        return summary_header(swept), summary_rows(pt, swept)

    def to_frame(self) -> Any:
        """A pandas DataFrame in the tidy layout of ``summary.csv`` (``pip install 'mcsmp[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise UserError("Result.to_frame() needs pandas: pip install 'mcsmp[pandas]'") from None
        header, rows = self.records()
        return pd.DataFrame(rows, columns=header)

    def text(self) -> str:
        """The text report of ``mcsmp run``."""
        from .io.report import text_report

        return text_report(self.rows)


def run(
    params: Params,
    samples: int | None = None,
    seed: int | None = None,
    point: int | str = 0,
    threads: int | None = None,
) -> Result:
    """Simulate one sweep point of ``params`` (default: the first) and compute every metric.

    ``samples`` and ``seed`` override the file's; ``threads`` defaults to every core
    (``MCSMP_THREADS``). The result is bit-identical for any number of threads.
    """
    pt = _point(params, point, samples, seed)
    started = time.perf_counter()
    result = run_point(pt.params, threads=threads)
    rows = compute_metrics(result)
    return Result(pt, result, rows, time.perf_counter() - started)


def sweep(
    params: Params,
    out: str | Path | None = None,
    *,
    samples: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    resume: bool = False,
    force: bool = False,
    dask: str | Any | None = None,
    shard: str | None = None,
    plots: bool = True,
    progress: bool | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Simulate every sweep point of ``params`` into a folder (default ``results/<name>/``) and
    render its tables and figures, as ``mcsmp sweep`` does; returns a :class:`~mcsmp.sweeps.SweepRun`.
    ``options`` (e.g. the command line's) are recorded in ``meta.json``."""
    from .sweeps import sweep as sweep_folder

    extra = tuple(f"{k}={v}" for k, v in (("samples", samples), ("seed", seed)) if v is not None)
    source = params.origin
    pts = expand(source.raw, source.sets + extra) if source else expand(raw_from_dict(params.resolved, "parameters"), extra)
    return sweep_folder(
        pts, out=out, resume=resume, force=force, dask=dask, shard=shard, threads=threads, plots=plots,
        progress=progress, params_file=source.raw.source if source else None,
        sets=list(source.sets + extra) if source else list(extra), options=dict(options or {}),
    )  # fmt: skip


def load_on_machine(machine: str | Path, path_or_name: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> Params:
    """:func:`load` with a machine description underneath: ``machine`` (a YAML file such as
    ``params/machines/milan-72.yaml``) is included below the parameter file, whose own keys win."""
    import tempfile

    machine_path, params_path = Path(path_of(machine)).resolve(), Path(path_of(path_or_name)).resolve()
    if not machine_path.exists():
        raise UserError(f"{machine}: no such machine file")
    with tempfile.TemporaryDirectory(prefix="mcsmp-machine-") as tmp:
        combined = Path(tmp) / params_path.name
        combined.write_text(f"include: [{json.dumps(str(machine_path))}, {json.dumps(str(params_path))}]\n")
        return expand(load_raw(combined), _set_texts(overrides))[0].params


@dataclass
class SystemPoint:
    """One sweep point of the whole-machine simulation (``mcsmp system``)."""

    point: Point
    result: Any  # mcsmp.system.SystemResult

    def rows(self) -> list[dict[str, Any]]:
        """One row of figures per policy (:func:`mcsmp.system.report.policy_row`)."""
        from .system.report import policy_row

        label = {k: v for k, v in self.point.overrides}
        return [policy_row(self.result, p, label) for p in self.result.runs]


def run_system(params: Params, threads: int | None = None, seed: int | None = None) -> list[SystemPoint]:
    """Simulate every sweep point of ``params`` with the whole-machine discrete-event simulation
    (docs/system.md); bit-identical for any number of ``threads``."""
    from .system import simulate_system

    return [SystemPoint(pt, simulate_system(pt.params, threads=threads)) for pt in _system_points(params, seed)]


def _system_points(params: Params, seed: int | None) -> list[Point]:
    extra = tuple(f"seed={seed}" for _ in [0] if seed is not None)
    source = params.origin
    return expand(source.raw, source.sets + extra) if source else expand(raw_from_dict(params.resolved, "parameters"), extra)


def system_sweep(
    params: Params,
    out: str | Path | None = None,
    *,
    seed: int | None = None,
    threads: int | None = None,
    resume: bool = False,
    force: bool = False,
    dask: str | Any | None = None,
    shard: str | None = None,
    plots: bool = True,
    progress: bool | None = None,
    params_file: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Simulate every sweep point of ``params`` with the whole-machine simulation into a folder
    (default ``results/<name>/``), as ``mcsmp system -o DIR`` does (docs/system.md §7); returns a
    :class:`~mcsmp.sweeps.system.SystemSweepRun`. Bit-identical for any threads, Dask workers,
    shards (merged with ``mcsmp merge``) or resumes."""
    from .sweeps.system import system_sweep as sweep_folder

    source = params.origin
    return sweep_folder(
        _system_points(params, seed), out=out, resume=resume, force=force, dask=dask, shard=shard, threads=threads,
        plots=plots, progress=progress, params_file=params_file or (source.raw.source if source else None),
        sets=list(source.sets) if source else [], options=dict(options or {}),
    )  # fmt: skip
