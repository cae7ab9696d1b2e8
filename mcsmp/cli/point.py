"""``mcsmp check`` and ``mcsmp run``: validate a file; simulate and print one point."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._version import __version__
from ..config.build import MAX_SAMPLES
from ..errors import UserError
from ..sim.engine import MAX_THREADS

__all__ = ["add_parser", "add_point_args", "count", "load_params", "set_texts"]


def count(hi: int, unit: str) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[1, hi]`` (``2000000`` or ``2e6``), the limit named."""

    def parse(text: str) -> int:
        try:
            v = float(text) if any(c in text.lower() for c in ".en") else int(text)  # 'n': inf, nan
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text[:40]!r}") from None
        if v != v or v < 1 or v != int(v):
            raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text[:40]!r}")
        if v > hi:
            raise argparse.ArgumentTypeError(f"at most {hi:,} {unit} (the limit), got {text[:40]}")
        return int(v)

    return parse


SAMPLES = count(MAX_SAMPLES, "fan-outs per point")
THREADS = count(MAX_THREADS, "threads")


def add_point_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("params", help="parameter file (YAML), or a preset name (mcsmp.presets())")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (dotted key); KEY=V1,V2 sweeps over values")  # fmt: skip
    p.add_argument("--samples", type=SAMPLES, help="fan-outs per sweep point (overrides the file)")
    p.add_argument("--seed", type=int, help="root seed (overrides the file)")
    p.add_argument("--threads", type=THREADS, help="worker threads (default: every core; env MCSMP_THREADS)")


def set_texts(args: argparse.Namespace) -> list[str]:
    """``--set`` texts, with ``--samples`` and ``--seed`` as the last ones."""
    sets = list(args.sets)
    if getattr(args, "samples", None) is not None:
        sets.append(f"samples={args.samples}")
    if getattr(args, "seed", None) is not None:
        sets.append(f"seed={args.seed}")
    return sets


def load_params(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import mcsmp

    return mcsmp.load(args.params, set_texts(args))


def cmd_check(args: argparse.Namespace) -> int:
    import yaml

    import mcsmp
    from mcsmp.config.rules import kernel_warnings

    points = mcsmp.points(load_params(args))
    print(f"{args.params}: valid, {len(points)} sweep point(s)")
    for pt in points:
        print(f"  [{pt.index}] {pt.id}  {pt.label()}")
    for line in kernel_warnings(points[0].params):  # kernel rules the file breaks (docs/model.md 9.34)
        print(f"warning: {line}")
    print("\nResolved parameters of the first point:")
    print(yaml.safe_dump(points[0].params.resolved, sort_keys=False, default_flow_style=None, width=100).rstrip())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import mcsmp
    from mcsmp.io.report import rows_to_json, text_report
    from mcsmp.metrics.precision import precision_summary
    from mcsmp.sim import default_threads

    params = load_params(args)
    r = mcsmp.run(params, point=_select(mcsmp.points(params), args.point), threads=args.threads)
    pt, params, elapsed = r.point, r.params, r.seconds
    fanouts, targets = r.result.fanouts, r.result.target_samples
    sets = set_texts(args)
    info = {
        "tool": "mcsmp", "version": __version__, "params_file": args.params, "sets": sets,
        "point": pt.index, "point_id": pt.id, "point_overrides": dict(pt.overrides),
        "params_hash": params.params_hash, "model_hash": params.model_hash, "seed": params.seed,
        "samples": fanouts, "target_samples": targets, "threads": args.threads or default_threads(),
        "seconds": round(elapsed, 3), "fanouts_per_s": fanouts / elapsed, "target_samples_per_s": targets / elapsed,
        "resolved": params.resolved,
        "rare_events": precision_summary(r.result),
    }  # fmt: skip
    if args.json:
        print(rows_to_json(r.rows, info))
        return 0
    head = (
        f"mcsmp {__version__}: {args.params} point [{pt.index}] {pt.id} ({pt.label()})\n"
        f"{fanouts:,} fan-outs, {targets:,} target-samples in {elapsed:.2f} s "
        f"({fanouts / elapsed / 1e6:.2f} M fan-outs/s, {targets / elapsed / 1e6:.1f} M target-samples/s), "
        f"seed {params.seed}; values are mean or quantile [95% CI]\n"
        f"parameters sha256 {params.params_hash[:16]} (model {params.model_hash[:16]})"
        + (f"; overrides: {' '.join(sets)}" if sets else "")
    )
    print(text_report(r.rows, head))
    return 0


def _select(points: list, which: str | None) -> int:  # type: ignore[type-arg]
    if which is None:
        return 0
    for pt in points:
        if which in (str(pt.index), pt.id):
            return int(pt.index)
    raise UserError(f"--point {which}: no such point (indices 0..{len(points) - 1} or ids; see `mcsmp check`)")


def _summary_line(text: str) -> str:
    """A parameter file's first comment line (after a calibration header, if any)."""
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines) if "mcsmp calibrate: end" in line), -1)
    return next((line.lstrip("# ").strip() for line in lines[end + 1 :] if line.startswith("# ")), "")


def cmd_presets(args: argparse.Namespace) -> int:
    import mcsmp

    for name, path in mcsmp.presets().items():
        points = f"{len(mcsmp.points(mcsmp.load(path)))} point(s); " if args.points else ""
        print(f"{name:14} {path}\n{'':14} {points}{_summary_line(path.read_text())[:100]}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("presets", help="list the parameter files that load by name (mcsmp run 16core)")
    p.add_argument("--points", action="store_true", help="also count each preset's sweep points")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("check", help="validate a parameter file; print the resolved parameters and sweep points")
    add_point_args(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="simulate one sweep point and print the policy comparison")
    add_point_args(p)
    p.add_argument("--point", help="sweep point index or id (default: the first)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_run)
