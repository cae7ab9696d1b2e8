"""Numba options live in mcsmp/_jit.py only (ARCH: the ``kernel`` decorator is the one place).

An AST scan of every module under ``mcsmp/`` except ``mcsmp/_jit.py`` rejects ``numba.njit``,
``numba.jit`` (as attributes, decorators or calls, under any alias of ``numba``), ``@njit``,
``@jit`` and ``from numba import njit/jit``. The scanner is checked on snippets that must and must
not be flagged, and every compiled function of the kernels carries the options of ``_jit``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import mcsmp
from mcsmp._jit import JIT_OPTIONS

PACKAGE = Path(mcsmp.__file__).parent
ALLOWED = PACKAGE / "_jit.py"
FORBIDDEN = {"njit", "jit"}


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Every use of numba's ``njit``/``jit`` in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    numba_aliases = {"numba"}
    bare: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "numba":
                    numba_aliases.add(a.asname or "numba")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "numba":
            for a in node.names:
                if a.name in FORBIDDEN:
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {a.name}")
                    bare.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in FORBIDDEN
            and isinstance(node.value, ast.Name)
            and node.value.id in numba_aliases
        ):
            found.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Name) and (target.id in FORBIDDEN or target.id in bare):
                    found.append(f"{filename}:{dec.lineno}: @{target.id}")
    return found


def package_sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != ALLOWED)


def test_no_numba_jit_outside_jit_module() -> None:
    files = package_sources()
    assert PACKAGE / "kernels" / "fanout.py" in files  # the scan sees the kernels
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert not found, "use mcsmp._jit.kernel instead of:\n" + "\n".join(found)


def test_jit_module_is_where_njit_lives() -> None:
    assert violations(ALLOWED.read_text()), "the scanner should see numba.njit in _jit.py"


@pytest.mark.parametrize(
    "snippet",
    [
        "import numba\n@numba.njit\ndef f(x): return x\n",
        "import numba\n@numba.njit(cache=True)\ndef f(x): return x\n",
        "import numba\n@numba.jit(nopython=True)\ndef f(x): return x\n",
        "import numba as nb\ng = nb.njit(lambda x: x)\n",
        "from numba import njit\n@njit\ndef f(x): return x\n",
        "from numba import jit\n@jit(nopython=True)\ndef f(x): return x\n",
        "from numba import njit as fast\n@fast\ndef f(x): return x\n",
        "@njit\ndef f(x): return x\n",
        "@jit\ndef f(x): return x\n",
    ],
)
def test_scanner_flags(snippet: str) -> None:
    assert violations(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "from .._jit import kernel\n@kernel\ndef f(x): return x\n",
        "import numba\nfrom numba import types\nT = numba.int64\n",
        "from numba.extending import intrinsic\n@intrinsic\ndef g(typingctx, x): pass\n",
        "njit_count = 3\n# numba.njit in a comment\ns = 'numba.njit'\n",
    ],
)
def test_scanner_accepts(snippet: str) -> None:
    assert violations(snippet) == []


def test_compiled_kernels_use_the_project_options() -> None:
    """Every Numba dispatcher defined in mcsmp.kernels was compiled with JIT_OPTIONS."""
    import numba.core.registry
    from numba.core.caching import NullCache

    import mcsmp.kernels as kernels_pkg

    seen = 0
    for info in pkgutil.iter_modules(kernels_pkg.__path__):
        module = importlib.import_module(f"mcsmp.kernels.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.py_func.__module__ == module.__name__:
                seen += 1
                for key, value in JIT_OPTIONS.items():
                    if key == "cache":  # not a target option: the dispatcher gets an on-disk cache
                        assert (not isinstance(obj._cache, NullCache)) == value, f"{module.__name__}.{name}: cache"
                    else:
                        assert obj.targetoptions.get(key) == value, f"{module.__name__}.{name}: {key}"
                assert obj.targetoptions.get("nopython") is True
    assert seen >= 5  # bucket, pick_row, draw, draw_residual, run_chunk, …
