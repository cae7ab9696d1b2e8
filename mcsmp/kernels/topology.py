"""Where each CPU sits (docs/model.md §1 step 2, reading 9.15), shared by the compiled kernels."""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .codes import I_APIC_PER_SOCKET, I_CLUSTER_SIZE, I_PER_LLC, I_PER_SOCKET, I_SMT, I_SMT_SPLIT

__all__ = ["topology"]


@kernel
def topology(n: int, ip: np.ndarray):  # type: ignore[no-untyped-def]
    """``(socket_of, llc_of, core_of, cluster_of)`` of CPUs ``0..n-1``: cores numbered socket by
    socket, LLC by LLC; SMT siblings adjacent (``machine.smt_numbering: adjacent``: CPUs 2c, 2c + 1
    share core c) or split (``split``, x86 Linux's usual MADT order: thread 0 of every core first,
    so CPU t and t + cores are siblings; reading 9.15). The x2APIC cluster is the APIC id >> 4,
    ids padded to a power of two per package, siblings adjacent in APIC id (9.15)."""
    socket_of = np.empty(n, dtype=np.int64)
    llc_of = np.empty(n, dtype=np.int64)
    core_of = np.empty(n, dtype=np.int64)
    cluster_of = np.empty(n, dtype=np.int64)
    smt = ip[I_SMT]
    cores = n // smt
    for t in range(n):
        a = t  # the CPU's place in core order (its APIC-id order within the package)
        if ip[I_SMT_SPLIT] == 1 and smt > 1:
            a = (t % cores) * smt + t // cores
        socket_of[t] = a // ip[I_PER_SOCKET]
        llc_of[t] = a // ip[I_PER_LLC]
        core_of[t] = a // smt
        cluster_of[t] = (socket_of[t] * ip[I_APIC_PER_SOCKET] + a % ip[I_PER_SOCKET]) // ip[I_CLUSTER_SIZE]
    return socket_of, llc_of, core_of, cluster_of
