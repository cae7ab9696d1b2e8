"""Parameter files (docs/model.md §8): YAML in, validated immutable :class:`~.schema.Params` out.

The defaults live in ``mcsmp/config/defaults.yaml`` (every key, with its source); a user file
names only what it changes and is merged over them. Errors name the file, line, column and dotted
key path; unknown keys suggest the closest known key. Nothing here runs a simulation.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util import read_bounded
from ..dists import Dist, parse_dist
from ..dists.families import MAX_NUMBER
from ..errors import ParamError
from .schema import (
    ASYNC_CSDS,
    CALLER_CONTEXTS,
    CALLS,
    CSD_LOCKS,
    DISTANCE_CLASSES,
    PLACEMENTS,
    POLICIES,
    PREEMPTION_MODELS,
    SMT_NUMBERINGS,
    SYSTEM_WORKLOADS,
    TARGET_ORDERS,
    TLB_MECHANISMS,
    Background,
    Cache,
    Caller,
    Costs,
    Ipi,
    Kernel,
    Machine,
    Params,
    Policy,
    Reference,
    Remote,
    RemoteState,
    Report,
    System,
    Tlb,
    Workload,
)
from .yamlio import MAX_ITEMS, Located, parse_yaml

__all__ = [
    "MAX_CPUS",
    "MAX_FILE_BYTES",
    "MAX_SAMPLES",
    "RawParams",
    "apply_override",
    "build_params",
    "deepcopy_data",
    "load_raw",
    "raw_from_dict",
    "split_path",
]

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")

# Limits (docs/parameters.md, "Limits"); the YAML reader's own are in .yamlio.
MAX_FILE_BYTES = 1 << 20  # a parameter file
MAX_CPUS = MAX_ITEMS  # machine.cpus: 8192, Linux's largest NR_CPUS on x86-64 (MAXSMP); a per-CPU list fits
MAX_SAMPLES = 10**11  # fan-outs per point (1.5 M chunks)

# Keys whose value replaces the default whole instead of being merged key by key.
_OPAQUE = {
    "costs.entry_ns", "costs.queue_ns", "costs.irq_entry_ns", "costs.func_ns",
    "ipi.send_ns", "ipi.delivery_ns", "ipi.cross_socket_ns", "ipi.delivery_common_ns", "tlb.handler_fixed_ns",
    "tlb.invlpgb_ns", "tlb.tlbsync_ns", "costs.cond_ns",
    "remote.irq_off.length", "remote.idle.exit_ns", "remote.vcpu_preempted.length",
    "tlb.pages", "tlb.invlpg_ns", "tlb.full_flush_ns", "cache.page_walk_ns",
    "background", "report.reference", "sweep.grid", "sweep.zip", "workload.rate_hz",
    "workload.mm_cpus", "policies", "report.quantiles", "report.exceed_bins_ns",
    "system.work_ns", "system.scf_weights", "system.second_task_hz",
}  # fmt: skip


@dataclass
class RawParams:
    """A parameter file as plain data, with where each key came from."""

    data: dict[str, Any]
    source: str
    located: Located = field(repr=False)
    base_dir: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # dotted key -> origin ("--set")

    def locate(self, path: str) -> tuple[str | None, int | None, int | None]:
        for key, origin in self.overrides.items():
            below = path.startswith(key + ".") or path.startswith(key + "[")
            above = key.startswith(path + ".") or key.startswith(path + "[")  # an unknown parent key
            if path == key or below or above:
                return origin, None, None
        found = self.located.find(path)
        return (self.source, None, None) if found is None else found


def load_raw(path: str | Path, _including: tuple[Path, ...] = ()) -> RawParams:
    """Read a parameter file (YAML, safe loader) and the files it includes, without validating it."""
    p = Path(path)
    try:
        blob = read_bounded(p, MAX_FILE_BYTES)
    except OSError as exc:
        raise ParamError(f"cannot read parameter file: {exc.strerror}", source=str(p)) from None
    except ValueError as exc:
        raise ParamError(f"cannot read parameter file: {exc}", source=str(p)) from None
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = blob.count(b"\n", 0, exc.start) + 1
        col = exc.start - (blob.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ParamError(f"not UTF-8 text (byte 0x{blob[exc.start]:02x})", source=str(p), line=line, column=col) from None
    data, loc = parse_yaml(text, str(p))
    if not isinstance(data, dict):
        raise ParamError("a parameter file is a YAML mapping of keys", source=str(p), line=1, column=1)
    return _included(RawParams(data, str(p), loc, p.resolve().parent), (*_including, p.resolve()))


MAX_INCLUDE_DEPTH = 8


def _included(raw: RawParams, chain: tuple[Path, ...]) -> RawParams:
    """``raw`` with the files its ``include:`` names (a path or a list, relative to the file)
    merged underneath: a fragment gives values, the including file's own keys win, and mapping
    keys merge one by one (a distribution or a list is replaced whole, as over the defaults)."""
    if "include" not in raw.data:
        return raw
    spec = raw.data.pop("include")
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        _fail(raw, "include", f"expected a file name or a list of file names, got {spec!r}")
    below: dict[str, Any] = {}
    for i, name in enumerate(names):
        where = "include" if isinstance(spec, str) else f"include[{i}]"
        path = Path(name) if Path(name).is_absolute() or raw.base_dir is None else raw.base_dir / name
        if path.resolve() in chain:
            _fail(raw, where, f"include cycle: {name} is already being read ({' -> '.join(c.name for c in chain)})")
        if len(chain) > MAX_INCLUDE_DEPTH:
            _fail(raw, where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
        try:
            sub = load_raw(path, chain)
        except ParamError as exc:
            if exc.source == str(path) and exc.line is None:  # the file itself: blame the include line
                _fail(raw, where, f"{name}: {exc.message}")
            raise
        below = _overlay(below, sub.data, "")
        raw.located.includes.append(sub.located)
    raw.data = _overlay(below, raw.data, "")
    return raw


def _overlay(base: dict[str, Any], top: dict[str, Any], path: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        sub = f"{path}.{key}" if path else str(key)
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and sub not in _OPAQUE:
            out[key] = _overlay(old, value, sub)
        else:
            out[key] = value
    return out


def raw_from_dict(data: Mapping[str, Any], source: str, base_dir: str | Path | None = None) -> RawParams:
    """Plain data (e.g. a stored resolved parameter set) as :class:`RawParams`; errors name ``source``."""
    if not isinstance(data, Mapping):
        raise ParamError("stored parameters are not a mapping of keys", source=source)
    return RawParams(deepcopy_data(dict(data)), source, Located(source), Path(base_dir) if base_dir else None)


def _load_defaults() -> tuple[dict[str, Any], Located]:
    data, loc = parse_yaml(DEFAULTS_FILE.read_text(), str(DEFAULTS_FILE))
    return data, loc


_DEFAULTS: tuple[dict[str, Any], Located] | None = None


def defaults() -> dict[str, Any]:
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = _load_defaults()
    return _DEFAULTS[0]


def _merge(base: Any, user: Any, path: str, raw: RawParams) -> Any:
    """Merge ``user`` over ``base``; unknown keys are errors naming the closest known key."""
    if path in _OPAQUE or not isinstance(base, dict):
        return user
    if not isinstance(user, dict):
        _fail(raw, path, f"expected a mapping with keys {', '.join(map(str, base))}, got {user!r}")
    out = dict(base)
    for key, value in user.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in base:
            close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(map(str, base))}"
            _fail(raw, sub, f"unknown key{hint}")
        out[key] = _merge(base[key], value, sub, raw)
    return out


def _fail(raw: RawParams, path: str, message: str) -> None:
    source, line, col = raw.locate(path)
    raise ParamError(message, path=path, source=source, line=line, column=col)


# --------------------------------------------------------------------------------------------
# Overrides (--set key=value and sweep points)


_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)((?:\[[0-9]{1,9}\])*)")


def split_path(key: str) -> list[str | int]:
    """``a.b[2].c`` → ``["a", "b", 2, "c"]``; a ParamError (no location) for anything else."""
    parts: list[str | int] = []
    for segment in key.split(".") if isinstance(key, str) else [None]:
        m = _SEGMENT.fullmatch(segment) if segment is not None else None
        if not m:
            raise ParamError(f"{key!r} is not a key path (names joined by '.', list items as name[i])")
        parts.append(m[1])
        parts.extend(int(i) for i in re.findall(r"[0-9]+", m[2]))
    return parts


def apply_override(raw: RawParams, key: str, value: Any, origin: str = "--set") -> RawParams:
    """A copy of ``raw`` with dotted ``key`` set to ``value``.

    Missing mappings are created, and a missing list or mapping is first copied from the
    defaults (so ``policies[1]=...`` edits the default list); a list index must exist. Errors
    are ParamErrors naming ``key`` and ``origin``.
    """
    data = deepcopy_data(raw.data)
    parts = split_path(key)
    node: Any = data
    dflt: Any = defaults()
    here = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ParamError(f"{here} is not a list", path=key, source=origin)
            if part >= len(node):
                raise ParamError(f"index {part} is out of range ({here} has {len(node)} entries)", path=key, source=origin)
            here = f"{here}[{part}]"
        else:
            if not isinstance(node, dict):
                kind = f"a list: index it as {here}[i]" if isinstance(node, list) else "not a mapping"
                raise ParamError(f"{here} is {kind}", path=key, source=origin)
            here = f"{here}.{part}" if here else part
        dflt = dflt[part] if isinstance(dflt, (dict, list)) and _has(dflt, part) else None
        if i == len(parts) - 1:
            node[part] = value
            break
        if not _has(node, part) or not isinstance(node[part], (dict, list)):
            node[part] = deepcopy_data(dflt) if isinstance(dflt, (dict, list)) else {}
        node = node[part]
    overrides = dict(raw.overrides)
    overrides[key] = origin
    return RawParams(data, raw.source, raw.located, raw.base_dir, overrides)


def _has(node: dict[Any, Any] | list[Any], part: str | int) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and part < len(node)


def deepcopy_data(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: deepcopy_data(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deepcopy_data(x) for x in v]
    return v


class _Builder:
    """Reads typed values out of the merged data, failing with the key's location."""

    def __init__(self, data: dict[str, Any], raw: RawParams) -> None:
        self.data = data
        self.raw = raw

    def get(self, path: str) -> Any:
        node: Any = self.data
        for part in split_path(path):
            node = node[part]
        return node

    def fail(self, path: str, message: str) -> None:
        _fail(self.raw, path, message)

    def number(self, path: str, *, lo: float = 0.0, hi: float = math.inf, lo_open: bool = False) -> float:
        v = self.get(path)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(path, f"expected a number, got {v!r}")
        v = float(v)
        if not math.isfinite(v):
            self.fail(path, f"must be finite, got {v}")
        if abs(v) > MAX_NUMBER:
            self.fail(path, f"must be at most {MAX_NUMBER:g} in magnitude (the limit of any number), got {_fmt(v)}")
        if v < lo or (lo_open and v == lo) or v > hi:
            left = "(" if lo_open else "["
            self.fail(path, f"must be in {left}{_fmt(lo)}, {_fmt(hi)}], got {_fmt(v)}")
        return v

    def integer(self, path: str, *, lo: int = 0, hi: float = math.inf) -> int:
        v = self.get(path)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(path, f"expected an integer, got {v!r}")
        if v < lo or v > hi:
            self.fail(path, f"must be in [{lo}, {_fmt(hi)}], got {v}")
        return int(v)

    def boolean(self, path: str) -> bool:
        v = self.get(path)
        if not isinstance(v, bool):
            self.fail(path, f"expected true or false, got {v!r}")
        return bool(v)

    def choice(self, path: str, options: tuple[str, ...]) -> str:
        v = self.get(path)
        if v not in options:
            close = difflib.get_close_matches(str(v), options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.fail(path, f"must be one of {', '.join(options)}, got {v!r}{hint}")
        return str(v)

    def dist(self, path: str) -> Dist:
        try:
            return parse_dist(self.get(path), path, self.raw.base_dir)
        except ParamError as exc:
            source, line, col = self.raw.locate(exc.path or path)
            raise ParamError(exc.message, path=exc.path or path, source=source, line=line, column=col) from None

    def number_list(self, path: str, *, lo: float = 0.0, hi: float = math.inf, increasing: bool = False) -> tuple[float, ...]:
        v = self.get(path)
        if not isinstance(v, list) or not v:
            self.fail(path, f"expected a non-empty list of numbers, got {v!r}")
        out = tuple(self.number(f"{path}[{i}]", lo=lo, hi=hi) for i in range(len(v)))
        if increasing and any(b <= a for a, b in zip(out, out[1:], strict=False)):
            self.fail(path, "values must be strictly increasing")
        return out


def _fmt(x: float) -> str:
    if x == math.inf:
        return "inf"
    return f"{x:g}"


def build_params(raw: RawParams) -> Params:
    """Merge ``raw`` over the defaults and validate it into :class:`Params`."""
    data = _merge(defaults(), raw.data, "", raw)
    b = _Builder(data, raw)

    name = b.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        b.fail("name", f"expected a non-empty name without '/', got {name!r}")
    seed = b.integer("seed", lo=0, hi=2**63 - 1)
    samples = b.integer("samples", lo=1, hi=MAX_SAMPLES)

    pols = b.get("policies")
    if not isinstance(pols, list) or not pols:
        b.fail("policies", f"expected a non-empty list from {', '.join(POLICIES)}")
    policies = tuple(b.choice(f"policies[{i}]", POLICIES) for i in range(len(pols)))
    if len(set(policies)) != len(policies):
        b.fail("policies", "each policy may be listed once")

    cpus, sockets = b.integer("machine.cpus", lo=1, hi=MAX_CPUS), b.integer("machine.sockets", lo=1)
    if b.get("machine.cpus_per_llc") is None:  # null: one LLC per socket
        if cpus % sockets:
            b.fail("machine.sockets", f"{cpus} CPUs do not split evenly into {sockets} sockets")
        data["machine"] = {**data["machine"], "cpus_per_llc": cpus // sockets}
    machine = Machine(
        cpus=cpus,
        sockets=sockets,
        cpus_per_llc=b.integer("machine.cpus_per_llc", lo=1),
        smt=b.integer("machine.smt", lo=1),
        smt_numbering=b.choice("machine.smt_numbering", SMT_NUMBERINGS),
    )
    if machine.cpus % machine.sockets:
        b.fail("machine.sockets", f"{machine.cpus} CPUs do not split evenly into {machine.sockets} sockets")
    per_socket = machine.cpus // machine.sockets
    if per_socket % machine.cpus_per_llc:
        b.fail("machine.cpus_per_llc", f"{per_socket} CPUs per socket do not split into LLCs of {machine.cpus_per_llc}")
    if machine.cpus_per_llc % machine.smt:
        b.fail("machine.smt", f"an LLC of {machine.cpus_per_llc} CPUs does not split into cores of {machine.smt} threads")

    kernel = Kernel(
        preemption=b.choice("kernel.preemption", PREEMPTION_MODELS),
        csdlock_debug=b.boolean("kernel.csdlock_debug"),
        nr_cpus=b.integer("kernel.nr_cpus", lo=1, hi=2**31 - 1),
        tasks=b.integer("kernel.tasks", lo=0, hi=2**31 - 1),
        target_order=b.choice("kernel.target_order", TARGET_ORDERS),
        kernel_range_preemptible=b.boolean("kernel.kernel_range_preemptible"),
    )
    if kernel.nr_cpus < machine.cpus:
        b.fail("kernel.nr_cpus", f"NR_CPUS ({kernel.nr_cpus}) must be >= machine.cpus ({machine.cpus})")

    caller = Caller(*(b.number(f"workload.caller.{c}", hi=1.0) for c in CALLER_CONTEXTS))
    if abs(caller.preemptible + caller.spinlock + caller.preempt_disabled - 1.0) > 1e-9:
        b.fail("workload.caller", "fractions must sum to 1, got "
               f"{caller.preemptible + caller.spinlock + caller.preempt_disabled:g}")
    mm = b.get("workload.mm_cpus")
    mm_cpus = None if mm is None else b.integer("workload.mm_cpus", lo=0, hi=machine.cpus - 1)
    per_cpu = _per_cpu_list(b, "workload.rate_hz", machine.cpus)
    if per_cpu is not None:
        data["workload"] = {**data["workload"], "rate_hz": per_cpu}
        rates = tuple(b.number(f"workload.rate_hz[{i}]") for i in range(machine.cpus))
    else:
        rates = (b.number("workload.rate_hz"),) * machine.cpus
    if sum(rates) <= 0:
        b.fail("workload.rate_hz", "at least one CPU must issue calls (rate > 0)")
    workload = Workload(
        call=b.choice("workload.call", CALLS),
        mm_cpus=mm_cpus,
        target_prob=b.number("workload.target_prob", hi=1.0),
        run_local=b.boolean("workload.run_local"),
        rate_hz=rates,
        rate_per_cpu=per_cpu is not None,
        caller=caller,
        freed_tables_prob=b.number("workload.freed_tables_prob", hi=1.0),
    )
    if workload.call == "single" and machine.cpus < 2:  # smp_call_function_single() needs another CPU
        b.fail("workload.call", f"single needs a target CPU other than the sender (machine.cpus is {machine.cpus})")
    costs = Costs(
        entry_ns=b.dist("costs.entry_ns"),
        queue_ns=b.dist("costs.queue_ns"),
        irq_entry_ns=b.dist("costs.irq_entry_ns"),
        func_ns=b.dist("costs.func_ns"),
        context_switch_ns=b.number("costs.context_switch_ns"),
        cond_ns=b.dist("costs.cond_ns"),
    )
    ipi = Ipi(
        mode=b.choice("ipi.mode", ("physical", "cluster")),
        cluster_size=b.integer("ipi.cluster_size", lo=1),
        send_ns=b.dist("ipi.send_ns"),
        delivery_ns=b.dist("ipi.delivery_ns"),
        cross_socket_ns=b.dist("ipi.cross_socket_ns"),
        shorthand=b.boolean("ipi.shorthand"),
        delivery_common_ns=b.dist("ipi.delivery_common_ns"),
        pv_tlb_flush=b.boolean("ipi.pv_tlb_flush"),
        sender_preempt_hz=b.number("ipi.sender_preempt_hz"),
    )
    remote = Remote(
        irq_off=RemoteState(b.number("remote.irq_off.fraction", hi=1.0), b.dist("remote.irq_off.length")),
        idle=RemoteState(
            b.number("remote.idle.fraction", hi=1.0), b.dist("remote.idle.exit_ns"),
            b.number("remote.idle.polling_prob", hi=1.0),
        ),
        vcpu_preempted=RemoteState(
            b.number("remote.vcpu_preempted.fraction", hi=1.0), b.dist("remote.vcpu_preempted.length")
        ),
    )
    frac = remote.irq_off.fraction + remote.idle.fraction + remote.vcpu_preempted.fraction
    if frac > 1.0 + 1e-12:
        b.fail("remote", f"irq_off, idle and vcpu_preempted fractions sum to {frac:g}, past 1")
    tlb = Tlb(
        pages=b.dist("tlb.pages"),
        ceiling_pages=b.integer("tlb.ceiling_pages", lo=0),
        invlpg_ns=b.dist("tlb.invlpg_ns"),
        full_flush_ns=b.dist("tlb.full_flush_ns"),
        info_bytes=b.integer("tlb.info_bytes", lo=1, hi=64),
        handler_fixed_ns=b.dist("tlb.handler_fixed_ns"),
        mechanism=b.choice("tlb.mechanism", TLB_MECHANISMS),
        invlpgb_ns=b.dist("tlb.invlpgb_ns"),
        invlpgb_count_max=b.integer("tlb.invlpgb_count_max", lo=1, hi=65536),
        tlbsync_ns=b.dist("tlb.tlbsync_ns"),
    )
    cache = Cache(
        placement=b.choice("cache.placement", PLACEMENTS),
        transfer_ns=tuple(b.number(f"cache.transfer_ns.{c}") for c in DISTANCE_CLASSES),  # type: ignore[arg-type]
        line_serialize_ns=b.number("cache.line_serialize_ns"),
        false_sharing_prob=b.number("cache.false_sharing_prob", hi=1.0),
        stack_tlb_miss_prob=b.number("cache.stack_tlb_miss_prob", hi=1.0),
        page_walk_ns=b.dist("cache.page_walk_ns"),
    )
    policy = Policy(
        alloc_ns=b.number("policy.alloc_ns"),
        alloc_fail_prob=b.number("policy.alloc_fail_prob", hi=1.0),
        cpus_read_lock_ns=b.number("policy.cpus_read_lock_ns"),
        reentry=_reentry(b),
    )
    bg = b.get("background")
    if bg is None:
        bg = []
    if not isinstance(bg, list):
        b.fail("background", "expected a list of {name, rate_hz, length}")
    backgrounds, bg = [], list(bg)
    data["background"] = bg  # a copy: per-CPU patterns are expanded in it
    for i, item in enumerate(bg):
        p = f"background[{i}]"
        if not isinstance(item, dict):
            b.fail(p, "expected a mapping {name, rate_hz, length}")
        for key in item:
            if key not in ("name", "rate_hz", "length"):
                close = difflib.get_close_matches(str(key), ["name", "rate_hz", "length"], n=1)
                b.fail(f"{p}.{key}", "unknown key" + (f"; did you mean {close[0]!r}?" if close else ""))
        for key in ("name", "rate_hz", "length"):
            if key not in item:
                b.fail(p, f"missing key {key!r}")
        if not isinstance(item["name"], str) or not item["name"]:
            b.fail(f"{p}.name", f"expected a non-empty name, got {item['name']!r}")
        listed = _per_cpu_list(b, f"{p}.rate_hz", machine.cpus)
        if listed is not None:  # per CPU, like workload.rate_hz
            bg[i] = {**item, "rate_hz": listed}
            per = tuple(b.number(f"{p}.rate_hz[{j}]") for j in range(machine.cpus))
            backgrounds.append(Background(str(item["name"]), max(per), b.dist(f"{p}.length"), per))
        else:
            backgrounds.append(Background(str(item["name"]), b.number(f"{p}.rate_hz"), b.dist(f"{p}.length")))

    quantiles = b.number_list("report.quantiles", lo=0.0, hi=1.0)
    if any(q <= 0 or q >= 1 for q in quantiles):
        b.fail("report.quantiles", "quantiles must be strictly between 0 and 1")
    report = Report(
        quantiles=quantiles,
        window_s=b.number("report.window_s", lo=0.0, lo_open=True),
        duration_h=b.number("report.duration_h", lo=0.0, lo_open=True),
        exceed_bins_ns=b.number_list("report.exceed_bins_ns", increasing=True),
        precision_bits=b.integer("report.precision_bits", lo=1, hi=12),
        reference=_reference(b, machine, data),
        rare_events=_rare_events(b),
    )
    if len(report.exceed_bins_ns) < 2:
        b.fail("report.exceed_bins_ns", "needs at least two edges (one bin)")
    _check_sweep(b)
    system = _system(b, machine)
    if data.get("system") == defaults()["system"]:
        del data["system"]  # unused: out of the resolved parameters, their hashes and point ids
    idle = data["remote"]["idle"]
    if not idle.get("polling_prob"):  # issue 10's key at its default 0: old point ids and streams stand
        data["remote"] = {**data["remote"], "idle": {k: v for k, v in idle.items() if k != "polling_prob"}}
    if not data["ipi"].get("sender_preempt_hz"):  # the same for 9.39's key at its default 0
        data["ipi"] = {k: v for k, v in data["ipi"].items() if k != "sender_preempt_hz"}
    return Params(
        name=name, seed=seed, samples=samples, policies=policies, machine=machine, kernel=kernel,
        workload=workload, costs=costs, ipi=ipi, remote=remote, tlb=tlb, cache=cache, policy=policy,
        background=tuple(backgrounds), report=report, resolved=data, system=system,
    )  # fmt: skip


MAX_REPLICATIONS = 100_000


def _second_task_rates(b: _Builder, cpus: int) -> tuple[float, ...]:
    listed = _per_cpu_list(b, "system.second_task_hz", cpus)
    if listed is None:
        return (b.number("system.second_task_hz", hi=1e7),) * cpus
    b.data["system"] = {**b.data["system"], "second_task_hz": listed}
    return tuple(b.number(f"system.second_task_hz[{i}]", hi=1e7) for i in range(cpus))


def _system(b: _Builder, machine: Machine) -> System:
    """The ``system`` section (docs/system.md), checked here like every other key."""
    threads = b.get("system.threads")
    weights = b.get("system.scf_weights")
    if weights is None:  # scftorture's defaults (NUMBERS §10): single 2n + rpc 2n async, wait 2n; many/all 2+1 each
        n = machine.cpus
        scf = (2.0 * n, 4.0 * n, 3.0, 3.0)
    else:
        if not isinstance(weights, list) or len(weights) != 4:
            b.fail("system.scf_weights", "expected null or 4 weights [single_sync, single_async, many_sync, many_async]")
        scf = tuple(b.number(f"system.scf_weights[{i}]") for i in range(4))  # type: ignore[assignment]
        if sum(scf) <= 0:
            b.fail("system.scf_weights", "at least one weight must be > 0")
    duration = b.number("system.duration_s", lo=0.0, hi=3600.0, lo_open=True)
    warmup = b.number("system.warmup_s", hi=3600.0)
    if warmup >= duration:
        b.fail("system.warmup_s", f"must be below system.duration_s ({duration:g} s), got {warmup:g}")
    return System(
        workload=b.choice("system.workload", SYSTEM_WORKLOADS),
        threads=machine.cpus if threads is None else b.integer("system.threads", lo=1, hi=machine.cpus),
        work_ns=b.dist("system.work_ns"),
        second_task_hz=_second_task_rates(b, machine.cpus),
        async_csd=b.choice("system.async_csd", ASYNC_CSDS),
        csd_lock=b.choice("system.csd_lock", CSD_LOCKS),
        lock_window_ns=b.number("system.lock_window_ns", hi=1e6),
        scf_weights=scf,  # type: ignore[arg-type]
        duration_s=duration,
        warmup_s=warmup,
        replications=b.integer("system.replications", lo=1, hi=MAX_REPLICATIONS),
        hotplug_interval_s=b.number("system.hotplug_interval_s", hi=3600.0),
    )


def _rare_events(b: _Builder) -> str:
    # YAML 1.1 reads a bare `off` as false, as for policy.reentry
    if b.get("report.rare_events") is False:
        return "off"
    return b.choice("report.rare_events", ("auto", "off"))


def _reentry(b: _Builder) -> str:
    # YAML 1.1 reads a bare `off` as false: accept it as the 'off' it was meant to be.
    if b.get("policy.reentry") is False:
        return "off"
    return b.choice("policy.reentry", ("bound", "off"))


def _per_cpu_list(b: _Builder, path: str, cpus: int) -> list[Any] | None:
    """A per-CPU value as ``cpus`` entries: a list of exactly ``cpus`` entries, or ``{repeat: [..]}``
    (CPU c takes entry c mod len); ``None`` for a single number."""
    v = b.get(path)
    if isinstance(v, dict):
        if set(v) != {"repeat"}:
            b.fail(path, f"a per-CPU pattern is written {{repeat: [...]}}, got keys {', '.join(map(str, v))}")
        pattern = v["repeat"]
        if not isinstance(pattern, list) or not pattern:
            b.fail(f"{path}.repeat", f"expected a non-empty list of numbers, got {pattern!r}")
        for i in range(len(pattern)):
            b.number(f"{path}.repeat[{i}]")
        return [pattern[c % len(pattern)] for c in range(cpus)]
    if not isinstance(v, list):
        return None
    if len(v) != cpus:
        b.fail(path, f"a per-CPU list needs machine.cpus = {cpus} entries, got {len(v)} "
               "(write {repeat: [...]} for a pattern that repeats over any CPU count)")  # fmt: skip
    return v


def _reference(b: _Builder, machine: Machine, data: dict[str, Any]) -> Reference | None:
    """``report.reference``, or ``None`` at a swept CPU count other than the one it was measured on."""
    ref = b.get("report.reference")
    if ref is None:
        return None
    if not isinstance(ref, dict):
        b.fail("report.reference", "expected a mapping with window_max_ns and/or exceed_count")
    for key in ref:
        if key not in ("cpus", "window_max_ns", "exceed_count"):
            b.fail(f"report.reference.{key}", "unknown key; known keys: cpus, window_max_ns, exceed_count")
    for key in ("window_max_ns", "exceed_count"):
        if ref.get(key) is not None and not isinstance(ref[key], dict):
            b.fail(f"report.reference.{key}", f"expected a mapping, got {ref[key]!r}")
    wm_items = (ref.get("window_max_ns") or {}).items()
    lengths = {len(v) for _, v in wm_items if isinstance(v, list)}
    swept = any(k in ("machine", "machine.cpus") for k in b.raw.overrides)  # set by a sweep or --set
    if "cpus" in ref:
        measured = b.integer("report.reference.cpus", lo=1)
    elif swept:  # the length of its per-CPU lists
        if len(lengths) != 1:
            b.fail("report.reference", "machine.cpus is swept: give report.reference.cpus, the CPU count it was measured on")
        measured = lengths.pop()
    else:
        measured = machine.cpus
    if measured != machine.cpus:  # measured values apply only to the CPU count they were measured on
        data["report"] = {**data["report"], "reference": None}
        return None
    wm: list[tuple[float, tuple[float, ...]]] = []
    for q, values in wm_items:
        path = f"report.reference.window_max_ns.{q}"
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            b.fail(path, f"the key is a quantile in (0, 1), got {q!r}")
        vals = _numbers_at(b, path, values)
        if len(vals) != machine.cpus:
            b.fail(path, f"a per-CPU list needs machine.cpus = {machine.cpus} entries, got {len(vals)}")
        wm.append((float(q), vals))
    ec: list[tuple[int, tuple[float, ...]]] = []
    n_bins = len(b.get("report.exceed_bins_ns")) - 1
    for cpu, counts in (ref.get("exceed_count") or {}).items():
        path = f"report.reference.exceed_count.{cpu}"
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < machine.cpus:
            b.fail(path, f"the key is a CPU id in [0, {machine.cpus - 1}], got {cpu!r}")
        vals = _numbers_at(b, path, counts)
        if len(vals) != n_bins:
            b.fail(path, f"expected {n_bins} counts (one per report.exceed_bins_ns bin), got {len(vals)}")
        ec.append((cpu, vals))
    return Reference(tuple(sorted(wm)), tuple(sorted(ec)))


def _numbers_at(b: _Builder, path: str, values: Any) -> tuple[float, ...]:
    """A list of non-negative numbers under a key that is itself a number (no path lookup)."""
    if not isinstance(values, list) or not values:
        b.fail(path, f"expected a non-empty list of numbers, got {values!r}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            b.fail(f"{path}[{i}]", f"expected a finite number >= 0, got {v!r}")
    return tuple(float(v) for v in values)


def _check_sweep(b: _Builder) -> None:
    sweep = b.get("sweep")
    for kind in ("grid", "zip"):
        axes = sweep.get(kind) or {}
        if not isinstance(axes, dict):
            b.fail(f"sweep.{kind}", "expected a mapping of dotted key -> list of values")
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                b.fail(f"sweep.{kind}.{key}", "expected a non-empty list of values")
    zips = sweep.get("zip") or {}
    lengths = {len(v) for v in zips.values()}
    if len(lengths) > 1:
        b.fail("sweep.zip", f"zip lists must have equal lengths, got {sorted(lengths)}")
