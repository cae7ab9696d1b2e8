"""The handler split of docs/model.md 9.29, end to end on this project's own captures.

tests/data/handler_split/ holds munmap_storm captures from the 2-vCPU KVM guest the project runs on
(benchmarks/workloads/munmap_storm.c, ``mcsmp trace record --buffer-kb 8192``): six interleaved
rounds of 1-, 4-, 16- and 64-page loops (``p<pages>_r<round>.trace.gz``), so every page count
saw the same mix of host conditions. 64 pages is above tlb_single_page_flush_ceiling: a full flush.

The prediction is a fragment imported from the 1-page captures alone (per-page cost from the
component figure, since one page count cannot separate it), run with the other page counts. It is
compared with each capture's queue→exit completion at p50 and p90, within ±15% (issue 10). Not
fitted: nothing in the fragment comes from the multi-page captures. The p99 is reported, not
asserted: its bootstrap standard deviation at these sample sizes (~1,700-2,500 pairs) is 12-14% of
its value (docs/traces.md, "Handler split").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.config import apply_override, build_params, load_raw
from mcsmp.sim import run_point
from mcsmp.trace.fragment import INVLPG_COMPONENT_NS, build_fragment
from mcsmp.trace.parse import parse_trace

DATA = Path(__file__).parent / "data" / "handler_split"
PAGES = (1, 4, 16, 64)
TOLERANCE = 0.15  # issue 10's criterion


def _captures(pages: int) -> list:
    files = sorted(DATA.glob(f"p{pages}_r*.trace.gz"))
    assert len(files) == 6
    return [parse_trace(f) for f in files]


def _completion(pages: int) -> np.ndarray:
    return np.concatenate([r.completion_ns[r.func == "flush_tlb_func"] for r in _captures(pages)])


def _predict(fragment: str, tmp_path: Path, pages: int, **more: object) -> list[float]:
    path = tmp_path / "fragment.yaml"
    path.write_text(fragment)
    raw = load_raw(path)
    for key, value in {"name": "split", "samples": 100_000, "tlb.pages": pages, **more}.items():
        raw = apply_override(raw, key, value, origin="test")
    h = run_point(build_params(raw), threads=2).histogram("remote_wait_ns")
    return [h.quantile(q).value for q in (0.5, 0.9)]


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
