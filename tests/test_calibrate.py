"""mcsmp.calibrate: targets files, residuals, common random numbers, the fit, the fitted file, the CLI.

The fit is checked on a toy problem whose truth is known in closed form: with every cost zero but
a constant entry cost ``E`` and exponential delivery of mean ``μ``, ``k`` targets give
``T = E + max of k Exp(μ)``, so ``x_q = E − μ ln(1 − q^(1/k))`` (MODEL.md §7). Targets are the
exact quantiles at a known ``(E, μ)``; the fit starts elsewhere and must land within the error
that the model's own Monte Carlo intervals allow (propagated through the linear map above).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ZERO_BASE
from scipy import stats

from mcsmp.cli import main
from mcsmp.config import apply_override, build_params, load_raw
from mcsmp.errors import ParamError, UserError
from mcsmp.fidelity import calibrate as C
from mcsmp.fidelity import targets as T
from mcsmp.io.atomic import write_atomic
from mcsmp.kernels import codes as K
from mcsmp.metrics import MetricRow
from mcsmp.sim import run_point

K_TARGETS = 4
MU_TRUE, E_TRUE = 2000.0, 1500.0
QS = (0.1, 0.5, 0.9)


def a_q(q: float, k: int = K_TARGETS) -> float:
    """``x_q = E + μ a_q`` for ``T = E + max of k Exp(μ)``."""
    return -math.log(1.0 - q ** (1.0 / k))


def toy_params_file(tmp_path: Path, samples: int = 100_000, entry: float = 4000.0) -> Path:
    data = yaml.safe_load(yaml.safe_dump(ZERO_BASE))
    data["samples"] = samples
    data["workload"]["mm_cpus"] = K_TARGETS
    data["ipi"]["delivery_ns"] = {"dist": "exponential", "mean": 800.0}  # the start, not the truth
    data["costs"]["entry_ns"] = entry
    path = tmp_path / "toy.yaml"
    text = "# toy box: T = E + max of 4 Exp(mu)\n" + yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    return path


def toy_targets_file(tmp_path: Path, *, method: str = "least_squares", fit_entry: bool = True) -> Path:
    targets = [
        {"metric": "call_ns", "quantile": q, "value": E_TRUE + MU_TRUE * a_q(q)} for q in QS
    ]
    fit = [{"key": "ipi.delivery_ns.mean", "low": 200, "high": 20000, "log": True}]
    if fit_entry:
        fit.append({"key": "costs.entry_ns", "low": 0, "high": 10000})
    doc = {"targets": targets, "fit": fit, "settings": {"method": method, "max_evals": 80, "diff_step": 0.01}}
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------
# targets files


def test_load_targets_reads_statistics_and_fit(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "targets:\n"
        "  - {metric: window_max_ns, policy: preempt_off, cpu: 3, quantile: 0.99, value: 16723307}\n"
        "  - {metric: exceed_count, policy: preempt_off, cpu: 3, bin: [1.0e+6, 1.0e+7], value: 38, weight: 0.1}\n"
        "  - {metric: window_max_ns, policy: preemptible_wait, cpu: max, quantile: 0.99, value: 1556034, tolerance: 0.25}\n"
        "  - {metric: call_ns, statistic: mean, value: 5000}\n"
        "fit:\n"
        "  - {key: 'workload.rate_hz[3]', low: 0.1, high: 100, log: true, start: 2}\n"
        "  - {key: ['background[0].rate_hz[0]', 'background[0].rate_hz[3]'], low: 0, high: 5}\n"
        "settings: {samples: 1000, method: nelder-mead}\n"
    )
    tf = T.load_targets(path)
    t = tf.targets
    assert [x.statistic for x in t] == ["p99", "count[1e+06,1e+07)", "p99", "mean"]
    assert [x.cpu for x in t] == ["3", "3", "max", "all"]
    assert t[1].is_count and not t[0].is_count
    assert t[1].weight == 0.1 and t[2].tolerance == 0.25 and t[0].tolerance == 0.2
    assert t[0].where.endswith("t.yaml:2")
    assert t[2].label == "window_max_ns preemptible_wait worst-cpu p99"
    f = tf.fit[0]
    assert (f.key, f.low, f.high, f.log, f.start) == ("workload.rate_hz[3]", 0.1, 100, True, 2.0)
    assert tf.fit[1].keys == ("background[0].rate_hz[0]", "background[0].rate_hz[3]")
    assert tf.settings.samples == 1000 and tf.settings.method == "nelder-mead"
    # the unit transform is the inverse of itself and log-uniform for log: true
    assert f.from_unit(f.to_unit(7.3)) == pytest.approx(7.3)
    assert f.from_unit(0.5) == pytest.approx(math.sqrt(0.1 * 100))


@pytest.mark.parametrize(
    ("line", "where", "message"),
    [
        ("  - {metric: call_ns, quantile: 1.5, value: 10}", ":2:", "targets[0].quantile: must be in (0, 1)"),
        ("  - {metric: call_ns, quantile: 0.5, bin: [1, 2], value: 10}", ":2:", "exactly one of quantile, bin, statistic"),
        ("  - {metric: call_ns, quantile: 0.5, value: 0}", ":2:", "a time target must be > 0"),
        ("  - {metric: call_ns, quantile: 0.5, value: 10, cpu: -1}", ":2:", "targets[0].cpu"),
        ("  - {metric: call_ns, quantile: 0.5, value: 10, wieght: 2}", ":2:", "targets[0].wieght: unknown key"),
    ],
)
def test_load_targets_errors_name_file_line_and_key(tmp_path: Path, line: str, where: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n" + line + "\n")
    with pytest.raises(ParamError) as exc:
        T.load_targets(path)
    text = str(exc.value)
    assert text.startswith(f"{path}{where}") and message in text


def test_fit_bounds_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n  - {metric: call_ns, quantile: 0.5, value: 10}\n"
                    "fit:\n  - {key: a.b, low: 0, high: 1, log: true}\n")  # fmt: skip
    with pytest.raises(ParamError, match=r"bad.yaml:4:\d+: fit\[0\].low: must be > 0 with log: true"):
        T.load_targets(path)


# ------------------------------------------------------------------------------------------------
# residuals


def test_time_residual_is_weighted_log_ratio() -> None:
    t = T.Target("call_ns", "", "all", "p50", 1000.0, weight=2.0)
    assert T.residual(t, 1200.0) == pytest.approx(2.0 * math.log(1.2))
    assert T.residual(t, 1000.0) == 0.0
    assert T.residual(t, math.inf) == pytest.approx(2.0 * math.log(1e6))  # clipped, still finite


@pytest.mark.parametrize(("k", "mu"), [(0, 0.3), (0, 4.0), (5, 2.0), (38, 40.5), (13, 3.0)])
def test_count_residual_squares_to_the_poisson_deviance(k: int, mu: float) -> None:
    t = T.Target("exceed_count", "preempt_off", "3", "count[1e+06,1e+07)", float(k))
    r = T.residual(t, mu)
    deviance = 2.0 * (stats.poisson.logpmf(k, k) - stats.poisson.logpmf(k, mu)) if k else 2.0 * mu
    assert r * r == pytest.approx(deviance, rel=1e-9)
    assert math.copysign(1.0, r) == math.copysign(1.0, mu - k)


# ------------------------------------------------------------------------------------------------
# common random numbers


def test_pinned_stream_makes_rate_changes_keep_every_draw(tmp_path: Path) -> None:
    """With the key pinned, a rate change leaves T (sender-independent here) bit-identical."""
    path = toy_params_file(tmp_path, samples=20_000)
    raw = load_raw(path)
    p1 = build_params(raw)
    p2 = build_params(apply_override(raw, "workload.rate_hz", 55.0))
    assert p1.model_hash != p2.model_hash
    key = p1.stream_key
    h1 = run_point(p1, threads=1, stream_key=key).counts[K.H_CALL]
    h2 = run_point(p2, threads=1, stream_key=key).counts[K.H_CALL]
    h3 = run_point(p2, threads=1).counts[K.H_CALL]  # its own stream: other draws
    assert np.array_equal(h1, h2)
    assert not np.array_equal(h1, h3)


def test_analytic_keys_reuse_the_simulation(tmp_path: Path) -> None:
    path = toy_params_file(tmp_path, samples=20_000)
    raw = apply_override(load_raw(path), "report.exceed_bins_ns", [1000.0, 1.0e4, 1.0e5])
    fit = [T.FitKey("report.duration_h", 1, 100, log=True)]
    targets = [T.Target("exceed_count", "preempt_off", "all", "count[1e+03,1e+04)", 0.0)]
    ev = C.Evaluator(raw, targets, fit, threads=1)
    a, b = ev((1.0,)), ev((7.5,))
    assert a.simulated and not b.simulated and ev.n_sims == 1
    # counts are linear in the duration, and nothing else moved
    assert b.values[0] == pytest.approx(7.5 * a.values[0], rel=1e-12)
    assert a.values[0] > 0


def test_pooled_senders_agree_with_the_engine_and_make_rates_analytic(tmp_path: Path) -> None:
    """On a symmetric box the pooled estimate and the engine's per-group estimate agree (95% CIs)."""
    path = toy_params_file(tmp_path, samples=60_000, entry=E_TRUE)
    raw = apply_override(load_raw(path), "workload.rate_hz", [40, 0, 0, 10, 0, 0, 0, 0])
    raw = apply_override(raw, "ipi.delivery_ns", {"dist": "exponential", "mean": MU_TRUE})
    targets = [T.Target("window_max_ns", "preempt_off", str(c), "p50", 1.0) for c in (0, 1, 3)]
    fit = [T.FitKey("workload.rate_hz[0]", 1, 100, log=True)]
    ev = C.Evaluator(raw, targets, fit, threads=1, pool_senders=True)
    a, b = ev((40.0,)), ev((20.0,))
    assert ev.n_sims == 1 and not b.simulated  # a rate is an analytic key once senders are pooled
    assert a.rows[0].n == 60_000  # every fan-out feeds every calling group
    assert a.values[1] == 0.0 == b.values[1]  # cpu1 sends nothing and has no background
    assert b.values[0] < a.values[0] and b.values[2] == a.values[2]
    # the engine's own estimate (each group fed by its own senders, other streams, 4x the samples)
    from mcsmp.metrics import compute_metrics

    direct = compute_metrics(run_point(build_params(apply_override(raw, "samples", 240_000)), threads=1))
    for row in a.rows:
        ref = next(r for r in direct if (r.metric, r.policy, r.cpu, r.statistic) == (row.metric, row.policy, row.cpu, row.statistic))
        assert row.low <= ref.high and ref.low <= row.high, (row, ref)


def test_pooled_senders_refuse_an_asymmetric_box(tmp_path: Path) -> None:
    raw = apply_override(load_raw(toy_params_file(tmp_path, samples=1000)), "machine",
                         {"cpus": 8, "sockets": 2, "cpus_per_llc": 4, "smt": 1})  # fmt: skip
    with pytest.raises(UserError, match="symmetric box"):
        C.Evaluator(raw, [T.Target("call_ns", "", "all", "p50", 1.0)], [T.FitKey("workload.rate_hz", 1, 200)],
                    pool_senders=True)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# the fit recovers a known truth


def _half_widths(result: C.CalibrationResult) -> dict[str, float]:
    """Half-width of the model's 95% interval of each target quantile at the fit.

    At the fit the model's quantiles match the exact targets up to their Monte Carlo error, which
    the interval bounds (order-statistic ranks ± 1.96 sd, widened to bucket edges, MODEL §5).
    """
    return {r.statistic: (r.high - r.low) / 2.0 for r in result.best.rows}


def test_calibrate_recovers_two_known_parameters(tmp_path: Path) -> None:
    """least_squares fits μ and E from (800, 4000) to the truth (2000, 1500).

    ``x_q = E + μ a_q`` is linear, so errors δ_q of the p10 and p90 estimates move the fit by at
    most ``|Δμ| ≤ (δ_10 + δ_90)/(a_90 − a_10)`` and ``|ΔE| ≤ δ_10 + a_10 |Δμ|``.
    """
    raw = load_raw(toy_params_file(tmp_path))
    tf = T.load_targets(toy_targets_file(tmp_path))
    result = C.calibrate(raw, tf, threads=1)
    half = _half_widths(result)
    d_mu = (half["p10"] + half["p90"]) / (a_q(0.9) - a_q(0.1))
    d_e = half["p10"] + a_q(0.1) * d_mu
    mu, e = result.x
    assert abs(mu - MU_TRUE) <= d_mu, (mu, d_mu)
    assert abs(e - E_TRUE) <= d_e, (e, d_e)
    assert result.best.cost < 1e-3 * result.start_eval.cost
    # the tolerances are real constraints: a few % of the truth, far below the start's errors
    assert d_mu < 0.05 * MU_TRUE and d_e < 0.1 * E_TRUE


def test_calibrate_nelder_mead_recovers_one_known_parameter(tmp_path: Path) -> None:
    """Nelder–Mead fits μ alone (E at its true value): ``|Δμ| ≤ max_q δ_q / a_q``."""
    raw = load_raw(toy_params_file(tmp_path, entry=E_TRUE))
    tf = T.load_targets(toy_targets_file(tmp_path, method="nelder-mead", fit_entry=False))
    result = C.calibrate(raw, tf, threads=1)
    half = _half_widths(result)
    d_mu = max(half[f"p{q * 100:g}"] / a_q(q) for q in QS)
    assert abs(result.x[0] - MU_TRUE) <= d_mu, (result.x[0], d_mu)
    assert d_mu < 0.05 * MU_TRUE


# ------------------------------------------------------------------------------------------------
# the fitted file


def _fake_result(fit: list[T.FitKey], x: tuple[float, ...]) -> C.CalibrationResult:
    row = MetricRow("call_ns", "", "all", "p50", 10.0, 9.0, 11.0, 100)
    t = T.Target("call_ns", "", "all", "p50", 10.0)
    ev = C.Evaluation(x, np.array([10.0]), [row], np.array([0.0]), 0.0, True)
    return C.CalibrationResult(fit, x, x, ev, ev, [t], "least_squares", 100, 1, "ab" * 32, 3, 2, 1.0, "ok")


def test_fitted_text_substitutes_in_place_and_keeps_comments(tmp_path: Path) -> None:
    text = (
        "# my box\n"
        "workload:\n"
        "  rate_hz: [1, 2, 3, 4]   # per CPU\n"
        "remote:\n"
        "  irq_off:\n"
        "    length: {dist: mixture, components: [{weight: 0.9, dist: const, value: 10},\n"
        "             {weight: 0.1, dist: pareto, scale: 100, alpha: 3.0}]}\n"
        "report: {duration_h: 4}  # hours\n"
    )
    fit = [T.FitKey("workload.rate_hz[2]", 0.1, 10, also=("workload.rate_hz[0]",)),  # tied: one value, two entries
           T.FitKey("remote.irq_off.length.components[1].alpha", 1.5, 6), T.FitKey("report.duration_h", 1, 24)]  # fmt: skip
    out = C.fitted_text(text, "box.yaml", _fake_result(fit, (7.25, 2.5, 9.0)), "mcsmp calibrate ...", "t.yaml")
    assert out.startswith(C.HEADER_BEGIN)
    assert "workload.rate_hz[2] (+1 tied)" in out
    body = out.split(C.HEADER_END + "\n", 1)[1]
    assert body == text.replace("[1, 2, 3, 4]", "[7.25, 2, 7.25, 4]").replace("alpha: 3.0", "alpha: 2.5").replace(
        "duration_h: 4", "duration_h: 9")  # fmt: skip
    data = yaml.safe_load(out)
    assert data["workload"]["rate_hz"] == [7.25, 2, 7.25, 4]
    # a re-fit replaces the header instead of stacking a second one
    again = C.fitted_text(out, "box.yaml", _fake_result(fit, (7.25, 2.5, 9.0)), "mcsmp calibrate ...", "t.yaml")
    assert again == out
    with pytest.raises(UserError, match="not set in this file"):
        C.fitted_text(text, "box.yaml", _fake_result([T.FitKey("costs.entry_ns", 0, 1)], (0.5,)), "c", "t")


def test_write_atomic_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.yaml"
    write_atomic(target, "a: 1\n")
    write_atomic(target, "a: 2\n")
    assert target.read_text() == "a: 2\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.yaml"]
    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.txt"
        write_atomic(fresh, b"x")
        assert fresh.stat().st_mode & 0o777 == 0o644  # like open(), not mkstemp's 0600
        os.chmod(target, 0o640)
        write_atomic(target, "a: 3\n")
        assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(umask)


# ------------------------------------------------------------------------------------------------
# the command line


def test_cli_calibrate_writes_a_valid_fitted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = toy_params_file(tmp_path, samples=30_000)
    targets = toy_targets_file(tmp_path, fit_entry=False)
    out = tmp_path / "fitted.yaml"
    status = main(["calibrate", str(params), str(targets), "-o", str(out), "--max-evals", "25", "--threads", "1", "-q"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "ipi.delivery_ns.mean" in printed and "model/obs-1" in printed
    fitted = build_params(load_raw(out))  # valid, and carries the fitted value
    mu = fitted.ipi.delivery_ns.mean
    assert out.read_text().count(C.HEADER_BEGIN) == 1
    assert f"{mu:.6g}" in out.read_text()
    assert mu != 800.0


def test_cli_calibrate_bad_targets_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = toy_params_file(tmp_path, samples=1000)
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - {metric: call_ns, quantile: 0.5, value: 10}\nfit:\n  - {key: costs.entry_ns, low: 5, high: 1}\n")
    out = tmp_path / "never.yaml"
    assert main(["calibrate", str(params), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yaml:4:" in err[0] and "fit[0].high" in err[0]
    assert not out.exists()
