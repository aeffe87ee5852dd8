"""The names of collectives: the torch operation the user called, whatever the backend runs underneath.

Every spelling a trace uses — ``c10d::_allgather_base_``, ``record_param_comms`` "_allgather_base", the
``nccl:_all_gather_base`` annotation, ``_c10d_functional::all_gather_into_tensor``, an NCCL kernel
``ncclDevKernel_AllGather_…`` — maps to one name here (``all_gather_into_tensor``), and each name belongs to a
family that says how its bytes move (the nccl-tests bus-bandwidth factors).
"""

from __future__ import annotations

ALL_REDUCE = "all_reduce"
ALL_GATHER = "all_gather"
ALL_GATHER_INTO_TENSOR = "all_gather_into_tensor"
REDUCE_SCATTER = "reduce_scatter"
REDUCE_SCATTER_TENSOR = "reduce_scatter_tensor"
ALL_TO_ALL = "all_to_all"
ALL_TO_ALL_SINGLE = "all_to_all_single"
BROADCAST, REDUCE, GATHER, SCATTER, BARRIER = "broadcast", "reduce", "gather", "scatter", "barrier"
SEND, RECV, SEND_RECV = "send", "recv", "send/recv"
UNKNOWN = "unknown"

# the torch operations by every spelling traces use (lower case, leading "_" and trailing "_" removed)
_NAMES = {
    "allreduce": ALL_REDUCE, "all_reduce": ALL_REDUCE,
    "allreduce_coalesced": "all_reduce_coalesced", "all_reduce_coalesced": "all_reduce_coalesced",
    "allgather": ALL_GATHER, "all_gather": ALL_GATHER,
    "allgather_base": ALL_GATHER_INTO_TENSOR, "all_gather_base": ALL_GATHER_INTO_TENSOR,
    "allgather_into_tensor": ALL_GATHER_INTO_TENSOR, "all_gather_into_tensor": ALL_GATHER_INTO_TENSOR,
    "allgather_coalesced": "all_gather_coalesced", "all_gather_coalesced": "all_gather_coalesced",
    "allgather_into_tensor_coalesced": "all_gather_into_tensor_coalesced",
    "all_gather_into_tensor_coalesced": "all_gather_into_tensor_coalesced",
    "reducescatter": REDUCE_SCATTER, "reduce_scatter": REDUCE_SCATTER,
    "reduce_scatter_base": REDUCE_SCATTER_TENSOR, "reduce_scatter_tensor": REDUCE_SCATTER_TENSOR,
    "reduce_scatter_tensor_coalesced": "reduce_scatter_tensor_coalesced",
    "alltoall": ALL_TO_ALL, "all_to_all": ALL_TO_ALL,
    "alltoall_base": ALL_TO_ALL_SINGLE, "all_to_all_single": ALL_TO_ALL_SINGLE, "alltoallv": ALL_TO_ALL_SINGLE,
    "broadcast": BROADCAST, "reduce": REDUCE, "gather": GATHER, "scatter": SCATTER,
    "barrier": BARRIER, "monitored_barrier": BARRIER,
    "send": SEND, "recv": RECV, "recv_any_source": RECV, "sendrecv": SEND_RECV, "send/recv": SEND_RECV,
    "isend": SEND, "irecv": RECV, "batch_p2p_ops": SEND_RECV,
    # the functional collectives' out= variants
    "all_gather_into_tensor_out": ALL_GATHER_INTO_TENSOR, "reduce_scatter_tensor_out": REDUCE_SCATTER_TENSOR,
}

KNOWN = frozenset(_NAMES.values())

# family -> the operations in it; a family says how bytes move between ranks
FAMILIES = {
    ALL_REDUCE: (ALL_REDUCE, "all_reduce_coalesced"),
    ALL_GATHER: (ALL_GATHER, ALL_GATHER_INTO_TENSOR, "all_gather_coalesced", "all_gather_into_tensor_coalesced"),
    REDUCE_SCATTER: (REDUCE_SCATTER, REDUCE_SCATTER_TENSOR, "reduce_scatter_tensor_coalesced"),
    ALL_TO_ALL: (ALL_TO_ALL, ALL_TO_ALL_SINGLE),
}
_FAMILY_OF = {op: fam for fam, ops in FAMILIES.items() for op in ops}
# explicit point-to-point calls (two ranks, not the group).  A kernel-only "send/recv" is not one: NCCL runs a
# group's all-to-all as grouped send/recv kernels on every rank
POINT_TO_POINT = frozenset({SEND, RECV})


def canonical(raw: str) -> str:
    """``nccl:all_reduce``, ``c10d::allreduce_``, ``gloo:all_reduce``, ``AllReduce`` -> ``all_reduce``;
    ``c10d::_allgather_base_`` -> ``all_gather_into_tensor``; unknown spellings pass through, lower-cased."""
    s = raw.split(":")[-1].strip().lower().strip("_")
    return _NAMES.get(s, s or UNKNOWN)


def family(op: str) -> str:
    """The family of an operation (``all_gather_into_tensor`` -> ``all_gather``); itself when it has none."""
    return _FAMILY_OF.get(op, op)


def is_p2p(op: str) -> bool:
    return op in POINT_TO_POINT


def bus_factor(op: str, n: int) -> float | None:
    """nccl-tests bus-bandwidth factor for ``n`` ranks; None where bandwidth means nothing (barrier, unknown)."""
    if n <= 0:
        return None
    fam = family(op)
    if fam == ALL_REDUCE:
        return 2.0 * (n - 1) / n
    if fam in (ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL):
        return (n - 1) / n
    if fam in (BROADCAST, REDUCE, SEND, RECV, SEND_RECV, GATHER, SCATTER):
        return 1.0
    return None
