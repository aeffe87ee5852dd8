from __future__ import annotations

from commprof.reader import classify as cl
from commprof.units import canonical_dtype, dtype_size, float_size


def test_old_and_new_nccl_kernel_names():
    assert cl.parse_kernel_name("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("allreduce", "RING", "LL", "float32")
    assert cl.parse_kernel_name("ncclDevKernel_AllReduce_Sum_f16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("allreduce", "RING", "LL", "float16")
    assert cl.parse_kernel_name("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)") \
        == ("sendrecv", "RING", "SIMPLE", "int8")
    assert cl.parse_kernel_name("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL128(x)")[0:3] \
        == ("reduce_scatter", "RING", "LL128")
    assert cl.parse_kernel_name("ncclDevKernel_SendRecv(ncclDevComm*, unsigned long, ncclWork*)")[0] == "sendrecv"
    assert cl.parse_kernel_name("ncclDevKernel_Generic_4(ncclDevKernelArgsStorage<4096ul>)")[0] == "unknown"


def test_comm_kernel_detection_includes_rccl():
    assert cl.is_comm_kernel("ncclDevKernel_AllGather_RING_LL(x)")
    assert cl.is_comm_kernel("rcclGenericKernel")
    assert not cl.is_comm_kernel("void at::native::vectorized_elementwise_kernel<4>")


def test_canonical_ops_and_dtypes():
    for raw, op in [("nccl:all_reduce", "allreduce"), ("c10d::allreduce_", "allreduce"),
                    ("gloo:all_reduce", "allreduce"), ("nccl:_all_gather_base", "allgather"),
                    ("c10d::alltoall_base_", "alltoall"), ("nccl:_reduce_scatter_base", "reduce_scatter"),
                    ("allreduce", "allreduce"), ("c10d::broadcast_", "broadcast"), ("nccl:send", "send")]:
        assert cl.canonical_op(raw) == op, raw
    assert canonical_dtype("Float") == "float32"
    assert canonical_dtype("c10::Half") == "float16"
    assert canonical_dtype("long int") == "int64"
    assert dtype_size("bfloat16") == 2 and dtype_size("mystery") == 0
    assert float_size("c10::BFloat16") == 2 and float_size("double") == 8 and float_size("long int") is None


def test_cpu_kinds():
    assert cl.cpu_kind("aten::mm") == cl.COMPUTE
    assert cl.cpu_kind("aten::copy_") == cl.ELEMENTWISE
    assert cl.cpu_kind("c10d::allreduce_") == cl.C10D
    assert cl.cpu_kind("c10d::wait") == cl.EXCLUDED
    assert cl.cpu_kind("record_param_comms") == cl.RPC
    assert cl.cpu_kind("aten::wait") == cl.EXCLUDED
    assert cl.cpu_kind("gloo:all_reduce") == cl.GLOO
    assert cl.cpu_kind("nccl:all_reduce") == cl.NCCL
    assert cl.cpu_kind("ProfilerStep#4") == cl.STEP
    assert cl.cpu_kind("Broadcast") == cl.DATAPARALLEL
