"""Kernel inputs (issue 13 §2): a NaN-safe bucket index and validated sampler parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcsmp.dists import parse_dist
from mcsmp.dists.families import DRAW_LIMIT, LOG_MAX_DRAW
from mcsmp.errors import ParamError, UserError
from mcsmp.sim.engine import MAX_THREADS, default_threads
from mcsmp.sim.histogram import Layout
from tests.test_stats import compiled_index


@pytest.mark.parametrize("bits", [1, 7, 12])
def test_bucket_index_is_in_range_for_any_float(bits: int) -> None:
    layout = Layout(bits)
    odd = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, -1.0, -1e300, 5e-324, 1.7e308])
    for index in (compiled_index(layout, odd), layout.index(odd)):
        assert list(index) == [layout.overflow, layout.overflow, layout.overflow, 0, 0, 0, 0, 0, layout.overflow]
    # every finite value >= 0 keeps the index of the bucket [edges[i], edges[i+1]) it lies in
    finite = np.concatenate(([0.0, 0.5, 1.0], layout.edges[1:-1], np.nextafter(layout.edges[2:-1], 0), [1e300]))
    expect = np.searchsorted(layout.edges, finite, side="right") - 1
    assert np.array_equal(compiled_index(layout, finite), expect)
    assert np.array_equal(layout.index(finite), expect)


@pytest.mark.parametrize("spec", [
    {"dist": "pareto", "scale": 1000, "alpha": 1.0000001},
    {"dist": "pareto", "scale": 1000, "alpha": 1.05},
    {"dist": "lognormal", "mean": 1000, "cv": 1e200},
    {"dist": "lognormal", "median": 1000, "sigma": 40},
    {"dist": "gamma", "mean": 1000, "cv": 1e-200},
    {"dist": "weibull", "scale": 1000, "shape": 0.001},
    {"dist": "choice", "values": [1, 2], "weights": [1e308, 1e308]},
    {"dist": "mixture", "components": [{"weight": 1, "dist": "pareto", "scale": 1, "alpha": 1.001}]},
])  # fmt: skip
def test_unsampleable_parameters_are_refused(spec: dict) -> None:
    with pytest.raises(ParamError):
        parse_dist(spec, "x")


@pytest.mark.parametrize("spec", [
    {"dist": "pareto", "scale": 100000, "alpha": 3.4},
    {"dist": "pareto", "scale": 1000, "alpha": 1.2},
    {"dist": "lognormal", "mean": 1000, "cv": 1e17},
    {"dist": "gamma", "mean": 1000, "cv": 1e-9},
    {"dist": "weibull", "scale": 1000, "shape": 0.1},
])  # fmt: skip
def test_accepted_parameters_have_finite_bounded_draws(spec: dict) -> None:
    for c in parse_dist(spec, "x").components:
        assert math.isfinite(c.mean) and LOG_MAX_DRAW[c.family](c.a, c.b) <= math.log(DRAW_LIMIT)


@pytest.mark.parametrize("env", ["two", "-3", "0", "1.5", str(MAX_THREADS + 1)])
def test_mcsmp_threads_is_validated(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCSMP_THREADS", env)
    with pytest.raises(UserError, match="MCSMP_THREADS"):
        default_threads()
    monkeypatch.setenv("MCSMP_THREADS", "3")
    assert default_threads() == 3
