"""The side-by-side comparison behind ``mcsmp reproduce``: a measured table against the model.

:func:`reproduce` simulates a parameter file (the seed's production box, ``params/seed-16core.yaml``)
and compares every entry of a targets file (:mod:`mcsmp.calibrate`; ``params/seed-targets.yaml``
holds the seed's table) with the model's value and 95% interval:

- a time (a quantile of ``window_max_ns``) is **met** when the model's point estimate lies within
  the target's relative ``tolerance`` (default ±20 %); ``met (CI)`` says whether some value inside
  the model's confidence interval would be, i.e. whether Monte Carlo error alone could explain a miss;
- a count (``exceed_count``) is **met** when the observed count lies inside the central 95 %
  Poisson band of the model's expected count over ``report.duration_h`` (each count is one
  realisation of a Poisson variable: the band is what a second run of the same machine could show).

It then answers what the measurement could not, on the same model with one change each
(:data:`SCENARIOS`; every scenario draws from the base point's random streams, so a change that
leaves the sequence of draws alone, such as the caller mix or the preemption model, leaves the
``preempt_off`` values bit-identical and moves only what it changes): PREEMPT_RT, the series without its caller clean-up, the re-entry bound, and
the box extrapolated to 64 and 256 CPUs (per-CPU lists tiled, so CPU ``c`` behaves like CPU
``c mod 16``). For every scenario it reports the worst CPU's p99 of the 30-s maximum before
(``preempt_off``) and after (``preemptible_wait``) the series and the reduction.

Outputs (written atomically: temporary file + ``os.replace``) in ``results/<name>/``:
``comparison.csv`` (one row per target), ``scenarios.csv`` (one row per scenario, policy and CPU),
``summary.csv`` (before/after per scenario), ``report.txt`` (what is printed) and
``figure.png``/``figure.pdf`` (Agg backend, greyscale-readable: markers and hatching, no colour coding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats as sps

from ..config import RawParams, apply_override, build_params, load_raw
from ..config.schema import key_from_hash
from ..errors import UserError
from ..io.atomic import write_atomic
from ..io.tables import bin_label, cpu_order, csv_text, format_ns, text_table
from ..metrics import MetricRow, compute_metrics
from ..sim import run_point
from .targets import Target, TargetsFile, load_targets, model_row, with_target_quantiles

__all__ = [
    "SCENARIOS",
    "Comparison",
    "Reproduction",
    "Scenario",
    "ScenarioResult",
    "compare",
    "poisson_band",
    "reproduce",
    "scale_cpus",
]


# --------------------------------------------------------------------------------------------
# Scenarios: one change each to the calibrated box


def scale_cpus(raw: RawParams, cpus: int, *, sockets: int = 1, samples_scale: bool = True) -> RawParams:
    """The same box with ``cpus`` CPUs: per-CPU lists tiled, one LLC per socket, samples scaled.

    Every per-CPU list (``workload.rate_hz``, and ``background[].rate_hz`` where the schema allows
    lists) is repeated, so CPU ``c`` has the rates of CPU ``c mod n``; the LLC spans the socket (Intel mesh, as the 16-CPU box). Samples are scaled by
    ``(n_old − 1)/(cpus − 1)`` so the work (target-samples) stays the same: the tail of ``T`` grows
    about linearly with the number of targets, so the tail samples per CPU group stay comparable.
    """
    params = build_params(raw)
    n_old = params.machine.cpus
    rates = params.resolved["workload"]["rate_hz"]
    out = apply_override(raw, "machine", {"cpus": cpus, "sockets": sockets, "cpus_per_llc": cpus // sockets,
                                          "smt": params.machine.smt}, origin=f"reproduce ({cpus} CPUs)")  # fmt: skip
    if isinstance(rates, list):
        tiled = [rates[c % n_old] for c in range(cpus)]
        out = apply_override(out, "workload.rate_hz", tiled, origin=f"reproduce ({cpus} CPUs)")
    backgrounds = params.resolved.get("background") or []
    if any(isinstance(b.get("rate_hz"), list) for b in backgrounds):  # per-CPU background rates, if supported
        tiled_bg = [{**b, "rate_hz": [b["rate_hz"][c % n_old] for c in range(cpus)]} if isinstance(b.get("rate_hz"), list)
                    else b for b in backgrounds]  # fmt: skip
        out = apply_override(out, "background", tiled_bg, origin=f"reproduce ({cpus} CPUs)")
    if params.report.reference is not None:
        out = apply_override(out, "report.reference", None, origin=f"reproduce ({cpus} CPUs)")
    if samples_scale and cpus > n_old:
        samples = max(int(round(params.samples * (n_old - 1) / (cpus - 1))), 1 << 16)
        out = apply_override(out, "samples", samples, origin=f"reproduce ({cpus} CPUs)")
    return out


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    change: Callable[[RawParams], RawParams]
    note: str


def _set(**kv: Any) -> Callable[[RawParams], RawParams]:
    def change(raw: RawParams) -> RawParams:
        for k, v in kv.items():
            raw = apply_override(raw, k.replace("__", "."), v, origin="reproduce scenario")
        return raw

    return change


# The pre-series caller mix: "99% of callers have preemption disabled, some of them even invoking it
# within spin_locks" (seed 000 [T]); the spinlock share of the 99 % is [U]: 9 %, as params/16core.yaml.
UNCLEANED_CALLERS = {"preemptible": 0.01, "spinlock": 0.09, "preempt_disabled": 0.90}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("seed", "the calibrated box (PREEMPT, the series' caller clean-up)", lambda raw: raw,
             "params file as is"),
    Scenario("rt", "PREEMPT_RT", _set(kernel__preemption="rt"),
             "kernel.preemption=rt: spinlock callers sleep, so their waits become preemptible too"),
    Scenario("uncleaned", "callers left uncleaned", _set(workload__caller=UNCLEANED_CALLERS),
             "workload.caller = 1 % preemptible / 9 % spinlock / 90 % preempt_disabled (seed 000: 99 % of "
             "callers disable preemption; patches 7, 8, 14 not applied)"),
    Scenario("reentry", "re-entry bound", _set(policy__reentry="bound"),
             "policy.reentry=bound: every overlap with an outstanding wait spins in csd_lock() (docs/model.md §3 upper bound)"),
    Scenario("cpus64", "64 CPUs (extrapolation)", lambda raw: scale_cpus(raw, 64),
             "machine.cpus=64, one socket/LLC, per-CPU rates tiled (16 exit/reclaim-heavy CPUs), every other CPU targeted"),
    Scenario("cpus256", "256 CPUs (extrapolation)", lambda raw: scale_cpus(raw, 256, sockets=2),
             "machine.cpus=256 on 2 sockets x 128 (one LLC each), per-CPU rates tiled (64 heavy CPUs)"),
)


# --------------------------------------------------------------------------------------------
# Comparison


def poisson_band(mu: float, level: float = 0.95) -> tuple[int, int]:
    """Central ``level`` band ``[ppf((1−level)/2), ppf((1+level)/2)]`` of Poisson(``mu``)."""
    if math.isnan(mu) or mu <= 0:
        return 0, 0
    if math.isinf(mu):
        return 2**62, 2**62
    a = (1.0 - level) / 2.0
    return int(sps.poisson.ppf(a, mu)), int(sps.poisson.ppf(1.0 - a, mu))


@dataclass(frozen=True)
class Comparison:
    """One measured value against the model."""

    target: Target
    row: MetricRow
    criterion: str  # "±20%" or "Poisson 95%"
    band_low: float  # the accepted range for the measured value
    band_high: float
    met: bool
    met_ci: bool  # some model value inside its 95% CI would meet the criterion

    @property
    def rel_error(self) -> float:
        return self.row.value / self.target.value - 1.0 if self.target.value > 0 else math.nan


def compare(target: Target, row: MetricRow) -> Comparison:
    """Apply the target's criterion (module docstring) to the model's row."""
    v = target.value
    if target.is_count:
        lo, hi = poisson_band(row.value)
        lo_ci, _ = poisson_band(row.low)
        _, hi_ci = poisson_band(row.high)
        return Comparison(target, row, "Poisson 95%", lo, hi, lo <= v <= hi, lo_ci <= v <= hi_ci)
    tol = target.tolerance
    # The model value m meets the target when |m/v − 1| ≤ tol; as a band on the measured value:
    # v ∈ [m/(1+tol), m/(1−tol)].
    m = row.value
    met = math.isfinite(m) and abs(m / v - 1.0) <= tol
    met_ci = math.isfinite(row.low) and row.low <= v * (1 + tol) and row.high >= v * (1 - tol)
    hi = m / (1 - tol) if tol < 1 else math.inf
    return Comparison(target, row, f"±{tol:.0%}", m / (1 + tol), hi, met, met_ci)


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class ScenarioResult:
    scenario: Scenario
    rows: list[MetricRow]
    cpus: int
    samples: int
    seconds: float
    policies: tuple[str, ...]

    def get(self, metric: str, policy: str, cpu: str, statistic: str) -> MetricRow | None:
        for r in self.rows:
            if r.metric == metric and r.policy == policy and r.cpu == cpu and r.statistic == statistic:
                return r
        return None

    def worst(self, policy: str, statistic: str = "p99") -> MetricRow | None:
        cand = [r for r in self.rows if r.metric == "window_max_ns" and r.policy == policy
                and r.statistic == statistic and r.cpu != "all"]  # fmt: skip
        if not cand:
            cand = [r for r in self.rows if r.metric == "window_max_ns" and r.policy == policy and r.statistic == statistic]
        return max(cand, key=lambda r: r.value) if cand else None


@dataclass
class Reproduction:
    params_path: str
    targets_path: str
    name: str
    duration_h: float
    comparisons: list[Comparison]
    scenarios: list[ScenarioResult]
    text: str = ""
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)


BEFORE, AFTER = "preempt_off", "preemptible_wait"


def run_scenario(
    raw: RawParams,
    scenario: Scenario,
    *,
    samples: int | None = None,
    threads: int | None = None,
    targets: Sequence[Target] = (),
    key_hash: str | None = None,
) -> ScenarioResult:
    """Simulate one scenario of ``raw`` (with the targets' quantiles added to the report).

    With ``key_hash`` the scenario draws from that point's random streams (common random numbers:
    a change that does not alter the sequence of draws leaves every other value bit-identical).
    """
    changed = with_target_quantiles(scenario.change(raw), targets)
    if samples is not None:
        base = build_params(raw).samples
        mine = build_params(changed).samples
        changed = apply_override(changed, "samples", max(int(round(samples * mine / base)), 1), origin="--samples")
    params = build_params(changed)
    missing = [p for p in (BEFORE, AFTER) if p not in params.policies]
    if missing:
        raise UserError(f"{raw.source}: policies must include {', '.join(missing)} for the before/after comparison")
    result = run_point(params, threads=threads, stream_key=key_from_hash(key_hash) if key_hash else None)
    return ScenarioResult(scenario, compute_metrics(result), params.machine.cpus, params.samples, result.seconds,
                          params.policies)  # fmt: skip


def reproduce(
    params_path: str | Path,
    *,
    targets_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    samples: int | None = None,
    threads: int | None = None,
    scenarios: Sequence[str] | None = None,
    figure: bool = True,
    log: Callable[[str], None] | None = None,
) -> Reproduction:
    """Simulate, compare with the targets, run the scenarios, write the outputs (module docstring).

    Parameters
    ----------
    params_path, targets_path
        The parameter file and the targets file (default: ``seed-targets.yaml`` beside the
        parameter file).
    out_dir
        Output folder (default ``results/<name>/``); ``None`` with ``figure=False`` and no
        ``out_dir`` still writes the tables.
    samples
        Fan-outs of the base point (scenarios scale theirs in proportion); default: the file's.
    scenarios
        Names from :data:`SCENARIOS` to run besides ``seed`` (default: all).
    """
    params_path = Path(params_path)
    targets_path = Path(targets_path) if targets_path else params_path.with_name("seed-targets.yaml")
    if not targets_path.exists():
        raise UserError(f"{targets_path}: targets file not found (give --targets)")
    raw = load_raw(params_path)
    tf: TargetsFile = load_targets(targets_path)
    base = build_params(raw)
    wanted = ["seed"] + [s for s in (scenarios if scenarios is not None else [s.name for s in SCENARIOS]) if s != "seed"]
    known = {s.name: s for s in SCENARIOS}
    for name in wanted:
        if name not in known:
            raise UserError(f"--scenarios: unknown scenario {name!r}; known: {', '.join(known)}")
    results = []
    key_hash = base.model_hash  # every scenario draws from the base point's streams
    for name in wanted:
        if log:
            log(f"reproduce: scenario {name} ({known[name].title}) ...")
        res = run_scenario(raw, known[name], samples=samples, threads=threads, targets=tf.targets, key_hash=key_hash)
        if log:
            log(f"reproduce: scenario {name}: {res.samples:,} fan-outs on {res.cpus} CPUs in {res.seconds:.1f} s")
        results.append(res)
    seed_rows = results[0].rows
    comparisons = [compare(t, model_row(seed_rows, t)) for t in tf.targets]
    rep = Reproduction(str(params_path), str(targets_path), base.name, base.report.duration_h, comparisons, results)
    rep.text = format_report(rep)
    out = Path(out_dir) if out_dir else Path("results") / base.name
    rep.out_dir = out
    write_outputs(rep, out, figure=figure)
    return rep


# --------------------------------------------------------------------------------------------
# Tables


def _ns(v: float) -> str:
    return format_ns(v) if math.isfinite(v) else ("inf" if v > 0 else "n/a")


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return text_table(header, body).split("\n")


def _cpu_key(c: Comparison) -> tuple[int, str]:
    return cpu_order(c.target.cpu)


def format_report(rep: Reproduction) -> str:
    """The printed text: per-CPU table, counts, before/after, scenarios, and what was met."""
    lines = [f"mcsmp reproduce: {rep.params_path} against {rep.targets_path}",
             f"model: {rep.scenarios[0].samples:,} fan-outs, 95% intervals in brackets; counts over "
             f"report.duration_h = {rep.duration_h:.3g} h"]  # fmt: skip
    by = {(c.target.metric, c.target.policy, c.target.cpu, c.target.statistic): c for c in rep.comparisons}

    # per-CPU window maxima
    wm = sorted({c.target.cpu for c in rep.comparisons if c.target.metric == "window_max_ns"
                 and c.target.policy == BEFORE and c.target.cpu.isdigit()}, key=int)  # fmt: skip
    if wm:
        body = []
        for cpu in wm:
            row = [f"cpu{cpu}"]
            for stat in ("p50", "p99"):
                c = by.get(("window_max_ns", BEFORE, cpu, stat))
                if c is None:
                    row += ["", "", "", ""]
                    continue
                row += [_ns(c.target.value), f"{_ns(c.row.value)} [{_ns(c.row.low)}, {_ns(c.row.high)}]",
                        f"{c.rel_error:+.0%}", _met(c)]  # fmt: skip
            body.append(row)
        lines += ["", "Longest preempt-off section per 30-s window, before the series (preempt_off), per CPU:"]
        lines += _table(["cpu", "seed p50", "model p50 [95% CI]", "err", "met", "seed p99", "model p99 [95% CI]",
                         "err", "met"], body)  # fmt: skip

    counts = sorted((c for c in rep.comparisons if c.target.is_count), key=_cpu_key)
    if counts:
        body = [[f"cpu{c.target.cpu}" if c.target.cpu.isdigit() else c.target.cpu, c.target.policy, c.target.statistic,
                 f"{c.target.value:g}", f"{c.row.value:.3g} [{c.row.low:.3g}, {c.row.high:.3g}]",
                 f"[{c.band_low:g}, {c.band_high:g}]", _met(c)] for c in counts]  # fmt: skip
        lines += ["", f"Preempt-off sections per CPU over {rep.duration_h:.3g} h: seed count vs the model's expected "
                  "count [95% CI] and the Poisson 95% band of a count with that expectation:"]  # fmt: skip
        lines += _table(["cpu", "policy", "bin (ns)", "seed", "model E[count]", "Poisson 95%", "met"], body)

    other = [c for c in rep.comparisons if not c.target.is_count
             and not (c.target.metric == "window_max_ns" and c.target.policy == BEFORE and c.target.cpu.isdigit())]  # fmt: skip
    if other:
        body = [[c.target.label, _ns(c.target.value), f"{_ns(c.row.value)} [{_ns(c.row.low)}, {_ns(c.row.high)}]",
                 f"{c.rel_error:+.0%}", c.criterion, _met(c)] for c in other]  # fmt: skip
        lines += ["", "Other targets:"]
        lines += _table(["target", "seed", "model [95% CI]", "err", "criterion", "met"], body)

    lines += ["", "Before/after the series: worst CPU's p99 of the 30-s maximum (before = preempt_off, "
              "after = preemptible_wait), per scenario:"]  # fmt: skip
    lines += _table(["scenario", "CPUs", "before p99 [95% CI]", "after p99 [95% CI]", "reduction"],
                    [_summary_row(s) for s in rep.scenarios])  # fmt: skip
    if any(c.target.metric == "window_max_ns" and c.target.policy == AFTER for c in rep.comparisons):
        before = next((c for c in rep.comparisons if c.target.metric == "window_max_ns" and c.target.policy == BEFORE
                       and c.target.cpu == "max" and c.target.statistic == "p99"), None)  # fmt: skip
        after = next((c for c in rep.comparisons if c.target.metric == "window_max_ns" and c.target.policy == AFTER
                      and c.target.statistic == "p99"), None)  # fmt: skip
        if before and after:
            lines.append(f"seed: before {_ns(before.target.value)}, after {_ns(after.target.value)}, reduction "
                         f"{1 - after.target.value / before.target.value:.1%}")  # fmt: skip

    for s in rep.scenarios[1:]:
        lines += ["", f"Scenario {s.scenario.name}: {s.scenario.title} — {s.scenario.note}"]
        lines += _scenario_table(s)
    n_met = sum(c.met for c in rep.comparisons)
    lines += ["", f"Targets met: {n_met} of {len(rep.comparisons)}"]
    missed = [c for c in rep.comparisons if not c.met]
    if missed:
        lines.append("Not met: " + "; ".join(
            f"{c.target.label} (seed {c.target.value:g}, model {c.row.value:.4g}"
            f"{', within MC error' if c.met_ci else ''})" for c in missed))  # fmt: skip
    return "\n".join(lines)


def _met(c: Comparison) -> str:
    return "yes" if c.met else ("no (CI ok)" if c.met_ci else "no")


def _summary_row(s: ScenarioResult) -> list[str]:
    b, a = s.worst(BEFORE), s.worst(AFTER)
    red = f"{1 - a.value / b.value:.1%}" if a and b and b.value > 0 else "n/a"
    cell = lambda r: f"{_ns(r.value)} [{_ns(r.low)}, {_ns(r.high)}] (cpu{r.cpu})" if r else "n/a"  # noqa: E731
    return [s.scenario.name, str(s.cpus), cell(b), cell(a), red]


def _scenario_cpus(s: ScenarioResult) -> list[str]:
    cpus = sorted({r.cpu for r in s.rows if r.metric == "window_max_ns" and r.cpu.isdigit()}, key=int)
    return cpus[:16]


def _scenario_table(s: ScenarioResult) -> list[str]:
    body = []
    bins = list(dict.fromkeys(r.statistic for r in s.rows if r.metric == "exceed_count"))
    for cpu in _scenario_cpus(s):
        row = [f"cpu{cpu}"]
        for pol in (BEFORE, AFTER):
            for stat in ("p50", "p99"):
                r = s.get("window_max_ns", pol, cpu, stat)
                row.append(f"{_ns(r.value)} [{_ns(r.low)}, {_ns(r.high)}]" if r else "")
            cnt = [s.get("exceed_count", pol, cpu, b) for b in bins]
            row.append("/".join(f"{r.value:.3g}" if r else "-" for r in cnt))
        body.append(row)
    counts = "/".join(bin_label(b).replace(" ms", "") for b in bins) + " ms"
    head = ["cpu", "before p50", "before p99", f"before counts {counts}", "after p50", "after p99",
            f"after counts {counts}"]  # fmt: skip
    note = [f"({s.cpus} CPUs: CPU c behaves as CPU c mod 16; first 16 shown)"] if s.cpus > 16 else []
    return note + _table(head, body)


def comparisoncsv_text(rep: Reproduction) -> str:
    rows = [[c.target.metric, c.target.policy, c.target.cpu, c.target.statistic, c.target.value, c.row.value,
             c.row.low, c.row.high, c.row.n, c.criterion, c.band_low, c.band_high, int(c.met), int(c.met_ci)]
            for c in rep.comparisons]  # fmt: skip
    return csv_text(["metric", "policy", "cpu", "statistic", "seed", "model", "model_low", "model_high", "samples",
                 "criterion", "accept_low", "accept_high", "met", "met_within_ci"], rows)  # fmt: skip


def scenarioscsv_text(rep: Reproduction) -> str:
    rows = []
    for s in rep.scenarios:
        for r in s.rows:
            if r.metric in ("window_max_ns", "exceed_count") and r.cpu != "all":
                rows.append([s.scenario.name, s.cpus, r.metric, r.policy, r.cpu, r.statistic, r.value, r.low, r.high, r.n])
    return csv_text(["scenario", "cpus", "metric", "policy", "cpu", "statistic", "value", "low", "high", "samples"], rows)


def summarycsv_text(rep: Reproduction) -> str:
    rows = []
    for s in rep.scenarios:
        b, a = s.worst(BEFORE), s.worst(AFTER)
        rows.append([s.scenario.name, s.cpus, s.samples, b.cpu if b else "", b.value if b else "", b.low if b else "",
                     b.high if b else "", a.cpu if a else "", a.value if a else "", a.low if a else "",
                     a.high if a else "", (1 - a.value / b.value) if a and b and b.value > 0 else ""])  # fmt: skip
    return csv_text(["scenario", "cpus", "samples", "before_cpu", "before_p99", "before_low", "before_high", "after_cpu",
                 "after_p99", "after_low", "after_high", "reduction"], rows)  # fmt: skip


def write_outputs(rep: Reproduction, out: Path, *, figure: bool = True) -> None:
    files = {
        "comparison.csv": comparisoncsv_text(rep),
        "scenarios.csv": scenarioscsv_text(rep),
        "summary.csv": summarycsv_text(rep),
        "report.txt": rep.text + "\n",
    }
    for name, data in files.items():
        write_atomic(out / name, data)
        rep.files.append(out / name)
    if figure:
        from ..plots.fidelity import render_figure  # lazy: matplotlib only when a figure is drawn

        rep.files += render_figure(rep, out, before=BEFORE, after=AFTER)
