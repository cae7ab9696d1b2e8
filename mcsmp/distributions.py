"""Distributions of the parameter file (MODEL.md §8): parsing, exact means, CDFs, kernel encoding.

Every distribution is flattened into a finite mixture of *components* from seven basic families
(``const``, ``uniform``, ``exponential``, ``lognormal``, ``gamma``, ``weibull``, ``pareto``):

- ``choice`` is a mixture of constants;
- ``empirical`` (a piecewise-linear inverse CDF) is a mixture of uniforms, one per segment, with
  weight equal to the segment's probability;
- ``mixture`` components are flattened recursively, multiplying weights.

This makes sampling, the exact mean and exact equilibrium-residual sampling uniform: the
residual of a mixture picks a component with probability proportional to ``weight × mean``
(length bias), then draws a length-biased length of that component and multiplies it by an
independent uniform (MODEL.md §1 step 7).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats

from .errors import ParamError

__all__ = [
    "FAMILY_CODES",
    "Component",
    "Dist",
    "encode",
    "parse_dist",
]

# Codes shared with mcsmp.kernels.sampling (column FAMILY of the component table).
CONST, UNIFORM, EXPONENTIAL, LOGNORMAL, GAMMA, WEIBULL, PARETO = range(7)
FAMILY_CODES = {
    "const": CONST,
    "uniform": UNIFORM,
    "exponential": EXPONENTIAL,
    "lognormal": LOGNORMAL,
    "gamma": GAMMA,
    "weibull": WEIBULL,
    "pareto": PARETO,
}

# Columns of the encoded component table.
COL_FAMILY, COL_CUM_WEIGHT, COL_CUM_RESIDUAL_WEIGHT, COL_A, COL_B, COL_C = range(6)
N_COLS = 6

_FAMILY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "const": (("value",),),
    "uniform": (("low", "high"),),
    "exponential": (("mean",),),
    "lognormal": (("median", "sigma"), ("mean", "cv")),
    "gamma": (("mean", "cv"),),
    "weibull": (("scale", "shape"),),
    "pareto": (("scale", "alpha"),),
    "choice": (("values", "weights"), ("values",)),
    "empirical": (("quantiles",), ("file", "column"), ("file",)),
    "mixture": (("components",),),
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
        f, a, b = self.family, self.a, self.b
        if f == CONST:
            return a
        if f == UNIFORM:
            return 0.5 * (a + b)
        if f == EXPONENTIAL:
            return a
        if f == LOGNORMAL:
            return math.exp(a + 0.5 * b * b)
        if f == GAMMA:
            return a * b
        if f == WEIBULL:
            return a * math.gamma(1.0 + 1.0 / b)
        return a * b / (b - 1.0)  # pareto, alpha > 1 enforced at parse time

    def cdf(self, x: np.ndarray) -> np.ndarray:
        f, a, b = self.family, self.a, self.b
        if f == CONST:
            return (x >= a).astype(float)
        if f == UNIFORM:
            return np.clip((x - a) / (b - a), 0.0, 1.0)
        if f == EXPONENTIAL:
            return stats.expon.cdf(x, scale=a)
        if f == LOGNORMAL:
            return stats.lognorm.cdf(x, s=b, scale=math.exp(a))
        if f == GAMMA:
            return stats.gamma.cdf(x, a, scale=b)
        if f == WEIBULL:
            return stats.weibull_min.cdf(x, b, scale=a)
        return stats.pareto.cdf(x, b, scale=a)

    def partial_expectation(self, x: np.ndarray) -> np.ndarray:
        """``E[min(X, x)] = ∫₀ˣ (1 − F(t)) dt``, in closed form (used for residual CDFs)."""
        f, a, b = self.family, self.a, self.b
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        if f == CONST:
            return np.minimum(x, a)
        if f == UNIFORM:
            inside = a + (x - a) - (x - a) ** 2 / (2.0 * (b - a))
            return np.where(x <= a, x, np.where(x >= b, 0.5 * (a + b), inside))
        if f == EXPONENTIAL:
            return a * -np.expm1(-x / a)
        if f == LOGNORMAL:
            # E[min(X,x)] = E[X] Φ((ln x − μ − σ²)/σ) + x (1 − F(x))
            with np.errstate(divide="ignore"):
                lx = np.log(x)
            return self.mean * stats.norm.cdf((lx - a - b * b) / b) + x * (1.0 - self.cdf(x))
        if f == GAMMA:
            return self.mean * stats.gamma.cdf(x, a + 1.0, scale=b) + x * (1.0 - self.cdf(x))
        if f == WEIBULL:
            # E[X; X ≤ x] = scale Γ(1+1/k) P(1+1/k, (x/scale)^k)
            z = (x / a) ** b
            return self.mean * special.gammainc(1.0 + 1.0 / b, z) + x * (1.0 - self.cdf(x))
        # pareto: E[X; X≤x] = α s/(α−1) (1 − (s/x)^(α−1)) for x ≥ s
        with np.errstate(divide="ignore"):
            part = np.where(x > a, self.mean * (1.0 - (a / np.maximum(x, a)) ** (b - 1.0)), 0.0)
        return part + x * (1.0 - self.cdf(x))


@dataclass(frozen=True)
class Dist:
    """A validated distribution: the user's canonical spec and its flattened components."""

    spec: Any  # canonical form (a number or a dict), for printing and hashing
    components: tuple[Component, ...]

    @property
    def mean(self) -> float:
        return float(sum(c.weight * c.mean for c in self.components))

    @property
    def is_const(self) -> bool:
        return len(self.components) == 1 and self.components[0].family == CONST

    def cdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.sum([c.weight * c.cdf(x) for c in self.components], axis=0)

    def residual_cdf(self, x: Any) -> np.ndarray:
        """Equilibrium-residual CDF ``F_e(x) = (1/m) ∫₀ˣ (1 − F(t)) dt`` (MODEL.md §1 step 7)."""
        x = np.asarray(x, dtype=float)
        pe = np.sum([c.weight * c.partial_expectation(x) for c in self.components], axis=0)
        return pe / self.mean


def constant(value: float) -> Dist:
    return Dist(spec=float(value), components=(Component(1.0, CONST, float(value)),))


def _number(value: Any, path: str, *, positive: bool = False, nonneg: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"expected a number, got {value!r}", path=path)
    v = float(value)
    if not math.isfinite(v):
        raise ParamError(f"must be finite, got {value!r}", path=path)
    if positive and v <= 0:
        raise ParamError(f"must be > 0, got {value!r}", path=path)
    if nonneg and v < 0:
        raise ParamError(f"must be >= 0 (a time or count cannot be negative), got {value!r}", path=path)
    return v


def _check_keys(spec: Mapping[str, Any], family: str, path: str, extra: tuple[str, ...] = ()) -> None:
    given = set(spec) - {"dist"} - set(extra)
    forms = _FAMILY_KEYS[family]
    for form in forms:
        if given == set(form):
            return
    allowed = " or ".join("{" + ", ".join(f) + "}" for f in forms)
    unknown = sorted(given - {k for f in forms for k in f})
    if unknown:
        raise ParamError(f"unknown key {unknown[0]!r} for dist {family}; expected {allowed}", path=f"{path}.{unknown[0]}")
    raise ParamError(f"dist {family} takes {allowed}, got {{{', '.join(sorted(given))}}}", path=path)


def parse_dist(value: Any, path: str, base_dir: Path | None = None) -> Dist:
    """Validate a distribution spec (a number or a ``{dist: …}`` mapping) into a :class:`Dist`."""
    if not isinstance(value, Mapping):
        v = _number(value, path)
        return constant(v)
    comps = _parse_components(value, path, base_dir, extra=())
    total = sum(c.weight for c in comps)
    comps = tuple(Component(c.weight / total, c.family, c.a, c.b) for c in comps if c.weight > 0)
    return Dist(spec=_canonical(value), components=comps)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _parse_components(
    spec: Mapping[str, Any], path: str, base_dir: Path | None, extra: tuple[str, ...]
) -> list[Component]:
    family = spec.get("dist")
    if family is None:
        raise ParamError("a distribution mapping needs a 'dist' key", path=path)
    if family not in _FAMILY_KEYS:
        import difflib

        close = difflib.get_close_matches(str(family), list(_FAMILY_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamError(
            f"unknown distribution {family!r}{hint}; known: {', '.join(_FAMILY_KEYS)}", path=f"{path}.dist"
        )
    _check_keys(spec, family, path, extra)

    def num(key: str, **kw: bool) -> float:
        return _number(spec[key], f"{path}.{key}", **kw)

    if family == "const":
        return [Component(1.0, CONST, num("value"))]
    if family == "uniform":
        low, high = num("low"), num("high")
        if high < low:
            raise ParamError(f"high ({high}) must be >= low ({low})", path=f"{path}.high")
        if high == low:
            return [Component(1.0, CONST, low)]
        return [Component(1.0, UNIFORM, low, high)]
    if family == "exponential":
        return [Component(1.0, EXPONENTIAL, num("mean", positive=True))]
    if family == "lognormal":
        if "median" in spec:
            median, sigma = num("median", positive=True), num("sigma")
            mu = math.log(median)
        else:
            mean, cv = num("mean", positive=True), num("cv")
            sigma = math.sqrt(math.log1p(cv * cv))
            mu = math.log(mean) - 0.5 * sigma * sigma
        if sigma == 0:
            return [Component(1.0, CONST, math.exp(mu))]
        return [Component(1.0, LOGNORMAL, mu, sigma)]
    if family == "gamma":
        mean, cv = num("mean", positive=True), num("cv", positive=True)
        shape = 1.0 / (cv * cv)
        return [Component(1.0, GAMMA, shape, mean / shape)]
    if family == "weibull":
        return [Component(1.0, WEIBULL, num("scale", positive=True), num("shape", positive=True))]
    if family == "pareto":
        alpha = num("alpha", positive=True)
        if alpha <= 1.0:
            raise ParamError(
                f"must be > 1 (the mean and the equilibrium residual need a finite mean), got {alpha}",
                path=f"{path}.alpha",
            )
        return [Component(1.0, PARETO, num("scale", positive=True), alpha)]
    if family == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ParamError("expected a non-empty list of numbers", path=f"{path}.values")
        vals = [_number(v, f"{path}.values[{i}]") for i, v in enumerate(values)]
        if "weights" in spec:
            weights = spec["weights"]
            if not isinstance(weights, list) or len(weights) != len(vals):
                raise ParamError(
                    f"expected a list of {len(vals)} weights (one per value)", path=f"{path}.weights"
                )
            ws = [_number(w, f"{path}.weights[{i}]") for i, w in enumerate(weights)]
        else:
            ws = [1.0] * len(vals)
        if sum(ws) <= 0:
            raise ParamError("weights must not all be zero", path=f"{path}.weights")
        total = sum(ws)
        return [Component(w / total, CONST, v) for v, w in zip(vals, ws, strict=True)]
    if family == "empirical":
        if "quantiles" in spec:
            table = spec["quantiles"]
            if not isinstance(table, Mapping) or len(table) < 2:
                raise ParamError("expected a mapping {q: value} with at least two points", path=f"{path}.quantiles")
            pts = sorted(
                (_number(q, f"{path}.quantiles"), _number(v, f"{path}.quantiles.{q}")) for q, v in table.items()
            )
            qs = np.array([p[0] for p in pts])
            xs = np.array([p[1] for p in pts])
            where = f"{path}.quantiles"
        else:
            xs = _load_column(spec, path, base_dir)
            qs = np.linspace(0.0, 1.0, len(xs))
            where = f"{path}.file"
        return _empirical_components(qs, xs, where)
    # mixture
    comps_spec = spec["components"]
    if not isinstance(comps_spec, list) or not comps_spec:
        raise ParamError("expected a non-empty list of components", path=f"{path}.components")
    out: list[Component] = []
    for i, cs in enumerate(comps_spec):
        cpath = f"{path}.components[{i}]"
        if not isinstance(cs, Mapping) or "weight" not in cs:
            raise ParamError("each component is a mapping with 'weight' and a 'dist'", path=cpath)
        w = _number(cs["weight"], f"{cpath}.weight")
        sub = _parse_components(cs, cpath, base_dir, extra=("weight",))
        # A nested mixture's own weights are relative: normalise them so that this component
        # carries exactly weight w (its parser already rejects all-zero weights).
        sub_total = sum(c.weight for c in sub)
        for c in sub:
            out.append(Component(w * c.weight / sub_total, c.family, c.a, c.b))
    if sum(c.weight for c in out) <= 0:
        raise ParamError("component weights must not all be zero", path=f"{path}.components")
    return out


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
            out.append(Component(w, CONST, float(x0)))
        else:
            out.append(Component(w, UNIFORM, float(x0), float(x1)))
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
        with open(file, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    except OSError as exc:
        raise ParamError(f"cannot read {file}: {exc.strerror}", path=f"{path}.file") from None
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


def encode(dists: Sequence[Dist]) -> tuple[np.ndarray, np.ndarray]:
    """Pack distributions into ``(index, table)`` arrays for the compiled kernels.

    ``index[i] = (first row, row count)`` of distribution ``i`` in ``table``; each row is
    ``(family, cumulative weight, cumulative length-biased weight, a, b, c)``. Cumulative
    weights end exactly at 1.0 so a search with ``u < 1`` always lands inside the range.
    """
    index = np.zeros((len(dists), 2), dtype=np.int64)
    rows: list[list[float]] = []
    for i, d in enumerate(dists):
        index[i] = (len(rows), len(d.components))
        w = np.array([c.weight for c in d.components])
        lw = np.array([c.weight * c.mean for c in d.components])
        cw = np.cumsum(w) / w.sum()
        clw = np.cumsum(lw) / lw.sum() if lw.sum() > 0 else cw.copy()
        cw[-1] = clw[-1] = 1.0
        for c, cum, lcum in zip(d.components, cw, clw, strict=True):
            a, b, extra = c.a, c.b, 0.0
            if c.family == LOGNORMAL:
                extra = a + b * b  # length-biased lognormal: mu + sigma²
            elif c.family == WEIBULL:
                extra = 1.0 / b
            elif c.family == PARETO:
                extra = 1.0 / (b - 1.0)  # length-biased Pareto(alpha − 1)
                b = 1.0 / b
            rows.append([float(c.family), float(cum), float(lcum), a, b, extra])
    table = np.array(rows, dtype=np.float64).reshape(-1, N_COLS)
    return index, table
