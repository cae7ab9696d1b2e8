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


def cmd_system(args: argparse.Namespace) -> int:
    import mcsmp
    from mcsmp.system.report import figure, text_table

    sets = set_texts(args)
    if args.machine:
        params = mcsmp.load_on_machine(args.machine, args.params, sets)
    else:
        params = mcsmp.load(args.params, sets)
    points = mcsmp.run_system(params, threads=args.threads)
    rows = [row for sp in points for row in sp.rows()]
    keys = list(dict.fromkeys(k for sp in points for k, _ in sp.point.overrides))
    if args.json:
        print(json.dumps(_jsonable({"params_file": args.params, "machine": args.machine, "sets": sets, "rows": rows}), indent=1))
    else:
        secs = sum(sp.result.seconds for sp in points)
        print(f"mcsmp system: {args.params}" + (f" on {args.machine}" if args.machine else "")
              + f", {len(points)} point(s), seed {params.seed}, {secs:.2f} s; values are mean or quantile [95% CI]")  # fmt: skip
        print(text_table(rows, keys))
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
    p.set_defaults(func=cmd_system)
