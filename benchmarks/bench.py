"""``make bench``: speed, memory and start-up figures of the engine on this machine.

Prints, for params/16core.yaml (all four policies) and a few other shapes: target-samples per
second with 1 and 2 (all) threads, parallel efficiency, the ratio to a vectorised NumPy
implementation of the same model (benchmarks/numpy_reference.py) and to the draw floor
(benchmarks/draw_floor.py: the same generator drawing exactly the variates the model needs),
the cost per target from 2 to 1024 CPUs, peak resident memory as the sample count grows (child
processes), cold start (empty compile cache) and warm start (second process), the CPU model and
core count. It asserts nothing about time.

Every time is the median of several runs, and every ratio compares runs interleaved in the same
process: the machine may be shared. Single-thread kernel comparisons (floor, NumPy) use the
calling thread's CPU time; throughput and parallel efficiency use wall time.

    .venv/bin/python benchmarks/bench.py            # full (several minutes)
    .venv/bin/python benchmarks/bench.py --quick    # about a minute
    .venv/bin/python benchmarks/bench.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import draw_floor  # noqa: E402
import numpy_reference  # noqa: E402

from mcsmp import __version__  # noqa: E402
from mcsmp.config import (  # noqa: E402
    Params,
    expand,
    load_raw,
)
from mcsmp.metrics import paired_mean_difference  # noqa: E402
from mcsmp.sim import run_point  # noqa: E402
from mcsmp.sim.engine import STREAM_SCHEME, default_threads, warm_up  # noqa: E402
from mcsmp.sim.model import compile_model  # noqa: E402

STUDY = ROOT / "params" / "16core.yaml"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def point(index: int, sets: list[str] | None = None, path: Path = STUDY) -> tuple[str, Params]:
    pts = expand(load_raw(path), list(sets or []))
    pt = pts[index]
    return pt.label(), pt.params


def median_wall(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---- throughput, NumPy, floor ------------------------------------------------------------------


def throughput(params: Params, threads: list[int], repeats: int) -> dict[str, Any]:
    """Wall-clock target-samples/s of run_point per thread count (medians, interleaved)."""
    model = compile_model(params)
    warm_up(model)
    run_point(params, threads=1, chunks=[0], model=model)  # first-call costs out of the way
    times: dict[int, list[float]] = {t: [] for t in threads}
    result = None
    for _ in range(repeats):
        for t in threads:
            t0 = time.perf_counter()
            result = run_point(params, threads=t, model=model)
            times[t].append(time.perf_counter() - t0)
    assert result is not None
    targets = result.histogram("remote_wait_ns").n
    med = {t: statistics.median(v) for t, v in times.items()}
    out = {
        "fanouts": result.fanouts,
        "target_samples": targets,
        "targets_per_fanout": targets / result.fanouts,
        "pilot": model.needs_reentry,
        "seconds": med,
        "rate": {t: targets / s for t, s in med.items()},
    }
    if 1 in med and len(med) > 1:
        tmax = max(med)
        out["efficiency"] = med[1] / (tmax * med[tmax])
    return out


NUMPY_SCOPE = ["ipi.shorthand=false", "kernel.target_order=after_sender", "report.rare_events=off"]


def numpy_rate(params: Params, fanouts: int, repeats: int) -> float:
    """Target-samples per CPU-second of the NumPy reference (median)."""
    numpy_reference.simulate(params, 2000, seed=0)
    rates = []
    for r in range(repeats):
        t0 = time.thread_time()
        res = numpy_reference.simulate(params, fanouts, seed=r)
        rates.append(res.target_samples / (time.thread_time() - t0))
    return statistics.median(rates)


# ---- scaling ------------------------------------------------------------------------------------


def scaling(cpus_list: list[int], target_samples: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for cpus in cpus_list:
        sockets = 2 if cpus >= 64 else 1
        per_llc = min(16, cpus // sockets)
        fanouts = max(64, target_samples // max(cpus - 1, 1))
        sets = [
            f"machine.cpus={cpus}", f"machine.sockets={sockets}", f"machine.cpus_per_llc={per_llc}",
            "workload.rate_hz=100", "policy.reentry=off", "report.reference=null", f"samples={fanouts}",
        ]  # fmt: skip
        _, params = point(0, sets)
        floor, kern, per_chunk = draw_floor.floor_seconds(params, chunks=1, repeats=repeats)
        rows.append({
            "cpus": cpus, "fanouts": fanouts, "ns_per_target": kern / per_chunk * 1e9,
            "floor_ns_per_target": floor / per_chunk * 1e9, "ratio_to_floor": kern / floor,
            "ns_per_fanout": kern / min(fanouts, 65536) * 1e9,
        })  # fmt: skip
    return rows


# ---- child processes: memory and start-up -------------------------------------------------------

# Peak RSS from /proc/self/status VmHWM (this process's own address space). Not ru_maxrss: Linux
# carries the parent's peak over into a vfork()ed child's ru_maxrss across execve.
CHILD_RSS = r"""
import json, sys, time
from mcsmp.sim import run_point
from mcsmp.config import load_raw
from mcsmp.config import expand
path, index, samples, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
params = expand(load_raw(path), sets + [f"samples={samples}"])[index].params
t0 = time.perf_counter()
res = run_point(params)
seconds = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"maxrss_kb": hwm, "fanouts": res.fanouts, "seconds": seconds}))
"""

CHILD_FIRST = r"""
import sys, time
t0 = time.perf_counter()
from mcsmp.sim import run_point
from mcsmp.config import load_raw
from mcsmp.config import expand
params = expand(load_raw(sys.argv[1]), ["samples=1000"])[int(sys.argv[2])].params
run_point(params, threads=1)
print(time.perf_counter() - t0)
"""


def child(code: str, args: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1], time.perf_counter() - t0


def peak_rss(path: Path, index: int, samples: int, sets: list[str]) -> dict[str, Any]:
    line, wall = child(CHILD_RSS, [str(path), str(index), str(samples), json.dumps(sets)])
    data = json.loads(line)
    data["mb"] = data["maxrss_kb"] / 1024
    data["wall"] = wall
    return data


def startup(path: Path, index: int) -> dict[str, float]:
    """Cold: empty cache directory (MCSMP_CACHE_DIR); warm: the same directory again.

    ``first_sample`` is measured inside the child from before its first import to the end of a
    1000-fan-out run; ``process`` is the parent's wall time of the whole child (interpreter start
    and exit included). A third child runs the CLI (``mcsmp run --samples 20000``) warm.
    """
    with tempfile.TemporaryDirectory(prefix="mcsmp-cold-") as cache:
        env = {"MCSMP_CACHE_DIR": cache}
        cold_first, cold_proc = child(CHILD_FIRST, [str(path), str(index)], env)
        warm_first, warm_proc = child(CHILD_FIRST, [str(path), str(index)], env)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mcsmp", "run", str(path), "--samples", "20000", "--point", str(index)],
            capture_output=True, text=True, check=True, env={**os.environ, **env}, cwd=ROOT,
        )  # fmt: skip
        cli = time.perf_counter() - t0
    return {
        "cold_first_sample": float(cold_first), "cold_process": cold_proc,
        "warm_first_sample": float(warm_first), "warm_process": warm_proc, "warm_cli_run": cli,
    }  # fmt: skip


# ---- report -------------------------------------------------------------------------------------


def placement_pairs(samples: int) -> list[dict[str, Any]]:
    """The issue-9 target: the paired placement difference of mean call_ns at 128 CPUs."""
    sets = [f"samples={samples}", "machine.cpus=128", "report.reference=null"]
    runs = {}
    for placement in ("percpu", "stack", "stack_aligned"):
        _, params = point(6, [*sets, f"cache.placement={placement}"])
        runs[placement] = run_point(params)
    out = []
    for placement in ("stack", "stack_aligned"):
        for metric in ("call_ns", "info_cost_ns"):
            d = paired_mean_difference(runs[placement].histogram(metric), runs["percpu"].histogram(metric))
            out.append({"placement": placement, "metric": metric, "diff_ns": d.value,
                        "paired_half_ns": (d.high - d.low) / 2, "independent_half_ns": d.independent_half_width})  # fmt: skip
    return out

def system_bench(quick: bool) -> list[dict[str, Any]]:
    """Events per second of the system kernel (one thread, CPU time): the closed-loop flush benchmark
    on 4 to 72 CPUs (every CPU flushing every other), and open-loop calls on 16 CPUs at three loads."""
    import mcsmp
    from mcsmp.system import compile_system, run_replication

    base = ROOT / "params" / "tlb-flush2.yaml"
    cases = []
    for cpus in (4, 16, 72):
        sets = [f"machine.cpus={cpus}", "machine.cpus_per_llc=null", "machine.sockets=1", "ipi.cluster_size=16"]
        cases.append((f"closed loop, {cpus} CPUs all flushing", mcsmp.load(base, sets)))
    for rate in (1000, 10000, 100000):
        cases.append((f"open loop, 16 CPUs, {rate} calls/s each", mcsmp.load(base, ["system.workload=open", f"workload.rate_hz={rate}",
                      "tlb.pages={dist: choice, values: [1, 8, 32, 1024], weights: [0.55, 0.3, 0.1, 0.05]}",
                      "remote.irq_off.fraction=0.02"])))  # fmt: skip
    rows = []
    print("\nWhole-machine simulation (mcsmp system; one thread, CPU time, median of 3 replications):")
    print(f"{'case':44s} {'events/s':>10s} {'ns/event':>9s} {'calls/s':>10s} {'sim ms/s':>9s}")
    for name, params in cases:
        dur = (0.002 if quick else 0.005) if "closed" in name else (0.02 if quick else 0.1)
        import dataclasses

        params = dataclasses.replace(params, system=dataclasses.replace(params.system, duration_s=dur, warmup_s=0.0))
        model = compile_system(params)
        run_replication(params, model, "preempt_off", 0)  # compile / warm
        times, events, calls = [], 0, 0
        for rep in range(3):
            t0 = time.thread_time()
            out = run_replication(params, model, "preempt_off", rep)
            times.append(time.thread_time() - t0)
            events = int(out.counters[0])
            calls = int(out.counters[1])
        sec = statistics.median(times)
        row = {"case": name, "events_per_s": events / sec, "ns_per_event": sec / events * 1e9,
               "calls_per_s": calls / sec, "simulated_ms_per_s": dur * 1e3 / sec}  # fmt: skip
        rows.append(row)
        print(f"{name:44s} {fmt_rate(row['events_per_s']):>10s} {row['ns_per_event']:9.1f} {row['calls_per_s'] / 1e3:9.1f}k {row['simulated_ms_per_s']:9.2f}")
    return rows


SEED_BOX = ROOT / "params" / "seed-16core.yaml"


def _half(r: Any) -> float:
    """Relative half-width of a row's interval (inf when open or the value is 0)."""
    if not (np.isfinite(r.high) and np.isfinite(r.low)) or r.value <= 0:
        return float("inf")
    return (r.high - r.low) / 2 / r.value


def _tail_precision(result: Any) -> dict[str, Any]:
    """The issue-9 targets of one point: per-CPU p99 of the 30-s maximum (open intervals, worst
    relative half-width) and the 1-10 / 10-50 ms counts (worst relative half-width where >= 1)."""
    from mcsmp.metrics import compute_metrics

    rows = [r for r in compute_metrics(result) if r.cpu != "all"]
    p99 = [r for r in rows if r.metric == "window_max_ns" and r.statistic == "p99"]
    out: dict[str, Any] = {"p99_rows": len(p99), "p99_open": sum(not np.isfinite(r.high) for r in p99),
                           "p99_worst_half": max((_half(r) for r in p99), default=float("nan"))}  # fmt: skip
    for label, key in (("count[1e+06,1e+07)", "count_1_10ms"), ("count[1e+07,5e+07)", "count_10_50ms")):
        sel = [r for r in rows if r.metric == "exceed_count" and r.statistic == label and r.value >= 1]
        out[key + "_rows"] = len(sel)
        out[key + "_worst_half"] = max((_half(r) for r in sel), default=float("nan"))
    return out


def rare_events(quick: bool) -> dict[str, Any]:
    """Crude and stratified sampling side by side (issue 9 targets), one run each."""
    from mcsmp.metrics import compute_metrics
    from mcsmp.metrics.precision import precision_summary

    out: dict[str, Any] = {"study": [], "seed_box": {}}
    n = 200_000 if quick else 1_000_000
    for idx in (0, 6):
        for mode in ("off", "auto"):
            label, params = point(idx, [f"samples={n}", f"report.rare_events={mode}"])
            t0, c0 = time.perf_counter(), time.process_time()
            res = run_point(params)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            out["study"].append({"point": idx, "label": label, "mode": mode, "samples": n, "wall_s": wall, "cpu_s": cpu,
                                 **_tail_precision(res)})  # fmt: skip
    seed_n = 2_000_000 if quick else 4_000_000
    for mode in ("off", "auto"):
        params = load_params_file(SEED_BOX, [f"samples={seed_n}", f"report.rare_events={mode}"])
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_point(params)
        rows = compute_metrics(res)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        before = [r for r in rows if r.metric == "window_max_ns" and r.statistic == "p99" and r.policy == params.policies[0]
                  and r.cpu != "all"]  # fmt: skip
        worst = max(before, key=lambda r: r.value)
        prec = precision_summary(res)
        vrf = [m["variance_reduction"] for m in prec["metrics"] if m["metric"] == "window_max_ns" and m["statistic"] == "p99"]
        out["seed_box"][mode] = {"samples": seed_n, "wall_s": wall, "cpu_s": cpu, "worst_cpu": worst.cpu, "worst_p99_ns": worst.value,
                                 "low": worst.low, "high": worst.high, "half": _half(worst),
                                 "vrf_p99_min": min((v for v in vrf if v is not None), default=None)}  # fmt: skip
    return out


def print_rare(rare: dict[str, Any]) -> None:
    print("\nRare events, crude (report.rare_events=off) vs stratified (auto), params/16core.yaml, one run_point each:")
    print(f"{'point':>5s} {'mode':>5s} {'fan-outs':>10s} {'wall s':>7s} {'CPU s':>6s} {'p99 open':>9s} {'p99 worst':>10s} "
          f"{'1-10ms worst':>13s} {'10-50ms worst':>14s}   (95% half-widths relative to the value, over CPUs x policies)")  # fmt: skip
    for r in rare["study"]:
        print(f"{r['point']:5d} {r['mode']:>5s} {r['samples']:10,d} {r['wall_s']:7.1f} {r['cpu_s']:6.1f} {r['p99_open']:4d}/{r['p99_rows']:<4d} "
              f"{r['p99_worst_half'] * 100:9.1f}% {r['count_1_10ms_worst_half'] * 100:12.1f}% {r['count_10_50ms_worst_half'] * 100:13.1f}%")  # fmt: skip
    print("params/seed-16core.yaml, worst-CPU p99 of the 30-s maximum before the series (95% interval), one run:")
    for mode, r in rare["seed_box"].items():
        vrf = f"{r['vrf_p99_min']:.3g}" if r["vrf_p99_min"] is not None else "-"
        print(f"  {mode:>4s}: {r['samples']:,} fan-outs in {r['wall_s']:.1f} s ({r['cpu_s']:.1f} CPU s): CPU {r['worst_cpu']} "
              f"{r['worst_p99_ns'] / 1e6:.3f} ms [{r['low'] / 1e6:.3f}, {r['high'] / 1e6:.3f}] (±{r['half'] * 100:.1f}%); "
              f"least variance-reduction factor of the per-CPU-group p99: {vrf}")  # fmt: skip


def load_params_file(path: Path, sets: list[str]) -> Params:
    pts = expand(load_raw(path), sets)
    return pts[0].params


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:7.1f} M"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and repeats (about a minute)")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument("--no-children", action="store_true", help="skip the memory and start-up child processes")
    ap.add_argument("--system-only", action="store_true", help="only the whole-machine simulation's figures")
    args = ap.parse_args(argv)
    quick = args.quick
    repeats = 3 if quick else 5
    samples = 1 << (19 if quick else 21)
    threads = sorted({1, default_threads()})
    report: dict[str, Any] = {
        "cpu_model": cpu_model(), "cores": os.cpu_count(), "usable_cores": default_threads(),
        "python": platform.python_version(), "numpy": np.__version__, "mcsmp": __version__,
        "stream_scheme": STREAM_SCHEME, "quick": quick,
    }  # fmt: skip
    import numba

    report["numba"] = numba.__version__
    print(f"mcsmp {__version__} benchmark{' (--quick)' if quick else ''}")
    print(f"CPU: {report['cpu_model']}, {report['cores']} logical CPUs ({report['usable_cores']} usable); "
          f"Python {report['python']}, numba {numba.__version__}, numpy {np.__version__}")  # fmt: skip
    print(f"generator: {STREAM_SCHEME}\n")
    if args.system_only:
        report["system"] = system_bench(quick)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        return 0

    # 1. the study's points: throughput, efficiency, NumPy and floor ratios
    configs = [
        ("16core [0] reentry=bound (with pilot pass)", 0),
        ("16core [6] reentry=off", 6),
        ("16core [8] reentry=off, stack", 8),
    ]
    rows = []
    for name, idx in configs:
        label, params = point(idx, [f"samples={samples}"])
        tp = throughput(params, threads, repeats)
        floor_s, kern_s, per_chunk = draw_floor.floor_seconds(params, chunks=2, repeats=repeats)
        row: dict[str, Any] = {"config": name, "point": label, **tp}
        row["kernel_ns_per_target"] = kern_s / per_chunk * 1e9
        row["floor_ns_per_target"] = floor_s / per_chunk * 1e9
        row["ratio_to_floor"] = kern_s / floor_s
        if not tp["pilot"]:
            # the reference implements the contract's writes and order only (its module doc): the
            # same point with those, crude, for the speed comparison
            _, np_params = point(idx, [f"samples={samples}", *NUMPY_SCOPE])
            np_rate = numpy_rate(np_params, 1 << (15 if quick else 17), repeats)
            row["numpy_rate_1cpu"] = np_rate
            row["numpy_ns_per_target"] = 1e9 / np_rate
            row["vs_numpy_1cpu"] = (per_chunk / kern_s) / np_rate  # kernel vs NumPy, one CPU each
            row["vs_numpy_all"] = tp["rate"][max(threads)] / np_rate  # engine on all cores vs NumPy
        rows.append(row)
    report["throughput"] = rows
    tmax = max(threads)
    print(f"Throughput, params/16core.yaml (4 policies), {samples:,} fan-outs per run, median of {repeats}:")
    hdr = (f"{'configuration':44s} {'1 thread':>10s} {f'{tmax} threads':>10s} {'par.eff':>7s} "
           f"{'kernel':>8s} {'floor':>8s} {'/floor':>6s} {'NumPy':>8s} {'xNumPy':>7s} {'xNumPy':>7s}")  # fmt: skip
    print(hdr)
    print(f"{'':44s} {'target-samples/s':>21s} {'':7s} {'ns/tgt':>8s} {'ns/tgt':>8s} {'':6s} {'ns/tgt':>8s} {'1 CPU':>7s} {f'{tmax} CPU':>7s}")
    for r in rows:
        npn = f"{r['numpy_ns_per_target']:8.1f}" if "numpy_ns_per_target" in r else f"{'-':>8s}"
        x1 = f"{r['vs_numpy_1cpu']:6.1f}x" if "vs_numpy_1cpu" in r else f"{'-':>7s}"
        xa = f"{r['vs_numpy_all']:6.1f}x" if "vs_numpy_all" in r else f"{'-':>7s}"
        eff = f"{r['efficiency'] * 100:6.0f}%" if "efficiency" in r else f"{'-':>7s}"
        print(f"{r['config']:44s} {fmt_rate(r['rate'][1]):>10s} {fmt_rate(r['rate'][tmax]):>10s} {eff} "
              f"{r['kernel_ns_per_target']:8.1f} {r['floor_ns_per_target']:8.1f} {r['ratio_to_floor']:5.2f}x {npn} {x1} {xa}")  # fmt: skip
    print("  kernel/floor ns per target: one thread, CPU time, kernel only (no pilot pass); "
          "throughput: wall time of run_point incl. any pilot pass.")
    prims = draw_floor.primitive_costs(2_000_000 if quick else 5_000_000, repeats)
    report["primitive_ns"] = prims
    print("  draw costs (ns, one thread): " + ", ".join(f"{k} {v:.2f}" for k, v in prims.items()))

    # 2. scaling with the machine size
    cpus_list = [2, 4, 16, 64, 256, 1024]
    scal = scaling(cpus_list, 1 << (19 if quick else 21), repeats=1 if quick else 3)
    report["scaling"] = scal
    print("\nScaling (one thread, CPU time; cost per target-sample should stay flat from 2 to 1024 CPUs):")
    print(f"{'cpus':>6s} {'ns/target':>10s} {'floor':>8s} {'/floor':>7s} {'µs/fan-out':>11s}")
    for r in scal:
        print(f"{r['cpus']:6d} {r['ns_per_target']:10.1f} {r['floor_ns_per_target']:8.1f} {r['ratio_to_floor']:6.2f}x {r['ns_per_fanout'] / 1e3:11.2f}")

    # 3. rare events: crude and stratified sampling side by side (issue 9)
    rare = rare_events(quick)
    report["rare_events"] = rare
    print_rare(rare)


    # 4. placements on common random numbers: the paired difference against independent runs
    paired = placement_pairs(1_000_000)
    report["placement_pairs"] = paired
    print("\nPlacements on common random numbers (16core [6] at 128 CPUs, 1e6 fan-outs per placement): "
          "mean difference vs percpu, 95% half-width paired and as independent runs would give (target: paired <= 2 ns)")
    for r in paired:
        print(f"  {r['placement']:>13s} {r['metric']:>12s}: {r['diff_ns']:+9.2f} ns  paired ±{r['paired_half_ns']:.3f} ns  "
              f"independent ±{r['independent_half_ns']:.1f} ns  ({r['independent_half_ns'] / r['paired_half_ns']:.0f}x narrower)")

    # 5. the whole-machine simulation (mcsmp system): events/s, against CPUs and load
    report["system"] = system_bench(quick)

    # 6. memory and start-up, in child processes
    if not args.no_children:
        print("\nPeak resident memory of a child process running one point (VmHWM):")
        mem = []
        sizes = [100_000, 1_000_000] if quick else [100_000, 1_000_000, 10_000_000]
        for n in sizes:
            r = peak_rss(STUDY, 6, n, [])
            mem.append({"config": "16core [6]", "samples": n, **r})
            print(f"  16core [6], {n:>13,} fan-outs: {r['mb']:6.1f} MB  ({r['seconds']:.1f} s)")
        tiny = ["machine.cpus=2", "machine.cpus_per_llc=2", "workload.rate_hz=100", "policy.reentry=off", "report.reference=null"]
        big = [1_000_000, 10_000_000] if quick else [10_000_000, 1_000_000_000]
        for n in big:
            r = peak_rss(STUDY, 6, n, tiny)
            mem.append({"config": "2 CPUs [6]", "samples": n, **r})
            print(f"  2 CPUs (1 target), {n:>13,} fan-outs: {r['mb']:6.1f} MB  ({r['seconds']:.1f} s)")
        report["memory"] = mem
        st = startup(STUDY, 6)
        report["startup"] = st
        print("\nStart-up (16core [6], 1000 fan-outs; first_sample = imports + compile/load + run, in the child):")
        print(f"  cold (empty MCSMP_CACHE_DIR): {st['cold_first_sample']:6.2f} s to first sample, {st['cold_process']:6.2f} s process")
        print(f"  warm (second process):       {st['warm_first_sample']:6.2f} s to first sample, {st['warm_process']:6.2f} s process")
        print(f"  warm `mcsmp run --samples 20000`: {st['warm_cli_run']:.2f} s end to end")

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
