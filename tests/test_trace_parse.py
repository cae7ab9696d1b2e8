"""Tests of ftrace text parsing, csd pairing, the parameter fragment and the report.

Hand-written traces in tests/data/edge_*.trace check exact counts for each way a real trace can
defeat pairing; munmap_*.trace.gz are real recordings (mcsmp trace record of
benchmarks/workloads/munmap_storm.c on a 2-vCPU VM) checked for sane results.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.cli.trace import add_parser
from mcsmp.errors import UserError
from mcsmp.trace.fragment import build_fragment, delivery_split, quantile_table, write_report
from mcsmp.trace.parse import CpuTopology, distance_class, parse_trace

DATA = Path(__file__).parent / "data"
REAL = ("munmap_a.trace.gz", "munmap_b.trace.gz")


def _unpaired(r) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, reason), n in r.unpaired.items():
        out[reason] = out.get(reason, 0) + n
    return out


# file: (queued, paired, unpaired by reason, local, entries w/o queue, exits w/o entry, lost, wrapped)
EDGE = {
    "edge_interleaved.trace": (4, 4, {}, 2, 0, 0, 0, False),
    "edge_polling.trace": (
        6,
        3,
        {"no_ipi_no_entry": 1, "no_entry": 1, "pending_at_end": 1},
        1,
        1,
        1,
        0,
        False,
    ),
    "edge_lost.trace": (5, 3, {"lost_events": 2}, 0, 1, 1, 20, False),
    "edge_local.trace": (1, 1, {}, 3, 0, 0, 0, False),
    "edge_wrapped.trace": (4, 2, {"wrapped": 2}, 0, 0, 0, 0, True),
    "edge_midstart.trace": (5, 3, {"target_not_started": 2}, 0, 0, 0, 0, False),
}


@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_counts(name: str) -> None:
    queued, paired, unpaired, local, no_queue, no_entry, lost, wrapped = EDGE[name]
    r = parse_trace(DATA / name)
    assert sum(r.queued.values()) == queued
    assert r.paired == paired
    assert _unpaired(r) == unpaired
    # Every queue event is either paired or counted once with its reason.
    assert r.paired + sum(r.unpaired.values()) == queued
    assert len(r.local_func) == local
    assert sum(r.entries_without_queue.values()) == no_queue
    assert sum(r.exits_without_entry.values()) == no_entry
    assert r.lost_events == lost
    assert r.wrapped is wrapped
    assert np.all(r.delivery_ns >= 0) and np.all(r.handler_ns >= 0)


def test_interleaved_values() -> None:
    r = parse_trace(DATA / "edge_interleaved.trace")
    order = np.argsort(r.t_queue)
    np.testing.assert_allclose(r.delivery_ns[order], [50_000, 47_000, 50_000, 50_000])
    np.testing.assert_allclose(r.handler_ns[order], [1_000, 2_000, 1_000, 2_000])
    np.testing.assert_allclose(r.completion_ns[order], [51_000, 49_000, 51_000, 52_000])
    assert list(r.cls[order]) == ["smt", "remote", "llc", "remote"]
    assert list(r.sender[order]) == [0, 3, 0, 0]
    assert list(r.target[order]) == [1, 1, 2, 3]
    # CPU 3's call found CPU 1's queue non-empty: no IPI of its own.
    assert list(r.ipi[order]) == [1, 0, 1, 1]
    np.testing.assert_allclose(sorted(r.local_handler_ns), [10_000, 15_000])


def test_polling_and_local_values() -> None:
    r = parse_trace(DATA / "edge_polling.trace")
    np.testing.assert_allclose(sorted(r.delivery_ns), [5_000, 10_000, 20_000])
    assert r.unpaired[("sched_ttwu_pending", "pending_at_end")] == 1
    r = parse_trace(DATA / "edge_local.trace")
    np.testing.assert_allclose(r.delivery_ns, [10_000])
    np.testing.assert_allclose(sorted(r.local_handler_ns), [2_000, 3_000, 3_000])
    assert sorted(r.local_func) == ["do_sync_core", "flush_tlb_func", "flush_tlb_func"]


def test_wrapped_cut() -> None:
    r = parse_trace(DATA / "edge_wrapped.trace")
    assert r.wrap_cut_ns == pytest.approx(500_000)
    assert np.all(r.t_queue >= r.wrap_cut_ns)
    np.testing.assert_allclose(sorted(r.delivery_ns), [4_000, 6_000])


def _rewrite(text: str, fn) -> str:
    return "\n".join(fn(line) if not line.startswith("#") else line for line in text.splitlines()) + "\n"


_TS = re.compile(r"(\d+)\.(\d{6}):")


def _variants(text: str) -> dict[str, tuple[str, float | None]]:
    def raw(line: str) -> str:
        # 2 GHz counter: cycles = 2 * ns
        return _TS.sub(lambda m: f"{(int(m[1]) * 10**9 + int(m[2]) * 1000) * 2}:", line)

    with_hz = text.replace("clock=mono_raw", "clock=x86-tsc\n# mcsmp-trace: tsc_hz=2000000000")
    return {
        "no_flags": (_rewrite(text, lambda s: re.sub(r"(\[\d+\])\s+\S{5}\s", r"\1 ", s)), None),
        "nine_decimals": (_rewrite(text, lambda s: _TS.sub(lambda m: f"{m[1]}.{m[2]}123:", s)), None),
        "raw_header": (_rewrite(with_hz, raw), None),
        "raw_argument": (_rewrite(text, raw), 2e9),
        "tgid": (_rewrite(text, lambda s: re.sub(r"-(\d+)\s+\[", r"-\1 (  \1) [", s, count=1)), None),
        "sym_offset": (text.replace("func=flush_tlb_func", "func=flush_tlb_func+0x0/0x2a0"), None),
        # %*pb: the same mask {1,2,3} as zero-padded 32-bit hex words
        "hex_cpumask": (text.replace("cpumask=1-3", "cpumask=00000000,0000000e"), None),
    }


@pytest.mark.parametrize(
    "variant",
    ["no_flags", "nine_decimals", "raw_header", "raw_argument", "tgid", "sym_offset", "hex_cpumask"],
)
def test_format_variants(tmp_path: Path, variant: str) -> None:
    base = parse_trace(DATA / "edge_interleaved.trace")
    text, hz = _variants((DATA / "edge_interleaved.trace").read_text())[variant]
    p = tmp_path / "t.trace"
    p.write_text(text)
    r = parse_trace(p, tsc_hz=hz)
    assert r.paired == base.paired and len(r.local_func) == 2
    assert set(r.func) == {"flush_tlb_func"}
    np.testing.assert_array_equal(r.ipi[np.argsort(r.t_queue)], [1, 0, 1, 1])
    np.testing.assert_allclose(np.sort(r.delivery_ns), np.sort(base.delivery_ns), atol=1e-6)
    np.testing.assert_allclose(np.sort(r.handler_ns), np.sort(base.handler_ns), atol=1e-6)


def test_gzip_input(tmp_path: Path) -> None:
    p = tmp_path / "t.trace.gz"
    p.write_bytes(gzip.compress((DATA / "edge_polling.trace").read_bytes()))
    assert parse_trace(p).paired == 3


def test_distance_class() -> None:
    topo = {
        0: CpuTopology(frozenset({0, 1}), frozenset({0, 1, 2, 3}), 0),
        1: CpuTopology(frozenset({0, 1}), frozenset({0, 1, 2, 3}), 0),
        4: CpuTopology(frozenset({4}), frozenset({4, 5}), 0),
        6: CpuTopology(frozenset({6}), frozenset({6}), 1),
        7: CpuTopology(None, None, None),
    }
    assert distance_class(0, 1, topo) == "smt"
    assert distance_class(1, 0, topo) == "smt"
    assert distance_class(0, 4, topo) == "socket"
    assert distance_class(0, 6, topo) == "remote"
    assert distance_class(0, 9, topo) == "unknown"
    assert distance_class(7, 0, topo) == "unknown"
    assert distance_class(3, 3, topo) == "self"
    assert distance_class(0, 1, {}) == "unknown"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# nothing but comments\n", r"no csd events"),
        ("this is not a trace\n", r":1: cannot parse trace line"),
        ("# c\n  a-1 [000] ...1. 5.000000: csd_queue_cpu: cpu=1 func=f\n", r":2: malformed csd_queue_cpu"),
        ("  a-1 [000] ...1. 5000: csd_function_entry: func=f, csd=1\n", r":1: timestamps are raw"),
        (
            "  a-1 [000] ...1. 5.000000: csd_function_entry: func=f, csd=1\n"
            "  a-1 [000] ...1. 5000: csd_function_exit: func=f, csd=1\n",
            r":2: timestamp .* mixes",
        ),
        ("# mcsmp-trace: topology cpu=x\n", r":1: bad header line"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.trace"
    p.write_text(content)
    with pytest.raises(UserError) as err:
        parse_trace(p)
    assert str(err.value).startswith(str(p))
    assert re.search(message, str(err.value))
    assert "\n" not in str(err.value)


def test_errors_missing_and_binary(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.trace"):
        parse_trace(tmp_path / "nope.trace")
    dat = tmp_path / "trace.dat"
    dat.write_bytes(b"\x17\x08\x44tracing6\x00" + bytes(64))
    with pytest.raises(UserError, match="trace-cmd report"):
        parse_trace(dat)


def test_quantile_table() -> None:
    x = np.random.default_rng(1).lognormal(8, 0.5, 5000)
    t = quantile_table(x)
    qs, vs = list(t), list(t.values())
    assert qs[0] == 0.0 and qs[-1] == 1.0 and all(isinstance(q, float) for q in qs)
    assert 0.999 in t and 0.9999 not in t  # 1/n = 2e-4 cannot resolve the 1e-4 tail
    assert all(b >= a for a, b in itertools.pairwise(vs))
    assert vs[0] == pytest.approx(x.min(), abs=0.1) and vs[-1] == pytest.approx(x.max(), abs=0.1)
    small = quantile_table(np.array([3.0, 1.0, 2.0]))
    assert list(small) == [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0]
    assert small[0.5] == 2.0


@pytest.fixture(scope="module")
def real() -> list:
    return [parse_trace(DATA / name) for name in REAL]


def test_real_traces_sane(real: list) -> None:
    medians = []
    for r in real:
        assert r.header.clock == "x86-tsc" and 1e9 < r.header.tsc_hz < 1e10
        assert not r.wrapped
        queued = sum(r.queued.values())
        assert r.paired > 2000
        assert sum(r.unpaired.values()) <= 0.01 * queued
        assert r.paired + sum(r.unpaired.values()) == queued
        tlb = r.func == "flush_tlb_func"
        assert tlb.sum() > 0.99 * r.paired
        assert set(r.cls) == {"llc"}  # two vCPUs sharing an L3
        assert len(r.local_func) > 2000  # SCF_RUN_LOCAL: the sender flushes itself each time
        d, h, c = r.delivery_ns[tlb], r.handler_ns[tlb], r.completion_ns[tlb]
        assert 1_000 < np.median(d) < 100_000
        assert 100 < np.median(h) < 10_000
        assert np.all(c >= d) and np.all(h > 0)
        medians.append(np.median(d))
    # Two independent recordings of the same workload agree on the typical delivery time.
    assert medians[0] == pytest.approx(medians[1], rel=0.25)


def test_real_wrapped_trace() -> None:
    r = parse_trace(DATA / "munmap_wrapped.trace.gz")
    assert r.wrapped and r.wrap_cut_ns > 0
    assert r.header.overrun and max(r.header.overrun.values()) > 0
    assert np.all(r.t_queue >= r.wrap_cut_ns)
    # Handlers on the early-starting CPU whose queue events were overwritten stay unpaired.
    assert sum(r.entries_without_queue.values()) > 0
    assert r.paired > 50 and np.median(r.delivery_ns) > 1_000


def test_fragment(real: list) -> None:
    text, func = build_fragment(real, call="generic")
    assert func == "flush_tlb_func"
    data = yaml.safe_load(text)
    assert set(data) == {"machine", "workload", "costs", "ipi", "remote"}
    assert data["machine"] == {"cpus": 2, "sockets": 1, "cpus_per_llc": 2, "smt": 1}
    assert data["workload"] == {"call": "generic"}
    for dist in (data["ipi"]["delivery_ns"], data["costs"]["func_ns"]):
        assert dist["dist"] == "empirical"
        q = dist["quantiles"]
        assert all(isinstance(k, float) for k in q)
        assert 0.0 in q and 1.0 in q and 0.999 in q
        vals = [q[k] for k in sorted(q)]
        assert all(b >= a for a, b in itertools.pairwise(vals))
    assert 1_000 < data["ipi"]["delivery_ns"]["quantiles"][0.5] < 100_000
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("munmap_a.trace.gz" in line for line in header)
    assert any(line.startswith("# unpaired by reason: target_not_started=2") for line in header)
    assert any("flush_tlb_func" in line and "delivery" in line for line in header)


def test_fragment_func_choice_and_errors(real: list) -> None:
    text, func = build_fragment(real, func="sched_ttwu_pending")
    assert func == "sched_ttwu_pending" and "WARNING: only" in text
    with pytest.raises(UserError, match="no paired remote calls of it"):
        build_fragment(real, func="no_such_func")


def test_report(tmp_path: Path, real: list) -> None:
    write_report(real, tmp_path / "rep")
    with (tmp_path / "rep" / "trace_report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
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
    by = {(r["function"], r["class"], r["quantity"]): r for r in rows}
    d = by[("flush_tlb_func", "llc", "delivery")]
    assert int(d["count"]) == sum(int(np.sum(r.func == "flush_tlb_func")) for r in real)
    assert (
        float(d["p50_ns"])
        <= float(d["p90_ns"])
        <= float(d["p99_ns"])
        <= float(d["p999_ns"])
        <= float(d["max_ns"])
    )
    assert ("flush_tlb_func", "local", "local_handler") in by
    assert by[("sched_ttwu_pending", "all", "unpaired_target_not_started")]["count"] == "2"
    png = (tmp_path / "rep" / "trace_ccdf.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["trace_ccdf.png", "trace_report.csv"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mcsmp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frag.yaml"
    files = [str(DATA / n) for n in REAL]
    assert _cli(["trace", "import", *files, "-o", str(out), "--report", str(tmp_path / "rep")]) == 0
    assert yaml.safe_load(out.read_text())["ipi"]["delivery_ns"]["dist"] == "empirical"
    assert (tmp_path / "rep" / "trace_ccdf.png").exists()
    assert "delivery p50" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"missing\.trace"):
        _cli(["trace", "import", str(tmp_path / "missing.trace"), "-o", str(out)])
    with pytest.raises(UserError, match="no paired remote"):
        _cli(["trace", "import", str(DATA / "edge_wrapped.trace"), "-o", str(out), "--func", "nope"])


# ------------------------------------------------------------------------------------------------
# import options: the main function by default, a time window, the CPU count, silent shootdowns

_TWO_FUNCS = """# tracer: nop
#
# entries-in-buffer/entries-written: 14/14   #P:4
#
{lines}"""


def _synthetic(tmp_path: Path, calls: list[tuple[str, float]], extra: str = "") -> Path:
    """A hand-made trace without an mcsmp header: one remote call per (func, queue time in s)."""
    # both CPUs' buffers start at t = 0 (a call queued before its target's first event is unpaired)
    lines = [f"  s-1 [00{c}] ...1. 0.000000: tracing_mark_write: mcsmp-start cpu={c}" for c in (0, 1)]
    for i, (func, t) in enumerate(calls):
        csd = f"00000000b{i:07x}"
        lines.append(f"  s-1 [000] ...1. {t:.6f}: csd_queue_cpu: cpu=1 callsite=x+0x0/0x1 func={func} csd={csd}")
        lines.append(f"  <idle>-0 [001] d.h1. {t + 5e-6:.6f}: csd_function_entry: func={func}, csd={csd}")
        lines.append(f"  <idle>-0 [001] d.h1. {t + 6e-6:.6f}: csd_function_exit: func={func}, csd={csd}")
    path = tmp_path / "synthetic.trace"
    path.write_text(_TWO_FUNCS.format(lines="\n".join(lines) + "\n" + extra))
    return path


def test_import_defaults_to_the_commonest_function_and_lists_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = [("flush_tlb_func", 1.0 + 0.001 * i) for i in range(3)] + [("remote_function", 2.0 + 0.001 * i) for i in range(9)]
    path = _synthetic(tmp_path, calls)
    text, func = build_fragment([parse_trace(path)])
    assert func == "remote_function"
    assert _cli(["trace", "import", str(path), "-o", str(tmp_path / "f.yaml")]) == 0
    out = capsys.readouterr().out
    assert "remote_function, 9 pairs" in out and "other paired functions" in out and "flush_tlb_func (3)" in out
    # the CPU count comes from ftrace's header (#P:4) when the topology was not recorded
    frag = yaml.safe_load(text)
    assert frag["machine"] == {"cpus": 4, "sockets": 1, "cpus_per_llc": 4, "smt": 1}
    assert "#P" in text


def test_import_window_keeps_only_the_calls_queued_inside(tmp_path: Path) -> None:
    calls = [("flush_tlb_func", 1.0 + 0.001 * i) for i in range(10)] + [("flush_tlb_func", 2.5 + 0.001 * i) for i in range(4)]
    r = parse_trace(_synthetic(tmp_path, calls))  # times are ns from the first event (t = 0)
    assert r.paired == 14
    text, _ = build_fragment([r], window=(2.0, 3.0))
    assert "n=4" in text and "window: calls queued 2 s to 3 s" in text
    assert "n=10" in build_fragment([r], window=(0.5, 2.0))[0]


def test_shootdowns_without_a_remote_request_are_counted(tmp_path: Path) -> None:
    send = "  s-1 [000] d..1. {t:.6f}: tlb_flush: pages:1 reason:remote IPI send (4)"
    extra = "\n".join(send.format(t=t) for t in (0.9999, 3.0, 3.5)) + "\n"  # 1 with its csd, 2 silent
    path = _synthetic(tmp_path, [("flush_tlb_func", 1.0)], extra)
    lines = path.read_text().splitlines()
    head, body = lines[:4], sorted(lines[4:], key=lambda l: float(re.search(r"(\d+\.\d+):", l).group(1)))  # type: ignore[union-attr]
    path.write_text("\n".join(head + body) + "\n")
    r = parse_trace(path)
    assert (r.shootdowns, r.shootdowns_without_request) == (3, 2)
    real = parse_trace(DATA / "munmap_a.trace.gz")
    assert real.shootdowns == 2707  # tlb_flush 'remote IPI send' lines in the file
    assert 0 <= real.shootdowns_without_request <= real.shootdowns
    assert "without a remote request" in build_fragment([real])[0]


def _fanout_trace(path: Path, commons: np.ndarray, per_target: np.ndarray) -> np.ndarray:
    """A hand-made trace of fan-outs from CPU 0 to CPUs 1..k (k = per_target's columns).

    Fan-out f's target j is delivered after ``commons[f] + per_target[f, j]`` ns (whole ns, as the
    trace prints them); a NaN leaves that target out of the fan-out. Returns the deliveries.
    """
    n_fan, k = per_target.shape
    head = [
        "# mcsmp-trace: version=1", "# mcsmp-trace: clock=mono_raw", "# mcsmp-trace: resolution_ns=1",
        f"# mcsmp-trace: nr_cpus={k + 1}",
        *(f"# mcsmp-trace: topology cpu={c} thread_siblings={c} llc=0-{k} package=0" for c in range(k + 1)),
    ]  # fmt: skip
    events: list[tuple[float, int, str]] = [(0.0, c, f"tracing_mark_write: mcsmp-start cpu={c}") for c in range(k + 1)]
    deliveries = np.round(commons[:, None] + per_target)
    for f in range(n_fan):
        t0 = 1e6 + f * 1e6
        cpus = [j + 1 for j in range(k) if not np.isnan(deliveries[f, j])]
        for rank, cpu in enumerate(cpus):
            csd = f"{0xA000000 + (k + 1) * f + cpu:016x}"
            tq, d = t0 + 100 * rank, deliveries[f, cpu - 1]
            events.append((tq, 0, f"csd_queue_cpu: cpu={cpu} callsite=on_each_cpu_cond_mask+0x20/0x60 func=flush_tlb_func csd={csd}"))
            events.append((tq + d, cpu, f"csd_function_entry: func=flush_tlb_func, csd={csd}"))
            events.append((tq + d + 400, cpu, f"csd_function_exit: func=flush_tlb_func, csd={csd}"))
        mask = ",".join(str(c) for c in cpus)
        events.append((t0 + 100 * len(cpus), 0, f"ipi_send_cpumask: cpumask={mask} callsite=on_each_cpu_cond_mask+0x20/0x60 "
                                                "callback=generic_smp_call_function_single_interrupt+0x0/0x10"))  # fmt: skip
    lines = [f"           storm-100     [{cpu:03d}] d..1.   {t / 1e9:.9f}: {text}" for t, cpu, text in sorted(events)]
    path.write_text("\n".join(head + lines) + "\n")
    return deliveries


def _split_se(var_c: float, var_x: float, kurt_c: float, kurt_x: float, k: int, n_fan: int) -> tuple[float, float]:
    """Standard errors of the ANOVA variance components for n_fan fan-outs of k targets.

    From the variance of a sample variance, ``σ⁴ (2 / (n − 1) + κ / n)`` (κ the excess kurtosis):
    ``MSW`` pools the n_fan within-fan-out variances of k draws of X; the fan-out means have
    variance ``v = Var C + Var X / k`` and excess kurtosis ``(κ_C Var C² + κ_X Var X² / k³) / v²``
    (fourth cumulants add); ``Var Ĉ = s²(means) − MSW / k``, the two terms taken as uncorrelated.
    """
    var_msw = var_x**2 * (2 / (k - 1) + kurt_x / k) / n_fan
    v = var_c + var_x / k
    kurt_mean = (kurt_c * var_c**2 + kurt_x * var_x**2 / k**3) / v**2
    var_means = v**2 * (2 / (n_fan - 1) + kurt_mean / n_fan)
    return float(np.sqrt(var_means + var_msw / k**2)), float(np.sqrt(var_msw))


def _pairwise_cov(d: np.ndarray) -> float:
    """Independent reference for Var C: the mean product of two targets' deviations in one fan-out."""
    dev = d - np.nanmean(d)
    total, pairs = 0.0, 0
    for row in dev:
        row = row[~np.isnan(row)]
        total += row.sum() ** 2 - np.sum(row**2)
        pairs += len(row) * (len(row) - 1)
    return total / pairs


def test_delivery_split_recovers_a_known_split(tmp_path: Path) -> None:
    """C exponential (mean 1.5 us, κ 6), X = 4 us + gamma(4, 250 ns) (sd 500 ns, κ 1.5), 4 targets:
    the variance components come back within 4 standard errors of the truth at this sample size."""
    rng = np.random.default_rng(5)
    n_fan, k = 2000, 4
    commons = rng.exponential(1500.0, n_fan)
    per = 4000 + rng.gamma(4.0, 250.0, (n_fan, k))
    deliveries = _fanout_trace(tmp_path / "fan.trace", commons, per)
    r = parse_trace(tmp_path / "fan.trace")
    assert r.paired == n_fan * k and len(set(r.fanout.tolist())) == n_fan
    split = delivery_split(r.delivery_ns, r.fanout)
    assert split is not None and (split.fanouts, split.pairs) == (n_fan, n_fan * k)
    se_c, se_x = _split_se(1500.0**2, 500.0**2, 6.0, 1.5, k, n_fan)
    assert abs(split.var_common - 1500.0**2) <= 4 * se_c, (split.var_common, se_c)
    assert abs(split.var_target - 500.0**2) <= 4 * se_x, (split.var_target, se_x)
    assert abs(split.raw_var_common - _pairwise_cov(deliveries)) <= 0.5 * se_c  # same moment, other formula
    # the samples keep the estimated variances and the mean delivery
    assert split.common.min() == 0.0 and split.clipped == 0
    assert split.common.mean() + split.per_target.mean() == pytest.approx(deliveries.mean(), rel=1e-9)
    assert np.var(split.per_target) == pytest.approx(split.var_target, rel=0.01)
    assert np.var(split.common) == pytest.approx(split.var_common, rel=0.05)
    text, _ = build_fragment([r], call="generic")
    frag = yaml.safe_load(text)
    assert "method of moments over 2000 fan-outs" in text and "delivery_common_ns" in frag["ipi"]


def test_delivery_split_unbalanced_and_without_a_common_part(tmp_path: Path) -> None:
    """Fan-outs of 2-4 targets and no common part: the estimate is within 4 standard errors of 0
    (the 2-target bound, the noisiest size), where taking each fan-out's fastest target as its
    common part (the previous estimator) finds a spread of min-of-k draws that is not there."""
    rng = np.random.default_rng(6)
    n_fan, k = 1500, 4
    per = 5000 + rng.gamma(4.0, 250.0, (n_fan, k))
    per[rng.random((n_fan, k)) < 0.25] = np.nan
    per[:, :2] = np.where(np.isnan(per[:, :2]), 5000 + rng.gamma(4.0, 250.0, (n_fan, 2)), per[:, :2])  # >= 2 each
    deliveries = _fanout_trace(tmp_path / "fan.trace", np.zeros(n_fan), per)
    r = parse_trace(tmp_path / "fan.trace")
    assert set(np.unique(np.unique(r.fanout, return_counts=True)[1]).tolist()) == {2, 3, 4}
    split = delivery_split(r.delivery_ns, r.fanout)
    assert split is not None
    se_c, se_x = _split_se(0.0, 500.0**2, 0.0, 1.5, 2, n_fan)
    assert abs(split.raw_var_common) <= 4 * se_c and abs(split.var_target - 500.0**2) <= 4 * se_x
    assert abs(split.raw_var_common - _pairwise_cov(deliveries)) <= se_c
    fastest = np.nanmin(deliveries, axis=1)
    assert np.var(fastest) > 4 * se_c  # what a min-based split calls the common part: outside the band
    assert split.common.mean() + split.per_target.mean() == pytest.approx(np.nanmean(deliveries), rel=1e-9)
    text, _ = build_fragment([r], call="generic")
    if split.var_common == 0:
        assert "No common part detected" in text and "delivery_common_ns" not in yaml.safe_load(text)["ipi"]


def test_delivery_split_says_when_it_cannot_be_identified(tmp_path: Path, real: list) -> None:
    # this machine's captures: 2 vCPUs, one target per fan-out
    assert all(np.all(np.unique(r.fanout, return_counts=True)[1] == 1) for r in real)
    text, _ = build_fragment(real)
    assert "not identifiable: one target per fan-out" in text
    assert "delivery_common_ns" not in yaml.safe_load(text)["ipi"]
    assert delivery_split(np.concatenate([r.delivery_ns for r in real]), np.arange(sum(r.paired for r in real))) is None
    # a few multi-target fan-outs are counted but not enough to estimate from
    rng = np.random.default_rng(7)
    _fanout_trace(tmp_path / "few.trace", np.zeros(5), 5000 + rng.gamma(4.0, 250.0, (5, 3)))
    text, _ = build_fragment([parse_trace(tmp_path / "few.trace")], call="generic")
    assert "only 5 fan-outs with two or more paired targets" in text


def test_ipi_spacing_is_reported_from_each_targets_previous_call(tmp_path: Path) -> None:
    times = [1.0 + 0.0004 * i for i in range(30)] + [1.1, 1.1004]  # 400 us apart, then one 88 ms gap
    r = parse_trace(_synthetic(tmp_path, [("flush_tlb_func", t) for t in times]))
    from mcsmp.trace.fragment import combine

    since = combine([r]).since_previous
    assert np.isnan(since[0]) and np.allclose(since[1:30], 400e3, atol=1) and since[30] == pytest.approx(88.4e6, abs=1)
    text, _ = build_fragment([r], call="generic")
    assert "calls came 400.0 us apart (median" in text and "(n=30); after longer ones" in text
