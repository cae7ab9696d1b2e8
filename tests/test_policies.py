"""Wait policies on common random numbers (MODEL.md §3), fan-out by fan-out.

Every policy is evaluated on the same simulated timeline, so with ``keep_samples`` the relations
between policies hold exactly on every draw, not only in distribution. Values are compared
bit for bit where the kernel computes them with the same IEEE operations (``S_L + A`` etc.).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from naive import params_from

from mcsmp.config import Params
from mcsmp.kernels import codes as K
from mcsmp.sim import run_point
from mcsmp.sim.engine import CHUNK_FANOUTS

FOUR = ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"]
PREEMPTIBLE, SPINLOCK, PREEMPT_DISABLED = 0, 1, 2
Z = 5.0  # two-sided normal tail 5.7e-7 per check: a correct kernel essentially never fails


def _params(**over: Any) -> Params:
    d: dict[str, Any] = {
        "seed": 3,
        "samples": CHUNK_FANOUTS,
        "policies": FOUR,
        "machine": {"cpus": 8, "sockets": 1, "cpus_per_llc": 8, "smt": 1},
        "kernel": {"preemption": "full"},
        "workload": {"caller": {"preemptible": 0.5, "spinlock": 0.3, "preempt_disabled": 0.2},
                     "mm_cpus": 4, "target_prob": 0.8},
        "remote": {"irq_off": {"fraction": 0.1, "length": {"dist": "lognormal", "median": 5000, "sigma": 1.0}}},
        "policy": {"reentry": "off", "alloc_fail_prob": 0.1, "alloc_ns": 150, "cpus_read_lock_ns": 40},
    }  # fmt: skip
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return params_from(d)


class Run:
    """Named columns of one run's per-fan-out samples."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.result = run_point(params, threads=2, keep_samples=True)
        s = self.result.samples
        assert s is not None
        self.s = s
        self.T, self.S_L, self.spin = s[:, K.S_T], s[:, K.S_SL], s[:, K.S_SPIN]
        self.k, self.ctx = s[:, K.S_TARGETS], s[:, K.S_CONTEXT].astype(int)
        n_pol = len(params.policies)
        self.P = {p: s[:, K.N_SAMPLE_COLS + i] for i, p in enumerate(params.policies)}
        self.H = {p: s[:, K.N_SAMPLE_COLS + n_pol + i] for i, p in enumerate(params.policies)}
        self.A = params.policy.alloc_ns
        self.R = params.policy.cpus_read_lock_ns


def _allows(run: Run) -> np.ndarray:
    rt = run.params.kernel.preemption == "rt"
    return (run.ctx == PREEMPTIBLE) | ((run.ctx == SPINLOCK) & rt)


@pytest.fixture(scope="module")
def full_off() -> Run:
    return Run(_params())


@pytest.fixture(scope="module")
def rt_off() -> Run:
    return Run(_params(kernel={"preemption": "rt"}))


@pytest.fixture(scope="module")
def full_bound() -> Run:
    # ρ_w = λ E[T − S_L] ≈ 1e5 Hz × ~4 µs ≈ 0.4: plenty of spins; 4 chunks, all in the pilot
    return Run(_params(samples=4 * CHUNK_FANOUTS, workload={"rate_hz": 100000},
                       policy={"reentry": "bound"}))  # fmt: skip


def test_every_context_occurs(full_off: Run) -> None:
    for ctx, frac in ((PREEMPTIBLE, 0.5), (SPINLOCK, 0.3), (PREEMPT_DISABLED, 0.2)):
        got = float(np.mean(full_off.ctx == ctx))
        assert abs(got - frac) < Z * math.sqrt(frac * (1 - frac) / len(full_off.T))


@pytest.mark.parametrize("which", ["full_off", "rt_off"])
def test_preempt_off_is_the_call(which: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(which)
    assert np.array_equal(run.P["preempt_off"], run.T)
    assert np.array_equal(run.H["preempt_off"], run.T)
    assert np.all(run.S_L <= run.T)
    assert np.all(run.spin == 0.0)


@pytest.mark.parametrize("which", ["full_off", "rt_off"])
def test_preemptible_wait_on_every_draw(which: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(which)
    allow = _allows(run)
    pw = run.P["preemptible_wait"]
    assert np.all(pw <= run.P["preempt_off"])
    assert np.array_equal(pw[allow], run.S_L[allow])
    assert np.array_equal(pw[~allow], run.T[~allow])
    assert np.array_equal(run.H["preemptible_wait"], pw)  # H = P (see tests/naive.py on the §3 table)
    strictly = allow & (run.k > 0)
    assert strictly.any() and np.all(pw[strictly] < run.T[strictly])  # the wait loop costs ≥ one transfer


@pytest.mark.parametrize("which", ["full_off", "rt_off"])
def test_atomic_alloc_on_every_draw(which: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(which)
    allow = _allows(run)
    aa = run.P["atomic_alloc"]
    assert np.array_equal(run.H["atomic_alloc"], aa)
    assert np.array_equal(aa[~allow], run.T[~allow] + run.A)
    base = aa[allow] - run.A  # S_L (allocated) or T (fell back to the preempt-off wait)
    ok = np.isclose(base, run.S_L[allow], rtol=0, atol=1e-9 * run.T[allow]) | np.isclose(
        base, run.T[allow], rtol=0, atol=1e-9 * run.T[allow]
    )
    assert ok.all()
    # the fallback happens with probability alloc_fail_prob (only visible when T > S_L, i.e. k > 0)
    seen = allow & (run.k > 0)
    fell_back = np.isclose(aa[seen] - run.A, run.T[seen], rtol=0, atol=1e-9 * run.T[seen])
    f, n = run.params.policy.alloc_fail_prob, int(seen.sum())
    assert abs(fell_back.mean() - f) < Z * math.sqrt(f * (1 - f) / n)


def test_cpus_read_lock_only_helps_preemptible_callers(rt_off: Run) -> None:
    run = rt_off
    crl, pw = run.P["cpus_read_lock"], run.P["preemptible_wait"]
    pre, spin = run.ctx == PREEMPTIBLE, run.ctx == SPINLOCK
    assert np.array_equal(crl[pre], run.S_L[pre] + run.R)
    assert np.array_equal(crl[~pre], run.T[~pre] + run.R)
    assert np.array_equal(run.H["cpus_read_lock"], run.T + run.R)  # hotplug held for the whole call
    # under PREEMPT_RT a spinlock caller may wait preemptibly with the task-local mask, not here
    sel = spin & (run.k > 0)
    assert sel.any()
    assert np.array_equal(pw[sel], run.S_L[sel])
    assert np.all(crl[sel] > pw[sel])


@pytest.mark.parametrize("preemption", ["none", "voluntary"])
def test_no_kernel_preemption_means_p_is_t(preemption: str) -> None:
    run = Run(_params(kernel={"preemption": preemption}, workload={"caller": {
        "preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}}))  # fmt: skip
    assert (run.k > 0).any()
    for p in FOUR:
        assert np.array_equal(run.P[p], run.T), p
        assert np.array_equal(run.H[p], run.T), p


@pytest.mark.parametrize(
    "over",
    [{"kernel": {"csdlock_debug": True}}, {"workload": {"call": "tlb_flush_kernel"}}],
    ids=["csdlock_debug", "tlb_flush_kernel"],
)
def test_pinned_waits_stay_preempt_off(over: dict[str, Any]) -> None:
    # all callers preemptible and a high rate with re-entry on: still no preemptible wait, no spin
    base = {"caller": {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}, "rate_hz": 100000}
    workload = {**base, **over.get("workload", {})}
    run = Run(_params(workload=workload, policy={"reentry": "bound"},
                      **{k: v for k, v in over.items() if k != "workload"}))  # fmt: skip
    assert not run.result.model.needs_reentry
    assert (run.k > 0).any()
    assert np.array_equal(run.P["preemptible_wait"], run.T)
    assert np.array_equal(run.P["atomic_alloc"], run.T + run.A)
    assert np.array_equal(run.P["cpus_read_lock"], run.T + run.R)
    assert np.all(run.spin == 0.0)


def test_reentry_spin_on_every_draw(full_bound: Run) -> None:
    run = full_bound
    allow = _allows(run)
    sleep = run.ctx == PREEMPTIBLE
    pw, aa, crl = run.P["preemptible_wait"], run.P["atomic_alloc"], run.P["cpus_read_lock"]
    assert (run.spin[allow] > 0).any()
    assert np.array_equal(pw[allow], run.S_L[allow] + run.spin[allow])
    assert np.array_equal(pw[~allow], run.T[~allow])  # no spin without a preemptible context
    # (S_L + spin) − spin rounds back to S_L within one ulp of the sum
    assert np.all(pw - np.where(allow, run.spin, 0.0) <= run.P["preempt_off"] + np.spacing(pw))
    assert np.array_equal(run.H["preemptible_wait"], pw)
    base = aa - run.A - np.where(allow, run.spin, 0.0)
    assert np.all((np.abs(base - run.S_L) <= 1e-9 * run.T) | (np.abs(base - run.T) <= 1e-9 * run.T))
    assert np.array_equal(crl[sleep], run.S_L[sleep] + run.R + run.spin[sleep])
    assert np.array_equal(run.H["cpus_read_lock"][sleep], run.T[sleep] + run.R + run.spin[sleep])
    assert np.array_equal(crl[~sleep], run.T[~sleep] + run.R)
    assert np.array_equal(run.P["preempt_off"], run.T)  # mainline never spins (nothing is preempted mid-wait)


def test_reentry_mean_shift(full_bound: Run) -> None:
    """E[P_pw] rises by Pr(allow) · ρ_w · E[residual of T − S_L], within its standard error.

    The spin is drawn from the first pass's ``T − S_L`` histogram (MODEL §3), read as piecewise
    uniform within buckets: with ``X`` that law, ``E[residual] = E[X²] / (2 E[X])`` and
    ``E[residual²] = E[X³] / (3 E[X])``. Here the run has 4 chunks, so the pilot (first ≤ 16
    chunks) is this very run and its histogram is ``H_WAIT_TAIL``. ``ρ_w = λ · E[T − S_L] · 1e-9``
    with the exact mean. The spin (aux stream) is independent of the context (main stream), so
    the shift ``spin · allow`` has mean ``p ρ_w m1`` and second moment ``p ρ_w m2``.
    """
    run = full_bound
    hist = run.result.histogram("wait_tail_ns")
    assert hist.mean == run.result.wait_tail_mean  # the pilot is this run
    edges = run.result.layout.edges
    lo, hi, c = edges[:-2], edges[1:-1], hist.counts[:-1].astype(float)
    assert hist.counts[-1] == 0
    n = c.sum()
    ex = np.sum(c * (lo + hi) / 2) / n
    ex2 = np.sum(c * (lo * lo + lo * hi + hi * hi) / 3) / n
    ex3 = np.sum(c * (lo + hi) * (lo * lo + hi * hi) / 4) / n
    x = run.T - run.S_L
    assert abs(ex2 / (2 * ex) / (np.mean(x * x) / (2 * np.mean(x))) - 1) < 5e-3  # binning is negligible
    rho = run.params.workload.rate_hz[0] * hist.mean * 1e-9
    assert 0.1 < rho < 0.9
    allow = _allows(run)
    p_allow = run.params.workload.caller.preemptible  # preemption full: spinlock callers do not allow
    m1, m2 = ex2 / (2 * ex), ex3 / (3 * ex)
    expected = p_allow * rho * m1
    var = p_allow * rho * m2 - expected**2
    se = math.sqrt(var / len(run.T))
    no_spin = np.where(allow, run.S_L, run.T)
    shift = float(np.mean(run.P["preemptible_wait"]) - np.mean(no_spin))
    assert abs(shift - expected) < Z * se, (shift, expected, se)
    # and the spin happens with probability ρ_w, whatever the context
    spun = float(np.mean(run.spin > 0))
    assert abs(spun - rho) < Z * math.sqrt(rho * (1 - rho) / len(run.T))
