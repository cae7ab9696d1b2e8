"""Fitting parameters to observed quantiles and counts: the library behind ``mcsmp calibrate``.

A *targets file* (YAML) names observed values of the model's metrics and the parameters to fit::

    targets:                     # one entry per observed value
      - {metric: window_max_ns, policy: preempt_off, cpu: 3, quantile: 0.99, value: 16723307}
      - {metric: exceed_count, policy: preempt_off, cpu: 3, bin: [1.0e+6, 1.0e+7], value: 38}
      - {metric: window_max_ns, policy: preemptible_wait, cpu: max, quantile: 0.99, value: 1556034,
         weight: 2, tolerance: 0.25}
    fit:                         # dotted keys (list entries as ``a.b[3]``), bounds, optional start
      - {key: workload.rate_hz[3], low: 0.1, high: 100, log: true, start: 2.0}
      - {key: ['background[1].rate_hz[0]', 'background[1].rate_hz[3]'], low: 0, high: 10}  # tied
    settings: {samples: 300000, method: least_squares, max_evals: 400, diff_step: 0.02}

``cpu`` is a CPU id, ``all`` (the default; metrics without per-CPU rows) or ``max`` (the largest
per-CPU value, e.g. the worst CPU's p99). A target's statistic is ``quantile: q`` (label ``p50``…),
``bin: [lo, hi]`` (``exceed_count``'s ``count[lo,hi)``) or ``statistic:`` verbatim (``mean``).
``tolerance`` (relative, default 0.2) is only used by :mod:`mcsmp.reproduce` to mark a target met.

The objective is a sum of squared residuals, one per target, times its weight:

- values that are times (quantiles, means): the **log-ratio** ``ln(model / observed)``, a
  symmetric relative error (0.18 is about ±20 %), insensitive to the target's scale;
- counts (``exceed_count``): the **Poisson deviance residual**
  ``sign(μ − k) √(2 (μ − k + k ln(k/μ)))`` of the observed count ``k`` under the model's expected
  count ``μ`` (defined for ``k = 0``, where a ratio is not; ≈ (μ − k)/√μ for large counts).

Fitted parameters move in ``[0, 1]`` (their bounds mapped linearly, or logarithmically with
``log: true``), so :func:`scipy.optimize.least_squares` (bounded trust region, forward differences
of ``diff_step`` in that unit space) or bounded Nelder–Mead see well-scaled variables.

**Common random numbers.** Every evaluation simulates with the random streams of one fixed point:
the stream key (normally derived from the parameters' hash, :mod:`mcsmp.sim.engine`) is pinned to the
hash of the *starting* parameters. The objective is then a deterministic function of the
parameters, and parameters that do not change the number of draws per fan-out (per-CPU rates,
times drawn by inversion, constants, ``report.*``, ``background``) move it smoothly. Parameters that
switch a branch (a remote state's fraction, a mixture weight) re-align the later draws of a chunk,
so they still move it in small steps; ``diff_step`` must be large enough to see through that.
Keys that cannot change what is sampled (``report.*``, ``background``, ``name``) reuse the previous
simulation: only the analytic metrics are recomputed.

**Pooled senders** (``settings: {pool_senders: true}``). Each distinct per-CPU rate is a CPU group
with its own histograms, fed by the fan-outs that group sends; a group's tail then rests on a
fraction of the samples, and changing one rate moves fan-outs between groups, which makes the
objective jump. On a symmetric box (one socket, one LLC, no SMT: :func:`check_symmetric`) a
fan-out does not depend on its sender, so every group's histograms estimate the same
distribution: the evaluator then simulates once with a uniform rate and gives every calling group
the pooled histograms (:func:`pooled_result`). Rates become analytic-only keys (no re-simulation),
and each group's tail rests on all the samples. Not allowed with the re-entry bound, whose spin
depends on the sender's own rate.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from .._util import sha256_json
from ..config import Params, RawParams, apply_override, build_params
from ..config.build import deepcopy_data, split_path
from ..config.schema import key_from_hash
from ..errors import UserError
from ..io.tables import text_table
from ..kernels import codes as K
from ..metrics import MetricRow, compute_metrics
from ..sim import PointResult, compile_model, policy_rows, run_point
from .targets import METHODS, FitKey, Target, TargetsFile, model_row, residual, with_target_quantiles

__all__ = [
    "CalibrationResult",
    "Evaluation",
    "Evaluator",
    "calibrate",
    "check_symmetric",
    "fitted_text",
    "format_fit_table",
    "format_residual_table",
    "get_key",
    "log_to_stderr",
    "pooled_result",
    "set_key",
]

HEADER_BEGIN = "# ---- mcsmp calibrate: begin ----"
HEADER_END = "# ---- mcsmp calibrate: end ----"
CACHE_SIMULATIONS = 8  # simulations kept for re-use (LRU)
# Keys whose value cannot change what the kernel samples (only the derived metrics read them).
_ANALYTIC_TOP = ("report", "background", "name", "sweep")


# --------------------------------------------------------------------------------------------
# Common random numbers


def _sampling_identity(params: Params, pooled: bool = False) -> str:
    """What the kernel samples from: the model parameters without the analytic-only keys.

    With pooled senders the per-CPU rates only weight the derived metrics, so they are left out too.
    """
    d = {k: v for k, v in params.model_dict().items() if k not in _ANALYTIC_TOP}
    if pooled:
        d["workload"] = {k: v for k, v in d["workload"].items() if k != "rate_hz"}
    return sha256_json([d, params.seed, params.samples])


def check_symmetric(params: Params) -> None:
    """Pooling senders is exact only when the sender's identity cannot change a fan-out."""
    m = params.machine
    if not (m.sockets == 1 and m.cpus_per_llc == m.cpus and m.smt == 1):
        raise UserError(
            "settings.pool_senders: needs a symmetric box (machine.sockets 1, cpus_per_llc = cpus, smt 1), "
            f"got sockets {m.sockets}, cpus_per_llc {m.cpus_per_llc}, smt {m.smt}: the sender's position "
            "changes the distance classes of its targets"
        )
    if compile_model(params).needs_reentry:
        raise UserError("settings.pool_senders: the re-entry spin depends on the sender's own rate; "
                        "use policy.reentry: off or do not pool")  # fmt: skip


def pooled_result(params: Params, uniform: PointResult) -> PointResult:
    """``params``'s result built from a uniform-rate run: every calling CPU group gets its histograms.

    On a symmetric box (:func:`check_symmetric`) a fan-out's timeline does not depend on which CPU
    sends it, so each group's ``P``/``H`` histograms are samples of one distribution; the pooled
    one (all fan-outs) is the same estimate with more samples. Groups with rate 0 stay empty, as in
    the engine.
    """
    model = compile_model(params)
    n_pol = len(params.policies)
    if uniform.model.n_groups != 1 or uniform.params.policies != params.policies:
        raise ValueError("pooled_result needs a one-group run with the same policies")

    if uniform.model.rare != model.rare:  # the strata do not depend on the rates
        raise ValueError("pooled_result needs a run with the same strata")

    def spread(src: np.ndarray) -> np.ndarray:
        out = np.zeros((model.n_hists,) + src.shape[1:], dtype=src.dtype)
        for st in range(model.rare.n_strata):  # each stratum's block of rows
            dst0, src0 = st * model.n_rows, st * uniform.model.n_rows
            out[dst0 : dst0 + K.N_FIXED_HISTS] = src[src0 : src0 + K.N_FIXED_HISTS]
            for g, rate in enumerate(model.group_rates):
                if rate <= 0:
                    continue
                for i in range(n_pol):
                    dst_p, _ = policy_rows(g, i, n_pol)
                    src_p, _ = policy_rows(0, i, n_pol)
                    out[dst0 + dst_p : dst0 + dst_p + 2] = src[src0 + src_p : src0 + src_p + 2]
        return out

    sums = {c: spread(v[:, None])[:, 0] for c, v in uniform.chunk_sums.items()}
    return PointResult(params, model, spread(uniform.counts), sums, dict(uniform.chunk_fanouts),
                       uniform.wait_tail_mean, uniform.seconds, None, uniform.stream_key,
                       {c: spread(v[:, None])[:, 0] for c, v in uniform.chunk_counts.items()})  # fmt: skip


def get_key(data: Any, key: str) -> Any:
    """Value of a dotted key (``a.b[3]``) in plain data; KeyError/IndexError if absent."""
    node = data
    for part in split_path(key):  # the same path syntax as apply_override
        node = node[part]
    return node


def set_key(raw: RawParams, key: str, value: Any, origin: str) -> RawParams:
    """``raw`` with dotted ``key`` set to ``value``, walking into lists (``a.b[1].c``).

    :func:`mcsmp.config.apply_override` replaces a list by a mapping when the path continues
    past an index, so fit keys inside mixture components go through here. The key must exist.
    """
    data = deepcopy_data(raw.data)
    node: Any = data
    parts = split_path(key)
    try:
        for part in parts[:-1]:
            node = node[part]
        last = parts[-1]
        if isinstance(node, dict) and last not in node:
            raise KeyError(last)
        node[last] = value
    except (KeyError, IndexError, TypeError):
        raise UserError(
            f"{raw.source}: fit key {key!r} is not set in this file; set it explicitly so the fitted file can carry it"
        ) from None
    return RawParams(data, raw.source, raw.located, raw.base_dir, {**raw.overrides, key: origin})


# --------------------------------------------------------------------------------------------
# The objective


@dataclass
class Evaluation:
    x: tuple[float, ...]
    values: np.ndarray  # model value per target
    rows: list[MetricRow]  # the matched row per target
    residuals: np.ndarray
    cost: float  # 0.5 Σ r² (scipy's convention)
    simulated: bool  # False when only the analytic metrics were recomputed


class Evaluator:
    """Model values of the targets at parameter vectors, with a pinned stream and a cache.

    Parameters
    ----------
    raw
        The parameter file (validated at every evaluation, so a fitted value that makes the model
        invalid is reported with its key).
    targets, fit
        From :func:`load_targets`.
    samples, threads
        Fan-outs per evaluation (None: the file's) and worker threads.
    key_hash
        Stream key for every evaluation (default: the hash of ``raw`` at the start values).
    """

    def __init__(
        self,
        raw: RawParams,
        targets: Sequence[Target],
        fit: Sequence[FitKey],
        *,
        samples: int | None = None,
        threads: int | None = None,
        key_hash: str | None = None,
        log: Callable[[str], None] | None = None,
        pool_senders: bool = False,
    ) -> None:
        raw = apply_override(raw, "samples", samples, origin="--samples") if samples else raw
        self.raw = with_target_quantiles(raw, targets)
        self.targets = list(targets)
        self.fit = list(fit)
        self.threads = threads
        self.log = log
        self.pool_senders = pool_senders
        self.n_evals = 0
        self.n_sims = 0
        self.seconds = 0.0
        self._cache: dict[str, PointResult] = {}  # sampling identity -> simulation (small LRU)
        self.start = tuple(self.start_values())
        start_params = self.params_at(self.start)
        if pool_senders:
            check_symmetric(start_params)
        self.key_hash = key_hash or start_params.model_hash

    def start_values(self) -> list[float]:
        out = []
        for f in self.fit:
            if f.start is not None:
                out.append(f.start)
                continue
            try:
                v = get_key(self.raw.data, f.key)
            except (KeyError, IndexError, TypeError):
                raise UserError(
                    f"{self.raw.source}: fit key {f.key!r} is not set in this file; set it explicitly "
                    "(or give start:) so the fitted file can carry the value"
                ) from None
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{self.raw.source}: fit key {f.key!r} holds {v!r}, not a number")
            if not f.low <= float(v) <= f.high:
                raise UserError(f"{self.raw.source}: {f.key} = {v:g} lies outside its fit bounds [{f.low:g}, {f.high:g}]")
            out.append(float(v))
        return out

    def raw_at(self, x: Sequence[float]) -> RawParams:
        raw = self.raw
        for f, v in zip(self.fit, x, strict=True):
            for key in f.keys:
                raw = set_key(raw, key, float(v), origin=f"calibrate ({f.key})")
        return raw

    def params_at(self, x: Sequence[float]) -> Params:
        return build_params(self.raw_at(x))

    def result_at(self, x: Sequence[float]) -> tuple[PointResult, bool]:
        """The simulated point at ``x`` (reusing the last one when only analytic keys changed)."""
        params = self.params_at(x)
        ident = _sampling_identity(params, self.pool_senders)
        simulated = ident not in self._cache
        if simulated:
            sim = params
            if self.pool_senders:  # one group: every fan-out feeds the same histograms
                sim = build_params(apply_override(self.raw_at(x), "workload.rate_hz", 1.0, "pool_senders"))
            self._cache[ident] = run_point(sim, threads=self.threads, stream_key=key_from_hash(self.key_hash))
            self.n_sims += 1
            while len(self._cache) > CACHE_SIMULATIONS:  # a Jacobian revisits its base point: keep a few
                del self._cache[next(iter(self._cache))]
        else:
            self._cache[ident] = self._cache.pop(ident)  # most recently used last
        base = self._cache[ident]
        if self.pool_senders:
            return pooled_result(params, base), simulated
        return (base if simulated else dataclasses.replace(base, params=params)), simulated

    def __call__(self, x: Sequence[float]) -> Evaluation:
        t0 = time.perf_counter()
        result, simulated = self.result_at(x)
        rows = compute_metrics(result)
        matched = [model_row(rows, t) for t in self.targets]
        values = np.array([r.value for r in matched])
        res = np.array([residual(t, v) for t, v in zip(self.targets, values, strict=True)])
        cost = 0.5 * float(res @ res)
        self.n_evals += 1
        self.seconds += time.perf_counter() - t0
        if self.log is not None:
            shown = ", ".join(f"{f.label}={v:.4g}" for f, v in zip(self.fit, x, strict=True))
            self.log(f"eval {self.n_evals:4d}  cost {cost:10.4f}  {'sim' if simulated else 'ana'}  {shown}")
        return Evaluation(tuple(float(v) for v in x), values, matched, res, cost, simulated)


# --------------------------------------------------------------------------------------------
# The fit


@dataclass
class CalibrationResult:
    fit: list[FitKey]
    start: tuple[float, ...]
    x: tuple[float, ...]
    start_eval: Evaluation
    best: Evaluation
    targets: list[Target]
    method: str
    samples: int
    seed: int
    key_hash: str
    n_evals: int
    n_sims: int
    seconds: float
    message: str
    at_bound: list[str] = field(default_factory=list)


def calibrate(
    raw: RawParams,
    tf: TargetsFile,
    *,
    samples: int | None = None,
    method: str | None = None,
    max_evals: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Fit ``tf.fit`` so the model matches ``tf.targets`` (see the module docstring)."""
    from scipy import optimize

    if not tf.fit:
        raise UserError(f"{tf.source}: nothing to fit (the fit: list is empty)")
    st = tf.settings
    samples = samples or st.samples
    method = method or st.method
    max_evals = max_evals or st.max_evals
    if method not in METHODS:
        raise UserError(f"--method: must be one of {', '.join(METHODS)}, got {method!r}")
    ev = Evaluator(raw, tf.targets, tf.fit, samples=samples, threads=threads, log=log, pool_senders=st.pool_senders)
    fits = list(tf.fit)
    u0 = np.array([f.to_unit(v) for f, v in zip(fits, ev.start, strict=True)])
    best: list[Evaluation] = []
    memo: dict[tuple[float, ...], Evaluation] = {}

    def evaluate(u: np.ndarray) -> Evaluation:
        x = tuple(f.from_unit(v) for f, v in zip(fits, u, strict=True))
        if x not in memo:
            e = ev(x)
            memo[x] = e
            if not best or e.cost < best[0].cost:
                best[:] = [e]
        return memo[x]

    start_eval = evaluate(u0)
    if method == "least_squares":
        sol = optimize.least_squares(
            lambda u: evaluate(u).residuals, u0, bounds=(0.0, 1.0), method="trf", jac="2-point",
            diff_step=st.diff_step, x_scale=1.0, xtol=st.xtol, ftol=st.ftol, gtol=1e-8,
            max_nfev=max_evals,
        )  # fmt: skip
        message = str(sol.message)
    else:
        n = len(fits)
        simplex = [u0] + [np.clip(u0 + 0.1 * np.eye(n)[i] * (1 if u0[i] < 0.9 else -1), 0, 1) for i in range(n)]
        sol = optimize.minimize(
            lambda u: evaluate(u).cost, u0, method="Nelder-Mead", bounds=[(0.0, 1.0)] * n,
            options={"maxfev": max_evals, "xatol": st.xtol, "fatol": st.ftol, "initial_simplex": np.array(simplex)},
        )  # fmt: skip
        message = str(sol.message)
    final = best[0]
    at_bound = [
        f.key for f, v in zip(fits, final.x, strict=True) if f.to_unit(v) < 1e-3 or f.to_unit(v) > 1 - 1e-3
    ]
    params = ev.params_at(final.x)
    return CalibrationResult(
        fits, ev.start, final.x, start_eval, final, list(tf.targets), method, params.samples, params.seed,
        ev.key_hash, ev.n_evals, ev.n_sims, ev.seconds, message, at_bound,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Reports and the fitted file


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    return f"{v:.4g}"


def format_residual_table(result: CalibrationResult) -> str:
    """The per-target table: observed, model [95% CI], relative error, weighted residual."""
    head = ["target", "observed", "model", "95% CI", "model/obs-1", "residual"]
    body = []
    for t, r, res in zip(result.targets, result.best.rows, result.best.residuals, strict=True):
        rel = r.value / t.value - 1.0 if t.value > 0 else math.nan
        body.append([t.label, _fmt(t.value), _fmt(r.value), f"[{_fmt(r.low)}, {_fmt(r.high)}]",
                     f"{rel:+.1%}" if math.isfinite(rel) else "-", f"{res:+.3f}"])  # fmt: skip
    cost = f"cost 0.5*sum(residual^2) = {result.best.cost:.4f} (start {result.start_eval.cost:.4f})"
    return text_table(head, body) + "\n" + cost


def format_fit_table(result: CalibrationResult) -> str:
    rows = []
    for f, s, x in zip(result.fit, result.start, result.x, strict=True):
        note = " (at bound)" if f.key in result.at_bound else ""
        rows.append([f.label, f"{s:.6g}", f"{x:.6g}{note}", f"{f.low:g}", f"{f.high:g}", "log" if f.log else "linear"])
    return text_table(["key", "start", "fitted", "low", "high", "scale"], rows)


def _strip_header(text: str) -> str:
    if text.startswith(HEADER_BEGIN):
        end = text.find(HEADER_END)
        if end >= 0:
            rest = text[end + len(HEADER_END):]
            return rest[1:] if rest.startswith("\n") else rest
    return text


def _value_spans(text: str, source: str, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Character span of each key's scalar value in the YAML text (for in-place substitution)."""

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    spans = {}
    for key in keys:
        cur = node
        for part in split_path(key):
            nxt = None
            if isinstance(part, int) and isinstance(cur, yaml.SequenceNode) and 0 <= part < len(cur.value):
                nxt = cur.value[part]
            elif isinstance(part, str) and isinstance(cur, yaml.MappingNode):
                nxt = next((v for k, v in cur.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if nxt is None:
                raise UserError(f"{source}: fit key {key!r} is not set in this file; set it explicitly so the fitted file can carry it")
            cur = nxt
        if not isinstance(cur, yaml.ScalarNode):
            raise UserError(f"{source}: fit key {key!r} is not a number in this file")
        spans[key] = (cur.start_mark.index, cur.end_mark.index)
    return spans


def fitted_text(text: str, source: str, result: CalibrationResult, command: str, targets_source: str) -> str:
    """The parameter file ``text`` with the fitted values substituted and a header prepended.

    The header (between fixed marker lines, replaced on a re-fit) says what was fitted, to what,
    and the residuals. Everything else in the file (comments, layout) is kept.
    """
    body = _strip_header(text)
    spans = _value_spans(body, source, [k for f in result.fit for k in f.keys])
    edits = sorted(((spans[k], x) for f, x in zip(result.fit, result.x, strict=True) for k in f.keys), reverse=True)
    for (a, b), x in edits:  # from the end, so earlier spans stay valid
        body = body[:a] + f"{x:.6g}" + body[b:]
    lines = [
        HEADER_BEGIN,
        f"# Fitted by: {command}",
        f"# Targets: {targets_source} ({len(result.targets)} values); method {result.method}, "
        f"{result.samples:,} fan-outs per evaluation, seed {result.seed}, stream key {result.key_hash[:10]} "
        "(common random numbers)",
        f"# {result.n_evals} evaluations ({result.n_sims} simulated); optimiser: {result.message}",
        "# Fitted parameters:",
        *("#   " + ln for ln in format_fit_table(result).splitlines()),
        "# Residuals at the fit (log-ratio for times, Poisson deviance for counts; weights applied):",
        *("#   " + ln for ln in format_residual_table(result).splitlines()),
        HEADER_END,
    ]
    return "\n".join(lines) + "\n" + body


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
