"""Sweep definitions, point ids, the many-point runner, and shards merged into one exact result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcsmp.cli import main
from mcsmp.config import expand, load_raw, parse_set
from mcsmp.errors import ParamError, UserError
from mcsmp.io.histfile import hist_path, load_hist
from mcsmp.sim import run_point
from mcsmp.sim import scheduler as runner
from mcsmp.sim.scheduler import Job, parse_shard, run_jobs, shard_chunks

BASE = {
    "name": "tiny",
    "seed": 11,
    "samples": 30000,
    "policies": ["preempt_off", "preemptible_wait"],
    "machine": {"cpus": 4, "sockets": 1, "cpus_per_llc": 4, "smt": 1},
    "kernel": {"preemption": "full"},
    "workload": {"caller": {"preemptible": 0.5, "spinlock": 0.0, "preempt_disabled": 0.5}},
}


def write(tmp_path: Path, sweep: dict | None = None, name: str = "p.yaml", **top: object) -> Path:
    data = {**BASE, **top}
    if sweep is not None:
        data["sweep"] = sweep
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# Expansion and overrides


def test_grid_times_zip_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "grid": {"machine.cpus": [4, 8], "cache.placement": ["percpu", "stack"]},
        "zip": {"workload.rate_hz": [100, 50], "costs.entry_ns": [100, 200]},
    })  # fmt: skip
    points = expand(load_raw(path))
    assert len(points) == 2 * 2 * 2
    got = [dict(p.overrides) for p in points]
    # grid keys in file order, the last fastest; the zip is one more, innermost axis
    expected = [
        {"machine.cpus": c, "cache.placement": pl, "workload.rate_hz": r, "costs.entry_ns": e}
        for c in (4, 8) for pl in ("percpu", "stack") for r, e in ((100, 100), (50, 200))
    ]  # fmt: skip
    assert got == expected
    assert [p.index for p in points] == list(range(8))
    for p, want in zip(points, expected, strict=True):
        assert p.params.machine.cpus == want["machine.cpus"]
        assert p.params.cache.placement == want["cache.placement"]
        assert p.params.workload.rate_hz == (float(want["workload.rate_hz"]),) * want["machine.cpus"]
        assert p.params.resolved["sweep"] == {"grid": {}, "zip": {}}  # the sweep is not part of a point


def test_set_overrides_hydra_style(tmp_path: Path) -> None:
    path = write(tmp_path, {"grid": {"cache.placement": ["percpu", "stack", "stack_aligned"]}})
    # a single value replaces the swept key everywhere
    points = expand(load_raw(path), ["cache.placement=stack"])
    assert [p.params.cache.placement for p in points] == ["stack"]
    # k=v1,v2 adds a grid axis (after the file's axes)
    points = expand(load_raw(path), ["machine.cpus=4,8"])
    assert [(p.params.cache.placement, p.params.machine.cpus) for p in points] == [
        (pl, c) for pl in ("percpu", "stack", "stack_aligned") for c in (4, 8)
    ]
    # commas inside brackets do not split: one list value, then two list values
    points = expand(load_raw(path), ["cache.placement=percpu", "workload.rate_hz=[100,10,10,100]"])
    assert [p.params.workload.rate_hz for p in points] == [(100.0, 10.0, 10.0, 100.0)]
    points = expand(load_raw(path), ["cache.placement=percpu", "workload.rate_hz=[1,2,3,4],[5,6,7,8]"])
    assert [p.params.workload.rate_hz for p in points] == [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    assert parse_set("a.b={x: 1, y: [2, 3]},7") == ("a.b", [{"x": 1, "y": [2, 3]}, 7])
    assert parse_set("k='a,b',c") == ("k", ["a,b", "c"])


def test_bad_override_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"grid": {"machine.cpus": [4, 8]}})
    with pytest.raises(UserError, match="machine.cpuz"):
        expand(load_raw(path), ["machine.cpuz=4"])
    with pytest.raises(UserError, match="key=value"):
        expand(load_raw(path), ["novalue"])


def test_point_ids_are_stable_across_runs_and_key_order(tmp_path: Path) -> None:
    sweep = {"grid": {"machine.cpus": [4, 8], "cache.placement": ["percpu", "stack"]}}
    a = expand(load_raw(write(tmp_path, sweep, "a.yaml")))
    b = expand(load_raw(write(tmp_path, sweep, "b.yaml")))
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.id for p in a}) == len(a)
    # the same parameters with every mapping's keys in reverse order
    data = {**BASE, "sweep": sweep}

    def rev(v: object) -> object:
        return {k: rev(x) for k, x in reversed(list(v.items()))} if isinstance(v, dict) else v

    path = tmp_path / "rev.yaml"
    path.write_text(yaml.safe_dump(rev(data), sort_keys=False))
    c = expand(load_raw(path))
    assert {p.id for p in c} == {p.id for p in a}
    # the id is the canonical hash of the model parameters (independent recomputation)
    for p in a:
        model = {k: v for k, v in p.params.resolved.items() if k not in ("name", "seed", "samples", "report", "sweep")}
        blob = json.dumps(model, sort_keys=True, separators=(",", ":"), default=str)
        assert p.id == hashlib.sha256(blob.encode()).hexdigest()[:10]


def test_points_with_the_same_id_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"grid": {"seed": [1, 2]}})
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "same point id" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Shards


def test_parse_shard() -> None:
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "-1/4", "1/0", "x", "1/2/3"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40])
def test_shard_chunks_partition(n: int) -> None:
    counts = [1, 16, 17, 40, 3]
    shards = [shard_chunks(counts, (i, n)) for i in range(n)]
    for p, c in enumerate(counts):
        got = sorted(x for s in shards for x in s[p])
        assert got == list(range(c))  # every chunk exactly once
    # chunk sets of SHARD_SET_CHUNKS consecutive chunks, numbered over the points in order
    sets = [(p, start) for p, c in enumerate(counts) for start in range(0, c, runner.SHARD_SET_CHUNKS)]
    for number, (p, start) in enumerate(sets):
        assert start in shards[number % n][p]
    assert shard_chunks(counts, None) == [list(range(c)) for c in counts]


def _assert_same_results(a: Path, b: Path, ids: list[str]) -> None:
    for pid in ids:
        ra, rb = load_hist(hist_path(a, pid)), load_hist(hist_path(b, pid))
        assert ra.complete and rb.complete
        assert np.array_equal(ra.counts, rb.counts)
        assert sorted(ra.chunk_sums) == sorted(rb.chunk_sums)
        for c in ra.chunk_sums:
            assert np.array_equal(ra.chunk_sums[c], rb.chunk_sums[c])
        assert ra.chunk_fanouts == rb.chunk_fanouts
        assert ra.wait_tail_mean == rb.wait_tail_mean


def test_shards_merged_equal_a_single_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # One chunk per set, so the shards split points too (4 chunks per point, re-entry pilot on).
    monkeypatch.setattr(runner, "SHARD_SET_CHUNKS", 1)
    path = write(tmp_path, {"grid": {"cache.placement": ["percpu", "stack"]}}, samples=200_000,
                 workload={"rate_hz": [100, 10, 10, 100], "caller": BASE["workload"]["caller"]})  # fmt: skip
    points = expand(load_raw(path))
    ids = [p.id for p in points]
    assert all(runner.Job(p.id, p.params, [0]).model.needs_reentry for p in points)
    single = tmp_path / "single"
    assert main(["sweep", str(path), "-o", str(single), "--threads", "2", "--no-plots"]) == 0
    shards = [tmp_path / f"shard-{i}" for i in range(3)]
    for i, d in enumerate(shards):
        assert main(["sweep", str(path), "-o", str(d), "--shard", f"{i}/3", "--threads", "1"]) == 0
        assert not (d / "summary.csv").exists()  # a shard holds parts of points: no tables
    # each shard holds exactly its chunks
    for i, d in enumerate(shards):
        for p, mine in zip(points, shard_chunks([4] * len(points), (i, 3)), strict=True):
            if mine:
                assert sorted(load_hist(hist_path(d, p.id)).chunk_fanouts) == mine
            else:
                assert not hist_path(d, p.id).exists()
    capsys.readouterr()
    # a missing shard, or one given twice, is an error
    assert main(["merge", str(shards[0]), str(shards[1]), "-o", str(tmp_path / "bad"), "--no-plots"]) == 2
    assert "all shards" in capsys.readouterr().err
    assert main(["merge", *map(str, shards), str(shards[0]), "-o", str(tmp_path / "bad"), "--no-plots"]) == 2
    assert "twice" in capsys.readouterr().err
    merged = tmp_path / "merged"
    assert main(["merge", *map(str, shards), "-o", str(merged), "--no-plots"]) == 0
    _assert_same_results(single, merged, ids)
    for name in ("summary.csv", "per_cpu.csv", "mask.csv"):
        assert (single / name).read_bytes() == (merged / name).read_bytes()
    # the merged folder is a complete sweep folder: resuming the plain sweep there does nothing
    capsys.readouterr()
    assert main(["sweep", str(path), "-o", str(merged), "--resume", "--no-plots"]) == 0
    assert "0 simulated, 2 already complete" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The many-point runner against run_point


def test_runner_equals_run_point(tmp_path: Path) -> None:
    # 17 chunks: more than the 16-chunk re-entry pilot; two points in one pool.
    path = write(tmp_path, {"grid": {"cache.placement": ["percpu", "stack"]}}, samples=16 * 65536 + 1000)
    points = expand(load_raw(path))
    got: dict[str, object] = {}
    run_jobs([Job(p.id, p.params, list(range(17))) for p in points], lambda j, r: got.__setitem__(j.key, r),
             threads=2, progress=False)  # fmt: skip
    for p in points:
        ref, r = run_point(p.params, threads=1), got[p.id]
        assert ref.model.needs_reentry
        assert np.array_equal(ref.counts, r.counts)
        assert ref.wait_tail_mean == r.wait_tail_mean
        assert all(np.array_equal(ref.chunk_sums[c], r.chunk_sums[c]) for c in ref.chunk_sums)
        assert ref.chunk_fanouts == r.chunk_fanouts


def test_set_of_a_mapping_replaces_the_sweep_axes_below_it(tmp_path: Path) -> None:
    """--set workload.caller={...} must not be undone by a sweep over workload.caller.* (the
    README's PREEMPT_RT example); a --set inside a swept mapping is refused."""
    path = tmp_path / "z.yaml"
    data = {**BASE, "sweep": {"zip": {"workload.caller.preemptible": [0.5, 1.0], "workload.caller.spinlock": [0.5, 0.0],
                                      "workload.caller.preempt_disabled": [0.0, 0.0]}}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    raw = load_raw(path)
    assert len(expand(raw)) == 2
    (pt,) = expand(raw, ["workload.caller={preemptible: 1, spinlock: 0, preempt_disabled: 0}"])
    assert pt.params.workload.caller.preemptible == 1.0 and pt.overrides == ()
    data["sweep"] = {"grid": {"workload.caller": [{"preemptible": 1, "spinlock": 0, "preempt_disabled": 0}]}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ParamError, match="inside the sweep axis workload.caller"):
        expand(load_raw(path), ["workload.caller.spinlock=0"])
