"""Issue 10's kernel paths, exactly, on constant costs (docs/model.md 9.14, 9.15, 9.27–9.29, 9.37).

Every cost is a constant, so each fan-out's S, S_L and T follow by hand from the timeline of
§1; the tests compare them with the kernel's per-fan-out samples (no statistics involved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import build_zero_params

from mcsmp.kernels import codes as K
from mcsmp.sim import run_point
from mcsmp.sim.model import compile_model

SEND = 100.0


def _samples(tmp_path: Path, n: int = 2000, **dotted: object) -> np.ndarray:
    params = build_zero_params(tmp_path, {"samples": n, "ipi.send_ns": SEND, **dotted})
    res = run_point(params, threads=1, keep_samples=True)
    assert res.samples is not None
    return res.samples


def test_shorthand_sends_one_write_for_a_full_mask(tmp_path: Path) -> None:
    s = _samples(tmp_path, **{"workload.mm_cpus": None, "ipi.shorthand": True})
    assert np.all(s[:, K.S_TARGETS] == 7)
    assert np.all(s[:, K.S_S] == SEND)  # E = Q = 0: one all-but-self write
    s = _samples(tmp_path, **{"workload.mm_cpus": None, "ipi.shorthand": False})
    assert np.all(s[:, K.S_S] == 7 * SEND)  # physical: one write per target


def test_no_shorthand_for_a_partial_mask(tmp_path: Path) -> None:
    # cpumask_or_equal(mask, self, online) fails as soon as one online CPU is left out
    s = _samples(tmp_path, **{"workload.mm_cpus": None, "workload.target_prob": 0.9, "ipi.shorthand": True})
    k = s[:, K.S_TARGETS]
    full = k == 7
    assert full.any() and (~full & (k > 1)).any()
    assert np.all(s[full, K.S_S] == SEND)
    assert np.all(s[~full, K.S_S] == k[~full] * SEND)


def test_clusters_follow_padded_apic_ids(tmp_path: Path) -> None:
    # 2 sockets of 12: package ids start at APIC id 16, so clusters of 8 are {0-7}, {8-11},
    # {16-23}, {24-27}: four writes for every other CPU (the unpadded t // 8 would give three)
    s = _samples(tmp_path, **{
        "machine.cpus": 24, "machine.sockets": 2, "machine.cpus_per_llc": 12, "workload.mm_cpus": None,
        "ipi.mode": "cluster", "ipi.cluster_size": 8, "ipi.shorthand": False,
    })  # fmt: skip
    assert np.all(s[:, K.S_S] == 4 * SEND)


def test_target_order_from_cpu0(tmp_path: Path) -> None:
    # Physical writes 100 ns apart, every other cost 0 except a 1 ms cross-socket delivery
    # (2 sockets: CPUs 0-3 and 4-7). T is the last remote target's completion, i.e. 1 ms after
    # the last write to the other socket: the order decides which rank that write has.
    common = {
        "machine.sockets": 2, "machine.cpus_per_llc": 4, "workload.mm_cpus": None, "ipi.shorthand": False,
        "ipi.cross_socket_ns": 1.0e6,
    }  # fmt: skip
    for order in ("cpu0", "after_sender"):
        s = _samples(tmp_path, **common, **{"kernel.target_order": order})
        sender = s[:, K.S_SENDER].astype(int)
        if order == "cpu0":  # from CPU 0 up: socket 0's targets always come first
            last_remote = np.where(sender < 4, 6, 3)
        else:  # after the sender, wrapping
            last_remote = np.where(sender < 4, 6 - sender, 10 - sender)
        assert np.allclose(s[:, K.S_T], (last_remote + 1) * SEND + 1.0e6), order


def test_handler_fixed_part_is_paid_once_per_call(tmp_path: Path) -> None:
    s = _samples(tmp_path, **{
        "workload.call": "tlb_flush", "workload.run_local": True, "tlb.pages": 4, "tlb.invlpg_ns": 50,
        "tlb.handler_fixed_ns": 600, "tlb.full_flush_ns": 300, "ipi.send_ns": 0,
    })  # fmt: skip
    assert np.all(s[:, K.S_SL] == 600 + 4 * 50)  # the local call: fixed + pages x INVLPG
    assert np.all(s[:, K.S_T] == 600 + 4 * 50)  # targets do the same work in parallel
    s = _samples(tmp_path, **{
        "workload.call": "tlb_flush", "workload.run_local": True, "tlb.pages": 40, "tlb.invlpg_ns": 50,
        "tlb.handler_fixed_ns": 600, "tlb.full_flush_ns": 300, "ipi.send_ns": 0,
    })  # fmt: skip
    assert np.all(s[:, K.S_SL] == 600 + 300)  # above the ceiling: fixed + one full flush


def test_common_delivery_is_shared_by_the_targets(tmp_path: Path) -> None:
    # Delivery = a shared exponential part only: every target of a fan-out arrives together, so
    # T − S_L (no send cost, zero handler) is that one draw, not the maximum over 4 draws.
    mean = 1000.0
    s = _samples(tmp_path, 20000, **{"ipi.send_ns": 0, "ipi.delivery_common_ns": {"dist": "exponential", "mean": mean}})
    tail = s[:, K.S_T] - s[:, K.S_SL]
    # exponential(1000) vs max of 4: means 1000 and 1000 * (1 + 1/2 + 1/3 + 1/4) = 2083;
    # standard error of the mean of 20,000 exponentials is 7 ns
    assert abs(tail.mean() - mean) < 6 * mean / np.sqrt(len(tail))


def test_invlpgb_broadcast_replaces_the_ipis(tmp_path: Path) -> None:
    common = {
        "workload.call": "tlb_flush", "workload.mm_cpus": None, "tlb.mechanism": "invlpgb",
        "tlb.invlpgb_ns": 50, "tlb.invlpgb_count_max": 8, "tlb.tlbsync_ns": 300,
        "policies": ["preempt_off", "preemptible_wait"], "workload.caller.preemptible": 1.0,
        "workload.caller.preempt_disabled": 0.0,
    }  # fmt: skip
    s = _samples(tmp_path, **common, **{"tlb.pages": 20})
    assert np.all(s[:, K.S_TARGETS] == 0)
    assert np.all(s[:, K.S_T] == 3 * 50 + 300)  # ceil(20 / 8) INVLPGBs, then TLBSYNC
    assert np.all(s[:, K.N_SAMPLE_COLS + 1] == s[:, K.S_T])  # preemptible_wait: nothing to wait preemptibly
    s = _samples(tmp_path, **common, **{"tlb.pages": 40})
    assert np.all(s[:, K.S_T] == 50 + 300)  # above the ceiling: one flush-all INVLPGB
    # an mm on fewer than 4 CPUs has no global ASID: IPIs as before (sender + 2 others)
    s = _samples(tmp_path, **{**common, "tlb.pages": 20, "workload.mm_cpus": 2})
    assert np.all(s[:, K.S_TARGETS] == 2)


# ---- smp_call_function_single() (docs/model.md 9.37) ----------------------------------------------

SINGLE = {
    "workload.call": "single", "costs.entry_ns": 30, "costs.queue_ns": 20, "costs.irq_entry_ns": 150,
    "costs.func_ns": 50, "ipi.delivery_ns": 400, "cache.transfer_ns.llc": 40, "cache.transfer_ns.remote": 120,
    "ipi.cross_socket_ns": 90, "remote.idle.exit_ns": 1000,
}  # fmt: skip
FOUR = ["preempt_off", "preemptible_wait", "atomic_alloc", "cpus_read_lock"]


def _single_closed_form(t: float, cross: float = 0.0, wait: float = 0.0) -> tuple[float, float]:
    """(S, T) of one single call, every cost constant, a target whose line transfer is ``t``."""
    s = 30 + 20 + t + SEND  # entry, queue (llist_add into the target's queue line), one ICR write
    c = s + 400 + cross + wait + 150 + 50 + t  # delivery, remote state, entry, func, csd read
    return s, c + t  # the wait reads the csd unlock back


def test_single_call_is_one_target_with_the_closed_form_timeline(tmp_path: Path) -> None:
    # run_local, mm_cpus and target_prob are those of the baseline (false, 4, 1) or deliberately
    # set otherwise: a single call ignores them (one target, no local run)
    s = _samples(tmp_path, **SINGLE, **{"workload.run_local": True, "workload.target_prob": 0.3})
    assert np.all(s[:, K.S_TARGETS] == 1)
    S, T = _single_closed_form(40)
    assert np.all(s[:, K.S_S] == S) and np.all(s[:, K.S_SL] == S)  # L = 0: nothing runs locally
    assert np.all(s[:, K.S_T] == T)


def test_single_call_target_is_uniform_among_the_others(tmp_path: Path) -> None:
    # 2 sockets of 4: from any sender 4 of the 7 other CPUs are on the other socket
    n = 20_000
    s = _samples(tmp_path, n, **SINGLE, **{"machine.sockets": 2, "machine.cpus_per_llc": 4})
    near, far = _single_closed_form(40)[1], _single_closed_form(120, cross=90)[1]
    remote = s[:, K.S_T] == far
    assert np.all(remote | (s[:, K.S_T] == near))
    p = 4 / 7  # binomial: within 5 standard errors
    assert abs(remote.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_polling_idle_target_gets_no_ipi(tmp_path: Path) -> None:
    # every target idles polling: the send is the set_nr_if_polling() line, not an ICR write, and
    # the handler starts one transfer later, without delivery, C-state exit or interrupt entry
    s = _samples(tmp_path, **SINGLE, **{"remote.idle.fraction": 1.0, "remote.idle.polling_prob": 1.0})
    assert np.all(s[:, K.S_S] == 30 + 20 + 40 + 40)
    assert np.all(s[:, K.S_T] == 30 + 20 + 40 + 40 + 40 + 50 + 40 + 40)
    # half of the idle time polling: the other half pays the exit and the IPI path
    n = 20_000
    s = _samples(tmp_path, n, **SINGLE, **{"remote.idle.fraction": 1.0, "remote.idle.polling_prob": 0.5})
    polled = s[:, K.S_T] == 30 + 20 + 40 + 40 + 40 + 50 + 40 + 40
    assert np.all(polled | (s[:, K.S_T] == _single_closed_form(40, wait=1000)[1]))
    assert abs(polled.mean() - 0.5) < 5 * np.sqrt(0.25 / n)
    # a many-call ignores the key (its multi-target IPI path has no polling check)
    s = _samples(tmp_path, **{**SINGLE, "workload.call": "generic", "remote.idle.fraction": 1.0,
                              "remote.idle.polling_prob": 1.0})  # fmt: skip
    assert np.all(s[:, K.S_S] == 30 + 4 * (20 + 40) + 4 * SEND)


def test_single_call_policies_and_no_reentry_spin(tmp_path: Path) -> None:
    # a rate that gives many-calls a large re-entry probability, alloc and cpus_read_lock costs,
    # half the callers preemptible: the stack csd leaves nothing to spin on, no mask to allocate
    over = {**SINGLE, "policies": FOUR, "policy.reentry": "bound", "workload.rate_hz": 200_000,
            "policy.alloc_ns": 500, "policy.alloc_fail_prob": 1.0, "policy.cpus_read_lock_ns": 300,
            "workload.caller.preemptible": 0.5, "workload.caller.preempt_disabled": 0.5}  # fmt: skip
    params = build_zero_params(tmp_path, {"samples": 2000, "ipi.send_ns": SEND, **over})
    assert not compile_model(params).needs_reentry
    s = _samples(tmp_path, **over)
    S, T = _single_closed_form(40)
    assert np.all(s[:, K.S_SPIN] == 0)
    pre = s[:, K.S_CONTEXT] == K.CTX_PREEMPTIBLE
    assert pre.any() and (~pre).any()
    P, H = s[:, K.N_SAMPLE_COLS : K.N_SAMPLE_COLS + 4], s[:, K.N_SAMPLE_COLS + 4 :]
    assert np.all(P[:, 0] == T) and np.all(H[:, 0] == T)  # mainline: put_cpu() after the wait
    for i in (1, 2, 3):  # the series' early put_cpu(); no alloc_ns, failure or cpus_read_lock_ns
        assert np.all(P[pre, i] == S) and np.all(H[pre, i] == S)
        assert np.all(P[~pre, i] == T) and np.all(H[~pre, i] == T)
    # csdlock_debug: __csd_lock_wait() runs under guard(preempt), pinned like the many-call wait
    s = _samples(tmp_path, **over, **{"kernel.csdlock_debug": True})
    assert np.all(s[:, K.N_SAMPLE_COLS : K.N_SAMPLE_COLS + 8] == T)


# ---- the sender's vCPU preempted by the host during its wait (docs/model.md 9.39) ---------------


def test_sender_vcpu_preemption_adds_poisson_slices_to_the_wait(tmp_path: Path) -> None:
    # a wait of constant running time W = T0 − S_L, rate r, constant slice L: N ~ Poisson(r·W) slices,
    # T = T0 + N·L exactly, E[T] = T0 + r·W·L; the guest sees no preemption: preempt_off's P and H
    # keep the slices, the series' early put_cpu() (P = H = S_L) does not
    n, rate, slice_ns = 20_000, 1e6, 10_000.0
    over = {**SINGLE, "policies": FOUR, "workload.caller.preemptible": 0.5, "workload.caller.preempt_disabled": 0.5,
            "ipi.sender_preempt_hz": rate, "remote.vcpu_preempted.length": slice_ns}  # fmt: skip
    s = _samples(tmp_path, n, **over)
    S, T0 = _single_closed_form(40)
    mean_count = rate * 1e-9 * (T0 - S)
    count = (s[:, K.S_T] - T0) / slice_ns
    assert np.all(count == np.round(count)) and count.min() == 0
    assert abs(count.mean() - mean_count) < 5 * np.sqrt(mean_count / n)  # Poisson: variance = mean
    assert abs((count == 0).mean() - np.exp(-mean_count)) < 5 * np.sqrt(np.exp(-mean_count) / n)
    assert np.all(s[:, K.S_SL] == S)
    pre = s[:, K.S_CONTEXT] == K.CTX_PREEMPTIBLE
    P, H = s[:, K.N_SAMPLE_COLS : K.N_SAMPLE_COLS + 4], s[:, K.N_SAMPLE_COLS + 4 :]
    assert np.all(P[:, 0] == s[:, K.S_T]) and np.all(H[:, 0] == s[:, K.S_T])
    for i in (1, 2, 3):
        assert np.all(P[pre, i] == S) and np.all(H[pre, i] == S)
        assert np.all(P[~pre, i] == s[~pre, K.S_T]) and np.all(H[~pre, i] == s[~pre, K.S_T])
    # at the default 0 the key is left out of the resolved parameters (point ids stand) and T is T0
    params = build_zero_params(tmp_path, {"samples": 100, "ipi.send_ns": SEND, **SINGLE, "ipi.sender_preempt_hz": 0})
    assert "sender_preempt_hz" not in params.resolved["ipi"]
    assert "sender_preempt_hz" in build_zero_params(tmp_path, {"ipi.send_ns": SEND, **over}).resolved["ipi"]
    assert np.all(_samples(tmp_path, 200, **{**over, "ipi.sender_preempt_hz": 0})[:, K.S_T] == T0)


def test_reentry_spin_leaves_the_host_slices_out(tmp_path: Path) -> None:
    # the csds stay locked for T0 − S_L (the targets' unlocks), not for the sender's host slices:
    # the pilot's E[T − S_L] that sets ρ_w is the constant wait W although many T carry slices
    over = {**SINGLE, "workload.call": "generic", "workload.mm_cpus": 1, "policy.reentry": "bound",
            "workload.rate_hz": 100_000, "ipi.sender_preempt_hz": 1e6, "remote.vcpu_preempted.length": 10_000,
            "policies": FOUR, "kernel.preemption": "full", "workload.caller.preemptible": 1.0,
            "workload.caller.preempt_disabled": 0.0}  # fmt: skip
    params = build_zero_params(tmp_path, {"samples": 4000, "ipi.send_ns": SEND, **over})
    res = run_point(params, threads=1, keep_samples=True)
    assert res.samples is not None
    wait = res.samples[:, K.S_T] - res.samples[:, K.S_SL]
    w0 = wait.min()
    assert np.all((wait - w0) % 10_000 == 0) and (wait > w0).mean() > 0.2
    assert np.isclose(res.wait_tail_mean, w0, rtol=1e-12)
