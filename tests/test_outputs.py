"""Output files of a sweep: CSV schema and values, histogram files, .hgrm, meta.json, figures."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hgrm_reference import read_hgrm
from scipy import stats

from mcsmp.cli import main
from mcsmp.config import expand, load_raw
from mcsmp.io.atomic import atomic_open, write_atomic
from mcsmp.io.hgrm import hdr_histogram, hgrm_bytes
from mcsmp.io.histfile import hist_path, load_hist, save_hist
from mcsmp.io.tables import ns_label
from mcsmp.metrics import compute_metrics, quantile_label, wakeup_cdf
from mcsmp.sim import run_point
from mcsmp.sim.engine import CHUNK_FANOUTS, PILOT_CHUNKS, STREAM_SCHEME
from mcsmp.sim.histogram import Histogram, Layout
from mcsmp.sim.model import policy_rows

PARAMS = {
    "name": "tiny",
    "seed": 5,
    "samples": 40000,
    "policies": ["preempt_off", "preemptible_wait", "cpus_read_lock"],
    "machine": {"cpus": 4, "sockets": 1, "cpus_per_llc": 4, "smt": 1},
    "kernel": {"preemption": "full"},
    "workload": {"rate_hz": [100, 10, 10, 100], "caller": {"preemptible": 0.5, "spinlock": 0.2, "preempt_disabled": 0.3}},
    "report": {
        "quantiles": [0.5, 0.9, 0.99, 0.999],
        "exceed_bins_ns": [1.0e4, 1.0e5, 1.0e6],
        "reference": {"window_max_ns": {0.5: [90000, 60000, 60000, 95000], 0.99: [200000, 80000, 80000, 210000]},
                      "exceed_count": {0: [5, 1], 3: [6, 0]}},
    },  # fmt: skip
    "sweep": {"grid": {"cache.placement": ["percpu", "stack"]}, "zip": {"policy.reentry": ["bound", "off"]}},
}
N_POINTS = 4


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    out = root / "out"
    assert main(["sweep", str(path), "-o", str(out), "--threads", "2"]) == 0
    return out


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _results(out: Path) -> list:  # type: ignore[type-arg]
    meta = json.loads((out / "meta.json").read_text())
    return [(e, load_hist(hist_path(out, e["id"]))) for e in meta["points"]]


def _pooled(result, which: int, i: int) -> Histogram:  # type: ignore[no-untyped-def]
    h = Histogram.empty(result.layout)
    for g in range(result.model.n_groups):
        h = h + result.row_histogram(policy_rows(g, i, len(result.params.policies))[which])
    return h


# --------------------------------------------------------------------------------------------
# summary.csv


def test_summary_schema_and_values_match_the_histograms(swept: Path) -> None:
    header, rows = _csv(swept / "summary.csv")
    assert header == ["point", "point_id", "cache.placement", "policy.reentry", "metric", "policy", "cpu",
                      "statistic", "value_ns", "ci95_low_ns", "ci95_high_ns", "n_samples"]  # fmt: skip
    keys = [(r["point"], r["metric"], r["policy"], r["cpu"], r["statistic"]) for r in rows]
    assert len(keys) == len(set(keys))  # one row per (point, metric, policy, cpu, statistic)
    assert {r["point"] for r in rows} == {str(i) for i in range(N_POINTS)}
    assert all(r["metric"].endswith("_ns") for r in rows)  # units in the column names
    assert {"call_ns", "remote_wait_ns", "info_cost_ns", "preempt_off_ns", "hotplug_block_ns", "wakeup_ns",
            "rendezvous_ns", "window_max_ns"} == {r["metric"] for r in rows}  # fmt: skip
    by_key = {k: r for k, r in zip(keys, rows, strict=True)}
    checked = 0
    for entry, result in _results(swept):
        pt = str(entry["index"])
        assert by_key[(pt, "call_ns", "", "all", "mean")]["cache.placement"] == result.params.cache.placement
        hists = {("call_ns", ""): result.histogram("call_ns"), ("remote_wait_ns", ""): result.histogram("remote_wait_ns"),
                 ("info_cost_ns", ""): result.histogram("info_cost_ns")}  # fmt: skip
        for i, pol in enumerate(result.params.policies):
            hists[("preempt_off_ns", pol)] = _pooled(result, 0, i)
            hists[("hotplug_block_ns", pol)] = _pooled(result, 1, i)
        for (metric, pol), hist in hists.items():
            row = by_key[(pt, metric, pol, "all", "mean")]
            assert float(row["value_ns"]) == hist.mean and int(row["n_samples"]) == hist.n
            for q in PARAMS["report"]["quantiles"]:
                row = by_key[(pt, metric, pol, "all", quantile_label(q))]
                est = hist.quantile(q)
                assert (float(row["value_ns"]), float(row["ci95_low_ns"]), float(row["ci95_high_ns"])) == (
                    est.value, est.low, est.high)  # fmt: skip
                assert float(row["ci95_low_ns"]) <= float(row["value_ns"]) <= float(row["ci95_high_ns"])
                checked += 1
    assert checked == N_POINTS * (3 + 2 * 3) * 4
    # the sample counts are what was simulated: one call per fan-out, k targets per fan-out
    for entry, result in _results(swept):
        assert result.histogram("call_ns").n == PARAMS["samples"]
        assert result.histogram("remote_wait_ns").n == PARAMS["samples"] * 3  # every other CPU is a target


def test_per_cpu_table(swept: Path) -> None:
    header, rows = _csv(swept / "per_cpu.csv")
    assert header[:6] == ["point", "point_id", "cache.placement", "policy.reentry", "policy", "cpu"]
    bins = [f"sections_{ns_label(a)}_{ns_label(b)}" for a, b in ((1e4, 1e5), (1e5, 1e6))]
    assert bins == ["sections_10us_100us", "sections_100us_1ms"]
    for col in ["window_max_p50_ns", "window_max_p99_ns", *bins, "ref_window_max_p50_ns", "ref_sections_10us_100us"]:
        assert col in header
    assert len(rows) == N_POINTS * 3 * 4  # point x policy x CPU
    _, summary = _csv(swept / "summary.csv")
    wm = {(r["point"], r["policy"], r["cpu"], r["statistic"]): r["value_ns"] for r in summary if r["metric"] == "window_max_ns"}
    ref = PARAMS["report"]["reference"]
    for r in rows:
        for q in PARAMS["report"]["quantiles"]:
            assert r[f"window_max_{quantile_label(q)}_ns"] == wm[(r["point"], r["policy"], r["cpu"], quantile_label(q))]
        cpu = int(r["cpu"])
        assert float(r["ref_window_max_p50_ns"]) == ref["window_max_ns"][0.5][cpu]
        assert float(r["ref_window_max_p99_ns"]) == ref["window_max_ns"][0.99][cpu]
        want = ref["exceed_count"].get(cpu)
        if want is None:
            assert r["ref_sections_10us_100us"] == ""  # a CPU the reference does not list
        else:
            assert float(r["ref_sections_10us_100us"]) == want[0]
        for b in bins:
            assert 0 <= float(r[f"{b}_ci95_low"]) <= float(r[b]) <= float(r[f"{b}_ci95_high"])
        assert r["window_s"] == "30.0" and int(r["calls_sampled"]) > 0
    # CPUs with the same rate share one histogram, so their rows are equal
    for r0 in rows:
        if r0["cpu"] == "0":
            twin = next(r for r in rows if r["point"] == r0["point"] and r["policy"] == r0["policy"] and r["cpu"] == "3")
            assert r0["window_max_p99_ns"] == twin["window_max_p99_ns"]


def test_mask_table(swept: Path) -> None:
    header, rows = _csv(swept / "mask.csv")
    assert header[:4] == ["point", "point_id", "cache.placement", "policy.reentry"]
    assert {"cpumask_size_bytes", "mask_bytes_per_task", "mask_bytes_total", "atomic_alloc_fallbacks_per_s"} <= set(header)
    assert len(rows) == N_POINTS


def test_wakeup_rows_follow_the_formula_from_the_histogram(swept: Path) -> None:
    """summary.csv's wakeup_ns quantiles against docs/model.md §4 evaluated here, independently:
    F_w(x + cs) = (1 − ρ − ρ_b) + ρ F_e(x) + ρ_b F_e,b(x), with F_e the equilibrium residual of the
    recorded P histogram (piecewise-linear CDF inside buckets, so the survival integral is a
    trapezoid sum) and F_e,b the closed form of docs/model.md §7 for the lognormal background."""
    _, summary = _csv(swept / "summary.csv")
    for entry, result in _results(swept):
        params = result.params
        (bg,) = params.background  # the default: one lognormal lock-contention source on every CPU
        ((comp),) = bg.length.components
        mu_b, sd_b = comp.a, comp.b
        cs = params.costs.context_switch_ns
        for pol in params.policies:
            h = result.histogram("preempt_off_ns", pol, group=0)  # group 0: CPUs 0 and 3 (100 Hz)
            x = h.layout.edges[:-1]  # finite edges; the overflow bucket is empty here
            assert h.counts[-1] == 0
            surv = 1.0 - np.concatenate(([0], np.cumsum(h.counts)))[:-1] / h.n
            area = np.concatenate(([0.0], np.cumsum(np.diff(x) * 0.5 * (surv[:-1] + surv[1:]))))
            f_e = area / area[-1]
            rho = 100.0 * h.mean * 1e-9
            mean_b = math.exp(mu_b + 0.5 * sd_b**2)
            rho_b = bg.rate_hz * mean_b * 1e-9
            with np.errstate(divide="ignore"):
                lx = np.log(x)
            f_eb = x * stats.lognorm.sf(x, s=sd_b, scale=math.exp(mu_b)) / mean_b + stats.norm.cdf((lx - mu_b - sd_b**2) / sd_b)
            f_w = (1.0 - rho - rho_b) + rho * f_e + rho_b * f_eb
            rows = {r["statistic"]: float(r["value_ns"]) for r in summary
                    if r["point"] == str(entry["index"]) and r["metric"] == "wakeup_ns" and r["policy"] == pol
                    and r["cpu"] == "0"}  # fmt: skip
            assert set(rows) == {"mean"} | {quantile_label(q) for q in PARAMS["report"]["quantiles"]}
            for q in PARAMS["report"]["quantiles"]:
                v = rows[quantile_label(q)] - cs
                if f_w[0] >= q:  # the instant falls in no section often enough: just the context switch
                    assert v == 0.0
                    continue
                i = int(np.searchsorted(f_w, q))  # F_w(x[i-1]) < q <= F_w(x[i])
                assert x[i - 1] <= v <= x[i], (pol, q, v, x[i - 1], x[i])
                # and linear inside the bucket, as reported
                expect = x[i - 1] + (q - f_w[i - 1]) / (f_w[i] - f_w[i - 1]) * (x[i] - x[i - 1])
                assert v == pytest.approx(expect, rel=1e-9, abs=1e-6)  # the same numbers, other code
            # the mean: E[W] = ρ E[P²] / (2 E[P]) + ρ_b E[B²] / (2 E[B]), P piecewise uniform in its
            # buckets; the report integrates 1 − F_w on the bucket grid, exact to a bucket's width
            lo, hi = x[:-1], x[1:]
            p = h.counts[:-1] / h.n
            m2 = float(np.sum(p * (lo * lo + lo * hi + hi * hi) / 3.0))
            m1 = float(np.sum(p * 0.5 * (lo + hi)))
            expect_mean = rho * m2 / (2.0 * m1) + rho_b * math.exp(mu_b + 1.5 * sd_b**2) / 2.0
            assert rows["mean"] - cs == pytest.approx(expect_mean, rel=2.0 ** -params.report.precision_bits)
            # the figure's curve is this same curve
            xs, cdf, lo_b, hi_b = wakeup_cdf(result, pol, group=0)
            assert np.allclose(cdf[: len(f_w)], f_w, atol=1e-12) and np.all(lo_b <= cdf) and np.all(cdf <= hi_b)
            assert np.array_equal(xs[: len(x)], x + cs)


# --------------------------------------------------------------------------------------------
# Re-rendering


def test_report_reproduces_every_table_byte_for_byte(swept: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ("summary.csv", "per_cpu.csv", "mask.csv")
    before = {n: (swept / n).read_bytes() for n in names}
    hgrm_before = (swept / "hgrm").rglob("*.hgrm").__next__().read_bytes()
    assert main(["report", str(swept), "--no-plots"]) == 0
    assert {n: (swept / n).read_bytes() for n in names} == before
    # other quantiles and windows, from the same histograms
    assert main(["report", str(swept), "--quantiles", "0.25,0.75", "0.95", "--window-s", "60", "--no-plots"]) == 0
    _, rows = _csv(swept / "summary.csv")
    # the quantiles asked for, the mean and the paired differences (policies, placements)
    assert {r["statistic"] for r in rows} == {"mean", "p25", "p75", "p95", "mean_diff_vs_preempt_off", "mean_diff_vs_percpu"}
    _, per_cpu = _csv(swept / "per_cpu.csv")
    assert {r["window_s"] for r in per_cpu} == {"60.0"}
    assert json.loads((swept / "meta.json").read_text())["rendered"]["overrides"]["report.window_s"] == 60.0
    # a bad value names the option
    assert main(["report", str(swept), "--quantiles", "1.5", "--no-plots"]) == 2
    assert "--quantiles" in capsys.readouterr().err
    assert main(["report", str(swept), "--no-plots"]) == 0
    assert {n: (swept / n).read_bytes() for n in names} == before
    assert (swept / "hgrm").rglob("*.hgrm").__next__().read_bytes() == hgrm_before


def test_report_of_a_folder_without_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "meta.json" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Histogram files


def test_hist_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    params = expand(load_raw(path))[0].params
    ref = run_point(params, threads=1)
    save_hist(tmp_path / "h.npz", ref)
    back = load_hist(tmp_path / "h.npz")
    assert back.params.model_hash == params.model_hash and back.params.resolved == params.resolved
    assert np.array_equal(back.counts, ref.counts) and back.wait_tail_mean == ref.wait_tail_mean
    assert all(np.array_equal(back.chunk_sums[c], ref.chunk_sums[c]) for c in ref.chunk_sums)
    assert back.chunk_fanouts == ref.chunk_fanouts and back.complete
    assert compute_metrics(back) == compute_metrics(ref)
    with np.load(tmp_path / "h.npz", allow_pickle=False) as z:  # readable without mcsmp
        assert list(z["row_names"][:4]) == ["call_ns", "wait_tail_ns", "remote_wait_ns", "info_cost_ns"]
        assert z["edges"].shape == (z["counts"].shape[1] + 1,)


def test_atomic_write_leaves_old_file_or_new(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left
    write_atomic(target, b"new")
    assert target.read_text() == "new"


# --------------------------------------------------------------------------------------------
# .hgrm


def _hists(swept: Path) -> list[Histogram]:
    result = _results(swept)[0][1]
    rng = np.random.default_rng(3)
    hs = [result.row_histogram(row) for row in range(result.counts.shape[0]) if result.counts[row].sum()]
    hs += [Histogram.from_values(Layout(7), np.concatenate((rng.lognormal(2, 2.5, 3000), [0.2, 5e12]))),
           Histogram.from_values(Layout(9), rng.lognormal(9, 1, 2000)), Histogram.from_values(Layout(4), rng.exponential(500, 999))]  # fmt: skip
    return hs


def test_hgrm_writer_is_hdrhs_own_output(swept: Path) -> None:
    for h in _hists(swept):
        buf = io.BytesIO()
        hdr_histogram(h).output_percentile_distribution(buf, 1)
        assert hgrm_bytes(h) == buf.getvalue()


def _recorded_value(layout: Layout, b: int) -> float:
    """Where our bucket ``b`` is recorded in the HdrHistogram (module docstring of mcsmp.io.hgrm)."""
    e = layout.edges
    if b == 0:
        return 0.0
    if b == layout.n_buckets - 1:
        return 1e12
    return math.floor(0.5 * (e[b] + e[b + 1]))


def test_hgrm_files_parse_back_to_the_same_distribution(swept: Path) -> None:
    entry, result = _results(swept)[0]
    folder = swept / "hgrm" / entry["id"]
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted(["call_ns.hgrm", "remote_wait_ns.hgrm", "info_cost_ns.hgrm"]
                           + [f"{m}.{p}.hgrm" for m in ("preempt_off_ns", "hotplug_block_ns") for p in PARAMS["policies"]])  # fmt: skip
    hists = {"call_ns.hgrm": result.histogram("call_ns"), "info_cost_ns.hgrm": result.histogram("info_cost_ns"),
             "preempt_off_ns.preemptible_wait.hgrm": _pooled(result, 0, 1)}  # fmt: skip
    layout = result.layout
    rec = np.array([_recorded_value(layout, b) for b in range(layout.n_buckets)])
    for name, hist in hists.items():
        rows = read_hgrm(folder / name)
        cum = np.cumsum(hist.counts)
        # every row: the count up to its value is exactly ours (the CDF survives the conversion)
        for value, _pct, count in rows:
            assert count == int(hist.counts[rec <= value].sum())
        assert rows[-1][2] == hist.n and rows[-1][1] == 1.0
        # percentiles: each of our quantiles lies between the .hgrm values around its rank,
        # widened by one of our buckets (the documented quantisation)
        width = 2.0**-layout.precision_bits
        for q in PARAMS["report"]["quantiles"]:
            rank = max(math.ceil(hist.n * q), 1)
            above = min(v for v, _, c in rows if c >= rank)
            below = max((v for v, _, c in rows if c < rank), default=0.0)
            est = hist.quantile(q).value
            assert below * (1 - width) - 1 <= est <= above * (1 + width) + 1
            b = int(np.searchsorted(cum, rank))  # our bucket of the order statistic
            assert above >= layout.edges[b] - 1
        # hdrh's own percentile query lands in our bucket of the same order statistic
        hdr = hdr_histogram(hist)
        for q in PARAMS["report"]["quantiles"]:
            rank = max(int(q * hist.n + 0.5), 1)
            b = int(np.searchsorted(cum, rank))
            v = hdr.get_value_at_percentile(q * 100)
            assert layout.edges[b] - 1 <= v <= layout.edges[b + 1], (name, q)


# --------------------------------------------------------------------------------------------
# meta.json and figures


def test_meta_json(swept: Path) -> None:
    meta = json.loads((swept / "meta.json").read_text())
    assert meta["tool"] == "mcsmp" and meta["version"]
    assert meta["libraries"]["numpy"] == np.__version__ and meta["libraries"]["numba"]
    assert meta["cpu"]["model"]
    assert meta["randomness"] == {**meta["randomness"], "stream_scheme": STREAM_SCHEME, "chunk_fanouts": CHUNK_FANOUTS,
                                  "pilot_chunks": PILOT_CHUNKS}  # fmt: skip
    assert meta["histogram"]["precision_bits"] == 7 and meta["histogram"]["unit"] == "ns"
    assert meta["status"] == "complete" and meta["started"] and meta["finished"]
    assert meta["samples_per_second"] > 0 and meta["runs"][-1]["fanouts"] == N_POINTS * PARAMS["samples"]
    assert len(meta["points"]) == N_POINTS
    for e in meta["points"]:
        r = load_hist(hist_path(swept, e["id"]))
        assert e["model_hash"] == r.params.model_hash and e["id"] == r.params.point_id
        assert e["resolved"]["cache"]["placement"] == r.params.cache.placement
        assert len(e["params_hash"]) == 64


def test_plots_are_valid_png_and_pdf(swept: Path) -> None:
    from matplotlib.image import imread

    plots = swept / "plots"
    stems = {"ccdf_preempt_off_ns", "ccdf_wakeup_ns", "quantiles_by_point", "placement_cost", "window_max_per_cpu",
             "placement_difference"}  # fmt: skip
    assert {p.stem for p in plots.glob("*.png")} == stems
    assert {p.stem for p in plots.glob("*.pdf")} == stems
    for png in plots.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(png)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
        assert float(img[..., :3].std()) > 0.01  # not blank
    for pdf in plots.glob("*.pdf"):
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


def test_quantiles_vs_cpus_when_cpus_are_swept(tmp_path: Path) -> None:
    # machine.cpus_per_llc follows machine.cpus (a zip): it must not split the curves into panels
    data = {**PARAMS, "samples": 20000, "workload": {"rate_hz": 100}, "report": {"quantiles": [0.5, 0.99]},
            "sweep": {"grid": {"cache.placement": ["percpu", "stack"]},
                      "zip": {"machine.cpus": [4, 8], "machine.cpus_per_llc": [4, 8]}}}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--threads", "2"]) == 0
    names = {p.name for p in (out / "plots").iterdir()}
    assert {"quantiles_vs_cpus.png", "quantiles_vs_cpus.pdf", "placement_cost.png"} <= names
    assert "quantiles_by_point.png" not in names


def _figures(swept: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, object]:
    """Every figure of the sweep as a matplotlib Figure (drawn here, captured instead of saved)."""
    from mcsmp.io.tables import PointRows
    from mcsmp.plots import plot_point, render_plots

    captured = _capture(monkeypatch, tmp_path)
    meta = json.loads((swept / "meta.json").read_text())
    points = []
    for e in meta["points"]:
        result = load_hist(hist_path(swept, e["id"]))
        rows = PointRows(int(e["index"]), e["id"], dict(e["overrides"]), result.params, compute_metrics(result))
        points.append(plot_point(rows, result))
    render_plots(tmp_path, points, ["cache.placement", "policy.reentry"], processes=1)
    return {"points": points, **captured}


def test_figures_show_the_reported_values(swept: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from matplotlib.container import ErrorbarContainer

    from mcsmp.plots.figure import style_of

    figs = _figures(swept, monkeypatch, tmp_path)
    points = figs.pop("points")
    assert set(figs) == {"ccdf_preempt_off_ns", "ccdf_wakeup_ns", "quantiles_by_point", "placement_cost",
                         "window_max_per_cpu"}  # fmt: skip
    policies = PARAMS["policies"]
    labels = [style_of(p)["label"] for p in policies]

    # CCDFs: one panel per point, one falling curve per policy in [0, 1], log-log, a legend of policies
    for stem in ("ccdf_preempt_off_ns", "ccdf_wakeup_ns"):
        fig = figs[stem]
        panels = [ax for ax in fig.axes if ax.lines]
        assert len(panels) == N_POINTS, stem
        for ax in panels:
            assert ax.get_xscale() == ax.get_yscale() == "log"
            assert ax.get_ylabel() in ("Pr(> x)", "")
            assert len(ax.lines) == len(policies)
            for line in ax.lines:
                y = np.asarray(line.get_ydata(), float)
                assert np.all((y >= 0) & (y <= 1)) and np.all(np.diff(y) <= 1e-12)
        assert [t.get_text() for t in fig.legends[0].get_texts()] == labels

    # quantiles by point: p50, p99, p99.9 panels; per policy one error bar per point, at the
    # summary's value and interval
    fig = figs["quantiles_by_point"]
    assert [ax.get_title(loc="left") for ax in fig.axes] == [f"{quantile_label(q)} of preempt-off length"
                                                             for q in (0.5, 0.99, 0.999)]  # fmt: skip
    for ax, q in zip(fig.axes, (0.5, 0.99, 0.999), strict=True):
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == len(policies)
        for pol, bar in zip(policies, bars, strict=True):
            xs = np.asarray(bar.lines[0].get_xdata(), float)
            want = [next(r.value for r in pt.rows if r.metric == "preempt_off_ns" and r.policy == pol
                         and r.statistic == quantile_label(q)) for pt in points]  # fmt: skip
            assert np.allclose(xs, want)
        assert len(ax.get_yticks()) == N_POINTS

    # placement cost: mean and p99 of info_cost_ns per placement, at the summary's values
    fig = figs["placement_cost"]
    for ax, stat in zip(fig.axes, ("mean", "p99"), strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["percpu", "stack"]
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        got = [float(np.asarray(b.lines[0].get_ydata())[0]) for b in bars]
        firsts = [next(pt for pt in points if pt.params.cache.placement == pl) for pl in ("percpu", "stack")]
        want = [next(r.value for r in pt.rows if r.metric == "info_cost_ns" and r.statistic == stat) for pt in firsts]
        assert np.allclose(got, want)

    # window maximum per CPU: CPUs 0..3 on x, the model's quantiles per policy and the reference
    fig = figs["window_max_per_cpu"]
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == N_POINTS
    for ax, pt in zip(panels, points, strict=True):
        assert list(ax.get_xticks()) == [0, 1, 2, 3]  # CPUs 0..3 (a reference: one tick per CPU)
        # per policy and quantile, one marker per CPU at the window_max_ns value (x dodged), with
        # its 95% interval bar from the row's low to its high
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == len(policies) * 2
        want = sorted((r.value, r.low, r.high if math.isfinite(r.high) else r.value)  # open: capped, plus an arrow
                      for r in pt.rows if r.metric == "window_max_ns" and r.statistic in ("p50", "p99"))  # fmt: skip
        assert np.allclose(sorted(_bar_triples(bars)), want)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == legend[: len(labels)] and "reference p99" in legend and "model p99" in legend
    assert "bars: 95% interval" in legend


def test_placement_difference_figure_shows_the_summary(swept: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """The paired-difference figure (drawn by the folder's own rendering) plots, per stack point, the
    summary's ``mean_diff_vs_percpu`` rows with their intervals."""
    from matplotlib.container import ErrorbarContainer

    from mcsmp.plots import study
    from mcsmp.sweeps.render import render_dir

    figs = _capture(monkeypatch, tmp_path)
    monkeypatch.setattr(study, "usable_cpus", lambda: 1)  # draw here, where the capture is
    render_dir(swept, hgrm=False)
    fig = figs["placement_difference"]
    _, rows = _csv(swept / "summary.csv")
    for ax, (metric, policy) in zip(fig.axes, (("call_ns", ""), ("info_cost_ns", ""), ("preempt_off_ns", "preempt_off")),
                                    strict=True):  # fmt: skip
        want = sorted((float(r["value_ns"]), float(r["ci95_low_ns"]), float(r["ci95_high_ns"])) for r in rows
                      if r["statistic"] == "mean_diff_vs_percpu" and r["metric"] == metric and r["policy"] == policy)  # fmt: skip
        assert len(want) == N_POINTS // 2  # one stack point per percpu twin (policy.reentry bound/off)
        got = []
        for bar in (c for c in ax.containers if isinstance(c, ErrorbarContainer)):
            xs = np.asarray(bar.lines[0].get_xdata(), float)
            segs = bar.lines[2][0].get_segments()
            got += [(float(x), float(seg[0][0]), float(seg[1][0])) for x, seg in zip(xs, segs, strict=True)]
        assert np.allclose(sorted(got), want)
        assert all(lo < v < hi for v, lo, hi in want)  # finite (one chunk here: the conservative interval)


def _bar_triples(bars: list) -> list[tuple[float, float, float]]:  # type: ignore[type-arg]
    """(value, low, high) of every point of vertical error bars (value = high without an upper bar)."""
    out = []
    for bar in bars:
        ys = np.asarray(bar.lines[0].get_ydata(), float)
        segs = bar.lines[2][0].get_segments()
        assert len(segs) == len(ys)
        out += [(float(y), float(seg[0][1]), float(seg[1][1])) for y, seg in zip(ys, segs, strict=True)]
    return out


def _capture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, object]:
    from mcsmp.plots import figure

    captured: dict[str, object] = {}

    def keep(fig, folder, stem, pdf_pages=None, png_suffix="", **kw):  # type: ignore[no-untyped-def]
        captured[stem + png_suffix] = fig
        return []

    monkeypatch.setattr(figure, "save", keep)
    monkeypatch.setattr(figure, "atomic_open", lambda *a, **k: open(tmp_path / "pages.pdf", "wb"))
    return captured


def test_open_intervals_are_arrows_named_in_the_legend(swept: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:  # fmt: skip
    from matplotlib.container import ErrorbarContainer

    from mcsmp.plots import render_plots
    from mcsmp.plots.study import OPEN_LABEL

    points = _figures(swept, monkeypatch, tmp_path)["points"]
    pt = points[0]
    hit = next(i for i, r in enumerate(pt.rows) if r.metric == "window_max_ns" and r.cpu == "1" and r.statistic == "p99"
               and r.policy == "preempt_off")  # fmt: skip
    pt.rows[hit] = dataclasses.replace(pt.rows[hit], high=math.inf)
    figs = _capture(monkeypatch, tmp_path)
    render_plots(tmp_path, points, ["cache.placement", "policy.reentry"], processes=1)
    fig = figs["window_max_per_cpu"]
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    opened = [r for r in pt.rows if r.metric == "window_max_ns" and r.statistic in ("p50", "p99") and math.isinf(r.high)]
    assert len(arrows) == len(opened) >= 1
    assert all(a.xy[1] == 1.0 and a.xycoords == ("data", "axes fraction") for a in arrows)  # to the axis top
    assert all(a.anncoords == "data" for a in arrows)  # from the point, in data coordinates
    assert sorted(a.xyann[1] for a in arrows) == pytest.approx(sorted(r.value for r in opened))
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    r = pt.rows[hit]
    assert any(np.allclose(t, (r.value, r.low, r.value)) for t in _bar_triples(bars))  # the bar is capped at the value
    assert OPEN_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    assert OPEN_LABEL not in [t.get_text() for t in figs["ccdf_preempt_off_ns"].legends[0].get_texts()]


def test_a_108_point_sweep_is_paged_over_core_counts(swept: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mcsmp.plots import render_plots
    from mcsmp.plots.figure import RC

    real = _figures(swept, monkeypatch, tmp_path)["points"]
    points = []
    for i in range(108):  # 36 settings x 3 CPU counts, drawn from the four simulated points
        base, cpus = real[i % 4], (4, 8, 16)[i % 3]
        params = dataclasses.replace(base.params, machine=dataclasses.replace(base.params.machine, cpus=cpus))
        over = {"cache.line_serialize_ns": i // 3, "machine.cpus": cpus}
        points.append(dataclasses.replace(base, index=i, overrides=over, params=params))
    figs = _capture(monkeypatch, tmp_path)
    render_plots(tmp_path, points, ["cache.line_serialize_ns", "machine.cpus"], processes=1)
    pages = {stem: sorted(k for k in figs if k.rsplit("-", 1)[0] == stem)
             for stem in ("ccdf_preempt_off_ns", "ccdf_wakeup_ns", "window_max_per_cpu", "quantiles_vs_cpus", "placement_cost")}  # fmt: skip
    assert {k: len(v) for k, v in pages.items()} == {"ccdf_preempt_off_ns": 3, "ccdf_wakeup_ns": 3, "window_max_per_cpu": 7,
                                                    "quantiles_vs_cpus": 6, "placement_cost": 6}  # fmt: skip
    assert set(figs) == {k for v in pages.values() for k in v}
    for name, fig in figs.items():
        w, h = fig.get_size_inches() * RC["savefig.dpi"]
        assert w <= 3200 and h <= 3200, (name, w, h)
    for stem in ("quantiles_vs_cpus-1", "placement_cost-1"):  # x over core counts, log2, one tick per count
        fig = figs[stem]
        assert len(fig.axes) == 6 * (3 if stem.startswith("quantiles") else 2)
        for ax in fig.axes:
            assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [4, 8, 16]
        assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["4", "8", "16"]  # the bottom row's
        assert fig.axes[-1].get_xlabel() == "CPUs (machine.cpus)"
        titles = [ax.get_title(loc="left") for ax in fig.axes]
        assert any("line_serialize_ns=0" in t for t in titles) and any("line_serialize_ns=5" in t for t in titles)
    # quantiles over core counts: per policy one bar per CPU count, at the rows' values
    ax = figs["quantiles_vs_cpus-1"].axes[0]
    from matplotlib.container import ErrorbarContainer

    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3 and all(list(b.lines[0].get_xdata()) == [4, 8, 16] for b in bars)
    want = [next(r.value for r in points[j].rows if r.metric == "preempt_off_ns" and r.policy == "preempt_off"
                 and r.statistic == "p50" and r.cpu == "all") for j in range(3)]  # fmt: skip
    assert np.allclose(bars[0].lines[0].get_ydata(), want)


def test_window_max_groups_cpus_without_a_reference(swept: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mcsmp.plots.study import cpu_groups

    pt = _figures(swept, monkeypatch, tmp_path)["points"][0]
    assert [label for label, _ in cpu_groups(pt)] == ["0", "1", "2", "3"]  # a reference is per CPU
    bare = dataclasses.replace(pt, params=dataclasses.replace(
        pt.params, report=dataclasses.replace(pt.params.report, reference=None)))
    # make the rows identical by construction (the CPUs' rates differ, 100 vs 10 Hz, so whether
    # their window maxima land in one histogram bucket depends on the draws)
    cpu0 = {(r.policy, r.statistic): r for r in bare.rows if r.metric == "window_max_ns" and r.cpu == "0"}
    bare.rows = [dataclasses.replace(r, value=cpu0[r.policy, r.statistic].value, low=cpu0[r.policy, r.statistic].low,
                                     high=cpu0[r.policy, r.statistic].high)
                 if r.metric == "window_max_ns" and r.cpu in "123" else r for r in bare.rows]  # fmt: skip
    assert cpu_groups(bare) == [("0-3", ["0", "1", "2", "3"])]  # identical rows: one tick
    bare.rows = [dataclasses.replace(r, value=r.value * 2) if r.metric == "window_max_ns" and r.cpu in "12" else r
                 for r in bare.rows]  # fmt: skip
    assert cpu_groups(bare) == [("0,3", ["0", "3"]), ("1-2", ["1", "2"])]


def test_hlog_files_read_back_with_hdrhistogram_and_merge(swept: Path) -> None:
    """The .hlog interval logs hold the same distribution as our histograms, per CPU group for
    P and H, and merge with another HdrHistogram (as a user's cyclictest data would)."""
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader

    from mcsmp.io.hgrm import hdr_histogram

    def read_interval(path: Path, template: HdrHistogram) -> HdrHistogram:
        reader = HistogramLogReader(str(path), template)
        try:
            return reader.get_next_interval_histogram()
        finally:
            reader.close()

    result = _results(swept)[0][1]
    folder = swept / "hlog" / result.params.point_id
    names = sorted(p.name for p in folder.glob("*.hlog"))
    groups = {"group0": ("0,3", 0), "group1": ("1-2", 1)}  # rates [100, 10, 10, 100]: two CPU groups
    expected = ["call_ns.hlog", "info_cost_ns.hlog", "remote_wait_ns.hlog"] + sorted(
        f"{m}.{p}.{g}.hlog" for m in ("hotplug_block_ns", "preempt_off_ns") for p in PARAMS["policies"] for g in groups
    )
    assert names == sorted(expected)
    for name in names:
        text = (folder / name).read_text()
        assert text.startswith("#[Histogram log format version 1.2]") and "values in ns" in text
        metric, *rest = name[: -len(".hlog")].split(".")
        policy = rest[0] if rest else ""
        cpus, group = groups[rest[1]] if len(rest) > 1 else ("all", None)
        assert f"CPUs {cpus};" in text
        ours = result.histogram(metric, policy, group)
        template = hdr_histogram(ours)
        read = read_interval(folder / name, template)
        assert read.get_total_count() == ours.n
        for q in (50, 99, 99.9):
            assert read.get_value_at_percentile(q) == template.get_value_at_percentile(q)
    # merging: a measured histogram with the same settings adds up
    measured = HdrHistogram(1, int(1e12), 2)
    measured.record_value(12_345, 10)
    merged = read_interval(folder / "call_ns.hlog", measured)
    merged.add(measured)
    assert merged.get_total_count() == result.histogram("call_ns").n + 10
