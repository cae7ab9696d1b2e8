"""The distribution families of a parameter file: one entry each (docs/model.md §8).

A family named in a parameter file (``dist: lognormal``) is a :class:`Family`: the key sets it
accepts and how it turns them into *components*. Every family is flattened into a finite mixture
of components from seven :class:`Basic` families (``const``, ``uniform``, ``exponential``,
``lognormal``, ``gamma``, ``weibull``, ``pareto``), each a row kind of the kernels' table with an
exact mean, CDF and partial expectation here and two samplers in :mod:`mcsmp.kernels.sampling`:

- ``choice`` is a mixture of constants;
- ``empirical`` (a piecewise-linear inverse CDF) is a mixture of uniforms, one per segment, with
  weight equal to the segment's probability;
- ``mixture`` components are flattened recursively, multiplying weights.

This makes sampling, the exact mean and exact equilibrium-residual sampling uniform: the
residual of a mixture picks a component with probability proportional to ``weight × mean``
(length bias), then draws a length-biased length of that component and multiplies it by an
independent uniform (docs/model.md §1 step 7).

Adding a family: an entry in :data:`FAMILIES` (and, for a new basic one, in :data:`BASIC`, its
code in :mod:`mcsmp.kernels.codes` and its two draws in :mod:`mcsmp.kernels.sampling`).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats

from .._util import read_bounded
from ..errors import ParamError
from ..kernels.codes import (
    FAM_CONST,
    FAM_EXPONENTIAL,
    FAM_GAMMA,
    FAM_LOGNORMAL,
    FAM_PARETO,
    FAM_UNIFORM,
    FAM_WEIBULL,
)
from ..kernels.rng import EXPONENTIAL_MAX, NORMAL_MAX

__all__ = [
    "BASIC", "DRAW_LIMIT", "FAMILIES", "MAX_EMPIRICAL_BYTES", "MAX_NUMBER", "Basic", "Component", "Family",
    "number", "parse_components",
]  # fmt: skip

MAX_NUMBER = 1e18  # any number of a parameter file (a time in ns: 31 years)
# The largest value any draw (or equilibrium-residual draw) may reach: its square times 1e16 (more
# than the draws summed over a point: 1e11 fan-outs × 8192 targets × a few terms) stays finite.
DRAW_LIMIT = 1e140
MAX_EMPIRICAL_BYTES = 16 << 20  # an empirical distribution's file


# --------------------------------------------------------------------------------------------
# Basic families: the kernels' row kinds, with their exact maths


@dataclass(frozen=True)
class Basic:
    """A basic family with natural parameters ``a``, ``b`` (see :class:`Component`).

    ``columns(a, b)`` gives the table's ``(A, B, C)`` columns that the kernel's samplers read
    (``C`` holds what the length-biased draw needs, precomputed).
    """

    name: str
    mean: Callable[[float, float], float]
    cdf: Callable[[np.ndarray, float, float], np.ndarray]
    # E[X; X ≤ x] for x ≥ 0, given the family's mean (partial_expectation adds x (1 − F(x)))
    truncated_mean: Callable[[np.ndarray, float, float, float], np.ndarray] | None
    columns: Callable[[float, float], tuple[float, float, float]] = lambda a, b: (a, b, 0.0)


def _uniform_pe(x: np.ndarray, a: float, b: float) -> np.ndarray:
    inside = a + (x - a) - (x - a) ** 2 / (2.0 * (b - a))
    return np.where(x <= a, x, np.where(x >= b, 0.5 * (a + b), inside))


def _lognormal_tm(x: np.ndarray, a: float, b: float, mean: float) -> np.ndarray:
    # E[X; X ≤ x] = E[X] Φ((ln x − μ − σ²)/σ)
    with np.errstate(divide="ignore"):
        lx = np.log(x)
    return mean * stats.norm.cdf((lx - a - b * b) / b)


def _pareto_tm(x: np.ndarray, a: float, b: float, mean: float) -> np.ndarray:
    # E[X; X ≤ x] = α s/(α−1) (1 − (s/x)^(α−1)) for x ≥ s
    with np.errstate(divide="ignore"):
        return np.where(x > a, mean * (1.0 - (a / np.maximum(x, a)) ** (b - 1.0)), 0.0)


BASIC: dict[int, Basic] = {
    FAM_CONST: Basic("const", lambda a, b: a, lambda x, a, b: (x >= a).astype(float), None),
    FAM_UNIFORM: Basic("uniform", lambda a, b: 0.5 * (a + b),
                       lambda x, a, b: np.clip((x - a) / (b - a), 0.0, 1.0), None),
    FAM_EXPONENTIAL: Basic("exponential", lambda a, b: a, lambda x, a, b: stats.expon.cdf(x, scale=a), None),
    FAM_LOGNORMAL: Basic("lognormal", lambda a, b: math.exp(a + 0.5 * b * b),
                         lambda x, a, b: stats.lognorm.cdf(x, s=b, scale=math.exp(a)), _lognormal_tm,
                         lambda a, b: (a, b, a + b * b)),  # length-biased lognormal: mu + sigma²
    FAM_GAMMA: Basic("gamma", lambda a, b: a * b, lambda x, a, b: stats.gamma.cdf(x, a, scale=b),
                     lambda x, a, b, mean: mean * stats.gamma.cdf(x, a + 1.0, scale=b)),
    # E[X; X ≤ x] = scale Γ(1+1/k) P(1+1/k, (x/scale)^k)
    FAM_WEIBULL: Basic("weibull", lambda a, b: a * math.gamma(1.0 + 1.0 / b),
                       lambda x, a, b: stats.weibull_min.cdf(x, b, scale=a),
                       lambda x, a, b, mean: mean * special.gammainc(1.0 + 1.0 / b, (x / a) ** b),
                       lambda a, b: (a, b, 1.0 / b)),
    # pareto: alpha > 1 enforced at parse time; the table holds 1/alpha and 1/(alpha − 1)
    # (the length-biased Pareto(alpha − 1))
    FAM_PARETO: Basic("pareto", lambda a, b: a * b / (b - 1.0), lambda x, a, b: stats.pareto.cdf(x, b, scale=a),
                      _pareto_tm, lambda a, b: (a, 1.0 / b, 1.0 / (b - 1.0))),
}  # fmt: skip


def _gamma_log_max(shape: float) -> float:
    """ln of the largest draw of the kernels' standard gamma(shape) (Marsaglia–Tsang for shape >= 1:
    b (1 + c x)³ with b = shape − 1/3, c = 1/√(9b), x <= NORMAL_MAX; at most 2 EXPONENTIAL_MAX below)."""
    if shape < 1.0:
        return math.log(2.0 * EXPONENTIAL_MAX)
    b = shape - 1.0 / 3.0
    return max(math.log(b) + 3.0 * math.log1p(NORMAL_MAX / math.sqrt(9.0 * b)), math.log(2.0 * EXPONENTIAL_MAX))


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


# ln of the largest value a component's draw or equilibrium-residual draw can take in the kernels
# (mcsmp.kernels.sampling; the residual's length-biased draw is the larger one).
LOG_MAX_DRAW: dict[int, Callable[[float, float], float]] = {
    FAM_CONST: lambda a, b: _log(a),
    FAM_UNIFORM: lambda a, b: _log(b),
    FAM_EXPONENTIAL: lambda a, b: _log(a) + math.log(EXPONENTIAL_MAX),
    FAM_LOGNORMAL: lambda a, b: a + b * b + b * NORMAL_MAX,
    FAM_GAMMA: lambda a, b: _log(b) + _gamma_log_max(a + 1.0),
    FAM_WEIBULL: lambda a, b: _log(a) + max(math.log(EXPONENTIAL_MAX), _gamma_log_max(1.0 + 1.0 / b)) / b,
    FAM_PARETO: lambda a, b: _log(a) + EXPONENTIAL_MAX / (b - 1.0),
}


@dataclass(frozen=True)
class Component:
    """One basic-family component: ``a``, ``b`` are the family's natural parameters.

    const(value=a); uniform(low=a, high=b); exponential(mean=a); lognormal(mu=a, sigma=b);
    gamma(shape=a, scale=b); weibull(scale=a, shape=b); pareto(scale=a, alpha=b).
    """

    weight: float
    family: int
    a: float
    b: float = 0.0

    @property
    def mean(self) -> float:
        return BASIC[self.family].mean(self.a, self.b)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return BASIC[self.family].cdf(x, self.a, self.b)

    def partial_expectation(self, x: np.ndarray) -> np.ndarray:
        """``E[min(X, x)] = ∫₀ˣ (1 − F(t)) dt``, in closed form (used for residual CDFs)."""
        f, a, b = self.family, self.a, self.b
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        if f == FAM_CONST:
            return np.minimum(x, a)
        if f == FAM_UNIFORM:
            return _uniform_pe(x, a, b)
        if f == FAM_EXPONENTIAL:
            return a * -np.expm1(-x / a)
        truncated = BASIC[f].truncated_mean
        assert truncated is not None
        return truncated(x, a, b, self.mean) + x * (1.0 - self.cdf(x))


# --------------------------------------------------------------------------------------------
# Families of the parameter file


def number(value: Any, path: str, *, positive: bool = False, nonneg: bool = True) -> float:
    """A finite number (``>= 0`` unless ``nonneg=False``; ``> 0`` with ``positive``) or a ParamError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"expected a number, got {value!r}", path=path)
    v = float(value)
    if not math.isfinite(v):
        raise ParamError(f"must be finite, got {value!r}", path=path)
    if abs(v) > MAX_NUMBER:
        raise ParamError(f"must be at most {MAX_NUMBER:g} in magnitude (the limit of any number), got {value!r}", path=path)
    if positive and v <= 0:
        raise ParamError(f"must be > 0, got {value!r}", path=path)
    if nonneg and v < 0:
        raise ParamError(f"must be >= 0 (a time or count cannot be negative), got {value!r}", path=path)
    return v


@dataclass(frozen=True)
class _Spec:
    """A family's mapping being parsed: its keys, where it is, and where files are found."""

    spec: Mapping[str, Any]
    path: str
    base_dir: Path | None

    def num(self, key: str, **kw: bool) -> float:
        return number(self.spec[key], f"{self.path}.{key}", **kw)


@dataclass(frozen=True)
class Family:
    """A ``dist:`` name: the key sets it accepts and its parser into components."""

    forms: tuple[tuple[str, ...], ...]
    parse: Callable[[_Spec], list[Component]]


def _uniform(s: _Spec) -> list[Component]:
    low, high = s.num("low"), s.num("high")
    if high < low:
        raise ParamError(f"high ({high}) must be >= low ({low})", path=f"{s.path}.high")
    if high == low:
        return [Component(1.0, FAM_CONST, low)]
    return [Component(1.0, FAM_UNIFORM, low, high)]


def _lognormal(s: _Spec) -> list[Component]:
    if "median" in s.spec:
        median, sigma = s.num("median", positive=True), s.num("sigma")
        mu = math.log(median)
    else:
        mean, cv = s.num("mean", positive=True), s.num("cv")
        sigma = math.sqrt(math.log1p(cv * cv))
        mu = math.log(mean) - 0.5 * sigma * sigma
    if sigma == 0:
        return [Component(1.0, FAM_CONST, math.exp(mu))]
    return [Component(1.0, FAM_LOGNORMAL, mu, sigma)]


def _gamma(s: _Spec) -> list[Component]:
    mean, cv = s.num("mean", positive=True), s.num("cv", positive=True)
    shape = 1.0 / (cv * cv) if cv * cv > 0 else math.inf
    return [Component(1.0, FAM_GAMMA, shape, mean / shape)]


def _pareto(s: _Spec) -> list[Component]:
    alpha = s.num("alpha", positive=True)
    if alpha <= 1.0:
        raise ParamError(
            f"must be > 1 (the mean and the equilibrium residual need a finite mean), got {alpha}",
            path=f"{s.path}.alpha",
        )
    return [Component(1.0, FAM_PARETO, s.num("scale", positive=True), alpha)]


def _choice(s: _Spec) -> list[Component]:
    path, values = s.path, s.spec["values"]
    if not isinstance(values, list) or not values:
        raise ParamError("expected a non-empty list of numbers", path=f"{path}.values")
    vals = [number(v, f"{path}.values[{i}]") for i, v in enumerate(values)]
    if "weights" in s.spec:
        weights = s.spec["weights"]
        if not isinstance(weights, list) or len(weights) != len(vals):
            raise ParamError(f"expected a list of {len(vals)} weights (one per value)", path=f"{path}.weights")
        ws = [number(w, f"{path}.weights[{i}]") for i, w in enumerate(weights)]
    else:
        ws = [1.0] * len(vals)
    if sum(ws) <= 0:
        raise ParamError("weights must not all be zero", path=f"{path}.weights")
    total = sum(ws)
    return [Component(w / total, FAM_CONST, v) for v, w in zip(vals, ws, strict=True)]


def _empirical(s: _Spec) -> list[Component]:
    path = s.path
    if "quantiles" in s.spec:
        table = s.spec["quantiles"]
        if not isinstance(table, Mapping) or len(table) < 2:
            raise ParamError("expected a mapping {q: value} with at least two points", path=f"{path}.quantiles")
        pts = sorted((number(q, f"{path}.quantiles"), number(v, f"{path}.quantiles.{q}")) for q, v in table.items())
        qs = np.array([p[0] for p in pts])
        xs = np.array([p[1] for p in pts])
        where = f"{path}.quantiles"
    else:
        xs = _load_column(s.spec, path, s.base_dir)
        qs = np.linspace(0.0, 1.0, len(xs))
        where = f"{path}.file"
    return _empirical_components(qs, xs, where)


def _empirical_components(qs: np.ndarray, xs: np.ndarray, path: str) -> list[Component]:
    if qs[0] != 0.0 or qs[-1] != 1.0:
        raise ParamError("the quantile table must include 0 (or a minimum) and 1.0", path=path)
    if np.any(qs < 0) or np.any(qs > 1):
        raise ParamError("quantile levels must be in [0, 1]", path=path)
    if np.any(np.diff(qs) <= 0):
        raise ParamError("quantile levels must be distinct", path=path)
    if np.any(np.diff(xs) < 0):
        raise ParamError("values must not decrease as the quantile level grows", path=path)
    out = []
    for q0, q1, x0, x1 in zip(qs[:-1], qs[1:], xs[:-1], xs[1:], strict=True):
        w = float(q1 - q0)
        if x1 == x0:
            out.append(Component(w, FAM_CONST, float(x0)))
        else:
            out.append(Component(w, FAM_UNIFORM, float(x0), float(x1)))
    return out


def _load_column(spec: Mapping[str, Any], path: str, base_dir: Path | None) -> np.ndarray:
    name = spec["file"]
    if not isinstance(name, str):
        raise ParamError("expected a file name", path=f"{path}.file")
    file = Path(name)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    column = spec.get("column", 0)
    try:
        text = read_bounded(file, MAX_EMPIRICAL_BYTES).decode("utf-8-sig")
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r and not r[0].lstrip().startswith("#")]
    except OSError as exc:
        raise ParamError(f"cannot read {file}: {exc.strerror}", path=f"{path}.file") from None
    except (ValueError, csv.Error) as exc:  # not a regular file, too large, not UTF-8, a NUL
        raise ParamError(f"cannot read {file!r}: {' '.join(str(exc).split())[:120]}", path=f"{path}.file") from None
    if not rows:
        raise ParamError(f"{file} has no rows", path=f"{path}.file")
    header = rows[0]
    if isinstance(column, str):
        if column not in header:
            raise ParamError(f"{file} has no column {column!r} (columns: {', '.join(header)})", path=f"{path}.column")
        idx, body = header.index(column), rows[1:]
    elif isinstance(column, int) and not isinstance(column, bool) and column >= 0:
        idx = column
        try:
            float(header[idx])
            body = rows
        except (ValueError, IndexError):
            body = rows[1:]
    else:
        raise ParamError("expected a column name or a non-negative index", path=f"{path}.column")
    values = []
    for lineno, row in enumerate(body, start=2 if body is not rows else 1):
        try:
            v = float(row[idx])
        except (ValueError, IndexError):
            raise ParamError(f"{file}:{lineno}: not a number in column {column!r}", path=f"{path}.file") from None
        if not math.isfinite(v) or v < 0:
            raise ParamError(f"{file}:{lineno}: values must be finite and >= 0, got {v}", path=f"{path}.file")
        values.append(v)
    if len(values) < 2:
        raise ParamError(f"{file} needs at least two values", path=f"{path}.file")
    return np.sort(np.array(values))


def _mixture(s: _Spec) -> list[Component]:
    path, comps_spec = s.path, s.spec["components"]
    if not isinstance(comps_spec, list) or not comps_spec:
        raise ParamError("expected a non-empty list of components", path=f"{path}.components")
    out: list[Component] = []
    for i, cs in enumerate(comps_spec):
        cpath = f"{path}.components[{i}]"
        if not isinstance(cs, Mapping) or "weight" not in cs:
            raise ParamError("each component is a mapping with 'weight' and a 'dist'", path=cpath)
        w = number(cs["weight"], f"{cpath}.weight")
        sub = parse_components(cs, cpath, s.base_dir, extra=("weight",))
        # A nested mixture's own weights are relative: normalise them so that this component
        # carries exactly weight w (its parser already rejects all-zero weights).
        sub_total = sum(c.weight for c in sub)
        for c in sub:
            out.append(Component(w * c.weight / sub_total, c.family, c.a, c.b))
    if sum(c.weight for c in out) <= 0:
        raise ParamError("component weights must not all be zero", path=f"{path}.components")
    return out


FAMILIES: dict[str, Family] = {
    "const": Family((("value",),), lambda s: [Component(1.0, FAM_CONST, s.num("value"))]),
    "uniform": Family((("low", "high"),), _uniform),
    "exponential": Family((("mean",),), lambda s: [Component(1.0, FAM_EXPONENTIAL, s.num("mean", positive=True))]),
    "lognormal": Family((("median", "sigma"), ("mean", "cv")), _lognormal),
    "gamma": Family((("mean", "cv"),), _gamma),
    "weibull": Family((("scale", "shape"),), lambda s: [
        Component(1.0, FAM_WEIBULL, s.num("scale", positive=True), s.num("shape", positive=True))]),
    "pareto": Family((("scale", "alpha"),), _pareto),
    "choice": Family((("values", "weights"), ("values",)), _choice),
    "empirical": Family((("quantiles",), ("file", "column"), ("file",)), _empirical),
    "mixture": Family((("components",),), _mixture),
}  # fmt: skip


def _check_keys(spec: Mapping[str, Any], family: str, path: str, extra: tuple[str, ...] = ()) -> None:
    given = set(spec) - {"dist"} - set(extra)
    forms = FAMILIES[family].forms
    for form in forms:
        if given == set(form):
            return
    allowed = " or ".join("{" + ", ".join(f) + "}" for f in forms)
    unknown = sorted(given - {k for f in forms for k in f}, key=str)
    if unknown:
        raise ParamError(f"unknown key {unknown[0]!r} for dist {family}; expected {allowed}", path=f"{path}.{unknown[0]}")
    raise ParamError(f"dist {family} takes {allowed}, got {{{', '.join(sorted(map(str, given)))}}}", path=path)


def parse_components(
    spec: Mapping[str, Any], path: str, base_dir: Path | None, extra: tuple[str, ...] = ()
) -> list[Component]:
    """The components of a ``{dist: …}`` mapping (weights not yet normalised)."""
    family = spec.get("dist")
    if family is None:
        raise ParamError("a distribution mapping needs a 'dist' key", path=path)
    if not isinstance(family, str) or family not in FAMILIES:
        close = difflib.get_close_matches(str(family), list(FAMILIES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamError(f"unknown distribution {family!r}{hint}; known: {', '.join(FAMILIES)}", path=f"{path}.dist")
    _check_keys(spec, family, path, extra)
    try:
        comps = FAMILIES[family].parse(_Spec(spec, path, base_dir))
    except (OverflowError, ZeroDivisionError):
        comps = [Component(1.0, FAM_CONST, math.nan)]  # refused just below
    for c in comps:
        _check_sampleable(c, family, path)
    return comps


def _check_sampleable(c: Component, family: str, path: str) -> None:
    """Every value a kernel reads or draws from ``c`` is finite and at most :data:`DRAW_LIMIT`."""
    ok = all(math.isfinite(x) for x in (c.weight, c.a, c.b))
    if ok:
        with np.errstate(all="ignore"):
            try:
                ok = LOG_MAX_DRAW[c.family](c.a, c.b) <= math.log(DRAW_LIMIT)
                ok = ok and math.isfinite(c.mean) and all(map(math.isfinite, BASIC[c.family].columns(c.a, c.b)))
            except (OverflowError, ZeroDivisionError, ValueError):
                ok = False
    if not ok:
        raise ParamError(f"dist {family}: these parameters cannot be sampled in float64 (a draw or its "
                         f"equilibrium residual could exceed {DRAW_LIMIT:g} or overflow)", path=path)  # fmt: skip
