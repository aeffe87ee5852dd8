from __future__ import annotations

from commprof import ops
from commprof.reader.comm import classify as cl
from commprof.reader.comm.commrules import CommRules
from commprof.units import canonical_dtype, dtype_size, float_size


def test_old_and_new_nccl_kernel_names():
    assert cl.parse_kernel_name("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("all_reduce", "RING", "LL", "float32")
    assert cl.parse_kernel_name("ncclDevKernel_AllReduce_Sum_f16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("all_reduce", "RING", "LL", "float16")
    assert cl.parse_kernel_name("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("send/recv", "RING", "SIMPLE", "int8")
    assert cl.parse_kernel_name("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL128(x)")[0:3] \
        == ("reduce_scatter", "RING", "LL128")
    assert cl.parse_kernel_name("ncclDevKernel_SendRecv(ncclDevComm*, unsigned long, ncclWork*)")[0] == "send/recv"
    assert cl.parse_kernel_name("ncclDevKernel_Generic_4(ncclDevKernelArgsStorage<4096ul>)")[0] == "unknown"


def test_comm_kernel_detection_includes_rccl():
    rules = CommRules()
    assert rules.match("ncclDevKernel_AllGather_RING_LL(x)") is not None
    assert rules.match("rcclGenericKernel") is not None
    assert rules.match("void at::native::vectorized_elementwise_kernel<4>") is None


def test_canonical_ops_and_dtypes():
    for raw, op in [("nccl:all_reduce", "all_reduce"), ("c10d::allreduce_", "all_reduce"),
                    ("gloo:all_reduce", "all_reduce"), ("nccl:_all_gather_base", "all_gather_into_tensor"),
                    ("c10d::_allgather_base_", "all_gather_into_tensor"), ("c10d::allgather_", "all_gather"),
                    ("c10d::alltoall_base_", "all_to_all_single"), ("nccl:all_to_all", "all_to_all"),
                    ("nccl:_reduce_scatter_base", "reduce_scatter_tensor"),
                    ("c10d::_reduce_scatter_base_", "reduce_scatter_tensor"),
                    ("c10d::reduce_scatter_", "reduce_scatter"),
                    ("_c10d_functional::all_gather_into_tensor", "all_gather_into_tensor"),
                    ("_c10d_functional::reduce_scatter_tensor_out", "reduce_scatter_tensor"),
                    ("allreduce", "all_reduce"), ("c10d::broadcast_", "broadcast"), ("nccl:send", "send"),
                    ("c10d::recv_any_source_", "recv"), ("c10d::barrier", "barrier")]:
        assert ops.canonical(raw) == op, raw
    assert ops.family("all_gather_into_tensor") == "all_gather"
    assert ops.family("reduce_scatter_tensor") == "reduce_scatter"
    assert canonical_dtype("Float") == "float32"
    assert canonical_dtype("c10::Half") == "float16"
    assert canonical_dtype("long int") == "int64"
    assert dtype_size("bfloat16") == 2 and dtype_size("mystery") == 0
    assert float_size("c10::BFloat16") == 2 and float_size("double") == 8 and float_size("long int") is None


def test_cpu_kinds():
    assert cl.cpu_kind("aten::relu") == cl.COMPUTE
    assert cl.cpu_kind("aten::mm") == cl.MATMUL and cl.cpu_kind("aten::addmm") == cl.MATMUL  # compute, and counted
    assert cl.cpu_kind("aten::bmm") == cl.PRODUCT and cl.cpu_kind("aten::matmul") == cl.COMPUTE  # matmul: composite
    assert cl.cpu_kind("aten::copy_") == cl.ELEMENTWISE
    assert cl.cpu_kind("c10d::allreduce_") == cl.C10D
    assert cl.cpu_kind("c10d::wait") == cl.EXCLUDED
    assert cl.cpu_kind("record_param_comms") == cl.RPC
    assert cl.cpu_kind("aten::wait") == cl.EXCLUDED
    assert cl.cpu_kind("gloo:all_reduce") == cl.GLOO
    assert cl.cpu_kind("nccl:all_reduce") == cl.NCCL
    assert cl.cpu_kind("ProfilerStep#4") == cl.STEP
    assert cl.cpu_kind("Broadcast") == cl.DATAPARALLEL
    assert cl.cpu_kind("c10d::_allgather_base_") == cl.C10D
    assert cl.cpu_kind("_c10d_functional::all_gather_into_tensor") == cl.C10D
    assert cl.cpu_kind("_c10d_functional::wait_tensor") == cl.EXCLUDED
    assert cl.cpu_kind("c10d::check_for_nan") == cl.EXCLUDED


def test_host_synchronizations_are_the_calls_that_block_the_host():
    """cudaStreamWaitEvent orders a stream on the device and returns at once: DLRM's 44 per step were counted as host
    blocking (54 "synchronizations", 10 of which blocked)."""
    from commprof.reader.comm.classify import SYNC_RUNTIME

    assert {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy"} <= SYNC_RUNTIME
    assert "cudaStreamWaitEvent" not in SYNC_RUNTIME and "hipStreamWaitEvent" not in SYNC_RUNTIME
