"""A validated distribution (:class:`Dist`) and its packing into the kernels' table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..kernels.codes import FAM_CONST, N_COLS
from .families import BASIC, Component, number, parse_components

__all__ = ["Dist", "constant", "encode", "parse_dist"]


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
        return len(self.components) == 1 and self.components[0].family == FAM_CONST

    def cdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.sum([c.weight * c.cdf(x) for c in self.components], axis=0)

    def residual_cdf(self, x: Any) -> np.ndarray:
        """Equilibrium-residual CDF ``F_e(x) = (1/m) ∫₀ˣ (1 − F(t)) dt`` (docs/model.md §1 step 7)."""
        x = np.asarray(x, dtype=float)
        pe = np.sum([c.weight * c.partial_expectation(x) for c in self.components], axis=0)
        return pe / self.mean


def constant(value: float) -> Dist:
    return Dist(spec=float(value), components=(Component(1.0, FAM_CONST, float(value)),))


def parse_dist(value: Any, path: str, base_dir: Path | None = None) -> Dist:
    """Validate a distribution spec (a number or a ``{dist: …}`` mapping) into a :class:`Dist`."""
    if not isinstance(value, Mapping):
        return constant(number(value, path))
    comps = parse_components(value, path, base_dir)
    total = sum(c.weight for c in comps)
    comps = [Component(c.weight / total, c.family, c.a, c.b) for c in comps if c.weight > 0]
    return Dist(spec=_canonical(value), components=tuple(comps))


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def encode(dists: Sequence[Dist]) -> tuple[np.ndarray, np.ndarray]:
    """Pack distributions into ``(index, table)`` arrays for the compiled kernels.

    ``index[i] = (first row, row count)`` of distribution ``i`` in ``table``; each row is
    ``(family, cumulative weight, cumulative length-biased weight, a, b, c)`` with ``a, b, c``
    from the family's :attr:`~mcsmp.dists.families.Basic.columns`. Cumulative weights end
    exactly at 1.0 so a search with ``u < 1`` always lands inside the range.
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
            a, b, extra = BASIC[c.family].columns(c.a, c.b)
            rows.append([float(c.family), float(cum), float(lcum), a, b, extra])
    table = np.array(rows, dtype=np.float64).reshape(-1, N_COLS)
    return index, table
