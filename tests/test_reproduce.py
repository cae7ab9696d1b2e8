"""mcsmp.reproduce: criteria, scenarios, and the end-to-end comparison with its outputs.

The end-to-end test uses a toy box whose quiet CPUs (rate 0) have a closed form: exponential
background sections of mean ``m`` at rate ``λ_b`` give a Gumbel window maximum,
``x_q = m ln(W λ_b / −ln q)`` (MODEL.md §7), and ``λ_b D (e^{−a/m} − e^{−b/m})`` sections in
``[a, b)`` over ``D`` seconds. The model column of the comparison must match them (to the
0.8 % bucket width the derived metrics are evaluated on), and must equal an independent
``compute_metrics(run_point(...))`` bit for bit.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import yaml
from conftest import ZERO_BASE

from mcsmp.cli import main
from mcsmp.config import build_params, load_raw
from mcsmp.fidelity import reproduce as R
from mcsmp.fidelity.targets import Target, with_target_quantiles
from mcsmp.metrics import MetricRow, compute_metrics
from mcsmp.sim import run_point

BG_RATE, BG_MEAN, WINDOW, HOURS = 200.0, 20_000.0, 30.0, 2.0
BUCKET = 2.0**-7  # relative bucket width at precision_bits 7 (the derived curves' grid)


def naive_band(mu: float, level: float = 0.95) -> tuple[int, int]:
    """Smallest k with CDF ≥ (1−level)/2 and smallest k with CDF ≥ (1+level)/2, by summing the pmf."""
    lo_p, hi_p = (1 - level) / 2, (1 + level) / 2
    pmf, cdf, k = math.exp(-mu), 0.0, 0
    lo = None
    while True:
        cdf += pmf
        if lo is None and cdf >= lo_p - 1e-15:
            lo = k
        if cdf >= hi_p - 1e-15:
            return lo, k
        k += 1
        pmf *= mu / k


@pytest.mark.parametrize("mu", [0.05, 0.7, 3.0, 9.6, 26.2, 40.5, 250.0])
def test_poisson_band_matches_a_naive_sum(mu: float) -> None:
    assert R.poisson_band(mu) == naive_band(mu)


def test_poisson_band_edge_cases() -> None:
    assert R.poisson_band(0.0) == (0, 0)
    assert R.poisson_band(math.nan) == (0, 0)
    lo, hi = R.poisson_band(math.inf)
    assert lo > 10**12


def _row(value: float, low: float, high: float) -> MetricRow:
    return MetricRow("window_max_ns", "preempt_off", "3", "p99", value, low, high, 1000)


@pytest.mark.parametrize(
    ("model", "met"), [(1.2e6, True), (1.2001e6, False), (0.8e6, True), (0.7999e6, False), (1e6, True)]
)
def test_time_criterion_is_relative_tolerance(model: float, met: bool) -> None:
    t = Target("window_max_ns", "preempt_off", "3", "p99", 1.0e6)
    c = R.compare(t, _row(model, model, model))
    assert c.met is met and c.met_ci is met
    assert c.band_low == pytest.approx(model / 1.2) and c.band_high == pytest.approx(model / 0.8)


def test_time_criterion_within_ci() -> None:
    t = Target("window_max_ns", "preempt_off", "3", "p99", 1.0e6, tolerance=0.25)
    c = R.compare(t, _row(2.0e6, 1.1e6, 3.0e6))  # 100 % off, but the CI reaches 1.25e6
    assert not c.met and c.met_ci
    assert c.criterion == "±25%"


def test_count_criterion_is_the_poisson_band() -> None:
    t = Target("exceed_count", "preempt_off", "3", "count[1e+06,1e+07)", 38.0)
    lo, hi = naive_band(26.2)
    c = R.compare(t, MetricRow("exceed_count", "preempt_off", "3", t.statistic, 26.2, 22.0, 30.0, 100))
    assert (c.band_low, c.band_high) == (lo, hi)
    assert c.met is (lo <= 38 <= hi)
    assert not R.compare(dataclasses.replace(t, value=60.0), c.row).met


# ------------------------------------------------------------------------------------------------
# scenarios


def toy_files(tmp_path: Path, samples: int = 20_000) -> tuple[Path, Path]:
    data = yaml.safe_load(yaml.safe_dump(ZERO_BASE))
    data.update(name="toybox", samples=samples, policies=["preempt_off", "preemptible_wait"])
    data["workload"]["rate_hz"] = [40, 0, 0, 40, 0, 0, 0, 0]
    data["workload"]["caller"] = {"preemptible": 1.0, "spinlock": 0.0, "preempt_disabled": 0.0}
    data["ipi"]["delivery_ns"] = {"dist": "exponential", "mean": 50_000.0}
    data["background"] = [{"name": "bg", "rate_hz": BG_RATE, "length": {"dist": "exponential", "mean": BG_MEAN}}]
    data["report"].update(window_s=WINDOW, duration_h=HOURS, exceed_bins_ns=[1.0e5, 2.0e5, 1.0e6])
    params = tmp_path / "toybox.yaml"
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    targets = {
        "targets": [
            {"metric": "window_max_ns", "policy": "preempt_off", "cpu": c, "quantile": q, "value": v}
            for c in range(8) for q, v in ((0.5, 180_000.0), (0.99, 260_000.0))
        ] + [
            {"metric": "exceed_count", "policy": "preempt_off", "cpu": 1, "bin": [1.0e5, 2.0e5], "value": 3},
            {"metric": "exceed_count", "policy": "preempt_off", "cpu": 0, "bin": [2.0e5, 1.0e6], "value": 0},
            {"metric": "window_max_ns", "policy": "preemptible_wait", "cpu": "max", "quantile": 0.99,
             "value": 250_000.0, "tolerance": 0.25},
        ],
    }  # fmt: skip
    tpath = tmp_path / "toy-targets.yaml"
    tpath.write_text(yaml.safe_dump(targets, sort_keys=False))
    return params, tpath


def test_scale_cpus_tiles_per_cpu_lists(tmp_path: Path) -> None:
    params, _ = toy_files(tmp_path, samples=1_000_000)
    raw = R.scale_cpus(load_raw(params), 32, sockets=2)
    p = build_params(raw)
    assert (p.machine.cpus, p.machine.sockets, p.machine.cpus_per_llc, p.machine.smt) == (32, 2, 16, 1)
    assert p.workload.rate_hz == tuple([40.0, 0, 0, 40.0, 0, 0, 0, 0] * 4)
    assert p.samples == round(1_000_000 * 7 / 31)  # the same target-samples as 8 CPUs (floor: one chunk)
    assert p.background == build_params(load_raw(params)).background


def test_every_scenario_makes_the_change_it_names(tmp_path: Path) -> None:
    raw = load_raw(toy_files(tmp_path)[0])
    base = build_params(raw)
    built = {s.name: build_params(s.change(raw)) for s in R.SCENARIOS}
    assert set(built) == {"seed", "rt", "uncleaned", "reentry", "cpus64", "cpus256"}
    assert built["seed"].params_hash == base.params_hash  # the box as is
    assert built["rt"].kernel.preemption == "rt" and base.kernel.preemption != "rt"
    callers = built["uncleaned"].workload.caller
    assert (callers.preemptible, callers.spinlock, callers.preempt_disabled) == (0.01, 0.09, 0.90)
    assert built["reentry"].policy.reentry == "bound"
    for name, cpus, sockets in (("cpus64", 64, 1), ("cpus256", 256, 2)):
        p = built[name]
        assert (p.machine.cpus, p.machine.sockets, p.machine.cpus_per_llc) == (cpus, sockets, cpus // sockets)
        assert p.workload.rate_hz == tuple(base.workload.rate_hz[c % 8] for c in range(cpus))  # tiled
        assert p.report.reference is None  # the 16-CPU reference does not apply
        assert p.samples == max(round(base.samples * 7 / (cpus - 1)), 1 << 16)  # same target-samples
    # nothing else moves: every scenario differs from the box only in the keys it names
    for name, p in built.items():
        changed = {k for k in base.resolved if base.resolved[k] != p.resolved[k]}
        allowed = {"seed": set(), "rt": {"kernel"}, "uncleaned": {"workload"}, "reentry": {"policy"},
                   "cpus64": {"machine", "workload", "report", "samples"},
                   "cpus256": {"machine", "workload", "report", "samples"}}[name]  # fmt: skip
        assert changed <= allowed, (name, changed)


# ------------------------------------------------------------------------------------------------
# end to end


def gumbel_quantile(q: float) -> float:
    return BG_MEAN * math.log(WINDOW * BG_RATE / -math.log(q))


def test_reproduce_end_to_end(tmp_path: Path) -> None:
    params, targets = toy_files(tmp_path)
    out = tmp_path / "out"
    rep = R.reproduce(params, targets_path=targets, out_dir=out, threads=1, scenarios=["rt"])
    names = sorted(p.name for p in out.iterdir())
    assert names == ["comparison.csv", "figure.pdf", "figure.png", "report.txt", "scenarios.csv", "summary.csv"]
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "figure.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "report.txt").read_text().strip() == rep.text.strip()

    # the model column is compute_metrics of the same point, bit for bit
    tf_targets = [c.target for c in rep.comparisons]
    p = build_params(with_target_quantiles(load_raw(params), tf_targets))
    rows = compute_metrics(run_point(p, threads=1))
    with (out / "comparison.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rep.comparisons) == 19
    for rec in table:
        cands = [r for r in rows if r.metric == rec["metric"] and r.policy == rec["policy"] and r.statistic == rec["statistic"]
                 and (r.cpu == rec["cpu"] or (rec["cpu"] == "max" and r.cpu != "all"))]  # fmt: skip
        assert float(rec["model"]) == max(r.value for r in cands)
        # the met column is the criterion applied to the written numbers
        c = R.compare(Target(rec["metric"], rec["policy"], rec["cpu"], rec["statistic"], float(rec["seed"]),
                             tolerance=0.25 if rec["policy"] == "preemptible_wait" else 0.2),
                      max(cands, key=lambda r: r.value))  # fmt: skip
        assert int(rec["met"]) == int(c.met)

    # quiet CPUs (rate 0): exactly the closed-form Gumbel window maximum and background counts
    by = {(c.target.cpu, c.target.statistic): c for c in rep.comparisons if c.target.policy == "preempt_off"}
    for cpu in ("1", "2", "7"):
        for q, stat in ((0.5, "p50"), (0.99, "p99")):
            assert by[(cpu, stat)].row.value == pytest.approx(gumbel_quantile(q), rel=BUCKET)
    expected = BG_RATE * HOURS * 3600 * (math.exp(-1e5 / BG_MEAN) - math.exp(-2e5 / BG_MEAN))
    assert by[("1", "count[1e+05,2e+05)")].row.value == pytest.approx(expected, rel=1e-12)
    # busy CPUs (rate 40 Hz of fan-outs with a 50 us-scale T) have a longer window maximum
    assert by[("0", "p50")].row.value > 1.05 * by[("1", "p50")].row.value

    # scenarios: the base and rt, each with a worst-CPU before/after
    assert [s.scenario.name for s in rep.scenarios] == ["seed", "rt"]
    for s in rep.scenarios:
        before, after = s.worst("preempt_off"), s.worst("preemptible_wait")
        assert before is not None and after is not None and after.value <= before.value
    assert "Targets met:" in rep.text and "Scenario rt" in rep.text


def test_cli_reproduce_missing_targets_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, _ = toy_files(tmp_path)
    assert main(["reproduce", str(params), "--targets", str(tmp_path / "none.yaml"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.yaml" in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_reproduce_unknown_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, targets = toy_files(tmp_path)
    status = main(["reproduce", str(params), "--targets", str(targets), "--scenarios", "rt,nope", "-o", str(tmp_path / "o")])
    assert status == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err
