"""Kernel rules a parameter set can break without being invalid as data (docs/model.md 9.34).

Each warning names the keys involved and the kernel rule; the model still runs (the numbers
describe the configured policy as if it were legal), so a study can show what the rule costs.
"""

from __future__ import annotations

from .schema import Params

__all__ = ["kernel_warnings"]


def kernel_warnings(params: Params) -> list[str]:
    """One line per kernel rule that ``params`` breaks (empty when none)."""
    out: list[str] = []
    k, w, pol = params.kernel, params.workload, params.policy
    atomic_callers = w.caller.preempt_disabled > 0 or (w.caller.spinlock > 0 and k.preemption != "rt")
    # smp_call_function_single() waits on its stack csd: no mask to allocate, no cpus_read_lock()
    # (docs/model.md 9.37), so neither alternative's rule can be broken by a single call
    many = w.call != "single"
    if "atomic_alloc" in params.policies and many:
        if k.preemption == "rt":
            # Documentation/locking/locktypes.rst: on PREEMPT_RT the page/slab allocator takes
            # sleeping locks, so no allocation (GFP_ATOMIC included) from preempt-/irq-disabled code
            out.append(
                "policies: atomic_alloc calls alloc_cpumask_var(GFP_ATOMIC) with preemption disabled, "
                "which PREEMPT_RT forbids (kernel.preemption: rt): the v1 policy is not a valid rt kernel"
            )
        if k.nr_cpus < 8192 and (pol.alloc_ns > 0 or pol.alloc_fail_prob > 0):
            # arch/x86/Kconfig: CPUMASK_OFFSTACK is selected by MAXSMP (NR_CPUS 8192) or forced only
            # with DEBUG_PER_CPU_MAPS; without it alloc_cpumask_var() is a no-op that returns true
            out.append(
                f"policy.alloc_ns/alloc_fail_prob: with kernel.nr_cpus {k.nr_cpus} (< 8192, no MAXSMP) x86 builds "
                "without CONFIG_CPUMASK_OFFSTACK, where alloc_cpumask_var() allocates nothing and cannot fail: "
                "set both to 0 for such a kernel"
            )
    if "cpus_read_lock" in params.policies and atomic_callers and many:
        # kernel/cpu.c cpus_read_lock() -> percpu_down_read(): might_sleep()
        out.append(
            "policies: cpus_read_lock() may sleep (percpu_down_read), so callers with preemption disabled "
            "(workload.caller.preempt_disabled, or spinlock on a non-rt kernel) cannot take it; mcsmp charges "
            "them T + R, but such a kernel would hit might_sleep()"
        )
    return out
