"""``mcsmp sweep``, ``mcsmp merge`` and ``mcsmp report``: many points, their files and figures.

``sweep`` simulates every point of a parameter file (grid × zip × ``--set``) into an output folder
(default ``results/<name>/``), writing each point's histograms as soon as the point completes;
``merge`` adds up the folders of ``--shard`` runs exactly; ``report`` re-renders every table and
figure from the histograms without simulating. See ``docs/sweeps.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from .point import add_point_args, load_points

__all__ = ["add_parser", "points_hash", "sweep_hash"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def points_hash(entries: list[dict[str, Any]]) -> str:
    """Identity of a sweep's points: their ids and full parameter hashes, in order."""
    from ..engine import CHUNK_FANOUTS, PILOT_CHUNKS, STREAM_SCHEME

    ids = [[e["index"], e["id"], e["params_hash"]] for e in entries]
    return _hash({"points": ids, "chunk": CHUNK_FANOUTS, "pilot": PILOT_CHUNKS, "streams": STREAM_SCHEME})


def sweep_hash(entries: list[dict[str, Any]], shard: tuple[int, int] | None) -> str:
    """Identity of what an output folder holds: the points and, for a shard, which one."""
    from ..runner import SHARD_SET_CHUNKS

    return _hash({"points": points_hash(entries), "shard": list(shard) if shard else None, "set": SHARD_SET_CHUNKS})


def _point_entries(points: list[Any]) -> list[dict[str, Any]]:
    from ..outputs import params_hash

    seen: dict[str, Any] = {}
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
            "model_hash": pt.params.model_hash, "params_hash": params_hash(pt.params),
            "seed": pt.params.seed, "samples": pt.params.samples,
            "resolved": pt.params.resolved,
        })  # fmt: skip
    return entries


def _check_folder(outdir: Path, expected: str, force: bool, what: str) -> dict[str, Any] | None:
    """Refuse to mix results of different parameters in one folder (unless ``force``)."""
    from ..outputs import HIST_DIR, META_FILE

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


def _print_render(outdir: Path, rep: Any) -> None:
    print(f"wrote {outdir}/: summary.csv, per_cpu.csv, mask.csv, meta.json, hist/, hgrm/"
          + (", plots/" if any("plots" in p.parts for p in rep.files) else ""))  # fmt: skip
    for err in rep.errors:
        print(f"mcsmp: warning: {err}; its rows are left out of the tables", file=sys.stderr)


def _render_or_fail(outdir: Path, overrides: list[tuple[str, Any, str]], plots: bool) -> int:
    from ..outputs import render_dir

    rep = render_dir(outdir, overrides, plots=plots)
    _print_render(outdir, rep)
    if rep.errors:
        raise UserError(f"{len(rep.errors)} point(s) could not be evaluated (see warnings above)")
    return 0


# --------------------------------------------------------------------------------------------
# mcsmp sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..engine import chunk_sizes, default_threads
    from ..outputs import (
        HIST_DIR, environment, hist_info, hist_path, histogram_settings, remove_stale_temporaries,
        save_hist, write_meta,
    )  # fmt: skip
    from ..runner import SHARD_SET_CHUNKS, Job, parse_shard, run_jobs, shard_chunks

    points = load_points(args)
    entries = _point_entries(points)
    shard = parse_shard(args.shard) if args.shard else None
    outdir = Path(args.output) if args.output else Path("results") / points[0].params.name
    if shard and not args.output:
        outdir = outdir / f"shard-{shard[0]}"
    expected = sweep_hash(entries, shard)
    old = _check_folder(outdir, expected, args.force, "sweep")
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(outdir / HIST_DIR)
    if args.force:  # overwriting another sweep: its points' histograms must not linger
        ids = {e["id"] for e in entries}
        for path in (outdir / HIST_DIR).glob("*.npz"):
            if path.stem not in ids:
                path.unlink()

    assigned = shard_chunks([len(chunk_sizes(pt.params.samples)) for pt in points], shard)
    jobs, resumed = [], 0
    for pt, entry, chunks in zip(points, entries, assigned, strict=True):
        entry["chunks"] = len(chunks)
        if not chunks:
            continue
        if args.resume:
            info = hist_info(hist_path(outdir, pt.id))
            if info is not None and info.params_hash == entry["params_hash"] and info.chunks == frozenset(chunks):
                resumed += 1
                continue
        jobs.append(Job(pt.id, pt.params, chunks, label=f"[{pt.index}] {pt.id} ({pt.label()})"))

    base_dir = Path(args.params).resolve().parent
    started_wall, started = time.perf_counter(), _now()
    history = list(old.get("runs", [])) if (old and old.get("sweep_hash") == expected and args.resume) else []
    meta: dict[str, Any] = {
        **environment(),
        "params_file": str(args.params), "sets": list(args.sets),
        "options": {"samples": args.samples, "seed": args.seed, "threads": args.threads, "resume": args.resume,
                    "force": args.force, "dask": args.dask, "shard": args.shard, "output": str(outdir)},
        "name": points[0].params.name, "seed": points[0].params.seed,
        "sweep_hash": expected, "points_hash": points_hash(entries),
        "shard": {"index": shard[0], "count": shard[1], "set_chunks": SHARD_SET_CHUNKS} if shard else None,
        "histogram": histogram_settings(points[0].params.report.precision_bits),
        "status": "running", "started": started, "finished": None,
        "runs": history, "points": entries,
    }  # fmt: skip
    write_meta(outdir, meta)

    stats = {"points": 0, "fanouts": 0, "targets": 0}

    def on_done(job: Job, result: Any) -> None:
        save_hist(hist_path(outdir, job.key), result, base_dir)
        stats["points"] += 1
        stats["fanouts"] += result.fanouts
        stats["targets"] += int(result.counts[2].sum())  # remote_wait_ns: one value per target

    def finish(status: str) -> dict[str, Any]:
        wall = time.perf_counter() - started_wall
        run = {
            "started": started, "finished": _now(), "status": status, "wall_s": round(wall, 3),
            "backend": "dask" if args.dask else "local", "dask": args.dask,
            "threads": args.threads or default_threads(),
            "points_simulated": stats["points"], "points_resumed": resumed, "fanouts": stats["fanouts"],
            "fanouts_per_s": stats["fanouts"] / wall if wall > 0 else None,
            "target_samples_per_s": stats["targets"] / wall if wall > 0 else None,
        }  # fmt: skip
        meta.update(status=status, finished=run["finished"], wall_s=run["wall_s"],
                    samples_per_second=run["fanouts_per_s"], target_samples_per_second=run["target_samples_per_s"])
        meta["runs"] = [*history, run]
        write_meta(outdir, meta)
        return run

    try:
        run_jobs(jobs, on_done, threads=args.threads, dask=args.dask)
    except UserError:
        finish("failed")
        raise
    except KeyboardInterrupt:
        finish("interrupted")
        done = sum(1 for e in entries if e["chunks"]) - len(jobs) + stats["points"]
        print(f"mcsmp: interrupted: {done} of {sum(1 for e in entries if e['chunks'])} point(s) are complete in "
              f"{outdir}/{HIST_DIR}; continue with the same command and --resume", file=sys.stderr)  # fmt: skip
        raise
    run = finish("complete")
    rate = f" ({run['fanouts_per_s'] / 1e6:.2f} M fan-outs/s)" if run["fanouts"] else ""
    print(f"{len(points)} point(s): {stats['points']} simulated, {resumed} already complete; "
          f"{run['fanouts']:,} fan-outs in {run['wall_s']:.1f} s{rate}")  # fmt: skip
    if shard:
        print(f"shard {shard[0]}/{shard[1]}: histograms in {outdir}/{HIST_DIR}; "
              "combine all shards with `mcsmp merge DIR... -o DIR`")  # fmt: skip
        return 0
    return _render_or_fail(outdir, [], not args.no_plots)


# --------------------------------------------------------------------------------------------
# mcsmp merge


def cmd_merge(args: argparse.Namespace) -> int:
    from ..outputs import (
        HIST_DIR, environment, hist_path, load_hist, load_meta, remove_stale_temporaries, save_hist, write_meta,
    )  # fmt: skip

    metas = [(Path(d), load_meta(d)) for d in args.dirs]
    first_dir, first = metas[0]
    for d, m in metas[1:]:
        if m.get("points_hash") != first.get("points_hash"):
            raise UserError(f"{d}: results of different parameters than {first_dir} (points_hash differs); "
                            "only shards of one sweep can be merged")  # fmt: skip
    entries = sorted(first["points"], key=lambda e: int(e["index"]))
    outdir = Path(args.output)
    expected = sweep_hash(entries, None)
    _check_folder(outdir, expected, args.force, "merge")
    started = _now()
    merged: dict[str, Any] = {}
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
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(outdir / HIST_DIR)
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
    write_meta(outdir, meta)
    for e in entries:
        save_hist(hist_path(outdir, e["id"]), merged[e["id"]], _base_dir(metas, e["id"]))
    meta.update(status="complete", finished=_now())
    write_meta(outdir, meta)
    print(f"merged {len(metas)} folder(s): {len(entries)} point(s) complete")
    return _render_or_fail(outdir, [], not args.no_plots)


def _base_dir(metas: list[tuple[Path, dict[str, Any]]], point_id: str) -> str | None:
    import numpy as np

    from ..outputs import hist_path

    for d, _ in metas:
        path = hist_path(d, point_id)
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return str(z["base_dir"]) or None
    return None


# --------------------------------------------------------------------------------------------
# mcsmp report


def _floats(values: list[str], flag: str) -> list[float]:
    out = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                try:
                    out.append(float(part))
                except ValueError:
                    raise UserError(f"{flag}: expected numbers, got {part!r}") from None
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from ..outputs import load_meta, write_meta

    outdir = Path(args.dir)
    meta = load_meta(outdir)
    if meta.get("shard"):
        raise UserError(f"{outdir}: a shard holds only some chunks of each point; `mcsmp merge` the shards first")
    overrides: list[tuple[str, Any, str]] = []
    if args.quantiles:
        overrides.append(("report.quantiles", _floats(args.quantiles, "--quantiles"), "--quantiles"))
    if args.window_s is not None:
        overrides.append(("report.window_s", args.window_s, "--window-s"))
    if args.duration_h is not None:
        overrides.append(("report.duration_h", args.duration_h, "--duration-h"))
    status = _render_or_fail(outdir, overrides, not args.no_plots)
    meta["rendered"] = {"at": _now(), "overrides": {k: v for k, v, _ in overrides}}
    write_meta(outdir, meta)
    return status


# --------------------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sweep", help="simulate every sweep point; write tables, histograms and figures",
        description="Simulate every point of PARAMS (sweep.grid x sweep.zip x --set) into an output folder.",
    )  # fmt: skip
    add_point_args(p)
    p.add_argument("-o", "--output", metavar="DIR",
                   help="output folder (default: results/<name>/, or results/<name>/shard-I/ with --shard)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="skip points already complete in the output folder")
    p.add_argument("--force", action="store_true", help="write into a folder made from different parameters")
    p.add_argument("--dask", metavar="ADDRESS", help="run on a Dask scheduler (tcp://host:8786), or 'local'")
    p.add_argument("--shard", metavar="I/N", help="simulate only shard I of N (0-based; combine with mcsmp merge)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("merge", help="combine the folders of --shard runs exactly and render all outputs")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="shard output folders")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="merged output folder")
    p.add_argument("--force", action="store_true", help="write into a folder made from different parameters")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("report", help="re-render every table and figure of an output folder from its histograms")
    p.add_argument("dir", metavar="DIR", help="output folder of mcsmp sweep or merge")
    p.add_argument("--quantiles", nargs="+", metavar="Q", help="quantiles to report, e.g. 0.5 0.99 0.9999")
    p.add_argument("--window-s", type=float, metavar="S", help="window of the window-maximum metric (s)")
    p.add_argument("--duration-h", type=float, metavar="H", help="duration of the exceedance counts (h)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.set_defaults(func=cmd_report)
