"""Coverage of the stratified 95% intervals (slow): 200 replications of the closed-form case of
tests/test_rare_events.py (zero costs, 15 targets, lognormal + Pareto + const irq-off mixture),
one chunk each, different seeds. The intervals of ``call_ns`` p99.99, the window-maximum p99 and
the 1-10 ms exceedance count must contain the exact value in 93-97% of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from test_rare_events import closed_form_params, exact_count, exact_survival, exact_window_quantile

from mcsmp.metrics import compute_metrics
from mcsmp.sim import run_point
from mcsmp.sim.engine import CHUNK_FANOUTS

REPLICATIONS = 200


def _exact_quantile(q: float) -> float:
    level = 1.0 - q
    return math.exp(optimize.brentq(lambda lx: math.log(exact_survival(np.array([math.exp(lx)]))[0] / level),
                                    math.log(1e3), math.log(3.9e7), xtol=1e-12))  # fmt: skip


@pytest.mark.slow
def test_stratified_intervals_cover_the_exact_values() -> None:
    exact = {
        ("call_ns", "p99.99"): _exact_quantile(0.9999),
        ("window_max_ns", "p99"): exact_window_quantile(0.99),
        ("exceed_count", "count[1e+06,1e+07)"): exact_count(1e6, 1e7),
    }
    hits = dict.fromkeys(exact, 0)
    for seed in range(REPLICATIONS):
        result = run_point(closed_form_params(seed=1000 + seed, samples=CHUNK_FANOUTS), threads=1)
        assert result.model.rare.stratified
        rows = {(r.metric, r.statistic): r for r in compute_metrics(result) if r.cpu in ("all", "0")}
        for key, value in exact.items():
            r = rows[key]
            hits[key] += r.low <= value <= r.high
    rates = {k: v / REPLICATIONS for k, v in hits.items()}
    print("coverage", rates)
    # 93-97% (issue 9): with 200 replications the binomial sd of a 95% rate is 1.5%
    for key, rate in rates.items():
        assert 0.93 <= rate <= 0.97, (key, rate, rates)
