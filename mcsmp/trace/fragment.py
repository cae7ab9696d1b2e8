"""Turn paired csd traces into an mcsmp parameter fragment, a CSV report and a CCDF plot.

Mapping onto docs/model.md (§1, §8):

- queue → entry (``delivery``) becomes ``ipi.delivery_ns``. In a real trace this interval already
  contains the rest of the queue phase, the ICR write, the interrupt entry and any wait for an
  irqs-off section or an idle exit on the target, so the fragment switches off the model terms that
  would count those twice: ``ipi.send_ns``, ``costs.irq_entry_ns``, ``remote.irq_off.fraction`` and
  ``remote.idle.fraction``.
- entry → exit (``handler``) of ``flush_tlb_func`` becomes a ``tlb_flush`` fragment (docs/model.md
  9.29): the pages each handler invalidated come from the target's ``tlb_flush`` "remote
  shootdown" event, the per-page cost from the trace's own handlers at two or more page counts
  (a weighted least-squares line through the medians), else from a component figure
  (``invlpg_ns``, NUMBERS §4); ``tlb.handler_fixed_ns`` is then each handler minus its pages'
  INVLPGs, and a full flush's cost its handler minus the fixed part's median. The handler already
  holds the target's csd and request reads, so the fragment zeroes ``cache.transfer_ns`` and
  ``cache.line_serialize_ns``. Any other function (or ``call="generic"``) becomes
  ``costs.func_ns`` with ``workload.call: generic``.
- ``machine`` comes from the topology recorded in the trace header.

Per-function and per-class detail and every count goes into comments (unknown keys are errors
in mcsmp parameter files) and into the report directory.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io.atomic import write_atomic
from .parse import REASONS, TraceResult

__all__ = [
    "QUANTILE_LEVELS",
    "QUANTITIES",
    "Combined",
    "DeliverySplit",
    "build_fragment",
    "combine",
    "delivery_split",
    "quantile_table",
    "write_report",
]

# Denser in the tail, where the fan-out maximum lives; levels finer than 1/n are dropped.
QUANTILE_LEVELS = (
    0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
    0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0,
)  # fmt: skip
QUANTITIES = ("delivery", "handler", "completion")
_REPORT_Q = (0.5, 0.9, 0.99, 0.999)
_MIN_PAIRS = 20
# Component figure for the per-page cost when a capture has one page count only: NUMBERS §4 [K],
# arch/x86/mm/tlb.c's "about 100 ns per single-page flush" (tlb_single_page_flush_ceiling comment).
INVLPG_COMPONENT_NS = 100.0
FULL_FLUSH_PAGES = 1024  # tlb.pages value standing for a full flush (any count above the ceiling)


@dataclass
class Combined:
    """Pairs and counts of several trace files, concatenated.

    Attributes
    ----------
    results : list of TraceResult
    func, cls : ndarray of str
    values : dict
        Quantity name (:data:`QUANTITIES`) to ndarray of ns, aligned with ``func``/``cls``.
    ipi : ndarray of int8
    local_func : ndarray of str
    local_handler_ns : ndarray
    """

    results: list[TraceResult]
    func: np.ndarray
    cls: np.ndarray
    values: dict[str, np.ndarray]
    ipi: np.ndarray
    local_func: np.ndarray
    local_handler_ns: np.ndarray
    pages: np.ndarray  # per pair: pages invalidated, -1 full flush, 0 unknown
    fanout: np.ndarray  # per pair: its fan-out, unique over the files
    since_previous: np.ndarray  # per pair: ns since its target's previous paired call (NaN: first)

    def counter(self, name: str) -> Counter:
        """Sum a Counter attribute of the results (``queued``, ``unpaired``, …)."""
        total: Counter = Counter()
        for r in self.results:
            total.update(getattr(r, name))
        return total


def combine(results: Sequence[TraceResult], window: tuple[float, float] | None = None) -> Combined:
    """Concatenate the pairs of several parsed traces.

    Parameters
    ----------
    results : sequence of TraceResult
    window : (start, end) in seconds, optional
        Keep only the remote calls queued in ``[start, end)`` seconds after each file's first
        event (the local calls are kept whole; the counts of unpaired calls are not windowed).

    Returns
    -------
    Combined
    """
    rs = list(results)
    keep = {id(r): np.ones(len(r.t_queue), dtype=bool) for r in rs}
    if window is not None:
        lo, hi = window[0] * 1e9, window[1] * 1e9
        keep = {id(r): (r.t_queue >= lo) & (r.t_queue < hi) for r in rs}

    def cat(get: Callable[[TraceResult], np.ndarray], paired: bool = True) -> np.ndarray:
        if not rs:
            return np.array([])
        return np.concatenate([get(r)[keep[id(r)]] if paired else get(r) for r in rs])

    return Combined(
        results=rs,
        func=cat(lambda r: r.func),
        cls=cat(lambda r: r.cls),
        values={
            "delivery": cat(lambda r: r.delivery_ns),
            "handler": cat(lambda r: r.handler_ns),
            "completion": cat(lambda r: r.completion_ns),
        },
        ipi=cat(lambda r: r.ipi),
        local_func=cat(lambda r: np.array(r.local_func, dtype=object), paired=False),
        local_handler_ns=cat(lambda r: r.local_handler_ns, paired=False),
        pages=cat(lambda r: r.pages if len(r.pages) == len(r.t_queue) else np.zeros(len(r.t_queue), np.int64)),
        fanout=cat(lambda r: (r.fanout if len(r.fanout) == len(r.t_queue) else -1 - np.arange(len(r.t_queue)))
                   + (rs.index(r) << 40)),
        since_previous=cat(_since_previous),
    )


def _since_previous(r: TraceResult) -> np.ndarray:
    """Per pair, the time since the same target's previous paired call was queued (NaN for the first)."""
    out = np.full(len(r.t_queue), np.nan)
    for target in np.unique(r.target):
        idx = np.flatnonzero(r.target == target)
        idx = idx[np.argsort(r.t_queue[idx], kind="stable")]
        out[idx[1:]] = np.diff(r.t_queue[idx])
    return out


def _spacing_notes(delivery: np.ndarray, since: np.ndarray) -> list[str]:
    """How often the capture IPIs a target, and delivery after short and long gaps (docs/traces.md)."""
    ok = ~np.isnan(since)
    if ok.sum() < _MIN_PAIRS:
        return []
    gap, d = since[ok], delivery[ok]
    med = float(np.median(gap))
    long = gap > 2 * med

    def q(x: np.ndarray) -> str:
        return "/".join(f"{v / 1e3:.2f}" for v in np.quantile(x, (0.5, 0.99))) if len(x) else "-"

    return [
        f"IPI spacing: a target's calls came {med / 1e3:.1f} us apart (median; p10-p90 "
        f"{np.quantile(gap, 0.1) / 1e3:.1f}-{np.quantile(gap, 0.9) / 1e3:.1f} us). Delivery p50/p99 after gaps",
        f"<= 2x median: {q(d[~long])} us (n={int((~long).sum())}); after longer ones: {q(d[long])} us "
        f"(n={int(long.sum())}).",
        "On the 2-vCPU KVM guest the delivery tail grows with the spacing (docs/traces.md, 'Delivery and",
        "IPI spacing'): the distribution holds for workloads that IPI a target about as often.",
    ]


def quantile_table(x: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS) -> dict[float, float]:
    """Empirical quantiles in the ``empirical {quantiles: …}`` form of docs/model.md §8.

    Parameters
    ----------
    x : ndarray
        Samples in ns (at least one).
    levels : sequence of float
        Candidate levels; those above ``1 − 1/n`` (other than 1.0) are dropped because the sample
        cannot resolve them.

    Returns
    -------
    dict
        Level to value (ns, 0.1 ns precision), including 0.0 and 1.0, non-decreasing.
    """
    n = len(x)
    if n == 0:
        raise ValueError("no samples")
    qs = [q for q in levels if q in (0.0, 1.0) or q <= 1.0 - 1.0 / n]
    vals = np.round(np.quantile(np.asarray(x, dtype=float), qs), 1)
    vals = np.maximum.accumulate(vals)  # rounding cannot break order, but be explicit
    return {float(q): float(v) for q, v in zip(qs, vals, strict=True)}


def _choose_function(c: Combined, func: str | None) -> str:
    counts = Counter(c.func.tolist())
    if func is not None:
        if counts[func] == 0:
            known = ", ".join(f"{f} ({n})" for f, n in counts.most_common()) or "none"
            raise UserError(f"--func {func}: no paired remote calls of it (paired: {known})")
        return func
    if not counts:
        files = ", ".join(r.path for r in c.results)
        raise UserError(f"{files}: no paired remote csd calls to build distributions from")
    return counts.most_common(1)[0][0]  # the capture's main function (ties: the first seen)


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _stats_row(x: np.ndarray) -> list[str]:
    if len(x) == 0:
        return [""] * (len(_REPORT_Q) + 2)
    q = np.quantile(x, _REPORT_Q)
    return [_fmt(v) for v in q] + [_fmt(float(np.max(x))), _fmt(float(np.mean(x)))]


def _machine(c: Combined) -> tuple[dict[str, int] | None, str]:
    """``machine`` keys from the recorded topology, or from ftrace's CPU count, or None and why."""
    topos = [r.header.topology for r in c.results]
    online = {r.header.values.get("online_cpus") for r in c.results}
    if not topos[0] and len(online) == 1 and None not in online:
        n = int(online.pop())
        return {"cpus": n, "sockets": 1, "cpus_per_llc": n, "smt": 1}, (
            f"topology not recorded: machine.cpus = {n} from the ftrace header (#P), one socket and LLC assumed"
        )
    if not topos[0] or any(t != topos[0] for t in topos):
        return None, "topology not recorded (or differs between files): machine keys left out"
    t = topos[0]
    if any(v.thread_siblings is None or v.llc is None or v.package is None for v in t.values()):
        return None, "topology incomplete: machine keys left out"
    smt = {len(v.thread_siblings) for v in t.values()}  # type: ignore[arg-type]
    llc = {len(v.llc) for v in t.values()}  # type: ignore[arg-type]
    if len(smt) != 1 or len(llc) != 1:
        return None, "irregular topology: machine keys left out"
    return {
        "cpus": len(t),
        "sockets": len({v.package for v in t.values()}),
        "cpus_per_llc": llc.pop(),
        "smt": smt.pop(),
    }, ""


def _summary_comments(c: Combined, func: str) -> list[str]:
    queued, unpaired = c.counter("queued"), c.counter("unpaired")
    reasons: Counter = Counter()
    for (_, reason), n in unpaired.items():
        reasons[reason] += n
    lines = ["mcsmp parameter fragment built by 'mcsmp trace import' from real ftrace csd traces", "files:"]
    for r in c.results:
        h = r.header
        hz = f", tsc_hz {h.tsc_hz:.0f}" if h.tsc_hz else ""
        lines.append(
            f"  {r.path}: clock {h.clock}{hz}, kernel {h.values.get('kernel', '?')}, "
            f"{h.values.get('nr_cpus', '?')} cpus, {r.events} events, {r.paired} pairs"
            + (f", wrapped (cut at {r.wrap_cut_ns / 1e3:.1f} us)" if r.wrapped and r.wrap_cut_ns else "")
            + (f", command: {h.values['command']}" if "command" in h.values else "")
        )
    via = Counter(c.ipi.tolist())
    lines += [
        f"remote calls queued: {sum(queued.values())}; paired: {len(c.func)} "
        f"(IPI sent: {via[1]}, no IPI needed: {via[0]}, unknown: {via[-1]})",
        "unpaired by reason: " + (", ".join(f"{k}={reasons[k]}" for k in REASONS if reasons[k]) or "none"),
        f"local calls on the sender (csd=0, excluded): {len(c.local_func)}; "
        f"handler entries without a queue event: {sum(c.counter('entries_without_queue').values())}; "
        f"exits without entry: {sum(c.counter('exits_without_entry').values())}; "
        f"lost events: {sum(r.lost_events for r in c.results)}",
        f"TLB shootdowns started (tlb_flush 'remote IPI send'): {sum(r.shootdowns for r in c.results)}; "
        f"of them without a remote request (every target lazy or PV-deferred, or polled): "
        f"{sum(r.shootdowns_without_request for r in c.results)}",
        f"distributions below: function {func}, all distance classes pooled, n={int(np.sum(c.func == func))}",
        "",
        f"{'function':<24} {'class':<7} {'quantity':<10} {'n':>7} {'p50':>9} {'p90':>9} {'p99':>9} "
        f"{'p99.9':>9} {'max':>9}   (ns)",
    ]
    for f, cls, name, x in _groups(c):
        s = _stats_row(x)
        lines.append(f"{f:<24} {cls:<7} {name:<10} {len(x):>7} " + " ".join(f"{v:>9}" for v in s[:-1]))
    for f in sorted(set(queued) | {f for f, _ in unpaired}):
        per = ", ".join(f"{reason}={unpaired[(f, reason)]}" for reason in REASONS if unpaired[(f, reason)])
        lines.append(f"{f}: queued {queued[f]}, unpaired: {per or 'none'}")
    return lines


def _groups(c: Combined) -> list[tuple[str, str, str, np.ndarray]]:
    out = []
    for f in sorted(set(c.func.tolist())):
        for cls in sorted(set(c.cls[c.func == f].tolist())):
            sel = (c.func == f) & (c.cls == cls)
            for name in QUANTITIES:
                out.append((f, cls, name, c.values[name][sel]))
    for f in sorted(set(c.local_func.tolist())):
        out.append((f, "local", "handler", c.local_handler_ns[c.local_func == f]))
    return out


def _dist_yaml(table: dict[float, float], indent: str) -> list[str]:
    lines = [f"{indent}dist: empirical", f"{indent}quantiles:"]
    lines += [f"{indent}  {q!r}: {_fmt(v)}" for q, v in table.items()]
    return lines


def build_fragment(
    results: Sequence[TraceResult], func: str | None = None, window: tuple[float, float] | None = None,
    call: str = "auto", invlpg_ns: float | None = None,
) -> tuple[str, str]:
    """Build the YAML parameter fragment.

    Parameters
    ----------
    results : sequence of TraceResult
        Parsed traces (pairs are pooled over files).
    func : str, optional
        The csd function whose pairs make the distributions; default the most frequent one.
    window : (start, end) in seconds, optional
        Only the calls queued in this window of each file (see :func:`combine`).
    call : {"auto", "tlb_flush", "generic"}
        ``auto``: a ``tlb_flush`` fragment for ``flush_tlb_func`` pairs whose page counts the
        trace shows, else ``generic``.
    invlpg_ns : float, optional
        Per-page cost to use instead of the trace's own estimate (required in effect when the
        capture has one page count: default :data:`INVLPG_COMPONENT_NS`).

    Returns
    -------
    (str, str)
        The YAML text (comments first) and the function used.

    Raises
    ------
    UserError
        No paired remote calls (of ``func``).
    """
    c = combine(results, window)
    func = _choose_function(c, func)
    sel = c.func == func
    delivery, handler = c.values["delivery"][sel], c.values["handler"][sel]
    notes = _summary_comments(c, func)
    if len(delivery) < _MIN_PAIRS:
        notes.append(f"WARNING: only {len(delivery)} pairs; the tail quantiles are not meaningful")
    pages = c.pages[sel]
    tlb = call == "tlb_flush" or (call == "auto" and func == "flush_tlb_func" and bool(np.any(pages != 0)))
    if tlb and not np.any(pages != 0):
        raise UserError("--call tlb_flush: the trace has no tlb_flush 'remote shootdown' events to count pages with")
    notes += [
        "",
        "Why these keys: queue->entry in a trace already spans the rest of the queue phase, the IPI",
        "send, interrupt entry and any irqs-off or idle wait on the target, so it becomes",
        "ipi.delivery_ns whole and the model terms it contains are switched off (ipi.send_ns,",
        "costs.irq_entry_ns, remote.irq_off.fraction, remote.idle.fraction).",
    ]
    if tlb:
        tlb_lines, tlb_notes = _tlb_keys(handler, pages, invlpg_ns)
        notes += tlb_notes
    else:
        notes.append("Handler time (entry->exit) becomes costs.func_ns, which only workload.call: generic uses.")
    notes += _spacing_notes(delivery, c.since_previous[sel])
    split = delivery_split(delivery, c.fanout[sel])
    notes += _split_notes(split, c.fanout[sel])
    if split is not None and split.var_common > 0:
        delivery = split.per_target
    if window is not None:
        notes.append(f"window: calls queued {window[0]:g} s to {window[1]:g} s after each file's first event")
    machine, why = _machine(c)
    if why:
        notes.append(why)
    text = [f"# {line}".rstrip() for line in notes]
    if machine:
        text.append("machine: {" + ", ".join(f"{k}: {v}" for k, v in machine.items()) + "}")
    if tlb:
        text += ["workload:", "  call: tlb_flush", "costs:", "  irq_entry_ns: 0", *tlb_lines]
    else:
        text += [
            "workload:",
            "  call: generic",
            "costs:",
            "  irq_entry_ns: 0",
            "  func_ns:",
            *_dist_yaml(quantile_table(handler), "    "),
        ]
    text += [
        "ipi:",
        "  send_ns: 0",
        "  delivery_ns:",
        *_dist_yaml(quantile_table(delivery), "    "),
        *(["  delivery_common_ns:", *_dist_yaml(quantile_table(split.common), "    ")]
          if split is not None and split.var_common > 0 else []),
        "remote:",
        "  irq_off: {fraction: 0.0}",
        "  idle: {fraction: 0.0}",
    ]
    return "\n".join(text) + "\n", func


@dataclass(frozen=True)
class DeliverySplit:
    """Method-of-moments split of delivery into a per-fan-out common part and per-target jitter.

    Attributes
    ----------
    fanouts, pairs : int
        Fan-outs with two or more paired targets, and their pairs (the only ones used).
    var_common, var_target : float
        Estimated variances (ns²) of the common part ``C`` and the per-target part ``X``;
        ``var_common`` is clipped at 0 (``raw_var_common`` keeps the unclipped estimate).
    raw_var_common : float
    mean : float
        Mean delivery of the pairs used (ns): ``E[C] + E[X]``.
    common, per_target : ndarray
        Samples for ``ipi.delivery_common_ns`` (one per fan-out) and ``ipi.delivery_ns`` (one per
        pair) with those variances and means adding up to ``mean`` (see :func:`delivery_split`).
    clipped : int
        Per-target samples below 0 that were set to 0.
    """

    fanouts: int
    pairs: int
    var_common: float
    var_target: float
    raw_var_common: float
    mean: float
    common: np.ndarray
    per_target: np.ndarray
    clipped: int


def delivery_split(delivery: np.ndarray, fanout: np.ndarray, min_fanouts: int = _MIN_PAIRS) -> DeliverySplit | None:
    """Split deliveries ``D_fj = C_f + X_fj`` by the within-fan-out covariance (docs/model.md 9.28).

    One-way random-effects ANOVA (Henderson's method I): with ``k_f`` paired targets in fan-out
    ``f``, ``N = Σ k_f`` and ``F`` fan-outs, ``MSW = Σ_f Σ_j (D_fj − D̄_f)² / (N − F)`` estimates
    ``Var X``; ``MSB = Σ_f k_f (D̄_f − D̄)² / (F − 1)`` has expectation ``Var X + n0 Var C`` with
    ``n0 = (N − Σ k_f² / N) / (F − 1)``, so ``Var C = (MSB − MSW) / n0``. That is the same moment as
    the covariance of two targets of one fan-out: ``Cov(D_fj, D_fk) = Var C`` for ``j ≠ k``.

    Assumes: the ``C_f`` are i.i.d. over fan-outs, the ``X_fj`` i.i.d. over targets and fan-outs
    (one distribution whatever the target's position, class or fan-out size) and independent of
    ``C``; the two add (as in the model, §1 step 7), so the moments are taken on the ns scale, not
    on logs. Only variances are identified: the common part's location is a convention, 0 for
    the fastest fan-out.

    Samples: each fan-out's mean deviation shrunk to the common part's variance,
    ``Ĉ_f = (D̄_f − D̄) · sqrt(Var C / (Var C + Var X / k_f))``, and each target's deviation from
    its fan-out's mean, ``X̂_fj = (D_fj − D̄_f) · sqrt(k_f / (k_f − 1))``, which has variance
    ``Var X``. The emitted common part is ``Ĉ_f − min Ĉ`` and the per-target part ``X̂_fj`` plus
    ``D̄`` minus the common part's mean (clipped at 0), so the means add up to ``D̄`` exactly; the
    variances hold in expectation. Their shapes are those deviations' shapes (an approximation: a
    fan-out's mean deviation also holds the average of its ``X``).

    Returns None with fewer than ``min_fanouts`` fan-outs of two or more paired targets.
    """
    _, inverse, counts = np.unique(fanout, return_inverse=True, return_counts=True)
    use = counts[inverse] >= 2
    fanouts = int(np.sum(counts >= 2))
    if fanouts < max(2, min_fanouts):
        return None
    d = np.asarray(delivery, dtype=float)[use]
    _, g, k = np.unique(inverse[use], return_inverse=True, return_counts=True)
    n, f = len(d), len(k)
    group_mean = np.bincount(g, weights=d) / k
    mean = float(d.mean())
    dev = d - group_mean[g]
    msw = float(np.sum(dev**2) / (n - f))
    msb = float(np.sum(k * (group_mean - mean) ** 2) / (f - 1))
    n0 = (n - np.sum(k.astype(float) ** 2) / n) / (f - 1)
    raw = (msb - msw) / n0
    var_c = max(raw, 0.0)
    shrink = np.sqrt(var_c / (var_c + msw / k)) if var_c > 0 else np.zeros(f)
    c_hat = (group_mean - mean) * shrink
    common = c_hat - c_hat.min()
    x_hat = dev * np.sqrt(k[g] / (k[g] - 1.0)) + (mean - common.mean())  # the means add up to D̄
    return DeliverySplit(
        fanouts=f, pairs=n, var_common=var_c, var_target=msw, raw_var_common=float(raw), mean=mean,
        common=common, per_target=np.maximum(x_hat, 0.0), clipped=int(np.sum(x_hat < 0)),
    )


def _split_notes(split: DeliverySplit | None, fanout: np.ndarray) -> list[str]:
    """Comment lines that say whether and how delivery was split (docs/model.md 9.28)."""
    sizes = np.unique(fanout, return_counts=True)[1]
    multi = int(np.sum(sizes >= 2))
    if multi == 0:
        return ["Delivery split (docs/model.md 9.28): not identifiable: one target per fan-out, so no",
                "covariance between the targets of a fan-out can be measured; ipi.delivery_common_ns stays 0",
                "(the default) and ipi.delivery_ns holds the whole delivery."]
    if split is None:
        return [f"Delivery split (docs/model.md 9.28): only {multi} fan-outs with two or more paired targets",
                f"(at least {_MIN_PAIRS} needed): not estimated; ipi.delivery_common_ns stays 0."]
    sd_c, sd_x = np.sqrt(split.var_common), np.sqrt(split.var_target)
    lines = [
        f"Delivery split (docs/model.md 9.28), method of moments over {split.fanouts} fan-outs with two or more",
        f"paired targets ({split.pairs} pairs; {int(np.sum(sizes == 1))} single-target fan-outs not used):",
        f"Var(common) = (MSB - MSW) / n0 = {split.raw_var_common:.4g} ns^2 (sd {sd_c:.1f} ns), "
        f"Var(per target) = MSW = {split.var_target:.4g} ns^2 (sd {sd_x:.1f} ns),",
        f"share of the delivery variance that the targets of a fan-out share: "
        f"{split.var_common / (split.var_common + split.var_target):.3f}.",
        "Assumes C_f i.i.d. over fan-outs, X_fj i.i.d. over targets (any position, class, fan-out size),",
        "independent of C, and D = C + X (ns scale). Only variances are identified: the common part is 0",
        "for the fastest fan-out; its samples are each fan-out's mean deviation shrunk to Var(common), the",
        "per-target ones each target's deviation from its fan-out's mean, rescaled, plus the mean delivery.",
    ]
    if split.var_common == 0:
        lines.append("No common part detected (estimate <= 0): ipi.delivery_common_ns stays 0, ipi.delivery_ns whole.")
    if split.clipped:
        lines.append(f"{split.clipped} per-target samples below 0 were set to 0.")
    return lines


def _tlb_keys(handler: np.ndarray, pages: np.ndarray, invlpg_ns: float | None) -> tuple[list[str], list[str]]:
    """``tlb``/``cache`` lines of a tlb_flush fragment and the notes that say how they were made."""
    partial, full = pages > 0, pages < 0
    counts = sorted(set(pages[partial].tolist()))
    notes = ["", "Handler split (docs/model.md 9.29): work = tlb.handler_fixed_ns + pages x tlb.invlpg_ns,"]
    if invlpg_ns is not None:
        per_page = float(invlpg_ns)
        notes.append(f"per-page cost {per_page:.1f} ns as given (--invlpg-ns)")
    elif len(counts) >= 2:
        med = np.array([np.median(handler[pages == p]) for p in counts])
        w = np.array([np.sum(pages == p) for p in counts], dtype=float)
        x = np.array(counts, dtype=float)
        xm = np.sum(w * x) / w.sum()
        per_page = max(0.0, float(np.sum(w * (x - xm) * (med - np.sum(w * med) / w.sum())) / np.sum(w * (x - xm) ** 2)))
        notes.append(f"per-page cost {per_page:.1f} ns: weighted least squares through the handler medians at "
                     + ", ".join(f"{p} pages ({m:.0f} ns, n={int(n)})" for p, m, n in zip(counts, med, w, strict=True)))
    else:
        per_page = INVLPG_COMPONENT_NS
        what = f"{counts[0]} pages" if counts else "full flushes"
        notes.append(f"the capture has one page count ({what}), so the per-page cost is a component figure: "
                     f"{per_page:.0f} ns (NUMBERS §4 [K]); pass --invlpg-ns for this machine's")
    lines = []
    if partial.any():
        fixed = np.maximum(handler[partial] - pages[partial] * per_page, 0.0)
        notes.append(f"tlb.handler_fixed_ns = handler - pages x {per_page:.1f} over {int(partial.sum())} page-by-page calls")
        lines += ["tlb:", "  handler_fixed_ns:", *_dist_yaml(quantile_table(fixed), "    ")]
        lines.append(f"  invlpg_ns: {_fmt(per_page)}")
        if full.any():
            ff = max(0.0, float(np.median(handler[full]) - np.median(fixed)))
            notes.append(f"tlb.full_flush_ns = median full-flush handler - median fixed part ({int(full.sum())} full flushes)")
            lines.append(f"  full_flush_ns: {_fmt(ff)}")
        else:
            notes.append("no full flush in the capture: tlb.full_flush_ns stays the defaults' component figure")
    else:  # full flushes only: fixed part and full flush cannot be told apart
        notes.append("full flushes only: the whole handler is the fixed part, tlb.full_flush_ns = 0")
        lines += ["tlb:", "  handler_fixed_ns:", *_dist_yaml(quantile_table(handler[full]), "    "),
                  "  full_flush_ns: 0"]  # fmt: skip
    seen = sorted(set(pages[partial | full].tolist()), key=lambda p: FULL_FLUSH_PAGES if p < 0 else p)
    values = [FULL_FLUSH_PAGES if p < 0 else p for p in seen]
    if len(values) == 1:
        lines.append(f"  pages: {values[0]}")
    else:
        weights = [int(np.sum(pages == p)) for p in seen]
        lines.append(f"  pages: {{dist: choice, values: {values}, weights: {weights}}}")
    if full.any():
        notes.append(f"tlb.pages: a full flush is written as {FULL_FLUSH_PAGES} pages (above tlb.ceiling_pages)")
    notes += [
        "The handler already contains the target's csd and flush_tlb_info reads, so the model's line",
        "transfers and request serialisation are switched off (cache.transfer_ns, line_serialize_ns);",
        "the sender's own reads of its targets' lines, which a trace does not time, go with them.",
    ]
    lines += ["cache:", "  transfer_ns: {smt: 0, llc: 0, socket: 0, remote: 0}", "  line_serialize_ns: 0"]
    return lines, notes


def write_report(
    results: Sequence[TraceResult], outdir: str | os.PathLike[str], func: str | None = None,
    window: tuple[float, float] | None = None,
) -> None:
    """Write ``trace_report.csv`` and ``trace_ccdf.png`` into ``outdir`` (created if needed).

    Parameters
    ----------
    results : sequence of TraceResult
    outdir : path-like
    func : str, optional
        Function drawn in the CCDF (same default as :func:`build_fragment`).
    window : (start, end) in seconds, optional
        As for :func:`build_fragment`.
    """
    d = Path(outdir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{d}: {exc.strerror or exc}") from None
    c = combine(results, window)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "function",
            "class",
            "quantity",
            "count",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "p999_ns",
            "max_ns",
            "mean_ns",
        ]
    )
    for f, cls, name, x in _groups(c):
        w.writerow([f, cls, "local_handler" if cls == "local" else name, len(x), *_stats_row(x)])
    blank = [""] * (len(_REPORT_Q) + 2)
    for (f, reason), n in sorted(c.counter("unpaired").items()):
        w.writerow([f, "all", f"unpaired_{reason}", n, *blank])
    for key in ("entries_without_queue", "exits_without_entry"):
        for f, n in sorted(c.counter(key).items()):
            w.writerow([f, "all", key, n, *blank])
    write_atomic(d / "trace_report.csv", buf.getvalue())
    _plot_ccdf(c, _choose_function(c, func), d / "trace_ccdf.png")


def _plot_ccdf(c: Combined, func: str, path: Path) -> None:
    from ..plots.figure import new_figure, save  # lazy: matplotlib only when a report is written

    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    sel = c.func == func
    for name in QUANTITIES:
        x = np.sort(c.values[name][sel])
        x = x[x > 0]  # log axis
        if len(x):
            ccdf = 1.0 - np.arange(len(x)) / len(x)
            ax.step(x, ccdf, where="post", label=f"{name} (n={len(x)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ns")
    ax.set_ylabel("P(X ≥ x)")
    ax.set_title(f"{func}: queue→entry, entry→exit, queue→exit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, path.parent, path.stem, formats=("png",), dpi=110)
