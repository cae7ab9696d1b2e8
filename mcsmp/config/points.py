"""Sweep points: ``sweep.grid`` × ``sweep.zip`` × command-line overrides, in a fixed order.

- ``sweep.grid``: every combination of the listed values of dotted keys (the last key varies
  fastest, in file order);
- ``sweep.zip``: lists of equal length advanced together (one more, innermost axis);
- ``--set key=value`` replaces a value everywhere (and removes that key from the sweep);
  ``--set key=v1,v2`` (Hydra style) adds a grid axis. Commas inside ``[]``/``{}`` do not split.

Each point is validated on its own, so an error names the key and where its value came from.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ParamError
from .build import RawParams, apply_override, build_params
from .schema import Params
from .yamlio import parse_yaml

__all__ = ["Point", "PointSource", "expand", "parse_set", "split_top_level"]


@dataclass(frozen=True)
class PointSource:
    """A parameter file and its ``--set`` overrides: everything :func:`expand` needs again."""

    raw: RawParams
    sets: tuple[str, ...] = ()

    def points(self) -> list[Point]:
        return expand(self.raw, self.sets)


@dataclass(frozen=True)
class Point:
    index: int
    overrides: tuple[tuple[str, Any], ...]  # the swept keys and their values at this point
    params: Params

    @property
    def id(self) -> str:
        return self.params.point_id

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.overrides) or "(base)"


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, braces or quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_set(text: str) -> tuple[str, list[Any]]:
    """``key=v`` → (key, [v]); ``key=v1,v2`` → (key, [v1, v2]); values read as YAML."""
    if "=" not in text:
        raise ParamError(f"expected key=value, got {text!r}", source="--set")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise ParamError(f"expected key=value, got {text!r}", source="--set")
    values = []
    for part in split_top_level(value):
        parsed, _ = parse_yaml(part, f"--set {key}")
        values.append(parsed)
    return key, values


def expand(raw: RawParams, sets: Sequence[str] = ()) -> list[Point]:
    """All sweep points of ``raw`` with the ``--set`` overrides, validated, in order."""
    sweep = raw.data.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise ParamError("expected a mapping with grid and/or zip", path="sweep", source=raw.source)
    for key in sweep:
        if key not in ("grid", "zip"):
            line = raw.locate(f"sweep.{key}")
            raise ParamError("unknown key; known keys: grid, zip", path=f"sweep.{key}",
                             source=line[0], line=line[1], column=line[2])  # fmt: skip
    grid = dict(sweep.get("grid") or {})
    zipped = dict(sweep.get("zip") or {})
    for kind, axes in (("grid", grid), ("zip", zipped)):
        if not isinstance(axes, dict):
            raise ParamError("expected a mapping of dotted key -> list", path=f"sweep.{kind}", source=raw.source)
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                src, line, col = raw.locate(f"sweep.{kind}.{key}")
                raise ParamError("expected a non-empty list of values", path=f"sweep.{kind}.{key}",
                                 source=src, line=line, column=col)  # fmt: skip
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        src, line, col = raw.locate("sweep.zip")
        raise ParamError(f"zip lists must have equal lengths, got {sorted(lengths)}", path="sweep.zip",
                         source=src, line=line, column=col)  # fmt: skip

    base = raw
    for text in sets:
        key, values = parse_set(text)
        for axes in (grid, zipped):  # the --set value replaces the axis and every axis below it
            for axis in [a for a in axes if a == key or a.startswith((key + ".", key + "["))]:
                del axes[axis]
            above = [a for a in axes if key.startswith((a + ".", a + "["))]
            if above:
                raise ParamError(f"{key} lies inside the sweep axis {above[0]}, whose values would replace it; "
                                 f"set {above[0]} instead", source="--set")  # fmt: skip
        if len(values) == 1:
            base = apply_override(base, key, values[0])
        else:
            grid[key] = values
    # The sweep itself is not part of any point's parameters.
    base = apply_override(base, "sweep", {"grid": {}, "zip": {}}, origin=raw.source)

    grid_axes = [[(k, v) for v in vals] for k, vals in grid.items()]
    n_zip = next(iter(lengths)) if zipped else 1
    zip_rows = [tuple((k, vals[i]) for k, vals in zipped.items()) for i in range(n_zip)]
    source = PointSource(raw, tuple(sets))
    points = []
    for index, (combo, zrow) in enumerate(itertools.product(itertools.product(*grid_axes), zip_rows)):
        overrides = tuple(combo) + tuple(zrow)
        point_raw = base
        for key, value in overrides:
            origin = _origin(raw, key)
            point_raw = apply_override(point_raw, key, value, origin=origin)
        params = dataclasses.replace(build_params(point_raw), origin=source)
        points.append(Point(index, overrides, params))
    return points


def _origin(raw: RawParams, key: str) -> str:
    for kind in ("grid", "zip"):
        src, line, _ = raw.locate(f"sweep.{kind}.{key}")
        if line is not None:
            return f"{src}:{line} (sweep.{kind}.{key})"
    return "--set"
