"""``mcsmp system``: the whole-machine discrete-event simulation (docs/system.md)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .point import THREADS, set_texts

__all__ = ["add_parser"]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _folder_mode(args: argparse.Namespace) -> bool:
    """A sweep folder is written when one is named or a folder-only option asks for one."""
    return bool(args.output or args.resume or args.shard or args.dask or args.force)


def cmd_system(args: argparse.Namespace) -> int:
    import mcsmp
    from mcsmp.api import path_of
    from mcsmp.system.report import figure, text_table

    sets = set_texts(args)
    if args.machine:
        params = mcsmp.load_on_machine(args.machine, args.params, sets)
    else:
        params = mcsmp.load(args.params, sets)
    if _folder_mode(args):
        options = {"machine": args.machine, "seed": args.seed, "threads": args.threads, "resume": args.resume,
                   "force": args.force, "dask": args.dask, "shard": args.shard}  # fmt: skip
        run = mcsmp.system_sweep(params, args.output, threads=args.threads, resume=args.resume, force=args.force,
                                 dask=args.dask, shard=args.shard, plots=not args.no_plots,
                                 params_file=str(path_of(args.params)), options=options)  # fmt: skip
        summary = (f"mcsmp system: {run.points} point(s), {run.units} unit(s) (policy x replication): "
                   f"{run.simulated} simulated, {run.resumed} already complete; {run.wall_s:.1f} s")  # fmt: skip
        if run.rendered is None:
            print(summary)
            print(f"shard {args.shard}: units in {run.outdir}/reps; combine all shards with `mcsmp merge DIR... -o DIR`")
            return 0
        rows, keys = run.rendered.rows, run.rendered.keys
        secs, n_points = run.wall_s, run.points
    else:
        points = mcsmp.run_system(params, threads=args.threads)
        rows = [row for sp in points for row in sp.rows()]
        keys = list(dict.fromkeys(k for sp in points for k, _ in sp.point.overrides))
        secs, n_points = sum(sp.result.seconds for sp in points), len(points)
    if args.json:
        print(json.dumps(_jsonable({"params_file": args.params, "machine": args.machine, "sets": sets, "rows": rows}), indent=1))
    else:
        print(f"mcsmp system: {args.params}" + (f" on {args.machine}" if args.machine else "")
              + f", {n_points} point(s), seed {params.seed}, {secs:.2f} s; values are mean or quantile [95% CI]")  # fmt: skip
        print(text_table(rows, keys))
    if _folder_mode(args) and not args.json:  # stdout stays one JSON document
        print(f"wrote {run.outdir}/: summary.csv, per_cpu.csv, report.txt, meta.json, reps/, hgrm/"
              + (", plots/" if any("plots" in p.parts for p in run.rendered.files) else ""))  # fmt: skip
    if args.plot:
        x_key = args.x or (keys[0] if keys else None)
        if x_key is None:
            raise mcsmp.UserError("--plot needs a swept key (--set KEY=V1,V2,...) or --x KEY")
        for path in figure(rows, x_key, Path(args.plot)):
            print(f"wrote {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("system", help="simulate the whole machine over time: throughput, coalescing, re-entry, csd races")
    p.add_argument("params", help="parameter file (YAML), or a preset name")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (dotted key); KEY=V1,V2 sweeps over values")  # fmt: skip
    p.add_argument("--machine", metavar="FILE", help="a machine description included below PARAMS (e.g. params/machines/milan-72.yaml)")
    p.add_argument("--seed", type=int, help="root seed (overrides the file)")
    p.add_argument("--threads", type=THREADS, help="worker threads (default: every core; env MCSMP_THREADS)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of text")
    p.add_argument("--plot", metavar="PNG", help="write throughput and race rate against the swept key")
    p.add_argument("--x", metavar="KEY", help="the swept key on the figure's x axis (default: the first)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write a sweep folder (summary.csv, per_cpu.csv, reps/, hgrm/, plots/); default with "
                   "--resume/--shard/--dask: results/<name>/ (results/<name>/shard-I/)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="keep the units already saved in the output folder")
    p.add_argument("--force", action="store_true", help="write into a folder made from different parameters")
    p.add_argument("--dask", metavar="ADDRESS", help="run on a Dask scheduler (tcp://host:8786), 'local', slurm[:JOBS] ... as for mcsmp sweep")
    p.add_argument("--shard", metavar="I/N", help="simulate only shard I of N of the units (0-based; combine with mcsmp merge)")
    p.add_argument("--no-plots", action="store_true", help="skip the folder's figure")
    p.set_defaults(func=cmd_system)
