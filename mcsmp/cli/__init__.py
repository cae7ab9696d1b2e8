"""The ``mcsmp`` command line: argparse only, a thin mapping from arguments to the public API.

Every user-facing problem is a :class:`~mcsmp.errors.UserError`: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import UserError

__all__ = ["main"]

# Each module provides add_parser(subparsers); a missing optional module is skipped.
_COMMAND_MODULES = (
    "mcsmp.cli.point",  # check, run
    "mcsmp.cli.sweep",  # sweep, merge, report
    "mcsmp.cli.fidelity",  # reproduce, calibrate
    "mcsmp.cli.trace",  # trace record, trace import
    "mcsmp.cli.system",  # system
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too (argparse prints the usage first), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"mcsmp: {one_line(' '.join(message.split()))}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mcsmp", description="Monte Carlo latency estimator for Linux kernel IPI fan-outs."
    )
    parser.add_argument("--version", action="version", version=f"mcsmp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in _COMMAND_MODULES:
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: running work stops cleanly and meta.json says interrupted."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


# OSErrors of the environment (not bugs) that a writer may still let through: one line, exit 2.
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
               errno.EISDIR, errno.ENOENT, errno.EEXIST, errno.ENAMETOOLONG, errno.EIO}  # fmt: skip


def one_line(text: str) -> str:
    """``text`` with every non-printable character escaped (a key may hold a newline)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave SIGTERM alone
        pass
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except UserError as exc:
        print(f"mcsmp: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_status
    except Terminated:
        print("mcsmp: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("mcsmp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mcsmp run ... | head -1`): nothing left to say, and not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in _ENV_ERRNOS:
            raise
        where = exc.filename or "mcsmp"
        print(f"mcsmp: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
