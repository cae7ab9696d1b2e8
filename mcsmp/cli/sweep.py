"""``mcsmp sweep``, ``mcsmp merge`` and ``mcsmp report``: sweep folders (docs/sweeps.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from .point import add_point_args, load_params

__all__ = ["add_parser"]


def _print_render(outdir: Path, rep: Any) -> int:
    print(f"wrote {outdir}/: summary.csv, per_cpu.csv, mask.csv, meta.json, hist/, hgrm/"
          + (", plots/" if any("plots" in p.parts for p in rep.files) else ""))  # fmt: skip
    for err in rep.errors:
        print(f"mcsmp: warning: {err}; its rows are left out of the tables", file=sys.stderr)
    if rep.errors:
        raise UserError(f"{len(rep.errors)} point(s) could not be evaluated (see warnings above)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import mcsmp

    options = {"samples": args.samples, "seed": args.seed, "threads": args.threads, "resume": args.resume,
               "force": args.force, "dask": args.dask, "shard": args.shard}  # fmt: skip
    run = mcsmp.sweep(
        load_params(args), out=args.output, threads=args.threads, resume=args.resume, force=args.force,
        dask=args.dask, shard=args.shard, plots=not args.no_plots, options=options,
    )  # fmt: skip
    rate = f" ({run.fanouts_per_s / 1e6:.2f} M fan-outs/s)" if run.fanouts else ""
    print(f"{run.points} point(s): {run.simulated} simulated, {run.resumed} already complete; "
          f"{run.fanouts:,} fan-outs in {run.wall_s:.1f} s{rate}")  # fmt: skip
    if run.rendered is None:
        print(f"shard {args.shard}: histograms in {run.outdir}/hist; "
              "combine all shards with `mcsmp merge DIR... -o DIR`")  # fmt: skip
        return 0
    return _print_render(run.outdir, run.rendered)


def _print_system(outdir: Path, rep: Any) -> int:
    print(f"wrote {outdir}/: summary.csv, per_cpu.csv, report.txt, meta.json, reps/, hgrm/"
          + (", plots/" if any("plots" in p.parts for p in rep.files) else ""))  # fmt: skip
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from ..sweeps import merge
    from ..sweeps.system import is_system_folder, merge_system

    if is_system_folder(args.dirs[0]):  # folders of `mcsmp system`: units, not chunks
        srep = merge_system(args.dirs, args.output, force=args.force, plots=not args.no_plots)
        print(f"merged {len(args.dirs)} folder(s): {srep.points} point(s) complete")
        return _print_system(Path(args.output), srep)
    rep = merge(args.dirs, args.output, force=args.force, plots=not args.no_plots)
    print(f"merged {len(args.dirs)} folder(s): {rep.points} point(s) complete")
    return _print_render(Path(args.output), rep)


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
    from ..sweeps import report
    from ..sweeps.system import is_system_folder, report_system

    if is_system_folder(args.dir):
        if args.quantiles or args.window_s is not None or args.duration_h is not None:
            raise UserError(f"{args.dir}: a folder of `mcsmp system`; --quantiles, --window-s and --duration-h "
                            "apply to fan-out sweeps only")  # fmt: skip
        return _print_system(Path(args.dir), report_system(args.dir, plots=not args.no_plots))

    quantiles = _floats(args.quantiles, "--quantiles") if args.quantiles else None
    rep = report(args.dir, quantiles=quantiles, window_s=args.window_s, duration_h=args.duration_h,
                 plots=not args.no_plots)  # fmt: skip
    return _print_render(Path(args.dir), rep)


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
