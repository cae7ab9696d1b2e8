"""Where each CPU sits (docs/model.md §1 step 2, reading 9.15), shared by the compiled kernels."""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .codes import I_APIC_PER_SOCKET, I_CLUSTER_SIZE, I_PER_LLC, I_PER_SOCKET, I_SMT

__all__ = ["topology"]


@kernel
def topology(n: int, ip: np.ndarray):  # type: ignore[no-untyped-def]
    """``(socket_of, llc_of, core_of, cluster_of)`` of CPUs ``0..n-1``: ids numbered socket by
    socket, LLC by LLC, core by core, SMT siblings adjacent; the x2APIC cluster is the APIC id
    >> 4, with ids padded to a power of two per package (9.15)."""
    socket_of = np.empty(n, dtype=np.int64)
    llc_of = np.empty(n, dtype=np.int64)
    core_of = np.empty(n, dtype=np.int64)
    cluster_of = np.empty(n, dtype=np.int64)
    for t in range(n):
        socket_of[t] = t // ip[I_PER_SOCKET]
        llc_of[t] = t // ip[I_PER_LLC]
        core_of[t] = t // ip[I_SMT]
        cluster_of[t] = (socket_of[t] * ip[I_APIC_PER_SOCKET] + t % ip[I_PER_SOCKET]) // ip[I_CLUSTER_SIZE]
    return socket_of, llc_of, core_of, cluster_of
