"""What ``mcsmp system`` prints and plots: one row per (sweep point, policy).

Distributions are the fan-out engine's :class:`~mcsmp.sim.histogram.Histogram` (quantiles with
distribution-free intervals, means with batch-means intervals over replications); throughput is a
t-interval over replications; race rates use the union of the exact Poisson (Garwood) interval
and the t-interval over replications (:func:`mcsmp.system.run.rate_interval`: races come in bursts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..sim.histogram import Z95
from .run import PolicyRun, SystemResult, t_interval

__all__ = ["figure", "policy_row", "text_table"]


def _q(run: PolicyRun, metric: str, q: float) -> tuple[float, float, float]:
    h = run.histogram(metric)
    if h.n == 0:
        return math.nan, math.nan, math.nan
    r = h.quantile(q)
    return r.value, r.low, r.high


def _q_zero_atom(run: PolicyRun, metric: str, q: float, zeros: int) -> tuple[float, float, float]:
    """Quantile of a metric whose first ``zeros`` order statistics are exactly 0 (calls that did
    not spin): where the histogram's rank (and its interval's ranks, as in Histogram.quantile)
    fall among them the answer is 0, not a point inside the [0, 1) ns bucket."""
    value, low, high = _q(run, metric, q)
    n = run.histogram(metric).n
    if n == 0:
        return value, low, high
    half = Z95 * math.sqrt(n * q * (1.0 - q))
    if max(math.ceil(n * q), 1) <= zeros:
        value = 0.0
    if math.floor(n * q - half) <= zeros:
        low = 0.0
    if math.ceil(n * q + half) + 1 <= zeros or zeros == n:  # no call spun: every order statistic is 0
        high = 0.0
    return value, low, high


def _race_rate_over_replications(run: PolicyRun) -> tuple[float, float, float]:
    """Race rate with the t-interval over replications alone (shown with CPU hotplug, where the rate
    depends on the online set)."""
    mean, lo, hi = t_interval(run.race_counts() / run.seconds_per_rep)
    return float(mean), float(lo), float(hi)


def _mean(run: PolicyRun, metric: str) -> tuple[float, float, float]:
    h = run.histogram(metric)
    if h.n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = h.mean_interval()
    return h.mean, lo, hi


def policy_row(result: SystemResult, policy: str, label: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every reported figure of one policy, as plain data (also the ``--json`` output)."""
    run = result.runs[policy]
    tp = run.total_throughput()
    per_cpu, per_lo, per_hi = run.throughput()
    n, rate, lo, hi = run.race_rate()
    mttc = run.time_to_corruption()
    queued = run.counter("csds_queued")
    spinless = run.histogram("spin_ns").n - run.counter("spins") - run.counter("second_spins")
    return {
        **(label or {}),
        "policy": policy,
        "simulated_s": run.exposure_s,
        "ops_per_s": tp,
        "ops_per_s_per_cpu": [list(map(float, x)) for x in zip(per_cpu, per_lo, per_hi, strict=True)],
        "call_ns_p50": _q(run, "call_ns", 0.5),
        "call_ns_p99": _q(run, "call_ns", 0.99),
        "call_ns_mean": _mean(run, "call_ns"),
        "preempt_off_ns_p99": _q(run, "preempt_off_ns", 0.99),
        "preempt_off_ns_mean": _mean(run, "preempt_off_ns"),
        "remote_wait_ns_p99": _q(run, "remote_wait_ns", 0.99),
        "spin_ns_mean": _mean(run, "spin_ns"),
        "spin_ns_p99": _q_zero_atom(run, "spin_ns", 0.99, spinless),
        "wakeup_ns_p99": _q(run, "wakeup_ns", 0.99),
        "second_preempt_off_ns_p99": _q(run, "second_preempt_off_ns", 0.99),
        "second_spin_ns_mean": _mean(run, "second_spin_ns"),
        "queue_depth_mean": _mean(run, "queue_depth"),
        "calls": run.counter("calls"),
        "second_calls": run.counter("second_calls"),
        "calls_with_spin": run.counter("spins"),
        "second_calls_with_spin": run.counter("second_spins"),
        "csds_queued": queued,
        "ipis_sent": run.counter("ipis_sent"),
        "coalesced": run.counter("coalesced"),
        "coalesced_fraction": run.counter("coalesced") / queued if queued else math.nan,
        "early_returns": run.counter("early_returns"),
        "full_flushes": run.counter("full_flushes"),
        "races": n,
        "race_rate_per_s": (rate, lo, hi),
        "mean_time_to_corruption_s": mttc,
        "events": run.counter("events"),
        "heap_overflow": run.counter("heap_overflow"),
        # CPU hotplug (system.hotplug_interval_s)
        "cpus_offlined": run.counter("cpus_offlined"),
        "offline_calls": run.counter("offline_calls"),
        "mean_offline_cpus": run.counter("offline_cpu_ns") / (run.exposure_s * 1e9),
        "race_rate_over_replications": _race_rate_over_replications(run),
    }


def _fmt(v: float) -> str:
    if v != v:
        return "-"
    if v == math.inf:
        return "inf"
    a = abs(v)
    if a >= 1e6 or (0 < a < 1e-2):
        return f"{v:.3g}"
    return f"{v:.4g}"


def _ci(t: Sequence[float]) -> str:
    return f"{_fmt(t[0])} [{_fmt(t[1])}, {_fmt(t[2])}]"


def text_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """A block per row: the swept values, then each figure with its 95% interval."""
    out = []
    for r in rows:
        head = " ".join(f"{k}={r[k]}" for k in keys)
        out.append(f"== {head + '  ' if head else ''}policy {r['policy']}  ({r['simulated_s']:.3g} simulated s, {r['events']:,} events)")
        out.append(f"  throughput (ops/s, all CPUs)   {_ci(r['ops_per_s'])}")
        out.append(f"  call_ns p50 / p99 / mean       {_ci(r['call_ns_p50'])} / {_ci(r['call_ns_p99'])} / {_ci(r['call_ns_mean'])}")
        out.append(f"  preempt_off_ns p99 / mean      {_ci(r['preempt_off_ns_p99'])} / {_ci(r['preempt_off_ns_mean'])}")
        out.append(f"  remote_wait_ns p99             {_ci(r['remote_wait_ns_p99'])}")
        out.append(f"  csd_lock spin_ns mean / p99    {_ci(r['spin_ns_mean'])} / {_ci(r['spin_ns_p99'])}"
                   f"  (calls with a spin: {r['calls_with_spin']:,} of {r['calls']:,}; second task {r['second_calls_with_spin']:,} of {r['second_calls']:,})")  # fmt: skip
        if r["second_calls"]:
            out.append(f"  second task wakeup_ns p99      {_ci(r['wakeup_ns_p99'])}; its preempt_off_ns p99 {_ci(r['second_preempt_off_ns_p99'])}; "
                       f"its csd_lock spin_ns mean {_ci(r['second_spin_ns_mean'])}")  # fmt: skip
        out.append(f"  IPIs sent {r['ipis_sent']:,}, csds queued {r['csds_queued']:,}, coalesced {r['coalesced']:,} "
                   f"({_fmt(100 * r['coalesced_fraction'])} %); queue depth per handler mean {_ci(r['queue_depth_mean'])}; "
                   f"flush_tlb_func early returns {r['early_returns']:,}, full flushes {r['full_flushes']:,}")  # fmt: skip
        mt = r["mean_time_to_corruption_s"]
        out.append(f"  csd races {r['races']:,}: rate/s {_ci(r['race_rate_per_s'])}; mean time to corruption s {_ci(mt)}")
        if r["cpus_offlined"]:
            out.append(f"  CPU hotplug: {r['cpus_offlined']:,} offlined, {_fmt(r['mean_offline_cpus'])} CPUs offline on average; "
                       f"{r['offline_calls']:,} calls met an offline CPU; race rate/s over replications "
                       f"{_ci(r['race_rate_over_replications'])}")  # fmt: skip
        if r["heap_overflow"]:
            out.append("  WARNING: the event queue overflowed; this replication stopped early")
    return "\n".join(out)


def figure(rows: Sequence[dict[str, Any]], x_key: str, path: Path) -> list[Path]:
    """Throughput and race rate against the swept key ``x_key``, one line per policy."""
    from ..plots.figure import new_figure, save, style_of

    fig = new_figure(9.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    races = any(r["races"] > 0 for r in rows)  # else the second panel shows the call's quantiles
    for policy in dict.fromkeys(r["policy"] for r in rows):
        pr = [r for r in rows if r["policy"] == policy]
        xs = [float(r[x_key]) for r in pr]
        style = {k: v for k, v in style_of(policy).items() if k in ("color", "linestyle")}
        tp = [r["ops_per_s"] for r in pr]
        ax1.errorbar(xs, [t[0] for t in tp], yerr=[[t[0] - t[1] for t in tp], [min(t[2], 1e30) - t[0] for t in tp]],
                     marker="o", ms=3, capsize=2, label=policy, **style)  # fmt: skip
        if races:
            seen = [(x, r["race_rate_per_s"]) for x, r in zip(xs, pr, strict=True) if r["races"] > 0]
            if seen:
                ax2.errorbar([x for x, _ in seen], [t[0] for _, t in seen], yerr=[[t[0] - t[1] for _, t in seen],
                             [t[2] - t[0] for _, t in seen]], marker="o", ms=3, capsize=2, label=policy, **style)  # fmt: skip
            # no race seen: a log axis has no 0, so draw the exact upper bound as a down arrow
            none = [(x, r["race_rate_per_s"][2]) for x, r in zip(xs, pr, strict=True) if r["races"] == 0]
            if none:
                ax2.plot([x for x, _ in none], [hi for _, hi in none], marker="v", linestyle="none",
                         color=style.get("color"), label=f"{policy}: 0 races (95% upper bound)")  # fmt: skip
        else:
            for q, ls in (("call_ns_p50", "-"), ("call_ns_p99", ":")):
                ax2.plot(xs, [r[q][0] for r in pr], marker="o", ms=3, color=style.get("color"), linestyle=ls,
                         label=f"{policy} {q[-3:]}")  # fmt: skip
    ax1.set_xlabel(x_key)
    ax1.set_ylabel("operations / s (all CPUs)")
    ax1.set_title("throughput (95% CI)")
    ax2.set_xlabel(x_key)
    if races:
        ax2.set_ylabel("csd races / s")
        ax2.set_title("csd-lock races (95% CI)")
        ax2.set_yscale("log")
        ax2.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax2.xaxis.set_minor_formatter(NullFormatter())  # the 2..9 minor labels overlap
        ax2.legend(fontsize=7)
    else:
        ax2.set_ylabel("call_ns (ns)")
        ax2.set_title("call_ns: p50 solid, p99 dotted")
        ax2.set_yscale("log")
        ax2.legend(fontsize=7)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path.parent, path.stem, formats=("png",))
