"""The whole-machine simulation (mcsmp.kernels.system, docs/system.md) against independent references.

- low load, one sender: the fan-out engine (same parameters) — two-sample KS on T, P and S_L, and a
  two-sample chi-square on the remote-wait histograms;
- a small busy machine: the event-by-event pure-Python twin tests/naive_system.py;
- csd races: exactly zero with the try_cmpxchg lock and with source-CPU csds; with the plain lock
  on destination csds, counts consistent (exact Poisson) with the two-sender coincidence rate
  n · λ_d² · w · (n − 2)/(n − 1) at low load, and growing as λ² between two low loads;
- the re-entry spin of a second task against the fan-out engine's ``policy.reentry: bound``;
- bit-identical results for any number of threads; the command line.

Every test uses fixed seeds; tolerances are the tests' own significance levels (Bonferroni over
the comparisons of a test), never tuned.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import mcsmp
from mcsmp.kernels import codes as K
from mcsmp.sim.engine import NO_WAIT_TAIL, simulate_chunk, wait_tail_from
from mcsmp.sim.model import compile_model
from mcsmp.system import compile_system, run_replication, simulate_system

sys.path.insert(0, str(Path(__file__).parent))
from naive_system import NaiveSystem

BASE = Path(__file__).parent / "data" / "system-base.yaml"
ALPHA = 1e-3


def _load(*sets: str) -> mcsmp.Params:
    return mcsmp.load(BASE, list(sets))


def _samples(result, policy: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([r.samples for r in result.runs[policy].reps])


def _hist_chi2(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of a two-sample chi-square homogeneity test on two histograms of one layout
    (adjacent buckets merged until each merged cell expects at least 5 in both samples)."""
    na, nb = a.sum(), b.sum()
    cells_a, cells_b, acc_a, acc_b = [], [], 0, 0
    for x, y in zip(a, b, strict=True):
        acc_a += x
        acc_b += y
        tot = acc_a + acc_b
        if tot * na / (na + nb) >= 5 and tot * nb / (na + nb) >= 5:
            cells_a.append(acc_a)
            cells_b.append(acc_b)
            acc_a = acc_b = 0
    if acc_a or acc_b:
        cells_a[-1] += acc_a
        cells_b[-1] += acc_b
    _, p, _, _ = stats.chi2_contingency(np.array([cells_a, cells_b]))
    return float(p)


def test_low_load_one_sender_matches_the_fanout_engine() -> None:
    # CPU 0 alone calls, 2000 times a second (0.2 % busy): its calls never meet
    rates = "{repeat: [2000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}"
    p = _load(f"workload.rate_hz={rates}", "system.duration_s=0.5", "system.warmup_s=0.001", "system.replications=4",
              "samples=8000", "remote.irq_off.fraction=0.2", "ipi.mode=physical", "cache.placement=stack")  # fmt: skip
    sim = simulate_system(p, threads=2, keep=20000)
    model = compile_model(p)
    eng = simulate_chunk(p, model, 0, NO_WAIT_TAIL, p.stream_key, keep_samples=True)
    s = eng.samples
    tests = []
    for i, pol in enumerate(p.policies):
        sm = _samples(sim, pol)
        assert len(sm) > 3000
        assert sim.runs[pol].counter("coalesced") == 0
        tests.append(stats.ks_2samp(sm[:, K.SS_T], s[:, K.S_T]).pvalue)
        tests.append(stats.ks_2samp(sm[:, K.SS_P], s[:, K.N_SAMPLE_COLS + i]).pvalue)
        tests.append(stats.ks_2samp(sm[:, K.SS_SL], s[:, K.S_SL]).pvalue)
    waits_sys = sim.runs["preempt_off"].histogram("remote_wait_ns").counts
    waits_eng = eng.counts[K.H_REMOTE_WAIT]
    tests.append(_hist_chi2(waits_sys, waits_eng))
    assert min(tests) > ALPHA / len(tests), tests


@pytest.mark.parametrize("workload,seed", [("closed", 11), ("open", 12)])
def test_naive_twin_agrees(workload: str, seed: int) -> None:
    sets = ["policies=[preempt_off]", "machine.cpus=4", "machine.cpus_per_llc=2", f"system.workload={workload}",
            "system.duration_s=0.01", "system.warmup_s=0.0005", "system.replications=1", "remote.irq_off.fraction=0.05",
            "ipi.mode=physical", "tlb.pages={dist: choice, values: [1, 64], weights: [0.7, 0.3]}",
            "workload.rate_hz=150000"]  # fmt: skip
    p = _load(*sets)
    naive = NaiveSystem(p, seed).run()
    rep = run_replication(p, compile_system(p), "preempt_off", 0, keep=100000, keep_waits=200000)
    t_sys, t_naive = rep.samples[:, K.SS_T], np.array([c[2] for c in naive.calls])
    assert len(t_naive) > 3000 and len(t_sys) > 3000
    thin = 8  # consecutive calls of a busy machine are correlated: compare every 8th
    pv = [
        stats.ks_2samp(t_sys[::thin], t_naive[::thin]).pvalue,
        stats.ks_2samp(rep.waits[::thin], np.array(naive.waits)[::thin]).pvalue,
    ]
    # coalescing and queue depth: two-sample tests on the counts
    queued = int(rep.counters[K.SYSTEM_COUNTERS.index("csds_queued")])
    coalesced = int(rep.counters[K.SYSTEM_COUNTERS.index("coalesced")])
    table = np.array([[coalesced, queued - coalesced], [naive.coalesced, naive.queued - naive.coalesced]])
    assert coalesced > 100
    pv.append(float(stats.chi2_contingency(table)[1]))
    depth = rep.counts[K.SH_QUEUE_DEPTH]
    nd = np.bincount(np.array(naive.depths), minlength=8)
    edges = compile_system(p).base.layout.edges  # depth k lands in the bucket holding [k, k + 1)
    sys_d = np.array([depth[(edges[:-1] >= k) & (edges[:-1] < k + 1)].sum() for k in range(8)])
    assert sys_d.sum() == depth.sum()
    pv.append(_hist_chi2(sys_d, nd[:8]))
    assert min(pv) > ALPHA / len(pv), pv


SCF = ["policies=[preempt_off]", "system.workload=scftorture", "workload.call=generic", "machine.cpus=8",
       "machine.cpus_per_llc=null", "system.warmup_s=0.0001", "remote.irq_off.fraction=0.0"]  # fmt: skip


def _races(*sets: str) -> tuple[int, float]:
    run = simulate_system(_load(*SCF, *sets), threads=2).runs["preempt_off"]
    assert run.counter("calls") > 1000
    return run.counter("races"), run.exposure_s


@pytest.mark.parametrize("csd,lock", [("destination", "cmpxchg"), ("source", "plain"), ("source", "cmpxchg")])
def test_no_race_with_the_atomic_lock_or_source_csds(csd: str, lock: str) -> None:
    # a heavy load (many waiters on each csd) where the plain lock on destination csds races often
    n, _ = _races(f"system.async_csd={csd}", f"system.csd_lock={lock}", "workload.rate_hz=100000",
                  "system.duration_s=0.02", "system.replications=2", "system.lock_window_ns=500")  # fmt: skip
    assert n == 0
    n_plain, _ = _races("system.async_csd=destination", "system.csd_lock=plain", "workload.rate_hz=100000",
                        "system.duration_s=0.02", "system.replications=2", "system.lock_window_ns=500")  # fmt: skip
    assert n_plain > 100


def test_race_rate_is_a_two_sender_coincidence_at_low_load() -> None:
    # async single calls only: destination csd d is wanted at λ_d = λ (uniform targets); a race needs a
    # second CPU's attempt less than w after an acquisition: rate n λ_d² w (n − 2)/(n − 1) to first order
    n_cpus, w = 8, 500e-9
    counts, expected = [], []
    for rate, dur in ((2500, 1.0), (5000, 0.5)):
        n, exposure = _races("system.async_csd=destination", "system.csd_lock=plain", "system.scf_weights=[0,1,0,0]",
                             f"system.lock_window_ns={w * 1e9}", f"workload.rate_hz={rate}", f"system.duration_s={dur}",
                             "system.replications=8")  # fmt: skip
        counts.append(n)
        expected.append(n_cpus * rate**2 * w * (n_cpus - 2) / (n_cpus - 1) * exposure)
    pv = []
    for n, mu in zip(counts, expected, strict=True):
        assert n > 50
        pv.append(2 * min(stats.poisson.cdf(n, mu), stats.poisson.sf(n - 1, mu)))
    # the rate doubled over half the time: a λ² law puts 2/3 of the pooled count at the higher rate
    share = expected[1] / sum(expected)
    pv.append(stats.binomtest(counts[1], sum(counts), share).pvalue)
    assert min(pv) > ALPHA / len(pv), (counts, expected, pv)
    # and a λ (single-sender) law is rejected
    assert stats.binomtest(counts[1], sum(counts), 0.5).pvalue < ALPHA


def test_reentry_spin_stays_below_the_bound() -> None:
    """A second task on each calling CPU: its csd_lock() spin, per call, against the bound's spin
    (probability λ E[T − S_L], then an equilibrium residual of T − S_L) for a call of that CPU."""
    rates = "{repeat: [20000, 0, 0, 0]}"
    sets = [f"workload.rate_hz={rates}", "policies=[preemptible_wait]", "policy.reentry=bound",
            "workload.caller={preemptible: 1.0, spinlock: 0.0, preempt_disabled: 0.0}",
            "system.second_task_hz=20000", "system.duration_s=0.5", "system.replications=4", "samples=400000"]  # fmt: skip
    p = _load(*sets)
    sim = simulate_system(p, threads=2, keep=200000)
    sm = _samples(sim, "preemptible_wait")
    second = sm[(sm[:, K.SS_SLOT] == 1) & (sm[:, K.SS_CPU] % 4 == 0)]
    assert len(second) > 20000
    spin_sys = second[:, K.SS_SPIN]
    model = compile_model(p)
    first = simulate_chunk(p, model, 0, NO_WAIT_TAIL, p.stream_key)
    from mcsmp.sim.histogram import Histogram

    tail = wait_tail_from(model, Histogram(model.layout, first.counts[K.H_WAIT_TAIL], float(first.sums[K.H_WAIT_TAIL])))
    bound = np.concatenate([simulate_chunk(p, model, c, tail, p.stream_key, keep_samples=True).samples[:, K.S_SPIN]
                            for c in range(4)])  # fmt: skip
    # one-sided: Pr(spin > x) of the simulation may not exceed the bound's at any x (within binomial noise)
    xs = np.quantile(bound[bound > 0], [0.0, 0.25, 0.5, 0.75, 0.9, 0.99])
    for x in xs:
        k_sys, n_sys = int((spin_sys > x).sum()), len(spin_sys)
        k_b, n_b = int((bound > x).sum()), len(bound)
        table = [[k_sys, n_sys - k_sys], [k_b, n_b - k_b]]
        if k_sys / n_sys > k_b / n_b:
            assert stats.fisher_exact(table, alternative="greater").pvalue > ALPHA / len(xs), (x, k_sys, n_sys, k_b, n_b)


def test_bit_identical_for_any_thread_count() -> None:
    p = _load("system.workload=scftorture", "workload.call=generic", "workload.rate_hz=50000", "system.duration_s=0.003",
              "system.replications=3", "system.second_task_hz=5000", "system.async_csd=destination")  # fmt: skip
    a = simulate_system(p, threads=1)
    b = simulate_system(p, threads=3)
    for pol in p.policies:
        for ra, rb in zip(a.runs[pol].reps, b.runs[pol].reps, strict=True):
            assert np.array_equal(ra.counts, rb.counts) and np.array_equal(ra.sums, rb.sums)
            assert np.array_equal(ra.counters, rb.counters) and np.array_equal(ra.ops, rb.ops)
    assert a.runs["preempt_off"].counter("second_calls") > 0


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcsmp.cli import main

    machine = Path(__file__).parent.parent / "params" / "machines" / "haswell-4c.yaml"
    png = tmp_path / "curve.png"
    assert main(["system", "params/tlb-flush2.yaml", "--machine", str(machine), "--set", "system.threads=1,4",
                 "--set", "system.duration_s=0.001", "--set", "system.replications=2", "--threads", "1", "--plot", str(png)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "system.threads=4" in out and "throughput" in out and png.exists()
    assert main(["system", "params/tlb-flush2.yaml", "--machine", str(machine), "--json", "--set", "system.duration_s=0.001",
                 "--set", "system.replications=2", "--threads", "1"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["policy"] for r in rows} == {"preempt_off", "preemptible_wait"}
    # one thread flushes no other CPU: no call spins, so the spin's p99 is exactly 0 (no bucket artefact)
    assert main(["system", "params/tlb-flush2.yaml", "--machine", str(machine), "--json", "--set", "system.duration_s=0.001",
                 "--set", "system.threads=1", "--set", "system.replications=2", "--threads", "1"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(r["calls_with_spin"] == 0 and r["spin_ns_p99"] == [0.0, 0.0, 0.0] for r in rows), rows
    assert main(["system", "params/tlb-flush2.yaml", "--set", "system.workload=clozed"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "system.workload" in err and "closed" in err
    assert main(["system", "params/tlb-flush2.yaml", "--set", "policies=[atomic_alloc]"]) == 2


@pytest.mark.parametrize("workload", ["open", "closed"])
def test_hotplug_naive_twin_agrees(workload: str) -> None:
    """CPU hotplug (torture_onoff every 20 µs, so a 20 ms run has ~350 transitions): the compiled
    kernel and the naive twin agree on T and on the offline CPU-time; the latter matches the
    stationary law of the toggle walk (each of CPUs 1..n-1 offline with probability 1/2)."""
    sets = ["policies=[preempt_off]", "machine.cpus=4", "machine.cpus_per_llc=2", f"system.workload={workload}",
            "system.duration_s=0.02", "system.warmup_s=0.0005", "system.replications=1", "remote.irq_off.fraction=0.05",
            "ipi.mode=physical", "tlb.pages={dist: choice, values: [1, 64], weights: [0.7, 0.3]}",
            "workload.rate_hz=150000", "system.hotplug_interval_s=0.00002"]  # fmt: skip
    p = _load(*sets)
    model = compile_system(p)
    exposure = 0.0195e9
    t_sys, t_naive, down_sys, down_naive = [], [], [], []
    for r in range(3):
        rep = run_replication(p, model, "preempt_off", r, keep=100000)
        naive = NaiveSystem(p, 300 + r).run()
        t_sys.append(rep.samples[::8, K.SS_T])
        t_naive.append(np.array([c[2] for c in naive.calls])[::8])
        assert rep.counters[K.SC_OFFLINED] > 200 and naive.offlined > 200
        assert rep.counters[K.SC_OFFLINE_CALLS] > 1000  # fan-outs that skipped an offline CPU
        down_sys.append(rep.counters[K.SC_OFFLINE_NS] / exposure)
        down_naive.append(naive.offline_ns / exposure)
    pv = [stats.ks_2samp(np.concatenate(t_sys), np.concatenate(t_naive)).pvalue,
          stats.ttest_ind(down_sys, down_naive).pvalue,
          stats.ttest_1samp(down_sys + down_naive, 1.5).pvalue]  # fmt: skip
    assert min(pv) > ALPHA / len(pv), (pv, down_sys, down_naive)


def test_hotplug_race_rate_follows_the_online_cpus() -> None:
    """With hotplug, destination csd d races only while d and two senders are online: at low load
    the rate is E[m (m − 1)(m − 2)] λ² w / (n − 1)² with m = 1 + Binomial(n − 1, 1/2) online CPUs
    (targets stay uniform over all n − 1 others; a call to an offline CPU takes and drops the csd
    at once), 57.75/336 of the rate without hotplug for n = 8. Exact Poisson test (the online
    count's fluctuation adds a few % of variance over 4000 toggles)."""
    n_cpus, w, rate = 8, 500e-9, 5000
    n, exposure = _races("system.async_csd=destination", "system.csd_lock=plain", "system.scf_weights=[0,1,0,0]",
                         f"system.lock_window_ns={w * 1e9}", f"workload.rate_hz={rate}", "system.duration_s=2.05",
                         "system.warmup_s=0.05", "system.replications=4", "system.hotplug_interval_s=0.002")  # fmt: skip
    b = stats.binom(n_cpus - 1, 0.5)
    m3 = sum(b.pmf(k) * (k + 1) * k * (k - 1) for k in range(n_cpus))
    assert abs(m3 - 57.75) < 1e-9
    mu = m3 * rate**2 * w / (n_cpus - 1) ** 2 * exposure
    assert n > 50
    assert 2 * min(stats.poisson.cdf(n, mu), stats.poisson.sf(n - 1, mu)) > ALPHA, (n, mu)


def test_stall_split_agrees_with_the_crude_mean() -> None:
    """The re-entry spin split by a rare irq-off atom (mcsmp.system.stall: the mean without the atom
    plus atoms/s × the extra spin one atom causes, from forced windows) against the crude mean spin
    per second-task call of the same machine, where the atom (200 µs, 10⁻³ of the sections) is
    common enough for the crude estimate: a two-sample z-test at ALPHA."""
    from mcsmp.system.stall import stall_split

    rates = "{repeat: [2000, 0, 0, 0]}"
    sets = [f"workload.rate_hz={rates}", "policies=[preemptible_wait]", "machine.cpus=4", "machine.cpus_per_llc=4",
            "workload.caller={preemptible: 1.0, spinlock: 0.0, preempt_disabled: 0.0}",
            "system.second_task_hz={repeat: [20000, 0, 0, 0]}", "system.duration_s=4", "system.warmup_s=0.01",
            "system.replications=4", "remote.irq_off={fraction: 0.02, length: {dist: mixture, components: ["
            "{weight: 0.999, dist: lognormal, median: 2000, sigma: 0.3}, {weight: 0.001, dist: const, value: 200000}]}}"]  # fmt: skip
    p = _load(*sets)
    crude = simulate_system(p, threads=2).runs["preemptible_wait"].histogram("second_spin_ns")
    lo, hi = crude.mean_interval()
    split = stall_split(p, 200000.0, 300, 0.001, threads=2)
    assert split.episodes_with_extra_spin > 15 and split.extra_spin_ns[1] > 0  # the atom matters here
    se = np.hypot((hi - lo) / 2, (split.mean_ns[2] - split.mean_ns[1]) / 2) / stats.norm.ppf(0.975)
    z = (split.mean_ns[0] - crude.mean) / se
    assert abs(z) < stats.norm.ppf(1 - ALPHA / 2), (split, crude.mean, lo, hi)


def test_race_figure_draws_zero_race_points_as_upper_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point without races has no place on the log axis: it is drawn as its exact upper bound
    (a down arrow), never as a value near 0 (it used to be drawn at 1e-300)."""
    from mcsmp.plots import figure as plot_figure
    from mcsmp.system import report
    from mcsmp.system.run import garwood

    figs = []
    monkeypatch.setattr(plot_figure, "save", lambda fig, folder, stem, **kw: figs.append(fig) or [folder / f"{stem}.png"])
    hi0 = garwood(0, 8.0)[1]
    rows = [{"policy": "preempt_off", "rate": x, "races": n, "ops_per_s": (1e5, 9e4, 1.1e5),
             "race_rate_per_s": (n / 8.0, *garwood(n, 8.0))} for x, n in ((1000, 0), (4000, 5), (16000, 80))]  # fmt: skip
    report.figure(rows, "rate", tmp_path / "race.png")
    (fig,) = figs
    ax2 = fig.axes[1]
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax2.get_lines()])
    assert ys.min() > 1e-3  # nothing at the fake 1e-300
    arrows = [ln for ln in ax2.get_lines() if ln.get_marker() == "v"]
    assert len(arrows) == 1 and list(arrows[0].get_xdata()) == [1000] and arrows[0].get_ydata()[0] == pytest.approx(hi0)
    assert any("0 races" in t.get_text() for t in ax2.get_legend().get_texts())


@pytest.mark.parametrize(("mean_per_rep", "dispersion"), [(0.5, 1.0), (20.0, 1.0), (6000.0, 25.0)])
def test_race_rate_interval_covers_poisson_and_overdispersed_counts(mean_per_rep: float, dispersion: float) -> None:
    """The race-rate interval (union of Garwood and the replications' t-interval) covers the true
    rate for independent races (Poisson counts) and for bursty ones (negative binomial counts with
    variance / mean 25, as csd-race shows at 64k calls per CPU per second), 8 replications of 1 s.
    Garwood alone undercovers the bursty case, so this can fail."""
    from mcsmp.system.run import garwood, rate_interval

    rng = np.random.default_rng(11)
    reps, trials = 8, 2000
    if dispersion == 1.0:
        counts = rng.poisson(mean_per_rep, size=(trials, reps))
    else:  # negative binomial with mean m and variance d * m
        p = 1.0 / dispersion
        counts = rng.negative_binomial(mean_per_rep * p / (1 - p), p, size=(trials, reps))
    hits = garwood_hits = 0
    for c in counts:
        _, lo, hi = rate_interval(c, 1.0)
        hits += lo <= mean_per_rep <= hi
        g_lo, g_hi = garwood(int(c.sum()), float(reps))
        garwood_hits += g_lo <= mean_per_rep <= g_hi
    floor = 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)  # 3 standard errors of a 95% coverage
    assert hits / trials >= floor
    if dispersion > 1:
        assert garwood_hits / trials < 0.6  # why the union is needed: Poisson alone is far too narrow
