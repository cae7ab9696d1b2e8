"""Which remote states are rare and long: the tail components of a point (docs/model.md §5,
"Rare events"), a function of the parameters alone.

The choice is part of a point's identity (:meth:`~mcsmp.config.Params.model_dict`: a point that
stratifies draws differently from its crude twin), so it lives here, below the simulation layer
that builds the strata from it (:mod:`mcsmp.sim.rare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..kernels.codes import FAM_PARETO

# Parameters are a mcsmp.config.Params; not imported, since Params.model_dict calls this module.
Params = Any

__all__ = [
    "MAX_TAIL_COMPONENTS",
    "PARETO_TAIL_SHARE",
    "TAIL_HIT_MAX",
    "TAIL_LENGTH_RATIO",
    "TailComponent",
    "candidates_of",
    "crude_only",
    "tail_components",
    "target_prob_of",
]

MAX_TAIL_COMPONENTS = 3  # the rarest ones; a Pareto component makes two categories
# A component is a tail one when one of the m candidates hits it in at most this share of
# fan-outs (rarer than the body's p95; a Pareto component: its part above the split) ...
TAIL_HIT_MAX = 0.05
# ... and its mean length is at least this many times its mixture's mean (a long section).
TAIL_LENGTH_RATIO = 10.0
# A Pareto(s, α) component's residual is split at the point t ≥ s beyond which it has this
# probability, (s/t)^(α−1)/α: above t the residual is exactly t · Pareto(1, α − 1), a stratum of
# its own, so the heavy tail is sampled where it matters instead of being left unseen.
# (At 1e-3 the split fell at ~1.06 ms on params/16core.yaml, inside the 1-10 ms bin, and that
# count's interval covered 0.875 of 40 replications of the closed-form case; at 1e-2, 0.95.)
PARETO_TAIL_SHARE = 1e-2

_STATES = ("irq_off", "vcpu_preempted")


@dataclass(frozen=True)
class TailComponent:
    name: str  # e.g. "remote.irq_off.length.components[2]"
    state: str  # "irq_off" or "vcpu_preempted"
    index: int  # component index in the state's length mixture
    q: float  # probability that one candidate is a target in this component's residual (part)
    part: int = 0  # 0 the whole residual; Pareto: 1 the residual below split, 2 above it
    split: float = 0.0

    @property
    def label(self) -> str:
        if self.part == 0:
            return self.name
        return f"{self.name} residual {'<=' if self.part == 1 else '>'} {self.split:.4g} ns"


def candidates_of(params: Params) -> int:
    """``m``: the candidate targets of every fan-out (the kernel's step 1)."""
    w = params.workload
    if w.call == "single":  # smp_call_function_single(): its one target (docs/model.md 9.37)
        return 1
    if w.call == "tlb_flush_kernel" or w.mm_cpus is None:
        return params.machine.cpus - 1
    return int(w.mm_cpus)


def crude_only(params: Params) -> bool:
    """Paths whose per-candidate draws the strata do not cover, so they stay crude (docs/model.md
    9.35): KVM's PV flush drops preempted vCPUs from the mask, freed page tables send lazy CPUs
    an IPI too (both change which candidates become targets), and INVLPGB has no targets; a single
    call to a target that may idle polling draws that before the send and the target's state
    from the law without it (9.37), which the strata's non-tail law does not follow."""
    w, tlb_call = params.workload, params.workload.call in ("tlb_flush", "tlb_flush_kernel")
    pv = params.ipi.pv_tlb_flush and w.call == "tlb_flush"
    freed = w.freed_tables_prob > 0 and w.call == "tlb_flush"
    polling = w.call == "single" and params.remote.idle.fraction * params.remote.idle.polling_prob > 0
    sender_preempt = params.ipi.sender_preempt_hz > 0  # its draws follow T; kept crude for simplicity (9.39)
    return bool(pv or freed or polling or sender_preempt or (tlb_call and params.tlb.mechanism == "invlpgb"))


def target_prob_of(params: Params) -> float:
    return 1.0 if params.workload.call in ("tlb_flush_kernel", "single") else float(params.workload.target_prob)


def tail_components(params: Params) -> list[TailComponent]:
    """The tail categories, rarest last (empty when ``report.rare_events`` is off): the rarest
    long residual components (at most :data:`MAX_TAIL_COMPONENTS`), a Pareto one split in two
    parts at :data:`PARETO_TAIL_SHARE`. A component's length-biased weight is ``w_i μ_i / Σ w μ``."""
    if params.report.rare_events == "off" or crude_only(params):
        return []
    m = candidates_of(params)
    tp = target_prob_of(params)
    found: list[tuple[float, TailComponent]] = []
    for name in _STATES:
        state = getattr(params.remote, name)
        comps = state.length.components
        if state.fraction <= 0 or len(comps) < 2 or m < 1:  # a single-component state is not split
            continue
        total_w = sum(c.weight for c in comps)
        mix_mean = sum(c.weight * c.mean for c in comps) / total_w
        biased = sum(c.weight * c.mean for c in comps)
        if biased <= 0:
            continue
        for i, comp in enumerate(comps):
            q = tp * state.fraction * comp.weight * comp.mean / biased
            # a Pareto component qualifies by its above-split part (a common Pareto has a rare tail)
            rare_q = q * PARETO_TAIL_SHARE if comp.family == FAM_PARETO else q
            if q <= 0 or m * rare_q > TAIL_HIT_MAX or comp.mean < TAIL_LENGTH_RATIO * mix_mean:
                continue
            found.append((rare_q, TailComponent(f"remote.{name}.length.components[{i}]", name, i, q)))
    found.sort(key=lambda x: -x[0])
    parts: list[TailComponent] = []
    for _, c in found[-MAX_TAIL_COMPONENTS:]:
        comp = getattr(params.remote, c.state).length.components[c.index]
        if comp.family != FAM_PARETO:
            parts.append(c)
            continue
        scale, alpha = comp.a, comp.b
        split = scale * (alpha * PARETO_TAIL_SHARE) ** (-1.0 / (alpha - 1.0))
        above = (scale / split) ** (alpha - 1.0) / alpha  # = PARETO_TAIL_SHARE up to rounding
        parts.append(TailComponent(c.name, c.state, c.index, c.q * (1.0 - above), 1, split))
        parts.append(TailComponent(c.name, c.state, c.index, c.q * above, 2, split))
    parts.sort(key=lambda c: -c.q)
    return parts
