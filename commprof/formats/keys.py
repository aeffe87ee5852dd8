"""Raw Kineto / chrome-trace keys and names, in one place (HTA's default_event_args idea).  Only the reader
uses them."""

# the document
TRACE_EVENTS = "traceEvents"
DISTRIBUTED_INFO = "distributedInfo"
DEVICE_PROPERTIES = "deviceProperties"
BASE_TIME_NS = "baseTimeNanoseconds"
HOST_NAME = "host_name"  # torch >= 2.5: the machine that recorded the trace

# an event
PH, CAT, NAME, TS, DUR, PID, TID, ARGS = "ph", "cat", "name", "ts", "dur", "pid", "tid", "args"
PH_COMPLETE, PH_META, PH_INSTANT = "X", "M", "i"
META_THREAD_NAME = "thread_name"  # a metadata event naming a thread (its args.name)
MEMORY_EVENT = "[memory]"  # an instant event after each allocation or free (profile_memory=True)

# categories
CAT_KERNEL, CAT_MEMCPY, CAT_MEMSET = "kernel", "gpu_memcpy", "gpu_memset"
CAT_RUNTIME, CAT_DRIVER = "cuda_runtime", "cuda_driver"
CAT_CPU_OP, CAT_GPU_USER_ANNOTATION = "cpu_op", "gpu_user_annotation"

# names
STEP_PREFIX = "ProfilerStep#"
RPC = "record_param_comms"
# the device allocator's runtime calls (CUDA and HIP), by what they do to memory
RT_MALLOC = ("cudaMalloc", "hipMalloc")
RT_FREE = ("cudaFree", "hipFree")
RT_HOST_ALLOC = ("cudaHostAlloc", "cudaMallocHost", "hipHostMalloc", "hipHostAlloc", "hipMallocHost")
RT_HOST_FREE = ("cudaFreeHost", "hipHostFree", "hipFreeHost")
RT_DEVICE_SYNC = ("cudaDeviceSynchronize", "hipDeviceSynchronize")
OPTIMIZER_STEP_PREFIX = "Optimizer.step#"  # torch.optim's record function: "Optimizer.step#Adam.step"
DDP_FORWARD = "DistributedDataParallel.forward"  # DDP's record function around each forward call
# DDP's reducer at each gradient synchronization: "torch::distributed::reducer::mul_out",
# "torch.distributed.ddp.reducer::copy_bucket_to_grad"
DDP_REDUCER_PART = "reducer::"
EMPTY_CACHE_SUFFIX = ": empty_cache"  # with_stack's Python function event: "torch/cuda/memory.py(222): empty_cache"

# args
A_NAME = "name"
A_CORRELATION = "correlation"
A_DEVICE = "device"
A_IN_DEVICE = "inDevice"
A_BYTES = "bytes"
A_STREAM = "stream"
A_COLL_NAME = "Collective name"
A_IN_NELEMS = "In msg nelems"
A_OUT_NELEMS = "Out msg nelems"
A_GROUP_SIZE = "Group size"
A_DTYPE = "dtype"
A_PG_NAME = "Process Group Name"
A_SEQ = "Seq"
A_P2P_SRC, A_P2P_DST = "Src Rank", "Dst Rank"  # a send's / recv's peer (record_param_comms)
A_INPUT_DIMS = "Input Dims"
A_INPUT_TYPE = "Input type"
A_INPUT_STRIDES = "Input Strides"
A_CONCRETE = "Concrete Inputs"
A_TOTAL_ALLOCATED = "Total Allocated"
A_TOTAL_RESERVED = "Total Reserved"
A_DEVICE_TYPE = "Device Type"
A_DEVICE_ID = "Device Id"
A_MEM_ADDR, A_MEM_BYTES = "Addr", "Bytes"  # a [memory] event's block and its size (negative: freed)

# distributedInfo and its process groups; deviceProperties
DI_RANK, DI_WORLD, DI_BACKEND, DI_PG_CONFIG = "rank", "world_size", "backend", "pg_config"
DI_NCCL_VERSION = "nccl_version"
PG_NAME, PG_DESC, PG_RANKS = "pg_name", "pg_desc", "ranks"
DP_NAME, DP_ID, DP_TOTAL_MEM = "name", "id", "totalGlobalMem"
