"""Parse ftrace text output and pair csd queue events with the handler that ran them.

A remote call leaves three events (kernel/smp.c, ``include/trace/events/csd.h``):

- ``csd_queue_cpu: cpu=T callsite=… func=F csd=X`` on the sender, when csd ``X`` is queued on
  target ``T``'s ``call_single_queue``;
- ``csd_function_entry: func=F, csd=X`` and ``csd_function_exit`` on the target around ``F``.

Pairing is by ``(csd, target)`` in time order: one csd is locked until its target has run it,
so a queue is paired with the next entry of the same csd on the target CPU. Everything that
cannot be paired with certainty is counted by reason instead of guessed:

``no_ipi_no_entry``
    Queued without an IPI and never entered before the csd was queued again: observed when the
    target was idle-polling (``TIF_POLLING_NRFLAG``: woken without an IPI) and its idle loop ran
    the csd without a ``csd_function_entry`` event.
``no_entry``
    A new queue of the same csd on the same target came before any entry (a TTWU batch runs
    only its first csd, irq_work has no entry event, or the entry fell into a lost-events gap).
``pending_at_end``
    Queued but not entered when the trace ends.
``no_exit``
    Entered but never exited within the trace.
``lost_events``
    A ``[LOST n EVENTS]`` gap on the sender or the target CPU while the call was open.
``target_not_started``
    Queued before the target CPU's ring buffer starts (its first event): earlier events of that
    CPU may have been overwritten.
``wrapped``
    The buffer wrapped (events overwritten) and the call was queued before the latest-starting
    CPU's first event, where the record is incomplete.
``negative_delay``
    Entry before queue: the trace clock is not comparable across CPUs.
``func_mismatch``
    Entry of the csd names another function than its queue event.

The sender's own local call (``csd=0``: ``SCF_RUN_LOCAL`` runs ``func`` directly) is counted as
local and kept out of the remote distributions.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = [
    "CLASSES",
    "REASONS",
    "CpuTopology",
    "TraceHeader",
    "TraceResult",
    "distance_class",
    "parse_trace",
]

REASONS = (
    "no_ipi_no_entry",
    "no_entry",
    "pending_at_end",
    "no_exit",
    "lost_events",
    "target_not_started",
    "wrapped",
    "negative_delay",
    "func_mismatch",
)
# Distance classes of docs/model.md §1 step 2, plus "self" (queued to its own CPU) and "unknown".
CLASSES = ("smt", "llc", "socket", "remote", "self", "unknown")

_HEADER_PREFIX = "# mcsmp-trace:"
_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s:\]]{4,6})\s+)?(?P<ts>\d+(?:\.\d+)?):\s+(?P<event>\w+):\s?(?P<fields>.*)$"
)
_LOST = re.compile(r"^(?:CPU:?\s*(?P<cpu>\d+)\s+)?\[?LOST (?P<n>\d+) EVENTS\]?\s*$")
_STARTED = re.compile(r"^#{3,}\s*CPU (?P<cpu>\d+) buffer started\s*#*$")
_ENTRIES = re.compile(r"entries-in-buffer/entries-written:\s*(?P<inbuf>\d+)/(?P<written>\d+)")
_ONLINE = re.compile(r"#P:(?P<cpus>\d+)")  # ftrace's header: the CPUs online when recorded
# tlb_flush's reason for native_flush_tlb_multi() (TLB_REMOTE_SEND_IPI): a shootdown is starting
_REMOTE_SEND = "remote IPI send"
# ... and flush_tlb_func()'s on a target (TLB_REMOTE_SHOOTDOWN), with the pages it invalidated
_REMOTE_SHOOTDOWN = re.compile(r"pages:(?P<pages>-?\d+) reason:remote shootdown")
# trace-cmd report preamble lines that carry no events.
_IGNORED = re.compile(r"^(cpus=\d+|CPU \d+ is empty|version = .*)$")
_TRACE_DAT_MAGIC = b"\x17\x08\x44tracing"
_GZIP_MAGIC = b"\x1f\x8b"
_HEX_WORD = re.compile(r"[0-9a-fA-F]{8}")
_CSD_EVENTS = ("csd_queue_cpu", "csd_function_entry", "csd_function_exit")


@dataclass(frozen=True)
class CpuTopology:
    """Topology of one CPU of the recording machine, from the trace header."""

    thread_siblings: frozenset[int] | None = None
    llc: frozenset[int] | None = None
    package: int | None = None


@dataclass
class TraceHeader:
    """What the ``# mcsmp-trace:`` header (and the ftrace header) say about a trace.

    Attributes
    ----------
    values : dict
        Single-valued keys (``clock``, ``tsc_hz``, ``kernel``, ``nr_cpus``, ``command``, …).
    topology : dict
        CPU number to :class:`CpuTopology`.
    overrun : dict
        CPU number to the ring-buffer overrun count recorded at the end.
    entries : tuple of int or None
        ftrace's ``entries-in-buffer/entries-written`` pair.
    """

    values: dict[str, str] = field(default_factory=dict)
    topology: dict[int, CpuTopology] = field(default_factory=dict)
    overrun: dict[int, int] = field(default_factory=dict)
    entries: tuple[int, int] | None = None

    @property
    def clock(self) -> str:
        return self.values.get("clock", "unknown")

    @property
    def tsc_hz(self) -> float | None:
        v = self.values.get("tsc_hz")
        return float(v) if v else None

    @property
    def wrapped(self) -> bool:
        """True when the header shows that events were overwritten."""
        if self.entries is not None and self.entries[1] > self.entries[0]:
            return True
        return any(n > 0 for n in self.overrun.values())


def _cpu_set(text: str) -> frozenset[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(cpus)


def _cpumask(text: str) -> list[int]:
    """CPUs of an ``ipi_send_cpumask`` mask, printed as hex words or as a list.

    Kernels print ``__get_cpumask`` with ``%*pb`` (zero-padded 32-bit hex words joined by commas:
    ``00000000,0000000e``); newer ones use ``%*pbl`` (``1-3``). A list chunk never has 8 digits.
    """
    words = text.split(",")
    if all(_HEX_WORD.fullmatch(w) for w in words):
        value = int("".join(words), 16)
        return [cpu for cpu in range(value.bit_length()) if value >> cpu & 1]
    return sorted(_cpu_set(text))


def distance_class(sender: int, target: int, topology: dict[int, CpuTopology]) -> str:
    """Classify a target relative to its sender as in docs/model.md §1 step 2.

    Parameters
    ----------
    sender, target : int
        CPU numbers.
    topology : dict
        From :class:`TraceHeader`; missing CPUs or fields give ``unknown``.

    Returns
    -------
    str
        One of :data:`CLASSES`.
    """
    if sender == target:
        return "self"
    s, t = topology.get(sender), topology.get(target)
    if s is None or t is None:
        return "unknown"
    if s.thread_siblings is not None and target in s.thread_siblings:
        return "smt"
    if s.llc is not None and target in s.llc:
        return "llc"
    if s.package is None or t.package is None or s.llc is None:
        return "unknown"
    return "socket" if s.package == t.package else "remote"


class _Call:
    """One remote csd_queue_cpu event and what became of it."""

    __slots__ = ("fanout", "func", "ipi", "pages", "sender", "status", "t_entry", "t_exit", "t_queue", "target")

    def __init__(self, func: str, sender: int, target: int, t_queue: float) -> None:
        self.func, self.sender, self.target, self.t_queue = func, sender, target, t_queue
        self.t_entry = self.t_exit = -1.0
        self.ipi: bool | None = None
        self.status = ""
        self.pages = 0  # from the target's tlb_flush inside the handler: -1 full flush, 0 unknown
        self.fanout = -1  # calls of one smp_call_function_many_cond() share it


@dataclass
class TraceResult:
    """The pairs and counts of one trace file. Times are ns from the file's first event.

    Attributes
    ----------
    path : str
    header : TraceHeader
    func, cls : ndarray of str
        Function and distance class of each paired remote call.
    sender, target : ndarray of int
    t_queue, t_entry, t_exit : ndarray of float
    ipi : ndarray of int8
        1 when an IPI was sent for the call, 0 when none was (the target's queue was already
        non-empty, or an idle target polled it), -1 when the trace has no ipi events.
    queued : Counter
        Remote queue events per function.
    unpaired : Counter
        ``(function, reason)`` to count; reasons are :data:`REASONS`.
    local_func : list of str
    local_handler_ns : ndarray of float
        The sender's own ``csd=0`` calls and their handler time.
    entries_without_queue, exits_without_entry : Counter
        Per function; a handler whose queue event is not in the trace (it started before the
        trace or its CPU's buffer) cannot be paired.
    lost_events : int
        Sum of the ``LOST n EVENTS`` counts.
    cpu_start : dict
        CPU to the time of its first event (the start of its ring buffer in the trace).
    wrapped : bool
    wrap_cut_ns : float or None
        With a wrapped buffer, calls queued before this time were discarded.
    events, lines : int
    shootdowns, shootdowns_without_request : int
        TLB shootdowns the senders started (``tlb_flush`` with reason "remote IPI send", from
        ``native_flush_tlb_multi()``), and those of them that queued no ``flush_tlb_func`` csd:
        every target was skipped (lazy TLB, or a PV flush that defers preempted vCPUs) or the
        request went another way; 0 when the trace has no ``tlb`` events.
    pages : ndarray of int
        Per paired call, the pages its handler invalidated (the target's ``tlb_flush`` "remote
        shootdown" event between entry and exit): −1 a full flush, 0 not known (no ``tlb``
        events, or not a TLB flush); empty for a result built without them.
    fanout : ndarray of int
        Per paired call, its fan-out: the calls one sender queued before its IPI send (or, with
        no ipi events, before its own local csd call) share an id.
    """

    path: str
    header: TraceHeader
    func: np.ndarray
    cls: np.ndarray
    sender: np.ndarray
    target: np.ndarray
    t_queue: np.ndarray
    t_entry: np.ndarray
    t_exit: np.ndarray
    ipi: np.ndarray
    queued: Counter[str]
    unpaired: Counter[tuple[str, str]]
    local_func: list[str]
    local_handler_ns: np.ndarray
    entries_without_queue: Counter[str]
    exits_without_entry: Counter[str]
    lost_events: int
    cpu_start: dict[int, float]
    wrapped: bool
    wrap_cut_ns: float | None
    events: int
    lines: int
    shootdowns: int = 0
    shootdowns_without_request: int = 0
    pages: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fanout: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def delivery_ns(self) -> np.ndarray:
        """Queue → handler entry, per paired call."""
        return self.t_entry - self.t_queue

    @property
    def handler_ns(self) -> np.ndarray:
        """Handler entry → exit."""
        return self.t_exit - self.t_entry

    @property
    def completion_ns(self) -> np.ndarray:
        """Queue → handler exit."""
        return self.t_exit - self.t_queue

    @property
    def paired(self) -> int:
        return len(self.t_queue)


def _fields(text: str) -> dict[str, str]:
    out = {}
    for tok in text.split():
        key, eq, val = tok.partition("=")
        if eq:
            out[key] = val.rstrip(",")
    return out


def _is_null(ptr: str) -> bool:
    if ptr in ("(null)", "(nil)"):
        return True
    try:
        return int(ptr, 16) == 0
    except ValueError:
        return False


def _symbol(name: str) -> str:
    # With the sym-offset option functions print as "flush_tlb_func+0x0/0x2a0".
    return name.split("+", 1)[0]


def _parse_header_line(header: TraceHeader, text: str) -> None:
    kind, _, rest = text.partition(" ")
    if kind in ("topology", "stats"):
        kv = _fields(rest)
        cpu = int(kv["cpu"])
        if kind == "topology":
            header.topology[cpu] = CpuTopology(
                _cpu_set(kv["thread_siblings"]) if "thread_siblings" in kv else None,
                _cpu_set(kv["llc"]) if "llc" in kv else None,
                int(kv["package"]) if "package" in kv else None,
            )
        elif kv.get("overrun", "?").isdigit():
            header.overrun[cpu] = int(kv["overrun"])
        return
    key, _, value = text.partition("=")
    header.values[key.strip()] = value.strip()


class _Clock:
    """Converts timestamp strings to ns, relative to the first one seen."""

    def __init__(self, path: str, header: TraceHeader, tsc_hz: float | None) -> None:
        self.path, self.header = path, header
        self.tsc_hz = tsc_hz
        self.raw: bool | None = None
        self.base: int | None = None

    def __call__(self, ts: str, lineno: int) -> float:
        raw = "." not in ts
        if self.raw is None:
            self.raw = raw
            # The header precedes the first event, so its tsc_hz is known by now.
            self.tsc_hz = self.tsc_hz or self.header.tsc_hz
            if raw and not self.tsc_hz:
                raise UserError(
                    f"{self.path}:{lineno}: timestamps are raw counter values (clock "
                    f"{self.header.clock}) and no TSC rate is known: add '{_HEADER_PREFIX} tsc_hz=…' "
                    "or pass --tsc-hz"
                )
        elif raw != self.raw:
            raise UserError(f"{self.path}:{lineno}: timestamp {ts!r} mixes raw and seconds formats")
        if raw:
            value = int(ts)
        else:
            sec, frac = ts.split(".")
            value = int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0"))
        if self.base is None:
            self.base = value
        if raw:
            return (value - self.base) * 1e9 / float(self.tsc_hz or 1.0)
        return float(value - self.base)


def parse_trace(path: str | Path, tsc_hz: float | None = None) -> TraceResult:
    """Parse one ftrace text file (``trace`` format or ``trace-cmd report`` output, optionally
    gzip-compressed) and pair it.

    Parameters
    ----------
    path : str or Path
        The trace file, usually written by ``mcsmp trace record``.
    tsc_hz : float, optional
        TSC rate for raw-cycle timestamps when the file has no ``tsc_hz`` header.

    Returns
    -------
    TraceResult

    Raises
    ------
    UserError
        Missing or unreadable file, an unparsable line (named by line number), raw timestamps
        without a rate, or no csd events at all.
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_TRACE_DAT_MAGIC))
        if magic == _TRACE_DAT_MAGIC:
            raise UserError(
                f"{path}: binary trace-cmd file; convert it with 'trace-cmd report {path} > FILE'"
            )
        # Compressed traces are read as they are: real traces compress about 20x.
        opener = gzip.open if magic.startswith(_GZIP_MAGIC) else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            return _Pairer(path, tsc_hz).run(f)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


_Open = tuple[str, str, float, "_Call | None"]


def _mark_open(stack: list[_Open], status: str) -> None:
    """Give open handlers' calls a final status unless they already have one."""
    for _, _, _, call in stack:
        if call is not None and not call.status:
            call.status = status


class _Pairer:
    """Single pass over the lines: header, then the pairing state machine."""

    def __init__(self, path: str, tsc_hz: float | None) -> None:
        self.path = path
        self.header = TraceHeader()
        self.clock = _Clock(path, self.header, tsc_hz)
        self.calls: list[_Call] = []
        self.pending: dict[tuple[str, int], _Call] = {}
        self.awaiting_ipi: dict[int, dict[int, _Call]] = defaultdict(dict)
        # Per CPU, the handlers that have entered and not exited: (csd, func, t_entry, call).
        self.open: dict[int, list[_Open]] = defaultdict(list)
        self.cpu_start: dict[int, float] = {}
        self.local_func: list[str] = []
        self.local_ns: list[float] = []
        self.no_queue: Counter[str] = Counter()
        self.no_entry_exit: Counter[str] = Counter()
        self.lost = 0
        self.annotated_wrap = False
        self.saw_ipi = False
        self.events = 0
        self.csd_events = 0
        self.shootdowns = 0  # tlb_flush "remote IPI send" events
        self.silent = 0  # ... that queued no flush_tlb_func csd before the sender's next one
        self.shootdown_open: dict[int, bool] = {}
        self.fanouts = 0  # fan-out ids handed out
        self.open_fanout: dict[int, int] = {}  # sender -> id of the fan-out it is queueing

    def run(self, lines: Iterable[str]) -> TraceResult:
        lineno = 0
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\n")
            if line.startswith(_HEADER_PREFIX):
                try:
                    _parse_header_line(self.header, line[len(_HEADER_PREFIX) :].strip())
                except (KeyError, ValueError):
                    raise UserError(f"{self.path}:{lineno}: bad header line {line[:80]!r}") from None
                continue
            m = _LINE.match(line)
            if m:
                self._event(m, lineno)
                continue
            stripped = line.strip()
            if stripped.startswith("#"):
                if _STARTED.match(stripped):
                    self.annotated_wrap = True
                elif (e := _ENTRIES.search(stripped)) is not None:
                    self.header.entries = (int(e["inbuf"]), int(e["written"]))
                    if (p := _ONLINE.search(stripped)) is not None:
                        self.header.values.setdefault("online_cpus", p["cpus"])
                continue
            if (lost := _LOST.match(stripped)) is not None:
                self._lost(int(lost["n"]), None if lost["cpu"] is None else int(lost["cpu"]))
                continue
            if not stripped or _IGNORED.match(stripped):
                continue
            raise UserError(f"{self.path}:{lineno}: cannot parse trace line {stripped[:80]!r}")
        if self.csd_events == 0:
            raise UserError(
                f"{self.path}: no csd events (csd_queue_cpu / csd_function_entry) in {lineno} lines"
            )
        return self._finish(lineno)

    def _event(self, m: re.Match[str], lineno: int) -> None:
        cpu, name = int(m["cpu"]), m["event"]
        t = self.clock(m["ts"], lineno)
        self.events += 1
        self.cpu_start.setdefault(cpu, t)
        if name.startswith("ipi_send_cpu"):
            self.saw_ipi = True
            self._ipi(cpu, name, _fields(m["fields"]))
            return
        if name == "tlb_flush":
            if _REMOTE_SEND in m["fields"]:
                self.shootdowns += 1
                self.silent += self.shootdown_open.get(cpu, False)  # the previous one queued nothing
                self.shootdown_open[cpu] = True
            elif (sd := _REMOTE_SHOOTDOWN.search(m["fields"])) is not None and self.open[cpu]:
                call = self.open[cpu][-1][3]  # the innermost handler running on this CPU
                if call is not None:
                    call.pages = int(sd["pages"])
            return
        if name not in _CSD_EVENTS:
            return
        self.csd_events += 1
        kv = _fields(m["fields"])
        try:
            func, csd = _symbol(kv["func"]), kv["csd"]
            if name == "csd_queue_cpu":
                self._queue(cpu, int(kv["cpu"]), func, csd, t)
            elif name == "csd_function_entry":
                self._entry(cpu, func, csd, t)
            else:
                self._exit(cpu, func, csd, t)
        except (KeyError, ValueError):
            raise UserError(f"{self.path}:{lineno}: malformed {name} fields {m['fields'][:80]!r}") from None

    def _queue(self, sender: int, target: int, func: str, csd: str, t: float) -> None:
        if func == "flush_tlb_func":
            self.shootdown_open[sender] = False
        call = _Call(func, sender, target, t)
        if sender not in self.open_fanout:
            self.open_fanout[sender] = self.fanouts
            self.fanouts += 1
        call.fanout = self.open_fanout[sender]
        self.calls.append(call)
        # The csd is locked until its target runs it, so a re-queue means the earlier queue
        # event will never see its own entry (see module docstring).
        old = self.pending.get((csd, target))
        if old is not None:
            old.status = "no_entry"
        self.pending[(csd, target)] = call
        waiting = self.awaiting_ipi[sender]
        if target in waiting:
            waiting[target].ipi = False
        waiting[target] = call

    def _ipi(self, sender: int, name: str, kv: dict[str, str]) -> None:
        # Only IPIs that make the target drain its call_single_queue; reschedule IPIs have
        # callback=0x0 and must not be credited to a queued csd.
        if "smp_call_function" not in kv.get("callback", ""):
            return
        self.open_fanout.pop(sender, None)  # the IPIs end a fan-out's queue phase
        targets = [int(kv["cpu"])] if name == "ipi_send_cpu" else _cpumask(kv.get("cpumask", ""))
        waiting = self.awaiting_ipi[sender]
        for target in targets:
            call = waiting.pop(target, None)
            if call is not None:
                call.ipi = True

    def _entry(self, cpu: int, func: str, csd: str, t: float) -> None:
        if _is_null(csd):
            self.open_fanout.pop(cpu, None)  # the sender's local call comes after its IPIs
            self.open[cpu].append((csd, func, t, None))
            return
        call = self.pending.pop((csd, cpu), None)
        if call is None:
            self.no_queue[func] += 1
        else:
            call.t_entry = t
            if call.func != func:
                call.status = "func_mismatch"
            elif t < call.t_queue:
                call.status = "negative_delay"
            elif call.t_queue < self.cpu_start[cpu]:
                call.status = "target_not_started"
        self.open[cpu].append((csd, func, t, call))

    def _exit(self, cpu: int, func: str, csd: str, t: float) -> None:
        stack = self.open[cpu]
        for depth in range(len(stack) - 1, -1, -1):
            if stack[depth][0] == csd:
                break
        else:
            self.no_entry_exit[func] += 1
            return
        # Handlers above the matching one never exited (their exit events were lost).
        _mark_open(stack[depth + 1 :], "no_exit")
        _, efunc, t_entry, call = stack[depth]
        del stack[depth:]
        if call is None:
            if _is_null(csd):
                self.local_func.append(efunc)
                self.local_ns.append(t - t_entry)
            return
        call.t_exit = t
        if not call.status:
            call.status = "paired"

    def _lost(self, n: int, cpu: int | None) -> None:
        """Forget every open call that involves the CPU whose events were lost."""
        self.lost += n
        for key, pend in list(self.pending.items()):
            if cpu is None or cpu in (pend.sender, pend.target):
                pend.status = "lost_events"
                del self.pending[key]
        for c, stack in self.open.items():
            if cpu is None or c == cpu:
                _mark_open(stack, "lost_events")
                stack.clear()
        for s, waiting in self.awaiting_ipi.items():
            if cpu is None or s == cpu:
                waiting.clear()

    def _finish(self, lines: int) -> TraceResult:
        for pend in self.pending.values():
            pend.status = "pending_at_end"
        for stack in self.open.values():
            _mark_open(stack, "no_exit")
        if not self.saw_ipi:
            for call in self.calls:
                call.ipi = None
        else:
            for call in self.calls:
                if call.ipi is None:
                    call.ipi = False
                if call.status == "no_entry" and not call.ipi:
                    call.status = "no_ipi_no_entry"
        wrapped = self.header.wrapped or self.annotated_wrap
        cut = max(self.cpu_start.values()) if wrapped and self.cpu_start else None
        if cut is not None:
            for call in self.calls:
                if call.t_queue < cut:
                    call.status = "wrapped"
        topo = self.header.topology
        good = [c for c in self.calls if c.status == "paired"]
        unpaired: Counter[tuple[str, str]] = Counter(
            (c.func, c.status) for c in self.calls if c.status != "paired"
        )
        return TraceResult(
            path=self.path,
            header=self.header,
            func=np.array([c.func for c in good], dtype=object),
            cls=np.array([distance_class(c.sender, c.target, topo) for c in good], dtype=object),
            sender=np.array([c.sender for c in good], dtype=np.int64),
            target=np.array([c.target for c in good], dtype=np.int64),
            t_queue=np.array([c.t_queue for c in good], dtype=float),
            t_entry=np.array([c.t_entry for c in good], dtype=float),
            t_exit=np.array([c.t_exit for c in good], dtype=float),
            ipi=np.array([-1 if c.ipi is None else int(c.ipi) for c in good], dtype=np.int8),
            queued=Counter(c.func for c in self.calls),
            unpaired=unpaired,
            local_func=self.local_func,
            local_handler_ns=np.array(self.local_ns, dtype=float),
            entries_without_queue=self.no_queue,
            exits_without_entry=self.no_entry_exit,
            lost_events=self.lost,
            cpu_start=dict(self.cpu_start),
            wrapped=wrapped,
            wrap_cut_ns=cut,
            events=self.events,
            lines=lines,
            shootdowns=self.shootdowns,
            shootdowns_without_request=self.silent + sum(self.shootdown_open.values()),
            pages=np.array([c.pages for c in good], dtype=np.int64),
            fanout=np.array([c.fanout for c in good], dtype=np.int64),
        )
