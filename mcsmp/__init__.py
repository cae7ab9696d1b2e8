"""mcsmp: Monte Carlo latency estimator for Linux kernel IPI fan-outs and TLB shootdowns.

What is estimated is specified in ``docs/model.md``; the command line is described in the
README. The public API (the command line is built on it)::

    import mcsmp
    params = mcsmp.load("params/smoke.yaml")     # or a preset name: mcsmp.load("16core")
    result = mcsmp.run(params, samples=20000)    # one sweep point -> mcsmp.Result
    result.to_frame()                            # tidy rows, as summary.csv (needs pandas)
    mcsmp.sweep(params, out="results/smoke")     # every point, into a sweep folder

The layers, each importing only from those below it: ``kernels`` (compiled, trusted) ←
``dists`` ← ``config`` ← ``sim`` ← ``metrics`` ← ``io`` ← ``plots`` ← ``system`` ← ``sweeps`` /
``fidelity`` / ``trace`` ← ``api`` (this package) ← ``cli``.
"""

from ._version import __version__
from .api import (
    Result,
    SystemPoint,
    load,
    load_on_machine,
    points,
    presets,
    run,
    run_system,
    sweep,
    system_sweep,
)
from .config import Params, Point
from .errors import OverloadError, ParamError, UserError
from .metrics import METRICS, MetricRow

__all__ = [
    "METRICS",
    "MetricRow",
    "OverloadError",
    "ParamError",
    "Params",
    "Point",
    "Result",
    "SystemPoint",
    "UserError",
    "__version__",
    "load",
    "load_on_machine",
    "points",
    "presets",
    "run",
    "run_system",
    "sweep",
    "system_sweep",
]
