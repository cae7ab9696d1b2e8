"""Sweep folders of the whole-machine simulation (``mcsmp system -o DIR``, docs/system.md §7).

The unit of work is one (point, policy, replication): one call of the system kernel on its own
stream (:mod:`mcsmp.system.run`). Units run through the one scheduler
(:class:`mcsmp.sim.scheduler.UnitJob`: threads, Dask, lost-worker handling), a shard takes every
``N``-th unit numbered over the points in order, and the folder keeps the guarantees of
:mod:`.folder` (its lock, atomic writes, ``meta.json`` run history with killed runs found,
``--resume``, ``--force``, one-line errors). Layout::

    meta.json              provenance, status and run history; "kind": "system"
    reps/<point_id>.npz    every finished unit of a point (the source of truth; rewritten
                           atomically as each unit returns, so a kill loses only units in flight)
    summary.csv            one row per (point, policy): the figures of `mcsmp system --json`, each
                           interval as value, _low, _high columns
    per_cpu.csv            per (point, policy, cpu): operations/s with its 95% t-interval
    report.txt             the text that `mcsmp system` prints
    hgrm/<point_id>/<metric>.<policy>.hgrm   HdrHistogram percentile distributions
    plots/system.png       throughput and race rate (or call_ns) against the first numeric swept key

Everything but ``meta.json`` and ``reps/`` is derived (:func:`render_system_dir`), so ``mcsmp
merge`` and ``mcsmp report`` work on these folders too.
"""

from __future__ import annotations

import math
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .._util import sha256_json
from ..config import Point, build_params, raw_from_dict
from ..errors import UserError
from ..io.atomic import (
    FolderLock,
    atomic_open,
    check_output_dir,
    fsync_dir,
    remove_stale_temporaries,
    write_atomic,
)
from ..io.hgrm import write_hgrm
from ..io.meta import environment, histogram_settings, load_meta, write_meta
from ..io.tables import csv_text
from ..kernels import codes as K
from ..sim import STREAM_SCHEME
from ..sim.scheduler import parse_shard, run_jobs, shard_chunks
from ..system import compile_system
from ..system.report import figure, policy_row, text_table
from ..system.run import Replication, SystemUnit, system_job, system_result, system_units
from .folder import (
    RunRecord,
    _check_folder,
    _now,
    _point_entries,
    _reserve_bytes,
    _write_meta_last,
    default_outdir,
    run_history,
    write_merged,
)
from .render import HGRM_DIR, PLOTS_DIR, _remove_stale

__all__ = [
    "REPS_DIR", "SYSTEM_KIND", "SystemRender", "SystemSweepRun", "is_system_folder", "load_reps", "merge_system",
    "render_system_dir", "reps_path", "save_reps", "system_sweep",
]  # fmt: skip

SYSTEM_KIND = "system"
REPS_DIR = "reps"
REPS_FORMAT = 1
UNIT_SET = 1  # shards deal single units: a replication is seconds of work, not milliseconds


def reps_path(outdir: str | Path, point_id: str) -> Path:
    return Path(outdir) / REPS_DIR / f"{point_id}.npz"


def is_system_folder(outdir: str | Path) -> bool:
    try:
        return load_meta(outdir).get("kind") == SYSTEM_KIND
    except UserError:
        return False


# --------------------------------------------------------------------------------------------
# Unit files


def save_reps(path: str | Path, params: Any, reps: Mapping[SystemUnit, Replication], base_dir: str | Path | None) -> None:
    """Write the finished units ``reps`` of one point to ``path`` atomically (``.npz``)."""
    units = sorted(reps, key=lambda u: (params.policies.index(u[0]), u[1]))
    cpus = params.machine.cpus
    layout_buckets = next(iter(reps.values())).counts.shape[1] if reps else 0
    arrays = {
        "format": np.int64(REPS_FORMAT),
        "unit_policy": np.asarray([u[0] for u in units], dtype=str),
        "unit_rep": np.asarray([u[1] for u in units], dtype=np.int64),
        "counts": np.stack([reps[u].counts for u in units]) if units else np.zeros((0, K.N_SYSTEM_HISTS, layout_buckets), np.int64),
        "sums": np.stack([reps[u].sums for u in units]) if units else np.zeros((0, K.N_SYSTEM_HISTS)),
        "counters": np.stack([reps[u].counters for u in units]) if units else np.zeros((0, K.N_SYSTEM_COUNTERS), np.int64),
        "ops": np.stack([reps[u].ops for u in units]) if units else np.zeros((0, cpus), np.int64),
        "seconds": np.asarray([reps[u].seconds for u in units], dtype=np.float64),
        "hist_names": np.asarray(K.SYSTEM_HISTS),
        "counter_names": np.asarray(K.SYSTEM_COUNTERS),
        "params_yaml": np.str_(yaml.safe_dump(params.resolved, sort_keys=False, allow_unicode=True)),
        "params_hash": np.str_(params.params_hash),
        "model_hash": np.str_(params.model_hash),
        "base_dir": np.str_(str(base_dir) if base_dir else ""),
    }  # fmt: skip
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_reps(path: str | Path) -> tuple[Any, dict[SystemUnit, Replication], str | None]:
    """``(params, units, base_dir)`` of a unit file; a damaged or foreign file is a UserError."""
    path = Path(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            if int(z["format"]) != REPS_FORMAT:
                raise UserError(f"{path}: unit file format {int(z['format'])}, this mcsmp reads {REPS_FORMAT}")
            if tuple(z["hist_names"]) != K.SYSTEM_HISTS or tuple(z["counter_names"]) != K.SYSTEM_COUNTERS:
                raise UserError(f"{path}: written by an mcsmp with other system histograms or counters; "
                                "use the mcsmp version named in meta.json, or simulate again")  # fmt: skip
            data = yaml.load(str(z["params_yaml"]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            stored_model_hash, base_dir = str(z["model_hash"]), str(z["base_dir"]) or None
            pols, reps_ = [str(p) for p in z["unit_policy"]], [int(r) for r in z["unit_rep"]]
            counts, sums, counters = np.array(z["counts"]), np.array(z["sums"]), np.array(z["counters"])
            ops, seconds = np.array(z["ops"]), np.array(z["seconds"])
    except KeyError as exc:
        raise UserError(f"{path}: not an mcsmp system unit file (no {exc.args[0]!r})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read unit file: {exc}") from None
    params = build_params(raw_from_dict(data, f"{path}:params_yaml", base_dir))
    if params.model_hash != stored_model_hash:
        raise UserError(f"{path}: its parameters no longer give the model hash it was simulated with "
                        f"({stored_model_hash[:10]} -> {params.model_hash[:10]}): the defaults changed since; "
                        "use the mcsmp version named in meta.json, or simulate again")  # fmt: skip
    units = {
        (p, r): Replication(counts[i], sums[i], counters[i], ops[i], np.zeros((0, K.N_SYSTEM_SAMPLE_COLS)), np.zeros(0),
                            float(seconds[i]))
        for i, (p, r) in enumerate(zip(pols, reps_, strict=True))
    }  # fmt: skip
    return params, units, base_dir


def _stored_units(path: Path, params_hash: str) -> dict[SystemUnit, Replication]:
    """The units already in ``path`` for these exact parameters (for --resume); none if it is
    missing, damaged or of other parameters."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            if str(z["params_hash"]) != params_hash:
                return {}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return {}
    try:
        return load_reps(path)[1]
    except UserError:
        return {}


# --------------------------------------------------------------------------------------------
# Identity of a folder


def _hashes(entries: list[dict[str, Any]], shard: tuple[int, int] | None) -> tuple[str, str]:
    """(points hash, sweep hash): the points and stream scheme; plus the shard for the folder."""
    points = sha256_json({"kind": SYSTEM_KIND, "points": [[e["index"], e["id"], e["params_hash"]] for e in entries],
                          "streams": STREAM_SCHEME})  # fmt: skip
    return points, sha256_json({"points": points, "shard": list(shard) if shard else None, "set": UNIT_SET})


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass
class SystemRender:
    files: list[Path]
    rows: list[dict[str, Any]]
    keys: list[str]
    points: int


def _flat(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    header: list[str] = []
    body = []
    for r in rows:
        line: dict[str, Any] = {}
        for k, v in r.items():
            if k in ("ops_per_s_per_cpu", "_point"):
                continue
            if isinstance(v, (tuple, list)) and k not in keys:  # an interval (a swept list value stays whole)
                line.update({k: v[0], f"{k}_low": v[1], f"{k}_high": v[2]})
            else:
                line[k] = v
        if not header:
            header = ["point", "id", *keys, *(k for k in line if k not in keys)]
        body.append([r["_point"][0], r["_point"][1], *(line.get(k, "") for k in header[2:])])
    return header, body


def _cell(v: Any) -> Any:
    return ("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else ("" if v != v else v)


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def render_system_dir(outdir: str | Path, *, plots: bool = True, hgrm: bool = True) -> SystemRender:
    """Re-create every table, ``.hgrm`` file and figure of a system folder from ``reps/*.npz``."""
    outdir = Path(outdir)
    meta = load_meta(outdir)
    entries = sorted(meta["points"], key=lambda e: int(e["index"]))
    keys = list(dict.fromkeys(k for e in entries for k, _ in e.get("overrides", [])))
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    for e in entries:
        path = reps_path(outdir, e["id"])
        if not path.exists():
            raise UserError(f"{path}: point [{e['index']}] has not been simulated (status {meta.get('status')!r}); "
                            "finish it with `mcsmp system ... --resume`")  # fmt: skip
        params, reps, _ = load_reps(path)
        try:
            result = system_result(params, reps)
        except ValueError as exc:
            raise UserError(f"{path}: point [{e['index']}] is incomplete ({exc}); finish it with "
                            "`mcsmp system ... --resume` or merge the other shards with `mcsmp merge`") from None  # fmt: skip
        label = dict((k, v) for k, v in e.get("overrides", []))
        for pol in params.policies:
            rows.append({"_point": (int(e["index"]), e["id"]), **policy_row(result, pol, label)})
        if hgrm:
            folder = outdir / HGRM_DIR / e["id"]
            for pol, run in result.runs.items():
                for metric in K.SYSTEM_HISTS:
                    hist = run.histogram(metric)
                    if hist.n:
                        files.append(folder / f"{metric}.{pol}.hgrm")
                        write_hgrm(files[-1], hist, sync_dir=False)
            fsync_dir(folder)
    header, body = _flat(rows, keys)
    write_atomic(outdir / "summary.csv", csv_text(header, [[_cell(v) for v in line] for line in body]))
    per_cpu = [[r["_point"][0], r["_point"][1], *(r[k] for k in keys), r["policy"], cpu, *map(_cell, t)]
               for r in rows for cpu, t in enumerate(r["ops_per_s_per_cpu"])]  # fmt: skip
    write_atomic(outdir / "per_cpu.csv", csv_text(["point", "id", *keys, "policy", "cpu", "ops_per_s", "ops_per_s_low",
                                                   "ops_per_s_high"], per_cpu))  # fmt: skip
    write_atomic(outdir / "report.txt", text_table(rows, keys) + "\n")
    files += [outdir / "summary.csv", outdir / "per_cpu.csv", outdir / "report.txt"]
    x_key = next((k for k in keys if all(_numeric(r[k]) for r in rows)), None)
    if plots and x_key is not None:
        files += figure(rows, x_key, outdir / PLOTS_DIR / "system.png")
    _remove_stale(outdir, files, hgrm=hgrm, plots=plots)
    for r in rows:
        del r["_point"]
    return SystemRender(files, rows, keys, len(entries))


# --------------------------------------------------------------------------------------------
# Simulating into a folder


@dataclass
class SystemSweepRun:
    """What :func:`system_sweep` did; ``rendered`` is None for a shard."""

    outdir: Path
    points: int
    units: int
    simulated: int
    resumed: int
    wall_s: float
    rendered: SystemRender | None = None
    run: dict[str, Any] = field(default_factory=dict)


def system_sweep(
    points: Sequence[Point],
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    dask: str | Any | None = None,
    shard: str | tuple[int, int] | None = None,
    threads: int | None = None,
    plots: bool = True,
    progress: bool | None = None,
    params_file: str | Path | None = None,
    sets: Sequence[str] = (),
    options: dict[str, Any] | None = None,
) -> SystemSweepRun:
    """Simulate every unit of ``points`` (this shard's) into a folder and render it (not a shard's).

    ``out`` defaults to ``results/<name>/`` (``results/<name>/shard-I/``). ``resume`` keeps the
    units already in the folder's unit files for the same parameters and simulates the rest.
    """
    if not points:
        raise UserError("no sweep points to simulate")
    entries = _point_entries(points)
    models = [compile_system(pt.params) for pt in points]  # refuse what is not modelled before any work
    shard_t = parse_shard(shard) if isinstance(shard, str) else shard
    outdir = Path(out) if out else default_outdir(points[0].params.name, shard_t)
    check_output_dir(outdir)
    with FolderLock(outdir) as lock:
        return _locked(points, entries, models, shard_t, outdir, lock, resume=resume, force=force, dask=dask,
                       threads=threads, plots=plots, progress=progress, params_file=params_file, sets=sets,
                       options=options)  # fmt: skip


def _locked(points: Sequence[Point], entries: list[dict[str, Any]], models: list[Any], shard_t: tuple[int, int] | None,
            outdir: Path, lock: FolderLock, *, resume: bool, force: bool, dask: str | Any | None, threads: int | None,
            plots: bool, progress: bool | None, params_file: str | Path | None, sets: Sequence[str],
            options: dict[str, Any] | None) -> SystemSweepRun:  # fmt: skip
    points_hash, expected = _hashes(entries, shard_t)
    old = _check_folder(outdir, expected, force, "system sweep")
    if old is None and any((outdir / REPS_DIR).glob("*.npz")) and not force:
        raise UserError(f"{outdir}: has {REPS_DIR}/*.npz but no meta.json; choose another -o DIR or pass --force")
    remove_stale_temporaries(outdir, recursive=True)  # a killed run's leftovers (we hold the lock)
    if force:  # overwriting another sweep: its points' files must not linger
        ids = {e["id"] for e in entries}
        for path in (outdir / REPS_DIR).glob("*.npz"):
            if path.stem not in ids:
                path.unlink()
    base_dir = Path(params_file).resolve().parent if params_file else None
    all_units = [system_units(pt.params) for pt in points]
    assigned = shard_chunks([len(u) for u in all_units], shard_t, UNIT_SET)
    jobs, held, resumed, stats = [], {}, 0, {"units": 0, "events": 0}
    for pt, entry, model, units, mine in zip(points, entries, models, all_units, assigned, strict=True):
        wanted = [units[i] for i in mine]
        entry["units"] = len(wanted)
        path = reps_path(outdir, pt.id)
        have = {u: r for u, r in _stored_units(path, pt.params.params_hash).items() if u in set(wanted)} if resume else {}
        resumed += len(have)
        held[pt.id] = have
        todo = [u for u in wanted if u not in have]
        if not todo:
            continue

        def on_unit(unit: SystemUnit, rep: Replication, pid: str = pt.id, params: Any = pt.params, path: Path = path) -> None:
            held[pid][unit] = rep
            save_reps(path, params, held[pid], base_dir)
            stats["units"] += 1
            stats["events"] += int(rep.counters[K.SC_EVENTS])

        jobs.append(system_job(pt.id, pt.params, todo, model=model, label=f"[{pt.index}] {pt.id} ({pt.label()})",
                               on_unit=on_unit))  # fmt: skip

    started_wall, started = time.perf_counter(), _now()
    history = run_history(old, expected)
    meta: dict[str, Any] = {
        **environment(), "kind": SYSTEM_KIND,
        "params_file": str(params_file) if params_file else None, "sets": list(sets),
        "options": {**(options or {}), "output": str(outdir)},
        "name": points[0].params.name, "seed": points[0].params.seed,
        "sweep_hash": expected, "points_hash": points_hash,
        "shard": {"index": shard_t[0], "count": shard_t[1], "set_units": UNIT_SET} if shard_t else None,
        "histogram": histogram_settings(points[0].params.report.precision_bits),
        "status": "running", "started": started, "finished": None, "runs": history, "points": entries,
    }  # fmt: skip
    def figures(wall: float) -> dict[str, Any]:
        return {"units_simulated": stats["units"], "units_resumed": resumed, "events": stats["events"],
                "events_per_s": stats["events"] / wall if wall > 0 else None}  # fmt: skip

    def interrupted() -> str:
        return f"{resumed + stats['units']} of {sum(e['units'] for e in entries)} unit(s) are saved in {outdir}/{REPS_DIR}"

    rec = RunRecord(outdir, meta, history, lock, started_wall, dask=dask, threads=threads, figures=figures)

    with rec.recorded(interrupted):
        rec.record("running", final=False)
        run_jobs(jobs, lambda job, reps: None, threads=threads, dask=dask, progress=progress)
        if not shard_t:
            rec.record("rendering", final=False)
    n_units = sum(e["units"] for e in entries)
    outcome = SystemSweepRun(outdir, len(points), n_units, stats["units"], resumed, 0.0)
    with rec.recorded(interrupted):
        if not shard_t:
            outcome.rendered = render_system_dir(outdir, plots=plots)
        outcome.run = rec.record("complete")
    outcome.wall_s = outcome.run["wall_s"]
    return outcome


# --------------------------------------------------------------------------------------------
# Merging shards


def merge_system(dirs: Sequence[str | Path], out: str | Path, *, force: bool = False, plots: bool = True) -> SystemRender:
    """Combine the folders of ``--shard`` runs of one system sweep into ``out`` exactly, and render it."""
    metas = [(Path(d), load_meta(d)) for d in dirs]
    first_dir, first = metas[0]
    for d, m in metas:
        if m.get("kind") != SYSTEM_KIND:
            raise UserError(f"{d}: not a folder of `mcsmp system`; merge it with the folders of its own sweep")
        if m.get("points_hash") != first.get("points_hash"):
            raise UserError(f"{d}: results of different parameters than {first_dir} (points_hash differs); "
                            "only shards of one sweep can be merged")  # fmt: skip
    entries = sorted(first["points"], key=lambda e: int(e["index"]))
    outdir = Path(out)
    _, expected = _hashes(entries, None)
    _check_folder(outdir, expected, force, "merge")
    merged: dict[str, tuple[Any, dict[SystemUnit, Replication], str | None]] = {}
    for e in entries:
        params, units, base = None, {}, None
        for d, _ in metas:
            path = reps_path(d, e["id"])
            if not path.exists():
                continue
            p, part, b = load_reps(path)
            if p.params_hash != e["params_hash"]:
                raise UserError(f"{path}: not the point [{e['index']}] of {first_dir}/meta.json")
            twice = set(part) & set(units)
            if twice:
                raise UserError(f"{path}: unit {sorted(twice)[0]} is also in another folder (the same shard given twice?)")
            params, base = p, base or b
            units.update(part)
        want = len(system_units(params)) if params is not None else 1
        if params is None or len(units) != want:
            raise UserError(f"point [{e['index']}] {e['id']}: {len(units)} of its units in the given folders; "
                            "are all shards finished and given?")  # fmt: skip
        merged[e["id"]] = (params, units, base)
    check_output_dir(outdir)
    with FolderLock(outdir) as lock:
        _check_folder(outdir, expected, force, "merge")
        remove_stale_temporaries(outdir, recursive=True)
        meta = {
            **environment(), "kind": SYSTEM_KIND,
            "params_file": first.get("params_file"), "sets": first.get("sets"), "name": first.get("name"),
            "seed": first.get("seed"), "sweep_hash": expected, "points_hash": first.get("points_hash"), "shard": None,
            "histogram": first.get("histogram"), "status": "merging", "started": _now(), "finished": None,
            "merged_from": [{"dir": str(d), "shard": m.get("shard"), "runs": m.get("runs"), "cpu": m.get("cpu"),
                             "version": m.get("version")} for d, m in metas],
            "points": [{**e, "units": len(merged[e["id"]][1])} for e in entries],
        }  # fmt: skip

        def save() -> None:
            for e in entries:
                params, units, base = merged[e["id"]]
                save_reps(reps_path(outdir, e["id"]), params, units, base)

        rendered = write_merged(outdir, meta, lock, save, lambda: render_system_dir(outdir, plots=plots))
        return rendered


def report_system(outdir: str | Path, *, plots: bool = True) -> SystemRender:
    """Re-render a system folder from its unit files (``mcsmp report DIR``)."""
    outdir = Path(outdir)
    meta = load_meta(outdir)
    if meta.get("shard"):
        raise UserError(f"{outdir}: a shard holds only some units of each point; `mcsmp merge` the shards first")
    with FolderLock(outdir) as lock:
        remove_stale_temporaries(outdir, recursive=True)
        lock.reserve(_reserve_bytes(meta))
        try:
            rendered = render_system_dir(outdir, plots=plots)
        except BaseException as exc:
            meta["rendered"] = {"at": _now(), "status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                                "error": str(exc)}  # fmt: skip
            if meta.get("status") == "complete":
                meta["status"] = "failed"
            _write_meta_last(outdir, meta, lock)
            raise
        meta["rendered"] = {"at": _now(), "status": "complete"}
        meta["status"] = "complete"
        write_meta(outdir, meta)
        return rendered
