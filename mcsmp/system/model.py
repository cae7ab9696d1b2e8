"""Validated :class:`~mcsmp.config.Params` → the arrays of the system kernel (mcsmp.kernels.system).

The fan-out model's packing (:func:`mcsmp.sim.model.compile_model`) provides every shared cost and
topology code; the system section adds its own integer/float vectors and one distribution slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util import sha256_json
from ..config import Params
from ..config.schema import key_from_hash
from ..dists import encode
from ..errors import UserError
from ..kernels import codes as K
from ..sim.model import CompiledModel, compile_model, dist_slots

__all__ = ["SYSTEM_POLICIES", "SystemModel", "compile_system", "system_key"]

# The policies whose csd ownership the system simulation follows (docs/system.md).
SYSTEM_POLICIES = ("preempt_off", "preemptible_wait")
_WORKLOAD = {name: code for code, name in enumerate(K.SYSTEM_WORKLOADS)}


@dataclass(frozen=True)
class SystemModel:
    base: CompiledModel  # the fan-out packing: ip, fp, layout
    index: np.ndarray
    table: np.ndarray
    sip: np.ndarray  # without the policy (set per run)
    sfp: np.ndarray
    rate_a: np.ndarray  # workload calls per second per CPU (open loop, scftorture)
    rate_b: np.ndarray  # second-task calls per second per CPU


def system_key(params: Params) -> int:
    """The stream key of a system point: the fan-out model's parameters plus the system section."""
    return key_from_hash(sha256_json({"model": params.model_dict(), "system": params.resolved.get("system", "default")}))


def compile_system(params: Params) -> SystemModel:
    """Pack ``params`` for the system kernel; what the system simulation does not model is refused."""
    sys_ = params.system
    assert sys_ is not None
    if params.remote.idle.fraction > 0 or params.remote.vcpu_preempted.fraction > 0:
        raise UserError(
            "mcsmp system models remote irq-off sections only: set remote.idle.fraction and "
            "remote.vcpu_preempted.fraction to 0 (docs/system.md)"
        )
    # the fan-out model's paths the system kernel does not follow (docs/system.md "Departures")
    unsupported = [
        ("ipi.pv_tlb_flush", params.ipi.pv_tlb_flush, "false"),
        ("workload.freed_tables_prob", params.workload.freed_tables_prob > 0, "0"),
        ("tlb.mechanism", params.tlb.mechanism != "ipi", "ipi"),
        ("costs.cond_ns", params.costs.cond_ns.mean > 0, "0"),
        ("workload.call", params.workload.call == "single", "tlb_flush, tlb_flush_kernel or generic"),
    ]
    for key, used, plain in unsupported:
        if used:
            raise UserError(f"{key}: not modelled by mcsmp system (docs/system.md); set it to {plain}")
    other = [p for p in params.policies if p not in SYSTEM_POLICIES]
    if other:
        raise UserError(f"mcsmp system simulates the policies {', '.join(SYSTEM_POLICIES)}; leave out {', '.join(other)}")
    base = compile_model(params)
    index, table = encode([*dist_slots(params), sys_.work_ns])
    sip = np.zeros(K.N_SI, dtype=np.int64)
    sip[K.SI_WORKLOAD] = _WORKLOAD[sys_.workload]
    sip[K.SI_THREADS] = sys_.threads
    sip[K.SI_ASYNC_CSD] = K.ASYNC_CSDS.index(sys_.async_csd)
    sip[K.SI_CSD_LOCK] = K.CSD_LOCKS.index(sys_.csd_lock)
    sfp = np.zeros(K.N_SF, dtype=np.float64)
    sfp[K.SF_DURATION] = sys_.duration_s * 1e9
    sfp[K.SF_WARMUP] = sys_.warmup_s * 1e9
    sfp[K.SF_LOCK_WINDOW] = sys_.lock_window_ns
    f = params.remote.irq_off.fraction
    m = params.remote.irq_off.length.mean
    # irq-off sections alternate with exponential gaps: time share f needs a mean gap m (1 − f) / f
    sfp[K.SF_IRQ_GAP_MEAN] = m * (1.0 - f) / f if f > 0 else np.inf
    sfp[K.SF_CONTEXT_SWITCH] = params.costs.context_switch_ns
    w = np.array(sys_.scf_weights, dtype=np.float64)
    cum = np.cumsum(w) / w.sum()
    cum[-1] = 1.0
    sfp[K.SF_SCF_CUM : K.SF_SCF_CUM + 4] = cum
    sfp[K.SF_HOTPLUG_INTERVAL] = sys_.hotplug_interval_s * 1e9
    if f >= 1.0:
        raise UserError("remote.irq_off.fraction must be below 1 for mcsmp system (interrupts would never be taken)")
    rate_a = np.array(params.workload.rate_hz, dtype=np.float64)
    rate_b = np.array(sys_.second_task_hz, dtype=np.float64)
    return SystemModel(base, index, table, sip, sfp, rate_a, rate_b)
