"""The package's layout is a pipeline: each layer imports only from the layers below it.

Every ``import`` in ``mcsmp/`` (function-level ones too) is read with :mod:`ast`, resolved to the
module it names, and checked against :data:`LAYERS`; the module graph must have no cycle. The
public API must be what the README shows, and every metric the engine computes must be
registered (and every registered metric computed), so no list elsewhere can drift from it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mcsmp
from mcsmp.metrics import METRICS, compute_metrics

ROOT = Path(mcsmp.__file__).resolve().parent

# Lowest first. A module may import from its own package and from any lower layer; packages that
# share a layer are independent wings and may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("mcsmp._version", "mcsmp._util", "mcsmp.errors", "mcsmp._jit"),
    ("mcsmp.kernels",),
    ("mcsmp.dists",),
    ("mcsmp.config",),
    ("mcsmp.sim",),
    ("mcsmp.metrics",),
    ("mcsmp.io",),
    ("mcsmp.plots",),
    ("mcsmp.system",),  # the whole-machine simulation; its sweep folders are in mcsmp.sweeps
    ("mcsmp.sweeps", "mcsmp.fidelity", "mcsmp.trace"),
    ("mcsmp",),  # the public API: mcsmp/__init__.py and mcsmp/api.py
    ("mcsmp.cli",),
    ("mcsmp.__main__",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> tuple[int, str]:
    """(layer, unit) of a module: the unit is the package (or top-level module) it belongs to."""
    best: tuple[int, str] | None = None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (rank, unit)
    assert best is not None, f"{module} is in no layer of LAYERS: add it"
    return best


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "mcsmp"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "mcsmp":
                    continue
                # "from pkg import module" names a module when that module exists
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    is_module = (ROOT.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                        ROOT.parent / Path(*sub.split(".")) / "__init__.py"
                    ).exists()
                    found.add(sub if is_module else target)
        graph[name] = found - {name}
    return graph


def test_every_import_points_down_the_layers() -> None:
    bad = []
    for module, targets in _imports().items():
        rank, unit = _unit(module)
        for target in targets:
            t_rank, t_unit = _unit(target)
            if t_rank > rank or (t_rank == rank and t_unit != unit and rank > 0):
                bad.append(f"{module} imports {target} (layer {t_rank} {t_unit} from layer {rank} {unit})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle() -> None:
    graph = _imports()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_layers_name_every_module() -> None:
    for module in _imports():
        _unit(module)  # fails for a module outside every layer


def test_public_api() -> None:
    for name in ("load", "run", "sweep", "points", "presets", "Params", "Result", "METRICS", "__version__"):
        assert name in mcsmp.__all__ and hasattr(mcsmp, name), name


def test_the_metric_registry_is_complete(tiny_result) -> None:  # type: ignore[no-untyped-def]
    computed = {r.metric for r in compute_metrics(tiny_result)}
    assert computed == set(METRICS), (computed ^ set(METRICS))
    for m in METRICS.values():
        assert m.kind in ("sampled", "derived", "analytic") and m.unit
        assert m.name.endswith("_ns") == (m.unit == "ns"), m.name  # the suffix tells the unit


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("arch") / "tiny.yaml"
    path.write_text(
        "name: tiny\nsamples: 3000\npolicies: [preempt_off, preemptible_wait, atomic_alloc, cpus_read_lock]\n"
        "machine: {cpus: 4, cpus_per_llc: 4}\nworkload: {rate_hz: [100, 10, 10, 100]}\n"
    )
    return mcsmp.run(mcsmp.load(path)).result
