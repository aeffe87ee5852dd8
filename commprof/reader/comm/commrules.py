"""The table of GPU kernels that move data between ranks: NCCL's, and those of the libraries that bypass it.

Each rule names its library (shown in the report beside what it matched), the operation its kernels perform where
the name says, and where the names come from.  Names were read in each library's source (the commit in ``source``)
and are matched as they appear in a trace, demangled C++ (``void deep_ep::internode::dispatch<...>(...)``); a name
a profiler left mangled (``_ZN7deep_ep9internode8dispatchILb0E...``) is matched by its qualified name, read off
the mangling.  A kernel none of them matches is compute; users add rules of their own
(``load(comm_kernels=[...])``, ``--comm-kernel``).  Bytes: kernels carry no argument values, so a kernel that no
CPU collective record launched has no size; its time always counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ... import ops

_SEP = "::"
_L = r"(?<![A-Za-z_])"  # a component starts here (not inside another identifier)


@dataclass(frozen=True, slots=True)
class CommRule:
    library: str  # shown in the report
    pattern: str  # a Python regular expression, searched in the kernel's name
    op: str | None  # the operation its kernels perform; None: from the name (NCCL) or not said
    source: str = ""

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


def _ns(*parts: str) -> str:
    return _L + _SEP.join(parts)


BUILTIN: tuple[CommRule, ...] = (
    # RCCL's MSCCL integration names reduction, type and protocol, not the collective (rccl
    # src/include/msccl/msccl_kernel.h: mscclKernel_##devredop##_##type##_##proto##_##fullOps)
    CommRule("MSCCL (RCCL)", r"^mscclKernel_(?:Sum|Prod|MinMax|Max|Min)_\w+_(?:LL128|LL|Simple)_(?:true|false)", None,
             "ROCm/rccl src/include/msccl/msccl_kernel.h"),
    # NCCL's old (ncclKernel_AllReduce_RING_LL_Sum_float) and new (ncclDevKernel_AllReduce_Sum_f16_RING_LL) names,
    # RCCL's (the same prefixes; ncclDevKernel_Generic names no collective) and MSCCL's (algorithm token MSCCL)
    CommRule("NCCL", r"^(?:nccl|rccl|msccl)", None, "NVIDIA/nccl; ROCm/rccl src/device/common.cu; microsoft/msccl"),
    # DeepEP: expert-parallel dispatch / combine (all-to-all) and their notify / barrier kernels, v1.2.1 and the
    # legacy namespace of its V2; DeepSeek's own builds name the namespace dpsk::ep (deepseek-ai/profile-data)
    CommRule("DeepEP", _L + r"(?:deep_ep|dpsk" + _SEP + r"ep)" + _SEP + r"(?:legacy" + _SEP + r")?"
             r"(?:intranode|internode_ll|internode)" + _SEP + r"(?:dispatch|combine)(?:_ll)?(?![A-Za-z0-9_])",
             ops.ALL_TO_ALL, "deepseek-ai/DeepEP v1.2.1 csrc/kernels/{intranode,internode,internode_ll}.cu"),
    CommRule("DeepEP", _L + r"(?:deep_ep|dpsk" + _SEP + r"ep)" + _SEP + r"(?:legacy" + _SEP + r")?"
             r"(?:intranode|internode_ll|internode)" + _SEP +
             r"(?:notify_dispatch|cached_notify(?:_dispatch|_combine)?|barrier|clean_low_latency_buffer)"
             r"(?![A-Za-z0-9_])", ops.BARRIER, "deepseek-ai/DeepEP v1.2.1 csrc/kernels/*.cu, runtime.cu"),
    CommRule("DeepEP", _ns("deep_ep", "elastic") + _SEP + r"(?:hybrid_)?(?:dispatch|combine)_impl(?![A-Za-z0-9_])",
             ops.ALL_TO_ALL, "deepseek-ai/DeepEP dd758caf deep_ep/include/deep_ep/impls/*.cuh"),
    CommRule("DeepEP", _ns("deep_ep", "elastic") + _SEP + r"(?:barrier|pp_send|pp_recv|engram_fetch(?:_wait)?)_impl"
             r"(?![A-Za-z0-9_])", None, "deepseek-ai/DeepEP dd758caf deep_ep/include/deep_ep/impls/*.cuh"),
    # NVSHMEM's host-launched collectives (device-side collectives are inlined into their callers)
    *(CommRule("NVSHMEM", _L + name + r"_on_stream_kernel<", op,
               "NVIDIA/nvshmem v3.4.5-0 src/include/internal/non_abi/nvshmemi_h_to_d_coll_defs.cuh")
      for name, op in (("alltoall", ops.ALL_TO_ALL), ("broadcast", ops.BROADCAST), ("fcollect", ops.ALL_GATHER),
                       ("rdxn", ops.ALL_REDUCE), ("reducescatter", ops.REDUCE_SCATTER))),
    CommRule("NVSHMEM", _L + r"(?:barrier|sync)_on_stream_kernel_threadgroup<", ops.BARRIER,
             "NVIDIA/nvshmem v3.4.5-0 nvshmemi_h_to_d_sync_defs.cuh"),
    CommRule("NVSHMEM", _L + r"nvshmemi_(?:proxy_rma(?:_signal)?_entrypoint(?:_blocking)?|proxy_quiet_entrypoint|"
             r"signal_op_kernel|\w+_wait_until(?:_all|_all_vector)?_on_stream_kernel)", None,
             "NVIDIA/nvshmem v3.4.5-0 nvshmemi_h_to_d_rma_defs.cuh"),
    # pplx-kernels' expert-parallel all-to-all (generic names: matched with their template signature)
    CommRule("pplx-kernels", r"(?:^|[\s:])(?:dispatchKernel<\d+u,|combineKernel<[^<>]*\d+ul,)\s*(?:true|false),\s*"
             r"(?:true|false)>", ops.ALL_TO_ALL, "perplexityai/pplx-kernels 2bd6e30f csrc/all_to_all/*.cu"),
    # PyTorch's symmetric memory and its intra-node all-reduce
    CommRule("torch symmetric memory", _L + r"(?:one_shot_all_reduce_kernel|two_shot_all_reduce_kernel(?:_inplace)?|"
             r"multimem_all_reduce_kernel|multimem_one_shot_all_reduce_kernel)(?![A-Za-z0-9_])", ops.ALL_REDUCE,
             "pytorch torch/csrc/distributed/c10d/symm_mem/CUDASymmetricMemoryOps.cu"),
    CommRule("torch symmetric memory", _L + r"multimem_all_gather_kernel(?![A-Za-z0-9_])", ops.ALL_GATHER,
             "pytorch symm_mem/CUDASymmetricMemoryOps.cu"),
    CommRule("torch symmetric memory", _ns("c10d", "symmetric_memory") + _SEP +
             r"(?:barrier_kernel|multimem_barrier_kernel|put_signal_kernel|wait_signal_kernel|barrierKernel|"
             r"putSignalKernel|waitSignalKernel)(?![A-Za-z0-9_])", ops.BARRIER,
             "pytorch symm_mem/CUDASymmetricMemory-inl.cuh; intel/torch-xpu-ops src/xccl/Signal.cpp"),
    CommRule("torch symmetric memory", _ns("c10d", "nvshmem_extension") + _SEP +
             r"(?:exchangeSplitAndOffset(?:_2d)?|allToAllV(?:_2d)?)(?![A-Za-z0-9_])", ops.ALL_TO_ALL,
             "pytorch symm_mem/nvshmem_extension.cu"),
    CommRule("torch symmetric memory", _ns("c10d", "nccl_extension") + _SEP +
             r"(?:lsa_put_kernel|lsa_put_signal_kernel|lsa_get_kernel|nccl_wait_for_signal_kernel)(?![A-Za-z0-9_])",
             None, "pytorch symm_mem/nccl_extension.cu"),
    CommRule("torch intra-node comm", _ns("c10d") + _SEP + r"(?:oneShotAllReduceKernel|hybridCubeAllReduceKernel)"
             r"(?![A-Za-z0-9_])", ops.ALL_REDUCE, "pytorch torch/csrc/distributed/c10d/intra_node_comm.cu"),
    # custom all-reduce kernels of inference engines (SGLang keeps vLLM's namespace; QuickReduce is shared)
    CommRule("vLLM/SGLang custom all-reduce", _ns("vllm") + _SEP + r"cross_device_reduce_(?:1stage|2stage|"
             r"half_butterfly)(?![A-Za-z0-9_])", ops.ALL_REDUCE, "vllm-project/vllm csrc/custom_all_reduce.cuh"),
    CommRule("vLLM custom all-gather", _ns("vllm") + _SEP + r"(?:cross_device_all_gather|mnnvl_lamport_all_gather)"
             r"(?![A-Za-z0-9_])", ops.ALL_GATHER, "vllm csrc/custom_all_gather_reduce_scatter.cuh"),
    CommRule("vLLM custom reduce-scatter", _ns("vllm") + _SEP + r"(?:cross_device_reduce_scatter|"
             r"mnnvl_lamport_reduce_scatter_kernel)(?![A-Za-z0-9_])", ops.REDUCE_SCATTER,
             "vllm csrc/custom_all_gather_reduce_scatter.cuh"),
    CommRule("QuickReduce", _ns("quickreduce") + _SEP + r"allreduce_prototype_twoshot<", ops.ALL_REDUCE,
             "vllm csrc/quickreduce/quick_reduce.h"),
    CommRule("SGLang all-reduce", _ns("sglang") + _SEP + r"allreduce_1shotLL_[12]node<", ops.ALL_REDUCE,
             "sgl-project/sglang sgl-kernel/csrc/allreduce/mscclpp_allreduce.cuh"),
    CommRule("TensorRT-LLM all-reduce", _L + r"(?:tensorrt_llm" + _SEP + r"kernels|trt_llm)" + _SEP +
             r"(?:(?:ar_fusion|reduce_fusion|mnnvl)" + _SEP + r")?(?:oneShotAllReduceKernel|twoShotAllReduceKernel|"
             r"allreduce_fusion_kernel_\w+|lamport_style_one_shot_all_reduce_norm_kernel|"
             r"one_shot_all_reduce_norm_kernel|one_shot_prenorm_all_reduce_norm_kernel|twoshot_allreduce_kernel)"
             r"(?![A-Za-z0-9_])", ops.ALL_REDUCE,
             "NVIDIA/TensorRT-LLM cpp/tensorrt_llm/kernels/customAllReduceKernels.cu, allReduceFusionKernels.cu"),
    CommRule("TensorRT-LLM MoE all-to-all", _L + r"(?:moe_comm" + _SEP + r")?moeA2A(?:Dispatch|Combine)Kernel",
             ops.ALL_TO_ALL, "NVIDIA/TensorRT-LLM moe_comm kernels"),
    # Transformer Engine / Megatron userbuffers (comm-GEMM overlap)
    CommRule("userbuffers", _L + r"userbuffers_fp16_sum_inplace_gpu_(?:rr|rw|mc)_rs\w*", ops.REDUCE_SCATTER,
             "NVIDIA/TransformerEngine transformer_engine/common/comm_gemm_overlap/userbuffers/userbuffers.cu"),
    CommRule("userbuffers", _L + r"userbuffers_fp16_sum_inplace_gpu_(?:rr|rw|mc)_ag\w*", ops.ALL_GATHER,
             "TransformerEngine userbuffers.cu"),
    CommRule("userbuffers", _L + r"userbuffers_fp16_sum_inplace_gpu_(?:rr|rw|mc)(?![A-Za-z0-9])", ops.ALL_REDUCE,
             "TransformerEngine userbuffers.cu"),
    CommRule("userbuffers", _L + r"kuserbuffers_(?:pullsend|pullrecv|pushsend|pushrecv|pushsendrecv(?:_atomic|"
             r"_multiatomic)?)", ops.SEND_RECV, "TransformerEngine userbuffers.cu"),
    # MSCCL++
    CommRule("MSCCL++", _ns("mscclpp") + _SEP + r"(?:collective" + _SEP + r")?(?:executionKernel|allreduce\w*|"
             r"allgather\w*)<", None, "microsoft/mscclpp src/core/include/execution_kernel.hpp, src/ext/collectives"),
    # oneCCL's SYCL kernels on Intel GPUs (torch's XCCL backend runs them)
    CommRule("oneCCL", r"^(?:typeinfo name for )?(?:Allreduce_small_kernel(?:_scalar|_block)?|"
             r"Allreduce(?:Large|Medium)Kernel_(?:GlobalSync|LocalSync))<", ops.ALL_REDUCE,
             "uxlfoundation/oneCCL src/coll/algorithms/allreduce/sycl/*.hpp"),
    CommRule("oneCCL", r"^(?:typeinfo name for )?(?:Allgatherv_small_kernel_(?:esimd|scalar)|"
             r"Allgatherv(?:Large|Medium)Kernel_(?:GlobalSync|LocalSync)|AllgatherMediumKernel_\w+)<",
             ops.ALL_GATHER, "oneCCL src/coll/algorithms/allgatherv/sycl/*.hpp"),
    CommRule("oneCCL", r"^(?:typeinfo name for )?(?:Reduce_scatter_small_kernel_(?:esimd|scalar)|"
             r"ReduceScatter(?:Large|Medium)Kernel_\w+|ReduceScatterLarge(?:NoCopy)?Kernel)<", ops.REDUCE_SCATTER,
             "oneCCL src/coll/algorithms/reduce_scatter/sycl/*.hpp"),
)


_BUILTIN_SEEN: dict[str, CommRule | None] = {}


class CommRules:
    """The rules in effect (users' first, then the built-in ones), each kernel name decided once."""

    def __init__(self, extra: Iterable[CommRule] = ()) -> None:
        self.rules = (*tuple(extra), *BUILTIN)
        self._compiled = [r.compiled() for r in self.rules]
        # one search of all the rules at once says whether any matches (most kernels are compute: none does);
        # only then are they tried one by one, in order, for the first that matches
        self._any = re.compile("|".join(f"(?:{r.pattern})" for r in self.rules))
        # the built-in rules' decisions are shared by every rank read in this process (kernel names repeat)
        self._seen: dict[str, CommRule | None] = {} if len(self.rules) > len(BUILTIN) else _BUILTIN_SEEN

    def match(self, name: str) -> CommRule | None:
        try:
            return self._seen[name]
        except KeyError:
            text = qualified_name(name) if name.startswith("_Z") else name
            hit = None if self._any.search(text) is None else \
                next((r for r, p in zip(self.rules, self._compiled, strict=True) if p.search(text)), None)
            self._seen[name] = hit
            return hit

    def __reduce__(self):  # workers get the user's rules; they compile and cache their own
        return CommRules, (tuple(r for r in self.rules if r not in BUILTIN),)


_SOURCE_NAME = re.compile(r"(\d+)")


def qualified_name(mangled: str) -> str:
    """The qualified name at the head of an Itanium-mangled symbol (``_ZN7deep_ep9internode8dispatchILb0E...`` ->
    ``deep_ep::internode::dispatch<``): its source-name components joined by ``::``, then ``<`` where template
    arguments follow, else ``(``.  Anything else of the mangling is dropped; a name it cannot read is returned as
    it is."""
    i = 2 + (mangled[2:3] == "N")
    i += mangled[i:i + 1] == "L"  # internal linkage
    parts: list[str] = []
    while i < len(mangled):
        m = _SOURCE_NAME.match(mangled, i)
        if m is None:
            break
        n = int(m.group(1))
        part = mangled[m.end():m.end() + n]
        if len(part) < n:
            return mangled
        parts.append("(anonymous namespace)" if part.startswith("_GLOBAL__N") else part)
        i = m.end() + n
    if not parts:
        return mangled
    return "::".join(parts) + ("<" if mangled[i:i + 1] == "I" else "(")


def user_rule(text: str) -> CommRule:
    """A rule from ``REGEX`` or ``OP=REGEX`` (OP one of commprof's operation names, e.g. ``all_to_all``).
    Raises ValueError for a pattern that is not a valid regular expression."""
    op: str | None = None
    head, sep, rest = text.partition("=")
    if sep and ops.canonical(head) in ops.KNOWN and head.strip() == head:
        op, text = ops.canonical(head), rest
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"{text!r} is not a regular expression ({e})") from None
    if not text:
        raise ValueError("an empty pattern matches every kernel")
    return CommRule(f"user: {text}", text, op, "given by the user")
