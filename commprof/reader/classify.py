"""One table of name patterns -> kind.  The only place that decides what is communication.

Kinds: ``compute``, ``comm``, ``memcpy``, ``memset``, ``sync``, ``other``.

- GPU kernels whose name marks a collective or point-to-point are ``comm``: NCCL's old
  (``ncclKernel_AllReduce_RING_LL_Sum_float``) and new (``ncclDevKernel_AllReduce_Sum_f16_RING_LL``)
  schemes, RCCL's (same prefixes, plus ``ncclDevKernel_Generic``) and MSCCL's.  Other kernels are compute.
- CPU-only traces: the gloo backend's transfers (``gloo:*``) are comm; CPU operators are compute except
  the collective's own bookkeeping (``c10d::*``, ``record_param_comms``, ``nccl:*``) and blocking waits.
"""

from __future__ import annotations

import re

COMPUTE, COMM, MEMCPY, MEMSET, SYNC, OTHER = "compute", "comm", "memcpy", "memset", "sync", "other"

COMM_KERNEL_PREFIXES = ("nccl", "rccl", "msccl")

# CPU operator names that are not compute on a CPU-only trace
_CPU_NOT_COMPUTE_PREFIXES = ("c10d::", "record_param_comms", "nccl:", "gloo:", "_c10d_functional::wait",
                             "c10d_functional::wait", "aten::_wait", "ProfilerStep#")
_CPU_WAIT_NAMES = frozenset({"aten::wait", "c10d::wait", "_c10d_functional::wait_tensor",
                             "c10d_functional::wait_tensor", "cudaStreamSynchronize",
                             "cudaDeviceSynchronize", "cudaEventSynchronize"})

SYNC_RUNTIME = frozenset({"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
                           "cudaStreamWaitEvent", "hipDeviceSynchronize", "hipStreamSynchronize",
                           "hipEventSynchronize", "cudaMemcpy", "hipMemcpy"})


def gpu_kind(cat: str, name: str) -> str:
    """Kind of a GPU-side event (Kineto categories ``kernel``, ``gpu_memcpy``, ``gpu_memset``)."""
    if cat == "kernel":
        return COMM if name.startswith(COMM_KERNEL_PREFIXES) else COMPUTE
    if cat == "gpu_memcpy":
        return MEMCPY
    if cat == "gpu_memset":
        return MEMSET
    return OTHER


def is_comm_kernel(name: str) -> bool:
    return name.startswith(COMM_KERNEL_PREFIXES)


def cpu_is_compute(name: str) -> bool:
    """Whether a ``cpu_op`` counts as compute on a CPU-only trace."""
    return not (name.startswith(_CPU_NOT_COMPUTE_PREFIXES) or name in _CPU_WAIT_NAMES)


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


# ---- dtypes --------------------------------------------------------------------------------------

_DTYPE_CANON = {
    "float": "float32", "float32": "float32", "c10::float": "float32", "f32": "float32",
    "double": "float64", "float64": "float64",
    "half": "float16", "c10::half": "float16", "float16": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "c10::bfloat16": "bfloat16", "bf16": "bfloat16",
    "long int": "int64", "long": "int64", "int64": "int64", "long long": "int64",
    "int": "int32", "int32": "int32", "short int": "int16", "short": "int16", "int16": "int16",
    "signed char": "int8", "char": "int8", "int8": "int8", "unsigned char": "uint8", "byte": "uint8",
    "uint8": "uint8", "bool": "bool",
    "c10::float8_e4m3fn": "float8_e4m3fn", "c10::float8_e5m2": "float8_e5m2",
}
_DTYPE_SIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
               "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "uint32": 4, "uint64": 8,
               "float8_e4m3fn": 1, "float8_e5m2": 1}


def canonical_dtype(raw: str | None) -> str:
    if not raw:
        return "unknown"
    return _DTYPE_CANON.get(raw.strip().lower(), raw.strip().lower())


def dtype_size(dtype: str) -> int:
    """Bytes per element; 0 when unknown (the caller then warns instead of guessing)."""
    return _DTYPE_SIZE.get(dtype, 0)
