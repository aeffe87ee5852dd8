"""The one table of what each event is.  The only place that decides what is communication.

- GPU kernels whose name marks a collective or point-to-point are communication: NCCL's old
  (``ncclKernel_AllReduce_RING_LL_Sum_float``) and new (``ncclDevKernel_AllReduce_Sum_f16_RING_LL``)
  schemes, RCCL's (same prefixes, plus ``ncclDevKernel_Generic``) and MSCCL's.  Other kernels are compute.
- CPU events, by name (``cpu_kind``, decided once per distinct name): the profiler's steps, the gloo backend's
  transfers (``gloo:*``, communication on CPU-only traces), the CPU records of collectives
  (``record_param_comms``, ``nccl:*`` annotations, ``c10d::*`` calls), nn.DataParallel's autograd functions,
  the collective's own bookkeeping and blocking waits (neither compute nor communication), element-wise
  operators (compute whose bytes measure a memory pass), and every other operator (compute).
- Runtime calls that block the host until the GPU catches up (``SYNC_RUNTIME``).
"""

from __future__ import annotations

import re

from ..formats import keys as K
from ..units import canonical_dtype

COMM_KERNEL_PREFIXES = ("nccl", "rccl", "msccl")

# what a CPU-side event is, by name (ordered: kinds from EXCLUDED on are operators)
STEP, GLOO, RPC, NCCL, C10D, EXCLUDED, COMPUTE, ELEMENTWISE, DATAPARALLEL = range(9)

# CPU operator names that are not compute on a CPU-only trace: bookkeeping and blocking waits
_NOT_COMPUTE_PREFIXES = ("c10d::", "record_param_comms", "nccl:", "gloo:", "_c10d_functional::wait",
                         "c10d_functional::wait", "aten::_wait", "ProfilerStep#")
_WAIT_NAMES = frozenset({"aten::wait", "c10d::wait", "_c10d_functional::wait_tensor",
                         "c10d_functional::wait_tensor", "cudaStreamSynchronize",
                         "cudaDeviceSynchronize", "cudaEventSynchronize"})

# in-place / out-of-place element-wise operators whose first input's bytes measure one memory pass
ELEMENTWISE_OPS = frozenset({"aten::copy_", "aten::add_", "aten::mul", "aten::mul_", "aten::div_", "aten::add",
                             "aten::sub", "aten::div"})

# nn.DataParallel's autograd functions (torch/nn/parallel/_functions.py): the profiler records each call
# under its class name (THPFunction_apply's RECORD_FUNCTION), with the tensors' Input Dims
DP_OPS = frozenset({"Broadcast", "Scatter", "Gather", "ReduceAddCoalesced"})

SYNC_RUNTIME = frozenset({"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
                          "cudaStreamWaitEvent", "hipDeviceSynchronize", "hipStreamSynchronize",
                          "hipEventSynchronize", "cudaMemcpy", "hipMemcpy"})


def cpu_kind(name: str) -> int:
    """What a CPU-side complete event of this name is (one of the kinds above)."""
    if name.startswith(K.STEP_PREFIX):
        return STEP
    if name.startswith("gloo:"):
        return GLOO
    if name == K.RPC:
        return RPC
    if name.startswith("nccl:"):
        return NCCL
    if name.startswith("c10d::") and name != "c10d::wait" and not name.startswith("c10d::_"):
        return C10D
    if name in DP_OPS:
        return DATAPARALLEL  # DataParallel's functions count as compute
    if name.startswith(_NOT_COMPUTE_PREFIXES) or name in _WAIT_NAMES:
        return EXCLUDED
    return ELEMENTWISE if name in ELEMENTWISE_OPS else COMPUTE


def is_comm_kernel(name: str) -> bool:
    return name.startswith(COMM_KERNEL_PREFIXES)


def is_gloo_thread(thread_name: str) -> bool:
    """gloo runs its collectives on worker threads of its own (``pt_gloo_runloop``)."""
    return "gloo" in thread_name


# ---- collective names --------------------------------------------------------------------------

_OP_CANON = {
    "allreduce": "allreduce", "all_reduce": "allreduce", "allreduce_coalesced": "allreduce",
    "allreduce_coalesced_": "allreduce", "all_reduce_coalesced": "allreduce",
    "allgather": "allgather", "all_gather": "allgather", "_allgather_base": "allgather",
    "allgather_base": "allgather", "all_gather_into_tensor": "allgather",
    "all_gather_base": "allgather", "_all_gather_base": "allgather", "allgather_into_tensor_coalesced":
    "allgather", "allgather_coalesced": "allgather", "all_gather_into_tensor_coalesced": "allgather",
    "reducescatter": "reduce_scatter", "reduce_scatter": "reduce_scatter",
    "_reduce_scatter_base": "reduce_scatter", "reduce_scatter_base": "reduce_scatter",
    "reduce_scatter_tensor": "reduce_scatter", "reduce_scatter_tensor_coalesced": "reduce_scatter",
    "alltoall": "alltoall", "all_to_all": "alltoall", "alltoall_base": "alltoall",
    "all_to_all_single": "alltoall", "alltoallv": "alltoall",
    "broadcast": "broadcast", "reduce": "reduce", "send": "send", "recv": "recv",
    "recv_any_source": "recv", "sendrecv": "sendrecv", "barrier": "barrier", "gather": "gather",
    "scatter": "scatter", "allgather_into_tensor": "allgather",
}


def canonical_op(raw: str) -> str:
    """``nccl:all_reduce``, ``c10d::allreduce_``, ``AllReduce``, ``allreduce`` -> ``allreduce``."""
    s = raw.split(":")[-1].strip().lower().rstrip("_")
    if s in _OP_CANON:
        return _OP_CANON[s]
    s2 = s.lstrip("_")
    return _OP_CANON.get(s2, s2 or "unknown")


# ncclKernel_AllReduce_RING_LL_Sum_float(...)  /  ncclDevKernel_AllReduce_Sum_f16_RING_LL(...)
_OLD = re.compile(r"^(?:nccl|rccl|msccl)Kernel_([A-Za-z]+)_([A-Z_]+?)_(LL128|LL|SIMPLE)_([A-Za-z]+)_(\w+)")
_NEW = re.compile(r"^(?:nccl|rccl|msccl)DevKernel_([A-Za-z]+)_([A-Za-z]+)_(\w+?)_([A-Z_]+?)_(LL128|LL|SIMPLE)\b")
_NEW_NOREDOP = re.compile(r"^(?:nccl|rccl|msccl)DevKernel_([A-Za-z]+)_([A-Z_]+?)_(LL128|LL|SIMPLE)\b")
_ANY = re.compile(r"^(?:nccl|rccl|msccl)(?:Dev)?Kernel_([A-Za-z]+)")

_KERNEL_OP = {"allreduce": "allreduce", "allgather": "allgather", "reducescatter": "reduce_scatter",
              "broadcast": "broadcast", "reduce": "reduce", "sendrecv": "sendrecv",
              "alltoall": "alltoall", "generic": "unknown"}

_KERNEL_DTYPE = {"f16": "float16", "half": "float16", "f32": "float32", "float": "float32",
                 "f64": "float64", "double": "float64", "bf16": "bfloat16", "__nv_bfloat16": "bfloat16",
                 "i8": "int8", "int8_t": "int8", "u8": "uint8", "uint8_t": "uint8", "i32": "int32",
                 "int32_t": "int32", "u32": "uint32", "i64": "int64", "int64_t": "int64",
                 "u64": "uint64", "uint64_t": "uint64", "f8e4m3": "float8_e4m3fn", "f8e5m2": "float8_e5m2"}


def parse_kernel_name(name: str) -> tuple[str, str | None, str | None, str | None]:
    """(op, algorithm, protocol, dtype) as far as an NCCL/RCCL kernel name says.

    The name records what the kernel was compiled for; NCCL may pick another algorithm or protocol
    at run time for the same kernel, so treat algorithm and protocol as hints.
    """
    base = name.split("(")[0]
    m = _OLD.match(base)
    if m:
        op, algo, proto, _redop, dt = m.groups()
        return _KERNEL_OP.get(op.lower(), op.lower()), algo, proto, _KERNEL_DTYPE.get(dt, dt)
    m = _NEW.match(base)
    if m:
        op, _redop, dt, algo, proto = m.groups()
        return _KERNEL_OP.get(op.lower(), op.lower()), algo, proto, _KERNEL_DTYPE.get(dt, dt)
    m = _NEW_NOREDOP.match(base)
    if m:
        op, algo, proto = m.groups()
        return _KERNEL_OP.get(op.lower(), op.lower()), algo, proto, None
    m = _ANY.match(base)
    if m:
        return _KERNEL_OP.get(m.group(1).lower(), m.group(1).lower()), None, None, None
    return "unknown", None, None, None


__all__ = ["canonical_dtype", "canonical_op", "cpu_kind", "is_comm_kernel", "parse_kernel_name"]
