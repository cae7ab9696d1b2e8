"""The handler split of docs/model.md 9.29, end to end on this project's own captures.

tests/data/handler_split/ holds munmap_storm captures from the 2-vCPU KVM guest the project runs on
(benchmarks/workloads/munmap_storm.c, ``mcsmp trace record --buffer-kb 8192``): six interleaved
rounds of 1-, 4-, 16- and 64-page loops (``p<pages>_r<round>.trace.gz``), so every page count
saw the same mix of host conditions. 64 pages is above tlb_single_page_flush_ceiling: a full flush.

The prediction is a fragment imported from the 1-page captures alone (per-page cost from the
component figure, since one page count cannot separate it), run with the other page counts. It is
compared with each capture's queue→exit completion at p50 and p90, within ±15% (issue 10). Not
fitted: nothing in the fragment comes from the multi-page captures. The p99 is not asserted on
these: its bootstrap standard deviation at these sample sizes (~1,700-2,500 pairs) is 10-13% of
its value, and the loops' IPI periods differ with the pages, which moves the delivery tail.

tests/data/handler_split_paced/ holds the second design: 12 interleaved rounds in which every
page count flushes on the same 400 us grid (munmap_storm's period_us), 4,300-6,100 pairs per page
count, plus unpaced 1-page captures; there p50, p90 and p99 are checked (docs/traces.md, "Paced
captures").
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.config import apply_override, build_params, load_raw
from mcsmp.sim import run_point
from mcsmp.trace.fragment import INVLPG_COMPONENT_NS, build_fragment
from mcsmp.trace.parse import parse_trace

DATA = Path(__file__).parent / "data" / "handler_split"
PACED = Path(__file__).parent / "data" / "handler_split_paced"
PAGES = (1, 4, 16, 64)
TOLERANCE = 0.15  # issue 10's criterion


def _captures(pages: int, data: Path = DATA, cond: str = "p", rounds: int = 6) -> list:
    return list(_parsed(pages, data, cond, rounds))


@functools.cache
def _parsed(pages: int, data: Path, cond: str, rounds: int) -> tuple:
    files = sorted(data.glob(f"{cond}{pages}_r*.trace.gz"))
    assert len(files) == rounds
    return tuple(parse_trace(f) for f in files)  # parsed once per session: nothing mutates them


def _paced(pages: int, cond: str = "p") -> list:
    return _captures(pages, PACED, cond, rounds=12)


def _completion(pages: int, results: list | None = None) -> np.ndarray:
    rs = _captures(pages) if results is None else results
    return np.concatenate([r.completion_ns[r.func == "flush_tlb_func"] for r in rs])


def _predict(fragment: str, tmp_path: Path, pages: int, levels: tuple[float, ...] = (0.5, 0.9),
             **more: object) -> list[float]:
    path = tmp_path / "fragment.yaml"
    path.write_text(fragment)
    raw = load_raw(path)
    for key, value in {"name": "split", "samples": 100_000, "tlb.pages": pages, **more}.items():
        raw = apply_override(raw, key, value, origin="test")
    h = run_point(build_params(raw), threads=2).histogram("remote_wait_ns")
    return [h.quantile(q).value for q in levels]


def _bootstrap_sd(x: np.ndarray, levels: tuple[float, ...], seed: int = 10) -> np.ndarray:
    """Relative bootstrap standard deviation of the sample quantiles (fixed seed, 400 resamples)."""
    rng = np.random.default_rng(seed)
    boot = np.array([np.quantile(rng.choice(x, len(x)), levels) for _ in range(400)])
    return boot.std(axis=0) / np.quantile(x, levels)


def test_pages_come_from_the_targets_tlb_flush_events() -> None:
    for pages in PAGES:
        marked = np.concatenate([r.pages[r.func == "flush_tlb_func"] for r in _captures(pages)])
        known = marked[marked != 0]
        # every handler whose tlb_flush event is in the trace flushed the loop's pages, or the
        # whole TLB: above the ceiling (64), and when flush_tlb_func() finds the target more than
        # one tlb_gen behind (its new_tlb_gen == local_tlb_gen + 1 test; 6% of the 16-page calls).
        # 0.3-0.7% of the handlers have no event (flush_tlb_func() returns before its tracepoint
        # when the target's TLB is already current or it switched mm): a sanity bound only
        assert len(known) >= 0.99 * len(marked)
        assert np.all((known == -1) | (known == pages)) and (pages <= 33) == np.any(known == pages)


def test_per_page_cost_is_the_weighted_line_through_the_medians() -> None:
    results = [r for p in PAGES for r in _captures(p)]
    text, _ = build_fragment(results)
    tlb = yaml.safe_load(text)["tlb"]
    # independent reference: numpy's weighted polyfit (weights sqrt(n) on the residuals = n on squares)
    handler = np.concatenate([r.handler_ns[r.func == "flush_tlb_func"] for r in results])
    pages = np.concatenate([r.pages[r.func == "flush_tlb_func"] for r in results])
    counts = [1, 4, 16]
    med = [np.median(handler[pages == p]) for p in counts]
    n = [np.sum(pages == p) for p in counts]
    slope = np.polyfit(counts, med, 1, w=np.sqrt(n))[0]
    assert tlb["invlpg_ns"] == pytest.approx(slope, abs=0.05)
    assert tlb["pages"]["values"] == [1, 4, 16, 1024]  # the full flushes stand above the ceiling


@pytest.mark.parametrize("pages", [4, 16, 64])
def test_a_one_page_fragment_predicts_other_page_counts(tmp_path: Path, pages: int) -> None:
    text, _ = build_fragment(_captures(1))
    frag = yaml.safe_load(text)
    assert frag["workload"]["call"] == "tlb_flush" and frag["tlb"]["invlpg_ns"] == INVLPG_COMPONENT_NS
    measured = np.quantile(_completion(pages), [0.5, 0.9])
    predicted = _predict(text, tmp_path, pages)
    ratios = np.array(predicted) / measured
    assert np.all(np.abs(ratios - 1) <= TOLERANCE), f"{pages} pages: p50/p90 ratios {ratios.round(3)}"


def test_the_unsplit_handler_fails_the_same_check(tmp_path: Path) -> None:
    """The check can fail: charging the whole 1-page handler per page (the generic fragment's
    reading, issue 10's 1.65x) misses the 16-page completion by more than the tolerance."""
    text, _ = build_fragment(_captures(1))
    frag = yaml.safe_load(text)
    per_page_whole = frag["tlb"]["handler_fixed_ns"]  # the whole handler as a per-page cost
    measured = np.quantile(_completion(16), [0.5, 0.9])
    predicted = _predict(text, tmp_path, 16, **{"tlb.handler_fixed_ns": 0, "tlb.invlpg_ns": per_page_whole})
    ratios = np.array(predicted) / measured
    assert np.all(ratios - 1 > TOLERANCE), ratios.round(3)


# Paced captures (docs/traces.md, "Paced captures"): every page count flushes on the same 400 us
# grid, so the target sees the same IPI spacing and only the pages differ. The delivery tail
# depends on that spacing (test below), which is why the unpaced captures above cannot check p99.
P50_TO_P99 = (0.5, 0.9, 0.99)


@pytest.mark.parametrize("pages", [4, 16, 64])
def test_a_paced_one_page_fragment_predicts_p50_to_p99(tmp_path: Path, pages: int) -> None:
    text, _ = build_fragment(_paced(1))
    assert yaml.safe_load(text)["tlb"]["invlpg_ns"] == INVLPG_COMPONENT_NS  # nothing from the others
    completion = _completion(pages, _paced(pages))
    # the check must be able to resolve the trace's p99: its sampling error well inside the band
    assert np.all(3 * _bootstrap_sd(completion, P50_TO_P99) < TOLERANCE)
    ratios = np.array(_predict(text, tmp_path, pages, P50_TO_P99)) / np.quantile(completion, P50_TO_P99)
    assert np.all(np.abs(ratios - 1) <= TOLERANCE), f"{pages} pages: p50/p90/p99 ratios {ratios.round(3)}"


def test_the_ipi_period_not_the_pages_moves_the_delivery_tail(tmp_path: Path) -> None:
    """Same pages (1), two IPI periods: the unpaced loop (~14 us between flushes) and the paced one
    (400 us), captured in the same interleaved rounds. The longer period's delivery p99 is higher by
    far more than its sampling error, and a fragment from the short-period captures misses the paced
    64-page completion p99 by more than the tolerance, where the paced 1-page fragment passes."""
    def delivery(rs: list) -> np.ndarray:
        return np.concatenate([r.delivery_ns[r.func == "flush_tlb_func"] for r in rs])

    short, paced = delivery(_paced(1, "u")), delivery(_paced(1))
    p99_short, p99_paced = np.quantile(short, 0.99), np.quantile(paced, 0.99)
    sd = np.hypot(_bootstrap_sd(short, (0.99,))[0] * p99_short, _bootstrap_sd(paced, (0.99,))[0] * p99_paced)
    assert p99_paced - p99_short > 4 * sd, (p99_short, p99_paced, sd)
    text, _ = build_fragment(_paced(1, "u"))
    measured = np.quantile(_completion(64, _paced(64)), 0.99)
    ratio = _predict(text, tmp_path, 64, (0.99,))[0] / measured
    assert ratio < 1 - TOLERANCE, ratio


@pytest.mark.parametrize("pages", PAGES)
def test_slow_deliveries_follow_long_gaps_at_every_page_count(pages: int) -> None:
    """The hypothesis test of docs/traces.md ("Delivery and IPI spacing") on the unpaced captures:
    a call that comes more than twice the median spacing after its target's previous one is slow
    (> 8 us) several times as often as the others; the gap, not the pages, carries the tail."""
    from mcsmp.trace.fragment import combine

    c = combine(_captures(pages))
    sel = (c.func == "flush_tlb_func") & ~np.isnan(c.since_previous)
    gap, slow = c.since_previous[sel], c.values["delivery"][sel] > 8e3
    long = gap > 2 * np.median(gap)
    p_long, p_short = slow[long].mean(), slow[~long].mean()
    # one-sided two-proportion z test at 4 standard errors under "no difference"
    pooled = slow.mean()
    se = np.sqrt(pooled * (1 - pooled) * (1 / long.sum() + 1 / (~long).sum()))
    assert p_long - p_short > 4 * se and p_long > 3 * p_short, (p_long, p_short, se)
