"""Targets files: observed values of the model's metrics and the parameters to fit.

The format is described in :mod:`mcsmp.fidelity.calibrate`; :mod:`mcsmp.fidelity.reproduce`
reads the same files (``params/seed-targets.yaml``) to put the model beside the measurements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RawParams, apply_override, build_params, load_raw
from ..errors import ParamError, UserError
from ..metrics import MetricRow, quantile_label

__all__ = [
    "METHODS",
    "FitKey",
    "Settings",
    "Target",
    "TargetsFile",
    "load_targets",
    "match_rows",
    "model_row",
    "residual",
    "with_target_quantiles",
]

METHODS = ("least_squares", "nelder-mead")


# --------------------------------------------------------------------------------------------
# The targets file


@dataclass(frozen=True)
class Target:
    """One observed value of a metric row."""

    metric: str
    policy: str
    cpu: str  # a CPU id, "all" or "max"
    statistic: str  # a MetricRow statistic label: "p50", "count[1e+06,1e+07)", "mean"
    value: float
    weight: float = 1.0
    tolerance: float = 0.2  # relative, for reproduce's "met" column only
    where: str = ""  # "file:line" of the entry, for messages

    @property
    def is_count(self) -> bool:
        return self.metric == "exceed_count" or self.statistic.startswith("count")

    @property
    def label(self) -> str:
        pol = f" {self.policy}" if self.policy else ""
        cpu = {"all": "", "max": " worst-cpu"}.get(self.cpu, f" cpu{self.cpu}")
        return f"{self.metric}{pol}{cpu} {self.statistic}"


@dataclass(frozen=True)
class FitKey:
    """A parameter to fit: dotted key, bounds, log scaling, optional start value.

    ``also`` lists further keys tied to the same value (``key: [a, b, c]`` in the targets file):
    e.g. one lock-contention rate written into several per-CPU entries.
    """

    key: str
    low: float
    high: float
    log: bool = False
    start: float | None = None
    also: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.also)

    @property
    def label(self) -> str:
        return self.key if not self.also else f"{self.key} (+{len(self.also)} tied)"

    def to_unit(self, x: float) -> float:
        if self.log:
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Settings:
    """Optimiser settings (the targets file's ``settings:``; command-line options override)."""

    samples: int | None = None  # fan-outs per evaluation (None: the parameter file's)
    method: str = "least_squares"
    max_evals: int = 300
    diff_step: float = 0.02  # forward-difference step in the unit space (least_squares)
    xtol: float = 1e-3  # stop when the unit-space step is this small
    ftol: float = 1e-4  # stop when the cost changes relatively less than this
    pool_senders: bool = False  # symmetric boxes only: every CPU group uses the pooled histograms


@dataclass(frozen=True)
class TargetsFile:
    source: str
    targets: tuple[Target, ...]
    fit: tuple[FitKey, ...]
    settings: Settings


def _loc(raw: RawParams, path: str) -> tuple[str, int | None, int | None]:
    return raw.locate(path)


def _fail(raw: RawParams, path: str, message: str) -> None:
    source, line, col = _loc(raw, path)
    raise ParamError(message, path=path, source=source, line=line, column=col)


def _num(raw: RawParams, path: str, v: Any, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        _fail(raw, path, f"expected a finite number, got {v!r}")
    if positive and float(v) <= 0:
        _fail(raw, path, f"must be > 0, got {v!r}")
    return float(v)


def load_targets(path: str | Path) -> TargetsFile:
    """Read and validate a targets file; errors name ``file:line:col`` and the key."""
    raw = load_raw(path)
    data = raw.data
    for key in data:
        if key not in ("targets", "fit", "settings"):
            _fail(raw, str(key), "unknown key; known keys: targets, fit, settings")
    items = data.get("targets")
    if not isinstance(items, list) or not items:
        _fail(raw, "targets", "expected a non-empty list of {metric, policy, cpu, quantile|bin|statistic, value}")
    targets = []
    for i, item in enumerate(items):
        p = f"targets[{i}]"
        if not isinstance(item, dict):
            _fail(raw, p, "expected a mapping {metric, policy, cpu, quantile|bin|statistic, value}")
        known = ("metric", "policy", "cpu", "quantile", "bin", "statistic", "value", "weight", "tolerance")
        for key in item:
            if key not in known:
                _fail(raw, f"{p}.{key}", f"unknown key; known keys: {', '.join(known)}")
        for key in ("metric", "value"):
            if key not in item:
                _fail(raw, p, f"missing key {key!r}")
        given = [k for k in ("quantile", "bin", "statistic") if k in item]
        if len(given) != 1:
            _fail(raw, p, "give exactly one of quantile, bin, statistic")
        if "quantile" in item:
            q = _num(raw, f"{p}.quantile", item["quantile"])
            if not 0 < q < 1:
                _fail(raw, f"{p}.quantile", f"must be in (0, 1), got {q:g}")
            stat = quantile_label(q)
        elif "bin" in item:
            b = item["bin"]
            if not isinstance(b, list) or len(b) != 2:
                _fail(raw, f"{p}.bin", f"expected [low, high] in ns, got {b!r}")
            lo, hi = (_num(raw, f"{p}.bin[{j}]", b[j]) for j in range(2))
            stat = f"count[{lo:.3g},{hi:.3g})"
        else:
            stat = str(item["statistic"])
        cpu = item.get("cpu", "all")
        if isinstance(cpu, bool) or not (
            (isinstance(cpu, int) and cpu >= 0) or cpu in ("all", "max")
        ):
            _fail(raw, f"{p}.cpu", f"expected a CPU id, 'all' or 'max', got {cpu!r}")
        value = _num(raw, f"{p}.value", item["value"])
        if value < 0:
            _fail(raw, f"{p}.value", f"must be >= 0, got {value:g}")
        metric = str(item["metric"])
        is_count = metric == "exceed_count" or stat.startswith("count")
        if value == 0 and not is_count:
            _fail(raw, f"{p}.value", "a time target must be > 0 (its error is a log-ratio)")
        weight = _num(raw, f"{p}.weight", item.get("weight", 1.0))
        if weight < 0:
            _fail(raw, f"{p}.weight", f"must be >= 0, got {weight:g}")
        tol = _num(raw, f"{p}.tolerance", item.get("tolerance", 0.2), positive=True)
        src, line, _ = _loc(raw, p)
        targets.append(
            Target(metric, str(item.get("policy", "") or ""), str(cpu), stat, value, weight, tol,
                   f"{src}:{line}" if line else src)
        )  # fmt: skip

    fits = []
    for i, item in enumerate(data.get("fit") or []):
        p = f"fit[{i}]"
        if not isinstance(item, dict):
            _fail(raw, p, "expected a mapping {key, low, high, log?, start?}")
        for key in item:
            if key not in ("key", "low", "high", "log", "start"):
                _fail(raw, f"{p}.{key}", "unknown key; known keys: key, low, high, log, start")
        for key in ("key", "low", "high"):
            if key not in item:
                _fail(raw, p, f"missing key {key!r}")
        lo, hi = _num(raw, f"{p}.low", item["low"]), _num(raw, f"{p}.high", item["high"])
        if not lo < hi:
            _fail(raw, f"{p}.high", f"must be > low ({lo:g}), got {hi:g}")
        log = item.get("log", False)
        if not isinstance(log, bool):
            _fail(raw, f"{p}.log", f"expected true or false, got {log!r}")
        if log and lo <= 0:
            _fail(raw, f"{p}.low", "must be > 0 with log: true")
        start = None
        if item.get("start") is not None:
            start = _num(raw, f"{p}.start", item["start"])
            if not lo <= start <= hi:
                _fail(raw, f"{p}.start", f"must lie in [{lo:g}, {hi:g}], got {start:g}")
        key = item["key"]
        if isinstance(key, list):
            if not key or not all(isinstance(k, str) and k for k in key):
                _fail(raw, f"{p}.key", f"expected a dotted key or a non-empty list of them, got {key!r}")
            names = tuple(key)
        elif isinstance(key, str) and key:
            names = (key,)
        else:
            _fail(raw, f"{p}.key", f"expected a dotted key or a non-empty list of them, got {key!r}")
        fits.append(FitKey(names[0], lo, hi, log, start, names[1:]))
    keys = [k for f in fits for k in f.keys]
    if len(set(keys)) != len(keys):
        _fail(raw, "fit", "each key may be fitted once")

    st = data.get("settings") or {}
    if not isinstance(st, dict):
        _fail(raw, "settings", "expected a mapping")
    fields_ = {f.name for f in dataclasses.fields(Settings)}
    for key in st:
        if key not in fields_:
            _fail(raw, f"settings.{key}", f"unknown key; known keys: {', '.join(sorted(fields_))}")
    settings = Settings()
    for key, v in st.items():
        if key == "method":
            if v not in METHODS:
                _fail(raw, "settings.method", f"must be one of {', '.join(METHODS)}, got {v!r}")
        elif key == "pool_senders":
            if not isinstance(v, bool):
                _fail(raw, "settings.pool_senders", f"expected true or false, got {v!r}")
        elif key in ("samples", "max_evals"):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                _fail(raw, f"settings.{key}", f"expected a positive integer, got {v!r}")
        else:
            v = _num(raw, f"settings.{key}", v, positive=True)
        settings = dataclasses.replace(settings, **{key: v})
    return TargetsFile(str(path), tuple(targets), tuple(fits), settings)


# --------------------------------------------------------------------------------------------
# Reading model values for targets


def match_rows(rows: Sequence[MetricRow], target: Target) -> list[MetricRow]:
    """The metric rows a target refers to (several for ``cpu: max``)."""
    out = [
        r for r in rows
        if r.metric == target.metric and r.statistic == target.statistic
        and (r.policy == target.policy or (not target.policy and not r.policy))
    ]  # fmt: skip
    if target.cpu == "max":
        return [r for r in out if r.cpu != "all"]
    return [r for r in out if r.cpu == target.cpu]


def model_row(rows: Sequence[MetricRow], target: Target) -> MetricRow:
    """The single row for a target (the largest value for ``cpu: max``); UserError if missing."""
    found = match_rows(rows, target)
    if not found:
        have = sorted({(r.metric, r.policy, r.cpu) for r in rows if r.metric == target.metric})[:6]
        hint = f" (rows of {target.metric}: {have}...)" if have else f" (no metric {target.metric!r})"
        raise UserError(f"{target.where}: target {target.label!r} matches no model row{hint}")
    return max(found, key=lambda r: r.value)


def with_target_quantiles(raw: RawParams, targets: Sequence[Target]) -> RawParams:
    """``raw`` with every quantile the targets name added to ``report.quantiles`` (analytic only)."""
    params = build_params(raw)
    have = set(params.report.quantiles)
    need = set()
    for t in targets:
        if t.statistic.startswith("p") and t.statistic[1:].replace(".", "", 1).isdigit():
            need.add(float(t.statistic[1:]) / 100.0)
    missing = {q for q in need if not any(abs(q - h) < 1e-12 for h in have)}
    if not missing:
        return raw
    return apply_override(raw, "report.quantiles", sorted(have | missing), origin="targets (quantiles)")


def residual(target: Target, model_value: float) -> float:
    """Weighted residual: log-ratio for times, Poisson deviance residual for counts (module doc)."""
    w = target.weight
    if target.is_count:
        k = target.value
        mu = max(model_value, 1e-12) if math.isfinite(model_value) else 1e12
        dev = 2.0 * (mu - k + (k * math.log(k / mu) if k > 0 else 0.0))
        return w * math.copysign(math.sqrt(max(dev, 0.0)), mu - k)
    v = target.value
    m = model_value if math.isfinite(model_value) and model_value > 0 else (v * 1e6 if model_value > 0 else v * 1e-6)
    m = min(max(m, v * 1e-6), v * 1e6)
    return w * math.log(m / v)
