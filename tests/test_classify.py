from __future__ import annotations

from commprof.reader import classify as cl


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
    assert cl.gpu_kind("kernel", "ncclDevKernel_AllGather_RING_LL(x)") == cl.COMM
    assert cl.gpu_kind("kernel", "rcclGenericKernel") == cl.COMM
    assert cl.gpu_kind("kernel", "void at::native::vectorized_elementwise_kernel<4>") == cl.COMPUTE
    assert cl.gpu_kind("gpu_memcpy", "Memcpy HtoD (Pageable -> Device)") == cl.MEMCPY


def test_canonical_ops_and_dtypes():
    for raw, op in [("nccl:all_reduce", "allreduce"), ("c10d::allreduce_", "allreduce"),
                    ("gloo:all_reduce", "allreduce"), ("nccl:_all_gather_base", "allgather"),
                    ("c10d::alltoall_base_", "alltoall"), ("nccl:_reduce_scatter_base", "reduce_scatter"),
                    ("allreduce", "allreduce"), ("c10d::broadcast_", "broadcast"), ("nccl:send", "send")]:
        assert cl.canonical_op(raw) == op, raw
    assert cl.canonical_dtype("Float") == "float32"
    assert cl.canonical_dtype("c10::Half") == "float16"
    assert cl.canonical_dtype("long int") == "int64"
    assert cl.dtype_size("bfloat16") == 2 and cl.dtype_size("mystery") == 0


def test_cpu_compute_excludes_bookkeeping_and_waits():
    assert cl.cpu_is_compute("aten::mm")
    assert not cl.cpu_is_compute("c10d::allreduce_")
    assert not cl.cpu_is_compute("record_param_comms")
    assert not cl.cpu_is_compute("aten::wait")
