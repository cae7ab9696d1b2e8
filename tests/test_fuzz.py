"""Fuzzing the loader and ``--set`` (issue 13): exit 0, or exit 2 with one stderr line.

Hypothesis mutates the shipped parameter files — bytes (non-UTF-8, control characters, YAML
syntax and tag fragments) and structure (any key set to any value or distribution, keys removed
or added) — and ``--set`` texts, and runs ``mcsmp check`` in-process on each. Any other outcome
(an exception, a warning turned error, two lines, another status) fails. ``make test`` runs a
few dozen derandomized examples per test; ``make fuzz`` sets ``MCSMP_FUZZ_EXAMPLES`` (10,000)
and runs random ones, printing how many files it checked and how long it took.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcsmp.cli import main

ROOT = Path(__file__).resolve().parents[1]
FUZZ = int(os.environ.get("MCSMP_FUZZ_EXAMPLES", "0"))  # make fuzz: 10,000
SETTINGS = settings(
    max_examples=FUZZ or 40, derandomize=not FUZZ, database=None, deadline=None,
    suppress_health_check=list(HealthCheck), print_blob=True,
)  # fmt: skip


def _base(name: str) -> str:
    data = yaml.safe_load((ROOT / "params" / name).read_text())
    if name == "16core.yaml":  # keep a small sweep: each check validates every point
        data["sweep"] = {"grid": {"kernel.preemption": ["full", "rt"]}}
    return yaml.safe_dump(data, sort_keys=False)


BASES = [_base(n) for n in ("smoke.yaml", "seed-16core.yaml", "16core.yaml")]
DEFAULTS = yaml.safe_load((ROOT / "mcsmp" / "config" / "defaults.yaml").read_text())


def _paths(node: Any, prefix: str = "") -> list[str]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, f"{prefix}[{i}]")
    return out


KEY_PATHS = sorted(set(_paths(DEFAULTS)))
TOKENS = [
    b"\xe9", b"\xff\xfe", b"\x00", b"\x01", b"\x1b", b"\t", b"\r", b"\n", b"\n  ", b": ", b"- ", b"[", b"]", b"{", b"}",
    b",", b"&a ", b"*a", b"*b", b"&b [*a, *a, *a]", b"!!int ", b"!!float ", b"!!bool ", b"!!str ", b"!!binary ",
    b"!!python/name:os.system ", b"!x ", b"<<: ", b"? ", b"|", b">", b"'", b'"', b"#", b"---\n", b"...\n", b"%YAML 1.1\n",
    b"1e400", b"-1", b"0", b".nan", b".inf", b"9" * 30, b"1.0e-300", b"null", b"~", b"yes", b"2001-01-01",
]  # fmt: skip
FAMILY_KEYS = ["value", "low", "high", "mean", "median", "sigma", "cv", "scale", "shape", "alpha", "values", "weights",
               "quantiles", "file", "column", "components", "weight"]  # fmt: skip
FAMILIES = ["const", "uniform", "exponential", "lognormal", "gamma", "weibull", "pareto", "choice", "empirical",
            "mixture", "nope"]  # fmt: skip

numbers = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1.0000001, 1e-200, 1e-308, 5e-324, 1e18, 1e19, 1e200, 1.7e308, 2**63, -(2**63), 0.5]),
)  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6),
                    st.sampled_from(["ok.csv", "/dev/zero", "fifo.csv", "ok.csv\0x", "full", "rt", "preempt_off"]))
dists = st.fixed_dictionaries(
    {"dist": st.sampled_from(FAMILIES)},
    optional={k: st.one_of(numbers, st.lists(numbers, max_size=3), st.dictionaries(numbers, numbers, max_size=3),
                           scalars) for k in FAMILY_KEYS},
)  # fmt: skip
values = st.recursive(
    st.one_of(scalars, dists),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEY_PATHS), scalars), inner, max_size=4)),
    max_leaves=8,
)  # fmt: skip


@st.composite
def files(draw: st.DrawFn) -> bytes:
    data = yaml.safe_load(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):  # structural edits
        path = draw(st.sampled_from(KEY_PATHS)).replace("[", ".[").split(".")
        node = data
        for part in path[:-1]:
            if part.startswith("["):
                break
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and not path[-1].startswith("["):
            if draw(st.booleans()):
                node[path[-1]] = draw(values)
            else:
                node.pop(path[-1], None)
    try:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    except (yaml.YAMLError, ValueError, OverflowError):
        text = yaml.safe_dump({"name": "x"}).encode()
    for _ in range(draw(st.integers(0, 4))):  # byte edits
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        payload = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=4)))
        text = text[:at] + payload + text[at + cut:]
    return text


def _contract(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = exc.code
    if status == 0:
        assert err.getvalue() == "" and out.getvalue(), (argv, err.getvalue())
        return
    text = err.getvalue()
    assert status == 2, (argv, status, text)
    assert text.startswith("mcsmp: ") and text.count("\n") == 1 and text.endswith("\n"), (argv, text)
    assert "Traceback" not in text and out.getvalue() == "", (argv, text)


class _Stats:
    def __init__(self) -> None:
        self.n = 0
        self.started = time.perf_counter()

    def report(self, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"\nfuzz {what}: {self.n:,} generated inputs checked in {elapsed:.1f} s, no misbehaviour")


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "ok.csv").write_text("ns\n100\n200\n400\n")
    os.mkfifo(tmp_path / "fifo.csv")
    return tmp_path


def test_fuzz_loader(tmp_path: Path) -> None:
    work, stats = _workdir(tmp_path), _Stats()

    @SETTINGS
    @given(files())
    def check_file(text: bytes) -> None:
        stats.n += 1
        path = work / "fuzz.yaml"
        path.write_bytes(text)
        _contract(["check", str(path)])

    check_file()
    stats.report("loader")


keys = st.one_of(
    st.sampled_from(KEY_PATHS),
    st.builds(lambda k, junk, at: k[:at] + junk + k[at:], st.sampled_from(KEY_PATHS),
              st.sampled_from([".", "..", "[", "]", "[]", "[0]", "[9]", "[x]", "=", ",", " ", "sweep.", "\0"]),
              st.integers(0, 40)),
    st.text(max_size=8),
)  # fmt: skip
set_values = st.one_of(
    st.sampled_from(["16,32", "16,,32", ",", "[16,32]", "&a [*a]", "[" * 60 + "]" * 60, "7" * 5000, "!!int x", "{a: 1",
                     "null", "1e30", "'", "a\x01", "9" * 25, "[1,2],[3]", "{dist: pareto, scale: 1, alpha: 1.01}"]),
    values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()),
)  # fmt: skip


def test_fuzz_set(tmp_path: Path) -> None:
    work, stats = _workdir(tmp_path), _Stats()
    base = work / "base.yaml"
    base.write_text("samples: 2000\nmachine: {cpus: 4, cpus_per_llc: 4}\n")

    @SETTINGS
    @given(st.lists(st.tuples(keys, set_values), min_size=1, max_size=3),
           st.lists(st.sampled_from(["--samples", "--seed", "--threads"]).flatmap(
               lambda o: st.tuples(st.just(o), st.sampled_from(["1e30", "2**63", "-1", "0", "1e4", "x", "9" * 30]))),
               max_size=2))  # fmt: skip
    def check_set(sets: list[tuple[str, str]], options: list[tuple[str, str]]) -> None:
        stats.n += 1
        argv = ["check", str(base)]
        for key, value in sets:
            argv += ["--set", f"{key}={value}"]
        for opt in options:
            argv += list(opt)
        _contract(argv)

    check_set()
    stats.report("--set")
