"""The one table of what each event is.  The only place that decides what is communication.

- GPU kernels that move data between ranks are communication, by the rules of ``commrules`` (NCCL, RCCL, MSCCL,
  DeepEP, NVSHMEM, symmetric memory, custom all-reduce kernels, userbuffers, MSCCL++, oneCCL, and the user's own);
  other kernels are compute.  ``parse_kernel_name`` reads what an NCCL kernel's name says.
- CPU events, by name (``cpu_kind``, decided once per distinct name): the profiler's steps, the gloo backend's
  transfers (``gloo:*``, communication on CPU-only traces), the CPU records of collectives
  (``record_param_comms``, ``nccl:*`` annotations, ``c10d::*`` calls), nn.DataParallel's autograd functions,
  the collective's own bookkeeping and blocking waits (neither compute nor communication), element-wise
  operators (compute whose bytes measure a memory pass), and every other operator (compute).
- Runtime calls that block the host until the GPU catches up (``SYNC_RUNTIME``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ... import ops
from ...formats import keys as K
from ...model import EMBEDDING_TABLES, EXPERTS
from ...model.alloc import (
    DDP_FORWARD,
    DDP_REDUCER,
    DEVICE_SYNC,
    EMPTY_CACHE,
    FREE,
    HOST_ALLOC,
    HOST_FREE,
    MALLOC,
    OPTIMIZER_STEP,
)
from ..matmuls import MATMUL_OPS

# what a CPU-side event is, by name (ordered: kinds from EXCLUDED on are operators)
STEP, GLOO, RPC, NCCL, C10D, FSDP, MARK, EXCLUDED, COMPUTE, ELEMENTWISE, DATAPARALLEL, ACCUMULATE_GRAD, PRODUCT, \
    MATMUL = range(14)

FSDP_PREFIX = "FSDP::"

# the autograd engine's accumulation of a parameter's gradient (with record_shapes, the gradient's shape): when
# it ends, the gradient is ready for DDP's reducer
ACCUMULATE_GRAD_OP = "torch::autograd::AccumulateGrad"

# the CPU records of a collective call: c10d's ops (``c10d::allreduce_``, ``c10d::_allgather_base_``, ...) and the
# functional collectives (``_c10d_functional::all_gather_into_tensor``, ...), but not their waits
_COLLECTIVE_CALLS = ("c10d::", "_c10d_functional::", "c10d_functional::")
_NOT_CALLS = ("c10d::wait", "c10d::check_for_nan", "c10d::_register", "c10d::_resolve", "_c10d_functional::wait",
              "c10d_functional::wait", "_c10d_functional::_")

# CPU operator names that are not compute on a CPU-only trace: bookkeeping and blocking waits
_NOT_COMPUTE_PREFIXES = ("c10d::", "record_param_comms", "nccl:", "gloo:", "_c10d_functional::",
                         "c10d_functional::", "aten::_wait", "ProfilerStep#")
_WAIT_NAMES = frozenset({"aten::wait", "c10d::wait", "_c10d_functional::wait_tensor",
                         "c10d_functional::wait_tensor", "cudaStreamSynchronize",
                         "cudaDeviceSynchronize", "cudaEventSynchronize"})

# in-place / out-of-place element-wise operators whose first input's bytes measure one memory pass
ELEMENTWISE_OPS = frozenset({"aten::copy_", "aten::add_", "aten::mul", "aten::mul_", "aten::div_", "aten::add",
                             "aten::sub", "aten::sub_", "aten::div", "aten::clone"})
# those that write a fresh tensor, by their number of Input Dims entries (0: always); with one more entry they
# are the ``out=`` overload, writing into an existing tensor (``aten::mul`` with 3 entries is ``mul.out``)
FRESH_OUTPUT_ARITY = {"aten::clone": 0, "aten::mul": 2, "aten::div": 2, "aten::add": 3, "aten::sub": 3}
# batched matrix products: thin ones (a matrix times a rank-r factor) are PowerSGD's work (``reader.products``)
PRODUCT_OPS = frozenset({"aten::bmm"})

# nn.DataParallel's autograd functions (torch/nn/parallel/_functions.py): the profiler records each call
# under its class name (THPFunction_apply's RECORD_FUNCTION), with the tensors' Input Dims
DP_OPS = frozenset({"Broadcast", "Scatter", "Gather", "ReduceAddCoalesced"})

# (not cudaStreamWaitEvent: it orders one stream after an event on the device and returns at once; DLRM's 44 per
# step read as host blocking, 54 "synchronizations" where 10 blocked)
SYNC_RUNTIME = frozenset({"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
                          "hipDeviceSynchronize", "hipStreamSynchronize",
                          "hipEventSynchronize", "cudaMemcpy", "hipMemcpy"})


# the allocator's runtime calls: name -> what it does (``model.alloc``)
ALLOC_RUNTIME = {**{n: MALLOC for n in K.RT_MALLOC}, **{n: FREE for n in K.RT_FREE},
                 **{n: HOST_ALLOC for n in K.RT_HOST_ALLOC}, **{n: HOST_FREE for n in K.RT_HOST_FREE},
                 **{n: DEVICE_SYNC for n in K.RT_DEVICE_SYNC}}


# what a trace's operator and kernel names show the model holds, for what its all-to-alls serve (``crossrank.pgkind``):
# sharded embedding tables (fbgemm's table-batched embeddings, as TorchRec runs them; torch's EmbeddingBag) or
# mixture-of-experts layers (routers, experts, grouped matrix products); lower-case parts of a name
_MODEL_PARTS = ((EMBEDDING_TABLES, ("embedding_codegen", "embedding_bag", "embeddingbag")),
                (EXPERTS, ("moe", "expert", "router", "grouped_gemm", "grouped_mm")))


def model_parts(names: Iterable[str]) -> frozenset[str]:
    """The model parts (``EMBEDDING_TABLES``, ``EXPERTS``) that any of these operator / kernel names shows."""
    found: set[str] = set()
    for name in names:
        low = name.lower()
        found.update(part for part, keys in _MODEL_PARTS if part not in found and any(k in low for k in keys))
        if len(found) == len(_MODEL_PARTS):
            break
    return frozenset(found)


def mark_of(name: str) -> tuple[str, str] | None:
    """(kind, detail) of a named CPU range the memory analyses and the DDP micro-batches read, else None."""
    if name.startswith(K.OPTIMIZER_STEP_PREFIX):
        return OPTIMIZER_STEP, name[len(K.OPTIMIZER_STEP_PREFIX):].split(".")[0]
    if name.endswith(K.EMPTY_CACHE_SUFFIX) or name == "torch.cuda.empty_cache":
        return EMPTY_CACHE, ""
    if name == K.DDP_FORWARD:
        return DDP_FORWARD, ""
    if K.DDP_REDUCER_PART in name:
        return DDP_REDUCER, ""
    return None


def cpu_kind(name: str) -> int:
    """What a CPU-side complete event of this name is (one of the kinds above)."""
    if name.startswith(K.STEP_PREFIX):
        return STEP
    if mark_of(name) is not None:
        return MARK
    if name.startswith("gloo:"):
        return GLOO
    if name.startswith(FSDP_PREFIX):
        return FSDP  # FSDP2's record functions: phases of its units, not operators
    if name == K.RPC:
        return RPC
    if name.startswith("nccl:"):
        return NCCL
    if name.startswith(_COLLECTIVE_CALLS) and not name.startswith(_NOT_CALLS):
        return C10D
    if name in DP_OPS:
        return DATAPARALLEL  # DataParallel's functions count as compute
    if name == ACCUMULATE_GRAD_OP:
        return ACCUMULATE_GRAD  # compute too
    if name.startswith(_NOT_COMPUTE_PREFIXES) or name in _WAIT_NAMES:
        return EXCLUDED
    if name in PRODUCT_OPS:
        return PRODUCT  # compute too, and counted as matrix work
    if name in MATMUL_OPS:
        return MATMUL  # compute too (``reader.matmuls``)
    return ELEMENTWISE if name in ELEMENTWISE_OPS else COMPUTE


def writes_fresh(name: str, n_inputs: int) -> bool:
    """Whether an element-wise operator with this many Input Dims entries allocates its output."""
    arity = FRESH_OUTPUT_ARITY.get(name)
    return arity is not None and (arity == 0 or n_inputs == arity)


def is_gloo_thread(thread_name: str) -> bool:
    """gloo runs its collectives on worker threads of its own (``pt_gloo_runloop``)."""
    return "gloo" in thread_name


# ---- collective kernels -------------------------------------------------------------------------

# ncclKernel_AllReduce_RING_LL_Sum_float(...)  /  ncclDevKernel_AllReduce_Sum_f16_RING_LL(...)
_OLD = re.compile(r"^(?:nccl|rccl|msccl)Kernel_([A-Za-z]+)_([A-Z_]+?)_(LL128|LL|SIMPLE)_([A-Za-z]+)_(\w+)")
_NEW = re.compile(r"^(?:nccl|rccl|msccl)DevKernel_([A-Za-z]+)_([A-Za-z]+)_(\w+?)_([A-Z_]+?)_(LL128|LL|SIMPLE)\b")
_NEW_NOREDOP = re.compile(r"^(?:nccl|rccl|msccl)DevKernel_([A-Za-z]+)_([A-Z_]+?)_(LL128|LL|SIMPLE)\b")
_ANY = re.compile(r"^(?:nccl|rccl|msccl)(?:Dev)?Kernel_([A-Za-z]+)")

_KERNEL_OP = {"allreduce": ops.ALL_REDUCE, "allgather": ops.ALL_GATHER, "reducescatter": ops.REDUCE_SCATTER,
              "broadcast": ops.BROADCAST, "reduce": ops.REDUCE, "sendrecv": ops.SEND_RECV,
              "alltoall": ops.ALL_TO_ALL, "generic": ops.UNKNOWN}

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


