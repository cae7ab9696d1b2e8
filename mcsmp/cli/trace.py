"""The ``mcsmp trace`` subcommand: ``record`` and ``import``.

The main CLI calls :func:`add_parser` on its subparsers and then ``args.func(args)``; every
user-facing problem is raised as :class:`mcsmp.errors.UserError` (exit status 2, one line).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add ``trace record`` and ``trace import`` to an argparse subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers()`` of the main CLI.
    """
    p = subparsers.add_parser(
        "trace",
        help="record real csd/IPI traces and import them as parameters",
        description="Record csd/IPI/TLB tracepoints with ftrace, and turn such traces into an "
        "mcsmp parameter fragment. See docs/traces.md.",
    )
    sub = p.add_subparsers(dest="trace_command", metavar="{record,import}", required=True)

    r = sub.add_parser(
        "record",
        help="record csd/ipi/tlb tracepoints while a command runs (root)",
        description="Record csd:*, ipi:ipi_send_cpu{,mask} and tlb:tlb_flush into FILE while COMMAND "
        "runs (or for --duration seconds), in a private tracefs instance; every tracing setting "
        "changed is restored afterwards, also on error or Ctrl-C (which ends the run early and "
        "still saves the trace).",
    )
    r.add_argument("-o", "--output", required=True, metavar="FILE", help="trace file to write")
    r.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds to record without COMMAND (default 1); with COMMAND, a time limit",
    )
    r.add_argument("--buffer-kb", type=int, metavar="N", help="per-CPU ring buffer size in KiB")
    r.add_argument("command", nargs="*", metavar="-- COMMAND", help="command to run while tracing")
    r.set_defaults(func=_record)

    i = sub.add_parser(
        "import",
        help="build a parameter fragment from recorded traces",
        description="Parse ftrace text traces, pair csd_queue_cpu with the handler's entry/exit on the "
        "target CPU, and write empirical ipi.delivery_ns and costs.func_ns as a YAML fragment.",
    )
    i.add_argument("files", nargs="+", metavar="FILE", help="ftrace text files (mcsmp trace record output)")
    i.add_argument("-o", "--output", required=True, metavar="FRAGMENT.yaml", help="fragment to write")
    i.add_argument("--report", metavar="DIR", help="also write DIR/trace_report.csv and DIR/trace_ccdf.png")
    i.add_argument(
        "--func",
        dest="function",
        metavar="NAME",
        help="csd function for the distributions (default: the commonest paired one)",
    )
    i.add_argument(
        "--window",
        metavar="START:END",
        type=_window,
        help="only calls queued between START and END seconds after each file's first event",
    )
    i.add_argument(
        "--tsc-hz", type=float, metavar="HZ", help="TSC rate for raw-cycle traces without a header"
    )
    i.add_argument(
        "--call",
        choices=("auto", "tlb_flush", "generic"),
        default="auto",
        help="fragment kind: tlb_flush (fixed handler part + pages, docs/model.md 9.29) or generic "
        "(costs.func_ns); auto: tlb_flush for flush_tlb_func with page counts in the trace",
    )
    i.add_argument(
        "--invlpg-ns",
        type=float,
        metavar="NS",
        help="per-page INVLPG cost for the handler split (default: from the trace's page counts if it "
        "has two or more, else 100 ns, NUMBERS §4)",
    )
    i.set_defaults(func=_import)


def _window(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END in seconds, e.g. 0.5:2, got {text!r}") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"need 0 <= START < END, got {text!r}")
    return start, end


def _record(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..trace.parse import parse_trace
    from ..trace.record import record

    result = record(args.output, args.command, args.duration, args.buffer_kb)
    rate = f" (TSC {result.tsc_hz / 1e6:.3f} MHz)" if result.tsc_hz else ""
    try:
        t = parse_trace(result.path)
    except UserError as exc:  # saved, but nothing to summarise (e.g. no IPI in a short quiet run)
        print(f"wrote {result.path}: clock {result.clock}{rate}")
        print(f"mcsmp trace record: warning: {exc}", file=sys.stderr)
    else:
        print(
            f"wrote {result.path}: clock {result.clock}{rate}, {t.events} events, "
            f"{sum(t.queued.values())} remote csd calls, {t.paired} paired"
        )
    if result.command_status not in (None, 0) and not result.interrupted:
        print(f"mcsmp trace record: command exited with status {result.command_status}", file=sys.stderr)
        return 1
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..io.atomic import write_atomic
    from ..trace.fragment import build_fragment, combine, write_report
    from ..trace.parse import parse_trace

    results = [parse_trace(f, args.tsc_hz) for f in args.files]
    for r in results:
        unpaired = sum(r.unpaired.values())
        print(
            f"{r.path}: {r.events} events, {r.paired} pairs, {unpaired} unpaired, {len(r.local_func)} local"
        )
    if args.invlpg_ns is not None and not args.invlpg_ns >= 0:
        raise UserError(f"--invlpg-ns: expected a number >= 0, got {args.invlpg_ns}")
    text, func = build_fragment(results, args.function, args.window, args.call, args.invlpg_ns)
    write_atomic(args.output, text)
    c = combine(results, args.window)
    delivery = c.values["delivery"][c.func == func]
    p50, p99 = np.quantile(delivery, [0.5, 0.99])
    print(
        f"wrote {args.output}: {func}, {len(delivery)} pairs, delivery p50 {p50 / 1e3:.2f} us, "
        f"p99 {p99 / 1e3:.2f} us"
    )
    others = Counter(f for f in c.func.tolist() if f != func)
    if others:
        print("other paired functions (--func NAME to use one): "
              + ", ".join(f"{f} ({n})" for f, n in others.most_common()))  # fmt: skip
    shootdowns = sum(r.shootdowns for r in results)
    if shootdowns:
        silent = sum(r.shootdowns_without_request for r in results)
        print(f"TLB shootdowns started: {shootdowns}, of them without a remote request: {silent}")
    if args.report:
        write_report(results, args.report, func, args.window)
        print(f"wrote {args.report}/trace_report.csv and {args.report}/trace_ccdf.png")
    return 0
