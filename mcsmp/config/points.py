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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ParamError
from .build import MAX_FILE_BYTES, RawParams, apply_override, build_params, split_path
from .schema import Params
from .yamlio import MAX_ITEMS, parse_yaml

__all__ = ["MAX_POINTS", "Point", "PointSource", "expand", "parse_set", "split_top_level"]

MAX_POINTS = 4096  # sweep points of one file (grid × zip × --set axes)


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
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key or not value.strip():
        raise ParamError(f"expected key=value, got {text!r}", source="--set")
    if split_path(_set_key(key))[0] == "sweep":
        raise ParamError("the sweep is not set with --set; --set KEY=V1,V2 adds a sweep axis", path=key, source="--set")
    if len(value) > MAX_FILE_BYTES:
        raise ParamError(f"the value is longer than the limit of {MAX_FILE_BYTES:,} characters", path=key, source="--set")
    parts = split_top_level(value)
    if len(parts) > MAX_ITEMS:
        raise ParamError(f"{len(parts):,} values, over the limit of {MAX_ITEMS:,} for one axis", path=key, source="--set")
    values = []
    for part in parts:
        if not part.strip():
            raise ParamError(f"an empty value in {value!r} (values are separated by single commas)", path=key, source="--set")
        parsed, _ = parse_yaml(part, f"--set {key}")
        values.append(parsed)
    return key, values


def _set_key(key: str) -> str:
    try:
        split_path(key)
    except ParamError as exc:
        raise ParamError(exc.message, source="--set") from None
    return key


def expand(raw: RawParams, sets: Sequence[str] = ()) -> list[Point]:
    """All sweep points of ``raw`` with the ``--set`` overrides, validated, in order."""
    sweep = raw.data.get("sweep") or {}
    if not isinstance(sweep, dict):
        _fail(raw, "sweep", "expected a mapping with grid and/or zip")
    for key in sweep:
        if key not in ("grid", "zip"):
            _fail(raw, f"sweep.{key}", "unknown key; known keys: grid, zip")
    axes_of: dict[str, dict[str, list[Any]]] = {}
    for kind in ("grid", "zip"):
        axes = sweep.get(kind) or {}
        if not isinstance(axes, dict):
            _fail(raw, f"sweep.{kind}", "expected a mapping of dotted key -> list of values")
        for key, values in axes.items():
            where = f"sweep.{kind}.{key}"
            if not isinstance(key, str):
                _fail(raw, where, f"the key is a dotted key path, got {key!r}")
            if not isinstance(values, list) or not values:
                _fail(raw, where, "expected a non-empty list of values")
            try:
                if split_path(key)[0] == "sweep":
                    raise ParamError("the sweep cannot sweep itself")
                apply_override(raw, key, values[0])
            except ParamError as exc:
                _fail(raw, where, exc.message)
        axes_of[kind] = dict(axes)
    grid, zipped = axes_of["grid"], axes_of["zip"]
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        _fail(raw, "sweep.zip", f"zip lists must have equal lengths, got {sorted(lengths)}")

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
            apply_override(base, key, values[0])  # the key path is checked before any point
            grid[key] = values
    n_zip = next(iter(lengths)) if zipped else 1
    n_points = math.prod(len(v) for v in grid.values()) * n_zip
    if n_points > MAX_POINTS:
        axes = ", ".join(f"{k} ({len(v)})" for k, v in [*grid.items(), *zipped.items()])
        _fail(raw, "sweep", f"{n_points:,} sweep points, over the limit of {MAX_POINTS:,} (axes: {axes})")
    # The sweep itself is not part of any point's parameters.
    base = apply_override(base, "sweep", {"grid": {}, "zip": {}}, origin=raw.source)

    grid_axes = [[(k, v) for v in vals] for k, vals in grid.items()]
    zip_rows = [tuple((k, vals[i]) for k, vals in zipped.items()) for i in range(n_zip)]
    source = PointSource(raw, tuple(sets))
    points: list[Point] = []
    seen: dict[str, Point] = {}
    for index, (combo, zrow) in enumerate(itertools.product(itertools.product(*grid_axes), zip_rows)):
        overrides = tuple(combo) + tuple(zrow)
        point_raw = base
        for key, value in overrides:
            origin = _origin(raw, key)
            point_raw = apply_override(point_raw, key, value, origin=origin)
        params = dataclasses.replace(build_params(point_raw), origin=source)
        pt = Point(index, overrides, params)
        first = seen.setdefault(pt.id, pt)
        if first is not pt:
            key = next(k for (k, a), (_, b) in zip(first.overrides, overrides, strict=True) if a != b)
            _fail_axis(raw, key, f"sweep points [{first.index}] and [{index}] have the same point id {pt.id}: "
                       "they differ only in keys that do not change the simulated model (name, seed, samples, "
                       "report.*); sweep those in separate runs, or re-render report settings with `mcsmp report`")
        points.append(pt)
    return points


def _fail_axis(raw: RawParams, key: str, message: str) -> None:
    for kind in ("grid", "zip"):
        if raw.locate(f"sweep.{kind}.{key}")[1] is not None:
            _fail(raw, f"sweep.{kind}.{key}", message)
    raise ParamError(message, path=key, source="--set")


def _fail(raw: RawParams, path: str, message: str) -> None:
    src, line, col = raw.locate(path)
    raise ParamError(message, path=path, source=src, line=line, column=col)


def _origin(raw: RawParams, key: str) -> str:
    for kind in ("grid", "zip"):
        src, line, _ = raw.locate(f"sweep.{kind}.{key}")
        if line is not None:
            return f"{src}:{line} (sweep.{kind}.{key})"
    return "--set"
