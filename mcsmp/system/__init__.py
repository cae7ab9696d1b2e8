"""The whole-machine discrete-event simulation (``mcsmp system``, docs/system.md).

- :mod:`.model`: parameters → the system kernel's arrays (reusing the fan-out packing);
- :mod:`.run`: replications × policies in a thread pool, merged bit-identically; throughput,
  race rates with exact Poisson intervals, histograms in the fan-out engine's format.
"""

from .model import SYSTEM_POLICIES, SystemModel, compile_system, system_key
from .run import PolicyRun, SystemResult, garwood, run_replication, simulate_system

__all__ = [
    "SYSTEM_POLICIES",
    "PolicyRun",
    "SystemModel",
    "SystemResult",
    "compile_system",
    "garwood",
    "run_replication",
    "simulate_system",
    "system_key",
]
