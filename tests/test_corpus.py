"""The regression corpus of issue 13 (tests/data/corpus/): every reproducer fails with one line.

``cases.tsv`` lists each case: the command line (``{dir}`` is a copy of the corpus folder with
two FIFOs added, ``{base}`` its small valid ``base.yaml``) and a fragment of the one stderr line
it must give. Each case runs the CLI in-process: exit status 2, nothing on stdout, exactly one
line ``mcsmp: ...`` on stderr. Two former segfaults also run as subprocesses (exit 2, no
traceback), and the million-element list and grid must fail quickly.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mcsmp
from mcsmp.cli import main
from mcsmp.errors import ParamError

CORPUS = Path(__file__).parent / "data" / "corpus"
CASES = [line.split("\t") for line in (CORPUS / "cases.tsv").read_text().splitlines() if not line.startswith("#")]


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    shutil.copytree(CORPUS, d)
    for fifo in ("fifo.yaml", "fifo.csv"):
        os.mkfifo(d / fifo)
    return d


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    assert err.startswith("mcsmp: ") and "Traceback" not in err
    return err[:-1]


@pytest.mark.parametrize(("case", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_corpus_case(case: str, argv: str, fragment: str, corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(dir=corpus_dir, base=corpus_dir / "base.yaml") for a in shlex.split(argv)]
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2 and out == "", (status, out)
    line = _one_line(err)
    assert fragment in line, line
    if len(args) == 2 and args[1].startswith(str(corpus_dir)):
        assert line.startswith(f"mcsmp: {args[1]}:"), line  # the file is named (with line:col when known)


@pytest.mark.parametrize("case", ["segfault_pareto", "segfault_lognormal"])
def test_former_segfaults_exit_2(case: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "mcsmp", "run", str(CORPUS / f"{case}.yaml"), "--samples", "2000"],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 2, proc
    _one_line(proc.stderr)


def test_million_element_list_and_grid_fail_fast(tmp_path: Path) -> None:
    big = "[" + ",".join(["1"] * 1_000_000) + "]"
    (tmp_path / "list.yaml").write_text(f"workload: {{rate_hz: {big}}}\n")
    cases = [
        (lambda: mcsmp.load(tmp_path / "list.yaml"), "larger than the limit of 1,048,576 bytes"),
        (lambda: mcsmp.load(CORPUS / "base.yaml", [f"workload.rate_hz={big}"]), "longer than the limit of 1,048,576"),
        (lambda: mcsmp.load(CORPUS / "base.yaml", [f"workload.rate_hz={big[:1_000_000]}]"]), "longer than the limit of 8,192"),
        (lambda: mcsmp.load(CORPUS / "grid_million.yaml"), "1,000,000 sweep points"),
        (lambda: mcsmp.load(CORPUS / "base.yaml", ["seed=" + ",".join(map(str, range(1_000_000)))]), "longer than the"),
        (lambda: mcsmp.load(CORPUS / "base.yaml", ["seed=" + ",".join(["1"] * 500_000)]), "over the limit of 8,192"),
    ]
    for load, fragment in cases:
        started = time.perf_counter()
        with pytest.raises(ParamError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
            load()
        elapsed = time.perf_counter() - started
        print(f"{fragment}: {elapsed:.3f} s")
        # A regression guard, not a tolerance on results: before, these took 43 s and > 60 s.
        assert elapsed < 5.0, (fragment, elapsed)
