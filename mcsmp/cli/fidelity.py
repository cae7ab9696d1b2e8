"""``mcsmp reproduce`` and ``mcsmp calibrate``: the model against measurements (docs/fidelity.md)."""

from __future__ import annotations

import argparse
import shlex

from .point import SAMPLES, THREADS, count

__all__ = ["add_parser", "cmd_calibrate", "cmd_reproduce"]


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..api import path_of
    from ..fidelity.calibrate import log_to_stderr
    from ..fidelity.reproduce import reproduce

    scenarios = None if args.scenarios is None else [s for s in args.scenarios.split(",") if s]
    rep = reproduce(
        path_of(args.params), targets_path=args.targets, out_dir=args.out, samples=args.samples, threads=args.threads,
        scenarios=scenarios, figure=not args.no_figure, log=None if args.quiet else log_to_stderr,
    )  # fmt: skip
    print(rep.text)
    print(f"\nwrote {', '.join(str(p) for p in rep.files)}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..api import path_of
    from ..config import load_raw
    from ..fidelity.calibrate import (
        calibrate,
        fitted_text,
        format_fit_table,
        format_residual_table,
        log_to_stderr,
    )
    from ..fidelity.targets import load_targets
    from ..io.atomic import write_atomic

    raw = load_raw(path_of(args.params))
    tf = load_targets(args.targets)
    result = calibrate(
        raw, tf, samples=args.samples, method=args.method, max_evals=args.max_evals, threads=args.threads,
        log=None if args.quiet else log_to_stderr,
    )  # fmt: skip
    command = "mcsmp calibrate " + " ".join(shlex.quote(a) for a in _argv_for_header(args))
    text = fitted_text(path_of(args.params).read_text(), args.params, result, command, args.targets)
    write_atomic(args.output, text)
    print(f"Fitted {len(result.fit)} parameter(s) to {len(result.targets)} target(s) in {result.n_evals} evaluations "
          f"({result.n_sims} simulated, {result.seconds:.0f} s); {result.message}")  # fmt: skip
    print(format_fit_table(result))
    print()
    print(format_residual_table(result))
    if result.at_bound:
        print(f"\nwarning: at a bound (widen it if the fit needs to go further): {', '.join(result.at_bound)}")
    print(f"\nwrote {args.output}")
    return 0


def _argv_for_header(args: argparse.Namespace) -> list[str]:
    # Not the output path: a re-fit written elsewhere (to compare) must give the same bytes.
    out = [args.params, args.targets]
    if args.samples:
        out += ["--samples", str(args.samples)]
    if args.method:
        out += ["--method", args.method]
    if args.max_evals:
        out += ["--max-evals", str(args.max_evals)]
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "reproduce",
        help="simulate a calibrated box and compare it with a measured table (seed 004) side by side",
        description="Simulate PARAMS, compare every target of the targets file (default: seed-targets.yaml "
        "beside PARAMS) with the model, run the what-if scenarios, and write tables and a figure to "
        "results/<name>/.",
    )
    p.add_argument("params", help="parameter file of the box (e.g. params/seed-16core.yaml)")
    p.add_argument("--targets", help="targets file (default: seed-targets.yaml beside PARAMS)")
    p.add_argument("-o", "--out", help="output folder (default: results/<name>/)")
    p.add_argument("--samples", type=SAMPLES, help="fan-outs of the base point (scenarios scale theirs)")
    p.add_argument("--threads", type=THREADS, help="worker threads (default: every core; env MCSMP_THREADS)")
    p.add_argument("--scenarios", help="comma-separated scenarios besides the box itself "
                   "(default: rt,uncleaned,reentry,cpus64,cpus256; empty string: none)")  # fmt: skip
    p.add_argument("--no-figure", action="store_true", help="skip the PNG/PDF figure")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser(
        "calibrate",
        help="fit parameters to observed quantiles/counts (common random numbers, scipy.optimize)",
        description="Fit the parameters listed under fit: in TARGETS so the model's values match the targets; "
        "write PARAMS with the fitted values substituted (and a header with the residuals) to FITTED.",
    )
    p.add_argument("params", help="parameter file to start from")
    p.add_argument("targets", help="targets file: targets: [...], fit: [...], settings: {...}")
    p.add_argument("-o", "--output", required=True, metavar="FITTED.yaml", help="fitted parameter file to write")
    p.add_argument("--samples", type=SAMPLES, help="fan-outs per evaluation (default: settings or the file's)")
    p.add_argument("--method", choices=("least_squares", "nelder-mead"), help="optimiser (default: settings)")
    p.add_argument("--max-evals", type=count(2**31 - 1, "evaluations"), help="evaluation budget (default: settings, 300)")
    p.add_argument("--threads", type=THREADS, help="worker threads (default: every core; env MCSMP_THREADS)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_calibrate)

