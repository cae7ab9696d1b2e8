"""Sweep folders: simulate many points into one, merge shards' folders, re-render a folder.

:func:`sweep` simulates every point (grid × zip × ``--set``, :func:`mcsmp.config.expand`) into an
output folder (default ``results/<name>/``), writing each point's histograms as soon as the point
completes; :func:`merge` adds up the folders of ``--shard`` runs exactly; :func:`report`
re-renders every table and figure from the histograms without simulating (docs/sweeps.md).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .._util import sha256_json
from ..config import Point
from ..errors import UserError
from ..io.atomic import FolderLock, check_output_dir, remove_stale_temporaries
from ..io.histfile import HIST_DIR, hist_info, hist_path, load_hist, save_hist
from ..io.meta import META_FILE, environment, histogram_settings, load_meta, meta_bytes, write_meta
from ..metrics.precision import precision_summary
from ..sim import (
    CHUNK_FANOUTS,
    PILOT_CHUNKS,
    STREAM_SCHEME,
    Job,
    PointResult,
    chunk_sizes,
    default_threads,
    run_jobs,
)
from ..sim.scheduler import SHARD_SET_CHUNKS, parse_shard, shard_chunks
from .render import RenderReport, render_dir

__all__ = ["SweepRun", "merge", "points_hash", "report", "sweep", "sweep_hash"]

R = TypeVar("R")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def points_hash(entries: list[dict[str, Any]]) -> str:
    """Identity of a sweep's points: their ids and full parameter hashes, in order."""
    ids = [[e["index"], e["id"], e["params_hash"]] for e in entries]
    return sha256_json({"points": ids, "chunk": CHUNK_FANOUTS, "pilot": PILOT_CHUNKS, "streams": STREAM_SCHEME})


def sweep_hash(entries: list[dict[str, Any]], shard: tuple[int, int] | None) -> str:
    """Identity of what an output folder holds: the points and, for a shard, which one."""
    return sha256_json({"points": points_hash(entries), "shard": list(shard) if shard else None, "set": SHARD_SET_CHUNKS})


def _point_entries(points: Sequence[Point]) -> list[dict[str, Any]]:
    seen: dict[str, Point] = {}
    entries = []
    for pt in points:
        if pt.id in seen:
            first = seen[pt.id]
            raise UserError(
                f"sweep points [{first.index}] and [{pt.index}] have the same point id {pt.id}: they differ only in "
                "keys that do not change the simulated model (name, seed, samples, report.*), so their histograms "
                "would share one file; sweep those in separate output folders (-o), or re-render other report "
                "settings with `mcsmp report DIR --quantiles ... --window-s ...`"
            )
        seen[pt.id] = pt
        entries.append({
            "index": pt.index, "id": pt.id, "label": pt.label(),
            "overrides": [[k, v] for k, v in pt.overrides],
            "model_hash": pt.params.model_hash, "params_hash": pt.params.params_hash,
            "seed": pt.params.seed, "samples": pt.params.samples,
            "resolved": pt.params.resolved,
        })  # fmt: skip
    return entries


def default_outdir(name: str, shard: tuple[int, int] | None = None) -> Path:
    """``results/<name>/`` (``results/<name>/shard-I/``); a name that would leave ``results/`` is refused."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name != name.strip():
        raise UserError(
            f"name: {name!r} cannot name a folder under results/ (no '/', '..', NUL or surrounding blanks); "
            "choose another name, or pass -o DIR"
        )
    out = Path("results") / name
    return out / f"shard-{shard[0]}" if shard else out


KILLED_NOTE = "found still running by a later run: the process was killed (SIGKILL, OOM, power loss) or died"
_RUNNING = ("running", "rendering", "merging")


def run_history(old: dict[str, Any] | None, expected: str) -> list[dict[str, Any]]:
    """The folder's earlier runs; runs still marked running (their process is gone: we hold the
    folder's lock) are recorded as ``killed``."""
    if not old or old.get("sweep_hash") != expected:
        return []
    runs = [dict(r) for r in old.get("runs", []) if isinstance(r, dict)]
    found = False
    for r in runs:
        if r.get("status") in _RUNNING:
            r.update(status="killed", killed_while=r.get("status"), note=KILLED_NOTE)
            found = True
    if old.get("status") in _RUNNING and not found:  # written before runs were recorded at start
        runs.append({"started": old.get("started"), "status": "killed", "killed_while": old.get("status"),
                     "note": KILLED_NOTE})  # fmt: skip
    return runs


def _check_folder(outdir: Path, expected: str, force: bool, what: str) -> dict[str, Any] | None:
    """Refuse to mix results of different parameters in one folder (unless ``force``)."""
    meta_path = outdir / META_FILE
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("sweep_hash") != expected and not force:
            raise UserError(
                f"{outdir}: holds results of different parameters ({meta_path} sweep_hash "
                f"{str(old.get('sweep_hash'))[:12]}, this {what} {expected[:12]}); choose another -o DIR, "
                "or pass --force to overwrite"
            )
        return old if isinstance(old, dict) else None
    if any((outdir / HIST_DIR).glob("*.npz")) and not force:
        raise UserError(f"{outdir}: has {HIST_DIR}/*.npz but no {META_FILE}; choose another -o DIR or pass --force")
    return None


@dataclass
class SweepRun:
    """What :func:`sweep` did: the folder, the counts, and the rendering (None for a shard)."""

    outdir: Path
    points: int
    simulated: int
    resumed: int
    fanouts: int
    wall_s: float
    fanouts_per_s: float | None
    rendered: RenderReport | None = None
    run: dict[str, Any] = field(default_factory=dict)


def sweep(
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
) -> SweepRun:
    """Simulate ``points`` into an output folder and render it (a shard's folder is not rendered).

    ``out`` defaults to ``results/<name>/`` (``results/<name>/shard-I/`` for a shard). ``resume``
    skips points whose histograms are already complete there. ``params_file``, ``sets`` and
    ``options`` are recorded in ``meta.json``; relative ``empirical`` files of the stored
    parameters are found beside ``params_file``.
    """
    if not points:
        raise UserError("no sweep points to simulate")
    entries = _point_entries(points)
    shard_t = parse_shard(shard) if isinstance(shard, str) else shard
    outdir = Path(out) if out else default_outdir(points[0].params.name, shard_t)
    check_output_dir(outdir)
    with FolderLock(outdir) as lock:
        return _sweep_locked(points, entries, shard_t, outdir, lock, resume=resume, force=force, dask=dask,
                             threads=threads, plots=plots, progress=progress, params_file=params_file, sets=sets,
                             options=options)  # fmt: skip


def _sweep_locked(
    points: Sequence[Point],
    entries: list[dict[str, Any]],
    shard_t: tuple[int, int] | None,
    outdir: Path,
    lock: FolderLock,
    *,
    resume: bool,
    force: bool,
    dask: str | Any | None,
    threads: int | None,
    plots: bool,
    progress: bool | None,
    params_file: str | Path | None,
    sets: Sequence[str],
    options: dict[str, Any] | None,
) -> SweepRun:
    expected = sweep_hash(entries, shard_t)
    old = _check_folder(outdir, expected, force, "sweep")
    remove_stale_temporaries(outdir, recursive=True)  # a killed run's leftovers (we hold the lock)
    if force:  # overwriting another sweep: its points' histograms must not linger
        ids = {e["id"] for e in entries}
        for path in (outdir / HIST_DIR).glob("*.npz"):
            if path.stem not in ids:
                path.unlink()

    assigned = shard_chunks([len(chunk_sizes(pt.params.samples)) for pt in points], shard_t)
    jobs, resumed = [], 0
    for pt, entry, chunks in zip(points, entries, assigned, strict=True):
        entry["chunks"] = len(chunks)
        if not chunks:
            continue
        if resume:
            info = hist_info(hist_path(outdir, pt.id))
            if info is not None and info.params_hash == entry["params_hash"] and info.chunks == frozenset(chunks):
                resumed += 1
                entry["rare_events"] = precision_summary(load_hist(hist_path(outdir, pt.id)))
                continue
        jobs.append(Job(pt.id, pt.params, chunks, label=f"[{pt.index}] {pt.id} ({pt.label()})"))

    base_dir = Path(params_file).resolve().parent if params_file else None
    started_wall, started = time.perf_counter(), _now()
    history = run_history(old, expected)
    meta: dict[str, Any] = {
        **environment(),
        "params_file": str(params_file) if params_file else None, "sets": list(sets),
        "options": {**(options or {}), "output": str(outdir)},
        "name": points[0].params.name, "seed": points[0].params.seed,
        "sweep_hash": expected, "points_hash": points_hash(entries),
        "shard": {"index": shard_t[0], "count": shard_t[1], "set_chunks": SHARD_SET_CHUNKS} if shard_t else None,
        "histogram": histogram_settings(points[0].params.report.precision_bits),
        "status": "running", "started": started, "finished": None,
        "runs": history, "points": entries,
    }  # fmt: skip
    stats = {"points": 0, "fanouts": 0, "targets": 0}
    by_id = {e["id"]: e for e in entries}

    def on_done(job: Job, result: PointResult) -> None:
        save_hist(hist_path(outdir, job.key), result, base_dir)
        by_id[job.key]["rare_events"] = precision_summary(result)  # strata, ESS, variance reduction
        stats["points"] += 1
        stats["fanouts"] += result.fanouts
        stats["targets"] += result.target_samples

    def figures(wall: float) -> dict[str, Any]:
        return {"points_simulated": stats["points"], "points_resumed": resumed, "fanouts": stats["fanouts"],
                "fanouts_per_s": stats["fanouts"] / wall if wall > 0 else None,
                "target_samples_per_s": stats["targets"] / wall if wall > 0 else None}  # fmt: skip

    def interrupted() -> str:
        total = sum(1 for e in entries if e["chunks"])
        return f"{total - len(jobs) + stats['points']} of {total} point(s) are complete in {outdir}/{HIST_DIR}"

    rec = RunRecord(outdir, meta, history, lock, started_wall, dask=dask, threads=threads, figures=figures,
                    meta_figures=lambda run: {"samples_per_second": run["fanouts_per_s"],
                                              "target_samples_per_second": run["target_samples_per_s"]})  # fmt: skip
    with rec.recorded(interrupted):
        rec.record("running", final=False)
        run_jobs(jobs, on_done, threads=threads, dask=dask, progress=progress)
        if shard_t:
            done = rec.record("complete")
        else:
            rec.record("rendering", final=False)
    run = rec.run
    outcome = SweepRun(outdir, len(points), stats["points"], resumed, stats["fanouts"], run["wall_s"],
                       run["fanouts_per_s"], None, dict(run))  # fmt: skip
    if shard_t:
        outcome.run = done
        return outcome
    with rec.recorded(interrupted):
        outcome.rendered = render_dir(outdir, plots=plots)
        outcome.run = rec.record("complete")
    outcome.wall_s = outcome.run["wall_s"]
    return outcome


class RunRecord:
    """This run's entry in ``meta.json`` (a sweep folder of either engine): rewritten at every status
    change, and a failure or interruption is recorded before it propagates, on a full disk too
    (the lock holds a reserve for the last write)."""

    def __init__(self, outdir: Path, meta: dict[str, Any], history: list[dict[str, Any]], lock: FolderLock,
                 started_wall: float, *, dask: str | Any | None, threads: int | None,
                 figures: Callable[[float], dict[str, Any]],
                 meta_figures: Callable[[dict[str, Any]], dict[str, Any]] = lambda run: {}) -> None:  # fmt: skip
        self.outdir, self.meta, self.history, self.lock = outdir, meta, history, lock
        self.started_wall, self.started = started_wall, meta["started"]
        self.backend = {"backend": "dask" if dask else "local",
                        "dask": dask if isinstance(dask, str) or dask is None else "client",
                        "threads": threads or default_threads()}  # fmt: skip
        self.figures, self.meta_figures = figures, meta_figures
        self.run: dict[str, Any] = {}
        lock.reserve(_reserve_bytes(meta))  # room for the final meta.json (the lock file holds it until then)

    def record(self, status: str, final: bool = True) -> dict[str, Any]:
        """Write meta.json with this run's status and figures so far."""
        wall = time.perf_counter() - self.started_wall
        self.run = {"started": self.started, "finished": _now() if final else None, "status": status,
                    "wall_s": round(wall, 3), **self.backend, **self.figures(wall)}  # fmt: skip
        self.meta.update(status=status, finished=self.run["finished"], wall_s=self.run["wall_s"],
                         **self.meta_figures(self.run))  # fmt: skip
        self.meta["runs"] = [*self.history, dict(self.run)]
        write_meta(self.outdir, self.meta)
        return dict(self.run)

    def fail(self, status: str) -> None:
        """Record a failed or interrupted run (never raises: the original error is the one reported)."""
        try:
            self.record(status)
        except UserError:
            _write_meta_last(self.outdir, self.meta, self.lock)

    @contextmanager
    def recorded(self, interrupted: Callable[[], str]) -> Iterator[None]:
        """Whatever stops the work is recorded in meta.json before it propagates; on Ctrl-C,
        ``interrupted()`` says what is saved."""
        try:
            yield
        except KeyboardInterrupt:
            self.fail("interrupted")
            print(f"mcsmp: interrupted: {interrupted()}; continue with the same command and --resume", file=sys.stderr)
            raise
        except BaseException:
            self.fail("failed")
            raise


def merge(dirs: Sequence[str | Path], out: str | Path, *, force: bool = False, plots: bool = True) -> RenderReport:
    """Combine the folders of ``--shard`` runs of one sweep into ``out`` exactly, and render it."""
    metas = [(Path(d), load_meta(d)) for d in dirs]
    first_dir, first = metas[0]
    for d, m in metas[1:]:
        if m.get("points_hash") != first.get("points_hash"):
            raise UserError(f"{d}: results of different parameters than {first_dir} (points_hash differs); "
                            "only shards of one sweep can be merged")  # fmt: skip
    entries = sorted(first["points"], key=lambda e: int(e["index"]))
    outdir = Path(out)
    expected = sweep_hash(entries, None)
    _check_folder(outdir, expected, force, "merge")
    started = _now()
    merged: dict[str, PointResult] = {}
    for e in entries:
        result = None
        for d, _ in metas:
            path = hist_path(d, e["id"])
            if not path.exists():
                continue
            part = load_hist(path)
            if part.params.seed != e["seed"] or part.params.samples != e["samples"]:
                raise UserError(f"{path}: not the point [{e['index']}] of {first_dir}/meta.json")
            try:
                result = part if result is None else result.merge(part)
            except ValueError as exc:
                raise UserError(f"{path}: cannot merge: {exc} (the same shard given twice?)") from None
        if result is None or not result.complete:
            have = 0 if result is None else len(result.chunk_fanouts)
            raise UserError(
                f"point [{e['index']}] {e['id']}: {have} chunk(s) in the given folders, the point has more; "
                "are all shards finished and given?"
            )
        merged[e["id"]] = result
    check_output_dir(outdir)
    with FolderLock(outdir) as lock:
        _check_folder(outdir, expected, force, "merge")
        remove_stale_temporaries(outdir, recursive=True)
        meta = {
            **environment(),
            "params_file": first.get("params_file"), "sets": first.get("sets"), "name": first.get("name"),
            "seed": first.get("seed"), "sweep_hash": expected, "points_hash": first.get("points_hash"), "shard": None,
            "histogram": first.get("histogram"), "status": "merging", "started": started, "finished": None,
            "merged_from": [
                {"dir": str(d), "shard": m.get("shard"), "runs": m.get("runs"), "cpu": m.get("cpu"),
                 "version": m.get("version")} for d, m in metas
            ],
            "points": [{**e, "chunks": len(merged[e["id"]].chunk_fanouts)} for e in entries],
        }  # fmt: skip

        def save() -> None:
            for e in entries:
                save_hist(hist_path(outdir, e["id"]), merged[e["id"]], _base_dir(metas, e["id"]))

        return write_merged(outdir, meta, lock, save, lambda: render_dir(outdir, plots=plots))


def write_merged(outdir: Path, meta: dict[str, Any], lock: FolderLock, save: Callable[[], None],
                 render: Callable[[], R]) -> R:  # fmt: skip
    """A merge's writes (either engine's): ``meta.json`` as merging, the merged files, the rendering,
    then complete; a failure or Ctrl-C is recorded before it propagates, on a full disk too."""
    lock.reserve(_reserve_bytes(meta))
    try:
        write_meta(outdir, meta)
        save()
        rendered = render()
    except BaseException as exc:
        meta.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", finished=_now())
        _write_meta_last(outdir, meta, lock)
        raise
    meta.update(status="complete", finished=_now())
    write_meta(outdir, meta)
    return rendered


def _reserve_bytes(meta: dict[str, Any]) -> int:
    """Disk space held back for the final meta.json: twice its size plus 16 KiB."""
    return 2 * len(meta_bytes(meta)) + 16384


def _write_meta_last(outdir: Path, meta: dict[str, Any], lock: FolderLock) -> None:
    """Record a failure in meta.json, on a full disk too (the lock's reserve is given back first
    if needed); never raises, so the original error is the one reported."""
    try:
        write_meta(outdir, meta)
        return
    except UserError:
        lock.release_reserve()
    try:
        write_meta(outdir, meta)
    except UserError:
        with suppress(UserError):
            write_meta(outdir, meta, in_place=True)


def _base_dir(metas: list[tuple[Path, dict[str, Any]]], point_id: str) -> str | None:
    for d, _ in metas:
        path = hist_path(d, point_id)
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return str(z["base_dir"]) or None
    return None


def report(
    outdir: str | Path,
    *,
    quantiles: Sequence[float] | None = None,
    window_s: float | None = None,
    duration_h: float | None = None,
    plots: bool = True,
) -> RenderReport:
    """Re-render every table and figure of a sweep folder from its histograms (no simulation),
    optionally with other report settings; the folder's ``meta.json`` records the rendering."""
    outdir = Path(outdir)
    meta = load_meta(outdir)
    if meta.get("shard"):
        raise UserError(f"{outdir}: a shard holds only some chunks of each point; `mcsmp merge` the shards first")
    overrides: list[tuple[str, Any, str]] = []
    if quantiles:
        overrides.append(("report.quantiles", list(quantiles), "--quantiles"))
    if window_s is not None:
        overrides.append(("report.window_s", window_s, "--window-s"))
    if duration_h is not None:
        overrides.append(("report.duration_h", duration_h, "--duration-h"))
    with FolderLock(outdir) as lock:
        remove_stale_temporaries(outdir, recursive=True)
        lock.reserve(_reserve_bytes(meta))
        record = {"at": _now(), "overrides": {k: v for k, v, _ in overrides}}
        try:
            rendered = render_dir(outdir, overrides, plots=plots)
        except BaseException as exc:
            meta["rendered"] = {**record, "status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                                "error": str(exc)}  # fmt: skip
            if meta.get("status") == "complete":
                meta["status"] = "failed"  # the derived files may now mix two renderings
            _write_meta_last(outdir, meta, lock)
            raise
        meta["rendered"] = {**record, "status": "complete"}
        meta["status"] = "complete"
        write_meta(outdir, meta)
        return rendered
