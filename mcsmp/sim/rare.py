"""Stratified sampling of the rare remote states (docs/model.md §5, "Rare events").

Each of a fan-out's ``m`` candidate targets independently falls in one *category*: not a target
(a lazy CPU skipped, probability ``1 − tp``), a target in a non-tail remote state, or a target
whose remote wait is the equilibrium residual of one *tail component* ``c`` (probability ``q_c``:
``tp`` × the state's fraction × the component's length-biased weight). Tail components are chosen
from the parameters (:func:`mcsmp.config.rare.tail_components`). With ``C`` tail categories ordered by decreasing
``q_c`` (``C`` the rarest) and ``Q_c = Σ_{c' ≥ c} q_{c'}``, stratum ``s = C`` holds the fan-outs
with at least one candidate in category ``C``, stratum ``s = c`` those with none above ``c`` and at
least one in ``c``, stratum 0 those with none in any; their probabilities are exact:
``P(s) = (1 − Q_{s+1})^m − (1 − Q_s)^m`` (``Q_{C+1} = 0``, ``Q_0 = 1``).

Every chunk holds a fixed number of fan-outs of each stratum (:meth:`RarePlan.bounds`, a function
of the chunk's size only), so counts stay integers per stratum, merge by addition, and a result
stays bit-identical however it was run. Estimators recombine the strata with the exact ``P(s)``
(:mod:`mcsmp.sim.histogram`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Params
from ..config.rare import TailComponent, candidates_of, tail_components, target_prob_of
from ..kernels import codes as K

__all__ = ["CRUDE", "TAIL_FRACTION", "RarePlan", "plan_rare_events"]

# Share of every chunk given to the tail strata (split equally among them); the rest is stratum 0.
TAIL_FRACTION = 0.25
_SLOT = {"irq_off": K.D_IRQ_OFF_LEN, "vcpu_preempted": K.D_VCPU_LEN}


@dataclass(frozen=True)
class RarePlan:
    """The strata of a point: tail categories, exact probabilities, per-chunk allocation, and the
    arrays the kernel reads (``kernel_arrays``)."""

    components: tuple[TailComponent, ...] = ()
    probs: tuple[float, ...] = (1.0,)  # P(stratum s), s = 0 .. C
    shares: tuple[float, ...] = (1.0,)  # share of every chunk's fan-outs per stratum
    candidates: int = 0  # m
    mode: str = "off"  # the report.rare_events setting it was planned from
    arrays: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)

    @property
    def n_strata(self) -> int:
        return len(self.probs)

    @property
    def stratified(self) -> bool:
        return self.n_strata > 1

    def bounds(self, fanouts: int) -> np.ndarray:
        """``int64[S + 1]``: fan-outs ``b[s] .. b[s+1] − 1`` of a chunk of ``fanouts`` are stratum ``s``."""
        sizes = [int(math.floor(fanouts * f)) for f in self.shares[1:]]
        if fanouts >= self.n_strata:  # every stratum sampled in every chunk that can hold them all
            sizes = [max(x, 1) for x in sizes]
        sizes = [fanouts - sum(sizes), *sizes]
        return np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)

    def kernel_arrays(self, fanouts: int) -> tuple[np.ndarray, ...]:
        """The kernel's ``rare`` argument for a chunk of ``fanouts`` fan-outs."""
        return (self.bounds(fanouts), *self.arrays)

    def describe(self) -> dict[str, Any]:
        """What was chosen, for the result's JSON and meta.json."""
        return {
            "mode": self.mode,
            "method": "stratified" if self.stratified else "crude",
            "candidates": self.candidates,
            "tail_components": [{"name": c.label, "q_per_candidate": c.q} for c in self.components],
            "strata": [
                {"stratum": s, "probability": p, "share": f, "definition": _definition(s, self.components)}
                for s, (p, f) in enumerate(zip(self.probs, self.shares, strict=True))
            ],
        }


def _definition(s: int, comps: tuple[TailComponent, ...]) -> str:
    if not comps:
        return "every fan-out"
    if s == 0:
        return "no candidate in a tail component"
    rarer = [c.label for c in comps[s:]]
    head = f"at least one candidate in {comps[s - 1].label}"
    return head + (f", none in {', '.join(rarer)}" if rarer else "")


def _dummy_arrays(n_rows: int) -> tuple[np.ndarray, ...]:
    return (np.ones(2), np.zeros((1, 2)), np.zeros((1, 3), dtype=np.int64), np.zeros(1), np.ones(3), np.ones((max(n_rows, 1), 1)))


def crude_plan(mode: str = "off", n_rows: int = 1) -> RarePlan:
    return RarePlan(mode=mode, arrays=_dummy_arrays(n_rows))


CRUDE = crude_plan()


def plan_rare_events(params: Params, index: np.ndarray, table: np.ndarray, fp: np.ndarray) -> RarePlan:
    """The strata for ``params`` (crude when ``report.rare_events`` is off or nothing is rare)."""
    mode = params.report.rare_events
    comps = tail_components(params)
    m = candidates_of(params)
    if not comps or m < 1:
        return crude_plan(mode, table.shape[0])
    tp = target_prob_of(params)
    q = np.array([c.q for c in comps])
    n_c = len(comps)
    # Q[c] = Σ_{c' ≥ c} q_c' for c = 1..C (index c − 1), Q_{C+1} = 0
    upper = np.concatenate((np.cumsum(q[::-1])[::-1], [0.0]))

    def none_above(c: int) -> float:  # P(no candidate in categories ≥ c) = (1 − Q_c)^m
        return math.exp(m * math.log1p(-upper[c - 1])) if c <= n_c else 1.0

    # Category law per candidate: 0 not a target, 1 non-tail target, 1 + c tail component c.
    cat_p = np.concatenate(([1.0 - tp, tp - q.sum()], q))
    cat_cum = np.cumsum(cat_p)
    first_law = np.zeros((n_c + 1, 2))
    for s in range(1, n_c + 1):
        pi = q[s - 1] / (1.0 - upper[s])  # P(category s | categories ≤ s) per candidate
        first_law[s] = (math.log1p(-pi), -math.expm1(m * math.log1p(-pi)))
    # P(s) = (1 − Q_{s+1})^m · (1 − (1 − π_s)^m), without cancellation
    probs = [none_above(1)] + [none_above(s + 1) * first_law[s, 1] for s in range(1, n_c + 1)]
    rows = [int(index[_SLOT[c.state], 0]) + c.index for c in comps]
    tail_cat = np.array([[_SLOT[c.state], row, c.part] for c, row in zip(comps, rows, strict=True)], dtype=np.int64)
    tail_split = np.array([c.split for c in comps])
    # Non-tail remote states of a target: irq_off, idle, vCPU (tail mass removed), else running.
    removed = {K.D_IRQ_OFF_LEN: 0.0, K.D_VCPU_LEN: 0.0}
    for c in comps:  # both parts of a split component remove it whole
        removed[_SLOT[c.state]] += c.q / tp
    masses = [fp[K.F_IRQ] - removed[K.D_IRQ_OFF_LEN], fp[K.F_IDLE], fp[K.F_VCPU] - removed[K.D_VCPU_LEN]]
    masses = [max(float(x), 0.0) for x in masses]
    body = 1.0 - sum(c.q for c in comps) / tp
    state_cum = np.minimum(np.cumsum(masses) / body, 1.0)
    nontail_res = np.ones((table.shape[0], 1))
    tail_rows = set(rows)
    for slot in _SLOT.values():
        first, count = int(index[slot, 0]), int(index[slot, 1])
        cum = table[first : first + count, K.COL_CUM_RESIDUAL_WEIGHT]
        w = np.diff(np.concatenate(([0.0], cum)))
        keep = np.array([first + i not in tail_rows for i in range(count)])
        w = np.where(keep, w, 0.0)
        if w.sum() <= 0:
            continue
        c_w = np.cumsum(w) / w.sum()
        c_w[int(np.nonzero(keep)[0][-1]) :] = 1.0  # a draw u < 1 never lands past the last kept row
        nontail_res[first : first + count, 0] = c_w
    shares = [1.0 - TAIL_FRACTION] + [TAIL_FRACTION / n_c] * n_c
    return RarePlan(
        tuple(comps), tuple(float(p) for p in probs), tuple(shares), m, mode,
        (cat_cum, first_law, tail_cat, tail_split, state_cum, nontail_res),
    )  # fmt: skip
