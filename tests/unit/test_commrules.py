"""Communication outside NCCL.  The kernel names below are written as each library's source declares them (the
commit or tag in each rule's ``source``; demangled forms as g++'s ``nm -C`` prints the same declarations), and the
DeepEP trace is built event for event like the real DeepSeek-V3 training trace of deepseek-ai/profile-data
(train.json: EP64, DualPipe, H800; kernel names, streams and args as there)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from builders import parse, run

from commprof.analysis.analyze import analyze
from commprof.reader.comm.commrules import CommRules, qualified_name, user_rule
from conftest import ROOT

NAMES = [  # (kernel name, library, op)
    # deepseek-ai/DeepEP v1.2.1 csrc/kernels/internode.cu, intranode.cu, internode_ll.cu
    ("void deep_ep::internode::dispatch<false, 8, true, 8, 5, 4>(int4*, float*, long*, float*, "
     "deep_ep::internode::SourceMeta*)", "DeepEP", "all_to_all"),
    ("void deep_ep::intranode::combine<__nv_bfloat16, 8, 768, 8192>(__nv_bfloat16*, float*)", "DeepEP", "all_to_all"),
    ("void deep_ep::internode_ll::dispatch<true, false, 7168>(void*, void*)", "DeepEP", "all_to_all"),
    ("void deep_ep::intranode::barrier<8>(int**, int)", "DeepEP", "barrier"),
    # deepseek-ai/profile-data train.json: DeepSeek's own build names the namespace dpsk::ep
    ("void dpsk::ep::internode::cached_notify<false>(int, int, int, int, int*, int, int, int const*)", "DeepEP",
     "barrier"),
    ("void dpsk::ep::internode::notify_dispatch<false, 8>(int const*, long*, int, int const*)", "DeepEP", "barrier"),
    ("void dpsk::ep::internode::combine<false, 8, __nv_bfloat16, 8, 2, 16, 24>(int4*, float*, bool*)", "DeepEP",
     "all_to_all"),
    # NVIDIA/nvshmem v3.4.5-0 nvshmemi_h_to_d_coll_defs.cuh, nvshmemi_h_to_d_sync_defs.cuh
    ("void rdxn_on_stream_kernel<float, (rdxn_ops)5>(int, float*, float const*, unsigned long)", "NVSHMEM",
     "all_reduce"),
    ("void alltoall_on_stream_kernel<char>(int, char*, char const*, unsigned long)", "NVSHMEM", "all_to_all"),
    ("void barrier_on_stream_kernel_threadgroup<(threadgroup_t)1>(int, int)", "NVSHMEM", "barrier"),
    # perplexityai/pplx-kernels 2bd6e30f csrc/all_to_all/*.cu
    ("void (anonymous namespace)::dispatchKernel<10u, true, false>(int*, unsigned long, std::byte*)", "pplx-kernels",
     "all_to_all"),
    ("void combineKernel<float, __nv_bfloat16, 16ul, true, false>(__nv_bfloat16*, unsigned long)", "pplx-kernels",
     "all_to_all"),
    # pytorch torch/csrc/distributed/c10d/symm_mem/*.cu, intra_node_comm.cu
    ("void (anonymous namespace)::one_shot_all_reduce_kernel<c10::BFloat16, 16, 8>(c10::BFloat16**, "
     "c10::BFloat16*)", "torch symmetric memory", "all_reduce"),
    ("c10d::symmetric_memory::barrier_kernel(unsigned int**, int, int, int, unsigned long)",
     "torch symmetric memory", "barrier"),
    ("c10d::nvshmem_extension::allToAllV(void*, void*, long*, unsigned long, int, int)", "torch symmetric memory",
     "all_to_all"),
    ("void c10d::oneShotAllReduceKernel<8>(c10d::IntraNodeComm*)", "torch intra-node comm", "all_reduce"),
    # vllm-project/vllm csrc/custom_all_reduce.cuh (SGLang's copy keeps the vllm namespace), quick_reduce.h
    ("void vllm::cross_device_reduce_1stage<__nv_bfloat16, 8>(vllm::RankData*, vllm::RankSignals, vllm::Signal*, "
     "__nv_bfloat16*, int, int)", "vLLM/SGLang custom all-reduce", "all_reduce"),
    ("void quickreduce::allreduce_prototype_twoshot<quickreduce::AllReduceTwoshot<__half, "
     "quickreduce::CodecQ8<__half, 8> >, __half>(__half const*, __half*, unsigned int)", "QuickReduce", "all_reduce"),
    # NVIDIA/TensorRT-LLM cpp/tensorrt_llm/kernels/customAllReduceKernels.cu, allReduceFusionKernels.cu
    ("void tensorrt_llm::kernels::oneShotAllReduceKernel<__nv_bfloat16, 8, false>"
     "(tensorrt_llm::kernels::AllReduceParams)", "TensorRT-LLM all-reduce", "all_reduce"),
    ("void tensorrt_llm::kernels::ar_fusion::allreduce_fusion_kernel_oneshot_lamport<(tensorrt_llm::kernels::"
     "ar_fusion::AllReduceFusionPattern)2, __nv_bfloat16, 8, false, true>(tensorrt_llm::kernels::ar_fusion::"
     "AllReduceFusionParams)", "TensorRT-LLM all-reduce", "all_reduce"),
    # NVIDIA/TransformerEngine comm_gemm_overlap/userbuffers/userbuffers.cu
    ("void userbuffers_fp16_sum_inplace_gpu_rr_rs<8>(int, int, int, int, int, int, int, void**, int, "
     "unsigned long)", "userbuffers", "reduce_scatter"),
    ("void userbuffers_fp16_sum_inplace_gpu_rr_ag<8>(int, int, int)", "userbuffers", "all_gather"),
    ("kuserbuffers_pushrecv(int, int, int, int, int*, int*, int, unsigned long, int*, int*)", "userbuffers",
     "send/recv"),
    # microsoft/mscclpp src/ext/collectives; ROCm/rccl msccl_kernel.h; microsoft/msccl collectives.h
    ("void mscclpp::collective::allreducePacket<(mscclpp::ReduceOp)0, __nv_bfloat16, __nv_bfloat16>(int)",
     "MSCCL++", None),
    ("mscclKernel_Sum_half_LL_false(ncclDevComm*, mscclAlgo*, mscclWork*)", "MSCCL (RCCL)", None),
    ("ncclKernel_AllReduce_MSCCL_LL_Sum_half(ncclDevComm*, ncclWorkElem)", "NCCL", None),
    ("ncclDevKernel_Generic_4(ncclDevKernelArgs4K)", "NCCL", None),  # RCCL >= 6.1: names no collective
    # uxlfoundation/oneCCL src/coll/algorithms/*/sycl/*.hpp (torch's XCCL backend runs them)
    ("typeinfo name for Allreduce_small_kernel<sycl::_V1::ext::oneapi::bfloat16, 16ul>", "oneCCL", "all_reduce"),
    ("ReduceScatterLargeKernel_GlobalSync<float, 4ul>", "oneCCL", "reduce_scatter"),
]

COMPUTE = ["void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float> >(int)",
           "void dpsk::ep::cuda::get_dispatch_layout<256, 32, 8>(long const*, int*, int*, int*, bool*)",
           "void vllm::fused_moe::dispatch_kernel<1>(int)", "barrier_kernel(int)",
           "void tensorrt_llm::kernels::reduce_fusion::rms_norm_kernel<float>(float*)",
           "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1",
           "void cutlass::device_kernel<dpsk::grouped_gemm::cuda::fp8_ptp128c::GemmKernel>(int)"]


@pytest.mark.parametrize("name,library,op", NAMES)
def test_each_librarys_kernels_are_communication(name, library, op):
    rule = CommRules().match(name)
    assert rule is not None and (rule.library, rule.op) == (library, op)


@pytest.mark.parametrize("name", COMPUTE)
def test_their_compute_kernels_are_not(name):
    assert CommRules().match(name) is None


def test_mangled_names_are_matched_by_their_qualified_name():
    assert qualified_name("_ZN7deep_ep9internode8dispatchILb0ELi8EEEvP4int4") == "deep_ep::internode::dispatch<"
    rule = CommRules().match("_ZN7deep_ep9internode8dispatchILb0ELi8EEEvP4int4")
    assert rule is not None and rule.library == "DeepEP"


def test_user_rules_come_first_and_may_name_the_op():
    rules = CommRules([user_rule("all_to_all=my_ep::dispatch_kernel"), user_rule("myar_\\w+")])
    a, b = rules.match("void my_ep::dispatch_kernel<4>(int)"), rules.match("myar_sum(float*)")
    assert a is not None and (a.library, a.op) == ("user: my_ep::dispatch_kernel", "all_to_all")
    assert b is not None and b.op is None
    with pytest.raises(ValueError, match="not a regular expression"):
        user_rule("bad[")


def _deepep_trace(rank: int) -> dict:
    """One ProfilerStep; compute on stream 7, DeepEP on stream 27, as in train.json (notify, dispatch, combine run
    beside the expert GEMMs): 8 ms of DeepEP in a 10 ms step, 7.9 ms of it under the GEMM (0.5-9.5 ms)."""
    k = "void dpsk::ep::internode::{}(int4*, float*, long*)"
    ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0,
           "dur": 10_000}]
    launches = [(100, "void cutlass::device_kernel<dpsk::grouped_gemm::cuda::fp8_ptp128c::GemmKernel>(int)", 7,
                 500, 9_000),
                (200, k.format("notify_dispatch<false, 8>"), 27, 400, 1_000),
                (300, k.format("dispatch<false, 8, true, 8>"), 27, 1_500, 3_000),
                (400, k.format("combine<false, 8, __nv_bfloat16, 8, 2, 16, 24>"), 27, 5_000, 4_000)]
    for corr, (ts, name, stream, start, dur) in enumerate(launches):
        ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": ts,
                   "dur": 5, "args": {"correlation": corr}})
        ev.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": start, "dur": dur,
                   "args": {"device": 0, "stream": stream, "correlation": corr, "grid": [20, 1, 1]}})
    return {"traceEvents": ev, "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": 2}}


def test_deepep_kernels_count_as_communication_not_compute():
    rep = analyze(run(*(parse(_deepep_trace(r), f"rank{r}.json") for r in (0, 1))))
    s = rep.overlaps[0].representative
    assert s is not None and s.comm_ns == 8_000_000 and s.compute_ns == 9_000_000
    assert s.overlapped_ns == 7_900_000 and s.exposed_ns == 100_000  # notify_dispatch starts before the GEMM
    rows = {(c.op, c.via) for c in rep.collectives}
    assert rows == {("all_to_all", "DeepEP"), ("barrier", "DeepEP")}
    assert any("communication kernels of DeepEP" in w and "bytes are unknown" in w for w in rep.warnings)
    assert not any("No communication ran" in f.text for f in rep.findings)


def test_cli_option_adds_a_rule_and_a_bad_pattern_is_one_clear_line(tmp_path):
    trace = _deepep_trace(0)
    for e in trace["traceEvents"]:
        if e.get("cat") == "kernel" and "dpsk::ep" in e["name"]:
            e["name"] = e["name"].replace("dpsk::ep", "acme::ep")  # a library commprof does not know
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rank0.json").write_text(json.dumps(trace))
    cmd = [sys.executable, "-m", "commprof", "report", str(tmp_path / "t"), "-o", str(tmp_path / "o"), "-q",
           "--format", "json"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and not json.loads((tmp_path / "o" / "summary.json").read_text())["collectives"]
    res = subprocess.run([*cmd, "--comm-kernel", "all_to_all=acme::ep::internode::(dispatch|combine)"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert res.returncode == 0 and {(c["op"], c["via"]) for c in s["collectives"]} == {
        ("all_to_all", "user: acme::ep::internode::(dispatch|combine)")}
    res = subprocess.run([*cmd, "--comm-kernel", "bad["], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a regular expression" in res.stderr
