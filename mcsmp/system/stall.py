"""The mean re-entry spin when it rests on a rare irq-off stall (docs/system.md §4.1).

A rare constant component ("atom") of ``remote.irq_off.length`` — the seed box's 50 ms stall,
weight 4·10⁻⁸ per section — can dominate the second task's mean ``csd_lock()`` spin and still
occur a handful of times in any affordable run. Split the spin by that component:

    mean spin per second-task call = B + ν · E[ΔS] / R_b

- ``B``: the crude mean spin per second-task call of the machine *without* the atom (the mixture
  renormalised, the mean gap between sections kept): given that no section is an atom, the
  sections are exactly that renormalised mixture and the gaps do not change;
- ``ν = n · w · f / m``: atom sections per second on the machine (a CPU starts sections at rate
  ``f / m``, ``m`` the mean length, ``f`` the irq-off fraction; a share ``w`` of them are the atom);
- ``ΔS``: the extra second-task spin that one atom causes, from short windows in which the first
  section after a uniform time on a uniform CPU is given the atom's length, minus the same window
  (same random stream) without it;
- ``R_b``: second-task calls per second (from the runs of ``B``).

The split is exact except for interactions of two atoms in one window (probability about ``ν``
times the window, 4·10⁻⁴ on the seed box), which it neglects. Intervals: batch means over
replications for ``B``, the sample variance of ``ΔS`` over episodes, combined (normal, 95 %).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .._util import sha256_json
from ..config import Params
from ..config.schema import key_from_hash
from ..dists.dist import Dist
from ..kernels import codes as K
from ..kernels.system import run_system
from ..sim.engine import stream_states
from ..sim.histogram import Z95
from .model import compile_system, system_key
from .run import simulate_system

__all__ = ["StallSplit", "split_atom", "stall_split"]


@dataclass(frozen=True)
class StallSplit:
    base_mean_ns: tuple[float, float, float]  # B with its interval
    second_calls_per_s: float  # R_b
    atoms_per_s: float  # ν
    extra_spin_ns: tuple[float, float, float]  # E[ΔS] with its interval
    episodes: int
    episodes_with_extra_spin: int
    mean_ns: tuple[float, float, float]  # B + ν E[ΔS] / R_b

    @property
    def atom_share_ns(self) -> float:
        return self.atoms_per_s * self.extra_spin_ns[0] / self.second_calls_per_s


def split_atom(length: Dist, atom_ns: float) -> tuple[Dist, float]:
    """``length`` without its constant component at ``atom_ns`` (renormalised), and that component's weight."""
    atoms = [c for c in length.components if c.family == K.FAM_CONST and c.a == atom_ns]
    if len(atoms) != 1:
        raise ValueError(f"remote.irq_off.length has no single constant component at {atom_ns} ns")
    w = atoms[0].weight
    rest = tuple(dataclasses.replace(c, weight=c.weight / (1.0 - w)) for c in length.components if c is not atoms[0])
    return Dist(spec={"without_atom_ns": atom_ns, "of": length.spec}, components=rest), w


def _without_atom(params: Params, atom_ns: float) -> tuple[Params, float]:
    irq = params.remote.irq_off
    rest, w = split_atom(irq.length, atom_ns)
    remote = dataclasses.replace(params.remote, irq_off=dataclasses.replace(irq, length=rest))
    return dataclasses.replace(params, remote=remote), w


def stall_split(params: Params, atom_ns: float, episodes: int, window_s: float, *, threads: int | None = None) -> StallSplit:
    """The split estimator above for the second task of ``params`` (one policy, ``system`` section as given:
    its replications estimate ``B``); ``episodes`` forced windows of ``window_s`` simulated seconds each."""
    assert params.system is not None and len(params.policies) == 1
    policy = params.policies[0]
    f = params.remote.irq_off.fraction
    m = params.remote.irq_off.length.mean
    gap = m * (1.0 - f) / f  # the original mean gap, kept without the atom
    no_atom, w = _without_atom(params, atom_ns)
    n = params.machine.cpus
    nu = n * w * f / (m * 1e-9)

    base = simulate_system(_with_gap(no_atom, gap), threads=threads).runs[policy]
    h = base.histogram("second_spin_ns")
    lo, hi = h.mean_interval()
    b_mean, b_half = h.mean, (hi - lo) / 2
    r_b = base.counter("second_calls") / base.exposure_s

    model = compile_system(_with_gap(no_atom, gap))
    sfp = model.sfp.copy()
    sfp[K.SF_DURATION] = window_s * 1e9
    sfp[K.SF_WARMUP] = 0.0
    key = key_from_hash(sha256_json({"stall_split": system_key(params), "atom_ns": atom_ns}))
    lead = 0.2 * window_s * 1e9  # the atom starts in the first fifth; the window holds its aftermath
    extra = np.empty(episodes)
    for e in range(episodes):
        pick = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(key, e, 1)))
        cpu, at = int(pick.integers(n)), float(pick.random()) * lead
        spins = []
        for forced in (True, False):
            sip = model.sip.copy()
            sip[K.SI_POLICY] = K.POLICIES.index(policy)
            sip[K.SI_FORCE_CPU] = cpu + 1 if forced else 0
            sfp[K.SF_FORCE_AT], sfp[K.SF_FORCE_LEN] = at, atom_ns
            spins.append(_window_spin(model, sip, sfp, stream_states(params.seed, key, e)[0].copy(), n))
        extra[e] = spins[0] - spins[1]
    x_mean = float(extra.mean())
    x_half = Z95 * float(extra.std(ddof=1)) / math.sqrt(episodes) if episodes > 1 else math.inf
    mean = b_mean + nu * x_mean / r_b
    half = math.hypot(b_half, nu * x_half / r_b)
    return StallSplit(
        base_mean_ns=(b_mean, lo, hi), second_calls_per_s=r_b, atoms_per_s=nu,
        extra_spin_ns=(x_mean, x_mean - x_half, x_mean + x_half), episodes=episodes,
        episodes_with_extra_spin=int(np.count_nonzero(extra)), mean_ns=(mean, mean - half, mean + half),
    )  # fmt: skip


def _with_gap(params: Params, gap: float) -> Params:
    """``params`` whose irq-off fraction makes the mean gap ``gap`` with its own mean length."""
    irq = params.remote.irq_off
    m = irq.length.mean
    remote = dataclasses.replace(params.remote, irq_off=dataclasses.replace(irq, fraction=m / (m + gap)))
    return dataclasses.replace(params, remote=remote)


def _window_spin(model, sip: np.ndarray, sfp: np.ndarray, state: np.ndarray, n: int) -> float:  # type: ignore[no-untyped-def]
    """Total csd_lock() spin (ns) of the second-task calls that end in one window."""
    counts = np.zeros((K.N_SYSTEM_HISTS, model.base.layout.n_buckets), dtype=np.int64)
    sums = np.zeros(K.N_SYSTEM_HISTS)
    counters = np.zeros(K.N_SYSTEM_COUNTERS, dtype=np.int64)
    run_system(
        model.base.ip, model.base.fp, sip, sfp, model.index, model.table, model.rate_a, model.rate_b, state,
        counts, sums, counters, np.zeros(n, dtype=np.int64), np.zeros((0, K.N_SYSTEM_SAMPLE_COLS)), np.zeros(0),
    )  # fmt: skip
    return float(sums[K.SH_B_SPIN])
