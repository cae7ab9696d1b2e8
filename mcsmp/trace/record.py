"""Record csd/IPI/TLB tracepoints with ftrace into a self-describing text file.

The recorder works in a private tracefs *instance* (``instances/mcsmp-<pid>``) when the kernel
offers them, so the top-level buffer, clock and events that other users may rely on are never
touched; only when instances are unavailable does it fall back to the top level. Either way every
setting it writes is pushed on an undo stack with its previous value and restored in reverse order
on success, error, Ctrl-C or SIGTERM, and a tracefs mount it made is unmounted again.

The output is the instance's ``trace`` file preceded by ``# mcsmp-trace: key=value`` header lines
(clock, measured TSC rate, kernel, CPUs and their topology, command, per-CPU overrun counts), which
:mod:`mcsmp.trace.parse` reads back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io.atomic import atomic_open

__all__ = [
    "CLOCK_PREFERENCE",
    "CSD_EVENTS",
    "EXTRA_EVENTS",
    "HEADER_PREFIX",
    "TRACEFS_DIRS",
    "RecordResult",
    "find_tracefs",
    "parse_cpu_list",
    "record",
    "tracing_snapshot",
]

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
CSD_EVENTS = ("csd:csd_queue_cpu", "csd:csd_function_entry", "csd:csd_function_exit")
EXTRA_EVENTS = ("ipi:ipi_send_cpumask", "ipi:ipi_send_cpu", "tlb:tlb_flush")
# Cross-CPU comparable clocks, best first. x86-tsc is the only one whose text output is finer
# than 1 us (ns clocks are printed as seconds with 6 decimals by the kernel's trace output).
CLOCK_PREFERENCE = ("x86-tsc", "mono_raw", "mono", "global", "local")
HEADER_PREFIX = "# mcsmp-trace:"
_CALIBRATION_S = 0.2
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class RecordResult:
    """What :func:`record` did.

    Attributes
    ----------
    path : Path
        The trace file written.
    clock : str
        The trace clock used.
    tsc_hz : float or None
        Measured TSC rate when ``clock`` is ``x86-tsc``.
    command_status : int or None
        Exit status of the command (None when only sleeping).
    interrupted : bool
        True when a signal ended the run phase early (the trace was still saved).
    warnings : list of str
        Warning lines already printed on stderr.
    """

    path: Path
    clock: str
    tsc_hz: float | None
    command_status: int | None
    interrupted: bool
    warnings: list[str] = field(default_factory=list)


class _Interrupted(Exception):
    """Raised from a signal handler so that ``finally`` blocks restore tracing state."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``0-3,8,10-11``.

    Parameters
    ----------
    text : str
        The list as printed by sysfs or a tracepoint (``cpumask=`` field).

    Returns
    -------
    list of int
        The CPU numbers in ascending order.
    """
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    # One write() per value: tracefs parses each write as a whole command.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode() + b"\n")
    finally:
        os.close(fd)


class _Undo:
    """A stack of restore actions, run in reverse; failures become warnings, not exceptions."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []
        self.warnings: list[str] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def set(self, path: Path, value: str, restore: str | None = None) -> None:
        """Write ``value`` to a tracefs file, remembering how to put the old value back."""
        old = restore if restore is not None else _read(path)
        # Push first: a signal between the two steps must not leave a write without its undo.
        self.push(f"restore {path} to {old!r}", lambda: _write(path, old))
        _write(path, value)

    def run(self) -> None:
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except OSError as exc:
                self.warnings.append(f"mcsmp trace record: could not {what}: {exc.strerror or exc}")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_tracefs(target: Path) -> None:
    if _libc().mount(b"nodev", str(target).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _umount(target: Path) -> None:
    if _libc().umount2(str(target).encode(), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def find_tracefs() -> Path | None:
    """Return the mounted tracefs directory, or None when none is mounted."""
    for d in TRACEFS_DIRS:
        if (Path(d) / "trace").exists():
            return Path(d)
    return None


def _tracefs(undo: _Undo) -> Path:
    root = find_tracefs()
    if root is not None:
        return root
    for d in TRACEFS_DIRS:
        target = Path(d)
        if not target.is_dir():
            continue
        try:
            _mount_tracefs(target)
        except OSError:
            continue
        undo.push(f"unmount {target}", functools.partial(_umount, target))
        return target
    raise UserError(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed (kernel without CONFIG_TRACING?)"
    )


def _buffer_kb(text: str) -> str:
    # "7 (expanded: 1408)": the top-level buffer is still at its boot-time minimum and grows to
    # the expanded size on first use; the expanded size is the setting to put back.
    if "expanded:" in text:
        return text.split("expanded:")[1].strip(" )")
    return text.split()[0]


def tracing_snapshot(root: Path | None = None) -> dict[str, str]:
    """Read the top-level tracing settings that :func:`record` may change.

    Used by the tests (and useful by hand) to check that a recording left everything as it was.

    Parameters
    ----------
    root : Path, optional
        The tracefs directory; found automatically when omitted.

    Returns
    -------
    dict
        Setting name to its text; empty when tracefs is not mounted.
    """
    root = root or find_tracefs()
    if root is None:
        return {}
    snap = {
        "trace_clock": _current_clock(root),
        "buffer_size_kb": _buffer_kb(_read(root / "buffer_size_kb")),
        "tracing_on": _read(root / "tracing_on"),
        "instances": " ".join(sorted(p.name for p in (root / "instances").iterdir()))
        if (root / "instances").is_dir()
        else "",
    }
    for ev in CSD_EVENTS + EXTRA_EVENTS:
        f = root / "events" / ev.replace(":", "/") / "enable"
        if f.exists():
            snap[ev] = _read(f)
    return snap


def _current_clock(d: Path) -> str:
    for tok in _read(d / "trace_clock").split():
        if tok.startswith("["):
            return tok.strip("[]")
    return ""


def _choose_clock(d: Path) -> str:
    available = [t.strip("[]") for t in _read(d / "trace_clock").split()]
    source = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    # The raw TSC is only comparable across CPUs when the kernel itself trusts it as clocksource.
    tsc_ok = source.exists() and _read(source) == "tsc"
    for clock in CLOCK_PREFERENCE:
        if clock in available and (clock != "x86-tsc" or tsc_ok):
            return clock
    raise UserError(f"{d / 'trace_clock'}: none of the clocks {', '.join(CLOCK_PREFERENCE)} is available")


def _marker(fd: int, text: str) -> tuple[int, int]:
    """Write one trace_marker event and return the monotonic ns just before and after it."""
    t0 = time.monotonic_ns()
    os.write(fd, text.encode())
    return t0, time.monotonic_ns()


def _marker_times(trace_text: str, tag: str) -> dict[int, int]:
    out = {}
    for line in trace_text.splitlines():
        if f"tracing_mark_write: {tag} " in line:
            ts = line.split("tracing_mark_write:")[0].rsplit(None, 1)[-1].rstrip(":")
            out[int(line.rsplit(None, 1)[-1])] = int(ts)
    return out


def _measure_tsc_hz(d: Path) -> float:
    """Measure the TSC rate by timestamping trace_marker writes against CLOCK_MONOTONIC.

    Each side takes the write with the tightest monotonic bracket; over 0.2 s a bracket of a few
    microseconds gives a relative error of about 1e-5.
    """
    _write(d / "trace", "")
    fd = os.open(d / "trace_marker", os.O_WRONLY)
    brackets: dict[int, tuple[int, int]] = {}
    try:
        for i in range(5):
            brackets[i] = _marker(fd, f"mcsmp-tsc {i}")
        time.sleep(_CALIBRATION_S)
        for i in range(5, 10):
            brackets[i] = _marker(fd, f"mcsmp-tsc {i}")
    finally:
        os.close(fd)
    cycles = _marker_times((d / "trace").read_text(), "mcsmp-tsc")
    _write(d / "trace", "")

    def best(ids: range) -> int:
        return min((i for i in ids if i in cycles), key=lambda i: brackets[i][1] - brackets[i][0])

    try:
        a, b = best(range(5)), best(range(5, 10))
    except ValueError:
        raise UserError(f"{d / 'trace'}: TSC calibration markers were not recorded") from None
    mono = (sum(brackets[b]) - sum(brackets[a])) / 2
    hz = (cycles[b] - cycles[a]) * 1e9 / mono
    if not 1e7 < hz < 1e11:
        raise UserError(f"measured TSC rate {hz:.4g} Hz is implausible; is the x86-tsc clock usable here?")
    return hz


def _start_markers(d: Path) -> None:
    """Write one marker from every CPU we may run on, so each CPU's buffer shows when it began.

    The parser takes a CPU's first event as the start of its buffer; without these markers a
    quiet CPU would seem to start at its first interrupt.
    """
    fd = os.open(d / "trace_marker", os.O_WRONLY)
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})
                os.write(fd, f"mcsmp-start cpu={cpu}".encode())
    finally:
        os.sched_setaffinity(0, allowed)
        os.close(fd)


def _topology_lines() -> list[str]:
    base = Path("/sys/devices/system/cpu")
    lines = []
    for cpu in parse_cpu_list(_read(base / "online")):
        c = base / f"cpu{cpu}"
        fields = [f"cpu={cpu}"]
        with contextlib.suppress(OSError):
            fields.append(f"thread_siblings={_read(c / 'topology/thread_siblings_list')}")
        # The last-level cache is the cache index with the highest level (index3 = L3 on x86).
        caches = []
        for idx in c.glob("cache/index*"):
            with contextlib.suppress(OSError, ValueError):
                caches.append((int(_read(idx / "level")), _read(idx / "shared_cpu_list")))
        if caches:
            fields.append(f"llc={max(caches)[1]}")
        with contextlib.suppress(OSError):
            fields.append(f"package={_read(c / 'topology/physical_package_id')}")
        lines.append("topology " + " ".join(fields))
    return lines


def _stats_lines(d: Path) -> list[str]:
    lines = []
    for stats in sorted((d / "per_cpu").glob("cpu*/stats"), key=lambda p: int(p.parent.name[3:])):
        values = {}
        for line in stats.read_text().splitlines():
            key, _, val = line.partition(":")
            values[key.strip()] = val.strip()
        lines.append(
            f"stats cpu={stats.parent.name[3:]} overrun={values.get('overrun', '?')} "
            f"dropped={values.get('dropped events', '?')} entries={values.get('entries', '?')}"
        )
    return lines


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`_Interrupted` while recording (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """Hold signals while restoring settings, so a second Ctrl-C cannot cut the restore short."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in _SIGNALS}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_phase(command: Sequence[str], duration: float | None) -> tuple[int | None, bool]:
    """Run the command (or sleep); a signal ends it early. Returns (status, interrupted)."""
    if not command:
        try:
            time.sleep(1.0 if duration is None else duration)
        except _Interrupted:
            return None, True
        return None, False
    try:
        proc = subprocess.Popen(list(command))
    except OSError as exc:
        raise UserError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
    try:
        return proc.wait(timeout=duration), False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    except _Interrupted:
        # The terminal already sent SIGINT to the whole process group; SIGTERM covers kill(1).
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=5), True
    except (subprocess.TimeoutExpired, _Interrupted):
        proc.kill()
        return proc.wait(), True


def _enable_events(d: Path, undo: _Undo, warn: Callable[[str], None]) -> list[str]:
    enabled = []
    for ev in CSD_EVENTS + EXTRA_EVENTS:
        f = d / "events" / ev.replace(":", "/") / "enable"
        if not f.exists():
            if ev in CSD_EVENTS:
                raise UserError(
                    f"this kernel has no {ev} tracepoint ({f} missing); the csd tracepoints are required"
                )
            warn(f"mcsmp trace record: warning: tracepoint {ev} absent, not recorded")
            continue
        undo.set(f, "1")
        enabled.append(ev)
    return enabled


def record(
    output: str | os.PathLike[str],
    command: Sequence[str] = (),
    duration: float | None = None,
    buffer_kb: int | None = None,
    stderr: Callable[[str], None] | None = None,
) -> RecordResult:
    """Record a csd/IPI/TLB trace of ``command`` (or of ``duration`` seconds) into ``output``.

    Parameters
    ----------
    output : path-like
        The trace file to write (atomically: a temporary file in the same directory is renamed).
    command : sequence of str, optional
        Command to run while tracing. Empty means sleep for ``duration``.
    duration : float, optional
        Seconds to record when there is no command (default 1.0); with a command, a time limit
        after which the command gets SIGINT.
    buffer_kb : int, optional
        Per-CPU ring buffer size in KiB; the kernel default when omitted.
    stderr : callable, optional
        Receives warning lines; printed to ``sys.stderr`` by default.

    Returns
    -------
    RecordResult

    Raises
    ------
    UserError
        Not root, no tracefs, no csd tracepoints, a bad argument, or interrupted outside the
        run phase. Tracing settings are restored in every case.
    """
    out = Path(output)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        (stderr or (lambda m: print(m, file=sys.stderr)))(msg)

    if sys.platform != "linux":
        raise UserError("trace record needs Linux ftrace (tracefs)")
    if os.geteuid() != 0:
        raise UserError("trace record needs root: tracefs and its tracepoints are root-only (run with sudo)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: directory {out.parent} does not exist")
    if duration is not None and duration <= 0:
        raise UserError(f"--duration must be positive, got {duration}")
    if buffer_kb is not None and buffer_kb <= 0:
        raise UserError(f"--buffer-kb must be positive, got {buffer_kb}")

    undo = _Undo()
    interrupted = False
    status: int | None = None
    try:
        with _signals_raise():
            try:
                root = _tracefs(undo)
                d = _instance(root, undo, warn)
                clock = _choose_clock(d)
                undo.set(d / "tracing_on", "0")
                undo.set(d / "trace_clock", clock, restore=_current_clock(d))
                if buffer_kb is not None:
                    undo.set(
                        d / "buffer_size_kb", str(buffer_kb), restore=_buffer_kb(_read(d / "buffer_size_kb"))
                    )
                tsc_hz = None
                if clock == "x86-tsc":
                    _write(d / "tracing_on", "1")
                    tsc_hz = _measure_tsc_hz(d)
                    _write(d / "tracing_on", "0")
                # Enable with tracing off: switching tracepoints on patches kernel text, which
                # itself sends do_sync_core IPIs that would otherwise pollute the trace.
                events = _enable_events(d, undo, warn)
                _write(d / "trace", "")
                _write(d / "tracing_on", "1")
                start_ns = time.monotonic_ns()
                _start_markers(d)
                status, interrupted = _run_phase(command, duration)
                _write(d / "tracing_on", "0")
                elapsed = (time.monotonic_ns() - start_ns) / 1e9
                if interrupted:
                    warn("mcsmp trace record: interrupted; saving what was recorded")
                header = _header(d, clock, tsc_hz, command, duration, events, elapsed, status, interrupted)
                _save(d / "trace", out, header)
                overrun = sum(int(h.split("overrun=")[1].split()[0]) for h in header if " overrun=" in h)
                if overrun:
                    warn(
                        f"mcsmp trace record: warning: the ring buffer wrapped ({overrun} events overwritten); "
                        "import discards the oldest part, use a larger --buffer-kb to keep it"
                    )
            except _Interrupted as exc:
                raise UserError(f"interrupted by signal {exc.signum}; tracing settings restored") from None
            except PermissionError as exc:
                raise UserError(
                    f"{exc.filename}: permission denied (root and a writable tracefs needed)"
                ) from None
    finally:
        with _signals_deferred():
            undo.run()
        for w in undo.warnings:
            warn(w)
    return RecordResult(out, clock, tsc_hz, status, interrupted, warnings)


def _instance(root: Path, undo: _Undo, warn: Callable[[str], None]) -> Path:
    inst = root / "instances" / f"mcsmp-{os.getpid()}"
    try:
        inst.mkdir()
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise UserError(f"{inst} already exists (another recording by this pid?)") from None
        warn(f"mcsmp trace record: warning: no tracefs instance ({exc.strerror}); using the top-level buffer")
        return root
    undo.push(f"remove {inst}", inst.rmdir)
    return inst


def _header(
    d: Path,
    clock: str,
    tsc_hz: float | None,
    command: Sequence[str],
    duration: float | None,
    events: list[str],
    elapsed: float,
    status: int | None,
    interrupted: bool,
) -> list[str]:
    online = _read(Path("/sys/devices/system/cpu/online"))
    lines = [
        "version=1",
        f"clock={clock}",
    ]
    if tsc_hz is not None:
        lines += [f"tsc_hz={tsc_hz:.1f}", f"resolution_ns={1e9 / tsc_hz:.3f}"]
    else:
        lines += [
            "resolution_ns=1000",
            f"note=clock {clock} prints microseconds (6 decimals) in the text trace: 1 us resolution",
        ]
    lines += [
        f"kernel={platform.release()}",
        f"nr_cpus={len(parse_cpu_list(online))}",
        f"cpus_online={online}",
        f"command={shlex.join(command) if command else f'sleep {1.0 if duration is None else duration}'}",
        f"events={','.join(events)}",
        f"buffer_kb={_buffer_kb(_read(d / 'buffer_size_kb'))}",
        f"elapsed_s={elapsed:.3f}",
    ]
    if status is not None:
        lines.append(f"command_status={status}")
    if interrupted:
        lines.append("interrupted=1")
    lines += _topology_lines() + _stats_lines(d)
    return [f"{HEADER_PREFIX} {line}" for line in lines]


def _save(trace: Path, out: Path, header: list[str]) -> None:
    with atomic_open(out, "w") as f, open(trace) as src:
        f.write("\n".join(header) + "\n")
        shutil.copyfileobj(src, f, 1 << 20)
